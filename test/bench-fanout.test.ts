// The fan-out benchmark's machinery (bench/fanout.ts) on real processes and sockets:
//   - each relay (the proxy under Node and Bun, GStreamer multiudpsink) sends every packet to each
//     of its destinations, distinct loopback addresses at one port, each received here on a
//     socket of its own;
//   - a tiny run at 1, 10 and 1,000 destinations: every copy reaches the bench's one wildcard sink
//     socket or a kernel or proxy counter says where it went, CPU per packet hangs together, and
//     the report, RESULTS.md and the target are made from the result.
// Figures are not asserted (a shared machine). A missing GStreamer fails the tests that need it
// under CI and skips them, loudly, elsewhere.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { destinationAddresses, FANOUT_RELAYS, fanoutLabel, fanoutTargets, primeDuration, runFanout, startFanoutRelay, type FanoutRelay, type FanoutResult } from "../bench/fanout.js";
import { GST_LAUNCH } from "../bench/hosts/gstreamer.js";
import type { ProxyProcess } from "../bench/hosts/proxy-process.js";
import { printText, renderResultsMarkdown } from "../bench/report.js";
import { DropWatch, settled, unexplainedLoss } from "./lib/kernel-drops.js";
import { peer, peerTest, runsOk } from "./lib/peers.js";
import { benchResults } from "./lib/bench-results.js";
import { suite } from "./lib/suite.js";
import { bindUdp, indexedRtp, sendPaced, Sink } from "./lib/udp.js";

const test = suite("bench fanout", { timeoutMs: 60_000 });

const GSTREAMER = peer("GStreamer multiudpsink", "Debian packages gstreamer1.0-tools, gstreamer1.0-plugins-good", () =>
  runsOk(GST_LAUNCH, ["--version"]) && runsOk("gst-inspect-1.0", ["--exists", "udpsrc"]) && runsOk("gst-inspect-1.0", ["--exists", "multiudpsink"]));

const COUNT = 50;
const DESTINATIONS = 5;

/** A sink on each of the first `n` destination addresses, all at one port. */
async function sinksOnDestinations(n: number): Promise<{ port: number; sinks: Sink[] }> {
  const addresses = destinationAddresses(n);
  for (let attempt = 0; attempt < 20; attempt++) {
    const first = await Sink.open(0, { address: addresses[0]! });
    const sinks = [first];
    try {
      for (const address of addresses.slice(1)) sinks.push(await Sink.open(first.port, { address }));
      return { port: first.port, sinks };
    } catch {
      for (const s of sinks) s.close(); // the port is taken on another address: another port
    }
  }
  throw new Error(`no port free on ${n} destination addresses`);
}

async function eachDestinationGetsEveryPacket(kind: FanoutRelay): Promise<void> {
  const { port, sinks } = await sinksOnDestinations(DESTINATIONS);
  const from = await bindUdp();
  const relay = await startFanoutRelay(kind, destinationAddresses(DESTINATIONS), port);
  try {
    const kernel = new DropWatch([relay.port, port]);
    await sendPaced(from, relay.port, "127.0.0.1", COUNT, 1000, (i) => indexedRtp(i, 1200));
    const received = (): number => sinks.reduce((n, s) => n + s.received, 0);
    await settled(() => received() + kernel.since().total, 300, 10_000);
    const proxyDrops = "stats" in relay ? (await (relay as ProxyProcess).stats()).segments[0]!.dropsTotal : 0;
    let duplicates = 0;
    for (const [k, s] of sinks.entries()) {
      duplicates += s.tally(COUNT).duplicates;
      assert.ok(s.received > 0 || kernel.since().total > 0, `${fanoutLabel(kind)}: destination ${destinationAddresses(DESTINATIONS)[k]} got nothing`);
    }
    const verdict = unexplainedLoss({ sent: COUNT * DESTINATIONS, received: received(), proxyDrops, kernel, duplicates });
    assert.is(verdict, null, `${fanoutLabel(kind)}: ${verdict}`);
  } finally {
    await relay.close();
    from.close();
    for (const s of sinks) s.close();
  }
}

for (const kind of FANOUT_RELAYS) {
  const title = `${fanoutLabel(kind)}: each of ${DESTINATIONS} destinations, a distinct loopback address, gets every packet once`;
  if (kind === "multiudpsink") peerTest(test, GSTREAMER, title, () => eachDestinationGetsEveryPacket(kind));
  else test(title, () => eachDestinationGetsEveryPacket(kind));
}

