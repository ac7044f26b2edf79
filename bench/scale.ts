// (c) Scale: one proxy with 1, 100, 1,000 and 10,000 segments, one stream of `ratePerStream`
// packets/s through each: CPU, RSS per segment, time to set up a segment, and whether any
// stream loses packets. Target (issue #14): 10,000 segments x 5 packets/s in one Node proxy
// within 1 GiB RSS, no stream losing packets.
//
// Processes: the proxy as users run it (`msm proxy --config FILE`, bench/hosts/proxy-process.ts)
// under Node or Bun; a generator and a sink forked from bench/scale-load.ts. This process only
// orchestrates and reads /proc. Segment i (named s<i>) listens on 127.0.0.1:basePort+i and sends
// to the sink's one socket; the generator's stream i goes to segment i. With symmetricRtp a
// segment sends from its listen socket (RFC 4961): one socket per segment instead of two, so
// 10,000 segments fit under a 20,000 open-files limit.
//
// Each level: start a proxy with N segments (setup time = its startMs: spawn to "proxy running"),
// set up N streams, warm up (not counted: a validating filter holds each new source's first
// packets for RFC 3550 probation), then one measured trial of measureMs, a fixed drain, and the
// counts. The proxy is stopped between levels.
//
// When the harness cannot offer a level's aggregate (N x ratePerStream; the generator falls
// short), the level is reported as measured (short, lossy: a finding) and then run again at a
// reduced per-stream rate whose aggregate fits (FIT_AGGREGATE_PPS), labelled as such. The
// target's level always runs at the target's rate too (TARGET_RATE_PER_STREAM): that row is the
// one the target reads.
import { readFileSync } from "node:fs";
import type { ProxySnapshot } from "../runtime/index.js";
import { NOISY_CPU_PCT, SCALE_MIN_PACKET_BYTES, machineBusyUs, markdownTable, progress, round, sleep, table, udpDrops } from "./common.js";
import { LoadProcess } from "./load-process.js";
import { treeCpuUs, treeMemory } from "./hosts/process-stats.js";
import { startProxyProcess, type ProxyProcess } from "./hosts/proxy-process.js";
import { whyNotStarted } from "./hosts/spawn.js";
import type { LatencySummary } from "./loadgen.js";
import type { ScaleLoadReply, ScaleLoadRequest } from "./scale-load.js";

export interface ScaleOptions {
  readonly counts: readonly number[];
  readonly ratePerStream: number;
  readonly size: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly runtime: "node" | "bun";
  readonly workers: number;
  readonly filter: { readonly name: string; readonly path: string } | null;
  readonly basePort: number;
  /** Segments send from their listen socket (segment key symmetricRtp): one socket each. */
  readonly symmetricRtp: boolean;
  /** The proxy's streams.max (per-stream stats; absent: the proxy's default). */
  readonly streamsMax?: number;
  /** Called after a level's measured window, its proxy still running and the generator stopped. */
  readonly afterWindow?: (proxy: ProxyProcess) => Promise<void>;
}

