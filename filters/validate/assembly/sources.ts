// Per-SSRC source state of one context: RFC 3550 A.1's `source` (probation and sequence
// tracking), two token buckets, and the queue of packets held while the source is on probation.
// Records live in one raw block allocated when the context is created; entries [0, count) are
// in use.
import { DropReason } from "../../../sdk/assembly";
import { heldPackets, initQueue } from "./hold-store";
import { Settings } from "./settings";

/** RFC 3550 A.1 RTP_SEQ_MOD. */
const SEQ_MOD: u32 = 1 << 16;
/** Token buckets count in millionths so that a rate per second refills per microsecond exactly. */
const TOKEN_SCALE: i64 = 1_000_000;

// Record layout (little-endian, RECORD_SIZE bytes). Its first STATE_RECORD_SIZE bytes are also
// the state-blob record format: change those only together with STATE_VERSION in state.ts.
export const STATE_RECORD_SIZE: i32 = 48;
export const RECORD_SIZE: i32 = 64;
const R_SSRC = 0; //        u32
const R_PROBATION = 4; //   u8   packets still needed in sequence (0: valid source)
const R_JUMP = 5; //        u8   1: what the source holds is the packet of its last large jump (state version 3)
const R_MAX_SEQ = 6; //     u16  highest sequence number seen
const R_BAD_SEQ = 8; //     u32  last 'bad' sequence number + 1 (SEQ_MOD + 1: none)
const R_CYCLES = 12; //     u32  shifted count of sequence-number cycles
const R_BASE_SEQ = 16; //   u16  first sequence number of the valid run
const R_RECEIVED = 20; //   u32  packets accepted
const R_PKT_TOKENS = 24; // i64  packet bucket, in 1/TOKEN_SCALE packets
const R_BIT_TOKENS = 32; // i64  bit bucket, in 1/TOKEN_SCALE bits
const R_LAST_US = 40; //    i64  arrival of the newest packet (bucket refill and idle reference)
const R_HELD = 48; //       QUEUE_SIZE bytes: packets held on probation (hold-store.ts)

/** The queue of packets held for the source of record `r`. */
@inline export function heldQueue(r: usize): usize {
  return r + R_HELD;
}

@inline export function recordSsrc(r: usize): u32 {
  return load<u32>(r, R_SSRC);
}

export class SourceTable {
  /** Records in use. */
  count: i32 = 0;
  /** Held packets freed by the last add() that recycled a record. */
  recycledHeld: i32 = 0;
  /** Why the recycled record's held packets were dropped: probation, or a jump (bad sequence) of a valid source. */
  recycledReason: u32 = DropReason.Probation;
  private lastHit: i32 = 0;
  private records: usize;

  constructor(
    /** Records the block holds (>= any maxSources it serves). */
    readonly capacity: i32,
  ) {
    this.records = heap.alloc(<usize>capacity * RECORD_SIZE);
  }

  clear(): void {
    this.count = 0;
    this.lastHit = 0;
  }

  @inline record(i: i32): usize {
    return this.records + <usize>i * RECORD_SIZE;
  }

  /** The record of `ssrc`, or 0. */
  find(ssrc: u32): usize {
    const n = this.count;
    const hit = this.lastHit;
    if (hit < n && load<u32>(this.record(hit), R_SSRC) == ssrc) return this.record(hit);
    for (let i = 0; i < n; i++) {
      const r = this.record(i);
      if (load<u32>(r, R_SSRC) == ssrc) {
        this.lastHit = i;
        return r;
      }
    }
    return 0;
  }

  /**
   * A fresh record for a new `ssrc` on probation with full buckets, or 0 when `maxSources`
   * sources are tracked and none has been silent for `sourceTimeoutMs` (> 0) or longer. A
   * recycled record's held packets are freed: `recycledHeld` says how many.
   */
  add(ssrc: u32, seq: u16, nowUs: i64, s: Settings): usize {
    let r: usize = 0;
    this.recycledHeld = 0;
    if (this.count < s.maxSources) {
      r = this.record(this.count++);
      initQueue(heldQueue(r));
    } else if (s.sourceTimeoutMs > 0) {
      r = this.oldest();
      if (nowUs - load<i64>(r, R_LAST_US) < s.sourceTimeoutMs * 1000) return 0;
      this.recycledReason = heldReason(r);
      this.recycledHeld = heldPackets.clear(heldQueue(r));
    } else {
      return 0;
    }
    store<u32>(r, ssrc, R_SSRC);
    store<u8>(r, 0, R_JUMP);
    initSequence(r, seq);
    if (s.probation > 0) {
      // RFC 3550 A.1: "s->max_seq = seq - 1; s->probation = MIN_SEQUENTIAL;"
      store<u16>(r, seq - 1, R_MAX_SEQ);
      store<u8>(r, <u8>s.probation, R_PROBATION);
    }
    store<i64>(r, s.effectiveBurstPackets * TOKEN_SCALE, R_PKT_TOKENS);
    store<i64>(r, s.effectiveBurstBits * TOKEN_SCALE, R_BIT_TOKENS);
    store<i64>(r, nowUs, R_LAST_US);
    return r;
  }

