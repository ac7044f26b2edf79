// Against RTP bleed: who may send into a segment and who may send feedback. The SourceGate as a
// table of packets over a virtual clock (latch, learning window, re-learn after silence, strict
// off, allow lists, the sender's RTCP, feedback from destinations), then a real proxy over UDP:
// an injector is refused and counted, feedback from a non-destination is refused and counted,
// and a sender that restarts on a new port is followed once the old one has been silent.
import * as assert from "uvu/assert";
import type { Socket } from "node:dgram";
import { validateProxyConfig, type ProxyConfigInput, type SegmentConfig } from "../runtime/index.js";
import { ADMITTED, CANDIDATE, REFUSED, SourceGate, VERDICT_FIRST } from "../runtime/dataplane/source-gate.js";
import { suite } from "./lib/suite.js";
import { DropWatch } from "./lib/kernel-drops.js";
import { bindUdp, freePortPair, indexedRtp, Sink, sleep, waitFor } from "./lib/udp.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { filterWasm } from "./lib/paths.js";
import { settled } from "./lib/kernel-drops.js";

type SegmentInput = NonNullable<ProxyConfigInput["segments"]>[number];

function segmentConfig(extra: Partial<SegmentInput> = {}): SegmentConfig {
  return validateProxyConfig({
    segments: [{
      name: "s", listen: { address: "127.0.0.1", port: 40000 },
      destinations: [{ address: "10.0.0.5", port: 7000 }], ...extra,
    }],
  }).segments[0]!;
}

// ---- the gate, packet by packet ----

const unit = suite("SourceGate");

/** A packet to the listen sockets at a time (ms), whether it is admitted, and who the sender is after it. */
type Step = [from: string, kind: "rtp" | "rtcp", atMs: number, admitted: boolean, sender: string | null];

const A = "10.0.0.1:5000";
const A2 = "10.0.0.1:6000"; // the same host, another port (a restarted sender, or a second program)
const C = "10.0.0.9:5000"; // another host

const T = 1000; // the gate's clock is a monotonic one: never 0 in a running process

const scenarios: { label: string; source?: SegmentInput["source"]; rtcpMux?: boolean; steps: Step[] }[] = [
  {
    label: "strict: the first sender latches; inside learnMs a new one takes over, after it nobody else",
    source: { learnMs: 100, idleMs: 1000 },
    steps: [
      [A, "rtp", T, true, A],
      [A2, "rtp", T + 50, true, A2],
      [A, "rtp", T + 120, false, A2],
      [A2, "rtp", T + 130, true, A2],
      [C, "rtp", T + 500, false, A2],
    ],
  },
  {
    label: "the learning window runs from the first packet: a new sender does not extend it",
    source: { learnMs: 100, idleMs: 0 },
    steps: [[A, "rtp", T, true, A], [A2, "rtp", T + 90, true, A2], [C, "rtp", T + 110, false, A2], [A, "rtp", T + 99_999, false, A2]],
  },
  {
    label: "after idleMs of silence from the sender, a new one is learned (and the old one is refused)",
    source: { learnMs: 0, idleMs: 1000 },
    steps: [
      [A, "rtp", T, true, A],
      [A2, "rtp", T + 500, false, A],
      [A, "rtp", T + 900, true, A],
      [A2, "rtp", T + 1899, false, A], // silent 999 ms: not yet
      [A2, "rtp", T + 1900, true, A2],
      [A, "rtp", T + 1950, false, A2],
    ],
  },
  {
    label: "idleMs 0: never re-learned",
    source: { learnMs: 0, idleMs: 0 },
    steps: [[A, "rtp", T, true, A], [A2, "rtp", T + 1e9, false, A]],
  },
  {
    label: "strict: false follows every packet's sender",
    source: { strict: false },
    steps: [[A, "rtp", T, true, A], [C, "rtp", T + 10_000, true, C], [A, "rtp", T + 10_001, true, A]],
  },
  {
    label: "an allow list of one address: others are refused and never latched",
    source: { address: "10.0.0.1", learnMs: 0 },
    steps: [[C, "rtp", T, false, null], [A, "rtp", T + 1, true, A], [A2, "rtp", T + 2, false, A], [C, "rtcp", T + 3, false, A]],
  },
  {
    label: "an allow list with a port: the sender is known before it sends, no other port ever",
    source: { address: "10.0.0.1", port: 5000 },
    steps: [[A2, "rtp", T, false, A], [C, "rtp", T, false, A], [A, "rtp", T + 1, true, A], [A2, "rtp", T + 1e9, false, A]],
  },
  {
    label: "strict: false still keeps to the allow list",
    source: { address: "10.0.0.1", strict: false },
    steps: [[A, "rtp", T, true, A], [A2, "rtp", T + 1, true, A2], [C, "rtp", T + 2, false, A2]],
  },
  {
    label: "the sender's RTCP: from the latched address only, from any of its ports",
    source: { learnMs: 0 },
    steps: [[A, "rtp", T, true, A], ["10.0.0.1:5001", "rtcp", T + 1, true, A], ["10.0.0.1:7777", "rtcp", T + 2, true, A], ["10.0.0.9:5001", "rtcp", T + 3, false, A]],
  },
  {
    label: "RTCP before the first RTP packet is admitted (FFmpeg's first report comes first); once a sender latches, only its address",
    source: { learnMs: 0 },
    steps: [["10.0.0.9:5001", "rtcp", T, true, null], [A, "rtp", T + 1, true, A], ["10.0.0.9:5001", "rtcp", T + 2, false, A], ["10.0.0.1:5001", "rtcp", T + 3, true, A]],
  },
  {
    label: "the sender's RTCP with source.rtcpPort: that port only",
    source: { address: "10.0.0.1", rtcpPort: 5001 },
    steps: [["10.0.0.1:5001", "rtcp", T, true, null], ["10.0.0.1:5003", "rtcp", T + 1, false, null], [A, "rtp", T + 2, true, A]],
  },
];

