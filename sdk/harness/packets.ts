// Packet builders for tests, demos and benchmarks: well-formed RTP and RTCP, and a catalogue of
// hostile packets, each named and paired with the drop reason a conformant validator gives it.
import { DropReason } from "../../runtime/abi.js";

export interface RtpFields {
  /** The sequence number (taken modulo 65536, so a counter can run past a wrap). */
  seq: number;
  /** Default: seq * 3000. */
  timestamp?: number;
  ssrc?: number;
  payloadType?: number;
  marker?: boolean;
  csrcs?: readonly number[];
  /** RFC 8285 one-byte extension elements: [id, data]. */
  extensions?: readonly [number, Uint8Array][];
  payloadSize?: number;
  /** Padding bytes to add (sets the P bit; last byte holds the count). */
  padding?: number;
  /** Fills the payload; default: the sequence number's low byte. */
  payloadByte?: number;
}

const RTP_FIELDS = [
  "seq", "timestamp", "ssrc", "payloadType", "marker", "csrcs", "extensions", "payloadSize", "padding", "payloadByte",
] as const satisfies readonly (keyof RtpFields)[];

function expectInt(value: unknown, max: number, what: string): void {
  if (!(Number.isInteger(value) && (value as number) >= 0 && (value as number) <= max)) {
    throw new RangeError(`buildRtp: ${what} must be an integer 0-${max}, got ${value}`);
  }
}

/**
 * Builds an RTP packet (RFC 3550 section 5.1). Throws a TypeError for a field it does not know
 * (a test in plain JavaScript has no type check) and a RangeError for a value the header cannot
 * hold, instead of writing a broken packet: build those with hostileRtp or by hand.
 */
export function buildRtp(f: RtpFields): Uint8Array {
  for (const key of Object.keys(f)) {
    if (!(RTP_FIELDS as readonly string[]).includes(key)) throw new TypeError(`buildRtp: unknown field '${key}'; it takes ${RTP_FIELDS.join(", ")}`);
  }
  if (!Number.isInteger(f.seq)) throw new RangeError(`buildRtp: seq must be an integer (taken modulo 65536), got ${f.seq}`);
  if (f.payloadType !== undefined) expectInt(f.payloadType, 127, "payloadType");
  if (f.padding !== undefined) expectInt(f.padding, 255, "padding");
  if (f.payloadSize !== undefined) expectInt(f.payloadSize, 65_535, "payloadSize");
  if (f.csrcs !== undefined && f.csrcs.length > 15) throw new RangeError(`buildRtp: at most 15 csrcs, got ${f.csrcs.length}`);
  (f.extensions ?? []).forEach(([id, data], i) => {
    if (!(Number.isInteger(id) && id >= 1 && id <= 14)) throw new RangeError(`buildRtp: extension element ${i}: id must be 1-14 (the one-byte form, RFC 8285 4.2), got ${id}`);
    if (!(data instanceof Uint8Array) || data.length < 1 || data.length > 16) {
      throw new RangeError(`buildRtp: extension element ${i}: data must be 1-16 bytes (the one-byte form), got ${data instanceof Uint8Array ? data.length : String(data)}`);
    }
  });
  const csrcs = f.csrcs ?? [];
  let extBytes = 0;
  if (f.extensions && f.extensions.length > 0) {
    const raw = f.extensions.reduce((n, [, d]) => n + 1 + d.length, 0);
    extBytes = 4 + Math.ceil(raw / 4) * 4;
  }
  const payload = f.payloadSize ?? 160;
  const padding = f.padding ?? 0;
  const size = 12 + csrcs.length * 4 + extBytes + payload + padding;
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  b[0] = 0x80 | (padding > 0 ? 0x20 : 0) | (extBytes > 0 ? 0x10 : 0) | csrcs.length;
  b[1] = ((f.marker ? 1 : 0) << 7) | ((f.payloadType ?? 96) & 0x7f);
  v.setUint16(2, f.seq & 0xffff);
  v.setUint32(4, (f.timestamp ?? f.seq * 3000) >>> 0);
  v.setUint32(8, (f.ssrc ?? 0x11223344) >>> 0);
  let at = 12;
  for (const c of csrcs) {
    v.setUint32(at, c >>> 0);
    at += 4;
  }
  if (extBytes > 0) {
    v.setUint16(at, 0xbede);
    v.setUint16(at + 2, (extBytes - 4) / 4);
    let e = at + 4;
    for (const [id, data] of f.extensions!) {
      b[e++] = (id << 4) | (data.length - 1);
      b.set(data, e);
      e += data.length;
    }
    at += extBytes;
  }
  b.fill(f.payloadByte ?? f.seq & 0xff, at, at + payload);
  at += payload;
  if (padding > 0) b[size - 1] = padding;
  return b;
}

