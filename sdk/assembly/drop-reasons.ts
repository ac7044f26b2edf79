// A filter's names for its own drop reasons (ABI 1.6, docs/abi.md "Naming your own reasons").
// nameDropReason collects the table; msm_drop_reasons (exports.ts) hands it to the host once,
// right after configureRoot. A 1.5 host never asks: its codes show as filter_<code>.
import { DropClass } from "../../runtime/abi";

let table: string = "";
/** The host has read the table (msm_drop_reasons): a name given now would never reach it. */
let handedOver = false;

/**
 * Names the filter's own drop reason `code` (256-319) in /metrics, /stats and msmctl, instead of
 * `filter_<code>`. `name`: snake case, `[a-z][a-z0-9_]{0,47}`, not a shared reason's label, one
 * code each. `cls`: DropClass.Drop for trouble (counted as a drop), DropClass.Discard for the
 * filter's normal work (a merge's duplicates), counted apart and never as a drop. Call it in
 * configureRoot (or at top level): a later call aborts, as the host has read the table by then.
 * The host checks the table when it loads the filter: the harness refuses a wrong one, naming the
 * line, so a filter's tests catch it; a proxy loads the filter with every own code filter_<code>
 * and logs that line.
 */
export function nameDropReason(code: u32, name: string, cls: DropClass = DropClass.Drop): void {
  // silently dropping a late name would leave the code filter_<code> with nothing to say why
  if (handedOver) abort("nameDropReason(" + code.toString() + ", '" + name + "') after configureRoot: the host reads the names once, right after it; name every code in configureRoot");
  table += code.toString() + " " + name + (cls == DropClass.Discard ? " discard\n" : " drop\n");
}

/** The table as the ABI spells it: `<code> <name> <drop|discard>` lines. */
export function dropReasonTable(): string {
  handedOver = true;
  return table;
}
