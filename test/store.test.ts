// The control plane's store, the same semantics on both backends: revisions, prefix listing,
// transactions guarded by modification revisions (no lost update under concurrency), watches in
// revision order from any revision still in history; the file store survives a restart and a
// crash in the middle of a transaction; etcd is a real one started for the test.
import * as assert from "uvu/assert";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "./lib/suite.js";
import { startEtcd, type TestEtcd } from "./lib/etcd.js";
import {
  EtcdStore, FileStore, openStore, StoreCompactedError, StoreError,
  type Store, type WatchBatch, type Watcher,
} from "../controlplane/store/index.js";

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const put = (key: string, value: string) => ({ type: "put" as const, key, value });
const del = (key: string) => ({ type: "delete" as const, key });

/** Collects a watch's batches. */
function collect(store: Store, prefix: string, fromRevision: number): { batches: WatchBatch[]; errors: Error[]; watcher: Watcher } {
  const batches: WatchBatch[] = [];
  const errors: Error[] = [];
  const watcher = store.watch(prefix, { fromRevision, onEvents: (b) => batches.push(b), onError: (e) => errors.push(e) });
  return { batches, errors, watcher };
}

interface Backend {
  name: string;
  open(): Promise<Store>;
  /** A fresh key prefix per test: the etcd is shared by the tests of its suite. */
  prefix(): string;
}

