// Holding probation packets instead of dropping them. RFC 3550 A.1's probation is a receiver's
// rule; a forwarder that drops a new stream's first packets drops what the receiver needs most
// (ffmpeg sends H.264 SPS and PPS first). So a packet of a source on probation is held (verdict
// Hold, copied into the hold store) and, once the source validates, sent on through the output
// area ahead of the packet that validated it. The host forwards a call's output packets after
// the packets that passed in place, so once a context has sent anything through the output area
// in a batch, or has packets still waiting to go out, its later valid packets take the same way.
//
// Held packets of a source that never validates are dropped after holdTimeoutMs (timer
// TIMER_EXPIRE) and counted as `drops_probation`: the host counted them as held, not dropped.
// When the output area is full, what waits goes out from timer TIMER_DRAIN.
//
// The same for A.1's other receiver's rule: a valid source's packet that jumps by maxDropout or
// more is "bad" until the next one follows it (the sender restarted: the source resyncs). A
// restarted encoder's first packet is what a receiver needs most too (a keyframe's start), so
// it is held, one per source, and goes out ahead of the packet that confirms the restart; the
// next packet of the old numbering shows it was a stray, and then it is dropped, as is one that
// waits holdTimeoutMs, counted as `drops_bad_sequence`.
import { DropReason, LogLevel, Output, Packet, Status, log, timerSet } from "../../../sdk/assembly";
import { ValidateContext } from "./context";
import { NONE, heldPackets, queueCount } from "./hold-store";
import { countDrops, countHeld, countPassed, countReleased, countReordered, countStoreFull } from "./metrics";
import { heldQueue, heldReason, setJumpHeld } from "./sources";

export const TIMER_EXPIRE = 0;
export const TIMER_DRAIN = 1;

/** Counts msm_on_batch calls, to tell whether a context sent output in this one. */
let batchEpoch: u32 = 1;

export function startBatch(): void {
  batchEpoch++;
  if (batchEpoch == 0) batchEpoch = 1; // 0 is a new context's "never"
}

/** Whether source record `r` may hold one more packet (the store may still be full: see storeHasRoom). */
export function canHold(c: ValidateContext, r: usize): bool {
  return queueCount(heldQueue(r)) < c.settings.holdPackets;
}

/** Holds probation (or jump) packet `p` of source record `r`. False when it may not: drop it then. */
export function hold(c: ValidateContext, r: usize, p: Packet, nowUs: i64): bool {
  const s = c.settings;
  if (!canHold(c, r) || !storeHasRoom(nowUs) || !heldPackets.push(heldQueue(r), p.ptr, p.length, nowUs)) return false;
  c.held++;
  countHeld();
  if (!c.expiryArmed) c.expiryArmed = timerSet(c.id, TIMER_EXPIRE, s.holdTimeoutMs * 1000) == Status.Ok;
  return true;
}

/** When the filter last said that its store was full (now_us), or 0. */
let storeFullSaidUs: i64 = 0;
/** A fleet's start fills the store for a moment: said once in this long, counted always. */
const STORE_FULL_SAY_EVERY_US: i64 = 10_000_000;

/**
 * Whether the store can take a packet. A packet it cannot take is dropped, as without holding: that
 * is counted (hold_store_full) and said, so that the operator hears why. No store by config is not a full one.
 */
export function storeHasRoom(nowUs: i64): bool {
  if (!heldPackets.full) return true;
  if (heldPackets.capacity > 0) storeFull(nowUs);
  return false;
}

function storeFull(nowUs: i64): void {
  countStoreFull();
  if (storeFullSaidUs != 0 && nowUs - storeFullSaidUs < STORE_FULL_SAY_EVERY_US) return;
  storeFullSaidUs = nowUs;
  log(LogLevel.Warn, "hold store full (holdStorePackets " + heldPackets.capacity.toString() + ", shared by every segment of this worker): new sources' first packets are dropped as probation until it empties; raise holdStorePackets in the filter's root config (counted in hold_store_full)");
}

