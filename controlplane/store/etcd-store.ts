// The replicated store: etcd v3 through its JSON gateway (/v3/kv/range, /v3/kv/txn, /v3/watch),
// spoken with fetch. Keys and values travel base64-encoded; 64-bit numbers as decimal strings.
// The gateway is part of every etcd 3.4+ server, so this needs no client library (the etcd3 npm
// package would bring gRPC stubs, a lease/lock/election layer and its own retry policy that we do
// not use; the four calls below are the whole contract).
//
// Several endpoints may be given: a request that cannot reach one tries the next, and the one that
// answered is used first from then on. Requests time out after `requestTimeoutMs`.
// A watch is one long POST whose response streams newline-separated JSON results; when the stream
// breaks (an endpoint down, a proxy's idle timeout) it is opened again from the revision after the
// last one delivered, so no change is skipped or repeated.
import {
  StoreCompactedError, StoreError,
  type Compare, type KeyValue, type ListOptions, type ListResult, type Op, type Store, type TxnResult, type WatchBatch, type WatchEvent, type Watcher, type WatchOptions,
} from "./types.js";

export interface EtcdStoreOptions {
  /**
   * How long one request may take in all, every endpoint tried included (the watch stream
   * excepted); default 3000 ms. etcd itself answers a request it cannot commit (no quorum) only
   * after about 7 s; the control plane's callers should hear UNAVAILABLE well before their own
   * deadline (msmctl's is 10 s).
   */
  readonly requestTimeoutMs?: number;
  /**
   * How often a watch checks that its stream still delivers (default 5000 ms): a stream whose
   * connection went half-open (a NAT entry dropped, a member replaced behind a partition) hangs
   * without an error, for minutes, until TCP gives up. The check asks etcd for the newest
   * modification under the watched prefix; one the stream has not delivered by the next check
   * means the stream is stalled, and it is opened again from the revision after the last batch.
   */
  readonly watchCheckMs?: number;
  /**
   * Whether open() waits for etcd to answer (default true). A control plane opens it without
   * waiting: it starts while etcd is down, NOT_SERVING until etcd answers.
   */
  readonly waitForAnswer?: boolean;
}

interface RawKv {
  key: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
}

interface RawHeader {
  revision?: string;
}

const b64 = (s: string | Buffer): string => Buffer.from(s).toString("base64");

/** The smallest key greater than every key starting with `prefix` (etcd's range_end). */
export function prefixEnd(prefix: string): Buffer {
  const bytes = Buffer.from(prefix);
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i]! += 1;
      return end;
    }
  }
  return Buffer.from([0]); // every key
}

function toKeyValue(raw: RawKv): KeyValue {
  return {
    key: Buffer.from(raw.key, "base64").toString(),
    value: Buffer.from(raw.value ?? "", "base64"),
    createRevision: Number(raw.create_revision ?? 0),
    modRevision: Number(raw.mod_revision ?? 0),
    version: Number(raw.version ?? 0),
  };
}

/** What an operator does about etcd's NOSPACE alarm. */
export const NOSPACE_HINT = "compact and defragment it (etcdctl compact REV; etcdctl defrag), then disarm the alarm (etcdctl alarm disarm), or raise its --quota-backend-bytes";

