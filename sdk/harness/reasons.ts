// What a dropped packet's reason is called, as the proxy counts it: a shared code by the ABI's
// label, a filter's own code (256-319) by the name its msm_drop_reasons table gave it (ABI 1.6),
// `filter_<code>` only when it named none, and whether it is a discard rather than a drop.
import { DropReason } from "../../runtime/abi.js";
import { dropReasonName, type FilterInstance } from "./runtime.js";

export interface ReasonLabel {
  /** snake_case label (`bad_version`, the filter's `stale`, or `filter_<code>`). */
  readonly name: string;
  /** The filter named the code a discard (DropClass.Discard): its normal work, counted apart from drops. */
  readonly discard: boolean;
}

/** The label and class `inst` gives drop reason `code`, as /metrics and /stats show it. */
export function reasonLabel(inst: FilterInstance, code: number): ReasonLabel {
  const own = code >= DropReason.FilterDefinedBase ? inst.ownReasons[code - DropReason.FilterDefinedBase] : undefined;
  if (own) return { name: own.label, discard: own.discard };
  return { name: dropReasonName(code), discard: false };
}
