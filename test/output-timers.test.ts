// The output area, Hold and timers: in the harness (virtual clock) and in a running proxy, where
// output packets go on through the rest of the chain and then to the destinations their `dest`
// names (Forward, Reverse, one destination, with a port offset).
import * as assert from "uvu/assert";
import { Dest, FilterHarness, PacketFlag } from "../sdk/harness/index.js";
import { buildRtp } from "../sdk/harness/packets.js";
import { suite } from "./lib/suite.js";
import { fixture } from "./lib/paths.js";
import { bindUdp, freePortPair, freePortRuns, indexedRtp, Sink, waitFor } from "./lib/udp.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";

const test = suite("output area and timers", { timeoutMs: 30_000 });

function rtcpApp(): Uint8Array {
  // RFC 3550 section 6.7: V=2, subtype 0, PT=204, length 3 (16 bytes), SSRC, name "ping"
  return new Uint8Array([0x80, 204, 0, 3, 0, 0, 0, 9, 0x70, 0x69, 0x6e, 0x67, 1, 2, 3, 4]);
}

test("harness: held packets come back as outputs when the timer fires, not before", async () => {
  const h = await FilterHarness.load(fixture("delay"));
  const ctx = h.createContext({ delayMs: 20, copyTo: 1, leg: 1 });
  const packets = [0, 1, 2].map((seq) => buildRtp({ seq, payloadSize: 50 }));
  const r = h.runBatch(packets.map((bytes) => ({ ctx, bytes })));
  assert.equal(r.packets.map((p) => p.verdict), ["hold", "hold", "hold"]);
  assert.is(r.outputs.length, 0);
  assert.equal(h.timers(), [{ ctx, timer: 0, dueUs: h.nowUs + 20_000 }]);
  assert.is(h.advanceTime(19_999).length, 0);
  const out = h.advanceTime(1);
  assert.is(out.length, 6);
  assert.equal(out.filter((o) => o.dest === Dest.Forward).map((o) => Array.from(o.bytes)), packets.map((p) => Array.from(p)));
  const copies = out.filter((o) => o.dest === Dest.DestinationIndexBase + 1);
  assert.is(copies.length, 3);
  assert.ok(copies.every((o) => o.leg === 1 && o.ctx === ctx));
  assert.is(h.timers().length, 0);
});

test("harness: an RTCP APP is answered toward the sender (Dest.Reverse) in the same batch", async () => {
  const h = await FilterHarness.load(fixture("delay"));
  const ctx = h.createContext({});
  const r = h.runBatch([{ ctx, bytes: rtcpApp(), flags: PacketFlag.Rtcp }]);
  assert.is(r.packets[0]!.verdict, "pass");
  assert.is(r.outputs.length, 1);
  assert.is(r.outputs[0]!.dest, Dest.Reverse);
  assert.is(r.outputs[0]!.flags & PacketFlag.Rtcp, PacketFlag.Rtcp);
  assert.equal(Array.from(r.outputs[0]!.bytes), Array.from(rtcpApp()));
});

