// The live-live merge (SMPTE ST 2022-7, receive side): one RTP stream arriving over two to four
// paths (the legs of `merge.legs`) leaves as one on leg 0. The first copy of each sequence number
// goes on, later copies are dropped (DROP_DUPLICATE), and the stream leaves in sequence order:
//
// - The packet next in sequence passes in place (no copy) unless the context already sent
//   through the output area in this call (it would overtake that packet); then it is copied and
//   sent behind it.
// - A packet after a gap is copied into the ring and held until the gap is filled by another
//   path or has been missing for bufferMs (then given up: `merged_lost`); a timer ends the wait.
// - A copy that comes after its gap was given up passes at once, out of order (`merged_late`).
// - The ring bounds the wait too: a packet that needs the place of one still held sends the
//   older ones on first, whatever their wait.
//
// Restarts: a packet outside the window (another SSRC, or more than the ring behind or
// MAX_DROPOUT ahead) of a recent place another path brought and its own did not is a path lagging
// past the window, whichever path (MergeReference): dropped (DROP_STALE), its skew counted. One
// that continues its own path's sequence belongs to a stream the merge left (a path still
// sending the old stream after a restart): dropped too. One that breaks
// its path's sequence is a candidate for a new stream, kept aside; the next packet of that path
// in sequence with it confirms it, and the merge sends on what it holds and starts again there
// (`merged_resyncs`), losing nothing. A candidate not confirmed is discarded (`merged_stray`).
// A restart that keeps its SSRC and goes back by less than the window lands on places already
// sent: a path repeating its OWN copy of a place more than bufferMs old is a candidate too
// (dropped as a duplicate, its bytes kept aside), confirmed the same way. A lagging path never
// trips this: its copies are of places another path brought. For a second after a restart, a
// path going on with its own old sequence is stale, whatever its SSRC.
// When the restart finds the output area full (the old stream's held packets cannot go yet), the
// confirming packet is kept too and the restart waits for the next call; the new stream's next
// packets on that path pass meanwhile (out of order, nothing lost, counted as passed unkept).
//
// A packet newer than the window can hold while the output area is full passes unkept; the
// places so passed are remembered (`ahead`) until the window reaches them, so that another
// path's copy is a duplicate and the place no gap.
import {
  Deadline, Packet, RtpError, RtpPacket, Status, timerSet,
} from "../../../sdk/assembly";
import { giveBack, take } from "../../../sdk/assembly/chunks";
import { MergeReference, referenceChunks } from "./merge-reference";
import { ABSENT, HELD, LOST, MergeRing, SENT, ringChunks, ringSize } from "./merge-ring";
import { Count, Counts, DROP_DUPLICATE, DROP_STALE, PATH_DUPLICATES, PATH_MISSED, PATH_RECEIVED } from "./metrics";
import { Sender } from "./sender";
import { MAX_DROPOUT, MAX_PATHS, Settings } from "./settings";

export const TIMER_WAIT = 0;
export const TIMER_FLUSH = 1;

import { PASS, TAKE } from "../../../sdk/assembly/context-filter";
export { PASS, TAKE };

/**
 * How long after a restart a path going on with its own old sequence is taken for the old
 * stream: longer than any path lags (a lagging path's old packets come within its lag), and a
 * bound for a path that was silent across the restart and whose new packets happen to continue
 * its old numbering (it joins the new stream then).
 */
const OLD_STREAM_US: i64 = 1_000_000;

/** Places remembered beyond the newest (a power of two above MAX_DROPOUT: no two alias). */
const AHEAD: i32 = 4096;
assert(AHEAD > MAX_DROPOUT);
/** Chunks a merge of these settings takes: its window's, and its reference's. */
export function mergeChunks(s: Settings): i32 {
  const size = ringSize(s.maxHeld);
  return ringChunks(size) + referenceChunks(size);
}

export class Merge {
  readonly ring: MergeRing;
  readonly paths: i32;
  readonly bufferUs: i64;
  /** The leg of each path (a leg's path: pathOfLeg). */
  private readonly pathOfLeg: StaticArray<i8> = new StaticArray<i8>(8);

