// The pacer: a leaky bucket (tokens in bytes, filled at the pacing rate, at most `burst` deep) in
// front of a FIFO of packets that had to wait. Queued packets live in budgeted records
// (records.ts), one 2 KiB cell each; nothing is allocated per packet.
import { RtpPacket, StateWriter } from "../../../sdk/assembly";
import { CHUNK_SIZE } from "../../../sdk/assembly/chunks";
import { Records } from "./records";

export const CELL = 2048;
/** A discarded cell's length. */
const VOID: i32 = -1;
const CELLS_PER_CHUNK = CHUNK_SIZE / CELL;

export class Pacer {
  /** Bytes the bucket holds (may dip below 0 by one packet). */
  tokens: f64 = 0;
  rateBps: f64;
  private burstMs: f64;
  private lastRefillUs: i64 = -1;

  /** Cells (whole chunks' worth); the queue holds at most `limit` packets of them. */
  readonly capacity: i32;
  /** pacing.maxQueuePackets. */
  readonly limit: i32;
  private readonly cells: Records;
  /** Per cell: the packet's length, or VOID when it was discarded where it stood (discardFrame). */
  private readonly lengths: StaticArray<i32>;
  /** Per cell: the packet belongs to a keyframe (IDR), whose bytes the priority decisions leave out. */
  private readonly keyframe: StaticArray<bool>;
  /**
   * Per cell, with renumbering: the packet's slot tag (renumber.ts, NO_TAG when not renumbered) and
   * extended input number, taken as it came: extended again when it leaves, against a newer number,
   * it could be read a whole 2^16 off.
   */
  private readonly tags: StaticArray<i32>;
  private readonly exts: StaticArray<i64>;
  private head: i32 = 0;
  /** Cells in use, discarded ones that wait to reach the head included. */
  count: i32 = 0;
  private voided: i32 = 0;
  /** Bytes queued, and how many of them are keyframes'. */
  bytes: i64 = 0;
  keyframeBytes: i64 = 0;

  private constructor(cells: Records, capacity: i32, limit: i32, rateBps: f64, burstMs: f64) {
    this.cells = cells;
    this.capacity = capacity;
    this.limit = limit;
    this.lengths = new StaticArray<i32>(capacity);
    this.keyframe = new StaticArray<bool>(capacity);
    this.tags = new StaticArray<i32>(capacity);
    this.exts = new StaticArray<i64>(capacity);
    this.rateBps = rateBps;
    this.burstMs = burstMs;
    this.tokens = this.burstBytes();
  }

  /** A pacer whose queue holds `packets` (its memory rounded up to whole chunks); null when the memory budget is spent. */
  static create(packets: i32, rateBps: f64, burstMs: f64): Pacer | null {
    const capacity = (packets + CELLS_PER_CHUNK - 1) / CELLS_PER_CHUNK * CELLS_PER_CHUNK;
    const cells = Records.create(capacity, CELL);
    if (cells === null) return null;
    return new Pacer(cells, capacity, packets, rateBps, burstMs);
  }

  /** Memory a queue of `packets` takes. */
  static bytesFor(packets: i32): i64 {
    return Records.bytesFor(packets, CELL);
  }

  free(): void {
    this.cells.free();
  }

  /** Adds the tokens earned since the last refill. */
  refill(nowUs: i64): void {
    if (this.lastRefillUs >= 0 && nowUs > this.lastRefillUs) {
      this.tokens += (this.rateBps / 8) * <f64>(nowUs - this.lastRefillUs) / 1e6;
      const burst = this.burstBytes();
      if (this.tokens > burst) this.tokens = burst;
    }
    this.lastRefillUs = nowUs;
  }

  /** Whether a packet may leave now (the bucket is not in debt). */
  @inline get mayLeave(): bool {
    return this.tokens >= 0;
  }

  @inline spend(bytes: i32): void {
    this.tokens -= <f64>bytes;
  }

  /** Microseconds until the bucket is out of debt (0 if it is). */
  waitUs(): i64 {
    if (this.tokens >= 0) return 0;
    return <i64>Math.ceil((-this.tokens * 8 / this.rateBps) * 1e6);
  }

  /** How long the queue takes to leave at the pacing rate, in ms. */
  @inline get queueMs(): f64 {
    return <f64>this.bytes * 8 / this.rateBps * 1000;
  }

  /**
   * The same without the keyframes' bytes: what the priority decisions look at. A keyframe is
   * several frames' worth of bytes at once and takes long to leave at a low rate (26 KB at 600
   * kbit/s: 350 ms); counted, it would make the next reference frame look late and cost the GOP.
   */
  @inline get queueMsBesideKeyframes(): f64 {
    return <f64>(this.bytes - this.keyframeBytes) * 8 / this.rateBps * 1000;
  }

