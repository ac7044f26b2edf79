// The few error classes the filter host throws, and the wording that turns a bare status or trap
// into a cause. Each error names the filter it concerns.
import { Status } from "../abi.js";

const PAGE_BYTES = 65536;

/** A module was refused at load: bad digest, bad ABI, bad imports or exports, bad arena. */
export class FilterLoadError extends Error {
  override readonly name = "FilterLoadError";
  constructor(readonly filter: string, message: string, options?: ErrorOptions) {
    super(`filter '${filter}': ${message}`, options);
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

/**
 * A filter rejected a config (root, context) or a state blob; `reason` is the filter's own message
 * ("" when none); `what` the config it refused, as the message names it.
 */
export class FilterConfigError extends Error {
  override readonly name = "FilterConfigError";
  constructor(readonly filter: string, readonly status: number, readonly reason: string, readonly what: "config" | "root config" = "config") {
    super(`filter '${filter}' rejected its ${what}: ${reason || noReason(status)}`);
  }
}

/** Wasm frames a failure names at most, and the characters kept of each: the proxy logs the message. */
const MAX_FRAMES = 4;
const MAX_FRAME_CHARS = 120;

/**
 * The filter author's functions on a trap's stack, innermost first: the wasm frames (V8 names
 * them `at <function> (wasm://...)` where the module has a name section: a --debug build), less
 * AssemblyScript's library (`~lib/`) and the SDK's (`sdk/assembly/`). Empty when the engine gives
 * no names, or the optimizer inlined the author's code into the SDK's exports.
 */
export function authorFrames(err: unknown): string[] {
  const stack = err instanceof Error && typeof err.stack === "string" ? err.stack : "";
  const frames: string[] = [];
  for (const m of stack.matchAll(/^\s*at (\S+) \(wasm:\/\//gm)) {
    const name = m[1]!;
    if (name.startsWith("~lib/") || name.includes("sdk/assembly/")) continue;
    frames.push(name.length > MAX_FRAME_CHARS ? `${name.slice(0, MAX_FRAME_CHARS)}...` : name);
    if (frames.length === MAX_FRAMES) break;
  }
  return frames;
}

/** A filter trapped, aborted or returned a negative count; the instance is no longer usable. */
export class FilterFailure extends Error {
  override readonly name = "FilterFailure";
  /** The author's functions on the stack (authorFrames), innermost first. */
  readonly frames: readonly string[];
  /** `cause`: the trap or abort itself, whose stack has every frame. */
  constructor(readonly filter: string, readonly during: string, readonly reason: string, options?: ErrorOptions) {
    const frames = authorFrames(options?.cause);
    super(`filter '${filter}' ${failureText(during, reason, frames)}`, options);
    this.frames = frames;
  }

  /** The message without the filter's name: `failed in <export>: <reason> (in <function>, called from ...)`. */
  get detail(): string {
    return failureText(this.during, this.reason, this.frames);
  }
}

function failureText(during: string, reason: string, frames: readonly string[]): string {
  const where = frames.length === 0 ? "" : ` (in ${frames[0]}${frames.length > 1 ? `, called from ${frames.slice(1).join(", then ")}` : ""})`;
  return `failed in ${during}: ${reason}${where}`;
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