  started: bool = false;
  ssrc: u32 = 0;
  /** The newest packet's extended sequence number. */
  maxSeq: i64 = -1;
  /** The next to send on. */
  nextOut: i64 = 0;
  /** Per path: its last packet's SSRC and sequence number (valid when lastValid). */
  readonly lastSsrc: StaticArray<u32> = new StaticArray<u32>(MAX_PATHS);
  readonly lastSeq: StaticArray<u16> = new StaticArray<u16>(MAX_PATHS);
  readonly lastValid: StaticArray<bool> = new StaticArray<bool>(MAX_PATHS);
  /** Per path: the candidate of a new stream (length 0: none). */
  private readonly candLength: StaticArray<i32> = new StaticArray<i32>(MAX_PATHS);
  private readonly candArrival: StaticArray<i64> = new StaticArray<i64>(MAX_PATHS);
  /** Per path: its candidate was a repeat of a place already sent (counted a duplicate, not stray). */
  private readonly candRepeat: StaticArray<bool> = new StaticArray<bool>(MAX_PATHS);
  /** Restarts so far, and per path the restart its last packet belongs to. */
  generation: u32 = 0;
  readonly lastGeneration: StaticArray<u32> = new StaticArray<u32>(MAX_PATHS);
  private restartAt: i64 = 0;
  /** A restart waiting for room in the output area: the path (-1: none), its confirmation's length, packets passed since. */
  private pendingPath: i32 = -1;
  private pendingLength: i32 = 0;
  private pendingPassed: i32 = 0;
  /** Per place beyond maxSeq (ext & (AHEAD-1)): the paths whose copy passed unkept (0: none). */
  private readonly ahead: StaticArray<u8> = new StaticArray<u8>(AHEAD);
  private aheadCount: i32 = 0;
  /** Restored from a checkpoint: the places between the window and the next packet went out before. */
  restored: bool = false;
  /**
   * Every path's copies of the last places, beyond the window: a path's copy that comes past the
   * window is told from a restart by it, whichever path lags, and still gives its skew (the
   * reading that says bufferMs and maxHeld are too small).
   */
  private readonly ref: MergeReference;

  /** When the oldest gap is given up. */
  private readonly wait: Deadline;
  private flushArmed: bool = false;
  private draining: bool = false;

  constructor(
    readonly id: u32,
    s: Settings,
    private readonly chunks: StaticArray<usize>,
    private readonly refChunks: StaticArray<usize>,
    private readonly counts: Counts,
    private readonly sender: Sender,
  ) {
    const size = ringSize(s.maxHeld);
    this.ring = new MergeRing(size, chunks);
    this.ref = new MergeReference(size, refChunks);
    this.wait = new Deadline(id, TIMER_WAIT);
    this.paths = s.mergeLegs.length;
    this.bufferUs = <i64>s.bufferMs * 1000;
    for (let leg = 0; leg < 8; leg++) unchecked((this.pathOfLeg[leg] = -1));
    for (let k = 0; k < this.paths; k++) unchecked((this.pathOfLeg[s.mergeLegs[k]] = <i8>k));
  }

  free(): void {
    giveBack(this.chunks);
    giveBack(this.refChunks);
  }

  /** The path packets on `leg` belong to, or -1. */
  @inline pathOf(leg: i32): i32 {
    return <i32>unchecked(this.pathOfLeg[leg & 7]);
  }

  /** `seq` extended to the sequence number nearest the newest packet. */
  @inline extend(seq: u16): i64 {
    return this.maxSeq + <i64>(<i16>(seq - <u16>this.maxSeq));
  }

