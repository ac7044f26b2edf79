// test/lib/h264-frames.ts on synthetic H.264 over RTP: two GOPs of I P b b P b b ... (b:
// non-reference B frames), with real SPS, PPS and slice headers (frame_num as an encoder sets it),
// packed as a sender would: SPS and PPS in a STAP-A, large slices in FU-A fragments, small ones as
// single NAL unit packets. Then packets are removed: one of a non-reference frame, of a reference
// frame, of an IDR frame, a whole frame of either kind; and the stream is reordered, duplicated,
// and wrapped past sequence number 65535.
import * as assert from "uvu/assert";
import { h264Census, parseRtp, type RtpPacket } from "./lib/h264-frames.js";
import { suite } from "./lib/suite.js";

const test = suite("h264 frames");

/** Bits MSB first, exp-Golomb as H.264 7.2; no emulation prevention needed for these few bytes. */
class BitWriter {
  private readonly bits: number[] = [];
  u(n: number, v: number): this {
    for (let i = n - 1; i >= 0; i--) this.bits.push(Math.floor(v / 2 ** i) % 2);
    return this;
  }
  ue(v: number): this {
    const len = Math.floor(Math.log2(v + 1));
    return this.u(len, 0).u(len + 1, v + 1);
  }
  /** With the rbsp stop bit, then `fill` bytes of slice data. */
  bytes(fill = 0): Uint8Array {
    const bits = [...this.bits, 1];
    while (bits.length % 8 !== 0) bits.push(0);
    const out = new Uint8Array(bits.length / 8 + fill);
    bits.forEach((b, i) => (out[i >> 3]! |= b << (7 - (i & 7))));
    out.fill(0x5a, bits.length / 8);
    return out;
  }
}

const LOG2_MAX_FRAME_NUM = 4;
const SPS = new BitWriter().u(8, 0x67).u(8, 66).u(8, 0).u(8, 30).ue(0).ue(LOG2_MAX_FRAME_NUM - 4).ue(0).bytes();
const PPS = new BitWriter().u(8, 0x68).ue(0).ue(0).bytes();
const slice = (type: number, refIdc: number, frameNum: number, size: number): Uint8Array =>
  new BitWriter().u(1, 0).u(2, refIdc).u(5, type).ue(0).ue(type === 5 ? 7 : refIdc > 0 ? 5 : 6).ue(0).u(LOG2_MAX_FRAME_NUM, frameNum).bytes(size);

const MTU_PAYLOAD = 1000;

/** RFC 6184 payloads of one access unit: small NAL units aggregated (STAP-A), large ones fragmented (FU-A). */
function packetize(nals: readonly Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  const small = nals.filter((n) => n.length < 100);
  if (small.length > 1) {
    const stap = [0x78];
    for (const n of small) stap.push(n.length >> 8, n.length & 0xff, ...n);
    out.push(Uint8Array.from(stap));
  } else out.push(...small);
  for (const n of nals.filter((x) => x.length >= 100)) {
    if (n.length <= MTU_PAYLOAD) {
      out.push(n);
      continue;
    }
    for (let i = 1; i < n.length; i += MTU_PAYLOAD - 2) {
      const end = Math.min(n.length, i + MTU_PAYLOAD - 2);
      out.push(Uint8Array.from([(n[0]! & 0xe0) | 28, (i === 1 ? 0x80 : 0) | (end === n.length ? 0x40 : 0) | (n[0]! & 0x1f), ...n.subarray(i, end)]));
    }
  }
  return out;
}

interface Sent {
  readonly packets: RtpPacket[];
  /** Each frame's packets' indexes in `packets`, in decode order, and its kind. */
  readonly frames: { kind: "idr" | "reference" | "non-reference"; packets: number[] }[];
}

