// Segments with legs (docs/proxy.md "Legs"): more UDP flows beside the media, each with its own
// sockets, each packet marked with its leg. Real sockets on loopback, no filter (a packet leaves
// on the leg it came on) or the delay fixture (a filter that sends on a leg).
import * as assert from "uvu/assert";
import { startAdminServer, validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { fixture } from "./lib/paths.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { bindUdp, freePortRun, indexedRtp, Sink, sinksAt, waitFor } from "./lib/udp.js";
import { DropWatch } from "./lib/kernel-drops.js";
import { readdirSync } from "node:fs";
import { openSegmentSockets } from "../runtime/dataplane/segment-sockets.js";
import { httpBody } from "./lib/http-get.js";

const test = suite("legs");
const LO = "127.0.0.1";


test("FEC-style legs at +2 and +4: each leg's packets arrive on its port and leave to each destination's port + offset", async () => {
  const listen = await freePortRun(6);
  const { base: d, sinks: [media, col, row] } = await sinksAt([0, 2, 4]);
  const tx = { media: await bindUdp(), col: await bindUdp(), row: await bindUdp() };
  const { proxy } = await startProxy({
    segments: [{ name: "fec", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: d }],
      legs: [{ name: "fec-column", portOffset: 2 }, { name: "fec-row", portOffset: 4 }] }],
  });
  const admin = await startAdminServer(proxy, LO, 0);
  const kernel = new DropWatch([listen, listen + 2, listen + 4, d, d + 2, d + 4]);
  try {
    const n = 50;
    for (let i = 0; i < n; i++) {
      tx.media.send(indexedRtp(i), listen, LO);
      if (i % 5 === 0) tx.col.send(indexedRtp(1000 + i), listen + 2, LO);
      if (i % 10 === 0) tx.row.send(indexedRtp(2000 + i), listen + 4, LO);
    }
    const expected = [n, n / 5, n / 10];
    await waitFor(() => media!.received + col!.received + row!.received >= n + n / 5 + n / 10 - kernel.since().total, 5000, "every leg's packets");
    // a busy machine may drop in a socket's queue: each leg's count is exact once those are added back
    const k = kernel.since().byPort;
    const lost = (port: number): number => k[port] ?? 0;
    const offsets = [0, 2, 4];
    assert.equal([media!, col!, row!].map((s, j) => s.received + lost(listen + offsets[j]!) + lost(d + offsets[j]!)), expected, "each flow stays on its leg");
    assert.ok([...col!.keys.keys()].every((key) => key >= 1000 && key < 2000), "only column packets at + 2");
    const seg = await segmentStats(proxy, "fec");
    assert.equal(seg.legs.map((l) => l.name), ["media", "fec-column", "fec-row"]);
    seg.legs.forEach((l, j) => {
      assert.is(l.packetsIn + lost(listen + offsets[j]!), expected[j], `${l.name} in`);
      assert.is(l.packetsOut, l.packetsIn, `${l.name} out: one destination`);
    });
    assert.equal(seg.ports.legs.map((l) => [l.name, l.listen, l.egressConnected]), [["fec-column", listen + 2, true], ["fec-row", listen + 4, true]]);
    assert.is(seg.ports.legs[0]!.sender, `${LO}:${tx.col.address().port}`, "each leg latches its own sender port");
    assert.is(col!.packets.length, 0);
    const metrics = await httpBody(admin.port, "/metrics");
    assert.match(metrics, new RegExp(`^msm_segment_leg_packets_in_total\\{segment="fec",leg="fec-row"\\} ${seg.legs[2]!.packetsIn}$`, "m"));
    assert.match(metrics, new RegExp(`^msm_segment_leg_packets_out_total\\{segment="fec",leg="media"\\} ${seg.legs[0]!.packetsOut}$`, "m"));
  } finally {
    for (const s of [media, col, row]) s!.close();
    for (const s of Object.values(tx)) s.close();
    await admin.close();
    await proxy.close();
  }
});

