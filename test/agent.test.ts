// The proxy-side control-plane agent against the real control plane (controlplane/server/) over
// real gRPC: snapshots start the proxy and swap chains without loss, a refused config is NACKed
// with its field path while the old chain runs on, the data plane outlives the control plane, a
// restart without control plane starts from last-good.json, a lower version (a control plane on a
// new store) is refused, losing a replica (stopped, or silent behind a frozen link) moves the
// agent to the other one within 2 s with the stream unbroken.
// One test uses a small ProxyService written here, to send what the real server never would
// (snapshots it refuses at ApplySegments, a module whose bytes are not its digest).
import * as assert from "uvu/assert";
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { loadSync as loadProto } from "@grpc/proto-loader";
import { join } from "node:path";
import { createServer, connect, type Socket as TcpSocket } from "node:net";
import { spawn, spawnSync } from "node:child_process";
import { loadPackageDefinition, Server, status, type ServiceDefinition, type ServerDuplexStream, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import { abi, sha256Hex } from "../runtime/index.js";
import { renderPrometheus } from "../runtime/admin/prometheus.js";
import { AGENT_FAMILIES } from "../runtime/config/proxy-config.js";
import {
  proxyService,
  type FilterModule, type FilterRef, type Leg, type ProxyMessage, type ProxyStatus, type Segment, type Snapshot,
} from "../controlplane/api/proto.js";
import { serverCredentials, type TlsFiles } from "../controlplane/security/tls.js";
import { createPki } from "../controlplane/security/pki.js";
import { startControlPlane, type ControlPlane } from "../controlplane/server/index.js";
import { Agent, AGENT_TIMING, startAgent, planSnapshot, SnapshotError, type AgentEvents } from "../controlplane/agent/index.js";
import { holdBack, msToStatsPhase, statsPhaseMs } from "../controlplane/agent/agent.js";
import { SERVER_IS_PLAIN_TEXT, SERVER_SPEAKS_TLS } from "../controlplane/api/transport.js";
import { configState } from "../cli/msmctl/describe.js";
import { hasNack, proxyRows } from "../cli/msmctl/get.js";
import { suite } from "./lib/suite.js";
import { adminClient as admin } from "./lib/admin-client.js";
import { filterWasm, fixture, ROOT } from "./lib/paths.js";
import { startEtcd, type TestEtcd } from "./lib/etcd.js";
import { DeliveryWatch } from "./lib/delivery.js";
import { bindUdp, flowsThrough, freePortPair, freePortRun, indexedRtp, sendPaced, Sink, sleep, waitFor } from "./lib/udp.js";

const test = suite("agent", { timeoutMs: 30_000 });
/** Bound on an agent's start to a running config (connect, fetch the modules, compile, start the workers, apply): about a second here, far more on a loaded machine. */
const AGENT_START_MS = 15_000;

// ---------------------------------------------------------------- the control plane, driven as msmctl does

const tempDirs: string[] = [];
function tempDir(what: string): string {
  const dir = mkdtempSync(join(tmpdir(), `msm-agent-${what}-`));
  tempDirs.push(dir);
  return dir;
}

/** A control-plane replica with its log kept (shown when a test fails). */
async function replica(store: string, options: { tls?: TlsFiles | "insecure"; name?: string; port?: number } = {}): Promise<ControlPlane & { address: string; log: string[] }> {
  const log: string[] = [];
  const cp = await startControlPlane({
    listen: `127.0.0.1:${options.port ?? 0}`, store, tls: options.tls ?? "insecure", trustDomain: "msm.test",
    ...(options.name ? { name: options.name } : {}), log: (m) => void log.push(m),
  });
  return Object.assign(cp, { address: `127.0.0.1:${cp.port}`, log });
}


/** The Segment message for one RTP hop on 127.0.0.1. */
function segment(proxy: string, name: string, listen: number, sink: number, chain: { filter: string; version?: string; config?: object }[]): Segment {
  return {
    name,
    proxy,
    listen: { address: "127.0.0.1", port: listen, rtcpPort: 0 },
    rtcpMux: false,
    egress: null,
    destinations: [{ address: "127.0.0.1", port: sink, rtcpPort: 0 }],
    source: null,
    chain: chain.map((c) => ({ filter: c.filter, version: c.version ?? "", configJson: c.config ? JSON.stringify(c.config) : "" })),
    failure: null,
    revision: 0,
    legs: [],
  };
}

/** Resolves with the first event of `name` that `match` accepts. */
function nextEvent<K extends keyof AgentEvents>(agent: Agent, name: K, match: (...args: AgentEvents[K]) => boolean = () => true, ms = 10_000): Promise<AgentEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      agent.off(name, listener as never);
      reject(new Error(`no '${String(name)}' event within ${ms} ms`));
    }, ms);
    const listener = (...args: AgentEvents[K]): void => {
      if (!match(...args)) return;
      clearTimeout(timer);
      agent.off(name, listener as never);
      resolve(args);
    };
    agent.on(name, listener as never);
  });
}

/** Polls ListProxies until `node`'s status matches. */
async function waitForStatus(ops: ReturnType<typeof admin>, node: string, match: (p: ProxyStatus) => boolean, what: string): Promise<ProxyStatus> {
  let last: ProxyStatus | undefined;
  await waitFor(async () => {
    last = await ops.proxy(node);
    return last !== undefined && match(last);
  }, 10_000, what);
  return last!;
}

/** A UDP port held by someone else until released (release is safe twice). */
async function holdPort(port: number): Promise<{ release(): void }> {
  const socket = await bindUdp(port);
  let held = true;
  return {
    release: () => {
      if (held) socket.close();
      held = false;
    },
  };
}

async function stage(agent: Agent, segmentName: string, filter: string) {
  const snap = await agent.proxy!.stats();
  return snap.segments.find((s) => s.name === segmentName)?.stages.find((st) => st.filter === filter);
}

const metric = (st: Awaited<ReturnType<typeof stage>>, name: string): number | undefined => st?.metrics.find((m) => m.name === name)?.value as number | undefined;