  /** A downstream RTP packet on path `path`: PASS, TAKE or a drop reason. */
  onPacket(p: Packet, path: i32, now: i64): u32 {
    const ptr = p.ptr;
    const bad = RtpPacket.validate(ptr, p.length);
    if (bad != RtpError.None) return <u32>bad;
    this.counts.addPath(path, PATH_RECEIVED);
    const ssrc = RtpPacket.ssrc(ptr);
    const seq = RtpPacket.sequence(ptr);
    if (!this.started) this.start(ssrc, seq);
    if (this.pendingPath >= 0 && !this.finishRestart(now) && path == this.pendingPath && this.follows(path, ssrc, seq)) {
      return this.passPending(p, path, ssrc, seq);
    }
    if (unchecked(this.lastGeneration[path]) != this.generation && now - this.restartAt < OLD_STREAM_US && this.continuesPath(path, ssrc, seq)) {
      return this.stale(path, ssrc, seq); // the stream before the last restart
    }
    let ext: i64 = -1;
    if (ssrc == this.ssrc) {
      const e = this.extend(seq);
      if (e > this.maxSeq - <i64>this.ring.size && e <= this.maxSeq + <i64>MAX_DROPOUT) ext = e;
    }
    if (ext < 0 && ssrc == this.ssrc && this.lagsPastWindow(path, this.extend(seq), p.arrivalUs, now)) {
      return this.stale(path, ssrc, seq); // behind the window: too late to fill anything, but its skew counts
    }
    const repeat = ext >= 0 && this.repeatsOwn(path, ext, now);
    if (ext < 0 || repeat) {
      if (this.confirms(path, ssrc, seq)) {
        if (!this.resync(path, now)) return this.holdPending(p, path, ssrc, seq);
        ext = this.extend(seq);
      } else if (repeat) {
        this.keepCandidate(p, path, ssrc, seq, true);
        this.counts.addPath(path, PATH_DUPLICATES);
        return DROP_DUPLICATE;
      } else if (this.continuesPath(path, ssrc, seq)) {
        return this.stale(path, ssrc, seq);
      } else {
        return this.keepCandidate(p, path, ssrc, seq, false);
      }
    }
    this.setLast(path, ssrc, seq);
    unchecked((this.lastGeneration[path] = this.generation));
    this.dropCandidate(path);
    if (ext > this.maxSeq) return this.takeNewest(p, path, ext, now);
    const ring = this.ring;
    const i = ring.place(ext);
    if (!ring.holds(i, ext)) {
      // Before the first packet the merge saw (reordered before it): no copy went out yet. Its
      // place was passed when the merge started: counted as given up, and below as late, so
      // that every merged_late has its merged_lost (what is missing = lost - late).
      this.forget(i);
      ring.claim(i, ext, LOST, now);
      this.counts.add(Count.MergedLost);
    }
    this.arrive(i, path, p.arrivalUs, now);
    const state = ring.state(i);
    if (state == HELD || state == SENT) {
      this.counts.addPath(path, PATH_DUPLICATES);
      return DROP_DUPLICATE;
    }
    if (state == LOST) {
      this.counts.add(Count.MergedLate);
      ring.setState(i, SENT);
      this.sender.inPlace(p);
      return PASS;
    }
    return this.place(p, i, ext, now); // ABSENT: a gap filled
  }

  /** A packet newer than any: the places it skips are missing from now on. */
  private takeNewest(p: Packet, path: i32, ext: i64, now: i64): u32 {
    const ring = this.ring;
    if (this.restored) this.skipSentBefore(ext, now);
    const limit = ext - <i64>ring.size + 1;
    if (this.nextOut < limit && !this.releaseBelow(limit)) {
      // The output area is full and the ring needs those places: this one goes on unkept, once.
      const a = <i32>ext & (AHEAD - 1);
      const paths = <i32>unchecked(this.ahead[a]);
      unchecked((this.ahead[a] = <u8>(paths | (1 << path))));
      if (paths != 0) {
        this.counts.addPath(path, PATH_DUPLICATES);
        return DROP_DUPLICATE;
      }
      this.aheadCount++;
      this.counts.add(Count.MergedPassedUnkept);
      this.armFlush();
      this.sender.inPlace(p);
      return PASS;
    }
    const from = this.maxSeq + 1 > limit ? this.maxSeq + 1 : limit;
    for (let q = from; q <= ext; q++) {
      const i = ring.place(q);
      this.forget(i);
      const passed = this.takeAhead(q);
      ring.claim(i, q, passed != 0 ? SENT : ABSENT, now);
      for (let k = 0; k < this.paths; k++) if (passed & (1 << k)) ring.arrive(i, k, now);
    }
    this.maxSeq = ext;
    const i = ring.place(ext);
    if (ring.state(i) == SENT) { // passed unkept before, by another path
      this.arrive(i, path, p.arrivalUs, now);
      this.counts.addPath(path, PATH_DUPLICATES);
      this.release(now);
      return DROP_DUPLICATE;
    }
    this.arrive(i, path, p.arrivalUs, now);
    return this.place(p, i, ext, now);
  }

  /** The paths whose copy of `ext` passed unkept (0: none); forgets it. */
  private takeAhead(ext: i64): i32 {
    if (this.aheadCount == 0) return 0;
    const a = <i32>ext & (AHEAD - 1);
    const paths = <i32>unchecked(this.ahead[a]);
    if (paths != 0) {
      unchecked((this.ahead[a] = 0));
      this.aheadCount--;
    }
    return paths;
  }