  /** The record silent the longest (count > 0). */
  private oldest(): usize {
    let best = this.record(0);
    for (let i = 1, n = this.count; i < n; i++) {
      const r = this.record(i);
      if (load<i64>(r, R_LAST_US) < load<i64>(best, R_LAST_US)) best = r;
    }
    return best;
  }

  /**
   * Adds a copy of blob record `src` (state import, STATE_RECORD_SIZE bytes) unless its SSRC is
   * not allowed. When the table is full it replaces the least recent record if `src` is more
   * recent. Call it before any packet is held in this table (the import's order).
   */
  insertCopy(src: usize, s: Settings, jumpKnown: bool): void {
    if (!s.ssrcAllowed(load<u32>(src, R_SSRC))) return;
    if (this.find(load<u32>(src, R_SSRC)) != 0) return;
    let r: usize;
    if (this.count < s.maxSources) {
      r = this.record(this.count++);
    } else {
      r = this.oldest();
      if (load<i64>(r, R_LAST_US) >= load<i64>(src, R_LAST_US)) return;
    }
    memory.copy(r, src, STATE_RECORD_SIZE);
    if (!jumpKnown) store<u8>(r, 0, R_JUMP); // a blob from before held jumps: the byte meant nothing
    initQueue(heldQueue(r));
    if (<i32>load<u8>(r, R_PROBATION) > s.probation) store<u8>(r, <u8>s.probation, R_PROBATION);
  }
}

/** RFC 3550 A.1 init_seq. */
function initSequence(r: usize, seq: u16): void {
  store<u16>(r, seq, R_BASE_SEQ);
  store<u16>(r, seq, R_MAX_SEQ);
  store<u32>(r, SEQ_MOD + 1, R_BAD_SEQ); // so that seq == bad_seq is false
  store<u32>(r, 0, R_CYCLES);
  store<u32>(r, 0, R_RECEIVED);
  store<u8>(r, 0, R_PROBATION);
}

/**
 * What the packets a source holds are: probation packets, or the packet of its last large jump
 * (bad_seq) waiting for the next to tell a restart from a stray.
 */
export function heldReason(r: usize): u32 {
  return load<u8>(r, R_JUMP) != 0 ? DropReason.BadSequence : DropReason.Probation;
}

@inline export function isJumpHeld(r: usize): bool {
  return load<u8>(r, R_JUMP) != 0;
}

/** Marks (or unmarks) what source record `r` holds as the packet of a large jump. */
@inline export function setJumpHeld(r: usize, held: bool): void {
  store<u8>(r, held ? 1 : 0, R_JUMP);
}

@inline export function isValidSource(r: usize): bool {
  return load<u8>(r, R_PROBATION) == 0;
}

/** Which of update_seq's branches the last packet took (set by updateSequence). */
export enum SequenceStep {
  Probation,
  /** The packet completed probation: the source is valid from it on. */
  Validated,
  InOrder,
  /** A duplicate or a packet reordered by less than maxMisorder. */
  Reordered,
  /** A large jump (or step back), remembered as bad_seq. */
  Jump,
  /** The packet followed the last jump: the sender restarted, the source resynced. */
  Resynced,
}

export let sequenceStep: SequenceStep = SequenceStep.InOrder;

/**
 * RFC 3550 A.1 update_seq, statement for statement. Returns 0 for a valid packet, else
 * DropReason.Probation (source not yet valid) or DropReason.BadSequence (a large jump, kept
 * as bad_seq: if the next packet follows it, the sender restarted and the source resyncs).
 */
