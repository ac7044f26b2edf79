// The congestion filter's bytes, read by an independent decoder (test/lib/rtcp-cc.ts, written from
// the specs) and by tshark: the transport-wide sequence number the sender stamps, the feedback
// the receiver builds, the TMMBR and REMB the sender sends to the origin; and the receiver taking
// the extension off again so that a packet leaves as the origin sent it. docs/congestion-wire.md
// describes every layout.
import * as assert from "uvu/assert";
import { PacketFlag, buildRtp, type OutputPacket } from "../sdk/harness/index.js";
import { SSRC, loadCongestion } from "../filters/congestion/test/cc-lib.js";
import { drive } from "../filters/congestion/test/twcc-drive.js";
import { peerTest } from "./lib/peers.js";
import {
  TwccRecorder, decodeCcCompound, decodeTwcc, emptyReceiverReport, encodeChunk, encodeTmmb, encodeTwcc, extensionElements, rtcpPieces, transportSeqOf, withTransportSeq,
  type TwccFeedback,
} from "./lib/rtcp-cc.js";
import { receiverReport } from "./lib/rtcp-build.js";
import { rng } from "./lib/random.js";
import { suite } from "./lib/suite.js";
import { tshark, tsharkDecode, tsharkRtcp } from "./lib/tshark-rtcp.js";

const test = suite("congestion filter on the wire", { timeoutMs: 120_000 });

const ID = 5;
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const metric = (h: Awaited<ReturnType<typeof loadCongestion>>, name: string, ctx: number): number => (h.metric(name, ctx) as number | undefined) ?? NaN;

/** `rtp` (without an extension) with a two-byte-header block (RFC 8285 4.3) holding element ID 7, one byte. */
function withTwoByteBlock(rtp: Uint8Array, value: number): Uint8Array {
  const out = new Uint8Array(rtp.length + 8);
  out.set(rtp.subarray(0, 12));
  out[0] = out[0]! | 0x10;
  out.set([0x10, 0x00, 0x00, 0x01, 7, 1, value, 0], 12);
  out.set(rtp.subarray(12), 20);
  return out;
}

/** Media of five shapes, in turn: plain; two CSRCs; a one-byte extension already (ID 1); RTP padding; a two-byte extension (ID 7). */
function shaped(k: number): Uint8Array {
  const base = { seq: 100 + k, timestamp: 9000 * Math.floor(k / 5), ssrc: SSRC, payloadSize: 200, payloadByte: k };
  switch (k % 5) {
    case 0: return buildRtp(base);
    case 1: return buildRtp({ ...base, csrcs: [0xc0, 0xc1] });
    case 2: return buildRtp({ ...base, extensions: [[1, new Uint8Array([0x80 | k])]] });
    case 3: return buildRtp({ ...base, padding: 4 });
    default: return withTwoByteBlock(buildRtp(base), k);
  }
}

/** The RTP payload (after header, CSRCs, extension; padding included). */
function payloadOf(b: Uint8Array): Uint8Array {
  let at = 12 + 4 * (b[0]! & 0x0f);
  if (b[0]! & 0x10) at += 4 + ((b[at + 2]! << 8) | b[at + 3]!) * 4;
  return b.subarray(at);
}

