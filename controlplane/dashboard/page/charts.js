// Per-hop live charts of the picked stream (uPlot): loss each hop adds, jitter each hop adds, and
// each hop's delay, over the minutes the page has been open. The series come from the page's own
// history of live updates; a bad hop's series is drawn red and thicker.
import uPlot from "./uplot.esm.js";

const PALETTE = ["#5794f2", "#73bf69", "#b877d9", "#ff9830", "#8ab8ff", "#37872d", "#fade2a", "#ca95e5", "#1f60c4", "#c4a000"];
const BAD = "#f2495c";
const AXIS = { stroke: "#9fa7b3", grid: { stroke: "#2c3235", width: 1 }, ticks: { stroke: "#2c3235", width: 1 } };

/** What each chart plots, from a history sample of one hop. */
export const CHARTS = [
  { id: "loss", title: "Loss added", unit: "%", floor: 1, pick: (h) => (h.lossFraction === null ? null : h.lossFraction * 100) },
  { id: "jitter", title: "Jitter added", unit: "ms", floor: 1, pick: (h) => h.jitterAddedMs },
  { id: "delay", title: "Delay", unit: "ms", floor: 1, pick: (h) => h.delayMs },
];

const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });

class Chart {
  constructor(spec, container) {
    this.spec = spec;
    this.container = container;
    this.plot = null;
    this.key = "";
  }

  /** Draws `series` ({ label, bad, values }) against `times` (seconds); rebuilt only when the hops change. */
  show(times, series) {
    const key = series.map((s) => `${s.label}\u0000${s.bad}`).join("\u0001");
    const data = [times, ...series.map((s) => s.values)];
    if (this.plot && key === this.key) {
      this.plot.setData(data);
      this.span(times);
      return;
    }
    this.plot?.destroy();
    this.key = key;
    const { unit, floor } = this.spec;
    this.plot = new uPlot(
      {
        width: Math.max(240, this.container.clientWidth),
        height: 190,
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(floor, (max ?? 0) * 1.15)] } },
        legend: { live: false },
        axes: [
          // whole seconds and up: a tick each 100 ms would print the same clock time twice
          { ...AXIS, space: 70, incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300], values: (_u, ticks) => ticks.map((t) => clock(t)) },
          // as wide as its longest label: a fixed 56 px cut the minus off "-2.5 ms" (a hop's jitter added below zero)
          { ...AXIS, size: (_u, values) => Math.max(56, 14 + 7 * Math.max(0, ...(values ?? []).map((v) => v.length))), values: (_u, ticks) => ticks.map((t) => `${t} ${unit}`) },
        ],
        series: [
          {},
          ...series.map((s, i) => ({
            label: s.label,
            stroke: s.bad ? BAD : PALETTE[i % PALETTE.length],
            width: s.bad ? 2.5 : 1.5,
          })),
        ],
      },
      data,
      this.container,
    );
    this.span(times);
  }

  /** At least the last minute across: the first samples alone would make a chart of zero width. */
  span(times) {
    if (times.length === 0) return;
    const last = times[times.length - 1];
    this.plot.setScale("x", { min: Math.min(times[0], last - 60), max: last });
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: Math.max(240, this.container.clientWidth), height: 190 });
  }

  clear() {
    this.plot?.destroy();
    this.plot = null;
    this.key = "";
  }
}

/** The three charts, in their containers (by id: chart-loss, chart-jitter, chart-delay). */
export class HopCharts {
  constructor(root) {
    this.charts = CHARTS.map((spec) => new Chart(spec, root.querySelector(`#chart-${spec.id}`)));
    new ResizeObserver(() => this.charts.forEach((c) => c.resize())).observe(root);
  }

  /** `history`: { t: seconds[], hops: Map(label -> samples[]) }; `hops`: the stream's hops now (label, bad). */
  show(history, hops) {
    if (!history || hops.length === 0) {
      this.charts.forEach((c) => c.clear());
      return;
    }
    this.charts.forEach((chart) => {
      const series = hops.map((hop) => ({
        label: hop.label,
        bad: hop.bad,
        values: (history.hops.get(hop.label) ?? []).map((sample) => (sample === null ? null : chart.spec.pick(sample))),
      }));
      chart.show(history.t, series);
    });
  }
}
