// Upstream packets pass a chain's stages last to first, like a protocol stack: the receivers'
// feedback enters at the last stage, and what stage i makes for the sender passes stages i-1 .. 0.
// In a real proxy on loopback: an SRTP edge whose congestion stage answers the sender (its
// TMMBR/REMB must leave as SRTCP under the reverse key, not in plaintext), and a segment that
// re-encrypts (unprotect, validate, protect), whose receivers' SRTCP must reach the sender as
// SRTCP under the sender's side's reverse key. And at a reload, what a stage that leaves the chain
// hands over enters the new chain at its place: feedback passes an srtp stage the same reload added
// at the head, and the answer a later stage makes to it does not pass the stage that left.
import * as assert from "uvu/assert";
import { rtcpPackets } from "../filters/congestion/test/cc-lib.js";
import { FilterHarness, PacketFlag, pseudoRandomBytes } from "../sdk/harness/index.js";
import { filterWasm } from "./lib/paths.js";
import { validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { fixture } from "./lib/paths.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { receiverReport, senderReport } from "./lib/rtcp-build.js";
import { suite } from "./lib/suite.js";
import { bindUdp, everyN, freePortPair, indexedRtp, sendPaced, Sink, sleep, waitFor } from "./lib/udp.js";

const test = suite("upstream packets pass the chain last stage first", { timeoutMs: 40_000 });
const LO = "127.0.0.1";
const SUITE = "AES_CM_128_HMAC_SHA1_80";
const SSRC = 0x1234abcd;
const RECEIVER = 0x5ece1fe0;
const keyText = (seed: number): string => `inline:${Buffer.from(pseudoRandomBytes(30, seed)).toString("base64")}`;
/** The sender's media key, the key it expects its feedback under; the receivers' side's pair. */
const A = keyText(11);
const A_REVERSE = keyText(12);
const B = keyText(13);
const B_REVERSE = keyText(14);

/** One SRTP endpoint: protects what it sends with `send`, unprotects what it gets with `receive`. */
async function endpoint(send: string, receive: string) {
  const h = await FilterHarness.load(filterWasm("srtp", true), { name: "srtp" });
  const tx = h.createContext({ direction: "protect", suite: SUITE, key: send });
  const rx = h.createContext({ direction: "unprotect", suite: SUITE, key: receive });
  return {
    protect(b: Uint8Array, rtcp: boolean): Buffer {
      const r = h.run({ ctx: tx, bytes: b, flags: rtcp ? PacketFlag.Rtcp : 0 });
      assert.is(r.verdict, "pass");
      return Buffer.from(r.bytes);
    },
    /** The plain packet, or null when it does not authenticate under `receive`. */
    unprotect(b: Uint8Array, rtcp: boolean): Uint8Array | null {
      const r = h.run({ ctx: rx, bytes: b, flags: rtcp ? PacketFlag.Rtcp : 0 });
      return r.verdict === "pass" ? r.bytes : null;
    },
  };
}

const srNow = (): Buffer => {
  const now = Date.now() / 1000 + 2208988800;
  return senderReport(SSRC, Math.floor(now) >>> 0, Math.floor((now % 1) * 2 ** 32) >>> 0);
};

/**
 * An origin sending SRTP under A (and SRTCP SRs) to `listen`, a receiver at `sinkPort` that
 * answers every SR with an RR (protected by `answer` when given); returns what reached the
 * origin's RTCP socket and what the receiver got.
 */
async function drive(listen: number, sinkPort: number, sink: Sink, answer: ((rr: Buffer) => Buffer) | null, readSr: (b: Buffer) => Uint8Array | null) {
  const origin = await endpoint(A, A_REVERSE);
  const sinkRtcp = await bindUdp(sinkPort + 1);
  const rtp = await bindUdp();
  const rtcp = await bindUdp(rtp.address().port + 1).catch(() => bindUdp());
  const toOrigin: Buffer[] = [];
  rtcp.on("message", (m: Buffer) => toOrigin.push(m));
  let answered = 0;
  sinkRtcp.on("message", (m: Buffer, from) => {
    const sr = readSr(m);
    if (sr === null || sr.length < 28 || sr[1] !== 200) return;
    const lsr = Buffer.from(sr).readUInt32BE(10);
    const rr = receiverReport(RECEIVER, SSRC, 0, 0, 100, 0, lsr, 300);
    answered++;
    sinkRtcp.send(answer ? answer(rr) : rr, from.port, from.address);
  });
  try {
    await sendPaced(rtp, listen, LO, 1200, 400, (i) => origin.protect(indexedRtp(i, 600), false), everyN(100, () => {
      rtcp.send(origin.protect(srNow(), true), listen + 1, LO);
    }));
    await waitFor(() => answered >= 5 && toOrigin.length >= 5, 5000, "feedback toward the origin");
    await sleep(300);
    return { toOrigin, answered, origin };
  } finally {
    rtp.close();
    rtcp.close();
    sinkRtcp.close();
    sink.close();
  }
}

test("[srtp unprotect with reverseKey, congestion sender]: everything that leaves toward the sender is SRTCP under the reverse key, the congestion stage's TMMBR and REMB too", async () => {
  const listen = await freePortPair();
  const sinkPort = await freePortPair();
  const sink = await Sink.open(sinkPort);
  const { proxy } = await startProxy({
    filters: { srtp: { path: filterWasm("srtp") }, congestion: { path: filterWasm("congestion") } },
    segments: [{
      name: "edge", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sinkPort }],
      chain: [
        { filter: "srtp", config: { direction: "unprotect", suite: SUITE, key: A, reverseKey: A_REVERSE } },
        { filter: "congestion", config: { mode: "sender", startBps: 4_000_000, maxBps: 20_000_000 } },
      ],
    }],
  });
  try {
    const { toOrigin, origin } = await drive(listen, sinkPort, sink, null, (b) => b);
    const plain = toOrigin.map((m) => origin.unprotect(m, true));
    const refused = plain.filter((p) => p === null).length;
    const types = plain.flatMap((p) => (p ? rtcpPackets(p).map((x) => `${x.type}/${x.fmt}`) : []));
    console.log(`  to the origin: ${toOrigin.length} packets, ${refused} not SRTCP under the reverse key; inside: ${[...new Set(types)].join(", ")}`);
    assert.is(refused, 0, `every packet toward the sender authenticates under reverseKey (lengths of those that do not: ${toOrigin.filter((_, k) => plain[k] === null).map((m) => m.length).join(", ")})`);
    assert.ok(types.includes("205/3") && types.includes("206/15"), "the congestion stage's TMMBR and REMB went through the srtp stage");
    assert.ok(types.includes("201/1"), "the receiver's RR went through too");
    const st = await segmentStats(proxy, "edge");
    assert.is(st.stages[0]!.drops["plain_feedback"] ?? 0, 0);
  } finally {
    await proxy.close();
  }
});

