// The instance's bounded store of held packets: `capacity` fixed slots of MAX_PACKET bytes,
// allocated once at root config and linked into FIFO queues. Nothing here allocates after that,
// so holding costs no memory growth however many sources come and go.
//
// A queue is QUEUE_SIZE bytes of raw memory (head, tail, count), so that it can live inside a
// source record as well as in a context.
import { MAX_PACKET } from "../../../sdk/assembly";

/** Most slots a store may have (2 KiB each). */
export const MAX_STORE_PACKETS: i32 = 4096;
export const QUEUE_SIZE: i32 = 12;
/** No slot. */
export const NONE: i32 = -1;

const Q_HEAD = 0; //  i32  oldest slot, or NONE
const Q_TAIL = 4; //  i32  newest slot, or NONE
const Q_COUNT = 8; // i32

const META_SIZE = 16;
const M_NEXT = 0; //    i32  next slot in its queue (or in the free list), or NONE
const M_LENGTH = 4; //  i32
const M_ARRIVAL = 8; // i64  arrival time, now_us clock

@inline export function queueCount(q: usize): i32 {
  return load<i32>(q, Q_COUNT);
}

export function initQueue(q: usize): void {
  store<i32>(q, NONE, Q_HEAD);
  store<i32>(q, NONE, Q_TAIL);
  store<i32>(q, 0, Q_COUNT);
}

export class HoldStore {
  capacity: i32 = 0;
  private data: usize = 0;
  private meta: usize = 0;
  private free: i32 = NONE;

  /** Reserves room for `capacity` packets. Called once, from the root config. */
  allocate(capacity: i32): void {
    this.capacity = capacity;
    if (capacity == 0) return;
    this.data = heap.alloc(<usize>capacity * <usize>MAX_PACKET);
    this.meta = heap.alloc(<usize>capacity * META_SIZE);
    for (let i = 0; i < capacity; i++) store<i32>(this.slotMeta(i), i + 1 < capacity ? i + 1 : NONE, M_NEXT);
    this.free = 0;
  }

  /** Every slot is taken. */
  @inline get full(): bool {
    return this.free == NONE;
  }

  /** Copies the packet to the end of queue `q`; false when every slot is taken. */
  push(q: usize, ptr: usize, len: i32, arrivalUs: i64): bool {
    const i = this.free;
    if (i == NONE || len < 0 || len > MAX_PACKET) return false;
    const m = this.slotMeta(i);
    this.free = load<i32>(m, M_NEXT);
    memory.copy(this.packet(i), ptr, <usize>len);
    store<i32>(m, NONE, M_NEXT);
    store<i32>(m, len, M_LENGTH);
    store<i64>(m, arrivalUs, M_ARRIVAL);
    const tail = load<i32>(q, Q_TAIL);
    if (tail == NONE) store<i32>(q, i, Q_HEAD);
    else store<i32>(this.slotMeta(tail), i, M_NEXT);
    store<i32>(q, i, Q_TAIL);
    store<i32>(q, load<i32>(q, Q_COUNT) + 1, Q_COUNT);
    return true;
  }

  /** The oldest slot of `q`, or NONE. */
  @inline head(q: usize): i32 {
    return load<i32>(q, Q_HEAD);
  }

  /** The slot after `i` in its queue, or NONE. */
  @inline next(i: i32): i32 {
    return load<i32>(this.slotMeta(i), M_NEXT);
  }

  @inline packet(i: i32): usize {
    return this.data + <usize>i * <usize>MAX_PACKET;
  }

  @inline length(i: i32): i32 {
    return load<i32>(this.slotMeta(i), M_LENGTH);
  }

  @inline arrival(i: i32): i64 {
    return load<i64>(this.slotMeta(i), M_ARRIVAL);
  }

  /** Frees the oldest packet of `q` (which must not be empty). */
  pop(q: usize): void {
    const i = load<i32>(q, Q_HEAD);
    const m = this.slotMeta(i);
    const next = load<i32>(m, M_NEXT);
    store<i32>(q, next, Q_HEAD);
    if (next == NONE) store<i32>(q, NONE, Q_TAIL);
    store<i32>(q, load<i32>(q, Q_COUNT) - 1, Q_COUNT);
    store<i32>(m, this.free, M_NEXT);
    this.free = i;
  }

  /** Frees every packet of `q`; returns how many there were. */
  clear(q: usize): i32 {
    const n = queueCount(q);
    while (load<i32>(q, Q_HEAD) != NONE) this.pop(q);
    return n;
  }

  /** Moves every packet of `from` to the end of `to`, in order. */
  moveAll(to: usize, from: usize): void {
    const head = load<i32>(from, Q_HEAD);
    if (head == NONE) return;
    const tail = load<i32>(to, Q_TAIL);
    if (tail == NONE) store<i32>(to, head, Q_HEAD);
    else store<i32>(this.slotMeta(tail), head, M_NEXT);
    store<i32>(to, load<i32>(from, Q_TAIL), Q_TAIL);
    store<i32>(to, load<i32>(to, Q_COUNT) + load<i32>(from, Q_COUNT), Q_COUNT);
    initQueue(from);
  }

  @inline private slotMeta(i: i32): usize {
    return this.meta + <usize>i * META_SIZE;
  }
}

/** The instance's store (its size comes from the root config). */
export const heldPackets = new HoldStore();