export interface ScaleRow {
  readonly segments: number;
  readonly ratePerStream: number;
  /** Run at a lower per-stream rate than asked, because the harness cannot offer the full aggregate. */
  readonly reducedRate: boolean;
  /** segments x ratePerStream. */
  readonly offeredPps: number;
  /** What the generator achieved over its send window. */
  readonly achievedPps: number;
  /** The generator sent under 98% of the packets or of the rate: the row is about the harness too. */
  readonly generatorShort: boolean;
  /** Spawn to "proxy running", ms (process start, config, compile, every segment's sockets and contexts). */
  readonly setupMs: number;
  readonly setupMsPerSegment: number;
  /** Resident memory of the proxy's process tree after the measured window. */
  readonly rssBytes: number;
  /**
   * The highest resident memory of the tree sampled every RSS_SAMPLE_MS from the warm-up to the
   * last /stats read (absent in results made before it was sampled). The target is judged on it:
   * a heap's collections make RSS rise and fall, and a memory limit meets the top, not a sample.
   */
  readonly peakRssBytes?: number;
  /** (rssBytes - rssBytes at 1 segment) / (segments - 1); null without that baseline or at 1 segment. */
  readonly rssBytesPerSegment: number | null;
  /** CPU of the proxy's process tree over the measured window and drain, % of one core. */
  readonly cpuPct: number;
  readonly cpuUsPerPacket: number | null;
  readonly sent: number;
  readonly received: number;
  readonly lossPct: number;
  readonly streamsWithLoss: number;
  readonly worstStreamLossPct: number;
  /** Packets the proxy's segments dropped (all reasons, summed over segments) during the window. */
  readonly proxyDrops: number;
  /** Datagrams the kernel dropped on the proxy's listen sockets (full receive buffer) during the window. */
  readonly kernelDrops: number | null;
  /** Datagrams the kernel dropped on the sink's socket during the window: the harness's loss, not the proxy's. */
  readonly sinkDrops: number | null;
  /** Datagrams the kernel's per-CPU input backlog dropped during the window (machine-wide, /proc/net/softnet_stat). */
  readonly backlogDrops: number | null;
  /** One-way latency generator to sink of the trial's packets, microseconds (absent in results made before it was measured). */
  readonly latencyUs?: LatencySummary | null;
}

export interface ScaleResult {
  readonly method: string;
  readonly size: number;
  readonly workers: number;
  readonly runtime: string;
  readonly chain: string;
  readonly rows: ScaleRow[];
  /** ratePerStream: the rate of the row the target reads (absent in older results: any row at `segments`). */
  readonly target: { readonly segments: number; readonly ratePerStream?: number; readonly rssLimitBytes: number; readonly met: boolean | null; readonly why: string };
  readonly warnings: string[];
}

export const TARGET_SEGMENTS = 10_000;
export const TARGET_RATE_PER_STREAM = 5;
export const TARGET_RSS_BYTES = 1 << 30;
/** The aggregate a reduced-rate run is sized to: what the generator, sink and proxy share 2 cores for comfortably. */
export const FIT_AGGREGATE_PPS = 50_000;
/** Wait after the generator's last packet before counting... */
const DRAIN_MS = 300;
/** How often the proxy's RSS is sampled for the row's peak. */
const RSS_SAMPLE_MS = 100;
/** ...and then, while packets keep arriving at the sink, poll this often, at most this much longer. */
const DRAIN_POLL_MS = 200;
const MAX_EXTRA_DRAIN_MS = 10_000;
/**
 * ...until nothing has arrived for this long: a proxy with 10,000 segments on a busy machine
 * can pause longer than a poll interval and then send what it holds (late, not lost).
 */
const DRAIN_QUIET_MS = 1000;
/** Starts of a level's proxy when a listen port is taken by another program (then the level fails). */
const START_ATTEMPTS = 3;
const START_RETRY_MS = 2000;
/** A window is noisy when the rest of the machine used more than this (% of one core). */
const MIB = 1024 * 1024;

// ---- the generator and sink processes ----

type Load = LoadProcess<ScaleLoadRequest, ScaleLoadReply>;
const startLoad = (role: "gen" | "sink"): Load => new LoadProcess<ScaleLoadRequest, ScaleLoadReply>(new URL("./scale-load.js", import.meta.url), role);

// ---- helpers ----

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

function dropsTotal(s: ProxySnapshot): number {
  let total = 0;
  for (const seg of s.segments) total += seg.dropsTotal;
  return total;
}

function packetCounts(s: ProxySnapshot): { in: number; out: number } {
  let pin = 0;
  let pout = 0;
  for (const seg of s.segments) {
    pin += seg.packetsIn;
    pout += seg.packetsOut;
  }
  return { in: pin, out: pout };
}

/**
 * Packets the kernel dropped before any socket saw them, machine-wide: the per-CPU input backlog
 * (net.core.netdev_max_backlog) that loopback traffic goes through, second column of
 * /proc/net/softnet_stat. Null where unreadable.
 */
function backlogDrops(): number | null {
  try {
    let drops = 0;
    for (const line of readFileSync("/proc/net/softnet_stat", "utf8").split("\n")) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 2) drops += parseInt(f[1]!, 16);
    }
    return drops;
  } catch {
    return null;
  }
}