test("[srtp unprotect (A, A'), validate, srtp protect (B, B')]: the receivers' SRTCP under B' reaches the sender as SRTCP under A', media as SRTP under B", async () => {
  const listen = await freePortPair();
  const sinkPort = await freePortPair();
  const sink = await Sink.open(sinkPort, { keep: true });
  const receiver = await endpoint(B_REVERSE, B);
  const { proxy } = await startProxy({
    filters: {
      "srtp-in": { path: filterWasm("srtp"), metricsName: "srtp" },
      validate: { path: filterWasm("validate") },
      "srtp-out": { path: filterWasm("srtp"), metricsName: "srtp" },
    },
    segments: [{
      name: "recrypt", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sinkPort }],
      chain: [
        { filter: "srtp-in", config: { direction: "unprotect", suite: SUITE, key: A, reverseKey: A_REVERSE } },
        { filter: "validate", config: { probation: 0 } },
        { filter: "srtp-out", config: { direction: "protect", suite: SUITE, key: B, reverseKey: B_REVERSE } },
      ],
    }],
  });
  try {
    const { toOrigin, origin, answered } = await drive(listen, sinkPort, sink, (rr) => receiver.protect(rr, true), (b) => receiver.unprotect(b, true));
    const plain = toOrigin.map((m) => origin.unprotect(m, true));
    const reports = plain.filter((p): p is Uint8Array => p !== null && p[1] === 201 && Buffer.from(p).readUInt32BE(4) === RECEIVER);
    console.log(`  receiver answered ${answered} SRs; to the origin ${toOrigin.length} packets, ${reports.length} the receiver's RR under A'`);
    assert.is(plain.filter((p) => p === null).length, 0, "every packet toward the sender authenticates under A'");
    assert.ok(reports.length >= 5, "the receiver's reports reached the sender");
    const media = sink.packets.filter((p) => p.bytes[1] !== 200);
    assert.ok(media.length > 1000, `media reached the receiver (${media.length})`);
    assert.ok(media.every((p) => receiver.unprotect(p.bytes, false) !== null), "media is SRTP under B");
    const st = await segmentStats(proxy, "recrypt");
    const dropped = st.stages.map((s) => Object.entries(s.drops).filter(([, n]) => n > 0));
    assert.equal(dropped, [[], [], []], "no stage dropped anything");
  } finally {
    await proxy.close();
  }
});

