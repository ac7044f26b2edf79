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

/** A minimal RTCP receiver report (RFC 3550 section 6.4.2) with no report blocks. */
export function buildRtcpReceiverReport(ssrc = 0x55667788): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  b[0] = 0x80;
  b[1] = 201;
  v.setUint16(2, 1);
  v.setUint32(4, ssrc >>> 0);
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
