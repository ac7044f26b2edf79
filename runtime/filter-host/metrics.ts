// Metrics a filter defines through msm.metric_define (and, ABI 1.3, msm.metric_define_labelled),
// kept per context. Values are plain numbers in preallocated arrays so that metric_add on the hot
// path allocates nothing. A labelled metric's series of a context are made on first use: at most
// MAX_LABEL_VALUES label values each, and every value past those shares the series "other".
import { MAX_LABEL_VALUES, MAX_METRICS, MetricKind, Status } from "../abi.js";

/** Histogram bucket upper bounds: 1-2-5 steps from 1 to 1,000,000 (microsecond-friendly). */
export const HISTOGRAM_BOUNDS: readonly number[] = (() => {
  const bounds: number[] = [];
  for (let decade = 1; decade <= 1_000_000; decade *= 10) bounds.push(decade, decade * 2, decade * 5);
  return bounds.filter((b) => b <= 1_000_000);
})();

/** The label value of the series that counts a labelled metric's values past MAX_LABEL_VALUES. */
export const OTHER_LABEL_VALUE = "other";
/** Index of the "other" series in LabelledValues. */
const OTHER = MAX_LABEL_VALUES;

export interface MetricDefinition {
  readonly id: number;
  readonly kind: MetricKind;
  readonly name: string;
  /** The label's name, for a labelled metric. */
  readonly label?: string;
}

export interface HistogramValue {
  /** Count per bucket of HISTOGRAM_BOUNDS, plus one for +Inf. */
  readonly buckets: number[];
  count: number;
  sum: number;
}

/** One context's series of a labelled metric. */
export interface LabelledValues {
  /** Label value -> series index, for the first MAX_LABEL_VALUES values used. */
  readonly index: Map<number, number>;
  /** The label value of each series, in the order of first use. */
  readonly labels: number[];
  /** Counter or gauge value per series; index MAX_LABEL_VALUES is "other". */
  readonly values: Float64Array;
  readonly histograms: (HistogramValue | undefined)[];
  /** Whether a value was ever counted under "other". */
  other: boolean;
}

export interface ContextMetricValues {
  /** Counter or gauge value per metric id (histograms and labelled metrics: unused). */
  readonly values: Float64Array;
  readonly histograms: (HistogramValue | undefined)[];
  /** Per labelled metric id, once the context used it. */
  readonly labelled: (LabelledValues | undefined)[];
}

/** One series of a labelled metric, as /stats shows it. */
export interface LabelledSeries {
  /** The filter's u32 label value in decimal, or "other". */
  labelValue: string;
  value?: number;
  histogram?: HistogramValue;
}

/** A metric of one context, as /stats shows it. */
export interface FilterMetricSnapshot {
  name: string;
  kind: "counter" | "gauge" | "histogram";
  /** Unlabelled metrics: the value (counter, gauge) or the histogram. */
  value?: number;
  histogram?: HistogramValue;
  /** Labelled metrics: the label's name and the series, "other" last. */
  label?: string;
  series?: LabelledSeries[];
}

const NAME = /^[a-z][a-z0-9_]{0,63}$/;
/** Labels the host puts on every filter metric itself (and `le`, on histogram buckets). */
// the host's own labels, and those Prometheus sets on every scraped series (renamed exported_* if a
// target has them, which hides them from the queries written for them)
const RESERVED_LABELS = new Set(["segment", "stage", "filter", "le", "instance", "job"]);
const KIND_NAMES = { [MetricKind.Counter]: "counter", [MetricKind.Gauge]: "gauge", [MetricKind.Histogram]: "histogram" } as const;

function newHistogram(): HistogramValue {
  return { buckets: new Array<number>(HISTOGRAM_BOUNDS.length + 1).fill(0), count: 0, sum: 0 };
}

function observe(h: HistogramValue, value: number): void {
  let i = 0;
  while (i < HISTOGRAM_BOUNDS.length && value > HISTOGRAM_BOUNDS[i]!) i++;
  h.buckets[i]!++;
  h.count++;
  h.sum += value;
}

