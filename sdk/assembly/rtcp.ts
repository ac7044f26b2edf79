// Zero-copy RTCP views (RFC 3550 section 6, RFC 4585 section 6.1 feedback headers).
// A compound packet is (ptr, len). RtcpCompound.validate() checks it once (RFC 3550 A.2 plus
// every packet's own structure); afterwards the readers below read raw. Readers take `p`, the
// address of one packet inside the compound (ptr + an offset from first()/next()).
import { DropReason } from "../../runtime/abi";
import { loadBe16, loadBe24, loadBe32, loadBe64 } from "./bytes";

export const RTCP_HEADER_SIZE: i32 = 4;
/** Smallest valid compound: an RR without report blocks. */
export const RTCP_MIN_COMPOUND: i32 = 8;
/** Size of one SR/RR report block. */
export const REPORT_BLOCK_SIZE: i32 = 24;

/** RTCP packet types (RFC 3550 12.1, RFC 4585 6.1, RFC 3611). */
export enum RtcpType {
  SR = 200,
  RR = 201,
  SDES = 202,
  BYE = 203,
  APP = 204,
  RTPFB = 205,
  PSFB = 206,
  XR = 207,
}

/** SDES item types (RFC 3550 6.5). */
export enum SdesItem {
  End = 0,
  Cname = 1,
  Name = 2,
  Email = 3,
  Phone = 4,
  Loc = 5,
  Tool = 6,
  Note = 7,
  Priv = 8,
}

/** Feedback message types (FMT) of RTPFB (RFC 4585 6.2, RFC 5104, transport-cc draft). */
export enum RtpfbFmt {
  Nack = 1,
  Tmmbr = 3,
  Tmmbn = 4,
  TransportCc = 15,
}

/** Feedback message types (FMT) of PSFB (RFC 4585 6.3, RFC 5104). */
export enum PsfbFmt {
  Pli = 1,
  Sli = 2,
  Rpsi = 3,
  Fir = 4,
  Afb = 15,
}

/** Why validate() rejected a compound packet: None, or the DropReason to drop it with. */
export enum RtcpError {
  None = 0,
  TooShort = DropReason.TooShort,
  BadVersion = DropReason.BadVersion,
  BadPadding = DropReason.BadPadding,
  BadFirst = DropReason.RtcpBadFirst,
  BadLength = DropReason.RtcpBadLength,
  BadCompound = DropReason.RtcpBadCompound,
}

/** Iteration and validation of a compound RTCP packet. */
@final export class RtcpCompound {
  /**
   * RFC 3550 A.2: version 2 everywhere, the first packet an SR or RR without padding, the
   * packet lengths summing exactly to `len`; RFC 3550 6.4.1: padding only on the last packet,
   * its count >= 1 and inside that packet; and each packet's body fits its length (report
   * blocks, SDES chunks and items, BYE list, APP and feedback headers).
   * `reducedSize` accepts RFC 5506 reduced-size RTCP: the first packet may be any RTCP type
   * (192-223) and may carry padding.
   */
  static validate(ptr: usize, len: i32, reducedSize: bool = false): RtcpError {
    if (len < RTCP_MIN_COMPOUND) return RtcpError.TooShort;
    if (len & 3) return RtcpError.BadLength;
    const b0 = load<u8>(ptr);
    const type = <i32>load<u8>(ptr, 1);
    if ((b0 >> 6) != 2) return RtcpError.BadVersion;
    if (reducedSize) {
      if (type < 192 || type > 223) return RtcpError.BadFirst;
    } else {
      if ((b0 & 0x20) != 0) return RtcpError.BadFirst;
      if (type != RtcpType.SR && type != RtcpType.RR) return RtcpError.BadFirst;
    }
    let off = 0;
    while (off < len) {
      // off and len are multiples of 4, so a whole 4-byte header is there.
      const p = ptr + <usize>off;
      if ((load<u8>(p) >> 6) != 2) return RtcpError.BadVersion;
      const size = Rtcp.byteLength(p);
      if (size > len - off) return RtcpError.BadLength;
      let content = size;
      if (Rtcp.hasPadding(p)) {
        if (off + size != len) return RtcpError.BadCompound;
        const pad = <i32>load<u8>(p + <usize>size - 1);
        if (pad == 0 || pad > size - RTCP_HEADER_SIZE) return RtcpError.BadPadding;
        content = size - pad;
      }
      if (!bodyFits(p, content)) return RtcpError.BadLength;
      off += size;
    }
    return RtcpError.None;
  }

  /** Offset of the first packet, or -1 if there is none. */
  @inline static first(len: i32): i32 {
    return len >= RTCP_HEADER_SIZE ? 0 : -1;
  }

  /** Offset of the packet after the one at `off`, or -1 at the end. */
  @inline static next(ptr: usize, len: i32, off: i32): i32 {
    const n = off + Rtcp.byteLength(ptr + <usize>off);
    return n < len ? n : -1;
  }
}

