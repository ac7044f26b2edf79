// Turns a results object into text tables (stdout), SVG charts and bench/RESULTS.md.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { renderLineChart } from "./chart.js";
import { markdownTable, median, table } from "./common.js";
import { e2eTargets, fasterRuntime, gbps, ioNotes, type E2eResult, type HostSummary, type Target } from "./e2e.js";
import type { MicroResult } from "./micro.js";
import { scaleTables, scaleTargetText, scaleVerdict, TARGET_RATE_PER_STREAM, TARGET_SEGMENTS, type ScaleResult } from "./scale.js";
import type { SrtpResult } from "./srtp.js";
import type { FecResult } from "./fec.js";
import { fanoutLabel, fanoutTargets, type FanoutResult } from "./fanout.js";
import type { WorkersResult } from "./workers.js";
import { streamsTables, type StreamsResult } from "./streams.js";
import { tailNotes, tailRows, tailTargets, type TailResult } from "./tail.js";

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly bun: string | null;
  readonly gstreamer: string | null;
  readonly rtpengine: string | null;
}

export interface BenchResults {
  readonly version: 2;
  readonly date: string;
  readonly mode: "quick" | "full";
  readonly command: string;
  readonly machine: Machine;
  readonly filter: string;
  readonly parts: readonly string[];
  readonly durationS: number;
  readonly micro?: MicroResult;
  readonly srtp?: SrtpResult;
  readonly fec?: FecResult;
  readonly e2e?: E2eResult;
  /** p99.9 at 10k pps in paired, interleaved trials (judges the tail target when present). */
  readonly tail?: TailResult;
  readonly scale?: ScaleResult;
  /** The largest scale level again under Bun (full runs). */
  readonly scaleBun?: ScaleResult;
  readonly fanout?: FanoutResult;
  readonly workers?: WorkersResult;
  readonly streams?: StreamsResult;
}

function fmt(n: number | null | undefined, digits = 1): string {
  return n === null || n === undefined || Number.isNaN(n) ? "-" : n.toFixed(digits);
}

function kpps(n: number): string {
  return `${(n / 1000).toFixed(1)}k`;
}

