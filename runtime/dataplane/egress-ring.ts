// Packets leaving a chain live in a filter's memory, which the next batch overwrites, while
// node:dgram may still hold them in its send queue. So they are copied into this ring, which is
// large enough that a slot is reused long after its send completed; a socket whose send queue
// grows past half the ring is reported congested and its packets are dropped and counted
// (HostBackpressure) instead of corrupted.
import type { Socket } from "node:dgram";

export const RING_SLOT_SIZE = 2048;

export class EgressRing {
  readonly buffer: Buffer;
  private next = 0;

  constructor(readonly slots = 8192) {
    this.buffer = Buffer.allocUnsafeSlow(slots * RING_SLOT_SIZE);
  }

  /** Copies bytes (at most RING_SLOT_SIZE) into the next slot and returns its offset in `buffer`. */
  put(source: Uint8Array, offset: number, length: number): number {
    const at = this.next * RING_SLOT_SIZE;
    this.next = (this.next + 1) % this.slots;
    this.buffer.set(source.subarray(offset, offset + length), at);
    return at;
  }

  congested(socket: Socket): boolean {
    // getSendQueueCount is Node >= 18.8; a runtime without it sends synchronously enough
    return typeof socket.getSendQueueCount === "function" && socket.getSendQueueCount() > this.slots / 2;
  }
}