test("the sender stamps consecutive transport-wide numbers as RFC 8285 elements (one-byte, or two-byte in a two-byte block); a plain packet's bytes are exactly the spec's 8-byte form", async () => {
  const h = await loadCongestion();
  const ctx = h.createContext({ mode: "sender", extensionId: ID });
  const inputs = Array.from({ length: 40 }, (_, k) => shaped(k));
  const out: Uint8Array[] = [];
  for (const bytes of inputs) {
    const r = h.run({ ctx, bytes, leg: 0 });
    assert.is(r.verdict, "pass", "slow media leaves at once (the pacer's bucket has room)");
    out.push(r.bytes);
    h.advanceTime(10_000); // 200-byte packets every 10 ms: 160 kbit/s, far below the start rate
  }
  out.forEach((b, k) => {
    const input = inputs[k]!;
    assert.is(transportSeqOf(b, ID), k, `packet ${k} carries number ${k}`);
    const others = extensionElements(b).filter((e) => e.id !== ID).map((e) => [e.id, hex(e.data)]);
    const before = input[0]! & 0x10 ? extensionElements(input).map((e) => [e.id, hex(e.data)]) : [];
    assert.equal(others, before, `packet ${k}: the other elements are kept`);
    assert.is(hex(b.subarray(1, 12)), hex(input.subarray(1, 12)), `packet ${k}: header fields unchanged`);
    assert.is(b[0]!, input[0]! | 0x10, `packet ${k}: only the X bit set in the first byte`);
    assert.is(hex(b.subarray(12, 12 + 4 * (input[0]! & 0x0f))), hex(input.subarray(12, 12 + 4 * (input[0]! & 0x0f))), `packet ${k}: CSRCs kept`);
    assert.is(hex(payloadOf(b)), hex(payloadOf(input)), `packet ${k}: payload and padding untouched`);
    if (!(input[0]! & 0x10)) assert.is(hex(b), hex(withTransportSeq(input, ID, k)), `packet ${k}: 8 bytes more, BE DE 00 01 ${(ID << 4) | 1} seq 00`);
    else assert.is(b.length, input.length + 4, `packet ${k}: one word more in its extension`);
  });
});

peerTest(test, tshark, "tshark reads the stamped packets: no warning, the element's ID and the number, the payload intact", async () => {
  const h = await loadCongestion();
  const ctx = h.createContext({ mode: "sender", extensionId: ID });
  const inputs = Array.from({ length: 10 }, (_, k) => shaped(k));
  const out = inputs.map((bytes) => {
    const r = h.run({ ctx, bytes, leg: 0 });
    h.advanceTime(10_000);
    return r.bytes;
  });
  const d = await tsharkDecode(out, "rtp");
  assert.equal(d.problems, []);
  d.frames.forEach((f, k) => {
    const rtp = f[0]!;
    const ids = rtp.all("rtp.ext.rfc5285.id");
    const data = rtp.all("rtp.ext.rfc5285.data");
    assert.is(rtp.one("rtp.ext.profile"), k % 5 === 4 ? "0x1000" : "0xbede", `frame ${k}`);
    assert.is(data[ids.indexOf(String(ID))], `00:${k.toString(16).padStart(2, "0")}`, `frame ${k}: element ${ID} holds ${k}`);
    assert.is(rtp.one("rtp.payload").replace(/:/g, ""), hex(payloadOf(inputs[k]!).subarray(0, 200)), `frame ${k}: payload`);
  });
});

/**
 * A packet whose header extension holds `elements` (none of them ID `ID` unless given), in the
 * one-byte or two-byte form, with zero padding bytes scattered between them; payload 0xab.
 */
function withBlock(seq: number, twoByte: boolean, appBits: number, elements: readonly [number, number[]][], r: () => number): Uint8Array {
  const body: number[] = [];
  for (const [id, data] of elements) {
    while (r() < 0.3) body.push(0);
    body.push(...(twoByte ? [id, data.length] : [(id << 4) | (data.length - 1)]), ...data);
  }
  while (body.length % 4) body.push(0);
  const rtp = buildRtp({ seq, ssrc: SSRC, payloadSize: 60, payloadByte: 0xab });
  const out = new Uint8Array(rtp.length + 4 + body.length);
  out.set(rtp.subarray(0, 12));
  out[0] = out[0]! | 0x10;
  out.set([twoByte ? 0x10 : 0xbe, twoByte ? appBits : 0xde, (body.length / 4) >> 8, (body.length / 4) & 0xff, ...body], 12);
  out.set(rtp.subarray(12), 16 + body.length);
  return out;
}

