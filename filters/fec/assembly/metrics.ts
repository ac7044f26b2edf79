// The filter's counters and drop reasons. Counts are gathered per context during a call and sent
// to the host once at its end (one host call per counter that moved, not one per packet).
import { DropClass, DropReason, nameDropReason } from "../../../sdk/assembly";
import { CounterBatch, defineCounters } from "../../../sdk/assembly/counter-batch";

// Drop reasons of the filter's own (README "Drop reasons").
/** A media packet held, sent or rebuilt already; a FEC packet for a group already held. */
export const DROP_DUPLICATE: u32 = DropReason.FilterDefinedBase;
/** A FEC packet too short, not RTP, or with E, N, type, index or mask as ST 2022-1 rules out. */
export const DROP_FEC_MALFORMED: u32 = DropReason.FilterDefinedBase + 1;
/** A FEC packet whose offset and NA do not describe the configured L x D matrix. */
export const DROP_FEC_SHAPE: u32 = DropReason.FilterDefinedBase + 2;
/** A FEC packet for packets far from the media (SNBase outside the window), or before any media. */
export const DROP_FEC_OUT_OF_WINDOW: u32 = DropReason.FilterDefinedBase + 3;

export enum Count {
  // encoder
  MediaProtected,
  MediaUnprotected,
  FecRowSent,
  FecColumnSent,
  FecNotSent,
  // decoder
  MediaReceived,
  FecReceived,
  Recovered,
  Unrecoverable,
  Late,
  Duplicates,
  FecMalformed,
  FecShape,
  FecOutOfWindow,
  FecBadLength,
  FecExpired,
  PassedUnkept,
  Resyncs,
  SwapLost,
  FecOnMediaLeg,
  ReleasedWithoutFec,
}
export const COUNTS: i32 = Count.ReleasedWithoutFec + 1;

const NAMES: string[] = [
  "media_protected", "media_unprotected", "fec_row_sent", "fec_column_sent", "fec_not_sent",
  "media_received", "fec_received", "recovered", "unrecoverable", "late", "duplicates",
  "fec_malformed", "fec_shape", "fec_out_of_window", "fec_bad_length", "fec_expired",
  "passed_unkept", "resyncs", "swap_lost", "fec_on_media_leg", "released_without_fec",
];
let ids = new StaticArray<i32>(COUNTS);

/** Defines every counter, and names the drop reasons as /metrics and msmctl show them (configure_root). */
export function defineMetrics(): void {
  ids = defineCounters(NAMES);
  // a duplicate is the decoder's work (a reordered original after its rebuild), not trouble
  nameDropReason(DROP_DUPLICATE, "duplicate", DropClass.Discard);
  nameDropReason(DROP_FEC_MALFORMED, "fec_malformed", DropClass.Drop);
  nameDropReason(DROP_FEC_SHAPE, "fec_shape", DropClass.Drop);
  nameDropReason(DROP_FEC_OUT_OF_WINDOW, "fec_out_of_window", DropClass.Drop);
}

/** One context's counts not yet sent to the host. */
export class Counts extends CounterBatch {
  constructor() {
    super(ids);
  }
}
