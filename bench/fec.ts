// (e) FEC: what the fec filter's SMPTE 2022-1 encoder and decoder cost per media packet, at 200
// and 1200 bytes, for 2-D 5x5, 10x10 and 20x5 and 1-D 10x10, on one core, in the runtime's own
// chain code (bench/chain-bench.ts), against two references measured in the same run:
//
//   noop   the no-op filter as a one-stage chain: the host's share (copy in, call, read back);
//          "filter" columns are the stage's time less this;
//   js     the encoder's arithmetic written here in JavaScript over Uint32Array words (XOR each
//          packet into its row's and its column's accumulator), no host, no copies: what the
//          same work costs without WebAssembly SIMD.
//
// Decode is timed on the encoder's own output (media and repair, as they would arrive), once
// with nothing lost and once with one media packet in every row lost (2-D; 1-D: one in every
// column), so that the difference over the packets rebuilt is the cost of a recovery. Overhead
// is the repair's share of the bytes on the wire. Variants of one cell are sampled round-robin,
// the median reported.
import { PacketList } from "../runtime/index.js";
import { ChainBench, compileNoop, type ChainStage, type InstanceSlot } from "./chain-bench.js";
import { median, progress, round } from "./common.js";

export interface FecShape {
  readonly columns: number;
  readonly rows: number;
  readonly rowFec: boolean;
}

export interface FecOptions {
  readonly filterPath: string;
  readonly sizes: readonly number[];
  readonly shapes: readonly FecShape[];
  readonly batch: number;
  /** Media packets per timed sample, and samples per variant (median reported). */
  readonly packetsPerSample: number;
  readonly repeats: number;
}

export interface FecCell {
  readonly shape: string;
  readonly size: number;
  /** ns per media packet: the encode stage, the decode stage without and with loss, the noop stage, the JavaScript reference. */
  readonly encodeNs: number;
  readonly decodeNs: number;
  readonly decodeLossNs: number;
  readonly noopNs: number;
  readonly jsEncodeNs: number;
  /** The filter's own share of encoding (stage less noop). */
  readonly encodeFilterNs: number;
  /** ns per packet rebuilt: (decode with loss - decode without) x packets / rebuilt; null when the difference is lost in the noise (negative). */
  readonly recoveryNs: number | null;
  /** Repair bytes / media bytes on the wire (RTP headers included). */
  readonly overhead: number;
}

export interface FecTarget {
  readonly what: string;
  /** The worst 2-D encode at 1200 B, the filter's own share, ns per packet. */
  readonly worstNs: number;
  readonly met: boolean;
}

export interface FecResult {
  readonly method: string;
  readonly batch: number;
  readonly repeats: number;
  readonly packetsPerSample: number;
  readonly cells: FecCell[];
  readonly target: FecTarget;
}

export const shapeName = (s: FecShape): string => `${s.rowFec ? "2-D" : "1-D"} ${s.columns}x${s.rows}`;

/** Media packet i of a stream: `size` bytes, SSRC 0, consecutive sequence numbers from `seq0`. */
function mediaPacket(i: number, seq0: number, size: number): Buffer {
  const p = Buffer.alloc(size);
  p[0] = 0x80;
  p[1] = 33;
  p.writeUInt16BE((seq0 + i) & 0xffff, 2);
  p.writeUInt32BE((i * 3000) >>> 0, 4);
  for (let k = 12; k < size; k++) p[k] = (k * 31 + i * 7) & 0xff;
  return p;
}

interface Wire {
  readonly bytes: Buffer;
  readonly leg: number;
  /** Index of the media packet (-1 for repair). */
  readonly media: number;
}

/** Runs `count` media packets through an encode stage and returns everything it sent, in order, with legs. */
function encodeAll(bench: ChainBench, stage: ChainStage, media: readonly Buffer[], batch: number): Wire[] {
  const out: Wire[] = [];
  const input = new PacketList(batch);
  let next = 0;
  const keep = (list: PacketList): void => {
    for (let i = 0; i < list.count; i++) {
      const bytes = Buffer.from(list.memory[i]!.subarray(list.offset[i]!, list.offset[i]! + list.length[i]!));
      out.push({ bytes, leg: list.leg[i]!, media: list.leg[i] === 0 ? next++ : -1 });
    }
  };
  for (let i = 0; i < media.length; i += batch) {
    const n = Math.min(batch, media.length - i);
    input.clear();
    for (let k = 0; k < n; k++) input.push(media[i + k]!, 0, media[i + k]!.length, 0, 0, 5004, 0, 0);
    bench.runBatch([stage], input, n, keep);
  }
  return out;
}

