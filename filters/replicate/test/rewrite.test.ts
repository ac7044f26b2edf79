// The translator (RFC 3550 section 7): one output SSRC and payload type, sequence numbers and
// timestamps continuous across an input switch, the sender's RTCP rewritten to match, and
// receivers' feedback about the output mapped back to the input before it goes to the sender.
import * as assert from "uvu/assert";
import { FilterConfigError, PacketFlag, Status, buildRtp, type FilterHarness } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import { loadReplicate, metric, ptOf, seqOf, ssrcOf, stream, tsOf } from "./replicate-lib.js";

const test = suite("replicate translator");

const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** An RTCP SR (no report blocks) from `ssrc` with RTP timestamp `rtpTs`, then an SDES CNAME chunk. */
function senderReport(ssrc: number, rtpTs: number): Uint8Array {
  const b = new Uint8Array(28 + 12);
  const v = view(b);
  b[0] = 0x80;
  b[1] = 200;
  v.setUint16(2, 6);
  v.setUint32(4, ssrc);
  v.setUint32(8, 0xe0000000);
  v.setUint32(16, rtpTs);
  b[28] = 0x81;
  b[29] = 202;
  v.setUint16(30, 2);
  v.setUint32(32, ssrc);
  b[36] = 1; // CNAME, 1 byte "a", then End
  b[37] = 1;
  b[38] = 0x61;
  return b;
}

/** RR from a receiver with one block about `media` (highest seq `seq`), then a generic NACK for `pid` and a PLI. */
function receiverFeedback(media: number, seq: number, pid: number): Uint8Array {
  const b = new Uint8Array(32 + 16 + 12);
  const v = view(b);
  b[0] = 0x81;
  b[1] = 201;
  v.setUint16(2, 7);
  v.setUint32(4, 0x55);
  v.setUint32(8, media);
  v.setUint32(16, 0x10000 + seq);
  b[32] = 0x81; // RTPFB NACK
  b[33] = 205;
  v.setUint16(34, 3);
  v.setUint32(36, 0x55);
  v.setUint32(40, media);
  v.setUint16(44, pid);
  v.setUint16(46, 0b101);
  b[48] = 0x81; // PSFB PLI
  b[49] = 206;
  v.setUint16(50, 2);
  v.setUint32(52, 0x55);
  v.setUint32(56, media);
  return b;
}

function send(h: FilterHarness, ctx: number, packets: readonly Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < packets.length; at += 32) {
    const r = h.runBatch(packets.slice(at, at + 32).map((bytes) => ({ ctx, bytes })));
    for (const p of r.packets) {
      assert.is(p.verdict, "pass");
      out.push(p.bytes);
    }
  }
  return out;
}

test("one output SSRC and payload type; across an SSRC switch, sequence numbers go on at last + 1 and timestamps at last + one frame", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ rewrite: { ssrc: 0x0a0b0c0d, payloadType: 111 } });
  const a = stream(90, 1000, 0x1111); // 3 packets a frame, 3000 ticks a frame
  const b = stream(90, 50_000, 0x2222).map((x) => { const y = x.slice(); view(y).setUint32(4, tsOf(x) + 777_777); return y; });
  const out = send(h, ctx, [...a, ...b]);
  assert.ok(out.every((x) => ssrcOf(x) === 0x0a0b0c0d && ptOf(x) === 111));
  assert.equal(out.map(seqOf), out.map((_, i) => 1000 + i), "sequence numbers continue");
  const ts = out.map(tsOf);
  assert.is(ts[90]! - ts[89]!, 3000, "the first packet of the new input is one frame after the last");
  for (let i = 91; i < 180; i++) assert.is(ts[i]! - ts[i - 1]!, tsOf(b[i - 90]!) - tsOf(b[i - 91]!), "the new input's own steps are kept");
  assert.is(metric(h, "rewrite_switches", ctx), 1);
});

test("a sequence jump beyond MAX_DROPOUT (3000) on the same SSRC is a switch; a smaller one is a gap, passed as it is; a reordered packet keeps its offset", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ rewrite: {} });
  const out = send(h, ctx, [...stream(10, 100), ...stream(10, 2100), ...stream(10, 9000)]);
  assert.equal(out.map(seqOf), [...stream(10, 100), ...stream(10, 2100)].map(seqOf).concat(Array.from({ length: 10 }, (_, i) => 2110 + i)));
  assert.ok(out.every((x) => ssrcOf(x) === 0x2022_0007), "the first input's SSRC");
  const reordered = send(h, ctx, [buildRtp({ seq: 9011, timestamp: 1, ssrc: 0x2022_0007 }), buildRtp({ seq: 9010, timestamp: 1, ssrc: 0x2022_0007 })]);
  assert.equal(reordered.map(seqOf), [2121, 2120]);
  assert.is(metric(h, "rewrite_switches", ctx), 1);
});

