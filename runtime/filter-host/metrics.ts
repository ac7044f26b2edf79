// Metrics a filter defines through msm.metric_define, kept per context. Values are plain
// numbers in preallocated arrays so that metric_add on the hot path allocates nothing.
import { MAX_METRICS, MetricKind } from "../../sdk/abi/constants.js";

/** Histogram bucket upper bounds: 1-2-5 steps from 1 to 1,000,000 (microsecond-friendly). */
export const HISTOGRAM_BOUNDS: readonly number[] = (() => {
  const bounds: number[] = [];
  for (let decade = 1; decade <= 1_000_000; decade *= 10) bounds.push(decade, decade * 2, decade * 5);
  return bounds.filter((b) => b <= 1_000_000);
})();

export interface MetricDefinition {
  readonly id: number;
  readonly kind: MetricKind;
  readonly name: string;
}

export interface HistogramValue {
  /** Count per bucket of HISTOGRAM_BOUNDS, plus one for +Inf. */
  readonly buckets: number[];
  count: number;
  sum: number;
}

export interface ContextMetricValues {
  /** Counter or gauge value per metric id (histograms: unused). */
  readonly values: Float64Array;
  readonly histograms: (HistogramValue | undefined)[];
}

const NAME = /^[a-z][a-z0-9_]{0,63}$/;

export class FilterMetrics {
  readonly definitions: MetricDefinition[] = [];
  private readonly byContext = new Map<number, ContextMetricValues>();

  /** Returns the id, or a negative Status-like code: -2 bad name/kind, -3 no space. */
  define(kind: number, name: string): number {
    if (!NAME.test(name) || !(kind in MetricKind)) return -2;
    const existing = this.definitions.find((d) => d.name === name);
    if (existing) return existing.kind === kind ? existing.id : -2;
    if (this.definitions.length >= MAX_METRICS) return -3;
    const id = this.definitions.length;
    this.definitions.push({ id, kind: kind as MetricKind, name });
    return id;
  }

  openContext(ctx: number): void {
    if (!this.byContext.has(ctx)) {
      this.byContext.set(ctx, { values: new Float64Array(MAX_METRICS), histograms: [] });
    }
  }

  closeContext(ctx: number): void {
    this.byContext.delete(ctx);
  }

  forContext(ctx: number): ContextMetricValues | undefined {
    return this.byContext.get(ctx);
  }

  /** Adopts another instance's values for a context (after a restart or hot swap of the same filter). */
  adopt(ctx: number, values: ContextMetricValues): void {
    this.byContext.set(ctx, values);
  }

  add(id: number, ctx: number, delta: number): number {
    const def = this.definitions[id];
    const c = this.byContext.get(ctx);
    if (!def || !c || def.kind !== MetricKind.Counter || !(delta >= 0)) return 2;
    c.values[id] += delta;
    return 0;
  }

  set(id: number, ctx: number, value: number): number {
    const def = this.definitions[id];
    const c = this.byContext.get(ctx);
    if (!def || !c || def.kind !== MetricKind.Gauge || Number.isNaN(value)) return 2;
    c.values[id] = value;
    return 0;
  }

  record(id: number, ctx: number, value: number): number {
    const def = this.definitions[id];
    const c = this.byContext.get(ctx);
    if (!def || !c || def.kind !== MetricKind.Histogram || Number.isNaN(value)) return 2;
    let h = c.histograms[id];
    if (!h) {
      h = { buckets: new Array<number>(HISTOGRAM_BOUNDS.length + 1).fill(0), count: 0, sum: 0 };
      c.histograms[id] = h;
    }
    let i = 0;
    while (i < HISTOGRAM_BOUNDS.length && value > HISTOGRAM_BOUNDS[i]!) i++;
    h.buckets[i]!++;
    h.count++;
    h.sum += value;
    return 0;
  }
}