/** The common header of one RTCP packet at `p` (RFC 3550 6.4.1). */
@final export class Rtcp {
  @inline static version(p: usize): u8 {
    return load<u8>(p) >> 6;
  }
  @inline static hasPadding(p: usize): bool {
    return (load<u8>(p) & 0x20) != 0;
  }
  /** The 5-bit count field: report count (SR/RR), source count (SDES/BYE), FMT (feedback), subtype (APP). */
  @inline static count(p: usize): i32 {
    return <i32>(load<u8>(p) & 0x1f);
  }
  @inline static type(p: usize): u8 {
    return load<u8>(p, 1);
  }
  /** The length field: the packet's size in 32-bit words minus one. */
  @inline static lengthWords(p: usize): i32 {
    return <i32>loadBe16(p + 2);
  }
  /** The packet's size in bytes, header and padding included. */
  @inline static byteLength(p: usize): i32 {
    return (Rtcp.lengthWords(p) + 1) << 2;
  }
  /** Padding octets at the end (count octet included); 0 when P is clear. */
  @inline static paddingLength(p: usize): i32 {
    return Rtcp.hasPadding(p) ? <i32>load<u8>(p + <usize>Rtcp.byteLength(p) - 1) : 0;
  }
  /** Bytes up to the padding: header plus body. */
  @inline static contentLength(p: usize): i32 {
    return Rtcp.byteLength(p) - Rtcp.paddingLength(p);
  }
  /** The SSRC after the header (sender of SR/RR/APP/feedback, first chunk/source of SDES/BYE). */
  @inline static ssrc(p: usize): u32 {
    return loadBe32(p + 4);
  }
}

/** Sender report (RFC 3550 6.4.1). */
@final export class SenderReport {
  @inline static ssrc(p: usize): u32 {
    return loadBe32(p + 4);
  }
  /** The 64-bit NTP timestamp (seconds << 32 | fraction). */
  @inline static ntpTimestamp(p: usize): u64 {
    return loadBe64(p + 8);
  }
  /** The middle 32 bits of the NTP timestamp: what receivers echo as LSR. */
  @inline static ntpMiddle(p: usize): u32 {
    return loadBe32(p + 10);
  }
  @inline static rtpTimestamp(p: usize): u32 {
    return loadBe32(p + 16);
  }
  @inline static packetCount(p: usize): u32 {
    return loadBe32(p + 20);
  }
  @inline static octetCount(p: usize): u32 {
    return loadBe32(p + 24);
  }
  @inline static reportCount(p: usize): i32 {
    return Rtcp.count(p);
  }
  /** Address of report block `i` (0 <= i < reportCount); read it with ReportBlock. */
  @inline static reportBlock(p: usize, i: i32): usize {
    return p + 28 + <usize>i * REPORT_BLOCK_SIZE;
  }
}

/** Receiver report (RFC 3550 6.4.2). */
@final export class ReceiverReport {
  @inline static ssrc(p: usize): u32 {
    return loadBe32(p + 4);
  }
  @inline static reportCount(p: usize): i32 {
    return Rtcp.count(p);
  }
  /** Address of report block `i` (0 <= i < reportCount). */
  @inline static reportBlock(p: usize, i: i32): usize {
    return p + 8 + <usize>i * REPORT_BLOCK_SIZE;
  }
}

/** One report block at address `b` (RFC 3550 6.4.1). */
@final export class ReportBlock {
  /** The source this block reports on. */
  @inline static ssrc(b: usize): u32 {
    return loadBe32(b);
  }
  /** Fraction lost since the last report, in 1/256. */
  @inline static fractionLost(b: usize): u8 {
    return load<u8>(b, 4);
  }
  /** Cumulative packets lost: a signed 24-bit value (negative with duplicates). */
  @inline static cumulativeLost(b: usize): i32 {
    return (<i32>(loadBe24(b + 5) << 8)) >> 8;
  }
  @inline static extendedHighestSequence(b: usize): u32 {
    return loadBe32(b + 8);
  }
  /** Interarrival jitter in timestamp units. */
  @inline static jitter(b: usize): u32 {
    return loadBe32(b + 12);
  }
  /** Last SR timestamp (middle 32 bits of its NTP time), 0 if none yet. */
  @inline static lastSr(b: usize): u32 {
    return loadBe32(b + 16);
  }
  /** Delay since last SR, in 1/65536 seconds. */
  @inline static delaySinceLastSr(b: usize): u32 {
    return loadBe32(b + 20);
  }
}

/**
 * Source description (RFC 3550 6.5). Chunks and items are walked with cursors: offsets from
 * `p`. A chunk is an SSRC followed by items and ends with an End item padded to 32 bits.
 */
