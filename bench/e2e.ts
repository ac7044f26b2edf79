// (b) End to end on 127.0.0.1: for each relay, the highest offered rate it forwards with loss
// < 0.1%, then a sweep of fixed offered rates with the latency each packet saw.
//
// Processes: the generator and the sink are two forked processes (bench/loadgen.ts); every relay
// runs as processes of its own (bench/hosts/), so its CPU and memory are read from /proc for its
// process tree alone, whatever the runtime or language. This process only orchestrates.
//
// Relays, searched in this order in every repeat (bench/hosts/):
//   direct              generator -> sink, no relay: the harness's own ceiling and latency floor;
//   node-relay          bench/relay.ts under Node: the plainest node:dgram relay, the baseline;
//   bun-relay           the same file under Bun;
//   c-relay             bench/hosts/c-relay.c: recvmmsg/sendmmsg in C, the ceiling of any relay;
//   gstreamer           gst-launch-1.0 udpsrc ! udpsink;
//   rtpengine           rtpengine's user-space forwarding, one call set up through its ng protocol;
//   proxy               `msm proxy` with an empty chain (what the runtime costs without a filter);
//   proxy+filter        `msm proxy` with a one-stage chain of the filter under test, under Node;
//   proxy+filter@dgram  the same with the proxy's node:dgram socket I/O (`io: dgram`);
//   proxy+filter@bun    the same proxy and chain under Bun;
//   proxy+srtp          the filter under test, then srtp protect, under Node (the sink counts by
//                       sequence number: the stamp is encrypted; no latency).
//
// Search: a trial offers a rate for a bounded time (rate x duration packets), then waits a fixed
// drain. It passes when loss < 0.1% and the generator achieved >= 98% of the rate. One trial at
// a floor rate, then bisection between the highest pass and the lowest failure (initially the
// direct ceiling) for a bounded number of steps. Result: the highest passing rate, with the CPU
// per packet of that trial.
//
// Sweep: one trial at each of a fixed list of offered rates, the same for every relay: delivered
// rate, loss, latency percentiles and CPU per packet at equal rates (and so at equal batching).
// Latency is the sink's receive time minus the send time the generator wrote into the packet.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { basename } from "node:path";
import type { LatencySummary, LoadgenReply, LoadgenRequest } from "./loadgen.js";
import { NOISY_CPU_PCT, machineBusyUs, median, progress, round, sleep, udpDrops } from "./common.js";
import { LoadProcess } from "./load-process.js";
import { startCRelay } from "./hosts/c-relay.js";
import { startGstreamerRelay } from "./hosts/gstreamer.js";
import { startPlainRelay } from "./hosts/plain-relay.js";
import { processTree, treeCpuUs, treeMemory } from "./hosts/process-stats.js";
import { startProxyProcess, type ProxyIo, type ProxyProcess, type ProxyProcessOptions } from "./hosts/proxy-process.js";
import type { RelayProcess } from "./hosts/relay-process.js";
import { freeUdpPort, whyNotStarted } from "./hosts/spawn.js";
import { startRtpengineRelay } from "./hosts/rtpengine.js";
import { SRTP_FILTER } from "./srtp.js";

export type HostKind =
  | "direct" | "node-relay" | "bun-relay" | "c-relay" | "gstreamer" | "rtpengine"
  | "proxy" | "proxy+filter" | "proxy+filter@dgram" | "proxy+filter@bun" | "proxy+srtp";
export const HOST_KINDS: readonly HostKind[] = [
  "direct", "node-relay", "bun-relay", "c-relay", "gstreamer", "rtpengine", "proxy", "proxy+filter", "proxy+filter@dgram", "proxy+filter@bun", "proxy+srtp",
];
/** Names accepted by --hosts. */
export const HOST_NAMES: Readonly<Record<string, HostKind>> = {
  direct: "direct",
  plain: "node-relay",
  "node-relay": "node-relay",
  bun: "bun-relay",
  "bun-relay": "bun-relay",
  c: "c-relay",
  "c-relay": "c-relay",
  gstreamer: "gstreamer",
  rtpengine: "rtpengine",
  proxy: "proxy",
  filter: "proxy+filter",
  "filter@dgram": "proxy+filter@dgram",
  "filter@bun": "proxy+filter@bun",
  srtp: "proxy+srtp",
};

export function hostLabel(kind: HostKind, filter: string): string {
  switch (kind) {
    case "direct": return "generator -> sink (harness ceiling)";
    case "node-relay": return "node:dgram relay (Node)";
    case "bun-relay": return "node:dgram relay (Bun)";
    case "c-relay": return "C recvmmsg/sendmmsg relay (ceiling)";
    case "gstreamer": return "GStreamer udpsrc ! udpsink";
    case "rtpengine": return "rtpengine (user space)";
    case "proxy": return "msm proxy, empty chain (Node)";
    case "proxy+filter": return `msm proxy + ${filter} (Node)`;
    case "proxy+filter@dgram": return `msm proxy + ${filter} (Node, node:dgram I/O)`;
    case "proxy+filter@bun": return `msm proxy + ${filter} (Bun)`;
    case "proxy+srtp": return `msm proxy + ${filter} -> srtp protect (Node)`;
  }
}