test("[srtp unprotect with reverseKey and ssrcs (the sender's)]: the receivers' feedback, under their own SSRCs, still reaches the sender as SRTCP under the reverse key", async () => {
  const listen = await freePortPair();
  const sinkPort = await freePortPair();
  const sink = await Sink.open(sinkPort);
  const { proxy } = await startProxy({
    filters: { srtp: { path: filterWasm("srtp") } },
    segments: [{
      name: "listed", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sinkPort }],
      chain: [{ filter: "srtp", config: { direction: "unprotect", suite: SUITE, key: A, reverseKey: A_REVERSE, ssrcs: [SSRC] } }],
    }],
  });
  try {
    const { toOrigin, origin } = await drive(listen, sinkPort, sink, null, (b) => b);
    const plain = toOrigin.map((m) => origin.unprotect(m, true));
    assert.is(plain.filter((p) => p === null).length, 0, "every packet toward the sender authenticates under reverseKey");
    assert.ok(plain.filter((p) => p !== null && Buffer.from(p).readUInt32BE(4) === RECEIVER).length >= 5, "the receiver's reports reached the sender");
    const st = await segmentStats(proxy, "listed");
    assert.is(st.stages[0]!.drops["srtp_unknown_ssrc"] ?? 0, 0, "no receiver's RTCP dropped for an SSRC not in ssrcs");
  } finally {
    await proxy.close();
  }
});

/**
 * A 64-byte RTCP packet (an RR padded out) carrying a command for the hostile fixture: 0xD0 held
 * by the stages marked `holders` in turn, then `then` (0xCF answered by the stage marked A, with
 * flags and dest B); byte 31 counts the stages that stamped it, their marks from byte 32.
 */
function hostileRtcp(holders: readonly number[], then = 0, a = 0, b = 0): Buffer {
  const p = Buffer.alloc(64);
  p[0] = 0x80;
  p[1] = 201;
  p.writeUInt16BE(64 / 4 - 1, 2);
  p.writeUInt32BE(RECEIVER, 4);
  p[12] = holders.length > 0 ? 0xd0 : 0;
  p.writeUInt32BE(a, 16);
  p.writeUInt32BE(b, 20);
  holders.forEach((mark, k) => (p[24 + k] = mark));
  p[30] = then;
  return p;
}
const marksIn = (b: Uint8Array): number[] => [...b.subarray(32, 32 + b[31]!)];

/**
 * A sender's RTP and RTCP sockets, and the RTCP socket of the receiver at `sinkPort`; latch() has the
 * proxy learn the sender's RTCP address (once the sender's RTP latched it) (with a packet the hostile stages pass) and waits for it at the receiver.
 */
async function peersOf(listen: number, sinkPort: number) {
  const rtp = await bindUdp();
  const rtcp = await bindUdp();
  const receiver = await bindUdp(sinkPort + 1);
  const toSender: Buffer[] = [];
  let atReceiver = 0;
  rtcp.on("message", (m: Buffer) => toSender.push(m));
  receiver.on("message", () => atReceiver++);
  const close = () => [rtp, rtcp, receiver].forEach((s) => s.close());
  const latch = async () => {
    rtcp.send(hostileRtcp([]), listen + 1, LO);
    await waitFor(() => atReceiver >= 1, 5000, "the sender's RTCP at the receiver");
  };
  return { rtp, rtcp, receiver, toSender, close, latch };
}

