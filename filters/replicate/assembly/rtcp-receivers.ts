// The last report block of each (receiver, media source) pair, at most maxReceivers of them: what
// the aggregate report is made of. Blocks are kept as the receiver sent them (24 bytes, read with
// the SDK's ReportBlock) beside the receiver's SSRC, their arrival time and what moves the
// receiver's extended highest sequence numbers into its media source's common numbering
// (SequenceFrame). The arrays start small
// and double up to the maximum, so that a segment with few receivers costs little; a hash index
// finds a pair without a scan.
import { REPORT_BLOCK_SIZE, ReportBlock } from "../../../sdk/assembly";
import { SequenceFrame } from "./rtcp-worst";

const FIRST_CAPACITY: i32 = 8;
const EMPTY: i32 = -1;

export class ReceiverTable {
  /** Pairs tracked. */
  count: i32 = 0;
  private capacity: i32;
  private receivers: StaticArray<u32>;
  private blocks: StaticArray<u8>;
  private arrivedUs: StaticArray<i64>;
  /** Added to each entry's extended highest sequence number (a multiple of 65536). */
  private biases: StaticArray<u32>;
  /** Open addressing, linear probing: entry numbers, EMPTY where none; twice the capacity or more. */
  private index: StaticArray<i32>;

  constructor(readonly max: i32) {
    const capacity = min(FIRST_CAPACITY, max);
    this.capacity = capacity;
    this.receivers = new StaticArray<u32>(capacity);
    this.blocks = new StaticArray<u8>(capacity * REPORT_BLOCK_SIZE);
    this.arrivedUs = new StaticArray<i64>(capacity);
    this.biases = new StaticArray<u32>(capacity);
    const index = new StaticArray<i32>(indexSize(capacity));
    index.fill(EMPTY);
    this.index = index;
  }

  /** Address of entry `i`'s report block (0 <= i < count). */
  @inline blockAt(i: i32): usize {
    return changetype<usize>(this.blocks) + <usize>(i * REPORT_BLOCK_SIZE);
  }

  @inline arrivedAt(i: i32): i64 {
    return unchecked(this.arrivedUs[i]);
  }

  /** Entry `i`'s extended highest sequence number in its media source's common numbering. */
  @inline extendedAt(i: i32): u32 {
    return ReportBlock.extendedHighestSequence(this.blockAt(i)) + unchecked(this.biases[i]);
  }

  /**
   * Keeps the report block at `b` as receiver `receiver`'s latest about its media source, whose
   * common numbering is `frame` (a new pair is placed in it); false, keeping nothing, when the
   * pair is new and the table holds `max` pairs already.
   */
  put(receiver: u32, b: usize, arrivedUs: i64, frame: SequenceFrame): bool {
    const media = ReportBlock.ssrc(b);
    let slot = this.slotOf(receiver, media);
    let i = unchecked(this.index[slot]);
    if (i == EMPTY) {
      if (this.count == this.capacity) {
        if (this.capacity == this.max) return false;
        this.grow();
        slot = this.slotOf(receiver, media);
      }
      i = this.count++;
      unchecked((this.index[slot] = i));
      unchecked((this.receivers[i] = receiver));
      unchecked((this.biases[i] = frame.biasFor(ReportBlock.extendedHighestSequence(b))));
    }
    memory.copy(this.blockAt(i), b, <usize>REPORT_BLOCK_SIZE);
    unchecked((this.arrivedUs[i] = arrivedUs));
    frame.saw(this.extendedAt(i));
    return true;
  }

  /** Forgets every block of `receiver` (it said BYE); returns how many. */
  removeReceiver(receiver: u32): i32 {
    return this.removeWhere(true, receiver, 0);
  }

  /** Forgets the blocks that arrived before `oldestUs` (their receivers went silent); returns how many. */
  expire(oldestUs: i64): i32 {
    return this.removeWhere(false, 0, oldestUs);
  }

  /** Removes the entries of `receiver` (byReceiver) or else those that arrived before `oldestUs`, then re-indexes. */
  private removeWhere(byReceiver: bool, receiver: u32, oldestUs: i64): i32 {
    let kept = 0;
    for (let i = 0, n = this.count; i < n; i++) {
      const gone = byReceiver ? unchecked(this.receivers[i]) == receiver : unchecked(this.arrivedUs[i]) < oldestUs;
      if (gone) continue;
      if (kept != i) {
        unchecked((this.receivers[kept] = unchecked(this.receivers[i])));
        unchecked((this.arrivedUs[kept] = unchecked(this.arrivedUs[i])));
        unchecked((this.biases[kept] = unchecked(this.biases[i])));
        memory.copy(this.blockAt(kept), this.blockAt(i), <usize>REPORT_BLOCK_SIZE);
      }
      kept++;
    }
    const removed = this.count - kept;
    this.count = kept;
    if (removed > 0) this.reindex();
    return removed;
  }

  /** The index slot holding the pair, or the empty slot where it would go. */
  private slotOf(receiver: u32, media: u32): i32 {
    const mask = this.index.length - 1;
    let slot = <i32>((receiver * 0x9e3779b1) ^ (media * 0x85ebca6b)) & mask;
    while (true) {
      const i = unchecked(this.index[slot]);
      if (i == EMPTY) return slot;
      if (unchecked(this.receivers[i]) == receiver && ReportBlock.ssrc(this.blockAt(i)) == media) return slot;
      slot = (slot + 1) & mask;
    }
  }

  private grow(): void {
    const capacity = min(this.capacity * 2, this.max);
    const receivers = new StaticArray<u32>(capacity);
    const blocks = new StaticArray<u8>(capacity * REPORT_BLOCK_SIZE);
    const arrived = new StaticArray<i64>(capacity);
    const biases = new StaticArray<u32>(capacity);
    memory.copy(changetype<usize>(receivers), changetype<usize>(this.receivers), <usize>this.count << 2);
    memory.copy(changetype<usize>(blocks), changetype<usize>(this.blocks), <usize>(this.count * REPORT_BLOCK_SIZE));
    memory.copy(changetype<usize>(arrived), changetype<usize>(this.arrivedUs), <usize>this.count << 3);
    memory.copy(changetype<usize>(biases), changetype<usize>(this.biases), <usize>this.count << 2);
    this.receivers = receivers;
    this.blocks = blocks;
    this.arrivedUs = arrived;
    this.biases = biases;
    this.capacity = capacity;
    if (indexSize(capacity) != this.index.length) this.index = new StaticArray<i32>(indexSize(capacity));
    this.reindex();
  }

  private reindex(): void {
    this.index.fill(EMPTY);
    for (let i = 0, n = this.count; i < n; i++) {
      const slot = this.slotOf(unchecked(this.receivers[i]), ReportBlock.ssrc(this.blockAt(i)));
      unchecked((this.index[slot] = i));
    }
  }
}

/** A power of two at least twice `capacity`: probes stay short. */
function indexSize(capacity: i32): i32 {
  let size = 16;
  while (size < capacity * 2) size <<= 1;
  return size;
}
