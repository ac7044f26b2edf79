// Small helpers shared by the benchmark files: paths, statistics, progress lines.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ProgressBar } from "./progress-bar.js";

/** The repository root, from a compiled file in dist/bench/. */
export const ROOT = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..");

export const DEFAULT_FILTER = join(ROOT, "filters", "validate", "build", "validate.wasm");

let bar: ProgressBar | null = null;

/** Routes progress lines through the run's progress bar (null: plain lines). */
export function useProgressBar(b: ProgressBar | null): void {
  bar = b;
}

/** Progress goes to stderr so that stdout carries only the tables. */
export function progress(message: string): void {
  if (bar) bar.log(`[bench] ${message}`);
  else process.stderr.write(`[bench] ${message}\n`);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rounds to `digits` significant decimals for the JSON (keeps files readable). */
export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** A fixed-width text table: first row is the header. */
export function table(rows: readonly (readonly string[])[], alignLeft = 1): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  const line = (r: readonly string[]): string =>
    r.map((cell, c) => (c < alignLeft ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ").trimEnd();
  return [line(rows[0]!), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)].join("\n");
}

/** The same table as Markdown. */
export function markdownTable(rows: readonly (readonly string[])[], alignLeft = 1): string {
  const head = `| ${rows[0]!.join(" | ")} |`;
  const rule = `|${rows[0]!.map((_, c) => (c < alignLeft ? "---" : "---:")).join("|")}|`;
  return [head, rule, ...rows.slice(1).map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

/** Busy CPU time of the whole machine so far, microseconds (Linux /proc/stat), or null elsewhere. */
export function machineBusyUs(): number | null {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait
    const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!;
    return (busy * 1e6) / 100; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/** A trial is noisy when the rest of the machine used more than this (% of one core). */
export const NOISY_CPU_PCT = 15;

/** The scale part's packets: a 12-byte RTP header and a 16-byte stamp (bench/scale-load.ts). */
export const SCALE_MIN_PACKET_BYTES = 28;

/** Receive-buffer drops summed over local UDP ports lo..hi (Linux /proc/net/udp), or null elsewhere. */
export function udpDrops(lo: number, hi = lo): number | null {
  let text: string;
  try {
    text = readFileSync("/proc/net/udp", "utf8");
  } catch {
    return null;
  }
  let drops = 0;
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    const port = parseInt(f[1]!.split(":")[1]!, 16);
    if (port >= lo && port <= hi) drops += Number(f[f.length - 1]);
  }
  return drops;
}
