// Shared memory between a data-plane worker and the main thread's watchdog: which filter
// instance the worker is calling and since when. The worker writes two numbers per call;
// the watchdog reads them from another thread (or process) and never blocks the worker.
//
// Layout (16 bytes): i32 at 0 = slot id of the instance being called (0: none);
// f64 at 8 = Date.now() when that call began.

export const BEACON_BYTES = 16;

/** The slot id while a filter instance starts (_initialize, msm_configure_root; slots count from 1): no instance list names it. */
export const STARTING_SLOT = -1;

export class WatchdogBeacon {
  private readonly slot: Int32Array;
  private readonly since: Float64Array;

  constructor(memory: SharedArrayBuffer | Uint8Array) {
    const buffer = memory instanceof Uint8Array ? memory.buffer : memory;
    const offset = memory instanceof Uint8Array ? memory.byteOffset : 0;
    this.slot = new Int32Array(buffer, offset, 1);
    this.since = new Float64Array(buffer, offset + 8, 1);
  }

  enter(slotId: number): void {
    this.since[0] = Date.now();
    Atomics.store(this.slot, 0, slotId);
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