function peer(s: string): [string, number] {
  const at = s.lastIndexOf(":");
  return [s.slice(0, at), Number(s.slice(at + 1))];
}

const show = (p: { address: string; port: number } | null): string | null => (p === null ? null : `${p.address}:${p.port}`);

for (const sc of scenarios) {
  unit(sc.label, () => {
    const gate = new SourceGate(segmentConfig({ ...(sc.source ? { source: sc.source } : {}), ...(sc.rtcpMux ? { rtcpMux: true } : {}) }));
    sc.steps.forEach(([from, kind, at, admitted, sender], i) => {
      const [address, port] = peer(from);
      assert.is(gate.admitSender(address, port, kind === "rtcp", at), admitted, `step ${i}: ${kind} from ${from} at ${at - T} ms`);
      assert.is(show(gate.rtp), sender, `step ${i}: the sender after it`);
    });
  });
}

unit("where feedback for the sender goes: RTP port + 1, the RTP port with rtcpMux, source.rtcpPort, or where its RTCP came from", () => {
  const cases: [string, Partial<SegmentInput>, Step[], string | null][] = [
    // a spoofed source would otherwise aim the receivers' feedback at a host of its choice
    ["RTCP from a host before any sender latched is admitted but points feedback nowhere", {}, [["10.0.0.9:5001", "rtcp", T, true, null]], null],
    ["... unless source.address allows that host", { source: { address: "10.0.0.9" } }, [["10.0.0.9:5001", "rtcp", T, true, null]], "10.0.0.9:5001"],
    ["port + 1", {}, [[A, "rtp", T, true, A]], "10.0.0.1:5001"],
    ["rtcpMux", { rtcpMux: true }, [[A, "rtp", T, true, A]], "10.0.0.1:5000"],
    ["source.rtcpPort", { source: { address: "10.0.0.1", rtcpPort: 6001 } }, [[A, "rtp", T, true, A]], "10.0.0.1:6001"],
    ["learned from its RTCP", {}, [[A, "rtp", T, true, A], ["10.0.0.1:5555", "rtcp", T + 1, true, A]], "10.0.0.1:5555"],
    ["RTCP from another host before the first RTP packet: the sender that latches takes feedback back", {},
      [["10.0.0.9:5001", "rtcp", T, true, null], [A, "rtp", T + 1, true, A]], "10.0.0.1:5001"],
    ["learned once per sender (strict): another port of its address does not move it", {},
      [[A, "rtp", T, true, A], ["10.0.0.1:5555", "rtcp", T + 1, true, A], ["10.0.0.1:7777", "rtcp", T + 2, true, A]], "10.0.0.1:5555"],
    ["re-learned from every RTCP when not strict", { source: { strict: false } },
      [[A, "rtp", T, true, A], ["10.0.0.1:5555", "rtcp", T + 1, true, A], ["10.0.0.1:7777", "rtcp", T + 2, true, A]], "10.0.0.1:7777"],
    ["configured before it sends", { source: { address: "10.0.0.1", port: 5000 } }, [], "10.0.0.1:5001"],
    ["a new sender after silence", { source: { learnMs: 0, idleMs: 10 } }, [[A, "rtp", T, true, A], [A2, "rtp", T + 10, true, A2]], "10.0.0.1:6001"],
    ["RTP port 65535: no port + 1, nowhere until its RTCP", {}, [["10.0.0.1:65535", "rtp", T, true, "10.0.0.1:65535"]], null],
    ["RTP port 65535, then its RTCP", {}, [["10.0.0.1:65535", "rtp", T, true, "10.0.0.1:65535"], ["10.0.0.1:65534", "rtcp", T + 1, true, "10.0.0.1:65535"]], "10.0.0.1:65534"],
    ["source.port 65535", { source: { address: "10.0.0.1", port: 65535 } }, [], null],
  ];
  for (const [label, extra, steps, expected] of cases) {
    const gate = new SourceGate(segmentConfig(extra));
    for (const [from, kind, at] of steps) gate.admitSender(...peer(from), kind === "rtcp", at);
    assert.is(show(gate.rtcp), expected, label);
  }
});

