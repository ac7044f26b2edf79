// What the filter holds per segment: an encoder or a decoder, behind one interface, so that the
// entry file dispatches without knowing which.
import { Packet, Status, StateReader, StateWriter } from "../../../sdk/assembly";
import { Counts } from "./metrics";

/** onPacket's answer: pass in place, or take the packet (held, copied); else a drop reason. */
export const PASS: u32 = 0;
export const TAKE: u32 = 0x10000; // above every drop reason (u16 range)

/** Counts the calls into the filter, so that a context can tell whether it emitted in this one. */
let callEpoch: u32 = 1;

export function startCall(): void {
  callEpoch++;
  if (callEpoch == 0) callEpoch = 1; // 0 is a new context's "never"
}

@inline export function currentCall(): u32 {
  return callEpoch;
}

export class FecContext {
  readonly counts: Counts = new Counts();
  /** The call in which the context's counts were last queued for flushing. */
  touchedCall: u32 = 0;

  constructor(readonly id: u32) {}

  /** The verdict for one packet of this context: PASS, TAKE or a drop reason. */
  onPacket(p: Packet, nowUs: i64): u32 {
    return PASS;
  }

  onTimer(timer: i32, nowUs: i64): void {}

  /** The segment goes: emit what is held (called again while it emits). */
  drain(nowUs: i64): void {}

  exportState(out: StateWriter): Status {
    return Status.Ok;
  }

  importState(blob: StateReader, nowUs: i64): Status {
    return blob.length == 0 ? Status.Ok : Status.BadState;
  }

  /** Frees the context's buffers (destroy). */
  free(): void {}
}