function semantics(backend: Backend): void {
  const test = suite(`store semantics: ${backend.name}`, { timeoutMs: 30_000 });
  let store: Store;
  test.before(async () => {
    store = await backend.open();
  });
  test.after(async () => {
    await store?.close();
  });

  test("a put bumps the global revision; the key records create/mod revision and version", async () => {
    const p = backend.prefix();
    const r0 = await store.revision();
    assert.ok(r0 >= 1, "revisions start at 1");
    const t1 = await store.txn([], [put(`${p}a`, "one")]);
    assert.ok(t1.succeeded);
    assert.is(t1.revision, r0 + 1);
    const t2 = await store.txn([], [put(`${p}a`, "two")]);
    assert.is(t2.revision, r0 + 2);
    const kv = await store.get(`${p}a`);
    assert.ok(kv);
    assert.is(kv.value.toString(), "two");
    assert.is(kv.createRevision, r0 + 1);
    assert.is(kv.modRevision, r0 + 2);
    assert.is(kv.version, 2);
    assert.is(await store.get(`${p}missing`), undefined);
    assert.is(await store.revision(), r0 + 2);
  });

  test("list returns the keys under a prefix in byte order, with the revision it reflects", async () => {
    const p = backend.prefix();
    await store.txn([], [put(`${p}x/b`, "2"), put(`${p}x/a`, "1"), put(`${p}xa`, "not under x/"), put(`${p}x/c`, Buffer.from([0, 255]).toString("latin1"))]);
    const l = await store.list(`${p}x/`);
    assert.equal(l.items.map((i) => i.key), [`${p}x/a`, `${p}x/b`, `${p}x/c`]);
    assert.is(l.revision, await store.revision());
    const all = await store.list(p);
    assert.is(all.items.length, 4);
    const bin = await store.txn([], [{ type: "put", key: `${p}bin`, value: Buffer.from([0, 1, 2, 254, 255]) }]);
    assert.ok(bin.succeeded);
    assert.equal([...(await store.get(`${p}bin`))!.value], [0, 1, 2, 254, 255], "binary values round-trip");
  });

  test("a listing in parts: startAfter, limit (with `more`), keys only", async () => {
    const p = backend.prefix();
    await store.txn([], ["a", "b", "c", "d", "e"].map((k) => put(`${p}r/${k}`, `value ${k}`)));
    await store.txn([], [put(`${p}r0`, "beside the prefix")]);
    const first = await store.list(`${p}r/`, { limit: 2 });
    assert.equal([first.items.map((i) => i.key.slice(p.length)), first.more], [["r/a", "r/b"], true]);
    const rest = await store.list(`${p}r/`, { startAfter: first.items[1]!.key, limit: 2 });
    assert.equal([rest.items.map((i) => i.key.slice(p.length)), rest.more], [["r/c", "r/d"], true]);
    const last = await store.list(`${p}r/`, { startAfter: rest.items[1]!.key, limit: 2 });
    assert.equal([last.items.map((i) => i.key.slice(p.length)), last.more], [["r/e"], false]);
    assert.is((await store.list(`${p}r/`)).more, false);
    const keys = await store.list(`${p}r/`, { keysOnly: true });
    assert.equal([keys.items.length, keys.items.every((i) => i.value.length === 0 && i.modRevision > 0)], [5, true]);
    // a startAfter before the prefix lists from the prefix's start
    assert.is((await store.list(`${p}r/`, { startAfter: `${p}` })).items.length, 5);
  });

  test("a transaction whose compare fails writes nothing; one that holds writes every op at one revision", async () => {
    const p = backend.prefix();
    const create = await store.txn([{ key: `${p}k`, modRevision: 0 }], [put(`${p}k`, "v1"), put(`${p}other`, "o")]);
    assert.ok(create.succeeded, "modRevision 0 = absent");
    const again = await store.txn([{ key: `${p}k`, modRevision: 0 }], [put(`${p}k`, "v2")]);
    assert.not.ok(again.succeeded, "the key exists now");
    assert.is(again.revision, create.revision, "a failed txn does not bump the revision");
    const kv = (await store.get(`${p}k`))!;
    const stale = await store.txn([{ key: `${p}k`, modRevision: kv.modRevision - 1 }, { key: `${p}other`, modRevision: kv.modRevision }], [put(`${p}k`, "v3"), del(`${p}other`)]);
    assert.not.ok(stale.succeeded);
    assert.is((await store.get(`${p}k`))!.value.toString(), "v1");
    assert.ok(await store.get(`${p}other`), "nothing of a failed txn is applied");
    const ok = await store.txn([{ key: `${p}k`, modRevision: kv.modRevision }], [put(`${p}k`, "v4"), del(`${p}other`), put(`${p}new`, "n")]);
    assert.ok(ok.succeeded);
    assert.is(ok.revision, create.revision + 1);
    assert.is((await store.get(`${p}k`))!.modRevision, ok.revision);
    assert.is((await store.get(`${p}new`))!.modRevision, ok.revision);
    assert.is(await store.get(`${p}other`), undefined);
  });

  test("20 concurrent read-modify-write increments guarded by mod revision: none lost", async () => {
    const p = backend.prefix();
    const key = `${p}counter`;
    let conflicts = 0;
    const increment = async (): Promise<void> => {
      for (;;) {
        const kv = await store.get(key);
        const n = kv ? Number(kv.value.toString()) : 0;
        const r = await store.txn([{ key, modRevision: kv?.modRevision ?? 0 }], [put(key, String(n + 1))]);
        if (r.succeeded) return;
        conflicts++;
      }
    };
    await Promise.all(Array.from({ length: 20 }, increment));
    const kv = (await store.get(key))!;
    assert.is(kv.value.toString(), "20");
    assert.is(kv.version, 20);
    assert.ok(conflicts > 0, "the increments did race (otherwise this test proves nothing)");
  });

  test("a watch reports puts and deletes under its prefix, one batch per revision, in order", async () => {
    const p = backend.prefix();
    const from = (await store.revision()) + 1;
    const w = collect(store, `${p}w/`, from);
    try {
      const r1 = await store.txn([], [put(`${p}w/a`, "1"), put(`${p}w/b`, "2"), put(`${p}elsewhere`, "x")]);
      await store.txn([], [put(`${p}elsewhere`, "y")]); // no event under the prefix
      const r3 = await store.txn([], [del(`${p}w/a`)]);
      const r4 = await store.txn([], [put(`${p}w/b`, "3")]);
      await waitFor(() => w.batches.length >= 3, 5000, "three batches");
      await sleep(100);
      assert.equal(w.batches.map((b) => b.revision), [r1.revision, r3.revision, r4.revision]);
      assert.equal(w.batches[0]!.events.map((e) => [e.type, e.key, e.value.toString()]).sort(), [["put", `${p}w/a`, "1"], ["put", `${p}w/b`, "2"]]);
      assert.equal(w.batches[1]!.events.map((e) => [e.type, e.key]), [["delete", `${p}w/a`]]);
      assert.is(w.batches[2]!.events[0]!.value.toString(), "3");
      assert.equal(w.errors, []);

      // from a revision in the past: replays exactly what happened since
      const replay = collect(store, `${p}w/`, r3.revision);
      await waitFor(() => replay.batches.length >= 2, 5000, "the replay");
      await sleep(100);
      replay.watcher.close();
      assert.equal(replay.batches.map((b) => b.revision), [r3.revision, r4.revision]);

      // closed: nothing more
      w.watcher.close();
      await store.txn([], [put(`${p}w/c`, "4")]);
      await sleep(200);
      assert.is(w.batches.length, 3);
    } finally {
      w.watcher.close();
    }
  });

  test("compact forgets the history before a revision: a watch from earlier fails, from there on works", async () => {
    const p = backend.prefix();
    await store.txn([], [put(`${p}c`, "1")]);
    const r2 = await store.txn([], [put(`${p}c`, "2")]);
    const r3 = await store.txn([], [put(`${p}c`, "3")]);
    await store.compact(r3.revision);
    await store.compact(r2.revision); // already compacted further: nothing happens
    assert.is((await store.get(`${p}c`))!.value.toString(), "3", "values stay");
    const old = collect(store, `${p}`, r2.revision);
    await waitFor(() => old.errors.length > 0, 5000, "the compaction error");
    assert.instance(old.errors[0], StoreCompactedError);
    const ok = collect(store, `${p}`, r3.revision);
    await waitFor(() => ok.batches.length === 1, 5000, "the batch at the compaction revision");
    ok.watcher.close();
    assert.is(ok.batches[0]!.revision, r3.revision);
  });

  test.run();
}