/** Drops the jump source record `r` holds (it was no restart), counted as a bad sequence. */
export function dropHeldJump(c: ValidateContext, r: usize): void {
  const n = heldPackets.clear(heldQueue(r));
  setJumpHeld(r, false);
  if (n == 0) return;
  c.held -= n;
  countDrops(DropReason.BadSequence, n);
}

/**
 * Source record `r` validated, or resynced on a restart: what it holds goes out first, ahead of
 * its later packets (whatever becomes of the one that validated it).
 */
export function releaseHeld(c: ValidateContext, r: usize): void {
  const q = heldQueue(r);
  if (queueCount(q) > 0) heldPackets.moveAll(c.release, q);
  setJumpHeld(r, false);
}

/**
 * Valid packet `p`: it goes behind everything of its context that is on its way out (released
 * held packets). True when `p` was taken (sent through the output area, or queued), false when
 * it passes in place.
 */
export function sendAfterHeld(c: ValidateContext, p: Packet, nowUs: i64): bool {
  if (queueCount(c.release) == 0 && c.emitEpoch != batchEpoch) return false;
  drain(c);
  if (queueCount(c.release) == 0 && Output.emit(c.id, p.ptr, p.length)) {
    c.emitEpoch = batchEpoch;
    countPassed();
    return true;
  }
  if (heldPackets.push(c.release, p.ptr, p.length, nowUs)) {
    c.held++;
    countHeld();
    return true;
  }
  countReordered(); // the store is full: better out of order than lost
  return false;
}

/** Sends what waits in `release`, in order, while the output area has room. */
export function drain(c: ValidateContext): void {
  const q = c.release;
  let sent = 0;
  for (let i = heldPackets.head(q); i != NONE && Output.remaining() > 0; i = heldPackets.head(q)) {
    Output.emit(c.id, heldPackets.packet(i), heldPackets.length(i)); // fits: room checked, length <= MAX_PACKET
    heldPackets.pop(q);
    sent++;
  }
  if (sent == 0) return;
  c.held -= sent;
  c.emitEpoch = batchEpoch;
  countReleased(sent);
  countPassed(sent);
}

/** Arms TIMER_DRAIN if packets wait to go out (in 1 ms if the host refuses a timer at 0 delay). */
export function scheduleDrain(c: ValidateContext): void {
  if (c.drainArmed || queueCount(c.release) == 0) return;
  c.drainArmed = timerSet(c.id, TIMER_DRAIN, 0) == Status.Ok || timerSet(c.id, TIMER_DRAIN, 1000) == Status.Ok;
}

/**
 * Drops (counted as probation, or bad sequence for a jump) the held packets older than
 * holdTimeoutMs of sources that have not sent them on, and arms TIMER_EXPIRE for the oldest one left.
 */
export function expire(c: ValidateContext, nowUs: i64): void {
  const timeoutUs = c.settings.holdTimeoutMs * 1000;
  let oldest = i64.MAX_VALUE;
  const t = c.sources;
  for (let k = 0; k < t.count; k++) {
    const q = heldQueue(t.record(k));
    let i = heldPackets.head(q);
    let dropped = 0;
    while (i != NONE && heldPackets.arrival(i) + timeoutUs <= nowUs) {
      heldPackets.pop(q);
      dropped++;
      i = heldPackets.head(q);
    }
    if (dropped > 0) {
      c.held -= dropped;
      countDrops(heldReason(t.record(k)), dropped);
      if (i == NONE) setJumpHeld(t.record(k), false);
    }
    if (i != NONE && heldPackets.arrival(i) < oldest) oldest = heldPackets.arrival(i);
  }
  c.expiryArmed = false;
  if (oldest != i64.MAX_VALUE) {
    c.expiryArmed = timerSet(c.id, TIMER_EXPIRE, oldest + timeoutUs - nowUs) == Status.Ok;
  }
}

/** Frees every packet the context holds; returns how many there were. */
export function discardHeld(c: ValidateContext): i32 {
  let n = heldPackets.clear(c.release);
  const t = c.sources;
  for (let k = 0; k < t.count; k++) n += heldPackets.clear(heldQueue(t.record(k)));
  c.held = 0;
  return n;
}
