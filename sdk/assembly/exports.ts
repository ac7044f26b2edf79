// The module side of ABI v1.0 (docs/abi.md "Exported by the module"). A filter's entry file
// re-exports this file: `export * from "<sdk>/exports";`. Export nothing else from here: every
// export of this file becomes a wasm export.
import { Status } from "../abi/constants";
import { ARENA_HEADER, SCRATCH_SIZE } from "./arena";
import { Config } from "./config";
import { Filter, registeredFilter } from "./filter";
import { setError } from "./host";
import { Output } from "./output";
import { StateReader, StateWriter } from "./state";

const stateWriter = new StateWriter();
const stateReader = new StateReader();

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
export function msm_abi_version_1_0(): void {}

export function msm_required_features(): i32 {
  return filter().requiredFeatures();
}

export function msm_arena(): i32 {
  return <i32>ARENA_HEADER;
}

export function msm_configure_root(len: i32): i32 {
  return filter().configureRoot(Config.fromScratch(scratchLength(len)));
}

export function msm_context_create(ctx: i32, len: i32): i32 {
  return filter().createContext(<u32>ctx, Config.fromScratch(scratchLength(len)));
}

export function msm_context_destroy(ctx: i32): void {
  filter().destroyContext(<u32>ctx);
}

export function msm_on_batch(count: i32): i32 {
  Output.count = 0;
  filter().onBatch(count);
  return Output.count;
}

export function msm_on_timer(ctx: i32, timer: i32): i32 {
  Output.count = 0;
  filter().onTimer(<u32>ctx, timer);
  return Output.count;
}

export function msm_state_export(ctx: i32): i32 {
  stateWriter.reset();
  const status = filter().exportState(<u32>ctx, stateWriter);
  if (status != Status.Ok) return -status;
  if (stateWriter.overflow) {
    setError("state blob larger than the scratch area");
    return -Status.NoSpace;
  }
  return stateWriter.length;
}

export function msm_state_import(ctx: i32, len: i32): i32 {
  stateReader.reset(scratchLength(len));
  return filter().importState(<u32>ctx, stateReader);
}
