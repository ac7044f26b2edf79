// congestion: pacing, bandwidth estimation, signals to the origin, priority drop and a circuit
// breaker on a hop between two proxies (mode "sender" on the first, "receiver" on the second).
// README.md is the guide: config keys, what each side does, metrics, drop reasons.
import { Config, Status, register, setError } from "../../../sdk/assembly";
import { ContextFilter, SegmentContext } from "../../../sdk/assembly/context-filter";
import { noRoomMessage, readBudgetKiB, setBudget } from "../../../sdk/assembly/chunks";
import { defineMetrics } from "./metrics";
import { Pacer } from "./pacer";
import { ReceiverContext } from "./receiver";
import { SenderContext } from "./sender";
import { MODE_RECEIVER, Settings } from "./settings";

export * from "../../../sdk/assembly/exports";

class CongestionFilter extends ContextFilter<SegmentContext> {
  private defaults: Settings = new Settings();

  configureRoot(cfg: Config): Status {
    defineMetrics();
    const budgetKiB = readBudgetKiB(cfg);
    this.defaults.apply(cfg, true);
    const status = cfg.finish();
    if (status == Status.Ok) setBudget(budgetKiB);
    return status;
  }

  createContext(ctx: u32, cfg: Config): Status {
    const s = new Settings();
    s.copyFrom(this.defaults);
    s.apply(cfg, false);
    s.check(cfg);
    const status = cfg.finish();
    if (status != Status.Ok) return status;
    if (this.contexts.get(ctx) !== null) {
      setError("context " + ctx.toString() + " already exists");
      return Status.BadArgument;
    }
    if (s.mode == MODE_RECEIVER) {
      this.contexts.set(ctx, new ReceiverContext(ctx, s));
      return Status.Ok;
    }
    const pacer = Pacer.create(s.maxQueuePackets, s.startBps * s.pacingFactor, s.burstMs);
    if (pacer === null) {
      setError(noRoomMessage("a pacing queue of " + s.maxQueuePackets.toString() + " packets", Pacer.bytesFor(s.maxQueuePackets), ", or lower pacing.maxQueuePackets"));
      return Status.NoSpace;
    }
    this.contexts.set(ctx, new SenderContext(ctx, s, pacer));
    return Status.Ok;
  }
}

register(new CongestionFilter());