  /** Packets queued to leave. */
  @inline get packets(): i32 {
    return this.count - this.voided;
  }

  /** Copies a packet to the queue's tail, with its renumbering tag and extended number; false when full or too long for a cell. */
  push(ptr: usize, len: i32, keyframe: bool, tag: i32, ext: i64): bool {
    if (this.count >= this.limit || len > CELL || len < 0) return false;
    const i = (this.head + this.count) % this.capacity;
    memory.copy(this.cell(i), ptr, <usize>len);
    unchecked((this.lengths[i] = len));
    unchecked((this.keyframe[i] = keyframe));
    unchecked((this.tags[i] = tag));
    unchecked((this.exts[i] = ext));
    this.count++;
    this.bytes += len;
    if (keyframe) this.keyframeBytes += len;
    return true;
  }

  /**
   * Discards the queued packets of one frame (its SSRC and RTP timestamp) where they stand, so that
   * none of it leaves; returns how many. Rare (a frame the queue could not take whole): it walks
   * the queue. Cells at the tail are freed at once, others when they reach the head (popVoid).
   */
  discardFrame(ssrc: u32, timestamp: u32): i32 {
    let n = 0;
    for (let k = 0; k < this.count; k++) {
      const i = (this.head + k) % this.capacity;
      const len = unchecked(this.lengths[i]);
      if (len == VOID) continue;
      const cell = this.cell(i);
      if (RtpPacket.ssrc(cell) != ssrc || RtpPacket.timestamp(cell) != timestamp) continue;
      this.bytes -= len;
      if (unchecked(this.keyframe[i])) this.keyframeBytes -= len;
      unchecked((this.lengths[i] = VOID));
      n++;
    }
    this.voided += n;
    while (this.count > 0 && unchecked(this.lengths[(this.head + this.count - 1) % this.capacity]) == VOID) {
      this.count--;
      this.voided--;
    }
    return n;
  }

  /**
   * Writes the queued packets, oldest first, each as [u8 keyframe][u16 length][bytes], while they
   * fit in `out` (state export); returns how many it wrote.
   */
  writeTo(out: StateWriter): i32 {
    let n = 0;
    for (let k = 0; k < this.count; k++) {
      const i = (this.head + k) % this.capacity;
      const len = unchecked(this.lengths[i]);
      if (len == VOID) continue;
      if (out.remaining < 3 + len) break;
      out.u8(unchecked(this.keyframe[i]) ? 1 : 0);
      out.u16(<u16>len);
      memory.copy(out.reserve(len), this.cell(i), <usize>len);
      n++;
    }
    return n;
  }

  /** The k-th cell from the head (0 <= k < count): its packet, or 0 when it was discarded. Rare walks (renumber.ts records a discard's numbers). */
  packetAt(k: i32): usize {
    const i = (this.head + k) % this.capacity;
    return unchecked(this.lengths[i]) == VOID ? 0 : this.cell(i);
  }

  /** The k-th cell's renumbering tag and extended number (see push). */
  tagAt(k: i32): i32 {
    return unchecked(this.tags[(this.head + k) % this.capacity]);
  }
  extAt(k: i32): i64 {
    return unchecked(this.exts[(this.head + k) % this.capacity]);
  }

  /** Empties the queue; returns how many packets it held. */
  clear(): i32 {
    const n = this.packets;
    this.head = 0;
    this.count = 0;
    this.voided = 0;
    this.bytes = 0;
    this.keyframeBytes = 0;
    return n;
  }

  /** Pops discarded packets at the head; after it the head (if any) is one to send. */
  popVoid(): void {
    while (this.count > 0 && unchecked(this.lengths[this.head]) == VOID) {
      this.head = (this.head + 1) % this.capacity;
      this.count--;
      this.voided--;
    }
  }

  /** The head packet's address and length (count > 0, after popVoid). */
  @inline headPtr(): usize {
    return this.cell(this.head);
  }
  @inline headLength(): i32 {
    return unchecked(this.lengths[this.head]);
  }

  pop(): void {
    const len = unchecked(this.lengths[this.head]);
    this.bytes -= len;
    if (unchecked(this.keyframe[this.head])) this.keyframeBytes -= len;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
  }

  @inline private cell(i: i32): usize {
    return this.cells.at(i);
  }

  @inline private burstBytes(): f64 {
    return Math.max((this.rateBps / 8) * this.burstMs / 1000, 1500);
  }
}
