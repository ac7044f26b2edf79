// Metrics with one label (ABI 1.3) and filter counters that outlive an instance: every answer of
// the labelled imports, checked through a real filter (test/fixtures/filters/assembly/metric_probe.ts)
// in the harness; the bound of MAX_LABEL_VALUES values per metric per context; and how the host
// carries a filter's counters to a successor (hot swap) and across a worker restart. The hot swap
// in a running proxy is in test/sdk-stream-meter.test.ts.
import * as assert from "uvu/assert";
import { FilterHarness, MAX_LABEL_VALUES, MetricKind, Status } from "../sdk/harness/index.js";
import type { HistogramValue } from "../runtime/index.js";
import { FilterMetrics, type FilterMetricSnapshot } from "../runtime/filter-host/metrics.js";
import { withCarriedCounters, type SegmentSnapshot, type StageSnapshot } from "../runtime/dataplane/snapshot.js";
import { renderPrometheus, type ProxySnapshot } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { fixture } from "./lib/paths.js";

const test = suite("sdk labelled metrics");

/** The metrics metric_probe defines, by index, with what the host answers (docs/abi.md). */
const DEFINED: [string, number | "id"][] = [
  ["labelled counter by_ssrc", "id"],
  ["labelled gauge level", "id"],
  ["labelled histogram size", "id"],
  ["plain counter", "id"],
  ["by_ssrc again, same kind and label", "id"],
  ["label 'segment' (the host's own)", -Status.BadArgument],
  ["label 'Bad'", -Status.BadArgument],
  ["by_ssrc without its label", -Status.BadArgument],
  ["by_ssrc with another label", -Status.BadArgument],
  ["by_ssrc as a gauge", -Status.BadArgument],
  ["an empty label", -Status.BadArgument],
  ["a label of 65 bytes", -Status.BadArgument],
  ["kind 7", -Status.BadArgument],
];
const BY_SSRC = 0;
const LEVEL = 1;
const SIZE = 2;
const PLAIN = 3;

enum Op {
  AddLabelled = 1,
  SetLabelled = 2,
  RecordLabelled = 3,
  Add = 4,
  Set = 5,
  Record = 6,
  DefineLate = 7,
}

function command(op: Op, metric: number, label = 0, value = 1, ctx = 0): Uint8Array {
  const b = Buffer.alloc(16);
  b.writeUInt8(op, 0);
  b.writeUInt8(metric, 1);
  b.writeUInt32LE(label >>> 0, 4);
  b.writeInt32LE(value, 8);
  b.writeUInt32LE(ctx, 12);
  return new Uint8Array(b);
}

/** Runs the commands on context `ctx` and returns the Status of each. */
function statuses(h: FilterHarness, ctx: number, commands: readonly Uint8Array[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < commands.length; i += 64) {
    const r = h.runBatch(commands.slice(i, i + 64).map((bytes) => ({ ctx, bytes })));
    out.push(...r.packets.map((p) => Buffer.from(p.bytes).readInt32LE(0)));
  }
  return out;
}

test("definitions: names and labels checked, the same definition twice is the same id", async () => {
  const h = await FilterHarness.load(fixture("metric_probe"));
  const ctx = h.createContext();
  const r = h.run({ ctx, bytes: new Uint8Array([0]) });
  const ids = [...new Int32Array(r.bytes.slice().buffer)];
  assert.is(ids.length, DEFINED.length);
  DEFINED.forEach(([what, expected], i) => {
    if (expected === "id") assert.ok(ids[i]! >= 0, `${what}: ${ids[i]}`);
    else assert.is(ids[i], expected, what);
  });
  assert.is(ids[4], ids[BY_SSRC], "the same definition twice");
  assert.equal(h.instance.metrics.definitions.map((d) => [d.name, d.kind, d.label]), [
    ["by_ssrc", MetricKind.Counter, "ssrc"],
    ["level", MetricKind.Gauge, "ssrc"],
    ["size", MetricKind.Histogram, "ssrc"],
    ["plain", MetricKind.Counter, undefined],
  ]);
  assert.equal(statuses(h, ctx, [command(Op.DefineLate, 0)]), [-Status.NotAllowed], "only while configuring");
});