/** Per-stream packets of a trial of `ms` at `rate`: what the generator sends on each stream. */
function packetsPerStream(rate: number, ms: number): number {
  return Math.max(1, Math.round((rate * ms) / 1000));
}

/** The per-stream rate of a reduced run: the aggregate fits FIT_AGGREGATE_PPS (at least 1 pps). */
export function reducedRateFor(segments: number, ratePerStream: number): number {
  return Math.max(1, Math.min(ratePerStream, Math.floor(FIT_AGGREGATE_PPS / segments)));
}

/**
 * Waits DRAIN_MS, then while packets are missing and datagrams arrived at the sink in the last
 * DRAIN_QUIET_MS (polled every DRAIN_POLL_MS, at most MAX_EXTRA_DRAIN_MS more): a busy proxy may
 * still hold packets, and those are late, not lost. Stops early once `expected` packets of the
 * armed trial are in (during a warm-up, which is not the armed trial, it waits while anything
 * arrives). Returns when the last datagram arrived, ms after the generator stopped (at most
 * DRAIN_MS when none came after the first look).
 */
async function drain(sink: Load, expected: number): Promise<number> {
  const t0 = performance.now();
  await sleep(DRAIN_MS);
  let last = await sink.request({ cmd: "peek" }, "peeked", 10_000);
  let lastArrival = DRAIN_MS;
  while (last.received < expected && performance.now() - t0 < DRAIN_MS + MAX_EXTRA_DRAIN_MS) {
    await sleep(DRAIN_POLL_MS);
    const now = await sink.request({ cmd: "peek" }, "peeked", 10_000);
    if (now.arrived !== last.arrived) lastArrival = performance.now() - t0;
    else if (performance.now() - t0 - lastArrival >= DRAIN_QUIET_MS) break;
    last = now;
  }
  return lastArrival;
}

let trialCounter = 0;

interface Level {
  /** The row without the fields that need the 1-segment baseline. */
  readonly row: Omit<ScaleRow, "setupMsPerSegment" | "rssBytesPerSegment">;
}

