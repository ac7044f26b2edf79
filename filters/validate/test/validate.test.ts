// The validate filter: RFC 3550 A.1 / A.2 checks and per-SSRC policy, each drop with its reason.
// Runs against the checked build (--uncheckedBehavior never), so a wrong unchecked() traps here.
// Holding is off here (holdPackets: 0) so that probation shows as the RFC's drops; hold.test.ts
// tests holding, which is the default.
import * as assert from "uvu/assert";
import {
  DropReason, FilterConfigError, FilterHarness, PacketFlag, buildRtp, buildRtcpReceiverReport,
  hostileRtp, pseudoRandomBytes, type HarnessOptions, type PacketResult,
} from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import { filterWasm } from "../../../test/lib/paths.js";

const test = suite("validate filter");
const SSRC = 0x11223344;

const load = (options: HarnessOptions = {}, checked = true): Promise<FilterHarness> =>
  FilterHarness.load(filterWasm("validate", checked), {
    name: "validate", ...options, rootConfig: { holdPackets: 0, ...(options.rootConfig as object | undefined) },
  });

/** Runs RTP packets with these sequence numbers, one batch, and returns the reason names ("" = pass). */
function sequence(h: FilterHarness, ctx: number, seqs: readonly number[], ssrc = SSRC): string[] {
  const r = h.runBatch(seqs.map((seq) => ({ ctx, bytes: buildRtp({ seq, ssrc, payloadSize: 20 }) })));
  return r.packets.map(outcome);
}

const outcome = (p: PacketResult): string => (p.verdict === "pass" ? "" : p.verdict === "hold" ? "held" : p.reasonName);

function expectDrop(p: PacketResult, reason: DropReason, what: string): void {
  assert.is(p.verdict, "drop", `${what}: verdict`);
  assert.is(p.reason, reason, `${what}: reason ${DropReason[reason]}, got ${p.reasonName}`);
}

// ---- RTCP builders (RFC 3550 6.4) ----

/** One RTCP packet: header + body, with `padding` octets (P bit) at the end. */
function rtcp(type: number, count: number, body: readonly number[], padding = 0): number[] {
  const size = 4 + body.length + padding;
  const words = size / 4 - 1;
  if (!Number.isInteger(words)) throw new Error("RTCP packet must be a multiple of 4 bytes");
  const out = [0x80 | (padding > 0 ? 0x20 : 0) | count, type, words >> 8, words & 0xff, ...body];
  for (let i = 1; i < padding; i++) out.push(0);
  if (padding > 0) out.push(padding);
  return out;
}
const u32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const rr = (blocks = 0): number[] => rtcp(201, blocks, [...u32(0x55667788), ...new Array<number>(24 * blocks).fill(0)]);
const sr = (): number[] => rtcp(200, 0, [...u32(0x55667788), ...new Array<number>(20).fill(0)]);
/** SDES with one chunk: a CNAME item "ab", End, zero fill to 32 bits. */
const sdes = (): number[] => rtcp(202, 1, [...u32(0x55667788), 1, 2, 0x61, 0x62, 0, 0, 0, 0]);
const bye = (): number[] => rtcp(203, 1, u32(0x55667788));
const pli = (): number[] => rtcp(206, 1, [...u32(1), ...u32(2)]);
const bytes = (...parts: number[][]): Uint8Array => new Uint8Array(parts.flat());

// ---- RTP structure (RFC 3550 A.1) ----

test("hostile RTP packets are dropped with the reason of the rule they break", async () => {
  for (const checked of [true, false]) {
    const h = await load({}, checked);
    const ctx = h.createContext({});
    for (const hostile of hostileRtp(1000)) expectDrop(h.run({ ctx, bytes: hostile.bytes }), hostile.reason, hostile.name);
  }
});