function machineLine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Linux ${m.kernel}; Node ${m.node}, Bun ${m.bun ?? "not found"}, ` +
    `GStreamer ${m.gstreamer ?? "not found"}, rtpengine ${m.rtpengine ?? "not found"}`;
}

// ---- (a) in process ----

export function microRows(m: MicroResult): string[][] {
  const names = m.chainNames;
  const rows = [["size", "batch", ...names.map((n) => (m.cells[0]?.chains.find((c) => c.chain === n)?.derived ? `${n} *` : n)), "heap B/pkt, 1 stage", "heap B/pkt, 2 stages"]];
  for (const c of m.cells) {
    const ns = (n: string): string => {
      const x = c.chains.find((y) => y.chain === n);
      return x ? `${fmt(x.nsPerPacket)}${x.overNoopNs === null ? "" : ` (+${fmt(x.overNoopNs)})`}` : "-";
    };
    // chains measured on their own (not differences), by their number of stages
    const heap = (twoStages: boolean): string => fmt(Math.max(...c.chains.filter((x) => !x.derived && x.chain.includes("->") === twoStages).map((x) => x.heapBytesPerPacket)), 1);
    rows.push([`${c.size} B`, String(c.batch), ...names.map(ns), heap(false), heap(true)]);
  }
  return rows;
}

function microNotes(m: MicroResult): string[] {
  const out = [
    `ns per packet through the runtime's ChainRunner, median of ${m.repeats} samples of about ${m.sampleMs} ms; in parentheses, over the noop chain (what the filters add to the host's copy-in, call and read-back). SRTP suite ${m.srtpSuite}.`,
    "* measured behind an srtp protect stage, whose chain's time is subtracted (an SRTP packet is accepted once, so the run makes a fresh stream as it goes): the figure is what the chain adds behind that stage, its stages' host cost included.",
    "heap B/pkt: the most V8 heap a one-stage and a two-stage chain allocated per packet (WebAssembly memory not counted). About 96 B per packet per stage after the first is the view through which the runtime copies one stage's output into the next stage's memory.",
  ];
  if (m.otherCpuPct !== null && m.otherCpuPct > 15) out.push(`warning: other processes used ${m.otherCpuPct}% of a core during the in-process runs: the machine was not quiet`);
  return out;
}

// ---- (b) end to end ----

function proxyOf(e: E2eResult): HostSummary | undefined {
  return e.hosts.find((h) => h.host === "proxy+filter");
}

export function e2eRows(e: E2eResult): string[][] {
  const proxy = proxyOf(e);
  const rows = [["relay", "max pps (median)", "range", "max Gbit/s", `${proxy?.label ?? "proxy"} / this`, "CPU us/pkt near max", `CPU us/pkt at ${kpps(e.cpuRatePps)} pps`, "peak RSS MiB"]];
  for (const h of e.hosts) {
    const vs = h.host === "direct" || !proxy || h.maxPps === 0 ? "" : `${(proxy.maxPps / h.maxPps).toFixed(2)}x`;
    const atRate = h.sweep.find((p) => p.offeredPps === e.cpuRatePps);
    const cpuAt = fmt(atRate?.cpuUsPerPacket, 2) + (atRate && atRate.lossPct >= e.maxLossPct ? ` (loss ${atRate.lossPct}%)` : "");
    const batch = e.batchSize && h.host.startsWith("proxy") ? ` [batchSize ${e.batchSize}]` : "";
    rows.push([h.label + batch + (h.boundLimited && h.host !== "direct" ? " (a lower bound)" : ""), kpps(h.maxPps), `${kpps(h.minPps)}-${kpps(h.maxOfRepeatsPps)}`, fmt(gbps(h.maxPps, e.size), 2), vs,
      fmt(h.cpuUsPerPacket, 2), h.host === "direct" ? "-" : cpuAt, h.peakRssBytes === null ? "-" : fmt(h.peakRssBytes / 2 ** 20, 0)]);
  }
  return rows;
}

export function latencyRows(e: E2eResult): string[][] {
  const direct = e.hosts.find((h) => h.host === "direct");
  const head = ["relay"];
  for (const r of e.latencyRates) head.push(`p50 @${kpps(r)}`, `p99 @${kpps(r)}`, `p99.9 @${kpps(r)}`);
  head.push(`p99 @${kpps(e.latencyRates[0] ?? 0)} over direct`);
  const rows = [head];
  for (const h of e.hosts) {
    const row = [h.label];
    for (const r of e.latencyRates) {
      const p = h.sweep.find((x) => x.offeredPps === r);
      const lossy = p !== undefined && p.lossPct >= e.maxLossPct;
      const l = p?.latencyUs;
      row.push(fmt(l?.p50), fmt(l?.p99), fmt(l?.p999) + (lossy ? ` (loss ${p.lossPct}%)` : ""));
    }
    const mine = h.sweep.find((x) => x.offeredPps === e.latencyRates[0])?.latencyUs?.p99;
    const base = direct?.sweep.find((x) => x.offeredPps === e.latencyRates[0])?.latencyUs?.p99;
    row.push(h.host === "direct" || mine === undefined || base === undefined ? "-" : fmt(mine - base));
    rows.push(row);
  }
  return rows;
}

function targetRows(targets: readonly Target[]): string[][] {
  return [["target", "where we stand", "verdict"], ...targets.map((t) => [t.what, t.value, t.verdict ?? (t.met === null ? "not measured" : t.met ? "met" : "NOT MET")])];
}

export function allTargets(r: BenchResults): Target[] {
  const targets = measuredTargets(r);
  // a quick run's 4-step search lands on a coarse grid of rates: its ratios judge nothing
  return r.mode === "quick" ? targets.map((t) => ({ ...t, verdict: t.met === null ? (t.verdict ?? "not measured") : "not judged (quick run)" })) : targets;
}

/**
 * Every target, issue #14's first: each from this run's figures, "not run" when its part (or
 * its relay) was not in the run. Older targets follow, for the parts that ran.
 */
function measuredTargets(r: BenchResults): Target[] {
  const out: Target[] = withTailTargets(e2eTargets(r.e2e, r.filter), r.tail);
  const scaleTarget = (sc: ScaleResult): Target => ({
    what: `${scaleTargetText(sc)} (${sc.runtime === "bun" ? "Bun" : "Node"})`,
    value: scaleSummary(sc),
    met: sc.target.met,
    ...(sc.target.met !== null && { verdict: scaleVerdict(sc).replace(/^MET$/, "met") }),
  });
  const nodeScaleWhat = `${TARGET_SEGMENTS.toLocaleString("en-US")} segments x ${TARGET_RATE_PER_STREAM} pps in one proxy within 1 GiB RSS, no stream losing packets (Node)`;
  if (!r.scale) out.push({ what: nodeScaleWhat, value: "the scale part did not run", met: null, verdict: "not run" });
  else if (r.scale.target.met === null) out.push({ what: nodeScaleWhat, value: r.scale.target.why, met: null, verdict: "not run" });
  else out.push(scaleTarget(r.scale));
  if (r.scaleBun) out.push(scaleTarget(r.scaleBun));
  if (r.srtp) out.push({ what: r.srtp.target.what, value: `${r.srtp.target.msmGbps.toFixed(2)} Gbit/s; ${fmt(r.srtp.target.vsLibsrtpCrypto, 2)}x libsrtp's crypto time`, met: r.srtp.target.met });
  if (r.fec) out.push({ what: r.fec.target.what, value: `worst ${fmt(r.fec.target.worstNs)} ns`, met: r.fec.target.met });
  if (r.fanout) out.push(...fanoutTargets(r.fanout));
  return out;
}

