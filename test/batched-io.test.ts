// Batched socket I/O (docs/batched-io.md): the addon built at install is what the proxy uses,
// a proxy that cannot have it says so (or refuses, when the config insists), datagrams of every
// size cross it whole, a send it cannot make is counted, and symmetric RTP makes a segment one
// socket so that 10,000 fit under a 20,000 open-files limit.
import * as assert from "uvu/assert";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildRtcpReceiverReport } from "../sdk/harness/index.js";
import { SegmentStats } from "../runtime/chain/stats.js";
import { BatchedIo, loadAddon, planIo, RECEIVE_SLOT } from "../runtime/dataplane/batched-io.js";
import { hostCryptoUnavailable, validateProxyConfig } from "../runtime/index.js";
import { MAX_DESTINATIONS } from "../runtime/config/proxy-config.js";
import { DropReason } from "../runtime/abi.js";
import { DropWatch, settled, unexplainedLoss } from "./lib/kernel-drops.js";
import { NetnsLab, netnsPeer } from "./lib/netns.js";
import { startNsProxy } from "./lib/ns-proxy.js";
import { runNsSender, startNsSink } from "./lib/ns-rtp.js";
import { allOf, peer, peerTest } from "./lib/peers.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { suite } from "./lib/suite.js";
import { ROOT } from "./lib/paths.js";
import { bindUdp, freePortPair, freePortRun, indexedRtp, Sink, sleep, waitFor } from "./lib/udp.js";

const test = suite("batched I/O", { timeoutMs: 60_000 });
const LO = "127.0.0.1";
const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
const CLI = join(ROOT, "dist", "cli", "msm.js");

const addon = peer("the batched-I/O addon", "built by `npm install` (python3, make, a C compiler; node scripts/build-native.mjs)", () => planIo("auto").send === "native");

peerTest(test, addon, "the proxy moves packets through the addon both ways: watched by libuv under Node, by the addon's thread under Bun", async () => {
  const plan = planIo("auto");
  assert.equal(plan, { receive: "native", send: "native", watch: isBun ? "thread" : "loop", gso: true, note: "" });
  const listen = await freePortPair();
  const dest = await Sink.open(0, { keep: true });
  const sender = await Sink.open(0, { keep: true });
  const { proxy } = await startProxy({
    io: "native",
    segments: [{ name: "native", rtcpMux: true, listen: { address: LO, port: listen }, destinations: [{ address: LO, port: dest.port }] }],
  });
  try {
    assert.equal((await proxy.stats()).io, plan);
    for (let i = 0; i < 2000; i++) sender.socket.send(indexedRtp(i), listen, LO);
    await waitFor(() => dest.received >= 2000, 5000, "2000 packets through the proxy");
    assert.equal(dest.tally(2000), { missing: 0, duplicates: 0 });
    // feedback the other way, from the egress port the media came from, to the sender's port
    const egress = dest.packets[0]!.from.port;
    dest.socket.send(buildRtcpReceiverReport(0xfeed), egress, LO);
    await waitFor(() => sender.received >= 1, 3000, "feedback at the sender");
    assert.is(sender.packets[0]!.from.port, listen);
    const seg = await segmentStats(proxy, "native");
    assert.is(seg.packetsOut, 2001);
    assert.is(seg.upstreamIn, 1);
  } finally {
    dest.close();
    sender.close();
    await proxy.close();
  }
});

