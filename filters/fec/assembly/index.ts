// fec: SMPTE ST 2022-1 forward error correction, row/column XOR over an L x D matrix.
// `mode: encode` passes media untouched and sends column and row FEC on their legs;
// `mode: decode` rebuilds lost media from the FEC legs and sends it on in sequence order.
// README.md lists the config keys, legs, metrics, drop reasons and limits.
import { Config, Status, register, setError } from "../../../sdk/assembly";
import { ContextFilter } from "../../../sdk/assembly/context-filter";
import { CHUNK_SIZE, noRoomMessage, readBudgetKiB, setBudget } from "../../../sdk/assembly/chunks";
import { FecContext } from "./context";
import { decoderChunks } from "./decoder";
import { newDecoder } from "./decoder-state";
import { encoderChunks } from "./encoder";
import { newEncoder } from "./encoder-state";
import { defineMetrics } from "./metrics";
import { MODE_ENCODE, Settings } from "./settings";

export * from "../../../sdk/assembly/exports";

class FecFilter extends ContextFilter<FecContext> {
  private defaults: Settings = new Settings();

  configureRoot(cfg: Config): Status {
    defineMetrics();
    this.defaults.apply(cfg, true);
    const budgetKiB = readBudgetKiB(cfg);
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
      setError(noRoomMessage((s.mode == MODE_ENCODE ? "encoder" : "decoder") + " of " + s.columns.toString() + " x " + s.rows.toString(), need));
      return Status.NoSpace;
    }
    this.contexts.set(ctx, c);
    return Status.Ok;
  }
}

const parsed = new Settings();

register(new FecFilter());