function mergeHistogram(into: HistogramValue, from: HistogramValue): void {
  from.buckets.forEach((n, i) => (into.buckets[i]! += n));
  into.count += from.count;
  into.sum += from.sum;
}

function copyHistogram(h: HistogramValue): HistogramValue {
  return { buckets: [...h.buckets], count: h.count, sum: h.sum };
}

/**
 * The names a metric takes in /metrics after its family prefix: a counter's ends in _total, a
 * histogram adds _bucket, _sum and _count (runtime/admin/prometheus.ts).
 */
function exposedNames(kind: number, name: string): string[] {
  if (kind === MetricKind.Counter) return [name.endsWith("_total") ? name : `${name}_total`];
  if (kind === MetricKind.Histogram) return [name, `${name}_bucket`, `${name}_sum`, `${name}_count`];
  return [name];
}

/**
 * A counter's step: an infinite one would leave the counter at +Inf for good (and /stats, JSON,
 * shows it as null); NaN and negative steps are no count.
 */
function finiteAtLeastZero(delta: number): boolean {
  return Number.isFinite(delta) && delta >= 0;
}

export class FilterMetrics {
  readonly definitions: MetricDefinition[] = [];
  /** Why the last define() refused a metric, for the author. */
  lastRefusal = "";
  private readonly byContext = new Map<number, ContextMetricValues>();

  /**
   * Returns the id, or a negative Status: -BadArgument for a bad name, label or kind (or the name
   * taken by another kind or label), -NoSpace past MAX_METRICS.
   */
  define(kind: number, name: string, label?: string): number {
    const refuse = (status: Status, why: string): number => {
      this.lastRefusal = why;
      return -status;
    };
    if (!NAME.test(name)) return refuse(Status.BadArgument, `a metric's name is a lower-case letter, then up to 63 lower-case letters, digits and '_' (no '-')`);
    if (!(kind in MetricKind)) return refuse(Status.BadArgument, `kind ${kind} is none of MetricKind's`);
    if (label !== undefined && !NAME.test(label)) return refuse(Status.BadArgument, `its label '${label}' breaks the rule of a name: a lower-case letter, then up to 63 lower-case letters, digits and '_'`);
    if (label !== undefined && RESERVED_LABELS.has(label)) return refuse(Status.BadArgument, `its label '${label}' is one the proxy sets (${[...RESERVED_LABELS].join(", ")})`);
    const existing = this.definitions.find((d) => d.name === name);
    if (existing) {
      return existing.kind === kind && existing.label === label ? existing.id : refuse(Status.BadArgument, "the name is defined already, with another kind or label");
    }
    // _total is a counter's (Prometheus), and two metrics may not meet in /metrics (a counter x and a counter x_total)
    if (kind !== MetricKind.Counter && name.endsWith("_total")) return refuse(Status.BadArgument, "a name ending in _total is a counter's");
    const exposed = exposedNames(kind, name);
    const clash = this.definitions.find((d) => exposedNames(d.kind, d.name).some((n) => exposed.includes(n)));
    if (clash) return refuse(Status.BadArgument, `it would meet metric '${clash.name}' in /metrics (${exposed.join(", ")})`);
    if (this.definitions.length >= MAX_METRICS) return refuse(Status.NoSpace, `the filter has defined ${MAX_METRICS} metrics, the most a filter may (MAX_METRICS)`);
    const id = this.definitions.length;
    this.definitions.push(label === undefined ? { id, kind: kind as MetricKind, name } : { id, kind: kind as MetricKind, name, label });
    return id;
  }

  openContext(ctx: number): void {
    if (!this.byContext.has(ctx)) {
      this.byContext.set(ctx, { values: new Float64Array(MAX_METRICS), histograms: [], labelled: [] });
    }
  }

  closeContext(ctx: number): void {
    this.byContext.delete(ctx);
  }

  forContext(ctx: number): ContextMetricValues | undefined {
    return this.byContext.get(ctx);
  }

  /** Adopts another instance's values for a context (after a restart of the same module). */
  adopt(ctx: number, values: ContextMetricValues): void {
    this.byContext.set(ctx, values);
  }