/**
 * The p99.9 targets from the tail part's paired trials when it ran (a p99.9 from one trial per
 * relay, minutes apart, compares moments more than relays), else the end-to-end sweep's.
 */
function withTailTargets(targets: Target[], tail: TailResult | undefined): Target[] {
  if (!tail) return targets;
  const paired = tailTargets(tail);
  const runtimeOf = (t: Target): string => t.what.slice(t.what.lastIndexOf("("));
  // e2eTargets always has one per runtime; a runtime the part could not measure keeps the sweep's
  return targets.map((t) => (t.what.startsWith("p99.9 latency") ? (paired.find((p) => runtimeOf(p) === runtimeOf(t)) ?? t) : t));
}

/** The target's levels in a line: per rate, RSS and streams that lost packets; or why none ran. */
function scaleSummary(sc: ScaleResult): string {
  const rate = sc.target.ratePerStream;
  const rows = sc.rows.filter((x) => x.segments === sc.target.segments && (rate === undefined || x.ratePerStream === rate));
  if (rows.length === 0) {
    const why = sc.target.why;
    return /^\d+ segments not run/.test(why) ? why : `not run: ${why.replace(/^the proxy did not run \d+ segments: /, "").split(":").slice(0, 3).join(":")}`;
  }
  return rows.map((x) => `${x.ratePerStream} pps/stream: ${x.peakRssBytes === undefined ? "" : "peak "}${fmt((x.peakRssBytes ?? x.rssBytes) / 2 ** 20, 0)} MiB, ${x.streamsWithLoss} of ${x.segments} streams lost packets` +
    (x.generatorShort ? ` (the harness offered ${kpps(x.achievedPps)} of ${kpps(x.offeredPps)} pps; ${x.proxyDrops} dropped by the proxy)` : "")).join("; ");
}

function stageNote(e: E2eResult): string | undefined {
  const h = proxyOf(e);
  const near = h?.repeats.map((s) => s.atMax).filter((t) => t?.stageNsPerPacket !== undefined) ?? [];
  if (!h || near.length === 0) return undefined;
  const ns = median(near.map((t) => t!.stageNsPerPacket!));
  const batch = median(near.map((t) => t!.stageMeanBatch ?? NaN));
  return `${h.label} near its max: the proxy counted ${fmt(ns)} ns/packet in the filter stage (copy in, call, read back) at a mean batch of ${fmt(batch)} packets`;
}

function runtimeNote(e: E2eResult): string | undefined {
  const runtime = fasterRuntime(e.hosts);
  if (!runtime) return undefined;
  const [faster, other] = runtime.faster === "node" ? ["Node", "Bun"] : ["Bun", "Node"];
  return `runtime: with the same chain the proxy's max rate under ${faster} is ${runtime.ratio.toFixed(2)}x that under ${other}`;
}

/** The proxy with batched I/O against the same proxy with node:dgram I/O: max rate and CPU per packet. */
function ioNote(e: E2eResult): string | undefined {
  const batched = proxyOf(e);
  const dgram = e.hosts.find((h) => h.host === "proxy+filter@dgram");
  if (!batched || !dgram || dgram.maxPps === 0) return undefined;
  const cpu = (h: HostSummary): number | null | undefined => h.sweep.find((p) => p.offeredPps === e.cpuRatePps)?.cpuUsPerPacket;
  const a = cpu(batched);
  const b = cpu(dgram);
  const cpuPart = a != null && b != null ? `, ${a} against ${b} us CPU per packet at ${kpps(e.cpuRatePps)} pps` : "";
  return `I/O: the proxy with its default I/O (io: auto) reaches ${(batched.maxPps / dgram.maxPps).toFixed(2)}x the max rate of the same proxy with node:dgram I/O (io: dgram)${cpuPart}`;
}