unit("feedback: only from a destination's address (IPv6 in any spelling), or from anyone with feedbackFrom: any", () => {
  const v6 = { listen: { address: "::1", port: 40000 }, destinations: [{ address: "2001:db8:0:0:0:0:0:1", port: 7000 }] };
  const cases: [Partial<SegmentInput>, string, boolean][] = [
    [{}, "10.0.0.5", true], [v6, "2001:db8::1", true], [{}, "10.0.0.6", false], [v6, "2001:db8::2", false], [{}, "127.0.0.1", false],
  ];
  for (const [segment, from, admitted] of cases) {
    assert.is(new SourceGate(segmentConfig(segment)).admitFeedback(from), admitted, from);
    assert.ok(new SourceGate(segmentConfig({ ...segment, feedbackFrom: "any" })).admitFeedback(from), `${from} with feedbackFrom: any`);
  }
});

unit("regression: an IPv6 address with a zone (link-local) is matched with its zone, in any spelling", () => {
  // lo: the config's zones must name interfaces of this host (config/address-zones.ts)
  const gate = new SourceGate(segmentConfig({
    listen: { address: "::1", port: 40000 },
    source: { address: "fe80:0:0:0:0:0:0:9%lo", learnMs: 0 },
    destinations: [{ address: "fe80::0:5%lo", port: 7000 }],
  }));
  assert.ok(gate.admitFeedback("fe80::5%lo"));
  assert.not.ok(gate.admitFeedback("fe80::5%eth1"), "another interface's fe80::5 is another host");
  assert.not.ok(gate.admitFeedback("fe80::6%lo"));
  assert.ok(gate.admitSender("fe80::9%lo", 5000, false, T));
  assert.not.ok(gate.admitSender("fe80::9%eth1", 5000, false, T + 1));
});

unit("a config change: new destinations and a new allowed sender take effect, a learned sender is kept otherwise", () => {
  const gate = new SourceGate(segmentConfig({ source: { learnMs: 0 } }));
  assert.ok(gate.admitSender("10.0.0.1", 5000, false, T));
  gate.update(segmentConfig({ source: { learnMs: 0 }, destinations: [{ address: "10.0.0.6", port: 7000 }] }));
  assert.is(show(gate.rtp), A, "kept");
  assert.not.ok(gate.admitSender("10.0.0.1", 6000, false, T + 1), "still latched");
  assert.ok(gate.admitFeedback("10.0.0.6"));
  assert.not.ok(gate.admitFeedback("10.0.0.5"), "no longer a destination");
  gate.update(segmentConfig({ source: { address: "10.0.0.9", learnMs: 0 } }));
  assert.is(gate.rtp, null, "the config names another sender: the learned one is forgotten");
  assert.not.ok(gate.admitSender("10.0.0.1", 5000, false, T + 2));
  assert.ok(gate.admitSender("10.0.0.9", 5000, false, T + 3));
});

