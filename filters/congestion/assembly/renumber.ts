// Renumbering after deliberate drops (README "Renumbering"): per SSRC, the packets this filter
// dropped on purpose are kept as a short history of ranges of extended input sequence numbers, and
// a packet leaves numbered `input - drops below it`, so a receiver sees no gap where a whole frame
// went (libwebrtc would NACK it and its H.264 reference finder would stall). The same history maps
// numbers from downstream (NACK, receiver reports) back to the origin's.
//
// Only drops newer than everything that already left are recorded (a queued packet older than the
// last drop may still go: a full queue, the breaker's flush): one further back would move numbers
// already sent (a duplicate on the wire); such a drop is left as a gap instead.
//
// A source's slot is given to a new SSRC only once it has been silent for IDLE_US (a sender that
// restarted under a new SSRC, a simulcast layer turned off): its drop count is kept aside (RETIRED
// of them), so that if it comes back its numbers go on where they were.
import { StateReader, StateWriter } from "../../../sdk/assembly";
import { MAX_SOURCES, leastRecent } from "./settings";

const SOURCES = MAX_SOURCES;
/** Drop ranges remembered per SSRC, in order; a drop next to one extends it (a GOP cut is one range). */
export const RANGES = 32;
const NONE: i64 = i64.MIN_VALUE;
/** Older than the history: no number can be given without colliding (the caller drops the packet). */
export const UNMAPPED: i64 = i64.MIN_VALUE;
/** Numbers a NACK to the origin asked for, remembered: an RTX packet that answers one is told by its original number. */
const ASKED = 256;
/** A source silent this long may give its slot to a new one. */
export const IDLE_US: i64 = 5_000_000;
/** Sources that gave up their slot, remembered with their drop count (their numbers go on if they come back). */
const RETIRED = 32;
/** A queued packet's tag when it is not renumbered. */
export const NO_TAG: i32 = -1;
/** Bits of a tag that name the slot (SOURCES <= 16); the rest is the slot's epoch. */
const TAG_SLOT_BITS = 4;

export class Renumber {
  private readonly ssrcs: StaticArray<u32> = new StaticArray<u32>(SOURCES);
  private count: i32 = 0;
  /** Per source: the newest extended input number seen. */
  private readonly highest: StaticArray<i64> = new StaticArray<i64>(SOURCES);
  /** Per source: the newest input number that left (drops at or below it are not recorded). */
  private readonly sentHigh: StaticArray<i64> = new StaticArray<i64>(SOURCES);
  /** Per source: the newest output number given (NONE: none yet): what 16-bit numbers from downstream extend against. */
  private readonly outHigh: StaticArray<i64> = new StaticArray<i64>(SOURCES);
  /** Per source: drops pushed out of the history, all below `floor`; inputs below `floor` cannot be mapped. */
  private readonly evicted: StaticArray<i64> = new StaticArray<i64>(SOURCES);
  private readonly floor: StaticArray<i64> = new StaticArray<i64>(SOURCES);
  /** Per source: every drop recorded (evicted ones included). */
  private readonly total: StaticArray<i64> = new StaticArray<i64>(SOURCES);
  // per source, up to RANGES ranges [start, end) in order, oldest first; `before`: drops below start.
  // Kept in place (shifted on the rare insertion or eviction), not a ring: drops can land between.
  private readonly starts: StaticArray<i64> = new StaticArray<i64>(SOURCES * RANGES);
  private readonly ends: StaticArray<i64> = new StaticArray<i64>(SOURCES * RANGES);
  private readonly befores: StaticArray<i64> = new StaticArray<i64>(SOURCES * RANGES);
  private readonly sizes: StaticArray<i32> = new StaticArray<i32>(SOURCES);
  // per source, the last report block rewritten (its reporter, the input's extended highest number
  // and the cumulative loss as rewritten): the origin's fraction lost is taken between two of them
  private readonly reporters: StaticArray<u32> = new StaticArray<u32>(SOURCES);
  private readonly reportHigh: StaticArray<i64> = new StaticArray<i64>(SOURCES);
  private readonly reportLost: StaticArray<i64> = new StaticArray<i64>(SOURCES);
  private readonly reported: StaticArray<bool> = new StaticArray<bool>(SOURCES);
  /** Ring of (slot << 16 | input number) asked for in NACKs to the origin, newest at askedNext - 1. */
  private readonly asked: StaticArray<i32> = new StaticArray<i32>(ASKED);
  private askedNext: i32 = 0;
  private askedCount: i32 = 0;
  /** Per source: when its last packet came (µs). */
  private readonly lastSeen: StaticArray<i64> = new StaticArray<i64>(SOURCES);
  /** Per slot: how many times it was given to another source (a queued packet's tag names it). */
  private readonly epochs: StaticArray<i32> = new StaticArray<i32>(SOURCES);
  private readonly retiredSsrcs: StaticArray<u32> = new StaticArray<u32>(RETIRED);
  private readonly retiredDrops: StaticArray<i64> = new StaticArray<i64>(RETIRED);
  private retiredNext: i32 = 0;
  private retiredCount: i32 = 0;

