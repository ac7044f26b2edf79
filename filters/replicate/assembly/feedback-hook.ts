// STAND-IN for the feedback part of issue #11 (filters/replicate/assembly/feedback.ts, written in
// parallel): at merge the lead replaces this file's body with the real one. It passes every
// upstream RTCP packet untouched. The surface index.ts relies on, and nothing more:
//
//   FeedbackHook.TIMER: i32 = 3           the context timer the hook may arm (timerSet(ctx, 3, ..));
//                                         index.ts sends its firings to onTimer
//   static configureRoot(cfg: Config)     root config, once: define the hook's metrics (the root is
//                                         the only place the host allows it), read root defaults
//                                         under cfg's `feedback` key; report problems with cfg.fail
//   static configure(cfg: Config, ctx: u32): FeedbackHook | null
//                                         a context's config (cfg is the whole context Config: read
//                                         only its `feedback` key); null after cfg.fail(..) on a bad
//                                         `feedback` (index.ts then refuses the context with
//                                         cfg.finish(), which sets the error); a hook otherwise,
//                                         also when the key is absent
//   upstream(p: Packet, ctx: u32): void   every batch packet with flags Upstream and Rtcp, after the
//                                         translator mapped it back to the sender's SSRC and sequence
//                                         numbers (rewrite.ts mapFeedbackToSender); may set its verdict
//                                         (drop, hold) and emit outputs (Output.emit with PacketFlag
//                                         Rtcp | Upstream)
//   onTimer(ctx: u32): void               timer TIMER of the context fired (Output is valid)
//   flush(ctx: u32): void                 end of each call that touched the context: send counts
import { Config, Packet } from "../../../sdk/assembly";

export class FeedbackHook {
  static readonly TIMER: i32 = 3;

  static configureRoot(cfg: Config): void {
    cfg.getObject("feedback"); // checked as an object, read by the real hook
  }

  static configure(cfg: Config, ctx: u32): FeedbackHook | null {
    cfg.getObject("feedback");
    return cfg.ok ? new FeedbackHook() : null;
  }

  upstream(p: Packet, ctx: u32): void {}

  onTimer(ctx: u32): void {}

  flush(ctx: u32): void {}
}
