// (h) Streams, in process: what counting a packet in the per-stream (SSRC) stats costs, with no
// sockets, through the runtime's own classes (runtime/streams/): StreamTable.record alone, and
// SegmentStreams.ingress + egress, which is what a worker does per packet (RTP check, SSRC to slot,
// record, once on the way in and once on the way out). One stream, and many streams taken round
// robin, so that every packet touches another stream's columns (cache misses, as 10,000
// segments of 5 packets/s each do). Every variant runs the same loop, which stamps the next
// packet's header (sequence number, timestamp, SSRC); the empty loop does only that, and each
// variant's figure over it is what the counting adds.
//
// Method as bench/micro.ts: calibrate each variant's sample to about `sampleMs`, warm up, sample
// the variants round-robin (who goes first rotating), report the median. Also: roll() (which a
// worker runs once a second) and a segment's snapshot (each /stats) per stream, and the memory a
// stream takes: the table's typed-array columns per slot, and the V8 heap per segment that counts
// streams (its SegmentStreams and SSRC map).
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { SegmentStreams, INGRESS, PKT_AT_MS, PKT_BYTES, PKT_SEQ, PKT_TS, PKT_WINDOW_MS, StreamTable } from "../runtime/index.js";
import { machineBusyUs, median, progress, round } from "./common.js";
import { heapBytesPerPacket } from "./micro.js";

export interface StreamsMicroOptions {
  /** Streams of the many-stream variants (10,000). */
  readonly streams: number;
  readonly sampleMs: number;
  readonly repeats: number;
}

export interface StreamsMicroRow {
  readonly name: string;
  /** Median ns per packet, and the samples' range. */
  readonly nsPerPacket: number;
  readonly minNs: number;
  readonly maxNs: number;
  /** Over the empty loop (null for the empty loop itself). */
  readonly overLoopNs: number | null;
  /** V8 heap allocated per packet over one extra sample. */
  readonly heapBytesPerPacket: number;
}

export interface StreamsMicroResult {
  readonly streams: number;
  readonly sampleMs: number;
  readonly repeats: number;
  readonly rows: StreamsMicroRow[];
  /** roll() over `streams` streams (each worker, once a second), per stream, ns. */
  readonly rollNsPerStream: number;
  /** A segment's snapshot() of `streams` streams (each /stats), per stream, ns. */
  readonly snapshotNsPerStream: number;
  /** The table's typed-array columns, bytes per slot (a table holds slots up to the next doubling, at most streams.max). */
  readonly tableBytesPerSlot: number;
  /** V8 heap of one segment's stream bookkeeping (SegmentStreams, its SSRC map with one stream), bytes; null where gc() is not reachable. */
  readonly heapBytesPerSegment: number | null;
  /** What the rest of the machine used meanwhile, % of one core. */
  readonly otherCpuPct: number | null;
}

const SIZE = 1200;
const SSRC_BASE = 0x5ca10000;
/** 20 ms of a 90 kHz clock: each stream is a 50 packets/s camera or audio stream. */
const TS_STEP = 1800;
const STREAM_PERIOD_MS = 20;
const IDLE_MS = 30_000;
/** Segments made to weigh one segment's bookkeeping: enough that the heap's own noise is a few bytes each. */
const HEAP_SEGMENTS = 10_000;

const LOOP = 0;
const RECORD = 1;
const COUNT = 2;

/** One variant: its streams' sequence numbers and timestamps, and where it counts them. */
class Variant {
  readonly seq: Uint16Array;
  readonly ts: Uint32Array;
  readonly packet = new Uint8Array(SIZE);
  next = 0;
  atMs = 1_700_000_000_000;
  sink = 0;
  readonly msPerPacket: number;

  constructor(
    readonly name: string,
    readonly kind: number,
    readonly streams: number,
    /** RECORD: the table and each stream's slot. */
    readonly table: StreamTable | null,
    readonly slots: Int32Array | null,
    /** COUNT: one segment for all streams, or one per stream. */
    readonly segments: readonly SegmentStreams[],
  ) {
    this.seq = new Uint16Array(streams).map((_, i) => (i * 7919) & 0xffff);
    this.ts = new Uint32Array(streams).map((_, i) => Math.imul(i + 1, 2654435761) >>> 0);
    this.packet[0] = 0x80;
    this.packet[1] = 96;
    this.msPerPacket = STREAM_PERIOD_MS / streams;
  }
}