test("definitions that would meet in /metrics are refused: a counter x beside a counter x_total, a gauge named x_total, a histogram x beside a gauge x_sum", () => {
  const m = new FilterMetrics();
  assert.ok(m.define(MetricKind.Counter, "packets") >= 0);
  assert.is(m.define(MetricKind.Counter, "packets_total"), -Status.BadArgument, "both are msm_filter_f_packets_total");
  assert.is(m.define(MetricKind.Gauge, "depth_total"), -Status.BadArgument, "_total is a counter's");
  assert.ok(m.define(MetricKind.Histogram, "size") >= 0);
  assert.is(m.define(MetricKind.Gauge, "size_sum"), -Status.BadArgument);
  assert.ok(m.define(MetricKind.Counter, "bytes_total") >= 0, "a counter may end in _total itself");
  assert.is(m.define(MetricKind.Counter, "bytes"), -Status.BadArgument);
});

test("an infinite value is refused by every update, as NaN is: a counter at +Inf would stay there, and /stats (JSON) shows it as null", () => {
  const m = new FilterMetrics();
  const counter = m.define(MetricKind.Counter, "packets");
  const gauge = m.define(MetricKind.Gauge, "depth");
  const histogram = m.define(MetricKind.Histogram, "size");
  const labelled = m.define(MetricKind.Counter, "by_ssrc", "ssrc");
  const level = m.define(MetricKind.Gauge, "level", "ssrc");
  const sizes = m.define(MetricKind.Histogram, "sizes", "ssrc");
  m.openContext(1);
  for (const v of [Infinity, -Infinity, NaN]) {
    assert.is(m.add(counter, 1, v), Status.BadArgument, `add ${v}`);
    assert.is(m.set(gauge, 1, v), Status.BadArgument, `set ${v}`);
    assert.is(m.record(histogram, 1, v), Status.BadArgument, `record ${v}`);
    assert.is(m.addLabelled(labelled, 1, 7, v), Status.BadArgument, `add_labelled ${v}`);
    assert.is(m.setLabelled(level, 1, 7, v), Status.BadArgument, `set_labelled ${v}`);
    assert.is(m.recordLabelled(sizes, 1, 7, v), Status.BadArgument, `record_labelled ${v}`);
  }
  assert.is(m.add(counter, 1, 2), Status.Ok);
  assert.is(m.set(gauge, 1, -1e300), Status.Ok, "a finite value, however large");
  assert.equal(JSON.parse(JSON.stringify(m.snapshot(1))).map((x: FilterMetricSnapshot) => [x.name, x.value]).filter(([, v]: unknown[]) => v !== undefined), [["packets", 2], ["depth", -1e300]]);
});

test("/metrics: two entries sharing a name whose versions define one metric as two kinds: the family keeps its first type, the other's series are left out", () => {
  const seg = segment([stage("v1", [{ name: "depth", kind: "gauge", value: 3 }]), stage("v2", [{ name: "depth", kind: "histogram", histogram: { buckets: Array<number>(20).fill(0), count: 0, sum: 0 } }])]);
  const text = renderPrometheus({ workers: 1, segments: [{ ...seg, worker: 0 }], watchdogRestarts: 0, workerExits: 0, configApplies: { applied: 1, refused: 0 }, notRunning: [],
    metricsNames: { v1: "f", v2: "f" } } as unknown as ProxySnapshot);
  assert.equal(text.split("\n").filter((l) => l.includes("msm_filter_f_depth")), ["# HELP msm_filter_f_depth The f filter's own gauge 'depth' (its docs say what it counts).", "# TYPE msm_filter_f_depth gauge", 'msm_filter_f_depth{segment="s",stage="0"} 3']);
});

