// A stream's path across proxies, joined from the segments the control plane holds and the
// per-stream stats each proxy reports: segment X's destination is segment Y's listen, one SSRC is
// followed along those joins, and each step (the first link, each proxy, each link between two
// proxies, the last link to a receiver that reports) gets what it adds: loss, jitter, delay.
// Pure: the server and the tests hand it segments and reports. docs/control-plane.md, "Streams
// across proxies", explains every rule here.
import { isIP } from "node:net";
import { canonicalAddress, RECEIVER_TIMEOUT_MS, type ReceiverReport, type StreamDirection, type StreamWindow, type StreamOverflow, type StreamStats } from "../../runtime/index.js";
import type { Endpoint, Segment } from "../api/proto.js";
import type { BadHopThresholds, StreamHop, StreamPath, StreamPoint } from "../api/streams.js";

/** A segment as a proxy reports it; the per-stream fields are absent in an older proxy's report. */
export interface ReportedSegment {
  readonly name: string;
  /** The segment's own packet counter: packets with no stream listed mean per-stream stats are off (or idle). */
  readonly packetsIn?: number;
  readonly streams?: readonly StreamStats[];
  readonly streamsOverflow?: StreamOverflow | null;
  /** Set when the proxy left this segment's counters out of its report (too large for a page): why. */
  readonly truncated?: string;
}

/** What the join reads of a proxy's report (a ProxySnapshot is one). */
export interface ReportedProxy {
  /** The host's interface addresses; absent in an older proxy's report. */
  readonly addresses?: readonly string[];
  /** When the proxy took the report (its wall clock); absent in an older proxy's report. */
  readonly atMs?: number;
  readonly segments: readonly ReportedSegment[];
  /** Some segments may be missing from `segments`: the proxy left them out, or pages of the report were not read. */
  readonly incomplete?: boolean;
}

export interface ProxyReport {
  /** When the report reached the control plane. */
  readonly atMs: number;
  readonly snapshot: ReportedProxy;
}

/** A report older than this is shown as stale: no figure of a hop is computed from it. */
export const STALE_REPORT_MS = 10_000;

/**
 * "Nothing arrived" is concluded only from a report taken at least this long after the near end's
 * last window ended (the packets of that window have had time to arrive), else it is not compared.
 */
const SETTLE_MS = 100;

export interface StreamPathOptions {
  readonly nowMs?: number;
  readonly staleAfterMs?: number;
}

/**
 * What the control plane knows of one segment now: `fresh` (its proxy's recent report has its
 * streams), `stale`, `unreported` (no report from its proxy), `no-stream-stats` (a proxy that does
 * not report streams), `streams-off` (the segment received packets, yet lists no stream and no
 * overflow: per-stream stats are off, streams.max 0, or its streams went idle), `left-out` (its
 * counters are not in its proxy's report: too large, or a page not read), `not-running` (its
 * proxy's recent, complete report does not have the segment).
 */
type Knowledge = "fresh" | "stale" | "unreported" | "no-stream-stats" | "streams-off" | "left-out" | "not-running";

interface Place {
  readonly segment: Segment;
  readonly report: ProxyReport | undefined;
  readonly knowledge: Knowledge;
  /** Its streams by SSRC, from the report whatever its age (empty when none). */
  readonly streams: ReadonlyMap<number, StreamStats>;
  readonly overflow: StreamOverflow | null;
}

/** Segment X sends to segment Y; `ssrc`: the SSRC Y gets the stream under (a destination's rewrite), else undefined. */
interface Join {
  readonly from: string;
  readonly to: string;
  readonly ssrc: number | undefined;
}

const hex = (ssrc: number): string => `0x${(ssrc >>> 0).toString(16).padStart(8, "0")}`;

function isWildcard(address: string): boolean {
  return address === "0.0.0.0" || address === "::";
}

