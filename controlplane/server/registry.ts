// The filter registry: name@version -> sha256, module bytes stored by digest.
// A module is checked at push with the runtime's own loader (compileFilterModule: valid wasm, the
// ABI marker, required exports, allowed imports, memory import), so that a proxy is never sent a
// module it would refuse for those reasons. A name@version, once pushed, never changes.
import { status } from "@grpc/grpc-js";
import { compileFilterModule, ConfigError, FilterLoadError, sha256Hex, validateProxyConfig } from "../../runtime/index.js";
import type { FilterModule, FilterRef } from "../api/proto.js";
import type { Store } from "../store/index.js";
import { invalid, RpcError } from "./errors.js";
import { BLOB_CHUNK_BYTES, blobChunkKey, blobMetaKey, BLOBS, filterKey, FILTERS } from "./keys.js";
import type { DesiredState } from "./state.js";

export const MAX_MODULE_BYTES = 16 << 20;
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
const SHA256 = /^[0-9a-f]{64}$/;

interface BlobMeta {
  size: number;
  chunks: number;
  name: string;
  version: string;
  pushedAtMs: number;
}

/** Checks a filter name with the runtime's rule for filter keys (the name is used as one). */
function checkName(name: string): string | undefined {
  if (name === "") return "name: required";
  try {
    validateProxyConfig({ filters: { [name]: { path: "registry" } } }, "/", "request");
    return undefined;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return `name: '${name}': ${err.issues[0]!.replace(/^filters\.[^:]*: /, "")}`;
  }
}

export async function pushFilter(store: Store, name: string, version: string, wasm: Buffer): Promise<{ ref: FilterRef; alreadyPresent: boolean }> {
  const issues: string[] = [];
  const nameIssue = checkName(name);
  if (nameIssue) issues.push(nameIssue);
  if (!VERSION.test(version)) issues.push(`version: '${version}' must be 1-64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit`);
  if (wasm.length === 0) issues.push("wasm: empty");
  else if (wasm.length > MAX_MODULE_BYTES) issues.push(`wasm: ${wasm.length} bytes; modules are at most ${MAX_MODULE_BYTES} bytes`);
  if (issues.length > 0) throw invalid(issues);

  const sha256 = sha256Hex(wasm);
  const key = filterKey(name, version);
  const existingRef = async (): Promise<{ ref: FilterRef; alreadyPresent: boolean } | undefined> => {
    const kv = await store.get(key);
    if (!kv) return undefined;
    const ref = JSON.parse(kv.value.toString()) as FilterRef;
    if (ref.sha256 === sha256) return { ref, alreadyPresent: true };
    throw new RpcError(status.ALREADY_EXISTS, `filter ${name}@${version} already exists with another module (sha256 ${ref.sha256}, this one is ${sha256}); push it as a new version`);
  };
  const before = await existingRef();
  if (before) return before;

  try {
    await compileFilterModule(name, wasm);
  } catch (err) {
    if (err instanceof FilterLoadError) throw invalid([`wasm: ${err.message}`]);
    throw err;
  }

  const ref: FilterRef = { name, version, sha256, size: wasm.length, pushedAtMs: Date.now() };
  // the bytes first (content-addressed: writing them twice is harmless), the name last
  if (!(await store.get(blobMetaKey(sha256)))) {
    const chunks = Math.ceil(wasm.length / BLOB_CHUNK_BYTES);
    for (let i = 0; i < chunks; i++) {
      await store.txn([], [{ type: "put", key: blobChunkKey(sha256, i), value: wasm.subarray(i * BLOB_CHUNK_BYTES, (i + 1) * BLOB_CHUNK_BYTES) }]);
    }
    const meta: BlobMeta = { size: wasm.length, chunks, name, version, pushedAtMs: ref.pushedAtMs };
    await store.txn([{ key: blobMetaKey(sha256), modRevision: 0 }], [{ type: "put", key: blobMetaKey(sha256), value: JSON.stringify(meta) }]);
  }
  const r = await store.txn([{ key, modRevision: 0 }], [{ type: "put", key, value: JSON.stringify(ref) }]);
  if (r.succeeded) return { ref, alreadyPresent: false };
  // pushed by someone else meanwhile: the same bytes are fine, others are refused
  const after = await existingRef();
  if (after) return after;
  throw new RpcError(status.ABORTED, `filter ${name}@${version}: concurrent push, try again`);
}

export async function listFilters(store: Store): Promise<FilterRef[]> {
  const { items } = await store.list(FILTERS);
  return inListOrder(items.map((kv) => ({ ref: JSON.parse(kv.value.toString()) as FilterRef, modRevision: kv.modRevision })));
}

/** The filters of a replica's copy of the desired state, as listFilters gives them. */
export function filtersOf(state: DesiredState): FilterRef[] {
  return inListOrder([...state.filters.values()].flatMap((versions) => [...versions.values()]));
}

/** By name, then in the order they were pushed. */
function inListOrder(entries: readonly { ref: FilterRef; modRevision: number }[]): FilterRef[] {
  return [...entries]
    .sort((a, b) => (a.ref.name === b.ref.name ? a.modRevision - b.modRevision : a.ref.name < b.ref.name ? -1 : 1))
    .map((x) => x.ref);
}

export async function fetchFilter(store: Store, sha256: string): Promise<FilterModule> {
  const digest = sha256.replace(/^sha256:/, "").toLowerCase();
  if (!SHA256.test(digest)) throw invalid([`sha256: '${sha256}' is not 64 hex digits`]);
  const metaKv = await store.get(blobMetaKey(digest));
  if (!metaKv) throw new RpcError(status.NOT_FOUND, `no filter module with sha256 ${digest}`);
  const meta = JSON.parse(metaKv.value.toString()) as BlobMeta;
  const items = (await store.list(`${BLOBS}${digest}/`)).items.filter((kv) => /\/\d+$/.test(kv.key));
  const wasm = Buffer.concat(items.slice(0, meta.chunks).map((kv) => kv.value));
  if (items.length < meta.chunks || wasm.length !== meta.size || sha256Hex(wasm) !== digest) {
    throw new RpcError(status.DATA_LOSS, `module ${digest} is damaged in the store (${items.length}/${meta.chunks} chunks, ${wasm.length}/${meta.size} bytes)`);
  }
  return { ref: { name: meta.name, version: meta.version, sha256: digest, size: meta.size, pushedAtMs: meta.pushedAtMs }, wasm };
}
