// Shared memory between a data-plane worker and the main thread's watchdog: which filter
// instance the worker is calling and since when. The worker writes two numbers per call;
// the watchdog reads them from another thread (or process) and never blocks the worker.
//
// Layout (100 bytes): i32 at 0 = slot id of the instance being called (0: none); i32 at 4 = the
// length of the name at 16; f64 at 8 = Date.now() when that call began; bytes 16-95 = the
// filter's name (UTF-8), written for the calls of a change (an instance's start, a probe), whose
// slot the main thread may not know yet: a packet's call writes only the slot id; i32 at 96 =
// which of the module's exports is called (BeaconCall), so that the watchdog names it as the
// harness's does.

const NAME_AT = 16;
const NAME_BYTES = 80;
const CALL_AT = NAME_AT + NAME_BYTES;
const encoder = new TextEncoder();

export const BEACON_BYTES = CALL_AT + 4;

/** The filter call a worker is in: the watchdog's message names it. */
export const BeaconCall = {
  Unknown: 0,
  Batch: 1,
  Timer: 2,
  Drain: 3,
  ContextCreate: 4,
  ContextDestroy: 5,
  StateExport: 6,
  StateImport: 7,
  Start: 8,
} as const;
export type BeaconCall = (typeof BeaconCall)[keyof typeof BeaconCall];

/** The export(s) each BeaconCall stands for, as the module names them ("" for Unknown). */
const CALL_NAMES: readonly string[] = [
  "", "msm_on_batch", "msm_on_timer", "msm_context_drain", "msm_context_create", "msm_context_destroy", "msm_state_export", "msm_state_import", "_initialize or msm_configure_root",
];

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
  private readonly call: Int32Array;

  constructor(memory: SharedArrayBuffer | Uint8Array) {
    const buffer = memory instanceof Uint8Array ? memory.buffer : memory;
    const offset = memory instanceof Uint8Array ? memory.byteOffset : 0;
    this.slot = new Int32Array(buffer, offset, 2);
    this.since = new Float64Array(buffer, offset + 8, 1);
    this.name = new Uint8Array(buffer, offset + NAME_AT, NAME_BYTES);
    this.call = new Int32Array(buffer, offset + CALL_AT, 1);
  }

  enter(slotId: number, call: BeaconCall = BeaconCall.Unknown): void {
    this.slot[1] = 0; // no name: the main thread knows a packet call's slot
    this.call[0] = call;
    this.since[0] = Date.now();
    Atomics.store(this.slot, 0, slotId);
  }

  /** enter() for a change's call: the filter's name goes too (cut to 80 bytes). */
  enterNamed(slotId: number, filter: string, call: BeaconCall = BeaconCall.Unknown): void {
    const { written } = encoder.encodeInto(filter, this.name);
    this.call[0] = call;
    this.since[0] = Date.now();
    this.slot[1] = written;
    Atomics.store(this.slot, 0, slotId);
  }

  /** For the watchdog: the name the last enterNamed gave ("" if none). */
  filterName(): string {
    const length = Math.min(Math.max(this.slot[1]!, 0), NAME_BYTES);
    return new TextDecoder().decode(this.name.slice(0, length));
  }

  /** For the watchdog: the export the worker is in ("msm_on_batch"), "" when not said. */
  callName(): string {
    return CALL_NAMES[this.call[0]!] ?? "";
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
