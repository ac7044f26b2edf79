// What an operator scrapes from the control plane during a store outage: a real etcd, a real
// replica with its dashboard's /metrics, a real proxy (agent) forwarding RTP on loopback. The
// scrape must go on while etcd is down (saying so), and say how many proxies run what they
// should, lag behind, or refuse it.
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Segment } from "../controlplane/api/proto.js";
import { startControlPlane } from "../controlplane/server/index.js";
import { startDashboard } from "../controlplane/dashboard/index.js";
import { startAgent } from "../controlplane/agent/index.js";
import { suite } from "./lib/suite.js";
import { adminClient as admin } from "./lib/admin-client.js";
import { startEtcd } from "./lib/etcd.js";
import { httpGet } from "./lib/http-get.js";
import { Child } from "./lib/child.js";
import { ROOT } from "./lib/paths.js";
import { bindUdp, flowsThrough, freePortPair, Sink, sleep, waitFor } from "./lib/udp.js";

const test = suite("control-plane-metrics", { timeoutMs: 120_000 });
const AGENT_START_MS = 20_000;

function segment(proxy: string, name: string, listen: number, sink: number): Segment {
  return {
    name, proxy, listen: { address: "127.0.0.1", port: listen, rtcpPort: 0 }, rtcpMux: false, egress: null,
    destinations: [{ address: "127.0.0.1", port: sink, rtcpPort: 0 }], source: null, chain: [], failure: null, revision: 0, legs: [],
  };
}


