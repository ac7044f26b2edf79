// (a) In-process cost of every filter and of common chains, in nanoseconds per packet, with no
// sockets, through the runtime's own chain code: a FilterPool holds the instances and a
// ChainRunner runs each chain exactly as a data-plane worker does (copy into each stage's arena,
// one msm_on_batch call per stage, verdicts read back, survivors handed to the next stage, the
// stage's statistics kept). Only the socket read and the egress send are missing.
//
// Chains (SRTP suite AES_CM_128_HMAC_SHA1_80):
//   noop                        bench/assembly/noop.ts, the SDK's batch loop with an empty onPacket:
//                               what a stage costs the host (copy in, call, read back);
//   <filter>                    the filter under test (validate by default);
//   srtp protect
//   srtp unprotect              measured behind a protect stage, minus the protect chain: an SRTP
//                               packet is accepted once (replay protection), so a fresh stream
//                               has to be made as the run goes;
//   <filter> -> srtp protect    a camera's stream checked, then protected toward the network;
//   srtp unprotect -> <filter>  SRTP from outside, decrypted, then checked (also behind protect).
//
// Method: a plain loop timed with process.hrtime.bigint(), after a warm-up; the chains are
// sampled round-robin, one sample each per round, so that CPU frequency, noisy neighbours and GC
// drift hit them all alike; each sample is sized to take about the same time; the median of the
// samples is reported. Not the `benchmark` package: it runs one test to completion before the
// next, reports a mean with a margin of error (a median is steadier on a shared VM), and compiles
// test bodies with `Function()`, so its hot loop is not the code we ship.
import { randomBytes } from "node:crypto";
import v8 from "node:v8";
import { ChainBench, compileNoop, packetRow, stampSequence, type ChainStage, type PacketRow } from "./chain-bench.js";
import { machineBusyUs, median, progress, round } from "./common.js";
import { SRTP_FILTER } from "./srtp.js";


export interface MicroOptions {
  readonly filterPath: string;
  readonly filterName: string;
  readonly sizes: readonly number[];
  readonly batches: readonly number[];
  /** Target duration of one timed sample, milliseconds (the packet count follows from it). */
  readonly sampleMs: number;
  /** Timed samples per chain and cell (the median is reported). */
  readonly repeats: number;
  readonly onCell?: (done: number, total: number) => void;
}

export interface MicroChainResult {
  readonly chain: string;
  /** Median ns per packet, and the min / max of the samples (for a derived chain, each minus the median of the chain subtracted). */
  readonly nsPerPacket: number;
  readonly minNs: number;
  readonly maxNs: number;
  /** ns per packet over the noop chain: what the filters add to a stage's host cost (null for derived figures). */
  readonly overNoopNs: number | null;
  /** V8 heap bytes allocated per packet over one extra sample (not WebAssembly memory). */
  readonly heapBytesPerPacket: number;
  /** Packets out of the chain / packets in, over the timed samples. */
  readonly passRatio: number;
  /** Measured behind a protect stage, whose chain's time was subtracted. */
  readonly derived: boolean;
}

export interface MicroCell {
  readonly size: number;
  readonly batch: number;
  readonly chains: MicroChainResult[];
}

export interface MicroResult {
  readonly method: string;
  readonly filter: string;
  readonly srtpSuite: string;
  readonly sampleMs: number;
  readonly repeats: number;
  readonly chainNames: string[];
  readonly cells: MicroCell[];
  /** What the rest of the machine used meanwhile, % of one core (/proc/stat); > 15 is a noisy run. */
  readonly otherCpuPct: number | null;
}

/** A valid RTP packet of `size` bytes: V=2, PT 96, SSRC 0x4d534d42; the sequence is stamped per batch. */
export function rtpPacket(size: number): Uint8Array {
  const p = new Uint8Array(size);
  p[0] = 0x80;
  p[1] = 96;
  const v = new DataView(p.buffer);
  v.setUint32(4, 0x1234, false);
  v.setUint32(8, 0x4d534d42, false);
  for (let i = 12; i < size; i++) p[i] = i & 0xff;
  return p;
}