test("more malformed headers: version 3, truncated extension header, two-byte extension overrun", async () => {
  const h = await load();
  const ctx = h.createContext({});
  const v3 = buildRtp({ seq: 1 });
  v3[0] = (v3[0]! & 0x3f) | 0xc0;
  expectDrop(h.run({ ctx, bytes: v3 }), DropReason.BadVersion, "version 3");

  const cut = buildRtp({ seq: 1, payloadSize: 0, csrcs: [1] }); // 16 bytes: no room for an extension header
  cut[0] = cut[0]! | 0x10;
  expectDrop(h.run({ ctx, bytes: cut }), DropReason.ExtensionOverrun, "extension header cut off");

  const twoByte = buildRtp({ seq: 1, payloadSize: 8 });
  twoByte[0] = twoByte[0]! | 0x10;
  twoByte.set([0x10, 0x00, 0x00, 0x03], 12); // 0x1000 profile, 3 words, only 4 bytes follow
  expectDrop(h.run({ ctx, bytes: twoByte }), DropReason.ExtensionOverrun, "two-byte extension overrun");

  const tooShort = new Uint8Array([0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
  expectDrop(h.run({ ctx, bytes: tooShort }), DropReason.TooShort, "11 bytes");
});

test("edge cases that are valid: full CSRC list, padding filling the payload, empty payload", async () => {
  const h = await load({ rootConfig: { probation: 0 } });
  const ctx = h.createContext({});
  const csrcs = Array.from({ length: 15 }, (_, i) => i + 1);
  assert.is(h.run({ ctx, bytes: buildRtp({ seq: 1, csrcs, payloadSize: 0 }) }).verdict, "pass", "15 CSRCs, no payload");
  assert.is(h.run({ ctx, bytes: buildRtp({ seq: 2, payloadSize: 0, padding: 4 }) }).verdict, "pass", "padding only");
  const ext = buildRtp({ seq: 3, extensions: [[1, new Uint8Array([7])], [2, new Uint8Array([1, 2, 3])]] });
  assert.is(h.run({ ctx, bytes: ext }).verdict, "pass", "one-byte extension elements");
});

test("hostile packets leave no source state behind", async () => {
  const h = await load();
  const ctx = h.createContext({ maxSources: 1 });
  for (let seed = 1; seed <= 300; seed++) {
    const junk = pseudoRandomBytes(8 + (seed % 120), seed);
    junk[0] = (junk[0]! & 0x3f) | 0x40; // version 1: never valid
    h.run({ ctx, bytes: junk });
  }
  assert.is(h.metric("sources", ctx) ?? 0, 0);
  assert.equal(sequence(h, ctx, [1, 2]), ["probation", ""]);
});

test("random bytes never trap the filter, RTP or RTCP", async () => {
  const h = await load({ rootConfig: { probation: 0 } });
  const ctx = h.createContext({ maxSources: 4, sourceTimeoutMs: 0 });
  for (let batch = 0; batch < 100; batch++) {
    const packets = Array.from({ length: 32 }, (_, k) => {
      const seed = batch * 64 + k + 1;
      const b = pseudoRandomBytes(1 + (seed * 7919) % 300, seed);
      if (k % 2 === 0) b[0] = 0x80 | (b[0]! & 0x3f); // version 2: reach the deeper checks
      return { ctx, bytes: b, flags: k % 4 === 1 ? PacketFlag.Rtcp : 0 };
    });
    h.runBatch(packets);
  }
});

// ---- probation and sequence (RFC 3550 A.1 update_seq) ----

test("a new source is on probation for MIN_SEQUENTIAL (2) packets", async () => {
  const h = await load();
  const ctx = h.createContext({});
  assert.equal(sequence(h, ctx, [500, 501, 502]), ["probation", "", ""]);
});

test("probation restarts on a gap, and is configurable (0 and 3)", async () => {
  const h = await load();
  const gap = h.createContext({});
  assert.equal(sequence(h, gap, [10, 12, 13, 14]), ["probation", "probation", "", ""]);
  const none = h.createContext({ probation: 0 });
  assert.equal(sequence(h, none, [10, 11]), ["", ""]);
  const three = h.createContext({ probation: 3 });
  assert.equal(sequence(h, three, [10, 11, 12, 13]), ["probation", "probation", "", ""]);
});

test("probation follows the sequence across the 16-bit wrap", async () => {
  const h = await load();
  const ctx = h.createContext({});
  assert.equal(sequence(h, ctx, [65535, 0, 1]), ["probation", "", ""]);
});

test("sequence numbers wrap without complaint", async () => {
  const h = await load();
  const ctx = h.createContext({});
  assert.equal(sequence(h, ctx, [65533, 65534, 65535, 0, 1, 2]), ["probation", "", "", "", "", ""]);
});

test("a jump of MAX_DROPOUT is bad; the packet after it resyncs (bad_seq rule)", async () => {
  const h = await load();
  const ctx = h.createContext({});
  assert.equal(sequence(h, ctx, [100, 101]), ["probation", ""]);
  assert.equal(sequence(h, ctx, [101 + 2999]), [""], "a jump of MAX_DROPOUT - 1 is in order");
  assert.equal(sequence(h, ctx, [3100 + 3000]), ["bad_sequence"], "a jump of MAX_DROPOUT is bad");
  assert.equal(sequence(h, ctx, [3101, 3102]), ["", ""], "the old sequence still continues");
  assert.equal(sequence(h, ctx, [40000, 40001, 40002]), ["bad_sequence", "", ""], "two in a row: the sender restarted");
  assert.equal(sequence(h, ctx, [3103]), ["bad_sequence"], "after a resync the old numbers are the jump");
});

test("reordering up to MAX_MISORDER is accepted, beyond it is a bad sequence", async () => {
  const h = await load();
  const ctx = h.createContext({});
  assert.equal(sequence(h, ctx, [1000, 1001, 1200]), ["probation", "", ""]);
  assert.equal(sequence(h, ctx, [1200 - 99, 1200]), ["", ""], "99 back: reordered (and duplicates are valid)");
  assert.equal(sequence(h, ctx, [1200 - 100]), ["bad_sequence"], "100 back: treated as a jump");
});

test("maxDropout and maxMisorder are configurable", async () => {
  const h = await load();
  const ctx = h.createContext({ maxDropout: 10, maxMisorder: 5, probation: 0 });
  // 119 jumps 10 (bad); 114 is in order; 110 is 4 back (reordered); 109 is 5 back (a jump).
  assert.equal(sequence(h, ctx, [100, 109, 119, 114, 110, 109]), ["", "", "bad_sequence", "", "", "bad_sequence"]);
});

test("sources are tracked per SSRC", async () => {
  const h = await load();
  const ctx = h.createContext({});
  const a = buildRtp({ seq: 1, ssrc: 1 });
  const b = buildRtp({ seq: 40000, ssrc: 2 });
  const r = h.runBatch([{ ctx, bytes: a }, { ctx, bytes: b }, { ctx, bytes: buildRtp({ seq: 2, ssrc: 1 }) }, { ctx, bytes: buildRtp({ seq: 40001, ssrc: 2 }) }]);
  assert.equal(r.packets.map(outcome), ["probation", "probation", "", ""]);
  assert.is(h.metric("sources", ctx), 2);
});

// ---- policy ----

test("allowedSsrcs and allowedPayloadTypes", async () => {
  const h = await load({ rootConfig: { probation: 0 } });
  const ctx = h.createContext({ allowedSsrcs: [1, 0xffffffff], allowedPayloadTypes: [0, 96, 127] });
  assert.is(h.run({ ctx, bytes: buildRtp({ seq: 1, ssrc: 1, payloadType: 96 }) }).verdict, "pass");
  assert.is(h.run({ ctx, bytes: buildRtp({ seq: 1, ssrc: 0xffffffff, payloadType: 127 }) }).verdict, "pass");
  assert.is(h.run({ ctx, bytes: buildRtp({ seq: 2, ssrc: 1, payloadType: 0 }) }).verdict, "pass");
  expectDrop(h.run({ ctx, bytes: buildRtp({ seq: 1, ssrc: 2 }) }), DropReason.SsrcNotAllowed, "SSRC 2");
  expectDrop(h.run({ ctx, bytes: buildRtp({ seq: 3, ssrc: 1, payloadType: 97 }) }), DropReason.PayloadTypeNotAllowed, "PT 97");
  expectDrop(h.run({ ctx, bytes: buildRtp({ seq: 3, ssrc: 1, payloadType: 63 }) }), DropReason.PayloadTypeNotAllowed, "PT 63");
  assert.is(h.metric("drops_ssrc_not_allowed", ctx), 1);
  assert.is(h.metric("drops_payload_type_not_allowed", ctx), 2);
});

test("a payload type not allowed in the allowed ones' SSRC (DTMF, RED) counts in the sequence: the allowed packets pass probation and go, the others are dropped as not allowed", async () => {
  for (const holdPackets of [0, 64]) {
    const h = await load({ rootConfig: { holdPackets } });
    const ctx = h.createContext({ allowedPayloadTypes: [96] });
    // 96, 97, 96, 97...: each allowed packet two numbers after the last
    const r = h.runBatch(Array.from({ length: 20 }, (_, i) => ({ ctx, bytes: buildRtp({ seq: 100 + i, ssrc: SSRC, payloadType: 96 + (i % 2) }) })));
    const got = r.packets.map(outcome);
    const allowed = got.filter((_, i) => i % 2 === 0);
    assert.ok(got.filter((_, i) => i % 2 === 1).every((x) => x === "payload_type_not_allowed"), `holdPackets ${holdPackets}: ${got}`);
    if (holdPackets === 0) {
      // RFC 3550 A.1 probation (2 in sequence): the first allowed packet is dropped, the rest go
      assert.equal(allowed, ["probation", ...new Array<string>(9).fill("")], got.join());
    } else {
      // held through probation, then each sent in order behind it: every allowed packet goes
      const seqs = r.outputs.map((o) => (o.bytes[2]! << 8) | o.bytes[3]!);
      assert.equal(seqs, Array.from({ length: 10 }, (_, i) => 100 + 2 * i), got.join());
    }
    assert.is(h.metric("drops_payload_type_not_allowed", ctx), 10);
    // a source whose first packet is of a type not allowed gets no state
    const other = h.run({ ctx, bytes: buildRtp({ seq: 1, ssrc: 0x5eed, payloadType: 97 }) });
    expectDrop(other, DropReason.PayloadTypeNotAllowed, "unknown source, PT 97");
  }
});

test("minSize and maxSize", async () => {
  const h = await load({ rootConfig: { probation: 0 } });
  const ctx = h.createContext({ minSize: 40, maxSize: 200 });
  expectDrop(h.run({ ctx, bytes: buildRtp({ seq: 1, payloadSize: 27 }) }), DropReason.TooShort, "39 bytes");
  assert.is(h.run({ ctx, bytes: buildRtp({ seq: 1, payloadSize: 28 }) }).verdict, "pass", "40 bytes");
  assert.is(h.run({ ctx, bytes: buildRtp({ seq: 2, payloadSize: 188 }) }).verdict, "pass", "200 bytes");
  expectDrop(h.run({ ctx, bytes: buildRtp({ seq: 3, payloadSize: 189 }) }), DropReason.TooLarge, "201 bytes");
});

test("maxSources: a full table refuses new SSRCs, and recycles one silent for sourceTimeoutMs", async () => {
  const h = await load({ rootConfig: { probation: 0 } });
  const ctx = h.createContext({ maxSources: 2, sourceTimeoutMs: 1000 });
  assert.equal(sequence(h, ctx, [1], 1), [""]);
  assert.equal(sequence(h, ctx, [1], 2), [""]);
  assert.equal(sequence(h, ctx, [1], 3), ["too_many_sources"]);
  h.advanceTime(600_000);
  assert.equal(sequence(h, ctx, [2], 2), [""], "SSRC 2 stays fresh");
  h.advanceTime(600_000);
  assert.equal(sequence(h, ctx, [1], 3), [""], "SSRC 1 was silent for 1.2 s: its slot goes to SSRC 3");
  assert.equal(sequence(h, ctx, [2], 1), ["too_many_sources"], "SSRC 1 is new again, and SSRC 2 and 3 are fresh");
  const never = h.createContext({ maxSources: 1, sourceTimeoutMs: 0 });
  assert.equal(sequence(h, never, [1], 1), [""]);
  h.advanceTime(3_600_000_000);
  assert.equal(sequence(h, never, [1], 2), ["too_many_sources"]);
});

test("rate limit in packets per second: burst, then one packet per 1/rate", async () => {
  const h = await load({ rootConfig: { probation: 0 } });
  const ctx = h.createContext({ rate: { packetsPerSecond: 10, burstPackets: 5 } });
  assert.equal(sequence(h, ctx, [1, 2, 3, 4, 5, 6]), ["", "", "", "", "", "rate_limit_packets"]);
  h.advanceTime(99_000);
  assert.equal(sequence(h, ctx, [7]), ["rate_limit_packets"], "99 ms: not yet a token");
  h.advanceTime(1_000);
  assert.equal(sequence(h, ctx, [8, 9]), ["", "rate_limit_packets"]);
  h.advanceTime(10_000_000);
  assert.equal(sequence(h, ctx, [10, 11, 12, 13, 14, 15]), ["", "", "", "", "", "rate_limit_packets"], "the bucket caps at the burst");
  assert.equal(sequence(h, ctx, [1], 0xabc), [""], "another SSRC has its own bucket");
  assert.is(h.metric("drops_rate_limit_packets", ctx), 4);
});

test("rate limit in bits per second, and the default burst of one second", async () => {
  const h = await load({ rootConfig: { probation: 0 } });
  // 172-byte packets are 1376 bits: a burst of 8000 bits holds 5 of them.
  const ctx = h.createContext({ rate: { bitsPerSecond: 8000 } });
  const run = (seqs: number[]): string[] =>
    h.runBatch(seqs.map((seq) => ({ ctx, bytes: buildRtp({ seq, payloadSize: 160 }) }))).packets.map(outcome);
  assert.equal(run([1, 2, 3, 4, 5, 6]), ["", "", "", "", "", "rate_limit_bits"]);
  h.advanceTime(172_000); // 1376 bits at 8000 bit/s
  assert.equal(run([7, 8]), ["", "rate_limit_bits"]);
});

test("rate limits use each packet's arrival time", async () => {
  const h = await load({ rootConfig: { probation: 0 } });
  const ctx = h.createContext({ rate: { packetsPerSecond: 1000, burstPackets: 1 } });
  const t = h.nowUs;
  const r = h.runBatch([0, 1, 2, 3].map((k) => ({ ctx, bytes: buildRtp({ seq: k + 1 }), arrivalUs: t + [0, 500, 1000, 2000][k]! })));
  assert.equal(r.packets.map(outcome), ["", "rate_limit_packets", "", ""]);
});

// ---- RTCP (RFC 3550 A.2) ----

test("valid compound RTCP passes: RR, SR + SDES + BYE, padded last packet", async () => {
  const h = await load();
  const ctx = h.createContext({});
  const ok = (b: Uint8Array, what: string): void => assert.is(h.run({ ctx, bytes: b, flags: PacketFlag.Rtcp }).verdict, "pass", what);
  ok(buildRtcpReceiverReport(), "lone RR");
  ok(bytes(rr(2), sdes()), "RR with 2 report blocks + SDES");
  ok(bytes(sr(), sdes(), bye()), "SR + SDES + BYE");
  ok(bytes(rr(), rtcp(204, 0, [...u32(1), 0x4d, 0x53, 0x4d, 0x31]), pli()), "RR + APP + PSFB");
  ok(bytes(rr(), rtcp(202, 1, [...u32(0x55667788), 1, 2, 0x61, 0x62, 0, 0, 0, 0], 8)), "padded SDES last");
});

test("malformed RTCP is dropped with the A.2 reason", async () => {
  const h = await load();
  const ctx = h.createContext({});
  const cases: [string, Uint8Array, DropReason][] = [
    ["4 bytes", new Uint8Array([0x80, 201, 0, 0]), DropReason.TooShort],
    ["version 1", (() => { const b = buildRtcpReceiverReport(); b[0] = 0x40; return b; })(), DropReason.BadVersion],
    ["SDES first", bytes(sdes(), rr()), DropReason.RtcpBadFirst],
    ["PSFB first", bytes(pli()), DropReason.RtcpBadFirst],
    ["padding on the first packet", bytes(rtcp(201, 0, u32(1), 4)), DropReason.RtcpBadFirst],
    ["length not a multiple of 4", new Uint8Array([...rr(), 0, 0]), DropReason.RtcpBadLength],
    ["length field past the end", (() => { const b = bytes(rr()); b[3] = 5; return b; })(), DropReason.RtcpBadLength],
    ["trailing bytes after the last packet", new Uint8Array([...rr(), 0x80, 202, 0, 3, 0, 0, 0, 0]), DropReason.RtcpBadLength],
    ["report count past the length", (() => { const b = bytes(rr()); b[0] = 0x81; return b; })(), DropReason.RtcpBadLength],
    ["SDES item past its chunk", bytes(rr(), rtcp(202, 1, [...u32(1), 1, 9, 0x61, 0x62, 0, 0, 0, 0])), DropReason.RtcpBadLength],
    ["BYE count past the length", bytes(rr(), rtcp(203, 3, u32(1))), DropReason.RtcpBadLength],
    ["second packet version 0", (() => { const b = bytes(rr(), sdes()); b[8] = 0x01; return b; })(), DropReason.BadVersion],
    ["padding on a packet that is not last", bytes(rr(), rtcp(202, 0, [], 4), bye()), DropReason.RtcpBadCompound],
    ["padding count 0", (() => { const b = bytes(rr(), rtcp(203, 1, u32(1), 4)); b[b.length - 1] = 0; return b; })(), DropReason.BadPadding],
    ["padding count past the packet", (() => { const b = bytes(rr(), rtcp(203, 1, u32(1), 4)); b[b.length - 1] = 12; return b; })(), DropReason.BadPadding],
  ];
  for (const [name, b, reason] of cases) expectDrop(h.run({ ctx, bytes: b, flags: PacketFlag.Rtcp }), reason, name);
});

test("reducedSizeRtcp accepts a lone feedback packet (RFC 5506); validateRtcp false skips RTCP", async () => {
  const h = await load();
  const strict = h.createContext({});
  const reduced = h.createContext({ reducedSizeRtcp: true });
  const off = h.createContext({ validateRtcp: false });
  expectDrop(h.run({ ctx: strict, bytes: bytes(pli()), flags: PacketFlag.Rtcp }), DropReason.RtcpBadFirst, "strict");
  assert.is(h.run({ ctx: reduced, bytes: bytes(pli()), flags: PacketFlag.Rtcp }).verdict, "pass");
  expectDrop(h.run({ ctx: reduced, bytes: bytes(rtcp(96, 0, u32(1))), flags: PacketFlag.Rtcp }), DropReason.RtcpBadFirst, "not an RTCP type");
  assert.is(h.run({ ctx: off, bytes: new Uint8Array([1, 2, 3]), flags: PacketFlag.Rtcp }).verdict, "pass");
});

test("upstream: RTCP is checked, anything else passes; generated packets pass", async () => {
  const h = await load();
  const ctx = h.createContext({ allowedSsrcs: [1] });
  const up = PacketFlag.Upstream;
  expectDrop(h.run({ ctx, bytes: bytes(sdes()), flags: up | PacketFlag.Rtcp }), DropReason.RtcpBadFirst, "upstream RTCP");
  assert.is(h.run({ ctx, bytes: bytes(rr()), flags: up | PacketFlag.Rtcp }).verdict, "pass");
  assert.is(h.run({ ctx, bytes: new Uint8Array([0, 1, 2]), flags: up }).verdict, "pass", "upstream non-RTCP");
  assert.is(h.run({ ctx, bytes: buildRtp({ seq: 1, ssrc: 9 }), flags: PacketFlag.Generated }).verdict, "pass", "generated");
});

// ---- config ----

test("unknown config keys are rejected, naming the key", async () => {
  const h = await load();
  const rejected = (config: unknown, pattern: RegExp): void => {
    try {
      h.createContext(config);
    } catch (err) {
      assert.instance(err, FilterConfigError);
      assert.match((err as Error).message, pattern);
      return;
    }
    assert.unreachable(`config ${JSON.stringify(config)} was accepted`);
  };
  rejected({ probaton: 2 }, /unknown config key 'probaton'/);
  rejected({ rate: { packetsPerSecond: 1, burst: 2 } }, /unknown config key 'rate\.burst'/);
  rejected({ probation: "two" }, /config key 'probation' must be an integer/);
  rejected({ probation: 256 }, /config key 'probation' must be between 0 and 255/);
  rejected({ maxDropout: 1.5 }, /config key 'maxDropout' must be an integer/);
  rejected({ allowedSsrcs: [1, -1] }, /config key 'allowedSsrcs' must be an array of integers between 0 and 4294967295/);
  rejected({ allowedSsrcs: [] }, /'allowedSsrcs' must not be empty/);
  rejected({ allowedPayloadTypes: [128] }, /'allowedPayloadTypes' must be an array of integers between 0 and 127/);
  rejected({ validateRtcp: 1 }, /'validateRtcp' must be true or false/);
  rejected({ rate: 5 }, /'rate' must be an object/);
  rejected({ maxSources: 0 }, /'maxSources' must be between 1 and 1024/);
  rejected({ maxDropout: 60000, maxMisorder: 6000 }, /'maxDropout' \+ 'maxMisorder' must not exceed 65536/);
  rejected({ minSize: 100, maxSize: 50 }, /'maxSize' must be 0 \(no limit\) or at least 'minSize'/);
  rejected({ holdPackets: 256 }, /config key 'holdPackets' must be between 0 and 255/);
  rejected({ holdTimeoutMs: 0 }, /config key 'holdTimeoutMs' must be between 1 and 60000/);
  rejected({ srtp: "either" }, /config key 'srtp' must be "none", "downstream", "upstream" or "both"/);
  rejected({ srtp: true }, /config key 'srtp' must be a string/);
  rejected({ holdStorePackets: 16 }, /config key 'holdStorePackets' can only be set in the filter's root config/);
  assert.ok(h.createContext({ probation: null, rate: {} }) > 0, "null and {} mean the defaults");
});

test("a root config with an unknown key refuses the filter; root keys are defaults for contexts", async () => {
  const refused = async (rootConfig: unknown, pattern: RegExp): Promise<void> => {
    try {
      await load({ rootConfig });
    } catch (err) {
      assert.match((err as Error).message, pattern);
      return;
    }
    assert.unreachable(`root config ${JSON.stringify(rootConfig)} accepted`);
  };
  await refused({ nope: true }, /unknown config key 'nope'/);
  await refused({ holdStorePackets: 4097 }, /config key 'holdStorePackets' must be between 0 and 4096/);
  const h = await load({ rootConfig: { probation: 0, rate: { packetsPerSecond: 1, burstPackets: 1 } } });
  const inherits = h.createContext({});
  assert.equal(sequence(h, inherits, [1, 2]), ["", "rate_limit_packets"]);
  const overrides = h.createContext({ probation: 1, rate: { burstPackets: 2 } });
  assert.equal(sequence(h, overrides, [1, 2, 3]), ["", "", "rate_limit_packets"], "probation 1 passes the first packet; burst 2 from the context, rate 1/s from the root");
});

// ---- metrics ----

test("every verdict is counted: packets_passed and drops_<reason>", async () => {
  const h = await load();
  const a = h.createContext({});
  const b = h.createContext({});
  const packets = [
    { ctx: a, bytes: buildRtp({ seq: 1 }) },
    { ctx: a, bytes: buildRtp({ seq: 2 }) },
    { ctx: b, bytes: new Uint8Array(5) },
    { ctx: a, bytes: buildRtp({ seq: 3 }) },
    { ctx: b, bytes: buildRtp({ seq: 7 }) },
  ];
  h.runBatch(packets);
  assert.is(h.metric("packets_passed", a), 2);
  assert.is(h.metric("drops_probation", a), 1);
  assert.is(h.metric("drops_too_short", b), 1);
  assert.is(h.metric("drops_probation", b), 1);
  assert.is(h.metric("packets_passed", b) ?? 0, 0);
});

// ---- contexts and hot swap ----

test("a destroyed context's state is not inherited by the next one", async () => {
  const h = await load();
  for (let round = 0; round < 50; round++) {
    const ctx = h.createContext({ maxSources: 1 + (round % 7) });
    assert.equal(sequence(h, ctx, [round * 10, round * 10 + 1]), ["probation", ""], `round ${round}`);
    h.destroyContext(ctx);
  }
});

test("state export/import carries probation, sequence and rate state to a new instance", async () => {
  const oldH = await load();
  const oldCtx = oldH.createContext({ rate: { packetsPerSecond: 1, burstPackets: 3 } });
  assert.equal(sequence(oldH, oldCtx, [100, 101, 102]), ["probation", "", ""]);
  assert.equal(sequence(oldH, oldCtx, [500], 0x77), ["probation"]);
  const blob = oldH.exportState(oldCtx);
  assert.ok(blob && blob.length > 0, "a blob");

  const newH = await load({ startUs: oldH.nowUs });
  const ctx = newH.createContext({ rate: { packetsPerSecond: 1, burstPackets: 3 } });
  assert.equal(newH.importState(ctx, blob!), { ok: true, reason: "" });
  assert.is(newH.metric("sources", ctx), 2);
  assert.equal(sequence(newH, ctx, [103, 104]), ["", "rate_limit_packets"], "no new probation; one token left");
  assert.equal(sequence(newH, ctx, [501], 0x77), [""], "the source on probation completes it");
  assert.equal(sequence(newH, ctx, [104 + 5000]), ["bad_sequence"], "max_seq came along");
});

test("import keeps only allowed SSRCs and at most maxSources, most recent first", async () => {
  const oldH = await load({ rootConfig: { probation: 0 } });
  const oldCtx = oldH.createContext({});
  for (const ssrc of [1, 2, 3]) {
    sequence(oldH, oldCtx, [10], ssrc);
    oldH.advanceTime(1000);
  }
  const blob = oldH.exportState(oldCtx)!;
  const newH = await load({ rootConfig: { probation: 0 }, startUs: oldH.nowUs });
  const ctx = newH.createContext({ maxSources: 2, allowedSsrcs: [1, 2, 3, 4] });
  assert.is(newH.importState(ctx, blob).ok, true);
  assert.is(newH.metric("sources", ctx), 2);
  assert.equal(sequence(newH, ctx, [5000], 3), ["bad_sequence"], "SSRC 3 (most recent) kept its sequence");
  assert.equal(sequence(newH, ctx, [4], 4), ["too_many_sources"], "the table is full with SSRCs 2 and 3");
  const only1 = newH.createContext({ allowedSsrcs: [1] });
  assert.is(newH.importState(only1, blob).ok, true);
  assert.is(newH.metric("sources", only1), 1);
});

test("a blob this version does not understand is refused as BadState", async () => {
  const h = await load();
  const ctx = h.createContext({});
  assert.is(h.importState(ctx, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])).ok, false);
  const good = h.exportState(ctx)!;
  const truncated = good.slice();
  truncated[8] = 5; // claims 5 records, has none
  assert.is(h.importState(ctx, truncated).ok, false);
  assert.is(h.importState(ctx, new Uint8Array(0)).ok, true, "an empty blob means nothing to carry");
});

test.run();