async function runLevel(gen: Load, sink: Load, n: number, rate: number, reduced: boolean, opts: ScaleOptions, warnings: string[]): Promise<Level> {
  const label = `${n} segment${n === 1 ? "" : "s"} at ${rate} pps each${reduced ? " (reduced rate)" : ""}`;
  const lastPort = opts.basePort + n - 1;
  if (lastPort > 65535) throw new Error(`${label}: listen ports ${opts.basePort}-${lastPort} run past 65535`);
  if (lastPort >= 32768) warnings.push(`${label}: listen ports reach ${lastPort}, inside Linux's ephemeral range (egress sockets may take them)`);
  progress(`scale: ${label}: starting the proxy`);
  let proxy: ProxyProcess;
  for (let attempt = 1; ; attempt++) {
    try {
      proxy = await startProxyProcess({
        runtime: opts.runtime,
        workers: opts.workers,
        chain: opts.filter ? [opts.filter] : [],
        ...(opts.streamsMax !== undefined && { streams: { max: opts.streamsMax } }),
        segments: Array.from({ length: n }, (_, i) => ({ name: `s${i}`, listenPort: opts.basePort + i, destinationPort: sink.port, ...(opts.symmetricRtp && { symmetricRtp: true }) })),
        // setting up a segment costs milliseconds: allow for the big levels, but bounded
        readyTimeoutMs: 30_000 + 20 * n,
      });
      break;
    } catch (err) {
      // another program holding one of the listen ports for a moment: try again, a bounded number of times
      const busy = /cannot bind listen [^\n]*EADDRINUSE[^\n]*/.exec((err as Error).message);
      if (!busy || attempt >= START_ATTEMPTS) throw err;
      warnings.push(`${label}: attempt ${attempt}: a listen port was in use (${busy[0]}); started again`);
      progress(`scale: ${label}: a listen port is in use (${busy[0]}): trying again in ${START_RETRY_MS} ms`);
      await sleep(START_RETRY_MS);
    }
  }
  let rssSampler: NodeJS.Timeout | undefined;
  try {
    progress(`scale: ${label}: proxy running after ${Math.round(proxy.startMs)} ms; warm-up ${opts.warmupMs} ms`);
    const ports = Array.from({ length: n }, (_, i) => opts.basePort + i);
    let peakRss = treeMemory(proxy.pids()).rssBytes;
    rssSampler = setInterval(() => {
      peakRss = Math.max(peakRss, treeMemory(proxy.pids()).rssBytes);
    }, RSS_SAMPLE_MS);
    await gen.request({ cmd: "setup", ports, rate, size: opts.size, payloadType: 96 }, "setup", 10_000);
    const warm = ++trialCounter;
    const trial = ++trialCounter;
    const perStream = packetsPerStream(rate, opts.measureMs);
    // armed for the measured trial already: warm-up packets arriving at the sink are not counted
    await sink.request({ cmd: "arm", trial, streams: n, perStream }, "armed", 10_000);
    const warmPerStream = packetsPerStream(rate, opts.warmupMs);
    const warmRan = await gen.request({ cmd: "run", trial: warm, perStream: warmPerStream }, "ran", opts.warmupMs * 2 + 10_000);
    // the measured window starts once the proxy has caught up with the warm-up
    const warmDrainMs = await drain(sink, warmRan.sent);
    if (warmDrainMs > DRAIN_MS) progress(`scale: ${label}: the warm-up took ${Math.round(warmDrainMs)} ms to drain`);
    const statsTimeout = 30_000;
    const before = await withTimeout(proxy.stats(), statsTimeout, "proxy /stats");
    const kernel0 = udpDrops(opts.basePort, lastPort);
    const sinkDrops0 = udpDrops(sink.port, sink.port);
    const backlog0 = backlogDrops();
    progress(`scale: ${label}: measuring ${opts.measureMs} ms`);
    const busy0 = machineBusyUs();
    const cpu0 = treeCpuUs(proxy.pids());
    const t0 = performance.now();
    const ran = await gen.request({ cmd: "run", trial, perStream }, "ran", opts.measureMs * 2 + 10_000);
    const drainMs = await drain(sink, ran.sent);
    if (drainMs > DRAIN_MS) warnings.push(`${label}: packets kept arriving for ${Math.round(drainMs)} ms after the generator stopped: the proxy was behind (a backlog in its sockets or its own queues), and those packets count as late, not lost`);
    const cpu1 = treeCpuUs(proxy.pids());
    const wallMs = performance.now() - t0;
    const busy1 = machineBusyUs();
    const got = await sink.request({ cmd: "collect", trial }, "collected", 10_000);
    const kernel1 = udpDrops(opts.basePort, lastPort);
    const sinkDrops1 = udpDrops(sink.port, sink.port);
    const backlog1 = backlogDrops();
    const after = await withTimeout(proxy.stats(), statsTimeout, "proxy /stats");
    const mem = treeMemory(proxy.pids());
    clearInterval(rssSampler);
    peakRss = Math.max(peakRss, mem.rssBytes);

    // per-stream loss
    let streamsWithLoss = 0;
    let worst = 0;
    let silent = 0;
    for (let i = 0; i < n; i++) {
      const s = ran.perStream[i] ?? 0;
      const r = Math.min(s, got.perStream[i] ?? 0);
      if (s === 0) silent++;
      else if (r < s) {
        streamsWithLoss++;
        worst = Math.max(worst, (s - r) / s);
      }
    }
    const offered = n * rate;
    const achieved = ran.sent / (ran.sendMs / 1000);
    const generatorShort = ran.sent < n * perStream * 0.98 || achieved < offered * 0.98;
    const proxyCpuUs = cpu1 - cpu0;
    const loss = ran.sent === 0 ? 1 : Math.max(0, ran.sent - got.received) / ran.sent;
    const row = {
      segments: n,
      ratePerStream: rate,
      reducedRate: reduced,
      offeredPps: offered,
      achievedPps: Math.round(achieved),
      generatorShort,
      setupMs: round(proxy.startMs, 0),
      rssBytes: mem.rssBytes,
      peakRssBytes: peakRss,
      cpuPct: round((proxyCpuUs / 1000 / wallMs) * 100, 1),
      cpuUsPerPacket: got.received > 0 ? round(proxyCpuUs / got.received, 2) : null,
      sent: ran.sent,
      received: got.received,
      lossPct: round(loss * 100, 4),
      streamsWithLoss,
      worstStreamLossPct: round(worst * 100, 2),
      proxyDrops: dropsTotal(after) - dropsTotal(before),
      kernelDrops: kernel0 === null || kernel1 === null ? null : kernel1 - kernel0,
      sinkDrops: sinkDrops0 === null || sinkDrops1 === null ? null : sinkDrops1 - sinkDrops0,
      backlogDrops: backlog0 === null || backlog1 === null ? null : backlog1 - backlog0,
      latencyUs: got.latency,
    };

    // what else the row needs said
    const genPct = (ran.cpuUs / 1000 / ran.sendMs) * 100;
    const sinkPct = (got.cpuUs / 1000 / wallMs) * 100;
    if (generatorShort) warnings.push(`${label}: the generator achieved ${row.achievedPps} of ${offered} pps (${ran.sent} of ${n * perStream} packets; ${ran.lateTicks} late ticks, ${ran.blockedTicks} blocked): the harness could not offer this load`);
    if (silent > 0) warnings.push(`${label}: ${silent} streams sent nothing in the measured window (generator short)`);
    if (ran.sendErrors > 0) warnings.push(`${label}: ${ran.sendErrors} send errors at the generator`);
    if (got.duplicates > 0) warnings.push(`${label}: ${got.duplicates} duplicate packets at the sink`);
    if (genPct >= 90 || sinkPct >= 90) warnings.push(`${label}: generator ${round(genPct, 0)}% / sink ${round(sinkPct, 0)}% of a core: the harness may be the bottleneck`);
    if (row.sinkDrops) warnings.push(`${label}: the kernel dropped ${row.sinkDrops} datagrams at the sink's socket: loss counted there is the harness's`);
    if (got.received < ran.sent) {
      // where the missing packets went, as far as the counters tell
      const p0 = packetCounts(before);
      const p1 = packetCounts(after);
      const fmt = (x: number | null): string => (x === null ? "?" : String(x));
      warnings.push(`${label}: ${ran.sent - got.received} of ${ran.sent} packets missing. The proxy's segments took in ${p1.in - p0.in} and sent ${p1.out - p0.out} ` +
        `(their drop counters: ${row.proxyDrops}; kernel drops at its listen sockets: ${fmt(row.kernelDrops)}); ` +
        `the sink's socket dropped ${fmt(row.sinkDrops)} and set aside ${got.stray} datagrams not of this trial or out of its range; ` +
        `the kernel's per-CPU input backlog dropped ${fmt(row.backlogDrops)} (machine-wide, /proc/net/softnet_stat)`);
    }
    const other = busy0 === null || busy1 === null ? null : ((busy1 - busy0 - proxyCpuUs - ran.cpuUs - got.cpuUs) / 1000 / wallMs) * 100;
    if (other !== null && other > NOISY_CPU_PCT) warnings.push(`${label}: other processes used ${round(other, 0)}% of a core during the window: the machine was not quiet`);
    progress(`scale: ${label}: sent ${row.sent} (${row.achievedPps} pps${generatorShort ? ", generator short" : ""}), received ${row.received}, ` +
      `loss ${row.lossPct}% on ${streamsWithLoss} streams, proxy ${row.cpuPct}% cpu, rss ${round(mem.rssBytes / MIB, 1)} MiB, ` +
      `drops proxy ${row.proxyDrops} kernel ${row.kernelDrops ?? "?"}; gen ${round(genPct, 0)}% sink ${round(sinkPct, 0)}%`);
    await opts.afterWindow?.(proxy);
    return { row };
  } finally {
    clearInterval(rssSampler);
    progress(`scale: ${label}: stopping the proxy`);
    await proxy.close();
  }
}

