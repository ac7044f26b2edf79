// The control plane's store: a revisioned key-value contract (types.ts) and its two backends,
// chosen by a spec string: "file:/var/lib/msm" (embedded, the default) or
// "etcd:http://10.0.0.1:2379,http://10.0.0.2:2379" (shared by control-plane replicas).
import { EtcdStore, type EtcdStoreOptions } from "./etcd-store.js";
import { FileStore, type FileStoreOptions } from "./file-store.js";
import { StoreError, type Store } from "./types.js";

export * from "./types.js";
export { FileStore, type FileStoreOptions } from "./file-store.js";
export { EtcdStore, prefixEnd, type EtcdStoreOptions } from "./etcd-store.js";

export interface OpenStoreOptions {
  readonly file?: FileStoreOptions;
  readonly etcd?: EtcdStoreOptions;
}

/** What a store spec names (file: a directory; etcd: its URLs), or throws StoreError for a spec of no known form. */
export function parseStoreSpec(spec: string): { kind: "file"; dir: string } | { kind: "etcd"; urls: string[] } {
  if (spec.startsWith("file:")) {
    const dir = spec.slice("file:".length);
    if (dir === "") throw new StoreError("store 'file:' needs a directory: file:/var/lib/msm");
    return { kind: "file", dir };
  }
  if (spec.startsWith("etcd:")) {
    const urls = spec.slice("etcd:".length).split(",").map((u) => u.trim()).filter((u) => u !== "");
    if (urls.length === 0) throw new StoreError("store 'etcd:' needs at least one URL: etcd:http://127.0.0.1:2379");
    return { kind: "etcd", urls };
  }
  throw new StoreError(`unknown store '${spec}': use file:DIR or etcd:URL[,URL...]`);
}

/** Opens the store a spec names; throws StoreError for a bad spec or a store that cannot be reached. */
export async function openStore(spec: string, options: OpenStoreOptions = {}): Promise<Store> {
  const parsed = parseStoreSpec(spec);
  return parsed.kind === "file" ? FileStore.open(parsed.dir, options.file) : EtcdStore.open(parsed.urls, options.etcd);
}