unit("a new sender is learned only if the chain accepts a packet of it; while it waits, anyone else waits for that verdict", () => {
  const gate = new SourceGate(segmentConfig({ source: { learnMs: 0, idleMs: 0 } }));
  // a packet the chain refuses (an SRTP packet failing authentication): its source is not learned
  assert.is(gate.screen("10.0.0.9", 5000, false, T), CANDIDATE);
  assert.is(gate.screen("10.0.0.9", 5000, false, T + 1), CANDIDATE, "more of the candidate's packets in the batch");
  assert.is(gate.screen("10.0.0.1", 5000, false, T + 2), VERDICT_FIRST, "another sender in the same batch waits for the chain's verdict");
  gate.settle(false);
  assert.is(gate.rtp, null, "refused by the chain: not latched");
  assert.is(gate.rtcp, null, "and feedback goes nowhere near it");
  // the real sender, heard next, is learned once the chain takes its packet
  assert.is(gate.screen("10.0.0.1", 5000, false, T + 3), CANDIDATE);
  gate.settle(true);
  assert.is(show(gate.rtp), A);
  assert.is(gate.screen("10.0.0.9", 5000, false, T + 4), REFUSED, "latched with learnMs 0: the other host is a stranger now");
  assert.is(gate.screen("10.0.0.1", 5000, false, T + 5), ADMITTED);
  // the sender's RTCP port is learned the same way: a forged report the chain refuses does not move it
  assert.is(gate.screen("10.0.0.1", 7777, true, T + 6), CANDIDATE);
  gate.settle(false);
  assert.is(show(gate.rtcp), "10.0.0.1:5001");
  assert.is(gate.screen("10.0.0.1", 5555, true, T + 7), CANDIDATE);
  gate.settle(true);
  assert.is(show(gate.rtcp), "10.0.0.1:5555");
  // a config change forgets a candidate heard under the old policy
  assert.is(gate.screen("10.0.0.1", 5000, false, T + 8), ADMITTED);
  const idle = new SourceGate(segmentConfig({ source: { learnMs: 0, idleMs: 100 } }));
  idle.admitSender("10.0.0.1", 5000, false, T);
  assert.is(idle.screen("10.0.0.9", 5000, false, T + 500), CANDIDATE, "the sender is idle: another may take its place");
  idle.update(segmentConfig({ source: { address: "10.0.0.1", learnMs: 0, idleMs: 100 } }));
  idle.settle(true);
  assert.is(show(idle.rtp), A, "not the candidate the new allow list would refuse");
});

unit("config: source keys are checked, with the field named", () => {
  const cases: [unknown, RegExp][] = [
    [{ port: 5000 }, /segments\[0\]\.source: port and rtcpPort need an address/],
    [{ address: "nope" }, /segments\[0\]\.source\.address: must be an IPv4 or IPv6 address/],
    [{ learnMs: -1 }, /segments\[0\]\.source\.learnMs/],
    [{ idleMs: 1.5 }, /segments\[0\]\.source\.idleMs/],
    [{ strict: "yes" }, /segments\[0\]\.source\.strict/],
    [{ latch: true }, /segments\[0\]\.source.*latch/],
  ];
  for (const [source, pattern] of cases) {
    assert.throws(() => segmentConfig({ source } as Partial<SegmentInput>), pattern, JSON.stringify(source));
  }
  assert.throws(() => segmentConfig({ feedbackFrom: "anyone" } as unknown as Partial<SegmentInput>), /segments\[0\]\.feedbackFrom/);
  const d = segmentConfig();
  assert.equal([d.source.strict, d.source.learnMs, d.source.idleMs, d.feedbackFrom], [true, 3000, 5000, "destinations"], "the defaults");
});

unit.run();

// ---- a real proxy ----

const proxyTest = suite("source gate in a running proxy", { timeoutMs: 60_000 });
const LO = "127.0.0.1";

/** Sends `packets` [socket, bytes, port] in order, a window at a time, each once the segment took the last. */
async function sendInWindows(packets: readonly [Socket, Uint8Array, number][], taken: () => Promise<number>, window = 50): Promise<void> {
  const start = await taken();
  for (let k = 0; k < packets.length; k += window) {
    for (const [socket, bytes, port] of packets.slice(k, k + window)) socket.send(bytes, port, LO);
    const want = start + Math.min(packets.length, k + window);
    await waitFor(async () => (await taken()) >= want, 10_000, `the proxy to take ${want - start} packets`);
  }
}

/** Interleaves two lists: a, b, a, b, ... */
function interleave<T>(a: readonly T[], b: readonly T[]): T[] {
  const out: T[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (i < a.length) out.push(a[i]!);
    if (i < b.length) out.push(b[i]!);
  }
  return out;
}

const keys = (n: number, from: number): number[] => Array.from({ length: n }, (_, i) => from + i);

/** An RTCP receiver report (RFC 3550 6.4.2) whose first report block carries `key` where a Sink reads it. */
function rtcpRr(key: number): Buffer {
  const b = Buffer.alloc(32);
  b[0] = 0x81;
  b[1] = 201;
  b.writeUInt16BE(7, 2);
  b.writeUInt32BE(0xfeed, 4);
  b.writeUInt32BE(key, 12);
  return b;
}

