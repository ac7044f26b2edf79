// TEMPORARY entry file of the feedback part (issue #11), so that it builds and tests on its own:
// it passes everything and hands upstream RTCP and FEEDBACK_TIMER to Feedback. The lead replaces
// it at merge with the replicate filter's own index.ts, which calls Feedback the same way.
import { Config, ContextMap, Filter, Packet, PacketFlag, Status, nowUs, register } from "../../../sdk/assembly";
import { FEEDBACK_TIMER, Feedback } from "./feedback";

export * from "../../../sdk/assembly/exports";

const UPSTREAM_RTCP: u16 = <u16>(PacketFlag.Upstream | PacketFlag.Rtcp);

class ReplicateFeedbackOnly extends Filter {
  private contexts: ContextMap<Feedback> = new ContextMap<Feedback>(64);

  createContext(ctx: u32, cfg: Config): Status {
    cfg.rejectUnknown(["feedback"]);
    if (!cfg.ok) return cfg.finish();
    const fb = Feedback.configure(cfg, ctx);
    if (fb === null) return Status.BadConfig;
    this.contexts.set(ctx, fb);
    return Status.Ok;
  }

  destroyContext(ctx: u32): void {
    this.contexts.delete(ctx);
  }

  onPacket(p: Packet): void {
    if ((p.flags & UPSTREAM_RTCP) != UPSTREAM_RTCP) return;
    const fb = this.contexts.get(p.context);
    if (fb !== null) fb.upstream(p, p.context);
  }

  onTimer(ctx: u32, timer: i32): void {
    const fb = this.contexts.get(ctx);
    if (fb !== null && timer == FEEDBACK_TIMER) fb.onTimer(ctx);
  }
}

register(new ReplicateFeedbackOnly());