export async function runScale(opts: ScaleOptions): Promise<ScaleResult> {
  if (opts.size < SCALE_MIN_PACKET_BYTES) throw new Error(`scale: size ${opts.size} is under ${SCALE_MIN_PACKET_BYTES} bytes (RTP header + stamp)`);
  if (!(opts.ratePerStream > 0)) throw new Error("scale: ratePerStream must be positive");
  const warnings: string[] = [];
  const levels: Level[] = [];
  const failed = new Map<number, string>();
  const gen = startLoad("gen");
  const sink = startLoad("sink");
  try {
    await Promise.all([gen.ready, sink.ready]);
    for (const n of opts.counts) {
      if (!Number.isInteger(n) || n < 1) throw new Error(`scale: bad segment count ${n}`);
      let full: Level;
      try {
        full = await runLevel(gen, sink, n, opts.ratePerStream, false, opts, warnings);
      } catch (err) {
        const why = whyNotStarted(err as Error);
        failed.set(n, why);
        warnings.push(`${n} segments: not measured: ${why}`);
        progress(`scale: ${n} segments failed: ${why}`);
        continue;
      }
      levels.push(full);
      // the target's level also runs at the target's rate; other levels at a reduced rate when the full one was too much
      const atTarget = n === TARGET_SEGMENTS;
      const reduced = atTarget ? TARGET_RATE_PER_STREAM : reducedRateFor(n, opts.ratePerStream);
      const needsReduced = atTarget || full.row.generatorShort || (full.row.lossPct > 0 && full.row.offeredPps > FIT_AGGREGATE_PPS);
      if (needsReduced && reduced < opts.ratePerStream) {
        try {
          levels.push(await runLevel(gen, sink, n, reduced, true, opts, warnings));
        } catch (err) {
          warnings.push(`${n} segments at the reduced rate of ${reduced} pps: not measured: ${(err as Error).message.split("\n")[0]}`);
        }
      }
    }
  } finally {
    await Promise.all([gen.exit(), sink.exit()]);
  }

  // per-segment figures against the 1-segment level
  const base = levels.find((l) => l.row.segments === 1 && !l.row.reducedRate)?.row;
  const rows: ScaleRow[] = levels.map(({ row }) => ({
    ...row,
    setupMsPerSegment: base && row.segments > 1
      ? round((row.setupMs - base.setupMs) / (row.segments - 1), 3)
      : round(row.setupMs / row.segments, 3),
    rssBytesPerSegment: base && row.segments > 1 ? Math.round((row.rssBytes - base.rssBytes) / (row.segments - 1)) : null,
  }));
  if (!base) warnings.push("no 1-segment level: setup ms per segment is setup / segments (process start included) and RSS per segment is not computed");

  const chain = opts.filter ? opts.filter.name : "(empty)";
  return {
    method:
      `One proxy process (msm proxy, ${opts.runtime}, ${opts.workers} worker${opts.workers === 1 ? "" : "s"}) per level with N segments ` +
      `(listen 127.0.0.1:${opts.basePort}+i, rtcpMux, ${opts.symmetricRtp ? "symmetricRtp: sending from the listen socket, one socket per segment" : "an egress socket of its own"}, one destination: the sink), chain [${chain}]; a forked generator sends one RTP stream per segment ` +
      `(distinct SSRC, in-order sequence numbers, ${opts.size}-byte packets, streams interleaved evenly in time) and a forked sink counts each stream's packets. ` +
      `Warm-up ${opts.warmupMs} ms (not counted: probation), drained, then one measured trial of ${opts.measureMs} ms, then a drain of ${DRAIN_MS} ms ` +
      `extended while packets are missing until none has arrived for ${DRAIN_QUIET_MS} ms (polled every ${DRAIN_POLL_MS} ms, at most ${MAX_EXTRA_DRAIN_MS} ms more), so a backlog in the proxy counts as late, not lost. ` +
      `Setup = spawn to "proxy running" (process start, compile, every segment's sockets and chain contexts); ` +
      `setup per segment = (setup - setup at 1 segment) / (N - 1), and for the 1-segment row its whole setup. ` +
      `CPU = the proxy's process tree (per-thread schedstat) over the trial and the drain, % of one core and per delivered packet. ` +
      `RSS = VmRSS of the proxy's process tree after the window; per segment = (RSS - RSS at 1 segment) / (N - 1); ` +
      `peak RSS = the highest VmRSS of the tree sampled every ${RSS_SAMPLE_MS} ms from the warm-up to the last /stats read (the target is judged on it). ` +
      `Loss per stream = sent - received in the measured trial. Proxy drops = segments' drop counters (/stats) over the window; ` +
      `kernel drops = /proc/net/udp drops on the listen ports over the window; sink drops the same on the sink's socket; ` +
      `backlog drops = the kernel's per-CPU input backlog (machine-wide, /proc/net/softnet_stat) over the window. ` +
      `Latency = one-way, generator's send to the sink's event loop, of the trial's packets (a monotonic clock stamped in each; histogram buckets of 4.4%, max exact): a stall of the proxy's packet loop shows in its p99.9 and max. ` +
      `A level whose aggregate the generator cannot offer is reported as measured, then run again at a reduced per-stream rate ` +
      `(aggregate <= ${FIT_AGGREGATE_PPS} pps), marked "reduced"; the ${TARGET_SEGMENTS}-segment level always runs at the target's ${TARGET_RATE_PER_STREAM} pps per stream too.`,
    size: opts.size,
    workers: opts.workers,
    runtime: opts.runtime,
    chain,
    rows,
    target: scaleTarget(opts.counts, rows, failed),
    warnings,
  };
}