proxyTest("an injector on another port or host is refused and counted; the snapshot names the latched sender", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const { proxy } = await startProxy({
    segments: [{ name: "cam", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }], source: { learnMs: 0 } }],
  });
  const [sender, injector, farInjector] = [await bindUdp(), await bindUdp(), await bindUdp(0, "127.0.0.2")];
  try {
    sender.send(indexedRtp(0), listen, LO);
    await waitFor(() => sink.received >= 1, 5000, "the first packet");
    assert.is((await segmentStats(proxy, "cam")).ports.sender, `${LO}:${sender.address().port}`);
    const kernel = new DropWatch([listen, listen + 1, sink.port]);
    const n = 300;
    const good = keys(n, 1).map((k): [Socket, Uint8Array, number] => [sender, indexedRtp(k), listen]);
    const bad = [
      ...keys(100, 10_000).map((k): [Socket, Uint8Array, number] => [injector, indexedRtp(k), listen]),
      ...keys(50, 20_000).map((k): [Socket, Uint8Array, number] => [farInjector, indexedRtp(k), listen]),
      ...keys(50, 30_000).map((k): [Socket, Uint8Array, number] => [farInjector, rtcpRr(k), listen + 1]),
    ];
    await sendInWindows(interleave(good, bad), async () => (await segmentStats(proxy, "cam")).packetsIn);
    await waitFor(() => sink.received >= 1 + n, 5000, "the sender's stream");
    await sleep(100);
    assert.is(kernel.since().total, 0, "nothing lost in the kernel: the counts below are exact");
    assert.equal(sink.tally(n, 1), { missing: 0, duplicates: 0 });
    assert.is(sink.received, 1 + n, "not one injected packet got through");
    const seg = await segmentStats(proxy, "cam");
    assert.is(seg.drops.host_source_refused, bad.length);
    assert.is(seg.ports.sender, `${LO}:${sender.address().port}`, "still the first sender");
  } finally {
    for (const s of [sender, injector, farInjector]) s.close();
    sink.close();
    await proxy.close();
  }
});

proxyTest("feedback from a non-destination is refused and counted; a destination's reaches the sender; feedbackFrom: any admits it", async () => {
  const listen = await freePortPair();
  const senderPort = await freePortPair();
  const [d1, d2] = [await freePortPair(), await freePortPair()];
  const sinks = await Promise.all([Sink.open(d1), Sink.open(d2), Sink.open(d1 + 1), Sink.open(d2 + 1)]);
  const senderRtcp = await Sink.open(senderPort + 1, { keep: true });
  const sender = await bindUdp(senderPort);
  const stranger = await bindUdp(0, "127.0.0.2");
  const input: ProxyConfigInput = {
    segments: [{ name: "fb", listen: { address: LO, port: listen }, source: { learnMs: 0 },
      destinations: [{ address: LO, port: d1 }, { address: LO, port: d2 }] }],
  };
  const { proxy } = await startProxy(input);
  try {
    sender.send(indexedRtp(0), listen, LO); // latches the sender: feedback goes to its port + 1
    await waitFor(() => sinks[0]!.received >= 1, 5000, "the first packet");
    const { egress, egressRtcp } = (await segmentStats(proxy, "fb")).ports;
    assert.is((await segmentStats(proxy, "fb")).ports.egressConnected, false, "two destinations: the egress socket is not connected");
    const kernel = new DropWatch([egress, egressRtcp!, senderPort + 1]);
    const d1Rtcp = sinks[2]!.socket;
    const genuine = keys(50, 1).map((k): [Socket, Uint8Array, number] => [d1Rtcp, rtcpRr(k), egressRtcp!]);
    const forged = [
      ...keys(50, 1000).map((k): [Socket, Uint8Array, number] => [stranger, rtcpRr(k), egressRtcp!]),
      ...keys(50, 2000).map((k): [Socket, Uint8Array, number] => [stranger, rtcpRr(k), egress]),
    ];
    await sendInWindows(interleave(genuine, forged), async () => (await segmentStats(proxy, "fb")).upstreamIn);
    await waitFor(() => senderRtcp.received >= genuine.length, 5000, "the destination's feedback at the sender");
    await sleep(100);
    assert.is(kernel.since().total, 0);
    assert.equal(senderRtcp.tally(50, 1), { missing: 0, duplicates: 0 });
    assert.is(senderRtcp.received, genuine.length, "no forged feedback reached the sender");
    assert.is(senderRtcp.packets[0]!.from.port, listen + 1, "it comes from the listen RTCP port");
    assert.is((await segmentStats(proxy, "fb")).drops.host_feedback_refused, forged.length);
    // the operator opens feedback to anyone (a receiver behind a NAT): the same stranger gets through
    await proxy.apply(validateProxyConfig({ segments: [{ ...input.segments![0]!, feedbackFrom: "any" }] }));
    stranger.send(rtcpRr(5000), egressRtcp!, LO);
    await waitFor(() => senderRtcp.received >= genuine.length + 1, 5000, "feedback from anyone");
    assert.is(senderRtcp.keys.get(5000), 1);
  } finally {
    for (const s of [...sinks, senderRtcp]) s.close();
    sender.close();
    stranger.close();
    await proxy.close();
  }
});

