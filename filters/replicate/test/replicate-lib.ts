// Test helpers for the replicate filter: a stream of RTP packets, the two (or more) paths of a
// 2022-7 pair with their own delay and seeded loss, and a runner that feeds the arrivals to the
// filter in batches on the harness clock, the way the proxy would, and collects what leaves on
// leg 0 in wire order (passed in place first, then the output area, then what timers send).
import { FilterHarness, buildRtp, type HarnessOptions, type HarnessPacket, type OutputPacket } from "../../../sdk/harness/index.js";
import { filterWasm } from "../../../test/lib/paths.js";
import { rng } from "../../../test/lib/random.js";

export { rng };

export const SSRC = 0x2022_0007;

export const loadReplicate = (options: HarnessOptions = {}): Promise<FilterHarness> =>
  FilterHarness.load(filterWasm("replicate", true), { name: "replicate", ...options });

export const seqOf = (b: Uint8Array): number => (b[2]! << 8) | b[3]!;
export const tsOf = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset).getUint32(4);
export const ssrcOf = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset).getUint32(8);
export const ptOf = (b: Uint8Array): number => b[1]! & 0x7f;

/** Packet `i` of a stream starting at `seq0`: 90 kHz video, 3 packets a frame, sizes varying. */
export function packet(i: number, seq0 = 1000, ssrc = SSRC): Uint8Array {
  return buildRtp({ seq: (seq0 + i) & 0xffff, timestamp: (5000 + Math.floor(i / 3) * 3000) >>> 0, ssrc, payloadSize: 100 + ((i * 37) % 1100), payloadByte: i & 0xff });
}

export const stream = (count: number, seq0 = 1000, ssrc = SSRC): Uint8Array[] => Array.from({ length: count }, (_, i) => packet(i, seq0, ssrc));

/** One copy of a packet reaching the filter: on `leg`, at `atUs` (harness clock). */
export interface Arrival {
  readonly bytes: Uint8Array;
  readonly leg: number;
  readonly atUs: number;
  /** Which packet of the sent stream it is. */
  readonly index: number;
}

export interface PathModel {
  readonly leg: number;
  readonly delayUs: number;
  /** Whether the path loses packet `i` (called once per packet, in order). */
  readonly lose: (i: number) => boolean;
}

/** Every copy the paths deliver of `packets` sent `intervalUs` apart from `startUs`, in arrival order. */
export function arrivals(packets: readonly Uint8Array[], paths: readonly PathModel[], startUs: number, intervalUs = 1000): Arrival[] {
  const out: Arrival[] = [];
  packets.forEach((bytes, index) => {
    for (const p of paths) if (!p.lose(index)) out.push({ bytes, leg: p.leg, atUs: startUs + index * intervalUs + p.delayUs, index });
  });
  return out.sort((a, b) => a.atUs - b.atUs || a.leg - b.leg);
}

export interface Merged {
  /** What left on leg 0, in wire order. */
  readonly out: Uint8Array[];
  /** Output packets on other legs (copies), in order. */
  readonly copies: OutputPacket[];
  /** Verdict (or drop reason name) per arrival, in arrival order. */
  readonly verdicts: string[];
}

/**
 * Feeds `items` to context `ctx`: every `tickUs` of harness time, the arrivals due by then in one
 * batch (at most 64), then the clock moves on (firing timers). Ends `tailUs` after the last arrival.
 */
export function run(h: FilterHarness, ctx: number, items: readonly Arrival[], tickUs = 2000, tailUs = 0): Merged {
  const out: Uint8Array[] = [];
  const copies: OutputPacket[] = [];
  const verdicts: string[] = [];
  const take = (outputs: readonly OutputPacket[]): void => {
    for (const o of outputs) (o.leg === 0 ? out.push(o.bytes) : copies.push(o));
  };
  let at = 0;
  while (at < items.length) {
    const due: HarnessPacket[] = [];
    while (at < items.length && items[at]!.atUs <= h.nowUs && due.length < 64) {
      const it = items[at++]!;
      due.push({ ctx, bytes: it.bytes, leg: it.leg, arrivalUs: it.atUs });
    }
    if (due.length > 0) {
      const r = h.runBatch(due);
      r.packets.forEach((p) => {
        verdicts.push(p.verdict === "drop" ? p.reasonName : p.verdict);
        if (p.verdict === "pass" && p.leg === 0) out.push(p.bytes);
      });
      take(r.outputs);
    }
    if (due.length < 64) take(h.advanceTime(tickUs));
  }
  take(h.advanceTime(tailUs));
  return { out, copies, verdicts };
}

export const metric = (h: FilterHarness, name: string, ctx: number): number => (h.metric(name, ctx) as number | undefined) ?? 0;

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, k) => x === b[k]);
}

/** Stream index of sequence number `seq` in a stream from `seq0` (shorter than 32768). */
export const indexOf = (seq: number, seq0: number): number => (seq - seq0 + 0x10000) & 0xffff;
