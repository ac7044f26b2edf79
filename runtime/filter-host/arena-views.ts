// A filter instance's linear memory as the host reads and writes it: the byte and DataView views
// (renewed when memory grows), the arena's descriptors (docs/abi.md "Descriptor") and its scratch
// area. Shared by the chain runner and the SDK harness through FilterInstance, which extends it.
import {
  D_ARRIVAL, D_CONTEXT, D_DEST, D_FLAGS, D_LEG, D_LENGTH, D_OFFSET, D_PORT, D_REASON, D_RESERVED, D_VERDICT,
  DESC_SIZE, Verdict,
} from "../abi.js";
import type { ArenaLayout } from "./arena-check.js";

const TWO_32 = 4294967296;

export class ArenaViews {
  readonly memory: WebAssembly.Memory;
  arena!: ArenaLayout;
  /** Byte view of memory; refreshed when memory grows. Valid until the next call into the module. */
  bytes: Uint8Array;
  view: DataView;

  constructor(memoryMinimumPages: number, memoryMaximumPages: number, private readonly abiMinor: number) {
    this.memory = new WebAssembly.Memory({ initial: memoryMinimumPages, maximum: memoryMaximumPages });
    this.bytes = new Uint8Array(this.memory.buffer);
    this.view = new DataView(this.memory.buffer);
  }

  /** Largest packet a slot holds after the headroom. */
  get packetRoom(): number {
    return this.arena.slotSize - this.arena.headroom;
  }

  /** Copies a packet (at most packetRoom bytes: the caller checks) into batch slot k and fills its descriptor. */
  putBatchPacket(k: number, src: Uint8Array, srcOffset: number, length: number, ctx: number, flags: number, port: number, leg: number, arrivalUs: number): void {
    const a = this.arena;
    const at = a.slotBase + k * a.slotSize + a.headroom;
    if (srcOffset === 0 && src.length === length) this.bytes.set(src, at);
    else this.bytes.set(src.subarray(srcOffset, srcOffset + length), at);
    const v = this.view;
    const d = a.descTable + k * DESC_SIZE;
    v.setUint32(d + D_OFFSET, at, true);
    v.setUint32(d + D_LENGTH, length, true);
    v.setUint32(d + D_CONTEXT, ctx, true);
    v.setUint16(d + D_FLAGS, flags, true);
    v.setUint8(d + D_VERDICT, Verdict.Pass);
    v.setUint8(d + D_DEST, 0);
    v.setUint32(d + D_REASON, 0, true);
    v.setUint16(d + D_PORT, port, true);
    v.setUint8(d + D_LEG, leg);
    v.setUint8(d + D_RESERVED, 0);
    v.setUint32(d + D_ARRIVAL, arrivalUs % TWO_32, true);
    v.setUint32(d + D_ARRIVAL + 4, Math.floor(arrivalUs / TWO_32), true);
  }

  batchVerdict(k: number): number {
    return this.view.getUint8(this.arena.descTable + k * DESC_SIZE + D_VERDICT);
  }

  batchReason(k: number): number {
    return this.view.getUint32(this.arena.descTable + k * DESC_SIZE + D_REASON, true);
  }

  /** Where batch packet k now starts, or -1 if the filter moved it out of its slot. Read batchLength after. */
  /** The context batch packet k's descriptor names (the host wrote it; a filter may have overwritten it). */
  batchContext(k: number): number {
    return this.view.getUint32(this.arena.descTable + k * DESC_SIZE + D_CONTEXT, true);
  }

  batchOffset(k: number): number {
    const a = this.arena;
    const d = a.descTable + k * DESC_SIZE;
    const slotStart = a.slotBase + k * a.slotSize;
    const offset = this.view.getUint32(d + D_OFFSET, true);
    const length = this.view.getUint32(d + D_LENGTH, true);
    return offset < slotStart || offset + length > slotStart + a.slotSize ? -1 : offset;
  }

  /** The leg batch packet k leaves on (the filter may have changed it; the caller checks the bound). */
  batchLeg(k: number): number {
    return this.view.getUint8(this.arena.descTable + k * DESC_SIZE + D_LEG);
  }

  batchLength(k: number): number {
    return this.view.getUint32(this.arena.descTable + k * DESC_SIZE + D_LENGTH, true);
  }

  /** Where output packet j starts, or -1 if its descriptor points outside output slot j. */
  outputOffset(j: number): number {
    const a = this.arena;
    const d = a.outTable + j * DESC_SIZE;
    const slotStart = a.outSlotBase + j * a.slotSize;
    const offset = this.view.getUint32(d + D_OFFSET, true);
    const length = this.view.getUint32(d + D_LENGTH, true);
    return offset < slotStart || offset + length > slotStart + a.slotSize ? -1 : offset;
  }

  outputLength(j: number): number {
    return this.view.getUint32(this.arena.outTable + j * DESC_SIZE + D_LENGTH, true);
  }

  outputContext(j: number): number {
    return this.view.getUint32(this.arena.outTable + j * DESC_SIZE + D_CONTEXT, true);
  }

  outputFlags(j: number): number {
    return this.view.getUint16(this.arena.outTable + j * DESC_SIZE + D_FLAGS, true);
  }

  outputDest(j: number): number {
    return this.view.getUint8(this.arena.outTable + j * DESC_SIZE + D_DEST);
  }

  /**
   * Whether output j's bytes 20-21 are 0. ABI 1.1 put a port offset there (FEC: 2, 4); 1.2 sends
   * by leg instead, so a 1.1 module's offset would quietly land on the media port: refused.
   */
  outputPortFieldClear(j: number): boolean {
    return this.abiMinor >= 2 || this.view.getUint16(this.arena.outTable + j * DESC_SIZE + D_PORT, true) === 0;
  }

  outputLeg(j: number): number {
    return this.view.getUint8(this.arena.outTable + j * DESC_SIZE + D_LEG);
  }

  /** Linear memory in bytes, now. */
  get memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  protected refreshViews(): void {
    // memory.grow detaches the old buffer, and a detached view reads as empty: cheaper than
    // comparing against memory.buffer, whose getter costs more than the whole check
    if (this.bytes.byteLength === 0) {
      this.bytes = new Uint8Array(this.memory.buffer);
      this.view = new DataView(this.memory.buffer);
    }
  }
}