test("continuity: false keeps the input's numbering and rewrites only the SSRC", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ rewrite: { ssrc: 9, continuity: false } });
  const input = [...stream(5, 10, 1), ...stream(5, 40_000, 2)];
  const out = send(h, ctx, input);
  assert.equal(out.map(seqOf), input.map(seqOf));
  assert.equal(out.map(tsOf), input.map(tsOf));
  assert.ok(out.every((x) => ssrcOf(x) === 9));
});

test("the sender's SR and SDES name the output SSRC, the SR's RTP timestamp moves by the stream's offset; receivers' RR, NACK and PLI are mapped back to the input", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ rewrite: { ssrc: 0x77 } });
  const a = stream(30, 1000, 0x1111);
  const b = stream(30, 30_000, 0x2222);
  const out = send(h, ctx, [...a, ...b]);
  const tsOffset = (tsOf(out[30]!) - tsOf(b[0]!)) >>> 0;
  const seqOffset = (seqOf(out[30]!) - seqOf(b[0]!)) & 0xffff;
  const sr = h.run({ ctx, bytes: senderReport(0x2222, 123_456), flags: PacketFlag.Rtcp });
  assert.is(view(sr.bytes).getUint32(4), 0x77);
  assert.is(view(sr.bytes).getUint32(16), (123_456 + tsOffset) >>> 0);
  assert.is(view(sr.bytes).getUint32(32), 0x77, "SDES chunk");
  const fb = h.run({ ctx, bytes: receiverFeedback(0x77, seqOf(out[40]!), seqOf(out[45]!)), flags: PacketFlag.Rtcp | PacketFlag.Upstream });
  assert.is(fb.verdict, "pass");
  const v = view(fb.bytes);
  assert.is(v.getUint32(8), 0x2222, "report block names the input");
  assert.is(v.getUint16(18), seqOf(b[10]!), "highest sequence number in input numbering");
  assert.is(v.getUint32(40), 0x2222, "NACK media source");
  assert.is(v.getUint16(44), seqOf(b[15]!), "NACKed packet in input numbering");
  assert.is(v.getUint16(46), 0b101, "the bitmask is relative, unchanged");
  assert.is(v.getUint32(56), 0x2222, "PLI media source");
  assert.is(metric(h, "rtcp_rewritten", ctx), 1);
  assert.is(metric(h, "feedback_mapped", ctx), 1);
  assert.ok(seqOffset !== 0);
});

/** The sender's XR (RFC 3611 4): an RRTR (no SSRC), a DLRR about receiver 0x55 and `ssrc`, a statistics summary and VoIP metrics about `ssrc`. */
function senderXr(ssrc: number): Uint8Array {
  const b = new Uint8Array(8 + 12 + 28 + 40 + 40);
  const v = view(b);
  b[0] = 0x80;
  b[1] = 207;
  v.setUint16(2, b.length / 4 - 1);
  v.setUint32(4, ssrc);
  v.setUint32(8, (4 << 24) | 2); // RRTR: BT 4, length 2
  v.setUint32(12, ssrc); // its NTP time, equal to the SSRC by chance: no SSRC field, left alone
  v.setUint32(20, (5 << 24) | 6); // DLRR: two sub-blocks
  v.setUint32(24, 0x55);
  v.setUint32(36, ssrc);
  v.setUint32(48, (6 << 24) | 9); // statistics summary
  v.setUint32(52, ssrc);
  v.setUint32(88, (7 << 24) | 9); // VoIP metrics (32 bytes after its SSRC)
  v.setUint32(92, ssrc);
  return b;
}

/** A receiver's TMMBR (RFC 5104 4.2.1) about `media`, then a REMB (draft-alvestrand-rmcat-remb 2.2) listing 0x99 and `media`. */
function congestionFeedback(media: number): Uint8Array {
  const b = new Uint8Array(20 + 28);
  const v = view(b);
  b[0] = 0x83; // RTPFB TMMBR, media source 0, one entry
  b[1] = 205;
  v.setUint16(2, 4);
  v.setUint32(4, 0x55);
  v.setUint32(12, media);
  v.setUint32(16, 0x04000000);
  b[20] = 0x8f; // PSFB AFB REMB, media source 0
  b[21] = 206;
  v.setUint16(22, 6);
  v.setUint32(24, 0x55);
  v.setUint32(32, 0x52454d42);
  v.setUint32(36, 0x02040000); // two SSRCs
  v.setUint32(40, 0x99);
  v.setUint32(44, media);
  return b;
}

