// A proxy's stats as msmctl reads them: GetStats gives pages of each proxy's latest report, each
// page's stats_json a ProxySnapshot (runtime/) with that page's segments (counters that only
// grow); the pages of a proxy are merged, and rates come from two reports of each segment.
import type { ProxyStats, ProxyStatus } from "../../controlplane/api/proto.js";
import { STALE_REPORT_MS } from "../../controlplane/server/stream-paths.js";
import type { ProxySnapshot } from "../../runtime/index.js";
import type { StatsTruncation } from "../../controlplane/api/stats-pages.js";
import { age } from "./format.js";

/** A count and a sum, all msmctl shows of a histogram (its buckets are on the proxy's /metrics). */
export interface HistogramSummary {
  count: number;
  sum: number;
}

/** One of a filter's own metrics in a stage (ABI define_metric), as the proxy reports it in its stats. */
export interface StageMetric {
  name: string;
  kind: string;
  /** Unlabelled: a counter's or gauge's value, or a histogram's. */
  value?: number;
  histogram?: HistogramSummary;
  /** Labelled: the label's name and each series (the filter's label value in decimal, or "other"). */
  label?: string;
  series?: { labelValue: string; value?: number; histogram?: HistogramSummary }[];
}

export interface StageCounters {
  filter: string;
  state: string;
  packetsIn: number;
  packetsOut: number;
  /** Packets the stage took and kept, and made (0 from a proxy that does not say). */
  held: number;
  generated: number;
  drops: Record<string, number>;
  /** What the filter discarded as its normal work (ABI 1.6 names; {} from an older proxy): not drops. */
  discards: Record<string, number>;
  failures: number;
  nsPerPacket: number;
  /** The filter's own metrics, in the order it defined them (none from a proxy that does not report them). */
  metrics: StageMetric[];
}

export interface SegmentCounters {
  name: string;
  packetsIn: number;
  packetsOut: number;
  /** What the sends handed to the kernel: with UDP GSO a run of packets to one destination is one (a proxy older than GSO: packetsOut). */
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  rtcpIn: number;
  upstreamIn: number;
  dropsTotal: number;
  drops: Record<string, number>;
  /** What the filters discarded as their normal work (a merge's duplicates): not in dropsTotal, nor in top's DROPS/S. */
  discardsTotal: number;
  discards: Record<string, number>;
  stages: StageCounters[];
  /** Packets per leg, the media first; empty from a proxy older than legs. */
  legs: { name: string; packetsIn: number; packetsOut: number }[];
  /** When the page holding this segment arrived. */
  atMs: number;
  /** When the proxy took the report holding it, by its clock (absent from a proxy that does not say): what rates divide by. */
  takenAtMs?: number;
  /** Set when the proxy left this segment's counters out (they did not fit a page). */
  note?: string;
}

export interface ProxyCounters {
  nodeId: string;
  atMs: number;
  segments: SegmentCounters[];
  watchdogRestarts: number;
  /** Set when stats_json could not be read; segments is then empty. */
  error?: string;
  /** Set when the report is incomplete: segments left out by the proxy, or pages missing. */
  note?: string;
}

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

function counts(v: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (typeof v === "object" && v !== null) for (const [k, n] of Object.entries(v)) if (num(n) > 0) out[k] = num(n);
  return out;
}

type Loose<T> = { [K in keyof T]?: unknown };

function histogramOf(v: unknown): HistogramSummary | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const h = v as Loose<HistogramSummary>;
  return { count: num(h.count), sum: num(h.sum) };
}

/** A value, or a histogram, or neither (as reported: a field a newer proxy leaves out stays out). */
function valueOf(v: { value?: unknown; histogram?: unknown }): { value?: number; histogram?: HistogramSummary } {
  const histogram = histogramOf(v.histogram);
  if (histogram) return { histogram };
  return typeof v.value === "number" ? { value: num(v.value) } : {};
}

/** A stage's metrics as reported (FilterMetricSnapshot[]), each read loosely; one without a name is left out. */
function stageMetrics(v: unknown): StageMetric[] {
  if (!Array.isArray(v)) return [];
  return (v as Loose<StageMetric>[]).flatMap((m) => {
    if (typeof m !== "object" || m === null || typeof m.name !== "string") return [];
    const base = { name: m.name, kind: String(m.kind ?? "?") };
    if (typeof m.label !== "string" || !Array.isArray(m.series)) return [{ ...base, ...valueOf(m) }];
    const series = (m.series as Loose<NonNullable<StageMetric["series"]>[number]>[]).map((x) => ({ labelValue: String(x.labelValue ?? "?"), ...valueOf(x) }));
    return [{ ...base, label: m.label, series }];
  });
}

