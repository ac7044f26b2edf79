// The RFC 8867 lab: the congestion filter (filters/congestion) judged on the RFC's test cases, with
// the RFC 8868 metrics, against plain forwarding on the same path.
//
//   origin(s) --> proxy A ==tbf bottleneck==> [delay relay] --> proxy B --> sink(s)
//   (namespace "origin")   (a)                  (b, with proxy B)               ("sink")
//
// - Origins are ns-tools/cc-sender.ts (H.264-like RTP that follows TMMBR/REMB), sinks
//   ns-tools/cc-sink.ts (one-way delay of every packet, RTCP RRs back).
// - The bottleneck is `tc tbf` on A's veth toward B, its rate changed on the case's schedule, its
//   queue 300 ms at the current rate (the RFC's drop-tail queue of 300 ms).
// - The propagation delay (50 ms each way) is ns-tools/cc-relay.ts in B's namespace: this kernel
//   has no sch_netem. The relay is A's destination, so A's feedback gate admits what comes back.
// - MSM: A runs the congestion filter in `sender` mode, B in `receiver` mode. Plain: empty chains;
//   the origin then hears no TMMBR and sends at its maximum rate, as an origin without congestion
//   control would.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NETNS_PREFIX, NetnsLab, runSync, type NsProcess } from "./netns.js";
import { startNsProxy, type NsProxy } from "./ns-proxy.js";
import { nsTool } from "./ns-rtp.js";
import { PathWatch, type PathCounters } from "./loss-trial.js";
import type { RelayReport } from "./ns-tools/cc-relay.js";
import type { SenderTimeline } from "./ns-tools/cc-sender.js";
import type { SinkPackets } from "./ns-tools/cc-sink.js";
import type { ProxySnapshot } from "../../runtime/index.js";
import { filterWasm } from "./paths.js";
import { peer } from "./peers.js";

/** `tc tbf` in a namespace (iproute2's tc, a kernel with sch_tbf). */
export const tbfPeer = peer("tc tbf in a network namespace (root, iproute2's tc, sch_tbf)", "run as root; Debian package iproute2; a kernel with CONFIG_NET_SCH_TBF", () => {
  const ns = `${NETNS_PREFIX}${process.pid}-tbfprobe`;
  if (process.getuid?.() !== 0 || spawnSync("ip", ["netns", "add", ns]).status !== 0) return false;
  try {
    return spawnSync("tc", ["-n", ns, "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1mbit", "burst", "3000", "limit", "30000"], { stdio: "ignore", timeout: 15_000 }).status === 0;
  } finally {
    spawnSync("ip", ["netns", "del", ns]);
  }
});

/** One capacity step of a case's schedule. */
export interface Phase {
  readonly startS: number;
  readonly capacityBps: number;
}

/** An RFC 8867 test case, as the lab runs it. */
export interface CaseSpec {
  /** "5.1", "5.2": the RFC's section. */
  readonly id: string;
  readonly title: string;
  readonly durationS: number;
  readonly phases: readonly Phase[];
  readonly flows: number;
  /** Each flow's media rates (RTP bits/s): start, min, max. */
  readonly media: { readonly startBps: number; readonly minBps: number; readonly maxBps: number };
  readonly oneWayDelayMs: number;
  readonly queueMs: number;
}

const MEDIA = { startBps: 150_000, minBps: 150_000, maxBps: 1_500_000 };

/** RFC 8867 section 5.1: one flow, capacity 1 Mbps x 1.0, 2.5, 0.6, 1.0 from 0, 40, 60, 80 s; 100 s. */
export const CASE_5_1: CaseSpec = {
  id: "5.1",
  title: "variable available capacity, one flow",
  durationS: 100,
  phases: [{ startS: 0, capacityBps: 1_000_000 }, { startS: 40, capacityBps: 2_500_000 }, { startS: 60, capacityBps: 600_000 }, { startS: 80, capacityBps: 1_000_000 }],
  flows: 1,
  media: MEDIA,
  oneWayDelayMs: 50,
  queueMs: 300,
};

