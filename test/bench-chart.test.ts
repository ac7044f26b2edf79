// The SVG chart renderer: well-formed, escaped, deterministic, and honest about gaps and empty data.
import * as assert from "uvu/assert";
import { renderLineChart, type ChartOptions } from "../bench/chart.js";
import { suite } from "./lib/suite.js";

const test = suite("bench chart");

/** A tiny XML check: every tag well formed, properly nested, one root, entities only the five XML ones. */
function assertWellFormed(svg: string): void {
  const body = svg.replace(/^<\?xml [^?]*\?>\s*/, "");
  const stack: string[] = [];
  let roots = 0;
  let last = 0;
  const entity = /&(?!(amp|lt|gt|quot|apos);)/;
  for (const m of body.matchAll(/<[^>]*>/g)) {
    const text = body.slice(last, m.index);
    assert.not.ok(entity.test(text) || text.includes(">"), `bad character data: ${text}`);
    if (stack.length === 0) assert.is(text.trim(), "", "text outside the root element");
    last = m.index + m[0].length;
    const tag = m[0];
    const open = /^<([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>$/.exec(tag);
    const close = /^<\/([a-zA-Z][\w:-]*)\s*>$/.exec(tag);
    assert.ok(open || close, `malformed tag: ${tag}`);
    if (open) {
      assert.not.ok(entity.test(open[2]!), `bad attribute escaping: ${tag}`);
      const names = [...open[2]!.matchAll(/([\w:-]+)=/g)].map((a) => a[1]);
      assert.is(new Set(names).size, names.length, `duplicate attribute: ${tag}`);
      if (stack.length === 0) roots++;
      if (open[3] !== "/") stack.push(open[1]!);
    } else {
      assert.is(stack.pop(), close![1], `mismatched close: ${tag}`);
    }
  }
  assert.is(body.slice(last).trim(), "", "trailing text after the root");
  assert.equal(stack, [], "unclosed tags");
  assert.is(roots, 1, "exactly one root element");
}

/** The inner markup of the series group named `name`. */
function seriesGroup(svg: string, name: string): string {
  const start = svg.indexOf(`<g class="series" data-name="${name}">`);
  assert.ok(start >= 0, `no group for series ${name}`);
  return svg.slice(start, svg.indexOf("</g>", start));
}

const sample: ChartOptions = {
  title: "Throughput",
  xLabel: "offered packets/s",
  yLabel: "delivered packets/s",
  diagonal: true,
  series: [
    { name: "msm", points: [[200_000, 150_000], [50_000, 50_000], [100_000, 99_000]] },
    { name: "rtpengine", points: [[50_000, 49_000], [100_000, 98_000], [200_000, 190_000]], dashed: true },
    { name: "udp echo", points: [[50_000, 50_000], [100_000, 100_000], [200_000, 200_000]] },
  ],
};

test("a complete, well-formed SVG document with a white background", () => {
  const svg = renderLineChart(sample);
  assertWellFormed(svg);
  assert.match(svg, /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="760" height="420"/);
  assert.match(svg, /<rect x="0" y="0" width="760" height="420" fill="#ffffff"\/>/);
  assert.match(svg, /font-family="sans-serif"/);
  assert.match(renderLineChart({ ...sample, width: 500, height: 300 }), /width="500" height="300" viewBox="0 0 500 300"/);
});

test("the legend names every series, to the right of the plot", () => {
  const svg = renderLineChart(sample);
  const legend = svg.slice(svg.indexOf('<g class="legend"'));
  for (const s of sample.series) assert.ok(legend.includes(`>${s.name}</text>`), `legend lacks ${s.name}`);
  const plotRight = Number(/<rect x="64" y="44" width="([\d.]+)"/.exec(svg)![1]) + 64;
  const legendXs = [...legend.matchAll(/<line x1="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.is(legendXs.length, 4, "three series and the y = x reference");
  for (const x of legendXs) assert.ok(x > plotRight, `legend at ${x} overlaps the plot ending at ${plotRight}`);
  assert.match(seriesGroup(svg, "rtpengine"), /stroke-dasharray/);
  assert.not.match(seriesGroup(svg, "msm"), /stroke-dasharray/);
});

test("distinct colours per series, a marker per point, points joined in x order", () => {
  const svg = renderLineChart(sample);
  const colours = sample.series.map((s) => /<path d="[^"]*" fill="none" stroke="(#[0-9A-F]{6})"/.exec(seriesGroup(svg, s.name))![1]);
  assert.is(new Set(colours).size, 3);
  const msm = seriesGroup(svg, "msm");
  assert.is(msm.match(/class="marker"/g)!.length, 3);
  const xs = [.../[ML]([\d.]+) /g[Symbol.matchAll](/ d="([^"]*)"/.exec(msm)![1]!)].map((m) => Number(m[1]));
  assert.is(xs.length, 3);
  assert.equal(xs, [...xs].sort((a, b) => a - b), "the line runs left to right");
});

test("compact round tick labels", () => {
  const svg = renderLineChart(sample);
  for (const label of ["0", "50k", "100k", "150k", "200k"]) assert.ok(svg.includes(`>${label}</text>`), `no tick ${label}`);
  const big = renderLineChart({ ...sample, diagonal: false, series: [{ name: "a", points: [[0, 0], [1_500_000, 1_400_000]] }] });
  assert.ok(big.includes(">1.5M</text>"), "millions are written as 1.5M");
  assert.not.match(big, />\d{5,}<\/text>/, "no long raw numbers");
});

test("text is XML-escaped in titles, labels and names", () => {
  const svg = renderLineChart({
    title: "a <b> & \"c\"", xLabel: "x<&>", yLabel: "y<&>",
    series: [{ name: "<&>'", points: [[1, 1], [2, 2]] }],
  });
  assertWellFormed(svg);
  assert.ok(svg.includes("a &lt;b&gt; &amp; &quot;c&quot;"));
  assert.ok(svg.includes(">x&lt;&amp;&gt;</text>"));
  assert.ok(svg.includes(">y&lt;&amp;&gt;</text>"));
  assert.ok(svg.includes('data-name="&lt;&amp;&gt;&apos;"'));
  assert.ok(svg.includes(">&lt;&amp;&gt;&apos;</text>"));
  assert.not.ok(svg.includes("<b>"));
});

test("a log axis skips non-positive and non-finite values and breaks the line there", () => {
  const svg = renderLineChart({
    title: "Latency", xLabel: "offered", yLabel: "us", yLog: true,
    series: [{ name: "p99", points: [[1, 50], [2, 0], [3, 200], [4, 3000], [5, -4], [6, NaN], [7, 80_000], [8, Infinity]] }],
  });
  assertWellFormed(svg);
  const group = seriesGroup(svg, "p99");
  assert.is(group.match(/class="marker"/g)!.length, 4, "only 50, 200, 3000 and 80000 are drawn");
  const d = / d="([^"]*)" fill="none"/.exec(group)![1]!;
  assert.is(d.match(/M/g)!.length, 3, `three runs: [50], [200, 3000], [80000]: ${d}`);
  assert.not.match(d, /NaN|Infinity/);
  for (const label of ["10", "100", "1k", "10k", "100k"]) assert.ok(svg.includes(`>${label}</text>`), `no decade tick ${label}`);
});

test("on a linear axis zero and negative values are kept, only non-finite ones skipped", () => {
  const svg = renderLineChart({ title: "t", xLabel: "x", yLabel: "y", series: [{ name: "s", points: [[1, 0], [2, -1], [3, NaN], [4, 2]] }] });
  const group = seriesGroup(svg, "s");
  assert.is(group.match(/class="marker"/g)!.length, 3);
  assert.ok(svg.includes(">-1</text>"), "the axis extends below zero");
});

test("the diagonal is drawn only when asked, from the origin up to the corner", () => {
  const svg = renderLineChart(sample);
  const m = /<path class="diagonal" d="M([\d.]+) ([\d.]+)L([\d.]+) ([\d.]+)"/.exec(svg);
  assert.ok(m, "diagonal present");
  const [x1, y1, x2, y2] = m!.slice(1).map(Number) as [number, number, number, number];
  assert.ok(x2 > x1 && y2 < y1, "it rises to the right");
  // Both axes run 0..200k, so y = x goes from the plot's bottom-left to its top-right.
  assert.equal([x1, y1], [64, 368]);
  assert.is(y2, 44);
  assert.ok(svg.includes(">y = x</text>"), "the reference line is in the legend");
  const plain = renderLineChart({ ...sample, diagonal: false });
  assert.not.ok(plain.includes('class="diagonal"') || plain.includes(">y = x</text>"));
});

test("deterministic: same input, same bytes, whatever the input order of points", () => {
  assert.is(renderLineChart(sample), renderLineChart(sample));
  const shuffled = { ...sample, series: sample.series.map((s) => ({ ...s, points: [...s.points].reverse() })) };
  assert.is(renderLineChart(shuffled), renderLineChart(sample));
  assert.not.match(renderLineChart(sample), /\d\.\d\d/, "coordinates rounded to one decimal");
});

test("empty data still gives a valid SVG with a 'no data' note", () => {
  for (const series of [[], [{ name: "a", points: [] }], [{ name: "b", points: [[1, -1], [2, 0]] as [number, number][] }]]) {
    const svg = renderLineChart({ title: "Nothing", xLabel: "x", yLabel: "y", yLog: true, diagonal: true, series });
    assertWellFormed(svg);
    assert.ok(svg.includes(">no data</text>"));
    assert.not.match(svg, /NaN|Infinity/);
  }
  // One empty series among others: the chart draws, the legend says which one had nothing.
  const mixed = renderLineChart({ ...sample, series: [...sample.series, { name: "broken", points: [] }] });
  assertWellFormed(mixed);
  assert.not.ok(mixed.includes(">no data</text>"));
  assert.ok(mixed.includes(">broken (no data)</text>"));
});

test.run();