  add(id: number, ctx: number, delta: number): number {
    const def = this.definitions[id];
    const c = this.byContext.get(ctx);
    if (!def || !c || def.label !== undefined || def.kind !== MetricKind.Counter || !finiteAtLeastZero(delta)) return Status.BadArgument;
    c.values[id] += delta;
    return Status.Ok;
  }

  set(id: number, ctx: number, value: number): number {
    const def = this.definitions[id];
    const c = this.byContext.get(ctx);
    if (!def || !c || def.label !== undefined || def.kind !== MetricKind.Gauge || !Number.isFinite(value)) return Status.BadArgument;
    c.values[id] = value;
    return Status.Ok;
  }

  record(id: number, ctx: number, value: number): number {
    const def = this.definitions[id];
    const c = this.byContext.get(ctx);
    if (!def || !c || def.label !== undefined || def.kind !== MetricKind.Histogram || !Number.isFinite(value)) return Status.BadArgument;
    observe((c.histograms[id] ??= newHistogram()), value);
    return Status.Ok;
  }

  /** metric_add_labelled: `label` is the u32 label value. */
  addLabelled(id: number, ctx: number, label: number, delta: number): number {
    const t = this.table(id, ctx, MetricKind.Counter);
    if (!t || !finiteAtLeastZero(delta)) return Status.BadArgument;
    t.values[seriesIndex(t, label >>> 0)] += delta;
    return Status.Ok;
  }

  setLabelled(id: number, ctx: number, label: number, value: number): number {
    const t = this.table(id, ctx, MetricKind.Gauge);
    if (!t || !Number.isFinite(value)) return Status.BadArgument;
    t.values[seriesIndex(t, label >>> 0)] = value;
    return Status.Ok;
  }

  recordLabelled(id: number, ctx: number, label: number, value: number): number {
    const t = this.table(id, ctx, MetricKind.Histogram);
    if (!t || !Number.isFinite(value)) return Status.BadArgument;
    observe((t.histograms[seriesIndex(t, label >>> 0)] ??= newHistogram()), value);
    return Status.Ok;
  }

  /** The context's metrics as /stats shows them. */
  snapshot(ctx: number): FilterMetricSnapshot[] {
    const c = this.byContext.get(ctx);
    if (!c) return [];
    const out: FilterMetricSnapshot[] = [];
    for (const def of this.definitions) {
      const kind = KIND_NAMES[def.kind];
      if (def.label !== undefined) {
        const l = c.labelled[def.id];
        const series: LabelledSeries[] = [];
        if (l) {
          l.labels.forEach((v, i) => series.push(seriesSnapshot(def.kind, String(v), l, i)));
          if (l.other) series.push(seriesSnapshot(def.kind, OTHER_LABEL_VALUE, l, OTHER));
        }
        out.push({ name: def.name, kind, label: def.label, series });
      } else if (def.kind === MetricKind.Histogram) {
        const h = c.histograms[def.id];
        if (h) out.push({ name: def.name, kind, histogram: copyHistogram(h) });
      } else out.push({ name: def.name, kind, value: c.values[def.id]! });
    }
    return out;
  }

  /**
   * Context `ctx`'s series of labelled metric `id`, made on first use; undefined for an unknown
   * context or metric, or a metric of another kind or without a label.
   */
  private table(id: number, ctx: number, kind: MetricKind): LabelledValues | undefined {
    const def = this.definitions[id];
    const c = this.byContext.get(ctx);
    if (!def || !c || def.label === undefined || def.kind !== kind) return undefined;
    return (c.labelled[id] ??= { index: new Map(), labels: [], values: new Float64Array(MAX_LABEL_VALUES + 1), histograms: [], other: false });
  }