function expectU32(value: unknown, what: string): void {
  if (!(Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 0xffffffff)) {
    throw new RangeError(`${what} must be an integer 0-4294967295, got ${value}`);
  }
}

/** A minimal RTCP receiver report (RFC 3550 section 6.4.2) with no report blocks. */
export function buildRtcpReceiverReport(ssrc = 0x55667788): Uint8Array {
  expectU32(ssrc, "buildRtcpReceiverReport: ssrc");
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  b[0] = 0x80;
  b[1] = 201;
  v.setUint16(2, 1);
  v.setUint32(4, ssrc >>> 0);
  return b;
}

/** A report block (RFC 3550 section 6.4.1): what a receiver says about one source. */
export interface RtcpReportBlock {
  ssrc: number;
  /** Loss since the last report, in 1/256 (0-255). */
  fractionLost?: number;
  /** Cumulative number of packets lost: signed 24 bits. */
  cumulativeLost?: number;
  /** Extended highest sequence number received: cycles << 16 | sequence. */
  highestSeq?: number;
  /** Interarrival jitter, in RTP timestamp units. */
  jitter?: number;
  /** LSR: the middle 32 bits of the last SR's NTP timestamp. */
  lastSr?: number;
  /** DLSR: delay since that SR, in 1/65536 s. */
  delaySinceLastSr?: number;
}

export interface RtcpSenderReportFields {
  ssrc: number;
  /** 64-bit NTP timestamp (seconds since 1900 << 32 | fraction). */
  ntp?: bigint;
  rtpTimestamp?: number;
  packetCount?: number;
  octetCount?: number;
  /** At most 31. */
  blocks?: readonly RtcpReportBlock[];
  /** When given, an SDES packet with this CNAME follows the SR in the compound, as RFC 3550 6.1 asks. */
  cname?: string;
}

const SR_FIELDS = ["ssrc", "ntp", "rtpTimestamp", "packetCount", "octetCount", "blocks", "cname"] as const satisfies readonly (keyof RtcpSenderReportFields)[];
const BLOCK_FIELDS = ["ssrc", "fractionLost", "cumulativeLost", "highestSeq", "jitter", "lastSr", "delaySinceLastSr"] as const satisfies readonly (keyof RtcpReportBlock)[];

/**
 * An RTCP compound starting with a sender report (RFC 3550 section 6.4.1) with its report blocks,
 * then the SDES CNAME (section 6.5) when `cname` is given. Run it with `flags: PacketFlag.Rtcp`.
 */
