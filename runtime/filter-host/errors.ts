// The few error classes the filter host throws, and the wording that turns a bare status or trap
// into a cause. Each error names the filter it concerns.
import { Status } from "../abi.js";

const PAGE_BYTES = 65536;

/** A module was refused at load: bad digest, bad ABI, bad imports or exports, bad arena. */
export class FilterLoadError extends Error {
  override readonly name = "FilterLoadError";
  constructor(readonly filter: string, message: string) {
    super(`filter '${filter}': ${message}`);
  }
}

/** A Status as its name (BadConfig), or the number when it is none. */
export function statusName(status: number): string {
  return Status[status] ?? String(status);
}

/** What to say for a refusal the filter gave no message for (it returned a status without setError). */
export function noReason(status: number): string {
  return `the filter gave no reason (status ${statusName(status)}, returned without calling setError)`;
}

/** A filter rejected a config (root, context) or a state blob; `reason` is the filter's own message ("" when none). */
export class FilterConfigError extends Error {
  override readonly name = "FilterConfigError";
  constructor(readonly filter: string, readonly status: number, readonly reason: string) {
    super(`filter '${filter}' rejected its config: ${reason || noReason(status)}`);
  }
}

/** A filter trapped, aborted or returned a negative count; the instance is no longer usable. */
export class FilterFailure extends Error {
  override readonly name = "FilterFailure";
  constructor(readonly filter: string, readonly during: string, readonly reason: string) {
    super(`filter '${filter}' failed in ${during}: ${reason}`);
  }
}

const size = (bytes: number): string => (bytes >= 1 << 20 ? `${+(bytes / (1 << 20)).toFixed(2)} MiB` : `${+(bytes / 1024).toFixed(1)} KiB`);

/**
 * A trap's message, with the instance's memory beside a bare "unreachable": AssemblyScript's
 * allocator traps so when memory cannot grow past the cap, which the trap itself never says.
 */
export function explainTrap(reason: string, memoryBytes: number, maxPages: number): string {
  if (!/unreachable/i.test(reason)) return reason;
  const pages = memoryBytes / PAGE_BYTES;
  const usage = `the instance uses ${pages} of its ${maxPages} pages of 64 KiB (${size(memoryBytes)} of ${size(maxPages * PAGE_BYTES)})`;
  if (pages >= maxPages * 0.9) {
    return `${reason} (most likely out of memory: ${usage}; raise the filter's maxMemoryPages, or make it hold less)`;
  }
  return `${reason} (an unreachable() in the filter, or an allocation larger than the ${size((maxPages - pages) * PAGE_BYTES)} its memory cap leaves: ${usage})`;
}
