// Loads a filter module: checks its sha256 pin, compiles it, and checks everything about it
// that can be checked before it runs (ABI marker, imports, exports, memory import).
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { ABI_VERSION_MAJOR, ABI_VERSION_MINOR } from "../abi.js";
import { FilterLoadError } from "./errors.js";
import { importedMemories } from "./wasm-inspect.js";

/** Default cap on a filter's linear memory: 256 pages of 64 KiB = 16 MiB. */
export const DEFAULT_MAX_MEMORY_PAGES = 256;

export interface FilterSource {
  /** The filter's name, as chains refer to it. */
  readonly name: string;
  /** A .wasm file to read, or the bytes themselves. */
  readonly path?: string;
  readonly bytes?: Uint8Array;
  /** Expected digest, hex, with or without a `sha256:` prefix. Checked before compiling. */
  readonly sha256?: string;
  /** Cap on the instance's memory in 64 KiB pages. */
  readonly maxMemoryPages?: number;
}

export interface LoadedFilterModule {
  readonly name: string;
  readonly digest: string;
  readonly bytes: Uint8Array;
  readonly module: WebAssembly.Module;
  readonly abiMinor: number;
  readonly memoryMinimumPages: number;
  readonly memoryMaximumPages: number;
}

const HOST_IMPORTS = new Set([
  "msm.log", "msm.set_error", "msm.now_us", "msm.wall_us", "msm.features", "msm.state_origin",
  "msm.metric_define", "msm.metric_add", "msm.metric_set", "msm.metric_record",
  "msm.metric_define_labelled", "msm.metric_add_labelled", "msm.metric_set_labelled", "msm.metric_record_labelled",
  "msm.timer_set", "msm.timer_cancel", "msm.random_bytes",
  "msm.crypto_key_create", "msm.crypto_key_drop", "msm.aes_ctr_xor", "msm.hmac_sha1", "msm.aes_gcm_seal", "msm.aes_gcm_open",
  "env.abort", "env.memory",
]);

/** Exports every module must have, with their parameter counts. */
export const REQUIRED_EXPORTS: Readonly<Record<string, number>> = {
  msm_arena: 0,
  msm_configure_root: 1,
  msm_context_create: 2,
  msm_context_destroy: 1,
  msm_on_batch: 1,
  msm_state_export: 1,
  msm_state_import: 2,
};
/** Exports a module may have, with their parameter counts. */
export const OPTIONAL_EXPORTS: Readonly<Record<string, number>> = {
  _initialize: 0,
  msm_required_features: 0,
  msm_on_timer: 2,
  msm_policy: 0,
  msm_context_drain: 1,
};

const MARKER = /^msm_abi_version_(\d+)_(\d+)$/;

/** Imports AssemblyScript's standard library adds for a call the ABI has its own way for. */
const STDLIB_IMPORTS: Readonly<Record<string, string>> = {
  "env.seed": ": Math.random() needs it; use the SDK's randomU32() (or randomBytes()) instead",
  "env.Date.now": ": Date.now() needs it; use the SDK's wallUs() (or nowUs() for intervals) instead",
  "env.trace": ": trace() needs it; use the SDK's log() instead",
};

/** Why a module may lack the marker: an SDK filter whose entry file does not re-export the SDK's exports. */
function noMarkerCause(exports: readonly WebAssembly.ModuleExportDescriptor[]): string {
  if (exports.some((e) => e.name.startsWith("msm_"))) return "";
  return " (and no msm_* export at all: the likely cause is that the filter's entry file does not re-export the SDK's"
    + " exports; add `export * from \"<path to sdk>/assembly/exports\";` to it)";
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function normalizeDigest(pin: string): string {
  return pin.replace(/^sha256:/, "").toLowerCase();
}

export async function loadFilterModule(source: FilterSource): Promise<LoadedFilterModule> {
  const { name } = source;
  let bytes: Uint8Array;
  if (source.bytes) bytes = source.bytes;
  else if (source.path) {
    try {
      bytes = new Uint8Array(await readFile(source.path));
    } catch (err) {
      throw new FilterLoadError(name, `cannot read ${source.path}: ${(err as Error).message}`);
    }
  } else throw new FilterLoadError(name, "neither a path nor bytes were given");
  return compileFilterModule(name, bytes, source.sha256, source.maxMemoryPages);
}

export async function compileFilterModule(
  name: string,
  bytes: Uint8Array,
  sha256?: string,
  maxMemoryPages = DEFAULT_MAX_MEMORY_PAGES,
): Promise<LoadedFilterModule> {
  const digest = sha256Hex(bytes);
  if (sha256 !== undefined && normalizeDigest(sha256) !== digest) {
    throw new FilterLoadError(name, `digest mismatch: pinned sha256:${normalizeDigest(sha256)}, module is sha256:${digest}`);
  }
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  } catch (err) {
    throw new FilterLoadError(name, `not a valid WebAssembly module: ${(err as Error).message}`);
  }

  const exports = WebAssembly.Module.exports(module);
  const markers = exports.map((e) => MARKER.exec(e.name)).filter((m): m is RegExpExecArray => m !== null);
  if (markers.length !== 1) {
    throw new FilterLoadError(
      name,
      markers.length === 0
        ? `ABI mismatch: module has no msm_abi_version_X_Y export, host implements ${ABI_VERSION_MAJOR}.${ABI_VERSION_MINOR}${noMarkerCause(exports)}`
        : `ABI mismatch: module declares several versions (${markers.map((m) => m[0]).join(", ")})`,
    );
  }
  const major = Number(markers[0]![1]);
  const minor = Number(markers[0]![2]);
  if (major !== ABI_VERSION_MAJOR || minor > ABI_VERSION_MINOR) {
    throw new FilterLoadError(
      name,
      `ABI mismatch: module declares ${markers[0]![0]}, host implements ${ABI_VERSION_MAJOR}.${ABI_VERSION_MINOR}`,
    );
  }
  const exportKinds = new Map(exports.map((e) => [e.name, e.kind]));
  for (const required of Object.keys(REQUIRED_EXPORTS)) {
    if (exportKinds.get(required) !== "function") {
      throw new FilterLoadError(name, `missing required export function ${required} (see docs/abi.md)`);
    }
  }

  for (const imp of WebAssembly.Module.imports(module)) {
    const key = `${imp.module}.${imp.name}`;
    if (!HOST_IMPORTS.has(key)) throw new FilterLoadError(name, `imports ${key}, which the host does not provide${STDLIB_IMPORTS[key] ?? ""}`);
  }
  const memories = importedMemories(bytes);
  const memory = memories.find((m) => m.module === "env" && m.name === "memory");
  if (!memory) throw new FilterLoadError(name, "module does not import env.memory (AssemblyScript: --importMemory)");
  if (memory.shared) throw new FilterLoadError(name, "a shared memory is not allowed");
  if (memory.minimumPages > maxMemoryPages) {
    throw new FilterLoadError(name, `memory minimum ${memory.minimumPages} pages exceeds the limit of ${maxMemoryPages} pages`);
  }
  const memoryMaximumPages = Math.min(memory.maximumPages ?? maxMemoryPages, maxMemoryPages);
  return { name, digest, bytes, module, abiMinor: minor, memoryMinimumPages: memory.minimumPages, memoryMaximumPages };
}
