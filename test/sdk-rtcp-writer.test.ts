// The SDK's RtcpWriter (sdk/assembly/rtcp-writer.ts), run in AssemblyScript through the harness
// (test/fixtures/filters/assembly/rtcp_script.ts runs a script of writer calls per packet). What it
// writes is read three ways and must agree with what the script asked for: by the SDK's own parser
// (rtcp.ts, inside the fixture), by an independent decoder (test/lib/rtcp-decode.ts) and by tshark.
// Every write is bounds-checked: a capacity sweep finds no byte written past the buffer and an
// error instead of a short compound.
import * as assert from "uvu/assert";
import { FilterHarness, PacketFlag } from "../sdk/harness/index.js";
import { suite } from "./lib/suite.js";
import { fixture } from "./lib/paths.js";
import { peerTest } from "./lib/peers.js";
import { decodeRtcp, type DecodedBlock, type DecodedRtcp } from "./lib/rtcp-decode.js";
import { tshark, tsharkRtcp, type TsharkRtcpPacket } from "./lib/tshark-rtcp.js";

const test = suite("sdk rtcp writer", { timeoutMs: 120_000 });

/** RtcpWriteError (sdk/assembly/rtcp-writer.ts). */
const E = { NoRoom: 1, NoReport: 2, TooMany: 3, BadText: 4, NoChunk: 5, FirstNotReport: 6, NoCname: 7, Empty: 8, OutputFull: 9 } as const;

type Op =
  | { op: "SR"; ssrc: number; ntp: bigint; rtpTimestamp: number; packetCount: number; octetCount: number }
  | { op: "RR"; ssrc: number }
  | ({ op: "block" } & DecodedBlock)
  | { op: "SDES"; ssrc: number; cname: string }
  | { op: "item"; type: number; text: string }
  | { op: "BYE"; ssrc: number; reason?: string }
  | { op: "NACK"; sender: number; media: number; lost: number[] }
  | { op: "PLI"; sender: number; media: number }
  | { op: "SR now"; ssrc: number; delayUs: bigint };

function script(ops: readonly Op[], capacity = 0, reducedSize = false): Uint8Array {
  const parts: Buffer[] = [Buffer.from([capacity >> 8, capacity & 0xff, reducedSize ? 1 : 0, 0])];
  const u32 = (...v: number[]): Buffer => {
    const b = Buffer.alloc(4 * v.length);
    v.forEach((x, i) => b.writeUInt32BE(x >>> 0, 4 * i));
    return b;
  };
  const text = (s: string): Buffer => {
    const t = Buffer.from(s, "utf8");
    return Buffer.concat([Buffer.from([t.length >> 8, t.length & 0xff]), t]);
  };
  for (const o of ops) {
    switch (o.op) {
      case "SR": {
        const ntp = Buffer.alloc(8);
        ntp.writeBigUInt64BE(o.ntp);
        parts.push(Buffer.from([1]), u32(o.ssrc), ntp, u32(o.rtpTimestamp, o.packetCount, o.octetCount));
        break;
      }
      case "RR":
        parts.push(Buffer.from([2]), u32(o.ssrc));
        break;
      case "block":
        parts.push(Buffer.from([3]), u32(o.ssrc), Buffer.from([o.fractionLost]), u32(o.cumulativeLost, o.highestSeq, o.jitter, o.lastSr, o.delaySinceLastSr));
        break;
      case "SDES":
        parts.push(Buffer.from([4]), u32(o.ssrc), text(o.cname));
        break;
      case "item":
        parts.push(Buffer.from([5, o.type]), text(o.text));
        break;
      case "BYE":
        parts.push(Buffer.from([6]), u32(o.ssrc), text(o.reason ?? ""));
        break;
      case "NACK": {
        const seqs = Buffer.alloc(2 + 2 * o.lost.length);
        seqs.writeUInt16BE(o.lost.length, 0);
        o.lost.forEach((s, i) => seqs.writeUInt16BE(s, 2 + 2 * i));
        parts.push(Buffer.from([7]), u32(o.sender, o.media), seqs);
        break;
      }
      case "PLI":
        parts.push(Buffer.from([8]), u32(o.sender, o.media));
        break;
      case "SR now": {
        const delay = Buffer.alloc(8);
        delay.writeBigUInt64BE(o.delayUs);
        parts.push(Buffer.from([9]), u32(o.ssrc), delay);
        break;
      }
    }
  }
  return new Uint8Array(Buffer.concat(parts));
}

