// The harness's watchdog: a call into the filter that does not return within the limit ends the
// test process with a message that says which filter, which call and which context, instead of
// a test that hangs until its runner gives up. The proxy does the same for its data plane: a
// thread of its own watches which filter a worker is in since when, and restarts a worker stuck
// there (config `watchdog.stuckMs`). The harness runs the filter on the test's own thread, which
// nothing can interrupt cheaply (a vm timeout costs a thread per call), so the watchdog thread
// ends the process: the one way out of an endless loop in WebAssembly.
//
// Per call the harness writes a few numbers into shared memory (the beacon); the watchdog thread
// (watchdog-thread.ts) reads them a few dozen times a second.
import { Worker } from "node:worker_threads";

/** The default limit of one call into the filter: generous, since test machines are shared and noisy. */
export const DEFAULT_CALL_TIMEOUT_MS = 5000;

/** What the harness is calling; the watchdog thread names it in its message. */
export const CallKind = {
  CreateContext: 1,
  DestroyContext: 2,
  OnPacket: 3,
  OnTimer: 4,
  DrainContext: 5,
  ExportState: 6,
  ImportState: 7,
  Load: 8,
} as const;
export type CallKind = (typeof CallKind)[keyof typeof CallKind];

/** Int32 fields of the beacon (watchdog-thread.ts reads the same layout). */
export const B_SEQ = 0; // changes at every call's start and end
export const B_ACTIVE = 1; // 1 while a call is in the filter
export const B_HARNESS = 2; // which harness (its filter's name was posted to the thread)
export const B_KIND = 3;
export const B_CTX = 4;
export const B_ARG = 5; // the timer, or the batch's packet count
export const B_LIMIT = 6; // ms
export const B_FIELDS = 7;

let beacon: Int32Array | undefined;
let thread: Worker | undefined;
let harnesses = 0;

/** The process's watchdog thread, started with the first harness that has a limit. */
function watchdogThread(): { beacon: Int32Array; thread: Worker } {
  if (!beacon || !thread) {
    beacon = new Int32Array(new SharedArrayBuffer(B_FIELDS * 4));
    // execArgv: none of the test's node flags: a thread refuses some (`node --input-type=module -e`
    // would kill the test with ERR_INPUT_TYPE_NOT_ALLOWED), and plain JS needs none
    thread = new Worker(new URL("./watchdog-thread.js", import.meta.url), { workerData: beacon, execArgv: [] });
    thread.unref(); // it never keeps a finished test process alive
  }
  return { beacon, thread };
}

export class CallWatchdog {
  private readonly beacon: Int32Array | undefined;
  private readonly id: number;

  /** `timeoutMs` 0 turns it off. */
  constructor(filter: string, readonly timeoutMs: number) {
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0) throw new RangeError(`timeoutMs must be a whole number of milliseconds >= 0 (0: no limit), got ${timeoutMs}`);
    this.id = ++harnesses;
    if (timeoutMs === 0) return;
    const w = watchdogThread();
    w.thread.postMessage({ id: this.id, filter });
    this.beacon = w.beacon;
  }

  /** A call into the filter starts: `ctx` and `arg` (timer, packet count) name it in the message. */
  enter(kind: CallKind, ctx: number, arg = 0): void {
    const b = this.beacon;
    if (!b) return;
    b[B_HARNESS] = this.id;
    b[B_KIND] = kind;
    b[B_CTX] = ctx;
    b[B_ARG] = arg;
    b[B_LIMIT] = this.timeoutMs;
    Atomics.add(b, B_SEQ, 1);
    Atomics.store(b, B_ACTIVE, 1);
  }

  leave(): void {
    const b = this.beacon;
    if (!b) return;
    Atomics.store(b, B_ACTIVE, 0);
    Atomics.add(b, B_SEQ, 1);
  }
}