test("a reload adds srtp at the head and removes a stage holding the receivers' feedback: what it hands over leaves toward the sender as SRTCP under the reverse key", async () => {
  const listen = await freePortPair();
  const sinkPort = await freePortPair();
  const sink = await Sink.open(sinkPort);
  const filters = { srtp: { path: filterWasm("srtp") }, h2: { path: fixture("hostile") }, h3: { path: fixture("hostile") } };
  const config = (chain: NonNullable<ProxyConfigInput["segments"]>[number]["chain"]): ProxyConfigInput => ({
    filters, segments: [{ name: "edge", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }], chain }],
  });
  const { proxy } = await startProxy(config([{ filter: "h2", config: { mark: 2 } }, { filter: "h3", config: { mark: 3 } }]));
  const peers = await peersOf(listen, sinkPort);
  try {
    // the sender's media first: RTCP from a host no sender latched yet does not say where feedback goes
    peers.rtp.send(indexedRtp(1), listen, LO);
    await waitFor(() => sink.received >= 1, 5000, "the sender's media at the receiver");
    await peers.latch();
    const egressRtcp = (await segmentStats(proxy, "edge")).ports.egressRtcp!;
    peers.receiver.send(hostileRtcp([2]), egressRtcp, LO);
    await waitFor(async () => (await segmentStats(proxy, "edge")).stages[0]!.held === 1, 5000, "the feedback held by h2");
    await proxy.apply(validateProxyConfig(config([
      { filter: "srtp", config: { direction: "unprotect", suite: SUITE, key: A, reverseKey: A_REVERSE } },
      { filter: "h3", config: { mark: 3 } },
    ])));
    await waitFor(() => peers.toSender.length >= 1, 5000, "the handed-over feedback at the sender");
    await sleep(100);
    const origin = await endpoint(A, A_REVERSE);
    assert.is(peers.toSender.length, 1);
    const plain = origin.unprotect(peers.toSender[0]!, true);
    assert.ok(plain !== null, `SRTCP under the reverse key, not ${peers.toSender[0]!.length} bytes in plaintext (marks ${marksIn(peers.toSender[0]!)})`);
    assert.equal(marksIn(plain), [3, 2], "it passed h3, then h2, then the new srtp stage");
  } finally {
    peers.close();
    sink.close();
    await proxy.close();
  }
});

test("a reload removes a stage holding media: the answer a later stage makes to what it hands over goes back through the stages before it in the new chain, not through the stage that left", async () => {
  const listen = await freePortPair();
  const sinkPort = await freePortPair();
  const sink = await Sink.open(sinkPort, { keep: true });
  const filters = { h1: { path: fixture("hostile") }, h2: { path: fixture("hostile") }, h3: { path: fixture("hostile") } };
  const stage = (mark: number) => ({ filter: `h${mark}`, config: { mark } });
  const config = (marks: number[]): ProxyConfigInput => ({
    filters, segments: [{ name: "hop", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }], chain: marks.map(stage) }],
  });
  const { proxy } = await startProxy(config([1, 2, 3]));
  const peers = await peersOf(listen, sinkPort);
  try {
    // media h2 holds; once let go, h3 answers it to the sender (Dest.Reverse)
    const media = Buffer.from(indexedRtp(7, 64));
    hostileRtcp([2], 0xcf, 3, PacketFlag.Rtcp | (1 << 8)).copy(media, 12, 12, 31);
    peers.rtp.send(media, listen, LO);
    await waitFor(async () => (await segmentStats(proxy, "hop")).stages[1]!.held === 1, 5000, "the media held by h2");
    await peers.latch(); // then the sender's RTCP, so that what goes back to the sender reaches `rtcp`
    await proxy.apply(validateProxyConfig(config([1, 3])));
    await waitFor(() => peers.toSender.length >= 1 && sink.received >= 1, 5000, "the media at the receiver and the answer at the sender");
    await sleep(100);
    assert.equal(sink.packets.map((p) => marksIn(p.bytes)), [[1, 2, 3]], "the media passed h1, h2, then h3");
    assert.equal(peers.toSender.map((m) => marksIn(m)), [[1, 2, 3, 1]], "the answer went from h3 back through h1 only");
    const st = await segmentStats(proxy, "hop");
    assert.is(st.dropsTotal, 0);
  } finally {
    peers.close();
    sink.close();
    await proxy.close();
  }
});