// ---------------------------------------------------------------- file store
const tmpDirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), "msm-store-"));
  tmpDirs.push(d);
  return d;
};
process.on("exit", () => tmpDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

let counter = 0;
semantics({ name: "file", open: () => FileStore.open(tmp()), prefix: () => `/t${++counter}/` });

const file = suite("file store", { timeoutMs: 30_000 });

file("survives a restart: values, create/mod revisions, versions and the global revision", async () => {
  const dir = tmp();
  const a = await FileStore.open(dir);
  await a.txn([], [put("/a", "1"), put("/b", "2")]);
  const last = await a.txn([], [put("/a", "3"), del("/b")]);
  const solo = await a.txn([], [put("/solo", "x")]); // one put: no journal, meta.json not rewritten
  await a.close();
  const b = await FileStore.open(dir);
  try {
    assert.is(await b.revision(), solo.revision);
    assert.is((await b.get("/solo"))!.modRevision, solo.revision);
    const kv = (await b.get("/a"))!;
    assert.equal([kv.value.toString(), kv.createRevision, kv.modRevision, kv.version], ["3", last.revision - 1, last.revision, 2]);
    assert.is(await b.get("/b"), undefined);
    const after = await b.txn([], [put("/c", "x")]);
    assert.is(after.revision, solo.revision + 1, "revisions go on from where they were");
  } finally {
    await b.close();
  }
});

file("its values may hold keys: keys/ is 0700 (also when it was left open), a directory it creates is 0700, every file 0600", async () => {
  const dir = tmp();
  mkdirSync(join(dir, "keys"), { mode: 0o755 }); // as an older version, or a umask, left it
  const fresh = join(tmp(), "new-store");
  const b = await FileStore.open(fresh);
  await b.close();
  const a = await FileStore.open(dir);
  try {
    await a.txn([], [put("/one", "secret")]); // one put: written without the journal
    await a.txn([], [put("/a", "1"), put("/b", "2")]); // through the journal and meta.json
    const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8);
    assert.equal([mode(join(dir, "keys")), mode(fresh), mode(join(fresh, "keys"))], ["700", "700", "700"]);
    const files = [join(dir, "meta.json"), join(dir, "LOCK"), ...readdirSync(join(dir, "keys")).map((f) => join(dir, "keys", f))];
    assert.ok(files.length >= 5, `files: ${files.join(", ")}`);
    for (const f of files) assert.is(mode(f), "600", f);
  } finally {
    await a.close();
  }
});

file("a revision is never reused after a delete and a restart", async () => {
  const dir = tmp();
  const a = await FileStore.open(dir);
  await a.txn([], [put("/a", "1")]);
  const d = await a.txn([], [del("/a")]); // no key carries this revision any more
  await a.close();
  const b = await FileStore.open(dir);
  try {
    assert.is(await b.revision(), d.revision);
    assert.is((await b.txn([], [put("/x", "y")])).revision, d.revision + 1);
  } finally {
    await b.close();
  }
});

file("a transaction interrupted after its journal was written is completed at the next open", async () => {
  const dir = tmp();
  const a = await FileStore.open(dir);
  const r = await a.txn([], [put("/a", "1"), put("/b", "2")]);
  await a.close();
  // what a crash between the commit point and the key files leaves behind
  const rec = (key: string, value: string, create: number) => ({ key, value: Buffer.from(value).toString("base64"), createRevision: create, modRevision: r.revision + 1, version: 2 });
  writeFileSync(join(dir, "journal.json"), JSON.stringify({ revision: r.revision + 1, puts: [rec("/a", "A", r.revision)], deletes: ["/b"] }));
  writeFileSync(join(dir, "keys", "leftover.json.tmp-1-1"), "{ half a fi");
  const b = await FileStore.open(dir);
  try {
    assert.is(await b.revision(), r.revision + 1);
    assert.is((await b.get("/a"))!.value.toString(), "A");
    assert.is(await b.get("/b"), undefined);
  } finally {
    await b.close();
  }
});