test("the sender's XR names the output SSRC (sender, DLRR sub-block, report blocks' source); receivers' TMMBR and REMB about the output reach the sender about the input", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ rewrite: { ssrc: 0x77 } });
  send(h, ctx, stream(10, 1000, 0x1111));
  const xr = view(h.run({ ctx, bytes: senderXr(0x1111), flags: PacketFlag.Rtcp }).bytes);
  assert.is(xr.getUint32(4), 0x77, "XR sender");
  assert.is(xr.getUint32(12), 0x1111, "RRTR's NTP time is no SSRC");
  assert.is(xr.getUint32(24), 0x55, "DLRR about another receiver");
  assert.is(xr.getUint32(36), 0x77, "DLRR sub-block about the stream");
  assert.is(xr.getUint32(52), 0x77, "statistics summary's source");
  assert.is(xr.getUint32(92), 0x77, "VoIP metrics' source");
  assert.is(metric(h, "rtcp_rewritten", ctx), 1);
  const fb = h.run({ ctx, bytes: congestionFeedback(0x77), flags: PacketFlag.Rtcp | PacketFlag.Upstream });
  assert.is(fb.verdict, "pass");
  const v = view(fb.bytes);
  assert.is(v.getUint32(12), 0x1111, "TMMBR entry names the input");
  assert.is(v.getUint32(16), 0x04000000, "its bitrate untouched");
  assert.is(v.getUint32(40), 0x99, "a REMB SSRC of another stream stays");
  assert.is(v.getUint32(44), 0x1111, "REMB's SSRC of the stream names the input");
  assert.is(metric(h, "feedback_mapped", ctx), 1);
});

/** An RR from a receiver with one report block about `media` whose extended highest sequence number is `extended`. */
function receiverReport(media: number, extended: number): Uint8Array {
  const b = new Uint8Array(32);
  const v = view(b);
  b[0] = 0x81;
  b[1] = 201;
  v.setUint16(2, 7);
  v.setUint32(4, 0x55);
  v.setUint32(8, media);
  v.setUint32(16, extended);
  return b;
}

/** A generic NACK about `media` with one entry (packet ID and bitmask) per pair. */
function nackOf(media: number, entries: readonly [pid: number, blp: number][]): Uint8Array {
  const b = new Uint8Array(12 + 4 * entries.length);
  const v = view(b);
  b[0] = 0x81;
  b[1] = 205;
  v.setUint16(2, 2 + entries.length);
  v.setUint32(4, 0x55);
  v.setUint32(8, media);
  entries.forEach(([pid, blp], k) => {
    v.setUint16(12 + 4 * k, pid);
    v.setUint16(14 + 4 * k, blp);
  });
  return b;
}

const upstreamRtcp = (h: FilterHarness, ctx: number, bytes: Uint8Array): DataView =>
  view(h.run({ ctx, bytes, flags: PacketFlag.Rtcp | PacketFlag.Upstream }).bytes);

/** A receiver's two extended highest sequence numbers (output numbering), mapped back to the input. */
function mappedPair(h: FilterHarness, ctx: number, first: number, second: number): [number, number] {
  return [upstreamRtcp(h, ctx, receiverReport(0x77, first)).getUint32(16), upstreamRtcp(h, ctx, receiverReport(0x77, second)).getUint32(16)];
}

test("a report block's extended highest sequence is mapped back as 32 bits: where the input wraps and the output does not, and the other way round, the cycle count moves with the low 16 bits", async () => {
  const h = await loadReplicate();
  // Input 2 starts at 65520: it wraps at output 1046 (offset 1046), the output does not.
  const ctx = h.createContext({ rewrite: { ssrc: 0x77 } });
  send(h, ctx, [...stream(30, 1000, 0x1111), ...stream(40, 65_520, 0x2222)]);
  // A receiver that joined at output 1000 (no cycles) reports output 1040 (input 65530), then 1060 (input 14).
  const [a, b] = mappedPair(h, ctx, 1040, 1060);
  assert.is(a & 0xffff, 65_530);
  assert.is(b & 0xffff, 14);
  assert.is(b - a, 20, "on by the 20 packets the receiver counted, across the input's wrap");
  // Output wraps (input 2 starts at 5000, output goes on at 65530), the input does not.
  const ctx2 = h.createContext({ rewrite: { ssrc: 0x77 } });
  send(h, ctx2, [...stream(30, 65_500, 0x1111), ...stream(40, 5000, 0x2222)]);
  const [c, d] = mappedPair(h, ctx2, 65_533, 0x1_0000 + 3);
  assert.equal([c & 0xffff, d & 0xffff], [5003, 5009]);
  assert.is(d - c, 6, "on by 6, not by 6 + 65536");
  assert.ok(c >= 0 && c < 0x2_0000, "the cycle count stays small, never below 0");
});