test("seeded fuzz, 3000 well-formed extension blocks (one-byte and two-byte): the sender adds exactly its element, the receiver removes exactly it, nothing else moves", async () => {
  const h = await loadCongestion();
  const sender = h.createContext({ mode: "sender", extensionId: ID, startBps: 50_000_000, maxBps: 100_000_000 });
  const receiver = h.createContext({ mode: "receiver", extensionId: ID });
  const r = rng(0x8285);
  const int = (n: number): number => Math.floor(r() * n);
  const list = (b: Uint8Array) => extensionElements(b).map((e) => [e.id, hex(e.data)]);
  for (let n = 0; n < 3000; n++) {
    const twoByte = r() < 0.5;
    const ids = twoByte ? [...Array(255).keys()].map((k) => k + 1) : [...Array(14).keys()].map((k) => k + 1);
    const others = Array.from({ length: int(5) }, (): [number, number[]] => {
      let id = ID;
      while (id === ID) id = ids[int(ids.length)]!;
      return [id, Array.from({ length: twoByte ? int(21) : 1 + int(16) }, () => int(256))];
    });
    const origin = withBlock(n, twoByte, int(16), others, r);
    const out = h.run({ ctx: sender, bytes: origin, leg: 0 });
    h.advanceTime(1000);
    const what = `case ${n}: ${hex(origin.subarray(12, origin.length - 60))} -> ${hex(out.bytes.subarray(12, out.bytes.length - 60))}`;
    assert.is(out.verdict, "pass", what);
    assert.equal(list(out.bytes), [...list(origin), [ID, (n & 0xffff).toString(16).padStart(4, "0")]], what);
    assert.is(hex(out.bytes.subarray(out.bytes.length - 60)), "ab".repeat(60), what);
    // the receiver, given our element anywhere among the others
    const at = int(others.length + 1);
    const stamped = withBlock(n, twoByte, int(16), [...others.slice(0, at), [ID, [n >> 8, n & 0xff]], ...others.slice(at)], r);
    const back = h.runBatch([{ ctx: receiver, bytes: stamped, leg: 0 }]).packets[0]!;
    const where = `case ${n}: ${hex(stamped.subarray(12, stamped.length - 60))} -> ${hex(back.bytes.subarray(12, back.bytes.length - 60))}`;
    assert.equal(list(back.bytes), list(origin), where);
    assert.is(hex(back.bytes.subarray(back.bytes.length - 60)), "ab".repeat(60), where);
  }
});

test("an origin that already uses extensionId for an element of its own: the number still reaches the receiver, or stamp_failed says it did not", async () => {
  const h = await loadCongestion();
  const sender = h.createContext({ mode: "sender", extensionId: ID });
  const receiver = h.createContext({ mode: "receiver", extensionId: ID });
  const origin = buildRtp({ seq: 1, ssrc: SSRC, payloadSize: 8, extensions: [[ID, new Uint8Array([0x80])]] });
  const out = h.run({ ctx: sender, bytes: origin, leg: 0 });
  h.run({ ctx: receiver, bytes: out.bytes, leg: 0 });
  const reported = h.advanceTime(200_000).filter((o) => o.ctx === receiver).length;
  const failed = metric(h, "stamp_failed", sender);
  assert.ok(reported > 0 || failed > 0, `the origin's ${hex(origin.subarray(12, 20))} left the sender as ${hex(out.bytes.subarray(12, 24))}: no feedback came of it and stamp_failed is ${failed}`);
});

/** Arrivals fed to a receiver context: which of 0..39 arrive, when (us after the start), in which order. */
function hopArrivals(): { seq: number; atUs: number }[] {
  const lost = new Set([7, 8, 20]);
  const list = [];
  for (let s = 0; s < 40; s++) {
    if (lost.has(s)) continue;
    let at = s * 2000 + (s % 3) * 130; // not multiples of 250 us
    if (s >= 35) at += 100_000; // a 100 ms gap
    list.push({ seq: s, atUs: at });
  }
  // 30 and 31 arrive swapped: 31 first (a negative delta for 30)
  const i30 = list.findIndex((x) => x.seq === 30);
  [list[i30], list[i30 + 1]] = [{ seq: 31, atUs: list[i30]!.atUs }, { seq: 30, atUs: list[i30 + 1]!.atUs }];
  return list;
}