/** Times `count` media packets (repeating `media` with fresh sequence numbers) through one stage; ns per packet. */
function timeEncode(bench: ChainBench, stage: ChainStage, pool: Buffer[], batch: number, count: number, seq: { v: number }): number {
  const input = new PacketList(batch);
  for (let k = 0; k < batch; k++) input.push(pool[k]!, 0, pool[k]!.length, 0, 0, 5004, 0, 0);
  const iterations = Math.ceil(count / batch);
  const t0 = process.hrtime.bigint();
  for (let it = 0; it < iterations; it++) {
    for (let k = 0; k < batch; k++) {
      const p = pool[k]!;
      p[2] = (seq.v >>> 8) & 0xff;
      p[3] = seq.v & 0xff;
      seq.v = (seq.v + 1) & 0xffff;
    }
    bench.runBatch([stage], input, batch);
  }
  return Number(process.hrtime.bigint() - t0) / (iterations * batch);
}

/**
 * Times a decode stage over `wire` (the encoder's output less `lost` media), a fresh context per
 * pass (a decoder expects the sequence to go on), until `count` media packets went in.
 */
function timeDecode(bench: ChainBench, slot: InstanceSlot, config: unknown, wire: readonly Wire[], mediaPerPass: number, batch: number, count: number): number {
  const input = new PacketList(batch);
  const passes = Math.max(1, Math.ceil(count / mediaPerPass));
  let packets = 0;
  const t0 = process.hrtime.bigint();
  for (let p = 0; p < passes; p++) {
    const stage = bench.attach(slot, config);
    for (let i = 0; i < wire.length; i += batch) {
      const n = Math.min(batch, wire.length - i);
      input.clear();
      for (let k = 0; k < n; k++) {
        const w = wire[i + k]!;
        input.push(w.bytes, 0, w.bytes.length, 0, 0, 5004, w.leg, 0);
      }
      bench.runBatch([stage], input, n);
    }
    bench.detach(stage);
    packets += mediaPerPass;
  }
  return Number(process.hrtime.bigint() - t0) / packets;
}

/** The encoder's XOR in JavaScript: each packet into its row's and its column's accumulator (Uint32 words). */
function jsEncodeNs(shape: FecShape, pool: readonly Buffer[], count: number): number {
  const words = Math.ceil(pool[0]!.length / 4);
  const row = new Uint32Array(words);
  const columns = Array.from({ length: shape.columns }, () => new Uint32Array(words));
  const views = pool.map((p) => new Uint32Array(p.buffer, p.byteOffset, Math.floor(p.length / 4)));
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const v = views[i % views.length]!;
    const c = columns[i % shape.columns]!;
    for (let w = 0; w < v.length; w++) {
      const x = v[w]!;
      c[w]! ^= x;
      if (shape.rowFec) row[w]! ^= x;
    }
    if (i % shape.columns === shape.columns - 1) {
      sink ^= row[0]!;
      row.fill(0);
    }
  }
  const ns = Number(process.hrtime.bigint() - t0) / count;
  if (sink === 0x1_0000_0000) progress("unreachable"); // keeps the work alive
  return ns;
}

