// Per-destination translation (docs/proxy.md "Per-destination SSRC and payload type"): one stream
// to three receivers over real sockets, one plain, one under its own SSRC and payload type, one
// under its own payload type only. The sender's reports reach each receiver under the SSRC that
// receiver knows; the translated receiver's reports and keyframe requests reach the sender under
// the sender's own SSRC. A change of the rewrite applies to the next packet, with no loss.
import * as assert from "uvu/assert";
import { planSnapshot } from "../controlplane/agent/snapshot-config.js";
import type { Segment } from "../controlplane/api/proto.js";
import { parseManifests, toManifest, toSegment } from "../cli/msmctl/manifest.js";
import { planApply } from "../controlplane/server/segments.js";
import { DesiredState } from "../controlplane/server/state.js";
import { validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { FilterHarness, pseudoRandomBytes } from "../sdk/harness/index.js";
import { filterWasm } from "./lib/paths.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { suite } from "./lib/suite.js";
import { bindUdp, freePortPair, indexedRtp, Sink, waitFor } from "./lib/udp.js";

const test = suite("per-destination translation", { timeoutMs: 30_000 });
const LO = "127.0.0.1";
const SSRC = 0x1234abcd, B_SSRC = 0xb0b0b0b0;

const u32 = (v: number): number[] => [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
/** An SR of `ssrc` (no report blocks). */
const senderReport = (ssrc: number): Buffer => Buffer.from([0x80, 200, 0, 6, ...u32(ssrc), ...new Array<number>(20).fill(3)]);
/** A receiver's RR about `media` then a PLI for it, as one compound. */
const feedback = (reporter: number, media: number): Buffer => Buffer.from([
  0x81, 201, 0, 7, ...u32(reporter), ...u32(media), ...new Array<number>(20).fill(5),
  0x81, 206, 0, 2, ...u32(reporter), ...u32(media),
]);

test("one stream, three receivers: plain, own SSRC and payload type, own payload type; reports both ways under the right SSRC", async () => {
  const listen = await freePortPair();
  const [a, b, c] = [await Sink.open(0, { keep: true }), await Sink.open(0, { keep: true }), await Sink.open(0, { keep: true })];
  const config = (bPayloadType: number): ProxyConfigInput => ({
    segments: [{
      name: "tr", rtcpMux: true, listen: { address: LO, port: listen },
      destinations: [
        { address: LO, port: a.port },
        { address: LO, port: b.port, ssrc: B_SSRC, payloadType: bPayloadType },
        { address: LO, port: c.port, payloadType: 111 },
      ],
    }],
  });
  const { proxy } = await startProxy(config(100));
  const tx = await bindUdp();
  const upstream: Buffer[] = [];
  tx.on("message", (m: Buffer) => upstream.push(m));
  try {
    for (let i = 0; i < 20; i++) {
      const p = indexedRtp(i, 200, SSRC, 96);
      if (i === 5) p[1] = 0x80 | 96; // a marker
      tx.send(p, listen, LO);
    }
    await waitFor(() => a.received === 20 && b.received === 20 && c.received === 20, 5000, "20 packets at each receiver");
    const rtp = (s: Sink) => s.packets.map(({ bytes }) => ({ pt: bytes[1]! & 0x7f, marker: bytes[1]! >> 7, ssrc: bytes.readUInt32BE(8), seq: bytes.readUInt16BE(2), index: bytes.readUInt32BE(12) }));
    for (const [sink, pt, ssrc] of [[a, 96, SSRC], [b, 100, B_SSRC], [c, 111, SSRC]] as const) {
      const got = rtp(sink);
      assert.ok(got.every((x) => x.pt === pt && x.ssrc === ssrc), `${JSON.stringify(got[0])}: payload type ${pt}, SSRC ${ssrc.toString(16)}`);
      assert.equal(got.map((x) => x.index), Array.from({ length: 20 }, (_, i) => i), "every packet, in order, payload untouched");
      assert.equal(got.map((x) => x.seq), Array.from({ length: 20 }, (_, i) => i), "sequence numbers untouched");
      assert.is(got[5]!.marker, 1, "the marker bit survives the payload type");
    }
    tx.send(senderReport(SSRC), listen, LO);
    await waitFor(() => a.received === 21 && b.received === 21 && c.received === 21, 5000, "the sender report at each receiver");
    assert.is(a.packets[20]!.bytes.readUInt32BE(4), SSRC);
    assert.is(b.packets[20]!.bytes.readUInt32BE(4), B_SSRC, "the translated receiver hears the report under its SSRC");
    assert.is(c.packets[20]!.bytes.readUInt32BE(4), SSRC);
    assert.is(a.packets[20]!.bytes[1], 200, "RTCP keeps its packet type (no payload type rewrite on RTCP)");

    const egress = (await segmentStats(proxy, "tr")).ports.egress;
    b.socket.send(feedback(0x0b0b0b0b, B_SSRC), egress, LO);
    a.socket.send(feedback(0x0a0a0a0a, SSRC), egress, LO);
    await waitFor(() => upstream.length === 2, 5000, "both receivers' feedback at the sender");
    for (const m of upstream) {
      assert.is(m.readUInt32BE(8), SSRC, "report block about the sender's own SSRC");
      assert.is(m.readUInt32BE(32 + 8), SSRC, "PLI for the sender's own SSRC");
    }
    assert.equal(upstream.map((m) => m.readUInt32BE(4)).sort(), [0x0a0a0a0a, 0x0b0b0b0b], "reporters' own SSRCs kept");

    // a change of B's payload type applies to the next packet, and nobody loses one
    await proxy.apply(validateProxyConfig(config(101)));
    tx.send(indexedRtp(20, 200, SSRC, 96), listen, LO);
    await waitFor(() => a.received === 22 && b.received === 22 && c.received === 22, 5000, "the packet after the change");
    assert.is(b.packets[21]!.bytes[1]! & 0x7f, 101);
    assert.equal((await segmentStats(proxy, "tr")).drops, {});
  } finally {
    tx.close();
    for (const s of [a, b, c]) s.close();
    await proxy.close();
  }
});

test("config: a payload type that looks like RTCP, or an SSRC out of range, names the field", () => {
  const seg = (d: Record<string, unknown>) => ({ segments: [{ name: "x", listen: { address: LO, port: 5000 }, destinations: [{ address: LO, port: 6000, ...d }] }] });
  assert.throws(() => validateProxyConfig(seg({ payloadType: 72 })), /segments\[0\]\.destinations\[0\]\.payloadType: 72-76 look like RTCP/);
  assert.throws(() => validateProxyConfig(seg({ payloadType: 128 })), /segments\[0\]\.destinations\[0\]\.payloadType/);
  assert.throws(() => validateProxyConfig(seg({ ssrc: 2 ** 32 })), /segments\[0\]\.destinations\[0\]\.ssrc/);
  assert.throws(() => validateProxyConfig(seg({ ssrc: -1 })), /segments\[0\]\.destinations\[0\]\.ssrc/);
  const muxed = (payloadType: number) => ({ segments: [{ name: "x", rtcpMux: true, listen: { address: LO, port: 5000 }, destinations: [{ address: LO, port: 6000, payloadType }] }] });
  assert.throws(() => validateProxyConfig(muxed(77)), /segments\[0\]\.destinations\[0\]\.payloadType: 77 with rtcpMux: 64-95 read as RTCP/);
  validateProxyConfig(muxed(96));
  validateProxyConfig(seg({ payloadType: 77 })); // without rtcpMux, only 72-76 clash
});

test("through the control plane: a manifest's ssrc and payloadType reach the stored record, the listing and the proxy's config; elsewhere refused", () => {
  const text = `kind: Segment
metadata: { name: tr }
spec:
  proxy: node-1
  listen: { address: 127.0.0.1, port: 5004 }
  destinations:
    - { address: 127.0.0.1, port: 6000 }
    - { address: 127.0.0.1, port: 6002, ssrc: 0xb0b0b0b0, payloadType: 100 }
`;
  const segment = toSegment(parseManifests(text, "tr.yaml").manifests[0]!);
  assert.equal(segment.destinations[1], { address: "127.0.0.1", port: 6002, rtcpPort: 0, ssrc: B_SSRC, payloadType: 100 });
  assert.equal(toSegment(parseManifests(JSON.stringify(toManifest({ ...segment, revision: 1 })), "listing").manifests[0]!), segment, "the listing applies back unchanged");
  const stored = JSON.parse((planApply([segment], new DesiredState()).ops[0] as { value: string }).value) as Segment;
  assert.equal(stored.destinations, segment.destinations);
  assert.not.ok("ssrc" in stored.destinations[0]!, "an untranslated destination is stored as before");
  const { config } = planSnapshot({ version: 1, segments: [{ ...stored, revision: 1 }], filters: [] }, "/tmp", 1);
  assert.equal(validateProxyConfig(config).segments[0]!.destinations[1], { address: "127.0.0.1", port: 6002, ssrc: B_SSRC, payloadType: 100 });
  try {
    planApply([{ ...segment, source: { address: "127.0.0.1", port: 0, rtcpPort: 0, ssrc: 5 } }], new DesiredState());
    assert.unreachable("an ssrc on the source was accepted");
  } catch (err) {
    assert.match((err as Error).message, /segments\[0\]\.source: only a segment destination takes ssrc and payload_type/);
  }
});

test("a segment with a second SSRC (an RFC 4588 retransmission stream): the translated destination gets the media under its SSRC and the other stream as it is; a restarted sender is followed", async () => {
  const RTX = 0x5555aaaa, RESTARTED = 0x77777777;
  const listen = await freePortPair();
  const b = await Sink.open(0, { keep: true });
  const { proxy } = await startProxy({
    segments: [{ name: "tr", listen: { address: LO, port: listen }, source: { strict: false }, destinations: [{ address: LO, port: b.port, ssrc: B_SSRC, payloadType: 100 }] }],
  });
  const tx = await bindUdp();
  try {
    for (let i = 0; i < 10; i++) {
      tx.send(indexedRtp(i, 100, SSRC, 96), listen, LO);
      tx.send(indexedRtp(i + 5000, 200, RTX, 97), listen, LO);
    }
    await waitFor(() => b.received === 20, 5000, "20 packets at the receiver");
    const seen = (from: number) => b.packets.slice(from).map(({ bytes }) => `${bytes.readUInt32BE(8).toString(16)}/${bytes[1]! & 0x7f}/${bytes.readUInt32BE(12)}`);
    const got = seen(0);
    assert.equal(got.filter((x) => x.startsWith("b0b0b0b0/100/")).map((x) => Number(x.split("/")[2])), Array.from({ length: 10 }, (_, i) => i), "the media, translated");
    assert.equal(got.filter((x) => x.startsWith("5555aaaa/97/")).map((x) => Number(x.split("/")[2])), Array.from({ length: 10 }, (_, i) => i + 5000), "the retransmission stream, as it is");
    // the sender restarts under a new SSRC: after half a second of silence the new one is the media
    await new Promise((r) => setTimeout(r, 700));
    for (let i = 0; i < 5; i++) tx.send(indexedRtp(100 + i, 100, RESTARTED, 96), listen, LO);
    await waitFor(() => b.received === 25, 5000, "the restarted sender's packets");
    assert.ok(seen(20).every((x) => x.startsWith("b0b0b0b0/100/")), `the restarted sender's media translated: ${seen(20)}`);
  } finally {
    tx.close();
    b.close();
    await proxy.close();
  }
});

test("a translated destination gets a datagram over 2048 bytes, as an untranslated one does", async () => {
  const listen = await freePortPair();
  const [a, b] = [await Sink.open(0, { keep: true }), await Sink.open(0, { keep: true })];
  const { proxy } = await startProxy({
    segments: [{ name: "big", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: a.port }, { address: LO, port: b.port, ssrc: B_SSRC }] }],
  });
  const tx = await bindUdp();
  try {
    for (let i = 0; i < 5; i++) tx.send(indexedRtp(i, 3000, SSRC, 96), listen, LO);
    await waitFor(() => a.received === 5 && b.received === 5, 5000, "5 jumbo packets at each receiver");
    assert.ok(b.packets.every(({ bytes }) => bytes.length === 3000 && bytes.readUInt32BE(8) === B_SSRC));
    assert.ok(a.packets.every(({ bytes }) => bytes.readUInt32BE(8) === SSRC), "the plain receiver's copies untouched");
  } finally {
    tx.close();
    a.close();
    b.close();
    await proxy.close();
  }
});

