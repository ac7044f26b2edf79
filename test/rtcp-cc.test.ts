// The congestion-control wire codec (test/lib/rtcp-cc.ts) against vectors computed by hand from
// the specifications (each test names its section), then against tshark's dissectors, then
// round trips and the decoder's refusals.
import * as assert from "uvu/assert";
import { buildRtp } from "../sdk/harness/index.js";
import { suite } from "./lib/suite.js";
import { peerTest } from "./lib/peers.js";
import { rng } from "./lib/random.js";
import { tshark, tsharkRtcp } from "./lib/tshark-rtcp.js";
import {
  chunksFor, decodeCcCompound, decodeRemb, decodeTmmb, decodeTwcc, encodeChunk, encodeRemb, encodeTmmb, encodeTwcc, encodeTwccWire,
  expMantissa, extensionElements, transportSeqOf, withTransportSeq, type TwccWire,
} from "./lib/rtcp-cc.js";

const test = suite("rtcp-cc codec", { timeoutMs: 60_000 });

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replace(/\s+/g, ""), "hex"));

test("extension on a packet without one: 0xBEDE, 1 word, ID|L=1, 16-bit number, 1 byte of padding (draft-holmer-01 2; RFC 8285 4.2)", () => {
  const rtp = buildRtp({ seq: 1, timestamp: 3000, ssrc: 0x11223344, payloadSize: 4, payloadByte: 0xaa });
  assert.is(hex(rtp), "80600001" + "00000bb8" + "11223344" + "aaaaaaaa");
  const stamped = withTransportSeq(rtp, 5, 0x1234);
  // X bit set; BE DE 00 01; 0x51 = ID 5, L 1; 12 34; 00 padding; then the payload unchanged
  assert.is(hex(stamped), "90600001" + "00000bb8" + "11223344" + "bede0001" + "51123400" + "aaaaaaaa");
  assert.is(stamped.length, rtp.length + 8);
  assert.is(transportSeqOf(stamped, 5), 0x1234);
  assert.is(transportSeqOf(stamped, 6), undefined);
});

test("extension added to an existing one-byte extension: one word more (RFC 8285 4.2: padding bytes 0 may sit between and after elements)", () => {
  // an audio-level-like element: ID 1, L 0, one byte 0x80, then two padding bytes
  const rtp = buildRtp({ seq: 2, timestamp: 0, ssrc: 0x11223344, payloadSize: 2, payloadByte: 0xaa, extensions: [[1, new Uint8Array([0x80])]] });
  assert.is(hex(rtp.subarray(12)), "bede0001" + "10800000" + "aaaa");
  const stamped = withTransportSeq(rtp, 5, 0x0102);
  assert.is(hex(stamped.subarray(12)), "bede0002" + "10805101" + "02000000" + "aaaa");
  assert.equal(extensionElements(stamped).map((e) => [e.id, hex(e.data)]), [[1, "80"], [5, "0102"]]);
});

test("one-byte parse: padding skipped, ID 15 stops it, other profiles and overruns refused (RFC 8285 4.2)", () => {
  const rtp = bytes("9060 0001 00000000 11223344 bede0002 00 2101ff f0 aa bb cc");
  assert.equal(extensionElements(rtp).map((e) => [e.id, hex(e.data)]), [[2, "01ff"]]);
  assert.throws(() => extensionElements(bytes("9060 0001 00000000 11223344 2000 0001 05 01 1234")), /neither one-byte/);
  assert.throws(() => extensionElements(bytes("9060 0001 00000000 11223344 bede0001 5f 12 34 00")), /runs past/);
  assert.throws(() => transportSeqOf(bytes("9060 0001 00000000 11223344 bede0001 52 12 34 56"), 5), /2 expected/);
});

test("two-byte form (RFC 8285 4.3): ID byte, length byte, data; the number appended as 4 bytes", () => {
  // profile 0x1000 (app bits 0), one word: ID 7, length 1, 0x99, padding
  const rtp = bytes("9060 0001 00000000 11223344 10000001 07019900 aaaa");
  assert.equal(extensionElements(rtp).map((e) => [e.id, hex(e.data)]), [[7, "99"]]);
  const stamped = withTransportSeq(rtp, 5, 0x0203);
  // 07 01 99, then 05 02 02 03, then a zero: two words
  assert.is(hex(stamped.subarray(12)), "10000002" + "07019905" + "02020300" + "aaaa");
  assert.is(transportSeqOf(stamped, 5), 0x0203);
  // a length-0 element and padding between elements are allowed in this form
  assert.equal(extensionElements(bytes("9060 0001 00000000 11223344 10000002 0900 0000 05020102")).map((e) => [e.id, hex(e.data)]), [[9, ""], [5, "0102"]]);
  assert.throws(() => extensionElements(bytes("9060 0001 00000000 11223344 10000001 050a0102")), /runs past/);
});

