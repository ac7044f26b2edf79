// The control plane end to end, as an operator drives it: msmctl (the real binary) pushes
// filters and applies segments over mTLS, the control plane pushes snapshots, the proxy agent
// hot-swaps them under a 10,000 packets/s stream (zero loss, counted at the sink; what a busy
// machine's kernel drops is told apart from what the proxy loses), and a chain
// the filter refuses is NACKed, shown by msmctl, and changes nothing. A segment with FEC legs
// reaches the proxy whole: each leg bound and forwarded; a bad leg is refused and changes nothing.
// Viewers join and leave a running stream through msmctl apply: nobody else loses a packet.
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPki } from "../controlplane/security/pki.js";
import { startControlPlane } from "../controlplane/server/index.js";
import { startAgent } from "../controlplane/agent/index.js";
import { suite } from "./lib/suite.js";
import { DeliveryWatch } from "./lib/delivery.js";
import { filterWasm, fixture, ROOT } from "./lib/paths.js";
import { DropWatch, settled } from "./lib/kernel-drops.js";
import { streamPacket } from "./lib/rtp-stream.js";
import { StreamReceiver } from "./lib/stream-receiver.js";
import { bindUdp, freePortPair, freePortRun, indexedRtp, sendPaced, Sink, sleep, waitFor } from "./lib/udp.js";

const test = suite("control plane end to end", { timeoutMs: 90_000 });
const MSMCTL = join(ROOT, "dist", "cli", "msmctl.js");

function msmctl(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MSMCTL, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("exit", (code) => resolve({ code, out }));
  });
}

function manifest(listen: number, sink: number, chain: string): string {
  return `kind: Segment
metadata: { name: live }
spec:
  proxy: edge-1
  listen: { address: 127.0.0.1, port: ${listen} }
  destinations:
    - { address: 127.0.0.1, port: ${sink} }
  chain:
${chain}
`;
}

/** A control plane (file store, mTLS), an operator's msmctl environment, and one agent with its proxy. */
async function startMesh(prefix: string, admin?: { address: string; port: number }) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const pki = createPki(join(dir, "pki"));
  const cp = await startControlPlane({
    listen: "127.0.0.1:0", store: `file:${join(dir, "store")}`, trustDomain: "msm.test", name: "cp-1",
    tls: pki.issue("cp", "spiffe://msm.test/control-plane/cp-1"), log: () => {},
  });
  const op = pki.issue("op", "spiffe://msm.test/admin/alice");
  const env = { MSM_SERVER: `127.0.0.1:${cp.port}`, MSM_TLS_CA: op.ca, MSM_TLS_CERT: op.cert, MSM_TLS_KEY: op.key };
  const agent = await startAgent({
    controlPlanes: [`127.0.0.1:${cp.port}`], nodeId: "edge-1", stateDir: join(dir, "state"),
    tls: pki.issue("edge-1", "spiffe://msm.test/proxy/edge-1"), ...(admin && { admin }),
  });
  return { dir, pki, cp, env, agent };
}

