// Instantiating a loaded module and the checks that need an instance: the exports' arities and
// the host features the module says it requires.
import { HOST_FEATURES_V1, HostFeature } from "../abi.js";
import { FilterLoadError } from "./errors.js";
import type { LoadedFilterModule } from "./module-loader.js";

/** What a module exports (docs/abi.md "Exported by the module"). */
export interface ModuleExports {
  _initialize?: () => void;
  msm_required_features?: () => number;
  msm_policy?: () => number;
  msm_arena: () => number;
  msm_configure_root: (len: number) => number;
  msm_drop_reasons?: () => number;
  msm_context_create: (ctx: number, len: number) => number;
  msm_context_destroy: (ctx: number) => void;
  msm_on_batch: (count: number) => number;
  msm_on_timer?: (ctx: number, timer: number) => number;
  msm_context_drain?: (ctx: number) => number;
  msm_state_export: (ctx: number) => number;
  msm_state_import: (ctx: number, len: number) => number;
}

/** Instantiates the module with these imports; throws FilterLoadError. */
export async function instantiate(source: LoadedFilterModule, imports: WebAssembly.Imports): Promise<ModuleExports> {
  let instance: WebAssembly.Instance;
  try {
    instance = await WebAssembly.instantiate(source.module, imports);
  } catch (err) {
    throw new FilterLoadError(source.name, `instantiation failed: ${(err as Error).message}`);
  }
  // the exports' types were checked at load (compileFilterModule)
  return instance.exports as unknown as ModuleExports;
}

/** Throws FilterLoadError when the module requires (msm_required_features) what this host lacks. */
export function checkRequiredFeatures(filter: string, required: number, offered: number = HOST_FEATURES_V1): void {
  const missing = required & ~offered;
  if (missing === 0) return;
  const names = Object.entries(HostFeature).filter(([, bit]) => typeof bit === "number" && (missing & bit) !== 0).map(([n]) => n);
  throw new FilterLoadError(filter, `requires host features the host lacks: ${names.join(", ") || `bits 0x${missing.toString(16)}`}`);
}
