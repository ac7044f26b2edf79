// validate placed before the srtp stage: SRTCP checked as plain RTCP is dropped (its compound is
// ciphertext), so the `srtp` key names the protected direction and validate checks only what is
// in clear there. Packets are protected by the real srtp filter, through the harness.
import * as assert from "uvu/assert";
import { FilterHarness, PacketFlag, buildRtp, pseudoRandomBytes, type PacketResult } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import { filterWasm } from "../../../test/lib/paths.js";

const test = suite("validate before srtp");
const KEY = `inline:${Buffer.from(pseudoRandomBytes(30, 7)).toString("base64")}`;
const SRTP = { suite: "AES_CM_128_HMAC_SHA1_80", key: KEY };

const u32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
/** One RTCP packet: header + body (a multiple of 4 bytes). */
const rtcp = (type: number, count: number, body: number[]): number[] => [0x80 | count, type, 0, body.length / 4, ...body];
const rr = (): number[] => rtcp(201, 0, u32(0x55667788));
const sr = (): number[] => rtcp(200, 0, [...u32(0x55667788), ...new Array<number>(20).fill(0)]);
const sdes = (): number[] => rtcp(202, 1, [...u32(0x55667788), 1, 2, 0x61, 0x62, 0, 0, 0, 0]);
const bye = (): number[] => rtcp(203, 1, u32(0x55667788));
const pli = (): number[] => rtcp(206, 1, [...u32(1), ...u32(2)]);
const bytes = (...parts: number[][]): Uint8Array => new Uint8Array(parts.flat());

async function harnesses() {
  const validate = await FilterHarness.load(filterWasm("validate", true), { name: "validate", rootConfig: { probation: 0 } });
  const srtp = await FilterHarness.load(filterWasm("srtp", true), { name: "srtp" });
  const protect = srtp.createContext({ direction: "protect", ...SRTP });
  const unprotect = srtp.createContext({ direction: "unprotect", ...SRTP });
  /** What the srtp filter makes of a packet (SRTP or, with the Rtcp flag, SRTCP). */
  const protectedBytes = (b: Uint8Array, flags = 0): Uint8Array => {
    const r = srtp.run({ ctx: protect, bytes: b, flags });
    assert.is(r.verdict, "pass", "srtp protected it");
    return r.bytes;
  };
  return { validate, srtp, unprotect, protectedBytes };
}

const verdict = (r: PacketResult): string => (r.verdict === "drop" ? r.reasonName : r.verdict);

test("SRTCP: dropped when checked as plain RTCP; with srtp: downstream it passes, and srtp unprotect gets it whole", async () => {
  const { validate, srtp, unprotect, protectedBytes } = await harnesses();
  const plain = validate.createContext({});
  const aware = validate.createContext({ srtp: "downstream" });
  for (const [name, compound] of [["RR", bytes(rr())], ["SR + SDES + BYE", bytes(sr(), sdes(), bye())]] as const) {
    const srtcp = protectedBytes(compound, PacketFlag.Rtcp);
    assert.is(validate.run({ ctx: plain, bytes: srtcp, flags: PacketFlag.Rtcp }).verdict, "drop", `${name}: the ciphertext fails A.2`);
    const r = validate.run({ ctx: aware, bytes: srtcp, flags: PacketFlag.Rtcp });
    assert.is(verdict(r), "pass", name);
    const clear = srtp.run({ ctx: unprotect, bytes: r.bytes, flags: PacketFlag.Rtcp });
    assert.equal(clear.bytes, compound, `${name}: unchanged by validate`);
  }
});

