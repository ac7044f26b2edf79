// H.264 frames rebuilt from the RTP packets a receiver got (RFC 6184, packetization mode 1: single
// NAL unit packets, STAP-A, FU-A), to count what a decoder could show without concealment.
//
// A frame (access unit) is the run of packets, in sequence-number order, that share an RTP
// timestamp. It is complete when nothing of it is missing: its first packet starts the access unit
// (it follows the previous frame's marker packet directly, or it begins with an access unit
// delimiter, SEI, SPS or PPS, or with the first slice of the picture: first_mb_in_slice 0), its
// packets are consecutive, the last carries the marker, and every FU-A fragment run has its start
// and its end. Its kind comes from its slices' NAL headers: IDR (type 5), reference (nal_ref_idc >
// 0), non-reference (0); "unknown" when no slice of it arrived.
//
// A frame is decodable when it is complete and every reference frame since the last IDR frame (in
// decode order, which is the order of the sequence numbers) is decodable too. A reference frame
// lost whole leaves no packet, but the next frame's frame_num shows it (frame_num counts reference
// frames, H.264 7.4.3): so slice headers are read for frame_num, with the SPS (and the PPS naming
// it) they refer to. A non-reference frame lost whole breaks nothing.

export interface RtpPacket {
  readonly seq: number;
  readonly timestamp: number;
  readonly marker: boolean;
  readonly payloadType: number;
  readonly ssrc: number;
  /** The payload: after the CSRCs and the header extension, without padding. */
  readonly payload: Uint8Array;
}

/** Parses one RTP packet (RFC 3550 5.1); throws with the reason when it is not one. */
export function parseRtp(b: Uint8Array): RtpPacket {
  if (b.length < 12 || b[0]! >> 6 !== 2) throw new TypeError(`not an RTP packet (${b.length} bytes, version ${b.length > 0 ? b[0]! >> 6 : "-"})`);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let offset = 12 + 4 * (b[0]! & 0x0f);
  if (b[0]! & 0x10) {
    if (b.length < offset + 4) throw new TypeError("RTP header extension past the end of the packet");
    offset += 4 + 4 * view.getUint16(offset + 2);
  }
  const padding = b[0]! & 0x20 ? b[b.length - 1]! : 0;
  if (offset + padding > b.length) throw new TypeError(`RTP header (${offset} bytes) and padding (${padding}) longer than the packet (${b.length})`);
  return {
    seq: view.getUint16(2), timestamp: view.getUint32(4), marker: (b[1]! & 0x80) !== 0, payloadType: b[1]! & 0x7f, ssrc: view.getUint32(8),
    payload: b.subarray(offset, b.length - padding),
  };
}

export type FrameKind = "idr" | "reference" | "non-reference" | "unknown";

export interface H264Frame {
  readonly timestamp: number;
  /** Extended sequence numbers (past wraps) of its first and last packet received. */
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly packets: number;
  readonly kind: FrameKind;
  /** frame_num of its first slice header received; undefined when none arrived (or its SPS did not). */
  readonly frameNum: number | undefined;
  readonly complete: boolean;
  readonly decodable: boolean;
}

export interface KindCount {
  total: number;
  complete: number;
  decodable: number;
}

export interface FrameCensus {
  readonly frames: readonly H264Frame[];
  readonly total: number;
  readonly complete: number;
  readonly decodable: number;
  readonly byKind: Readonly<Record<FrameKind, KindCount>>;
  /** Sequence numbers missing between the first packet and the last. */
  readonly missingPackets: number;
}

// ---- bits ----

/** Reads a NAL unit's RBSP bits (emulation prevention bytes removed), exp-Golomb as H.264 7.2. */
class BitReader {
  private readonly bytes: number[] = [];
  private bit = 0;

  constructor(nal: Uint8Array, from: number) {
    let zeros = 0;
    for (let i = from; i < nal.length; i++) {
      const v = nal[i]!;
      if (zeros >= 2 && v === 3) {
        zeros = 0;
        continue;
      }
      zeros = v === 0 ? zeros + 1 : 0;
      this.bytes.push(v);
    }
  }

  u(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) {
      const byte = this.bytes[this.bit >> 3];
      if (byte === undefined) throw new RangeError("read past the end of the NAL unit");
      v = v * 2 + ((byte >> (7 - (this.bit & 7))) & 1);
      this.bit++;
    }
    return v;
  }

  ue(): number {
    let zeros = 0;
    while (this.u(1) === 0) if (++zeros > 31) throw new RangeError("exp-Golomb code longer than 32 bits");
    return 2 ** zeros - 1 + this.u(zeros);
  }

  se(): number {
    const k = this.ue();
    return k % 2 === 1 ? (k + 1) / 2 : -k / 2;
  }
}

interface Sps {
  readonly log2MaxFrameNum: number;
  readonly separateColourPlane: boolean;
}

const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

