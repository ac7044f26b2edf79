// The per-stream counters of /metrics (msm_stream_*_total) across a worker restart or a segment's
// move to another worker. The new worker counts each stream from nothing (its table is new), which
// /stats shows as it is: the control plane compares sequence numbers and first packets, which are
// the new count's. /metrics adds to each counter what the stream had shown when its old worker let
// it go, so that the counters never go back (Prometheus reads a drop as a reset).
import type { StreamDirection, StreamStats } from "./types.js";

/** A direction's counters, as last shown before its worker let the stream go (summed over such events). */
export interface CarriedTotals {
  packets: number;
  bytes: number;
  expected: number;
  duplicates: number;
  reordered: number;
}

/** What /metrics adds to a stream's counters (docs/streams.md, "Metrics"). */
export interface CarriedStream {
  ssrc: number;
  ingress: CarriedTotals | null;
  egress: CarriedTotals | null;
}

const totalsOf = (d: StreamDirection): CarriedTotals =>
  ({ packets: d.packets, bytes: d.bytes, expected: d.expected, duplicates: d.duplicates, reordered: d.reordered });

function plus(a: CarriedTotals | null, b: CarriedTotals | null): CarriedTotals | null {
  if (!a || !b) return a ?? b;
  return { packets: a.packets + b.packets, bytes: a.bytes + b.bytes, expected: a.expected + b.expected, duplicates: a.duplicates + b.duplicates, reordered: a.reordered + b.reordered };
}

export class StreamTotalsCarry {
  /** By segment: the streams its worker last showed (a /stats or /metrics read), and which worker. */
  private readonly lastSeen = new Map<string, { worker: number; streams: readonly StreamStats[] }>();
  /** By segment, by SSRC: what is carried, and when it last was. */
  private readonly carried = new Map<string, Map<number, CarriedStream & { atMs: number }>>();

  /** @param idleMs streams.idleSeconds: a carried stream not seen again for longer is gone. */
  constructor(private readonly idleMs: () => number) {}

  /** Worker `worker` showed `streams` of `segment`, now. */
  seen(segment: string, worker: number, streams: readonly StreamStats[]): void {
    this.lastSeen.set(segment, { worker, streams });
  }

  /** Worker `worker` let `segment` go (it restarted, or the segment moved): what it last showed is carried. */
  carry(segment: string, worker: number, nowMs: number): void {
    const last = this.lastSeen.get(segment);
    if (!last || last.worker !== worker) return; // nothing seen of it there (or a stale answer): nothing to add
    this.lastSeen.delete(segment);
    let bySsrc = this.carried.get(segment);
    if (!bySsrc) this.carried.set(segment, (bySsrc = new Map()));
    for (const st of last.streams) {
      const was = bySsrc.get(st.ssrc);
      bySsrc.set(st.ssrc, {
        ssrc: st.ssrc,
        ingress: plus(was?.ingress ?? null, st.ingress && totalsOf(st.ingress)),
        egress: plus(was?.egress ?? null, st.egress && totalsOf(st.egress)),
        atMs: nowMs,
      });
    }
  }

  /** What /metrics adds to `segment`'s streams now; a carried stream gone for longer than idleMs is dropped. */
  of(segment: string, streams: readonly StreamStats[], nowMs: number): CarriedStream[] | undefined {
    const bySsrc = this.carried.get(segment);
    if (!bySsrc) return undefined;
    const present = new Set(streams.map((s) => s.ssrc));
    const out: CarriedStream[] = [];
    for (const [ssrc, c] of bySsrc) {
      if (present.has(ssrc)) c.atMs = nowMs;
      else if (nowMs - c.atMs > this.idleMs()) {
        bySsrc.delete(ssrc);
        continue;
      }
      out.push({ ssrc, ingress: c.ingress, egress: c.egress });
    }
    if (bySsrc.size === 0) this.carried.delete(segment);
    return out.length > 0 ? out : undefined;
  }

  /** Only `names` remain: the others' carries go (a segment added back later starts afresh). */
  keepOnly(names: ReadonlySet<string>): void {
    for (const name of [...this.carried.keys()]) if (!names.has(name)) this.carried.delete(name);
    for (const name of [...this.lastSeen.keys()]) if (!names.has(name)) this.lastSeen.delete(name);
  }
}