  /**
   * The source's slot (its packet came at `nowUs`), added if there is room or a source has been
   * silent for IDLE_US; -1 when all are busy (not renumbered).
   */
  slot(ssrc: u32, seq: u16, nowUs: i64): i32 {
    let s = this.find(ssrc);
    if (s < 0) {
      if (this.count < SOURCES) s = this.count++;
      else {
        s = leastRecent(this.lastSeen, this.count);
        if (nowUs - unchecked(this.lastSeen[s]) < IDLE_US) {
          // not renumbered: its packets leave with the numbers they came with, so the drop count
          // kept for it no longer applies (given a slot later, it would number back over them)
          this.forgetRetired(ssrc);
          return -1;
        }
        this.retire(s);
      }
      unchecked((this.ssrcs[s] = ssrc));
      this.reset(s, <i64>seq);
      this.resume(s, ssrc, <i64>seq);
    }
    unchecked((this.lastSeen[s] = nowUs));
    return s;
  }

  /** Slot s goes to another source: its drop count is kept aside, its NACKs remembered are forgotten, its queued packets' tags go stale. */
  private retire(s: i32): void {
    const ssrc = unchecked(this.ssrcs[s]);
    let k = this.retiredAt(ssrc);
    if (k < 0) {
      k = this.retiredNext;
      this.retiredNext = (k + 1) % RETIRED;
      if (this.retiredCount < RETIRED) this.retiredCount++;
    }
    unchecked((this.retiredSsrcs[k] = ssrc));
    unchecked((this.retiredDrops[k] = unchecked(this.total[s])));
    for (let i = 0; i < this.askedCount; i++) if (unchecked(this.asked[i]) >> 16 == s) unchecked((this.asked[i] = -1));
    unchecked((this.epochs[s] += 1));
  }

  /** A source that had a slot before comes back at input `first`: its numbers go on, less the drops it had then. */
  private resume(s: i32, ssrc: u32, first: i64): void {
    const k = this.retiredAt(ssrc);
    if (k < 0) return;
    const drops = unchecked(this.retiredDrops[k]);
    unchecked((this.evicted[s] = drops));
    unchecked((this.total[s] = drops));
    // nothing older than its return can be mapped: the ranges it had are gone
    unchecked((this.floor[s] = first));
  }

  private forgetRetired(ssrc: u32): void {
    const k = this.retiredAt(ssrc);
    if (k >= 0) unchecked((this.retiredDrops[k] = 0));
  }

  private retiredAt(ssrc: u32): i32 {
    for (let k = 0; k < this.retiredCount; k++) if (unchecked(this.retiredSsrcs[k]) == ssrc) return k;
    return -1;
  }

  /** What a queued packet of slot s carries, to find its slot when it leaves (NO_TAG when s < 0). */
  tag(s: i32): i32 {
    return s < 0 ? NO_TAG : ((unchecked(this.epochs[s]) & (0x7fffffff >> TAG_SLOT_BITS)) << TAG_SLOT_BITS) | s;
  }

  /** The slot a tag names, or -1 when that slot went to another source meanwhile (or NO_TAG). */
  slotOfTag(tag: i32): i32 {
    if (tag < 0) return -1;
    const s = tag & ((1 << TAG_SLOT_BITS) - 1);
    return s < this.count && this.tag(s) == tag ? s : -1;
  }