/** One etcd for the tests that run two replicas (started on first use). */
let etcd: TestEtcd | undefined;
async function sharedStore(): Promise<string> {
  etcd ??= await startEtcd();
  return etcd.spec;
}
test.after(async () => {
  await etcd?.stop();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * A TCP relay in front of a replica that can go silent without closing anything: the network
 * failure (or a stopped host) that only keepalive pings reveal.
 */
async function freezableRelay(targetPort: number): Promise<{ address: string; readonly connections: number; freeze(): void; close(): void }> {
  const sockets = new Set<TcpSocket>();
  let frozen = false;
  let connections = 0;
  const server = createServer((client) => {
    connections++;
    sockets.add(client);
    client.on("error", () => {});
    if (frozen) return;
    const upstream = connect(targetPort, "127.0.0.1");
    sockets.add(upstream);
    upstream.on("error", () => {});
    client.on("data", (d) => void (frozen || upstream.write(d)));
    upstream.on("data", (d) => void (frozen || client.write(d)));
    client.on("close", () => void (frozen || upstream.destroy()));
    upstream.on("close", () => void (frozen || client.destroy()));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    address: `127.0.0.1:${port}`,
    /** TCP connections accepted so far: one per attempt of a client that cannot get through. */
    get connections() {
      return connections;
    },
    freeze: () => void (frozen = true),
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

// ---------------------------------------------------------------- tests

test("stats go out at a phase of the node's own, 100-499 ms past each second, never twice in a moment", () => {
  const phases = ["node-a", "node-b", "edge-17", "x"].map(statsPhaseMs);
  for (const p of phases) assert.ok(p >= 100 && p < 500, `phase ${p}`);
  assert.is(statsPhaseMs("node-a"), phases[0], "the same node, the same phase");
  assert.ok(new Set(phases).size > 1, "nodes spread over the second");
  const second = 1_800_000_000_000;
  assert.is(msToStatsPhase(second + 50, 300), 250);
  assert.is(msToStatsPhase(second + 350, 300), 950, "past it: the next second's");
  assert.is(msToStatsPhase(second + 250, 300), 1050, "50 ms before it (a timer that fired early): the one after, not twice");
});

test("snapshot -> modules fetched by digest, proxy started, Ack, stats reported, stream forwarded (mTLS)", async () => {
  const pki = createPki(join(tempDir("pki"), "ca"));
  const cp = await replica(`file:${tempDir("store")}`, { tls: pki.issue("cp", "spiffe://msm.test/control-plane/cp-1"), name: "cp-1" });
  const ops = admin(cp.port, pki.issue("op", "spiffe://msm.test/admin/op"));
  const listen = await freePortPair();
  const sink = await Sink.open();
  const stateDir = tempDir("state");
  chmodSync(stateDir, 0o755); // as an operator's mkdir, or an older version, left it
  let agent: Agent | undefined;
  try {
    const counter = await ops.push("counter", "1.0.0", fixture("counter"));
    const v = await ops.apply(segment("node-a", "live", listen, sink.port, [{ filter: "counter", config: { tag: 7 } }]));
    agent = await startAgent({ controlPlanes: [cp.address], nodeId: "node-a", stateDir, tls: pki.issue("node-a", "spiffe://msm.test/proxy/node-a") });
    assert.is(agent.proxy, null, "no proxy before a config exists");
    const [applied] = await nextEvent(agent, "applied");
    assert.equal({ version: applied.version, started: applied.started, fetched: applied.fetched, segments: applied.segments }, { version: v, started: true, fetched: 1, segments: 1 });
    assert.is(agent.runningVersion, v);
    assert.is(agent.connectedTo, cp.address);
    await waitFor(async () => (await ops.proxy("node-a"))?.ackedVersion === v, 3000, `Ack ${v} recorded`);
    const status = (await ops.proxy("node-a"))!;
    assert.equal(
      { connected: status.connected, server: status.server, capabilities: status.capabilities, abiVersions: status.abiVersions, nackedVersion: status.nackedVersion },
      { connected: true, server: "cp-1", capabilities: ["workers=1", "runtime=node"], abiVersions: [`${abi.ABI_VERSION_MAJOR}.${abi.ABI_VERSION_MINOR}`], nackedVersion: 0 },
    );
    assert.ok(existsSync(join(stateDir, "modules", `${counter.sha256}.wasm`)), "module cached under its digest");
    // last-good.json holds the snapshot's keys: this user only, though the directory was made open
    const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8);
    assert.equal(
      [mode(stateDir), mode(join(stateDir, "modules")), mode(join(stateDir, "last-good.json")), mode(join(stateDir, "modules", `${counter.sha256}.wasm`))],
      ["700", "700", "600", "600"],
    );
    const lastGood = JSON.parse(readFileSync(join(stateDir, "last-good.json"), "utf8"));
    assert.is(lastGood.version, v);
    assert.is(lastGood.snapshot.segments[0].name, "live");
    assert.is(lastGood.config.filters.counter.sha256, counter.sha256);

    await flowsThrough(listen, sink, "packets through the snapshot's segment", 5000, 0x7fff0000);
    assert.is(metric(await stage(agent, "live", "counter"), "tag"), 7, "stage config from config_json");
    await waitFor(async () => (await ops.stats("node-a").catch(() => [])).some((s) => JSON.parse(s.statsJson).segments?.[0]?.name === "live"), 4000, "a stats report at the control plane");
  } finally {
    await agent?.close();
    await agent?.close(); // safe twice
    assert.is(agent?.proxy, null);
    ops.close();
    await cp.close();
    sink.close();
  }
});

test("changed chain and filter upgrade -> lossless hot swaps at 10,000 packets/s, state carried, modules fetched once", async () => {
  const cp = await replica(`file:${tempDir("store")}`);
  const ops = admin(cp.port);
  const listen = await freePortPair();
  const sink = await Sink.open();
  const seg = (chain: Parameters<typeof segment>[4]): Segment => segment("node-a", "live", listen, sink.port, chain);
  await ops.push("counter", "1.0.0", fixture("counter"));
  await ops.push("validate", "2.0.0", filterWasm("validate"));
  await ops.push("validate", "2.1.0", filterWasm("validate", true)); // other bytes
  const v1 = await ops.apply(seg([{ filter: "validate", version: "2.0.0" }, { filter: "counter", config: { tag: 1 } }]));
  const agent = await startAgent({ controlPlanes: [cp.address], nodeId: "node-a", stateDir: tempDir("state"), tls: "insecure" });
  const tx = await bindUdp();
  const swaps: string[][] = [];
  const fetched: number[] = [];
  agent.on("proxy-event", (e) => void (e.type === "swap" && swaps.push(e.carried)));
  agent.on("applied", (e) => void fetched.push(e.fetched));
  try {
    await waitFor(() => agent.runningVersion === v1, AGENT_START_MS, "version 1 running");
    // the validate filter holds a new source's first packet until it validates (probation): settle it first
    tx.send(indexedRtp(0xfffffff0), listen, "127.0.0.1");
    tx.send(indexedRtp(0xfffffff1), listen, "127.0.0.1");
    await waitFor(() => sink.received >= 2, 2000, "the source to pass probation");
    const n = 30_000;
    const changes: Promise<number>[] = [];
    const watch = await DeliveryWatch.start(() => agent.proxy, "live", [listen, sink.port]);
    await sendPaced(tx, listen, "127.0.0.1", n, 10_000, (i) => indexedRtp(i + 2), (sent) => {
      if (sent >= 8_000 && changes.length === 0) changes.push(ops.apply(seg([{ filter: "validate", version: "2.1.0", config: { maxSize: 1400 } }, { filter: "counter", config: { tag: 2 } }])));
      if (sent >= 20_000 && changes.length === 1) changes.push(ops.apply(seg([{ filter: "counter", config: { tag: 3 } }])));
    });
    const [v2, v3] = await Promise.all(changes);
    await waitFor(() => agent.runningVersion === v3, AGENT_START_MS, `version ${v3} running`);
    // zero loss and zero duplicates across two swaps: whatever is missing, a busy machine's kernel dropped
    const delivery = await watch.expectDelivered(sink, n, 2);
    if (delivery.missing > 0) console.log(`    ${delivery.missing} packets missing, all explained: kernel ${JSON.stringify(delivery.kernel.byPort)}, proxy ${delivery.proxyLoadDrops}`);
    assert.ok(v1 < v2! && v2! < v3!);
    // validate 2.0.0 -> 2.1.0 keeps its key, so its state (the source's probation) is carried too
    assert.equal(swaps, [["validate", "counter"], ["counter"]]);
    const st = await stage(agent, "live", "counter");
    assert.is(metric(st, "tag"), 3);
    assert.is(metric(st, "packets"), n + 2 - (delivery.kernel.byPort[listen] ?? 0), "one count across three chains (of what the kernel let in)");
    assert.equal(fetched, [2, 1, 0], "each module fetched once");
    await waitFor(async () => (await ops.proxy("node-a"))?.ackedVersion === v3, 3000, "Ack of the last version");
  } finally {
    tx.close();
    await agent.close();
    ops.close();
    await cp.close();
    sink.close();
  }
});

test("refused snapshot -> Nack with the filter's message and the field path, the old chain keeps running", async () => {
  const cp = await replica(`file:${tempDir("store")}`);
  const ops = admin(cp.port);
  const listen = await freePortPair();
  const sink = await Sink.open();
  const stateDir = tempDir("state");
  await ops.push("counter", "1.0.0", fixture("counter"));
  await ops.push("misbehave", "0.1.0", fixture("misbehave"));
  const v1 = await ops.apply(segment("node-a", "live", listen, sink.port, [{ filter: "counter", config: { tag: 1 } }]));
  const agent = await startAgent({ controlPlanes: [cp.address], nodeId: "node-a", stateDir, tls: "insecure" });
  try {
    await waitFor(() => agent.runningVersion === v1, AGENT_START_MS, "version 1 running");
    const refusedEvent = nextEvent(agent, "refused");
    const v2 = await ops.apply(segment("node-a", "live", listen, sink.port, [{ filter: "counter", config: { tag: 2 } }, { filter: "misbehave", config: { reject: "why" } }]));
    const [refused] = await refusedEvent;
    assert.is(refused.version, v2);
    await waitFor(async () => (await ops.proxy("node-a"))?.nackedVersion === v2, 3000, "the Nack recorded");
    const status = (await ops.proxy("node-a"))!;
    assert.is(status.nackError, refused.error);
    if (process.env.MSM_TEST_VERBOSE) console.log(`    NACK: ${refused.error}`);
    assert.match(status.nackError, "segments[0].chain[1].config_json");
    assert.match(status.nackError, "misbehave@0.1.0");
    assert.match(status.nackError, "why");
    assert.is(status.ackedVersion, v1);
    assert.is(agent.runningVersion, v1);
    await flowsThrough(listen, sink, "packets through the old chain", 5000, 0x7fff0000);
    assert.is(metric(await stage(agent, "live", "counter"), "tag"), 1, "chain 1 still runs");
    assert.is(JSON.parse(readFileSync(join(stateDir, "last-good.json"), "utf8")).version, v1, "last-good.json unchanged");

    // and a good one after it applies
    const v3 = await ops.apply(segment("node-a", "live", listen, sink.port, [{ filter: "counter", config: { tag: 3 } }]));
    await waitFor(async () => (await ops.proxy("node-a"))?.ackedVersion === v3, 3000, "Ack of the next good version");
    assert.is(metric(await stage(agent, "live", "counter"), "tag"), 3);
  } finally {
    await agent.close();
    ops.close();
    await cp.close();
    sink.close();
  }
});

test("a first snapshot whose port another process holds -> the proxy starts without that segment, ACK naming it, tried again with backoff, a plain ACK once the port is free; no new change needed", async () => {
  const cp = await replica(`file:${tempDir("store")}`);
  const ops = admin(cp.port);
  const listen = await freePortPair();
  const sink = await Sink.open();
  const squatter = await holdPort(listen); // another process holds the port for a moment
  await ops.push("counter", "1.0.0", fixture("counter"));
  const v = await ops.apply(segment("node-r", "live", listen, sink.port, [{ filter: "counter" }]));
  const agent = new Agent({ controlPlanes: [cp.address], nodeId: "node-r", stateDir: tempDir("state"), tls: "insecure" });
  const applied: AgentEvents["applied"][0][] = [];
  agent.on("applied", (e) => void applied.push(e));
  try {
    await agent.start();
    await waitFor(() => applied.length >= 1, AGENT_START_MS, "the first apply");
    assert.equal([applied[0]!.version, applied[0]!.started, applied[0]!.notRunning], [v, true, ["live"]]);
    assert.match(applied[0]!.error ?? "", `snapshot ${v} applied, except these segments, which are NOT running: segments[0]: cannot bind listen`);
    const retry = applied[0]!.retryInMs;
    assert.ok(retry !== undefined && retry >= 800 && retry <= 1200, `first retry in about 1 s, got ${retry}`);
    await waitForStatus(ops, "node-r", (p) => p.ackedVersion === v && p.notRunning.length === 1, "the ACK naming the segment");
    squatter.release();
    await nextEvent(agent, "applied", (e) => e.version === v && e.notRunning.length === 0, 10_000);
    await waitForStatus(ops, "node-r", (p) => p.ackedVersion === v && p.notRunning.length === 0, "a plain ACK without any new change");
    await flowsThrough(listen, sink, "packets once the retried snapshot runs", 5000, 0x7fff0000);
  } finally {
    squatter.release();
    await agent.close();
    ops.close();
    await cp.close();
    sink.close();
  }
});

test("a segment moved onto a port another process holds -> Nack naming the port, the running version kept, applied on a later try once the port is free", async () => {
  const cp = await replica(`file:${tempDir("store")}`);
  const ops = admin(cp.port);
  const [a, b, moved] = [await freePortPair(), await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  await ops.push("counter", "1.0.0", fixture("counter"));
  await ops.apply(segment("node-m", "seg-a", a, sink.port, [{ filter: "counter" }]));
  const v1 = await ops.apply(segment("node-m", "seg-b", b, sink.port, [{ filter: "counter" }]));
  const agent = await startAgent({ controlPlanes: [cp.address], nodeId: "node-m", stateDir: tempDir("state"), tls: "insecure" });
  const squatter = await holdPort(moved);
  try {
    await waitFor(() => agent.runningVersion === v1, AGENT_START_MS, "version 1 running");
    // seg-b moves to a port another process holds: the proxy binds it for a moment before the
    // commit, so the change is refused while seg-b still runs where it was
    const refused = nextEvent(agent, "refused");
    const v2 = await ops.apply(segment("node-m", "seg-b", moved, sink.port, [{ filter: "counter" }]));
    const [r] = await refused;
    assert.is(r.version, v2);
    assert.match(r.error, "the running config is unchanged");
    assert.match(r.error, "segments[1]");
    assert.match(r.error, "(another process holds it)");
    assert.ok(r.retryInMs !== undefined, "a held port may be freed: tried again");
    assert.is(agent.runningVersion, v1, "the old version runs on");
    await waitForStatus(ops, "node-m", (p) => p.nackedVersion === v2, "the Nack recorded");
    await flowsThrough(b, sink, "seg-b runs on its old port", 5000, 0x7fff0000);
    await flowsThrough(a, sink, "seg-a runs on", 5000, 0x7fff0000);
    // the port is freed: a later try applies the change
    squatter.release();
    await waitForStatus(ops, "node-m", (p) => p.ackedVersion === v2 && p.notRunning.length === 0, "a clean Ack after the retry");
    await flowsThrough(moved, sink, "seg-b on its new port", 5000, 0x7fff0000);
  } finally {
    squatter.release();
    await agent.close();
    ops.close();
    await cp.close();
    sink.close();
  }
});

test("control plane stopped -> forwarding continues; restarted without control plane -> last-good.json; it returns -> same version kept, newer applied", async () => {
  const store = `file:${tempDir("store")}`;
  let cp = await replica(store);
  const port = cp.port;
  let ops = admin(port);
  const listen = await freePortPair();
  const sink = await Sink.open();
  const stateDir = tempDir("state");
  await ops.push("counter", "1.0.0", fixture("counter"));
  const v1 = await ops.apply(segment("node-a", "live", listen, sink.port, [{ filter: "counter", config: { tag: 4 } }]));
  let agent = await startAgent({ controlPlanes: [cp.address], nodeId: "node-a", stateDir, tls: "insecure" });
  const tx = await bindUdp();
  try {
    await waitFor(() => agent.runningVersion === v1, AGENT_START_MS, "version 1 running");
    const disconnected = nextEvent(agent, "disconnected");
    ops.close();
    await cp.close();
    await disconnected;
    assert.is(agent.connectedTo, null);
    // a stream sent while no control plane answers (and the agent keeps retrying) all arrives
    const n = 3000;
    const watch = await DeliveryWatch.start(() => agent.proxy, "live", [listen, sink.port]);
    await sendPaced(tx, listen, "127.0.0.1", n, 3000, (i) => indexedRtp(i));
    await watch.expectDelivered(sink, n);
    await agent.close();

    // a restart while the control plane is still down: the proxy comes back from last-good.json
    agent = await startAgent({ controlPlanes: [`127.0.0.1:${port}`], nodeId: "node-a", stateDir, tls: "insecure" });
    assert.ok(agent.proxy, "the proxy runs as soon as startAgent resolves");
    assert.is(agent.runningVersion, v1);
    assert.is(agent.connectedTo, null);
    await flowsThrough(listen, sink, "packets after a restart from last-good.json", 5000, 0x7fff0000);
    const restarted = await stage(agent, "live", "counter");
    assert.is(metric(restarted, "tag"), 4);
    // the stage's state came back too, from <state-dir>/stage-state.json, saved as the agent stopped
    assert.is(metric(restarted, "import_origin"), 2, "the counter imported a checkpoint at the start");
    assert.ok((metric(restarted, "imported") ?? 0) >= n, `it brought the count of the run before (${metric(restarted, "imported")} of at least ${n})`);
    assert.is(statSync(join(stateDir, "stage-state.json")).mode & 0o777, 0o600);

    // the control plane returns on its address: the version the proxy runs is acknowledged, not
    // applied again; a newer one is applied from the module cache
    let applied = 0;
    agent.on("applied", () => void applied++);
    cp = await replica(store, { port });
    ops = admin(port);
    await nextEvent(agent, "connected", () => true, 5000);
    await waitFor(async () => (await ops.proxy("node-a"))?.connected === true, 3000, "the proxy shown connected");
    assert.is(applied, 0, "the running version is not applied again");
    const v2 = await ops.apply(segment("node-a", "live", listen, sink.port, [{ filter: "counter", config: { tag: 5 } }]));
    const [e] = await nextEvent(agent, "applied", (x) => x.version === v2, 5000);
    assert.is(e.fetched, 0, "modules came from the cache");
    await waitFor(async () => (await ops.proxy("node-a"))?.ackedVersion === v2, 3000, "Ack of the newer version");
  } finally {
    tx.close();
    await agent.close();
    ops.close();
    await cp.close();
    sink.close();
  }
});

test("restarted from last-good.json while another process holds one segment's port -> the others forward at once, the missing one named (event, /readyz, /metrics, the ACK), started by the retry once the port is free", async () => {
  const store = `file:${tempDir("store")}`;
  let cp = await replica(store);
  const port = cp.port;
  let ops = admin(port);
  const [listenA, listenB] = [await freePortPair(), await freePortPair()];
  const [sinkA, sinkB] = [await Sink.open(), await Sink.open()];
  const stateDir = tempDir("state");
  await ops.push("counter", "1.0.0", fixture("counter"));
  await ops.apply(segment("node-g", "cam-a", listenA, sinkA.port, [{ filter: "counter" }]));
  const v = await ops.apply(segment("node-g", "cam-b", listenB, sinkB.port, [{ filter: "counter" }]));
  let agent = await startAgent({ controlPlanes: [cp.address], nodeId: "node-g", stateDir, tls: "insecure" });
  try {
    await waitFor(() => agent.runningVersion === v, AGENT_START_MS, "the version running");
    // the control plane stops, the proxy is restarted, and meanwhile another process took cam-b's port
    await agent.close();
    ops.close();
    await cp.close();
    const held = await holdPort(listenB);
    agent = new Agent({ controlPlanes: [`127.0.0.1:${port}`], nodeId: "node-g", stateDir, tls: "insecure", admin: { address: "127.0.0.1", port: 0 } });
    const restored: AgentEvents["restored"][0][] = [];
    agent.on("restored", (e) => void restored.push(e));
    try {
      await agent.start();
      assert.equal(restored.map((e) => [e.version, e.segments, e.notRunning]), [[v, 2, ["cam-b"]]]);
      assert.match(restored[0]!.error ?? "", `snapshot ${v} applied, except these segments, which are NOT running: segments[1]: cannot bind listen 127.0.0.1:${listenB}: the port is taken (another process holds it) (segment 'cam-b')`);
      assert.ok(restored[0]!.retryInMs !== undefined, "tried again, as a snapshot applied without a segment is");
      await flowsThrough(listenA, sinkA, "cam-a forwards with no control plane", 5000, 0x7fff0000);
      const get = async (path: string) => (await fetch(`http://127.0.0.1:${agent.adminPort}${path}`)).text();
      const readyz = await fetch(`http://127.0.0.1:${agent.adminPort}/readyz`);
      assert.is(readyz.status, 503);
      assert.match(await readyz.text(), "segment 'cam-b' is NOT running: cannot bind listen");
      const metrics = await get("/metrics");
      for (const line of ["msm_proxy_running 1", `msm_snapshot_version ${v}`, "msm_snapshot_segments_held_back 1", "msm_segments_not_running 1"]) assert.match(metrics, `\n${line}\n`);
      // the control plane returns: the ACK says what does not run
      cp = await replica(store, { port });
      ops = admin(port);
      const acked = await waitForStatus(ops, "node-g", (p) => p.ackedVersion === v && p.notRunning.length > 0, "the ACK naming cam-b");
      assert.equal(acked.notRunning, ["cam-b"]);
      assert.match(acked.notRunningError, "(another process holds it)");
      // the port is freed: a retry starts cam-b, a plain ACK follows
      held.release();
      await nextEvent(agent, "applied", (e) => e.version === v && e.notRunning.length === 0, 30_000); // tries 1, 2, 4, 8 s apart
      await flowsThrough(listenB, sinkB, "cam-b forwards once its port is free", 5000, 0x7fff0000);
      await waitForStatus(ops, "node-g", (p) => p.ackedVersion === v && p.notRunning.length === 0, "a plain ACK");
      assert.is((await fetch(`http://127.0.0.1:${agent.adminPort}/readyz`)).status, 200);
    } finally {
      held.release();
    }
  } finally {
    await agent.close();
    ops.close();
    await cp.close();
    sinkA.close();
    sinkB.close();
  }
}, { timeoutMs: 60_000 });

test("a control plane on a new, empty store sends a lower version -> refused and reported once, NACK shown, the running config and last-good.json untouched; without last-good.json the proxy takes it", async () => {
  let cp = await replica(`file:${tempDir("store")}`);
  const port = cp.port;
  let ops = admin(port);
  const [a, b] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const stateDir = tempDir("state");
  const lastGoodFile = join(stateDir, "last-good.json");
  await ops.push("counter", "1.0.0", fixture("counter"));
  await ops.apply(segment("node-o", "seg-a", a, sink.port, [{ filter: "counter" }]));
  const v = await ops.apply(segment("node-o", "seg-b", b, sink.port, [{ filter: "counter" }]));
  const empty = await startEtcd();
  const refusals: AgentEvents["refused"][0][] = [];
  let agent = new Agent({ controlPlanes: [cp.address], nodeId: "node-o", stateDir, tls: "insecure" });
  agent.on("refused", (e) => void refusals.push(e));
  try {
    const running = nextEvent(agent, "applied", (e) => e.version === v, AGENT_START_MS); // after last-good.json is written
    await agent.start();
    await running;
    const saved = readFileSync(lastGoodFile);
    // the control plane comes back on the same address, but on an empty etcd: its version for node-o is 0
    ops.close();
    await cp.close();
    cp = await replica(empty.spec, { port });
    ops = admin(port);
    await waitFor(() => refusals.length > 0, 10_000, "the lower version refused");
    assert.is(refusals[0]!.version, 0);
    assert.match(refusals[0]!.error, `version 0 is older than the running ${v}: a control plane on a new or wrong store?`);
    assert.match(refusals[0]!.error, `delete ${lastGoodFile} and start it again`);
    assert.is(refusals[0]!.retryInMs, undefined, "it can only be refused again");
    assert.is(agent.runningVersion, v);
    assert.ok(readFileSync(lastGoodFile).equals(saved), "last-good.json untouched");
    await flowsThrough(a, sink, "seg-a still forwards", 5000, 0x7fff0000);
    await flowsThrough(b, sink, "seg-b still forwards", 5000, 0x7fff0000);
    // the new control plane, and so msmctl, show the refusal though its version is 0
    const status = await waitForStatus(ops, "node-o", (p) => p.nackError !== "", "the NACK recorded");
    assert.equal([status.desiredVersion, status.ackedVersion, status.nackedVersion], [0, v, 0]);
    assert.ok(hasNack(status));
    assert.is(configState(status), `REFUSED version 0; runs version ${v}`);
    assert.match(proxyRows([status])[0]![5]!, /^0: version 0 is older than the running/);
    assert.ok(cp.log.some((l) => l.includes("proxy node-o refused version 0: ")), cp.log.join("\n"));

    // another connection: the same snapshot refused (NACKed) again, not reported again
    ops.close();
    await cp.close();
    cp = await replica(empty.spec, { port });
    ops = admin(port);
    await waitFor(() => cp.log.some((l) => l.includes("proxy node-o refused version 0: ")), 10_000, "the second NACK");
    assert.is(refusals.length, 1, "the same reason is reported once");
    assert.is(agent.runningVersion, v);

    // the deliberate reset: without last-good.json the proxy takes what this control plane has
    await agent.close();
    unlinkSync(lastGoodFile);
    agent = new Agent({ controlPlanes: [cp.address], nodeId: "node-o", stateDir, tls: "insecure" });
    const applied = nextEvent(agent, "applied", () => true, AGENT_START_MS);
    await agent.start();
    const [e] = await applied;
    assert.equal([e.version, e.segments], [0, 0]);
    const reset = await waitForStatus(ops, "node-o", (p) => p.ackedVersion === 0 && !hasNack(p), "the ACK of version 0, which clears the refusal");
    assert.is(configState(reset), "no config sent yet");
  } finally {
    await agent.close();
    ops.close();
    await cp.close();
    await empty.stop();
    sink.close();
  }
});

test("a filter that refuses its config -> NACK, not tried again (same module, same config); a later version's ACK clears the NACK shown", async () => {
  const cp = await replica(`file:${tempDir("store")}`);
  const ops = admin(cp.port);
  const listen = await freePortPair();
  const sink = await Sink.open();
  await ops.push("validate", "1.0.0", filterWasm("validate"));
  const cam = (allowedPayloadTypes: number[]): Segment => segment("node-c", "cam", listen, sink.port, [{ filter: "validate", config: { allowedPayloadTypes } }]);
  const v1 = await ops.apply(cam([96]));
  const agent = new Agent({ controlPlanes: [cp.address], nodeId: "node-c", stateDir: tempDir("state"), tls: "insecure" });
  const refusals: AgentEvents["refused"][0][] = [];
  agent.on("refused", (e) => void refusals.push(e));
  try {
    await agent.start();
    await waitFor(() => agent.runningVersion === v1, AGENT_START_MS, "version 1 running");
    const v2 = await ops.apply(cam([960]));
    await waitFor(() => refusals.length > 0, 10_000, "the refusal");
    assert.is(refusals[0]!.version, v2);
    assert.match(refusals[0]!.error, "segments[0].chain[0].config_json: filter validate@1.0.0 rejected its config");
    assert.is(refusals[0]!.retryInMs, undefined, "the filter would answer the same: no retry");
    const refused = await waitForStatus(ops, "node-c", (p) => p.nackedVersion === v2, "the NACK recorded");
    assert.is(refused.nackRetryAtMs, 0, "the NACK says it is not tried again");
    // the NACKED column says it in the manifest's terms (2c2d079), as describe does
    assert.match(proxyRows([refused], Date.now(), true)[0]![5]!, `${v2}: segment/cam spec.chain[0].config: filter validate@1.0.0 rejected its config`);
    const v3 = await ops.apply(cam([96, 97]));
    const fixed = await waitForStatus(ops, "node-c", (p) => p.ackedVersion === v3, "the ACK of the fixed version");
    assert.equal([fixed.nackedVersion, fixed.nackError, fixed.nackRetryAtMs], [0, "", 0], "the ACK of a newer version clears the NACK");
    assert.is(proxyRows([fixed])[0]![5], "-");
    assert.is(configState(fixed), `runs the newest config (version ${v3})`);
    assert.is(refusals.length, 1);
  } finally {
    await agent.close();
    ops.close();
    await cp.close();
    sink.close();
  }
});

test("a filter's refusal is tried again only when the refused segment's own stages read a $file or $env reference, not because another segment's do", async () => {
  const cp = await replica(`file:${tempDir("store")}`);
  const ops = admin(cp.port);
  const [listen, keyedListen] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const keyFile = join(tempDir("keys"), "keyed.key");
  writeFileSync(keyFile, `inline:${Buffer.alloc(30, 0x3c).toString("base64")}\n`);
  await ops.push("validate", "1.0.0", filterWasm("validate"));
  await ops.push("srtp", "1.0.0", filterWasm("srtp"));
  const cam = (allowedPayloadTypes: number[]): Segment => segment("node-r", "cam", listen, sink.port, [{ filter: "validate", config: { allowedPayloadTypes } }]);
  // another segment of the node, keyed by a file on the node
  const keyed = segment("node-r", "keyed", keyedListen, sink.port, [{ filter: "srtp", config: { direction: "unprotect", key: { $file: keyFile } } }]);
  const v1 = await ops.apply(cam([96]), keyed);
  const agent = new Agent({ controlPlanes: [cp.address], nodeId: "node-r", stateDir: tempDir("state"), tls: "insecure" });
  const refusals: AgentEvents["refused"][0][] = [];
  agent.on("refused", (e) => void refusals.push(e));
  try {
    await agent.start();
    await waitFor(() => agent.runningVersion === v1, AGENT_START_MS, "version 1 running");
    const v2 = await ops.apply(cam([960]));
    await waitFor(() => refusals.length > 0, 10_000, "the refusal");
    assert.is(refusals[0]!.version, v2);
    assert.match(refusals[0]!.error, "filter validate@1.0.0 rejected its config");
    assert.is(refusals[0]!.retryInMs, undefined, "cam's config reads no reference: the filter would answer the same, no retry");
    const refused = await waitForStatus(ops, "node-r", (p) => p.nackedVersion === v2, "the NACK recorded");
    assert.is(refused.nackRetryAtMs, 0, "the NACK says it is not tried again");
  } finally {
    await agent.close();
    ops.close();
    await cp.close();
    sink.close();
  }
});

test("SIGHUP's reread of the running snapshot keeps the retry of a newer one refused for a key file not there yet: that one runs once the file is", async () => {
  const cp = await replica(`file:${tempDir("store")}`);
  const ops = admin(cp.port);
  const listen = await freePortPair();
  const sink = await Sink.open();
  const keys = tempDir("keys");
  const key = `inline:${Buffer.alloc(30, 0x3c).toString("base64")}\n`;
  writeFileSync(join(keys, "a.key"), key);
  await ops.push("srtp", "1.0.0", filterWasm("srtp"));
  const dec = (file: string): Segment => segment("node-h", "dec", listen, sink.port, [{ filter: "srtp", config: { direction: "unprotect", key: { $file: join(keys, file) } } }]);
  const v1 = await ops.apply(dec("a.key"));
  const agent = new Agent({ controlPlanes: [cp.address], nodeId: "node-h", stateDir: tempDir("state"), tls: "insecure" });
  const refusals: AgentEvents["refused"][0][] = [];
  const rereads: (string | undefined)[] = [];
  agent.on("refused", (e) => {
    refusals.push(e);
    // the operator's SIGHUP, in the same turn as the refusal: before the retry's timer can fire
    if (refusals.length === 1) rereads.push(agent.rereadReferences());
  });
  try {
    await agent.start();
    await waitFor(() => agent.runningVersion === v1, AGENT_START_MS, "version 1 running");
    const v2 = await ops.apply(dec("b.key"));
    await waitFor(() => refusals.length > 0, 10_000, "the refusal");
    assert.is(refusals[0]!.version, v2);
    assert.match(refusals[0]!.error, "cannot read secret file");
    assert.ok(refusals[0]!.retryInMs !== undefined, "a key file not there yet: tried again");
    assert.equal(rereads, [undefined], "the reread is queued");
    writeFileSync(join(keys, "b.key"), key);
    // before: the reread's enqueue cleared the retry's timer, and version 2 waited for the control plane to send it again
    await waitFor(() => agent.runningVersion === v2, 10_000, `version 2 running once its key file is there (refusals: ${refusals.map((r) => r.error).join(" | ")})`);
  } finally {
    await agent.close();
    ops.close();
    await cp.close();
    sink.close();
  }
});

test("a segment refused holds back no other: a later change runs, the refused one keeps its previous version (or, new, is not started), ACK naming it, not tried again; fixed, a plain ACK", async () => {
  const cp = await replica(`file:${tempDir("store")}`);
  const ops = admin(cp.port);
  // the sinks first: a port freePortPair released could be a sink's next, and a segment's own listen its destination
  const [sinkA, sinkB, sinkC] = await Promise.all([Sink.open(), Sink.open(), Sink.open()]);
  const [listenA, listenB, listenC] = await Promise.all([freePortPair(), freePortPair(), freePortPair()]);
  const stateDir = tempDir("state");
  await ops.push("counter", "1.0.0", fixture("counter"));
  await ops.push("misbehave", "0.1.0", fixture("misbehave"));
  const camA = (tag: number, bad = false): Segment => segment("node-h", "cam-a", listenA, sinkA.port, [{ filter: "counter", config: { tag } }, ...(bad ? [{ filter: "misbehave", config: { reject: "cam-a's typo" } }] : [])]);
  const v1 = await ops.apply(camA(1));
  const agent = new Agent({ controlPlanes: [cp.address], nodeId: "node-h", stateDir, tls: "insecure", admin: { address: "127.0.0.1", port: 0 } });
  const applied: AgentEvents["applied"][0][] = [];
  agent.on("applied", (e) => void applied.push(e));
  try {
    await agent.start();
    await waitFor(() => agent.runningVersion === v1, AGENT_START_MS, "version 1 running");
    // cam-a's change alone is refused as a whole: nothing else would change
    const v2 = await ops.apply(camA(2, true));
    await waitForStatus(ops, "node-h", (p) => p.nackedVersion === v2, "the NACK of cam-a's bad change");
    // a new camera while cam-a's bad change is still stored: it runs, cam-a keeps version 1's chain
    const v3 = await ops.apply(segment("node-h", "cam-b", listenB, sinkB.port, [{ filter: "counter", config: { tag: 30 } }]));
    const partial = await waitForStatus(ops, "node-h", (p) => p.ackedVersion === v3, "the ACK of the new camera");
    assert.equal(partial.notRunning, ["cam-a"]);
    assert.match(partial.notRunningError, `snapshot ${v3} applied, except the change it refused (cam-a runs its previous version): `);
    assert.match(partial.notRunningError, "cam-a's typo");
    assert.equal([partial.nackedVersion, partial.nackError], [0, ""], "the ACK of a newer version clears the NACK");
    assert.match(proxyRows([partial])[0]![4]!, "(1 on previous version)", "cam-a runs: not called not running");
    assert.match(configState(partial), `runs the newest config (version ${v3}), except cam-a, whose change it refused: it runs its previous version`);
    await flowsThrough(listenB, sinkB, "the new camera's packets", 5000, 0x7fff0000);
    await flowsThrough(listenA, sinkA, "cam-a's packets, through its previous chain", 5000, 0x7fff0000);
    assert.is(metric(await stage(agent, "cam-a", "counter"), "tag"), 1, "cam-a runs version 1's config");
    assert.is(metric(await stage(agent, "cam-b", "counter"), "tag"), 30);
    // the node's own /metrics say it, for a fleet's alerts
    const scraped = await (await fetch(`http://127.0.0.1:${agent.adminPort}/metrics`)).text();
    assert.match(scraped, "\nmsm_control_plane_connected 1\n");
    assert.match(scraped, `\nmsm_snapshot_version ${v3}\n`);
    assert.match(scraped, "\nmsm_snapshot_segments_held_back 1\n");
    assert.is(applied.at(-1)!.retryInMs, undefined, "a filter's refusal is not tried again");
    const lastGood = JSON.parse(readFileSync(join(stateDir, "last-good.json"), "utf8"));
    assert.equal([lastGood.version, lastGood.notRunning.segments], [v3, ["cam-a"]], "last-good.json: what ran, and what did not");
    assert.equal(lastGood.config.segments.map((x: { name: string }) => x.name), ["cam-a", "cam-b"]);
    // a new camera refused as it comes is not started; the others run on
    const v4 = await ops.apply(segment("node-h", "cam-c", listenC, sinkC.port, [{ filter: "misbehave", config: { reject: "cam-c's typo" } }]));
    const v5 = await ops.apply(segment("node-h", "cam-b", listenB, sinkB.port, [{ filter: "counter", config: { tag: 31 } }]));
    const both = await waitForStatus(ops, "node-h", (p) => p.ackedVersion >= v5 && p.notRunning.length === 2, "the ACK with cam-a and cam-c not running");
    assert.ok(v4 < v5);
    assert.equal([...both.notRunning].sort(), ["cam-a", "cam-c"]);
    assert.match(both.notRunningError, "(cam-a runs its previous version)");
    assert.is(metric(await stage(agent, "cam-b", "counter"), "tag"), 31);
    assert.is((await agent.proxy!.stats()).segments.some((x) => x.name === "cam-c"), false, "cam-c is not started");
    // fixed: a plain ACK
    await ops.apply(segment("node-h", "cam-c", listenC, sinkC.port, [{ filter: "counter", config: { tag: 40 } }]));
    const v7 = await ops.apply(camA(7));
    const fixed = await waitForStatus(ops, "node-h", (p) => p.ackedVersion === v7, "the ACK of the fixed cameras");
    assert.equal([fixed.notRunning, fixed.notRunningError], [[], ""]);
    await flowsThrough(listenC, sinkC, "cam-c's packets", 5000, 0x7fff0000);
    assert.is(metric(await stage(agent, "cam-a", "counter"), "tag"), 7);
  } finally {
    await agent.close();
    ops.close();
    await cp.close();
    for (const sink of [sinkA, sinkB, sinkC]) sink.close();
  }
});

test("two proxies started with one node id: the control plane says so (their statuses would mix)", async () => {
  const cp = await replica(`file:${tempDir("store")}`);
  const first = new Agent({ controlPlanes: [cp.address], nodeId: "node-twin", stateDir: tempDir("state"), tls: "insecure" });
  const second = new Agent({ controlPlanes: [cp.address], nodeId: "node-twin", stateDir: tempDir("state"), tls: "insecure" });
  try {
    await first.start();
    const ops = admin(cp.port);
    await waitForStatus(ops, "node-twin", (p) => p.connected, "the first connected");
    ops.close();
    await second.start();
    await waitFor(() => cp.log.some((l) => /proxy node-twin: registered from .* while its connection from .* is live: a reconnect before the old stream ended, or two proxies started with one node id/.test(l)), 5000, `the warning:\n${cp.log.join("\n")}`);
  } finally {
    await second.close();
    await first.close();
    await cp.close();
  }
});

test("a filter that never returns from a new context's creation -> NACK naming it, not tried again (each try would restart a worker); the running stage on that filter charged nothing", async () => {
  const cp = await replica(`file:${tempDir("store")}`);
  const ops = admin(cp.port);
  const [a, b] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  await ops.push("misbehave", "0.1.0", fixture("misbehave"));
  await ops.apply(segment("node-s", "steady", a, sink.port, [{ filter: "misbehave" }]));
  const agent = new Agent({ controlPlanes: [cp.address], nodeId: "node-s", stateDir: tempDir("state"), tls: "insecure", settings: { watchdog: { stuckMs: 200 } } });
  const refusals: AgentEvents["refused"][0][] = [];
  agent.on("refused", (e) => void refusals.push(e));
  try {
    await agent.start();
    await waitFor(() => agent.runningVersion > 0, AGENT_START_MS, "steady running");
    const v2 = await ops.apply(segment("node-s", "looping", b, sink.port, [{ filter: "misbehave", config: { loopIn: "create" } }]));
    await waitFor(() => refusals.length > 0, 15_000, "the refusal");
    assert.is(refusals[0]!.version, v2);
    assert.match(refusals[0]!.error, "was stuck in filter 'misbehave' for over 200 ms while the change was prepared");
    assert.is(refusals[0]!.retryInMs, undefined, "the filter would loop again: no retry");
    const shown = await waitForStatus(ops, "node-s", (p) => p.nackedVersion === v2, "the NACK recorded");
    assert.is(shown.nackRetryAtMs, 0);
    await sleep(2500); // a retry would have come after about 1 s
    assert.is(refusals.length, 1, "tried once");
    await flowsThrough(a, sink, "steady forwards on the restarted worker", 5000, 0x7fff0000);
    const stage = (await agent.proxy!.stats()).segments.find((x) => x.name === "steady")!.stages[0]!;
    assert.equal([stage.state, stage.failures], ["running", 0]);
  } finally {
    await agent.close();
    ops.close();
    await cp.close();
    sink.close();
  }
});

test("a state directory shared with other files is not made 0700 (that is said instead); last-good.json in it is 0600 all the same", async () => {
  const shared = tempDir("shared");
  chmodSync(shared, 0o755);
  writeFileSync(join(shared, "operator-notes.txt"), "not the agent's");
  writeFileSync(join(shared, "last-good.json"), "{}", { mode: 0o644 });
  const agent = new Agent({ controlPlanes: [`127.0.0.1:${await freePortPair()}`], nodeId: "node-s", stateDir: shared, tls: "insecure" });
  const warnings: string[] = [];
  agent.on("warning", (w) => void warnings.push(w.message));
  try {
    await agent.start();
    const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8);
    assert.equal([mode(shared), mode(join(shared, "last-good.json")), mode(join(shared, "modules"))], ["755", "600", "700"]);
    assert.ok(warnings.some((w) => /holds other files too \(operator-notes\.txt\), so it is left as it is/.test(w)), warnings.join("\n"));
  } finally {
    await agent.close();
  }
});

test("a moved state directory still restores: last-good.json names modules relative to it", async () => {
  const cp = await replica(`file:${tempDir("store")}`);
  const ops = admin(cp.port);
  const listen = await freePortPair();
  const sink = await Sink.open();
  const first = join(tempDir("moves"), "state");
  await ops.push("counter", "1.0.0", fixture("counter"));
  const v = await ops.apply(segment("node-v", "live", listen, sink.port, [{ filter: "counter", config: { tag: 9 } }]));
  let agent = await startAgent({ controlPlanes: [cp.address], nodeId: "node-v", stateDir: first, tls: "insecure" });
  try {
    await waitFor(() => agent.runningVersion === v, AGENT_START_MS, "the version running");
    await agent.close();
    ops.close();
    await cp.close();
    const moved = join(tempDir("moved"), "elsewhere");
    renameSync(first, moved);
    // secrets set: without, the start warns that the control plane's segments may name any file or variable
    agent = new Agent({ controlPlanes: [cp.address], nodeId: "node-v", stateDir: moved, tls: "insecure", settings: { secrets: { files: [], env: [] } } });
    const warnings: string[] = [];
    agent.on("warning", (w) => void warnings.push(w.message));
    await agent.start();
    assert.equal(warnings, []);
    assert.is(agent.runningVersion, v, "restored from the moved directory");
    await flowsThrough(listen, sink, "packets after a restart from the moved directory", 5000, 0x7fff0000);
    assert.is(metric(await stage(agent, "live", "counter"), "tag"), 9);
  } finally {
    await agent.close();
    sink.close();
  }
});

test("every failed start is said: an unusable last-good.json, a refused connection, a wrong node id, a certificate of another CA", async () => {
  const pki = createPki(join(tempDir("pki"), "ca"));
  const otherPki = createPki(join(tempDir("pki-other"), "ca"), "another CA");
  const cp = await replica(`file:${tempDir("store")}`, { tls: pki.issue("cp", "spiffe://msm.test/control-plane/cp-1"), name: "cp-1" });
  const dead = `127.0.0.1:${await freePortPair()}`; // nothing listens there
  const run = async (stateDir: string, tls: TlsFiles, nodeId: string, addresses: string[]): Promise<{ warnings: string[]; failures: Map<string, string> }> => {
    const agent = new Agent({ controlPlanes: addresses, nodeId, stateDir, tls });
    const warnings: string[] = [];
    const failures = new Map<string, string>();
    agent.on("warning", (w) => void warnings.push(w.message));
    agent.on("connect-failed", (f) => void failures.set(f.address, f.reason));
    try {
      await agent.start();
      await waitFor(() => failures.size === addresses.length, 10_000, `a failure reported for each of ${addresses.join(", ")}`);
    } finally {
      await agent.close();
    }
    return { warnings, failures };
  };
  try {
    const stateDir = tempDir("state");
    writeFileSync(join(stateDir, "last-good.json"), "{ half a fi");
    // a proxy certificate for node-b, registering as node-a
    const wrongId = await run(stateDir, pki.issue("node-b", "spiffe://msm.test/proxy/node-b"), "node-a", [dead, cp.address]);
    assert.match(wrongId.warnings[0] ?? "", /^secrets is not set in the node's settings: a segment from the control plane may name any file \(\$file\) or environment variable \(\$env\) this proxy can read/);
    assert.match(wrongId.warnings[1] ?? "", /^not starting from last-good\.json: .*last-good\.json: not valid JSON/);
    assert.match(wrongId.failures.get(dead)!, /ECONNREFUSED/);
    assert.match(wrongId.failures.get(cp.address)!, "Register.node_id is 'node-a' but the certificate is for proxy 'node-b'");
    const foreign = await run(tempDir("state"), { ...otherPki.issue("node-a", "spiffe://msm.test/proxy/node-a"), ca: pki.ca }, "node-a", [cp.address]);
    assert.ok(foreign.failures.get(cp.address)!.length > 0, "a handshake refused by the server is reported");
    assert.ok(cp.log.some((l) => /node-a.*node-b|node_id/.test(l)), `the control plane logs the refused Register too:\n${cp.log.join("\n")}`);
    // a refused proxy tries again after 1 s, then 2 s, doubling up to 30 s (a connection failure:
    // 100 ms doubling up to 1 s, some 8 tries in 5 s); the control plane logs the refusal once
    const refusedLines = (): number => cp.log.filter((l) => l.includes("Register.node_id is 'node-c' but the certificate is for proxy 'node-b'")).length;
    const relay = await freezableRelay(cp.port);
    const retrying = new Agent({ controlPlanes: [relay.address], nodeId: "node-c", stateDir: tempDir("state"), tls: pki.issue("node-b", "spiffe://msm.test/proxy/node-b") });
    try {
      await retrying.start();
      await sleep(5000);
    } finally {
      await retrying.close();
      relay.close();
    }
    assert.ok(relay.connections >= 2 && relay.connections <= 3, `tries at about 0, 1 and 3 s: ${relay.connections} connections in 5 s`);
    assert.is(refusedLines(), 1, `one line for the repeated refusal (${relay.connections} tries):\n${cp.log.join("\n")}`);
  } finally {
    await cp.close();
  }
});

test("three replicas on etcd: the connected one stops -> another within 2 s, the stream never stops, converges to a version applied meanwhile", async () => {
  const store = await sharedStore();
  const a = await replica(store, { name: "cp-a" });
  const b = await replica(store, { name: "cp-b" });
  const c = await replica(store, { name: "cp-c" });
  const opsA = admin(a.port);
  const opsC = admin(c.port);
  const opsB = admin(b.port);
  const listen = await freePortPair();
  const sink = await Sink.open();
  await opsA.push("counter", "1.0.0", fixture("counter"));
  const v1 = await opsA.apply(segment("node-f", "live-f", listen, sink.port, [{ filter: "counter", config: { tag: 10 } }]));
  const agent = await startAgent({ controlPlanes: [a.address, b.address, c.address], nodeId: "node-f", stateDir: tempDir("state"), tls: "insecure" });
  const tx = await bindUdp();
  try {
    await waitFor(() => agent.runningVersion === v1, AGENT_START_MS, "version 1 running");
    assert.is(agent.connectedTo, a.address, "the first listed replica first");
    const n = 15_000;
    const watch = await DeliveryWatch.start(() => agent.proxy, "live-f", [listen, sink.port]);
    let stoppedAt = 0;
    let reconnectMs = -1;
    let v2: Promise<number> | undefined;
    let aClosed: Promise<void> | undefined;
    agent.on("connected", ({ address }) => {
      if (stoppedAt && address !== a.address && reconnectMs < 0) reconnectMs = Date.now() - stoppedAt;
    });
    await sendPaced(tx, listen, "127.0.0.1", n, 5000, (i) => indexedRtp(i), (sent) => {
      if (sent >= 4000 && !stoppedAt) {
        stoppedAt = Date.now();
        aClosed = a.close();
        // a change made through a third replica while the proxy moves
        v2 = opsC.apply(segment("node-f", "live-f", listen, sink.port, [{ filter: "counter", config: { tag: 11 } }]));
      }
    });
    console.log(`    reconnected to the other replica in ${reconnectMs} ms`);
    assert.ok(reconnectMs >= 0 && reconnectMs < 2000, `connected to the other replica ${reconnectMs} ms after the stop`);
    assert.ok(agent.connectedTo === b.address || agent.connectedTo === c.address, `connected to ${agent.connectedTo}`);
    const version2 = await v2!;
    await waitFor(async () => agent.runningVersion === version2 && (await opsB.proxy("node-f"))?.ackedVersion === version2, AGENT_START_MS, "the newer version applied and acknowledged");
    assert.ok(["cp-b", "cp-c"].includes((await opsB.proxy("node-f"))!.server), "any replica shows where the proxy is");
    assert.is(metric(await stage(agent, "live-f", "counter"), "tag"), 11);
    await watch.expectDelivered(sink, n); // the stream never stopped
    await aClosed;
  } finally {
    tx.close();
    await agent.close();
    opsA.close();
    opsB.close();
    opsC.close();
    await a.close();
    await b.close();
    await c.close();
    sink.close();
  }
});

test("a replica that goes silent without closing -> keepalive notices, the other replica within 2 s", async () => {
  const store = await sharedStore();
  const a = await replica(store, { name: "cp-a2" });
  const b = await replica(store, { name: "cp-b2" });
  const ops = admin(b.port);
  const relay = await freezableRelay(a.port);
  const listen = await freePortPair();
  const sink = await Sink.open();
  await ops.push("counter", "1.0.0", fixture("counter"));
  const v1 = await ops.apply(segment("node-g", "live-g", listen, sink.port, [{ filter: "counter" }]));
  const agent = await startAgent({ controlPlanes: [relay.address, b.address], nodeId: "node-g", stateDir: tempDir("state"), tls: "insecure" });
  const tx = await bindUdp();
  try {
    await waitFor(() => agent.runningVersion === v1, AGENT_START_MS, "version 1 running");
    assert.is(agent.connectedTo, relay.address);
    let frozenAt = 0;
    let tookMs = -1;
    agent.on("connected", ({ address }) => {
      if (frozenAt && address === b.address) tookMs = Date.now() - frozenAt;
    });
    const n = 12_000;
    const watch = await DeliveryWatch.start(() => agent.proxy, "live-g", [listen, sink.port]);
    await sendPaced(tx, listen, "127.0.0.1", n, 4000, (i) => indexedRtp(i), (sent) => {
      if (sent >= 1000 && !frozenAt) {
        frozenAt = Date.now();
        relay.freeze();
      }
    });
    console.log(`    silent replica noticed, connected to the other one in ${tookMs} ms`);
    assert.ok(tookMs >= 0 && tookMs < 2000, `connected to the other replica ${tookMs} ms after the first one went silent`);
    assert.is(agent.connectedTo, b.address);
    await watch.expectDelivered(sink, n); // the stream never stopped
  } finally {
    tx.close();
    await agent.close();
    relay.close();
    ops.close();
    await Promise.all([a.close(), b.close()]);
    sink.close();
  }
});

test("msm proxy --control-plane: runs the agent, logs what it applies, stops on SIGTERM; usage errors", async () => {
  const MSM = join(ROOT, "dist", "cli", "msm.js");
  const usage = (args: string[]): { code: number | null; out: string } => {
    const r = spawnSync(process.execPath, [MSM, "proxy", ...args], { encoding: "utf8", timeout: 10_000 });
    return { code: r.status, out: r.stderr + r.stdout };
  };
  const neither = usage(["--workers", "2"]);
  assert.is(neither.code, 2);
  assert.match(neither.out, "give --config, or --control-plane");
  const noTls = usage(["--control-plane", "127.0.0.1:1", "--node-id", "n", "--state-dir", "/tmp/x"]);
  assert.is(noTls.code, 2);
  assert.match(noTls.out, "give --tls-ca, --tls-cert and --tls-key (missing: --tls-ca, --tls-cert, --tls-key), or --insecure");
  const stray = usage(["--config", "x.yaml", "--insecure"]);
  assert.is(stray.code, 2);
  assert.match(stray.out, "--insecure goes with --control-plane");

  const cp = await replica(`file:${tempDir("store")}`);
  const ops = admin(cp.port);
  const listen = await freePortPair();
  const sink = await Sink.open();
  await ops.push("counter", "1.0.0", fixture("counter"));
  const v = await ops.apply(segment("node-a", "live", listen, sink.port, [{ filter: "counter" }]));
  // a dead replica listed first: the agent moves on to the live one; an unusable last-good.json is said
  const stateDir = tempDir("state");
  writeFileSync(join(stateDir, "last-good.json"), "not json");
  const child = spawn(process.execPath, [MSM, "proxy", "--control-plane", `127.0.0.1:1,${cp.address}`, "--node-id", "node-a", "--state-dir", stateDir, "--insecure", "--workers", "2", "--gso", "off", "--admin", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    await waitFor(async () => (await ops.proxy("node-a"))?.ackedVersion === v, 10_000, "Ack from the msm process");
    assert.equal((await ops.proxy("node-a"))!.capabilities, ["workers=2", "runtime=node"]);
    await flowsThrough(listen, sink, "packets through the msm process", 5000, 0x7fff0000);
    await waitFor(() => /admin: http:\/\/127\.0\.0\.1:\d+\/metrics/.test(out), 2000, "the admin address in the log");
    assert.match(out, `snapshot ${v} applied (proxy started; 1 segment(s), 1 module(s) fetched`);
    assert.match(out, /proxy running on (batched I\/O \(recvmmsg\/sendmmsg|node:dgram I\/O)/, "the I/O path said at the start, as a start from a file says it");
    assert.match(out, /warning: not starting from last-good\.json: .*not valid JSON/);
    assert.match(out, /control plane 127\.0\.0\.1:1: cannot connect: .*ECONNREFUSED/);
    // a filter's words reach the log as one printable line: no terminal escapes, no forged lines
    await ops.push("misbehave", "0.1.0", fixture("misbehave"));
    const bad = await ops.apply(segment("node-a", "live", listen, sink.port, [{ filter: "misbehave", config: { reject: "\u001b[2J\u001b[31mgotcha\nFORGED: snapshot applied" } }]));
    await waitFor(() => out.includes(`snapshot ${bad} REFUSED`), 10_000, "the refusal in the log");
    assert.not.ok(/[\x1b]/.test(out), "no raw escape in the log");
    assert.not.match(out, /^FORGED/m);
    assert.match(out, "\\x1b[2J\\x1b[31mgotcha\\x0aFORGED: snapshot applied"); // escaped where the filter's text enters the host
    child.kill("SIGTERM");
    assert.is(await exited, 0);
    assert.match(out, "proxy stopped");
    assert.match(out, /disconnected \(agent closing\)\n/, "stopping: no next control plane tried");
  } finally {
    child.kill("SIGKILL");
    ops.close();
    await cp.close();
    sink.close();
  }
});

test("msm proxy --control-plane --config NODE-FILE: the node's own settings run under every snapshot, the flags win over them; a bad file names the field and starts nothing", async () => {
  const MSM = join(ROOT, "dist", "cli", "msm.js");
  const dir = tempDir("node");
  const start = (file: string, ...flags: string[]) => {
    const child = spawn(process.execPath, [MSM, "proxy", "--control-plane", cp.address, "--node-id", "node-a", "--state-dir", join(dir, "state"), "--insecure", "--config", file, ...flags], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    return { child, exited, out: () => out };
  };
  const refused = async (name: string, text: string): Promise<string> => {
    writeFileSync(join(dir, name), text);
    const r = start(join(dir, name));
    const code = await Promise.race([r.exited, sleep(10_000).then(() => "still running")]);
    r.child.kill("SIGKILL");
    assert.is(code, 1, r.out());
    assert.match(r.out(), "the node's settings cannot be used, nothing started");
    return r.out();
  };
  const cp = await replica(`file:${tempDir("store")}`);
  const ops = admin(cp.port);
  const listen = await freePortPair();
  const sink = await Sink.open();
  let proxy: ReturnType<typeof start> | undefined;
  try {
    assert.match(await refused("typo.yaml", "socketRecieveBuffer: 65536\n"), "socketRecieveBuffer'; did you mean 'socketReceiveBuffer'?");
    assert.match(await refused("range.yaml", "streams: { max: -1 }\n"), "streams.max: ");
    assert.match(await refused("segments.yaml", "segments: []\n"), "segments: not a node's setting: segments come from the control plane");
    assert.ok(!existsSync(join(dir, "state", "last-good.json")), "nothing ran");

    await ops.push("counter", "1.0.0", fixture("counter"));
    const v = await ops.apply(segment("node-a", "live", listen, sink.port, [{ filter: "counter" }]));
    // the file's workers (2) lose to --workers 1; its admin address, streams and socket buffer are taken
    writeFileSync(join(dir, "node.yaml"), "workers: 2\ngso: off\nadmin: { address: 127.0.0.1, port: 0 }\nsocketReceiveBuffer: 65536\nstreams: { max: 0 }\nmetrics: { exclude: [msm_filter_busy_seconds_total] }\n");
    proxy = start(join(dir, "node.yaml"), "--workers", "1");
    await waitFor(async () => (await ops.proxy("node-a"))?.ackedVersion === v, 10_000, "Ack from the msm process");
    assert.equal((await ops.proxy("node-a"))!.capabilities, ["workers=1", "runtime=node"], "--workers wins over the file");
    await flowsThrough(listen, sink, "packets through the msm process", 5000, 0x7fff0000);
    await waitFor(() => /admin: http:\/\/127\.0\.0\.1:\d+\/metrics/.test(proxy!.out()), 2000, "the file's admin endpoint in the log");
    const port = Number(/admin: http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(proxy.out())![1]);
    const stats = await (await fetch(`http://127.0.0.1:${port}/stats`)).json() as { segments: { name: string; streams: unknown[]; streamsOverflow: { ingressPackets: number } | null }[] };
    const live = stats.segments.find((x) => x.name === "live")!;
    // packets flowed (above), and with streams.max 0 no stream is counted (the default counts this one)
    assert.equal([live.streams, live.streamsOverflow], [[], null], "streams.max 0: no per-stream stats");
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, /^msm_filter_packets_in_total\{segment="live"/m);
    assert.not.match(metrics, /msm_filter_busy_seconds_total/, "the file's metrics.exclude is taken");
    // the kernel doubles SO_RCVBUF: 64 KiB asked is 128 KiB of buffer (the default, 4 MiB, is more)
    const ss = spawnSync("ss", ["-uamnH", "sport", "=", `:${listen}`], { encoding: "utf8" });
    assert.match(ss.stdout, /skmem:\(r\d+,rb131072,/, `the listen socket's buffer: ${ss.stdout}${ss.stderr}`);
    proxy.child.kill("SIGHUP");
    await waitFor(() => /SIGHUP: nothing to reload: .*node's settings \(.*node\.yaml\) are read at start only/.test(proxy!.out()), 5000, "SIGHUP answered");
    proxy.child.kill("SIGTERM");
    assert.is(await proxy.exited, 0, proxy.out());

    // last-good.json starts with the settings of today, not those it ran with (streams.max 0)
    assert.throws(() => new Agent({ controlPlanes: ["127.0.0.1:1"], nodeId: "node-a", stateDir: join(dir, "state"), tls: "insecure", settings: { socketReceiveBuffer: 1 } }),
      /settings: socketReceiveBuffer: /);
    assert.throws(() => new Agent({ controlPlanes: ["127.0.0.1:1"], nodeId: "node-a", stateDir: join(dir, "state"), tls: "insecure", settings: { workers: 2 } as never }),
      /settings\.workers: give workers as the agent's own option/);
    const restored = new Agent({ controlPlanes: ["127.0.0.1:1"], nodeId: "node-a", stateDir: join(dir, "state"), tls: "insecure", gso: "off", settings: { streams: { max: 10, maxPerSegment: 10, idleSeconds: 30 } } });
    try {
      await restored.start();
      assert.is(restored.runningVersion, v, "started from last-good.json");
      await flowsThrough(listen, sink, "packets through the restored proxy", 5000, 0x7fff0000);
      const seg = (await restored.proxy!.stats()).segments.find((x) => x.name === "live")!;
      assert.is(seg.streams.length, 1, "streams counted one by one again");
    } finally {
      await restored.close();
    }
  } finally {
    proxy?.child.kill("SIGKILL");
    ops.close();
    await cp.close();
    sink.close();
  }
});

test("a reread of the running snapshot reaches a rotated key file while another segment's change is held back (refused by its filter, not tried again)", async () => {
  const cp = await replica(`file:${tempDir("store")}`);
  const ops = admin(cp.port);
  const keyA = `inline:${Buffer.alloc(30, 0xa5).toString("base64")}`;
  const keyB = `inline:${Buffer.alloc(30, 0x5b).toString("base64")}`;
  const keyFile = join(tempDir("keys"), "dec.key");
  writeFileSync(keyFile, `${keyA}\n`);
  const [camPort, enc, dec] = [await freePortPair(), await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const tx = await bindUdp();
  await ops.push("validate", "1.0.0", filterWasm("validate"));
  await ops.push("srtp", "1.0.0", filterWasm("srtp"));
  const cam = (allowedPayloadTypes: number[]): Segment => segment("node-k", "cam", camPort, 9, [{ filter: "validate", config: { allowedPayloadTypes } }]);
  // enc protects under key B (inline); dec unprotects under the key its node's file holds: A, then B
  const encSeg = segment("node-k", "enc", enc, dec, [{ filter: "srtp", config: { direction: "protect", key: keyB } }]);
  const decSeg = segment("node-k", "dec", dec, sink.port, [{ filter: "srtp", config: { direction: "unprotect", key: { $file: keyFile } } }]);
  const v1 = await ops.apply(cam([96]), encSeg, decSeg);
  const agent = new Agent({ controlPlanes: [cp.address], nodeId: "node-k", stateDir: tempDir("state"), tls: "insecure" });
  const warnings: string[] = [];
  agent.on("warning", (w) => void warnings.push(w.message));
  try {
    await agent.start();
    await waitFor(() => agent.runningVersion === v1, AGENT_START_MS, "version 1 running");
    // cam's change is refused by its filter: the version runs with cam held back on its previous config, not tried again
    const v2 = await ops.apply(cam([960]), segment("node-k", "extra", await freePortPair(), 9, []));
    await waitFor(async () => (await ops.proxy("node-k"))?.ackedVersion === v2, 10_000, "version 2 acknowledged, cam held back");
    assert.equal((await ops.proxy("node-k"))!.notRunning, ["cam"]);
    let i = 0;
    const send = (): void => void tx.send(indexedRtp(i++), enc, "127.0.0.1");
    for (let k = 0; k < 20; k++) send();
    await sleep(200);
    assert.is(sink.received, 0, "nothing passes dec under key A");
    writeFileSync(keyFile, `${keyB}\n`);
    assert.is(agent.rereadReferences(), undefined, "the reread is queued");
    // before: the reread of version 2 was refused whole (cam again), and dec kept key A
    await waitFor(() => (send(), sink.received > 0), 10_000, `packets through dec under the rotated key (warnings: ${warnings.join(" | ")})`);
    assert.is(agent.runningVersion, v2);
  } finally {
    await agent.close();
    tx.close();
    ops.close();
    await cp.close();
    sink.close();
  }
});

test("msm proxy --control-plane: SIGHUP applies the running snapshot again, so a key file rotated on the node (srtp `key: { $file }`) takes effect then, through a hot swap", async () => {
  const MSM = join(ROOT, "dist", "cli", "msm.js");
  const dir = tempDir("reread");
  const keyA = `inline:${Buffer.alloc(30, 0xa5).toString("base64")}`;
  const keyB = `inline:${Buffer.alloc(30, 0x5b).toString("base64")}`;
  const keyFile = join(dir, "dec.key");
  writeFileSync(keyFile, `${keyA}\n`);
  const cp = await replica(`file:${tempDir("store")}`);
  const ops = admin(cp.port);
  const [enc, dec, adminPort] = [await freePortPair(), await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const tx = await bindUdp();
  let child: ReturnType<typeof spawn> | undefined;
  try {
    await ops.push("srtp", "1.0.0", filterWasm("srtp"));
    // enc protects under key B (given inline); dec unprotects under the key its node's file holds: A, then B
    const v = await ops.apply(
      segment("node-a", "enc", enc, dec, [{ filter: "srtp", config: { direction: "protect", key: keyB } }]),
      segment("node-a", "dec", dec, sink.port, [{ filter: "srtp", config: { direction: "unprotect", key: { $file: keyFile } } }]),
    );
    child = spawn(process.execPath, [MSM, "proxy", "--control-plane", cp.address, "--node-id", "node-a", "--state-dir", join(dir, "state"), "--insecure", "--admin", `127.0.0.1:${adminPort}`], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    await waitFor(async () => (await ops.proxy("node-a"))?.ackedVersion === v, AGENT_START_MS, `Ack of ${v}: ${out}`);
    let i = 0;
    const send = (): void => void tx.send(indexedRtp(i++), enc, "127.0.0.1"); // each index once: protect never encrypts one twice
    const failed = async (): Promise<number> => {
      const stats = await (await fetch(`http://127.0.0.1:${adminPort}/stats`)).json() as { segments: { name: string; drops: Record<string, number> }[] };
      return stats.segments.find((s) => s.name === "dec")?.drops.srtp_auth_failed ?? 0;
    };
    await waitFor(async () => (send(), (await failed()) > 0), 10_000, `dec refusing what key B protected: ${out}`);
    assert.is(sink.received, 0, "nothing passes dec under key A");

    writeFileSync(keyFile, `${keyB}\n`);
    child.kill("SIGHUP");
    await waitFor(() => out.includes(`SIGHUP: applying snapshot ${v} again to read its $file and $env references anew`), 5000, `SIGHUP answered: ${out}`);
    await waitFor(() => (send(), sink.received > 0), 10_000, `packets through dec under the rotated key: ${out}`);
    assert.is((await ops.proxy("node-a"))!.ackedVersion, v, "the version is the same; only the file's contents changed");
    assert.not.match(out, /REFUSED/);
  } finally {
    child?.kill("SIGKILL");
    tx.close();
    ops.close();
    await cp.close();
    sink.close();
  }
});

test("metrics.exclude in the node settings knows the agent's own families and leaves them out of /metrics too", async () => {
  // refused before as matching 'no family of this proxy's /metrics', though /metrics showed them; a prefix covering them left them in
  const agent = new Agent({
    controlPlanes: ["127.0.0.1:1"], nodeId: "node-m", stateDir: tempDir("state"), tls: "insecure", admin: { address: "127.0.0.1", port: 0 },
    settings: { metrics: { exclude: ["msm_snapshot_*"] } },
  });
  try {
    await agent.start();
    const body = await (await fetch(`http://127.0.0.1:${agent.adminPort}/metrics`)).text();
    assert.match(body, /\nmsm_control_plane_connected 0\n/, "the family not excluded stays");
    assert.not.match(body, /msm_snapshot_/, body);
  } finally {
    await agent.close();
  }
  // the list the check knows is the one the agent writes
  const source = readFileSync(join(ROOT, "controlplane", "agent", "agent.ts"), "utf8");
  assert.equal([...source.matchAll(/familyLines\("(msm_[a-z_]+)"/g)].map((m) => m[1]!).sort(), [...AGENT_FAMILIES].sort());
});

test("msm proxy --control-plane --admin: the endpoint is up before the first snapshot (live, not ready, no figures); a port another process holds ends the start", async () => {
  // no control plane answers: the agent keeps connecting, and says so on /readyz
  const run = (adminPort: number) => {
    const child = spawn(process.execPath, [join(ROOT, "dist", "cli", "msm.js"), "proxy", "--control-plane", "127.0.0.1:1", "--node-id", "node-a", "--state-dir", tempDir("state"), "--insecure", "--gso", "off", "--admin", `127.0.0.1:${adminPort}`], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    return { child, exited, out: () => out };
  };
  const waiting = run(0);
  try {
    await waitFor(() => /admin: http:\/\/127\.0\.0\.1:\d+\/metrics/.test(waiting.out()), 10_000, "the admin address in the log");
    const port = Number(/admin: http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(waiting.out())![1]);
    const get = async (path: string) => {
      const r = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: r.status, body: await r.text() };
    };
    const healthz = await get("/healthz");
    assert.is(healthz.status, 200, healthz.body);
    const readyz = await get("/readyz");
    assert.is(readyz.status, 503);
    assert.match(readyz.body, "no snapshot from the control plane applied yet (connecting)");
    const stats = await get("/stats");
    assert.equal([stats.status, stats.body], [503, "no proxy running yet: no config applied\n"]);
    const metrics = await get("/metrics");
    assert.is(metrics.status, 200, "a scrape succeeds");
    assert.match(metrics.body, /\nmsm_proxy_running 0\n/);
    assert.match(metrics.body, /\nmsm_control_plane_connected 0\n/, "the agent's own families: not connected");
    assert.match(metrics.body, /\nmsm_snapshot_version 0\n/);
    // the same port for a second agent: it does not start
    const taken = run(port);
    const code = await Promise.race([taken.exited, sleep(10_000).then(() => "still running")]);
    taken.child.kill("SIGKILL");
    assert.is(code, 1, taken.out());
    assert.match(taken.out(), `msm proxy: admin endpoint 127.0.0.1:${port}: listen EADDRINUSE`);
    assert.match(taken.out(), "the proxy did not start");
    waiting.child.kill("SIGTERM");
    assert.is(await waiting.exited, 0, waiting.out());
  } finally {
    waiting.child.kill("SIGKILL");
  }
});

/**
 * A replica that sends whatever snapshot it is given, and serves FetchFilter from a table that may
 * lie: what a buggy or compromised control plane could do, which the real one never does.
 */
class LooseReplica {
  readonly acks: number[] = [];
  readonly nacks: { version: number; error: string }[] = [];
  private readonly streams = new Set<ServerDuplexStream<ProxyMessage, unknown>>();
  snapshot: Snapshot = { version: 0, segments: [], filters: [] };
  readonly modules = new Map<string, Buffer>();
  /** Connect calls and FetchFilter calls it received. */
  calls = 0;

  private constructor(private readonly server: Server, readonly address: string) {}

  /** `service`: the ProxyService as this replica's msm.proto defines it (a newer one's, say). */
  static async start(tls: TlsFiles | "insecure" = "insecure", service: ServiceDefinition = proxyService): Promise<LooseReplica> {
    const server = new Server();
    let self: LooseReplica | undefined;
    server.addService(service, {
      Connect: (call: ServerDuplexStream<ProxyMessage, unknown>) => {
        self!.calls++;
        call.on("data", (msg: ProxyMessage) => {
          if (msg.kind === "register") {
            self!.streams.add(call);
            call.write({ snapshot: self!.snapshot });
          } else if (msg.kind === "ack") self!.acks.push(msg.ack.version);
          else if (msg.kind === "nack") self!.nacks.push(msg.nack);
        });
        call.on("error", () => void self!.streams.delete(call));
        call.on("end", () => {
          self!.streams.delete(call);
          call.end();
        });
      },
      FetchFilter: (call: ServerUnaryCall<{ sha256: string }, FilterModule>, cb: sendUnaryData<FilterModule>) => {
        self!.calls++;
        const wasm = self!.modules.get(call.request.sha256);
        if (wasm) cb(null, { ref: { name: "", version: "", sha256: call.request.sha256, size: wasm.length, pushedAtMs: 0 }, wasm });
        else cb({ code: status.NOT_FOUND, details: "no such module" }, null);
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", serverCredentials(tls), (err, p) => (err ? reject(err) : resolve(p))));
    self = new LooseReplica(server, `127.0.0.1:${port}`);
    return self;
  }

  ref(name: string, version: string, wasm: Buffer, claimedSha256 = sha256Hex(wasm)): FilterRef {
    this.modules.set(claimedSha256, wasm);
    return { name, version, sha256: claimedSha256, size: wasm.length, pushedAtMs: Date.now() };
  }

  publish(snapshot: Snapshot): void {
    this.snapshot = snapshot;
    for (const s of this.streams) s.write({ snapshot });
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

/** ProxyService as a newer msm.proto would define it: Segment and ChainStage with a field this build lacks. */
function newerProxyService(): ServiceDefinition {
  const proto = readFileSync(join(ROOT, "controlplane", "proto", "msm.proto"), "utf8")
    .replace(/^message Segment \{\n/m, "message Segment {\n  uint32 future_setting = 900;\n")
    .replace(/^message ChainStage \{\n/m, "message ChainStage {\n  string future_stage_key = 901;\n");
  assert.ok(proto.includes("future_setting") && proto.includes("future_stage_key"), "the newer proto was made");
  const file = join(tempDir("proto"), "msm.proto");
  writeFileSync(file, proto);
  const definition = loadProto(file, { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true, bytes: Buffer });
  return (loadPackageDefinition(definition) as unknown as { msm: { v1: { ProxyService: { service: ServiceDefinition } } } }).msm.v1.ProxyService.service;
}

test("a snapshot from a newer control plane, with settings this proxy does not know, is refused naming them (not run without them); the running config stays", async () => {
  const cp = await LooseReplica.start("insecure", newerProxyService());
  const listen = await freePortPair();
  const sink = await Sink.open();
  const counter = cp.ref("counter", "1.0.0", readFileSync(fixture("counter")));
  const seg = (chain: Parameters<typeof segment>[4]): Segment => segment("node-a", "live", listen, sink.port, chain);
  cp.snapshot = { version: 1, segments: [seg([{ filter: "counter", version: "1.0.0" }])], filters: [counter] };
  const agent = await startAgent({ controlPlanes: [cp.address], nodeId: "node-a", stateDir: tempDir("state"), tls: "insecure" });
  try {
    await waitFor(() => cp.acks.includes(1), AGENT_START_MS, "Ack 1: a newer control plane's snapshot without new settings runs");
    const future = { ...seg([{ filter: "counter", version: "1.0.0" }]), futureSetting: 7 };
    future.chain = [{ ...future.chain[0]!, futureStageKey: "x" } as never];
    cp.publish({ version: 2, segments: [future], filters: [counter] });
    await waitFor(() => cp.nacks.length === 1, 3000, "Nack 2");
    assert.is(cp.nacks[0]!.version, 2);
    assert.match(cp.nacks[0]!.error, "snapshot 2 has settings this proxy does not know, which it would run without: ");
    assert.match(cp.nacks[0]!.error, "segments[0] ('live'): field 900 of msm.v1.Segment");
    assert.match(cp.nacks[0]!.error, "segments[0] ('live').chain[0]: field 901 of msm.v1.ChainStage");
    assert.match(cp.nacks[0]!.error, "upgrade the proxy");
    await sleep(AGENT_TIMING.retryStartMs * 1.5);
    assert.is(cp.nacks.length, 1, "not tried again: it can only fail again");
    assert.is(agent.runningVersion, 1);
    await flowsThrough(listen, sink, "packets through the running config", 5000, 0x7fff0000);
    cp.publish({ version: 3, segments: [seg([])], filters: [] });
    await waitFor(() => cp.acks.includes(3), 5000, "Ack 3: the next snapshot without them runs");
  } finally {
    await agent.close();
    cp.stop();
    sink.close();
  }
});

test("snapshots the real server would refuse, sent anyway -> Nack naming the field; a module that is not its digest is refused, not cached", async () => {
  const cp = await LooseReplica.start();
  const listen = await freePortPair();
  const sink = await Sink.open();
  const stateDir = tempDir("state");
  const counter = cp.ref("counter", "1.0.0", readFileSync(fixture("counter")));
  const seg = (chain: Parameters<typeof segment>[4]): Segment => segment("node-a", "live", listen, sink.port, chain);
  cp.snapshot = { version: 1, segments: [seg([{ filter: "counter", version: "1.0.0" }])], filters: [counter] };
  const agent = await startAgent({ controlPlanes: [cp.address], nodeId: "node-a", stateDir, tls: "insecure" });
  try {
    await waitFor(() => cp.acks.includes(1), AGENT_START_MS, "Ack 1");
    cp.publish({ version: 2, segments: [{ ...seg([]), listen: { address: "localhost", port: listen, rtcpPort: 0 } }], filters: [] });
    await waitFor(() => cp.nacks.length === 1, 3000, "Nack 2");
    assert.match(cp.nacks[0]!.error, "segments[0].listen.address: must be an IPv4 or IPv6 address");
    await sleep(AGENT_TIMING.retryStartMs * 1.5);
    assert.is(cp.nacks.length, 1, "a bad field is not tried again: it can only fail again");
    cp.publish({ version: 3, segments: [seg([{ filter: "counter", version: "9.9.9" }])], filters: [counter] });
    await waitFor(() => cp.nacks.length === 2, 3000, "Nack 3");
    assert.match(cp.nacks[1]!.error, "segments[0].chain[0].filter: 'counter' version '9.9.9' is not in the snapshot's filters");
    // the replica serves other bytes than the digest it names
    const claimed = sha256Hex(Buffer.from("not these bytes"));
    const evil = cp.ref("evil", "1", readFileSync(fixture("misbehave")), claimed);
    cp.publish({ version: 4, segments: [seg([{ filter: "counter", version: "1.0.0" }, { filter: "evil", version: "1" }])], filters: [counter, evil] });
    await waitFor(() => cp.nacks.length === 3, 3000, "Nack 4");
    assert.match(cp.nacks[2]!.error, `filters[1] (evil@1): fetched module does not match its digest: asked for sha256:${claimed}`);
    assert.not.ok(existsSync(join(stateDir, "modules", `${claimed}.wasm`)), "nothing cached under a digest it does not have");
    assert.equal(cp.nacks.map((x) => x.version).slice(0, 3), [2, 3, 4]);
    // a fetch that went wrong may go right: tried again
    await waitFor(() => cp.nacks.length === 4, 3000, "Nack 4 again, after a retry");
    assert.is(cp.nacks[3]!.version, 4);
    assert.is(agent.runningVersion, 1);
    // each refusal counted where an operator's alert looks, though none reached the proxy's apply()
    // (the module fetch is retried meanwhile: the count lies between the NACKs before and after)
    const before = cp.nacks.length;
    const text = renderPrometheus(await agent.proxy!.stats());
    const refused = Number(/\nmsm_config_applies_total\{result="refused"\} (\d+)\n/.exec(text)?.[1]);
    assert.ok(refused >= before && refused <= cp.nacks.length + 1, `refused ${refused}, NACKs ${before}..${cp.nacks.length}`);
    await flowsThrough(listen, sink, "packets through the first chain", 5000, 0x7fff0000);
  } finally {
    await agent.close();
    cp.stop();
    sink.close();
  }
});

test("a refusal tried again and again is reported once, though every try is NACKed; once it runs, a new refusal is reported at once", async () => {
  const cp = await LooseReplica.start();
  const [first, listen] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const squatter = await holdPort(listen); // another process holds the port for a while
  cp.snapshot = { version: 1, segments: [segment("node-a", "live", first, sink.port, [])], filters: [] };
  const agent = new Agent({ controlPlanes: [cp.address], nodeId: "node-a", stateDir: tempDir("state"), tls: "insecure" });
  const refusals: AgentEvents["refused"][0][] = [];
  agent.on("refused", (e) => void refusals.push(e));
  try {
    await agent.start();
    await waitFor(() => cp.acks.includes(1), AGENT_START_MS, "Ack 1");
    // moved onto the held port: refused before the commit, tried again
    cp.publish({ version: 2, segments: [segment("node-a", "live", listen, sink.port, [])], filters: [] });
    await waitFor(() => cp.nacks.length >= 3, 15_000, "three tries NACKed"); // after about 1 s and 2 s more
    assert.ok(cp.nacks.every((n) => n.version === 2));
    assert.is(refusals.length, 1, `reported once: ${refusals.map((r) => r.error).join(" | ")}`);
    assert.equal([refusals[0]!.version, refusals[0]!.repeats], [2, 0]);
    squatter.release();
    await waitFor(() => cp.acks.includes(2), 10_000, "Ack 2 once the port is free");
    cp.publish({ version: 3, segments: [{ ...segment("node-a", "live", listen, sink.port, []), listen: { address: "localhost", port: listen, rtcpPort: 0 } }], filters: [] });
    await waitFor(() => refusals.length === 2, 5000, "a new refusal reported");
    assert.match(refusals[1]!.error, "segments[0].listen.address");
  } finally {
    squatter.release();
    await agent.close();
    cp.stop();
    sink.close();
  }
});

test("TLS on one side, plain text on the other -> the cause named; a failure that repeats (grpc-js stamps each with the time) is reported once", async () => {
  const pki = createPki(join(tempDir("pki"), "ca"));
  const plain = await replica(`file:${tempDir("store")}`);
  const tls = await replica(`file:${tempDir("store")}`, { tls: pki.issue("cp", "spiffe://msm.test/control-plane/cp-1"), name: "cp-1" });
  const relay = await freezableRelay(tls.port); // counts the attempts
  const insecureAgent = new Agent({ controlPlanes: [relay.address], nodeId: "node-p", stateDir: tempDir("state"), tls: "insecure" });
  const tlsAgent = new Agent({ controlPlanes: [plain.address], nodeId: "node-t", stateDir: tempDir("state"), tls: pki.issue("node-t", "spiffe://msm.test/proxy/node-t") });
  const failed: Record<string, AgentEvents["connect-failed"][0][]> = { insecure: [], tls: [] };
  insecureAgent.on("connect-failed", (f) => void failed.insecure!.push(f));
  tlsAgent.on("connect-failed", (f) => void failed.tls!.push(f));
  try {
    await insecureAgent.start();
    await tlsAgent.start();
    await waitFor(() => relay.connections >= 6 && failed.tls!.length > 0, 15_000, "several attempts at the TLS replica");
    assert.equal(failed.insecure!.map((f) => f.reason), [SERVER_SPEAKS_TLS], "one report, naming the cause");
    assert.is(failed.tls![0]!.reason, `${SERVER_IS_PLAIN_TEXT} (wrong version number)`);
    assert.is(failed.tls!.length, 1);
  } finally {
    await insecureAgent.close();
    await tlsAgent.close();
    relay.close();
    await plain.close();
    await tls.close();
  }
});

/** A leg message with only what the test sets (the rest as proto3 decodes an unset field). */
function legMsg(name: string, fields: Partial<Leg> = {}): Leg {
  return { name, listen: null, destinations: [], egress: null, ...fields };
}

/** The proxy's /stats over its admin endpoint: each segment's bound ports, legs included. */
async function adminStats(agent: Agent): Promise<{ segments: { name: string; ports: { legs: { name: string; listen: number | null; egress: number | null }[] } }[] }> {
  const res = await fetch(`http://127.0.0.1:${agent.adminPort}/stats`);
  assert.is(res.status, 200);
  return (await res.json()) as never;
}

test("legs in a snapshot: the proxy binds each leg's port (its /stats ports.legs); a leg its rules refuse, or one with an rtcp_port -> Nack naming the field, the legs keep running", async () => {
  const cp = await LooseReplica.start();
  const listen = await freePortRun(5);
  const sink = await Sink.open();
  const fec = [legMsg("fec-col", { portOffset: 2 }), legMsg("fec-row", { portOffset: 4, send: false })];
  const seg = (legs: Leg[]): Segment => ({ ...segment("node-a", "fec", listen, sink.port, []), legs });
  cp.snapshot = { version: 1, segments: [seg(fec)], filters: [] };
  const agent = await startAgent({ controlPlanes: [cp.address], nodeId: "node-a", stateDir: tempDir("state"), tls: "insecure", admin: { address: "127.0.0.1", port: 0 } });
  const legPorts = async () => (await adminStats(agent)).segments.find((s) => s.name === "fec")!.ports.legs.map((l) => [l.name, l.listen, l.egress !== null]);
  try {
    await waitFor(() => cp.acks.includes(1) && agent.adminPort !== null, AGENT_START_MS, "Ack 1");
    assert.equal(await legPorts(), [["fec-col", listen + 2, true], ["fec-row", listen + 4, false]], "fec-row only receives: no egress socket");
    cp.publish({ version: 2, segments: [seg([...fec, legMsg("fec-col", { portOffset: 6 })])], filters: [] });
    await waitFor(() => cp.nacks.length === 1, 3000, "Nack 2");
    assert.match(cp.nacks[0]!.error, "segments[0].legs[2].name: duplicate leg name 'fec-col'");
    cp.publish({ version: 3, segments: [seg([legMsg("fec-col", { listen: { address: "", port: listen + 2, rtcpPort: listen + 3 } })])], filters: [] });
    await waitFor(() => cp.nacks.length === 2, 3000, "Nack 3");
    assert.match(cp.nacks[1]!.error, "segments[0].legs[0].listen.rtcp_port: a leg carries no RTCP; leave it 0");
    assert.is(agent.runningVersion, 1);
    assert.equal(await legPorts(), [["fec-col", listen + 2, true], ["fec-row", listen + 4, false]], "the running legs are untouched");
    // a leg moved to its own listen port and destinations (not the media's own: a leg may not send
    // where leg 0 sends, config.ts): new sockets where the new snapshot says
    cp.publish({ version: 4, segments: [seg([legMsg("fec-col", { listen: { address: "", port: listen + 4, rtcpPort: 0 }, destinations: [{ address: "127.0.0.1", port: sink.port + 2, rtcpPort: 0 }] })])], filters: [] });
    await waitFor(() => cp.acks.includes(4) || cp.nacks.length > 2, 5000, "Ack 4");
    assert.equal(cp.nacks.slice(2).map((n) => n.error), [], "version 4 taken");
    assert.equal(await legPorts(), [["fec-col", listen + 4, true]]);
  } finally {
    await agent.close();
    cp.stop();
    sink.close();
  }
});

test("a server whose certificate is not a control plane's (a proxy's, another trust domain's) is refused at the handshake and the refusal reported", async () => {
  const pki = createPki(join(tempDir("pki"), "ca"));
  // both certificates are signed by the CA the agent trusts
  const proxyAsServer = await LooseReplica.start(pki.issue("evil", "spiffe://msm.test/proxy/evil"));
  const otherDomain = await LooseReplica.start(pki.issue("cp-x", "spiffe://other.test/control-plane/cp-x"));
  const real = await replica(`file:${tempDir("store")}`, { tls: pki.issue("cp", "spiffe://msm.test/control-plane/cp-1"), name: "cp-1" });
  const ops = admin(real.port, pki.issue("op", "spiffe://msm.test/admin/op"));
  const listen = await freePortPair();
  const sink = await Sink.open();
  const counter = proxyAsServer.ref("counter", "1.0.0", readFileSync(fixture("counter")));
  for (const rogue of [proxyAsServer, otherDomain]) {
    rogue.snapshot = { version: 99, segments: [segment("node-a", "stolen", listen, sink.port, [{ filter: "counter", version: "1.0.0" }])], filters: [counter] };
  }
  const agent = new Agent({ controlPlanes: [proxyAsServer.address, otherDomain.address, real.address], nodeId: "node-a", stateDir: tempDir("state"), tls: pki.issue("node-a", "spiffe://msm.test/proxy/node-a") });
  const failures: AgentEvents["connect-failed"][0][] = [];
  agent.on("connect-failed", (e) => void failures.push(e));
  try {
    await ops.push("counter", "1.0.0", fixture("counter"));
    const v = await ops.apply(segment("node-a", "live", listen, sink.port, [{ filter: "counter" }]));
    await agent.start();
    await waitFor(() => agent.runningVersion === v, 10_000, "the real control plane's snapshot running");
    assert.is(agent.connectedTo, real.address);
    assert.equal([proxyAsServer.calls, otherDomain.calls], [0, 0], "nothing was sent to the impostors");
    const reasons = new Map(failures.map((f) => [f.address, f.reason]));
    assert.match(reasons.get(proxyAsServer.address) ?? "", "not a control plane: its certificate has spiffe://msm.test/proxy/evil");
    assert.match(reasons.get(otherDomain.address) ?? "", "spiffe://other.test/control-plane/cp-x, not spiffe://msm.test/control-plane/<name>");
  } finally {
    await agent.close();
    ops.close();
    await real.close();
    proxyAsServer.stop();
    otherDomain.stop();
    sink.close();
  }
});

test("the delivery check fails on a loss that nothing explains, and on a duplicate", async () => {
  const sink = await Sink.open();
  const tx = await bindUdp();
  try {
    const watch = await DeliveryWatch.start(() => null, "none", [sink.port]);
    for (let i = 0; i < 60; i++) if (i % 6 !== 0) tx.send(indexedRtp(i), sink.port, "127.0.0.1");
    tx.send(indexedRtp(1), sink.port, "127.0.0.1");
    await waitFor(() => sink.received >= 51, 3000, "the packets sent");
    const verdict = await watch.expectDelivered(sink, 60).then(() => "passed", (err: Error) => err.message);
    assert.match(verdict, /60 sent, 50 received, 10 lost: 0 dropped by the proxy, 0 by the kernel .*, 10 unexplained, 1 duplicates/);
  } finally {
    tx.close();
    sink.close();
  }
});

test("holding back refused segments: each runs its previous version under a key of its own when an upgrade kept the key; only used entries; nothing else changed, no partial apply", () => {
  const v1 = { path: "m/1.wasm", sha256: "1".repeat(64), metricsName: "fec" };
  const v2 = { path: "m/2.wasm", sha256: "2".repeat(64), metricsName: "fec" };
  const seg = (name: string, config: Record<string, unknown> = {}) => ({ name, listen: { address: "127.0.0.1", port: 5000 }, destinations: [], chain: [{ filter: "fec", config }] });
  const running = { filters: { fec: v1 }, segments: [seg("a", { rows: 4 }), seg("b")] };
  // an upgrade of fec everywhere, a's new config refused, a new camera c
  const upgraded = holdBack({ filters: { fec: v2 }, segments: [seg("a", { rows: 40 }), seg("b"), seg("c")] }, running, ["a"])!;
  assert.equal(upgraded.kept, ["a"]);
  assert.equal(upgraded.config.segments!.map((x) => [x.name, x.chain![0]!.filter, x.chain![0]!.config]), [["a", "fec-held", { rows: 4 }], ["b", "fec", {}], ["c", "fec", {}]]);
  assert.equal(upgraded.config.filters, { fec: v2, "fec-held": v1 }, "a runs v1, the others v2");
  // a refused new camera is left out; the same key and module keep the key
  const added = holdBack({ filters: { fec: v1 }, segments: [seg("a", { rows: 4 }), seg("b", { rows: 8 }), seg("c", { bad: 1 })] }, running, ["c"])!;
  assert.equal(added.config.segments!.map((x) => x.name), ["a", "b"]);
  assert.equal(added.kept, []);
  assert.equal(added.config.filters, { fec: v1 });
  // nothing but the refused segment changes: no partial apply (the refusal stands)
  assert.is(holdBack({ filters: { fec: v1 }, segments: [seg("a", { rows: 40 }), seg("b")] }, running, ["a"]), undefined);
  // only the others' filter entry changes (an upgrade): that is a change
  assert.ok(holdBack({ filters: { fec: v2 }, segments: [seg("a", { rows: 40 }), seg("b")] }, running, ["a"]));
});

test("snapshot conversion: field by field, field paths in errors, one key per filter name unless two versions run", () => {
  const refs: FilterRef[] = [
    { name: "validate", version: "1.0.0", sha256: "a".repeat(64), size: 1, pushedAtMs: 1 },
    { name: "validate", version: "1.1.0", sha256: "b".repeat(64), size: 1, pushedAtMs: 2 },
    { name: "Counter.X", version: "1", sha256: "c".repeat(64), size: 1, pushedAtMs: 1 },
  ];
  const seg = (name: string, chain: Segment["chain"]): Segment => ({ ...segment("node-a", name, 30000, 40000, []), chain });
  // "" = the newest version; a single version in use is keyed by the (sanitized) name
  const one = planSnapshot({ version: 1, segments: [seg("s", [{ filter: "validate", version: "", configJson: '{"maxSize":1400}' }, { filter: "Counter.X", version: "1", configJson: "" }])], filters: refs }, "/m", 2);
  assert.equal(Object.keys(one.config.filters!).sort(), ["counter-x", "validate"]);
  assert.is(one.config.filters!.validate!.sha256, "b".repeat(64));
  assert.is(one.config.filters!.validate!.path, join("/m", `${"b".repeat(64)}.wasm`));
  assert.equal(one.config.segments![0]!.chain, [{ filter: "validate", config: { maxSize: 1400 } }, { filter: "counter-x", config: {} }]);
  assert.is(one.config.workers, 2);
  assert.equal(one.config.segments![0]!.listen, { address: "127.0.0.1", port: 30000 });
  assert.equal(one.config.segments![0]!.destinations, [{ address: "127.0.0.1", port: 40000 }]);
  assert.is(one.config.segments![0]!.egress, undefined);
  // a key by reference ({"$file"} / {"$env"}, resolved by the proxy) reaches the runtime's config untouched
  const refConfig = { key: { $file: "/etc/msm/cam.key" }, reverseKey: { $env: "MSM_REVERSE_KEY" } };
  const byRef = planSnapshot({ version: 1, segments: [seg("s", [{ filter: "validate", version: "", configJson: JSON.stringify(refConfig) }])], filters: refs }, "/m", 1);
  assert.equal(byRef.config.segments![0]!.chain![0]!.config, refConfig);
  // legs, field by field: unset port_offset, receive and send stay unset (the proxy's defaults), an empty listen address means the segment's
  const withLegs = planSnapshot({ version: 1, segments: [{ ...seg("s", []), legs: [
    legMsg("fec-col", { portOffset: 2 }),
    legMsg("path-b", { listen: { address: "", port: 31000, rtcpPort: 0 }, destinations: [{ address: "127.0.0.1", port: 41000, rtcpPort: 0 }], egress: { address: "127.0.0.1", port: 0, rtcpPort: 0 }, receive: true }),
    legMsg("repair", { portOffset: 4, receive: false, send: true }),
  ] }], filters: refs }, "/m", 1);
  assert.equal(withLegs.config.segments![0]!.legs, [
    { name: "fec-col", portOffset: 2 },
    { name: "path-b", listen: { port: 31000 }, receive: true, destinations: [{ address: "127.0.0.1", port: 41000 }], egress: { address: "127.0.0.1", port: 0 } },
    { name: "repair", portOffset: 4, receive: false, send: true },
  ]);
  assert.equal(one.config.segments![0]!.legs, [], "no legs: none");
  // two versions at once: a key each
  const two = planSnapshot({ version: 1, segments: [seg("s", [{ filter: "validate", version: "1.0.0", configJson: "" }]), seg("t", [{ filter: "validate", version: "1.1.0", configJson: "" }])], filters: refs }, "/m", 1);
  assert.equal(Object.keys(two.config.filters!).sort(), ["validate-1-0-0", "validate-1-1-0"]);
  // every key of a filter names its metrics after the filter: a dashboard outlives an upgrade
  assert.equal(Object.values(two.config.filters!).map((f) => f.metricsName), ["validate", "validate"]);
  assert.is(one.config.filters!["counter-x"]!.metricsName, "counter-x");
  // errors name the snapshot field
  const cases: [string, Partial<Segment>, string][] = [
    ["bad JSON", { chain: [{ filter: "validate", version: "", configJson: "{" }] }, "segments[0].chain[0].config_json: not valid JSON"],
    ["not an object", { chain: [{ filter: "validate", version: "", configJson: "[1]" }] }, "segments[0].chain[0].config_json: must be a JSON object"],
    ["a key twice (JSON.parse kept the last)", { chain: [{ filter: "validate", version: "", configJson: '{"a": 1, "a": 2}' }] }, "segments[0].chain[0].config_json: key 'a' appears twice at the top level"],
    ["nested past 64 levels", { chain: [{ filter: "validate", version: "", configJson: `{"a": ${"[".repeat(5000)}1${"]".repeat(5000)}}` }] }, "segments[0].chain[0].config_json: nested deeper than 64 levels of mappings and lists at line 1, column 70"],
    ["unknown filter", { chain: [{ filter: "fec", version: "", configJson: "" }] }, "segments[0].chain[0].filter: 'fec' is not in the snapshot's filters"],
    ["listen missing", { listen: null }, "segments[0].listen: required"],
    ["rtcp port", { listen: { address: "127.0.0.1", port: 30000, rtcpPort: 30005 } }, "segments[0].listen.rtcp_port"],
    ["rtcp port on a leg", { legs: [legMsg("fec-col", { portOffset: 2, destinations: [{ address: "127.0.0.1", port: 40002, rtcpPort: 40003 }] })] }, "segments[0].legs[0].destinations[0].rtcp_port: a leg carries no RTCP"],
  ];
  for (const [what, patch, message] of cases) {
    try {
      planSnapshot({ version: 1, segments: [{ ...seg("s", []), ...patch }], filters: refs }, "/m", 1);
      assert.unreachable(what);
    } catch (err) {
      assert.instance(err, SnapshotError, what);
      assert.match((err as Error).message, message, what);
    }
  }
  try {
    planSnapshot({ version: 1, segments: [], filters: [{ ...refs[0]!, sha256: "../../etc/passwd" }] }, "/m", 1);
    assert.unreachable("a digest that is not hex");
  } catch (err) {
    assert.match((err as Error).message, "filters[0].sha256: must be 64 hex digits");
  }
});

test.run();