/** What a search for a relay's max rate and its sweep need (the end-to-end and the workers parts). */
export interface SearchOptions {
  readonly size: number;
  readonly repeats: number;
  readonly trialMs: number;
  readonly drainMs: number;
  readonly steps: number;
  readonly floorPps: number;
  /** Upper bound of the direct (ceiling) search. */
  readonly maxPps: number;
  /** Loss threshold, as a fraction (0.001 = 0.1%). */
  readonly maxLoss: number;
  /** Offered rates of the sweep, the same for every relay (none: no sweep). */
  readonly sweepRates: readonly number[];
  /** Pin the relay to CPU 0 and the generator and sink to the other CPUs (taskset). */
  readonly pin: boolean;
  /** The proxy's batchSize (its default when absent). */
  readonly batchSize?: number;
  /** How often a failed trial on a noisy machine is run again (quick runs: 0). */
  readonly noisyRetries: number;
  /** Called after every trial, for the progress bar. */
  readonly onTrial?: (label: string, t: Trial) => void;
}

export interface E2eOptions extends SearchOptions {
  readonly filterPath: string;
  readonly filterName: string;
  /** The rates whose latency the tables and targets quote (10,000 and 50,000); the sweep includes them. */
  readonly latencyRates: readonly number[];
  /** The rate whose CPU per packet the tables quote for every relay. */
  readonly cpuRatePps: number;
  /** Which relays to measure (default all). */
  readonly hosts?: readonly HostKind[];
}

export interface Trial {
  readonly offeredPps: number;
  readonly achievedPps: number;
  /** Packets delivered per second of the generator's send window. */
  readonly deliveredPps: number;
  readonly sent: number;
  readonly received: number;
  /** UDP payload bytes of the packets received (a protect stage adds its tag to each). */
  readonly receivedBytes: number;
  readonly lossPct: number;
  readonly pass: boolean;
  /** The generator fell short of the rate: the trial says nothing about the relay. */
  readonly generatorShort: boolean;
  /** CPU of the relay's processes per packet delivered, microseconds; null for direct. */
  readonly relayCpuUsPerPacket: number | null;
  /** Each process's CPU use over the trial, % of one core. */
  readonly relayCpuPct: number | null;
  readonly generatorCpuPct: number;
  readonly sinkCpuPct: number;
  /**
   * The rest of the machine's busy CPU over the trial, % of one core (/proc/stat): softirq work
   * not charged to a process, and anything else running. High values mean a noisy trial.
   */
  readonly otherCpuPct: number | null;
  /** Datagrams the kernel dropped at the sink because its receive buffer was full (/proc/net/udp). */
  readonly sinkKernelDrops: number | null;
  /** One-way latency of the delivered packets, microseconds. */
  readonly latencyUs: LatencySummary | null;
  /** Proxy only: packets its segment dropped (counted by reason) during the trial. */
  readonly proxyDrops?: number;
  /** Proxy with several workers only: packets its segments took in during the trial, per worker. */
  readonly packetsInByWorker?: number[];
  /** Proxy with a filter only (runtime stats): time in the stage per packet and mean batch. */
  readonly stageNsPerPacket?: number;
  readonly stageMeanBatch?: number;
}

export interface SearchResult {
  readonly maxPps: number;
  /** The passing trial at maxPps (undefined when even the floor failed). */
  readonly atMax: Trial | undefined;
  /** maxPps is within 5% of the search's upper bound: the bound, not the relay, may limit it. */
  readonly boundLimited: boolean;
  readonly trials: Trial[];
  readonly sweep: Trial[];
  /** The relay's peak resident memory over the repeat (sum over its processes), bytes. */
  readonly peakRssBytes: number | null;
  /** A proxy: the socket I/O it said it uses when it started. */
  readonly io?: string;
}

export interface SweepPoint {
  readonly offeredPps: number;
  readonly deliveredPps: number;
  readonly lossPct: number;
  readonly latencyUs: LatencySummary | null;
  readonly cpuUsPerPacket: number | null;
  readonly generatorShort: boolean;
}

export interface HostSummary {
  readonly host: HostKind;
  readonly label: string;
  readonly maxPps: number;
  readonly minPps: number;
  readonly maxOfRepeatsPps: number;
  readonly cpuUsPerPacket: number | null;
  readonly peakRssBytes: number | null;
  readonly boundLimited: boolean;
  /** Per sweep rate, the median over repeats of each figure. */
  readonly sweep: SweepPoint[];
  readonly repeats: SearchResult[];
}

export interface Target {
  readonly what: string;
  readonly value: string;
  readonly met: boolean | null;
  /** What the report says instead of met / NOT MET / not measured, when that would mislead. */
  readonly verdict?: string;
}

export interface E2eResult {
  readonly size: number;
  readonly trialMs: number;
  readonly repeats: number;
  readonly maxLossPct: number;
  readonly sweepRates: readonly number[];
  readonly latencyRates: readonly number[];
  readonly cpuRatePps: number;
  readonly pinned: boolean;
  /** The proxy's batchSize when the run set one (--batch-size), else null: the proxy's default. */
  readonly batchSize: number | null;
  /** The relays the run was asked to measure (absent in older results: those in hosts). */
  readonly requested?: readonly HostKind[];
  readonly hosts: HostSummary[];
  readonly warnings: string[];
}

