// (g) Workers: does the proxy's throughput grow with its workers? The same chain (the filter
// under test) in one proxy with 1, 2 (and up to 4 where the machine has the cores) workers, over
// the same segments, each pinned to a worker (segment i on worker i mod W, the config's
// segments[].worker). The generator spreads its packets evenly over the segments' listen ports,
// one stream per segment (bench/loadgen.ts), and the search is the end-to-end part's
// (bench/e2e.ts): the highest aggregate rate with loss < 0.1%, per worker count, interleaved over
// the repeats, after the harness's own ceiling (generator -> sink).
//
// On a machine with few cores the generator and the sink compete with the workers for CPU: the
// report says how many cores there were and how busy the harness was near each maximum.
import { availableParallelism } from "node:os";
import { median, progress, round } from "./common.js";
import {
  harnessWarnings, noisyWarning, relayUpperBound, summarizeRepeats, tryMeasureRelay, withHarness,
  type HostSummary, type SearchOptions, type SearchResult, type Trial,
} from "./e2e.js";
import { startProxyProcess, type ProxyProcess } from "./hosts/proxy-process.js";
import { freeUdpPort } from "./hosts/spawn.js";

export interface WorkersOptions extends SearchOptions {
  readonly filterPath: string;
  readonly filterName: string;
  /** Worker counts to measure, the first being the baseline of the ratios (1). */
  readonly workerCounts: readonly number[];
  /** Segments of every proxy (the same for every worker count); at least 2 per worker of the largest count. */
  readonly segments: number;
}

export interface WorkersRow extends Pick<HostSummary, "maxPps" | "minPps" | "maxOfRepeatsPps" | "cpuUsPerPacket" | "peakRssBytes" | "boundLimited"> {
  readonly workers: number;
  readonly label: string;
  readonly perWorkerPps: number;
  /** maxPps / the first worker count's maxPps. */
  readonly vsFirst: number | null;
  /** Near the max (median over repeats): the proxy's CPU, and the generator's and the sink's, % of one core. */
  readonly proxyCpuPct: number | null;
  readonly generatorCpuPct: number | null;
  readonly sinkCpuPct: number | null;
  /** Near the max (median over repeats): the busiest worker's share of the packets the segments took in, % (null: one worker). */
  readonly busiestWorkerPct: number | null;
  readonly repeats: SearchResult[];
}

export interface WorkersResult {
  readonly method: string;
  readonly size: number;
  readonly trialMs: number;
  readonly repeats: number;
  readonly maxLossPct: number;
  readonly chain: string;
  readonly segments: number;
  readonly cores: number;
  /** The harness's own max (generator -> sink), median over repeats. */
  readonly ceilingPps: number | null;
  readonly rows: WorkersRow[];
  readonly warnings: string[];
}

/** Worker counts for a machine: 1 and 2, and the core count up to 4 where there are more. */
export function workerCountsFor(cores: number): number[] {
  return [...new Set([1, 2, Math.max(2, Math.min(4, cores))])];
}