/** The value of one sample in a /metrics text, or undefined when it is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}


test("etcd down: /metrics still answers, msm_control_plane_store_up 0 and the store's families absent (logged once); the proxy forwards; back: 1 again; proxies counted connected and current / refused", async () => {
  const etcd = await startEtcd();
  const log: string[] = [];
  const cp = await startControlPlane({ listen: "127.0.0.1:0", store: etcd.spec, tls: "insecure", log: (m) => void log.push(m) });
  const dashboard = await startDashboard({ listen: "127.0.0.1:0", tls: "insecure", getPaths: () => cp.streamPaths(), getProxies: () => cp.proxies(), log: (m) => void log.push(m) });
  const ops = admin(cp.port);
  const stateDir = mkdtempSync(join(tmpdir(), "msm-cp-metrics-"));
  const sink = await Sink.open();
  const held = await bindUdp();
  const agent = await startAgent({ controlPlanes: [`127.0.0.1:${cp.port}`], nodeId: "node-m", stateDir, tls: "insecure" });
  const scrape = async (): Promise<string> => {
    const r = await httpGet(dashboard.port, "/metrics");
    assert.is(r.status, 200, `/metrics answered ${r.status}: ${r.body}\n${log.join("\n")}`);
    return r.body;
  };
  try {
    const listen = await freePortPair();
    const v1 = await ops.apply(segment("node-m", "cam-m", listen, sink.port));
    await waitFor(async () => Number((await ops.proxy("node-m"))?.ackedVersion ?? 0) >= v1, AGENT_START_MS, "the proxy to acknowledge the first version");
    await flowsThrough(listen, sink, "RTP through the proxy");
    let text = await scrape();
    assert.is(sample(text, "msm_control_plane_store_up"), 1, text);
    assert.is(sample(text, 'msm_proxies{state="connected"}'), 1, text);
    assert.is(sample(text, 'msm_proxies{state="disconnected"}'), 0, text);
    assert.is(sample(text, 'msm_proxies_config{state="current",connected="true"}'), 1, text);
    assert.is(sample(text, 'msm_proxies_config{state="refused",connected="true"}'), 0, text);

    // a second segment on a port another socket holds: the proxy refuses the snapshot
    const heldPort = (held.address() as { port: number }).port;
    const v2 = await ops.apply(segment("node-m", "cam-held", heldPort, sink.port));
    await waitFor(async () => Number((await ops.proxy("node-m"))?.nackedVersion ?? 0) >= v2, AGENT_START_MS, "the proxy to refuse the second version");
    text = await scrape();
    assert.is(sample(text, 'msm_proxies_config{state="refused",connected="true"}'), 1, text);
    assert.is(sample(text, 'msm_proxies_config{state="current",connected="true"}'), 0, text);

    await etcd.pause(); // SIGTERM: etcd is down
    const outage1 = await scrape();
    const outage2 = await scrape();
    for (const t of [outage1, outage2]) {
      assert.is(sample(t, "msm_control_plane_store_up"), 0, t);
      assert.is(sample(t, 'msm_proxies{state="connected"}'), undefined, "nothing is known of the proxies: absent, not 0");
      assert.is(sample(t, 'msm_paths{state="ok"}'), undefined, t);
      assert.is(sample(t, "msm_dashboard_event_clients"), 0, "what does not need the store is still there");
    }
    assert.is(log.filter((l) => l.includes("/metrics: the store did not answer")).length, 1, `said once:\n${log.join("\n")}`);
    await flowsThrough(listen, sink, "RTP through the proxy while etcd is down");

    await etcd.resume();
    await waitFor(async () => sample(await scrape(), "msm_control_plane_store_up") === 1, 30_000, "store_up 1 once etcd answers");
    text = await scrape();
    assert.is(sample(text, 'msm_proxies{state="connected"}'), 1, text);
  } finally {
    held.close();
    await agent.close();
    ops.close();
    await dashboard.close();
    await cp.close();
    sink.close();
    await etcd.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test("etcd down with several proxies connected: their failed background writes (stats every 2 s, last_seen) are logged once per reason for the replica, not per proxy per try", async () => {
  const etcd = await startEtcd();
  const log: string[] = [];
  const cp = await startControlPlane({ listen: "127.0.0.1:0", store: etcd.spec, tls: "insecure", log: (m) => void log.push(m) });
  const ops = admin(cp.port);
  const sink = await Sink.open();
  const dirs: string[] = [];
  const agents: Awaited<ReturnType<typeof startAgent>>[] = [];
  try {
    for (const node of ["node-x", "node-y", "node-z"]) {
      const listen = await freePortPair();
      const v = await ops.apply(segment(node, `cam-${node}`, listen, sink.port));
      const stateDir = mkdtempSync(join(tmpdir(), "msm-cp-metrics-"));
      dirs.push(stateDir);
      agents.push(await startAgent({ controlPlanes: [`127.0.0.1:${cp.port}`], nodeId: node, stateDir, tls: "insecure" }));
      await waitFor(async () => Number((await ops.proxy(node))?.ackedVersion ?? 0) >= v, AGENT_START_MS, `${node} to acknowledge`);
    }
    await etcd.pause();
    const stats = (): string[] => log.filter((l) => l.includes(": storing stats: "));
    // three proxies reporting every 2 s: 9 or more failed writes within 7 s (bounded wait)
    await sleep(7000);
    assert.is(stats().length, 1, `one line for every proxy's failing stats:\n${log.join("\n")}`);
    assert.match(stats()[0]!, /etcd unreachable/);
    await etcd.resume();
  } finally {
    for (const a of agents) await a.close();
    ops.close();
    await cp.close();
    sink.close();
    await etcd.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
});

test("etcd down: msmctl get segments and get filters answer from the replica's copy of the desired state, saying so and as of which revision; get proxies and apply say the store cannot be reached; back: from the store, no warning", async () => {
  const etcd = await startEtcd();
  const log: string[] = [];
  const cp = await startControlPlane({ listen: "127.0.0.1:0", store: etcd.spec, tls: "insecure", log: (m) => void log.push(m) });
  const ops = admin(cp.port);
  const dir = mkdtempSync(join(tmpdir(), "msm-cp-copy-"));
  const sink = await Sink.open();
  const agent = await startAgent({ controlPlanes: [`127.0.0.1:${cp.port}`], nodeId: "node-c", stateDir: dir, tls: "insecure" });
  const ctl = (args: string[]) => new Child(process.execPath, [join(ROOT, "dist", "cli", "msmctl.js"), ...args, "--server", `127.0.0.1:${cp.port}`, "--insecure"], { limitMs: 30_000 });
  const run = async (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; describe: string }> => {
    const c = ctl(args);
    const { code } = await c.exited;
    return { code, stdout: c.stdout, stderr: c.stderr, describe: c.describe() };
  };
  try {
    await ops.push("validate", "1.0.0", join(ROOT, "filters", "validate", "build", "validate.wasm"));
    await ops.apply(segment("node-c", "cam-c1", await freePortPair(), sink.port));
    const revision = await ops.apply(segment("node-c", "cam-c2", await freePortPair(), sink.port));
    // the proxy runs the second apply: the replica's copy, which it was sent from, has it
    await waitFor(async () => Number((await ops.proxy("node-c"))?.ackedVersion ?? 0) >= revision, AGENT_START_MS, "the proxy to acknowledge the last apply");
    const before = await run(["get", "segments", "-o", "json"]);
    assert.is(before.code, 0, before.describe);
    assert.not.match(before.stderr, /could not read its store/, before.describe);

    await etcd.pause();
    const segments = await run(["get", "segments", "-o", "json"]);
    assert.is(segments.code, 0, segments.describe);
    assert.is(segments.stdout, before.stdout, "the same segments, as applied, from the copy");
    assert.match(segments.stderr, new RegExp(`msmctl: warning: the control plane at 127\\.0\\.0\\.1:${cp.port} could not read its store \\(etcd .*\\): these segments are its copy of the desired state as of store revision ${revision}`), segments.describe);
    const table = await run(["get", "segments"]);
    assert.is(table.code, 0, table.describe);
    assert.match(table.stdout, /cam-c1[\s\S]*cam-c2/, table.describe);
    const filters = await run(["get", "filters"]);
    assert.is(filters.code, 0, filters.describe);
    assert.match(filters.stdout, /validate\s+1\.0\.0/, filters.describe);
    assert.match(filters.stderr, /these filters are its copy of the desired state as of store revision \d+/, filters.describe);
    // what the copy does not hold still fails, saying why
    const proxies = await run(["get", "proxies"]);
    assert.is.not(proxies.code, 0, proxies.describe);
    assert.match(proxies.stderr, /cannot reach its store \(nothing was changed\)/, proxies.describe);
    const file = join(dir, "seg.yaml");
    writeFileSync(file, "kind: Segment\nmetadata: { name: cam-c3 }\nspec:\n  proxy: node-c\n  listen: { address: 127.0.0.1, port: 41004 }\n  destinations: [{ address: 127.0.0.1, port: 41014 }]\n");
    const apply = await run(["apply", "-f", file]);
    assert.is.not(apply.code, 0, apply.describe);
    assert.match(apply.stderr, /cannot reach its store \(nothing was changed\)/, apply.describe);
    // a command that acts on a listing never gets the copy: it fails as the store does
    for (const args of [["delete", "segment", "cam-c9", "--ignore-not-found"], ["delete", "segment", "cam-c1", "--wait"]]) {
      const change = await run(args);
      assert.is.not(change.code, 0, change.describe);
      assert.match(change.stderr, /cannot reach its store/, change.describe);
    }
    assert.ok(log.some((l) => l.includes(`answered a read from this replica's copy of the desired state, revision ${revision}`)), log.join("\n"));

    await etcd.resume();
    await waitFor(async () => (await run(["get", "segments"])).stderr === "", 30_000, "get segments from the store again, without the warning");
  } finally {
    await agent.close();
    ops.close();
    await cp.close();
    sink.close();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("etcd out of space (its NOSPACE alarm): msmctl apply says the store refuses writes and what to do, not that it cannot reach it; reads still answer", async () => {
  const etcd = await startEtcd(["--quota-backend-bytes", "4000000"]);
  const cp = await startControlPlane({ listen: "127.0.0.1:0", store: etcd.spec, tls: "insecure", log: () => {} });
  const dir = mkdtempSync(join(tmpdir(), "msm-cp-nospace-"));
  try {
    const value = Buffer.alloc(900_000, 120).toString("base64");
    let refused = "";
    for (let i = 0; i < 20 && !refused; i++) {
      const r = await fetch(`${etcd.url}/v3/kv/put`, { method: "POST", body: JSON.stringify({ key: Buffer.from(`/fill/${i}`).toString("base64"), value }) });
      if (!r.ok) refused = await r.text();
    }
    assert.match(refused, /database space exceeded/, "etcd reached its quota");
    const file = join(dir, "seg.yaml");
    writeFileSync(file, "kind: Segment\nmetadata: { name: cam-n }\nspec:\n  proxy: node-n\n  listen: { address: 127.0.0.1, port: 5004 }\n  destinations: [{ address: 127.0.0.1, port: 5006 }]\n");
    const ctl = (args: string[]) => new Child(process.execPath, [join(ROOT, "dist", "cli", "msmctl.js"), ...args, "--server", `127.0.0.1:${cp.port}`, "--insecure"], { limitMs: 30_000 });
    const apply = ctl(["apply", "-f", file]);
    const exit = await apply.exited;
    assert.is.not(exit.code, 0, apply.describe());
    assert.match(apply.stderr, /cannot write to its store \(nothing was changed\): etcd http:\/\/127\.0\.0\.1:\d+ is out of space and refuses every write .*alarm disarm/, apply.describe());
    const get = ctl(["get", "segments"]);
    assert.is((await get.exited).code, 0, get.describe());
  } finally {
    await cp.close();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