// ---- the generator and sink processes ----

type Load = LoadProcess<LoadgenRequest, LoadgenReply>;
const startLoad = (role: "gen" | "sink"): Load => new LoadProcess<LoadgenRequest, LoadgenReply>(new URL("./loadgen.js", import.meta.url), role);

/** The generator and the sink, and whether they are pinned away from the relays' CPU. */
export interface Harness {
  readonly gen: Load;
  readonly sink: Load;
  readonly pinned: boolean;
}

/** What the generator and the sink said of their own I/O (a fallback to node:dgram, loop-timed latency), once each. */
const harnessIoNotes = new Set<string>();

function pinTo(pids: readonly number[], cpus: string): boolean {
  try {
    for (const pid of pids) execFileSync("taskset", ["-a", "-p", "-c", cpus, String(pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Starts the generator and the sink (pinned if asked, with a warning when that cannot be), runs `work`, stops them. */
export async function withHarness<T>(pin: boolean, warnings: string[], work: (h: Harness) => Promise<T>): Promise<T> {
  const gen = startLoad("gen");
  const sink = startLoad("sink");
  try {
    await Promise.all([gen.ready, sink.ready]);
    let pinned = false;
    if (pin) {
      const cpus = availableParallelism();
      if (cpus < 2) warnings.push("--pin ignored: only one CPU");
      else {
        const rest = cpus === 2 ? "1" : `1-${cpus - 1}`;
        pinned = pinTo([gen.child.pid!, sink.child.pid!], rest);
        if (!pinned) warnings.push("--pin failed (is taskset installed?): running unpinned");
        else progress(`pinned: relays on CPU 0, generator and sink on CPU ${rest}`);
      }
    }
    return await work({ gen, sink, pinned });
  } finally {
    await Promise.all([gen.exit(), sink.exit()]);
  }
}

// ---- relays under test ----

export type ChainSpec = ProxyProcessOptions["chain"];

/** The proxy with one segment "bench" on a free port, toward `destinationAddresses` (default 127.0.0.1) at `sinkPort`. */
export async function startProxy(
  sinkPort: number,
  runtime: "node" | "bun",
  chain: ChainSpec,
  batchSize: number | undefined,
  more: { readonly destinationAddresses?: readonly string[]; readonly io?: ProxyIo; readonly streams?: ProxyProcessOptions["streams"]; readonly sourceIdleMs?: number } = {},
): Promise<ProxyProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startProxyProcess({
        runtime,
        ...(batchSize !== undefined && { batchSize }),
        ...(more.io !== undefined && { io: more.io }),
        ...(more.streams !== undefined && { streams: more.streams }),
        segments: [{
          name: "bench", listenPort: await freeUdpPort(), destinationPort: sinkPort,
          ...(more.destinationAddresses && { destinationAddresses: more.destinationAddresses }),
          ...(more.sourceIdleMs !== undefined && { sourceIdleMs: more.sourceIdleMs }),
        }],
        chain,
      });
    } catch (err) {
      // the free port was taken in between: try another; anything else is a real failure
      if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

/** The srtp protect stage of the proxy+srtp relay: the default suite, a fresh key per run. */
function srtpProtectStage(): ChainSpec[number] {
  return { name: "srtp", path: SRTP_FILTER, config: { direction: "protect", key: `inline:${randomBytes(30).toString("base64")}` } };
}

/** null is the direct path: the generator sends to the sink itself. */
async function startHost(kind: HostKind, sinkPort: number, opts: E2eOptions): Promise<RelayProcess | null> {
  const filter = [{ name: opts.filterName, path: opts.filterPath }];
  switch (kind) {
    case "direct": return null;
    case "node-relay": return startPlainRelay(sinkPort, "node");
    case "bun-relay": return startPlainRelay(sinkPort, "bun");
    case "c-relay": return startCRelay(sinkPort);
    case "gstreamer": return startGstreamerRelay(sinkPort);
    case "rtpengine": return startRtpengineRelay(sinkPort);
    case "proxy": return startProxy(sinkPort, "node", [], opts.batchSize);
    case "proxy+filter": return startProxy(sinkPort, "node", filter, opts.batchSize);
    case "proxy+filter@dgram": return startProxy(sinkPort, "node", filter, opts.batchSize, { io: "dgram" });
    case "proxy+filter@bun": return startProxy(sinkPort, "bun", filter, opts.batchSize);
    case "proxy+srtp": return startProxy(sinkPort, "node", [...filter, srtpProtectStage()], opts.batchSize);
  }
}

interface ProxyCounters {
  dropsTotal: number;
  packetsInByWorker: number[];
  stage: { packetsIn: number; calls: number; busyNs: number } | null;
}

/** Drops summed over the proxy's segments, and its segments' first stages together. */
async function proxyCounters(relay: RelayProcess | null): Promise<ProxyCounters | undefined> {
  if (!relay || !("stats" in relay)) return undefined;
  const segments = (await (relay as ProxyProcess).stats()).segments;
  let dropsTotal = 0;
  const packetsInByWorker: number[] = [];
  let stage: ProxyCounters["stage"] = null;
  for (const seg of segments) {
    dropsTotal += seg.dropsTotal;
    packetsInByWorker[seg.worker] = (packetsInByWorker[seg.worker] ?? 0) + seg.packetsIn;
    const first = seg.stages[0];
    if (!first) continue;
    stage ??= { packetsIn: 0, calls: 0, busyNs: 0 };
    stage.packetsIn += first.packetsIn;
    stage.calls += first.calls;
    stage.busyNs += first.busyNs;
  }
  return { dropsTotal, packetsInByWorker: Array.from(packetsInByWorker, (n) => n ?? 0), stage };
}

// ---- trials, the search and the sweep ----

let trialCounter = 0;

/** A relay to measure: how to start it (null: the direct path), and how the sink counts what it delivers. */
export interface Subject {
  readonly label: string;
  readonly start: () => Promise<RelayProcess | null>;
  /** The relay encrypts the payload (and with it the stamp): the sink counts by sequence number, no latency. */
  readonly bySequence?: boolean;
}

/**
 * One trial: `rate` packets/s for `durationMs` through `relay` (null: direct), then the drain; what
 * it cost and lost. `latencyFrom`: the index of the first packet whose latency counts.
 */
export async function runTrial(h: Harness, relay: RelayProcess | null, rate: number, durationMs: number, opts: SearchOptions, bySequence: boolean, latencyFrom = 0): Promise<Trial> {
  const { gen, sink } = h;
  await relay?.beforeTrial?.();
  const trial = ++trialCounter;
  const expect = Math.max(1, Math.round((rate * durationMs) / 1000));
  const ports = relay ? (relay.ports ?? [relay.port]) : [sink.port];
  // sequence numbers are per stream: counting by them needs the one stream
  if (bySequence && ports.length !== 1) throw new Error("counting by sequence number needs a relay with one listen port");
  const pids = relay ? relay.pids() : [];
  await sink.request({ cmd: "arm", trial, expect, ...(bySequence && { bySequence }), ...(latencyFrom > 0 && { latencyFrom }) }, "armed", 5000);
  const before = await proxyCounters(relay);
  const sinkDrops0 = udpDrops(sink.port);
  const busy0 = machineBusyUs();
  const relayCpu0 = relay ? treeCpuUs(pids) : 0;
  const t0 = performance.now();
  const ran = await gen.request({ cmd: "run", trial, ports, rate, durationMs, size: opts.size }, "ran", durationMs * 2 + 10_000);
  await sleep(opts.drainMs);
  const relayCpuUs = relay ? treeCpuUs(pids) - relayCpu0 : 0;
  const busy1 = machineBusyUs();
  const wallMs = performance.now() - t0;
  const got = await sink.request({ cmd: "collect", trial, ...(bySequence && { firstSeq: ran.firstSeq }) }, "collected", 5000);
  const sinkDrops1 = udpDrops(sink.port);
  const after = await proxyCounters(relay);
  if (ran.io === "dgram") harnessIoNotes.add(`the generator sends through node:dgram (a lower ceiling): ${ran.note ?? "?"}`);
  if (got.io === "dgram") harnessIoNotes.add(`the sink receives through node:dgram (a lower ceiling): ${got.note ?? "?"}`);
  if (got.receiveClock === "loop") harnessIoNotes.add("the sink has no kernel receive stamps: latencies include its event loop");
  const achievedPps = ran.sent / (ran.sendMs / 1000);
  const lossFraction = ran.sent === 0 ? 1 : (ran.sent - got.received) / ran.sent;
  const generatorShort = ran.sent < expect * 0.98 || achievedPps < rate * 0.98;
  const result: Trial = {
    offeredPps: rate,
    achievedPps: Math.round(achievedPps),
    deliveredPps: Math.round(got.received / (ran.sendMs / 1000)),
    sent: ran.sent,
    received: got.received,
    receivedBytes: got.bytes,
    lossPct: round(lossFraction * 100, 4),
    pass: lossFraction < opts.maxLoss && !generatorShort && got.duplicates === 0,
    generatorShort,
    relayCpuUsPerPacket: relay && got.received > 0 ? round(relayCpuUs / got.received, 2) : null,
    relayCpuPct: relay ? round((relayCpuUs / 1000 / wallMs) * 100, 0) : null,
    generatorCpuPct: round((ran.cpuUs / 1000 / ran.sendMs) * 100, 0),
    sinkCpuPct: round((got.cpuUs / 1000 / wallMs) * 100, 0),
    otherCpuPct: busy0 === null || busy1 === null ? null
      : round(Math.max(0, (busy1 - busy0 - relayCpuUs - ran.cpuUs - got.cpuUs) / 1000 / wallMs) * 100, 0),
    sinkKernelDrops: sinkDrops0 === null || sinkDrops1 === null ? null : sinkDrops1 - sinkDrops0,
    latencyUs: got.latency,
  };
  opts.onTrial?.(relay?.name ?? "direct", result);
  if (!before || !after) return result;
  const byWorker = after.packetsInByWorker.map((n, w) => n - (before.packetsInByWorker[w] ?? 0));
  const withDrops = { ...result, proxyDrops: after.dropsTotal - before.dropsTotal, ...(byWorker.length > 1 && { packetsInByWorker: byWorker }) };
  const b = before.stage;
  const a = after.stage;
  if (!a || !b || a.packetsIn === b.packetsIn || a.calls === b.calls) return withDrops;
  return {
    ...withDrops,
    stageNsPerPacket: round((a.busyNs - b.busyNs) / (a.packetsIn - b.packetsIn), 1),
    stageMeanBatch: round((a.packetsIn - b.packetsIn) / (a.calls - b.calls), 1),
  };
}

function describe(t: Trial): string {
  const cpu = t.relayCpuUsPerPacket === null ? "" : `, relay ${t.relayCpuUsPerPacket} us/pkt (${t.relayCpuPct}% cpu)`;
  const lat = t.latencyUs ? `, p50/p99 ${t.latencyUs.p50}/${t.latencyUs.p99} us` : "";
  return `${t.offeredPps} pps: loss ${t.lossPct}%${t.generatorShort ? ` (generator short: ${t.achievedPps} pps)` : ""}${lat}` +
    `${cpu}, gen ${t.generatorCpuPct}% sink ${t.sinkCpuPct}% other ${t.otherCpuPct ?? "?"}%${t.proxyDrops ? `, proxy drops ${t.proxyDrops}` : ""}` +
    `${t.sinkKernelDrops ? `, sink kernel drops ${t.sinkKernelDrops}` : ""}` +
    ` -> ${t.pass ? "pass" : "fail"}`;
}

/**
 * Searches one relay's max rate below `upper`, then sweeps. `ceiling` is the harness's own max:
 * a relay within 5% of it, or one the generator could not keep up with, has a lower bound only.
 */
export async function measureRelay(h: Harness, subject: Subject, upper: number, ceiling: number, opts: SearchOptions): Promise<SearchResult> {
  const { label } = subject;
  const bySequence = subject.bySequence === true;
  const relay = await subject.start();
  let peakRss: number | null = null;
  const notePeak = (): void => {
    if (!relay) return;
    const m = treeMemory(relay.pids()).peakRssBytes;
    if (m > 0) peakRss = Math.max(peakRss ?? 0, m);
  };
  try {
    if (relay && h.pinned) pinTo(processTree(relay.pids()), "0");
    // priming, not counted: JIT warm-up, and a validating filter's probation for the stream's SSRC
    await runTrial(h, relay, Math.min(20_000, opts.floorPps * 2), 300, opts, bySequence);
    const trials: Trial[] = [];
    const attempt = async (rate: number): Promise<Trial> => {
      for (let retry = 0; ; retry++) {
        const t = await runTrial(h, relay, rate, opts.trialMs, opts, bySequence);
        notePeak();
        trials.push(t);
        const noisy = t.otherCpuPct !== null && t.otherCpuPct > NOISY_CPU_PCT;
        progress(`  ${label}: ${describe(t)}${noisy ? " (noisy)" : ""}`);
        // a failure while something else loads the machine is no evidence: try again, a bounded number of times
        if (t.pass || !noisy || retry >= opts.noisyRetries) return t;
        await sleep(500);
      }
    };
    let best: Trial | undefined;
    const floor = await attempt(opts.floorPps);
    if (floor.pass) best = floor;
    let lo = floor.pass ? opts.floorPps : 0;
    let hi = upper;
    // the highest rate the generator could not offer: above it nothing can be learned
    let harnessCap = floor.generatorShort ? opts.floorPps : ceiling;
    for (let step = 0; best && step < opts.steps && hi - lo > Math.max(1000, lo * 0.02); step++) {
      const mid = Math.round((lo + hi) / 2 / 500) * 500;
      if (mid <= lo || mid >= hi) break;
      const t = await attempt(mid);
      if (t.pass) {
        lo = mid;
        best = t;
      } else {
        hi = mid;
        if (t.generatorShort) harnessCap = Math.min(harnessCap, mid);
      }
    }
    const sweep: Trial[] = [];
    for (const rate of opts.sweepRates) {
      const t = await runTrial(h, relay, rate, opts.trialMs, opts, bySequence);
      notePeak();
      sweep.push(t);
      progress(`  ${label} sweep: ${describe(t)}`);
    }
    const io = relay && "io" in relay ? (relay as ProxyProcess).io : null;
    return { maxPps: lo, atMax: best, boundLimited: lo >= harnessCap * 0.95, trials, sweep, peakRssBytes: peakRss, ...(io && { io }) };
  } finally {
    await relay?.close();
  }
}

function medianOf(values: readonly (number | null | undefined)[], digits: number): number | null {
  const xs = values.filter((x): x is number => typeof x === "number" && Number.isFinite(x));
  return xs.length === 0 ? null : round(median(xs), digits);
}

function summarizeSweep(runs: readonly SearchResult[], rates: readonly number[]): SweepPoint[] {
  return rates.map((rate, i) => {
    const ts = runs.map((r) => r.sweep[i]).filter((t): t is Trial => t !== undefined);
    const lat = ts.map((t) => t.latencyUs).filter((l): l is LatencySummary => l !== null);
    return {
      offeredPps: rate,
      deliveredPps: medianOf(ts.map((t) => t.deliveredPps), 0) ?? 0,
      lossPct: medianOf(ts.map((t) => t.lossPct), 4) ?? 100,
      latencyUs: lat.length === 0 ? null : {
        p50: medianOf(lat.map((l) => l.p50), 1)!,
        p99: medianOf(lat.map((l) => l.p99), 1)!,
        p999: medianOf(lat.map((l) => l.p999), 1)!,
        max: medianOf(lat.map((l) => l.max), 1)!,
      },
      cpuUsPerPacket: medianOf(ts.map((t) => t.relayCpuUsPerPacket), 2),
      generatorShort: ts.some((t) => t.generatorShort),
    };
  });
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** Which runtime ran the proxy faster with the same chain (max rate), and by how much; null unless both ran. */
export function fasterRuntime(hosts: readonly HostSummary[]): { readonly faster: "node" | "bun"; readonly ratio: number } | null {
  const node = hosts.find((h) => h.host === "proxy+filter")?.maxPps ?? 0;
  const bun = hosts.find((h) => h.host === "proxy+filter@bun")?.maxPps ?? 0;
  if (node <= 0 || bun <= 0) return null;
  return bun > node ? { faster: "bun", ratio: round(bun / node, 3) } : { faster: "node", ratio: round(node / bun, 3) };
}

function kpps(n: number): string {
  return `${(n / 1000).toFixed(1)}k`;
}

/** Gigabits per second of `size`-byte UDP payloads at `pps`. */
export function gbps(pps: number, size: number): number {
  return (pps * size * 8) / 1e9;
}

/**
 * The end-to-end targets, from the relays' summaries (the report derives them, they are not
 * stored). `e` undefined: the part did not run. A target whose relays were not in the run says
 * "not run"; one whose relays were asked for but could not start, "not measured".
 */
export function e2eTargets(e: E2eResult | undefined, filterName: string): Target[] {
  const f = filterName;
  const requested = e ? (e.requested ?? e.hosts.map((h) => h.host)) : [];
  const judge = (what: string, needs: readonly HostKind[], compute: (hs: HostSummary[]) => Omit<Target, "what">): Target => {
    if (!e) return { what, value: "the e2e part did not run", met: null, verdict: "not run" };
    const absent = needs.filter((k) => !requested.includes(k));
    if (absent.length > 0) return { what, value: `${absent.map((k) => hostLabel(k, f)).join(", ")}: not in this run's --hosts`, met: null, verdict: "not run" };
    const hs = needs.map((k) => e.hosts.find((h) => h.host === k));
    const failed = needs.filter((_, i) => hs[i] === undefined);
    if (failed.length > 0) return { what, value: `${failed.map((k) => hostLabel(k, f)).join(", ")}: could not run (see the warnings)`, met: null };
    return { what, ...compute(hs as HostSummary[]) };
  };
  const lowerBound = (h: HostSummary): string => (h.boundLimited ? `; ${h.label}'s max is a lower bound (the harness's limit)` : "");
  const cpuRate = e?.cpuRatePps ?? 50_000;
  const latencyRate = e?.latencyRates[0] ?? 10_000;
  const maxLossPct = e?.maxLossPct ?? 0.1;
  const point = (h: HostSummary, rate: number): SweepPoint | undefined => h.sweep.find((p) => p.offeredPps === rate);
  const lossNote = (h: HostSummary, p: SweepPoint): string => (p.lossPct >= maxLossPct ? `; ${h.label} lost ${p.lossPct}% there` : "");
  const runtimes = [["Node", "proxy+filter", "node-relay"], ["Bun", "proxy+filter@bun", "bun-relay"]] as const;
  const out: Target[] = [];

  // issue #14: batched socket I/O
  for (const [runtime, proxy] of runtimes) {
    out.push(judge(`CPU per packet at ${kpps(cpuRate)} pps: proxy + ${f} at most GStreamer udpsrc ! udpsink's (${runtime})`, [proxy, "gstreamer"], ([p, g]) => {
      const a = point(p!, cpuRate);
      const b = point(g!, cpuRate);
      if (a?.cpuUsPerPacket == null || b?.cpuUsPerPacket == null) return { value: `no CPU figure at ${kpps(cpuRate)} pps (not in the sweep)`, met: null };
      return {
        value: `${a.cpuUsPerPacket} against ${b.cpuUsPerPacket} us (${(a.cpuUsPerPacket / b.cpuUsPerPacket).toFixed(2)}x)${lossNote(p!, a)}${lossNote(g!, b)}`,
        met: a.cpuUsPerPacket <= b.cpuUsPerPacket,
      };
    }));
  }
  for (const [runtime, proxy] of runtimes) {
    out.push(judge(`max rate at loss < ${maxLossPct}%: proxy + ${f} at least 1.2x GStreamer's (${runtime})`, [proxy, "gstreamer"], ([p, g]) => (g!.maxPps === 0
      ? { value: "GStreamer's max is 0", met: null }
      : { value: `${(p!.maxPps / g!.maxPps).toFixed(2)}x (${kpps(p!.maxPps)} against ${kpps(g!.maxPps)} pps)${lowerBound(p!)}${lowerBound(g!)}`, met: p!.maxPps / g!.maxPps >= 1.2 })));
  }
  for (const [runtime, proxy] of runtimes) {
    out.push(judge(`max rate at loss < ${maxLossPct}%: proxy + ${f} at least 70% of the C recvmmsg/sendmmsg relay's (${runtime})`, [proxy, "c-relay"], ([p, c]) => {
      if (c!.maxPps === 0) return { value: "the C relay's max is 0", met: null };
      // a C relay held back by the harness has a higher true max: the ratio is then an upper bound
      const capped = c!.boundLimited ? "; the C relay reached the harness's limit, so this ratio is an upper bound" : "";
      return { value: `${pct(p!.maxPps / c!.maxPps)} (${kpps(p!.maxPps)} against ${kpps(c!.maxPps)} pps)${capped}`, met: p!.maxPps / c!.maxPps >= 0.7 };
    }));
  }
  out.push(judge(`proxy + ${f} -> srtp protect at least 1 Gbit/s end to end on one worker (Node)`, ["proxy+srtp"], ([p]) => {
    const g = gbps(p!.maxPps, e!.size);
    return { value: `${g.toFixed(2)} Gbit/s (${kpps(p!.maxPps)} pps of ${e!.size} B)${lowerBound(p!)}`, met: g >= 1 };
  }));
  for (const [runtime, proxy, relay] of runtimes) {
    out.push(judge(`p99.9 latency at ${kpps(latencyRate)} pps: proxy + ${f} no worse than the plain node:dgram relay's (${runtime})`, [proxy, relay], ([p, r]) => {
      const a = point(p!, latencyRate);
      const b = point(r!, latencyRate);
      if (!a?.latencyUs || !b?.latencyUs) return { value: `no latency at ${kpps(latencyRate)} pps (not in the sweep)`, met: null };
      return { value: `${a.latencyUs.p999} against ${b.latencyUs.p999} us${lossNote(p!, a)}${lossNote(r!, b)}`, met: a.latencyUs.p999 <= b.latencyUs.p999 };
    }));
  }

  // earlier targets
  for (const [runtime, proxy, relay] of runtimes) {
    out.push(judge(`proxy + ${f} >= 95% of the plain relay's max rate (${runtime})`, [proxy, relay], ([p, r]) => (r!.maxPps === 0
      ? { value: "the plain relay's max is 0", met: null }
      : { value: pct(p!.maxPps / r!.maxPps), met: p!.maxPps / r!.maxPps >= 0.95 })));
  }
  out.push(judge(`added p99 latency at ${kpps(latencyRate)} pps: proxy + ${f} at most 200 us over the plain relay`, ["proxy+filter", "node-relay"], ([p, r]) => {
    const lp = point(p!, latencyRate)?.latencyUs;
    const lr = point(r!, latencyRate)?.latencyUs;
    if (!lp || !lr) return { value: `no latency at ${kpps(latencyRate)} pps (not in the sweep)`, met: null };
    return { value: `${round(lp.p99 - lr.p99, 1)} us (${lp.p99} against ${lr.p99})`, met: lp.p99 - lr.p99 <= 200 };
  }));
  // rtpengine's max here is set by the generator's 1 ms bursts (docs/benchmarks.md), so the value says so
  out.push(judge(`proxy + ${f} at least 2x rtpengine's user-space max rate`, ["proxy+filter", "rtpengine"], ([p, r]) => (r!.maxPps === 0
    ? { value: "rtpengine's max is 0", met: null }
    : { value: `${(p!.maxPps / r!.maxPps).toFixed(2)}x (rtpengine limited by the 1 ms bursts of this generator, not its CPU)`, met: p!.maxPps / r!.maxPps >= 2 })));
  return out;
}

/**
 * measureRelay, except that a relay that cannot start (a peer not installed, a config the proxy
 * refuses) is not measured: null, and a warning (once) that says why. The others go on.
 */
export async function tryMeasureRelay(h: Harness, subject: Subject, upper: number, ceiling: number, opts: SearchOptions, warnings: string[], part: string): Promise<SearchResult | null> {
  const { label } = subject;
  let s: SearchResult;
  try {
    s = await measureRelay(h, subject, upper, ceiling, opts);
  } catch (err) {
    const why = whyNotStarted(err as Error);
    if (!warnings.some((w) => w.startsWith(`${label}: not measured`))) warnings.push(`${label}: not measured: ${why}`);
    progress(`${part}: ${label}: not measured: ${why}`);
    return null;
  }
  progress(`${part}: ${label}: max ${s.maxPps} pps${s.boundLimited ? " (a lower bound: the harness's limit)" : ""}`);
  return s;
}

/** The search's upper bound for a relay: a little over what the harness itself sustains. */
export function relayUpperBound(ceiling: number, opts: SearchOptions): number {
  return Math.max(Math.round(ceiling * 1.05), opts.floorPps * 2);
}

/** The figures of a relay over its repeats: medians, range, CPU near the max, peak memory. */
export function summarizeRepeats(rs: readonly SearchResult[]): Pick<HostSummary, "maxPps" | "minPps" | "maxOfRepeatsPps" | "cpuUsPerPacket" | "peakRssBytes" | "boundLimited"> {
  const peaks = rs.map((s) => s.peakRssBytes).filter((x): x is number => x !== null);
  return {
    maxPps: median(rs.map((s) => s.maxPps)),
    minPps: Math.min(...rs.map((s) => s.maxPps)),
    maxOfRepeatsPps: Math.max(...rs.map((s) => s.maxPps)),
    cpuUsPerPacket: medianOf(rs.map((s) => s.atMax?.relayCpuUsPerPacket), 2),
    peakRssBytes: peaks.length > 0 ? Math.max(...peaks) : null,
    boundLimited: rs.some((s) => s.boundLimited),
  };
}

/** What the trials of the measured relays say about the harness and the machine. */
export function harnessWarnings(relays: readonly { readonly label: string; readonly boundLimited: boolean; readonly repeats: readonly SearchResult[] }[]): string[] {
  const out: string[] = [];
  for (const h of relays) {
    if (h.boundLimited) out.push(`${h.label} reached the harness's limit (within 5% of its ceiling, or the generator fell short): its max is a lower bound`);
    const near = h.repeats.map((s) => s.atMax).filter((t): t is Trial => t !== undefined);
    if (near.some((t) => t.generatorCpuPct >= 90 || t.sinkCpuPct >= 90)) {
      out.push(`${h.label}: generator or sink above 90% CPU near the max: the harness may be the bottleneck`);
    }
  }
  return out;
}

/** What each proxy said about its socket I/O when it started (the first repeat's; a change between repeats is named). */
export function ioNotes(relays: readonly { readonly label: string; readonly repeats: readonly SearchResult[] }[]): string[] {
  const out: string[] = [];
  for (const h of relays) {
    const said = [...new Set(h.repeats.map((s) => s.io).filter((x): x is string => x !== undefined))];
    if (said.length > 0) out.push(`${h.label}: ${said.join(", then ")}`);
  }
  return out.length > 0 ? [`socket I/O, as each proxy's start line named it: ${out.join("; ")}`] : [];
}

/** A warning when trials ran while the rest of the machine was busy. */
export function noisyWarning(searches: readonly SearchResult[]): string[] {
  const all = searches.flatMap((s) => [...s.trials, ...s.sweep]);
  const noisy = all.filter((t) => t.otherCpuPct !== null && t.otherCpuPct > NOISY_CPU_PCT).length;
  return noisy > 0 ? [`${noisy} of ${all.length} trials ran while other processes used more than ${NOISY_CPU_PCT}% of a core: the machine was not quiet`] : [];
}

export async function runE2e(opts: E2eOptions): Promise<E2eResult> {
  if (opts.size < 28) throw new TypeError("e2e packets must be at least 28 bytes (RTP header and the stamp)");
  const warnings: string[] = [];
  const kinds = HOST_KINDS.filter((k) => !opts.hosts || opts.hosts.includes(k));
  const { runs, pinned } = await withHarness(opts.pin, warnings, async (h) => {
    const runs = new Map<HostKind, SearchResult[]>(kinds.map((k) => [k, []]));
    for (let r = 0; r < opts.repeats; r++) {
      progress(`e2e: repeat ${r + 1}/${opts.repeats}`);
      let ceiling = opts.maxPps;
      for (const kind of kinds) {
        const subject: Subject = { label: hostLabel(kind, opts.filterName), start: () => startHost(kind, h.sink.port, opts), bySequence: kind === "proxy+srtp" };
        // relays cannot be measured above what the harness itself sustains
        const upper = kind === "direct" ? opts.maxPps : relayUpperBound(ceiling, opts);
        const s = await tryMeasureRelay(h, subject, upper, ceiling, opts, warnings, "e2e");
        if (!s) continue;
        runs.get(kind)!.push(s);
        if (kind === "direct") ceiling = s.maxPps;
      }
    }
    return { runs, pinned: h.pinned };
  });
  const measured = kinds.filter((k) => runs.get(k)!.length > 0);
  const hosts = measured.map((kind): HostSummary => {
    const rs = runs.get(kind)!;
    return { host: kind, label: hostLabel(kind, opts.filterName), ...summarizeRepeats(rs), sweep: summarizeSweep(rs, opts.sweepRates), repeats: rs };
  });
  warnings.push(...harnessWarnings(hosts.filter((h) => h.host !== "direct")), ...harnessIoNotes);
  warnings.push(...noisyWarning(hosts.flatMap((h) => h.repeats)));
  const direct = hosts.find((h) => h.host === "direct");
  const fastestRelay = Math.max(0, ...hosts.filter((h) => h.host !== "direct").map((h) => h.maxPps));
  if (direct && direct.maxPps < fastestRelay * 1.5) {
    warnings.push(`the harness ceiling (${direct.maxPps} pps) is under 1.5x the fastest relay's max: the relays compete with it for CPU`);
  }
  return {
    size: opts.size,
    trialMs: opts.trialMs,
    repeats: opts.repeats,
    maxLossPct: opts.maxLoss * 100,
    sweepRates: opts.sweepRates,
    latencyRates: opts.latencyRates,
    cpuRatePps: opts.cpuRatePps,
    pinned,
    batchSize: opts.batchSize ?? null,
    requested: kinds,
    hosts,
    warnings,
  };
}

/** Name of a filter from its .wasm path (what the proxy config calls it). */
export function filterNameOf(path: string): string {
  return basename(path).replace(/(\.checked)?\.wasm$/, "").toLowerCase().replace(/[^a-z0-9_-]/g, "_").replace(/^[^a-z]/, "f");
}