proxyTest("regression: RTCP from a host before any sender latched does not aim the receivers' feedback at that host (a spoofed source made the proxy a reflector)", async () => {
  const listen = await freePortPair();
  const d1 = await freePortPair();
  const senderPort = await freePortPair();
  const sinks = await Promise.all([Sink.open(d1), Sink.open(d1 + 1)]);
  const victim = await Sink.open(0, { keep: true }); // the address an attacker writes as the source of its RTCP
  const senderRtcp = await Sink.open(senderPort + 1, { keep: true });
  const sender = await bindUdp(senderPort);
  const { proxy } = await startProxy({
    segments: [{ name: "fb", listen: { address: LO, port: listen }, source: { learnMs: 0 }, destinations: [{ address: LO, port: d1 }] }],
  });
  try {
    const sr = Buffer.from(rtcpRr(1));
    sr[1] = 200; // a sender report's type: the receivers see it; what matters is where feedback goes next
    victim.socket.send(sr, listen + 1, LO);
    await waitFor(() => sinks[1]!.received >= 1, 5000, "the forged report at the destination");
    const { egressRtcp } = (await segmentStats(proxy, "fb")).ports;
    const d1Rtcp = sinks[1]!.socket;
    const noTarget = async (): Promise<number> => (await segmentStats(proxy, "fb")).drops.host_no_destination ?? 0;
    for (let k = 0; k < 20; k++) d1Rtcp.send(rtcpRr(100 + k), egressRtcp!, LO);
    await waitFor(async () => victim.received + (await noTarget()) >= 20, 5000, "the destination's 20 reports sent on or dropped");
    assert.is(victim.received, 0, "the destination's feedback went to the host that only sent RTCP");
    assert.is(await noTarget(), 20, "dropped, counted as host_no_destination");
    // the sender that latches takes the feedback, as before
    sender.send(indexedRtp(0), listen, LO);
    await waitFor(() => sinks[0]!.received >= 1, 5000, "the sender's first packet");
    d1Rtcp.send(rtcpRr(500), egressRtcp!, LO);
    await waitFor(() => senderRtcp.received >= 1, 5000, "the destination's feedback at the sender");
    assert.is(senderRtcp.keys.get(500), 1);
    assert.is(victim.received, 0);
  } finally {
    for (const s of [...sinks, victim, senderRtcp]) s.close();
    sender.close();
    await proxy.close();
  }
});

proxyTest("regression: a sender on port 65535 (no port + 1): a destination's feedback is dropped as host_no_destination until the sender's RTCP shows where it goes (sent to port 65536, it killed the worker on batched I/O)", async () => {
  const listen = await freePortPair();
  const d1 = await freePortPair();
  const sinks = await Promise.all([Sink.open(d1), Sink.open(d1 + 1)]);
  const sender = await bindUdp(65535);
  const senderRtcp = await Sink.open(0, { keep: true });
  const { proxy, events } = await startProxy({
    segments: [{ name: "top", listen: { address: LO, port: listen }, source: { learnMs: 0 }, destinations: [{ address: LO, port: d1 }] }],
  });
  try {
    sender.send(indexedRtp(0), listen, LO);
    await waitFor(() => sinks[0]!.received >= 1, 5000, "the sender's first packet");
    const { egressRtcp } = (await segmentStats(proxy, "top")).ports;
    const d1Rtcp = sinks[1]!.socket;
    const noTarget = async (): Promise<number> => (await segmentStats(proxy, "top")).drops.host_no_destination ?? 0;
    for (let k = 0; k < 5; k++) d1Rtcp.send(rtcpRr(100 + k), egressRtcp!, LO);
    await waitFor(async () => (await noTarget()) >= 5, 5000, "the destination's 5 reports dropped");
    assert.equal(events.filter((e) => e.type === "worker-exit" || e.type === "error"), [], "no worker died");
    // the sender's own RTCP (from another port of its address) tells where its feedback goes
    const sr = Buffer.from(rtcpRr(1));
    sr[1] = 200;
    senderRtcp.socket.send(sr, listen + 1, LO);
    await waitFor(() => sinks[1]!.received >= 1, 5000, "the sender's report at the destination");
    d1Rtcp.send(rtcpRr(500), egressRtcp!, LO);
    await waitFor(() => senderRtcp.received >= 1, 5000, "the destination's feedback at the sender's RTCP port");
    assert.is(senderRtcp.keys.get(500), 1);
    sender.send(indexedRtp(1), listen, LO);
    await waitFor(() => sinks[0]!.received >= 2, 5000, "the stream still flows");
    assert.equal(events.filter((e) => e.type === "worker-exit" || e.type === "error"), [], "no worker died");
  } finally {
    for (const s of [...sinks, senderRtcp]) s.close();
    sender.close();
    await proxy.close();
  }
});