  /**
   * Adds context `fromCtx`'s counters and histograms in `from` to context `toCtx`'s here: the
   * successor of a stage at a hot swap goes on counting from where its predecessor was. Metrics
   * match by name, kind and label; series by label value. Gauges are not carried: the new
   * context sets its own.
   */
  carryFrom(from: FilterMetrics, fromCtx: number, toCtx: number): void {
    const src = from.byContext.get(fromCtx);
    const dst = this.byContext.get(toCtx);
    if (!src || !dst || src === dst) return;
    for (const def of from.definitions) {
      if (def.kind === MetricKind.Gauge) continue;
      const target = this.definitions.find((d) => d.name === def.name && d.kind === def.kind && d.label === def.label);
      if (!target) continue;
      if (def.label === undefined) {
        if (def.kind === MetricKind.Counter) dst.values[target.id] += src.values[def.id]!;
        else if (src.histograms[def.id]) mergeHistogram((dst.histograms[target.id] ??= newHistogram()), src.histograms[def.id]!);
        continue;
      }
      const l = src.labelled[def.id];
      if (!l) continue;
      const t = this.table(target.id, toCtx, def.kind)!;
      const carry = (i: number, at: number): void => {
        if (def.kind === MetricKind.Counter) t.values[at] += l.values[i]!;
        else if (l.histograms[i]) mergeHistogram((t.histograms[at] ??= newHistogram()), l.histograms[i]!);
      };
      l.labels.forEach((v, i) => carry(i, seriesIndex(t, v)));
      if (l.other) {
        t.other = true;
        carry(OTHER, OTHER);
      }
    }
  }
}

/** The index of `label`'s series, admitting it while there is room, else "other". */
function seriesIndex(l: LabelledValues, label: number): number {
  const at = l.index.get(label);
  if (at !== undefined) return at;
  if (l.labels.length < MAX_LABEL_VALUES) {
    l.index.set(label, l.labels.length);
    l.labels.push(label);
    return l.labels.length - 1;
  }
  l.other = true;
  return OTHER;
}

function seriesSnapshot(kind: MetricKind, labelValue: string, l: LabelledValues, i: number): LabelledSeries {
  if (kind !== MetricKind.Histogram) return { labelValue, value: l.values[i]! };
  const h = l.histograms[i];
  return { labelValue, histogram: h ? copyHistogram(h) : newHistogram() };
}

/**
 * Adds the counters and histograms a stage had before its worker restarted (`base`) to what it
 * counted since (`now`): by name, series by label value; gauges are now's. A counter only `base`
 * has (the stage is down) is kept, so that it never goes back. Merged series stay bounded: label
 * values past MAX_LABEL_VALUES are added to "other".
 */
export function addMetricSnapshots(now: readonly FilterMetricSnapshot[], base: readonly FilterMetricSnapshot[]): FilterMetricSnapshot[] {
  const out = now.map((m): FilterMetricSnapshot => {
    const b = base.find((x) => x.name === m.name && x.kind === m.kind && x.label === m.label);
    if (!b || m.kind === "gauge") return m;
    if (m.series && b.series) return { ...m, series: mergeSeries(m.series, b.series) };
    if (!m.histogram && !b.histogram) return { ...m, value: (m.value ?? 0) + (b.value ?? 0) };
    const h = newHistogram();
    for (const x of [m.histogram, b.histogram]) if (x) mergeHistogram(h, x);
    return { ...m, histogram: h };
  });
  for (const b of base) {
    if (b.kind !== "gauge" && !now.some((m) => m.name === b.name)) out.push(b);
  }
  return out;
}

function mergeSeries(now: readonly LabelledSeries[], base: readonly LabelledSeries[]): LabelledSeries[] {
  const merged = new Map<string, LabelledSeries>();
  let other: LabelledSeries | undefined;
  // base first: the series that existed before the restart keep their places
  for (const s of [...base, ...now]) {
    const known = merged.get(s.labelValue);
    if (s.labelValue !== OTHER_LABEL_VALUE && (known || merged.size < MAX_LABEL_VALUES)) merged.set(s.labelValue, plus(known, s, s.labelValue));
    else other = plus(other, s, OTHER_LABEL_VALUE);
  }
  return other ? [...merged.values(), other] : [...merged.values()];
}

function plus(into: LabelledSeries | undefined, s: LabelledSeries, labelValue: string): LabelledSeries {
  if (!s.histogram) return { labelValue, value: (into?.value ?? 0) + (s.value ?? 0) };
  const h = into?.histogram ? copyHistogram(into.histogram) : newHistogram();
  mergeHistogram(h, s.histogram);
  return { labelValue, histogram: h };
}