/** Why a relay counted by sequence number has no latency. */
function srtpNote(e: E2eResult): string | undefined {
  const h = e.hosts.find((x) => x.host === "proxy+srtp");
  return h ? `${h.label}: the srtp stage encrypts the send stamp, so the sink counts its packets by RTP sequence number and it has no latency; Gbit/s counts the ${e.size}-byte packets offered (the tag adds 10 bytes on the wire)` : undefined;
}

function e2eNotes(e: E2eResult): string[] {
  return [stageNote(e), runtimeNote(e), ioNote(e), ...ioNotes(e.hosts), srtpNote(e), ...e.warnings.map((w) => `warning: ${w}`)].filter((x): x is string => x !== undefined);
}

// ---- (g) workers ----

export function workersRows(w: WorkersResult): string[][] {
  const first = w.rows[0];
  const rows = [["workers", "segments", "max pps (median)", "range", "per worker pps", `/ ${first ? `${first.workers} worker${first.workers === 1 ? "" : "s"}` : "first"}`, "CPU us/pkt near max", "proxy CPU % near max", "generator / sink CPU %", "busiest worker's share"]];
  for (const r of w.rows) {
    rows.push([String(r.workers) + (r.boundLimited ? " (a lower bound)" : ""), String(w.segments), kpps(r.maxPps), `${kpps(r.minPps)}-${kpps(r.maxOfRepeatsPps)}`, kpps(r.perWorkerPps),
      r.vsFirst === null ? "-" : `${r.vsFirst.toFixed(2)}x`, fmt(r.cpuUsPerPacket, 2), fmt(r.proxyCpuPct, 0), `${fmt(r.generatorCpuPct, 0)} / ${fmt(r.sinkCpuPct, 0)}`, r.busiestWorkerPct === null ? "-" : `${fmt(r.busiestWorkerPct, 0)}%`]);
  }
  return rows;
}

function workersNotes(w: WorkersResult): string[] {
  return [
    w.method,
    ...ioNotes(w.rows),
    "busiest worker's share: of the packets the proxy's segments took in near the max, the share of the worker that took the most (50% on 2 workers is an even spread).",
    `This machine has ${w.cores} cores, shared by the proxy (its workers and its main thread), the generator and the sink; the harness alone reaches ${w.ceilingPps === null ? "?" : kpps(w.ceilingPps)} pps. Where the proxy's workers outnumber the cores left to them, per-worker figures show the machine, not the proxy.`,
    ...w.warnings.map((x) => `warning: ${x}`),
  ];
}

function workersHeading(w: WorkersResult): string {
  return `(g) Workers: the chain [${w.chain}] on 1 to ${Math.max(...w.rows.map((r) => r.workers), 1)} workers, ${w.segments} segments, ${w.size} B, max aggregate rate at loss < ${w.maxLossPct}% (${w.trialMs} ms trials, median of ${w.repeats})`;
}

/** Charts of the sweep: delivered rate, p50 and p99 latency against the offered rate. */
export function e2eCharts(e: E2eResult): Record<string, string> {
  const series = (pick: (p: HostSummary["sweep"][number]) => number | null | undefined) => e.hosts.map((h) => ({
    name: h.label,
    dashed: h.host === "direct",
    points: h.sweep.map((p): [number, number] => [p.offeredPps, pick(p) ?? NaN]),
  }));
  const x = `offered packets/s (${e.size} B RTP, loopback)`;
  return {
    throughput: renderLineChart({ title: "Delivered against offered rate", xLabel: x, yLabel: "delivered packets/s", series: series((p) => p.deliveredPps), diagonal: true }),
    "latency-p50": renderLineChart({ title: "One-way latency, p50", xLabel: x, yLabel: "microseconds", series: series((p) => p.latencyUs?.p50), yLog: true }),
    "latency-p99": renderLineChart({ title: "One-way latency, p99", xLabel: x, yLabel: "microseconds", series: series((p) => p.latencyUs?.p99), yLog: true }),
  };
}

