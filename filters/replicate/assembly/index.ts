// replicate: the live-live merge of SMPTE ST 2022-7 (one stream over two to four paths in, one
// clean stream out), dual-path send (a copy of the media on other legs), and an RFC 3550
// translator (one SSRC, sequence and timestamp continuity across input switches). Feedback from
// many receivers is the feedback part's (feedback.ts). README.md lists the config keys,
// legs, metrics, drop reasons and limits.
import { Config, Status, register, setError } from "../../../sdk/assembly";
import { ContextFilter } from "../../../sdk/assembly/context-filter";
import { CHUNK_SIZE, noRoomMessage, readBudgetKiB, setBudget } from "../../../sdk/assembly/chunks";
import { ReplicateContext } from "./context";
import { Feedback } from "./feedback";
import { mergeChunks, newMerge } from "./merge";
import { defineMetrics } from "./metrics";
import { Settings } from "./settings";

export * from "../../../sdk/assembly/exports";

class ReplicateFilter extends ContextFilter<ReplicateContext> {
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
        setError(noRoomMessage("merge of maxHeld " + s.maxHeld.toString(), <i64>mergeChunks(s) * CHUNK_SIZE, ", or lower merge.maxHeld"));
        return Status.NoSpace;
      }
      c.merge = m;
    }
    this.contexts.set(ctx, c);
    return Status.Ok;
  }
}

const parsed = new Settings();

register(new ReplicateFilter());