interface Written {
  /** finish()'s result: the length, or -RtcpWriteError. */
  result: number;
  overrun: boolean;
  compound?: Uint8Array;
  /** The SDK parser's reading (rtcp_script.ts readBack()). */
  readBack?: number[];
}

let harness: FilterHarness;
let ctx = 0;

/** Runs scripts (any number; in batches of 32, each making at most 2 output packets). */
function write(scripts: readonly Uint8Array[]): Written[] {
  const out: Written[] = [];
  for (let i = 0; i < scripts.length; i += 32) {
    const r = harness.runBatch(scripts.slice(i, i + 32).map((bytes) => ({ ctx, bytes })));
    let j = 0;
    for (const p of r.packets) {
      assert.is(p.verdict, "pass", "the script is well-formed");
      const b = Buffer.from(p.bytes);
      const w: Written = { result: b.readInt32LE(0), overrun: b.readUInt32LE(4) !== 0 };
      if (w.result > 0) {
        const compound = r.outputs[j++]!;
        const words = r.outputs[j++]!;
        assert.is(compound.flags & PacketFlag.Rtcp, PacketFlag.Rtcp, "emitted as RTCP");
        w.compound = compound.bytes;
        w.readBack = [...new Uint32Array(words.bytes.slice().buffer)];
      }
      out.push(w);
    }
    assert.is(j, r.outputs.length);
  }
  return out;
}

function writeOne(ops: readonly Op[], capacity = 0, reducedSize = false): Written {
  return write([script(ops, capacity, reducedSize)])[0]!;
}

/** What rtcp_script.ts readBack() yields for a compound, from the independent decoding. */
function expectedReadBack(compound: Uint8Array, decoded: readonly DecodedRtcp[], validate: number, validateReduced: number): number[] {
  const words: number[] = [validate, validateReduced];
  const v = new DataView(compound.buffer, compound.byteOffset, compound.byteLength);
  let at = 0;
  const text = (s: string): number[] => {
    const b = Buffer.from(s, "utf8");
    return [b.length, ...b];
  };
  const blocks = (bs: readonly DecodedBlock[]): number[] =>
    bs.flatMap((b) => [b.ssrc, b.fractionLost, b.cumulativeLost >>> 0, b.highestSeq, b.jitter, b.lastSr, b.delaySinceLastSr]);
  for (const d of decoded) {
    const size = (v.getUint16(at + 2) + 1) * 4;
    words.push(v.getUint8(at + 1), v.getUint8(at) & 0x1f, size);
    switch (d.type) {
      case "SR":
        words.push(d.ssrc, Number(d.ntp >> 32n), Number(d.ntp & 0xffffffffn), d.rtpTimestamp, d.packetCount, d.octetCount, ...blocks(d.blocks));
        break;
      case "RR":
        words.push(d.ssrc, ...blocks(d.blocks));
        break;
      case "SDES":
        for (const c of d.chunks) words.push(c.ssrc, ...c.items.flatMap((i) => [i.type, ...text(i.text)]), 0xffffffff);
        break;
      case "BYE":
        words.push(...d.sources, ...text(d.reason));
        break;
      case "NACK":
        words.push(d.sender, d.media, 4 * d.pairs.length, ...d.pairs.map((p) => ((p.pid << 16) | p.blp) >>> 0));
        break;
      case "PLI":
        words.push(d.sender, d.media, 0);
        break;
    }
    at += size;
  }
  return words;
}

/** Checks one written compound: the independent decoding is `expected`, and the SDK's parser reads the same. */
function check(w: Written, expected: readonly DecodedRtcp[], reducedSize = false): DecodedRtcp[] {
  assert.ok(w.result > 0, `finish() failed with ${w.result}`);
  assert.not.ok(w.overrun);
  assert.is(w.compound!.length, w.result);
  const decoded = decodeRtcp(w.compound!);
  assert.equal(decoded, expected);
  // RtcpCompound.validate: None (0) as a full compound unless reduced-size; as reduced-size always
  assert.equal(w.readBack, expectedReadBack(w.compound!, decoded, reducedSize ? 16 : 0, 0));
  return decoded;
}

// ---- the cases ----