peerTest(test, addon, "the watcher thread (Bun's path, here on this runtime): sockets opened and closed while packets arrive lose none on the others, and a closed one hears nothing more", async () => {
  const io = new BatchedIo({ receive: "native", send: "native", watch: "thread", gso: true, note: "" }, 64);
  const view = new DataView(io.data.buffer, io.data.byteOffset, io.data.byteLength);
  type Watched = { id: number; port: ReturnType<BatchedIo["attach"]>; socket: ReturnType<BatchedIo["take"]>; address: number; sent: number; got: number; closed: boolean };
  const open: Watched[] = [];
  const closed: Watched[] = [];
  let late = 0;
  let next = 0;
  const watch = async (): Promise<void> => {
    const raw = await bindUdp();
    const address = raw.address().port;
    const socket = io.take(raw);
    const w: Watched = { id: next++, port: null!, socket, address, sent: 0, got: 0, closed: false };
    w.port = io.attach(socket, (count) => {
      for (let i = 0; i < count; i++) {
        if (w.closed) late++;
        else if (view.getUint32(i * RECEIVE_SLOT) === w.id) w.got++;
      }
    });
    open.push(w);
  };
  const sender = await bindUdp();
  try {
    for (let i = 0; i < 24; i++) await watch();
    const steady = open.slice(0, 8); // never closed
    for (let round = 0; round < 40; round++) {
      for (const w of open) {
        const packet = Buffer.alloc(200); // node:dgram may send after this returns: one buffer per socket
        packet.writeUInt32BE(w.id, 0);
        for (let k = 0; k < 10; k++) sender.send(packet, w.address, LO);
        w.sent += 10;
      }
      // close four of the others at once, some with wakeups for them queued, and open four
      for (let k = 0; k < 4; k++) {
        const victim = open.splice(8 + ((round * 7 + k * 3) % (open.length - 8)), 1)[0]!;
        victim.closed = true;
        io.close(victim.port);
        victim.socket.close();
        closed.push(victim);
      }
      for (let k = 0; k < 4; k++) await watch();
      await sleep(5);
    }
    await waitFor(() => steady.every((w) => w.got === w.sent), 5000, "every packet at the sockets never closed");
    for (const w of open) await waitFor(() => w.got === w.sent, 5000, `every packet at socket ${w.id}, opened during the run`);
    assert.is(late, 0, "packets handed over for a closed socket");
    assert.ok(closed.length === 160 && steady.every((w) => w.sent === 400));
  } finally {
    for (const w of open) {
      io.close(w.port);
      w.socket.close();
    }
    sender.close();
  }
});

peerTest(test, addon, "the watcher thread: a batch handler that closes one socket and pauses another while packets arrive for both loses nothing, and the closed one hears nothing more", async () => {
  const io = new BatchedIo({ receive: "native", send: "native", watch: "thread", gso: false, note: "" }, 64);
  const view = new DataView(io.data.buffer, io.data.byteOffset, io.data.byteLength);
  type Watched = { port: ReturnType<BatchedIo["attach"]>; socket: ReturnType<BatchedIo["take"]>; address: number; got: number; closed: boolean };
  let late = 0;
  const watch = async (id: number, onPacket: () => void): Promise<Watched> => {
    const raw = await bindUdp();
    const address = raw.address().port;
    const w: Watched = { port: null!, socket: io.take(raw), address, got: 0, closed: false };
    w.port = io.attach(w.socket, (count) => {
      for (let i = 0; i < count; i++) {
        if (w.closed) late++;
        else if (view.getUint32(i * RECEIVE_SLOT) === id) {
          w.got++;
          onPacket();
        }
      }
    });
    return w;
  };
  const ROUNDS = 300;
  // A's handler closes B at its 50th packet and pauses C from its 20th to its 60th, with packets
  // for B and C arriving meanwhile, some with wakeups for them queued (those C's socket cannot
  // hold while paused are the kernel's drops)
  const b = await watch(2, () => undefined);
  const c = await watch(3, () => undefined);
  const a = await watch(1, () => {
    if (a.got === 50) {
      b.closed = true;
      io.close(b.port);
      b.socket.close();
    }
    if (a.got === 20) io.pause(c.port);
    if (a.got === 60) loadAddon()!.resume(c.port);
  });
  const kernel = new DropWatch([a.address, c.address]);
  // a sender each: the ICMP errors B's closed port brings back would fail the next send of a
  // shared socket under Bun (its sockets have IP_RECVERR on)
  const senders = [await bindUdp(), await bindUdp(), await bindUdp()];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const [id, w] of [[1, a], [2, b], [3, c]] as const) {
        const packet = Buffer.alloc(100);
        packet.writeUInt32BE(id, 0);
        senders[id - 1]!.send(packet, w.address, LO);
      }
      if (round % 5 === 4) await sleep(1);
    }
    const drops = (w: Watched): number => kernel.since().byPort[w.address]!;
    await waitFor(() => a.got + drops(a) === ROUNDS && c.got + drops(c) === ROUNDS, 5000, "every packet at the sockets not closed, or the kernel's drop")
      .catch((err: Error) => assert.unreachable(`${err.message}: A ${a.got} + ${drops(a)}, C ${c.got} + ${drops(c)} of ${ROUNDS}`));
    assert.ok(c.got > 0 && a.got > 60, "both read after the pause");
    assert.ok(b.got >= 1 && b.got < ROUNDS, `B heard packets until its close (${b.got})`);
    assert.is(late, 0, "packets handed over for a closed socket");
  } finally {
    for (const w of [a, c]) {
      io.close(w.port);
      w.socket.close();
    }
    for (const s of senders) s.close();
  }
});

