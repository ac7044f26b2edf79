// The embedded store: one directory, no set-up, one process at a time (a LOCK file says which).
//
//   <dir>/meta.json         { format, revision }
//   <dir>/keys/<sha256 of the key>.json   { key, value (base64), createRevision, modRevision, version }
//   <dir>/journal.json      a transaction being committed (only while it is)
//   <dir>/LOCK              the pid that holds the store
//
// Every file is written whole to a temporary name, synced, then renamed over the old one. A
// transaction that touches several keys is made atomic by its journal: the journal is the commit
// point; the key files and meta.json are written after it, and the journal is removed last. A
// journal found at open is applied again (applying it is idempotent), so after a crash a
// transaction is either wholly there or wholly absent, and revisions never go back. A transaction
// of one put (the common case: status and stats) skips the journal: its key file is its commit.
// Everything is also held in memory: reads never touch the disk.
import { createHash } from "node:crypto";
import { closeSync, fsyncSync, openSync } from "node:fs";
import { chmod, mkdir, open, readFile, readdir, rename, rm, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import {
  StoreCompactedError, StoreError,
  type Compare, type ListOptions, type KeyValue, type ListResult, type Op, type Store, type TxnResult, type WatchBatch, type WatchEvent, type Watcher, type WatchOptions,
} from "./types.js";
import { parseErrorText } from "../../runtime/index.js";

const FORMAT = 1;

export interface FileStoreOptions {
  /** fsync each file and the directory (default true; tests may turn it off for speed). */
  readonly fsync?: boolean;
  /** Revisions kept in memory for watches that start in the past (default 10,000). */
  readonly historyLimit?: number;
}

interface RecordFile {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
}

interface Journal {
  revision: number;
  puts: RecordFile[];
  deletes: string[];
}

interface WatchState {
  readonly prefix: string;
  readonly options: WatchOptions;
  next: number;
  queue: WatchBatch[];
  scheduled: boolean;
  closed: boolean;
}

/** Directories held by this process: a second open of one would corrupt it. */
const openDirs = new Set<string>();

function fileName(key: string): string {
  return `${createHash("sha256").update(key).digest("hex")}.json`;
}

function toKeyValue(r: RecordFile): KeyValue {
  return { key: r.key, value: Buffer.from(r.value, "base64"), createRevision: r.createRevision, modRevision: r.modRevision, version: r.version };
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export class FileStore implements Store {
  readonly description: string;
  readonly maxTxnOps = 10_000;
  readonly maxValueBytes = 64 << 20;
  private readonly data = new Map<string, KeyValue>();
  private rev = 0;
  /** Batches since open (or since the oldest one kept): watches may start at historyStart. */
  private history: WatchBatch[] = [];
  private historyStart = 1;
  private readonly watchers = new Set<WatchState>();
  private queue: Promise<unknown> = Promise.resolve();
  private broken: Error | undefined;
  private closed = false;
  private tmpCounter = 0;
  private readonly sync: boolean;
  private readonly historyLimit: number;

  private constructor(readonly dir: string, options: FileStoreOptions) {
    this.description = `file:${dir}`;
    this.sync = options.fsync ?? true;
    this.historyLimit = options.historyLimit ?? 10_000;
  }

  /** Opens (creating it if needed) the store in `dir`. Throws StoreError if another process holds it. */
  static async open(dir: string, options: FileStoreOptions = {}): Promise<FileStore> {
    const abs = resolve(dir);
    if (openDirs.has(abs)) throw new StoreError(`store ${abs} is already open in this process`);
    const store = new FileStore(abs, options);
    try {
      // its values may hold keys: keys/ is this user's only, whatever the umask or an older version
      // made (the directory around it, maybe shared, is made 0700 only when the store creates it)
      await mkdir(join(abs, "keys"), { recursive: true, mode: 0o700 });
      await chmod(join(abs, "keys"), 0o700);
    } catch (err) {
      throw new StoreError(`cannot create store directory ${abs}: ${(err as Error).message}`);
    }
    await store.lock();
    openDirs.add(abs);
    try {
      await store.load();
    } catch (err) {
      openDirs.delete(abs);
      await rm(join(abs, "LOCK"), { force: true });
      throw err instanceof StoreError ? err : new StoreError(`cannot read store ${abs}: ${(err as Error).message}`);
    }
    return store;
  }

  private async lock(): Promise<void> {
    const path = join(this.dir, "LOCK");
    const mine = `${process.pid} ${hostname()}\n`;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(path, mine, { flag: "wx", mode: 0o600 });
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw new StoreError(`cannot lock ${this.dir}: ${(err as Error).message}`);
      }
      const [pidText, host] = (await readFile(path, "utf8").catch(() => "")).trim().split(" ");
      const pid = Number(pidText);
      if (host === hostname() && Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new StoreError(`store ${this.dir} is in use by process ${pid} (${path})`);
      }
      if (host !== undefined && host !== hostname()) {
        throw new StoreError(`store ${this.dir} is locked by process ${pidText} on host ${host}; remove ${path} if that process is gone`);
      }
      await rm(path, { force: true }); // left behind by a process that is gone
    }
    throw new StoreError(`cannot lock ${this.dir}`);
  }

  private async load(): Promise<void> {
    const journalPath = join(this.dir, "journal.json");
    let journal: Journal | undefined;
    try {
      journal = JSON.parse(await readFile(journalPath, "utf8")) as Journal;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
        // a journal is renamed into place whole, so it parses or it is absent
        throw new StoreError(`corrupt journal ${journalPath}: ${err instanceof SyntaxError ? parseErrorText(err) : (err as Error).message}`);
      }
    }
    if (journal) {
      await this.applyJournal(journal);
      await unlink(journalPath);
    }
    let metaRevision = 0;
    try {
      const meta = JSON.parse(await readFile(join(this.dir, "meta.json"), "utf8")) as { format: number; revision: number };
      if (meta.format !== FORMAT) throw new StoreError(`store ${this.dir} has format ${meta.format}; this build reads format ${FORMAT}`);
      metaRevision = meta.revision;
    } catch (err) {
      if (err instanceof StoreError) throw err;
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    let maxMod = 0;
    for (const name of await readdir(join(this.dir, "keys"))) {
      if (!name.endsWith(".json")) {
        await rm(join(this.dir, "keys", name), { force: true }); // a temporary file from a crash
        continue;
      }
      const path = join(this.dir, "keys", name);
      let r: RecordFile;
      try {
        r = JSON.parse(await readFile(path, "utf8")) as RecordFile;
      } catch (err) {
        // a record may hold a segment's keys: the parser's quote of it stays out of the message
        throw new StoreError(`corrupt record ${path}: ${err instanceof SyntaxError ? parseErrorText(err) : (err as Error).message}`);
      }
      this.data.set(r.key, toKeyValue(r));
      maxMod = Math.max(maxMod, r.modRevision);
    }
    // etcd starts at revision 1; so does an empty store here
    this.rev = Math.max(metaRevision, maxMod, 1);
    this.historyStart = this.rev + 1;
  }

  private async writeAtomic(path: string, text: string): Promise<void> {
    const tmp = `${path}.tmp-${process.pid}-${++this.tmpCounter}`;
    const fh = await open(tmp, "w", 0o600);
    try {
      await fh.writeFile(text);
      if (this.sync) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  }

  private syncDir(path: string): void {
    if (!this.sync) return;
    const fd = openSync(path, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  private async applyJournal(j: Journal): Promise<void> {
    for (const r of j.puts) await this.writeAtomic(join(this.dir, "keys", fileName(r.key)), JSON.stringify(r));
    for (const key of j.deletes) await rm(join(this.dir, "keys", fileName(key)), { force: true });
    this.syncDir(join(this.dir, "keys"));
    await this.writeAtomic(join(this.dir, "meta.json"), JSON.stringify({ format: FORMAT, revision: j.revision }));
    this.syncDir(this.dir);
  }

  private check(): void {
    if (this.closed) throw new StoreError(`store ${this.dir} is closed`);
    if (this.broken) throw new StoreError(`store ${this.dir} failed earlier and refuses writes until reopened: ${this.broken.message}`);
  }

  async get(key: string): Promise<KeyValue | undefined> {
    if (this.closed) throw new StoreError(`store ${this.dir} is closed`);
    return this.data.get(key);
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListResult> {
    if (this.closed) throw new StoreError(`store ${this.dir} is closed`);
    const after = options.startAfter;
    const all = [...this.data.values()]
      .filter((kv) => kv.key.startsWith(prefix) && (after === undefined || byteOrder(kv.key, after) > 0))
      .sort((a, b) => byteOrder(a.key, b.key));
    const limit = options.limit ?? all.length;
    const items = all.slice(0, limit).map((kv) => (options.keysOnly ? { ...kv, value: Buffer.alloc(0) } : kv));
    return { items, revision: this.rev, more: all.length > limit };
  }

  async revision(): Promise<number> {
    if (this.closed) throw new StoreError(`store ${this.dir} is closed`);
    return this.rev;
  }

  txn(compare: readonly Compare[], ops: readonly Op[]): Promise<TxnResult> {
    const run = this.queue.then(() => this.commit(compare, ops));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async commit(compare: readonly Compare[], ops: readonly Op[]): Promise<TxnResult> {
    this.check();
    if (compare.length > this.maxTxnOps || ops.length > this.maxTxnOps) throw new StoreError(`too many operations in one transaction (at most ${this.maxTxnOps})`);
    for (const c of compare) {
      if ((this.data.get(c.key)?.modRevision ?? 0) !== c.modRevision) return { succeeded: false, revision: this.rev };
    }
    // the state after the ops, in order (a later op on the same key wins)
    const next = new Map<string, KeyValue | null>();
    const revision = this.rev + 1;
    for (const op of ops) {
      const before = next.has(op.key) ? next.get(op.key) : this.data.get(op.key);
      if (op.type === "put") {
        const value = typeof op.value === "string" ? Buffer.from(op.value) : Buffer.from(op.value);
        if (value.length > this.maxValueBytes) throw new StoreError(`value of ${op.key} is ${value.length} bytes; the store takes at most ${this.maxValueBytes}`);
        next.set(op.key, {
          key: op.key, value,
          createRevision: before ? before.createRevision : revision,
          modRevision: revision,
          version: before ? before.version + 1 : 1,
        });
      } else if (before) {
        next.set(op.key, null);
      }
    }
    if (next.size === 0) return { succeeded: true, revision: this.rev }; // deletes of absent keys change nothing

    const journal: Journal = { revision, puts: [], deletes: [] };
    for (const [key, kv] of next) {
      if (kv) journal.puts.push({ key, value: kv.value.toString("base64"), createRevision: kv.createRevision, modRevision: kv.modRevision, version: kv.version });
      else journal.deletes.push(key);
    }
    const journalPath = join(this.dir, "journal.json");
    if (journal.puts.length === 1 && journal.deletes.length === 0) {
      // One put needs no journal: its file is renamed into place whole, and at open the revision
      // is the largest of meta.json's and every key's, so meta.json need not be written either.
      // (Deletes always go through the journal: they leave no key behind to carry their revision.)
      try {
        await this.writeAtomic(join(this.dir, "keys", fileName(journal.puts[0]!.key)), JSON.stringify(journal.puts[0]));
      } catch (err) {
        throw new StoreError(`cannot write to store ${this.dir}: ${(err as Error).message}`);
      }
      try {
        this.syncDir(join(this.dir, "keys"));
      } catch (err) {
        this.broken = err as Error; // renamed into place but maybe not durable: memory and disk may differ
        throw new StoreError(`store ${this.dir}: write failed after commit (reopen to recover): ${(err as Error).message}`);
      }
    } else {
      await this.commitJournal(journalPath, journal);
    }
    this.publish(next, revision);
    return { succeeded: true, revision };
  }

  private async commitJournal(journalPath: string, journal: Journal): Promise<void> {
    try {
      await this.writeAtomic(journalPath, JSON.stringify(journal));
      this.syncDir(this.dir);
    } catch (err) {
      await rm(journalPath, { force: true }).catch(() => undefined);
      throw new StoreError(`cannot write to store ${this.dir}: ${(err as Error).message}`);
    }
    try {
      await this.applyJournal(journal);
      await unlink(journalPath);
    } catch (err) {
      // committed (the journal is on disk) but not applied: the next open completes it
      this.broken = err as Error;
      throw new StoreError(`store ${this.dir}: write failed after commit (reopen to recover): ${(err as Error).message}`);
    }
  }

  /** The committed transaction becomes visible: memory, history, watchers. */
  private publish(next: Map<string, KeyValue | null>, revision: number): void {
    const events: WatchEvent[] = [];
    for (const [key, kv] of next) {
      if (kv) {
        this.data.set(key, kv);
        events.push({ type: "put", key, value: kv.value, modRevision: revision });
      } else {
        this.data.delete(key);
        events.push({ type: "delete", key, value: Buffer.alloc(0), modRevision: revision });
      }
    }
    this.rev = revision;
    const batch: WatchBatch = { revision, events };
    this.history.push(batch);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.historyStart = dropped[dropped.length - 1]!.revision + 1;
    }
    for (const w of this.watchers) this.enqueue(w, batch);
  }

  private enqueue(w: WatchState, batch: WatchBatch): void {
    if (w.closed || batch.revision < w.next) return;
    const events = batch.events.filter((e) => e.key.startsWith(w.prefix));
    if (events.length === 0) return;
    w.queue.push({ revision: batch.revision, events });
    w.next = batch.revision + 1;
    if (!w.scheduled) {
      w.scheduled = true;
      setImmediate(() => this.drain(w));
    }
  }

  private drain(w: WatchState): void {
    w.scheduled = false;
    while (!w.closed && w.queue.length > 0) {
      const batch = w.queue.shift()!;
      try {
        w.options.onEvents(batch);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  watch(prefix: string, options: WatchOptions): Watcher {
    const w: WatchState = { prefix, options, next: Math.max(1, options.fromRevision), queue: [], scheduled: false, closed: false };
    const watcher: Watcher = {
      close: () => {
        w.closed = true;
        this.watchers.delete(w);
      },
    };
    if (this.closed) {
      setImmediate(() => options.onError(new StoreError(`store ${this.dir} is closed`)));
      return watcher;
    }
    if (w.next < this.historyStart && w.next <= this.rev) {
      const compactRevision = this.historyStart - 1;
      setImmediate(() => {
        if (!w.closed) options.onError(new StoreCompactedError(compactRevision));
      });
      return watcher;
    }
    for (const batch of this.history) this.enqueue(w, batch);
    this.watchers.add(w);
    return watcher;
  }

  async compact(revision: number): Promise<void> {
    if (this.closed) throw new StoreError(`store ${this.dir} is closed`);
    const upTo = Math.min(revision, this.rev);
    if (upTo <= this.historyStart) return;
    this.history = this.history.filter((b) => b.revision >= upTo);
    this.historyStart = upTo;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    for (const w of this.watchers) w.closed = true;
    this.watchers.clear();
    openDirs.delete(this.dir);
    await rm(join(this.dir, "LOCK"), { force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
