// A proxy with hundreds of segments reports its stats to the control plane whole: etcd, the
// control plane, the real agent with its proxy, msmctl in this process. Regression: each full
// page of a report with 300 segments passed 256 KiB (the filter instance they share lists every
// one of them) and the control plane dropped it, so msmctl showed a stale or missing report.
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startControlPlane, type ControlPlane } from "../controlplane/server/index.js";
import { startAgent, type Agent } from "../controlplane/agent/index.js";
import { ProxyServiceClient, type ControlMessage } from "../controlplane/api/proto.js";
import { channelCredentials } from "../controlplane/security/tls.js";
import type { ClientDuplexStream } from "@grpc/grpc-js";
import { runMsmctl } from "../cli/msmctl/main.js";
import type { Io } from "../cli/msmctl/context.js";
import { startEtcd, type TestEtcd } from "./lib/etcd.js";
import { suite } from "./lib/suite.js";
import { filterWasm } from "./lib/paths.js";
import { bindUdp, freePortRun, indexedRtp, Sink, waitFor } from "./lib/udp.js";

const test = suite("stats of a proxy with many segments", { timeoutMs: 120_000 });
const SEGMENTS = 300;

async function msmctl(args: string[], env: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io: Io = { out: (t) => void (out += t), err: (t) => void (err += t), readStdin: async () => Buffer.alloc(0), env, isTty: false, onInterrupt: () => () => {} };
  const code = await runMsmctl(args, io);
  return { code, out, err };
}

/** Segments `from` to `to` - 1 of node-1, each chained through validate (one instance serves them all), sending to `sink`. */
function manifests(from: number, to: number, firstPort: number, sink: number): string {
  return Array.from({ length: to - from }, (_, k) => from + k).map((i) => `kind: Segment
metadata: { name: cam-${i} }
spec:
  proxy: node-1
  listen: { address: 127.0.0.1, port: ${firstPort + 2 * i} }
  destinations: [{ address: 127.0.0.1, port: ${sink} }]
  chain: [{ filter: validate@1.0.0 }]
`).join("---\n");
}

let etcd: TestEtcd;
let cp: ControlPlane;
let agent: Agent;
let env: Record<string, string>;
const logged: string[] = [];
const dir = mkdtempSync(join(tmpdir(), "msm-many-"));

test.before(async () => {
  etcd = await startEtcd();
  cp = await startControlPlane({ listen: "127.0.0.1:0", store: etcd.spec, tls: "insecure", name: "cp-0", log: (l) => void logged.push(l) });
  env = { MSM_SERVER: `127.0.0.1:${cp.port}`, MSM_INSECURE: "1" };
  agent = await startAgent({ controlPlanes: [`127.0.0.1:${cp.port}`], nodeId: "node-1", stateDir: join(dir, "state"), tls: "insecure", workers: 1 });
});

