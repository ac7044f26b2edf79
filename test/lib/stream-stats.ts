// Per-stream stats as a proxy reports them (runtime/streams/types.ts), made to order for tests of
// what the control plane does with them: a direction with its last window, a stream, a receiver's report.
import type { ReceiverReport, StreamDirection, StreamStats } from "../../runtime/streams/types.js";

export interface DirectionFigures {
  /** Packets lost since the start (of 1000 expected). */
  lost?: number;
  /** The last window's loss fraction. */
  fraction?: number;
  jitter?: number;
  /** The last window's mean transit (ms); null: no packet in it. */
  transit?: number | null;
  /** The first sequence number counted. */
  base?: number;
  /** Packets expected since then (1000). */
  expected?: number;
  /** The last window's packets per second. */
  rate?: number;
  /** When the last window ended (nowMs - 500): proxies' windows end on the same second when their figures compare. */
  windowEndMs?: number;
}

/** One direction after 1000 packets expected (or `expected`), its last window of 1 s at `rate` packets/s (50) ending at `nowMs`. */
export function direction(nowMs: number, o: DirectionFigures = {}): StreamDirection {
  const expected = o.expected ?? 1000;
  const lost = o.lost ?? 0;
  const base = o.base ?? 100;
  const rate = o.rate ?? 50;
  return {
    packets: expected - lost, bytes: (expected - lost) * 1200, expected, lost, duplicates: 0, reordered: 0,
    jitterMs: o.jitter ?? 1, highestSeq: base + expected - 1, firstMs: nowMs - 20_000, lastMs: nowMs - 100, previousWindow: null,
    window: {
      ms: 1000, endMs: o.windowEndMs ?? nowMs - 500, expected: rate, lost: Math.round(rate * (o.fraction ?? 0)), fractionLost: o.fraction ?? 0,
      packetRate: rate, bitrateBps: rate * 1200 * 8, transitMs: o.transit === undefined ? 0 : o.transit,
    },
  };
}

export function streamStats(ssrc: number, ingress: StreamDirection | null, egress: StreamDirection | null, receivers: ReceiverReport[] = []): StreamStats {
  return { ssrc, payloadType: 96, clockRate: 90000, clockRateFrom: "assumed", ingress, egress, receivers };
}

export function receiverReport(reporterSsrc: number, atMs: number, o: { fraction?: number; link?: number | null; jitter?: number; egressJitter?: number | null; rtt?: number | null } = {}): ReceiverReport {
  return {
    reporterSsrc, fractionLost: o.fraction ?? 0, cumulativeLost: 0, highestSeq: 1099, jitterMs: o.jitter ?? 2, egressJitterMs: o.egressJitter ?? null, rttMs: o.rtt === undefined ? 10 : o.rtt,
    linkFractionLost: o.link === undefined ? 0 : o.link, xr: null, atMs,
  };
}