test("msmctl apply hot-swaps a running 10,000 packets/s stream with zero loss; a refused chain is NACKed and shown", async () => {
  const { dir, pki, cp, env, agent } = await startMesh("msm-e2e-");
  const listen = await freePortPair();
  const sink = await Sink.open();
  const tx = await bindUdp();
  const file = join(dir, "live.yaml");
  try {
    for (const [ref, wasm] of [["validate@1.0.0", filterWasm("validate")], ["counter@1.0.0", fixture("counter")], ["misbehave@1.0.0", fixture("misbehave")]] as const) {
      const r = await msmctl(["filter", "push", ref, wasm], env);
      assert.is(r.code, 0, r.out);
    }
    writeFileSync(file, manifest(listen, sink.port, "    - { filter: validate, config: {} }\n    - { filter: counter, config: { tag: 1 } }"));
    // --wait returns once the real agent acknowledged the revision: the proxy runs it then
    const first = await msmctl(["apply", "-f", file, "--wait"], env);
    assert.is(first.code, 0, first.out);
    assert.match(first.out, /^segment\/live created\nproxy\/edge-1 runs revision (\d+)\n$/);
    assert.is(agent.runningVersion, Number(/revision (\d+)/.exec(first.out)![1]), "running when msmctl returned");

    // settle the validate filter's probation for this source, then stream 30,000 packets at 10,000/s
    tx.send(indexedRtp(0xfffffff0), listen, "127.0.0.1");
    tx.send(indexedRtp(0xfffffff1), listen, "127.0.0.1");
    await waitFor(() => sink.received >= 1, 3000, "the source to pass probation");
    const n = 30_000;
    let swap: Promise<{ code: number | null; out: string }> | undefined;
    const watch = await DeliveryWatch.start(() => agent.proxy, "live", [listen, sink.port]);
    const versionBefore = agent.runningVersion;
    await sendPaced(tx, listen, "127.0.0.1", n, 10_000, (i) => indexedRtp(i), (sent) => {
      if (sent >= 8_000 && !swap) {
        writeFileSync(file, manifest(listen, sink.port, "    - { filter: validate, config: { maxSize: 1400 } }\n    - { filter: counter, config: { tag: 2 } }"));
        swap = msmctl(["apply", "-f", file], env);
      }
    });
    const swapped = await swap!;
    assert.is(swapped.code, 0, swapped.out);
    assert.match(swapped.out, /segment\/live configured/);
    await waitFor(() => agent.runningVersion > versionBefore, 10_000, "the new snapshot to run");
    // zero loss: whatever is missing, a busy machine's kernel (or send queue) dropped, and it is counted
    const delivery = await watch.expectDelivered(sink, n);
    const stats = await agent.proxy!.stats();
    const counter = stats.segments[0]!.stages[1]!;
    assert.is(counter.metrics.find((m) => m.name === "tag")?.value, 2, "the new chain runs");
    assert.ok((counter.metrics.find((m) => m.name === "packets")?.value ?? 0) >= n - (delivery.kernel.byPort[listen] ?? 0), "state carried across the swap");

    // a chain the filter refuses: NACKed, the old chain keeps running, msmctl shows why
    const acked = agent.runningVersion;
    writeFileSync(file, manifest(listen, sink.port, "    - { filter: misbehave, config: { reject: \"bitrate cap must be positive\" } }"));
    const bad = await msmctl(["apply", "-f", file, "--wait"], env);
    assert.is(bad.code, 1, bad.out);
    assert.match(bad.out, /^segment\/live configured\nproxy\/edge-1 REFUSED revision \d+: .*bitrate cap must be positive/);
    let described = "";
    await waitFor(async () => {
      described = (await msmctl(["describe", "proxy", "edge-1"], env)).out;
      return /bitrate cap must be positive/.test(described);
    }, 10_000, "the NACK to show in msmctl describe");
    const listed = await msmctl(["get", "proxies", "-o", "json"], env);
    assert.is(listed.code, 0, listed.out);
    assert.match(listed.out, /edge-1/);
    assert.match(listed.out, /bitrate cap must be positive/, "the NACK reason is in get proxies");
    assert.is(agent.runningVersion, acked, "the refused version is not running");
    const after = await DeliveryWatch.start(() => agent.proxy, "live", [listen, sink.port]);
    for (let i = 0; i < 100; i++) tx.send(indexedRtp(n + i), listen, "127.0.0.1");
    await after.expectDelivered(sink, 100, n); // traffic on the old chain after the NACK

    // and a proxy certificate may not act as an operator
    const px = pki.issue("px", "spiffe://msm.test/proxy/edge-9");
    const denied = await msmctl(["get", "segments"], { ...env, MSM_TLS_CERT: px.cert, MSM_TLS_KEY: px.key });
    assert.is(denied.code, 1);
    assert.match(denied.out, /permission denied/i);
  } finally {
    tx.close();
    sink.close();
    await agent.close();
    await cp.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** SMPTE 2022-1 FEC beside the media: column FEC on the listen port + 2, row FEC on + 4, each to the destination's port + 2 / + 4. */
function fecManifest(listen: number, sink: number, extraLegs = ""): string {
  return `kind: Segment
metadata: { name: fec }
spec:
  proxy: edge-1
  listen: { address: 127.0.0.1, port: ${listen} }
  destinations: [{ address: 127.0.0.1, port: ${sink} }]
  legs:
    - { name: fec-col, portOffset: 2 }
    - { name: fec-row, portOffset: 4 }
${extraLegs}`;
}

interface LegPorts { name: string; listen: number | null; egress: number | null }
interface StatsBody { segments: { name: string; ports: { legs: LegPorts[] }; legs: { name: string; packetsIn: number; packetsOut: number }[] }[] }

test("msmctl apply of a segment with two FEC legs: the agent's proxy binds their ports (/stats ports.legs) and forwards each leg to the destination's port + offset; a bad leg is refused naming the field, and nothing changes", async () => {
  const { dir, cp, env, agent } = await startMesh("msm-e2e-legs-", { address: "127.0.0.1", port: 0 });
  const listen = await freePortRun(5);
  const sinkBase = await freePortRun(5);
  const sinks = [await Sink.open(sinkBase), await Sink.open(sinkBase + 2), await Sink.open(sinkBase + 4)];
  const tx = await bindUdp();
  const file = join(dir, "fec.yaml");
  const stats = async (): Promise<StatsBody["segments"][number]> => {
    const res = await fetch(`http://127.0.0.1:${agent.adminPort}/stats`);
    assert.is(res.status, 200);
    return ((await res.json()) as StatsBody).segments.find((s) => s.name === "fec")!;
  };
  try {
    writeFileSync(file, fecManifest(listen, sinkBase));
    const applied = await msmctl(["apply", "-f", file], env);
    assert.is(applied.code, 0, applied.out);
    assert.match(applied.out, /segment\/fec created/);
    await waitFor(() => agent.runningVersion > 0 && agent.adminPort !== null, 10_000, "the snapshot with legs to run");
    const legs = (await stats()).ports.legs;
    assert.equal(legs.map((l) => [l.name, l.listen]), [["fec-col", listen + 2], ["fec-row", listen + 4]], "the proxy listens on each leg's port");
    assert.ok(legs.every((l) => l.egress !== null), "and sends from a socket of each leg's own");

    // 300 packets on each leg in turn, each to its own sink; any loss attributed
    const n = 300;
    for (const [k, offset] of [0, 2, 4].entries()) {
      const watch = await DeliveryWatch.start(() => agent.proxy, "fec", [listen + offset, sinkBase + offset]);
      await sendPaced(tx, listen + offset, "127.0.0.1", n, 3000, (i) => indexedRtp(i));
      await watch.expectDelivered(sinks[k]!, n);
    }
    const counters = (await stats()).legs;
    assert.equal(counters.map((l) => l.name), ["media", "fec-col", "fec-row"]);
    counters.forEach((l, k) => assert.ok(l.packetsOut >= sinks[k]!.received && sinks[k]!.received > 0, `${l.name}: out ${l.packetsOut}, the sink got ${sinks[k]!.received}`));

    // msmctl shows the legs, and their counters once the proxy reports them
    let described = "";
    await waitFor(async () => {
      described = (await msmctl(["describe", "segment", "fec"], env)).out;
      return /per leg: media in \d+, out [1-9]\d*; fec-col in \d+, out [1-9]\d*; fec-row in \d+, out [1-9]\d*/.test(described);
    }, 10_000, "per-leg counters in msmctl describe");
    assert.match(described, new RegExp(`^Legs:\\s+fec-col: receives on 127\\.0\\.0\\.1:${listen + 2} \\(listen port \\+ 2\\); sends to 127\\.0\\.0\\.1:${sinkBase + 2} \\(destination ports \\+ 2\\)$`, "m"), described);
    assert.match(described, new RegExp(`^\\s+fec-row: receives on 127\\.0\\.0\\.1:${listen + 4} \\(listen port \\+ 4\\); sends to 127\\.0\\.0\\.1:${sinkBase + 4} \\(destination ports \\+ 4\\)$`, "m"), described);

    // a receiving leg with neither listen nor portOffset, and a leg name twice: refused by the server, in the file's terms
    const running = agent.runningVersion;
    writeFileSync(file, fecManifest(listen, sinkBase, "    - { name: fec-extra, destinations: [{ address: 127.0.0.1, port: 9 }] }\n    - { name: fec-col, portOffset: 6 }\n"));
    const bad = await msmctl(["apply", "-f", file], env);
    assert.is(bad.code, 1, bad.out);
    assert.match(bad.out, /refused the segments; nothing was applied/);
    assert.match(bad.out, /fec\.yaml: document 1: spec\.legs\[2\]: a receiving leg needs listen or portOffset \(or receive: false\)$/m, bad.out);
    assert.match(bad.out, /fec\.yaml: document 1: spec\.legs\[3\]\.name: duplicate leg name 'fec-col'$/m, bad.out);
    const listed = await msmctl(["get", "segment", "fec", "-o", "json"], env);
    assert.equal(JSON.parse(listed.out).spec.legs, [{ name: "fec-col", portOffset: 2 }, { name: "fec-row", portOffset: 4 }], "the stored segment is unchanged");
    assert.is(agent.runningVersion, running, "no new snapshot");
    const sockets = (l: LegPorts[]): unknown => l.map((x) => [x.name, x.listen, x.egress]);
    assert.equal(sockets((await stats()).ports.legs), sockets(legs), "the proxy's leg sockets are the same");
  } finally {
    tx.close();
    for (const s of sinks) s.close();
    await agent.close();
    await cp.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("viewers join and leave through msmctl apply while a stream runs: each joiner's stream is continuous from its join on, the viewers that stay lose nothing; one viewer gets the stream under its own SSRC and payload type", async () => {
  const { dir, cp, env, agent } = await startMesh("msm-e2e-viewers-");
  const SEQ0 = 65_000;
  const [stayers, leavers, joiners] = [await openReceivers(3, SEQ0), await openReceivers(3, SEQ0), await openReceivers(3, SEQ0)];
  const all = [...stayers, ...leavers, ...joiners];
  const listen = await freePortPair();
  const tx = await bindUdp();
  const file = join(dir, "viewers.yaml");
  const apply = async (viewers: readonly StreamReceiver[]): Promise<void> => {
    writeFileSync(file, `kind: Segment
metadata: { name: viewers }
spec:
  proxy: edge-1
  listen: { address: 127.0.0.1, port: ${listen} }
  destinations:
${viewers.map((v) => `    - { address: 127.0.0.1, port: ${v.port}${v === stayers[0] ? ", ssrc: 0xb0b0b0b0, payloadType: 100" : ""} }`).join("\n")}
`);
    const version = agent.runningVersion;
    const r = await msmctl(["apply", "-f", file], env);
    assert.is(r.code, 0, r.out);
    await waitFor(() => agent.runningVersion > version, 10_000, "the change to run");
  };
  try {
    const members = new Set([...stayers, ...leavers]);
    await apply([...members]);
    const kernel = new DropWatch(all.map((r) => r.port));
    // the stream runs until a second after the last change ran (at most 30 s: on a loaded machine
    // three msmctl applies took longer than the 8 s a fixed stream ran, and the last leaver was
    // never removed while it flowed)
    let sending = true;
    let endAt = Infinity;
    const sender = sendPaced(tx, listen, "127.0.0.1", 30_000, 1000, (i) => streamPacket(i, SEQ0), () => (Date.now() >= endAt ? "stop" : undefined))
      .finally(() => (sending = false));
    let changes = 0;
    await sleep(500);
    for (let k = 0; k < 3 && sending; k++) {
      members.delete(leavers[k]!);
      members.add(joiners[k]!);
      await apply([...members]);
      if (sending) changes++;
      await sleep(300);
    }
    endAt = Date.now() + 1000;
    const n = await sender;
    await settled(() => all.reduce((sum, r) => sum + r.indices.length, 0));
    const stats = (await agent.proxy!.stats()).segments.find((x) => x.name === "viewers")!;
    const proxyDrops = Object.values(stats.drops).reduce((a, b) => a + b, 0);
    const drops = kernel.since().byPort;
    assert.is(changes, 3, "every change happened while the stream ran");
    assert.equal([[...stayers[0]!.ssrcs], [...stayers[0]!.payloadTypes]], [[0xb0b0b0b0], [100]], "the translated viewer gets its own SSRC and payload type");
    assert.equal([[...stayers[1]!.ssrcs], [...stayers[1]!.payloadTypes]], [[0], [33]], "the others get the stream as sent");
    for (const r of all) {
      const c = r.continuity();
      const explained = (drops[r.port] ?? 0) + proxyDrops;
      const what = `viewer ${r.port} ${JSON.stringify({ ...c, count: r.indices.length, explained })}`;
      assert.is(r.badTimestamps, 0, what);
      assert.is(c.disorder, 0, what);
      assert.ok(c.holes <= explained, `${what}: holes inside its stream`);
      if (!leavers.includes(r)) assert.is(c.last, n - 1, `${what}: gets the stream to its end`);
      if (stayers.includes(r)) assert.ok(c.first === 0 || explained > 0, `${what}: gets the stream from its start`);
      if (leavers.includes(r)) assert.ok(c.last < n - 1, `${what}: stops getting it once removed`);
    }
  } finally {
    tx.close();
    for (const r of all) r.close();
    await agent.close();
    await cp.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

const openReceivers = (count: number, seq0: number): Promise<StreamReceiver[]> => Promise.all(Array.from({ length: count }, () => StreamReceiver.open(seq0)));

test.run();