const NTP = 0xe1a2b3c4_80000000n;
const A_BLOCK: DecodedBlock = { ssrc: 0xaabbccdd, fractionLost: 25, cumulativeLost: 17, highestSeq: 0x0001_0005, jitter: 42, lastSr: 0x12345678, delaySinceLastSr: 65536 };
const B_BLOCK: DecodedBlock = { ssrc: 0x01020304, fractionLost: 255, cumulativeLost: -3, highestSeq: 70000, jitter: 0, lastSr: 0, delaySinceLastSr: 0 };

const CASES: { name: string; ops: Op[]; expected: DecodedRtcp[]; reducedSize?: boolean }[] = [
  {
    name: "SR with two report blocks, SDES with CNAME and NAME, BYE with a reason (RFC 3550 6.1)",
    ops: [
      { op: "SR", ssrc: 0x11223344, ntp: NTP, rtpTimestamp: 123456, packetCount: 1000, octetCount: 160000 },
      { op: "block", ...A_BLOCK },
      { op: "block", ...B_BLOCK },
      { op: "SDES", ssrc: 0x11223344, cname: "sender@msm.example" },
      { op: "item", type: 2, text: "MSM proxy" },
      { op: "BYE", ssrc: 0x11223344, reason: "shutting down" },
    ],
    expected: [
      { type: "SR", ssrc: 0x11223344, ntp: NTP, rtpTimestamp: 123456, packetCount: 1000, octetCount: 160000, blocks: [A_BLOCK, B_BLOCK] },
      { type: "SDES", chunks: [{ ssrc: 0x11223344, items: [{ type: 1, text: "sender@msm.example" }, { type: 2, text: "MSM proxy" }] }] },
      { type: "BYE", sources: [0x11223344], reason: "shutting down" },
    ],
  },
  {
    name: "RR, SDES, a generic NACK packed from a list across the sequence wrap (RFC 4585 6.2.1), a PLI (6.3.1)",
    ops: [
      { op: "RR", ssrc: 0xfeedf00d },
      { op: "block", ...A_BLOCK },
      { op: "SDES", ssrc: 0xfeedf00d, cname: "rx" },
      { op: "NACK", sender: 0xfeedf00d, media: 0xaabbccdd, lost: [100, 101, 103, 116, 117, 200, 65535, 0, 2] },
      { op: "PLI", sender: 0xfeedf00d, media: 0xaabbccdd },
    ],
    expected: [
      { type: "RR", ssrc: 0xfeedf00d, blocks: [A_BLOCK] },
      { type: "SDES", chunks: [{ ssrc: 0xfeedf00d, items: [{ type: 1, text: "rx" }] }] },
      {
        type: "NACK", sender: 0xfeedf00d, media: 0xaabbccdd,
        pairs: [{ pid: 100, blp: 0x8005 }, { pid: 117, blp: 0 }, { pid: 200, blp: 0 }, { pid: 65535, blp: 0x0005 }],
        lost: [100, 101, 103, 116, 117, 200, 65535, 0, 2],
      },
      { type: "PLI", sender: 0xfeedf00d, media: 0xaabbccdd },
    ],
  },
  {
    name: "a mixer's SDES chunks (every fill length, an empty and a UTF-8 CNAME), BYE sources gathered until a reason",
    ops: [
      { op: "RR", ssrc: 1 },
      { op: "SDES", ssrc: 1, cname: "a" },
      { op: "SDES", ssrc: 2, cname: "bb" },
      { op: "SDES", ssrc: 3, cname: "ccc" },
      { op: "SDES", ssrc: 4, cname: "" },
      { op: "SDES", ssrc: 5, cname: "café@ü.example" },
      { op: "BYE", ssrc: 1 },
      { op: "BYE", ssrc: 2, reason: "x" },
      { op: "BYE", ssrc: 3 },
      { op: "NACK", sender: 1, media: 9, lost: [7] },
      { op: "NACK", sender: 1, media: 9, lost: [7, 8] }, // after another NACK of the same source: merged
      { op: "NACK", sender: 1, media: 10, lost: [7] },
    ],
    expected: [
      { type: "RR", ssrc: 1, blocks: [] },
      {
        type: "SDES",
        chunks: [[1, "a"], [2, "bb"], [3, "ccc"], [4, ""], [5, "café@ü.example"]].map(([ssrc, cname]) => ({ ssrc: ssrc as number, items: [{ type: 1, text: cname as string }] })),
      },
      { type: "BYE", sources: [1, 2], reason: "x" },
      { type: "BYE", sources: [3], reason: "" },
      { type: "NACK", sender: 1, media: 9, pairs: [{ pid: 7, blp: 1 }], lost: [7, 8] },
      { type: "NACK", sender: 1, media: 10, pairs: [{ pid: 7, blp: 0 }], lost: [7] },
    ],
  },
  {
    name: "reduced-size RTCP (RFC 5506): a PLI alone",
    ops: [{ op: "PLI", sender: 5, media: 6 }],
    expected: [{ type: "PLI", sender: 5, media: 6 }],
    reducedSize: true,
  },
];