test("SRTCP: what is in clear is still checked", async () => {
  const { validate, protectedBytes } = await harnesses();
  const ctx = validate.createContext({ srtp: "downstream" });
  const srtcp = protectedBytes(bytes(sr(), sdes()), PacketFlag.Rtcp);
  const edited = (edit: (b: Uint8Array) => void): Uint8Array => {
    const b = srtcp.slice();
    edit(b);
    return b;
  };
  const cases: [string, Uint8Array, string][] = [
    ["11 bytes", srtcp.slice(0, 11), "too_short"],
    ["version 1", edited((b) => (b[0] = (b[0]! & 0x3f) | 0x40)), "bad_version"],
    ["SDES first", edited((b) => (b[1] = 202)), "rtcp_bad_first"],
    ["padding on the first packet", edited((b) => (b[0] = b[0]! | 0x20)), "rtcp_bad_first"],
    ["first packet past the SRTCP index", edited((b) => (b[3] = Math.floor((srtcp.length - 4) / 4))), "rtcp_bad_length"],
  ];
  for (const [name, b, reason] of cases) assert.is(verdict(validate.run({ ctx, bytes: b, flags: PacketFlag.Rtcp })), reason, name);
  const fits = edited((b) => (b[3] = Math.floor((srtcp.length - 4) / 4) - 1));
  assert.is(verdict(validate.run({ ctx, bytes: fits, flags: PacketFlag.Rtcp })), "pass", "a first packet that ends at the index");

  const reduced = validate.createContext({ srtp: "downstream", reducedSizeRtcp: true });
  assert.is(verdict(validate.run({ ctx: reduced, bytes: protectedBytes(bytes(pli()), PacketFlag.Rtcp), flags: PacketFlag.Rtcp })), "pass", "RFC 5506: a lone PLI");
  assert.is(verdict(validate.run({ ctx: reduced, bytes: edited((b) => (b[1] = 96)), flags: PacketFlag.Rtcp })), "rtcp_bad_first", "not an RTCP type");
});

test("srtp: upstream protects only the receivers' feedback; the other direction is checked in full", async () => {
  const { validate, protectedBytes } = await harnesses();
  const ctx = validate.createContext({ srtp: "upstream" });
  const srtcp = protectedBytes(bytes(rr(), pli()), PacketFlag.Rtcp);
  const up = PacketFlag.Upstream | PacketFlag.Rtcp;
  assert.is(verdict(validate.run({ ctx, bytes: srtcp, flags: up })), "pass", "upstream SRTCP");
  assert.is(validate.run({ ctx, bytes: srtcp, flags: PacketFlag.Rtcp }).verdict, "drop", "downstream is plain here: SRTCP there is junk");
  assert.is(verdict(validate.run({ ctx, bytes: bytes(rr(), [0x80, 202, 0, 3, 0, 0, 0, 0]), flags: PacketFlag.Rtcp })), "rtcp_bad_length", "downstream RTCP: the compound walk");
  assert.is(verdict(validate.run({ ctx, bytes: bytes(sdes()), flags: up })), "rtcp_bad_first", "the clear header of upstream SRTCP");
});

test("srtp: both (before an srtp unprotect stage with a reverseKey): SRTCP passes both ways, plain RTCP is junk both ways", async () => {
  const { validate, protectedBytes } = await harnesses();
  const ctx = validate.createContext({ srtp: "both" });
  const srtcp = protectedBytes(bytes(rr(), pli()), PacketFlag.Rtcp);
  for (const flags of [PacketFlag.Rtcp, PacketFlag.Upstream | PacketFlag.Rtcp]) {
    assert.is(verdict(validate.run({ ctx, bytes: srtcp, flags })), "pass", `SRTCP, flags ${flags}`);
    assert.is(verdict(validate.run({ ctx, bytes: bytes(sdes()), flags })), "rtcp_bad_first", `the clear header, flags ${flags}`);
  }
});

test("SRTP with the padding bit: the count is encrypted, so only the protected direction skips it", async () => {
  const { validate, protectedBytes } = await harnesses();
  const plain = validate.createContext({});
  const aware = validate.createContext({ srtp: "downstream" });
  // the last octet of SRTP is the tag's: find a packet where, read as a padding count, it is wrong
  let found = false;
  for (let seq = 1; seq < 200 && !found; seq++) {
    const b = protectedBytes(buildRtp({ seq, payloadSize: 4, padding: 4 }));
    const r = validate.run({ ctx: plain, bytes: b });
    if (r.verdict !== "drop") continue;
    found = true;
    assert.is(r.reasonName, "bad_padding");
    assert.is(verdict(validate.run({ ctx: aware, bytes: b })), "pass", `seq ${seq}`);
  }
  assert.ok(found, "a tag whose last octet is not a valid padding count");
  const badPlain = buildRtp({ seq: 500, payloadSize: 4, padding: 4 });
  badPlain[badPlain.length - 1] = 0;
  assert.is(verdict(validate.run({ ctx: plain, bytes: badPlain })), "bad_padding", "plain RTP keeps the padding check");
});

test.run();
