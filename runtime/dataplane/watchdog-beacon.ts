// Shared memory between a data-plane worker and the main thread's watchdog: which filter
// instance the worker is calling and since when. The worker writes two numbers per call;
// the watchdog reads them from another thread (or process) and never blocks the worker.
//
// Layout (96 bytes): i32 at 0 = slot id of the instance being called (0: none); i32 at 4 = the
// length of the name at 16; f64 at 8 = Date.now() when that call began; bytes 16-95 = the
// filter's name (UTF-8), written for the calls of a change (an instance's start, a probe), whose
// slot the main thread may not know yet: a packet's call writes only the slot id.

const NAME_AT = 16;
const NAME_BYTES = 80;
const encoder = new TextEncoder();

export const BEACON_BYTES = NAME_AT + NAME_BYTES;

/** The slot id while a filter instance starts (_initialize, msm_configure_root; slots count from 1): no instance list names it. */
export const STARTING_SLOT = -1;

/**
 * The beacon's value while a change tries a new stage's msm_context_create on a probe of slot
 * `id`'s instance: stuck there, the change is at fault, not the stages running on that slot.
 */
export function probeSlot(id: number): number {
  return -1 - id;
}

/** The slot a probe's beacon value names, or undefined for any other value. */
export function probedSlotOf(value: number): number | undefined {
  return value < STARTING_SLOT ? -1 - value : undefined;
}

export class WatchdogBeacon {
  private readonly slot: Int32Array;
  private readonly since: Float64Array;
  private readonly name: Uint8Array;

  constructor(memory: SharedArrayBuffer | Uint8Array) {
    const buffer = memory instanceof Uint8Array ? memory.buffer : memory;
    const offset = memory instanceof Uint8Array ? memory.byteOffset : 0;
    this.slot = new Int32Array(buffer, offset, 2);
    this.since = new Float64Array(buffer, offset + 8, 1);
    this.name = new Uint8Array(buffer, offset + NAME_AT, NAME_BYTES);
  }

  enter(slotId: number): void {
    this.slot[1] = 0; // no name: the main thread knows a packet call's slot
    this.since[0] = Date.now();
    Atomics.store(this.slot, 0, slotId);
  }

  /** enter() for a change's call: the filter's name goes too (cut to 80 bytes). */
  enterNamed(slotId: number, filter: string): void {
    const { written } = encoder.encodeInto(filter, this.name);
    this.since[0] = Date.now();
    this.slot[1] = written;
    Atomics.store(this.slot, 0, slotId);
  }

  /** For the watchdog: the name the last enterNamed gave ("" if none). */
  filterName(): string {
    const length = Math.min(Math.max(this.slot[1]!, 0), NAME_BYTES);
    return new TextDecoder().decode(this.name.slice(0, length));
  }

  leave(): void {
    Atomics.store(this.slot, 0, 0);
  }

  /** For the watchdog: the slot id stuck for longer than `limitMs`, or 0. */
  stuckSlot(limitMs: number, now = Date.now()): number {
    const id = Atomics.load(this.slot, 0);
    if (id === 0) return 0;
    return now - this.since[0]! > limitMs ? id : 0;
  }
}
