// The per-SSRC states of one direction of a segment (a session), looked up by SSRC.
import { ReplayState, resumeFromCheckpoint, switchKey } from "./replay";

/**
 * The per-SSRC states of one session, looked up by SSRC. A source's state is never recycled while
 * the segment (its key) lives: once `capacity` sources are tracked, a new one is refused. Forgetting
 * a sender's state would make protect start its index again at ROC 0 (the same keystream twice,
 * RFC 3711 section 9.1), and forgetting a receiver's would let its old packets be replayed
 * (section 3.3.2). A pooled table is reused for any `capacity` up to its size (a power of two).
 */
export class SourceTable {
  readonly states: StaticArray<ReplayState>;
  /** Scratch state for a source seen for the first time, kept only if its packet authenticates. */
  readonly scratch: ReplayState = new ReplayState();
  /** The sources tracked (the segment's maxSources): the first `capacity` states. */
  capacity: i32;
  /**
   * Set by a restore from a checkpoint: a source new from then on may still be one the failed stage
   * used after the checkpoint, so it starts resumed (see ReplayState.rtpResumed).
   */
  resumeNew: bool = false;
  /**
   * The SRTCP index a source new to the table starts protecting at: 0, then 2^22 further on at
   * each restore from a checkpoint, as the known sources skip. A source that started after the
   * checkpoint may have sent SRTCP from the start before the failure; starting it at 0 again would
   * encrypt those indexes a second time.
   */
  newRtcpStart: u32 = 0;
  /**
   * A receiver's table: the fingerprint of the key before the current one (0: none), whose floors
   * the sources hold (ReplayState.rtpFloor), for a config that goes back to it.
   */
  previousKey: u64 = 0;
  /**
   * Sources of a state blob past `capacity` (a hot swap lowered maxSources): refused while the
   * table is this small, but carried on in the blob, so that a swap raising maxSources again
   * takes them back with their state, not afresh (protect would encrypt their indexes again).
   */
  retired: StaticArray<ReplayState> = new StaticArray<ReplayState>(0);
  retiredCount: i32 = 0;

  constructor(size: i32) {
    this.states = new StaticArray<ReplayState>(size);
    for (let i = 0; i < size; i++) unchecked((this.states[i] = new ReplayState()));
    this.capacity = size;
  }

  find(ssrc: u32): ReplayState | null {
    for (let i = 0; i < this.capacity; i++) {
      const s = unchecked(this.states[i]);
      if (s.used && s.ssrc == ssrc) return s;
    }
    return null;
  }

  /** A free slot for a new source, reset; null when all `capacity` slots are taken (the source is refused). */
  claim(ssrc: u32): ReplayState | null {
    if (this.retiredCount > 0 && this.isRetired(ssrc)) return null;
    for (let i = 0; i < this.capacity; i++) {
      const s = unchecked(this.states[i]);
      if (!s.used) {
        this.blank(s, ssrc);
        return s;
      }
    }
    return null;
  }

  private isRetired(ssrc: u32): bool {
    for (let i = 0; i < this.retiredCount; i++) if (unchecked(this.retired[i]).ssrc == ssrc) return true;
    return false;
  }

  /** A state, reset, for a source of a state blob that the table has no room for (see `retired`). */
  retire(ssrc: u32): ReplayState {
    if (this.retiredCount == this.retired.length) {
      // on import only: never on a packet's way
      const grown = new StaticArray<ReplayState>(this.retired.length < 8 ? 8 : this.retired.length * 2);
      for (let i = 0; i < grown.length; i++) grown[i] = i < this.retiredCount ? this.retired[i] : new ReplayState();
      this.retired = grown;
    }
    const s = this.retired[this.retiredCount++];
    s.reset(ssrc);
    return s;
  }

  /** How many sources the whole-table changes go over: the tracked slots, then the retired sources. */
  @inline get carried(): i32 {
    return this.capacity + this.retiredCount;
  }

  /** Source `i` of `carried` (a slot may be unused: check `used`). */
  @inline sourceAt(i: i32): ReplayState {
    return i < this.capacity ? unchecked(this.states[i]) : unchecked(this.retired[i - this.capacity]);
  }

  /** The scratch state, blank, for a packet of a source not tracked. */
  fresh(ssrc: u32): ReplayState {
    this.blank(this.scratch, ssrc);
    return this.scratch;
  }

  private blank(s: ReplayState, ssrc: u32): void {
    s.reset(ssrc);
    s.rtpResumed = this.resumeNew;
    s.rtcpResumed = this.resumeNew;
    s.rtcpNextIndex = this.newRtcpStart;
  }

  /** After a restore from a checkpoint: no source, tracked or new, goes back behind where it goes on. */
  resumeFromCheckpoint(): void {
    for (let i = 0; i < this.carried; i++) {
      const s = this.sourceAt(i);
      if (s.used) resumeFromCheckpoint(s);
    }
    this.resumeNew = true;
  }

  /**
   * A receiver's table whose key changed from `before` to `now` (fingerprints): each source keeps
   * the floors of `before`, and takes back those of `now` if it is the key before (see switchKey).
   * `stale`: the state is a checkpoint's.
   */
  switchKey(before: u64, now: u64, stale: bool): void {
    const back = this.previousKey == now;
    for (let i = 0; i < this.carried; i++) {
      const s = this.sourceAt(i);
      if (s.used) switchKey(s, back, stale);
    }
    this.previousKey = before;
  }

  /** Copies `from` (the scratch state of a packet that just authenticated) into a free slot; null when full. */
  adopt(from: ReplayState): ReplayState | null {
    const s = this.claim(from.ssrc);
    if (s === null) return null;
    s.roc = from.roc;
    s.highestSeq = from.highestSeq;
    s.highest = from.highest;
    s.rtpSeen = from.rtpSeen;
    s.started = from.started;
    s.rtcpHighest = from.rtcpHighest;
    s.rtcpSeen = from.rtcpSeen;
    s.rtcpNextIndex = from.rtcpNextIndex;
    s.rtpResumed = from.rtpResumed;
    s.rtcpResumed = from.rtcpResumed;
    s.rekeyed = from.rekeyed;
    s.rtpFloor = from.rtpFloor;
    s.rtcpFloor = from.rtcpFloor;
    s.rtpFloorStale = from.rtpFloorStale;
    s.rtcpFloorStale = from.rtcpFloorStale;
    memory.copy(changetype<usize>(s.bits), changetype<usize>(from.bits), <usize>s.bits.length << 3);
    memory.copy(changetype<usize>(s.rtcpBits), changetype<usize>(from.rtcpBits), <usize>s.rtcpBits.length << 3);
    return s;
  }

  clear(): void {
    for (let i = 0; i < this.states.length; i++) unchecked(this.states[i]).used = false;
    this.resumeNew = false;
    this.newRtcpStart = 0;
    this.previousKey = 0;
    this.retired = new StaticArray<ReplayState>(0);
    this.retiredCount = 0;
  }

  /** Sources tracked (not counting the retired). */
  count(): i32 {
    let n = 0;
    for (let i = 0; i < this.capacity; i++) if (unchecked(this.states[i]).used) n++;
    return n;
  }
}