export function buildRtcpSenderReport(f: RtcpSenderReportFields): Uint8Array {
  const what = "buildRtcpSenderReport";
  for (const key of Object.keys(f)) {
    if (!(SR_FIELDS as readonly string[]).includes(key)) throw new TypeError(`${what}: unknown field '${key}'; it takes ${SR_FIELDS.join(", ")}`);
  }
  expectU32(f.ssrc, `${what}: ssrc`);
  const blocks = f.blocks ?? [];
  if (blocks.length > 31) throw new RangeError(`${what}: at most 31 report blocks, got ${blocks.length}`);
  const cname = f.cname === undefined ? undefined : new TextEncoder().encode(f.cname);
  if (cname !== undefined && (cname.length < 1 || cname.length > 255)) throw new RangeError(`${what}: cname must be 1-255 bytes of UTF-8, got ${cname.length}`);
  const srBytes = 28 + 24 * blocks.length;
  // SDES: header, SSRC, item (type, length, text), then a null item and zero fill to a 32-bit boundary
  const sdesBytes = cname === undefined ? 0 : 8 + Math.ceil((2 + cname.length + 1) / 4) * 4;
  const b = new Uint8Array(srBytes + sdesBytes);
  const v = new DataView(b.buffer);
  b[0] = 0x80 | blocks.length;
  b[1] = 200;
  v.setUint16(2, srBytes / 4 - 1);
  v.setUint32(4, f.ssrc);
  v.setBigUint64(8, BigInt.asUintN(64, f.ntp ?? 0n));
  for (const [name, at] of [["rtpTimestamp", 16], ["packetCount", 20], ["octetCount", 24]] as const) {
    const value = f[name] ?? 0;
    expectU32(value, `${what}: ${name}`);
    v.setUint32(at, value);
  }
  blocks.forEach((blk, i) => {
    for (const key of Object.keys(blk)) {
      if (!(BLOCK_FIELDS as readonly string[]).includes(key)) throw new TypeError(`${what}: block ${i}: unknown field '${key}'; a block takes ${BLOCK_FIELDS.join(", ")}`);
    }
    const at = 28 + 24 * i;
    expectU32(blk.ssrc, `${what}: block ${i}: ssrc`);
    v.setUint32(at, blk.ssrc);
    const lost = blk.cumulativeLost ?? 0;
    if (!(Number.isInteger(lost) && lost >= -0x800000 && lost <= 0x7fffff)) throw new RangeError(`${what}: block ${i}: cumulativeLost must be a signed 24-bit integer, got ${lost}`);
    const fraction = blk.fractionLost ?? 0;
    if (!(Number.isInteger(fraction) && fraction >= 0 && fraction <= 255)) throw new RangeError(`${what}: block ${i}: fractionLost must be an integer 0-255, got ${fraction}`);
    v.setUint32(at + 4, ((fraction << 24) | (lost & 0xffffff)) >>> 0);
    for (const [name, off] of [["highestSeq", 8], ["jitter", 12], ["lastSr", 16], ["delaySinceLastSr", 20]] as const) {
      const value = blk[name] ?? 0;
      expectU32(value, `${what}: block ${i}: ${name}`);
      v.setUint32(at + off, value);
    }
  });
  if (cname !== undefined) {
    const at = srBytes;
    b[at] = 0x81; // one chunk
    b[at + 1] = 202;
    v.setUint16(at + 2, sdesBytes / 4 - 1);
    v.setUint32(at + 4, f.ssrc);
    b[at + 8] = 1; // CNAME
    b[at + 9] = cname.length;
    b.set(cname, at + 10);
  }
  return b;
}

export interface HostilePacket {
  readonly name: string;
  readonly bytes: Uint8Array;
  /** What an RFC 3550 A.1 validator must drop it for. */
  readonly reason: DropReason;
}

/** Deterministic pseudo-random bytes (xorshift32), so that a failing case can be replayed. */
export function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const b = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** Malformed RTP, each for a different rule of RFC 3550 A.1, built around sequence number `seq`. */
export function hostileRtp(seq: number, ssrc = 0x11223344): HostilePacket[] {
  const good = (): Uint8Array => buildRtp({ seq, ssrc, payloadSize: 40 });
  const truncated = good().slice(0, 7);
  const v1 = good();
  v1[0] = (v1[0]! & 0x3f) | 0x40;
  const v0 = good();
  v0[0] = v0[0]! & 0x3f;
  const csrcOverrun = good().slice(0, 20);
  csrcOverrun[0] = (csrcOverrun[0]! & 0xf0) | 15; // 15 CSRCs need 72 bytes
  const extOverrun = good();
  extOverrun[0] = extOverrun[0]! | 0x10;
  new DataView(extOverrun.buffer).setUint16(12, 0xbede);
  new DataView(extOverrun.buffer).setUint16(14, 200); // 800 bytes of extension in a 52-byte packet
  const padZero = good();
  padZero[0] = padZero[0]! | 0x20;
  padZero[padZero.length - 1] = 0;
  const padOverrun = good();
  padOverrun[0] = padOverrun[0]! | 0x20;
  padOverrun[padOverrun.length - 1] = 250;
  const rtcpRange = good();
  rtcpRange[1] = 0x80 | 72; // marker + 72: reads as RTCP SR (200) on the wire
  const random = pseudoRandomBytes(64, seq + 1);
  random[0] = (random[0]! & 0x3f) | 0x00; // version 0 so the outcome is certain
  return [
    { name: "truncated", bytes: truncated, reason: DropReason.TooShort },
    { name: "version 1", bytes: v1, reason: DropReason.BadVersion },
    { name: "version 0", bytes: v0, reason: DropReason.BadVersion },
    { name: "CSRC overrun", bytes: csrcOverrun, reason: DropReason.CsrcOverrun },
    { name: "extension overrun", bytes: extOverrun, reason: DropReason.ExtensionOverrun },
    { name: "padding count 0", bytes: padZero, reason: DropReason.BadPadding },
    { name: "padding overrun", bytes: padOverrun, reason: DropReason.BadPadding },
    { name: "RTCP in the RTP range", bytes: rtcpRange, reason: DropReason.RtcpInRtpRange },
    { name: "random bytes", bytes: random, reason: DropReason.BadVersion },
  ];
}
