// Zero-copy RTP header view (RFC 3550 section 5.1) with RFC 8285 header-extension elements.
// A packet is (ptr, len) in linear memory. Call RtpPacket.validate() once; after it returns
// RtpError.None every accessor below reads inside [ptr, ptr+len) without further checks.
import { DropReason } from "../../runtime/abi";
import { loadBe16, loadBe32, storeBe16, storeBe32 } from "./bytes";

/** Fixed RTP header size. */
export const RTP_HEADER_SIZE: i32 = 12;
/** RFC 8285 section 4.2: the one-byte header form's profile value. */
export const EXT_PROFILE_ONE_BYTE: u16 = 0xbede;
/** RFC 8285 section 4.3: the two-byte form is 0x100 in the top 12 bits ("appbits" below). */
export const EXT_PROFILE_TWO_BYTE: u16 = 0x1000;

/** Why validate() rejected a packet: None, or the DropReason to drop it with. */
export enum RtpError {
  None = 0,
  TooShort = DropReason.TooShort,
  BadVersion = DropReason.BadVersion,
  BadPadding = DropReason.BadPadding,
  CsrcOverrun = DropReason.CsrcOverrun,
  ExtensionOverrun = DropReason.ExtensionOverrun,
}

/** Static accessors over an RTP packet at `ptr`. */
@final export class RtpPacket {
  /**
   * The structural checks of RFC 3550 A.1, in one pass: length, version 2, CSRC list and
   * header extension inside the packet, padding count >= 1 and no larger than what follows
   * the header. Policy (payload types, RTCP-range types, sequence) is the caller's.
   */
  static validate(ptr: usize, len: i32): RtpError {
    if (len < RTP_HEADER_SIZE) return RtpError.TooShort;
    const b0 = <i32>load<u8>(ptr);
    if ((b0 >> 6) != 2) return RtpError.BadVersion;
    let header = RTP_HEADER_SIZE + ((b0 & 0x0f) << 2);
    if (header > len) return RtpError.CsrcOverrun;
    if (b0 & 0x10) {
      if (header + 4 > len) return RtpError.ExtensionOverrun;
      header += 4 + (<i32>loadBe16(ptr + <usize>header + 2) << 2);
      if (header > len) return RtpError.ExtensionOverrun;
    }
    if (b0 & 0x20) {
      // RFC 3550 5.1: the last octet counts the padding octets, itself included.
      const pad = <i32>load<u8>(ptr + <usize>len - 1);
      if (pad == 0 || pad > len - header) return RtpError.BadPadding;
    }
    return RtpError.None;
  }

  // ---- fixed header (valid once len >= 12) ----

  @inline static version(ptr: usize): u8 {
    return load<u8>(ptr) >> 6;
  }
  @inline static hasPadding(ptr: usize): bool {
    return (load<u8>(ptr) & 0x20) != 0;
  }
  @inline static hasExtension(ptr: usize): bool {
    return (load<u8>(ptr) & 0x10) != 0;
  }
  @inline static csrcCount(ptr: usize): i32 {
    return <i32>(load<u8>(ptr) & 0x0f);
  }
  @inline static marker(ptr: usize): bool {
    return (load<u8>(ptr, 1) & 0x80) != 0;
  }
  @inline static payloadType(ptr: usize): u8 {
    return load<u8>(ptr, 1) & 0x7f;
  }
  @inline static sequence(ptr: usize): u16 {
    return loadBe16(ptr + 2);
  }
  @inline static timestamp(ptr: usize): u32 {
    return loadBe32(ptr + 4);
  }
  @inline static ssrc(ptr: usize): u32 {
    return loadBe32(ptr + 8);
  }
  /** CSRC `i` (0 <= i < csrcCount). */
  @inline static csrc(ptr: usize, i: i32): u32 {
    return loadBe32(ptr + RTP_HEADER_SIZE + (<usize>i << 2));
  }

  /**
   * True when the second octet, marker bit included, reads as an RTCP SR..APP type
   * (200-204 & 0x7f = 72-76): RFC 3550 A.1 says such a packet is RTCP misdelivered to the
   * RTP port (and RFC 5761 section 4 keeps 64-95 free for the same reason).
   */
  @inline static isRtcpPayloadType(ptr: usize): bool {
    const pt = load<u8>(ptr, 1) & 0x7f;
    return pt >= 72 && pt <= 76;
  }

  // ---- setters (rewriting in place) ----

  @inline static setMarker(ptr: usize, on: bool): void {
    const b = load<u8>(ptr, 1);
    store<u8>(ptr, on ? b | 0x80 : b & 0x7f, 1);
  }
  @inline static setPayloadType(ptr: usize, pt: u8): void {
    store<u8>(ptr, (load<u8>(ptr, 1) & 0x80) | (pt & 0x7f), 1);
  }
  @inline static setSequence(ptr: usize, seq: u16): void {
    storeBe16(ptr + 2, seq);
  }
  @inline static setTimestamp(ptr: usize, ts: u32): void {
    storeBe32(ptr + 4, ts);
  }
  @inline static setSsrc(ptr: usize, ssrc: u32): void {
    storeBe32(ptr + 8, ssrc);
  }

  // ---- variable parts (valid after validate) ----