file("one process at a time: a second open of the directory is refused", async () => {
  const dir = tmp();
  const a = await FileStore.open(dir);
  try {
    let refused: unknown;
    await FileStore.open(dir).catch((e: unknown) => (refused = e));
    assert.instance(refused, StoreError);
    assert.match((refused as Error).message, /already open/);
  } finally {
    await a.close();
    await a.close(); // twice is fine
  }
  const again = await FileStore.open(dir);
  await again.close();
});

file("a watch from before the open reports compaction (the history starts at the open)", async () => {
  const dir = tmp();
  const a = await FileStore.open(dir);
  await a.txn([], [put("/a", "1")]);
  await a.txn([], [put("/a", "2")]);
  await a.close();
  const b = await FileStore.open(dir);
  try {
    const w = collect(b, "/", 2);
    await waitFor(() => w.errors.length > 0, 2000, "the compaction error");
    assert.instance(w.errors[0], StoreCompactedError);
    const ok = collect(b, "/", (await b.revision()) + 1);
    await b.txn([], [put("/a", "3")]);
    await waitFor(() => ok.batches.length === 1, 2000, "a batch");
    ok.watcher.close();
  } finally {
    await b.close();
  }
});

file("openStore parses specs", async () => {
  const s = await openStore(`file:${tmp()}`);
  assert.instance(s, FileStore);
  await s.close();
  for (const bad of ["file:", "etcd:", "redis://x", "/plain/dir"]) {
    let err: unknown;
    await openStore(bad).catch((e: unknown) => (err = e));
    assert.instance(err, StoreError, bad);
  }
});

file.run();

// ---------------------------------------------------------------- etcd
let etcd: TestEtcd | undefined;
const etcdReady = startEtcd().then((e) => (etcd = e));
process.on("exit", () => void etcd?.stop());

semantics({
  name: "etcd",
  open: async () => {
    await etcdReady;
    return openStore(etcd!.spec);
  },
  prefix: () => `/t${++counter}/`,
});

const etcdOnly = suite("etcd store", { timeoutMs: 30_000 });

etcdOnly("a watch whose start revision was compacted fails with StoreCompactedError", async () => {
  await etcdReady;
  const store = await EtcdStore.open([etcd!.url]);
  try {
    await store.txn([], [put("/compact/a", "1")]);
    const r = await store.txn([], [put("/compact/a", "2")]);
    const res = await fetch(`${etcd!.url}/v3/kv/compaction`, { method: "POST", body: JSON.stringify({ revision: String(r.revision) }) });
    assert.ok(res.ok);
    const w = collect(store, "/compact/", r.revision - 1);
    await waitFor(() => w.errors.length > 0, 5000, "the compaction error");
    assert.instance(w.errors[0], StoreCompactedError);
    assert.is((w.errors[0] as StoreCompactedError).compactRevision, r.revision);
  } finally {
    await store.close();
  }
});

etcdOnly("etcd's clock, from its answers' whole-second Date headers, is estimated once and moved only as far as an answer proves it wrong: with the clocks in step it stays put, not jumping by up to a second from one answer to the next", async () => {
  await etcdReady;
  const store = await EtcdStore.open([etcd!.url]);
  try {
    // answers 113 ms apart: every phase within a second over the first ten (each Date header
    // truncates etcd's time to the second at another place)
    const offsets: number[] = [];
    for (let i = 0; i < 30; i++) {
      await store.get("/clock/x");
      offsets.push(store.now() - Date.now());
      await new Promise((r) => setTimeout(r, 113));
    }
    const settled = offsets.slice(10);
    const spread = Math.max(...settled) - Math.min(...settled);
    assert.ok(spread <= 150, `etcd's clock moved by ${spread} ms between answers with the clocks in step: ${offsets.join(" ")}`);
    // one host: the true offset is 0, and every answer's range holds it
    assert.ok(settled.every((o) => Math.abs(o) <= 600), offsets.join(" "));
  } finally {
    await store.close();
  }
});

etcdOnly("an unreachable endpoint is skipped for the next one; all unreachable is a clear error", async () => {
  await etcdReady;
  const store = await EtcdStore.open(["http://127.0.0.1:9", etcd!.url]);
  try {
    assert.ok((await store.txn([], [put("/failover/a", "1")])).succeeded);
    assert.is((await store.get("/failover/a"))!.value.toString(), "1");
  } finally {
    await store.close();
  }
  let err: unknown;
  await EtcdStore.open(["http://127.0.0.1:9"]).catch((e: unknown) => (err = e));
  assert.instance(err, StoreError);
  assert.match((err as Error).message, /etcd unreachable .*127\.0\.0\.1:9/);
});

