// Test helpers for the fec filter: a media stream, the FEC header read back, a reference XOR for a
// group, a perfect iterative row/column decoder to compare against, and runners that push a
// stream through the filter in the harness the way the proxy would (media passes in place, FEC
// comes out of the output area after its batch).
import { FilterHarness, buildRtp, type HarnessOptions, type OutputPacket } from "../../../sdk/harness/index.js";
import { filterWasm } from "../../../test/lib/paths.js";
import { rng } from "../../../test/lib/random.js";

export { rng };
import { parseFecPacket, referenceFec as referenceOf, type FecHeader, type ReferenceFec } from "../../../test/lib/fec-wire.js";
import { groupMembers, recoverable } from "../../../test/lib/fec-recovery.js";

export const SSRC = 0x5eed0001;
export const COLUMN_LEG = 1;
export const ROW_LEG = 2;

export interface Shape {
  readonly columns: number;
  readonly rows: number;
}

export const loadFec = (options: HarnessOptions = {}): Promise<FilterHarness> =>
  FilterHarness.load(filterWasm("fec", true), { name: "fec", ...options });

export const seqOf = (b: Uint8Array): number => (b[2]! << 8) | b[3]!;

/** The matrix shapes the tests go through: 2-D at the standard's corners and middle, and 1-D. */
export const SHAPES: readonly (Shape & { rowFec: boolean })[] = [
  { columns: 4, rows: 4, rowFec: true },
  { columns: 5, rows: 10, rowFec: true },
  { columns: 10, rows: 10, rowFec: true },
  { columns: 20, rows: 5, rowFec: true },
  { columns: 1, rows: 4, rowFec: false },
  { columns: 10, rows: 5, rowFec: false },
];


/**
 * Media packet `i` of a stream starting at sequence number `seq0`: plain RTP (12-byte header, no
 * CSRC, extension or padding: 2022-1 protects the payload only), payload lengths varying from
 * 20 to 1219 bytes so that length recovery is exercised, a marker now and then, two payload types.
 */
export function mediaPacket(i: number, seq0 = 1000): Uint8Array {
  const size = 20 + ((i * 389) % 1200);
  const b = buildRtp({ seq: (seq0 + i) & 0xffff, timestamp: (90_000 + i * 3003) >>> 0, ssrc: SSRC, payloadType: i % 7 === 3 ? 97 : 96, marker: i % 5 === 4, payloadSize: size });
  const next = rng(i * 7919 + 17);
  for (let k = 12; k < b.length; k++) b[k] = Math.floor(next() * 256);
  return b;
}

export function mediaStream(count: number, seq0 = 1000): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => mediaPacket(i, seq0));
}

/** A FEC packet read back (plain 12-byte RTP header): test/lib/fec-wire.ts's reading, flattened, with its payload. */
export interface Fec extends Omit<FecHeader, "rtp" | "payloadLength"> {
  readonly seq: number;
  readonly timestamp: number;
  readonly ssrc: number;
  readonly payloadType: number;
  readonly marker: boolean;
  readonly payload: Uint8Array;
}

export function parseFec(b: Uint8Array): Fec {
  const h = parseFecPacket(b);
  if (!h) throw new RangeError(`not a FEC packet (${b.length} bytes)`);
  const { rtp, payloadLength: _, ...fields } = h;
  return { ...fields, seq: rtp.seq, timestamp: rtp.timestamp, ssrc: rtp.ssrc, payloadType: rtp.payloadType, marker: rtp.marker, payload: b.slice(12 + 16) };
}

/** What the FEC packet over `members` must carry (each a plain RTP packet). */
export const referenceFec = (group: readonly Uint8Array[]): ReferenceFec => referenceOf(group);

// ---- the perfect decoder ----

/** A FEC group by the stream index of its first packet. */
export interface Group {
  readonly row: boolean;
  readonly base: number;
}

export const members = (shape: Shape, g: Group): number[] => groupMembers(shape, { kind: g.row ? "row" : "column", base: g.base });

/**
 * What a perfect iterative row/column decoder cannot rebuild of `lost` (stream indexes) with the
 * groups whose FEC arrived (test/lib/fec-recovery.ts).
 */
export function unrecoverable(shape: Shape, lost: Iterable<number>, arrived: readonly Group[]): Set<number> {
  return new Set(recoverable(shape, lost, arrived.map((g) => ({ kind: g.row ? "row" : "column", base: g.base }))).unrecovered);
}