  /** Offset of the extension header (its profile field), or -1 when X is clear. */
  @inline static extensionOffset(ptr: usize): i32 {
    return RtpPacket.hasExtension(ptr) ? RTP_HEADER_SIZE + (RtpPacket.csrcCount(ptr) << 2) : -1;
  }
  /** The extension's 16-bit "defined by profile" field; 0 when there is no extension. */
  static extensionProfile(ptr: usize): u16 {
    const off = RtpPacket.extensionOffset(ptr);
    return off < 0 ? 0 : loadBe16(ptr + <usize>off);
  }
  /** Bytes of extension data after its 4-byte header (the length field times 4); 0 if none. */
  static extensionLength(ptr: usize): i32 {
    const off = RtpPacket.extensionOffset(ptr);
    return off < 0 ? 0 : <i32>loadBe16(ptr + <usize>off + 2) << 2;
  }
  /** Header size including CSRCs and extension: where the payload starts. */
  static payloadOffset(ptr: usize): i32 {
    let header = RTP_HEADER_SIZE + (RtpPacket.csrcCount(ptr) << 2);
    if (RtpPacket.hasExtension(ptr)) header += 4 + (<i32>loadBe16(ptr + <usize>header + 2) << 2);
    return header;
  }
  /** Padding octets at the end (the count octet included); 0 when P is clear. */
  @inline static paddingLength(ptr: usize, len: i32): i32 {
    return RtpPacket.hasPadding(ptr) ? <i32>load<u8>(ptr + <usize>len - 1) : 0;
  }
  /** Payload bytes, padding excluded. */
  @inline static payloadLength(ptr: usize, len: i32): i32 {
    return len - RtpPacket.payloadOffset(ptr) - RtpPacket.paddingLength(ptr, len);
  }

  // ---- RFC 8285 extension elements ----
  // A cursor is the offset (from ptr) of an element's first byte. Cursors returned here always
  // name an element whose data lies inside the extension block, so reading it is safe.

  /** Cursor of the first RFC 8285 element, or -1 (no extension, another profile, or empty). */
  static firstElement(ptr: usize): i32 {
    const off = RtpPacket.extensionOffset(ptr);
    if (off < 0) return -1;
    const twoByte = RtpPacket.extensionIsTwoByte(ptr, off);
    if (!twoByte && loadBe16(ptr + <usize>off) != EXT_PROFILE_ONE_BYTE) return -1;
    const end = off + 4 + (<i32>loadBe16(ptr + <usize>off + 2) << 2);
    return settle(ptr, off + 4, end, twoByte);
  }

  /** Cursor of the element after `cursor`, or -1 at the end. */
  static nextElement(ptr: usize, cursor: i32): i32 {
    const off = RtpPacket.extensionOffset(ptr);
    const twoByte = RtpPacket.extensionIsTwoByte(ptr, off);
    const end = off + 4 + (<i32>loadBe16(ptr + <usize>off + 2) << 2);
    const next = cursor + (twoByte ? 2 : 1) + RtpPacket.elementLength(ptr, cursor);
    return settle(ptr, next, end, twoByte);
  }

  /** The element's ID (1-14 one-byte form, 1-255 two-byte form). */
  static elementId(ptr: usize, cursor: i32): u8 {
    const b = load<u8>(ptr + <usize>cursor);
    return RtpPacket.extensionIsTwoByte(ptr, RtpPacket.extensionOffset(ptr)) ? b : b >> 4;
  }

  /** The element's data length in bytes. */
  static elementLength(ptr: usize, cursor: i32): i32 {
    const p = ptr + <usize>cursor;
    return RtpPacket.extensionIsTwoByte(ptr, RtpPacket.extensionOffset(ptr))
      ? <i32>load<u8>(p, 1)
      : <i32>(load<u8>(p) & 0x0f) + 1;
  }

  /** Offset (from ptr) of the element's data. */
  static elementDataOffset(ptr: usize, cursor: i32): i32 {
    return cursor + (RtpPacket.extensionIsTwoByte(ptr, RtpPacket.extensionOffset(ptr)) ? 2 : 1);
  }

  /** Cursor of the first element with ID `id`, or -1. */
  static findElement(ptr: usize, id: u8): i32 {
    let c = RtpPacket.firstElement(ptr);
    while (c >= 0) {
      if (RtpPacket.elementId(ptr, c) == id) return c;
      c = RtpPacket.nextElement(ptr, c);
    }
    return -1;
  }

  @inline private static extensionIsTwoByte(ptr: usize, off: i32): bool {
    return (loadBe16(ptr + <usize>off) & 0xfff0) == EXT_PROFILE_TWO_BYTE;
  }
}

/**
 * Skips padding bytes (ID 0) from `pos` and returns the cursor of the element there if it fits
 * before `end`, else -1. One-byte form: ID 15 means "stop parsing" (RFC 8285 section 4.2).
 */
function settle(ptr: usize, pos: i32, end: i32, twoByte: bool): i32 {
  while (pos < end && load<u8>(ptr + <usize>pos) == 0) pos++;
  if (pos >= end) return -1;
  const b = load<u8>(ptr + <usize>pos);
  let size: i32;
  if (twoByte) {
    if (pos + 2 > end) return -1;
    size = 2 + <i32>load<u8>(ptr + <usize>pos, 1);
  } else {
    if ((b >> 4) == 15) return -1;
    size = 1 + <i32>(b & 0x0f) + 1;
  }
  return pos + size <= end ? pos : -1;
}
