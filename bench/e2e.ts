// (b) End to end on 127.0.0.1: the highest offered rate each relay forwards with loss < 0.1%.
//
// Processes: this one hosts the relay under test (the plain node:dgram relay on its main thread,
// or the proxy, whose data plane is a worker thread of this process); the generator and the
// sink are two forked processes (bench/loadgen.ts). The relay's CPU is this process's
// process.cpuUsage() delta over a trial (all threads: main, proxy worker, V8 helpers), which
// excludes the generator and the sink; during a trial the main thread only waits for two IPC
// replies.
//
// Hosts, searched in this order in every repeat:
//   direct         generator -> sink, no relay: the harness's own ceiling;
//   plain          bench/relay.ts, the baseline;
//   proxy          the proxy with an empty chain (what the runtime costs without a filter);
//   proxy+<filter> the proxy with a one-stage chain of the filter under test.
//
// Search: a trial offers a rate for a bounded time (rate x duration packets), then waits
// a fixed drain. It passes when loss < 0.1% and the generator achieved >= 98% of the rate.
// One trial at a floor rate, then bisection between the highest pass and the lowest failure
// (initially the direct ceiling) for a bounded number of steps. Result: the highest passing
// rate; CPU per packet is taken from that trial. Then one more trial at a rate common to all
// relays (50k pps), whose CPU per packet compares directly: near each one's max, the rates and
// so the proxy's batch sizes differ.
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { basename } from "node:path";
import { Proxy, validateProxyConfig } from "../runtime/index.js";
import type { LoadgenReply, LoadgenRequest } from "./loadgen.js";
import { startPlainRelay } from "./relay.js";
import { ROOT, machineBusyUs, median, progress, round, sleep } from "./common.js";

export interface E2eOptions {
  readonly filterPath: string;
  readonly filterName: string;
  readonly size: number;
  readonly repeats: number;
  readonly trialMs: number;
  readonly drainMs: number;
  readonly steps: number;
  readonly floorPps: number;
  /** The common rate of the fixed-rate CPU trial every relay gets after its search. */
  readonly cpuRatePps: number;
  /** Upper bound of the direct (ceiling) search. */
  readonly maxPps: number;
  /** Loss threshold, as a fraction (0.001 = 0.1%). */
  readonly maxLoss: number;
  /** Which paths to measure (default all); the ratio needs plain and proxy+filter. */
  readonly hosts?: readonly HostKind[];
  /** Pin this process to CPU 0 and the generator and sink to the other CPUs (taskset). */
  readonly pin: boolean;
}

export interface Trial {
  readonly offeredPps: number;
  readonly achievedPps: number;
  readonly sent: number;
  readonly received: number;
  readonly lossPct: number;
  readonly pass: boolean;
  /** The generator fell short of the rate: the trial says nothing about the relay. */
  readonly generatorShort: boolean;
  /** CPU of this process (the relay) per packet delivered, microseconds; null for direct. */
  readonly relayCpuUsPerPacket: number | null;
  /** Each process's CPU use over the trial, % of one core. */
  readonly relayCpuPct: number;
  readonly generatorCpuPct: number;
  readonly sinkCpuPct: number;
  /**
   * The rest of the machine's busy CPU over the trial, % of one core (/proc/stat): softirq work
   * not charged to a process, and anything else running. High values mean a noisy trial.
   */
  readonly otherCpuPct: number | null;
  /** Datagrams the kernel dropped because a socket's receive buffer was full (/proc/net/udp). */
  readonly kernelDrops: { readonly relayIngress: number; readonly sink: number } | null;
  /** Proxy only: packets its segment dropped (counted by reason) during the trial. */
  readonly proxyDrops?: number;
  /**
   * Proxy with a filter only, from the runtime's stage statistics over the trial: time in the
   * stage per packet (copy in, call, read back) and the mean batch the stage was handed.
   */
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
  /** One trial at E2eOptions.cpuRatePps, the same rate for every relay: CPU per packet compares directly. */
  readonly atFixedRate: Trial | undefined;
  /** Proxy only: the segment's drops by reason and the stage's own ns/packet (runtime stats). */
  readonly proxy?: { drops: Record<string, number> };
}