// ---- running a stream ----

/** One FEC packet the encoder sent, with the media index it came after and its group. */
export interface SentFec {
  readonly bytes: Uint8Array;
  readonly leg: number;
  /** The index of the last media packet of the batch it came out of. */
  readonly after: number;
  readonly group: Group;
}

/** Indexes a 16-bit sequence number as a stream index (the stream starts at seq0, shorter than 32768). */
export const indexOf = (seq: number, seq0: number): number => (seq - seq0 + 0x10000) & 0xffff;

/**
 * Pushes `media` through encoder context `ctx` in batches of `batch` and returns the FEC it sent.
 * Every media packet must pass in place, unchanged, on leg 0.
 */
export function encode(h: FilterHarness, ctx: number, media: readonly Uint8Array[], seq0: number, batch = 16, stepUs = 1000): SentFec[] {
  const sent: SentFec[] = [];
  for (let at = 0; at < media.length; at += batch) {
    const chunk = media.slice(at, at + batch);
    const r = h.runBatch(chunk.map((bytes, k) => ({ ctx, bytes, arrivalUs: h.nowUs + k })));
    r.packets.forEach((p, k) => {
      if (p.verdict !== "pass" || p.leg !== 0 || !equalBytes(p.bytes, chunk[k]!)) throw new Error(`media ${at + k} did not pass untouched`);
    });
    for (const o of r.outputs) {
      const f = parseFec(o.bytes);
      sent.push({ bytes: o.bytes, leg: o.leg, after: at + chunk.length - 1, group: { row: f.d === 1, base: indexOf(f.snBase, seq0) } });
    }
    h.advanceTime(stepUs * chunk.length);
  }
  return sent;
}

/** What a decoder context sent on, in wire order, and what it did with each input. */
export interface Decoded {
  /** Leg-0 packets out, in order: passed in place (batch order) then output packets. */
  readonly out: Uint8Array[];
  readonly verdicts: string[];
  /** The most packets one call put in the output area. */
  readonly largestCall: number;
}

export interface WireItem {
  readonly bytes: Uint8Array;
  readonly leg: number;
}

/** Runs `items` through decoder context `ctx`, `batch` at a time, `stepUs` apart; collects leg-0 output in order. */
export function decode(h: FilterHarness, ctx: number, items: readonly WireItem[], batch = 16, stepUs = 200): Decoded {
  const out: Uint8Array[] = [];
  const verdicts: string[] = [];
  let largestCall = 0;
  for (let at = 0; at < items.length; at += batch) {
    const chunk = items.slice(at, at + batch);
    const r = h.runBatch(chunk.map((it) => ({ ctx, bytes: it.bytes, leg: it.leg, arrivalUs: h.nowUs })));
    r.packets.forEach((p, k) => {
      verdicts.push(p.verdict === "drop" ? p.reasonName : p.verdict);
      if (p.verdict === "pass" && chunk[k]!.leg === 0) out.push(p.bytes);
    });
    out.push(...mediaOut(r.outputs));
    largestCall = Math.max(largestCall, r.outputs.length);
    out.push(...mediaOut(h.advanceTime(stepUs * chunk.length)));
  }
  return { out, verdicts, largestCall };
}

export const mediaOut = (outputs: readonly OutputPacket[]): Uint8Array[] => outputs.filter((o) => o.leg === 0).map((o) => o.bytes);

/** msm_context_drain, as the proxy calls it. */
export const drain = (h: FilterHarness, ctx: number): OutputPacket[] => h.drainContext(ctx);

/** The wire: media (leg 0) and FEC interleaved as the encoder sent them, less what `lose` drops. */
export function wire(media: readonly Uint8Array[], fec: readonly SentFec[], lose: (item: { media?: number; fec?: SentFec }) => boolean): WireItem[] {
  const items: WireItem[] = [];
  let f = 0;
  for (let i = 0; i < media.length; i++) {
    if (!lose({ media: i })) items.push({ bytes: media[i]!, leg: 0 });
    while (f < fec.length && fec[f]!.after === i) {
      const s = fec[f++]!;
      if (!lose({ fec: s })) items.push({ bytes: s.bytes, leg: s.leg });
    }
  }
  return items;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, k) => x === b[k]);
}

export const metric = (h: FilterHarness, name: string, ctx: number): number => (h.metric(name, ctx) as number | undefined) ?? 0;
