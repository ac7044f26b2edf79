// STAND-IN for the feedback part of issue #11 (filters/replicate/assembly/feedback.ts, written in
// parallel), with the same surface: at merge, delete this file and import { FEEDBACK_TIMER,
// Feedback } from "./feedback" in context.ts and index.ts instead. It passes every upstream RTCP
// packet untouched. The surface the rest of the filter relies on, and nothing more:
//
//   FEEDBACK_TIMER: i32 = 3               the context timer the part may arm; context.ts sends its
//                                         firings to onTimer (the merge uses timers 0 and 1)
//   static configure(cfg: Config, ctx: u32): Feedback | null
//                                         called only when the context config has a `feedback`
//                                         key (cfg is the whole context Config: read only that
//                                         key); null after setError naming the field on a bad value
//   upstream(p: Packet, ctx: u32): void   every batch packet with flags Upstream and Rtcp, after the
//                                         translator mapped it back to the sender's SSRC and sequence
//                                         numbers (rewrite.ts mapFeedbackToSender); may set its
//                                         verdict and emit outputs; sends its own counts
//   onTimer(ctx: u32): void               timer FEEDBACK_TIMER of the context fired (Output is valid)
//
// Room left for the part: metrics, 33 of the ABI's 64 (the filter defines 31; define them at top
// level, which runs in _initialize); drop reasons other than 256 and 257 (the merge's, metrics.ts).
import { Config, Packet } from "../../../sdk/assembly";

export const FEEDBACK_TIMER: i32 = 3;

export class Feedback {
  static configure(cfg: Config, ctx: u32): Feedback | null {
    cfg.getObject("feedback");
    if (cfg.ok) return new Feedback();
    cfg.finish();
    return null;
  }

  upstream(p: Packet, ctx: u32): void {}

  onTimer(ctx: u32): void {}
}
