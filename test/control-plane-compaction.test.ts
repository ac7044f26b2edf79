// The control plane compacts etcd's history so that the proxies' stats, written again and again
// under the same keys, do not fill etcd's space quota. A proxy of 2,000 cameras reports about
// 1 MiB/s, stored as 256 KiB pages, one revision each (measured: 3.5 revisions/s, etcd's
// database growing 55 MB a minute); keeping the last 10,000 revisions kept 2.5 GB of such pages,
// past etcd's default 2 GiB quota within the hour, and then etcd refused every write (applies
// included) until an operator compacted, defragmented and disarmed it by hand. Here, scaled
// down: a 24 MB quota, 40 MB of stats-sized pages over four keys, and the compaction every 300 ms.
import * as assert from "uvu/assert";
import { startControlPlane, type ControlPlane } from "../controlplane/server/index.js";
import { startEtcd, type TestEtcd } from "./lib/etcd.js";
import { suite } from "./lib/suite.js";
import { waitFor } from "./lib/udp.js";

const test = suite("control plane: etcd history compaction", { timeoutMs: 120_000 });

const b64 = (s: string): string => Buffer.from(s).toString("base64");

async function etcdCall(etcd: TestEtcd, path: string, body: object): Promise<{ ok: boolean; json: Record<string, unknown>; text: string }> {
  const r = await fetch(`${etcd.url}${path}`, { method: "POST", body: JSON.stringify(body) });
  const text = await r.text();
  return { ok: r.ok, json: (() => { try { return JSON.parse(text) as Record<string, unknown>; } catch { return {}; } })(), text };
}

/** Whether etcd still has the history at `revision` (a read at a compacted revision is refused). */
async function historyAt(etcd: TestEtcd, revision: number): Promise<boolean> {
  const r = await etcdCall(etcd, "/v3/kv/range", { key: b64("/msm/v1/stats/"), revision: String(revision) });
  if (r.ok) return true;
  assert.match(r.text, /compacted/, `a read at revision ${revision}: ${r.text}`);
  return false;
}

let etcd: TestEtcd;
let cp: ControlPlane;
const logged: string[] = [];

test.before(async () => {
  etcd = await startEtcd(["--quota-backend-bytes", String(24_000_000)]);
  // the production rule for how much history is kept; only the period is shortened
  cp = await startControlPlane({ listen: "127.0.0.1:0", store: etcd.spec, tls: "insecure", name: "cp-0", timing: { compactEveryMs: 300 }, log: (l) => void logged.push(l) });
});

test.after(async () => {
  await cp?.close();
  await etcd?.stop();
});

test("stats pages overwritten again and again (40 MB over four keys) stay within a 24 MB quota: the history older than one compaction period goes", async () => {
  const page = Buffer.alloc(256 * 1024, 0x61).toString("base64");
  for (let round = 0; round < 40; round++) {
    let last = 0;
    for (let p = 0; p < 4; p++) {
      const r = await etcdCall(etcd, "/v3/kv/put", { key: b64(`/msm/v1/stats/node-big/${String(p).padStart(4, "0")}`), value: page });
      assert.ok(r.ok, `round ${round}, page ${p}: etcd refused the write after ${round} MB of stats: ${r.text}\ncontrol plane log:\n${logged.join("\n")}`);
      last = Number((r.json.header as { revision?: string } | undefined)?.revision);
    }
    // the round's pages before its last are history once the last is written: they must go
    await waitFor(async () => !(await historyAt(etcd, last - 1)), 10_000, `the compaction of revision ${last - 1} (round ${round}): the control plane kept the history of every stats write`);
  }
  assert.equal(logged.filter((l) => /compact/.test(l)), [], "no compaction failed");
});

test.run();
