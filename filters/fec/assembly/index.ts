// fec: SMPTE ST 2022-1 forward error correction, row/column XOR over an L x D matrix.
// `mode: encode` passes media untouched and sends column and row FEC on their legs;
// `mode: decode` rebuilds lost media from the FEC legs and sends it on in sequence order.
// README.md lists the config keys, legs, metrics, drop reasons and limits.
import { Config, Status, register } from "../../../sdk/assembly";
import { ContextFilter } from "../../../sdk/assembly/context-filter";
import { CHUNK_SIZE, readBudgetKiB, setBudget } from "../../../sdk/assembly/chunks";
import { FecContext } from "./context";
import { decoderChunks } from "./decoder";
import { newDecoder } from "./decoder-state";
import { encoderChunks } from "./encoder";
import { newEncoder } from "./encoder-state";
import { defineMetrics } from "./metrics";
import { MODE_ENCODE, Settings } from "./settings";

export * from "../../../sdk/assembly/exports";

class FecFilter extends ContextFilter<FecContext, Settings> {
  private defaults: Settings = new Settings();

  configureRoot(cfg: Config): Status {
    defineMetrics();
    this.defaults.apply(cfg, true);
    const budgetKiB = readBudgetKiB(cfg);
    const status = cfg.finish();
    if (status == Status.Ok) setBudget(budgetKiB);
    return status;
  }

  protected readConfig(cfg: Config): Settings {
    const s = parsed;
    s.copyFrom(this.defaults);
    s.apply(cfg, false);
    s.check(cfg);
    return s;
  }

  protected newContext(id: u32, s: Settings, cfg: Config): FecContext | null {
    const encode = s.mode == MODE_ENCODE;
    const c: FecContext | null = encode ? newEncoder(id, s) : newDecoder(id, s);
    if (c !== null) return c;
    const what = (encode ? "encoder" : "decoder") + " of " + s.columns.toString() + " x " + s.rows.toString();
    return this.noRoom(what, <i64>(encode ? encoderChunks(s) : decoderChunks(s)) * CHUNK_SIZE);
  }
}

/** The config being read (the encoder and decoder copy what they keep). */
const parsed = new Settings();

register(new FecFilter());