test("updates: each kind through its labelled import; a wrong import, kind, context or value is BadArgument", async () => {
  const h = await FilterHarness.load(fixture("metric_probe"));
  const ctx = h.createContext();
  const other = h.createContext();
  const cases: [string, Uint8Array, Status][] = [
    ["add 5 for SSRC 0x12345678", command(Op.AddLabelled, BY_SSRC, 0x12345678, 5), Status.Ok],
    ["add 2 more", command(Op.AddLabelled, BY_SSRC, 0x12345678, 2), Status.Ok],
    ["add 1 for SSRC 0xffffffff", command(Op.AddLabelled, BY_SSRC, 0xffffffff, 1), Status.Ok],
    ["add 0", command(Op.AddLabelled, BY_SSRC, 7, 0), Status.Ok],
    ["set a gauge", command(Op.SetLabelled, LEVEL, 0x12345678, -40), Status.Ok],
    ["record 300 in a histogram", command(Op.RecordLabelled, SIZE, 9, 300), Status.Ok],
    ["record 3", command(Op.RecordLabelled, SIZE, 9, 3), Status.Ok],
    ["add -1", command(Op.AddLabelled, BY_SSRC, 1, -1), Status.BadArgument],
    ["add to the gauge", command(Op.AddLabelled, LEVEL, 1, 1), Status.BadArgument],
    ["set the counter", command(Op.SetLabelled, BY_SSRC, 1, 1), Status.BadArgument],
    ["record in the counter", command(Op.RecordLabelled, BY_SSRC, 1, 1), Status.BadArgument],
    ["labelled add to the plain counter", command(Op.AddLabelled, PLAIN, 1, 1), Status.BadArgument],
    ["metric_add to the labelled counter", command(Op.Add, BY_SSRC, 0, 1), Status.BadArgument],
    ["metric_set to the labelled gauge", command(Op.Set, LEVEL, 0, 1), Status.BadArgument],
    ["metric_record to the labelled histogram", command(Op.Record, SIZE, 0, 1), Status.BadArgument],
    ["an unknown id", command(Op.AddLabelled, 60, 1, 1), Status.BadArgument],
    ["an unknown context", command(Op.AddLabelled, BY_SSRC, 1, 1, 999), Status.BadArgument],
    ["another context", command(Op.AddLabelled, BY_SSRC, 0x12345678, 11, other), Status.Ok],
    ["metric_add to the plain counter", command(Op.Add, PLAIN, 0, 4), Status.Ok],
  ];
  const got = statuses(h, ctx, cases.map((c) => c[1]));
  cases.forEach(([what, , expected], i) => assert.is(got[i], expected, what));
  assert.equal(h.metricSeries("by_ssrc", ctx), new Map([["305419896", 7], ["4294967295", 1], ["7", 0]]));
  assert.is(h.metric("by_ssrc", other, 0x12345678), 11, "contexts count apart");
  assert.is(h.metric("level", ctx, 0x12345678), -40);
  const size = h.metric("size", ctx, 9) as HistogramValue;
  assert.equal([size.count, size.sum], [2, 303]);
  assert.is(h.metric("by_ssrc", ctx, 1), 0, "refused updates changed nothing");
  assert.is(h.metric("plain", ctx), 4);
});

test(`at most ${MAX_LABEL_VALUES} label values per metric per context; the rest count under "other"`, async () => {
  const h = await FilterHarness.load(fixture("metric_probe"));
  const ctx = h.createContext();
  const other = h.createContext();
  const extra = 6;
  const commands = Array.from({ length: MAX_LABEL_VALUES + extra }, (_, i) => command(Op.AddLabelled, BY_SSRC, 1000 + i, i + 1));
  // a value admitted early keeps its series after the table is full
  commands.push(command(Op.AddLabelled, BY_SSRC, 1000, 100));
  assert.ok(statuses(h, ctx, commands).every((s) => s === Status.Ok), "values past the bound are still Ok");
  const series = h.metricSeries("by_ssrc", ctx)!;
  assert.is(series.size, MAX_LABEL_VALUES + 1);
  assert.equal([...series.keys()].slice(-2), [String(1000 + MAX_LABEL_VALUES - 1), "other"], "first come first kept; other last");
  assert.is(series.get("1000"), 101);
  let otherSum = 0;
  for (let i = MAX_LABEL_VALUES; i < MAX_LABEL_VALUES + extra; i++) otherSum += i + 1;
  assert.is(series.get("other"), otherSum);
  assert.is(h.metric("by_ssrc", ctx, "other"), otherSum);
  // the bound is per context: another context has room for its own
  assert.equal(statuses(h, other, [command(Op.AddLabelled, BY_SSRC, 5000, 1)]), [Status.Ok]);
  assert.equal(h.metricSeries("by_ssrc", other), new Map([["5000", 1]]));
  // and per metric: the gauge of the full context still has room
  statuses(h, ctx, [command(Op.SetLabelled, LEVEL, 5000, 3)]);
  assert.equal(h.metricSeries("level", ctx), new Map([["5000", 3]]));
});

