// Plain-object snapshots of a segment's counters, for the main thread, metrics and the CLI.
import { addMetricSnapshots, type FilterMetricSnapshot } from "../filter-host/metrics.js";
import type { ChainStage } from "../chain/filter-pool.js";
import type { SegmentRuntime } from "./segment-runtime.js";
import type { CarriedStream } from "../streams/carried-totals.js";
import type { StreamOverflow, StreamStats } from "../streams/types.js";

export type { FilterMetricSnapshot, LabelledSeries } from "../filter-host/metrics.js";

export interface StageSnapshot {
  filter: string;
  digest: string;
  state: "running" | "down" | "gave-up";
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  generated: number;
  held: number;
  bypassed: number;
  timersDeferred: number;
  /** "closed" also when the filter declared it must fail closed, whatever the segment's mode. */
  failureMode: "open" | "closed";
  drops: Record<string, number>;
  /** What the filter discarded as its normal work, by its names (ABI 1.6; absent from an older proxy): not in drops. */
  discards: Record<string, number>;
  failures: number;
  busyNs: number;
  calls: number;
  /** Mean time in the stage per packet, nanoseconds. */
  nsPerPacket: number;
  metrics: FilterMetricSnapshot[];
}

export interface SegmentSnapshot {
  name: string;
  ports: ReturnType<SegmentRuntime["ports"]>;
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  /** Messages the sends took (fewer than packetsOut with UDP GSO; absent from a proxy older than it). */
  messagesOut?: number;
  rtcpIn: number;
  upstreamIn: number;
  /** Per leg, the media (leg 0, named "media") first; only the media for a segment without legs. */
  legs: LegSnapshot[];
  drops: Record<string, number>;
  dropsTotal: number;
  /** What its filters discarded as their normal work (a merge's duplicates), by their names; not in drops nor dropsTotal (absent from an older proxy). */
  discards: Record<string, number>;
  discardsTotal: number;
  stages: StageSnapshot[];
  /** Per RTP stream (SSRC), docs/streams.md; [] when per-stream stats are off. */
  streams: StreamStats[];
  /** Packets of streams beyond the proxy's streams.max, counted together; null: none. */
  streamsOverflow: StreamOverflow | null;
  /** What /metrics adds to its streams' counters: their counts before a worker restart or a move (runtime/streams/carried-totals.ts). */
  streamsCarried?: CarriedStream[];
}

export interface LegSnapshot {
  name: string;
  packetsIn: number;
  packetsOut: number;
}

export function snapshotSegment(seg: SegmentRuntime, withStreams = true): SegmentSnapshot {
  const s = seg.stats;
  return {
    name: seg.name,
    ports: seg.ports(),
    packetsIn: s.packetsIn,
    bytesIn: s.bytesIn,
    packetsOut: s.packetsOut,
    bytesOut: s.bytesOut,
    messagesOut: s.messagesOut,
    rtcpIn: s.rtcpIn,
    upstreamIn: s.upstreamIn,
    legs: ["media", ...seg.config.legs.map((l) => l.name)].map((name, k) => ({ name, packetsIn: s.legPacketsIn[k]!, packetsOut: s.legPacketsOut[k]! })),
    drops: s.drops.toJSON(),
    dropsTotal: s.drops.total,
    discards: s.discards.toJSON(),
    discardsTotal: s.discards.total,
    ...((withStreams ? seg.streams?.snapshot() : undefined) ?? { streams: [], streamsOverflow: null }),
    stages: seg.stages.map((st) => {
      const t = st.stats;
      const metrics = st.slot.metricsOf(st.ctx)?.snapshot(st.ctx) ?? [];
      return {
        filter: st.filterName,
        digest: st.slot.module.digest,
        state: st.gaveUp ? "gave-up" : st.live ? "running" : "down",
        packetsIn: t.packetsIn,
        bytesIn: t.bytesIn,
        packetsOut: t.packetsOut,
        bytesOut: t.bytesOut,
        generated: t.generated,
        held: t.held,
        bypassed: t.bypassed,
        timersDeferred: t.timersDeferred,
        failureMode: st.policy.mode,
        drops: t.drops.toJSON(),
        discards: t.discards.toJSON(),
        failures: t.failures,
        busyNs: t.busyNs,
        calls: t.calls,
        nsPerPacket: t.packetsIn > 0 ? t.busyNs / t.packetsIn : 0,
        metrics,
      };
    }),
  };
}