  find(ssrc: u32): i32 {
    for (let i = 0; i < this.count; i++) if (unchecked(this.ssrcs[i]) == ssrc) return i;
    return -1;
  }

  private reset(s: i32, first: i64): void {
    unchecked((this.highest[s] = first));
    unchecked((this.sentHigh[s] = NONE));
    unchecked((this.outHigh[s] = NONE));
    unchecked((this.evicted[s] = 0));
    unchecked((this.floor[s] = NONE));
    unchecked((this.total[s] = 0));
    unchecked((this.sizes[s] = 0));
    unchecked((this.reported[s] = false));
  }

  /** The extended number of a 16-bit one, the nearest to the newest seen (RFC 3550 A.1). */
  @inline extend(s: i32, seq: u16): i64 {
    const h = unchecked(this.highest[s]);
    return h + <i64>(<i16>(seq - <u16>h));
  }

  /** A packet arrived: its extended number, the newest moved on. */
  arrive(s: i32, seq: u16): i64 {
    const x = this.extend(s, seq);
    if (x > unchecked(this.highest[s])) unchecked((this.highest[s] = x));
    return x;
  }

  /** Whether input `x` can leave: not older than the history, and not a number recorded as dropped (a duplicate of it). */
  mappable(s: i32, x: i64): bool {
    if (x < unchecked(this.floor[s])) return false;
    const n = unchecked(this.sizes[s]);
    for (let k = n - 1; k >= 0; k--) {
      const i = this.at(s, k);
      if (x >= unchecked(this.ends[i])) return true;
      if (x >= unchecked(this.starts[i])) return false;
    }
    return true;
  }

  /**
   * Records a deliberate drop of input `x`; false (a gap left) when something at or above it left
   * already, or it is older than the history, or it was recorded before.
   */
  drop(s: i32, x: i64): bool {
    if (x <= unchecked(this.sentHigh[s]) || x < unchecked(this.floor[s])) return false;
    const n = unchecked(this.sizes[s]);
    // the last range starting at or before x (-1: none); nearly always the newest
    let k = n - 1;
    while (k >= 0 && unchecked(this.starts[this.at(s, k)]) > x) k--;
    if (k >= 0 && x < unchecked(this.ends[this.at(s, k)])) return false;
    unchecked((this.total[s] += 1));
    if (k >= 0 && x == unchecked(this.ends[this.at(s, k)])) {
      const i = this.at(s, k);
      unchecked((this.ends[i] = x + 1));
      if (k + 1 < n && unchecked(this.starts[i + 1]) == x + 1) {
        // it closed the hole between two ranges
        unchecked((this.ends[i] = unchecked(this.ends[i + 1])));
        this.removeAt(s, k + 1);
      }
      this.bumpFrom(s, k + 1);
      return true;
    }
    if (k + 1 < n && unchecked(this.starts[this.at(s, k + 1)]) == x + 1) {
      unchecked((this.starts[this.at(s, k + 1)] = x));
      this.bumpFrom(s, k + 2);
      return true;
    }
    // a range of its own after range k
    if (n == RANGES) {
      if (k < 0) {
        // older than every range remembered, and no room: straight below the floor
        unchecked((this.evicted[s] += 1));
        unchecked((this.floor[s] = x + 1));
        this.bumpFrom(s, 0);
        return true;
      }
      // the oldest range goes: its drops are summed below the floor
      const old = this.at(s, 0);
      unchecked((this.evicted[s] += unchecked(this.ends[old]) - unchecked(this.starts[old])));
      unchecked((this.floor[s] = unchecked(this.ends[old])));
      this.removeAt(s, 0);
      k--;
    }
    let before = unchecked(this.evicted[s]);
    if (k >= 0) {
      const p = this.at(s, k);
      before = unchecked(this.befores[p]) + unchecked(this.ends[p]) - unchecked(this.starts[p]);
    }
    // make room at k + 1
    const m = unchecked(this.sizes[s]);
    for (let j = m; j > k + 1; j--) {
      const to = this.at(s, j);
      unchecked((this.starts[to] = this.starts[to - 1]));
      unchecked((this.ends[to] = this.ends[to - 1]));
      unchecked((this.befores[to] = this.befores[to - 1]));
    }
    const i = this.at(s, k + 1);
    unchecked((this.starts[i] = x));
    unchecked((this.ends[i] = x + 1));
    unchecked((this.befores[i] = before));
    unchecked((this.sizes[s] = m + 1));
    this.bumpFrom(s, k + 2);
    return true;
  }