  /**
   * The first packet newer than a window restored from a checkpoint: the places between went out
   * before the failure (or were lost with it), so none is a gap; who brought them is not known.
   */
  private skipSentBefore(ext: i64, now: i64): void {
    this.restored = false;
    const ring = this.ring;
    const low = ext - <i64>ring.size + 1;
    for (let q = this.maxSeq + 1 > low ? this.maxSeq + 1 : low; q < ext; q++) {
      const i = ring.place(q);
      this.forget(i);
      ring.claim(i, q, SENT, now);
    }
    this.maxSeq = ext - 1;
    this.nextOut = ext;
  }

  /** The first copy of `ext` (place `i`, ABSENT): in place if it is next and may, else kept. */
  private place(p: Packet, i: i32, ext: i64, now: i64): u32 {
    const ring = this.ring;
    if (ext == this.nextOut && this.sender.mayPassInPlace) {
      ring.setState(i, SENT);
      this.sender.inPlace(p);
      this.nextOut++;
      this.release(now);
      return PASS;
    }
    ring.keep(i, p.ptr, p.length);
    this.counts.add(Count.MergedHeld);
    this.release(now);
    return TAKE;
  }

  /** Records path `path`'s copy in place `i`, and the skew against path 0's copy. */
  private arrive(i: i32, path: i32, at: i64, now: i64): void {
    const ring = this.ring;
    const seen = <i32>ring.seen(i);
    if (seen & (1 << path)) return; // the same path twice: no new skew
    ring.arrive(i, path, at);
    this.ref.remember(ring.ext(i), path, at);
    if (path == 0) {
      for (let k = 1; k < this.paths; k++) {
        if (seen & (1 << k)) this.counts.skew(k, ring.arrival(i, k) - at, now);
      }
    } else if (seen & 1) {
      this.counts.skew(path, at - ring.arrival(i, 0), now);
    }
  }

  /**
   * Whether path `path`'s copy of `ext` (behind the window) is of a recent place another path
   * brought and this one did not: a path lagging by more than the window (path 0 as well as any
   * other), not a restart (which repeats places its own path brought); its skew counts.
   */
  private lagsPastWindow(path: i32, ext: i64, at: i64, now: i64): bool {
    const ref = this.ref;
    if (ext >= this.lowSeq() || ext <= this.maxSeq - <i64>ref.places) return false;
    const seen = ref.seen(ext);
    if (seen == 0 || (seen & (1 << path)) != 0) return false;
    if (path == 0) {
      for (let k = 1; k < this.paths; k++) {
        if (seen & (1 << k)) this.counts.skew(k, -ref.since(ext, k, at), now);
      }
    } else if (seen & 1) {
      this.counts.skew(path, ref.since(ext, 0, at), now);
    }
    return true;
  }

  /** Place `i` is about to be reused: the paths that missed a packet the stream had are counted. */
  private forget(i: i32): void {
    const ring = this.ring;
    if (ring.ext(i) < 0 || ring.state(i) != SENT) return;
    const seen = <i32>ring.seen(i);
    if (seen == 0) return; // sent before a restore: who brought it is not known
    for (let k = 0; k < this.paths; k++) {
      if ((seen & (1 << k)) == 0) this.counts.addPath(k, PATH_MISSED);
    }
  }

  // ---- release ----

  /** Sends on, in order, what is due: held packets, and past gaps whose wait is over. */
  private release(now: i64): void {
    const ring = this.ring;
    while (this.nextOut <= this.maxSeq) {
      const i = ring.place(this.nextOut);
      const state = ring.state(i);
      if (state == HELD) {
        if (!this.sender.emit(ring.bytes(i), ring.length(i))) {
          this.armFlush();
          return;
        }
        ring.setState(i, SENT);
      } else if (state == ABSENT) {
        const due = ring.since(i) + this.bufferUs;
        if (now < due && !this.draining) {
          this.wait.arm(due); // `due` counts from arrivals: the delay from the host's clock
          return;
        }
        ring.setState(i, LOST);
        this.counts.add(Count.MergedLost);
      }
      this.nextOut++;
    }
    this.wait.cancel(); // nothing waits any more
  }

  /** Sends on everything before `limit` now, gaps given up; false when the output area filled. */
  private releaseBelow(limit: i64): bool {
    const ring = this.ring;
    while (this.nextOut < limit) {
      const i = ring.place(this.nextOut);
      if (!ring.holds(i, this.nextOut)) {
        // skipped by a jump, never claimed: lost, unless a copy passed unkept
        if (this.takeAhead(this.nextOut) == 0) this.counts.add(Count.MergedLost);
      } else if (ring.state(i) == HELD) {
        if (!this.sender.emit(ring.bytes(i), ring.length(i))) return false;
        ring.setState(i, SENT);
      } else if (ring.state(i) == ABSENT) {
        ring.setState(i, LOST);
        this.counts.add(Count.MergedLost);
      }
      this.nextOut++;
    }
    return true;
  }