/** Advances stream i by one packet and stamps the variant's packet with its header. */
function stamp(v: Variant, i: number): void {
  const buf = v.packet;
  const seq = (v.seq[i]! + 1) & 0xffff;
  v.seq[i] = seq;
  const ts = (v.ts[i]! + TS_STEP) >>> 0;
  v.ts[i] = ts;
  const ssrc = (SSRC_BASE + i) >>> 0;
  buf[2] = seq >>> 8;
  buf[3] = seq & 0xff;
  buf[4] = ts >>> 24;
  buf[5] = (ts >>> 16) & 0xff;
  buf[6] = (ts >>> 8) & 0xff;
  buf[7] = ts & 0xff;
  buf[8] = ssrc >>> 24;
  buf[9] = (ssrc >>> 16) & 0xff;
  buf[10] = (ssrc >>> 8) & 0xff;
  buf[11] = ssrc & 0xff;
}

// One loop per kind, each a function of its own so that V8 optimizes each for its one call site.

function emptyLoop(v: Variant, packets: number): void {
  let i = v.next;
  let sink = v.sink;
  for (let k = 0; k < packets; k++) {
    stamp(v, i);
    sink += v.packet[3]!;
    if (++i === v.streams) i = 0;
  }
  v.next = i;
  v.sink = sink;
  v.atMs += packets * v.msPerPacket;
}

function recordLoop(v: Variant, packets: number): void {
  const table = v.table!;
  const slots = v.slots!;
  let i = v.next;
  let atMs = v.atMs;
  for (let k = 0; k < packets; k++) {
    stamp(v, i);
    atMs += v.msPerPacket;
    const p = table.packet;
    p[PKT_SEQ] = v.seq[i]!;
    p[PKT_TS] = v.ts[i]!;
    p[PKT_BYTES] = SIZE;
    p[PKT_AT_MS] = p[PKT_WINDOW_MS] = atMs;
    table.record(slots[i]!, INGRESS);
    if (++i === v.streams) i = 0;
  }
  v.next = i;
  v.atMs = atMs;
}

function countLoop(v: Variant, packets: number): void {
  const segs = v.segments;
  const one = segs.length === 1;
  let i = v.next;
  let atMs = v.atMs;
  for (let k = 0; k < packets; k++) {
    stamp(v, i);
    atMs += v.msPerPacket;
    const s = one ? segs[0]! : segs[i]!;
    s.time[0] = atMs;
    s.ingress(v.packet, 0, SIZE);
    s.egress(v.packet, 0, SIZE);
    if (++i === v.streams) i = 0;
  }
  v.next = i;
  v.atMs = atMs;
}

const LOOPS = [emptyLoop, recordLoop, countLoop];

/** Runs `packets` packets of the variant; ns per packet. */
function run(v: Variant, packets: number): number {
  const t0 = process.hrtime.bigint();
  LOOPS[v.kind]!(v, packets);
  return Number(process.hrtime.bigint() - t0) / packets;
}

function recordVariant(name: string, streams: number): Variant {
  const table = new StreamTable(streams, IDLE_MS);
  const owner = table.register({ forget: () => undefined });
  const slots = Int32Array.from({ length: streams }, (_, i) => table.alloc((SSRC_BASE + i) >>> 0, 96, 90_000 * 4, owner));
  return new Variant(name, RECORD, streams, table, slots, []);
}

/** Streams counted as a worker counts them: `segments` SegmentStreams over one table, the streams spread over them. */
function countVariant(name: string, streams: number, segments: number): Variant {
  const table = new StreamTable(streams, IDLE_MS);
  const segs = Array.from({ length: segments }, () => new SegmentStreams(table, undefined));
  return new Variant(name, COUNT, streams, table, null, segs);
}

/** gc() from V8's flag, or null (then heap figures are not taken). */
function exposedGc(): (() => void) | null {
  try {
    v8.setFlagsFromString("--expose-gc");
    return runInNewContext("gc") as () => void;
  } catch {
    return null;
  }
}

/** Bytes of a table's typed-array columns per slot, at a capacity of `slots`. */
export function tableBytesPerSlot(slots: number): number {
  const table = new StreamTable(slots, IDLE_MS);
  const owner = table.register({ forget: () => undefined });
  for (let i = 0; i < slots; i++) table.alloc(i, 96, 90_000 * 4, owner);
  let bytes = 0;
  for (const column of Object.values(table)) if (ArrayBuffer.isView(column)) bytes += column.byteLength;
  return bytes / slots;
}