/** RFC 8867 section 5.2: two flows, capacity 2 Mbps x 2.0, 1.0, 1.75, 0.5, 1.0 from 0, 25, 50, 75, 100 s; 125 s. */
export const CASE_5_2: CaseSpec = {
  id: "5.2",
  title: "variable available capacity, two flows",
  durationS: 125,
  phases: [
    { startS: 0, capacityBps: 4_000_000 }, { startS: 25, capacityBps: 2_000_000 }, { startS: 50, capacityBps: 3_500_000 },
    { startS: 75, capacityBps: 1_000_000 }, { startS: 100, capacityBps: 2_000_000 },
  ],
  flows: 2,
  media: MEDIA,
  oneWayDelayMs: 50,
  queueMs: 300,
};

export type Forwarding = "msm" | "plain";

/** The share of the usable capacity at which the start-up ramp counts as done. */
const CONVERGED = 0.8;

/** Bytes a packet takes on the bottleneck beyond its RTP bytes: UDP 8, IPv4 20, Ethernet 14 (tbf on a veth counts the frame). */
const WIRE_OVERHEAD = 42;

export interface PhaseResult {
  readonly startS: number;
  readonly endS: number;
  readonly capacityBps: number;
  /** What utilisation is measured against: the capacity, or the flows' maximum rate (on the wire) where that is lower. */
  readonly usableBps: number;
  /** Received at the sinks, all flows, on-the-wire bits/s. */
  readonly receivedBps: number;
  readonly utilisation: number;
  /** Each flow's received rate (wire bits/s). */
  readonly flowBps: readonly number[];
  readonly jain: number;
}

export interface LossResult {
  readonly sent: number;
  readonly received: number;
  readonly lost: number;
  readonly ratio: number;
  /** Every drop counted on the path, by where and why ("a/non_reference", "tbf a>b", "socket b:5004", ...). */
  readonly drops: Readonly<Record<string, number>>;
  /** Lost packets no counter explains (counters include RTCP, so this is a floor at 0). */
  readonly unexplained: number;
  /** Where the lost packets went missing: between the origins and the relay (A's side, the bottleneck), and after it (B's side). */
  readonly lostBeforeRelay: number;
  readonly lostAfterRelay: number;
}

export interface FlowResult {
  readonly ssrc: number;
  readonly sent: number;
  readonly received: number;
  readonly meanBps: number;
  readonly rateChanges: number;
  readonly rtcpIn: Readonly<Record<string, number>>;
}

/** Per-second series for charts: t in s since the start. */
export interface RunSeries {
  readonly capacityBps: readonly number[];
  readonly receivedBps: readonly (readonly number[])[];
  readonly originBps: readonly (readonly number[])[];
  readonly queueP50Ms: readonly (number | null)[];
  readonly queueP95Ms: readonly (number | null)[];
}

export interface RunResult {
  readonly caseId: string;
  readonly forwarding: Forwarding;
  readonly durationS: number;
  readonly phases: readonly PhaseResult[];
  /**
   * Received bits over usable bits, from the end of the start-up ramp (rampUpS) to the end: how
   * the flow does once it found the path, apart from how long it took from the RFC's start rate
   * (150 kbps, far below the capacity).
   */
  readonly utilisation: number;
  /** The same over the whole run, the ramp from 150 kbps included: the figure the target judges. */
  readonly utilisationWholeRun: number;
  /** Seconds from the start to the first second in which the sinks got at least 80% of the usable capacity. */
  readonly rampUpS: number;
  readonly queueDelayMs: { readonly p50: number; readonly p95: number; readonly minOwd: number };
  readonly loss: LossResult;
  readonly flows: readonly FlowResult[];
  /** Jain's fairness index of the flows' mean received rates (1 for one flow). */
  readonly jain: number;
  readonly series: RunSeries;
  readonly relays: readonly RelayReport[];
  /** Each proxy segment's packets in and out ("a/flow0"). */
  readonly segments: PathCounters["segments"];
  /** The congestion filter's metrics at the end, by proxy segment ("a/flow0": { target_bps, ... }); {} for plain forwarding. */
  readonly filterMetrics: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** Each proxy's watchdog restarts ("a": 0): a restart loses what its worker held, uncounted. */
  readonly watchdogRestarts: Readonly<Record<string, number>>;
  readonly wallMs: number;
}