  /** A zero-delay timer to go on where a full output area stopped (the next call has a fresh one). */
  armFlush(): void {
    if (this.flushArmed) return;
    this.flushArmed = timerSet(this.id, TIMER_FLUSH, 0) == Status.Ok || timerSet(this.id, TIMER_FLUSH, 1000) == Status.Ok;
  }

  onTimer(timer: i32, now: i64): void {
    if (timer == TIMER_WAIT) this.wait.fired();
    else if (timer == TIMER_FLUSH) this.flushArmed = false;
    if (this.pendingPath >= 0 && !this.finishRestart(now)) return;
    this.release(now);
  }

  /** The segment goes: what is held goes on in order, gaps are given up, candidates discarded. */
  drain(now: i64): void {
    this.draining = true;
    if (this.pendingPath >= 0 && !this.finishRestart(now)) return; // the next drain call goes on
    for (let k = 0; k < this.paths; k++) this.dropCandidate(k);
    this.release(now);
  }

  // ---- streams: start, stale paths, candidates, resync ----

  private start(ssrc: u32, seq: u16): void {
    const ext = <i64>seq + 0x10000;
    this.started = true;
    this.ssrc = ssrc;
    this.maxSeq = ext - 1;
    this.nextOut = ext;
  }

  private stale(path: i32, ssrc: u32, seq: u16): u32 {
    this.setLast(path, ssrc, seq);
    this.counts.add(Count.MergedStale);
    return DROP_STALE;
  }

  /** Whether path `path` repeats its own copy of place `ext`, sent more than bufferMs ago (a restart, RFC 3550 A.1's resync). */
  private repeatsOwn(path: i32, ext: i64, now: i64): bool {
    const ring = this.ring;
    const i = ring.place(ext);
    return ring.holds(i, ext) && ring.state(i) == SENT && (<i32>ring.seen(i) & (1 << path)) != 0 &&
      now - ring.arrival(i, path) > this.bufferUs;
  }

  private setLast(path: i32, ssrc: u32, seq: u16): void {
    unchecked((this.lastSsrc[path] = ssrc));
    unchecked((this.lastSeq[path] = seq));
    unchecked((this.lastValid[path] = true));
  }

  /** Whether (ssrc, seq) goes on where path `path`'s last packet left off. */
  private continuesPath(path: i32, ssrc: u32, seq: u16): bool {
    return unchecked(this.lastValid[path]) && unchecked(this.lastSsrc[path]) == ssrc &&
      <u16>(seq - unchecked(this.lastSeq[path])) < <u16>MAX_DROPOUT;
  }

  /** Whether (ssrc, seq) is the very next of path `path`'s last packet. */
  private follows(path: i32, ssrc: u32, seq: u16): bool {
    return unchecked(this.lastValid[path]) && unchecked(this.lastSsrc[path]) == ssrc && <u16>(unchecked(this.lastSeq[path]) + 1) == seq;
  }

  /** Whether (ssrc, seq) follows path `path`'s candidate. */
  private confirms(path: i32, ssrc: u32, seq: u16): bool {
    if (unchecked(this.candLength[path]) == 0) return false;
    const c = this.ring.candidate(path);
    return RtpPacket.ssrc(c) == ssrc && <u16>(RtpPacket.sequence(c) + 1) == seq;
  }

  /** Keeps `p` aside as path `path`'s candidate; `repeat`: it repeats a place sent (and is counted a duplicate). */
  private keepCandidate(p: Packet, path: i32, ssrc: u32, seq: u16, repeat: bool): u32 {
    this.dropCandidate(path);
    memory.copy(this.ring.candidate(path), p.ptr, <usize>p.length);
    unchecked((this.candLength[path] = p.length));
    unchecked((this.candArrival[path] = p.arrivalUs));
    unchecked((this.candRepeat[path] = repeat));
    this.setLast(path, ssrc, seq);
    return TAKE;
  }

  private dropCandidate(path: i32): void {
    if (path == this.pendingPath) {
      // the restart waiting for the output area is abandoned: its confirmation is lost (the candidate counts below)
      this.pendingPath = -1;
      this.counts.add(Count.MergedStray);
    }
    if (unchecked(this.candLength[path]) == 0) return;
    unchecked((this.candLength[path] = 0));
    if (!unchecked(this.candRepeat[path])) this.counts.add(Count.MergedStray);
  }