/** `gops` GOPs of I P b b P b b P b b P (11 frames) in decode order; IDR 4 packets (a STAP-A, 3 FU-A), P 2, b 1. */
function stream(gops = 2, firstSeq = 1000): Sent {
  const packets: RtpPacket[] = [];
  const frames: Sent["frames"] = [];
  let seq = firstSeq;
  let pts = 0;
  const frame = (kind: Sent["frames"][number]["kind"], nals: Uint8Array[], timestamp: number): void => {
    const payloads = packetize(nals);
    const indexes: number[] = [];
    payloads.forEach((payload, i) => {
      indexes.push(packets.length);
      packets.push({ seq: seq++ & 0xffff, timestamp, marker: i === payloads.length - 1, payloadType: 96, ssrc: 1, payload });
    });
    frames.push({ kind, packets: indexes });
  };
  for (let g = 0; g < gops; g++) {
    frame("idr", [SPS, PPS, slice(5, 3, 0, 2500)], pts);
    let frameNum = 1;
    for (let k = 0; k < 3; k++) {
      // P at pts+3, then the two B frames before it
      frame("reference", [slice(1, 2, frameNum, 1500)], (pts + 3) * 3600);
      frame("non-reference", [slice(1, 0, frameNum + 1, 300)], (pts + 1) * 3600);
      frame("non-reference", [slice(1, 0, frameNum + 1, 300)], (pts + 2) * 3600);
      frameNum++;
      pts += 3;
    }
    frame("reference", [slice(1, 2, frameNum, 1500)], (pts + 1) * 3600);
    pts += 2;
  }
  return { packets, frames };
}

const without = (s: Sent, drop: readonly number[]): RtpPacket[] => s.packets.filter((_, i) => !drop.includes(i));

test("a whole stream: every frame complete and decodable, kinds told apart", () => {
  const s = stream();
  const c = h264Census(s.packets);
  assert.is(c.total, 22);
  assert.is(c.complete, 22);
  assert.is(c.decodable, 22);
  assert.is(c.missingPackets, 0);
  assert.equal(c.byKind, {
    idr: { total: 2, complete: 2, decodable: 2 }, reference: { total: 8, complete: 8, decodable: 8 },
    "non-reference": { total: 12, complete: 12, decodable: 12 }, unknown: { total: 0, complete: 0, decodable: 0 },
  });
  assert.equal(c.frames.map((f) => f.kind), s.frames.map((f) => f.kind));
  assert.equal(c.frames.slice(0, 5).map((f) => f.frameNum), [0, 1, 2, 2, 2]);
});

test("a packet of a non-reference frame lost: that frame alone", () => {
  const s = stream();
  const victim = s.frames[2]!;
  assert.is(victim.kind, "non-reference");
  const c = h264Census(without(s, victim.packets));
  assert.is(c.total, 21); // its only packet: the frame is gone, and nothing depended on it
  assert.is(c.decodable, 21);
});

test("a fragment of a reference frame lost: it and every frame after it until the next IDR", () => {
  const s = stream();
  const p = s.frames[4]!; // the second P of the first GOP
  assert.is(p.kind, "reference");
  assert.is(p.packets.length, 2);
  const c = h264Census(without(s, [p.packets[1]!]));
  assert.is(c.total, 22);
  assert.is(c.complete, 21);
  // frames 0-3 decode; 4 (incomplete) to 10 do not; the second GOP (11 frames) does
  assert.is(c.decodable, 4 + 11);
  assert.equal(c.frames.map((f) => f.decodable).slice(0, 12), [true, true, true, true, false, false, false, false, false, false, false, true]);
});

test("the first fragment of a reference frame lost: its start is missing, not just its middle", () => {
  const s = stream();
  const p = s.frames[4]!;
  const c = h264Census(without(s, [p.packets[0]!]));
  assert.is(c.frames[4]!.complete, false);
  assert.is(c.frames[4]!.kind, "reference"); // from the FU-A header of the fragment that came
  assert.is(c.decodable, 4 + 11);
});