export async function runFec(o: FecOptions): Promise<FecResult> {
  const bench = new ChainBench();
  // the bench's clock runs a microsecond per packet: lift the budget of created packets (repair, released packets)
  const limits = { generatedPerSecond: 10_000_000, timerFiresPerSecond: 1_000_000 };
  const fec = await bench.acquire({ name: "fec", path: o.filterPath, limits }, { mode: "encode", columns: 4, rows: 4 });
  const noop = await bench.acquire({ name: "noop", bytes: await compileNoop() });
  const cells: FecCell[] = [];
  try {
    for (const shape of o.shapes) {
      for (const size of o.sizes) {
        progress(`fec ${shapeName(shape)} ${size} B`);
        const config = { columns: shape.columns, rows: shape.rows, rowFec: shape.rowFec };
        const matrix = shape.columns * shape.rows;
        // the decoder's input: a few matrices encoded once, with and without loss
        const mediaCount = matrix * Math.max(4, Math.ceil(2000 / matrix));
        const media = Array.from({ length: mediaCount }, (_, i) => mediaPacket(i, 1000, size));
        const encoder = bench.attach(fec, { ...config, mode: "encode" });
        const wire = encodeAll(bench, encoder, media, o.batch);
        bench.detach(encoder);
        const mediaBytes = wire.filter((w) => w.leg === 0).reduce((n, w) => n + w.bytes.length, 0);
        const repairBytes = wire.filter((w) => w.leg !== 0).reduce((n, w) => n + w.bytes.length, 0);
        // one lost per row (2-D: the row rebuilds it) or per column (1-D), never in the last matrix
        const lostEvery = shape.rowFec ? shape.columns : matrix;
        const lost = (i: number): boolean => i < mediaCount - 2 * matrix && i % lostEvery === (Math.floor(i / lostEvery) % shape.columns);
        const lossy = wire.filter((w) => w.media < 0 || !lost(w.media));
        const rebuiltPerPass = wire.filter((w) => w.media >= 0 && lost(w.media)).length;
        const decodeConfig = { ...config, mode: "decode", maxDelayMs: 1000 };

        const pool = Array.from({ length: o.batch }, (_, i) => mediaPacket(i, 0, size));
        const seq = { v: 0 };
        const encStage = bench.attach(fec, { ...config, mode: "encode" });
        const noopStage = bench.attach(noop, {});
        const samples = { encode: [] as number[], noop: [] as number[], decode: [] as number[], decodeLoss: [] as number[], js: [] as number[] };
        for (let r = -1; r < o.repeats; r++) { // round -1 warms the JIT up and is thrown away
          if (r === 0) for (const xs of Object.values(samples)) xs.length = 0;
          samples.encode.push(timeEncode(bench, encStage, pool, o.batch, o.packetsPerSample, seq));
          samples.noop.push(timeEncode(bench, noopStage, pool, o.batch, o.packetsPerSample, seq));
          samples.decode.push(timeDecode(bench, fec, decodeConfig, wire, mediaCount, o.batch, o.packetsPerSample));
          samples.decodeLoss.push(timeDecode(bench, fec, decodeConfig, lossy, mediaCount, o.batch, o.packetsPerSample));
          samples.js.push(jsEncodeNs(shape, pool, o.packetsPerSample));
        }
        bench.detach(encStage);
        bench.detach(noopStage);
        const m = (xs: number[]): number => median(xs);
        const decodeNs = m(samples.decode);
        const decodeLossNs = m(samples.decodeLoss);
        cells.push({
          shape: shapeName(shape),
          size,
          encodeNs: round(m(samples.encode), 1),
          decodeNs: round(decodeNs, 1),
          decodeLossNs: round(decodeLossNs, 1),
          noopNs: round(m(samples.noop), 1),
          jsEncodeNs: round(m(samples.js), 1),
          encodeFilterNs: round(m(samples.encode) - m(samples.noop), 1),
          recoveryNs: rebuiltPerPass > 0 && decodeLossNs > decodeNs ? round(((decodeLossNs - decodeNs) * mediaCount) / rebuiltPerPass, 0) : null,
          overhead: round(repairBytes / mediaBytes, 4),
        });
      }
    }
  } finally {
    bench.close();
  }
  const twoD = cells.filter((c) => c.shape.startsWith("2-D") && c.size === 1200);
  const worstNs = twoD.length > 0 ? Math.max(...twoD.map((c) => c.encodeFilterNs)) : Number.NaN;
  return {
    method: "the fec filter as a one-stage chain in the runtime's chain runner; noop = the no-op filter the same way (the host's share); js = the encoder's XOR in JavaScript",
    batch: o.batch,
    repeats: o.repeats,
    packetsPerSample: o.packetsPerSample,
    cells,
    target: { what: "2-D encode at 1200 B under 150 ns per packet (the filter's share)", worstNs, met: worstNs < 150 },
  };
}