peerTest(test, addon, "a datagram of any size crosses whole: empty, 1 byte, 65,507 bytes (the largest IPv4 UDP payload)", async () => {
  const listen = await freePortPair();
  const dest = await Sink.open(0, { keep: true });
  const sender = await bindUdp();
  const { proxy } = await startProxy({
    io: "native",
    segments: [{ name: "sizes", rtcpMux: true, listen: { address: LO, port: listen }, destinations: [{ address: LO, port: dest.port }] }],
  });
  try {
    const sizes = [0, 1, 1500, 9000, 65_507];
    for (const size of sizes) sender.send(Buffer.alloc(size, size & 0xff), listen, LO);
    await waitFor(() => dest.received >= sizes.length, 3000, "every size");
    assert.equal(dest.packets.map((p) => p.bytes.length).sort((a, b) => a - b), sizes);
    for (const p of dest.packets) assert.ok(p.bytes.every((b) => b === (p.bytes.length & 0xff)), `bytes of the ${p.bytes.length}-byte datagram intact`);
  } finally {
    dest.close();
    sender.close();
    await proxy.close();
  }
});

peerTest(test, addon, "a send the kernel refuses is counted as a drop of the segment, the rest of the batch still goes", async () => {
  const plan = planIo("native");
  const io = new BatchedIo(plan, 4);
  const from = await bindUdp();
  const to = await Sink.open(0, { keep: true });
  const port = io.attach(from, null);
  try {
    io.setPeer(port, 0, LO, to.port);
    io.setPeer(port, 1, LO, 0); // port 0: the kernel refuses to send there
    const stats = new SegmentStats();
    const memory = Buffer.from("aaaabbbbcccc");
    io.begin(stats);
    io.add(port, memory, 0, 4, 0, 0);
    io.add(port, memory, 4, 4, 1, 0);
    io.add(port, memory, 8, 100, 0, 0); // past the end of its memory: refused before the kernel sees it
    io.add(port, memory, 8, 4, 0, 0);
    io.flush();
    await waitFor(() => to.received >= 2, 2000, "the two good sends");
    assert.equal(to.packets.map((p) => p.bytes.toString()).sort(), ["aaaa", "cccc"]);
    assert.is(stats.packetsOut, 2);
    assert.is(stats.bytesOut, 8);
    assert.is(stats.legPacketsOut[0], 2);
    assert.is(stats.drops.byReason.get(DropReason.HostSendFailed), 2);
  } finally {
    io.close(port);
    from.close();
    to.close();
  }
});