test("proxy: timer outputs pass the later stages and reach Forward, one-destination and leg targets", async () => {
  const listen = await freePortPair();
  // runs of 4: the leg's port + 2 of one destination is never the other destination (a config the proxy refuses)
  const [d0, d1] = (await freePortRuns(2, 4)) as [number, number];
  const [s0, s1, s1fec, s0rtcp] = await Promise.all([Sink.open(d0), Sink.open(d1), Sink.open(d1 + 2), Sink.open(d0 + 1, { keep: true })]);
  const senderRtcp = await Sink.open(0, { keep: true });
  const { proxy } = await startProxy({
    filters: { delay: { path: fixture("delay") }, counter: { path: fixture("counter") } },
    segments: [{ name: "out", listen: { address: "127.0.0.1", port: listen },
      destinations: [{ address: "127.0.0.1", port: d0 }, { address: "127.0.0.1", port: d1 }],
      legs: [{ name: "copies", portOffset: 2, receive: false }],
      chain: [{ filter: "delay", config: { delayMs: 10, copyTo: 1, leg: 1 } }, { filter: "counter" }] }],
  });
  const tx = await bindUdp();
  try {
    const n = 100;
    for (let i = 0; i < n; i++) tx.send(indexedRtp(i), listen, "127.0.0.1");
    await waitFor(() => s0.received >= n && s1.received >= n && s1fec.received >= n, 5000, "delayed packets everywhere");
    assert.equal(s0.tally(n), { missing: 0, duplicates: 0 });
    assert.equal(s1.tally(n), { missing: 0, duplicates: 0 }, "Forward reaches destination 1 too");
    assert.equal(s1fec.tally(n), { missing: 0, duplicates: 0 }, "the copies went to destination 1 only, at port + 2");
    senderRtcp.socket.send(rtcpApp(), listen + 1, "127.0.0.1");
    await waitFor(() => senderRtcp.received >= 1 && s0rtcp.received >= 1, 3000, "the APP answer and the forwarded APP");
    assert.is(senderRtcp.packets[0]!.bytes[1], 204);
    const seg = await segmentStats(proxy, "out");
    const [delay, counter] = seg.stages;
    assert.is(delay!.held, n);
    assert.is(delay!.generated, 2 * n + 1);
    // the answer to the sender (Dest.Reverse) goes upstream: back through the stages before delay (none), not the counter after it
    assert.is(counter!.metrics.find((m) => m.name === "packets")?.value, 2 * n + 1, "the counter after delay saw every output and the APP, not the answer to the sender");
  } finally {
    for (const s of [s0, s1, s1fec, s0rtcp, senderRtcp]) s.close();
    tx.close();
    await proxy.close();
  }
});

/** The beacons (delay's `beaconMs`) a sink kept: the context that sent each, and its count. */
function beacons(sink: Sink): { ctx: number; count: number }[] {
  return sink.packets.filter((p) => p.bytes.length === 16 && p.bytes[1] === 204 && p.bytes.toString("latin1", 8, 12) === "bcn ")
    .map((p) => ({ ctx: p.bytes.readUInt32BE(4), count: p.bytes.readUInt32BE(12) }));
}

test("proxy: a timer armed while the context is created fires once the segment runs (start, hot swap, new sockets)", async () => {
  // prepare creates the contexts and commit puts them to work a round trip later (longer with
  // many segments: their sockets are opened in between): a 0 ms timer armed in createContext was
  // due before the commit, and was dropped, silently, for good
  const segments = 16;
  const listens = await freePortRuns(segments, 2);
  const d0 = await freePortPair();
  const d1 = await freePortPair();
  const rtcp0 = await Sink.open(d0 + 1, { keep: true });
  const rtcp1 = await Sink.open(d1 + 1, { keep: true });
  const config = (beaconMs: number, destination: number): ProxyConfigInput => ({
    filters: { delay: { path: fixture("delay") } },
    segments: listens.map((port, i) => ({ name: `beacon${i}`, listen: { address: "127.0.0.1", port },
      destinations: [{ address: "127.0.0.1", port: destination }],
      chain: [{ filter: "delay", config: { beaconMs } }] })),
  });
  const { proxy } = await startProxy(config(20, d0));
  /** Every segment's new context beacons, and its first beacon is its first firing. */
  const newContexts = async (sink: Sink, not: Set<number>, what: string): Promise<void> => {
    const fresh = () => beacons(sink).filter((b) => !not.has(b.ctx));
    await waitFor(() => new Set(fresh().map((b) => b.ctx)).size >= segments, 5000, `${what}: a beacon from each segment`);
    const first = new Map<number, number>();
    for (const b of fresh()) if (!first.has(b.ctx)) first.set(b.ctx, b.count);
    assert.is(first.size, segments, `${what}: one new context per segment`);
    assert.equal([...first.values()], new Array<number>(segments).fill(1), `${what}: each from its first firing, the 0 ms one armed in createContext`);
    for (const ctx of first.keys()) not.add(ctx);
  };
  try {
    const seen = new Set<number>();
    await newContexts(rtcp0, seen, "after the start");
    // the chain's config changes: new contexts, created at prepare, swapped in at commit
    await proxy.apply(validateProxyConfig(config(25, d0)));
    await newContexts(rtcp0, seen, "after a hot swap");
    // the destination changes too: new sockets, the new chains running only once they are bound
    await proxy.apply(validateProxyConfig(config(30, d1)));
    await newContexts(rtcp1, seen, "after new sockets");
  } finally {
    rtcp0.close();
    rtcp1.close();
    await proxy.close();
  }
});

test.run();