/**
 * The lab's processes run at this nice value. On a busy machine, scheduling delay in the userspace
 * relay, proxies, origins and sinks is delay variation the filter's delay-based estimator takes for
 * congestion: with `stress-ng --cpu 2` beside the four runs on 2 cores, utilisation after start-up
 * fell from 84-88% to 77-81% at nice 0 (docs/congestion-eval.md). The lab measures the filter, not
 * the machine's load, so it asks the scheduler for more of the CPU than the load gets.
 */
const LAB_NICE = -10;

/** Renices every thread of `proc`'s process group (worker threads included) to LAB_NICE. */
function favour(proc: NsProcess): void {
  runSync("renice", ["-n", String(LAB_NICE), "-g", String(proc.pid)]);
}

/** The proxies' watchdog bound in the lab (see proxyConfigs). */
const LAB_WATCHDOG_MS = 5000;

const port = {
  origin: (i: number) => 4000 + 4 * i,
  proxy: (i: number) => 5004 + 4 * i,
  relay: (i: number) => 7000 + 4 * i,
  relayFrom: (i: number) => 7100 + 4 * i,
  sink: (i: number) => 6000 + 4 * i,
};
const ssrcOf = (i: number): number => 0x4d530001 + i;

/** tbf on A's veth toward B at `bps`, its queue `queueMs` at that rate, its bucket 10 ms (at least two packets). */
function setCapacity(lab: NetnsLab, bps: number, queueMs: number, first: boolean): void {
  const end = lab.link("a", "b").from;
  const burst = Math.max(3000, Math.round(bps / 8 / 100));
  const limit = Math.round(((bps / 8) * queueMs) / 1000);
  runSync("tc", ["-n", end.ns, "qdisc", first ? "add" : "change", "dev", end.dev, "root", "handle", "1:", "tbf", "rate", `${bps}bit`, "burst", String(burst), "limit", String(limit)]);
}

function proxyConfigs(lab: NetnsLab, spec: CaseSpec, forwarding: Forwarding): { a: Record<string, unknown>; b: Record<string, unknown> } {
  const msm = forwarding === "msm";
  const filters = msm ? { congestion: { path: filterWasm("congestion") } } : {};
  const flows = Array.from({ length: spec.flows }, (_, i) => i);
  const sender = { mode: "sender", ...spec.media, priority: { h264PayloadTypes: [96] } };
  // a watchdog restart of a worker loses what it held (the pacer's queue, its socket's backlog)
  // where no counter sees it: on a loaded machine the lab gives it more room than the default
  // 500 ms, and measure() still names any restart that happened
  const watchdog = { stuckMs: LAB_WATCHDOG_MS };
  return {
    a: {
      watchdog,
      filters,
      segments: flows.map((i) => ({
        name: `flow${i}`, listen: { address: "0.0.0.0", port: port.proxy(i) },
        destinations: [{ address: lab.address("b", "a"), port: port.relay(i) }],
        chain: msm ? [{ filter: "congestion", config: sender }] : [],
      })),
    },
    b: {
      watchdog,
      filters,
      segments: flows.map((i) => ({
        name: `flow${i}`, listen: { address: "0.0.0.0", port: port.proxy(i) },
        destinations: [{ address: lab.address("sink", "b"), port: port.sink(i) }],
        chain: msm ? [{ filter: "congestion", config: { mode: "receiver" } }] : [],
      })),
    },
  };
}

/** The packet counts of a cc-sink's `second` lines so far. */
const sinkSeconds = (sink: NsProcess): number[] =>
  [...sink.stdout().matchAll(/^second (\{.*\})$/gm)].map((m) => (JSON.parse(m[1]!) as { packets: number }).packets);