test("label names the host or Prometheus sets on every series are refused", () => {
  const m = new FilterMetrics();
  for (const label of ["segment", "stage", "filter", "le", "instance", "job"]) assert.is(m.define(MetricKind.Counter, `by_${label}`, label), -Status.BadArgument, label);
  assert.ok(m.define(MetricKind.Counter, "by_ssrc", "ssrc") >= 0);
});

/** Two instances of a filter's metrics, as a hot swap sees them: the successor defines in another order, adds one and drops one. */
function pair(): { old: FilterMetrics; next: FilterMetrics; ids: Record<string, number> } {
  const old = new FilterMetrics();
  const ids = {
    packets: old.define(MetricKind.Counter, "packets"),
    level: old.define(MetricKind.Gauge, "level"),
    sizes: old.define(MetricKind.Histogram, "sizes"),
    bySsrc: old.define(MetricKind.Counter, "by_ssrc", "ssrc"),
    levelBySsrc: old.define(MetricKind.Gauge, "level_by_ssrc", "ssrc"),
    sizeBySsrc: old.define(MetricKind.Histogram, "size_by_ssrc", "ssrc"),
    gone: old.define(MetricKind.Counter, "gone"),
    relabelled: old.define(MetricKind.Counter, "relabelled", "ssrc"),
  };
  const next = new FilterMetrics();
  next.define(MetricKind.Counter, "brand_new");
  next.define(MetricKind.Counter, "relabelled", "pt"); // same name, another label: not the same metric
  for (const d of old.definitions) if (d.name !== "gone" && d.name !== "relabelled") next.define(d.kind, d.name, d.label);
  return { old, next, ids };
}

function stat(m: FilterMetrics, ctx: number, name: string): FilterMetricSnapshot | undefined {
  return m.snapshot(ctx).find((x) => x.name === name);
}

test("a successor goes on from its predecessor's counters and histograms, by name and label value; gauges start afresh", () => {
  const { old, next, ids } = pair();
  old.openContext(1);
  old.add(ids.packets!, 1, 10);
  old.set(ids.level!, 1, 7);
  old.record(ids.sizes!, 1, 100);
  old.add(ids.gone!, 1, 3);
  old.addLabelled(ids.relabelled!, 1, 1, 3);
  for (let i = 0; i < MAX_LABEL_VALUES + 2; i++) old.addLabelled(ids.bySsrc!, 1, 0x80000000 + i, 1); // 2 under "other"
  old.setLabelled(ids.levelBySsrc!, 1, 5, 9);
  old.recordLabelled(ids.sizeBySsrc!, 1, 5, 20);
  // the new context already counted what the old stage handed over when it left
  next.openContext(2);
  next.add(next.definitions.find((d) => d.name === "packets")!.id, 2, 1);
  next.addLabelled(next.definitions.find((d) => d.name === "by_ssrc")!.id, 2, 42, 1);
  next.carryFrom(old, 1, 2);

  assert.is(stat(next, 2, "packets")!.value, 11);
  assert.is(stat(next, 2, "level")!.value, 0, "a gauge is the new context's to set");
  assert.equal([stat(next, 2, "sizes")!.histogram!.count, stat(next, 2, "sizes")!.histogram!.sum], [1, 100]);
  assert.is(stat(next, 2, "brand_new")!.value, 0);
  assert.is(stat(next, 2, "gone"), undefined);
  assert.equal(stat(next, 2, "relabelled")!.series, [], "another label is another metric");
  const bySsrc = stat(next, 2, "by_ssrc")!.series!;
  assert.is(bySsrc.length, MAX_LABEL_VALUES + 1, "still bounded");
  assert.equal(bySsrc[0], { labelValue: "42", value: 1 }, "the successor's own first");
  assert.equal(bySsrc.at(-1), { labelValue: "other", value: 3 }, "2 carried under other, plus the one that no longer fits");
  assert.is(bySsrc.reduce((n, s) => n + s.value!, 0), MAX_LABEL_VALUES + 3, "nothing lost");
  assert.equal(stat(next, 2, "level_by_ssrc")!.series, []);
  assert.equal(stat(next, 2, "size_by_ssrc")!.series!.map((s) => [s.labelValue, s.histogram!.count, s.histogram!.sum]), [["5", 1, 20]]);

  // the same instance, another context (a swap that only changed the stage's config)
  old.openContext(3);
  old.carryFrom(old, 1, 3);
  assert.is(stat(old, 3, "packets")!.value, 10);
  assert.is(stat(old, 3, "gone")!.value, 3);
  assert.is(stat(old, 1, "packets")!.value, 10, "the predecessor's values are read, not moved");
});