/** A clock further than this from etcd's is logged (times replicas compare are taken by etcd's anyway). */
const CLOCK_WARN_MS = 5000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class EtcdStore implements Store {
  readonly description: string;
  readonly maxTxnOps = 128; // etcd's default --max-txn-ops
  readonly maxValueBytes = 1 << 20; // under etcd's default --max-request-bytes (1.5 MiB)
  private readonly endpoints: string[];
  private preferred = 0;
  private readonly timeoutMs: number;
  private readonly watchCheckMs: number;
  private readonly watchers = new Set<{ close(): void }>();
  private closed = false;
  /** etcd's clock minus ours, ms, from its answers' Date headers (whole seconds: within about a second). */
  private clockOffsetMs = 0;
  private clockKnown = false;
  /** Called when the offset passes CLOCK_WARN_MS, and when it comes back within it. */
  onClockOffset: ((offsetMs: number) => void) | undefined;
  private clockWarned = false;

  constructor(endpoints: readonly string[], options: EtcdStoreOptions = {}) {
    if (endpoints.length === 0) throw new StoreError("etcd: no endpoint given");
    this.endpoints = endpoints.map((e) => {
      let url: URL;
      try {
        url = new URL(e);
      } catch {
        throw new StoreError(`etcd: '${e}' is not a URL (expected http://HOST:PORT)`);
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") throw new StoreError(`etcd: '${e}' must be an http:// or https:// URL`);
      return url.origin;
    });
    this.description = `etcd:${this.endpoints.join(",")}`;
    this.timeoutMs = options.requestTimeoutMs ?? 3000;
    this.watchCheckMs = options.watchCheckMs ?? 5000;
  }

  /** Connects and checks that etcd answers (a range request), so a wrong URL fails at start. */
  static async open(endpoints: readonly string[], options: EtcdStoreOptions = {}): Promise<EtcdStore> {
    const store = new EtcdStore(endpoints, options);
    if (options.waitForAnswer !== false) await store.revision();
    return store;
  }

  private async call<T>(path: string, body: unknown): Promise<T> {
    if (this.closed) throw new StoreError(`${this.description}: store is closed`);
    const text = JSON.stringify(body);
    const failures: string[] = [];
    const deadline = Date.now() + this.timeoutMs; // for every attempt together
    // Two rounds: a kept-alive connection to a member that restarted fails once, then works.
    // Sending a request twice is safe for this store's users: every write the control plane
    // makes is either guarded by a compare or an idempotent put.
    for (let i = 0; i < this.endpoints.length * 2; i++) {
      if (i === this.endpoints.length) await sleep(Math.min(100, Math.max(0, deadline - Date.now())));
      const left = deadline - Date.now();
      if (left <= 0) break;
      const index = (this.preferred + i) % this.endpoints.length;
      const endpoint = this.endpoints[index]!;
      let res: Response;
      let reply: string;
      const sentAt = Date.now();
      try {
        res = await fetch(`${endpoint}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: text,
          // a silent member must not use up the time the others could answer in
          signal: AbortSignal.timeout(Math.min(left, Math.max(1000, this.timeoutMs / this.endpoints.length))),
        });
        reply = await res.text();
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        const why = (err as Error).name === "TimeoutError" ? "no answer in time" : cause?.code ?? cause?.message ?? (err as Error).message;
        failures.push(`${endpoint}: ${why}`);
        continue; // unreachable or silent: try the next endpoint
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(reply);
      } catch {
        // not quoted: a range reply holds segments' values, their keys among them
        throw new StoreError(`etcd ${endpoint}${path}: HTTP ${res.status}, not JSON (${reply.length} bytes)`);
      }
      if (!res.ok) {
        const message = (parsed as { message?: string; error?: string }).message ?? (parsed as { error?: string }).error ?? reply.slice(0, 200);
        // "etcdserver: leader changed", "no leader", "request timed out", a member shutting down ("grpc:
        // the client connection is closing") and the like: another member may do better
        if (res.status >= 500 || /leader|timed out|unavailable|deadline|connection is closing/i.test(message)) {
          failures.push(`${endpoint}: ${message}`);
          continue;
        }
        // its space quota reached: it still answers reads (so health probes pass) and refuses every write
        if (/database space exceeded|NOSPACE/i.test(message)) throw new StoreError(`etcd ${endpoint} is out of space and refuses every write (${message}): ${NOSPACE_HINT}`);
        throw new StoreError(`etcd ${endpoint}${path}: ${message}`);
      }
      this.preferred = index;
      this.noteClock(res.headers.get("date"), sentAt);
      return parsed as T;
    }
    const seen = [...new Set(failures)];
    const hint = seen.some((f) => /no answer|timed out|deadline|leader/.test(f)) ? "; is a quorum of its members up?" : "";
    throw new StoreError(`etcd unreachable (${seen.join("; ")})${hint}`);
  }

  /**
   * The offset from an answer's Date header: etcd stamped it (truncated to the second) between our
   * send and now, so its true time then was in [date, date + 1 s) and ours in [sentAt, now], and the
   * offset in [date - now, date + 1 s - sentAt]. The first answer gives that range's middle; each
   * later one moves the estimate only as far as it must to stay in its range. (Taking every
   * answer's middle made the offset, and every time stamped by it, a stats page's arrival, a
   * last_seen, jump by up to a second from one answer to the next with the clocks in step:
   * `msmctl top` read a steady 100 packets/s as 79 and 149.) A clock that steps is followed at the
   * next answer: the estimate moves to the edge of its range, then closes in.
   */
  private noteClock(date: string | null, sentAt: number): void {
    const stamped = date ? Date.parse(date) : NaN;
    if (!Number.isFinite(stamped)) return;
    const low = stamped - Date.now();
    const high = stamped + 1000 - sentAt;
    const offset = Math.round(this.clockKnown ? Math.min(Math.max(this.clockOffsetMs, low), high) : (low + high) / 2);
    this.clockKnown = true;
    this.clockOffsetMs = offset;
    const off = Math.abs(offset) > CLOCK_WARN_MS;
    if (off !== this.clockWarned) {
      this.clockWarned = off;
      this.onClockOffset?.(offset);
    }
  }

  now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  async get(key: string): Promise<KeyValue | undefined> {
    const r = await this.call<{ kvs?: RawKv[] }>("/v3/kv/range", { key: b64(key) });
    return r.kvs?.[0] ? toKeyValue(r.kvs[0]) : undefined;
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListResult> {
    let key = prefix === "" ? Buffer.from([0]) : Buffer.from(prefix);
    // the smallest key after startAfter is startAfter + "\0"
    if (options.startAfter !== undefined && Buffer.compare(Buffer.from(`${options.startAfter}\0`), key) > 0) key = Buffer.from(`${options.startAfter}\0`);
    const r = await this.call<{ header?: RawHeader; kvs?: RawKv[]; more?: boolean }>("/v3/kv/range", {
      key: b64(key),
      range_end: b64(prefixEnd(prefix)),
      ...(options.limit !== undefined ? { limit: String(options.limit) } : {}),
      ...(options.keysOnly ? { keys_only: true } : {}),
    });
    return { items: (r.kvs ?? []).map(toKeyValue), revision: Number(r.header?.revision ?? 0), more: r.more === true };
  }

  async revision(): Promise<number> {
    const r = await this.call<{ header?: RawHeader }>("/v3/kv/range", { key: b64("\0"), count_only: true });
    return Number(r.header?.revision ?? 0);
  }

  async txn(compare: readonly Compare[], ops: readonly Op[]): Promise<TxnResult> {
    if (compare.length > this.maxTxnOps || ops.length > this.maxTxnOps) throw new StoreError(`too many operations in one transaction (etcd takes at most ${this.maxTxnOps})`);
    for (const op of ops) {
      if (op.type === "put" && Buffer.byteLength(op.value) > this.maxValueBytes) {
        throw new StoreError(`value of ${op.key} is ${Buffer.byteLength(op.value)} bytes; the store takes at most ${this.maxValueBytes}`);
      }
    }
    const body = {
      compare: compare.map((c) => ({ key: b64(c.key), target: "MOD", result: "EQUAL", mod_revision: String(c.modRevision) })),
      success: ops.map((op) =>
        op.type === "put" ? { request_put: { key: b64(op.key), value: b64(op.value) } } : { request_delete_range: { key: b64(op.key) } },
      ),
    };
    const r = await this.call<{ header?: RawHeader; succeeded?: boolean }>("/v3/kv/txn", body);
    return { succeeded: r.succeeded === true, revision: Number(r.header?.revision ?? 0) };
  }

  async compact(revision: number): Promise<void> {
    try {
      await this.call("/v3/kv/compaction", { revision: String(revision) });
    } catch (err) {
      if (err instanceof StoreError && /compacted/.test(err.message)) return; // already
      throw err;
    }
  }

  /** The newest modification revision of a key under `prefix` (0: none). Deletions are not seen. */
  private async newestModRevision(prefix: string): Promise<number> {
    const key = prefix === "" ? Buffer.from([0]) : Buffer.from(prefix);
    const r = await this.call<{ kvs?: RawKv[] }>("/v3/kv/range", {
      key: b64(key), range_end: b64(prefixEnd(prefix)), limit: "1", sort_order: "DESCEND", sort_target: "MOD", keys_only: true,
    });
    return Number(r.kvs?.[0]?.mod_revision ?? 0);
  }

  watch(prefix: string, options: WatchOptions): Watcher {
    let next = Math.max(1, options.fromRevision);
    let stopped = false;
    let controller: AbortController | undefined;
    // the stall check: `behindAt` is the `next` a check found behind the store; still so at the next check: stalled
    let behindAt = 0;
    let checking = false;
    const checker = setInterval(() => {
      if (stopped || checking) return;
      checking = true;
      const at = next;
      this.newestModRevision(prefix).then((newest) => {
        if (stopped || at !== next) return void (behindAt = 0);
        if (newest < at) return void (behindAt = 0);
        if (behindAt !== at) return void (behindAt = at);
        behindAt = 0;
        options.onStall?.(`etcd has revision ${newest} under ${prefix || "every key"} but the watch stream delivered nothing from ${at} on in ${this.watchCheckMs} ms: opening it again from ${at}`);
        controller?.abort();
      }, () => undefined /* etcd unreachable: the stream's own errors say so */).finally(() => (checking = false));
    }, this.watchCheckMs);
    checker.unref();
    const self = { close: (): void => {
      stopped = true;
      clearInterval(checker);
      controller?.abort();
      this.watchers.delete(self);
    } };
    this.watchers.add(self);
    const fail = (err: Error): void => {
      if (stopped) return;
      self.close();
      options.onError(err);
    };

    const stream = async (endpoint: string): Promise<void> => {
      controller = new AbortController();
      const key = prefix === "" ? Buffer.from([0]) : Buffer.from(prefix);
      const res = await fetch(`${endpoint}/v3/watch`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ create_request: { key: b64(key), range_end: b64(prefixEnd(prefix)), start_revision: String(next) } }),
        signal: controller.signal,
      });
      if (!res.ok || !res.body) throw new StoreError(`etcd ${endpoint}/v3/watch: HTTP ${res.status}`);
      const decoder = new TextDecoder();
      let buffered = "";
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffered += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line !== "") handle(line);
          if (stopped) return;
        }
      }
    };

    const handle = (line: string): void => {
      const msg = JSON.parse(line) as {
        result?: { canceled?: boolean; compact_revision?: string; cancel_reason?: string; events?: { type?: string; kv: RawKv }[] };
        error?: { message?: string };
      };
      if (msg.error) throw new StoreError(`etcd watch: ${msg.error.message ?? line}`);
      const result = msg.result;
      if (!result) return;
      if (result.canceled) {
        const compact = Number(result.compact_revision ?? 0);
        if (compact > 0) throw new StoreCompactedError(compact);
        throw new StoreError(`etcd watch canceled: ${result.cancel_reason ?? "no reason given"}`);
      }
      const events = result.events ?? [];
      // one response may carry several revisions: deliver them one by one, in order
      let batch: WatchEvent[] = [];
      let batchRevision = 0;
      const flush = (): void => {
        if (batch.length === 0) return;
        const b: WatchBatch = { revision: batchRevision, events: batch };
        next = batchRevision + 1;
        batch = [];
        try {
          options.onEvents(b);
        } catch (err) {
          queueMicrotask(() => {
            throw err; // the listener's own bug: not a reason to reopen the stream
          });
        }
      };
      for (const e of events) {
        const kv = toKeyValue(e.kv);
        if (kv.modRevision < next) continue; // already delivered before a reconnect
        if (kv.modRevision !== batchRevision) flush();
        batchRevision = kv.modRevision;
        batch.push({ type: e.type === "DELETE" ? "delete" : "put", key: kv.key, value: kv.value, modRevision: kv.modRevision });
        if (stopped) return;
      }
      flush();
    };

    void (async () => {
      let attempt = 0;
      let index = this.preferred;
      while (!stopped && !this.closed) {
        const endpoint = this.endpoints[index % this.endpoints.length]!;
        try {
          await stream(endpoint);
          attempt = 0; // the stream ended cleanly (an idle timeout): open it again
        } catch (err) {
          if (stopped) return;
          if (err instanceof StoreCompactedError) return fail(err);
          if (err instanceof StoreError && /canceled/.test(err.message)) return fail(err);
          attempt++;
          index++;
        }
        if (!stopped) await sleep(Math.min(2000, attempt === 0 ? 50 : 100 * 2 ** Math.min(attempt, 5)));
      }
    })();
    return self;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.watchers]) w.close();
  }
}