peerTest(test, addon, "a connected egress socket that got an ICMP error (its receiver was down for a moment) still hears that receiver's feedback", async () => {
  const listen = await freePortPair();
  let dest = await Sink.open(0, { keep: true });
  const destPort = dest.port;
  const sender = await Sink.open(0, { keep: true });
  const { proxy } = await startProxy({
    io: "native",
    segments: [{ name: "icmp", rtcpMux: true, listen: { address: LO, port: listen }, destinations: [{ address: LO, port: destPort }] }],
  });
  try {
    sender.socket.send(indexedRtp(0), listen, LO);
    await waitFor(() => dest.received >= 1, 3000, "the first packet");
    const egress = dest.packets[0]!.from.port;
    assert.ok((await segmentStats(proxy, "icmp")).ports.egressConnected, "the egress socket is connected to its one destination");
    // the receiver goes away: the proxy's next send draws an ICMP port unreachable onto its connected socket
    dest.close();
    for (let i = 1; i <= 5; i++) {
      sender.socket.send(indexedRtp(i), listen, LO);
      await sleep(20);
    }
    await waitFor(async () => (await segmentStats(proxy, "icmp")).packetsIn >= 6, 3000, "the packets sent while the receiver was away");
    await sleep(100);
    dest = await Sink.open(destPort, { keep: true }); // the receiver is back, on its port
    for (let i = 6; i < 10; i++) sender.socket.send(indexedRtp(i), listen, LO);
    await waitFor(() => dest.received >= 1, 3000, "media after the receiver came back");
    dest.socket.send(buildRtcpReceiverReport(0xfeed), egress, LO);
    await waitFor(() => sender.received >= 1, 3000, "the receiver's feedback at the sender");
    assert.is(sender.packets[0]!.bytes[1], 201);
  } finally {
    dest.close();
    sender.close();
    await proxy.close();
  }
});

peerTest(test, allOf(addon, netnsPeer), "a send-only socket (a leg's egress) sends what its socket could not take at once, once it can", async () => {
  // a slow loopback in the namespace (tbf, with a queue longer than any socket's send buffer) holds
  // datagrams charged to the socket that sent them: a burst fills the leg's egress socket, and the
  // rest wait in the addon's queue
  const lab = NetnsLab.create(["px"]);
  try {
    lab.execSync("px", "tc", ["qdisc", "add", "dev", "lo", "root", "tbf", "rate", "20mbit", "burst", "20000", "limit", "16000000"]);
    const listen = 20000;
    const dest = 30000;
    const count = 3000;
    const proxy = await startNsProxy(lab, "px", {
      segments: [{
        name: "leg", rtcpMux: true, listen: { address: LO, port: listen }, source: { address: LO },
        destinations: [{ address: LO, port: dest }], legs: [{ name: "fec", portOffset: 2 }],
      }],
    });
    try {
      const kernel = new DropWatch([listen + 2], lab.procNet("px"));
      const sink = await startNsSink(lab, "px", { port: dest + 2, count, address: LO });
      const { sent } = await runNsSender(lab, "px", { address: LO, port: listen + 2, count, rate: 30_000 });
      await settled(() => sink.received(), 1000, 15_000);
      const report = await sink.stop();
      const kernelAtSink = report.kernelDrops;
      const seg = (await proxy.stats()).segments[0]!;
      const proxyDrops = Object.values(seg.drops).reduce((a, b) => a + b, 0);
      const loss = unexplainedLoss({ sent, received: report.received + kernelAtSink, proxyDrops, kernel });
      assert.is(loss, null, `${loss}; leg out ${JSON.stringify(seg.legs)}`);
    } finally {
      await proxy.stop();
    }
  } finally {
    lab.close();
  }
}, { timeoutMs: 90_000 });

