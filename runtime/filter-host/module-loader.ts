// Loads a filter module: checks its sha256 pin, compiles it, and checks everything about it
// that can be checked before it runs (ABI marker, imports, exports, memory import).
import { createHash } from "node:crypto";
import { readBounded } from "../bounded-read.js";
import { ABI_VERSION_EXPORT, ABI_VERSION_MAJOR, ABI_VERSION_MINOR } from "../abi.js";
import { FilterLoadError } from "./errors.js";
import { moduleShape, type ModuleShape } from "./wasm-inspect.js";

/**
 * Bytes a module file may hold, as a module pushed to the control plane (its registry's cap): a
 * path naming a pipe, /dev/zero or a file of gigabytes was read whole, or without end, by every
 * worker loading it.
 */
export const MAX_MODULE_FILE_BYTES = 16 << 20;

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

/** Every function the host provides, with its type as docs/abi.md gives it (env.memory is checked on its own). */
export const HOST_IMPORT_TYPES: Readonly<Record<string, string>> = {
  "msm.log": "(i32, i32, i32) -> ()",
  "msm.set_error": "(i32, i32) -> ()",
  "msm.now_us": "() -> i64",
  "msm.wall_us": "() -> i64",
  "msm.features": "() -> i32",
  "msm.state_origin": "() -> i32",
  "msm.metric_define": "(i32, i32, i32) -> i32",
  "msm.metric_add": "(i32, i32, f64) -> i32",
  "msm.metric_set": "(i32, i32, f64) -> i32",
  "msm.metric_record": "(i32, i32, f64) -> i32",
  "msm.metric_define_labelled": "(i32, i32, i32, i32, i32) -> i32",
  "msm.metric_add_labelled": "(i32, i32, i32, f64) -> i32",
  "msm.metric_set_labelled": "(i32, i32, i32, f64) -> i32",
  "msm.metric_record_labelled": "(i32, i32, i32, f64) -> i32",
  "msm.timer_set": "(i32, i32, i64) -> i32",
  "msm.timer_cancel": "(i32, i32) -> i32",
  "msm.random_bytes": "(i32, i32) -> i32",
  "msm.crypto_key_create": "(i32, i32, i32) -> i32",
  "msm.crypto_key_drop": "(i32) -> i32",
  "msm.aes_ctr_xor": "(i32, i32, i32, i32) -> i32",
  "msm.hmac_sha1": "(i32, i32, i32, i32, i32, i32) -> i32",
  "msm.aes_gcm_seal": "(i32, i32, i32, i32, i32, i32, i32) -> i32",
  "msm.aes_gcm_open": "(i32, i32, i32, i32, i32, i32, i32) -> i32",
  "env.abort": "(i32, i32, i32, i32) -> ()",
};

/** Exports every module must have, with their types. */
export const REQUIRED_EXPORTS: Readonly<Record<string, string>> = {
  msm_arena: "() -> i32",
  msm_configure_root: "(i32) -> i32",
  msm_context_create: "(i32, i32) -> i32",
  msm_context_destroy: "(i32) -> ()",
  msm_on_batch: "(i32) -> i32",
  msm_state_export: "(i32) -> i32",
  msm_state_import: "(i32, i32) -> i32",
};
/** Exports a module may have, with their types. */
export const OPTIONAL_EXPORTS: Readonly<Record<string, string>> = {
  _initialize: "() -> ()",
  msm_required_features: "() -> i32",
  msm_on_timer: "(i32, i32) -> i32",
  msm_policy: "() -> i32",
  msm_context_drain: "(i32) -> i32",
  msm_drop_reasons: "() -> i32",
};
/** The version marker's type. */
const MARKER_TYPE = "() -> ()";

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
    let read: Buffer | null;
    try {
      read = await readBounded(source.path, MAX_MODULE_FILE_BYTES);
    } catch (err) {
      throw new FilterLoadError(name, `cannot read ${source.path}: ${(err as Error).message}`);
    }
    if (read === null) throw new FilterLoadError(name, `${source.path} holds more than the ${MAX_MODULE_FILE_BYTES >> 20} MiB a module may have (read no further)`);
    bytes = new Uint8Array(read); // its own buffer, as readFile gave
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
  const SDK_VERSION = ABI_VERSION_EXPORT.replace(/^msm_abi_version_(\d+)_(\d+)$/, "$1.$2");
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
      `ABI mismatch: module declares ${markers[0]![0]}, host implements ${ABI_VERSION_MAJOR}.${ABI_VERSION_MINOR}` +
        (major !== ABI_VERSION_MAJOR
          ? ` (this proxy runs ABI ${ABI_VERSION_MAJOR}.x modules only: build the filter with this proxy's SDK, sdk/assembly, which declares ${SDK_VERSION})`
          : ` (a module for a newer proxy: run it on one that implements ${major}.${minor}, or declare the oldest version whose imports it needs, as this proxy's SDK does (${SDK_VERSION}); docs/abi.md "${ABI_VERSION_EXPORT}")`),
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
    if (key !== "env.memory" && !(key in HOST_IMPORT_TYPES)) throw new FilterLoadError(name, `imports ${key}, which the host does not provide${STDLIB_IMPORTS[key] ?? ""}`);
  }
  let shape: ModuleShape;
  try {
    shape = moduleShape(bytes);
  } catch (err) {
    // what WebAssembly compiles but this reader does not know (GC types, typed references): not the ABI's
    throw new FilterLoadError(name, `cannot read its imports and exports (${(err as Error).message}): the ABI uses plain WebAssembly 1.0 function types`);
  }
  // a JS host function takes any type: a mismatch would show only at the call, as a JS error naming nothing
  for (const [key, type] of shape.importedFunctions) {
    const expected = HOST_IMPORT_TYPES[key];
    if (expected === undefined) throw new FilterLoadError(name, `imports ${key} as a function, which the host does not provide as one`);
    if (type !== expected) throw new FilterLoadError(name, `ABI mismatch: imports ${key} as ${type}; the host's is ${expected} (see docs/abi.md)`);
  }
  const expectedExports: Readonly<Record<string, string>> = { ...REQUIRED_EXPORTS, ...OPTIONAL_EXPORTS, [markers[0]![0]]: MARKER_TYPE };
  for (const [exported, expected] of Object.entries(expectedExports)) {
    const type = shape.exportedFunctions.get(exported);
    if (exportKinds.has(exported) && type !== expected) {
      throw new FilterLoadError(name, `ABI mismatch: exports ${exported} as ${type ?? `a ${exportKinds.get(exported)}`}; the host calls it as ${expected} (see docs/abi.md)`);
    }
  }
  const memories = shape.memories;
  const memory = memories.find((m) => m.module === "env" && m.name === "memory");
  if (!memory) throw new FilterLoadError(name, "module does not import env.memory (AssemblyScript: --importMemory)");
  if (memory.shared) throw new FilterLoadError(name, "a shared memory is not allowed");
  if (memory.minimumPages > maxMemoryPages) {
    throw new FilterLoadError(name, `memory minimum ${memory.minimumPages} pages exceeds the limit of ${maxMemoryPages} pages (maxMemoryPages; a page is 64 KiB)`);
  }
  const memoryMaximumPages = Math.min(memory.maximumPages ?? maxMemoryPages, maxMemoryPages);
  return { name, digest, bytes, module, abiMinor: minor, memoryMinimumPages: memory.minimumPages, memoryMaximumPages };
}
