// The module side of ABI v1.6 (declaring 1.5: see ABI_VERSION_EXPORT) (docs/abi.md "Exported by the module"). A filter's entry file
// re-exports this file: `export * from "<sdk>/exports";`. Export nothing else from here: every
// export of this file becomes a wasm export.
import { Status } from "../../runtime/abi";
import { ARENA_HEADER, SCRATCH, SCRATCH_SIZE } from "./arena";
import { Config } from "./config";
import { dropReasonTable } from "./drop-reasons";
import { Filter, registeredFilter } from "./filter";
import { setError } from "./host";
import { Output } from "./output";
import { StateReader, StateWriter } from "./state";

const stateWriter = new StateWriter();
const stateReader = new StateReader();

// Garbage (config readers, strings, replaced arrays) is collected here, at the end of an export,
// when no local holds a reference: filters are built with the `minimal` runtime, whose collector
// never runs on its own. Context create/destroy collect every so many calls; the interval grows
// with the live contexts, since a collection's cost grows with live objects. Any other call
// collects only when memory grew during it, so a batch that allocates nothing costs one compare,
// and a filter that allocates per packet is slowed down instead of running out of memory.
let liveContexts: i32 = 0;
let callsSinceCollect: i32 = 0;
let pagesAtCollect: i32 = memory.size();

function collect(): void {
  __collect();
  callsSinceCollect = 0;
  pagesAtCollect = memory.size();
}

@inline function collectIfGrown(): void {
  if (memory.size() != pagesAtCollect) collect();
}

function afterContextChange(): void {
  const interval = liveContexts / 4 > 64 ? liveContexts / 4 : 64;
  if (++callsSinceCollect >= interval) collect();
  else collectIfGrown();
}

function filter(): Filter {
  const f = registeredFilter();
  if (f === null) {
    abort("no filter registered: call register(new YourFilter()) at top level");
    unreachable();
  }
  return changetype<Filter>(f);
}

/** Clamps a host-given length to the scratch area. */
@inline function scratchLength(len: i32): i32 {
  return len < 0 ? 0 : len > SCRATCH_SIZE ? SCRATCH_SIZE : len;
}

/** The ABI version marker (never called). */
export function msm_abi_version_1_5(): void {}

export function msm_policy(): i32 {
  return filter().policy();
}

export function msm_required_features(): i32 {
  return filter().requiredFeatures();
}

export function msm_arena(): i32 {
  return <i32>ARENA_HEADER;
}

export function msm_configure_root(len: i32): i32 {
  const status = filter().configureRoot(Config.fromScratch(scratchLength(len)));
  collect();
  return status;
}

/** ABI 1.6: the names nameDropReason gave the filter's own drop reasons, written into scratch. */
export function msm_drop_reasons(): i32 {
  const text = dropReasonTable();
  const len = String.UTF8.byteLength(text);
  if (len > SCRATCH_SIZE) {
    setError("the drop reason table is larger than the scratch area");
    return -Status.NoSpace;
  }
  String.UTF8.encodeUnsafe(changetype<usize>(text), text.length, SCRATCH, false);
  return len;
}

export function msm_context_create(ctx: i32, len: i32): i32 {
  const status = filter().createContext(<u32>ctx, Config.fromScratch(scratchLength(len)));
  if (status == Status.Ok) liveContexts++;
  afterContextChange();
  return status;
}

export function msm_context_drain(ctx: i32): i32 {
  Output.count = 0;
  filter().drainContext(<u32>ctx);
  collectIfGrown();
  return Output.count;
}

export function msm_context_destroy(ctx: i32): void {
  filter().destroyContext(<u32>ctx);
  if (liveContexts > 0) liveContexts--;
  afterContextChange();
}

export function msm_on_batch(count: i32): i32 {
  Output.count = 0;
  filter().onBatch(count);
  collectIfGrown();
  return Output.count;
}

export function msm_on_timer(ctx: i32, timer: i32): i32 {
  Output.count = 0;
  filter().onTimer(<u32>ctx, timer);
  collectIfGrown();
  return Output.count;
}

export function msm_state_export(ctx: i32): i32 {
  stateWriter.reset();
  const status = filter().exportState(<u32>ctx, stateWriter);
  collectIfGrown();
  if (status != Status.Ok) return -status;
  if (stateWriter.overflow) {
    setError("state blob larger than the scratch area");
    return -Status.NoSpace;
  }
  return stateWriter.length;
}

export function msm_state_import(ctx: i32, len: i32): i32 {
  stateReader.reset(scratchLength(len));
  const status = filter().importState(<u32>ctx, stateReader);
  collectIfGrown();
  return status;
}