let result: FanoutResult;
const COUNTS = [1, 10, 1000];

peerTest(test, GSTREAMER, "a tiny run: every copy reaches the one wildcard sink socket or a counter says where it went", async () => {
  result = await runFanout({ counts: COUNTS, relays: FANOUT_RELAYS, sendsPerSecond: 10_000, size: 1200, trialMs: 300, drainMs: 1000, rounds: 1, primeMs: 100, primeInputPackets: 100, primeMaxMs: 500, idleMs: 200 });
  assert.equal(result.warnings.filter((w) => /not measured|no drop counter/.test(w)), []);
  assert.equal(result.cells.map((c) => `${c.relay} ${c.destinations}`), FANOUT_RELAYS.flatMap((r) => COUNTS.map((n) => `${r} ${n}`)));
  for (const c of result.cells) assert.is(c.unexplainedLoss, 0, `${c.relay} x ${c.destinations}`);
  for (const t of result.trials) {
    const what = `${t.relay} x ${t.destinations}`;
    assert.ok(t.sent > 0 && t.distinctArrived > 0, `${what}: nothing flowed`);
    assert.ok(t.arrivals <= t.sent * t.destinations, `${what}: more copies than sent x N`);
    assert.ok(t.relayCpuUs > 0 && t.usPerPacketSent > 0, `${what}: no CPU charged`);
    assert.ok(t.idleCpuUsPerS >= 0 && t.usPerInputPacketNet <= t.usPerInputPacket, `${what}: idle ${t.idleCpuUsPerS} us/s, net ${t.usPerInputPacketNet} of ${t.usPerInputPacket} us per input packet`);
    // with nothing dropped, a packet in costs N packets sent
    if (t.missing === 0 && t.relayKernelDrops === 0) {
      const n = t.usPerInputPacket / t.usPerPacketSent;
      assert.ok(Math.abs(n - t.destinations) <= 0.01 * t.destinations + 0.01, `${what}: per input / per sent = ${n}`);
    }
    // the proxy's own count of packets out covers every copy that reached the sink
    if (t.relay !== "multiudpsink") assert.ok(t.proxyPacketsOut! >= t.arrivals, `${what}: proxy counted ${t.proxyPacketsOut} out, ${t.arrivals} arrived`);
  }
}, { timeoutMs: 180_000 });

peerTest(test, GSTREAMER, "slopes, ratios, the target and the report are made from the result", () => {
  for (const c of result.cells) {
    assert.is(c.usPerExtraDestination === null, c.destinations === COUNTS[0], `${c.relay} x ${c.destinations}: slope ${c.usPerExtraDestination}`);
    assert.is(c.vsMultiudpsink === null, c.relay === "multiudpsink", `${c.relay} x ${c.destinations}: ratio ${c.vsMultiudpsink}`);
  }
  const targets = fanoutTargets(result);
  assert.equal(targets.map((t) => typeof t.met), ["boolean", "boolean"]);
  assert.ok(targets.every((t) => t.value.includes("(10 to 1000)")), targets.map((t) => t.value).join("; "));
  const results = benchResults(["fanout"], { fanout: result }, { command: "node dist/bench/run.js --only fanout" });
  const text = printText(results);
  assert.ok(text.includes("(f) Fan-out"), text);
  for (const r of FANOUT_RELAYS) assert.ok(text.includes(fanoutLabel(r)), `text report lacks ${r}`);
  const dir = mkdtempSync(join(tmpdir(), "msm-bench-fanout-"));
  try {
    writeFileSync(join(dir, "2026-01-02-fanout.json"), JSON.stringify(results));
    const md = renderResultsMarkdown(dir);
    assert.ok(md.includes("### (f) Fan-out"), md);
    assert.ok(md.includes("Reproduce: `node dist/bench/run.js --only fanout`"), md);
    assert.ok(md.includes("| 1000 | msm proxy (Node) |"), md);
    assert.ok(md.includes("cheaper per extra destination than GStreamer multiudpsink"), md);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the priming trial lasts what a number of input packets take at N's rate, within its bounds", () => {
  const o = { sendsPerSecond: 50_000, primeMs: 300, primeInputPackets: 2000, primeMaxMs: 10_000 };
  assert.is(primeDuration(1, o), 300, "50,000 packets/s in: the floor");
  assert.is(primeDuration(100, o), 4000, "500 packets/s in: 2,000 of them");
  assert.is(primeDuration(1000, o), 10_000, "50 packets/s in: the cap");
});

test.run();