// ---- (c) SRTP ----

export function srtpRows(r: SrtpResult): string[][] {
  const rows = [["suite", "size", "op", "msm ns", "msm wasm ns", "node ns", "libsrtp ns", "libsrtp crypto ns", "msm Gbit/s", "node Gbit/s", "libsrtp Gbit/s", "msm/node", "msm/libsrtp"]];
  const keys = [...new Set(r.cells.map((c) => `${c.suite}|${c.size}|${c.op}`))];
  for (const key of keys) {
    const [suite, size, op] = key.split("|") as [string, string, string];
    const get = (impl: string) => r.cells.find((c) => c.suite === suite && String(c.size) === size && c.op === op && c.impl === impl);
    const msm = get("msm");
    const wasm = get("msm-wasm");
    const node = get("node");
    const lib = get("libsrtp");
    const crypto = get("libsrtp-crypto");
    const ratioOf = (a: number | undefined, b: number | undefined): string | undefined => (a === undefined || b === undefined || b <= 0 ? undefined : (a / b).toFixed(2));
    const vsLib = ratioOf(msm?.nsPerPacket, lib?.nsPerPacket);
    const vsCrypto = ratioOf(msm?.nsPerPacket, crypto?.nsPerPacket);
    rows.push([suite, `${size} B`, op, fmt(msm?.nsPerPacket), fmt(wasm?.nsPerPacket), fmt(node?.nsPerPacket), fmt(lib?.nsPerPacket), fmt(crypto?.nsPerPacket),
      fmt(msm?.gbps, 2), fmt(node?.gbps, 2), fmt(lib?.gbps, 2), ratioOf(msm?.nsPerPacket, node?.nsPerPacket) ? `${ratioOf(msm?.nsPerPacket, node?.nsPerPacket)}x` : "-",
      vsLib === undefined ? "-" : `${vsLib}x${vsCrypto === undefined ? "" : ` (${vsCrypto}x)`}`]);
  }
  return rows;
}

function srtpNotes(r: SrtpResult): string[] {
  const noop = Object.entries(r.noopNs).map(([size, ns]) => `${size} B ${fmt(ns)} ns`).join(", ");
  const out = [
    `msm = the srtp filter as a one-stage chain in the runtime's chain runner at batch ${r.batch}, the host's share included (a no-op stage: ${noop}), with ${r.hostCrypto}; msm wasm = the same filter given no host crypto (its WebAssembly AES and SHA-1, the fallback); node = the same transform on node:crypto, a cipher per packet; libsrtp = ${r.libsrtp}: the element's cost (libsrtp plus buffer handling), and "crypto" = that minus the same element with the null cipher (a lower bound).`,
    "Gbit/s counts the plaintext RTP packet (12-byte header + payload) per second on one core (libsrtp: the element's figure); msm/x > 1 means the filter is slower; msm/libsrtp in parentheses is against the crypto-only figure.",
  ];
  if (r.otherCpuPct !== null && r.otherCpuPct > 15) out.push(`warning: other processes used ${r.otherCpuPct}% of a core during the in-process SRTP runs: the machine was not quiet`);
  return out;
}

// ---- (e) FEC ----

export function fecRows(r: FecResult): string[][] {
  const rows = [["matrix", "size", "encode ns", "(filter)", "js XOR ns", "decode ns", "decode, 1 lost per row ns", "ns per rebuilt packet", "noop ns", "overhead"]];
  for (const c of r.cells) {
    rows.push([c.shape, `${c.size} B`, fmt(c.encodeNs), fmt(c.encodeFilterNs), fmt(c.jsEncodeNs), fmt(c.decodeNs), fmt(c.decodeLossNs), fmt(c.recoveryNs, 0), fmt(c.noopNs), `${(c.overhead * 100).toFixed(1)}%`]);
  }
  return rows;
}

function fecNotes(r: FecResult): string[] {
  return [
    `Per media packet, batch ${r.batch}. encode = the fec filter encoding as a one-stage chain in the runtime's chain runner, the host's share included; (filter) = that less the no-op stage (noop: the host's copy in, call and read back); js XOR = the encoder's XOR (row and column accumulators) in JavaScript over Uint32 words, no host: what the same work costs without WebAssembly SIMD.`,
    "decode = the decoder over the encoder's output (media and repair); \"1 lost per row\" drops one media packet per row (1-D: per matrix), which the decoder rebuilds; ns per rebuilt packet = the difference over the packets rebuilt, which includes holding the packets behind the gap until the repair comes and releasing them in order (1-D waits for the column repair, up to a matrix later). overhead = repair bytes / media bytes on the wire.",
  ];
}

