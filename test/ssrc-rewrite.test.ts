// Per-destination translation's byte work (runtime/dataplane/ssrc-rewrite.ts): RTP header
// payload type and SSRC, and every SSRC field of a compound RTCP packet that names the source,
// each packet type built here by hand from RFC 3550 6.4-6.6, RFC 4585 6.1 and RFC 5104 4.3.1.
import * as assert from "uvu/assert";
import { rewriteRtcpSsrc, rewriteRtp, rtpSsrc } from "../runtime/dataplane/ssrc-rewrite.js";
import { suite } from "./lib/suite.js";

const test = suite("ssrc rewrite");
const SRC = 0x11111111, DEST = 0xaaaaaaaa, OTHER = 0x22222222;

const u32 = (v: number): number[] => [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
/** One RTCP packet: header (count, type, length in words - 1) then `body` (a multiple of 4 bytes). */
function rtcp(count: number, type: number, body: number[]): number[] {
  assert.is(body.length % 4, 0);
  const words = body.length / 4;
  return [0x80 | count, type, words >> 8, words & 0xff, ...body];
}
const block = (ssrc: number): number[] => [...u32(ssrc), ...new Array<number>(20).fill(7)];

test("RTP: payload type under the marker bit, and the SSRC; too short: untouched", () => {
  const p = Buffer.from([0x80, 0x80 | 96, 0, 1, 0, 0, 0, 2, ...u32(SRC), 9, 9]);
  rewriteRtp(p, 0, p.length, 100, DEST);
  assert.is(p[1], 0x80 | 100, "marker kept");
  assert.is(rtpSsrc(p, 0, p.length), DEST);
  rewriteRtp(p, 0, p.length, -1, -1);
  assert.is(p[1], 0x80 | 100);
  const short = Buffer.from([0x80, 96, 0, 1]);
  rewriteRtp(short, 0, 4, 100, DEST);
  assert.equal([...short], [0x80, 96, 0, 1]);
  assert.is(rtpSsrc(short, 0, 4), -1);
});

test("RTCP: every field naming the source, in SR, SDES, BYE, APP, PLI, FIR, NACK and XR; other sources untouched; at an offset", () => {
  const sr = rtcp(2, 200, [...u32(SRC), ...new Array<number>(20).fill(1), ...block(SRC), ...block(OTHER)]);
  // SDES: a chunk of SRC with a 5-byte CNAME (2 + 5 + END = 8: 12 with the SSRC, no padding), then OTHER's with a 2-byte one
  const sdes = rtcp(2, 202, [...u32(SRC), 1, 5, 104, 111, 115, 116, 49, 0, ...u32(OTHER), 1, 2, 104, 105, 0, 0, 0, 0]);
  const bye = rtcp(2, 203, [...u32(OTHER), ...u32(SRC)]);
  const app = rtcp(0, 204, [...u32(SRC), 65, 66, 67, 68]);
  const pli = rtcp(1, 206, [...u32(OTHER), ...u32(SRC)]);
  const fir = rtcp(4, 206, [...u32(OTHER), ...u32(0), ...u32(SRC), 5, 0, 0, 0, ...u32(OTHER), 6, 0, 0, 0]);
  const nack = rtcp(1, 205, [...u32(OTHER), ...u32(SRC), 0, 10, 0, 3]);
  // XR (RFC 3611 4): RRTR (an NTP time, no SSRC: its first word equal to SRC stays), DLRR of two
  // sub-blocks, statistics summary (block length 9), an unknown type 99 (untouched), VoIP metrics
  const xr = rtcp(0, 207, [
    ...u32(SRC),
    4, 0, 0, 2, ...u32(SRC), 0, 0, 0, 0,
    5, 0, 0, 6, ...u32(OTHER), 0, 0, 0, 1, 0, 0, 0, 2, ...u32(SRC), 0, 0, 0, 3, 0, 0, 0, 4,
    6, 0xe0, 0, 9, ...u32(SRC), ...new Array<number>(32).fill(0),
    99, 0, 0, 1, ...u32(SRC),
    7, 0, 0, 8, ...u32(SRC), ...new Array<number>(28).fill(0),
  ]);
  const compound = [...sr, ...sdes, ...bye, ...app, ...pli, ...fir, ...nack, ...xr];
  const buf = Buffer.from([0xee, 0xee, 0xee, ...compound]); // not 32-bit aligned in the buffer
  const changed = rewriteRtcpSsrc(buf, 3, compound.length, SRC, DEST);
  assert.is(changed, 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 4, "SR sender and its block, SDES chunk, BYE, APP, PLI media, FIR entry, NACK media; XR sender, DLRR sub-block, summary, VoIP");
  const out = buf.subarray(3);
  const at = (packetStart: number, offset: number): number => out.readUInt32BE(packetStart + offset);
  let o = 0;
  assert.is(at(o, 4), DEST, "SR sender");
  assert.is(at(o, 28), DEST, "SR block 1");
  assert.is(at(o, 52), OTHER, "SR block 2: another source");
  o += sr.length;
  assert.is(at(o, 4), DEST, "SDES chunk 1");
  assert.is(at(o, 16), OTHER, "SDES chunk 2 found past chunk 1's items and padding");
  o += sdes.length;
  assert.is(at(o, 4), OTHER);
  assert.is(at(o, 8), DEST, "BYE's second source");
  o += bye.length;
  assert.is(at(o, 4), DEST, "APP");
  o += app.length;
  assert.is(at(o, 4), OTHER, "PLI sender: the receiver's own SSRC");
  assert.is(at(o, 8), DEST, "PLI media source");
  o += pli.length;
  assert.is(at(o, 12), DEST, "FIR entry 1");
  assert.is(at(o, 20), OTHER, "FIR entry 2");
  o += fir.length;
  assert.is(at(o, 8), DEST, "NACK media source");
  assert.is(out.readUInt16BE(o + 12), 10, "NACK PID untouched");
  o += nack.length;
  assert.is(at(o, 4), DEST, "XR sender");
  assert.is(at(o, 12), SRC, "RRTR's NTP time is no SSRC");
  assert.is(at(o, 24), OTHER, "DLRR sub-block 1: another receiver");
  assert.is(at(o, 36), DEST, "DLRR sub-block 2");
  assert.is(at(o, 52), DEST, "statistics summary's source");
  assert.is(at(o, 92), SRC, "an unknown block type is left as it is");
  assert.is(at(o, 100), DEST, "VoIP metrics' source");
  assert.is(o + xr.length, compound.length);
});

test("upstream: any of several destinations' SSRCs back to the source's", () => {
  const rr = Buffer.from(rtcp(2, 201, [...u32(OTHER), ...block(DEST), ...block(0xbbbbbbbb)]));
  const mine = new Set([DEST, 0xbbbbbbbb]);
  assert.is(rewriteRtcpSsrc(rr, 0, rr.length, -1, SRC, mine), 2);
  assert.is(rr.readUInt32BE(8), SRC);
  assert.is(rr.readUInt32BE(32), SRC);
  assert.is(rr.readUInt32BE(4), OTHER, "the reporter's own SSRC stays");
});

test("a compound of more than 64 packets, or an XR of more than 64 blocks, is refused (-1); one of 64 is rewritten whole", () => {
  const packets = (n: number) => Buffer.concat(Array.from({ length: n }, () => Buffer.from(rtcp(0, 201, [...u32(SRC)]))));
  const sixtyFour = packets(64);
  assert.is(rewriteRtcpSsrc(sixtyFour, 0, sixtyFour.length, SRC, DEST), 64);
  const sixtyFive = packets(65);
  assert.is(rewriteRtcpSsrc(sixtyFive, 0, sixtyFive.length, SRC, DEST), -1);
  assert.is(rewriteRtcpSsrc(sixtyFive, 0, sixtyFive.length, -1, SRC, new Set([DEST])), -1, "upstream too");
  // so is one XR of more than 64 report blocks (here RRTRs, 3 words each)
  const xr = (blocks: number) => Buffer.from(rtcp(0, 207, [...u32(SRC), ...Array.from({ length: blocks }, () => [4, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]).flat()]));
  assert.is(rewriteRtcpSsrc(xr(64), 0, xr(64).length, SRC, DEST), 1);
  assert.is(rewriteRtcpSsrc(xr(65), 0, xr(65).length, SRC, DEST), -1);
});

test("malformed: a length past the end stops the walk, nothing outside the packet is written", () => {
  const good = rtcp(0, 201, [...u32(SRC)]);
  const bad = [0x81, 201, 0, 40, ...u32(SRC)]; // says 41 words
  const buf = Buffer.from([...good, ...bad, ...u32(SRC)]);
  const before = Buffer.from(buf);
  assert.is(rewriteRtcpSsrc(buf, 0, good.length + bad.length, SRC, DEST), 1, "the good packet only");
  assert.equal([...buf.subarray(good.length)], [...before.subarray(good.length)]);
  const version1 = Buffer.from([0x40, 201, 0, 1, ...u32(SRC)]);
  assert.is(rewriteRtcpSsrc(version1, 0, version1.length, SRC, DEST), 0, "not RTCP version 2");
  for (let n = 0; n < 200; n++) {
    const noise = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 73 + n * 31) & 0xff));
    noise[0] = 0x80 | (n & 0x1f);
    const copy = Buffer.concat([noise, Buffer.alloc(8, 0x5a)]);
    rewriteRtcpSsrc(copy, 0, 64, SRC, DEST);
    assert.equal([...copy.subarray(64)], new Array<number>(8).fill(0x5a), "never writes past the packet");
  }
});

test.run();