test("feedback, hand-computed (draft-holmer-01 3.1): one two-bit vector chunk, a small, a lost and a large delta, zero fill", () => {
  // base 100, 3 statuses; reference time 16 (x 64 ms = 1.024 s); feedback count 7.
  // Symbols 01 00 10 -> two-bit vector 1 1 01 00 10 00 00 00 00 = 0xD200; deltas 0x04 (1 ms), 0x0190 (100 ms);
  // 20 + 2 + 3 = 25 bytes -> 3 zero bytes to 28 -> length 6.
  const expected = "8fcd0006 01020304 0a0b0c0d 00640003 00001007 d2000401 90000000".replace(/ /g, "");
  const built = encodeTwcc({ senderSsrc: 0x01020304, mediaSsrc: 0x0a0b0c0d, baseSeq: 100, referenceTime: 16, fbCount: 7, reports: [4, null, 400] });
  assert.is(hex(built), expected);
  const d = decodeTwcc(bytes(expected));
  assert.equal([d.baseSeq, d.statusCount, d.referenceTime, d.fbCount, d.senderSsrc, d.mediaSsrc], [100, 3, 16, 7, 0x01020304, 0x0a0b0c0d]);
  assert.equal(d.reports, [{ seq: 100, deltaTicks: 4 }, { seq: 101, deltaTicks: null }, { seq: 102, deltaTicks: 400 }]);
  assert.equal([...d.arrivalsUs], [[100, 1_025_000], [102, 1_125_000]]);
});

test("chunk layouts (draft-holmer-01 3.1): run-length T=0 S(2) length(13), one-bit and two-bit vectors", () => {
  // a run of 221 'received, small delta': 0 01 0000011011101
  assert.is(encodeChunk({ kind: "run", symbol: 1, length: 221 }), 0x20dd);
  // a run of 8191 lost: 0 00 1111111111111
  assert.is(encodeChunk({ kind: "run", symbol: 0, length: 8191 }), 0x1fff);
  // 1 0 then 11001010000001
  assert.is(encodeChunk({ kind: "vector1", symbols: [1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1] }), 0xb281);
  // 1 1 then 10 01 00 01 01 01 10
  assert.is(encodeChunk({ kind: "vector2", symbols: [2, 1, 0, 1, 1, 1, 2] }), 0xe456);
  // the greedy chooser: 7 equal symbols make a run; a large delta forces two-bit vectors
  assert.equal(chunksFor([1, 1, 1, 1, 1, 1, 1, 0]), [{ kind: "run", symbol: 1, length: 7 }, { kind: "run", symbol: 0, length: 1 }]);
  assert.equal(chunksFor([1, 0, 1]), [{ kind: "vector1", symbols: [1, 0, 1] }]);
  assert.is(chunksFor([2, 0, 1, 1, 0, 1, 1, 1, 0]).map((c) => c.kind).join(), "vector2,vector1");
});

test("negative reference time and negative large delta (draft-holmer-01 3.1: 24-bit signed reference; 16-bit signed delta)", () => {
  const p = encodeTwcc({ senderSsrc: 1, mediaSsrc: 2, baseSeq: 0xffff, referenceTime: -1, fbCount: 0, reports: [-4, 1] });
  // reference ffffff, count 00; two-bit vector 10 01 -> 1 1 10 01 0000000000 = 0xE400; deltas fffc, 01
  assert.is(hex(p.subarray(16)), "ffffff00" + "e400fffc" + "01000000");
  const d = decodeTwcc(p);
  assert.is(d.referenceTime, -1);
  assert.equal(d.reports.map((r) => r.seq), [0xffff, 0]); // wraps at 16 bits
  assert.equal([...d.arrivalsUs], [[0xffff, -64_000 - 1000], [0, -64_000 - 750]]);
});