/** What a page says about segments the proxy left out of its report. */
function truncation(snap: { truncated?: unknown }): string | undefined {
  const t = snap.truncated as Partial<StatsTruncation> | undefined;
  if (typeof t !== "object" || t === null) return undefined;
  return `the proxy reported ${num(t.segmentsReported)} of its ${num(t.segmentsTotal)} segments (${String(t.reason ?? "its report was cut")})`;
}

/** Reads one proxy's report. Tolerates missing fields (a newer or older proxy): they count 0. */
export function parseProxyStats(p: ProxyStats): ProxyCounters {
  let snap: Loose<ProxySnapshot> & { truncated?: unknown };
  try {
    snap = JSON.parse(p.statsJson || "{}") as Loose<ProxySnapshot>;
  } catch (err) {
    return { nodeId: p.nodeId, atMs: p.atMs, segments: [], watchdogRestarts: 0, error: `unreadable stats: ${(err as Error).message}` };
  }
  const segs = Array.isArray(snap.segments) ? (snap.segments as Loose<ProxySnapshot["segments"][number]>[]) : [];
  const takenAtMs = typeof snap.atMs === "number" && Number.isFinite(snap.atMs) ? snap.atMs : undefined;
  return {
    nodeId: p.nodeId,
    atMs: p.atMs,
    watchdogRestarts: num(snap.watchdogRestarts),
    ...(truncation(snap) ? { note: truncation(snap) } : {}),
    segments: segs.map((s) => ({
      atMs: p.atMs,
      ...(takenAtMs !== undefined ? { takenAtMs } : {}),
      ...(typeof (s as { truncated?: unknown }).truncated === "string" ? { note: `counters left out: ${(s as { truncated: string }).truncated}` } : {}),
      name: String(s.name ?? "?"),
      packetsIn: num(s.packetsIn),
      packetsOut: num(s.packetsOut),
      messagesOut: num(s.messagesOut ?? s.packetsOut),
      bytesIn: num(s.bytesIn),
      bytesOut: num(s.bytesOut),
      rtcpIn: num(s.rtcpIn),
      upstreamIn: num(s.upstreamIn),
      dropsTotal: num(s.dropsTotal),
      drops: counts(s.drops),
      discardsTotal: num(s.discardsTotal),
      discards: counts(s.discards),
      stages: (Array.isArray(s.stages) ? (s.stages as Loose<ProxySnapshot["segments"][number]["stages"][number]>[]) : []).map((t) => ({
        filter: String(t.filter ?? "?"),
        state: String(t.state ?? "?"),
        packetsIn: num(t.packetsIn),
        packetsOut: num(t.packetsOut),
        held: num(t.held),
        generated: num(t.generated),
        drops: counts(t.drops),
        discards: counts(t.discards),
        failures: num(t.failures),
        nsPerPacket: num(t.nsPerPacket),
        metrics: stageMetrics(t.metrics),
      })),
      legs: (Array.isArray(s.legs) ? (s.legs as Loose<ProxySnapshot["segments"][number]["legs"][number]>[]) : []).map((l) => ({
        name: String(l.name ?? "?"),
        packetsIn: num(l.packetsIn),
        packetsOut: num(l.packetsOut),
      })),
    })),
  };
}

export interface SegmentRates {
  proxy: string;
  segment: string;
  /** Undefined when there is no earlier snapshot to compare with yet. */
  packetsInPerSec?: number;
  packetsOutPerSec?: number;
  dropsPerSec?: number;
  bytesInPerSec?: number;
  bytesOutPerSec?: number;
}

/**
 * Proxies whose pages, as read, hold no whole report: for no report time are all its pages there.
 * Pages read while a proxy's report was being stored mix two reports, whose page boundaries differ,
 * so a segment can be on neither page read.
 */
export function incompleteReports(pages: readonly ProxyStats[]): string[] {
  const byNode = new Map<string, Map<number, Set<number>>>();
  const pageCount = new Map<string, number>();
  for (const p of pages) {
    let reports = byNode.get(p.nodeId);
    if (!reports) byNode.set(p.nodeId, (reports = new Map()));
    let got = reports.get(p.atMs);
    if (!got) reports.set(p.atMs, (got = new Set()));
    got.add(p.page);
    pageCount.set(`${p.nodeId}\n${p.atMs}`, Math.max(1, p.pages));
  }
  return [...byNode]
    .filter(([node, reports]) => ![...reports].some(([atMs, got]) => got.size >= pageCount.get(`${node}\n${atMs}`)!))
    .map(([node]) => node);
}

/**
 * Each proxy's report from its pages, as GetStats gives them (in order, a proxy's pages together):
 * the segments of every page, the newest of each name (a page left over from a longer report may
 * repeat a segment), and a note when pages are missing.
 */