test.before(async () => {
  harness = await FilterHarness.load(fixture("rtcp_script"));
  ctx = harness.createContext();
});

test("what the writer writes is what was asked, read by the SDK's parser and an independent decoder; in place or copied, the same bytes", () => {
  for (const c of CASES) {
    const inPlace = writeOne(c.ops, 0, c.reducedSize);
    try {
      check(inPlace, c.expected, c.reducedSize);
    } catch (err) {
      throw new Error(`${c.name}: ${(err as Error).message}`);
    }
    const copied = writeOne(c.ops, 1500, c.reducedSize);
    assert.equal(copied.compound, inPlace.compound, `${c.name}: from a buffer of its own`);
  }
});

peerTest(test, tshark, "tshark decodes every case without a warning, field for field", async () => {
  const written = CASES.map((c) => writeOne(c.ops, 0, c.reducedSize));
  const { frames, problems } = await tsharkRtcp(written.map((w) => w.compound!));
  assert.equal(problems, [], "tshark raised no expert warning");
  assert.is(frames.length, CASES.length);
  CASES.forEach((c, k) => {
    const shown = frames[k]!;
    assert.is(shown.length, c.expected.length, `${c.name}: RTCP packets tshark sees`);
    // tshark skips quietly what it cannot place: its packets' lengths must cover the whole compound
    assert.is(shown.reduce((n, p) => n + (Number(p.one("rtcp.length")) + 1) * 4, 0), written[k]!.compound!.length, `${c.name}: lengths`);
    c.expected.forEach((d, i) => checkTshark(shown[i]!, d, `${c.name}, packet ${i}`));
  });
});

/** Text as tshark 4.0 shows an SDES item: read as ASCII, every byte of a multi-byte character a U+FFFD (an empty one not at all). */
function asTsharkShows(text: string): string {
  return [...Buffer.from(text, "utf8")].map((b) => (b < 0x80 ? String.fromCharCode(b) : "\ufffd")).join("");
}