test("a compound RTCP of 65 packets is dropped, not rewritten, both ways (host_rtcp_too_many_packets); 64 go through; the plain receiver gets it as it is", async () => {
  const listen = await freePortPair();
  const [a, b] = [await Sink.open(0, { keep: true }), await Sink.open(0, { keep: true })];
  const { proxy } = await startProxy({
    segments: [{ name: "many", rtcpMux: true, listen: { address: LO, port: listen }, destinations: [{ address: LO, port: a.port }, { address: LO, port: b.port, ssrc: B_SSRC }] }],
  });
  const tx = await bindUdp();
  const upstream: Buffer[] = [];
  tx.on("message", (m: Buffer) => upstream.push(m));
  /** An SR of the sender, then `n - 1` empty RRs of it: n packets in one compound. */
  const compound = (reporter: number, n: number): Buffer => Buffer.concat([
    n === 0 ? Buffer.alloc(0) : senderReport(reporter),
    ...Array.from({ length: n - 1 }, () => Buffer.from([0x80, 201, 0, 1, ...u32(reporter)])),
  ]);
  try {
    tx.send(indexedRtp(0, 200, SSRC, 96), listen, LO); // the media source translation applies to
    await waitFor(() => a.received === 1 && b.received === 1, 5000, "the first packet at both");
    tx.send(compound(SSRC, 64), listen, LO);
    tx.send(compound(SSRC, 65), listen, LO);
    await waitFor(() => a.received === 3, 5000, "both compounds at the plain receiver");
    await waitFor(async () => ((await segmentStats(proxy, "many")).drops.host_rtcp_too_many_packets ?? 0) === 1, 5000, "the translated copy of 65 dropped");
    assert.is(b.received, 2, "the translated receiver got the 64, not the 65");
    const translated = b.packets[1]!.bytes;
    assert.is(translated.length, compound(SSRC, 64).length);
    for (let p = 0; p < translated.length; p += (translated.readUInt16BE(p + 2) + 1) * 4) assert.is(translated.readUInt32BE(p + 4), B_SSRC, "every packet of the 64 under its SSRC");
    assert.is(a.packets[2]!.bytes.readUInt32BE(4), SSRC, "the plain receiver's 65 as they were");

    // up from the translated receiver: 64 rewritten to the sender's SSRC, 65 dropped
    const egress = (await segmentStats(proxy, "many")).ports.egress;
    b.socket.send(compound(B_SSRC, 64), egress, LO);
    b.socket.send(compound(B_SSRC, 65), egress, LO);
    await waitFor(async () => ((await segmentStats(proxy, "many")).drops.host_rtcp_too_many_packets ?? 0) === 2, 5000, "the 65 from the receiver dropped");
    await waitFor(() => upstream.length === 1, 5000, "the 64 at the sender");
    assert.is(upstream[0]!.readUInt32BE(4), SSRC, "under the sender's own SSRC");
  } finally {
    tx.close();
    a.close();
    b.close();
    await proxy.close();
  }
});