// ---- (f) fan-out ----

export function fanoutRows(r: FanoutResult): string[][] {
  const rows = [["destinations", "relay", "input pps", "us / input packet", "us / packet sent", "idle CPU ms/s", "us per extra destination", "/ multiudpsink (per packet sent)", "kernel share", "delivered"]];
  for (const n of r.counts) {
    for (const c of r.cells.filter((x) => x.destinations === n)) {
      const delivered = `${fmt(c.deliveredPct, c.deliveredPct === 100 ? 0 : 3)}%${c.unexplainedLoss > 0 ? ` (${c.unexplainedLoss} unexplained)` : ""}`;
      rows.push([String(n), fanoutLabel(c.relay), String(c.inputPps), fmt(c.usPerInputPacket, 2), fmt(c.usPerPacketSent, 2), c.idleMsPerS === undefined ? "-" : fmt(c.idleMsPerS, 2), fmt(c.usPerExtraDestination, 2),
        c.vsMultiudpsink === null ? "-" : `${c.vsMultiudpsink.toFixed(2)}x`, c.systemPct === null ? "-" : `${c.systemPct}%`, delivered]);
    }
  }
  return rows;
}

function fanoutNotes(r: FanoutResult): string[] {
  return [
    `${r.size} B RTP in; the relay sends ${kpps(r.sendsPerSecond)} packets/s whatever the number of destinations (input = that / N). CPU is the relay's process tree over a ${r.trialMs} ms trial and its drain; per input packet, and per packet sent (every copy that reached the sink's socket). Median of ${r.rounds} interleaved rounds; "/ multiudpsink" is the median of the rounds' ratios (below 1: cheaper than GStreamer).`,
    "us per extra destination: the slope of us per input packet from the same relay's previous N: what one more destination costs once the receive is paid. " +
      (r.cells.some((c) => c.idleMsPerS !== undefined)
        ? "Idle CPU: the relay's CPU over a quiet window before each trial, with no input (its timers, collector and helper threads; median); the slope takes that rate over each trial out first, since at N = 1000 the input is only " +
          `${Math.round(r.sendsPerSecond / 1000)} packets/s and what runs by the clock would otherwise count per destination. `
        : "Idle CPU was not measured in this run: the slope has it in. ") +
      `Kernel share: the relay's system time over its user + system time (/proc/PID/stat), all rounds together: the rest is the relay's own code. Delivered: copies that arrived over input x N, the worst round; loss no kernel or proxy counter explains is shown.`,
    ...lossNote(r),
    ...r.warnings.map((w) => `warning: ${w}`),
  ];
}

/** Where the copies that did not arrive went, over all trials (none: no note). */
function lossNote(r: FanoutResult): string[] {
  const sum = (pick: (t: FanoutResult["trials"][number]) => number): number => r.trials.reduce((n, t) => n + pick(t), 0);
  const missing = sum((t) => t.missing);
  if (missing === 0) return [];
  const atRelay = sum((t) => t.relayKernelDrops ?? 0);
  return [`${missing} copies missing over all trials: the kernel dropped ${atRelay} packets at the relays' listen sockets (${sum((t) => (t.relayKernelDrops ?? 0) * t.destinations)} copies) and ${sum((t) => t.sinkKernelDrops ?? 0)} at the sink's socket; the proxy dropped ${sum((t) => t.proxyDrops ?? 0)}. A relay starved of CPU by the rest of the machine drops at its listen socket; the figures per packet count what it received.`];
}

// ---- output ----

