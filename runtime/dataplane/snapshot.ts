// Plain-object snapshots of a segment's counters, for the main thread, metrics and the CLI.
import { MetricKind } from "../../sdk/abi/constants.js";
import type { HistogramValue } from "../filter-host/metrics.js";
import type { SegmentRuntime } from "./segment-runtime.js";

export interface FilterMetricSnapshot {
  name: string;
  kind: "counter" | "gauge" | "histogram";
  value?: number;
  histogram?: HistogramValue;
}

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
  drops: Record<string, number>;
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
  rtcpIn: number;
  upstreamIn: number;
  drops: Record<string, number>;
  dropsTotal: number;
  stages: StageSnapshot[];
}

const KIND_NAMES = { [MetricKind.Counter]: "counter", [MetricKind.Gauge]: "gauge", [MetricKind.Histogram]: "histogram" } as const;

export function snapshotSegment(seg: SegmentRuntime): SegmentSnapshot {
  const s = seg.stats;
  return {
    name: seg.name,
    ports: seg.ports(),
    packetsIn: s.packetsIn,
    bytesIn: s.bytesIn,
    packetsOut: s.packetsOut,
    bytesOut: s.bytesOut,
    rtcpIn: s.rtcpIn,
    upstreamIn: s.upstreamIn,
    drops: s.drops.toJSON(),
    dropsTotal: s.drops.total,
    stages: seg.stages.map((st) => {
      const t = st.stats;
      const inst = st.slot.instance;
      const values = inst?.metrics.forContext(st.ctx);
      const metrics: FilterMetricSnapshot[] = [];
      if (inst && values) {
        for (const def of inst.metrics.definitions) {
          const kind = KIND_NAMES[def.kind];
          if (def.kind === MetricKind.Histogram) {
            const h = values.histograms[def.id];
            if (h) metrics.push({ name: def.name, kind, histogram: { buckets: [...h.buckets], count: h.count, sum: h.sum } });
          } else metrics.push({ name: def.name, kind, value: values.values[def.id]! });
        }
      }
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
        drops: t.drops.toJSON(),
        failures: t.failures,
        busyNs: t.busyNs,
        calls: t.calls,
        nsPerPacket: t.packetsIn > 0 ? t.busyNs / t.packetsIn : 0,
        metrics,
      };
    }),
  };
}
