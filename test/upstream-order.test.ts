// Upstream packets pass a chain's stages last to first, like a protocol stack: the receivers'
// feedback enters at the last stage, and what stage i makes for the sender passes stages i-1 .. 0.
// In a real proxy on loopback: an SRTP edge whose congestion stage answers the sender (its
// TMMBR/REMB must leave as SRTCP under the reverse key, not in plaintext), and a segment that
// re-encrypts (unprotect, validate, protect), whose receivers' SRTCP must reach the sender as
// SRTCP under the sender's side's reverse key.
import * as assert from "uvu/assert";
import { rtcpPackets } from "../filters/congestion/test/cc-lib.js";
import { FilterHarness, PacketFlag, pseudoRandomBytes } from "../sdk/harness/index.js";
import { filterWasm } from "./lib/paths.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { receiverReport, senderReport } from "./lib/rtcp-build.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortPair, indexedRtp, sendPaced, Sink, sleep, waitFor } from "./lib/udp.js";

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
    await sendPaced(rtp, listen, LO, 1200, 400, (i) => origin.protect(indexedRtp(i, 600), false), (n) => {
      if (n % 100 === 0) rtcp.send(origin.protect(srNow(), true), listen + 1, LO);
    });
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

test.run();