peerTest(test, addon, "a segment with the most destinations a config allows (4096) runs on batched I/O and reaches the last of them", async () => {
  const listen = await freePortPair();
  const last = await Sink.open(0, { keep: true });
  // distinct addresses of 127/8 (a destination twice is refused), nothing listening but at the last
  const destinations = Array.from({ length: MAX_DESTINATIONS }, (_, k) => (k === MAX_DESTINATIONS - 1 ? { address: LO, port: last.port } : { address: `127.1.${k >> 8}.${k & 255}`, port: 9 }));
  const sender = await bindUdp();
  const { proxy } = await startProxy({
    io: "native",
    segments: [{ name: "wide", rtcpMux: true, listen: { address: LO, port: listen }, destinations }],
  });
  try {
    sender.send(indexedRtp(7), listen, LO);
    await waitFor(() => last.received >= 1, 5000, "the packet at the last destination");
    assert.is(last.keys.get(7), 1);
  } finally {
    last.close();
    sender.close();
    await proxy.close();
  }
});

peerTest(test, allOf(addon, netnsPeer), "a link-local IPv6 sender's address carries its zone, as node:dgram writes it: a source policy naming it admits it", async () => {
  const lab = NetnsLab.create(["snd", "px"]);
  try {
    lab.execSync("snd", "ip", ["addr", "add", "fe80::a/64", "dev", "ln0", "nodad"]);
    lab.execSync("px", "ip", ["addr", "add", "fe80::b/64", "dev", "ln0", "nodad"]);
    const listen = 20000;
    const dest = 30000;
    const count = 200;
    const receiver = lab.address("snd", "px", 6);
    const proxy = await startNsProxy(lab, "px", {
      segments: [{
        name: "ll", rtcpMux: true, listen: { address: "::", port: listen }, source: { address: "fe80::a%ln0" },
        destinations: [{ address: receiver, port: dest }],
      }],
    });
    try {
      const kernel = new DropWatch([listen], lab.procNet("px"));
      const sink = await startNsSink(lab, "snd", { port: dest, count, address: "::" });
      const { sent } = await runNsSender(lab, "snd", { address: "fe80::b%ln0", port: listen, count, rate: 2000 });
      await settled(() => sink.received(), 500, 10_000);
      const report = await sink.stop();
      const seg = (await proxy.stats()).segments[0]!;
      assert.is(seg.drops.host_source_refused ?? 0, 0, `the link-local sender refused: ${JSON.stringify(seg.drops)}`);
      const proxyDrops = Object.values(seg.drops).reduce((a, b) => a + b, 0);
      const loss = unexplainedLoss({ sent, received: report.received + report.kernelDrops, proxyDrops, kernel });
      assert.is(loss, null, loss ?? "");
    } finally {
      await proxy.stop();
    }
  } finally {
    lab.close();
  }
}, { timeoutMs: 90_000 });

/** Runs `msm proxy` on `config` until it prints that it runs (or exits); returns its exit code (null: it ran) and stderr. */
function runProxyCli(config: object, env: Record<string, string>, shellPrefix = ""): Promise<{ code: number | null; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), "msm-io-"));
  const file = join(dir, "proxy.json");
  writeFileSync(file, JSON.stringify(config));
  const child = spawn("bash", ["-c", `${shellPrefix} exec "$0" "$1" proxy --config "$2"`, process.execPath, CLI, file], {
    stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env },
  });
  let stderr = "";
  let stopped = false;
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (!stopped && /proxy running/.test(stderr)) stopped = child.kill("SIGTERM");
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      // null: it ran until stopped here, dying of the signal or, had its handler been set by then, stopping cleanly
      const ranUntilStopped = stopped && (signal === "SIGTERM" || code === 0);
      resolve({ code: ranUntilStopped ? null : signal ? -1 : code, stderr });
    });
  });
}