/** A receiver context fed the stamped (by this codec) plain packets of hopArrivals(); what it passes and the feedback it sends. */
async function receiverRun(config: Record<string, unknown> = {}) {
  const h = await loadCongestion();
  const ctx = h.createContext({ mode: "receiver", extensionId: ID, ...config });
  const start = h.nowUs;
  const originals = new Map<number, Uint8Array>();
  const passed = new Map<number, Uint8Array>();
  const outputs: OutputPacket[] = [];
  for (const a of hopArrivals()) {
    outputs.push(...h.advanceTime(start + a.atUs - h.nowUs));
    const original = shaped(a.seq);
    originals.set(a.seq, original);
    const r = h.runBatch([{ ctx, bytes: withTransportSeq(original, ID, (65_520 + a.seq) & 0xffff), leg: 0, arrivalUs: start + a.atUs }]);
    assert.is(r.packets[0]!.verdict, "pass");
    passed.set(a.seq, r.packets[0]!.bytes);
    outputs.push(...r.outputs);
  }
  outputs.push(...h.advanceTime(200_000));
  return { h, ctx, start, originals, passed, outputs };
}

test("the receiver's feedback, decoded: an empty RR then FMT 15; every number once, lost ones as lost, arrival spacing to 250 us, counts consecutive", async () => {
  const { h, ctx, start, outputs } = await receiverRun();
  assert.ok(outputs.length >= 2, `feedback went out (${outputs.length} compounds)`);
  const feedback: TwccFeedback[] = [];
  for (const o of outputs) {
    assert.is(o.flags & (PacketFlag.Rtcp | PacketFlag.Upstream), PacketFlag.Rtcp | PacketFlag.Upstream, "RTCP, upstream toward the sending proxy");
    const pieces = decodeCcCompound(o.bytes);
    assert.equal(pieces.map((p) => p.type), ["RR", "TWCC"], `compound ${hex(o.bytes)}`);
    const rr = pieces[0]!;
    assert.ok(rr.type === "RR" && rr.blocks.length === 0, "an empty receiver report");
    const second = pieces[1]!;
    if (second.type !== "TWCC") throw new Error("no feedback");
    const fb = second.twcc;
    assert.is(fb.senderSsrc, rr.type === "RR" ? rr.ssrc : -1, "the RR and the feedback share the reporter SSRC");
    assert.is(fb.mediaSsrc, SSRC, "media source: the stream's SSRC");
    feedback.push(fb);
  }
  assert.is(metric(h, "feedback_sent", ctx), outputs.length);
  feedback.forEach((f, i) => i > 0 && assert.is(f.fbCount, (feedback[0]!.fbCount + i) & 0xff, "feedback counts go up by one"));
  const status = new Map<number, number | null>();
  const arrivals = new Map<number, number>();
  for (const f of feedback) {
    for (const r of f.reports) {
      const seq = (r.seq - 65_520) & 0xffff; // the numbers wrapped through 65535
      assert.not.ok(status.has(seq) && status.get(seq) !== null, `number ${seq} reported received twice`);
      if (!status.has(seq) || r.deltaTicks !== null) status.set(seq, r.deltaTicks);
    }
    for (const [seq, at] of f.arrivalsUs) arrivals.set((seq - 65_520) & 0xffff, at);
  }
  assert.equal([...status.keys()].sort((a, b) => a - b), [...Array(40).keys()], "every number 0..39 reported");
  assert.equal([...status].filter(([, d]) => d === null).map(([s]) => s).sort((a, b) => a - b), [7, 8, 20], "lost ones as not received");
  const truth = new Map(hopArrivals().map((a) => [a.seq, start + a.atUs]));
  const offset = arrivals.get(0)! - truth.get(0)!;
  for (const [seq, at] of truth) {
    assert.ok(Math.abs(arrivals.get(seq)! - offset - at) <= 250, `number ${seq}: arrival ${arrivals.get(seq)! - offset} for ${at} (250 us resolution)`);
  }
  const negative = feedback.flatMap((f) => f.reports).filter((r) => r.deltaTicks !== null && r.deltaTicks < 0);
  assert.is(negative.length, 1, "the reordered pair: one negative (large) delta");
});