/**
 * The target, judged on the row at TARGET_SEGMENTS and TARGET_RATE_PER_STREAM (the others at
 * that level are mentioned); `failed` holds the levels whose proxy could not run, and why.
 */
export function scaleTarget(counts: readonly number[], rows: readonly ScaleRow[], failed: ReadonlyMap<number, string>): ScaleResult["target"] {
  const t = { segments: TARGET_SEGMENTS, ratePerStream: TARGET_RATE_PER_STREAM, rssLimitBytes: TARGET_RSS_BYTES };
  if (!counts.includes(TARGET_SEGMENTS)) return { ...t, met: null, why: `${TARGET_SEGMENTS} segments not run (counts: ${counts.join(", ")})` };
  const fail = failed.get(TARGET_SEGMENTS);
  if (fail !== undefined) return { ...t, met: false, why: `the proxy did not run ${TARGET_SEGMENTS} segments: ${fail}` };
  const describe = (r: ScaleRow): string => {
    const top = judgedRss(r);
    const rss = `${r.peakRssBytes === undefined ? "RSS" : "peak RSS"} ${round(top / MIB, 1)} MiB ${top <= TARGET_RSS_BYTES ? "<=" : ">"} 1 GiB` +
      (r.peakRssBytes === undefined ? "" : ` (${round(r.rssBytes / MIB, 1)} MiB after the window)`);
    const loss = r.streamsWithLoss === 0 ? "no stream lost packets" : `${r.streamsWithLoss} of ${r.segments} streams lost packets (worst ${r.worstStreamLossPct}%)`;
    const short = r.generatorShort ? `; the generator offered only ${r.achievedPps} of ${r.offeredPps} pps` : "";
    return `at ${r.ratePerStream} pps per stream: ${rss}, ${loss}${short}`;
  };
  const row = rows.find((r) => r.segments === TARGET_SEGMENTS && r.ratePerStream === TARGET_RATE_PER_STREAM);
  const others = rows.filter((r) => r.segments === TARGET_SEGMENTS && r !== row).map(describe);
  const also = others.length > 0 ? ` (also ${others.join("; ")})` : "";
  if (!row) return { ...t, met: false, why: `no row at ${TARGET_RATE_PER_STREAM} pps per stream${also}` };
  const ok = judgedRss(row) <= TARGET_RSS_BYTES && row.streamsWithLoss === 0 && !row.generatorShort && row.sent > 0;
  return { ...t, met: ok, why: `${ok ? "met" : "not met"} ${describe(row)}${also}` };
}

