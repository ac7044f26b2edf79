// A results object as bench/run.ts writes one, around the parts a test ran, for the report's tests.
import type { BenchResults } from "../../bench/report.js";

type Parts = Omit<BenchResults, "version" | "date" | "mode" | "command" | "machine" | "filter" | "parts" | "durationS">;

/** `parts`' results in a run dated 2026-01-02 on a made-up 2-core machine; `command` as RESULTS.md would quote it. */
export function benchResults(parts: readonly string[], results: Parts, more: { mode?: "full" | "quick"; command?: string } = {}): BenchResults {
  return {
    version: 2, date: "2026-01-02", mode: more.mode ?? "full", command: more.command ?? "test", filter: "validate", parts, durationS: 1,
    machine: { cpu: "test cpu", cores: 2, memoryGiB: 1, kernel: "k", node: process.version, bun: null, gstreamer: null, rtpengine: null },
    ...results,
  };
}