/** Heap of one segment's stream bookkeeping with one stream: N segments made over a table already grown, after gc. */
function heapPerSegment(gc: (() => void) | null, segments: number): number | null {
  if (!gc) return null;
  const table = new StreamTable(segments, IDLE_MS);
  const owner = table.register({ forget: () => undefined });
  // grow the columns first: what follows allocates only the segments' own objects
  const grown = Array.from({ length: segments }, (_, i) => table.alloc(i, 96, 90_000 * 4, owner));
  for (const slot of grown) table.free(slot);
  const v = new Variant("heap", LOOP, 1, null, null, []);
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const segs = Array.from({ length: segments }, (_, i) => {
    const s = new SegmentStreams(table, undefined);
    v.packet[8] = i >>> 8;
    v.packet[9] = i & 0xff;
    s.time[0] = v.atMs;
    s.ingress(v.packet, 0, SIZE);
    return s;
  });
  gc();
  gc();
  const bytes = (process.memoryUsage().heapUsed - before) / segments;
  if (table.used !== segs.length) throw new Error(`streams micro: ${table.used} streams counted of ${segs.length}`);
  return bytes;
}

function timeEach(samples: number, work: () => void): number {
  const times: number[] = [];
  for (let k = 0; k < samples; k++) {
    const t0 = process.hrtime.bigint();
    work();
    times.push(Number(process.hrtime.bigint() - t0));
  }
  return median(times);
}

export function runStreamsMicro(opts: StreamsMicroOptions): StreamsMicroResult {
  const n = opts.streams;
  const many = n.toLocaleString("en-US");
  const variants = [
    new Variant(`empty loop (stamps the next packet's header, ${many} streams)`, LOOP, n, null, null, []),
    recordVariant("StreamTable.record, 1 stream", 1),
    recordVariant(`StreamTable.record, ${many} streams round robin`, n),
    countVariant("ingress + egress, 1 segment x 1 stream", 1, 1),
    countVariant(`ingress + egress, ${many} segments x 1 stream, round robin`, n, n),
    countVariant(`ingress + egress, 1 segment x ${many} SSRCs, round robin`, n, 1),
  ];
  const busy0 = machineBusyUs();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  // warm-up: every stream seen (its slot taken), V8 optimizes the loop
  for (const v of variants) run(v, Math.max(100_000, 3 * n));
  const perSample = new Map<Variant, number>();
  for (const v of variants) {
    const ns = run(v, Math.max(10_000, n));
    const packets = Math.min(5_000_000, Math.max(n, Math.round((opts.sampleMs * 1e6) / Math.max(ns, 0.1))));
    run(v, 2 * packets);
    perSample.set(v, packets);
  }
  const samples = new Map<Variant, number[]>(variants.map((v) => [v, []]));
  for (let r = 0; r < opts.repeats; r++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(k + r) % variants.length]!;
      samples.get(v)!.push(run(v, perSample.get(v)!));
    }
  }
  const loopNs = median(samples.get(variants[0]!)!);
  const rows = variants.map((v, k): StreamsMicroRow => {
    const s = samples.get(v)!;
    const packets = perSample.get(v)!;
    return {
      name: v.name,
      nsPerPacket: round(median(s), 1),
      minNs: round(Math.min(...s), 1),
      maxNs: round(Math.max(...s), 1),
      overLoopNs: k === 0 ? null : round(median(s) - loopNs, 1),
      heapBytesPerPacket: round(heapBytesPerPacket(() => run(v, packets), packets), 2),
    };
  });
  for (const v of variants) {
    const counted = v.table?.used ?? 0;
    if (v.kind !== LOOP && counted !== v.streams) throw new Error(`streams micro: ${v.name}: ${counted} streams counted of ${v.streams}`);
  }
  // the once-a-second roll and a /stats snapshot, over the many-SSRC segment's table
  const conference = variants[5]!;
  const rollNs = timeEach(9, () => conference.table!.roll(conference.atMs));
  const snapshotNs = timeEach(5, () => {
    if (conference.segments[0]!.snapshot().streams.length !== n) throw new Error("streams micro: a snapshot missed streams");
  });
  const gc = exposedGc();
  const busy1 = machineBusyUs();
  const own = process.cpuUsage(cpu0);
  const otherCpuPct = busy0 === null || busy1 === null ? null
    : round(Math.max(0, (busy1 - busy0 - own.user - own.system) / 1000 / (performance.now() - t0)) * 100, 0);
  const result: StreamsMicroResult = {
    streams: n,
    sampleMs: opts.sampleMs,
    repeats: opts.repeats,
    rows,
    rollNsPerStream: round(rollNs / n, 1),
    snapshotNsPerStream: round(snapshotNs / n, 0),
    tableBytesPerSlot: round(tableBytesPerSlot(1024), 0),
    heapBytesPerSegment: (() => {
      const b = heapPerSegment(gc, HEAP_SEGMENTS);
      return b === null ? null : round(b, 0);
    })(),
    otherCpuPct,
  };
  progress(`streams: in process: ${rows.map((r) => `${r.name} ${r.nsPerPacket} ns`).join("; ")}; roll ${result.rollNsPerStream} ns/stream, snapshot ${result.snapshotNsPerStream} ns/stream`);
  return result;
}