function addCounts(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/**
 * Adds the counters a segment had before its worker restarted (`base`) to what the new worker
 * counted since, so that counters never go back. Stages are matched by filter (at most once in a
 * chain), not by position: a change after the restart may have moved a stage, as a swap carries a
 * stage's counts wherever it stands. The filters' own counters and histograms are carried too
 * (their gauges are the new worker's).
 */
export function withCarriedCounters(now: SegmentSnapshot, base: SegmentSnapshot | undefined): SegmentSnapshot {
  if (!base) return now;
  return {
    ...now,
    packetsIn: now.packetsIn + base.packetsIn,
    bytesIn: now.bytesIn + base.bytesIn,
    packetsOut: now.packetsOut + base.packetsOut,
    bytesOut: now.bytesOut + base.bytesOut,
    messagesOut: (now.messagesOut ?? 0) + (base.messagesOut ?? 0),
    rtcpIn: now.rtcpIn + base.rtcpIn,
    upstreamIn: now.upstreamIn + base.upstreamIn,
    legs: now.legs.map((l) => {
      const b = base.legs.find((x) => x.name === l.name);
      return b ? { name: l.name, packetsIn: l.packetsIn + b.packetsIn, packetsOut: l.packetsOut + b.packetsOut } : l;
    }),
    drops: addCounts(now.drops, base.drops),
    dropsTotal: now.dropsTotal + base.dropsTotal,
    discards: addCounts(now.discards, base.discards ?? {}),
    discardsTotal: now.discardsTotal + (base.discardsTotal ?? 0),
    stages: now.stages.map((st) => {
      const b = base.stages.find((x) => x.filter === st.filter);
      if (!b) return st;
      const packetsIn = st.packetsIn + b.packetsIn;
      const busyNs = st.busyNs + b.busyNs;
      return {
        ...st,
        packetsIn,
        bytesIn: st.bytesIn + b.bytesIn,
        packetsOut: st.packetsOut + b.packetsOut,
        bytesOut: st.bytesOut + b.bytesOut,
        generated: st.generated + b.generated,
        held: st.held + b.held,
        bypassed: st.bypassed + b.bypassed,
        timersDeferred: st.timersDeferred + b.timersDeferred,
        drops: addCounts(st.drops, b.drops),
        discards: addCounts(st.discards, b.discards ?? {}),
        failures: st.failures + b.failures, // each worker counts its own (a swap's fresh stage starts at 0)
        busyNs,
        calls: st.calls + b.calls,
        nsPerPacket: packetsIn > 0 ? busyNs / packetsIn : 0,
        metrics: addMetricSnapshots(st.metrics, b.metrics),
      };
    }),
  };
}

/**
 * At a hot swap, after the old stages handed over what they held: each new stage goes on from the
 * counters and histograms (labelled or not) that the filter counted in the old stage it succeeds
 * (`predecessor`: dataplane.ts predecessors()), wherever it stands now, and whether it was running
 * or down. Gauges start afresh: the new context sets its own.
 */
export function carryFilterCounters(predecessor: ReadonlyMap<ChainStage, ChainStage>): void {
  for (const [st, before] of predecessor) {
    const from = before.slot.metricsOf(before.ctx); // a stage that is down: what its failed instance counted
    if (from) st.slot.instance?.metrics.carryFrom(from, before.ctx, st.ctx);
  }
}

/** A segment's legs by index: the media (leg 0), then its config's legs. */
const legNames = (seg: SegmentRuntime): string[] => ["media", ...seg.config.legs.map((l) => l.name)];

/**
 * A segment bound afresh by a reload (its sockets changed: the listen port, rtcpMux, its legs)
 * goes on from its predecessor's counters, legs matched by name, as a hot swap carries the
 * stages' counters: otherwise every msm_segment_* counter went back to zero at such a reload.
 */
export function carrySegmentCounts(before: SegmentRuntime, now: SegmentRuntime): void {
  const names = legNames(now);
  const old = legNames(before);
  now.stats.addFrom(before.stats, (k) => (k < old.length ? names.indexOf(old[k]!) : -1));
}

/**
 * What is carried of a segment once a change gave it `chain`: the stages of filters that left the
 * chain are dropped, so that one added again later starts afresh, as it does on a worker that
 * never restarted.
 */
export function carriedForChain(base: SegmentSnapshot, chain: readonly { filter: string }[]): SegmentSnapshot {
  const kept = new Set(chain.map((c) => c.filter));
  return { ...base, stages: base.stages.filter((st) => kept.has(st.filter)) };
}
