// One segment's SRTP state: the sessions (downstream and, optionally, the reverse direction for
// RTCP feedback going back upstream), their source tables, and the settings. Contexts are
// pooled: a context's tables and key schedules are large, and reusing them spares the collector.
import { ReplayState } from "./replay";
import { Session } from "./session";

export const PROTECT = 0;
export const UNPROTECT = 1;

/** The per-SSRC states of one session, looked up by SSRC; recycled least recently seen first. */
export class SourceTable {
  readonly states: StaticArray<ReplayState>;
  /** Scratch state for a source seen for the first time, kept only if its packet authenticates. */
  readonly scratch: ReplayState = new ReplayState();

  constructor(readonly capacity: i32) {
    this.states = new StaticArray<ReplayState>(capacity);
    for (let i = 0; i < capacity; i++) unchecked((this.states[i] = new ReplayState()));
  }

  find(ssrc: u32): ReplayState | null {
    for (let i = 0; i < this.capacity; i++) {
      const s = unchecked(this.states[i]);
      if (s.used && s.ssrc == ssrc) return s;
    }
    return null;
  }

  /** A slot for a new source: a free one, else the one seen longest ago. */
  claim(ssrc: u32): ReplayState {
    let oldest = unchecked(this.states[0]);
    for (let i = 0; i < this.capacity; i++) {
      const s = unchecked(this.states[i]);
      if (!s.used) {
        s.reset(ssrc);
        return s;
      }
      if (s.lastSeenUs < oldest.lastSeenUs) oldest = s;
    }
    oldest.reset(ssrc);
    return oldest;
  }

  /** Copies `from` (the scratch state of a packet that just authenticated) into a claimed slot. */
  adopt(from: ReplayState): ReplayState {
    const s = this.claim(from.ssrc);
    s.roc = from.roc;
    s.highestSeq = from.highestSeq;
    s.highest = from.highest;
    s.rtpSeen = from.rtpSeen;
    s.started = from.started;
    s.rtcpHighest = from.rtcpHighest;
    s.rtcpSeen = from.rtcpSeen;
    s.rtcpNextIndex = from.rtcpNextIndex;
    s.lastSeenUs = from.lastSeenUs;
    memory.copy(changetype<usize>(s.bits), changetype<usize>(from.bits), <usize>s.bits.length << 3);
    memory.copy(changetype<usize>(s.rtcpBits), changetype<usize>(from.rtcpBits), <usize>s.rtcpBits.length << 3);
    return s;
  }

  clear(): void {
    for (let i = 0; i < this.capacity; i++) unchecked(this.states[i]).used = false;
  }

  count(): i32 {
    let n = 0;
    for (let i = 0; i < this.capacity; i++) if (unchecked(this.states[i]).used) n++;
    return n;
  }
}

export class SrtpContext {
  id: u32 = 0;
  /** What happens to downstream packets; upstream ones get the opposite with the reverse session. */
  direction: i32 = PROTECT;
  hasReverse: bool = false;
  replayWindow: i32 = 128;
  /** Allowed SSRCs (empty: any). */
  allowed: StaticArray<u32> = new StaticArray<u32>(0);
  readonly forward: Session = new Session();
  readonly reverse: Session = new Session();
  nextFree: SrtpContext | null = null;
  /** Counts of this batch, reported once at its end. */
  rtpProtected: i64 = 0;
  rtpUnprotected: i64 = 0;
  rtcpProtected: i64 = 0;
  rtcpUnprotected: i64 = 0;
  touched: bool = false;

  constructor(readonly forwardSources: SourceTable, readonly reverseSources: SourceTable) {}

  admits(ssrc: u32): bool {
    const n = this.allowed.length;
    if (n == 0) return true;
    for (let i = 0; i < n; i++) if (unchecked(this.allowed[i]) == ssrc) return true;
    return false;
  }
}

let freeList: SrtpContext | null = null;

export function takeContext(maxSources: i32): SrtpContext {
  let prev: SrtpContext | null = null;
  let c = freeList;
  while (c !== null) {
    if (c.forwardSources.capacity >= maxSources) {
      if (prev === null) freeList = c.nextFree;
      else prev.nextFree = c.nextFree;
      c.nextFree = null;
      c.forwardSources.clear();
      c.reverseSources.clear();
      return c;
    }
    prev = c;
    c = c.nextFree;
  }
  return new SrtpContext(new SourceTable(maxSources), new SourceTable(maxSources));
}

export function releaseContext(c: SrtpContext): void {
  c.forward.wipe();
  c.reverse.wipe();
  c.forwardSources.clear();
  c.reverseSources.clear();
  c.nextFree = freeList;
  freeList = c;
}