function isLoopback(address: string): boolean {
  return address.startsWith("127.") || address === "::1";
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

/** The graph of segments: who sends to whom, and which segments also send where no segment listens. */
class Mesh {
  readonly places = new Map<string, Place>();
  readonly outgoing = new Map<string, Join[]>();
  readonly incoming = new Map<string, Join[]>();
  /** Segments with a destination that is no segment's listen: a path may end there. */
  readonly sendsOut = new Set<string>();
  private readonly addresses = new Map<string, ReadonlySet<string>>();

  constructor(segments: readonly Segment[], reports: ReadonlyMap<string, ProxyReport>, nowMs: number, staleAfterMs: number) {
    for (const [node, r] of reports) {
      if (Array.isArray(r.snapshot.addresses)) this.addresses.set(node, new Set(r.snapshot.addresses.map(canonicalAddress)));
    }
    const reported = new Map<string, Map<string, ReportedSegment>>(); // node -> its report's segments by name
    for (const [node, r] of reports) reported.set(node, new Map(r.snapshot.segments.map((s) => [s.name, s])));
    const byListenPort = new Map<number, Segment[]>();
    for (const seg of segments) {
      this.places.set(seg.name, place(seg, reports.get(seg.proxy), reported.get(seg.proxy)?.get(seg.name), nowMs, staleAfterMs));
      this.outgoing.set(seg.name, []);
      this.incoming.set(seg.name, []);
      if (!seg.listen) continue;
      let list = byListenPort.get(seg.listen.port);
      if (!list) byListenPort.set(seg.listen.port, (list = []));
      list.push(seg);
    }
    for (const x of segments) {
      for (const d of x.destinations) {
        const ys = (byListenPort.get(d.port) ?? []).filter((y) => y !== x && this.listensFor(x, d, y));
        if (ys.length === 0) this.sendsOut.add(x.name);
        for (const y of ys) {
          const join = { from: x.name, to: y.name, ssrc: d.ssrc ?? undefined };
          this.outgoing.get(x.name)!.push(join);
          this.incoming.get(y.name)!.push(join);
        }
      }
    }
  }

  /** Y's listen is where X's destination `d` points (the port already equal). */
  private listensFor(x: Segment, d: Endpoint, y: Segment): boolean {
    const to = canonicalAddress(d.address);
    const listen = canonicalAddress(y.listen!.address);
    // a loopback destination reaches only the sender's own host
    if (isLoopback(to) && !this.sameHost(x.proxy, y.proxy)) return false;
    if (listen === to) return true; // the same address, or the same multicast group
    // a wildcard listen takes what comes to any of its host's addresses of its family (IPv6 sockets are v6-only)
    return isWildcard(listen) && isIP(listen) === isIP(to) && (this.addresses.get(y.proxy)?.has(to) ?? false);
  }

  /** Two proxies share a host (or a network namespace) when they report the same addresses; not knowing, they may. */
  private sameHost(a: string, b: string): boolean {
    if (a === b) return true;
    const x = this.addresses.get(a);
    const y = this.addresses.get(b);
    return !x || !y || sameSet(x, y);
  }
}

function place(segment: Segment, report: ProxyReport | undefined, reported: ReportedSegment | undefined, nowMs: number, staleAfterMs: number): Place {
  const streams = new Map<number, StreamStats>();
  for (const st of reported?.streams ?? []) streams.set(st.ssrc >>> 0, st);
  let knowledge: Knowledge;
  if (!report) knowledge = "unreported";
  else if (nowMs - report.atMs > staleAfterMs) knowledge = "stale";
  else if (reported?.truncated !== undefined || (!reported && report.snapshot.incomplete)) knowledge = "left-out";
  else if (!reported) knowledge = "not-running";
  else if (!Array.isArray(reported.streams)) knowledge = "no-stream-stats";
  else if (streams.size === 0 && !reported.streamsOverflow && (reported.packetsIn ?? 0) > 0) knowledge = "streams-off";
  else knowledge = "fresh";
  return { segment, report, knowledge, streams, overflow: reported?.streamsOverflow ?? null };
}

/** Whether the segment carries the SSRC: "unknown" without a fresh report of its streams, or when it may be among the streams beyond the proxy's limit. */
function carries(p: Place, ssrc: number): "yes" | "no" | "unknown" {
  if (p.knowledge === "not-running") return "no";
  if (p.knowledge !== "fresh") return "unknown";
  if (p.streams.has(ssrc)) return "yes";
  return p.overflow && p.overflow.ingressPackets + p.overflow.egressPackets > 0 ? "unknown" : "no";
}

/** Why nothing can be said from a place's report, or null when its report is fresh. */
function unknownWhy(p: Place, nowMs: number): string | null {
  const who = p.segment.proxy;
  switch (p.knowledge) {
    case "fresh":
      return null;
    case "unreported":
      return `${who} has not reported`;
    case "stale":
      return `${who}'s last report is ${Math.round((nowMs - p.report!.atMs) / 1000)} s old (stale)`;
    case "no-stream-stats":
      return `${who} reports no per-stream stats (an older proxy)`;
    case "streams-off":
      return `${who} lists no stream of segment ${p.segment.name} though it received packets (per-stream stats off, or its streams idle)`;
    case "left-out":
      return `${who} left segment ${p.segment.name} out of its report${p.report?.snapshot.incomplete ? " (the report is incomplete)" : " (its counters do not fit a stats page)"}`;
    case "not-running":
      return `${who} does not run segment ${p.segment.name} (it is not in its report)`;
  }
}

interface Stop {
  readonly place: Place;
  readonly ssrc: number;
}

/** What one hop adds, where both its ends are known; `note` says why a figure is missing. */
interface Figures {
  lossFraction: number | null;
  lost: number | null;
  jitterMs: number | null;
  jitterAddedMs: number | null;
  delayMs: number | null;
  note: string | null;
}

const NONE: Figures = { lossFraction: null, lost: null, jitterMs: null, jitterAddedMs: null, delayMs: null, note: null };

/** The sequence number a direction counted from (RFC 3550 A.3's base), 16 bits. */
function baseSeq(d: StreamDirection): number {
  return (d.highestSeq - d.expected + 1) & 0xffff;
}

/** RFC 3550 A.1's MAX_DROPOUT: a larger jump of sequence numbers is not loss. */
const MAX_DROPOUT = 3000;
/** How much later than the near end the far end may have begun counting and still be the same run of the stream. */
const SAME_START_MS = 3000;

/**
 * Packets lost between `near` and `far` since both began counting. Across a link the far end may
 * have counted from a later packet than the near end: the stream's first packets were lost on the
 * way. Those it never counted are lost on the hop too, when the far end began within seconds of
 * the near end and fewer than MAX_DROPOUT packets later. A far end that began counting later (a
 * segment added mid-stream, a proxy or worker restarted: its count starts afresh) or earlier (the
 * near end restarted), or the two ends of a proxy whose chain renumbers the stream, are not compared.
 */
function hopLost(near: StreamDirection, far: StreamDirection, acrossLink: boolean): number | null {
  const later = (baseSeq(far) - baseSeq(near)) & 0xffff;
  if (later === 0) return Math.max(0, far.lost - near.lost);
  const sameRun = acrossLink && later < MAX_DROPOUT && later < near.expected && near.firstMs !== undefined && far.firstMs !== undefined &&
    far.firstMs >= near.firstMs && far.firstMs - near.firstMs <= SAME_START_MS;
  return sameRun ? Math.max(0, far.lost + later - near.lost) : null;
}

/**
 * The latest second both ends counted whole (each report holds its last two windows; windows end
 * on the wall clock's seconds), or null. Windows ending together must also have begun together:
 * equally long, or both the stream's first at their point (a first window runs from the point's
 * first packet, off a whole second, and the far end's first packet came a link's delay later)
 * counted from the same sequence number, so that they hold the same packets (a window begun afresh
 * when an end's wall clock stepped back also starts off a second: rare, and its transits are off anyway).
 */
export function commonSecond(near: StreamDirection, far: StreamDirection): { near: StreamWindow; far: StreamWindow } | null {
  const bothFirst = baseSeq(near) === baseSeq(far);
  let best: { near: StreamWindow; far: StreamWindow } | null = null;
  for (const n of [near.window, near.previousWindow]) {
    for (const f of [far.window, far.previousWindow]) {
      if (!n || !f || n.endMs !== f.endMs || (best && n.endMs <= best.near.endMs)) continue;
      if (n.ms === f.ms || (bothFirst && offSecond(n) && offSecond(f))) best = { near: n, far: f };
    }
  }
  return best;
}

/** A window that began off a whole second: a point's first (or one after its wall clock stepped back). */
function offSecond(w: StreamWindow): boolean {
  return (w.endMs - w.ms) % 1000 !== 0;
}

/**
 * Two points' mean transits differ by whole RTP timestamp wraps beside the delay when their first
 * packets fell either side of a wrap (each point takes its transits near its first): the delay is
 * the difference within half a wrap (13.3 h at 90 kHz).
 */
export function foldWraps(differenceMs: number, wrapMs: number): number {
  return differenceMs - Math.round(differenceMs / wrapMs) * wrapMs;
}

/** What the step from `near` to `far` adds, both measured (`wrapMs`: the stream's RTP timestamp wrap, 2^32 / clock rate). */
function delta(near: StreamDirection, far: StreamDirection, acrossLink: boolean, wrapMs: number): Figures {
  // loss and delay over the same second at both ends: over two different seconds the difference of
  // the loss is another second's, and of the mean transit also the sender's drift between them
  const same = commonSecond(near, far);
  const a = same?.near.transitMs ?? null;
  const b = same?.far.transitMs ?? null;
  const apart = !same && near.window && far.window ? `loss and delay not compared: the two ends' last windows are different seconds (ending ${new Date(near.window.endMs).toISOString()} and ${new Date(far.window.endMs).toISOString()})` : null;
  // a stream that stopped: the jitter estimates stand still at their last value, for the idle
  // seconds before the stream is forgotten; they are the past, not what the hop does now
  const quiet = stopped(far);
  const jitterAt = same && same.near.jitterMs !== undefined && same.far.jitterMs !== undefined ? { near: same.near.jitterMs, far: same.far.jitterMs } : null;
  return {
    lossFraction: same ? Math.max(0, same.far.fractionLost - same.near.fractionLost) : null,
    lost: hopLost(near, far, acrossLink),
    // jitter as the same second ended at both ends where both say (the estimate moves by
    // milliseconds within a second on a jittery path: two reports up to a second apart made up
    // jitter on a clean link after it), else the estimates as reported
    jitterMs: jitterAt?.far ?? far.jitterMs,
    jitterAddedMs: quiet ? null : jitterAt ? jitterAt.far - jitterAt.near : far.jitterMs - near.jitterMs,
    delayMs: a !== null && b !== null ? foldWraps(b - a, wrapMs) : null,
    note: apart ?? (quiet ? STOPPED : null),
  };
}

/** When a place's report was taken: the proxy's own time, else when it reached the control plane. */
function takenAt(p: Place): number {
  return p.report?.snapshot.atMs ?? p.report?.atMs ?? 0;
}

/**
 * A step between two points of the path (`near` null: the sender). Figures need both ends known.
 * All of the stream is lost on the step when the near end sent it over its last window and the far
 * end, in a report taken after that window, heard none of it (or does not run the segment at all).
 */
function stepFigures(near: { place: Place; stats: StreamDirection | null } | null, far: { place: Place; stats: StreamDirection | null; ssrc: number }, what: string, nowMs: number, acrossLink: boolean): Figures {
  const clockRate = far.place.streams.get(far.ssrc)?.clockRate ?? 90_000;
  const farWho = far.place.segment.proxy;
  const sent = near?.place.knowledge === "fresh" ? near.stats?.window : undefined;
  if (far.place.knowledge === "not-running" && sent && sent.packetRate > 0) {
    return { ...NONE, lossFraction: 1 - sent.fractionLost, note: `${unknownWhy(far.place, nowMs)}: none of it arrives` };
  }
  const unknown = (near && unknownWhy(near.place, nowMs)) ?? unknownWhy(far.place, nowMs);
  if (unknown) return { ...NONE, note: unknown };
  const f = far.stats;
  if (!f && carries(far.place, far.ssrc) === "unknown") return { ...NONE, note: `${farWho} counts SSRC ${hex(far.ssrc)} among the streams beyond its streams.max, if at all` };
  if (!near) {
    if (!f) return { ...NONE, note: `${farWho} reported nothing of SSRC ${hex(far.ssrc)} there` };
    const quiet = stopped(f);
    // the jitter as its last window ended, as the next hop takes it for its near end: the table's
    // jitters then add up, and the verdict is not on the estimate of whenever the report was taken
    const jitterMs = windowJitter(f);
    return { lossFraction: f.window?.fractionLost ?? null, lost: f.lost, jitterMs, jitterAddedMs: quiet ? null : jitterMs, delayMs: null, note: quiet ? STOPPED : null };
  }
  const n = near.stats;
  const nearWho = near.place.segment.proxy;
  if (!n) return { ...NONE, note: `${nearWho} reported nothing of SSRC ${hex(far.ssrc)} there` };
  const w = n.window;
  if (w && w.packetRate > 0 && (!f || f.lastMs < w.endMs - w.ms)) {
    const heard = f ? `heard nothing of SSRC ${hex(far.ssrc)} since ${new Date(f.lastMs).toISOString()}` : `reported nothing of SSRC ${hex(far.ssrc)}`;
    if (takenAt(far.place) < w.endMs + SETTLE_MS) return { ...NONE, note: `not compared: ${farWho} ${heard}, in a report taken before ${nearWho}'s last window could reach it` };
    return { ...NONE, lossFraction: 1 - w.fractionLost, note: `none of it ${what}: ${farWho} ${heard}, while ${nearWho} sent ${Math.round(w.packetRate)} packets/s` };
  }
  if (!f) return { ...NONE, note: `${farWho} reported nothing of SSRC ${hex(far.ssrc)} there` };
  return delta(n, f, acrossLink, (2 ** 32 * 1000) / clockRate);
}

/** A point's jitter as its last window ended, where it says (else, from an older proxy, its estimate as reported). */
function windowJitter(d: StreamDirection): number {
  return d.window?.jitterMs ?? d.jitterMs;
}

/** The note of a hop whose stream sent nothing over its last two windows. */
const STOPPED = "no packets over the last two windows (the stream stopped?): jitter added not judged";

/**
 * A stream that sent nothing over its last two windows at this point: its jitter estimate stands
 * still at its last value. Two, not one: a stream with quiet seconds (silence suppression, a
 * paused layer) is not stopped, and its hops' verdicts must not come and go with them.
 */
function stopped(d: StreamDirection): boolean {
  return d.window?.packetRate === 0 && (d.previousWindow?.packetRate ?? 0) === 0;
}

/** The last link, to one receiver, from what it reports in RTCP. */
function receiverFigures(from: Place, near: StreamDirection | null, r: ReceiverReport, nowMs: number, staleAfterMs: number): Figures {
  const unknown = unknownWhy(from, nowMs);
  if (unknown) return { ...NONE, note: unknown };
  if (nowMs - r.atMs > staleAfterMs) return { ...NONE, note: `the receiver's last report is ${Math.round((nowMs - r.atMs) / 1000)} s old (stale)` };
  // the proxy's egress jitter as of the report; from a proxy that does not say (older), as of now
  const egressJitter = r.egressJitterMs ?? near?.jitterMs ?? null;
  if (near && stopped(near)) return { ...NONE, lossFraction: r.linkFractionLost ?? null, jitterMs: r.jitterMs, delayMs: r.rttMs !== null ? r.rttMs / 2 : null, note: STOPPED };
  return {
    // the receiver's own fraction covers its report interval (seconds) and upstream loss: the proxy pairs it with its egress over the same span
    lossFraction: r.linkFractionLost ?? null,
    lost: null,
    jitterMs: r.jitterMs,
    jitterAddedMs: egressJitter === null ? null : r.jitterMs - egressJitter,
    delayMs: r.rttMs !== null ? r.rttMs / 2 : null,
    note: null,
  };
}

function percent(f: number, digits = f < 0.001 ? 3 : 2): string {
  return `${(f * 100).toFixed(digits)}%`;
}

/** `a > b` in percent, with the digits it takes for the two to differ (0.504% > 0.500%, not 0.50% > 0.50%). */
export function percentAbove(a: number, b: number): string {
  let digits = a < 0.001 ? 3 : 2;
  while (digits < 6 && percent(a, digits) === percent(b, digits)) digits++;
  return `${percent(a, digits)} > ${percent(b, digits)}`;
}

function judge(f: Figures, t: BadHopThresholds): { bad: boolean; why: string | null } {
  const why: string[] = [];
  if (f.lossFraction !== null && f.lossFraction > t.loss) why.push(`loss ${percentAbove(f.lossFraction, t.loss)}`);
  if (f.jitterAddedMs !== null && f.jitterAddedMs > t.jitterMs) why.push(`jitter +${f.jitterAddedMs.toFixed(1)} ms > ${t.jitterMs} ms`);
  return why.length > 0 ? { bad: true, why: why.join("; ") } : { bad: false, why: null };
}

function point(stop: Stop, direction: "ingress" | "egress"): StreamPoint {
  const { segment, report, knowledge } = stop.place;
  return {
    proxy: segment.proxy,
    segment: segment.name,
    direction,
    stats: stop.place.streams.get(stop.ssrc)?.[direction] ?? null,
    reportedAtMs: report?.atMs ?? 0,
    stale: knowledge === "stale",
  };
}

/** The hops of one path: the first link, then each proxy and the link after it, then one last link per receiver that reports. */
function hopsOf(stops: readonly Stop[], receivers: readonly ReceiverReport[], t: BadHopThresholds, nowMs: number, staleAfterMs: number): StreamHop[] {
  const proxies = stops.map((s) => s.place.segment.proxy);
  const name = (s: Stop): string => (proxies.filter((p) => p === s.place.segment.proxy).length > 1 ? `${s.place.segment.proxy}/${s.place.segment.name}` : s.place.segment.proxy);
  const hops: StreamHop[] = [];
  const add = (kind: StreamHop["kind"], from: StreamPoint | null, to: StreamPoint | null, label: string, f: Figures, receiver: ReceiverReport | null = null): void => {
    const { note, ...figures } = f;
    hops.push({ kind, from, to, receiver, label, ...figures, ...judge(f, t), note });
  };
  stops.forEach((stop, i) => {
    const ingress = point(stop, "ingress");
    const egress = point(stop, "egress");
    if (i === 0) {
      add("first-link", null, ingress, `sender -> ${name(stop)}`, stepFigures(null, { place: stop.place, stats: ingress.stats, ssrc: stop.ssrc }, "arrived", nowMs, true));
    } else {
      const prev = stops[i - 1]!;
      const near = point(prev, "egress");
      add("link", near, ingress, `${name(prev)} -> ${name(stop)}`, stepFigures({ place: prev.place, stats: near.stats }, { place: stop.place, stats: ingress.stats, ssrc: stop.ssrc }, "arrived", nowMs, true));
    }
    const through = stop.place.segment.destinations.length > 0
      ? stepFigures({ place: stop.place, stats: ingress.stats }, { place: stop.place, stats: egress.stats, ssrc: stop.ssrc }, "left the proxy", nowMs, false)
      : { ...NONE, note: `segment ${stop.place.segment.name} has no destinations` };
    add("proxy", ingress, egress, `within ${name(stop)}`, through);
  });
  const last = stops[stops.length - 1]!;
  const from = point(last, "egress");
  for (const r of receivers) {
    add("last-link", from, null, `${name(last)} -> receiver ${hex(r.reporterSsrc)}`, receiverFigures(last.place, from.stats, r, nowMs, staleAfterMs), r);
  }
  return hops;
}

/** The worst bad hop: the most loss, then the most jitter added; -1 when none is bad. */
function worstOf(hops: readonly StreamHop[]): number {
  let worst = -1;
  hops.forEach((h, i) => {
    if (!h.bad) return;
    const w = worst < 0 ? undefined : hops[worst]!;
    if (!w || (h.lossFraction ?? 0) > (w.lossFraction ?? 0) || ((h.lossFraction ?? 0) === (w.lossFraction ?? 0) && (h.jitterAddedMs ?? 0) > (w.jitterAddedMs ?? 0))) worst = i;
  });
  return worst;
}

/**
 * End to end: the loss and jitter the receivers report (the worst one's: RFC 3550 6.4.1, counted
 * from the sender's sequence numbers, so the whole path to it), else at the last point that is
 * measured (all of it lost past a point that stopped receiving it); the rate where the stream enters.
 */
function summary(hops: readonly StreamHop[]): Pick<StreamPath, "lossFraction" | "jitterMs" | "bitrateBps" | "packetRate"> {
  let lossFraction: number | null = null;
  let jitterMs: number | null = null;
  let entry: StreamDirection | null = null;
  let last: StreamDirection | null = null;
  for (const h of hops) {
    if (h.kind === "last-link" || !h.to || h.to.stale) continue;
    const s = h.to.stats;
    if (s?.window) {
      lossFraction = s.window.fractionLost;
      jitterMs = windowJitter(s);
      entry ??= s;
      last = s;
    } else if (!s && h.lossFraction !== null) {
      lossFraction = 1;
      jitterMs = null;
    }
  }
  // receivers with figures (a fresh report): the stream's true end, the worst loss and the worst
  // jitter of any of them; never less loss than a point before them saw (a receiver that hears
  // nothing reports no loss: RFC 3550 A.3 expects nothing then), nor than a hop that lost all of it
  for (const h of hops) {
    if (h.kind !== "last-link" || !h.receiver || h.jitterMs === null) continue;
    lossFraction = Math.max(lossFraction ?? 0, h.receiver.fractionLost);
    jitterMs = Math.max(jitterMs ?? 0, h.receiver.jitterMs);
  }
  if (hops.some((h) => h.lossFraction === 1)) lossFraction = 1;
  // the stream enters (its first measured point's last window had packets) and its last measured
  // point heard none of it over that same second and the one next to it: all of it lost on the way,
  // though the hops between may be unknown (a proxy frozen, not reporting, and forwarding nothing
  // either: the receiver, hearing nothing, reports no loss)
  const second = entry?.window;
  if (second && second.packetRate > 0 && last && last !== entry && stopped(last) &&
    [last.window, last.previousWindow].some((w) => w?.endMs === second.endMs)) lossFraction = 1;
  return { lossFraction, jitterMs, bitrateBps: entry?.window?.bitrateBps ?? null, packetRate: entry?.window?.packetRate ?? null };
}

/**
 * The paths of every stream the reports show. A stream starts where an SSRC is reported and no
 * segment that sends there carries it (a segment without a fresh report may: the start is then
 * looked for further back). From there every join is followed, whatever the far end reports (a
 * link that loses all of it is a finding); a stream that fans out gives one path per end: a
 * segment that sends to no further segment, or also sends where no segment listens.
 */
export function buildStreamPaths(
  segments: readonly Segment[],
  reports: ReadonlyMap<string, ProxyReport>,
  thresholds: BadHopThresholds,
  options: StreamPathOptions = {},
): StreamPath[] {
  const nowMs = options.nowMs ?? Date.now();
  const staleAfterMs = options.staleAfterMs ?? STALE_REPORT_MS;
  const mesh = new Mesh(segments, reports, nowMs, staleAfterMs);

  const origins = new Map<string, Stop>();
  const originsOf = (stop: Stop, seen: Set<string>): void => {
    const ups = mesh.incoming.get(stop.place.segment.name)!.filter((j) => !seen.has(j.from) && joinMayCarry(j, stop.ssrc));
    if (ups.length === 0) {
      origins.set(`${stop.place.segment.name}\0${stop.ssrc}`, stop);
      return;
    }
    for (const j of ups) originsOf({ place: mesh.places.get(j.from)!, ssrc: upstreamSsrc(j, stop.ssrc) }, new Set([...seen, j.from]));
  };
  const joinMayCarry = (j: Join, ssrc: number): boolean => {
    const from = mesh.places.get(j.from)!;
    if (j.ssrc === undefined) return carries(from, ssrc) !== "no";
    return j.ssrc === ssrc && (from.knowledge !== "fresh" || from.streams.size > 0 || carries(from, ssrc) === "unknown");
  };
  // under a destination's SSRC rewrite the sender's SSRC is known only when the segment carries one stream
  const upstreamSsrc = (j: Join, ssrc: number): number => {
    if (j.ssrc === undefined) return ssrc;
    const from = mesh.places.get(j.from)!;
    return from.streams.size === 1 ? [...from.streams.keys()][0]! : ssrc;
  };
  const names = [...mesh.places.keys()].sort();
  for (const name of names) {
    const p = mesh.places.get(name)!;
    if (p.knowledge !== "fresh" && p.knowledge !== "stale") continue; // a stale stream is still listed, as stale
    for (const ssrc of [...p.streams.keys()].sort((a, b) => a - b)) originsOf({ place: p, ssrc }, new Set([name]));
  }

  // a path is named after its first segment, with /0xSSRC where that segment carries several
  // streams; but one sending beside streams that stopped (a sender restarted with a new SSRC, the
  // old one listed until forgotten) keeps the bare name, so that what is keyed on it (alerts on
  // msm_hop_bad{stream="cam"}, dashboards, a runbook's `describe stream cam`) carries on
  const sending = (o: Stop): boolean => {
    const st = o.place.streams.get(o.ssrc);
    const d = st?.ingress ?? st?.egress;
    return !d || !stopped(d);
  };
  const perSegment = new Map<string, { all: number; sending: number }>();
  for (const o of origins.values()) {
    const n = perSegment.get(o.place.segment.name) ?? { all: 0, sending: 0 };
    perSegment.set(o.place.segment.name, { all: n.all + 1, sending: n.sending + (sending(o) ? 1 : 0) });
  }
  const bare = (o: Stop): boolean => {
    const n = perSegment.get(o.place.segment.name)!;
    return n.all === 1 || (n.sending === 1 && sending(o));
  };
  const paths: StreamPath[] = [];
  const taken = new Set<string>();
  for (const origin of origins.values()) {
    const ends: Stop[][] = [];
    const walk = (stop: Stop, trail: Stop[]): void => {
      const here = [...trail, stop];
      const name = stop.place.segment.name;
      const next = mesh.outgoing.get(name)!.filter((j) => !here.some((s) => s.place.segment.name === j.to));
      if (next.length === 0 || mesh.sendsOut.has(name)) ends.push(here);
      for (const j of next) walk({ place: mesh.places.get(j.to)!, ssrc: j.ssrc ?? stop.ssrc }, here);
    };
    walk(origin, []);
    const first = origin.place.segment.name;
    const base = bare(origin) ? first : `${first}/${hex(origin.ssrc)}`;
    for (const stops of ends) {
      let name = ends.length > 1 ? `${base}:${stops[stops.length - 1]!.place.segment.name}` : base;
      for (let k = 2; taken.has(name); k++) name = `${base}:${stops[stops.length - 1]!.place.segment.name}#${k}`;
      taken.add(name);
      const hops = hopsOf(stops, receiversAt(mesh, stops[stops.length - 1]!), thresholds, nowMs, staleAfterMs);
      const entered = stops.map((st) => st.place.streams.get(st.ssrc)).find((x) => x !== undefined);
      paths.push({
        name,
        ssrc: origin.ssrc,
        segments: stops.map((s) => ({ proxy: s.place.segment.proxy, segment: s.place.segment.name })),
        hops,
        worst: worstOf(hops),
        ...summary(hops),
        clock: entered ? { payloadType: entered.payloadType, clockRate: entered.clockRate, from: entered.clockRateFrom } : null,
      });
    }
  }
  return paths.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The receivers that report to the path's last segment, each once: at a segment that also sends
 * on to other segments, the reports that came back through them (their receivers') are theirs. A
 * receiver the proxy last heard from RECEIVER_TIMEOUT_MS before its report has left (a proxy drops
 * it then, or at its BYE; an older one keeps it): it has no last link, rather than one unknown for
 * as long as the stream runs.
 */
function receiversAt(mesh: Mesh, last: Stop): ReceiverReport[] {
  const taken = takenAt(last.place);
  const reports = (last.place.streams.get(last.ssrc)?.receivers ?? []).filter((r) => taken - r.atMs <= RECEIVER_TIMEOUT_MS);
  if (reports.length === 0) return [];
  const downstream = new Set<number>();
  const seen = new Set<string>([last.place.segment.name]);
  const visit = (name: string): void => {
    for (const j of mesh.outgoing.get(name)!) {
      if (seen.has(j.to)) continue;
      seen.add(j.to);
      for (const st of mesh.places.get(j.to)!.streams.values()) for (const r of st.receivers) downstream.add(r.reporterSsrc);
      visit(j.to);
    }
  };
  visit(last.place.segment.name);
  return reports.filter((r) => !downstream.has(r.reporterSsrc)).sort((a, b) => a.reporterSsrc - b.reporterSsrc);
}

/** The paths DescribeStream answers for a name: that path, or every path of the stream or segment it names (NAME:END, NAME/SSRC). */
export function pathsNamed(paths: readonly StreamPath[], name: string): StreamPath[] {
  const exact = paths.filter((p) => p.name === name);
  return exact.length > 0 ? exact : paths.filter((p) => p.name.startsWith(`${name}:`) || p.name.startsWith(`${name}/`));
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next.push(Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    row = next;
  }
  return row[b.length]!;
}

/** Up to `max` names close to `name` (a typo, a part of it), closest first. */
export function closeNames(name: string, names: readonly string[], max = 5): string[] {
  const wanted = name.toLowerCase();
  return names
    .map((n) => ({ n, d: n.toLowerCase().includes(wanted) || wanted.includes(n.toLowerCase()) ? 0 : editDistance(wanted, n.toLowerCase()) }))
    .filter(({ d }) => d <= Math.max(2, Math.floor(wanted.length / 3)))
    .sort((a, b) => a.d - b.d || (a.n < b.n ? -1 : 1))
    .slice(0, max)
    .map(({ n }) => n);
}
