// A proxy's stats as msmctl reads them: stats_json is the runtime's ProxySnapshot (counters that
// only grow), and rates come from two snapshots of it.
import type { ProxyStats } from "../../api/proto.js";
import type { ProxySnapshot } from "../../../runtime/index.js";

export interface StageCounters {
  filter: string;
  state: string;
  packetsIn: number;
  packetsOut: number;
  drops: Record<string, number>;
  failures: number;
  nsPerPacket: number;
}

export interface SegmentCounters {
  name: string;
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  rtcpIn: number;
  upstreamIn: number;
  dropsTotal: number;
  drops: Record<string, number>;
  stages: StageCounters[];
}

export interface ProxyCounters {
  nodeId: string;
  atMs: number;
  segments: SegmentCounters[];
  watchdogRestarts: number;
  /** Set when stats_json could not be read; segments is then empty. */
  error?: string;
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

/** Reads one proxy's report. Tolerates missing fields (a newer or older proxy): they count 0. */
export function parseProxyStats(p: ProxyStats): ProxyCounters {
  let snap: Loose<ProxySnapshot>;
  try {
    snap = JSON.parse(p.statsJson || "{}") as Loose<ProxySnapshot>;
  } catch (err) {
    return { nodeId: p.nodeId, atMs: p.atMs, segments: [], watchdogRestarts: 0, error: `unreadable stats: ${(err as Error).message}` };
  }
  const segs = Array.isArray(snap.segments) ? (snap.segments as Loose<ProxySnapshot["segments"][number]>[]) : [];
  return {
    nodeId: p.nodeId,
    atMs: p.atMs,
    watchdogRestarts: num(snap.watchdogRestarts),
    segments: segs.map((s) => ({
      name: String(s.name ?? "?"),
      packetsIn: num(s.packetsIn),
      packetsOut: num(s.packetsOut),
      bytesIn: num(s.bytesIn),
      bytesOut: num(s.bytesOut),
      rtcpIn: num(s.rtcpIn),
      upstreamIn: num(s.upstreamIn),
      dropsTotal: num(s.dropsTotal),
      drops: counts(s.drops),
      stages: (Array.isArray(s.stages) ? (s.stages as Loose<ProxySnapshot["segments"][number]["stages"][number]>[]) : []).map((t) => ({
        filter: String(t.filter ?? "?"),
        state: String(t.state ?? "?"),
        packetsIn: num(t.packetsIn),
        packetsOut: num(t.packetsOut),
        drops: counts(t.drops),
        failures: num(t.failures),
        nsPerPacket: num(t.nsPerPacket),
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

/** Growth per second; a counter that went back (a restarted proxy) counts from zero. */
function perSecond(now: number, before: number, seconds: number): number {
  const delta = now >= before ? now - before : now;
  return delta / seconds;
}

/**
 * Rates of each segment in `now` against `before` (the same proxy, an earlier report). A segment
 * that is new in `now`, or a pair of reports with the same time, has no rates yet.
 */
export function segmentRates(before: ProxyCounters | undefined, now: ProxyCounters): SegmentRates[] {
  const seconds = before ? (now.atMs - before.atMs) / 1000 : 0;
  return now.segments.map((s) => {
    const prev = before?.segments.find((p) => p.name === s.name);
    if (!prev || seconds <= 0) return { proxy: now.nodeId, segment: s.name };
    return {
      proxy: now.nodeId,
      segment: s.name,
      packetsInPerSec: perSecond(s.packetsIn, prev.packetsIn, seconds),
      packetsOutPerSec: perSecond(s.packetsOut, prev.packetsOut, seconds),
      dropsPerSec: perSecond(s.dropsTotal, prev.dropsTotal, seconds),
      bytesInPerSec: perSecond(s.bytesIn, prev.bytesIn, seconds),
      bytesOutPerSec: perSecond(s.bytesOut, prev.bytesOut, seconds),
    };
  });
}