test("TMMBR and TMMBN, hand-computed (RFC 5104 4.2.1.1, 4.2.2.1): exp 6 bits, mantissa 17, overhead 9, media SSRC 0", () => {
  // 1 000 000 = 125 000 x 2^3 (125 000 < 2^17); word = 3<<26 | 125000<<9 | 40 = 0x0FD09028
  const tmmbr = encodeTmmb("TMMBR", 0x01020304, [{ ssrc: 0x11223344, bps: 1_000_000, overhead: 40 }]);
  assert.is(hex(tmmbr), "83cd0004" + "01020304" + "00000000" + "11223344" + "0fd09028");
  const tmmbn = encodeTmmb("TMMBN", 0x01020304, [{ ssrc: 0x11223344, bps: 1_000_000, overhead: 40 }]);
  assert.is(hex(tmmbn), "84cd0004" + "01020304" + "00000000" + "11223344" + "0fd09028");
  assert.equal(decodeTmmb(tmmbr).entries, [{ ssrc: 0x11223344, exp: 3, mantissa: 125_000, bps: 1_000_000, overhead: 40 }]);
  assert.is(decodeTmmb(tmmbn).kind, "TMMBN");
  // an empty TMMBN is allowed (4.2.2.2: no owner), an empty TMMBR is not
  assert.equal(decodeTmmb(encodeTmmb("TMMBN", 9, [])).entries, []);
  assert.throws(() => decodeTmmb(encodeTmmb("TMMBR", 9, [])), /no FCI entry/);
  assert.throws(() => decodeTmmb(bytes("83cd0004 01020304 00000001 11223344 0fd09028")), /media SSRC 1/);
});

test("REMB, hand-computed (draft-alvestrand-rmcat-remb-03 2.2): 'REMB', count 8 bits, exp 6, mantissa 18, SSRC list", () => {
  // 1 000 000 = 250 000 x 2^2 (250 000 < 2^18); word = 1<<24 | 2<<18 | 250000 = 0x010BD090
  const remb = encodeRemb(0x01020304, 1_000_000, [0x11223344]);
  assert.is(hex(remb), "8fce0005" + "01020304" + "00000000" + "52454d42" + "010bd090" + "11223344");
  assert.equal(decodeRemb(remb), { senderSsrc: 0x01020304, exp: 2, mantissa: 250_000, bps: 1_000_000, ssrcs: [0x11223344] });
  // the mantissa rounds down: never more than asked for
  assert.is(decodeRemb(encodeRemb(1, 1_000_003, [])).bps, 1_000_000);
  assert.throws(() => decodeRemb(bytes("8fce0005 01020304 00000000 52454d42 020bd090 11223344")), /2 SSRCs/);
});

test("exponent and mantissa: the smallest exponent, exact below 2^bits", () => {
  assert.equal(expMantissa(131_071, 17), { exp: 0, mantissa: 131_071 });
  assert.equal(expMantissa(131_072, 17), { exp: 1, mantissa: 65_536 });
  assert.equal(expMantissa(0, 18), { exp: 0, mantissa: 0 });
});

test("the decoder refuses what a correct writer never sends", () => {
  const base: TwccWire = { senderSsrc: 1, mediaSsrc: 2, baseSeq: 10, statusCount: 3, referenceTime: 0, fbCount: 0, chunks: [{ kind: "run", symbol: 1, length: 3 }], deltas: [{ ticks: 1, bytes: 1 }, { ticks: 1, bytes: 1 }, { ticks: 1, bytes: 1 }] };
  assert.not.throws(() => decodeTwcc(encodeTwccWire(base)));
  const refused: [string, TwccWire, RegExp][] = [
    ["reserved symbol", { ...base, chunks: [{ kind: "run", symbol: 3, length: 3 }] }, /reserved/],
    ["run past the count", { ...base, chunks: [{ kind: "run", symbol: 1, length: 4 }], deltas: [...base.deltas, { ticks: 1, bytes: 1 }] }, /past the status count/],
    ["statuses without chunks (the deltas read as a run past the count)", { ...base, statusCount: 30 }, /past the status count/],
    ["a delta missing", { ...base, deltas: base.deltas.slice(0, 2) }, /runs past the packet/],
    ["a word of deltas too many", { ...base, deltas: [...base.deltas, ...base.deltas, { ticks: 1, bytes: 1 }] }, /after the last delta/],
    ["zero statuses", { ...base, statusCount: 0, chunks: [], deltas: [] }, /status count of 0/],
    ["vector symbols past the count", { ...base, statusCount: 2, chunks: [{ kind: "vector1", symbols: [1, 1, 1] }], deltas: base.deltas.slice(0, 2) }, /past the status count/],
  ];
  for (const [name, wire, why] of refused) assert.throws(() => decodeTwcc(encodeTwccWire(wire)), why, name);
  const dirty = encodeTwccWire(base); // 20 + 2 + 3 = 25: three fill bytes
  dirty[27] = 1;
  assert.throws(() => decodeTwcc(dirty), /non-zero fill/);
  // RTCP padding (P bit, count in the last byte) is accepted
  assert.is(decodeTwcc(encodeTwccWire({ ...base, padding: 4 })).statusCount, 3);
});

