// Turns a results object into text tables (stdout) and into bench/RESULTS.md.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { markdownTable, median, table } from "./common.js";
import type { E2eResult } from "./e2e.js";
import type { MicroResult } from "./micro.js";
import type { SrtpResult } from "./srtp.js";

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly node: string;
  readonly kernel: string;
}

export interface BenchResults {
  readonly version: 1;
  readonly date: string;
  readonly mode: "quick" | "full";
  readonly command: string;
  readonly machine: Machine;
  readonly filter: string;
  readonly micro?: MicroResult;
  readonly e2e?: E2eResult;
  readonly srtp?: SrtpResult;
}

function fmt(n: number | null | undefined, digits = 1): string {
  return n === null || n === undefined || Number.isNaN(n) ? "-" : n.toFixed(digits);
}

function kpps(n: number): string {
  return `${(n / 1000).toFixed(1)}k`;
}

export function microRows(m: MicroResult): string[][] {
  const f = m.filter;
  const rows = [["size", "batch", "copy", "noop", "counter", f, `${f}-noop`, `${f}-copy`, `${f}/copy`, `heap B/pkt (${f})`]];
  for (const c of m.cells) {
    const ns = (v: string): string => fmt(c.variants.find((x) => x.variant === v)?.nsPerPacket);
    const heap = c.variants.find((x) => x.variant === f)?.heapBytesPerPacket;
    rows.push([`${c.size} B`, String(c.batch), ns("copy"), ns("noop"), ns("counter"), ns(f), fmt(c.filterMinusNoop), fmt(c.filterMinusCopy), `${fmt(c.filterOverCopy, 2)}x`, fmt(heap, 1)]);
  }
  return rows;
}

export function e2eRows(e: E2eResult): string[][] {
  const plain = e.hosts.find((h) => h.host === "plain");
  const rows = [["path", "max pps (median)", "range", "CPU us/pkt near max", `CPU us/pkt at ${e.cpuRatePps ? kpps(e.cpuRatePps) : "a common rate"} pps`, "vs plain relay"]];
  for (const h of e.hosts) {
    const vs = h.host === "direct" || !plain || plain.maxPps === 0 ? "" : `${((h.maxPps / plain.maxPps) * 100).toFixed(0)}%`;
    const label = h.host === "direct" ? "generator -> sink (harness ceiling)" : h.host === "plain" ? "plain node:dgram relay (baseline)" : h.label;
    rows.push([label + (h.boundLimited && h.host !== "direct" ? " *" : ""), kpps(h.maxPps), `${kpps(h.minPps)}-${kpps(h.maxOfRepeatsPps)}`, fmt(h.cpuUsPerPacket, 2),
      fmt(h.cpuUsPerPacketAtFixedRate, 2) + (typeof h.lossPctAtFixedRate === "number" && h.lossPctAtFixedRate >= e.maxLossPct ? ` (loss ${h.lossPctAtFixedRate}%)` : ""), vs]);
  }
  return rows;
}

export function verdictLine(e: E2eResult, filter: string): string {
  if (!e.hosts.some((h) => h.host === "plain") || !e.hosts.some((h) => h.host.startsWith("proxy+"))) {
    return `target: proxy+${filter} >= 90% of the plain relay's max rate: not measured (needs plain and proxy+${filter})`;
  }
  const pct = (e.ratio * 100).toFixed(0);
  return `target: proxy+${filter} >= 90% of the plain relay's max rate: ${e.target.met ? "MET" : "NOT MET"} (${pct}%; empty chain ${(e.ratioEmptyChain * 100).toFixed(0)}%)`;
}