@final export class Sdes {
  /** Cursor of the first chunk, or -1 when the source count is 0. */
  @inline static firstChunk(p: usize): i32 {
    return Rtcp.count(p) > 0 ? RTCP_HEADER_SIZE : -1;
  }
  /** Cursor of the chunk after `chunk`, or -1 after the last one. */
  static nextChunk(p: usize, chunk: i32): i32 {
    let pos = chunk + 4;
    while (load<u8>(p + <usize>pos) != SdesItem.End) pos += 2 + <i32>load<u8>(p + <usize>pos, 1);
    pos = (pos + 4) & ~3; // the End octet plus zero fill to the next 32-bit boundary
    return pos < Rtcp.contentLength(p) ? pos : -1;
  }
  @inline static chunkSsrc(p: usize, chunk: i32): u32 {
    return loadBe32(p + <usize>chunk);
  }
  /** Cursor of the chunk's first item, or -1 if it has none. */
  @inline static firstItem(p: usize, chunk: i32): i32 {
    return load<u8>(p + <usize>chunk + 4) != SdesItem.End ? chunk + 4 : -1;
  }
  /** Cursor of the item after `item`, or -1 at the chunk's End item. */
  @inline static nextItem(p: usize, item: i32): i32 {
    const n = item + 2 + <i32>load<u8>(p + <usize>item, 1);
    return load<u8>(p + <usize>n) != SdesItem.End ? n : -1;
  }
  @inline static itemType(p: usize, item: i32): u8 {
    return load<u8>(p + <usize>item);
  }
  @inline static itemLength(p: usize, item: i32): i32 {
    return <i32>load<u8>(p + <usize>item, 1);
  }
  /** Offset (from p) of the item's text. */
  @inline static itemDataOffset(item: i32): i32 {
    return item + 2;
  }
}

/** Goodbye (RFC 3550 6.6). */
@final export class Bye {
  @inline static sourceCount(p: usize): i32 {
    return Rtcp.count(p);
  }
  /** SSRC `i` (0 <= i < sourceCount). */
  @inline static ssrc(p: usize, i: i32): u32 {
    return loadBe32(p + 4 + (<usize>i << 2));
  }
  /** Length of the optional reason text; 0 when absent. */
  static reasonLength(p: usize): i32 {
    const at = 4 + (Rtcp.count(p) << 2);
    return at < Rtcp.contentLength(p) ? <i32>load<u8>(p + <usize>at) : 0;
  }
  /** Offset (from p) of the reason text. */
  @inline static reasonOffset(p: usize): i32 {
    return 5 + (Rtcp.count(p) << 2);
  }
}

/** Application-defined (RFC 3550 6.7). */
@final export class App {
  @inline static subtype(p: usize): i32 {
    return Rtcp.count(p);
  }
  @inline static ssrc(p: usize): u32 {
    return loadBe32(p + 4);
  }
  /** The four ASCII name octets as a big-endian u32 (for example 0x4d534d31 for "MSM1"). */
  @inline static name(p: usize): u32 {
    return loadBe32(p + 8);
  }
  /** Offset (from p) of the application data. */
  @inline static dataOffset(): i32 {
    return 12;
  }
  @inline static dataLength(p: usize): i32 {
    return Rtcp.contentLength(p) - 12;
  }
}

/** RTPFB (205) and PSFB (206) common header (RFC 4585 6.1). */
@final export class Feedback {
  @inline static fmt(p: usize): i32 {
    return Rtcp.count(p);
  }
  @inline static senderSsrc(p: usize): u32 {
    return loadBe32(p + 4);
  }
  @inline static mediaSsrc(p: usize): u32 {
    return loadBe32(p + 8);
  }
  /** Offset (from p) of the feedback control information. */
  @inline static fciOffset(): i32 {
    return 12;
  }
  @inline static fciLength(p: usize): i32 {
    return Rtcp.contentLength(p) - 12;
  }
}

/** True when the body of the packet at `p` fits in its first `content` bytes. */
function bodyFits(p: usize, content: i32): bool {
  const count = Rtcp.count(p);
  switch (<i32>Rtcp.type(p)) {
    case RtcpType.SR:
      return content >= 28 + count * REPORT_BLOCK_SIZE;
    case RtcpType.RR:
      return content >= 8 + count * REPORT_BLOCK_SIZE;
    case RtcpType.SDES:
      return sdesFits(p, count, content);
    case RtcpType.BYE: {
      const list = 4 + (count << 2);
      if (content < list) return false;
      return content == list || list + 1 + <i32>load<u8>(p + <usize>list) <= content;
    }
    case RtcpType.APP:
    case RtcpType.RTPFB:
    case RtcpType.PSFB:
      return content >= 12;
    default:
      return true; // unknown types are skipped by receivers (RFC 3550 6.1)
  }
}

/**
 * Walks `count` SDES chunks: every item and End marker inside `content`, and the chunks
 * filling it exactly (each ends with its End octet zero-filled to 32 bits, RFC 3550 6.5).
 */
function sdesFits(p: usize, count: i32, content: i32): bool {
  let pos = RTCP_HEADER_SIZE;
  for (let c = 0; c < count; c++) {
    pos += 4; // SSRC/CSRC
    while (true) {
      if (pos >= content) return false;
      if (load<u8>(p + <usize>pos) == SdesItem.End) break;
      if (pos + 2 > content) return false;
      pos += 2 + <i32>load<u8>(p + <usize>pos, 1);
    }
    pos = (pos + 4) & ~3;
    if (pos > content) return false;
  }
  return pos == content;
}
