// A filter's names for its own drop reasons (ABI 1.6, docs/abi.md "Naming your own reasons"):
// the table msm_drop_reasons writes, read and checked once per instance, and what the chain
// counts each own code under. Built when the instance is configured, so that counting a drop
// only indexes an array.
import { DropReason, MAX_DROP_REASON_NAME, MAX_FILTER_DROP_REASONS } from "../abi.js";

/** What a filter's own code (256-319) is counted under. */
export interface OwnReason {
  /** The label in /metrics and /stats: the filter's name for it, or `filter_<code>`. */
  readonly label: string;
  /** A discard (the filter's normal work) is counted apart from drops. */
  readonly discard: boolean;
}

/** The table of a filter that names nothing: every own code a drop labelled `filter_<code>`. */
export const UNNAMED_REASONS: readonly OwnReason[] = Array.from({ length: MAX_FILTER_DROP_REASONS }, (_, k) => ({
  label: `filter_${DropReason.FilterDefinedBase + k}`,
  discard: false,
}));

const NAME = new RegExp(`^[a-z][a-z0-9_]{0,${MAX_DROP_REASON_NAME - 1}}$`);
const LINE = /^(\d+) (\S+) (\S+)$/;

/** snake_case label of a shared DropReason (`bad_version`). */
export function sharedReasonLabel(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase();
}

/** Labels a filter's own name may not take: the shared reasons' (host's included) and the unnamed `filter_<code>` form. */
const SHARED_LABELS = new Set(
  Object.entries(DropReason).filter(([, v]) => typeof v === "number" && v < DropReason.FilterDefinedBase).map(([k]) => sharedReasonLabel(k)),
);

/** Why a name is refused, or "" when it may be used. */
function nameProblem(name: string): string {
  if (!NAME.test(name)) return `must match [a-z][a-z0-9_]{0,${MAX_DROP_REASON_NAME - 1}}`;
  if (SHARED_LABELS.has(name)) return "is a shared reason's label (docs/abi.md \"Numbers\")";
  if (/^filter_\d+$/.test(name) || name.startsWith("host_")) return "takes the form of the host's labels (filter_<code>, host_*)";
  if (name === "other") return "is reserved";
  return "";
}

/**
 * Reads the table msm_drop_reasons wrote: one line a reason, `<code> <name> <drop|discard>`,
 * separated by `\n` (a last `\n` is allowed). Returns the 64 own codes' labels and classes;
 * throws an Error whose message says which line is wrong and why (the caller refuses the module).
 */
export function parseDropReasons(text: string): OwnReason[] {
  const table = UNNAMED_REASONS.slice();
  const named = new Map<string, number>();
  const lines = text.endsWith("\n") ? text.slice(0, -1).split("\n") : text.split("\n");
  const last = DropReason.FilterDefinedBase + MAX_FILTER_DROP_REASONS - 1;
  lines.forEach((line, i) => {
    const at = `drop reason line ${i + 1} (${JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}...` : line)})`;
    const m = LINE.exec(line);
    if (!m) throw new Error(`${at}: not "<code> <name> <drop|discard>"`);
    const code = Number(m[1]);
    const name = m[2]!;
    const cls = m[3]!;
    if (code < DropReason.FilterDefinedBase || code > last) throw new Error(`${at}: code ${code} is not the filter's own (${DropReason.FilterDefinedBase} to ${last})`);
    const problem = nameProblem(name);
    if (problem) throw new Error(`${at}: name '${name}' ${problem}`);
    if (cls !== "drop" && cls !== "discard") throw new Error(`${at}: class '${cls}' is neither drop nor discard`);
    const k = code - DropReason.FilterDefinedBase;
    if (table[k] !== UNNAMED_REASONS[k]) throw new Error(`${at}: code ${code} is named twice`);
    const before = named.get(name);
    if (before !== undefined) throw new Error(`${at}: name '${name}' is code ${before}'s already`);
    named.set(name, code);
    table[k] = { label: name, discard: cls === "discard" };
  });
  return table;
}