function stage(filter: string, metrics: FilterMetricSnapshot[]): StageSnapshot {
  return {
    filter, digest: "d", state: "running", packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0, generated: 0, held: 0, bypassed: 0,
    timersDeferred: 0, failureMode: "closed", drops: {}, discards: {}, failures: 0, busyNs: 0, calls: 0, nsPerPacket: 0, metrics,
  };
}

function segment(stages: StageSnapshot[]): SegmentSnapshot {
  return {
    name: "s", ports: { listen: 1, rtcp: 2, egress: [], legs: [] } as unknown as SegmentSnapshot["ports"], packetsIn: 0, bytesIn: 0,
    packetsOut: 0, bytesOut: 0, rtcpIn: 0, upstreamIn: 0, legs: [], drops: {}, dropsTotal: 0, discards: {}, discardsTotal: 0, stages, streams: [], streamsOverflow: null,
  };
}

test("a worker restart: the filters' counters and histograms carry on (labelled ones too, still bounded); gauges are the new worker's", () => {
  const h = (count: number, sum: number): HistogramValue => ({ buckets: [count, 0], count, sum });
  const many = (from: number, n: number, value: number) => Array.from({ length: n }, (_, i) => ({ labelValue: String(from + i), value }));
  const before = segment([stage("meter", [
    { name: "packets", kind: "counter", value: 100 },
    { name: "level", kind: "gauge", value: 5 },
    { name: "sizes", kind: "histogram", histogram: h(2, 30) },
    { name: "by_ssrc", kind: "counter", label: "ssrc", series: [...many(0, MAX_LABEL_VALUES - 1, 1), { labelValue: "other", value: 4 }] },
    { name: "only_before", kind: "counter", value: 9 },
  ])]);
  const after = segment([stage("meter", [
    { name: "packets", kind: "counter", value: 1 },
    { name: "level", kind: "gauge", value: 6 },
    { name: "sizes", kind: "histogram", histogram: h(1, 5) },
    { name: "by_ssrc", kind: "counter", label: "ssrc", series: [{ labelValue: "0", value: 2 }, ...many(1000, 3, 10)] },
  ])]);
  const m = withCarriedCounters(after, before).stages[0]!.metrics;
  const get = (name: string) => m.find((x) => x.name === name)!;
  assert.is(get("packets").value, 101);
  assert.is(get("level").value, 6);
  assert.equal([get("sizes").histogram!.count, get("sizes").histogram!.sum, get("sizes").histogram!.buckets[0]], [3, 35, 3]);
  assert.is(get("only_before").value, 9, "a counter the new worker has not reported yet does not go back");
  const series = get("by_ssrc").series!;
  assert.is(series.length, MAX_LABEL_VALUES + 1);
  assert.equal(series[0], { labelValue: "0", value: 3 });
  assert.equal(series.at(-2), { labelValue: "1000", value: 10 }, "the last place goes to the first new value");
  assert.equal(series.at(-1), { labelValue: "other", value: 4 + 20 });
  // a stage of another filter at that position is not the same stage
  const swapped = withCarriedCounters(segment([stage("other", [{ name: "packets", kind: "counter", value: 1 }])]), before);
  assert.is(swapped.stages[0]!.metrics[0]!.value, 1);
});