test("a translated receiver's TMMBR and REMB name the sender's own SSRC at the sender (RFC 5104 4.2.1.2, REMB's SSRC list); the plain receiver's go as they are", async () => {
  const listen = await freePortPair();
  const [a, b] = [await Sink.open(0, { keep: true }), await Sink.open(0, { keep: true })];
  const { proxy } = await startProxy({
    segments: [{ name: "tmmbr", rtcpMux: true, listen: { address: LO, port: listen }, destinations: [{ address: LO, port: a.port }, { address: LO, port: b.port, ssrc: B_SSRC }] }],
  });
  const tx = await bindUdp();
  const upstream: Buffer[] = [];
  tx.on("message", (m: Buffer) => upstream.push(m));
  // RR, then TMMBR (RTPFB FMT 3: media source 0, FCI = the media sender's SSRC and MxTBR 1 Mbit/s, overhead 40),
  // then REMB (PSFB FMT 15: media source 0, 'REMB', 2 SSRCs, the stream's and another, 1 Mbit/s)
  const feedbackOf = (reporter: number, media: number): Buffer => Buffer.from([
    0x80, 201, 0, 1, ...u32(reporter),
    0x83, 205, 0, 4, ...u32(reporter), ...u32(0), ...u32(media), ...u32((3 << 26) | (125000 << 9) | 40),
    0x8f, 206, 0, 6, ...u32(reporter), ...u32(0), 0x52, 0x45, 0x4d, 0x42, 2, (3 << 2) | (125000 >> 16), (125000 >> 8) & 0xff, 125000 & 0xff, ...u32(media), ...u32(0x0c0c0c0c),
  ]);
  try {
    tx.send(indexedRtp(0, 200, SSRC, 96), listen, LO); // the media source translation applies to
    await waitFor(() => a.received === 1 && b.received === 1, 5000, "the first packet at both");
    const egress = (await segmentStats(proxy, "tmmbr")).ports.egress;
    b.socket.send(feedbackOf(0x0b0b0b0b, B_SSRC), egress, LO);
    await waitFor(() => upstream.length === 1, 5000, "the translated receiver's feedback at the sender");
    a.socket.send(feedbackOf(0x0a0a0a0a, SSRC), egress, LO);
    await waitFor(() => upstream.length === 2, 5000, "the plain receiver's feedback at the sender");
    for (const [m, reporter] of [[upstream[0]!, 0x0b0b0b0b], [upstream[1]!, 0x0a0a0a0a]] as const) {
      const who = reporter.toString(16);
      assert.is(m.readUInt32BE(4), reporter, `${who}: the reporter's own SSRC kept`);
      assert.is(m.readUInt32BE(8 + 12), SSRC, `${who}: TMMBR's FCI names the sender's SSRC`);
      assert.is(m.readUInt32BE(8 + 20 + 20), SSRC, `${who}: REMB's first listed SSRC is the sender's`);
      assert.is(m.readUInt32BE(8 + 20 + 24), 0x0c0c0c0c, `${who}: REMB's other SSRC as it was`);
      assert.is(m.readUInt32BE(8 + 8), 0, `${who}: TMMBR's media source stays 0`);
    }
    assert.equal((await segmentStats(proxy, "tmmbr")).drops, {});
  } finally {
    tx.close();
    a.close();
    b.close();
    await proxy.close();
  }
});

