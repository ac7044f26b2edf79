// congestion: pacing, bandwidth estimation, signals to the origin, priority drop and a circuit
// breaker on a hop between two proxies (mode "sender" on the first, "receiver" on the second).
// README.md is the guide: config keys, what each side does, metrics, drop reasons.
import { Config, Status, register, setError } from "../../../sdk/assembly";
import { ContextFilter, SegmentContext } from "../../../sdk/assembly/context-filter";
import { noRoomMessage, readBudgetKiB, setBudget } from "../../../sdk/assembly/chunks";
import { defineMetrics } from "./metrics";
import { ArrivalLog, RECORD as ARRIVAL_RECORD, RING as ARRIVALS } from "./feedback-write";
import { RECORD as SENT_RECORD, RING as SENT, SendHistory } from "./history";
import { Pacer } from "./pacer";
import { Records } from "./records";
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
      const records = Records.create(ARRIVALS, ARRIVAL_RECORD);
      if (records === null) return noRoom("receiver context (an arrival log of " + ARRIVALS.toString() + " packets)", Records.bytesFor(ARRIVALS, ARRIVAL_RECORD), "");
      this.contexts.set(ctx, new ReceiverContext(ctx, s, new ArrivalLog(records)));
      return Status.Ok;
    }
    // the send history and the pacing queue, both or neither
    const what = "sender context (a send history of " + SENT.toString() + " packets and a pacing queue of " + s.maxQueuePackets.toString() + " packets)";
    const needBytes = Records.bytesFor(SENT, SENT_RECORD) + Pacer.bytesFor(s.maxQueuePackets);
    const records = Records.create(SENT, SENT_RECORD);
    if (records === null) return noRoom(what, needBytes, ", or lower pacing.maxQueuePackets");
    const pacer = Pacer.create(s.maxQueuePackets, s.startBps * s.pacingFactor, s.burstMs);
    if (pacer === null) {
      records.free();
      return noRoom(what, needBytes, ", or lower pacing.maxQueuePackets");
    }
    this.contexts.set(ctx, new SenderContext(ctx, s, pacer, new SendHistory(records)));
    return Status.Ok;
  }
}

function noRoom(what: string, needBytes: i64, orLower: string): Status {
  setError(noRoomMessage(what, needBytes, orLower));
  return Status.NoSpace;
}

register(new CongestionFilter());
