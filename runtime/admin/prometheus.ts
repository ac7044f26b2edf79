// Renders a proxy snapshot in the Prometheus text exposition format (version 0.0.4), a piece at a
// time: at 10,000 segments the whole text is 43 MB, and made at once (its lines, then the joined
// string, then the socket's buffer) a scrape held about 200 MB more than its snapshot. A piece is
// at most SEGMENTS_PER_PIECE segments of one family: a whole family of 10,000 segments took up to
// 260 ms to make, in which the admin endpoint answered nothing else (a /healthz waited).
import { HISTOGRAM_BOUNDS, type HistogramValue } from "../filter-host/metrics.js";
import type { ProxySnapshot } from "../proxy.js";
import type { CarriedStream, CarriedTotals } from "../streams/carried-totals.js";
import type { ReceiverReport, StreamDirection } from "../streams/types.js";

import { familyLines, labelText as labels } from "./exposition.js";

type Row = [Record<string, string | number>, number];
type Segment = ProxySnapshot["segments"][number];
type Segments = readonly Segment[];
/** Adds a family whose rows are made, a segment at a time, only when its text is taken. */
type Family = (name: string, type: string, help: string, rows: (s: Segment) => Row[], thenRows?: (s: Segment) => Row[]) => void;
/** A family's text, made a piece at a time as it is taken. */
type Made = () => Iterable<string>;

/** Segments a piece of a per-segment family holds at most. */
export const SEGMENTS_PER_PIECE = 256;

/** An SSRC as a label value: 0x and 8 hex digits, as Wireshark and RTCP tools show it. */
export const ssrcLabel = (ssrc: number): string => `0x${ssrc.toString(16).padStart(8, "0")}`;

/** Milliseconds as seconds, to the microsecond the stats keep: 0.003616, not 0.0036160000000000003. */
const seconds = (ms: number): number => Math.round(ms * 1000) / 1e6;

/**
 * Per-stream families (docs/streams.md). Labels: segment, ssrc, direction (ingress | egress);
 * the receivers' families add reporter. Streams beyond streams.max are one series with ssrc="other".
 */
function streamFamilies(segs: Segments, family: Family): void {
  const directions = (pick: (d: StreamDirection) => number | null) => (s: Segment): Row[] =>
    s.streams.flatMap((st) => (["ingress", "egress"] as const).flatMap((direction): Row[] => {
      const d = st[direction];
      const v = d ? pick(d) : null;
      return v === null ? [] : [[{ segment: s.name, ssrc: ssrcLabel(st.ssrc), direction }, v]];
    }));
  // counters go on from what a stream counted before its worker restarted or its segment moved
  let carriedMap: Map<string, CarriedStream> | undefined;
  const carried = (): Map<string, CarriedStream> => {
    if (carriedMap) return carriedMap;
    carriedMap = new Map();
    for (const s of segs) for (const c of s.streamsCarried ?? []) carriedMap.set(`${s.name}/${c.ssrc}`, c);
    return carriedMap;
  };
  const counters = (field: keyof CarriedTotals) => (s: Segment): Row[] =>
    s.streams.flatMap((st) => (["ingress", "egress"] as const).flatMap((direction): Row[] => {
      const d = st[direction];
      if (!d) return [];
      const before = carried().get(`${s.name}/${st.ssrc}`)?.[direction]?.[field] ?? 0;
      return [[{ segment: s.name, ssrc: ssrcLabel(st.ssrc), direction }, d[field] + before]];
    }));
  const receivers = (pick: (r: ReceiverReport) => number | null) => (s: Segment): Row[] =>
    s.streams.flatMap((st) => st.receivers.flatMap((r): Row[] => {
      const v = pick(r);
      return v === null ? [] : [[{ segment: s.name, ssrc: ssrcLabel(st.ssrc), reporter: ssrcLabel(r.reporterSsrc) }, v]];
    }));
  // the overflow series of every segment follow the streams' series of every segment
  const overflow = (s: Segment): Row[] => (s.streamsOverflow
    ? [[{ segment: s.name, ssrc: "other", direction: "ingress" }, s.streamsOverflow.ingressPackets], [{ segment: s.name, ssrc: "other", direction: "egress" }, s.streamsOverflow.egressPackets]]
    : []);
  family("msm_stream_packets_total", "counter", "RTP packets of the stream, duplicates excluded (ingress: from the sender; egress: out of the chain, once per packet). ssrc=\"other\": streams beyond streams.max.", counters("packets"), overflow);
  family("msm_stream_bytes_total", "counter", "RTP bytes of the stream, duplicates excluded.", counters("bytes"));
  family("msm_stream_expected_packets_total", "counter", "Packets the sequence numbers say were sent (RFC 3550 A.3).", counters("expected"));
  family("msm_stream_lost_packets", "gauge", "Packets expected but not seen (RFC 3550 A.3; a late packet lowers it).", directions((d) => d.lost));
  family("msm_stream_duplicates_total", "counter", "Packets whose sequence number was already seen.", counters("duplicates"));
  family("msm_stream_reordered_total", "counter", "Packets that came after a higher sequence number.", counters("reordered"));
  family("msm_stream_jitter_seconds", "gauge", "Interarrival jitter (RFC 3550 A.8).", directions((d) => seconds(d.jitterMs)));
  family("msm_stream_window_loss_ratio", "gauge", "Fraction lost in the last window (about 1 s): its lost packets over the sequence numbers it settled (docs/streams.md).", directions((d) => d.window?.fractionLost ?? null));
  family("msm_stream_window_bits_per_second", "gauge", "Bit rate over the last window.", directions((d) => d.window?.bitrateBps ?? null));
  family("msm_stream_window_packets_per_second", "gauge", "Packet rate over the last window.", directions((d) => d.window?.packetRate ?? null));
  family("msm_stream_receiver_loss_ratio", "gauge", "Fraction lost a receiver reported in its last RTCP report block.", receivers((r) => r.fractionLost));
  family("msm_stream_receiver_lost_packets", "gauge", "Cumulative packets lost a receiver reported.", receivers((r) => r.cumulativeLost));
  family("msm_stream_receiver_jitter_seconds", "gauge", "Interarrival jitter a receiver reported.", receivers((r) => seconds(r.jitterMs)));
  family("msm_stream_receiver_rtt_seconds", "gauge", "Round trip proxy -> receiver -> proxy, from LSR/DLSR.", receivers((r) => (r.rttMs === null ? null : seconds(r.rttMs))));
}