test("srtp protect with a translated destination is refused, at a start and at a reload (the rewrite after the chain would break every tag); unprotect translates", async () => {
  const KEY = `inline:${Buffer.from(pseudoRandomBytes(30, 7)).toString("base64")}`;
  const listen = await freePortPair();
  const [a, b] = [await Sink.open(0, { keep: true }), await Sink.open(0, { keep: true })];
  const [aPort, bPort] = [a.port, b.port];
  const config = (direction: string, bSsrc?: number): ProxyConfigInput => ({
    filters: { srtp: { path: filterWasm("srtp") } },
    segments: [{
      name: "sec", listen: { address: LO, port: listen },
      destinations: [{ address: LO, port: aPort }, { address: LO, port: bPort, ...(bSsrc === undefined ? {} : { ssrc: bSsrc }) }],
      chain: [{ filter: "srtp", config: { direction, key: KEY } }],
    }],
  });
  const refusal = /direction.*protect in a segment with a destination of its own 'ssrc' or 'payloadType'/;
  const h = await FilterHarness.load(filterWasm("srtp", true), { name: "srtp" });
  const tx = await bindUdp();
  try {
    const failed = await startProxy(config("protect", B_SSRC)).then(async ({ proxy }) => {
      await proxy.close();
      return null;
    }, (err: unknown) => err as Error);
    assert.ok(failed !== null && refusal.test(failed.message), `the start is refused, naming direction: ${failed?.message}`);

    const { proxy } = await startProxy(config("protect"));
    try {
      for (let i = 0; i < 10; i++) tx.send(indexedRtp(i, 200, SSRC, 96), listen, LO);
      await waitFor(() => a.received === 10 && b.received === 10, 5000, "10 SRTP packets at each receiver");
      const err = await proxy.apply(validateProxyConfig(config("protect", B_SSRC))).then(() => null, (e: unknown) => e as Error);
      assert.ok(err !== null && refusal.test(err.message), `the reload is refused, naming direction: ${err?.message}`);
      for (let i = 10; i < 20; i++) tx.send(indexedRtp(i, 200, SSRC, 96), listen, LO);
      await waitFor(() => a.received === 20 && b.received === 20, 5000, "10 more at each after the refused reload");
      for (const sink of [a, b]) {
        const rx = h.createContext({ direction: "unprotect", key: KEY }); // a receiver's own replay list
        const ok = sink.packets.filter(({ bytes }) => h.run({ ctx: rx, bytes }).verdict === "pass").length;
        assert.is(ok, 20, "every packet authenticates: the running config went on untranslated");
      }
    } finally {
      await proxy.close();
    }
  } finally {
    tx.close();
    a.close();
    b.close();
  }
  // unprotect sends plain RTP on: a translated destination is fine there
  const c = await Sink.open(0, { keep: true });
  const { proxy } = await startProxy({
    filters: { srtp: { path: filterWasm("srtp") } },
    segments: [{ name: "plain", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: c.port, ssrc: B_SSRC }], chain: [{ filter: "srtp", config: { direction: "unprotect", key: KEY } }] }],
  });
  const tx2 = await bindUdp();
  try {
    const protect = h.createContext({ direction: "protect", key: KEY });
    for (let i = 0; i < 5; i++) tx2.send(h.run({ ctx: protect, bytes: indexedRtp(i, 200, SSRC, 96) }).bytes, listen, LO);
    await waitFor(() => c.received === 5, 5000, "5 unprotected packets at the translated receiver");
    assert.ok(c.packets.every(({ bytes }) => bytes.readUInt32BE(8) === B_SSRC && bytes.length === 200), "plain, under its SSRC");
  } finally {
    tx2.close();
    c.close();
    await proxy.close();
  }
});

test.run();