export function printText(r: BenchResults): string {
  const out: string[] = [];
  out.push(`MSM benchmark (${r.mode}) ${r.date}, ${r.durationS} s: ${machineLine(r.machine)}`);
  const targets = allTargets(r);
  if (targets.length > 0) out.push("", "Targets:", table(targetRows(targets), 2));
  if (r.micro) {
    out.push("", "(a) In-process cost per packet through the chain runner, ns:", table(microRows(r.micro), 2));
    out.push(...microNotes(r.micro));
  }
  if (r.srtp) {
    const x = r.srtp;
    out.push("", `(c) SRTP per packet, one core (median of ${x.repeats} x ${x.packetsPerSample} packets; libsrtp: median of ${x.gstRepeats} runs of ${x.gstPackets} packets):`);
    out.push(table(srtpRows(x), 3), ...srtpNotes(x));
  }
  if (r.fec) {
    const x = r.fec;
    out.push("", `(e) FEC per media packet, one core (median of ${x.repeats} samples of ${x.packetsPerSample} packets):`);
    out.push(table(fecRows(x), 2), ...fecNotes(x));
  }
  if (r.e2e) {
    const e = r.e2e;
    out.push("", `(b) End to end, ${e.size} B RTP on 127.0.0.1, max rate at loss < ${e.maxLossPct}%, ${e.trialMs} ms trials, median of ${e.repeats}${e.pinned ? ", pinned" : ""}:`);
    out.push(table(e2eRows(e), 1));
    out.push("", "One-way latency, microseconds (send stamp in the packet to the sink's receive):", table(latencyRows(e), 1));
    out.push(...e2eNotes(e));
  }
  if (r.tail) out.push("", `(i) Tail latency at ${r.tail.ratePps} pps, paired interleaved trials:`, table(tailRows(r.tail), 2), ...tailNotes(r.tail));
  for (const sc of [r.scale, r.scaleBun]) if (sc) out.push("", scaleTables(sc).text);
  if (r.fanout) {
    out.push("", "(f) Fan-out, CPU per packet against the number of destinations:", table(fanoutRows(r.fanout), 2), ...fanoutNotes(r.fanout));
  }
  if (r.workers) out.push("", `${workersHeading(r.workers)}:`, table(workersRows(r.workers), 1), ...workersNotes(r.workers));
  if (r.streams) {
    for (const t of streamsTables(r.streams)) out.push("", `${t.title}:`, table(t.rows, t.alignLeft), ...t.notes);
    out.push(r.streams.method, ...r.streams.warnings.map((w) => `warning: ${w}`));
  }
  return out.join("\n");
}

/** The command that reproduces one part of a run: the run's own command, narrowed to the part. */
function reproduce(r: BenchResults, part: string): string {
  const words = r.command.split(" ");
  const i = words.indexOf("--only");
  if (i >= 0) words.splice(i, 2);
  return `Reproduce: \`${[...words, "--only", part].join(" ")}\``;
}

