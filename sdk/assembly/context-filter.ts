// A filter that keeps one object per segment (context) and hands every call to it: the shape of a
// filter with real per-stream state (fec, replicate, congestion). The contexts are made by the
// ContextFactory this class extends (readConfig and newContext are the filter's part). The object
// answers each packet with PASS, TAKE (the filter keeps a copy and holds the packet) or a drop
// reason; the filter gathers the contexts a call touched and lets each send its counts to the
// host once, at the call's end, so that a batch of 64 packets makes a handful of metric calls,
// not hundreds.
import { Status } from "../../runtime/abi";
import { Config } from "./config";
import { ContextFactory, PASS, SegmentContext, TAKE } from "./context-factory";
import { nowUs } from "./host";
import { Packet } from "./packet";
import { StateReader } from "./state";

export { PASS, SegmentContext, TAKE } from "./context-factory";

/** Counts the calls into the filter, so that a context can tell whether it did something in this one. */
let callEpoch: u32 = 1;

/** The number of the call in progress (never 0: a new context's "never"). */
@inline export function currentCall(): u32 {
  return callEpoch;
}

function startCall(): void {
  callEpoch++;
  if (callEpoch == 0) callEpoch = 1;
}

/**
 * A ContextFactory that also hands every packet, timer and drain to the context's object. A
 * filter implements configureRoot, readConfig and newContext; the rest is done here.
 */
export abstract class ContextFilter<C extends SegmentContext, S> extends ContextFactory<C, S> {
  /** Contexts the call touched (a batch holds at most 1024 packets). */
  private touched: StaticArray<C | null> = new StaticArray<C | null>(1024);
  private touchedCount: i32 = 0;

  drainContext(ctx: u32): void {
    const c = this.contexts.get(ctx);
    if (c === null) return;
    this.begin();
    c.drain(nowUs());
    this.touch(c);
    this.end();
  }

  onBatch(count: i32): void {
    this.begin();
    const now = nowUs();
    for (let i = 0; i < count; i++) {
      const p = Packet.at(i);
      const c = this.contexts.get(p.context);
      if (c === null) continue; // not ours (the host never does this): leave it be
      const verdict = c.onPacket(p, now);
      if (verdict == TAKE) p.hold();
      else if (verdict != PASS) p.drop(verdict);
      this.touch(c);
    }
    this.end();
  }

  onTimer(ctx: u32, timer: i32): void {
    const c = this.contexts.get(ctx);
    if (c === null) return;
    this.begin();
    c.onTimer(timer, nowUs());
    this.touch(c);
    this.end();
  }

  importState(ctx: u32, blob: StateReader): Status {
    const c = this.contexts.get(ctx);
    if (c === null) return Status.BadArgument;
    this.begin();
    const status = c.importState(blob, nowUs());
    this.touch(c);
    this.end();
    return status;
  }

  /** Starts a call that may touch contexts outside the dispatch above (newContext, say). */
  protected begin(): void {
    startCall();
    this.touchedCount = 0;
  }

  /** Queues `c`'s counts for the end of the call. */
  protected touch(c: C): void {
    if (c.touchedCall == currentCall()) return;
    c.touchedCall = currentCall();
    if (this.touchedCount < this.touched.length) unchecked((this.touched[this.touchedCount++] = c));
    else c.flush(); // cannot happen with the SDK's batch of 64: flush at once
  }

  /** Ends the call: every touched context sends its counts. */
  protected end(): void {
    for (let k = 0; k < this.touchedCount; k++) {
      unchecked(this.touched[k])!.flush();
      unchecked((this.touched[k] = null));
    }
    this.touchedCount = 0;
  }
}
