// replicate: the live-live merge of SMPTE ST 2022-7 (one stream over two to four paths in, one
// clean stream out), dual-path send (a copy of the media on other legs), and an RFC 3550
// translator (one SSRC, sequence and timestamp continuity across input switches). Feedback from
// many receivers is the feedback part's (feedback.ts). README.md lists the config keys,
// legs, metrics, drop reasons and limits.
import {
  Config, ContextMap, Filter, Packet, Status, StateReader, StateWriter, nowUs, register, setError, wallUs,
} from "../../../sdk/assembly";
import {
  CHUNK_SIZE, DEFAULT_BUDGET_KIB, NO_MEMORY, budgetBytes, budgetUsedBytes, setBudget, takeFailure,
} from "../../../sdk/assembly/chunks";
import { ReplicateContext } from "./context";
import { Feedback } from "./feedback";
import { PASS, TAKE, mergeChunks, newMerge } from "./merge";
import { defineMetrics } from "./metrics";
import { Settings } from "./settings";
import { currentCall, startCall } from "./sender";
import { readState, writeState } from "./state";

export * from "../../../sdk/assembly/exports";

/** Contexts a call touched, whose counts go to the host at its end (a batch holds at most 1024). */
const touched = new StaticArray<ReplicateContext | null>(1024);
let touchedCount = 0;

function touch(c: ReplicateContext): void {
  if (c.touchedCall == currentCall()) return;
  c.touchedCall = currentCall();
  if (touchedCount < touched.length) unchecked((touched[touchedCount++] = c));
  else c.flush();
}

function beginCall(): void {
  startCall();
  touchedCount = 0;
}

function endCall(): void {
  for (let k = 0; k < touchedCount; k++) {
    unchecked(touched[k])!.flush();
    unchecked((touched[k] = null));
  }
  touchedCount = 0;
}

class ReplicateFilter extends Filter {
  private defaults: Settings = new Settings();
  private contexts: ContextMap<ReplicateContext> = new ContextMap<ReplicateContext>(64);

  configureRoot(cfg: Config): Status {
    defineMetrics();
    this.defaults.apply(cfg, true);
    const budgetKiB = cfg.getInt("bufferBudgetKiB", DEFAULT_BUDGET_KIB, 256, 4 * 1024 * 1024);
    const status = cfg.finish();
    if (status == Status.Ok) setBudget(budgetKiB);
    return status;
  }

  createContext(ctx: u32, cfg: Config): Status {
    const s = parsed;
    s.copyFrom(this.defaults);
    s.apply(cfg, false);
    const wantsFeedback = cfg.has("feedback");
    s.check(cfg, wantsFeedback);
    const status = cfg.finish();
    if (status != Status.Ok) return status;
    // ---- feedback part: only for a context whose config has the `feedback` key ----
    const feedback = wantsFeedback ? Feedback.configure(cfg, ctx) : null;
    if (wantsFeedback && feedback === null) return Status.BadConfig; // it set the error, naming the field
    if (this.contexts.get(ctx) !== null) {
      setError("context " + ctx.toString() + " already exists");
      return Status.BadArgument;
    }
    const c = new ReplicateContext(ctx, s);
    c.feedback = feedback;
    if (s.merge) {
      const m = newMerge(ctx, s, c.counts, c.sender);
      if (m === null) {
        const what = "no room for another merge of maxHeld " + s.maxHeld.toString() + ": it needs " +
          kib(<i64>mergeChunks(s) * CHUNK_SIZE) + " KiB, and ";
        setError(takeFailure() == NO_MEMORY
          ? what + "the instance's memory is at its cap (raise the filter's maxMemoryPages, or lower bufferBudgetKiB)"
          : what + kib(budgetUsedBytes()) + " of the instance's " + kib(budgetBytes()) +
            " KiB are taken (raise the root config's bufferBudgetKiB, and the filter's maxMemoryPages with it, or lower merge.maxHeld)");
        return Status.NoSpace;
      }
      c.merge = m;
    }
    this.contexts.set(ctx, c);
    return Status.Ok;
  }

  destroyContext(ctx: u32): void {
    const c = this.contexts.delete(ctx);
    if (c !== null) c.free();
  }

  drainContext(ctx: u32): void {
    const c = this.contexts.get(ctx);
    if (c === null) return;
    beginCall();
    c.drain(nowUs());
    touch(c);
    endCall();
  }

  onBatch(count: i32): void {
    beginCall();
    const now = nowUs();
    for (let i = 0; i < count; i++) {
      const p = Packet.at(i);
      const c = this.contexts.get(p.context);
      if (c === null) continue; // not ours (the host never does this): leave it be
      const verdict = c.onPacket(p, now);
      if (verdict == TAKE) p.hold();
      else if (verdict != PASS) p.drop(verdict);
      touch(c);
    }
    endCall();
  }

  onTimer(ctx: u32, timer: i32): void {
    const c = this.contexts.get(ctx);
    if (c === null) return;
    beginCall();
    c.onTimer(timer, nowUs());
    touch(c);
    endCall();
  }

  exportState(ctx: u32, out: StateWriter): Status {
    const c = this.contexts.get(ctx);
    return c === null ? Status.BadArgument : writeState(out, c.translator, c.merge, nowUs(), wallUs());
  }

  importState(ctx: u32, blob: StateReader): Status {
    const c = this.contexts.get(ctx);
    if (c === null) return Status.BadArgument;
    beginCall();
    const status = readState(blob, c.translator, c.merge, c.counts, nowUs(), wallUs());
    touch(c);
    endCall();
    return status;
  }
}

function kib(bytes: i64): string {
  return ((bytes + 1023) / 1024).toString();
}

const parsed = new Settings();

register(new ReplicateFilter());