export interface HostSummary {
  readonly host: string;
  readonly label: string;
  readonly maxPps: number;
  readonly minPps: number;
  readonly maxOfRepeatsPps: number;
  readonly cpuUsPerPacket: number | null;
  /** Median CPU per packet in the fixed-rate trials (null for direct). */
  readonly cpuUsPerPacketAtFixedRate: number | null;
  /** Median loss in the fixed-rate trials, % (a relay that loses here is not keeping up at that rate). */
  readonly lossPctAtFixedRate: number | null;
  readonly boundLimited: boolean;
  readonly repeats: SearchResult[];
}

export interface E2eResult {
  readonly size: number;
  readonly trialMs: number;
  readonly repeats: number;
  readonly maxLossPct: number;
  readonly cpuRatePps: number;
  readonly pinned: boolean;
  readonly hosts: HostSummary[];
  /** proxy+<filter> max pps / plain max pps (medians), and the target (>= 0.9). */
  readonly ratio: number;
  readonly ratioEmptyChain: number;
  readonly target: { readonly ratio: number; readonly met: boolean | null };
  readonly warnings: string[];
}

// ---- the generator and sink processes ----

class LoadProcess {
  readonly child: ChildProcess;
  private waiters: ((m: LoadgenReply) => void)[] = [];
  port = 0;
  readonly ready: Promise<void>;

  constructor(readonly role: "gen" | "sink") {
    this.child = fork(new URL("./loadgen.js", import.meta.url), [role], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.child.on("message", (m: LoadgenReply) => this.waiters.shift()?.(m));
    this.ready = this.next(10_000).then((m) => {
      if (m.type !== "ready") throw new Error(`loadgen ${role}: unexpected ${m.type}`);
      this.port = m.port;
    });
  }

  request<T extends LoadgenReply["type"]>(m: LoadgenRequest, type: T, timeoutMs: number): Promise<Extract<LoadgenReply, { type: T }>> {
    const reply = this.next(timeoutMs);
    this.child.send(m);
    return reply.then((r) => {
      if (r.type !== type) throw new Error(`loadgen ${this.role}: expected ${type}, got ${r.type}`);
      return r as Extract<LoadgenReply, { type: T }>;
    });
  }

  async exit(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const gone = new Promise<void>((r) => this.child.once("exit", () => r()));
    this.child.send({ cmd: "exit" } satisfies LoadgenRequest);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 2000);
    await gone;
    clearTimeout(timer);
  }