/** A proxy of `workers` workers with `segments` segments on free ports, segment i pinned to worker i mod workers. */
async function startWorkersProxy(sinkPort: number, workers: number, segments: number, opts: WorkersOptions): Promise<ProxyProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      const ports = await Promise.all(Array.from({ length: segments }, () => freeUdpPort()));
      if (new Set(ports).size !== ports.length) throw new Error("EADDRINUSE: the kernel offered one free port twice");
      return await startProxyProcess({
        runtime: "node",
        workers,
        ...(opts.batchSize !== undefined && { batchSize: opts.batchSize }),
        segments: ports.map((listenPort, i) => ({ name: `w${i}`, listenPort, destinationPort: sinkPort, worker: i % workers })),
        chain: [{ name: opts.filterName, path: opts.filterPath }],
      });
    } catch (err) {
      // a free port taken in between: other ports; anything else is a real failure
      if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

/** The busiest worker's share of the packets in, %; undefined without per-worker counts. */
function busiestShare(byWorker: readonly number[] | undefined): number | undefined {
  const total = byWorker?.reduce((a, b) => a + b, 0) ?? 0;
  return byWorker && total > 0 ? (Math.max(...byWorker) / total) * 100 : undefined;
}

function medianOrNull(xs: readonly (number | null | undefined)[], digits: number): number | null {
  const v = xs.filter((x): x is number => typeof x === "number" && Number.isFinite(x));
  return v.length === 0 ? null : round(median(v), digits);
}

export function workersLabel(workers: number, segments: number, filterName: string): string {
  return `msm proxy + ${filterName}, ${workers} worker${workers === 1 ? "" : "s"}, ${segments} segments (Node)`;
}

export async function runWorkers(opts: WorkersOptions): Promise<WorkersResult> {
  const largest = Math.max(...opts.workerCounts);
  if (opts.workerCounts.length === 0 || opts.workerCounts.some((w) => !Number.isInteger(w) || w < 1)) throw new TypeError(`workers: bad worker counts ${opts.workerCounts.join(",")}`);
  if (opts.segments < 2 * largest) throw new TypeError(`workers: ${opts.segments} segments, fewer than 2 per worker at ${largest} workers`);
  const warnings: string[] = [];
  const cores = availableParallelism();
  const { ceilings, runs } = await withHarness(opts.pin, warnings, async (h) => {
    const ceilings: SearchResult[] = [];
    const runs = new Map<number, SearchResult[]>(opts.workerCounts.map((w) => [w, []]));
    for (let r = 0; r < opts.repeats; r++) {
      progress(`workers: repeat ${r + 1}/${opts.repeats}`);
      const direct = await tryMeasureRelay(h, { label: "generator -> sink (harness ceiling)", start: async () => null }, opts.maxPps, opts.maxPps, opts, warnings, "workers");
      if (direct) ceilings.push(direct);
      const ceiling = direct?.maxPps ?? opts.maxPps;
      for (const w of opts.workerCounts) {
        const label = workersLabel(w, opts.segments, opts.filterName);
        const subject = { label, start: () => startWorkersProxy(h.sink.port, w, opts.segments, opts) };
        const s = await tryMeasureRelay(h, subject, relayUpperBound(ceiling, opts), ceiling, opts, warnings, "workers");
        if (s) runs.get(w)!.push(s);
      }
    }
    return { ceilings, runs };
  });
  const measured = opts.workerCounts.filter((w) => runs.get(w)!.length > 0);
  const base = measured[0] === opts.workerCounts[0] ? median(runs.get(measured[0]!)!.map((s) => s.maxPps)) : null;
  const rows = measured.map((w): WorkersRow => {
    const rs = runs.get(w)!;
    const summary = summarizeRepeats(rs);
    const near = rs.map((s) => s.atMax).filter((t): t is Trial => t !== undefined);
    return {
      workers: w,
      label: workersLabel(w, opts.segments, opts.filterName),
      ...summary,
      perWorkerPps: Math.round(summary.maxPps / w),
      vsFirst: base ? round(summary.maxPps / base, 2) : null,
      proxyCpuPct: medianOrNull(near.map((t) => t.relayCpuPct), 0),
      generatorCpuPct: medianOrNull(near.map((t) => t.generatorCpuPct), 0),
      sinkCpuPct: medianOrNull(near.map((t) => t.sinkCpuPct), 0),
      busiestWorkerPct: medianOrNull(near.map((t) => busiestShare(t.packetsInByWorker)), 0),
      repeats: rs,
    };
  });
  warnings.push(...harnessWarnings(rows), ...noisyWarning([...ceilings, ...rows.flatMap((r) => r.repeats)]));
  const busiest = Math.max(...opts.workerCounts);
  if (cores < busiest + 2) {
    warnings.push(`this machine has ${cores} cores: at ${busiest} workers the proxy's workers and main thread, the generator and the sink share them, so the figures per worker understate how the proxy scales on a machine with cores to spare`);
  }
  return {
    method:
      `One proxy process (msm proxy, Node) per worker count, with ${opts.segments} segments (listen 127.0.0.1, rtcpMux, one destination: the sink), ` +
      `segment i pinned to worker i mod W, chain [${opts.filterName}]. The forked generator sends ${opts.size}-byte RTP round robin over the segments' ports ` +
      `(one stream per segment: its own socket, SSRC and sequence numbers), so each segment gets 1/${opts.segments} of the offered rate. ` +
      `The search is the end-to-end part's: a trial of ${opts.trialMs} ms at a floor rate, then bisection for at most ${opts.steps} steps; a trial passes at loss < ${opts.maxLoss * 100}% ` +
      `with the generator at >= 98% of the rate. Max = the highest passing aggregate rate, median of ${opts.repeats}; per worker = max / W; ` +
      `CPU % = near the max, of one core (the proxy's process tree; the generator's and the sink's own).`,
    size: opts.size,
    trialMs: opts.trialMs,
    repeats: opts.repeats,
    maxLossPct: opts.maxLoss * 100,
    chain: opts.filterName,
    segments: opts.segments,
    cores,
    ceilingPps: ceilings.length > 0 ? median(ceilings.map((s) => s.maxPps)) : null,
    rows,
    warnings,
  };
}