/** One series of a filter's own metric: a value, or a histogram's buckets, sum and count. */
function sample(lines: string[], name: string, l: Record<string, string | number>, v: { value?: number; histogram?: HistogramValue }): void {
  const h = v.histogram;
  if (!h) {
    lines.push(`${name}${labels(l)} ${v.value}`);
    return;
  }
  let cumulative = 0;
  HISTOGRAM_BOUNDS.forEach((b, k) => {
    cumulative += h.buckets[k]!;
    lines.push(`${name}_bucket${labels({ ...l, le: b })} ${cumulative}`);
  });
  lines.push(`${name}_bucket${labels({ ...l, le: "+Inf" })} ${h.count}`, `${name}_sum${labels(l)} ${h.sum}`, `${name}_count${labels(l)} ${h.count}`);
}

/** A predicate for the families metrics.exclude leaves out: names, and prefixes ending in '*'. */
export function excludedFamilies(patterns: readonly string[]): (family: string) => boolean {
  if (patterns.length === 0) return () => false;
  const names = new Set(patterns.filter((p) => !p.endsWith("*")));
  const prefixes = patterns.filter((p) => p.endsWith("*")).map((p) => p.slice(0, -1));
  return (family) => names.has(family) || prefixes.some((p) => family.startsWith(p));
}

/** `excluded`: families left out (metrics.exclude). The whole text in one string (tests, small proxies). */
export function renderPrometheus(snap: ProxySnapshot, excluded: (family: string) => boolean = () => false): string {
  return [...prometheusPieces(snap, excluded)].join("");
}