  private next(timeoutMs: number): Promise<LoadgenReply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`loadgen ${this.role}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (m: LoadgenReply): void => {
        clearTimeout(timer);
        resolve(m);
      };
      this.waiters.push(waiter);
    });
  }
}

function pinTo(pid: number, cpus: string): boolean {
  try {
    execFileSync("taskset", ["-a", "-p", "-c", cpus, String(pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

// ---- relays under test ----

interface Host {
  readonly port: number;
  close(): Promise<void>;
  proxyStats?(): Promise<ProxyCounters>;
}

interface ProxyCounters {
  dropsTotal: number;
  drops: Record<string, number>;
  stage: { packetsIn: number; calls: number; busyNs: number } | null;
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function startProxy(sinkPort: number, filter: { name: string; path: string } | null): Promise<Host> {
  for (let attempt = 1; ; attempt++) {
    const port = await freeUdpPort();
    const config = validateProxyConfig({
      workers: 1,
      filters: filter ? { [filter.name]: { path: filter.path } } : {},
      segments: [{
        name: "bench",
        listen: { address: "127.0.0.1", port },
        rtcpMux: true,
        egress: { address: "127.0.0.1" },
        destinations: [{ address: "127.0.0.1", port: sinkPort }],
        chain: filter ? [{ filter: filter.name }] : [],
      }],
    }, ROOT, "bench proxy config");
    let proxy: Proxy;
    try {
      proxy = await Proxy.start(config);
    } catch (err) {
      if (attempt < 3) continue; // the free port was taken in between: try another
      throw err;
    }
    proxy.on("event", (e) => {
      if (e.type === "error" || e.type === "watchdog" || e.type === "worker-exit") progress(`proxy event: ${JSON.stringify(e)}`);
    });
    return {
      port,
      close: () => proxy.close(),
      proxyStats: async () => {
        const seg = (await proxy.stats()).segments.find((s) => s.name === "bench");
        const stage = seg?.stages[0];
        return {
          dropsTotal: seg?.dropsTotal ?? 0,
          drops: seg?.drops ?? {},
          stage: stage ? { packetsIn: stage.packetsIn, calls: stage.calls, busyNs: stage.busyNs } : null,
        };
      },
    };
  }
}

export type HostKind = "direct" | "plain" | "proxy" | "proxy+filter";
export const HOST_KINDS: readonly HostKind[] = ["direct", "plain", "proxy", "proxy+filter"];

async function startHost(kind: HostKind, sinkPort: number, opts: E2eOptions): Promise<Host> {
  switch (kind) {
    case "direct":
      return { port: sinkPort, close: async () => {} };
    case "plain":
      return startPlainRelay(sinkPort);
    case "proxy":
      return startProxy(sinkPort, null);
    case "proxy+filter":
      return startProxy(sinkPort, { name: opts.filterName, path: opts.filterPath });
  }
}

// ---- trials and the search ----

/** Receive-buffer drops per local UDP port (Linux /proc/net/udp), or null elsewhere. */
function udpDrops(ports: readonly number[]): Map<number, number> | null {
  let text: string;
  try {
    text = readFileSync("/proc/net/udp", "utf8");
  } catch {
    return null;
  }
  const out = new Map<number, number>(ports.map((p) => [p, 0]));
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    const port = parseInt(f[1]!.split(":")[1]!, 16);
    if (out.has(port)) out.set(port, out.get(port)! + Number(f[f.length - 1]));
  }
  return out;
}

let trialCounter = 0;
/** A trial is noisy when the rest of the machine used more than this (% of one core). */
export const NOISY_CPU_PCT = 15;
/** How often a noisy failed trial is run again. */
const NOISY_RETRIES = 3;

async function runTrial(gen: LoadProcess, sink: LoadProcess, host: Host, kind: HostKind, rate: number, durationMs: number, opts: E2eOptions): Promise<Trial> {
  const trial = ++trialCounter;
  const expect = Math.max(1, Math.round((rate * durationMs) / 1000));
  await sink.request({ cmd: "arm", trial, expect }, "armed", 5000);
  const before = host.proxyStats ? await host.proxyStats() : undefined;
  const drops0 = udpDrops([host.port, sink.port]);
  const busy0 = machineBusyUs();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const ran = await gen.request({ cmd: "run", trial, port: host.port, rate, durationMs, size: opts.size }, "ran", durationMs * 2 + 10_000);
  await sleep(opts.drainMs);
  const cpu = process.cpuUsage(cpu0);
  const busy1 = machineBusyUs();
  const wallMs = performance.now() - t0;
  const got = await sink.request({ cmd: "collect", trial }, "collected", 5000);
  const drops1 = udpDrops([host.port, sink.port]);
  const after = host.proxyStats ? await host.proxyStats() : undefined;
  const relayCpuUs = cpu.user + cpu.system;
  const achievedPps = ran.sent / (ran.sendMs / 1000);
  const lossFraction = ran.sent === 0 ? 1 : (ran.sent - got.received) / ran.sent;
  const generatorShort = ran.sent < expect * 0.98 || achievedPps < rate * 0.98;
  const result: Trial = {
    offeredPps: rate,
    achievedPps: Math.round(achievedPps),
    sent: ran.sent,
    received: got.received,
    lossPct: round(lossFraction * 100, 4),
    pass: lossFraction < opts.maxLoss && !generatorShort && got.duplicates === 0,
    generatorShort,
    relayCpuUsPerPacket: kind === "direct" || got.received === 0 ? null : round(relayCpuUs / got.received, 2),
    relayCpuPct: round((relayCpuUs / 1000 / wallMs) * 100, 0),
    generatorCpuPct: round((ran.cpuUs / 1000 / ran.sendMs) * 100, 0),
    sinkCpuPct: round((got.cpuUs / 1000 / wallMs) * 100, 0),
    otherCpuPct: busy0 === null || busy1 === null ? null
      : round(Math.max(0, (busy1 - busy0 - relayCpuUs - ran.cpuUs - got.cpuUs) / 1000 / wallMs) * 100, 0),
    kernelDrops: drops0 && drops1 ? {
      relayIngress: kind === "direct" ? 0 : drops1.get(host.port)! - drops0.get(host.port)!,
      sink: drops1.get(sink.port)! - drops0.get(sink.port)!,
    } : null,
  };
  if (!before || !after) return result;
  const withDrops = { ...result, proxyDrops: after.dropsTotal - before.dropsTotal };
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
  return `${t.offeredPps} pps: loss ${t.lossPct}%${t.generatorShort ? ` (generator short: ${t.achievedPps} pps)` : ""}` +
    `${cpu}, gen ${t.generatorCpuPct}% sink ${t.sinkCpuPct}% other ${t.otherCpuPct ?? "?"}%${t.proxyDrops ? `, proxy drops ${t.proxyDrops}` : ""}` +
    `${t.kernelDrops && t.kernelDrops.relayIngress + t.kernelDrops.sink > 0 ? `, kernel drops: relay in ${t.kernelDrops.relayIngress}, sink ${t.kernelDrops.sink}` : ""}` +
    ` -> ${t.pass ? "pass" : "fail"}`;
}

async function search(gen: LoadProcess, sink: LoadProcess, kind: HostKind, label: string, upper: number, opts: E2eOptions): Promise<SearchResult> {
  const host = await startHost(kind, sink.port, opts);
  try {
    // priming, not counted: JIT warm-up, and a validating filter's probation for the stream's SSRC
    await runTrial(gen, sink, host, kind, Math.min(20_000, opts.floorPps * 2), 300, opts);
    const trials: Trial[] = [];
    const attempt = async (rate: number): Promise<Trial> => {
      for (let retry = 0; ; retry++) {
        const t = await runTrial(gen, sink, host, kind, rate, opts.trialMs, opts);
        trials.push(t);
        const noisy = t.otherCpuPct !== null && t.otherCpuPct > NOISY_CPU_PCT;
        progress(`  ${label}: ${describe(t)}${noisy ? " (noisy)" : ""}`);
        // a failure while something else loads the machine is no evidence: try again, a bounded number of times
        if (t.pass || !noisy || retry >= NOISY_RETRIES) return t;
        await sleep(500);
      }
    };
    let best: Trial | undefined;
    const floor = await attempt(opts.floorPps);
    if (floor.pass) best = floor;
    let lo = floor.pass ? opts.floorPps : 0;
    let hi = upper;
    for (let step = 0; best && step < opts.steps && hi - lo > Math.max(1000, lo * 0.02); step++) {
      const mid = Math.round((lo + hi) / 2 / 500) * 500;
      if (mid <= lo || mid >= hi) break;
      const t = await attempt(mid);
      if (t.pass) {
        lo = mid;
        best = t;
      } else hi = mid;
    }
    // the same rate for every relay, so that CPU per packet compares at equal batching
    let atFixedRate: Trial | undefined;
    if (kind !== "direct") {
      atFixedRate = await runTrial(gen, sink, host, kind, opts.cpuRatePps, opts.trialMs, opts);
      progress(`  ${label} at the common rate: ${describe(atFixedRate)}`);
    }
    const result: SearchResult = { maxPps: lo, atMax: best, boundLimited: lo >= upper * 0.95, trials, atFixedRate };
    if (host.proxyStats) {
      const s = await host.proxyStats();
      return { ...result, proxy: { drops: s.drops } };
    }
    return result;
  } finally {
    await host.close();
  }
}

export async function runE2e(opts: E2eOptions): Promise<E2eResult> {
  const warnings: string[] = [];
  const gen = new LoadProcess("gen");
  const sink = new LoadProcess("sink");
  let pinned = false;
  try {
    await Promise.all([gen.ready, sink.ready]);
    if (opts.pin) {
      const cpus = availableParallelism();
      if (cpus < 2) warnings.push("--pin ignored: only one CPU");
      else {
        const rest = cpus === 2 ? "1" : `1-${cpus - 1}`;
        pinned = pinTo(process.pid, "0") && pinTo(gen.child.pid!, rest) && pinTo(sink.child.pid!, rest);
        if (!pinned) warnings.push("--pin failed (is taskset installed?): running unpinned");
        else progress(`pinned: relay process on CPU 0, generator and sink on CPU ${rest}`);
      }
    }
    const filterLabel = `proxy+${opts.filterName}`;
    const kinds = HOST_KINDS.filter((k) => !opts.hosts || opts.hosts.includes(k)).map((k): [HostKind, string] => [k, k === "proxy+filter" ? filterLabel : k]);
    const runs = new Map<HostKind, SearchResult[]>(kinds.map(([k]) => [k, []]));
    for (let r = 0; r < opts.repeats; r++) {
      progress(`e2e: repeat ${r + 1}/${opts.repeats}`);
      let ceiling = opts.maxPps;
      for (const [kind, label] of kinds) {
        const upper = kind === "direct" ? opts.maxPps : Math.max(ceiling, opts.floorPps * 2);
        const s = await search(gen, sink, kind, label, upper, opts);
        runs.get(kind)!.push(s);
        progress(`e2e: ${label}: max ${s.maxPps} pps${s.boundLimited ? " (at the search's upper bound)" : ""}`);
        // relays cannot be measured above what the harness itself sustains
        if (kind === "direct") ceiling = Math.round(s.maxPps * 1.05);
      }
    }
    const hosts = kinds.map(([kind, label]): HostSummary => {
      const rs = runs.get(kind)!;
      const cpus = rs.map((s) => s.atMax?.relayCpuUsPerPacket).filter((x): x is number => typeof x === "number");
      const fixed = rs.map((s) => s.atFixedRate).filter((t): t is Trial => t !== undefined && t.relayCpuUsPerPacket !== null);
      return {
        host: kind === "proxy+filter" ? `proxy+${opts.filterName}` : kind,
        label,
        maxPps: median(rs.map((s) => s.maxPps)),
        minPps: Math.min(...rs.map((s) => s.maxPps)),
        maxOfRepeatsPps: Math.max(...rs.map((s) => s.maxPps)),
        cpuUsPerPacket: cpus.length > 0 ? round(median(cpus), 2) : null,
        cpuUsPerPacketAtFixedRate: fixed.length > 0 ? round(median(fixed.map((t) => t.relayCpuUsPerPacket!)), 2) : null,
        lossPctAtFixedRate: fixed.length > 0 ? round(median(fixed.map((t) => t.lossPct)), 4) : null,
        boundLimited: rs.some((s) => s.boundLimited),
        repeats: rs,
      };
    });
    const byKind = (k: HostKind): HostSummary | undefined => hosts[kinds.findIndex(([x]) => x === k)];
    const plainPps = byKind("plain")?.maxPps ?? 0;
    const ratio = plainPps > 0 ? (byKind("proxy+filter")?.maxPps ?? 0) / plainPps : 0;
    const ratioEmpty = plainPps > 0 ? (byKind("proxy")?.maxPps ?? 0) / plainPps : 0;
    const directPps = byKind("direct")?.maxPps;
    for (const h of hosts) {
      if (h.host !== "direct" && h.boundLimited) warnings.push(`${h.label} reached the generator's ceiling: its max is a lower bound`);
      const near = h.repeats.map((s) => s.atMax).filter((t): t is Trial => t !== undefined);
      const busyGen = near.filter((t) => t.generatorCpuPct >= 90 || t.sinkCpuPct >= 90);
      if (h.host !== "direct" && busyGen.length > 0) warnings.push(`${h.label}: generator or sink above 90% CPU near the max: the harness may be the bottleneck`);
    }
    const all = hosts.flatMap((h) => h.repeats.flatMap((s) => s.trials));
    const noisy = all.filter((t) => t.otherCpuPct !== null && t.otherCpuPct > NOISY_CPU_PCT).length;
    if (noisy > 0) warnings.push(`${noisy} of ${all.length} trials ran while other processes used more than ${NOISY_CPU_PCT}% of a core: the machine was not quiet`);
    if (directPps !== undefined && directPps < plainPps * 1.5) {
      warnings.push(`the harness ceiling (${directPps} pps) is under 1.5x the plain relay's max: the relays compete with it for CPU`);
    }
    if (!byKind("plain") || !byKind("proxy+filter")) warnings.push("the ratio needs both plain and proxy+filter: not measured");
    return {
      size: opts.size,
      trialMs: opts.trialMs,
      repeats: opts.repeats,
      maxLossPct: opts.maxLoss * 100,
      cpuRatePps: opts.cpuRatePps,
      pinned,
      hosts,
      ratio: round(ratio, 3),
      ratioEmptyChain: round(ratioEmpty, 3),
      target: { ratio: 0.9, met: byKind("plain") && byKind("proxy+filter") ? ratio >= 0.9 : null },
      warnings,
    };
  } finally {
    await Promise.all([gen.exit(), sink.exit()]);
  }
}

/** Name of a filter from its .wasm path (what the proxy config calls it). */
export function filterNameOf(path: string): string {
  return basename(path).replace(/(\.checked)?\.wasm$/, "").toLowerCase().replace(/[^a-z0-9_-]/g, "_").replace(/^[^a-z]/, "f");
}