type StageKind = "noop" | "filter" | "protect" | "unprotect";

interface ChainSpec {
  readonly name: string;
  readonly stages: readonly StageKind[];
  /** The chain whose time is subtracted (unprotect runs behind protect). */
  readonly minus?: string;
}

function chainSpecs(filter: string): ChainSpec[] {
  return [
    { name: "noop", stages: ["noop"] },
    { name: filter, stages: ["filter"] },
    { name: "srtp protect", stages: ["protect"] },
    { name: "srtp unprotect", stages: ["protect", "unprotect"], minus: "srtp protect" },
    { name: `${filter} -> srtp protect`, stages: ["filter", "protect"] },
    { name: `srtp unprotect -> ${filter}`, stages: ["protect", "unprotect", "filter"], minus: "srtp protect" },
  ];
}

/** One chain under test: its stages, its own stream of sequence numbers. */
class BenchChain {
  seq = 1000;
  out = 0;
  fed = 0;

  constructor(readonly spec: ChainSpec, readonly stages: ChainStage[], private readonly bench: ChainBench) {}

  /** Runs `packets` packets (whole batches) from a packet row through the chain; returns ns per packet. */
  run(row: PacketRow, batch: number, packets: number): number {
    const bench = this.bench;
    const iterations = Math.max(1, Math.ceil(packets / batch));
    const out0 = bench.out;
    const t0 = process.hrtime.bigint();
    for (let it = 0; it < iterations; it++) {
      this.seq = stampSequence(row, batch, this.seq);
      bench.runBatch(this.stages, row.input, batch);
    }
    const ns = Number(process.hrtime.bigint() - t0) / (iterations * batch);
    this.fed += iterations * batch;
    this.out += bench.out - out0;
    return ns;
  }
}