/** The RSS a target reads: the sampled peak, or the after-window reading in results made before it was sampled. */
function judgedRss(r: ScaleRow): number {
  return r.peakRssBytes ?? r.rssBytes;
}

// ---- output ----

function rowCells(r: ScaleRow): string[] {
  return [
    String(r.segments),
    `${r.ratePerStream}${r.reducedRate ? " (reduced)" : ""}`,
    String(r.offeredPps),
    `${r.achievedPps}${r.generatorShort ? " (short)" : ""}`,
    String(r.setupMs),
    String(r.setupMsPerSegment),
    String(round(r.rssBytes / MIB, 1)),
    r.peakRssBytes === undefined ? "-" : String(round(r.peakRssBytes / MIB, 1)),
    r.rssBytesPerSegment === null ? "-" : String(round(r.rssBytesPerSegment / 1024, 1)),
    String(r.cpuPct),
    r.cpuUsPerPacket === null ? "-" : String(r.cpuUsPerPacket),
    String(r.sent),
    String(r.received),
    String(r.lossPct),
    String(r.streamsWithLoss),
    String(r.worstStreamLossPct),
    String(r.proxyDrops),
    r.kernelDrops === null ? "?" : String(r.kernelDrops),
    r.latencyUs ? `${round(r.latencyUs.p50 / 1000, 2)} / ${round(r.latencyUs.p999 / 1000, 1)} / ${round(r.latencyUs.max / 1000, 1)}` : "-",
  ];
}

