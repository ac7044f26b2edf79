// What every packet leaving on leg 0 downstream goes through, whichever way it leaves (passed in
// place, or from the merge's memory through the output area): the translator's rewrite, then a
// copy for each leg of `copyToLegs` (dual-path send). It also remembers whether the context sent
// anything through the output area in this call: a packet passed in place leaves before every
// output packet of the call, so after one of those the stream's next packet must follow it there.
import { Dest, Output, Packet } from "../../../sdk/assembly";
import { currentCall } from "../../../sdk/assembly/context-filter";
import { Count, Counts } from "./metrics";
import { Translator } from "./rewrite";

export class Sender {
  /** The call in which the context last sent on leg 0 through the output area. */
  private emitCall: u32 = 0;

  constructor(
    readonly ctx: u32,
    private readonly counts: Counts,
    readonly translator: Translator | null,
    private readonly copyLegs: StaticArray<i32>,
  ) {}

  /** Whether a packet may still pass in place without overtaking one sent through the output area. */
  @inline get mayPassInPlace(): bool {
    return this.emitCall != currentCall();
  }

  /** Batch packet `p` (valid RTP) leaves in place, on leg 0. */
  inPlace(p: Packet): void {
    p.setLeg(0);
    this.prepare(p.ptr, p.length);
  }

  /**
   * The RTP packet at [ptr, ptr+len) leaves through the output area on leg 0, with its copies;
   * false (changing nothing) when the area has no room for all of them: the caller keeps the
   * packet for the next call rather than send it without its copies.
   */
  emit(ptr: usize, len: i32): bool {
    if (Output.remaining() < 1 + this.copyLegs.length) return false;
    const t = this.translator;
    if (t !== null) t.rtp(ptr);
    Output.emit(this.ctx, ptr, len, 0, Dest.Forward, 0);
    this.emitCall = currentCall();
    this.copy(ptr, len);
    return true;
  }

  private prepare(ptr: usize, len: i32): void {
    const t = this.translator;
    if (t !== null) t.rtp(ptr);
    this.copy(ptr, len);
  }

  private copy(ptr: usize, len: i32): void {
    const legs = this.copyLegs;
    for (let k = 0; k < legs.length; k++) {
      if (Output.emit(this.ctx, ptr, len, 0, Dest.Forward, unchecked(legs[k]))) this.counts.add(Count.CopiesSent);
      else this.counts.add(Count.CopiesNotSent);
    }
  }
}