export function srtpRows(r: SrtpResult): string[][] {
  const rows = [["suite", "size", "op", "msm ns", "node ns", "libsrtp ns", "libsrtp crypto ns", "msm Gbit/s", "node Gbit/s", "libsrtp Gbit/s", "msm/node", "msm/libsrtp"]];
  const keys = [...new Set(r.cells.map((c) => `${c.suite}|${c.size}|${c.op}`))];
  for (const key of keys) {
    const [suite, size, op] = key.split("|") as [string, string, string];
    const get = (impl: string) => r.cells.find((c) => c.suite === suite && String(c.size) === size && c.op === op && c.impl === impl);
    const msm = get("msm");
    const node = get("node");
    const lib = get("libsrtp");
    const crypto = get("libsrtp-crypto");
    const ratioOf = (a: number | undefined, b: number | undefined): string | undefined => (a === undefined || b === undefined || b <= 0 ? undefined : (a / b).toFixed(2));
    const vsLib = ratioOf(msm?.nsPerPacket, lib?.nsPerPacket);
    const vsCrypto = ratioOf(msm?.nsPerPacket, crypto?.nsPerPacket);
    rows.push([suite, `${size} B`, op, fmt(msm?.nsPerPacket), fmt(node?.nsPerPacket), fmt(lib?.nsPerPacket), fmt(crypto?.nsPerPacket),
      fmt(msm?.gbps, 2), fmt(node?.gbps, 2), fmt(lib?.gbps, 2), ratioOf(msm?.nsPerPacket, node?.nsPerPacket) ? `${ratioOf(msm?.nsPerPacket, node?.nsPerPacket)}x` : "-",
      vsLib === undefined ? "-" : `${vsLib}x${vsCrypto === undefined ? "" : ` (${vsCrypto}x)`}`]);
  }
  return rows;
}

export function srtpTargetLine(r: SrtpResult): string {
  const t = r.target;
  const lib = t.vsLibsrtpCrypto === null ? "libsrtp not measured"
    : `${t.vsLibsrtpCrypto.toFixed(2)}x the time of libsrtp's cryptography alone, ${fmt(t.vsLibsrtp, 2)}x srtpenc's (${fmt(t.libsrtpGbps, 2)} Gbit/s): ${t.libsrtpMet ? "met" : "NOT met"}`;
  return `target: ${t.what}: ${t.met ? "MET" : "NOT MET"} (${t.msmGbps.toFixed(2)} Gbit/s: ${t.gbpsMet ? "met" : "NOT met"}; ${lib})`;
}

function srtpNotes(r: SrtpResult): string[] {
  const copies = Object.entries(r.copyNs).map(([size, ns]) => `${size} B ${fmt(ns)} ns`).join(", ");
  const out = [
    `msm = the srtp filter through the chain runner's loop at batch ${r.batch}, host copy included (the copy loop alone: ${copies}); node = the same transform on node:crypto, a cipher per packet; libsrtp = ${r.libsrtp}: the element's cost (libsrtp plus buffer handling), and "crypto" = that minus the same element with the null cipher (a lower bound).`,
    "Gbit/s counts the plaintext RTP packet (12-byte header + payload) per second on one core (libsrtp: the element's figure); msm/x > 1 means the filter is slower; msm/libsrtp in parentheses is against the crypto-only figure.",
  ];
  if (r.otherCpuPct !== null && r.otherCpuPct > 15) {
    out.push(`warning: other processes used ${r.otherCpuPct}% of a core during the in-process SRTP runs: the machine was not quiet`);
  }
  return out;
}

function microNoise(m: MicroResult): string | undefined {
  return m.otherCpuPct !== null && m.otherCpuPct > 15
    ? `other processes used ${m.otherCpuPct}% of a core during the in-process runs: the machine was not quiet`
    : undefined;
}

/** The proxy's own account of the time in the filter stage (runtime stats), for comparison with (a). */
function stageNote(e: E2eResult): string | undefined {
  const h = e.hosts.find((x) => x.host.startsWith("proxy+"));
  const near = h?.repeats.map((s) => s.atMax).filter((t) => t?.stageNsPerPacket !== undefined) ?? [];
  if (!h || near.length === 0) return undefined;
  const ns = median(near.map((t) => t!.stageNsPerPacket!));
  const batch = median(near.map((t) => t!.stageMeanBatch ?? NaN));
  return `${h.label} near its max: the proxy counted ${fmt(ns)} ns/packet in the filter stage (copy in, call, read back) at a mean batch of ${fmt(batch)} packets`;
}

export function printText(r: BenchResults): string {
  const out: string[] = [];
  out.push(`MSM benchmark (${r.mode}) ${r.date}: ${r.machine.cpu}, ${r.machine.cores} cores, node ${r.machine.node}`);
  if (r.micro) {
    out.push("", `(a) In-process cost per packet, ns (median of ${r.micro.repeats} x ${r.micro.packetsPerSample} packets):`);
    out.push(table(microRows(r.micro), 1));
    const noise = microNoise(r.micro);
    if (noise) out.push(`warning: ${noise}`);
  }
  if (r.e2e) {
    const e = r.e2e;
    out.push("", `(b) End to end, ${e.size} B RTP on 127.0.0.1, loss < ${e.maxLossPct}%, ${e.trialMs} ms trials, median of ${e.repeats}${e.pinned ? ", pinned" : ""}:`);
    out.push(table(e2eRows(e), 1));
    out.push(verdictLine(e, r.filter));
    const stage = stageNote(e);
    if (stage) out.push(stage);
    for (const w of e.warnings) out.push(`warning: ${w}`);
  }
  if (r.srtp) {
    const x = r.srtp;
    out.push("", `(c) SRTP per packet, one core (median of ${x.repeats} x ${x.packetsPerSample} packets; libsrtp: median of ${x.gstRepeats} runs of ${x.gstPackets} packets):`);
    out.push(table(srtpRows(x), 3));
    out.push(srtpTargetLine(x));
    for (const n of srtpNotes(x)) out.push(n);
  }
  return out.join("\n");
}