test("NACKs are mapped back across the input's wrap: the packet ID moves, the bitmask stays relative", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ rewrite: { ssrc: 0x77 } });
  const input = [...stream(30, 1000, 0x1111), ...stream(40, 65_520, 0x2222)];
  const out = send(h, ctx, input);
  const v = upstreamRtcp(h, ctx, nackOf(0x77, [[1040, 0xffff]]));
  assert.equal([v.getUint32(8), v.getUint16(12), v.getUint16(14)], [0x2222, 65_530, 0xffff]);
  // The 17 packets it names are, in the input, those that left as output 1040-1056.
  const asked = [v.getUint16(12), ...Array.from({ length: 16 }, (_, i) => (v.getUint16(12) + i + 1) & 0xffff)];
  assert.equal(asked, out.slice(40, 57).map((_, i) => seqOf(input[40 + i]!)));
});

test("a NACK for a packet from before the last switch is mapped with that input's offset and SSRC, for MAX_DROPOUT packets after the switch", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ rewrite: { ssrc: 0x77 } });
  const out = send(h, ctx, [...stream(30, 1000, 0x1111), ...stream(30, 30_000, 0x2222)]);
  assert.is(seqOf(out[30]!), 1030, "input 2 goes on at output 1030");
  const nackFields = (v: DataView): number[] => [v.getUint32(8), ...Array.from({ length: (v.byteLength - 12) / 4 }, (_, k) => v.getUint16(12 + 4 * k))];
  assert.equal(nackFields(upstreamRtcp(h, ctx, nackOf(0x77, [[1020, 0], [1025, 0]]))), [0x1111, 1020, 1025], "the first input's packets, its SSRC");
  assert.equal(nackFields(upstreamRtcp(h, ctx, nackOf(0x77, [[1040, 0]]))), [0x2222, 30_010]);
  assert.equal(nackFields(upstreamRtcp(h, ctx, nackOf(0x77, [[1025, 0], [1035, 0]]))), [0x2222, 1025, 30_005], "mixed: each entry by its input, the current SSRC");
  // A switch on the same SSRC (a sequence jump): the packets before it keep their numbers.
  const same = h.createContext({ rewrite: {} });
  send(h, same, [...stream(20, 100), ...stream(20, 9000)]);
  assert.equal(nackFields(upstreamRtcp(h, same, nackOf(0x2022_0007, [[110, 0b11]]))), [0x2022_0007, 110]);
  assert.equal(nackFields(upstreamRtcp(h, same, nackOf(0x2022_0007, [[125, 0]]))), [0x2022_0007, 9005]);
  // MAX_DROPOUT (3000) packets of the new input later, the previous mapping is gone.
  send(h, ctx, stream(3000, 30_030, 0x2222));
  assert.equal(nackFields(upstreamRtcp(h, ctx, nackOf(0x77, [[1020, 0]]))), [0x2222, (1020 - 1030 + 30_000) & 0xffff]);
});

test("rewrite.payloadType 72-76 is refused naming the key (with the marker bit they read as RTCP SR to APP, RFC 5761 section 4), in a segment's and the root config; 71 and 77 are used", async () => {
  const h = await loadReplicate();
  for (const payloadType of [72, 74, 76]) {
    let reason = "";
    try {
      h.createContext({ rewrite: { payloadType } });
    } catch (err) {
      assert.ok(err instanceof FilterConfigError && err.status === Status.BadConfig, String(err));
      reason = err.reason;
    }
    assert.match(reason, /config key 'rewrite.payloadType' must not be 72-76 .*RFC 5761/, `payloadType ${payloadType}`);
  }
  let rootFailure: unknown;
  try {
    await loadReplicate({ rootConfig: { rewrite: { payloadType: 75 } } });
  } catch (err) {
    rootFailure = err;
  }
  assert.ok(rootFailure instanceof FilterConfigError && /'rewrite.payloadType' must not be 72-76/.test(rootFailure.reason), String(rootFailure));
  for (const payloadType of [71, 77]) {
    const ctx = h.createContext({ rewrite: { payloadType } });
    assert.equal(send(h, ctx, stream(3)).map(ptOf), [payloadType, payloadType, payloadType]);
  }
});

test.run();
