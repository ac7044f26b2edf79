// The feedback part's counters and drop reasons (README.md "Metrics", "Drop reasons"). Counts
// gather per context during a call and go to the host once at its end, one host call per counter
// that moved.
import { DropClass, DropReason, defineCounter, defineGauge, metricSet, nameDropReason } from "../../../sdk/assembly";
import { CounterBatch } from "../../../sdk/assembly/counter-batch";

// Drop reasons of a receiver's RTCP compound (codes 270-279 are the feedback part's). The compound
// never reaches the sender as it is: what it carried goes on inside the filter's own packets.
/** Not a valid compound (RFC 3550 A.2), or a NACK/FIR whose FCI is not whole entries: nothing of it used. */
export const DROP_MALFORMED: u32 = DropReason.FilterDefinedBase + 14; // 270
/** Taken in: its report blocks joined the aggregate, its requests were forwarded in the filter's packet. */
export const DROP_MERGED: u32 = DropReason.FilterDefinedBase + 15; // 271
/** It only repeated requests already forwarded within their interval (absorbed). */
export const DROP_DUPLICATE: u32 = DropReason.FilterDefinedBase + 16; // 272
/** Some of its NACKed sequence numbers were refused by maxNacksPerSecond. */
export const DROP_RATE_LIMITED: u32 = DropReason.FilterDefinedBase + 17; // 273
/** It carried only types the filter never forwards (SDES, BYE, APP, XR, REMB, TWCC, unknown). */
export const DROP_NOT_FORWARDED: u32 = DropReason.FilterDefinedBase + 18; // 274
/** Part of it was about a media source the full table (maxMediaSources) had no room for. */
export const DROP_NO_ROOM: u32 = DropReason.FilterDefinedBase + 19; // 275

/**
 * The feedback part's reasons as /metrics and msmctl name them. A compound merged into the
 * aggregate, absorbed as a repeat or holding nothing forwarded is the part's work (discard); one it
 * could not read, rate-limited or had no room for is trouble (drop).
 */
export function nameFeedbackDropReasons(): void {
  nameDropReason(DROP_MALFORMED, "feedback_malformed", DropClass.Drop);
  nameDropReason(DROP_MERGED, "feedback_merged", DropClass.Discard);
  nameDropReason(DROP_DUPLICATE, "feedback_duplicate", DropClass.Discard);
  nameDropReason(DROP_RATE_LIMITED, "feedback_rate_limited", DropClass.Drop);
  nameDropReason(DROP_NOT_FORWARDED, "feedback_not_forwarded", DropClass.Discard);
  nameDropReason(DROP_NO_ROOM, "feedback_no_room", DropClass.Drop);
}

export enum FbCount {
  ReportBlocksIn,
  ReportsSent,
  KeyframeRequestsIn,
  KeyframeRequestsForwarded,
  NackSeqsIn,
  NackSeqsForwarded,
  NackSeqsRateLimited,
  Malformed,
  DroppedSdes,
  DroppedBye,
  DroppedApp,
  DroppedXr,
  DroppedFeedbackOther,
  DroppedUnknown,
  ReceiversOverflow,
  ReceiversTimedOut,
  MediaSourcesFull,
  OutputFull,
}
const COUNTS: i32 = FbCount.OutputFull + 1;

const NAMES: string[] = [
  "feedback_report_blocks_in", "feedback_reports_sent",
  "feedback_keyframe_requests_in", "feedback_keyframe_requests_forwarded",
  "feedback_nack_seqs_in", "feedback_nack_seqs_forwarded", "feedback_nack_seqs_rate_limited",
  "feedback_malformed",
  "feedback_dropped_sdes", "feedback_dropped_bye", "feedback_dropped_app", "feedback_dropped_xr",
  "feedback_dropped_feedback_other", "feedback_dropped_unknown",
  "feedback_receivers_overflow", "feedback_receivers_timed_out", "feedback_media_sources_full",
  "feedback_output_full",
];
const ids = new StaticArray<i32>(COUNTS);
let receiversGauge: i32 = -1;

// Metrics may only be defined in _initialize or configure_root: this runs in _initialize.
for (let i = 0; i < COUNTS; i++) unchecked((ids[i] = defineCounter(NAMES[i])));
receiversGauge = defineGauge("feedback_receivers");

/** One context's counts not yet sent to the host. */
export class FbCounts extends CounterBatch {
  private lastReceivers: i32 = -1;

  constructor() {
    super(ids);
  }

  /** Sends what was counted, and the receivers tracked, as context `ctx`'s. */
  flushWith(ctx: u32, receivers: i32): void {
    if (receivers != this.lastReceivers) {
      metricSet(receiversGauge, ctx, receivers);
      this.lastReceivers = receivers;
    }
    this.flush(ctx);
  }
}