peerTest(test, tshark, "tshark reads the receiver's feedback as the decoder does, with no warning", async () => {
  const { outputs } = await receiverRun();
  const d = await tsharkRtcp(outputs.map((o) => o.bytes));
  assert.equal(d.problems, []);
  d.frames.forEach((f, i) => {
    const mine = decodeTwcc(rtcpPieces(outputs[i]!.bytes)[1]!.bytes);
    assert.is(f[0]!.one("rtcp.pt"), "201");
    const t = f[1]!;
    assert.equal(["baseseq", "statuscount", "reftime", "pktcount"].map((x) => Number(t.one(`rtcp.rtpfb.transportcc.${x}`))), [mine.baseSeq, mine.statusCount, mine.referenceTime, mine.fbCount]);
    assert.equal(t.all("rtcp.rtpfb.transportcc.pktchunk").map(Number), mine.chunks.map(encodeChunk));
    assert.is(t.all("rtcp.rtpfb.transportcc.recv_delta").length, mine.reports.filter((r) => r.deltaTicks !== null).length);
  });
});

test("the receiver's numbers jump by thousands (an outage, a sender's restart): every packet that arrived is still reported received, in feedback the decoder reads", async () => {
  const h = await loadCongestion();
  const ctx = h.createContext({ mode: "receiver", extensionId: ID });
  const arrived = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 6000, 6001, 6002, 6003, 6004, 20_000, 20_001];
  const outputs: OutputPacket[] = [];
  for (const n of arrived) {
    outputs.push(...h.runBatch([{ ctx, bytes: withTransportSeq(shaped(0), ID, n & 0xffff), leg: 0 }]).outputs);
    outputs.push(...h.advanceTime(1000)); // all within one feedback interval
  }
  outputs.push(...h.advanceTime(200_000));
  const feedback = outputs.map((o) => decodeTwcc(rtcpPieces(o.bytes)[1]!.bytes));
  for (const f of feedback) assert.ok(f.statusCount <= 4096, `at most 4096 statuses a packet (the sender refuses more): ${f.statusCount}`);
  const reported = feedback.flatMap((f) => f.reports.filter((r) => r.deltaTicks !== null).map((r) => r.seq));
  const summary = feedback.map((f) => `base ${f.baseSeq} count ${f.statusCount}`).join("; ");
  assert.equal(reported.sort((a, b) => a - b), arrived, `reported received (${summary})`);
});

test("the receiver strips the extension: a packet the origin sent without one leaves byte for byte as it came; in a block it shares, the other elements stay (ours becomes padding)", async () => {
  const { originals, passed } = await receiverRun();
  for (const [seq, out] of passed) {
    const original = originals.get(seq)!;
    assert.is(transportSeqOf(out, ID), undefined, `number ${seq}: no element ${ID} left`);
    if (!(original[0]! & 0x10)) {
      assert.is(hex(out), hex(original), `packet ${seq} leaves as the origin sent it`);
    } else {
      assert.equal(extensionElements(out).map((e) => [e.id, hex(e.data)]), extensionElements(original).map((e) => [e.id, hex(e.data)]), `packet ${seq}: its own element kept`);
      assert.is(hex(payloadOf(out)), hex(payloadOf(original)), `packet ${seq}: payload`);
    }
  }
});

test("stripExtension false: the packet goes on with the number in it", async () => {
  const { passed } = await receiverRun({ stripExtension: false });
  for (const [seq, out] of passed) assert.is(transportSeqOf(out, ID), (65_520 + seq) & 0xffff);
});

/** A sender whose hop queues up (one-way delay growing 1 ms per packet after 1 s): the target falls and the origin is told. */
async function congestedSender() {
  const h = await loadCongestion();
  const ctx = h.createContext({ mode: "sender", extensionId: ID, startBps: 2_000_000 });
  const recorder = new TwccRecorder(0xfeed0001, SSRC);
  const run = drive(h, ctx, recorder, { packets: 1200, intervalUs: 5000, size: 1000, delayUs: (k) => (k < 200 ? 20_000 : 20_000 + (k - 200) * 1000) });
  return { h, ctx, run };
}