function section(r: BenchResults, file: string): string {
  const out: string[] = [];
  out.push(`## ${r.date} (${r.mode})`, "");
  out.push(`- Machine: ${r.machine.cpu}, ${r.machine.cores} cores, Node ${r.machine.node}, Linux ${r.machine.kernel}`);
  out.push(`- Command: \`${r.command}\``);
  out.push(`- Raw results: [\`${file}\`](results/${file})`, "");
  if (r.micro) {
    out.push(`### In-process cost per packet (ns, median of ${r.micro.repeats} samples of ${r.micro.packetsPerSample} packets)`, "");
    out.push(markdownTable(microRows(r.micro), 1), "");
    const noise = microNoise(r.micro);
    if (noise) out.push(`- Warning: ${noise}`, "");
  }
  if (r.e2e) {
    const e = r.e2e;
    out.push(`### End to end: max rate at loss < ${e.maxLossPct}% (${e.size} B, ${e.trialMs} ms trials, median of ${e.repeats}${e.pinned ? ", pinned" : ""})`, "");
    out.push(markdownTable(e2eRows(e), 1), "");
    out.push(`**${verdictLine(e, r.filter)}**`, "");
    const stage = stageNote(e);
    if (stage) out.push(`- ${stage}`);
    for (const w of e.warnings) out.push(`- Warning: ${w}`);
    if (stage || e.warnings.length > 0) out.push("");
  }
  if (r.srtp) {
    const x = r.srtp;
    out.push(`### SRTP per packet, one core (ns; median of ${x.repeats} samples of ${x.packetsPerSample} packets; libsrtp: median of ${x.gstRepeats} runs of ${x.gstPackets} packets)`, "");
    out.push(markdownTable(srtpRows(x), 3), "");
    out.push(`**${srtpTargetLine(x)}**`, "");
    for (const n of srtpNotes(x)) out.push(`- ${n}`);
    out.push("");
  }
  return out.join("\n");
}

/** RESULTS.md from the newest full run and the newest quick run in bench/results/. */
export function renderResultsMarkdown(resultsDir: string): string {
  const files = existsSync(resultsDir) ? readdirSync(resultsDir).filter((f) => /^\d{4}-\d{2}-\d{2}.*\.json$/.test(f)).sort() : [];
  const all = files.map((f): [string, BenchResults] => [f, JSON.parse(readFileSync(join(resultsDir, f), "utf8")) as BenchResults]);
  // the main sections come from runs with micro or e2e; a run of the SRTP part alone is shown after them
  const newest = (mode: "full" | "quick", pick: (r: BenchResults) => boolean): [string, BenchResults] | undefined =>
    [...all].reverse().find(([, r]) => r.mode === mode && pick(r));
  const out = [
    "# Benchmark results",
    "",
    "Generated by `bench/run.ts` from the JSON files in `results/`: the newest full run, then the newest",
    "quick run. How to run and how to read these figures: [docs/benchmarks.md](../docs/benchmarks.md).",
    "",
  ];
  const shown = new Set<string>();
  for (const mode of ["full", "quick"] as const) {
    const found = newest(mode, (r) => r.micro !== undefined || r.e2e !== undefined);
    if (found) {
      out.push(section(found[1], found[0]));
      shown.add(found[0]);
    }
  }
  // the newest SRTP figures (full before quick), unless a section above already has them
  const srtp = newest("full", (r) => r.srtp !== undefined) ?? newest("quick", (r) => r.srtp !== undefined);
  if (srtp && !shown.has(srtp[0]) && !all.some(([f, r]) => shown.has(f) && r.srtp !== undefined && f >= srtp[0])) out.push(section(srtp[1], srtp[0]));
  return `${out.join("\n").trimEnd()}\n`;
}