test("a removed segment's stages hand over what they hold, each packet its way: feedback the last stage held, then the first, reaches the sender; media the first held, then the last, the receiver", async () => {
  const listen = await freePortPair();
  const sinkPort = await freePortPair();
  const sink = await Sink.open(sinkPort, { keep: true });
  const filters = { h1: { path: fixture("hostile") }, h2: { path: fixture("hostile") }, h3: { path: fixture("hostile") } };
  const segment = { name: "gone", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sinkPort }], chain: [1, 2, 3].map((mark) => ({ filter: `h${mark}`, config: { mark } })) };
  const { proxy } = await startProxy({ filters, segments: [segment] });
  const peers = await peersOf(listen, sinkPort);
  try {
    const media = Buffer.from(indexedRtp(7, 64));
    hostileRtcp([1, 3]).copy(media, 12, 12, 31);
    peers.rtp.send(media, listen, LO);
    await peers.latch();
    const egressRtcp = (await segmentStats(proxy, "gone")).ports.egressRtcp!;
    peers.receiver.send(hostileRtcp([3, 1]), egressRtcp, LO);
    await waitFor(async () => (await segmentStats(proxy, "gone")).stages.every((st, k) => st.held === (k === 1 ? 0 : 1)), 5000, "the media held by h1, the feedback by h3");
    await proxy.apply(validateProxyConfig({ filters, segments: [] }));
    await waitFor(() => peers.toSender.length >= 1 && sink.received >= 1, 5000, "the media at the receiver and the feedback at the sender");
    await sleep(100);
    assert.equal(sink.packets.map((p) => marksIn(p.bytes)), [[1, 2, 3]], "the media passed h1, h2, h3");
    assert.equal(peers.toSender.map((m) => marksIn(m)), [[3, 2, 1]], "the feedback passed h3, h2, h1");
  } finally {
    peers.close();
    sink.close();
    await proxy.close();
  }
});

test("a reload whose new stage refuses its predecessor's state: what the old one hands over goes on from the new stage's place without passing it, and the old one is not called again", async () => {
  const listen = await freePortPair();
  const sinkPort = await freePortPair();
  const sink = await Sink.open(sinkPort, { keep: true });
  const filters = { h1: { path: fixture("hostile") }, h2: { path: fixture("hostile") }, h3: { path: fixture("hostile") } };
  const config = (refuse: boolean): ProxyConfigInput => ({
    filters,
    segments: [{
      name: "refused", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sinkPort }],
      chain: [{ filter: "h1", config: { mark: 1 } }, { filter: "h2", config: refuse ? { mark: 4, refuseState: true } : { mark: 2 } }, { filter: "h3", config: { mark: 3 } }],
    }],
  });
  const { proxy, events } = await startProxy(config(false));
  const peers = await peersOf(listen, sinkPort);
  try {
    // media h2 holds; once let go, h3 answers it to the sender (Dest.Reverse)
    const media = Buffer.from(indexedRtp(7, 64));
    hostileRtcp([2], 0xcf, 3, PacketFlag.Rtcp | (1 << 8)).copy(media, 12, 12, 31);
    peers.rtp.send(media, listen, LO);
    await waitFor(async () => (await segmentStats(proxy, "refused")).stages[1]!.held === 1, 5000, "the media held by h2");
    await peers.latch(); // then the sender's RTCP, so that what goes back to the sender reaches `rtcp`
    await proxy.apply(validateProxyConfig(config(true)));
    await waitFor(() => peers.toSender.length >= 1 && sink.received >= 1, 5000, "the media at the receiver and the answer at the sender");
    await sleep(100);
    assert.ok(events.some((e) => e.type === "swap" && e.fresh.includes("h2")), "h2's state was refused");
    assert.equal(sink.packets.map((p) => marksIn(p.bytes)), [[1, 2, 3]], "the media went on from h3, not through the new h2 (mark 4)");
    // h3's answer is a packet of the new chain: it passes the new h2, not the old one
    assert.equal(peers.toSender.map((m) => marksIn(m)), [[1, 2, 3, 4, 1]], "the answer went from h3 back through the new h2 and h1");
  } finally {
    peers.close();
    sink.close();
    await proxy.close();
  }
});

test.run();