test("TMMBR and REMB to the origin, decoded: behind an empty RR, media source 0, the stream's SSRC, overhead 40, the target's rate", async () => {
  const { h, ctx, run } = await congestedSender();
  assert.ok(metric(h, "overuse_signals", ctx) > 0, "the growing delay was seen as over-use");
  assert.ok(metric(h, "feedback_packets", ctx) > 10, "feedback used");
  assert.is(metric(h, "feedback_rejected", ctx), 0, "none refused");
  const signals = run.upstream.map((u) => ({ pieces: decodeCcCompound(u.packet.bytes), targetBps: u.targetBps, hex: hex(u.packet.bytes) }));
  assert.ok(signals.length >= 1, "signals went to the origin");
  assert.ok(metric(h, "tmmbr_sent", ctx) >= 1 && metric(h, "remb_sent", ctx) >= 1);
  for (const s of signals) {
    assert.is(s.pieces[0]!.type, "RR", `starts with a report: ${s.hex}`);
    const tmmbr = s.pieces.find((p) => p.type === "TMMBR");
    const remb = s.pieces.find((p) => p.type === "REMB");
    if (tmmbr?.type === "TMMBR") {
      assert.equal(tmmbr.tmmb.entries.map((e) => [e.ssrc, e.overhead]), [[SSRC, 40]], s.hex);
      const bps = tmmbr.tmmb.entries[0]!.bps;
      assert.ok(bps <= s.targetBps && bps > s.targetBps * (1 - 2 ** -16), `TMMBR ${bps} for a target of ${s.targetBps} (${s.hex})`);
    }
    if (remb?.type === "REMB") {
      assert.equal(remb.remb.ssrcs, [SSRC], s.hex);
      assert.ok(remb.remb.bps <= s.targetBps && remb.remb.bps > s.targetBps * (1 - 2 ** -17), `REMB ${remb.remb.bps} for a target of ${s.targetBps} (${s.hex})`);
    }
  }
  const last = signals.at(-1)!;
  assert.ok(last.targetBps < 2_000_000 * 0.95, `the last signal asks for less than the start (${last.targetBps})`);
});

peerTest(test, tshark, "tshark reads the signals to the origin as the decoder does, with no warning", async () => {
  const { run } = await congestedSender();
  const d = await tsharkRtcp(run.upstream.map((u) => u.packet.bytes));
  assert.equal(d.problems, []);
  d.frames.forEach((f, i) => {
    const pieces = decodeCcCompound(run.upstream[i]!.packet.bytes);
    pieces.forEach((p, k) => {
      const t = f[k]!;
      if (p.type === "TMMBR") {
        const e = p.tmmb.entries[0]!;
        assert.equal(["exp", "mantissa", "measuredoverhead"].map((x) => Number(t.one(`rtcp.rtpfb.tmmbr.fci.${x}`))), [e.exp, e.mantissa, e.overhead]);
      }
      if (p.type === "REMB") {
        assert.equal(["fci.br_exp", "fci.br_mantissa"].map((x) => Number(t.one(`rtcp.psfb.remb.${x}`))), [p.remb.exp, p.remb.mantissa]);
        assert.is(t.one("rtcp.psfb.remb.identifier"), "REMB");
      }
    });
  });
});

test("feedback alone behind an empty RR is consumed; in a compound with a report block it is read and the compound goes on whole", async () => {
  const h = await loadCongestion();
  const ctx = h.createContext({ mode: "sender", extensionId: ID });
  for (let k = 0; k < 10; k++) {
    h.run({ ctx, bytes: shaped(5 * k), leg: 0 });
    h.advanceTime(10_000);
  }
  const fb = (count: number) => encodeTwcc({ senderSsrc: 0xfeed0001, mediaSsrc: SSRC, baseSeq: 0, referenceTime: 100, fbCount: count, reports: Array(10).fill(4) });
  const alone = Buffer.concat([emptyReceiverReport(0xfeed0001), fb(0)]);
  assert.is(h.run({ ctx, bytes: alone, flags: PacketFlag.Rtcp | PacketFlag.Upstream }).verdict, "hold", "consumed");
  const withBlock = Buffer.concat([receiverReport(0xfeed0001, SSRC, 0, 0, 109, 0, 0, 0), fb(1)]);
  const r = h.run({ ctx, bytes: withBlock, flags: PacketFlag.Rtcp | PacketFlag.Upstream });
  assert.is(r.verdict, "pass");
  assert.is(hex(r.bytes), hex(withBlock), "goes on whole");
  assert.is(metric(h, "feedback_packets", ctx), 2, "both feedback packets read");
});