test("a leg of its own addresses (a second path): listen, egress and destinations apart from the media's", async () => {
  const listenA = await freePortRun(2);
  const listenB = await freePortRun(1, "127.0.0.2");
  const { base: d, sinks: [media] } = await sinksAt([0]);
  const pathB = await Sink.open(0, { address: "127.0.0.3", keep: true });
  const tx = await bindUdp();
  const txB = await bindUdp(0, "127.0.0.2");
  const { proxy } = await startProxy({
    segments: [{ name: "dual", listen: { address: LO, port: listenA }, destinations: [{ address: LO, port: d }],
      legs: [{ name: "path-b", listen: { address: "127.0.0.2", port: listenB }, source: { address: "127.0.0.2" }, egress: { address: "127.0.0.3", port: 0 },
        destinations: [{ address: "127.0.0.3", port: pathB.port }] }] }],
  });
  try {
    for (let i = 0; i < 20; i++) {
      tx.send(indexedRtp(i), listenA, LO);
      txB.send(indexedRtp(i), listenB, "127.0.0.2");
    }
    await waitFor(() => media!.received >= 20 && pathB.received >= 20, 5000, "both paths");
    assert.is(pathB.packets[0]!.from.address, "127.0.0.3", "the leg sends from its own egress address");
    const seg = await segmentStats(proxy, "dual");
    assert.equal(seg.legs.map((l) => [l.packetsIn, l.packetsOut]), [[20, 20], [20, 20]]);
  } finally {
    media!.close();
    pathB.close();
    tx.close();
    txB.close();
    await proxy.close();
  }
});

test("a leg hears only the media's sender: nothing before the media latches, no one else after, even while the media may still re-learn", async () => {
  const listen = await freePortRun(4);
  const { base: d, sinks: [media, fec] } = await sinksAt([0, 2]);
  const sender = await bindUdp();
  const senderFec = await bindUdp();
  const intruder = await bindUdp(0, "127.0.0.5");
  const { proxy } = await startProxy({
    segments: [{ name: "strip", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: d }],
      legs: [{ name: "fec-column", portOffset: 2, send: false }] }], // source.learnMs: the default 3 s
  });
  const refused = async (): Promise<number> => (await segmentStats(proxy, "strip")).drops.host_source_refused ?? 0;
  try {
    for (let i = 0; i < 5; i++) intruder.send(indexedRtp(100 + i), listen + 2, LO);
    await waitFor(async () => (await refused()) === 5, 5000, "FEC before any media refused");
    sender.send(indexedRtp(0), listen, LO);
    await waitFor(() => media!.received === 1, 5000, "the media latches its sender");
    for (let i = 0; i < 10; i++) senderFec.send(indexedRtp(i), listen + 2, LO);
    await waitFor(async () => (await segmentStats(proxy, "strip")).drops.host_no_destination === 10, 5000, "the sender's FEC taken, with nowhere to go (send: false)");
    for (let i = 0; i < 10; i++) intruder.send(indexedRtp(200 + i), listen + 2, LO);
    await waitFor(async () => (await refused()) === 15, 5000, "the intruder refused within the media's learning window");
    const seg = await segmentStats(proxy, "strip");
    assert.is(seg.legs[1]!.packetsIn, 25);
    assert.is(seg.legs[1]!.packetsOut, 0);
    assert.is(seg.ports.legs[0]!.sender, `${LO}:${senderFec.address().port}`);
    assert.is(seg.ports.legs[0]!.egress, null, "no egress socket for a leg that does not send");
    assert.is(fec!.received, 0);
  } finally {
    for (const s of [media!, fec!]) s.close();
    for (const s of [sender, senderFec, intruder]) s.close();
    await proxy.close();
  }
});

