// One segment's use of the filter: which of its parts run (merge, translator, copies, feedback)
// and where each packet goes. Verdicts: PASS leaves the packet's verdict as it is (pass, or what
// the feedback hook set), TAKE holds it (the merge kept a copy), anything else drops it with
// that reason.
import { Packet, RtpError, RtpPacket, Status, StateReader, StateWriter, stateOrigin, wallUs } from "../../../sdk/assembly";
import { SegmentContext } from "../../../sdk/assembly/context-filter";
import { FEEDBACK_TIMER, Feedback } from "./feedback";
import { Merge, PASS } from "./merge";
import { Counts } from "./metrics";
import { Translator } from "./rewrite";
import { Sender } from "./sender";
import { Settings } from "./settings";
import { readState, writeState } from "./state";

export class ReplicateContext extends SegmentContext {
  readonly counts: Counts;
  readonly translator: Translator | null;
  readonly sender: Sender;
  merge: Merge | null = null;
  // ---- feedback part (feedback.ts): set by index.ts createContext ----
  feedback: Feedback | null = null;

  constructor(id: u32, s: Settings) {
    super(id);
    const counts = new Counts();
    const translator = s.rewrite ? new Translator(s.rewriteSsrc, s.rewritePayloadType, s.continuity, counts) : null;
    this.counts = counts;
    this.translator = translator;
    this.sender = new Sender(id, counts, translator, StaticArray.fromArray<i32>(s.copyToLegs));
  }

  onPacket(p: Packet, now: i64): u32 {
    if (p.isUpstream) {
      if (!p.isRtcp) return PASS;
      const t = this.translator;
      if (t !== null) t.mapFeedbackToSender(p.ptr, p.length);
      // ---- feedback part: every upstream RTCP packet, mapped back to the sender's numbering ----
      const f = this.feedback;
      if (f !== null) f.upstream(p, this.id);
      return PASS;
    }
    if (p.isRtcp) {
      const t = this.translator;
      if (t !== null && p.leg == 0) t.senderRtcp(p.ptr, p.length);
      return PASS;
    }
    const f = this.feedback;
    if (f !== null && p.leg == 0 && p.length >= 12) f.noteMedia(RtpPacket.ssrc(p.ptr), p.arrivalOr(now));
    const m = this.merge;
    if (m !== null) {
      const path = m.pathOf(p.leg);
      // the merge's clock is the packet's arrival: a backlog read late after a stall is judged by
      // when it came, so a gap's copy queued behind it still fills it
      if (path >= 0) return m.onPacket(p, path, p.arrivalOr(now));
    }
    // Not merged: the media leaves as it came (rewritten, copied); other legs are not ours.
    if (p.leg == 0 && RtpPacket.validate(p.ptr, p.length) == RtpError.None) this.sender.inPlace(p);
    return PASS;
  }

  onTimer(timer: i32, now: i64): void {
    // ---- feedback part: its own timer ----
    if (timer == FEEDBACK_TIMER) {
      const f = this.feedback;
      if (f !== null) f.onTimer(this.id);
      return;
    }
    const m = this.merge;
    if (m !== null) m.onTimer(timer, now);
  }

  drain(now: i64): void {
    const m = this.merge;
    if (m !== null) m.drain(now);
  }

  exportState(out: StateWriter, now: i64): Status {
    return writeState(out, this.translator, this.merge, now, wallUs());
  }

  importState(blob: StateReader, now: i64): Status {
    return readState(blob, this.translator, this.merge, this.counts, now, stateOrigin());
  }

  /** Sends the counts gathered in this call (the feedback part sends its own). */
  flush(): void {
    this.counts.flush(this.id);
  }

  free(): void {
    const m = this.merge;
    if (m !== null) m.free();
  }
}
