// A stream's path across the mesh as the control plane states it: the segments one RTP stream
// (one SSRC) crosses, joined proxy to proxy (a segment's destination is the next proxy's listen),
// with what each point measured and what each hop between two points adds. docs/streams.md.
import type { StreamDirection, ReceiverReport } from "../../runtime/index.js";

/** Where a stream is measured: a segment's ingress or egress on one proxy. */
export interface StreamPoint {
  proxy: string;
  segment: string;
  direction: "ingress" | "egress";
  /** What the proxy reported for this SSRC there (null: it reported nothing for it). */
  stats: StreamDirection | null;
  /** When the report arrived at the control plane (ms since the epoch; 0: the proxy never reported). */
  reportedAtMs: number;
  /** The report is older than the control plane's stale limit: shown, but no hop figure is computed from it. */
  stale: boolean;
}

/**
 * What one step of the path adds, from `from` to `to`: a network link (egress of one proxy to the
 * ingress of the next), a proxy itself (its ingress to its egress), the first link (the sender
 * to the first proxy: from null) or the last (the last proxy to a receiver that reports: to null).
 */
export interface StreamHop {
  kind: "link" | "proxy" | "first-link" | "last-link";
  from: StreamPoint | null;
  to: StreamPoint | null;
  /** For the last link: the receiver's own report. */
  receiver: ReceiverReport | null;
  /** Short label, e.g. "proxy-b -> proxy-c" or "sender -> proxy-a". */
  label: string;
  /** Loss this step adds over the last window, 0..1 (null: not measured at both ends). */
  lossFraction: number | null;
  /** Packets this step lost, cumulative where both ends count from the same start, else null. */
  lost: number | null;
  /** Jitter at the step's far end, and how much above the near end's it is (ms). */
  jitterMs: number | null;
  jitterAddedMs: number | null;
  /** Mean one-way delay of the step (ms; clocks in step), or half the round trip for the last link. */
  delayMs: number | null;
  /** This step breaks a threshold (lossFraction, jitterAddedMs); why says which. */
  bad: boolean;
  why: string | null;
  /** Why figures are missing or what they rest on (a stale report, no report, the stream absent at one end), else null. */
  note: string | null;
}

export interface StreamPath {
  /** The stream's name: its first segment's name, then /ssrc in hex when the segment carries more than one SSRC. */
  name: string;
  ssrc: number;
  /** Every segment on the path in order, and their proxies. */
  segments: { proxy: string; segment: string }[];
  hops: StreamHop[];
  /** Index into hops of the worst bad hop, or -1: none breaks a threshold. */
  worst: number;
  /** End to end: the receivers' worst reports, else at the last point measured (controlplane/server/stream-paths.ts, summary). */
  lossFraction: number | null;
  jitterMs: number | null;
  bitrateBps: number | null;
  packetRate: number | null;
  /**
   * The stream's payload type and the clock rate its jitter is counted in, where it enters, and
   * where the rate came from ("assumed": 90000 for a dynamic payload type without a clockRates
   * entry, docs/streams.md); null when no point says (absent from control planes before 2026-12-07).
   */
  clock?: { payloadType: number; clockRate: number; from: "config" | "payload-type" | "assumed" } | null;
}

/** When a step is called bad (msm control-plane flags --bad-loss / --bad-jitter-ms). */
export interface BadHopThresholds {
  /** Loss fraction a step adds, default 0.005 (0.5%). */
  loss: number;
  /** Jitter a step adds, ms, default 5. */
  jitterMs: number;
}

export const DEFAULT_BAD_HOP: BadHopThresholds = { loss: 0.005, jitterMs: 5 };

/** Whether the hop has a figure it is judged by (loss or jitter added): one without is neither bad nor fine (its note says why). */
export function hopJudged(h: Pick<StreamHop, "lossFraction" | "jitterAddedMs">): boolean {
  return h.lossFraction !== null || h.jitterAddedMs !== null;
}
