// (a) In-process cost of a filter, in nanoseconds per packet, with no sockets.
//
// Method: a plain loop, timed with process.hrtime.bigint(), after a warm-up, median of repeats.
// Not the `benchmark` package, because:
//  - what we want is the *difference* between a filter and its baselines, so every variant must
//    be sampled under the same conditions: here the variants are sampled round-robin, one sample
//    each per round, so that CPU frequency, noisy neighbours and GC drift hit them all alike;
//    benchmark.js runs one test to completion before the next and sizes each test's samples on
//    its own;
//  - it reports a mean with a margin of error; a median of repeats is steadier on a shared VM;
//  - it compiles test bodies with `Function()`, so the hot loop is not the code we ship.
//
// The loop is what the proxy's chain runner does per batch (runtime/chain/chain-runner.ts):
// copy each packet into its arena slot and fill its descriptor (FilterInstance.putBatchPacket),
// freeze the clock, one msm_on_batch call, read each verdict. It drives the FilterInstance that
// the SDK harness exposes rather than FilterHarness.runBatch, which copies every packet back
// out and allocates a result object per packet (right for tests, wrong for timing).
//
// Variants, all in the same loop:
//   copy      the copy and descriptor writes, no call into the module (the host's floor);
//   noop      bench/assembly/noop.ts: the SDK's default batch loop with an empty onPacket;
//   counter   test/fixtures/filters/build/counter.wasm: a counter and a metric_add host call per packet;
//   <filter>  the filter under test (validate by default).
// The filter's own cost is <filter> - noop; what the stage costs the host per packet is
// <filter> - copy.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import v8 from "node:v8";
import { FilterHarness } from "../sdk/harness/index.js";
import type { FilterInstance } from "../runtime/index.js";
import { COUNTER_FILTER, ROOT, machineBusyUs, median, progress, round, timedStream } from "./common.js";

export interface MicroOptions {
  readonly filterPath: string;
  readonly filterName: string;
  readonly sizes: readonly number[];
  readonly batches: readonly number[];
  /** Packets per timed sample. */
  readonly packetsPerSample: number;
  /** Timed samples per variant and cell (the median is reported). */
  readonly repeats: number;
}

export interface MicroVariantResult {
  readonly variant: string;
  /** Median ns per packet, and the min / max of the samples. */
  readonly nsPerPacket: number;
  readonly minNs: number;
  readonly maxNs: number;
  /** Heap bytes allocated per packet in one extra sample (V8 heap, not WebAssembly memory). */
  readonly heapBytesPerPacket: number;
  /** Packets the module passed in the timed samples / packets it saw (1 for copy). */
  readonly passRatio: number;
}

export interface MicroCell {
  readonly size: number;
  readonly batch: number;
  readonly variants: MicroVariantResult[];
  /** <filter> - noop, <filter> - copy, <filter> / copy: from the medians. */
  readonly filterMinusNoop: number;
  readonly filterMinusCopy: number;
  readonly filterOverCopy: number;
}

export interface MicroResult {
  readonly method: string;
  readonly filter: string;
  readonly packetsPerSample: number;
  readonly repeats: number;
  readonly cells: MicroCell[];
  /** What the rest of the machine used meanwhile, % of one core (/proc/stat); > 15 is a noisy run. */
  readonly otherCpuPct: number | null;
}

/** The SDK's build flags (kept in step with scripts/build-filters.mjs). */
const SDK_FLAGS = [
  "--runtime", "stub", "--importMemory", "--initialMemory", "4", "--maximumMemory", "256",
  "--exportStart", "_initialize", "--optimizeLevel", "3", "--shrinkLevel", "0", "--enable", "simd",
];

/** Compiles bench/assembly/noop.ts in memory (nothing is written to the repository). */
async function compileNoop(): Promise<Uint8Array> {
  const { default: asc } = await import("assemblyscript/asc");
  let binary: Uint8Array | undefined;
  const entry = join(ROOT, "bench", "assembly", "noop.ts");
  const result = await asc.main([entry, "--outFile", "noop.wasm", ...SDK_FLAGS], {
    writeFile: (name: string, contents: Uint8Array | string) => {
      if (name.endsWith(".wasm") && typeof contents !== "string") binary = contents;
    },
  });
  if (result.error || !binary) throw new Error(`cannot compile ${entry}: ${result.error?.message ?? "no output"}\n${result.stderr.toString()}`);
  return binary;
}

/** A valid RTP packet of `size` bytes: V=2, PT 96, SSRC 0x4d534d42; the sequence is stamped per send. */
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

interface Variant {
  readonly name: string;
  readonly inst: FilterInstance;
  readonly ctx: number;
  readonly call: boolean;
  seq: number;
  arrivalUs: number;
  passed: number;
  seen: number;
}

/** One timed run of `packets` packets through a variant; returns ns per packet. */
function runLoop(v: Variant, packet: Uint8Array, batch: number, packets: number): number {
  const r = timedStream(v.inst, v.ctx, packet, batch, packets, v, v.call);
  v.passed += r.passed;
  v.seen += r.fed;
  return r.ns;
}

