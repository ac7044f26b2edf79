// The receiving proxy's side: notes when each stamped packet arrived, sends transport-wide
// feedback back to the sending proxy every `feedbackIntervalMs` (sooner when many are waiting),
// and removes the extension before the packet goes on.
import { Packet, RtpError, RtpPacket, Status, StateReader, StateWriter, loadBe16, randomU32, timerSet } from "../../../sdk/assembly";
import { PASS, SegmentContext } from "../../../sdk/assembly/context-filter";
import { CounterBatch } from "../../../sdk/assembly/counter-batch";
import { findSequence, strip } from "./extension";
import { ArrivalLog } from "./feedback-write";
import { Count, counterIds } from "./metrics";
import { Settings } from "./settings";

export const FEEDBACK_TIMER = 0;
/** Packets waiting that make feedback go at once rather than on the timer. */
const SEND_NOW_PENDING: i64 = 500;
const STATE_VERSION: u8 = 1;

export class ReceiverContext extends SegmentContext {
  readonly counts: CounterBatch = new CounterBatch(counterIds);

  private readonly ourSsrc: u32 = randomU32();
  private mediaSsrc: u32 = 0;
  private armed: bool = false;

  constructor(id: u32, private readonly s: Settings, private readonly log: ArrivalLog) {
    super(id);
  }

  free(): void {
    this.log.free();
  }

  onPacket(p: Packet, now: i64): u32 {
    if (p.isUpstream || p.isRtcp || p.leg != 0) return PASS;
    const ptr = p.ptr;
    const len = p.length;
    if (RtpPacket.validate(ptr, len) != RtpError.None) return PASS;
    const at = findSequence(ptr, len, this.s.extensionId);
    if (at < 0) return PASS; // not stamped: nothing to report
    this.mediaSsrc = RtpPacket.ssrc(ptr);
    const arrival = p.arrivalUs > 0 ? p.arrivalUs : now; // not arrivalOr: a test may model a hop with a later stamp
    const seq = loadBe16(ptr + <usize>at);
    if (this.log.breaksNumbering(seq)) this.sendFeedback();
    this.log.record(seq, arrival);
    if (this.s.stripExtension) {
      const moved = strip(ptr, len, at);
      if (moved > 0) p.resize(ptr + <usize>moved, len - moved);
    }
    if (this.log.pending >= SEND_NOW_PENDING) this.sendFeedback();
    if (!this.armed) {
      timerSet(this.id, FEEDBACK_TIMER, <i64>this.s.feedbackIntervalMs * 1000);
      this.armed = true;
    }
    return PASS;
  }

  onTimer(timer: i32, now: i64): void {
    this.armed = false;
    this.sendFeedback();
  }

  private sendFeedback(): void {
    while (this.log.pending > 0 && this.log.writeFeedback(this.id, this.ourSsrc, this.mediaSsrc)) this.counts.add(Count.FeedbackSent);
  }

  flush(): void {
    this.counts.flush(this.id);
  }

  exportState(out: StateWriter, now: i64): Status {
    out.u8(STATE_VERSION);
    out.u8(<u8>this.log.feedbackCount);
    return out.overflow ? Status.NoSpace : Status.Ok;
  }

  importState(blob: StateReader, now: i64): Status {
    if (blob.length == 0) return Status.Ok;
    if (blob.u8() != STATE_VERSION) return Status.BadState;
    const count = <i32>blob.u8();
    if (blob.overflow) return Status.BadState;
    this.log.feedbackCount = count; // the sender drops feedback whose count goes back
    return Status.Ok;
  }
}