test("a filter sends on a leg; a reload that moves the leg's destinations keeps its sockets and loses nothing", async () => {
  const listen = await freePortRun(2);
  const [a, b] = await Promise.all([sinksAt([0, 2]), sinksAt([0, 2])]);
  const input = (dest: number): ProxyConfigInput => ({
    filters: { delay: { path: fixture("delay") } },
    segments: [{ name: "copy", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: dest }],
      legs: [{ name: "copies", portOffset: 2, receive: false }],
      chain: [{ filter: "delay", config: { delayMs: 1, copyTo: 0, leg: 1 } }] }],
  });
  const { proxy } = await startProxy(input(a.base));
  const tx = await bindUdp();
  try {
    for (let i = 0; i < 20; i++) tx.send(indexedRtp(i), listen, LO);
    await waitFor(() => a.sinks[0]!.received >= 20 && a.sinks[1]!.received >= 20, 5000, "media and copies at A");
    const before = (await segmentStats(proxy, "copy")).ports;
    await proxy.apply(validateProxyConfig(input(b.base)));
    const after = (await segmentStats(proxy, "copy")).ports;
    assert.equal(after.legs.map((l) => l.egress), before.legs.map((l) => l.egress), "the leg kept its socket and its port");
    assert.is(after.egress, before.egress, "so did the media's egress, though it had to disconnect (Linux unbinds an auto-picked port then)");
    for (let i = 20; i < 40; i++) tx.send(indexedRtp(i), listen, LO);
    await waitFor(() => b.sinks[0]!.received >= 20 && b.sinks[1]!.received >= 20, 5000, "media and copies at B");
    assert.equal(b.sinks[1]!.tally(20, 20), { missing: 0, duplicates: 0 }, "the copies follow the destination");
    assert.is(a.sinks[1]!.received, 20, "nothing more at A");
  } finally {
    for (const s of [...a.sinks, ...b.sinks]) s.close();
    tx.close();
    await proxy.close();
  }
});

test("a filter that sends on a leg the segment lacks: counted as host_no_destination and said once, by leg; said again after a change that still lacks it", async () => {
  const listen = await freePortRun(2);
  const sink = await Sink.open();
  const input = (copyToLeg: number): ProxyConfigInput => ({
    filters: { delay: { path: fixture("delay") } },
    segments: [{ name: "fec-out", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }],
      legs: [{ name: "copies", portOffset: 2, send: false }],
      chain: [{ filter: "delay", config: { delayMs: 1, copyTo: 0, leg: copyToLeg } }] }],
  });
  const { proxy, events } = await startProxy(input(2));
  const tx = await bindUdp();
  const said = () => events.filter((e) => e.type === "error" && /a filter sent packets on leg/.test(e.message)).map((e) => (e as { message: string }).message);
  try {
    for (let i = 0; i < 20; i++) tx.send(indexedRtp(i), listen, LO);
    await waitFor(() => sink.received >= 20, 5000, "the media");
    await waitFor(async () => (await segmentStats(proxy, "fec-out")).drops.host_no_destination === 20, 5000, "the copies counted as dropped");
    assert.equal(said(), [`a filter sent packets on leg 2, which the segment does not have (it has 1: 1 copies): they are dropped (host_no_destination); a filter's legs are the segment's legs[] (docs/proxy.md, "Legs")`]);
    // leg 1 exists but does not send
    await proxy.apply(validateProxyConfig(input(1)));
    for (let i = 20; i < 40; i++) tx.send(indexedRtp(i), listen, LO);
    await waitFor(() => said().length === 2, 5000, "the second notice");
    assert.match(said()[1]!, /^a filter sent packets on leg 1, which does not send \(send: false\)/);
    await waitFor(async () => (await segmentStats(proxy, "fec-out")).drops.host_no_destination === 40, 5000, "every copy counted");
    assert.is(said().length, 2, "once per leg");
  } finally {
    sink.close();
    tx.close();
    await proxy.close();
  }
});

test("a segment whose leg port is taken is refused by name and leaks no descriptor, however often it is tried", async () => {
  const listen = await freePortRun(4);
  const squatter = await bindUdp(listen + 2);
  const config = validateProxyConfig({ segments: [{ name: "taken", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: 9 }],
    legs: [{ name: "fec-column", portOffset: 2, send: false }] }] });
  const fds = (): number => readdirSync("/proc/self/fd").length;
  try {
    const before = fds();
    for (let k = 0; k < 20; k++) {
      await openSegmentSockets(config.segments[0]!, 1 << 16).then(
        () => assert.unreachable("the port is taken"),
        (err: Error) => assert.match(err.message, /segment 'taken': cannot bind leg 'fec-column' listen 127\.0\.0\.1:\d+/),
      );
    }
    assert.is(fds(), before, "every socket of a failed open is closed");
  } finally {
    squatter.close();
  }
});

test.run();
