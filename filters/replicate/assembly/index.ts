// replicate: the live-live merge of SMPTE ST 2022-7 (one stream over two to four paths in, one
// clean stream out), dual-path send (a copy of the media on other legs), and an RFC 3550
// translator (one SSRC, sequence and timestamp continuity across input switches). Feedback from
// many receivers is the feedback part's (feedback.ts). README.md lists the config keys,
// legs, metrics, drop reasons and limits.
import { Config, Status, register } from "../../../sdk/assembly";
import { ContextFilter } from "../../../sdk/assembly/context-filter";
import { CHUNK_SIZE, readBudgetKiB, setBudget } from "../../../sdk/assembly/chunks";
import { ReplicateContext } from "./context";
import { Feedback } from "./feedback";
import { mergeChunks, newMerge } from "./merge";
import { defineMetrics, nameMergeDropReasons } from "./metrics";
import { nameFeedbackDropReasons } from "./rtcp-counts";
import { Settings } from "./settings";

export * from "../../../sdk/assembly/exports";

class ReplicateFilter extends ContextFilter<ReplicateContext, Settings> {
  private defaults: Settings = new Settings();

  configureRoot(cfg: Config): Status {
    defineMetrics();
    nameMergeDropReasons();
    nameFeedbackDropReasons();
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
    s.check(cfg, cfg.has("feedback"));
    return s;
  }

  protected newContext(id: u32, s: Settings, cfg: Config): ReplicateContext | null {
    // ---- feedback part: only for a context whose config has the `feedback` key ----
    let feedback: Feedback | null = null;
    if (cfg.has("feedback")) {
      feedback = Feedback.configure(cfg, id);
      if (feedback === null) return null; // it failed the config, naming the field
    }
    const c = new ReplicateContext(id, s);
    c.feedback = feedback;
    if (s.merge) {
      const m = newMerge(id, s, c.counts, c.sender);
      if (m === null) return this.noRoom("merge of maxHeld " + s.maxHeld.toString(), <i64>mergeChunks(s) * CHUNK_SIZE, ", or lower merge.maxHeld");
      c.merge = m;
    }
    return c;
  }
}

/** The config being read (the context copies what it keeps). */
const parsed = new Settings();

register(new ReplicateFilter());