test("round trip of 2000 seeded random feedbacks: every report and arrival survives", () => {
  const r = rng(12);
  for (let n = 0; n < 2000; n++) {
    const count = 1 + Math.floor(r() * (r() < 0.1 ? 3000 : 60));
    const lossRate = r();
    const reports = Array.from({ length: count }, () => (r() < lossRate ? null : r() < 0.8 ? Math.floor(r() * 256) : Math.floor(r() * 65536) - 32768));
    const f = { senderSsrc: Math.floor(r() * 2 ** 32), mediaSsrc: Math.floor(r() * 2 ** 32), baseSeq: Math.floor(r() * 65536), referenceTime: Math.floor(r() * 2 ** 24) - 2 ** 23, fbCount: n & 0xff };
    const d = decodeTwcc(encodeTwcc({ ...f, reports }));
    assert.equal([d.senderSsrc, d.mediaSsrc, d.baseSeq, d.referenceTime, d.fbCount], [f.senderSsrc, f.mediaSsrc, f.baseSeq, f.referenceTime, f.fbCount]);
    assert.equal(d.reports.map((x) => x.deltaTicks), reports);
  }
});

test("a compound of RR, feedback, TMMBR, REMB decodes piece by piece", () => {
  const rr = bytes("81c90007 01020304 11223344 00000000 00000000 00000000 00000000 00000000");
  const compound = Buffer.concat([rr, encodeTwcc({ senderSsrc: 1, mediaSsrc: 2, baseSeq: 5, referenceTime: 1, fbCount: 1, reports: [1] }), encodeTmmb("TMMBR", 1, [{ ssrc: 2, bps: 300_000, overhead: 40 }]), encodeRemb(1, 300_000, [2])]);
  assert.equal(decodeCcCompound(compound).map((p) => p.type), ["RR", "TWCC", "TMMBR", "REMB"]);
});

peerTest(test, tshark, "tshark reads the encoder's packets as the hand vectors say (transport-cc, TMMBR, TMMBN, REMB)", async () => {
  const reports = Array.from({ length: 40 }, (_, i) => (i % 5 === 0 ? null : i % 7 === 0 ? -4 : i));
  const twcc = encodeTwcc({ senderSsrc: 1, mediaSsrc: 2, baseSeq: 65530, referenceTime: -1, fbCount: 255, reports });
  const d = await tsharkRtcp([
    twcc,
    encodeTmmb("TMMBR", 0x01020304, [{ ssrc: 0x11223344, bps: 1_000_000, overhead: 40 }]),
    encodeTmmb("TMMBN", 0x01020304, [{ ssrc: 0x11223344, bps: 1_000_000, overhead: 40 }]),
    encodeRemb(0x01020304, 1_000_000, [0x11223344]),
  ]);
  assert.equal(d.problems, []);
  const [t, tr, tn, remb] = d.frames.map((f) => f[0]!);
  assert.equal(["baseseq", "statuscount", "reftime", "pktcount"].map((f) => t!.one(`rtcp.rtpfb.transportcc.${f}`)), ["65530", "40", "-1", "255"]);
  assert.equal(t!.all("rtcp.rtpfb.transportcc.pktchunk").map(Number), decodeTwcc(twcc).chunks.map(encodeChunk));
  const deltas = t!.all("rtcp.rtpfb.transportcc.recv_delta").map((h) => { const v = parseInt(h, 16); return h.length === 6 ? (v << 16) >> 16 : v; });
  assert.equal(deltas, reports.filter((x) => x !== null));
  for (const [p, fmt] of [[tr, "3"], [tn, "4"]] as const) {
    assert.is(p!.one("rtcp.rtpfb.fmt"), fmt);
    assert.equal(["ssrc", "exp", "mantissa", "measuredoverhead"].map((f) => p!.one(`rtcp.rtpfb.tmmbr.fci.${f}`)), ["0x11223344", "3", "125000", "40"]);
  }
  assert.equal(["identifier", "fci.number_ssrcs", "fci.br_exp", "fci.br_mantissa", "fci.ssrc"].map((f) => remb!.one(`rtcp.psfb.remb.${f}`)), ["REMB", "1", "2", "250000", "0x11223344"]);
});

test.run();