  /** One more drop below ranges k.. (it landed before them). */
  private bumpFrom(s: i32, k: i32): void {
    const n = unchecked(this.sizes[s]);
    for (let j = k; j < n; j++) unchecked((this.befores[this.at(s, j)] += 1));
  }

  private removeAt(s: i32, k: i32): void {
    const n = unchecked(this.sizes[s]);
    for (let j = k; j < n - 1; j++) {
      const to = this.at(s, j);
      unchecked((this.starts[to] = this.starts[to + 1]));
      unchecked((this.ends[to] = this.ends[to + 1]));
      unchecked((this.befores[to] = this.befores[to + 1]));
    }
    unchecked((this.sizes[s] = n - 1));
  }

  /** Drops recorded below input `x` (x mappable). */
  droppedBelow(s: i32, x: i64): i64 {
    const n = unchecked(this.sizes[s]);
    for (let k = n - 1; k >= 0; k--) {
      const i = this.at(s, k);
      const end = unchecked(this.ends[i]);
      const start = unchecked(this.starts[i]);
      if (x >= end) return unchecked(this.befores[i]) + (end - start);
      if (x >= start) return unchecked(this.befores[i]) + (x - start);
    }
    return unchecked(this.evicted[s]);
  }

  /** Input `x` (mappable) leaves: its output number. */
  leave(s: i32, x: i64): i64 {
    const o = x - this.droppedBelow(s, x);
    if (x > unchecked(this.sentHigh[s])) unchecked((this.sentHigh[s] = x));
    if (o > unchecked(this.outHigh[s])) unchecked((this.outHigh[s] = o));
    return o;
  }

  /** The extended output number of a 16-bit one from downstream (nearest to the newest given); UNMAPPED before any left. */
  extendOutput(s: i32, seq: u16): i64 {
    const h = unchecked(this.outHigh[s]);
    if (h == NONE) return UNMAPPED;
    return h + <i64>(<i16>(seq - <u16>h));
  }

  /** The input number whose packet left (or would leave) as output `o`; UNMAPPED when older than the history. */
  toInput(s: i32, o: i64): i64 {
    const n = unchecked(this.sizes[s]);
    for (let k = n - 1; k >= 0; k--) {
      const i = this.at(s, k);
      const after = unchecked(this.befores[i]) + unchecked(this.ends[i]) - unchecked(this.starts[i]);
      // the inputs from this range's end on left as end - after, end - after + 1, ...
      if (o >= unchecked(this.ends[i]) - after) return o + after;
    }
    const x = o + unchecked(this.evicted[s]);
    return x >= unchecked(this.floor[s]) ? x : UNMAPPED;
  }

  /**
   * Notes a report block from `reporter` as rewritten (input's extended highest number, cumulative
   * lost); returns the fraction lost since that reporter's last block, in 1/256 as RFC 3550 A.3
   * computes it, or -1 when there is no earlier block of it to count from.
   */
  fractionSince(s: i32, reporter: u32, high: i64, lost: i64): i32 {
    let f = -1;
    if (unchecked(this.reported[s]) && unchecked(this.reporters[s]) == reporter && high > unchecked(this.reportHigh[s])) {
      const expected = high - unchecked(this.reportHigh[s]);
      const interval = lost - unchecked(this.reportLost[s]);
      f = interval <= 0 ? 0 : <i32>min<i64>(255, (interval << 8) / expected);
    }
    unchecked((this.reporters[s] = reporter));
    unchecked((this.reportHigh[s] = high));
    unchecked((this.reportLost[s] = lost));
    unchecked((this.reported[s] = true));
    return f;
  }

  /** A NACK to the origin asks for input `x` of source `s` (its RTX answer names it). */
  noteAsked(s: i32, x: i64): void {
    unchecked((this.asked[this.askedNext] = (s << 16) | <i32>(<u16>x)));
    this.askedNext = (this.askedNext + 1) % ASKED;
    if (this.askedCount < ASKED) this.askedCount++;
  }

