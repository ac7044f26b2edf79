// Packets leaving a chain live in a filter's memory, which the next batch overwrites, while
// node:dgram may still hold them until their send completes. So they are copied into this ring,
// one per worker. A slot is reused only once every send of its packet has completed: each send
// holds the slot and its completion releases it. When the slot to reuse is still being sent, the
// worker is sending faster than its sockets drain; the packet is dropped and counted
// (HostBackpressure), never corrupted.
export const RING_SLOT_SIZE = 2048;

export class EgressRing {
  readonly buffer: Buffer;
  /** Sends not yet completed, per slot. */
  private readonly inFlight: Uint16Array;
  private next = 0;
  /** Sends not yet completed, in all. */
  pending = 0;

  constructor(readonly slots = 8192) {
    this.buffer = Buffer.allocUnsafeSlow(slots * RING_SLOT_SIZE);
    this.inFlight = new Uint16Array(slots);
  }

  /**
   * Copies bytes (at most RING_SLOT_SIZE) into the next slot and returns its offset in `buffer`,
   * or -1 when that slot is still being sent.
   */
  put(source: Uint8Array, offset: number, length: number): number {
    const slot = this.next;
    if (this.inFlight[slot] !== 0) return -1;
    this.next = slot + 1 === this.slots ? 0 : slot + 1;
    const at = slot * RING_SLOT_SIZE;
    this.buffer.set(source.subarray(offset, offset + length), at);
    return at;
  }

  /** A send of the packet at `at` began; false (nothing held) when a slot has too many at once. */
  hold(at: number): boolean {
    const slot = at / RING_SLOT_SIZE;
    if (this.inFlight[slot] === 0xffff) return false;
    this.inFlight[slot]!++;
    this.pending++;
    return true;
  }

  release(at: number): void {
    this.inFlight[at / RING_SLOT_SIZE]!--;
    this.pending--;
  }
}

/** A socket's allowance of sends in flight before it counts as far behind. */
const MIN_PENDING = 16384;

/**
 * The allowance for a socket that sends each packet to `destinations`: no completion is reported
 * while a batch is being sent, so a batch of a fan-out puts batch x destinations in flight at
 * once; four batches of that (a keyframe's burst) must not count as a socket far behind.
 */
export function pendingAllowance(destinations: number, batchSize: number): number {
  return Math.max(MIN_PENDING, 4 * batchSize * destinations);
}

/**
 * The sends of one socket whose completion has not been reported yet, in order (a socket
 * completes its sends in the order they were made): which ring slot each holds (-1: none), so
 * that its completion callback, made once per socket, knows what to release.
 */
export class SendTracker {
  /** Grows from 32 entries (a segment has up to four sockets, a worker thousands of segments). */
  private queue = new Int32Array(32);
  private head = 0;
  private tail = 0;
  count = 0;
  /** Sends that failed (their callback got an error). */
  failed = 0;
  /** The callback every send of this socket passes: one closure, made once. */
  readonly onSent: (err: Error | null) => void;

  /** Sends that may be waiting for completion before more are refused (HostBackpressure). */
  maxPending = MIN_PENDING;

  constructor(private readonly ring: EgressRing, onFailure: () => void = () => {}) {
    this.onSent = (err) => {
      if (err) {
        this.failed++;
        onFailure();
      }
      if (this.count === 0) return; // a callback for a send made before tracking (cannot happen)
      const at = this.queue[this.head]!;
      this.head = this.head + 1 === this.queue.length ? 0 : this.head + 1;
      this.count--;
      if (at >= 0) this.ring.release(at);
    };
  }

  /** True when no more sends can be tracked: the socket is far behind its sends. */
  get full(): boolean {
    return this.count >= this.maxPending;
  }

  /** Records a send of ring slot `at` (-1 for a buffer outside the ring). Call only when not full. */
  push(at: number): void {
    if (this.count === this.queue.length) this.grow();
    this.queue[this.tail] = at;
    this.tail = this.tail + 1 === this.queue.length ? 0 : this.tail + 1;
    this.count++;
  }

  /** Takes back the last push: its send threw, so no callback will come. */
  unpush(): number {
    this.tail = this.tail === 0 ? this.queue.length - 1 : this.tail - 1;
    this.count--;
    return this.queue[this.tail]!;
  }

  private grow(): void {
    const next = new Int32Array(this.queue.length * 2);
    for (let i = 0; i < this.count; i++) next[i] = this.queue[(this.head + i) % this.queue.length]!;
    this.queue = next;
    this.head = 0;
    this.tail = this.count;
  }

  /** Releases what the socket still holds: it was closed, and its sends will not complete. */
  abandon(): void {
    while (this.count > 0) {
      const at = this.queue[this.head]!;
      this.head = this.head + 1 === this.queue.length ? 0 : this.head + 1;
      this.count--;
      if (at >= 0) this.ring.release(at);
    }
  }
}