export async function runMicro(opts: MicroOptions): Promise<MicroResult> {
  progress("micro: compiling the no-op baseline filter");
  const noopBytes = await compileNoop();
  const bench = new ChainBench();
  const master = randomBytes(30).toString("base64");
  const srtpConfig = (direction: string): unknown => ({ direction, suite: "AES_CM_128_HMAC_SHA1_80", key: `inline:${master}` });
  const slots = {
    noop: await bench.acquire({ name: "noop", bytes: noopBytes }),
    filter: await bench.acquire({ name: opts.filterName, path: opts.filterPath }),
    srtp: await bench.acquire({ name: "srtp", path: SRTP_FILTER }, srtpConfig("protect")),
  };
  const attach = (kind: StageKind): ChainStage => {
    switch (kind) {
      case "noop": return bench.attach(slots.noop, {});
      case "filter": return bench.attach(slots.filter, {});
      case "protect": return bench.attach(slots.srtp, srtpConfig("protect"));
      case "unprotect": return bench.attach(slots.srtp, srtpConfig("unprotect"));
    }
  };
  const specs = chainSpecs(opts.filterName);
  const batchCapacity = Math.min(...Object.values(slots).map((s) => s.instance!.arena.batchCapacity));
  const batches = opts.batches.filter((b) => b <= batchCapacity);
  if (batches.length < opts.batches.length) progress(`micro: skipping batches above ${batchCapacity} (a filter's batch capacity)`);
  const maxBatch = Math.max(...batches);

  // every chain's stages are attached once: a context sees one stream throughout, whatever the size
  const chains = specs.map((spec) => new BenchChain(spec, spec.stages.map(attach), bench));
  const cells: MicroCell[] = [];
  const total = opts.sizes.length * batches.length;
  const busy0 = machineBusyUs();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const size of opts.sizes) {
    const row = packetRow(rtpPacket(size), maxBatch);
    const run = (c: BenchChain, batch: number, packets: number): number => c.run(row, batch, packets);
    // a long first warm-up, so that V8 optimizes the loop and the modules' code tiers up
    if (size === opts.sizes[0]) for (const c of chains) run(c, 32, opts.sampleMs >= 10 ? 100_000 : 30_000);
    for (const batch of batches) {
      // size each chain's samples from a short calibration run, then warm up for two samples' worth
      const perSample = new Map<BenchChain, number>();
      for (const c of chains) {
        const ns = run(c, batch, Math.max(1000, batch * 50));
        const n = Math.min(500_000, Math.max(batch * 20, Math.round((opts.sampleMs * 1e6) / ns)));
        run(c, batch, 2 * n);
        perSample.set(c, n);
        c.out = 0;
        c.fed = 0;
      }
      const samples = new Map<BenchChain, number[]>(chains.map((c) => [c, []]));
      for (let r = 0; r < opts.repeats; r++) {
        for (let i = 0; i < chains.length; i++) {
          const c = chains[(i + r) % chains.length]!; // rotate who goes first each round
          samples.get(c)!.push(run(c, batch, perSample.get(c)!));
        }
      }
      const medianNs = new Map(chains.map((c) => [c.spec.name, median(samples.get(c)!)]));
      const results = chains.map((c): MicroChainResult => {
        const s = samples.get(c)!;
        const minus = c.spec.minus ? medianNs.get(c.spec.minus)! : 0;
        const passRatio = c.fed === 0 ? 0 : c.out / c.fed;
        const n = perSample.get(c)!;
        const heap = heapBytesPerPacket(() => run(c, batch, n), Math.ceil(n / batch) * batch);
        const ns = median(s) - minus;
        return {
          chain: c.spec.name,
          nsPerPacket: round(ns, 1),
          minNs: round(Math.min(...s) - minus, 1),
          maxNs: round(Math.max(...s) - minus, 1),
          overNoopNs: c.spec.name === "noop" || c.spec.minus ? null : round(ns - medianNs.get("noop")!, 1),
          heapBytesPerPacket: round(heap, 2),
          passRatio: round(passRatio, 4),
          derived: c.spec.minus !== undefined,
        };
      });
      cells.push({ size, batch, chains: results });
      progress(`micro: ${size} B x${batch}: ${results.map((x) => `${x.chain} ${x.nsPerPacket} ns ${x.heapBytesPerPacket} B`).join(", ")}`);
      for (const x of results) if (x.passRatio < 0.999) progress(`micro: warning: chain '${x.chain}' passed only ${(x.passRatio * 100).toFixed(2)}% of packets`);
      opts.onCell?.(cells.length, total);
    }
  }
  for (const c of chains) for (const st of c.stages) bench.detach(st);
  bench.close();
  const busy1 = machineBusyUs();
  const own = process.cpuUsage(cpu0);
  const otherCpuPct = busy0 === null || busy1 === null ? null
    : round(Math.max(0, (busy1 - busy0 - own.user - own.system) / 1000 / (performance.now() - t0)) * 100, 0);
  return {
    method: "the runtime's ChainRunner and FilterPool in process; warm-up, then chains sampled round-robin; median of repeats (see bench/micro.ts)",
    filter: opts.filterName,
    srtpSuite: "AES_CM_128_HMAC_SHA1_80",
    sampleMs: opts.sampleMs,
    repeats: opts.repeats,
    chainNames: specs.map((s) => s.name),
    cells,
    otherCpuPct,
  };
}

/** V8 heap bytes allocated per packet over one run (GCs in between are added back). */
export function heapBytesPerPacket(run: () => void, packets: number): number {
  const profiler = new v8.GCProfiler();
  profiler.start();
  const before = v8.getHeapStatistics().used_heap_size;
  run();
  const after = v8.getHeapStatistics().used_heap_size;
  const gcs = profiler.stop().statistics;
  let freed = 0;
  for (const g of gcs) freed += g.beforeGC.heapStatistics.usedHeapSize - g.afterGC.heapStatistics.usedHeapSize;
  return Math.max(0, after - before + freed) / packets;
}