/** tshark's dissection of one packet against the expected decoding. */
function checkTshark(t: TsharkRtcpPacket, d: DecodedRtcp, where: string): void {
  const num = (name: string): number => Number(t.one(name));
  const nums = (name: string): number[] => t.all(name).map(Number);
  const msg = (what: string): string => `${where}: ${what}`;
  assert.is(num("rtcp.version"), 2, msg("version"));
  const blocks = (bs: readonly DecodedBlock[]): void => {
    assert.equal(nums("rtcp.ssrc.identifier"), bs.map((b) => b.ssrc), msg("report block SSRCs"));
    assert.equal(nums("rtcp.ssrc.fraction"), bs.map((b) => b.fractionLost), msg("fraction lost"));
    assert.equal(nums("rtcp.ssrc.cum_nr"), bs.map((b) => b.cumulativeLost), msg("cumulative lost"));
    assert.equal(nums("rtcp.ssrc.ext_high"), bs.map((b) => b.highestSeq), msg("extended highest sequence"));
    assert.equal(nums("rtcp.ssrc.jitter"), bs.map((b) => b.jitter), msg("jitter"));
    assert.equal(nums("rtcp.ssrc.lsr"), bs.map((b) => b.lastSr), msg("LSR"));
    assert.equal(nums("rtcp.ssrc.dlsr"), bs.map((b) => b.delaySinceLastSr), msg("DLSR"));
  };
  switch (d.type) {
    case "SR":
      assert.equal([num("rtcp.pt"), num("rtcp.rc"), num("rtcp.senderssrc")], [200, d.blocks.length, d.ssrc], msg("SR header"));
      assert.is(BigInt(num("rtcp.timestamp.ntp.msw")) << 32n | BigInt(num("rtcp.timestamp.ntp.lsw")), d.ntp, msg("NTP timestamp"));
      assert.equal([num("rtcp.timestamp.rtp"), num("rtcp.sender.packetcount"), num("rtcp.sender.octetcount")], [d.rtpTimestamp, d.packetCount, d.octetCount], msg("sender info"));
      blocks(d.blocks);
      break;
    case "RR":
      assert.equal([num("rtcp.pt"), num("rtcp.rc"), num("rtcp.senderssrc")], [201, d.blocks.length, d.ssrc], msg("RR header"));
      blocks(d.blocks);
      break;
    case "SDES":
      assert.equal([num("rtcp.pt"), num("rtcp.sc")], [202, d.chunks.length], msg("SDES header"));
      assert.equal(nums("rtcp.ssrc.identifier"), d.chunks.map((c) => c.ssrc), msg("chunk SSRCs"));
      assert.equal(nums("rtcp.sdes.type"), d.chunks.flatMap((c) => [...c.items.map((i) => i.type), 0]), msg("item types, END closing each chunk"));
      assert.equal(nums("rtcp.sdes.length"), d.chunks.flatMap((c) => c.items.map((i) => Buffer.byteLength(i.text))), msg("item lengths"));
      assert.equal(t.all("rtcp.sdes.text"), d.chunks.flatMap((c) => c.items.filter((i) => i.text !== "").map((i) => asTsharkShows(i.text))), msg("item texts"));
      break;
    case "BYE":
      assert.equal([num("rtcp.pt"), num("rtcp.sc")], [203, d.sources.length], msg("BYE header"));
      assert.equal(nums("rtcp.ssrc.identifier"), d.sources, msg("BYE sources"));
      assert.equal(t.all("rtcp.sdes.text"), d.reason ? [d.reason] : [], msg("BYE reason"));
      break;
    case "NACK":
      assert.equal([num("rtcp.pt"), num("rtcp.rtpfb.fmt"), num("rtcp.senderssrc"), num("rtcp.mediassrc")], [205, 1, d.sender, d.media], msg("NACK header"));
      // tshark lists each PID and then each sequence number its BLP adds (without the wrap at 65536)
      assert.equal(nums("rtcp.rtpfb.nack_pid").map((s) => s & 0xffff), d.lost, msg("NACK PIDs and the losses their BLPs add"));
      assert.equal(nums("rtcp.rtpfb.nack_blp"), d.pairs.map((p) => p.blp), msg("NACK BLPs"));
      break;
    case "PLI":
      assert.equal([num("rtcp.pt"), num("rtcp.psfb.fmt"), num("rtcp.senderssrc"), num("rtcp.mediassrc")], [206, 1, d.sender, d.media], msg("PLI"));
      break;
  }
}

test("a capacity sweep: short of the compound's length a write fails with NoRoom and nothing is written past the buffer", () => {
  for (const c of CASES) {
    const full = writeOne(c.ops, 0, c.reducedSize).result;
    const capacities = Array.from({ length: full + 8 }, (_, i) => i + 1);
    const results = write(capacities.map((cap) => script(c.ops, cap, c.reducedSize)));
    results.forEach((w, i) => {
      const cap = capacities[i]!;
      assert.not.ok(w.overrun, `${c.name}: capacity ${cap}: a byte written past the buffer`);
      assert.is(w.result, cap < full ? -E.NoRoom : full, `${c.name}: capacity ${cap}`);
    });
  }
});