test.after(async () => {
  await agent?.close();
  await cp?.close();
  await etcd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test(`${SEGMENTS} segments chained through one filter on one proxy: every stats page reaches the control plane; describe and top show figures`, async () => {
  const sink = await Sink.open();
  const tx = await bindUdp();
  try {
    let r = await msmctl(["filter", "push", "validate@1.0.0", filterWasm("validate")], env);
    assert.is(r.code, 0, r.err);
    const first = await freePortRun(2 * SEGMENTS, "127.0.0.1", 32768); // below Linux's ephemeral range: no egress socket takes one between batches
    // in batches: etcd takes at most 128 operations in one transaction
    for (let from = 0; from < SEGMENTS; from += 100) {
      writeFileSync(join(dir, "cams.yaml"), manifests(from, from + 100, first, sink.port));
      r = await msmctl(["apply", "-f", join(dir, "cams.yaml"), "--wait"], env);
      assert.is(r.code, 0, r.err + r.out);
    }
    const last = SEGMENTS - 1;
    for (let i = 0; i < 10; i++) for (const cam of [0, last]) tx.send(indexedRtp(i), first + 2 * cam, "127.0.0.1");
    await waitFor(() => sink.received >= 2, 5000, "packets through cam-0 and the last camera");

    // the last camera is on the report's last page, cam-0 on its first: both with their counters
    let described = "";
    await waitFor(async () => {
      described = (await msmctl(["describe", "segment", `cam-${last}`], env)).out;
      return /packets in [1-9]/.test(described);
    }, 20_000, `cam-${last}'s counters in describe`);
    assert.match(described, /Stats:\s+reported \d+s ago/, described);
    // a round takes the segments a part at a time, cam-0's part first: a report may hold cam-0 from
    // before its packets and the last camera from after (CI, a loaded machine); the next one has both
    let first0 = "";
    await waitFor(async () => {
      first0 = (await msmctl(["describe", "segment", "cam-0"], env)).out;
      return /packets in [1-9]/.test(first0);
    }, 20_000, "cam-0's counters in describe");
    assert.match(first0, /Stats:\s+reported \d+s ago .*\n\s+packets in [1-9]/, first0);
    const top = await msmctl(["top", "--once"], env);
    assert.is(top.code, 0, top.err);
    const rows = top.out.trimEnd().split("\n").filter((l) => l.startsWith("node-1 "));
    assert.is(rows.length, SEGMENTS, top.out.slice(0, 2000));
    assert.ok(rows.every((l) => /^node-1\s+cam-\d+\s+[\d.]+k?\s/.test(l)), `every segment has rates:\n${rows.filter((l) => !/^node-1\s+cam-\d+\s+[\d.]+k?\s/.test(l)).slice(0, 3).join("\n")}`);
    assert.not.match(top.out, /^note:/m, top.out.split("\n").filter((l) => l.startsWith("note:")).join("\n"));
    assert.equal(logged.filter((l) => /stats page/.test(l)), [], "no page dropped");
  } finally {
    tx.close();
    sink.close();
  }
});

test("pages the control plane drops are logged once, not per page, and msmctl says the proxy's stats are NOT CURRENT until whole pages come again", async () => {
  writeFileSync(join(dir, "far.yaml"), "kind: Segment\nmetadata: { name: cam-far }\nspec:\n  proxy: node-2\n  listen: { address: 127.0.0.1, port: 42100 }\n  destinations: [{ address: 127.0.0.1, port: 42102 }]\n");
  assert.is((await msmctl(["apply", "-f", join(dir, "far.yaml")], env)).code, 0);
  // an older agent's pages: over 256 KiB each, a different size every time
  const client = new ProxyServiceClient(`127.0.0.1:${cp.port}`, channelCredentials("insecure")) as unknown as { Connect(): ClientDuplexStream<object, ControlMessage>; close(): void };
  const call = client.Connect();
  call.on("error", () => {});
  call.on("data", () => {});
  const report = (packetsIn: number, pad = 0) => JSON.stringify({ workers: 1, pad: "x".repeat(pad), segments: [{ name: "cam-far", packetsIn, stages: [] }] });
  try {
    call.write({ register: { nodeId: "node-2", capabilities: [], abiVersions: [], runningVersion: 0 } });
    call.write({ stats: { statsJson: report(5), page: 0, pages: 1 } });
    await waitFor(async () => /packets in 5 /.test((await msmctl(["describe", "segment", "cam-far"], env)).out), 10_000, "the first report");
    for (let i = 0; i < 30; i++) call.write({ stats: { statsJson: report(6, 270_000 + i * 100), page: 0, pages: 2 } });
    let described = "";
    await waitFor(async () => {
      described = (await msmctl(["describe", "segment", "cam-far"], env)).out;
      return /NOT CURRENT/.test(described);
    }, 10_000, "describe to say the stats are not current");
    assert.match(described, /Stats:\s+reported \d+s ago .*; NOT CURRENT: the control plane drops this proxy's stats \(a stats page was dropped, too large \(page 0 of 2, \d+ bytes; at most 32 pages of \d+ bytes\); \d+s ago\)\n\s+packets in 5 /);
    assert.match((await msmctl(["describe", "proxy", "node-2"], env)).out, /\n  note: NOT CURRENT: the control plane drops/);
    const drops = logged.filter((l) => l.includes("node-2: a stats page was dropped"));
    assert.is(drops.length, 1, drops.join("\n"));
    // whole pages again: the mark goes
    call.write({ stats: { statsJson: report(7), page: 0, pages: 1 } });
    await waitFor(async () => /Stats:\s+reported \d+s ago .*\n\s+packets in 7 /.test((await msmctl(["describe", "segment", "cam-far"], env)).out), 10_000, "the mark to clear");
    // dropped again, then the proxy reconnects (restarted, or upgraded to whole pages): the new connection's whole pages clear it too
    call.write({ stats: { statsJson: report(8, 280_000), page: 0, pages: 2 } });
    await waitFor(async () => /NOT CURRENT/.test((await msmctl(["describe", "segment", "cam-far"], env)).out), 10_000, "the mark again");
  } finally {
    call.end();
  }
  const again = client.Connect();
  again.on("error", () => {});
  again.on("data", () => {});
  try {
    again.write({ register: { nodeId: "node-2", capabilities: [], abiVersions: [], runningVersion: 0 } });
    again.write({ stats: { statsJson: report(9), page: 0, pages: 1 } });
    await waitFor(async () => /Stats:\s+reported \d+s ago .*\n\s+packets in 9 /.test((await msmctl(["describe", "segment", "cam-far"], env)).out), 10_000, "the mark to clear on a new connection (it stayed for good)");
  } finally {
    again.end();
    client.close();
  }
});

test("a proxy whose reports stop coming: describe and top mark its figures STALE, get streams says its hops are unknown", async () => {
  await agent.close();
  let described = "";
  await waitFor(async () => {
    described = (await msmctl(["describe", "segment", "cam-0"], env)).out;
    return /STALE/.test(described);
  }, 30_000, "describe to mark cam-0's counters stale");
  assert.match(described, /Stats:\s+reported \d+s ago \(.*\); STALE: no newer report within 10s\n\s+packets in [1-9]/);
  const top = await msmctl(["top", "--once", "--proxy", "node-1"], env);
  assert.match(top.out, /^note: node-1: STALE: no newer report within 10s$/m, top.out.slice(-500));
  const streams = await msmctl(["get", "streams", "--proxy", "node-1"], env);
  assert.match(streams.out, /^cam-0\s+0x1234abcd\s+1\s+-\s.*\? 2 of 2 hops unknown$/m, streams.out);
});

test.run();