test("without the addons: io auto runs on node:dgram and warns at start, no host crypto is said; io native refuses to start, naming io", async () => {
  const listen = await freePortPair();
  const config = (io: string) => ({ io, segments: [{ name: "s", rtcpMux: true, listen: { address: LO, port: listen }, destinations: [{ address: LO, port: 9 }] }] });
  const missing = { MSM_NATIVE_ADDON: join(tmpdir(), "no-such-addon.node"), MSM_CRYPTO_ADDON: join(tmpdir(), "no-such-crypto.node") };
  const auto = await runProxyCli(config("auto"), missing);
  assert.is(auto.code, null, auto.stderr);
  assert.match(auto.stderr, /proxy running: 1 segment\(s\) on 1 worker\(s\), node:dgram I\/O\n/);
  assert.match(auto.stderr, /WARNING: falling back to node:dgram I\/O: the batched-I\/O addon did not load/);
  assert.match(auto.stderr, /note: no host crypto \(.+\): filters that use it \(srtp\) compute their own, slower and not constant-time/);
  const native = await runProxyCli(config("native"), missing);
  assert.is(native.code, 1, native.stderr);
  assert.match(native.stderr, /io: native: the batched-I\/O addon did not load/);
  // an addon built from an older source (a checkout updated without npm install) is not used either
  const stalePath = join(mkdtempSync(join(tmpdir(), "msm-stale-addon-")), "msm_udp.cjs");
  writeFileSync(stalePath, "module.exports = { metaStride: 9 };\n");
  const stale = await runProxyCli(config("auto"), { MSM_NATIVE_ADDON: stalePath });
  assert.is(stale.code, null, stale.stderr);
  assert.match(stale.stderr, /WARNING: falling back to node:dgram I\/O: the batched-I\/O addon at \S+ is stale/);
  if (hostCryptoUnavailable() === "" || process.env.CI) assert.match(stale.stderr, /proxy running: 1 segment\(s\) on 1 worker\(s\), node:dgram I\/O, .*via OpenSSL 3/, "the start line names the host crypto");
});

peerTest(test, addon, "the start line says whether sends use UDP GSO (gso: auto, the default) or not (gso: off); another value names the field", async () => {
  const listen = await freePortPair();
  const config = (gso?: string) => ({ ...(gso && { gso }), segments: [{ name: "s", rtcpMux: true, listen: { address: LO, port: listen }, destinations: [{ address: LO, port: 9 }] }] });
  const on = await runProxyCli(config(), {});
  assert.is(on.code, null, on.stderr);
  assert.match(on.stderr, /proxy running: 1 segment\(s\) on 1 worker\(s\), batched I\/O \(recvmmsg\/sendmmsg, UDP GSO(, watcher thread)?\)/);
  const off = await runProxyCli(config("off"), {});
  assert.is(off.code, null, off.stderr);
  assert.match(off.stderr, /proxy running: 1 segment\(s\) on 1 worker\(s\), batched I\/O \(recvmmsg\/sendmmsg(, watcher thread)?\)/);
  const bad = await runProxyCli(config("always"), {});
  assert.is(bad.code, 1, bad.stderr);
  assert.match(bad.stderr, /gso/);
  // an agent's gso is its --gso flag (the control plane does not set it)
  const flag = spawnSync(process.execPath, [CLI, "proxy", "--control-plane", "127.0.0.1:1", "--node-id", "n", "--state-dir", tmpdir(), "--insecure", "--gso", "always"], { encoding: "utf8", timeout: 20_000 });
  assert.is(flag.status, 2, flag.stderr);
  assert.match(flag.stderr, /--gso must be auto or off, got 'always'/);
  const { proxy } = await startProxy({ ...config(), gso: "auto" });
  try {
    const err = await proxy.apply({ ...proxy.currentConfig, gso: "off" }).then(() => null, (e: Error) => e);
    assert.ok(err && /gso: cannot change from auto to off while running; restart the proxy/.test(err.message), String(err));
  } finally {
    await proxy.close();
  }
});

