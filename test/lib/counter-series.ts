// Tests that counters never go back: a proxy's /metrics samples by series, rounds of a stream that
// the segment has counted before the next step, and the check that every series went on.
import type { Socket } from "node:dgram";
import * as assert from "uvu/assert";
import { renderPrometheus } from "../../runtime/admin/prometheus.js";
import type { Proxy } from "../../runtime/index.js";
import { segmentStats } from "./proxy.js";
import { indexedRtp, waitFor } from "./udp.js";

/** The samples of the proxy's /metrics whose series match `pattern`, by series. */
export async function seriesOf(proxy: Proxy, pattern: RegExp): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of renderPrometheus(await proxy.stats()).split("\n")) {
    if (!pattern.test(line)) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** Every series of `before` still exported in `after`, at its value or more; `before` holds at least `least`. */
export function assertWentOn(before: Map<string, number>, after: Map<string, number>, step: string, least: number): void {
  assert.ok(before.size >= least, `${step}: series before: ${[...before.keys()].join(", ")}`);
  for (const [series, value] of before) {
    const now = after.get(series);
    assert.ok(now !== undefined && now >= value, `${step}: ${series} went back from ${value} to ${now}`);
  }
}

/**
 * Sends 100 packets of one stream (indexedRtp from `seq`) to segment `segment` at `port`, after
 * `extra` (sent first), and waits until the segment counted them all; returns the next sequence number.
 */
export async function sendRound(proxy: Proxy, segment: string, tx: Socket, port: number, seq: number, extra: Uint8Array[] = []): Promise<number> {
  const before = (await segmentStats(proxy, segment)).packetsIn;
  for (const p of extra) tx.send(p, port, "127.0.0.1");
  for (let i = 0; i < 100; i++) tx.send(indexedRtp(seq + i), port, "127.0.0.1");
  await waitFor(async () => (await segmentStats(proxy, segment)).packetsIn >= before + 100 + extra.length, 5000, "the segment to count the round");
  return seq + 100;
}
