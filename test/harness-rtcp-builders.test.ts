// The harness's RTCP builders give what a filter author tests RTCP handling with: a sender report
// with its report blocks and the SDES CNAME every compound carries (RFC 3550 6.1, 6.4.1, 6.5),
// checked against an independent decoder and against the SDK's own compound validator, run in a
// filter. Before, the harness built only an empty RR: an SR had to be written byte by byte.
import * as assert from "uvu/assert";
import { FilterHarness, PacketFlag, buildRtcpReceiverReport, buildRtcpSenderReport } from "../sdk/harness/index.js";
import { suite } from "./lib/suite.js";
import { decodeRtcp } from "./lib/rtcp-decode.js";
import { compileFilterSource } from "./lib/compile-source.js";

const test = suite("harness RTCP builders", { timeoutMs: 120_000 });

const block = { ssrc: 0xcafe, fractionLost: 12, cumulativeLost: -3, highestSeq: 70_000, jitter: 450, lastSr: 0x12345678, delaySinceLastSr: 65_536 };

test("buildRtcpSenderReport: an SR with its blocks, then the SDES CNAME, as an independent decoder reads them", () => {
  const sr = buildRtcpSenderReport({ ssrc: 0x1234, ntp: 0x0102030405060708n, rtpTimestamp: 90_000, packetCount: 10, octetCount: 1600, blocks: [block], cname: "cam@example" });
  assert.equal(decodeRtcp(sr), [
    { type: "SR", ssrc: 0x1234, ntp: 0x0102030405060708n, rtpTimestamp: 90_000, packetCount: 10, octetCount: 1600, blocks: [block] },
    { type: "SDES", chunks: [{ ssrc: 0x1234, items: [{ type: 1, text: "cam@example" }] }] },
  ]);
  const bare = buildRtcpSenderReport({ ssrc: 7 });
  assert.equal(decodeRtcp(bare), [{ type: "SR", ssrc: 7, ntp: 0n, rtpTimestamp: 0, packetCount: 0, octetCount: 0, blocks: [] }], "no cname: the SR alone (28 bytes)");
  assert.is(bare.length, 28);
  assert.throws(() => buildRtcpSenderReport({ ssrc: 1, cnam: "x" } as never), /^buildRtcpSenderReport: unknown field 'cnam'; it takes ssrc, ntp, rtpTimestamp, packetCount, octetCount, blocks, cname$/);
  assert.throws(() => buildRtcpSenderReport({ ssrc: 1, blocks: new Array(32).fill(block) }), /^buildRtcpSenderReport: at most 31 report blocks, got 32$/);
  assert.throws(() => buildRtcpSenderReport({ ssrc: 1, cname: "x".repeat(256) }), /^buildRtcpSenderReport: cname must be 1-255 bytes of UTF-8, got 256$/);
  assert.throws(() => buildRtcpReceiverReport(-1), /^buildRtcpReceiverReport: ssrc must be an integer 0-4294967295, got -1$/);
});

test("the SDK's RtcpCompound.validate takes the builders' compounds, and its SenderReport reads the SR's fields", async () => {
  const source = `
    import { Filter, Packet, PacketFlag, RtcpCompound, RtcpError, Rtcp, RtcpType, SenderReport, ReportBlock, register } from "../../../sdk/assembly";
    export * from "../../../sdk/assembly/exports";
    class SrReader extends Filter {
      onPacket(p: Packet): void {
        if (!p.isRtcp) return;
        const bad = RtcpCompound.validate(p.ptr, p.length);
        if (bad != RtcpError.None) { p.drop(bad); return; }
        const at = p.ptr;
        if (Rtcp.type(at) != RtcpType.SR) return;
        // what the filter read, written over the SR's octet count, for the test to see
        let sum: u32 = SenderReport.packetCount(at) + <u32>SenderReport.reportCount(at);
        if (SenderReport.reportCount(at) > 0) sum += <u32>ReportBlock.fractionLost(SenderReport.reportBlock(at, 0));
        store<u32>(at + 24, bswap<u32>(sum));
      }
    }
    register(new SrReader());
  `;
  const h = await FilterHarness.load(await compileFilterSource(source, "srreader"), { name: "sr-reader" });
  const ctx = h.createContext();
  const r = h.run({ ctx, bytes: buildRtcpSenderReport({ ssrc: 1, packetCount: 100, blocks: [block], cname: "a@b" }), flags: PacketFlag.Rtcp });
  assert.is(r.verdict, "pass");
  assert.is(new DataView(r.bytes.buffer, r.bytes.byteOffset).getUint32(24), 100 + 1 + 12);
  assert.is(h.run({ ctx, bytes: buildRtcpSenderReport({ ssrc: 1 }), flags: PacketFlag.Rtcp }).verdict, "pass", "an SR alone is a valid compound (no CNAME is a policy, not a structure rule)");
  assert.is(h.run({ ctx, bytes: buildRtcpReceiverReport(), flags: PacketFlag.Rtcp }).verdict, "pass");
});

test.run();