export function updateSequence(r: usize, seq: u16, s: Settings): u32 {
  const maxSeq = load<u16>(r, R_MAX_SEQ);
  const udelta = <u32>(<u16>(seq - maxSeq));
  let probation = <i32>load<u8>(r, R_PROBATION);
  if (probation > 0) {
    // Packet is in sequence? (16-bit compare: the RFC's C compares an int promoted from
    // u_int16, so it never matches across the wrap; that is not the intent.)
    if (seq == <u16>(maxSeq + 1)) {
      probation--;
      store<u16>(r, seq, R_MAX_SEQ);
      if (probation == 0) {
        initSequence(r, seq);
        store<u32>(r, 1, R_RECEIVED);
        sequenceStep = SequenceStep.Validated;
        return 0;
      }
    } else {
      probation = s.probation - 1;
      store<u16>(r, seq, R_MAX_SEQ);
    }
    store<u8>(r, <u8>probation, R_PROBATION);
    sequenceStep = SequenceStep.Probation;
    return DropReason.Probation;
  } else if (udelta < <u32>s.maxDropout) {
    // In order, with a permissible gap.
    sequenceStep = SequenceStep.InOrder;
    if (seq < maxSeq) store<u32>(r, load<u32>(r, R_CYCLES) + SEQ_MOD, R_CYCLES);
    store<u16>(r, seq, R_MAX_SEQ);
  } else if (udelta <= SEQ_MOD - <u32>s.maxMisorder) {
    // The sequence number made a very large jump.
    if (<u32>seq == load<u32>(r, R_BAD_SEQ)) {
      // Two sequential packets: assume the other side restarted without telling us.
      initSequence(r, seq);
      sequenceStep = SequenceStep.Resynced;
    } else {
      store<u32>(r, (<u32>seq + 1) & (SEQ_MOD - 1), R_BAD_SEQ);
      sequenceStep = SequenceStep.Jump;
      return DropReason.BadSequence;
    }
  } else {
    // Duplicate or reordered packet: valid, as in the RFC.
    sequenceStep = SequenceStep.Reordered;
  }
  store<u32>(r, load<u32>(r, R_RECEIVED) + 1, R_RECEIVED);
  return 0;
}

/** Refills both buckets for the time since the source's last packet and moves that mark. */
export function touch(r: usize, nowUs: i64, s: Settings): void {
  const last = load<i64>(r, R_LAST_US);
  if (nowUs <= last) return; // same instant, or a clock that stepped back
  const elapsed = nowUs - last;
  if (s.packetsPerSecond > 0) {
    const cap = s.effectiveBurstPackets * TOKEN_SCALE;
    store<i64>(r, refill(load<i64>(r, R_PKT_TOKENS), elapsed, s.packetsPerSecond, cap), R_PKT_TOKENS);
  }
  if (s.bitsPerSecond > 0) {
    const cap = s.effectiveBurstBits * TOKEN_SCALE;
    store<i64>(r, refill(load<i64>(r, R_BIT_TOKENS), elapsed, s.bitsPerSecond, cap), R_BIT_TOKENS);
  }
  store<i64>(r, nowUs, R_LAST_US);
}

/**
 * Takes one packet of `bytes` from the buckets: 0 if both have room (both are charged), else
 * the reason of the first that has not (nothing is charged).
 */
export function chargeRate(r: usize, bytes: i32, s: Settings): u32 {
  const pkt = load<i64>(r, R_PKT_TOKENS);
  const bit = load<i64>(r, R_BIT_TOKENS);
  const bitCost = <i64>bytes * 8 * TOKEN_SCALE;
  if (s.packetsPerSecond > 0 && pkt < TOKEN_SCALE) return DropReason.RateLimitPackets;
  if (s.bitsPerSecond > 0 && bit < bitCost) return DropReason.RateLimitBits;
  if (s.packetsPerSecond > 0) store<i64>(r, pkt - TOKEN_SCALE, R_PKT_TOKENS);
  if (s.bitsPerSecond > 0) store<i64>(r, bit - bitCost, R_BIT_TOKENS);
  return 0;
}

/** tokens + elapsed * rate, capped at `cap`, without overflowing on long silences. */
function refill(tokens: i64, elapsedUs: i64, ratePerSecond: i64, cap: i64): i64 {
  if (tokens >= cap) return cap; // also trims a bucket after the burst was lowered
  const missing = cap - tokens;
  if (elapsedUs >= missing / ratePerSecond + 1) return cap;
  const t = tokens + elapsedUs * ratePerSecond;
  return t < cap ? t : cap;
}