export function mergeStatsPages(pages: readonly ProxyStats[]): ProxyCounters[] {
  const byNode = new Map<string, ProxyStats[]>();
  for (const p of pages) {
    let list = byNode.get(p.nodeId);
    if (!list) byNode.set(p.nodeId, (list = []));
    list.push(p);
  }
  return [...byNode.values()].map((list) => {
    const parsed = list.map(parseProxyStats);
    const readable = parsed.filter((c) => !c.error);
    const newest = readable.reduce<ProxyCounters | undefined>((a, c) => (!a || c.atMs > a.atMs ? c : a), undefined);
    if (!newest) return parsed[0]!;
    const segments = new Map<string, SegmentCounters>();
    for (const c of readable) for (const s of c.segments) if ((segments.get(s.name)?.atMs ?? -1) < s.atMs) segments.set(s.name, s);
    const expected = Math.max(...list.map((p) => Math.max(1, p.pages)));
    const got = new Set(list.map((p) => p.page)).size;
    const notes = [
      newest.note,
      got < expected ? `${got} of ${expected} pages of its report were read` : undefined,
      got >= expected && incompleteReports(list).length > 0 ? "its pages were read while it stored a newer report: some segments may be missing" : undefined,
      readable.length < parsed.length ? `${parsed.length - readable.length} page(s) unreadable: ${parsed.find((c) => c.error)!.error}` : undefined,
    ].filter((n): n is string => n !== undefined);
    return {
      nodeId: newest.nodeId,
      atMs: newest.atMs,
      watchdogRestarts: newest.watchdogRestarts,
      segments: [...segments.values()],
      ...(notes.length > 0 ? { note: notes.join("; ") } : {}),
    };
  });
}

/** Growth per second; a counter that went back (a restarted proxy) counts from zero. */
function perSecond(now: number, before: number, seconds: number): number {
  const delta = now >= before ? now - before : now;
  return delta / seconds;
}

/**
 * Rates of one segment against an earlier report of it; none without one, or with the same time.
 * Over the time between the proxy's two reports by its own clock where both say: the proxy takes
 * one every 2 s to the millisecond, but when each reaches the control plane varies by hundreds of
 * ms on a busy host (a steady 100 packets/s read 79 and 149 by the arrival times).
 */
export function segmentRate(proxy: string, prev: SegmentCounters | undefined, s: SegmentCounters): SegmentRates {
  const taken = prev?.takenAtMs !== undefined && s.takenAtMs !== undefined;
  const seconds = !prev ? 0 : taken ? (s.takenAtMs! - prev.takenAtMs!) / 1000 : (s.atMs - prev.atMs) / 1000;
  if (!prev || seconds <= 0) return { proxy, segment: s.name };
  return {
    proxy,
    segment: s.name,
    packetsInPerSec: perSecond(s.packetsIn, prev.packetsIn, seconds),
    packetsOutPerSec: perSecond(s.packetsOut, prev.packetsOut, seconds),
    dropsPerSec: perSecond(s.dropsTotal, prev.dropsTotal, seconds),
    bytesInPerSec: perSecond(s.bytesIn, prev.bytesIn, seconds),
    bytesOutPerSec: perSecond(s.bytesOut, prev.bytesOut, seconds),
  };
}

/** Rates of each segment in `now` against `before` (the same proxy, an earlier report). */
export function segmentRates(before: ProxyCounters | undefined, now: ProxyCounters): SegmentRates[] {
  return now.segments.map((s) => segmentRate(now.nodeId, before?.segments.find((p) => p.name === s.name), s));
}

/**
 * Why counters reported at `atMs` are not current, in a few words, or undefined when they are:
 * the control plane drops the proxy's pages (its status says so), or no newer report came within
 * the limit stream paths call stale (a proxy gone quiet, pages of it dropped by an older server).
 */
export function notCurrent(atMs: number | undefined, proxy: Pick<ProxyStatus, "statsDropped" | "statsDroppedAtMs"> | undefined, now = Date.now()): string | undefined {
  if (proxy?.statsDropped) return `NOT CURRENT: the control plane drops this proxy's stats (${proxy.statsDropped}; ${age(proxy.statsDroppedAtMs, now)} ago)`;
  if (atMs !== undefined && now - atMs > STALE_REPORT_MS) return `STALE: no newer report within ${STALE_REPORT_MS / 1000}s`;
  return undefined;
}

/** What keeps a proxy's merged report from being current: notCurrent for the whole, else how many of its segments' pages are stale. */
export function reportCaveat(report: ProxyCounters, proxy: Pick<ProxyStatus, "statsDropped" | "statsDroppedAtMs"> | undefined, now = Date.now()): string | undefined {
  const whole = notCurrent(report.atMs, proxy, now);
  if (whole) return whole;
  const stale = report.segments.filter((s) => now - s.atMs > STALE_REPORT_MS).length;
  return stale > 0 ? `STALE: ${stale} of its ${report.segments.length} segments have no report within ${STALE_REPORT_MS / 1000}s` : undefined;
}