function section(r: BenchResults, file: string, resultsDir: string): string {
  const stem = file.replace(/\.json$/, "");
  const out: string[] = [];
  out.push(`## ${r.date} (${r.mode}: ${r.parts.join(", ")})`, "");
  out.push(`- Machine: ${machineLine(r.machine)}`);
  out.push(`- Command: \`${r.command}\` (${r.durationS} s)`);
  out.push(`- Raw results: [\`${file}\`](results/${file})`, "");
  const targets = allTargets(r);
  if (targets.length > 0) out.push("### Targets", "", markdownTable(targetRows(targets), 2), "");
  if (r.micro) {
    out.push("### (a) In-process cost per packet, through the runtime's chain runner (ns)", "", reproduce(r, "micro"), "", markdownTable(microRows(r.micro), 2), "");
    out.push(...microNotes(r.micro).map((n) => `- ${n}`), "");
  }
  if (r.e2e) {
    const e = r.e2e;
    out.push(`### (b) End to end: max rate at loss < ${e.maxLossPct}% (${e.size} B, ${e.trialMs} ms trials, median of ${e.repeats}${e.pinned ? ", pinned" : ""})`, "");
    out.push(reproduce(r, "e2e"), "", markdownTable(e2eRows(e), 1), "");
    out.push(`### One-way latency (microseconds, from a send stamp in the packet; sweep of fixed offered rates)`, "");
    out.push(markdownTable(latencyRows(e), 1), "");
    out.push(...e2eNotes(e).map((n) => `- ${n}`), "");
    const charts = ["throughput", "latency-p50", "latency-p99"].filter((c) => existsSync(join(resultsDir, `${stem}-${c}.svg`)));
    if (charts.length > 0) {
      out.push(`Charts: the sweep, ${e.trialMs} ms per point, median of ${e.repeats}; a relay's line bends away from y = x where it starts losing packets, and its latency there is queueing.`, "");
      for (const c of charts) out.push(`![${c}](results/${stem}-${c}.svg)`, "");
    }
  }
  if (r.tail) {
    const x = r.tail;
    const rounds = x.runtimes[0]?.rounds.length ?? 0;
    out.push(`### (i) Tail latency at ${x.ratePps} pps: the proxy against the plain relay in paired, interleaved trials (${rounds} rounds of ${x.trialMs} ms)`, "");
    out.push(reproduce(r, "tail"), "", markdownTable(tailRows(x), 2), "", ...tailNotes(x).map((n) => `- ${n}`), "");
  }
  if (r.srtp) {
    const x = r.srtp;
    out.push(`### (c) SRTP per packet, one core (ns; median of ${x.repeats} samples of ${x.packetsPerSample} packets; libsrtp: median of ${x.gstRepeats} runs of ${x.gstPackets} packets)`, "");
    out.push(reproduce(r, "srtp"), "", markdownTable(srtpRows(x), 3), "", ...srtpNotes(x).map((n) => `- ${n}`), "");
  }
  if (r.fec) {
    const x = r.fec;
    out.push(`### (e) FEC per media packet, one core (ns; median of ${x.repeats} samples of ${x.packetsPerSample} packets)`, "");
    out.push(reproduce(r, "fec"), "", markdownTable(fecRows(x), 2), "", ...fecNotes(x).map((n) => `- ${n}`), "");
  }
  for (const sc of [r.scale, r.scaleBun]) {
    if (!sc) continue;
    const md = scaleTables(sc).markdown.split("\n");
    md.splice(2, 0, reproduce(r, "scale"), "");
    out.push(md.join("\n"), "");
  }
  if (r.fanout) {
    const x = r.fanout;
    out.push(`### (f) Fan-out: CPU per packet sent against the number of destinations (median of ${x.rounds} rounds of ${x.trialMs} ms)`, "");
    out.push(reproduce(r, "fanout"), "", markdownTable(fanoutRows(x), 2), "", ...fanoutNotes(x).map((n) => `- ${n}`), "");
  }
  if (r.workers) {
    const w = r.workers;
    out.push(`### ${workersHeading(w)}`, "", reproduce(r, "workers"), "", markdownTable(workersRows(w), 1), "", ...workersNotes(w).map((n) => `- ${n}`), "");
  }
  if (r.streams) {
    out.push("### (h) Streams: what per-stream stats cost", "", reproduce(r, "streams"), "", r.streams.method, "");
    for (const t of streamsTables(r.streams)) out.push(`#### ${t.title.replace(/^\(h\) Streams: /, "")}`, "", markdownTable(t.rows, t.alignLeft), "", ...t.notes.map((n) => `- ${n}`), "");
    if (r.streams.warnings.length > 0) out.push(...r.streams.warnings.map((w) => `- warning: ${w}`), "");
  }
  return out.join("\n");
}

/**
 * RESULTS.md from the newest default full run (`<date>.json`) and the newest default quick run
 * (`<date>-quick.json`) in bench/results/, then the full runs of some parts or other settings
 * (`<date>-<variant>.json`) made since that full run's day.
 */
export function renderResultsMarkdown(resultsDir: string): string {
  const files = existsSync(resultsDir) ? readdirSync(resultsDir).filter((f) => /^\d{4}-\d{2}-\d{2}.*\.json$/.test(f)).sort() : [];
  const all = files
    .map((f): [string, BenchResults] => [f, JSON.parse(readFileSync(join(resultsDir, f), "utf8")) as BenchResults])
    .filter(([, r]) => r.version === 2);
  const newest = (pattern: RegExp): [string, BenchResults] | undefined => [...all].reverse().find(([f]) => pattern.test(f));
  const out = [
    "# Benchmark results",
    "",
    "Generated by `bench/run.ts` from the JSON files in `results/`: the newest full run, the newest quick",
    "run, then full runs of some parts or with other settings since. How to run and how to read these",
    "figures: [docs/benchmarks.md](../docs/benchmarks.md).",
    "",
  ];
  const full = newest(/^\d{4}-\d{2}-\d{2}\.json$/);
  const quick = newest(/^\d{4}-\d{2}-\d{2}-quick\.json$/);
  for (const found of [full, quick]) if (found) out.push(section(found[1], found[0], resultsDir));
  const since = full?.[1].date ?? "";
  for (const [f, r] of all) {
    if (f !== full?.[0] && r.mode === "full" && r.date >= since) out.push(section(r, f, resultsDir));
  }
  return `${out.join("\n").trimEnd()}\n`;
}