test("a reference frame lost whole: the next frame's frame_num shows it", () => {
  const s = stream();
  const c = h264Census(without(s, s.frames[4]!.packets));
  assert.is(c.total, 21);
  assert.is(c.complete, 21); // every frame that came is whole ...
  assert.is(c.decodable, 4 + 11); // ... but those after the lost reference cannot be decoded
});

test("a packet of an IDR frame lost: the whole GOP, and the next GOP decodes", () => {
  const s = stream();
  const idr = s.frames[11]!; // the second GOP's
  assert.is(idr.kind, "idr");
  const c = h264Census(without(s, [idr.packets[2]!]));
  assert.is(c.decodable, 11);
  assert.is(c.byKind.idr.decodable, 1);
  const first = h264Census(without(s, [s.frames[0]!.packets[1]!]));
  assert.is(first.decodable, 11);
});

test("an IDR frame's SPS and PPS alone arrived: a frame of unknown kind, the GOP lost", () => {
  const s = stream();
  const idr = s.frames[11]!;
  const c = h264Census(without(s, idr.packets.slice(1)));
  assert.is(c.frames[11]!.kind, "unknown");
  assert.is(c.byKind.unknown.total, 1);
  assert.is(c.decodable, 11);
});

test("reordered, duplicated and past sequence number 65535: the same count", () => {
  const s = stream(2, 65530);
  const shuffled = [...s.packets].reverse();
  shuffled.push(s.packets[3]!, s.packets[7]!);
  const c = h264Census(shuffled);
  assert.is(c.total, 22);
  assert.is(c.decodable, 22);
  const lost = h264Census(without(s, [s.frames[4]!.packets[1]!]).reverse());
  assert.is(lost.decodable, 15);
});

test("a frame whose tail is lost with the next frame's head: both incomplete", () => {
  const s = stream();
  // the last fragment of the first IDR (marker) and the first P's first fragment
  const c = h264Census(without(s, [s.frames[0]!.packets.at(-1)!, s.frames[1]!.packets[0]!]));
  assert.is(c.frames[0]!.complete, false);
  assert.is(c.frames[1]!.complete, false);
  assert.is(c.decodable, 11);
});

test("RTP headers: CSRCs, a header extension and padding are skipped", () => {
  const payload = [0x41, 0x9a, 0x00];
  const packet = Uint8Array.from([
    0xb1, 0xe0, 0x12, 0x34, 0, 0, 0, 90, 0, 0, 0, 7, // V2, padding, extension, 1 CSRC; marker, PT 96
    0, 0, 0, 9, // CSRC
    0xbe, 0xde, 0, 1, 0x50, 1, 2, 0, // one-byte header extension, one word
    ...payload, 0, 2, // 2 bytes of padding
  ]);
  const p = parseRtp(packet);
  assert.equal({ seq: p.seq, timestamp: p.timestamp, marker: p.marker, payloadType: p.payloadType, ssrc: p.ssrc }, { seq: 0x1234, timestamp: 90, marker: true, payloadType: 96, ssrc: 7 });
  assert.equal([...p.payload], payload);
  assert.throws(() => parseRtp(Uint8Array.from([0x40, 0, 0, 0])), /not an RTP packet/);
  assert.throws(() => parseRtp(Uint8Array.from([0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0, 9])), /longer than the packet|past the end/);
});

test("payloads outside packetization mode 1 are refused, naming the packet", () => {
  const s = stream(1);
  const fuB: RtpPacket = { ...s.packets[0]!, seq: 5, payload: Uint8Array.from([0x7d, 0x85, 1, 2]) };
  assert.throws(() => h264Census([fuB]), /packet 5: NAL unit type 29/);
  const badStap: RtpPacket = { ...s.packets[0]!, seq: 6, payload: Uint8Array.from([0x78, 0, 50, 1]) };
  assert.throws(() => h264Census([badStap]), /packet 6: STAP-A/);
});

test.run();