/** V8 heap bytes allocated per packet over one run (GCs in between are added back). */
function heapBytesPerPacket(v: Variant, packet: Uint8Array, batch: number, packets: number): number {
  const profiler = new v8.GCProfiler();
  profiler.start();
  const before = v8.getHeapStatistics().used_heap_size;
  runLoop(v, packet, batch, packets);
  const after = v8.getHeapStatistics().used_heap_size;
  const gcs = profiler.stop().statistics;
  let freed = 0;
  for (const g of gcs) freed += g.beforeGC.heapStatistics.usedHeapSize - g.afterGC.heapStatistics.usedHeapSize;
  return Math.max(0, after - before + freed) / (Math.ceil(packets / batch) * batch);
}

export async function runMicro(opts: MicroOptions): Promise<MicroResult> {
  progress(`micro: compiling the no-op baseline filter`);
  const noopBytes = await compileNoop();
  const load = async (wasm: string | Uint8Array, name: string): Promise<{ inst: FilterInstance; ctx: number }> => {
    const h = await FilterHarness.load(typeof wasm === "string" ? new Uint8Array(await readFile(wasm)) : wasm, { name });
    return { inst: h.instance, ctx: h.createContext({}) };
  };
  const noop = await load(noopBytes, "noop");
  const counter = await load(COUNTER_FILTER, "counter");
  const target = await load(opts.filterPath, opts.filterName);
  const batchCapacity = Math.min(noop.inst.arena.batchCapacity, counter.inst.arena.batchCapacity, target.inst.arena.batchCapacity);
  const fresh = (name: string, x: { inst: FilterInstance; ctx: number }, call: boolean): Variant =>
    ({ name, inst: x.inst, ctx: x.ctx, call, seq: 1000, arrivalUs: 1_000_000, passed: 0, seen: 0 });

  const cells: MicroCell[] = [];
  const busy0 = machineBusyUs();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const size of opts.sizes) {
    const packet = rtpPacket(size);
    for (const batch of opts.batches) {
      if (batch > batchCapacity) {
        progress(`micro: skipping batch ${batch} (a filter's batch capacity is ${batchCapacity})`);
        continue;
      }
      // Each variant keeps its own sequence numbers; the noop instance's arena serves 'copy' too.
      const variants = [fresh("copy", noop, false), fresh("noop", noop, true), fresh("counter", counter, true), fresh(opts.filterName, target, true)];
      // Warm-up: enough packets for V8 to optimize the loop and for Liftoff code to tier up.
      for (let w = 0; w < 3; w++) for (const v of variants) runLoop(v, packet, batch, Math.max(20_000, opts.packetsPerSample / 2));
      for (const v of variants) { v.passed = 0; v.seen = 0; }
      const samples = new Map<string, number[]>(variants.map((v) => [v.name, []]));
      for (let r = 0; r < opts.repeats; r++) {
        for (let i = 0; i < variants.length; i++) {
          const v = variants[(i + r) % variants.length]!; // rotate who goes first each round
          samples.get(v.name)!.push(runLoop(v, packet, batch, opts.packetsPerSample));
        }
      }
      const results = variants.map((v): MicroVariantResult => {
        const s = samples.get(v.name)!;
        const passRatio = v.seen === 0 ? 0 : v.passed / v.seen;
        return {
          variant: v.name,
          nsPerPacket: round(median(s), 1),
          minNs: round(Math.min(...s), 1),
          maxNs: round(Math.max(...s), 1),
          heapBytesPerPacket: round(heapBytesPerPacket(v, packet, batch, 20_000), 2),
          passRatio: round(passRatio, 4),
        };
      });
      const ns = (name: string): number => results.find((x) => x.variant === name)!.nsPerPacket;
      const cell: MicroCell = {
        size,
        batch,
        variants: results,
        filterMinusNoop: round(ns(opts.filterName) - ns("noop"), 1),
        filterMinusCopy: round(ns(opts.filterName) - ns("copy"), 1),
        filterOverCopy: round(ns(opts.filterName) / ns("copy"), 2),
      };
      cells.push(cell);
      progress(`micro: ${size} B x${batch}: ${results.map((x) => `${x.variant} ${x.nsPerPacket} ns`).join(", ")}`);
      const tested = results.find((x) => x.variant === opts.filterName)!;
      if (tested.passRatio < 0.999) progress(`micro: warning: ${opts.filterName} passed only ${(tested.passRatio * 100).toFixed(2)}% of packets`);
    }
  }
  const busy1 = machineBusyUs();
  const own = process.cpuUsage(cpu0);
  const otherCpuPct = busy0 === null || busy1 === null ? null
    : round(Math.max(0, (busy1 - busy0 - own.user - own.system) / 1000 / (performance.now() - t0)) * 100, 0);
  return {
    method: "plain loop; warm-up, then variants sampled round-robin; median of repeats (see bench/micro.ts)",
    filter: opts.filterName,
    packetsPerSample: opts.packetsPerSample,
    repeats: opts.repeats,
    cells,
    otherCpuPct,
  };
}
