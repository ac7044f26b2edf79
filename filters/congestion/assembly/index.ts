// congestion: pacing, bandwidth estimation, signals to the origin, priority drop and a circuit
// breaker on a hop between two proxies (mode "sender" on the first, "receiver" on the second).
// README.md is the guide: config keys, what each side does, metrics, drop reasons.
import { Config, Status, register } from "../../../sdk/assembly";
import { ContextFilter, SegmentContext } from "../../../sdk/assembly/context-filter";
import { readBudgetKiB, setBudget } from "../../../sdk/assembly/chunks";
import { defineMetrics, nameDropReasons } from "./metrics";
import { ArrivalLog, RECORD as ARRIVAL_RECORD, RING as ARRIVALS } from "./feedback-write";
import { RECORD as SENT_RECORD, RING as SENT, SendHistory } from "./history";
import { Pacer } from "./pacer";
import { Records } from "./records";
import { ReceiverContext } from "./receiver";
import { SenderContext } from "./sender";
import { MODE_RECEIVER, Settings } from "./settings";

export * from "../../../sdk/assembly/exports";

class CongestionFilter extends ContextFilter<SegmentContext, Settings> {
  private defaults: Settings = new Settings();

  configureRoot(cfg: Config): Status {
    defineMetrics();
    nameDropReasons();
    const budgetKiB = readBudgetKiB(cfg);
    this.defaults.apply(cfg, true);
    const status = cfg.finish();
    if (status == Status.Ok) setBudget(budgetKiB);
    return status;
  }

  protected readConfig(cfg: Config): Settings {
    const s = new Settings(); // a new one each time: the context keeps it
    s.copyFrom(this.defaults);
    s.apply(cfg, false);
    s.check(cfg);
    return s;
  }

  protected newContext(id: u32, s: Settings, cfg: Config): SegmentContext | null {
    if (s.mode == MODE_RECEIVER) {
      const records = Records.create(ARRIVALS, ARRIVAL_RECORD);
      if (records === null) return this.noRoom("receiver context (an arrival log of " + ARRIVALS.toString() + " packets)", Records.bytesFor(ARRIVALS, ARRIVAL_RECORD));
      return new ReceiverContext(id, s, new ArrivalLog(records));
    }
    // the send history and the pacing queue, both or neither
    const what = "sender context (a send history of " + SENT.toString() + " packets and a pacing queue of " + s.maxQueuePackets.toString() + " packets)";
    const needBytes = Records.bytesFor(SENT, SENT_RECORD) + Pacer.bytesFor(s.maxQueuePackets);
    const records = Records.create(SENT, SENT_RECORD);
    if (records === null) return this.noRoom(what, needBytes, ", or lower pacing.maxQueuePackets");
    const pacer = Pacer.create(s.maxQueuePackets, s.startBps * s.pacingFactor, s.burstMs);
    if (pacer === null) {
      records.free();
      return this.noRoom(what, needBytes, ", or lower pacing.maxQueuePackets");
    }
    return new SenderContext(id, s, pacer, new SendHistory(records));
  }
}

register(new CongestionFilter());