test("the origin's TMMBN passes the sender on downstream untouched", async () => {
  const h = await loadCongestion();
  const ctx = h.createContext({ mode: "sender", extensionId: ID });
  h.run({ ctx, bytes: shaped(0), leg: 0 });
  const tmmbn = encodeTmmb("TMMBN", SSRC, [{ ssrc: 0x7e570001, bps: 800_000, overhead: 40 }]);
  const r = h.run({ ctx, bytes: tmmbn, flags: PacketFlag.Rtcp });
  assert.is(r.verdict, "pass");
  assert.is(hex(r.bytes), hex(tmmbn));
});

/**
 * A sender and a receiver context on one harness whose clock starts at `startUs`, 1000 packets of
 * 500 bytes every 4 ms through both (20 ms of hop), the receiver's feedback handed to the sender:
 * the reference times it carried (decoded) and the sender's figures at the end.
 */
async function loop(startUs: number) {
  const h = await loadCongestion({ startUs });
  const sender = h.createContext({ mode: "sender", extensionId: ID });
  const receiver = h.createContext({ mode: "receiver", extensionId: ID });
  const references: number[] = [];
  const toReceiver = (bytes: Uint8Array): OutputPacket[] => h.runBatch([{ ctx: receiver, bytes, leg: 0, arrivalUs: h.nowUs + 20_000 }]).outputs;
  for (let i = 0; i < 1000; i++) {
    const r = h.runBatch([{ ctx: sender, bytes: buildRtp({ seq: i, timestamp: Math.floor(i / 3) * 3000, ssrc: SSRC, payloadSize: 500 }), leg: 0 }]);
    const back = r.packets.filter((p) => p.verdict === "pass").flatMap((p) => toReceiver(p.bytes));
    for (const o of h.advanceTime(4000)) {
      if (o.ctx === receiver) back.push(o);
      else if (!(o.flags & PacketFlag.Upstream)) back.push(...toReceiver(o.bytes));
    }
    for (const o of back) {
      const fb = decodeCcCompound(o.bytes).find((p) => p.type === "TWCC");
      if (fb?.type === "TWCC") references.push(fb.twcc.referenceTime);
      h.run({ ctx: sender, bytes: o.bytes, flags: PacketFlag.Rtcp | PacketFlag.Upstream });
    }
  }
  const figures = ["feedback_packets", "feedback_rejected", "acked_bps", "target_bps", "overuse_signals"].map((n) => metric(h, n, sender));
  return { references, figures };
}

test("the 24-bit reference time wraps (signed at 2^23 x 64 ms, at 2^24 x 64 ms): the sender reads feedback across either wrap exactly as far from it", async () => {
  const far = await loop(1_000_000);
  const signed = await loop(2 ** 23 * 64_000 - 2_000_000);
  const whole = await loop(2 ** 24 * 64_000 - 2_000_000);
  assert.ok(signed.references.includes(2 ** 23 - 1) && signed.references.includes(-(2 ** 23)), `the receiver's reference time went from 2^23 - 1 to -2^23: ${signed.references.slice(25, 40)}`);
  assert.ok(whole.references.includes(-1) && whole.references.includes(0), `and from -1 to 0: ${whole.references.slice(25, 40)}`);
  assert.ok(far.figures[0]! > 50 && far.figures[1] === 0, `feedback used, none refused: ${far.figures}`);
  assert.equal(signed.figures, far.figures, "across the sign change");
  assert.equal(whole.figures, far.figures, "across the 24-bit wrap");
});

test.run();
