// A proxy's congestion-filter figures from its /stats: the first stage of its one segment.
import type { ProxySnapshot } from "../../runtime/index.js";

/** Metric `name` of the congestion stage of `segment`; throws when the proxy runs no such stage or metric. */
export function congestionMetric(snap: ProxySnapshot, name: string, segment = "media"): number {
  const stage = snap.segments.find((s) => s.name === segment)?.stages.find((s) => s.filter === "congestion");
  if (!stage) throw new Error(`no congestion stage in segment '${segment}': ${JSON.stringify(snap.segments.map((s) => [s.name, s.stages.map((t) => t.filter)]))}`);
  const metric = stage.metrics.find((m) => m.name === name);
  if (metric?.value === undefined) throw new Error(`the congestion stage has no unlabelled metric '${name}' (it has: ${stage.metrics.map((m) => m.name).join(", ")})`);
  return metric.value;
}

/** The filter's media drops, by cause (README "Drop reasons"). */
export const CONGESTION_DROPS = ["non_reference", "reference", "dependent", "queue_full", "circuit_breaker", "renumber_late"] as const;