  /** The source whose input number `seq` a NACK asked for last (-1: none of the last ASKED). */
  askedBy(seq: u16): i32 {
    for (let k = 1; k <= this.askedCount; k++) {
      const v = unchecked(this.asked[(this.askedNext - k + ASKED) % ASKED]);
      if (v >= 0 && (v & 0xffff) == <i32>seq) return v >> 16;
    }
    return -1;
  }

  @inline private at(s: i32, k: i32): i32 {
    return s * RANGES + k;
  }

  // ---- hot swap ----

  writeTo(out: StateWriter): void {
    out.u8(<u8>this.count);
    for (let s = 0; s < this.count; s++) {
      out.u32(unchecked(this.ssrcs[s]));
      out.u64(<u64>unchecked(this.highest[s]));
      out.u64(<u64>unchecked(this.sentHigh[s]));
      out.u64(<u64>unchecked(this.outHigh[s]));
      out.u64(<u64>unchecked(this.evicted[s]));
      out.u64(<u64>unchecked(this.floor[s]));
      const n = unchecked(this.sizes[s]);
      out.u8(<u8>n);
      for (let k = 0; k < n; k++) {
        const i = this.at(s, k);
        out.u64(<u64>unchecked(this.starts[i]));
        out.u64(<u64>unchecked(this.ends[i]));
        out.u64(<u64>unchecked(this.befores[i]));
      }
    }
    out.u8(<u8>this.retiredCount);
    for (let k = 0; k < this.retiredCount; k++) {
      const at = (this.retiredNext - this.retiredCount + k + RETIRED) % RETIRED; // oldest first
      out.u32(unchecked(this.retiredSsrcs[at]));
      out.u64(<u64>unchecked(this.retiredDrops[at]));
    }
  }

  /**
   * Reads what writeTo wrote; with `apply` false it only checks it (false: a forged or broken blob)
   * and nothing changes, so that a refused import leaves the context as it was. `retired`: the
   * blob has the retired sources (state version 6 on). Every source counts as seen at `nowUs`.
   */
  readFrom(blob: StateReader, apply: bool, retired: bool, nowUs: i64): bool {
    const count = <i32>blob.u8();
    if (count > SOURCES) return false;
    for (let s = 0; s < count; s++) {
      const ssrc = blob.u32();
      const highest = <i64>blob.u64();
      const sentHigh = <i64>blob.u64();
      const outHigh = <i64>blob.u64();
      const evicted = <i64>blob.u64();
      const floor = <i64>blob.u64();
      const n = <i32>blob.u8();
      if (n > RANGES || evicted < 0) return false;
      if (apply) {
        unchecked((this.ssrcs[s] = ssrc));
        this.reset(s, highest);
        unchecked((this.lastSeen[s] = nowUs));
        unchecked((this.sentHigh[s] = sentHigh));
        unchecked((this.outHigh[s] = outHigh));
        unchecked((this.evicted[s] = evicted));
        unchecked((this.floor[s] = floor));
        unchecked((this.sizes[s] = n));
      }
      let total = evicted;
      let last = floor;
      for (let k = 0; k < n; k++) {
        const start = <i64>blob.u64();
        const end = <i64>blob.u64();
        const before = <i64>blob.u64();
        // ranges in order, each after the last, and counts that add up: the mapping stays one to one
        if (start < last || end <= start || before != total) return false;
        total += end - start;
        last = end;
        if (apply) {
          const i = s * RANGES + k;
          unchecked((this.starts[i] = start));
          unchecked((this.ends[i] = end));
          unchecked((this.befores[i] = before));
        }
      }
      if (apply) unchecked((this.total[s] = total));
    }
    const retiredCount = retired ? <i32>blob.u8() : 0;
    if (retiredCount > RETIRED) return false;
    for (let k = 0; k < retiredCount; k++) {
      const ssrc = blob.u32();
      const drops = <i64>blob.u64();
      if (drops < 0) return false;
      if (apply) {
        unchecked((this.retiredSsrcs[k] = ssrc));
        unchecked((this.retiredDrops[k] = drops));
      }
    }
    if (apply) {
      this.count = count;
      this.retiredCount = retiredCount;
      this.retiredNext = retiredCount % RETIRED;
    }
    return !blob.overflow;
  }
}