proxyTest("a sender that restarts on a new port is followed once the old one has been silent for idleMs, and only then", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const idleMs = 400;
  const { proxy, events } = await startProxy({
    segments: [{ name: "restart", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }], source: { learnMs: 0, idleMs } }],
  });
  const [first, second] = [await bindUdp(), await bindUdp()];
  const taken = async (): Promise<number> => (await segmentStats(proxy, "restart")).packetsIn;
  const sender = async (): Promise<string | null> => (await segmentStats(proxy, "restart")).ports.sender;
  try {
    const kernel = new DropWatch([listen, sink.port]);
    const packets = (s: Socket, from: number): [Socket, Uint8Array, number][] => keys(50, from).map((k) => [s, indexedRtp(k), listen]);
    // while the first sender is active, the second is refused (whatever the timing: the first keeps sending)
    await sendInWindows(interleave(packets(first, 0), packets(second, 1000)), taken);
    assert.is(await sender(), `${LO}:${first.address().port}`);
    await sleep(idleMs + 200); // silence: longer than idleMs
    // the second is learned at its first packet; from then on the first is the stranger
    await sendInWindows(interleave(packets(second, 2000), packets(first, 3000)), taken);
    await waitFor(() => sink.received >= 100 - kernel.since().total, 5000, "both streams");
    await sleep(100);
    assert.is(kernel.since().total, 0);
    assert.equal([sink.tally(50, 0), sink.tally(50, 2000)], [{ missing: 0, duplicates: 0 }, { missing: 0, duplicates: 0 }]);
    assert.is(sink.received, 100, "none of the refused ones");
    assert.is(await sender(), `${LO}:${second.address().port}`);
    assert.is((await segmentStats(proxy, "restart")).drops.host_source_refused, 100);
    // the log says why, once a minute at most: a restarted sender otherwise sees only a counter move
    const said = events.flatMap((e) => (e.type === "error" && e.segment === "restart" ? [e.message] : []));
    assert.is(said.length, 1, said.join("\n"));
    assert.match(said[0]!, new RegExp(`^refusing RTP from ${LO}:${second.address().port} \\(host_source_refused\\): the sender latched is ${LO}:${first.address().port}, heard \\d+ ms ago; another takes its place once it has been silent for ${idleMs} ms \\(source\\.idleMs; source\\.strict: false admits any\\); said at most once a minute$`));
  } finally {
    first.close();
    second.close();
    sink.close();
    await proxy.close();
  }
});