etcdOnly("too many ops in one transaction is refused before it reaches etcd", async () => {
  await etcdReady;
  const store = await EtcdStore.open([etcd!.url]);
  try {
    let err: unknown;
    await store.txn([], Array.from({ length: 129 }, (_, i) => put(`/many/${i}`, "x"))).catch((e: unknown) => (err = e));
    assert.instance(err, StoreError);
    assert.match((err as Error).message, /at most 128/);
  } finally {
    await store.close();
  }
});

etcdOnly("a watch survives an etcd restart: what changed after it arrives, nothing twice, nothing skipped", async () => {
  await etcdReady;
  const store = await EtcdStore.open([etcd!.url]);
  try {
    const w = collect(store, "/restart/", (await store.revision()) + 1);
    const r1 = await store.txn([], [put("/restart/a", "1")]);
    await waitFor(() => w.batches.length === 1, 5000, "the first batch");
    await etcd!.restart();
    const r2 = await store.txn([], [put("/restart/a", "2")]);
    const r3 = await store.txn([], [put("/restart/b", "3")]);
    await waitFor(() => w.batches.length >= 3, 10_000, "the batches after the restart");
    await sleep(200);
    w.watcher.close();
    assert.equal(w.batches.map((b) => b.revision), [r1.revision, r2.revision, r3.revision]);
    assert.equal(w.errors, []);
  } finally {
    await store.close();
  }
});

/**
 * A TCP relay to etcd whose connections open so far can be made to go black (they stay open and
 * carry nothing, as a connection whose peer vanished behind a NAT or partition), while new ones
 * pass: a half-open watch stream that no error ends.
 */
async function blackholingRelay(target: URL): Promise<{ url: string; blackhole(): number; close(): void }> {
  const { createServer, connect } = await import("node:net");
  const pairs: { black: boolean; sockets: import("node:net").Socket[] }[] = [];
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    const pair = { black: false, sockets: [client, upstream] };
    pairs.push(pair);
    for (const s of pair.sockets) s.on("error", () => {});
    client.on("data", (d) => void (pair.black || upstream.write(d)));
    upstream.on("data", (d) => void (pair.black || client.write(d)));
    client.on("close", () => void (pair.black || upstream.destroy()));
    upstream.on("close", () => void (pair.black || client.destroy()));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    blackhole: () => {
      for (const p of pairs) p.black = true;
      return pairs.length;
    },
    close: () => {
      for (const p of pairs) for (const s of p.sockets) s.destroy();
      server.close();
    },
  };
}

etcdOnly("a watch whose connection goes half-open (no error, no data) notices the change it missed and opens again: it arrives, nothing twice", async () => {
  await etcdReady;
  const relay = await blackholingRelay(new URL(etcd!.url));
  const viaRelay = await EtcdStore.open([relay.url], { watchCheckMs: 500 });
  const direct = await EtcdStore.open([etcd!.url]);
  const stalls: string[] = [];
  try {
    const from = (await direct.revision()) + 1;
    const batches: WatchBatch[] = [];
    const errors: Error[] = [];
    viaRelay.watch("/halfopen/", { fromRevision: from, onEvents: (b) => batches.push(b), onError: (e) => errors.push(e), onStall: (why) => stalls.push(why) });
    const r1 = await direct.txn([], [put("/halfopen/a", "1")]);
    await waitFor(() => batches.length === 1, 5000, "the first batch");
    assert.ok(relay.blackhole() > 0, "the watch's connection went black");
    const r2 = await direct.txn([], [put("/halfopen/a", "2")]);
    const r3 = await direct.txn([], [put("/halfopen/b", "3")]);
    await waitFor(() => batches.length >= 3, 20_000, `the changes made after the connection went black (stalls seen: ${stalls.length})`);
    await sleep(1200); // more checks: nothing delivered twice
    assert.equal(batches.map((b) => b.revision), [r1.revision, r2.revision, r3.revision]);
    assert.equal(errors, []);
    assert.ok(stalls.length >= 1 && /watch stream delivered nothing/.test(stalls[0]!), stalls.join("\n"));
  } finally {
    await viaRelay.close();
    await direct.close();
    relay.close();
  }
});

etcdOnly.after(async () => {
  await etcd?.stop();
  etcd = undefined;
});

etcdOnly.run();