/** The exposition text a piece at a time, each made as it is taken, for a body written as the client reads. */
export function* prometheusPieces(snap: ProxySnapshot, excluded: (family: string) => boolean = () => false): Generator<string> {
  const made: Made[] = [];
  const segs = snap.segments;
  const family: Family = (name, type, help, rows, thenRows) => {
    if (excluded(name)) return;
    const passes = [rows, ...(thenRows ? [thenRows] : [])].map((pass) => (s: Segment, lines: string[]): void => {
      for (const [l, v] of pass(s)) lines.push(`${name}${labels(l)} ${v}`);
    });
    made.push(() => piecesOf(header(name, type, help), segs, passes));
  };
  /** A family of the proxy as a whole, or of its filter instances: one piece. */
  const whole = (name: string, type: string, help: string, rows: () => Row[]): void => {
    if (!excluded(name)) made.push(() => [`${familyLines(name, type, help, rows()).join("\n")}\n`]);
  };
  family("msm_segment_packets_in_total", "counter", "Packets received by the segment, both directions.", (s) => [[{ segment: s.name }, s.packetsIn]]);
  family("msm_segment_bytes_in_total", "counter", "Bytes received by the segment.", (s) => [[{ segment: s.name }, s.bytesIn]]);
  family("msm_segment_packets_out_total", "counter", "Packets sent by the segment (one per destination).", (s) => [[{ segment: s.name }, s.packetsOut]]);
  family("msm_segment_bytes_out_total", "counter", "Bytes sent by the segment.", (s) => [[{ segment: s.name }, s.bytesOut]]);
  family("msm_segment_send_messages_total", "counter", "Messages the segment's sends handed to the kernel: with UDP GSO a run of packets to one destination is one.",
    (s) => [[{ segment: s.name }, s.messagesOut ?? s.packetsOut]]);
  const legRows = (pick: (l: Segment["legs"][number]) => number) => (s: Segment): Row[] =>
    (s.legs.length > 1 ? s.legs.map((l): Row => [{ segment: s.name, leg: l.name }, pick(l)]) : []);
  family("msm_segment_leg_packets_in_total", "counter", "Packets received per leg of a segment with legs (media, FEC, second path).", legRows((l) => l.packetsIn));
  family("msm_segment_leg_packets_out_total", "counter", "Packets sent per leg of a segment with legs (one per destination).", legRows((l) => l.packetsOut));
  family("msm_segment_drops_total", "counter", "Packets dropped in the segment, by reason.",
    (s) => Object.entries(s.drops).map(([reason, n]): Row => [{ segment: s.name, reason }, n]));
  family("msm_segment_discards_total", "counter", "Packets the segment's filters discarded as their normal work (a merge's duplicates), by the filter's name for it; not drops.",
    (s) => Object.entries(s.discards ?? {}).map(([reason, n]): Row => [{ segment: s.name, reason }, n]));
  const stageRows = (pick: (st: Segment["stages"][number]) => number) => (s: Segment): Row[] =>
    s.stages.map((st, i): Row => [{ segment: s.name, stage: i, filter: st.filter }, pick(st)]);
  family("msm_filter_packets_in_total", "counter", "Packets handed to the filter stage.", stageRows((st) => st.packetsIn));
  family("msm_filter_packets_out_total", "counter", "Packets the filter stage passed or created.", stageRows((st) => st.packetsOut));
  family("msm_filter_bytes_in_total", "counter", "Bytes handed to the filter stage.", stageRows((st) => st.bytesIn));
  family("msm_filter_bytes_out_total", "counter", "Bytes the filter stage passed or created.", stageRows((st) => st.bytesOut));
  family("msm_filter_held_total", "counter", "Packets the filter stage took and kept (a buffer, a queue, FEC consumed): with drops_total and packets_out_total, where every packet in went.", stageRows((st) => st.held));
  family("msm_filter_generated_total", "counter", "Packets the filter stage made (FEC, recovered packets, copies, feedback, released from a buffer), each it wrote into its output area: one the host took is in packets_out_total too, one it refused in drops_total (host_bad_descriptor, host_budget_exceeded).", stageRows((st) => st.generated));
  family("msm_filter_bypassed_total", "counter", "Packets that went past the filter stage while it was down (failure mode open).", stageRows((st) => st.bypassed));
  family("msm_filter_failures_total", "counter", "Times the filter stage failed (trap, abort, stuck).", stageRows((st) => st.failures));
  family("msm_filter_busy_seconds_total", "counter", "Time spent in the filter stage, including copies in and out.", stageRows((st) => st.busyNs / 1e9));
  family("msm_filter_up", "gauge", "1 while the filter stage runs, 0 while it is down or given up.", stageRows((st) => (st.state === "running" ? 1 : 0)));
  // per instance, not per stage: one instance serves every segment of its worker that uses it. Its
  // label is filter_instance: Prometheus gives every scraped series its own `instance` (the target),
  // and renames a series' own to exported_instance
  const instances = (snap.instances ?? []).filter((i) => i.memoryBytes !== null);
  const instanceLabels = (i: ProxySnapshot["instances"][number]): Record<string, string | number> => ({ filter: i.filter, worker: i.worker, filter_instance: i.id });
  whole("msm_filter_memory_bytes", "gauge", "Linear memory of the filter instance (labels: worker, and filter_instance, its id in the worker).",
    () => instances.map((i) => [instanceLabels(i), i.memoryBytes!]));
  whole("msm_filter_memory_max_bytes", "gauge", "The filter instance's memory cap (its maxMemoryPages); an allocation past it traps.",
    () => instances.map((i) => [instanceLabels(i), i.memoryMaxBytes]));
  family("msm_filter_drops_total", "counter", "Packets the filter stage dropped, by reason.",
    (s) => s.stages.flatMap((st, i) => Object.entries(st.drops).map(([reason, n]): Row => [{ segment: s.name, stage: i, filter: st.filter, reason }, n])));
  family("msm_filter_discards_total", "counter", "Packets the filter stage discarded as its normal work (a merge's duplicates), by its name for it; not drops.",
    (s) => s.stages.flatMap((st, i) => Object.entries(st.discards ?? {}).map(([reason, n]): Row => [{ segment: s.name, stage: i, filter: st.filter, reason }, n])));
  ownFamilies(snap, excluded, made);
  streamFamilies(segs, family);
  whole("msm_proxy_running", "gauge", PROXY_RUNNING_HELP, () => [[{}, 1]]);
  whole("msm_watchdog_restarts_total", "counter", "Workers restarted because a filter call was stuck.", () => [[{}, snap.watchdogRestarts]]);
  whole("msm_worker_exits_total", "counter", "Workers that ended by themselves (crash, abort, killed from outside) and were restarted.", () => [[{}, snap.workerExits]]);
  whole("msm_config_applies_total", "counter", "Configs applied since the start (reloads, snapshots, retries), by result: applied (partly, where msm_segments_not_running says so) or refused (the running config kept).",
    () => [[{ result: "applied" }, snap.configApplies.applied], [{ result: "refused" }, snap.configApplies.refused]]);
  whole("msm_segments_not_running", "gauge", "Segments of the running config that do not run (a port taken after the change was committed); /readyz says why.", () => [[{}, snap.notRunning.length]]);
  for (const make of made) yield* make();
}

