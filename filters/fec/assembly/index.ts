// fec: SMPTE ST 2022-1 forward error correction, row/column XOR over an L x D matrix.
// `mode: encode` passes media untouched and sends column and row FEC on their legs;
// `mode: decode` rebuilds lost media from the FEC legs and sends it on in sequence order.
// README.md lists the config keys, legs, metrics, drop reasons and limits.
import {
  Config, ContextMap, Filter, Packet, Status, StateReader, StateWriter, nowUs, register, setError,
} from "../../../sdk/assembly";
import { CHUNK_SIZE, DEFAULT_BUDGET_KIB, NO_MEMORY, budgetBytes, budgetUsedBytes, setBudget, takeFailure } from "../../../sdk/assembly/chunks";
import { FecContext, PASS, TAKE, currentCall, startCall } from "./context";
import { decoderChunks, newDecoder } from "./decoder";
import { encoderChunks, newEncoder } from "./encoder";
import { defineMetrics } from "./metrics";
import { MODE_ENCODE, Settings } from "./settings";

export * from "../../../sdk/assembly/exports";

/** Contexts a call touched, whose counts go to the host at its end (a batch holds at most 1024). */
const touched = new StaticArray<FecContext | null>(1024);
let touchedCount = 0;

function touch(c: FecContext): void {
  if (c.touchedCall == currentCall()) return;
  c.touchedCall = currentCall();
  if (touchedCount < touched.length) unchecked((touched[touchedCount++] = c));
  else c.counts.flush(c.id); // cannot happen with the SDK's batch of 64: flush at once
}

function beginCall(): void {
  startCall();
  touchedCount = 0;
}

function endCall(): void {
  for (let k = 0; k < touchedCount; k++) {
    const c = unchecked(touched[k])!;
    c.counts.flush(c.id);
    unchecked((touched[k] = null));
  }
  touchedCount = 0;
}

class FecFilter extends Filter {
  private defaults: Settings = new Settings();
  private contexts: ContextMap<FecContext> = new ContextMap<FecContext>(64);

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
    s.check(cfg);
    const status = cfg.finish();
    if (status != Status.Ok) return status;
    if (this.contexts.get(ctx) !== null) {
      setError("context " + ctx.toString() + " already exists");
      return Status.BadArgument;
    }
    const c: FecContext | null = s.mode == MODE_ENCODE ? newEncoder(ctx, s) : newDecoder(ctx, s);
    if (c === null) {
      const need = <i64>(s.mode == MODE_ENCODE ? encoderChunks(s) : decoderChunks(s)) * CHUNK_SIZE;
      const what = "no room for another " + (s.mode == MODE_ENCODE ? "encoder" : "decoder") + " of " +
        s.columns.toString() + " x " + s.rows.toString() + ": it needs " + kib(need) + " KiB, and ";
      setError(takeFailure() == NO_MEMORY
        ? what + "the instance's memory is at its cap (raise the filter's maxMemoryPages, or lower bufferBudgetKiB)"
        : what + kib(budgetUsedBytes()) + " of the instance's " + kib(budgetBytes()) +
          " KiB are taken (raise the root config's bufferBudgetKiB, and the filter's maxMemoryPages with it)");
      return Status.NoSpace;
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
    return c === null ? Status.BadArgument : c.exportState(out);
  }

  importState(ctx: u32, blob: StateReader): Status {
    const c = this.contexts.get(ctx);
    if (c === null) return Status.BadArgument;
    beginCall();
    const status = c.importState(blob, nowUs());
    touch(c);
    endCall();
    return status;
  }
}

function kib(bytes: i64): string {
  return ((bytes + 1023) / 1024).toString();
}

const parsed = new Settings();

register(new FecFilter());
