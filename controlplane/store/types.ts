// The control plane's storage contract: a revisioned key-value store, the model etcd v3 defines.
// Every change bumps one global revision; each key remembers the revision that created it and
// the one that last modified it; a transaction writes only if the keys it compares still have
// the modification revisions the caller read (0 = the key must not exist); a watch replays every
// change under a prefix from a given revision on, in revision order.
// Types only: the backends live in file-store.ts and etcd-store.ts.

export interface KeyValue {
  readonly key: string;
  readonly value: Buffer;
  /** Revision of the change that created the key (a key deleted and put again gets a new one). */
  readonly createRevision: number;
  /** Revision of the key's last change. */
  readonly modRevision: number;
  /** Number of writes since the key was created (1 after the first put). */
  readonly version: number;
}

/** A guard: `key`'s modification revision must equal `modRevision` (0 = the key must be absent). */
export interface Compare {
  readonly key: string;
  readonly modRevision: number;
}

export type Op =
  | { readonly type: "put"; readonly key: string; readonly value: Buffer | string }
  | { readonly type: "delete"; readonly key: string };

export interface TxnResult {
  /** False when a compare failed; nothing was written then. */
  readonly succeeded: boolean;
  /** The store's revision after the transaction (its own revision when it wrote something). */
  readonly revision: number;
}

export interface ListResult {
  /** Sorted by key (byte order). */
  readonly items: KeyValue[];
  /** The store revision the listing reflects. */
  readonly revision: number;
  /** True when `limit` cut the listing short: list again from after the last key. */
  readonly more: boolean;
}

/** A part of a listing: for reading a large prefix a page at a time. */
export interface ListOptions {
  /** Only keys after this one (byte order). */
  readonly startAfter?: string;
  /** At most this many keys. */
  readonly limit?: number;
  /** Keys and revisions only; every value empty. */
  readonly keysOnly?: boolean;
}

export interface WatchEvent {
  readonly type: "put" | "delete";
  readonly key: string;
  /** The new value; empty for a delete. */
  readonly value: Buffer;
  readonly modRevision: number;
}

/** Every change one revision made under the watched prefix. */
export interface WatchBatch {
  readonly revision: number;
  readonly events: readonly WatchEvent[];
}

export interface WatchOptions {
  /** First revision to report (usually a listing's revision + 1). */
  readonly fromRevision: number;
  /** Called once per revision, in order, never concurrently. */
  onEvents(batch: WatchBatch): void;
  /**
   * The watch ended and will report nothing more: `StoreCompactedError` when `fromRevision` (or
   * the revision after the last batch) is no longer in the store's history; list again then.
   */
  onError(error: Error): void;
  /**
   * The watch found its stream stalled (a change under the prefix in the store that the stream did
   * not deliver) and opened it again from the revision after the last batch: nothing is skipped.
   */
  onStall?(reason: string): void;
}

export interface Watcher {
  close(): void;
}

export interface Store {
  /** For logs: "file:/var/lib/msm" or "etcd:http://10.0.0.1:2379,...". */
  readonly description: string;
  /**
   * The time by the store's clock (Unix ms), for times that replicas write and other replicas
   * compare (a proxy's last_seen): a replica whose own clock is off would otherwise make every
   * other replica's view of its proxies wrong. Absent: this process's clock (one process, no peers).
   */
  now?(): number;
  /** Most puts, deletes or compares one transaction may carry (etcd's --max-txn-ops). */
  readonly maxTxnOps: number;
  /** Largest value a put may carry, bytes. */
  readonly maxValueBytes: number;
  get(key: string): Promise<KeyValue | undefined>;
  /** Every key that starts with `prefix` ("" = all), or the part `options` asks for. */
  list(prefix: string, options?: ListOptions): Promise<ListResult>;
  /** The current global revision. */
  revision(): Promise<number>;
  /** If every compare holds, applies every op atomically at one new revision. */
  txn(compare: readonly Compare[], ops: readonly Op[]): Promise<TxnResult>;
  watch(prefix: string, options: WatchOptions): Watcher;
  /**
   * Forgets the history before `revision` (current values stay): later watches from an earlier
   * revision fail with StoreCompactedError. Compacting to a revision already compacted is a no-op.
   */
  compact(revision: number): Promise<void>;
  /** Stops every watch and releases the store. Safe to call twice. */
  close(): Promise<void>;
}

/** The store could not do what was asked (I/O error, unreachable etcd, a request etcd refused). */
export class StoreError extends Error {
  override readonly name: string = "StoreError";
}

/** The revision a watch needs is older than the store's history. */
export class StoreCompactedError extends StoreError {
  override readonly name = "StoreCompactedError";
  constructor(readonly compactRevision: number, message = `required revision has been compacted (history starts after ${compactRevision})`) {
    super(message);
  }
}