proxyTest("a host whose packets the chain refuses (SRTP failing authentication) never latches: the real sender does, even with learnMs and idleMs 0", async () => {
  // the stream is protected by one segment and unprotected by the next; a host sends the second
  // one forged SRTP first and throughout. Latched by its first packet, it would keep the real
  // sender (the first segment's egress) refused for good: idleMs 0 never re-learns.
  const [pe, pd] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const key = "inline:" + Buffer.alloc(30, 0x3c).toString("base64");
  const { proxy } = await startProxy({
    filters: { srtp: { path: filterWasm("srtp") } },
    segments: [
      { name: "protect", listen: { address: LO, port: pe }, destinations: [{ address: LO, port: pd }], chain: [{ filter: "srtp", config: { direction: "protect", key } }] },
      { name: "guard", listen: { address: LO, port: pd }, destinations: [{ address: LO, port: sink.port }], source: { learnMs: 0, idleMs: 0 },
        chain: [{ filter: "srtp", config: { direction: "unprotect", key } }] },
    ],
  });
  const [forger, tx] = [await bindUdp(), await bindUdp()];
  const forged = (k: number): Buffer => Buffer.concat([indexedRtp(50_000 + k), Buffer.alloc(10, k)]); // an RTP packet with a tag no key made
  const guard = async () => segmentStats(proxy, "guard");
  const authFailed = async (): Promise<number> => (await guard()).stages[0]!.drops.srtp_auth_failed ?? 0;
  try {
    for (let k = 0; k < 20; k++) forger.send(forged(k), pd, LO);
    await waitFor(async () => (await authFailed()) >= 20, 5000, "the forged packets refused by the chain");
    assert.is((await guard()).ports.sender, null, "nothing latched");
    const kernel = new DropWatch([pe, pd, sink.port]);
    const n = 300;
    let forgedSent = 20;
    for (let k = 0; k < n; k++) {
      tx.send(indexedRtp(k), pe, LO);
      if (k % 3 === 0) forger.send(forged(forgedSent++), pd, LO); // the forger goes on, interleaved
      if (k % 50 === 49) await sleep(10);
    }
    await waitFor(() => sink.received >= n - kernel.since().total, 10_000, `the real stream (${sink.received} of ${n})`);
    await settled(() => sink.received);
    const lost = kernel.since().total;
    assert.equal(sink.tally(n, 0).duplicates, 0);
    assert.is(sink.tally(n, 0).missing, lost, `every packet of the real stream delivered but the ${lost} the kernel dropped`);
    assert.is(sink.keys.size, n - lost, "no forged packet reached the receiver");
    const stats = await guard();
    assert.is(stats.ports.sender, `${LO}:${(await segmentStats(proxy, "protect")).ports.egress}`, "the real sender latched");
    const refused = stats.drops.host_source_refused ?? 0;
    await waitFor(async () => (await authFailed()) + ((await guard()).drops.host_source_refused ?? 0) >= forgedSent, 5000, "every forged packet counted");
    assert.ok(refused > 0, "once the real sender latched, the forger's packets are refused at the gate");
  } finally {
    forger.close();
    tx.close();
    sink.close();
    await proxy.close();
  }
});

proxyTest("an allow list: only the configured address may send, and its feedback goes there before it is heard", async () => {
  const listen = await freePortPair();
  const senderPort = await freePortPair("127.0.0.2");
  const sink = await Sink.open();
  const senderRtcp = await Sink.open(senderPort + 1, { address: "127.0.0.2" });
  const { proxy } = await startProxy({
    segments: [{ name: "allow", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }],
      source: { address: "127.0.0.2", port: senderPort } }],
  });
  const [other, allowed] = [await bindUdp(), await bindUdp(senderPort, "127.0.0.2")];
  try {
    assert.is((await segmentStats(proxy, "allow")).ports.sender, `127.0.0.2:${senderPort}`, "known before it sends");
    const egressRtcp = (await segmentStats(proxy, "allow")).ports.egressRtcp!;
    sink.socket.send(rtcpRr(7), egressRtcp, LO); // the destination's feedback before the sender sent anything
    await waitFor(() => senderRtcp.received >= 1, 5000, "feedback to the configured sender");
    const kernel = new DropWatch([listen]);
    const n = 40;
    await sendInWindows(
      interleave(keys(n, 0).map((k): [Socket, Uint8Array, number] => [allowed, indexedRtp(k), listen]),
        keys(n, 1000).map((k): [Socket, Uint8Array, number] => [other, indexedRtp(k), listen])),
      async () => (await segmentStats(proxy, "allow")).packetsIn,
    );
    await waitFor(() => sink.received >= n, 5000, "the allowed stream");
    await sleep(100);
    assert.is(kernel.since().total, 0);
    assert.equal(sink.tally(n, 0), { missing: 0, duplicates: 0 });
    assert.is(sink.received, n);
    assert.is((await segmentStats(proxy, "allow")).drops.host_source_refused, n);
  } finally {
    other.close();
    allowed.close();
    sink.close();
    senderRtcp.close();
    await proxy.close();
  }
});

proxyTest("regression: a destination with an IPv6 zone applies and runs (it failed in the commit, after the other segments were changed)", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const running = { name: "running", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }] };
  const { proxy } = await startProxy({ segments: [running] });
  const tx = await bindUdp();
  try {
    const zoned = { name: "zoned", rtcpMux: true, listen: { address: "::1", port: await freePortPair("::1") }, destinations: [{ address: "fe80::1%lo", port: 5004 }] };
    await proxy.apply(validateProxyConfig({ segments: [running, zoned] }));
    assert.equal((await proxy.stats()).segments.map((s) => s.name).sort(), ["running", "zoned"]);
    tx.send(indexedRtp(0), listen, LO);
    await waitFor(() => sink.received >= 1, 5000, "the running segment's stream");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
  }
});

proxyTest.run();