/** Waits until every sink has printed two seconds in a row without a packet after this call (at most `timeoutMs`). */
async function pathDrained(sinks: readonly NsProcess[], timeoutMs: number): Promise<void> {
  const from = sinks.map((s) => sinkSeconds(s).length);
  const until = Date.now() + timeoutMs;
  const quiet = (s: NsProcess, i: number): boolean => {
    const since = sinkSeconds(s).slice(from[i]!);
    return since.length >= 2 && since.at(-1) === 0 && since.at(-2) === 0;
  };
  while (!sinks.every(quiet)) {
    if (Date.now() > until) throw new Error(`the path did not drain within ${timeoutMs} ms of the origins' end: the sinks' last seconds ${sinks.map((s) => JSON.stringify(sinkSeconds(s).slice(-5))).join(", ")}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Stops a tool that reports on "stop" (cc-sink, cc-relay) and returns its `report` line's JSON. */
async function stopReporting<T>(proc: NsProcess, what: string): Promise<T> {
  proc.write("stop\n");
  const code = await proc.stop("SIGTERM", 5000).catch(() => null);
  const m = /^report (.*)$/m.exec(proc.stdout());
  if (!m) throw new Error(`${what} gave no report (exit ${code}):\n${proc.output().slice(-2000)}`);
  return JSON.parse(m[1]!) as T;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

/** Jain's fairness index: (sum x)^2 / (n sum x^2); 1 when all are equal. */
export function jainIndex(xs: readonly number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  const squares = xs.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 1 : (sum * sum) / (xs.length * squares);
}

/** The congestion filter's drop reasons (filters/congestion/README.md, "Drop reasons"), as /stats names them: by code before ABI 1.6, by its names since. */
const FILTER_DROPS: Record<string, string> = {
  filter_256: "non_reference", filter_257: "reference", filter_258: "dependent", filter_259: "queue_full", filter_260: "circuit_breaker", filter_261: "renumber_late",
  non_reference: "non_reference", reference: "reference", dependent: "dependent", queue_full: "queue_full", circuit_breaker: "circuit_breaker", renumber_late: "renumber_late",
};

/**
 * The congestion filter's own drop counters of a proxy, summed over its segments, by reason
 * ("non_reference": n). They count what the proxy's drop counters miss: packets the filter held
 * in its pacer's queue (the proxy saw them held, not dropped) and dropped later.
 */
function filterDropsOf(snap: ProxySnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (const seg of snap.segments) {
    for (const m of seg.stages[0]?.metrics ?? []) {
      const reason = /^dropped_(.+)$/.exec(m.name)?.[1];
      if (reason && typeof m.value === "number") out[reason] = (out[reason] ?? 0) + m.value;
    }
  }
  return out;
}

/**
 * Every drop of the path in one flat record, zeros left out. With the filter, proxy A's filter
 * drops come from the filter's own counters (filterDropsOf), its other drops from the proxy's.
 */
function dropsOf(path: PathCounters, sinks: readonly SinkPackets[], relays: readonly RelayReport[], senders: readonly SenderTimeline[], withFilter: boolean): Record<string, number> {
  const filterRole = withFilter ? "a" : undefined;
  const drops: Record<string, number> = {};
  const add = (key: string, n: number): void => {
    if (n > 0) drops[key] = (drops[key] ?? 0) + n;
  };
  for (const [link, c] of Object.entries(path.links)) {
    add(`tbf ${link}`, c.queueDrops);
    add(`veth ${link}`, c.interfaceDrops);
    add(`link ${link}`, c.lost);
  }
  for (const [where, n] of Object.entries(path.kernel)) add(`socket ${where}`, n);
  for (const [role, byReason] of Object.entries(path.proxyDrops)) {
    for (const [reason, n] of Object.entries(byReason)) if (!(role === filterRole && reason in FILTER_DROPS)) add(`${role}/${FILTER_DROPS[reason] ?? reason}`, n);
  }
  const sender = filterRole && path.stats.get(filterRole);
  if (sender) for (const [reason, n] of Object.entries(filterDropsOf(sender))) add(`${filterRole}/${reason}`, n);
  add("socket relay", relays.reduce((s, r) => s + r.kernelDrops, 0));
  add("relay, held at its stop", relays.reduce((s, r) => s + r.heldAtStop, 0));
  add("socket sink", sinks.reduce((s, r) => s + r.kernelDrops, 0));
  add("origin send errors", senders.reduce((s, r) => s + r.sendErrors, 0));
  return drops;
}

interface Measured {
  readonly spec: CaseSpec;
  readonly forwarding: Forwarding;
  /** CLOCK_REALTIME (ms) when each capacity step took effect. */
  readonly steps: readonly { readonly atMs: number; readonly capacityBps: number }[];
  readonly endMs: number;
  readonly senders: readonly SenderTimeline[];
  readonly sinks: readonly SinkPackets[];
  readonly relays: readonly RelayReport[];
  readonly path: PathCounters;
  readonly wallMs: number;
}

/** The RFC 8868 figures of a run from what its tools recorded. */
export function measure(m: Measured): RunResult {
  const { spec } = m;
  const t0 = m.steps[0]!.atMs;
  const wireRatio = m.sinks.map((s) => {
    const rtp = s.packets.reduce((sum, p) => sum + p[2], 0);
    return rtp > 0 ? (rtp + WIRE_OVERHEAD * s.packets.length) / rtp : 1;
  });
  const maxWireBps = wireRatio.reduce((sum, r) => sum + spec.media.maxBps * r, 0);
  const wireBits = (s: SinkPackets, from: number, to: number): number =>
    s.packets.reduce((sum, p) => (p[0] >= from && p[0] < to ? sum + (p[2] + WIRE_OVERHEAD) * 8 : sum), 0);

  const phases: PhaseResult[] = m.steps.map((step, k) => {
    const until = m.steps[k + 1]?.atMs ?? m.endMs;
    const seconds = (until - step.atMs) / 1000;
    const flowBps = m.sinks.map((s) => wireBits(s, step.atMs, until) / seconds);
    const receivedBps = flowBps.reduce((a, b) => a + b, 0);
    const usableBps = Math.min(step.capacityBps, maxWireBps);
    return {
      startS: (step.atMs - t0) / 1000, endS: (until - t0) / 1000, capacityBps: step.capacityBps, usableBps,
      receivedBps, utilisation: receivedBps / usableBps, flowBps, jain: jainIndex(flowBps),
    };
  });
  const usableBits = phases.reduce((s, p) => s + p.usableBps * (p.endS - p.startS), 0);
  const receivedBits = phases.reduce((s, p) => s + p.receivedBps * (p.endS - p.startS), 0);
  const capacityAt = (ms: number): number => [...m.steps].reverse().find((s) => s.atMs <= ms)?.capacityBps ?? m.steps[0]!.capacityBps;
  // whole seconds only: the last, partial one would read low
  const wholeSeconds = Array.from({ length: Math.floor((m.endMs - t0) / 1000) }, (_, k) => ({
    usable: Math.min(capacityAt(t0 + k * 1000 + 500), maxWireBps),
    received: m.sinks.reduce((sum, s) => sum + wireBits(s, t0 + k * 1000, t0 + (k + 1) * 1000), 0),
  }));
  const rampEnd = wholeSeconds.findIndex((b) => b.received >= CONVERGED * b.usable);
  const afterRamp = rampEnd < 0 ? [] : wholeSeconds.slice(rampEnd);
  const afterRampUsable = afterRamp.reduce((s, b) => s + b.usable, 0);

  const owds = m.sinks.flatMap((s) => s.packets.map((p) => p[3]));
  const minOwd = owds.reduce((a, b) => Math.min(a, b), Infinity);
  const queue = owds.map((d) => (d - minOwd) / 1000).sort((a, b) => a - b);

  const received = m.sinks.map((s) => new Set(s.packets.map((p) => p[1])).size);
  const sent = m.senders.reduce((s, t) => s + t.sent, 0);
  const receivedAll = received.reduce((a, b) => a + b, 0);
  const drops = dropsOf(m.path, m.sinks, m.relays, m.senders, m.forwarding === "msm");
  const attributed = Object.values(drops).reduce((a, b) => a + b, 0);
  const lost = sent - receivedAll;
  const relayedRtp = m.relays.reduce((sum, r) => sum + r.forwardRtp, 0);

  const bins = Array.from({ length: Math.ceil((m.endMs - t0) / 1000) }, (_, k) => k);
  const queueBins = bins.map((k) => m.sinks.flatMap((s) => s.packets.filter((p) => p[0] >= t0 + k * 1000 && p[0] < t0 + (k + 1) * 1000).map((p) => (p[3] - minOwd) / 1000)).sort((a, b) => a - b));
  const meanBps = m.sinks.map((s) => wireBits(s, t0, m.endMs) / ((m.endMs - t0) / 1000));
  return {
    caseId: spec.id,
    forwarding: m.forwarding,
    durationS: (m.endMs - t0) / 1000,
    phases,
    utilisation: afterRampUsable > 0 ? afterRamp.reduce((s, b) => s + b.received, 0) / afterRampUsable : 0,
    utilisationWholeRun: receivedBits / usableBits,
    rampUpS: rampEnd < 0 ? Infinity : rampEnd,
    queueDelayMs: { p50: percentile(queue, 0.5), p95: percentile(queue, 0.95), minOwd: minOwd / 1000 },
    loss: { sent, received: receivedAll, lost, ratio: sent > 0 ? lost / sent : 0, drops, unexplained: Math.max(0, lost - attributed), lostBeforeRelay: sent - relayedRtp, lostAfterRelay: relayedRtp - receivedAll },
    flows: m.senders.map((t, i) => ({ ssrc: t.ssrc, sent: t.sent, received: received[i]!, meanBps: meanBps[i]!, rateChanges: t.rates.length - 1, rtcpIn: t.rtcpIn })),
    jain: jainIndex(meanBps),
    series: {
      capacityBps: bins.map((k) => capacityAt(t0 + k * 1000 + 500)),
      receivedBps: m.sinks.map((s) => bins.map((k) => wireBits(s, t0 + k * 1000, t0 + (k + 1) * 1000))),
      originBps: m.senders.map((t) => bins.map((k) => {
        const skew = t.startMs - t0;
        return t.perSecond[Math.round(k - skew / 1000)]?.bits ?? 0;
      })),
      queueP50Ms: queueBins.map((q) => (q.length > 0 ? percentile(q, 0.5) : null)),
      queueP95Ms: queueBins.map((q) => (q.length > 0 ? percentile(q, 0.95) : null)),
    },
    relays: m.relays,
    segments: m.path.segments,
    filterMetrics: Object.fromEntries([...m.path.stats].flatMap(([role, snap]) => snap.segments.flatMap((seg) =>
      seg.stages.length > 0 ? [[`${role}/${seg.name}`, Object.fromEntries(seg.stages[0]!.metrics.flatMap((x) => (x.value === undefined ? [] : [[x.name, x.value]])))]] : []))),
    watchdogRestarts: Object.fromEntries([...m.path.stats].map(([role, snap]) => [role, snap.watchdogRestarts])),
    wallMs: m.wallMs,
  };
}

/** Runs one case with one kind of forwarding in a lab of its own; every process and namespace goes at the end. */
export async function runCase(spec: CaseSpec, forwarding: Forwarding): Promise<RunResult> {
  const began = Date.now();
  const lab = NetnsLab.create(["origin", "a", "b", "sink"]);
  const dir = mkdtempSync(join(tmpdir(), `msm-cc-${spec.id}-${forwarding}-`));
  const proxies: NsProxy[] = [];
  try {
    const configs = proxyConfigs(lab, spec, forwarding);
    setCapacity(lab, spec.phases[0]!.capacityBps, spec.queueMs, true);
    proxies.push(await startNsProxy(lab, "a", configs.a), await startNsProxy(lab, "b", configs.b));
    const flows = Array.from({ length: spec.flows }, (_, i) => i);
    const relays = flows.map((i) => lab.spawn("b", process.execPath, [
      nsTool("cc-relay"), "--port", String(port.relay(i)), "--count", "2", "--to", `127.0.0.1:${port.proxy(i)}`,
      "--from-port", String(port.relayFrom(i)), "--delay-ms", String(spec.oneWayDelayMs),
    ], { stdin: true }));
    const sinks = flows.map((i) => lab.spawn("sink", process.execPath, [
      nsTool("cc-sink"), "--port", String(port.sink(i)), "--ssrc", String(ssrcOf(i)), "--out", join(dir, `sink${i}.json`),
    ], { stdin: true }));
    await Promise.all([...relays, ...sinks].map((p) => p.ready(/^ready$/m)));
    for (const p of [...proxies.map((x) => x.process), ...relays, ...sinks]) favour(p);
    const watch = await PathWatch.start(lab, "origin", "sink", proxies);

    // plain forwarding: no congestion control, so the origin sends at its maximum
    const startBps = forwarding === "msm" ? spec.media.startBps : spec.media.maxBps;
    const origins = flows.map((i) => lab.spawn("origin", process.execPath, [
      nsTool("cc-sender"), "--address", lab.address("a", "origin"), "--port", String(port.proxy(i)), "--local-port", String(port.origin(i)),
      "--ssrc", String(ssrcOf(i)), "--start-bps", String(startBps), "--min-bps", String(spec.media.minBps), "--max-bps", String(spec.media.maxBps),
      "--duration-s", String(spec.durationS), "--out", join(dir, `origin${i}.json`),
    ]));
    origins.forEach(favour);
    const steps = [{ atMs: Date.now(), capacityBps: spec.phases[0]!.capacityBps }];
    const timers = spec.phases.slice(1).map((phase) => setTimeout(() => {
      setCapacity(lab, phase.capacityBps, spec.queueMs, false);
      steps.push({ atMs: Date.now(), capacityBps: phase.capacityBps });
    }, phase.startS * 1000 - (Date.now() - steps[0]!.atMs)));
    const backstop = setTimeout(() => origins.forEach((o) => o.kill()), (spec.durationS + 30) * 1000);
    const codes = await Promise.all(origins.map((o) => o.exited));
    clearTimeout(backstop);
    timers.forEach(clearTimeout);
    const endMs = Date.now();
    codes.forEach((code, i) => {
      if (code !== 0) throw new Error(`origin ${i} exited with ${code}:\n${origins[i]!.output().slice(-2000)}`);
    });
    // what is still queued (pacer, tbf, the relay's delay) arrives: every sink has had two whole
    // seconds without a packet (a fixed wait was too short on a loaded machine)
    await pathDrained(sinks, 30_000);
    const path = await watch.since();
    const relayReports = await Promise.all(relays.map((r, i) => stopReporting<RelayReport>(r, `relay ${i}`)));
    await Promise.all(sinks.map((s, i) => stopReporting(s, `sink ${i}`)));
    const read = <T>(name: string): T => JSON.parse(readFileSync(join(dir, name), "utf8")) as T;
    return measure({
      spec, forwarding, steps, endMs, path, relays: relayReports,
      senders: flows.map((i) => read<SenderTimeline>(`origin${i}.json`)),
      sinks: flows.map((i) => read<SinkPackets>(`sink${i}.json`)),
      wallMs: Date.now() - began,
    });
  } finally {
    await Promise.allSettled(proxies.map((p) => p.stop()));
    lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const mbps = (bps: number): string => (bps / 1e6).toFixed(2);

/** The runs as a markdown table: one row per case and forwarding. */
export function resultsTable(results: readonly RunResult[]): string {
  const rows = [
    "| case | forwarding | utilisation, whole run (after start-up) | start-up (s) | per phase (capacity Mbps: utilisation) | queuing delay p50 / p95 (ms) | loss | lost packets, where | unexplained | flows' mean rate (Mbps) | Jain |",
    "|---|---|--:|--:|---|--:|--:|---|--:|---|--:|",
  ];
  for (const r of results) {
    const phases = r.phases.map((p) => `${mbps(p.capacityBps)}: ${pct(p.utilisation)}`).join(", ");
    const where = Object.entries(r.loss.drops).map(([k, n]) => `${k} ${n}`).join(", ") || "-";
    rows.push(`| ${r.caseId} | ${r.forwarding} | ${pct(r.utilisationWholeRun)} (${pct(r.utilisation)}) | ${r.rampUpS} | ${phases} | ${r.queueDelayMs.p50.toFixed(1)} / ${r.queueDelayMs.p95.toFixed(1)} | ${pct(r.loss.ratio)} (${r.loss.lost}/${r.loss.sent}) | ${where} | ${r.loss.unexplained} | ${r.flows.map((f) => mbps(f.meanBps)).join(", ")} | ${r.jain.toFixed(3)} |`);
  }
  return rows.join("\n");
}