test("symmetricRtp: one socket per segment; media leaves from the listen port, a destination's packets are feedback, anyone else's the sender's", async () => {
  const listen = await freePortPair();
  const dest = await Sink.open(0, { keep: true });
  const sender = await Sink.open(0, { keep: true });
  const stranger = await bindUdp();
  const openFds = (): number => readdirSync("/proc/self/fd").length;
  const sym = {
    name: "sym", rtcpMux: true, symmetricRtp: true, listen: { address: LO, port: listen }, destinations: [{ address: LO, port: dest.port }],
    source: { address: LO, port: sender.port },
  };
  const { proxy } = await startProxy({ segments: [sym] });
  try {
    // a second segment like it costs one descriptor (a segment with an egress socket: two; four without rtcpMux)
    const before = openFds();
    const other = await freePortPair();
    await proxy.apply(validateProxyConfig({ segments: [sym, { ...sym, name: "sym2", listen: { address: LO, port: other }, source: {} }] }));
    const sockets = isBun ? null : openFds() - before;
    for (let i = 0; i < 100; i++) sender.socket.send(indexedRtp(i), listen, LO);
    await waitFor(() => dest.received >= 100, 3000, "media");
    assert.ok(dest.packets.every((p) => p.from.port === listen), "media leaves from the listen port");
    dest.socket.send(buildRtcpReceiverReport(0xfeed), listen, LO);
    await waitFor(() => sender.received >= 1, 3000, "the destination's feedback at the sender");
    assert.is(sender.packets[0]!.bytes[1], 201);
    stranger.send(indexedRtp(5000), listen, LO); // neither the sender nor a destination: refused by the source policy
    await waitFor(async () => (await segmentStats(proxy, "sym")).drops.host_source_refused === 1, 3000, "the stranger refused");
    const seg = await segmentStats(proxy, "sym");
    assert.is(seg.upstreamIn, 1);
    assert.is(seg.ports.egress, listen);
    if (sockets !== null) assert.is(sockets, 1, "descriptors a second symmetric segment opened");
  } finally {
    for (const s of [dest, sender]) s.close();
    stranger.close();
    await proxy.close();
  }
});

test("symmetricRtp with rtcpMux fits 1000 segments under an open-files limit of 1100; without it the proxy refuses, saying what to change", async () => {
  const ulimit = "ulimit -n 1100;";
  const probe = spawnSync("bash", ["-c", `${ulimit} ulimit -n`], { encoding: "utf8" });
  assert.is(probe.stdout.trim(), "1100");
  const base = await freePortRun(1000, LO, 32768); // below Linux's ephemeral range: no socket the kernel numbers takes one meanwhile
  const segments = (symmetricRtp: boolean) => Array.from({ length: 1000 }, (_, i) => ({
    name: `s${i}`, rtcpMux: true, symmetricRtp, listen: { address: LO, port: base + i }, destinations: [{ address: LO, port: 9 }],
  }));
  const fits = await runProxyCli({ segments: segments(true) }, {}, ulimit);
  assert.is(fits.code, null, fits.stderr.slice(-2000));
  assert.match(fits.stderr, /proxy running: 1000 segment\(s\)/);
  const refused = await runProxyCli({ segments: segments(false) }, {}, ulimit);
  assert.is(refused.code, 1);
  assert.match(refused.stderr, /need 2000 sockets, but the open-files limit is 1100/);
  assert.match(refused.stderr, /symmetricRtp/);
});

test("symmetricRtp refuses an egress socket, a multicast listen address and feedbackFrom: any, naming the field", async () => {
  assert.throws(() => validateProxyConfig({ segments: [{ name: "a", symmetricRtp: true, listen: { address: LO, port: 5000 }, egress: { address: LO }, destinations: [{ address: LO, port: 5002 }] }] }),
    /segments\[0\]\.egress: with symmetricRtp/);
  assert.throws(() => validateProxyConfig({ segments: [{ name: "a", symmetricRtp: true, listen: { address: "239.1.1.1", port: 5000 }, destinations: [{ address: LO, port: 5002 }] }] }),
    /segments\[0\]\.symmetricRtp: the listen address 239\.1\.1\.1 is a multicast group/);
  assert.throws(() => validateProxyConfig({ segments: [{ name: "a", symmetricRtp: true, feedbackFrom: "any", listen: { address: LO, port: 5000 }, destinations: [{ address: LO, port: 5002 }] }] }),
    /segments\[0\]\.feedbackFrom: 'any' with symmetricRtp/);
});

test.run();
