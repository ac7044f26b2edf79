// (congestion) The congestion filter on RFC 8867 sections 5.1 and 5.2, full length, against plain
// forwarding on the same path (test/lib/cc-lab.ts: the lab, the schedule, the RFC 8868 metrics).
// The four runs go side by side, each in its own namespaces. Writes the table and the charts
// (received rate against capacity, queuing delay, per second) into docs/congestion-eval.md, between
// its "congestion-bench" markers, and bench/results/congestion-*.svg / congestion-results.json.
import { readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { CASE_5_1, CASE_5_2, resultsTable, runCase, type CaseSpec, type RunResult } from "../test/lib/cc-lab.js";
import { renderLineChart, type ChartSeries } from "./chart.js";
import { progress, ROOT } from "./common.js";

export interface CongestionResult {
  readonly date: string;
  readonly command: string;
  readonly runs: readonly RunResult[];
}

const BEGIN = "<!-- congestion-bench:begin -->";
const END = "<!-- congestion-bench:end -->";

const perSecond = (values: readonly (number | null)[], scale = 1): [number, number][] =>
  values.flatMap((v, k) => (v === null ? [] : [[k + 0.5, v * scale] as [number, number]]));

function charts(spec: CaseSpec, msm: RunResult, plain: RunResult): Record<string, string> {
  const flows = (r: RunResult, label: string): ChartSeries[] => r.series.receivedBps.map((bps, i) => ({
    name: `${label}${r.series.receivedBps.length > 1 ? ` flow ${i + 1}` : ""} received`, points: perSecond(bps, 1e-6),
  }));
  return {
    rate: renderLineChart({
      title: `RFC 8867 ${spec.id}: received rate (on the wire) against capacity`,
      xLabel: "time (s)", yLabel: "Mbit/s",
      series: [{ name: "capacity", points: perSecond(msm.series.capacityBps, 1e-6), dashed: true }, ...flows(msm, "MSM"), ...flows(plain, "plain")],
    }),
    delay: renderLineChart({
      title: `RFC 8867 ${spec.id}: queuing delay, p95 of each second`,
      xLabel: "time (s)", yLabel: "ms",
      series: [{ name: "MSM", points: perSecond(msm.series.queueP95Ms) }, { name: "plain", points: perSecond(plain.series.queueP95Ms) }],
    }),
  };
}

/** Runs the four labs, writes the results, the charts and the doc's generated section. */
export async function runCongestion(options: { command: string; save: boolean }): Promise<CongestionResult> {
  const cases = [CASE_5_1, CASE_5_2];
  progress(`congestion: RFC 8867 ${cases.map((c) => c.id).join(" and ")}, MSM and plain, side by side (about ${Math.max(...cases.map((c) => c.durationS)) + 15} s)`);
  const runs = await Promise.all(cases.flatMap((c) => [runCase(c, "msm"), runCase(c, "plain")]));
  const result: CongestionResult = { date: new Date().toISOString().slice(0, 10), command: options.command, runs };
  console.log(`\nRFC 8867 (docs/congestion-eval.md):\n${resultsTable(runs)}\n`);
  if (!options.save) return result;
  const dir = join(ROOT, "bench", "results");
  const images: string[] = [];
  for (const c of cases) {
    const [msm, plain] = [runs.find((r) => r.caseId === c.id && r.forwarding === "msm")!, runs.find((r) => r.caseId === c.id && r.forwarding === "plain")!];
    for (const [kind, svg] of Object.entries(charts(c, msm, plain))) {
      const name = `congestion-${c.id}-${kind}.svg`;
      writeFileSync(join(dir, name), svg);
      images.push(`![RFC 8867 ${c.id}, ${kind}](../bench/results/${name})`);
    }
  }
  writeFileSync(join(dir, "congestion-results.json"), `${JSON.stringify(result, null, 2)}\n`);
  const doc = join(ROOT, "docs", "congestion-eval.md");
  const text = readFileSync(doc, "utf8");
  const [head, rest] = [text.indexOf(BEGIN), text.indexOf(END)];
  if (head < 0 || rest < head) throw new Error(`${doc}: the markers ${BEGIN} and ${END} are missing`);
  const generated = [
    BEGIN,
    `Measured ${result.date} with \`${options.command}\` on ${availableParallelism()} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(" / ")} (1, 5, 15 min) as it ended (generated; do not edit by hand).`,
    "",
    resultsTable(runs),
    "",
    ...images.map((i) => `${i}\n`),
    END,
  ].join("\n");
  writeFileSync(doc, text.slice(0, head) + generated + text.slice(rest + END.length));
  progress("congestion: wrote docs/congestion-eval.md and bench/results/congestion-*");
  return result;
}