test("rules broken are errors, never a malformed compound", () => {
  const rr: Op = { op: "RR", ssrc: 1 };
  const sdes: Op = { op: "SDES", ssrc: 1, cname: "c" };
  const block: Op = { op: "block", ...B_BLOCK };
  const table: [string, Op[], number][] = [
    ["nothing written", [], -E.Empty],
    ["no SDES CNAME", [rr], -E.NoCname],
    ["RR and SDES CNAME: the smallest full compound", [rr, sdes], 8 + 12],
    ["a feedback packet first", [{ op: "PLI", sender: 1, media: 2 }, rr, sdes], -E.FirstNotReport],
    ["an SDES first", [sdes, rr], -E.FirstNotReport],
    ["a report block with no SR or RR before it", [block], -E.NoReport],
    ["a report block after the SDES", [rr, sdes, block], -E.NoReport],
    ["32 report blocks", [rr, ...Array<Op>(32).fill(block), sdes], -E.TooMany],
    ["31 report blocks", [rr, ...Array<Op>(31).fill(block), sdes], 8 + 31 * 24 + 12],
    ["32 SDES chunks", [rr, ...Array.from({ length: 32 }, (_, i): Op => ({ op: "SDES", ssrc: i, cname: "c" }))], -E.TooMany],
    ["32 BYE sources", [rr, sdes, ...Array.from({ length: 32 }, (_, i): Op => ({ op: "BYE", ssrc: i }))], -E.TooMany],
    ["a CNAME of 256 bytes", [rr, { op: "SDES", ssrc: 1, cname: "c".repeat(256) }], -E.BadText],
    ["a CNAME of 255 bytes", [rr, { op: "SDES", ssrc: 1, cname: "c".repeat(255) }], 8 + 268], // SDES: 4 + 4 + 2 + 255, END, fill to 268
    ["a BYE reason of 256 bytes", [rr, sdes, { op: "BYE", ssrc: 1, reason: "r".repeat(256) }], -E.BadText],
    ["an item of type END", [rr, sdes, { op: "item", type: 0, text: "" }], -E.BadText],
    ["an item without a chunk", [rr, { op: "item", type: 2, text: "n" }], -E.NoChunk],
    ["an item after the SDES's packet was closed", [rr, sdes, { op: "PLI", sender: 1, media: 2 }, { op: "item", type: 2, text: "n" }], -E.NoChunk],
    ["writes after an error change nothing", [block, rr, sdes], -E.NoReport],
  ];
  const results = write(table.map(([, ops]) => script(ops, 1500)));
  table.forEach(([what, , expected], i) => {
    assert.is(results[i]!.result, expected, what);
    assert.not.ok(results[i]!.overrun, what);
    if (expected > 0) decodeRtcp(results[i]!.compound!);
  });
  // the same rules hold when building in the output area
  assert.equal(write([script([rr], 0)]).map((w) => w.result), [-E.NoCname]);
});

test("RTCP's clocks: ntpFromUnixUs(wallUs()) is the NTP time of now, ntpMiddle its LSR, dlsrFromUs 1/65536 s", () => {
  const sdes: Op = { op: "SDES", ssrc: 1, cname: "c" };
  const delays: [bigint, number][] = [[0n, 0], [1_500_000n, 98_304], [15n, 0], [16n, 1], [65_535_999_984n, 0xfffffffe], [65_535_999_985n, 0xffffffff], [100_000_000_000n, 0xffffffff]];
  const before = Date.now();
  const written = write(delays.map(([us]) => script([{ op: "SR now", ssrc: 1, delayUs: us }, sdes], 1500)));
  const after = Date.now();
  written.forEach((w, i) => {
    const sr = decodeRtcp(w.compound!)[0] as Extract<DecodedRtcp, { type: "SR" }>;
    const seconds = Number(sr.ntp >> 32n) - 2_208_988_800; // NTP counts from 1900
    const ms = seconds * 1000 + (Number(sr.ntp & 0xffffffffn) / 2 ** 32) * 1000;
    // the harness's wall clock is Date.now() in whole milliseconds: the fraction holds it to well under a microsecond
    assert.ok(Math.abs(ms - Math.round(ms)) < 0.001 && Math.round(ms) >= before && Math.round(ms) <= after, `${ms} in [${before}, ${after}]`);
    assert.is(sr.blocks[0]!.lastSr, Number((sr.ntp >> 16n) & 0xffffffffn), "LSR: the middle 32 bits");
    assert.is(sr.blocks[0]!.delaySinceLastSr, delays[i]![1], `DLSR of ${delays[i]![0]} us`);
  });
});

test("a full output area: beginOutput() and emit() fail with OutputFull and nothing is half-written", () => {
  const ops: Op[] = [{ op: "RR", ssrc: 1 }, { op: "SDES", ssrc: 1, cname: "c" }];
  // each script makes two output packets (the compound and the parser's reading): 32 fill the 64 slots
  const r = harness.runBatch(Array.from({ length: 40 }, () => ({ ctx, bytes: script(ops, 0) })));
  const results = r.packets.map((p) => Buffer.from(p.bytes).readInt32LE(0));
  assert.equal(results.slice(0, 32), Array<number>(32).fill(20));
  assert.equal(results.slice(32), Array<number>(8).fill(-E.OutputFull));
  assert.is(r.outputs.length, 64);
  for (let j = 0; j < 64; j += 2) decodeRtcp(r.outputs[j]!.bytes);
});

test.run();