/** What a slice header needs of an SPS (7.3.2.1.1, up to log2_max_frame_num_minus4). */
function parseSps(nal: Uint8Array): { id: number; sps: Sps } {
  const r = new BitReader(nal, 1);
  const profile = r.u(8);
  r.u(16); // constraint flags, level
  const id = r.ue();
  let separateColourPlane = false;
  if (HIGH_PROFILES.has(profile)) {
    const chromaFormat = r.ue();
    if (chromaFormat === 3) separateColourPlane = r.u(1) === 1;
    r.ue(); // bit_depth_luma_minus8
    r.ue(); // bit_depth_chroma_minus8
    r.u(1); // qpprime_y_zero_transform_bypass_flag
    if (r.u(1) === 1) {
      for (let i = 0; i < (chromaFormat !== 3 ? 8 : 12); i++) {
        if (r.u(1) === 0) continue;
        let [last, next] = [8, 8];
        for (let j = 0; j < (i < 6 ? 16 : 64); j++) {
          if (next !== 0) next = (last + r.se() + 256) % 256;
          last = next === 0 ? last : next;
        }
      }
    }
  }
  return { id, sps: { log2MaxFrameNum: r.ue() + 4, separateColourPlane } };
}

// ---- NAL units in packets ----

const VCL = (type: number): boolean => type >= 1 && type <= 5;

/** A NAL unit whose beginning is in a packet: its header and as much of it as the packet holds. */
interface NalStart {
  readonly type: number;
  readonly refIdc: number;
  /** Header byte first (a FU-A's rebuilt), then the start of the RBSP. */
  readonly bytes: Uint8Array;
}

interface PacketNals {
  readonly starts: readonly NalStart[];
  /** A FU-A fragment: whether it starts and ends its NAL unit; undefined for other packets. */
  readonly fu?: { readonly start: boolean; readonly end: boolean; readonly type: number; readonly refIdc: number };
}

function nalsOf(payload: Uint8Array, seq: number): PacketNals {
  if (payload.length === 0) throw new TypeError(`packet ${seq}: empty H.264 payload`);
  const type = payload[0]! & 0x1f;
  const refIdc = (payload[0]! >> 5) & 3;
  if (type >= 1 && type <= 23) return { starts: [{ type, refIdc, bytes: payload }] };
  if (type === 24) {
    const starts: NalStart[] = [];
    for (let i = 1; i < payload.length;) {
      if (i + 2 > payload.length) throw new TypeError(`packet ${seq}: STAP-A cut inside a NAL unit size`);
      const size = (payload[i]! << 8) | payload[i + 1]!;
      if (size === 0 || i + 2 + size > payload.length) throw new TypeError(`packet ${seq}: STAP-A NAL unit of ${size} bytes at ${i} does not fit in ${payload.length}`);
      const nal = payload.subarray(i + 2, i + 2 + size);
      starts.push({ type: nal[0]! & 0x1f, refIdc: (nal[0]! >> 5) & 3, bytes: nal });
      i += 2 + size;
    }
    return { starts };
  }
  if (type === 28) {
    if (payload.length < 2) throw new TypeError(`packet ${seq}: FU-A without its FU header`);
    const header = payload[1]!;
    const fu = { start: (header & 0x80) !== 0, end: (header & 0x40) !== 0, type: header & 0x1f, refIdc };
    if (!fu.start) return { starts: [], fu };
    const bytes = new Uint8Array(payload.length - 1);
    bytes[0] = (payload[0]! & 0xe0) | fu.type;
    bytes.set(payload.subarray(2), 1);
    return { starts: [{ type: fu.type, refIdc, bytes }], fu };
  }
  throw new TypeError(`packet ${seq}: NAL unit type ${type} (STAP-B, MTAP, FU-B or reserved) is not of packetization mode 1`);
}

// ---- frames ----

interface Received {
  readonly extSeq: number;
  readonly packet: RtpPacket;
  readonly nals: PacketNals;
}

/** Extends sequence numbers past their wraps (each to the value nearest the highest so far), sorts them and drops duplicates. */
function inSeqOrder(packets: readonly RtpPacket[]): { extSeq: number; packet: RtpPacket }[] {
  let highest: number | undefined;
  const out = new Map<number, RtpPacket>();
  for (const p of packets) {
    const ext = highest === undefined ? p.seq : highest + ((((p.seq - highest) & 0xffff) ^ 0x8000) - 0x8000);
    highest = Math.max(highest ?? ext, ext);
    if (!out.has(ext)) out.set(ext, p);
  }
  return [...out].sort((x, y) => x[0] - y[0]).map(([extSeq, packet]) => ({ extSeq, packet }));
}

/** Whether the frame's packets hold every FU-A fragment run whole (a start, then middles, then an end). */
function fuRunsWhole(packets: readonly Received[]): boolean {
  let inFu = false;
  for (const { nals } of packets) {
    const fu = nals.fu;
    if (!fu) {
      if (inFu) return false;
      continue;
    }
    if (fu.start === inFu || (fu.start && fu.end)) return false;
    inFu = !fu.end;
  }
  return !inFu;
}

