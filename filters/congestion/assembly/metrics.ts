// The filter's metrics and drop reasons (README "Metrics", "Drop reasons"). Counters are gathered
// per context during a call and sent once at its end; gauges are set on the context's tick.
import { DropClass, DropReason, defineGauge, nameDropReason } from "../../../sdk/assembly";
import { defineCounters } from "../../../sdk/assembly/counter-batch";

export const DROP_NON_REFERENCE: u32 = DropReason.FilterDefinedBase;
export const DROP_REFERENCE: u32 = DropReason.FilterDefinedBase + 1;
export const DROP_DEPENDENT: u32 = DropReason.FilterDefinedBase + 2;
export const DROP_QUEUE_FULL: u32 = DropReason.FilterDefinedBase + 3;
export const DROP_CIRCUIT_BREAKER: u32 = DropReason.FilterDefinedBase + 4;
/** Renumbering on: a packet older than the drop history, or a copy of one recorded as dropped (no number fits). */
export const DROP_RENUMBER_LATE: u32 = DropReason.FilterDefinedBase + 5;

/** The reasons as /metrics and msmctl name them: every one is a drop (media lost to congestion or a limit). */
export function nameDropReasons(): void {
  nameDropReason(DROP_NON_REFERENCE, "non_reference", DropClass.Drop);
  nameDropReason(DROP_REFERENCE, "reference", DropClass.Drop);
  nameDropReason(DROP_DEPENDENT, "dependent", DropClass.Drop);
  nameDropReason(DROP_QUEUE_FULL, "queue_full", DropClass.Drop);
  nameDropReason(DROP_CIRCUIT_BREAKER, "circuit_breaker", DropClass.Drop);
  nameDropReason(DROP_RENUMBER_LATE, "renumber_late", DropClass.Drop);
}

export enum Count {
  DroppedNonReference,
  DroppedReference,
  DroppedDependent,
  DroppedQueueFull,
  DroppedCircuitBreaker,
  DroppedRenumberLate,
  OveruseSignals,
  FeedbackPackets,
  FeedbackRejected,
  TmmbrSent,
  RembSent,
  PliSent,
  CircuitBreakerTrips,
  FeedbackSent,
  StampFailed,
  FeedbackTimeouts,
  SwapLost,
  RenumberNackDropped,
  RenumberRtxUnmatched,
  RembReceived,
}

const COUNTER_NAMES: string[] = [
  "dropped_non_reference", "dropped_reference", "dropped_dependent", "dropped_queue_full", "dropped_circuit_breaker", "dropped_renumber_late",
  "overuse_signals", "feedback_packets", "feedback_rejected", "tmmbr_sent", "remb_sent", "pli_sent",
  "circuit_breaker_trips", "feedback_sent", "stamp_failed", "feedback_timeouts", "swap_lost", "renumber_nack_dropped", "renumber_rtx_unmatched",
  "remb_received",
];

export enum Gauge {
  TargetBps,
  DelayBasedBps,
  LossBasedBps,
  AckedBps,
  IncomingBps,
  RttMs,
  LossPerMille,
  QueuePackets,
  QueueMs,
  BreakerOpen,
  DetectorState,
  TrendUs,
  ThresholdUs,
  Startup,
  BreakerArmed,
  DeliveredBps,
}

const GAUGE_NAMES: string[] = [
  "target_bps", "delay_based_bps", "loss_based_bps", "acked_bps", "incoming_bps", "rtt_ms", "loss_per_mille",
  "pacing_queue_packets", "pacing_queue_ms", "circuit_breaker_open", "detector_state", "delay_trend_us", "delay_threshold_us",
  "startup", "circuit_breaker_armed", "delivered_bps",
];

export let counterIds: StaticArray<i32> = new StaticArray<i32>(0);
export const gaugeIds = new StaticArray<i32>(GAUGE_NAMES.length);

/** The drop reason's counter. */
export function dropCount(reason: u32): i32 {
  return <i32>(reason - DropReason.FilterDefinedBase) + Count.DroppedNonReference;
}

/** Defines every metric (configure_root). */
export function defineMetrics(): void {
  counterIds = defineCounters(COUNTER_NAMES);
  for (let i = 0; i < GAUGE_NAMES.length; i++) unchecked((gaugeIds[i] = defineGauge(GAUGE_NAMES[i])));
}