const header = (name: string, type: string, help: string): string[] => [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];

/**
 * A family's text: `head`, then the lines each pass adds per segment (a pass over every segment,
 * then the next pass), a piece per SEGMENTS_PER_PIECE segments. The pieces joined are the lines,
 * each ending in a newline.
 */
function* piecesOf(head: string[], segs: Segments, passes: readonly ((s: Segment, lines: string[]) => void)[]): Generator<string> {
  let lines = head;
  for (const pass of passes) {
    for (let i = 0; i < segs.length; i++) {
      pass(segs[i]!, lines);
      if ((i + 1) % SEGMENTS_PER_PIECE === 0 && lines.length > 0) {
        yield `${lines.join("\n")}\n`;
        lines = [];
      }
    }
  }
  if (lines.length > 0) yield `${lines.join("\n")}\n`;
}

type Metric = ProxySnapshot["segments"][number]["stages"][number]["metrics"][number];

/**
 * The metrics the filters defined themselves: msm_filter_<filter or its metricsName>_<name>{segment,stage[,<label>]},
 * a counter's name ending in _total (Prometheus' and OpenMetrics' convention). The families are
 * found in one pass; each one's lines are made, in a pass of their own, as its pieces are taken.
 */
function ownFamilies(snap: ProxySnapshot, excluded: (family: string) => boolean, made: Made[]): void {
  const segs = snap.segments;
  // family names by filter, kind and metric name: found once, not made again per segment
  const names = new Map<string, Map<string, Map<string, string>>>();
  const familyOf = (stageFilter: string, m: Metric): string => {
    let byKind = names.get(stageFilter);
    if (!byKind) names.set(stageFilter, (byKind = new Map()));
    let byName = byKind.get(m.kind);
    if (!byName) byKind.set(m.kind, (byName = new Map()));
    let name = byName.get(m.name);
    if (name === undefined) {
      const prefix = (snap.metricsNames?.[stageFilter] ?? stageFilter).replace(/-/g, "_");
      byName.set(m.name, (name = `msm_filter_${prefix}_${m.name}${m.kind === "counter" && !m.name.endsWith("_total") ? "_total" : ""}`));
    }
    return name;
  };
  // two versions of a filter sharing its name may define a metric as two kinds: one family has one type, the first seen
  const types = new Map<string, string>();
  for (const s of segs) {
    for (const st of s.stages) {
      for (const m of st.metrics) {
        const name = familyOf(st.filter, m);
        if (types.has(name) || excluded(name)) continue;
        types.set(name, m.kind);
        const filter = snap.metricsNames?.[st.filter] ?? st.filter;
        const help = `The ${filter} filter's own ${m.kind} '${m.name}' (its docs say what it counts).`;
        made.push(() => piecesOf(header(name, m.kind, help), segs, [(s2, lines) => {
          s2.stages.forEach((st2, i) => {
            for (const m2 of st2.metrics) {
              if (m2.kind !== m.kind || familyOf(st2.filter, m2) !== name) continue;
              const base = { segment: s2.name, stage: i };
              if (m2.series) for (const one of m2.series) sample(lines, name, { ...base, [m2.label!]: one.labelValue }, one);
              else sample(lines, name, base, m2);
            }
          });
        }]));
      }
    }
  }
}

const PROXY_RUNNING_HELP = "1 while the proxy runs a config; 0 from an admin endpoint up before any (an agent waiting for its first snapshot).";

/** What /metrics says before the proxy runs: a scrape that succeeds, and says so. */
export function renderNotRunning(): string {
  return `# HELP msm_proxy_running ${PROXY_RUNNING_HELP}\n# TYPE msm_proxy_running gauge\nmsm_proxy_running 0\n`;
}