/** Whether a NAL unit can only begin an access unit: AUD, SEI, SPS, PPS, or a picture's first slice. */
function beginsAccessUnit(nal: NalStart): boolean {
  if (nal.type >= 6 && nal.type <= 9) return true;
  if (!VCL(nal.type)) return false;
  try {
    return new BitReader(nal.bytes, 1).ue() === 0;
  } catch {
    return false;
  }
}

/**
 * Rebuilds the frames of one H.264 stream (one SSRC; packets in any order, duplicates ignored)
 * and counts the complete and the decodable ones. Throws on a packet that is not RFC 6184
 * packetization mode 1.
 */
export function h264Census(packets: readonly RtpPacket[]): FrameCensus {
  const ordered: Received[] = inSeqOrder(packets).map(({ extSeq, packet }) => ({ extSeq, packet, nals: nalsOf(packet.payload, packet.seq) }));
  const groups: Received[][] = [];
  for (const r of ordered) {
    const last = groups.at(-1);
    if (last && last[0]!.packet.timestamp === r.packet.timestamp) last.push(r);
    else groups.push([r]);
  }

  const spsById = new Map<number, Sps>();
  const spsOfPps = new Map<number, number>();
  const frameNumOf = (nal: NalStart): number | undefined => {
    try {
      const r = new BitReader(nal.bytes, 1);
      r.ue(); // first_mb_in_slice
      r.ue(); // slice_type
      const sps = spsById.get(spsOfPps.get(r.ue()) ?? -1);
      if (!sps) return undefined;
      if (sps.separateColourPlane) r.u(2);
      return r.u(sps.log2MaxFrameNum);
    } catch {
      return undefined; // the packet held too little of the header
    }
  };

  const frames: H264Frame[] = [];
  const byKind: Record<FrameKind, KindCount> = {
    idr: { total: 0, complete: 0, decodable: 0 }, reference: { total: 0, complete: 0, decodable: 0 },
    "non-reference": { total: 0, complete: 0, decodable: 0 }, unknown: { total: 0, complete: 0, decodable: 0 },
  };
  let referencesWhole = false; // nothing decodes before the first IDR frame
  let expectedFrameNum: number | undefined;
  let maxFrameNum = 16;
  let previousLast: Received | undefined;
  for (const group of groups) {
    const starts = group.flatMap((r) => r.nals.starts);
    for (const nal of starts) {
      try {
        if (nal.type === 7) {
          const { id, sps } = parseSps(nal.bytes);
          spsById.set(id, sps);
          maxFrameNum = 2 ** sps.log2MaxFrameNum;
        }
        if (nal.type === 8) {
          const r = new BitReader(nal.bytes, 1);
          const ppsId = r.ue();
          spsOfPps.set(ppsId, r.ue());
        }
      } catch {
        // only the start of a fragmented SPS or PPS arrived: the last whole one stays in use
      }
    }
    const first = group[0]!;
    const last = group.at(-1)!;
    const begins = (previousLast?.packet.marker === true && previousLast.extSeq + 1 === first.extSeq) ||
      (first.nals.fu === undefined || first.nals.fu.start) && first.nals.starts.length > 0 && beginsAccessUnit(first.nals.starts[0]!);
    const complete: boolean = begins && last.packet.marker && last.extSeq - first.extSeq + 1 === group.length && fuRunsWhole(group);
    const slices = [...starts.filter((n) => VCL(n.type)), ...group.flatMap((r) => (r.nals.fu && VCL(r.nals.fu.type) ? [r.nals.fu] : []))];
    const kind: FrameKind = slices.length === 0 ? "unknown"
      : slices.some((s) => s.type === 5) ? "idr"
      : slices.some((s) => s.refIdc > 0) ? "reference" : "non-reference";
    const firstSlice = starts.find((n) => VCL(n.type));
    const frameNum = firstSlice && frameNumOf(firstSlice);

    // a frame_num other than the one expected: a reference frame vanished whole before this one
    if (kind !== "idr" && frameNum !== undefined && expectedFrameNum !== undefined && frameNum !== expectedFrameNum) referencesWhole = false;
    const decodable: boolean = complete && (kind === "idr" || (kind !== "unknown" && referencesWhole));
    if (kind === "idr" || kind === "reference" || kind === "unknown") {
      referencesWhole = decodable;
      expectedFrameNum = frameNum === undefined ? undefined : (frameNum + 1) % maxFrameNum;
    }

    frames.push({ timestamp: first.packet.timestamp, firstSeq: first.extSeq, lastSeq: last.extSeq, packets: group.length, kind, frameNum, complete, decodable });
    byKind[kind].total++;
    if (complete) byKind[kind].complete++;
    if (decodable) byKind[kind].decodable++;
    previousLast = last;
  }
  const span = ordered.length === 0 ? 0 : ordered.at(-1)!.extSeq - ordered[0]!.extSeq + 1;
  return {
    frames, byKind, total: frames.length,
    complete: frames.filter((f) => f.complete).length,
    decodable: frames.filter((f) => f.decodable).length,
    missingPackets: span - ordered.length,
  };
}