const HEADER = [
  "segments", "pps/stream", "offered pps", "achieved pps", "setup ms", "setup ms/seg", "RSS MiB", "peak RSS MiB", "RSS KiB/seg",
  "CPU %", "CPU us/pkt", "sent", "received", "loss %", "streams w/ loss", "worst stream loss %", "proxy drops", "kernel drops",
  "latency ms p50 / p99.9 / max",
];

/** The verdict in a word or few. */
export function scaleVerdict(r: ScaleResult): string {
  return r.target.met === null ? "not judged" : r.target.met ? "MET" : "NOT MET";
}

/** What the target asks, in words. */
export function scaleTargetText(r: ScaleResult): string {
  const rate = r.target.ratePerStream === undefined ? "" : ` x ${r.target.ratePerStream} pps`;
  return `${r.target.segments.toLocaleString("en-US")} segments${rate} in one proxy within ${round(r.target.rssLimitBytes / 2 ** 30, 0)} GiB RSS, no stream losing packets`;
}

function verdictLine(r: ScaleResult): string {
  return `Target (${scaleTargetText(r)}): ${scaleVerdict(r)}: ${r.target.why}`;
}

export function scaleTables(r: ScaleResult): { text: string; markdown: string } {
  const rows = [HEADER, ...r.rows.map(rowCells)];
  const head = `Scale: ${r.runtime}, ${r.workers} worker${r.workers === 1 ? "" : "s"}, chain [${r.chain}], ${r.size}-byte packets`;
  const text = [
    head,
    table(rows, 2),
    verdictLine(r),
    ...r.warnings.map((w) => `warning: ${w}`),
  ].join("\n");
  const markdown = [
    `### (d) Scale: segments in one proxy (${r.runtime === "bun" ? "Bun" : "Node"})`,
    "",
    `${head}. ${r.method}`,
    "",
    "How to read: each row is one proxy started with that many segments, one stream per segment; " +
      "\"(reduced)\" rows ran at a lower per-stream rate because the harness cannot offer the full aggregate on this machine, " +
      "\"(short)\" means the generator did not offer the whole load, so loss there is partly the harness's. " +
      "RSS and setup per segment are the increments over the 1-segment row (whose one segment lives on one worker, so the " +
      "next row's increment also holds the other workers' one-off cost: a filter instance each); CPU % is of one core.",
    "",
    markdownTable(rows, 2),
    "",
    `**${verdictLine(r)}**`,
    ...(r.warnings.length > 0 ? ["", ...r.warnings.map((w) => `- ${w}`)] : []),
    "",
  ].join("\n");
  return { text, markdown };
}