test("/metrics: a labelled series per label value with the segment and the stage, histograms too, one TYPE per family", () => {
  const h: HistogramValue = { buckets: [1, 0, 1, ...Array<number>(17).fill(0)], count: 2, sum: 4 };
  const seg = segment([stage("x", []), stage("stream-meter", [
    { name: "by_ssrc", kind: "counter", label: "ssrc", series: [{ labelValue: "305419896", value: 7 }, { labelValue: "other", value: 2 }] },
    { name: "size", kind: "histogram", label: "pt", series: [{ labelValue: "96", histogram: h }] },
    { name: "plain", kind: "gauge", value: 3 },
  ])]);
  const text = renderPrometheus({ workers: 1, segments: [{ ...seg, worker: 0 }], watchdogRestarts: 0, workerExits: 0, configApplies: { applied: 1, refused: 0 }, notRunning: [] } as unknown as ProxySnapshot);
  const lines = text.split("\n").filter((l) => l.startsWith("msm_filter_stream_meter_") || l.startsWith("# TYPE msm_filter_stream_meter_"));
  assert.equal(lines.slice(0, 3), [
    "# TYPE msm_filter_stream_meter_by_ssrc_total counter",
    'msm_filter_stream_meter_by_ssrc_total{segment="s",stage="1",ssrc="305419896"} 7',
    'msm_filter_stream_meter_by_ssrc_total{segment="s",stage="1",ssrc="other"} 2',
  ]);
  assert.ok(lines.includes("# TYPE msm_filter_stream_meter_size histogram"));
  assert.ok(lines.includes('msm_filter_stream_meter_size_bucket{segment="s",stage="1",pt="96",le="1"} 1'));
  assert.ok(lines.includes('msm_filter_stream_meter_size_bucket{segment="s",stage="1",pt="96",le="5"} 2'));
  assert.ok(lines.includes('msm_filter_stream_meter_size_bucket{segment="s",stage="1",pt="96",le="+Inf"} 2'));
  assert.ok(lines.includes('msm_filter_stream_meter_size_sum{segment="s",stage="1",pt="96"} 4'));
  assert.ok(lines.includes('msm_filter_stream_meter_size_count{segment="s",stage="1",pt="96"} 2'));
  assert.ok(lines.includes('msm_filter_stream_meter_plain{segment="s",stage="1"} 3'));
});

test("/metrics: entries of one filter that share a metricsName (a control plane's versions and settings) share its families, one TYPE line, their series apart by segment and stage", () => {
  const seg = segment([stage("fec", [{ name: "recovered", kind: "counter", value: 3 }]), stage("fec-3b1c09e2", [{ name: "recovered", kind: "counter", value: 5 }])]);
  const text = renderPrometheus({ workers: 1, segments: [{ ...seg, worker: 0 }], watchdogRestarts: 0, workerExits: 0, configApplies: { applied: 1, refused: 0 }, notRunning: [],
    metricsNames: { fec: "fec", "fec-3b1c09e2": "fec" } } as unknown as ProxySnapshot);
  const lines = text.split("\n").filter((l) => l.includes("_recovered"));
  assert.equal(lines, [
    "# HELP msm_filter_fec_recovered_total The fec filter's own counter 'recovered' (its docs say what it counts).",
    "# TYPE msm_filter_fec_recovered_total counter",
    'msm_filter_fec_recovered_total{segment="s",stage="0"} 3',
    'msm_filter_fec_recovered_total{segment="s",stage="1"} 5',
  ]);
});

test.run();