  /** `p` confirmed path `path`'s candidate, but the output area is full: both wait for the next call. */
  private holdPending(p: Packet, path: i32, ssrc: u32, seq: u16): u32 {
    if (this.pendingPath >= 0) return this.keepCandidate(p, path, ssrc, seq, false); // one restart waits at a time
    memory.copy(this.ring.confirmation(path), p.ptr, <usize>p.length);
    this.pendingPath = path;
    this.pendingLength = p.length;
    this.pendingPassed = 0;
    this.setLast(path, ssrc, seq);
    this.armFlush();
    return TAKE;
  }

  /** The waiting restart's next packet on its path: it passes (its place is recorded once the restart is made). */
  private passPending(p: Packet, path: i32, ssrc: u32, seq: u16): u32 {
    this.setLast(path, ssrc, seq);
    this.counts.add(Count.MergedPassedUnkept);
    if (this.pendingPassed + 2 < this.ring.size) this.pendingPassed++;
    this.sender.inPlace(p);
    return PASS;
  }

  /** Makes the waiting restart, if the output area now has room: false when it still waits. */
  private finishRestart(now: i64): bool {
    const path = this.pendingPath;
    const passed = this.pendingPassed;
    if (!this.resync(path, now)) return false;
    // resync dropped the candidates; the pending restart is made (its confirmation goes next)
    const ring = this.ring;
    let ext = this.maxSeq + 1;
    let i = ring.place(ext);
    ring.claim(i, ext, ABSENT, now);
    this.arrive(i, path, now, now);
    ring.keep(i, ring.confirmation(path), this.pendingLength);
    for (let k = 0; k < passed; k++) {
      ext++;
      i = ring.place(ext);
      ring.claim(i, ext, SENT, now);
      ring.arrive(i, path, now);
    }
    this.maxSeq = ext;
    this.release(now);
    return true;
  }

  /**
   * Path `path`'s candidate is confirmed: what is held goes on (gaps given up), and the stream
   * starts again at the candidate, which goes on first. False when the output area filled first.
   */
  private resync(path: i32, now: i64): bool {
    if (!this.releaseBelow(this.maxSeq + 1)) {
      this.armFlush();
      return false;
    }
    this.reset();
    this.counts.add(Count.MergedResyncs);
    const c = this.ring.candidate(path);
    const len = unchecked(this.candLength[path]);
    unchecked((this.candLength[path] = 0));
    this.generation++;
    this.restartAt = now;
    unchecked((this.lastGeneration[path] = this.generation));
    for (let k = 0; k < this.paths; k++) {
      // another path whose candidate is of the new stream is already on it
      if (unchecked(this.candLength[k]) != 0 && RtpPacket.ssrc(this.ring.candidate(k)) == RtpPacket.ssrc(c)) {
        unchecked((this.lastGeneration[k] = this.generation));
      }
      this.dropCandidate(k);
    }
    this.start(RtpPacket.ssrc(c), RtpPacket.sequence(c));
    const ext = this.nextOut;
    const i = this.ring.place(ext);
    this.ring.claim(i, ext, ABSENT, now);
    this.maxSeq = ext;
    this.arrive(i, path, unchecked(this.candArrival[path]), now);
    this.ring.keep(i, c, len);
    this.release(now);
    return true;
  }

  /** Forgets the stream's window (a resync, or a state import): per-path misses are counted first. */
  reset(): void {
    const ring = this.ring;
    for (let i = 0; i < ring.size; i++) this.forget(i);
    ring.clear();
    this.ref.clear(); // a new stream's extended numbers start again
    if (this.aheadCount != 0) {
      memory.fill(changetype<usize>(this.ahead), 0, <usize>AHEAD);
      this.aheadCount = 0;
    }
    this.restored = false;
    this.pendingPath = -1;
    this.wait.cancel();
  }

  /** The oldest sequence number the window covers. */
  @inline lowSeq(): i64 {
    return this.maxSeq - <i64>this.ring.size + 1;
  }
}

/** A merge for `s`, or null when its buffers do not fit (chunks.takeFailure() says why). */
export function newMerge(id: u32, s: Settings, counts: Counts, sender: Sender): Merge | null {
  const size = ringSize(s.maxHeld);
  const chunks = take(ringChunks(size));
  if (chunks === null) return null;
  const ref = take(referenceChunks(size));
  if (ref === null) {
    giveBack(chunks);
    return null;
  }
  return new Merge(id, s, chunks, ref, counts, sender);
}
