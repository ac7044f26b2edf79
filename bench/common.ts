// Small helpers shared by the benchmark files: paths, statistics, progress lines.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Verdict } from "../sdk/abi/constants.js";
import type { FilterInstance } from "../runtime/index.js";

/** The repository root, from a compiled file in dist/bench/. */
export const ROOT = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..");

export const DEFAULT_FILTER = join(ROOT, "filters", "validate", "build", "validate.wasm");
export const COUNTER_FILTER = join(ROOT, "test", "fixtures", "filters", "build", "counter.wasm");

/** Progress goes to stderr so that stdout carries only the tables. */
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
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

/** Where a timed stream left off: the next sequence number and arrival time. */
export interface StreamCursor {
  seq: number;
  arrivalUs: number;
}

/**
 * Feeds `count` packets (rounded up to whole batches) made from `template` to one context, the
 * way the chain runner does: stamp a sequence number (so the filter sees an in-order stream),
 * copy into the arena, one call per batch (`call` false times the copies alone), read verdicts.
 * Returns ns per packet, packets passed and packets fed; advances `cursor`.
 */
export function timedStream(
  inst: FilterInstance, ctx: number, template: Uint8Array, batch: number, count: number, cursor: StreamCursor, call: boolean,
): { ns: number; passed: number; fed: number } {
  const length = template.length;
  const iterations = Math.ceil(count / batch);
  let seq = cursor.seq;
  let arrival = cursor.arrivalUs;
  let passed = 0;
  const t0 = process.hrtime.bigint();
  for (let it = 0; it < iterations; it++) {
    for (let k = 0; k < batch; k++) {
      template[2] = (seq >>> 8) & 0xff;
      template[3] = seq & 0xff;
      seq = (seq + 1) & 0xffff;
      inst.putBatchPacket(k, template, 0, length, ctx, 0, 5004, arrival++);
    }
    inst.setClock(arrival, arrival);
    if (call) inst.runBatch(batch);
    for (let k = 0; k < batch; k++) if (inst.batchVerdict(k) === Verdict.Pass) passed++;
  }
  const fed = iterations * batch;
  const ns = Number(process.hrtime.bigint() - t0) / fed;
  cursor.seq = seq;
  cursor.arrivalUs = arrival;
  return { ns, passed, fed };
}
