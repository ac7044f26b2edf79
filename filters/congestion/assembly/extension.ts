// The transport-wide sequence number in an RTP header extension (RFC 8285; the element of
// draft-holmer-rmcat-transport-wide-cc-extensions-01 section 2: two bytes, big-endian).
// Stamping inserts it (8 bytes: a one-byte-header block of one word) or appends it to an existing
// block (4 bytes: one more word); reading and stripping find it by its ID.
import { EXT_PROFILE_ONE_BYTE, RtpPacket, RTP_HEADER_SIZE, loadBe16, storeBe16 } from "../../../sdk/assembly";

/** Two-byte-header profile: 0x100 in the top 12 bits, the low 4 bits "appbits" (RFC 8285 4.3). */
const TWO_BYTE_MASK: u16 = 0xfff0;
const TWO_BYTE_PROFILE: u16 = 0x1000;

/** How a stamp changes a packet: bytes kept in front of the insertion point, bytes inserted. */
export class StampPlan {
  /** Bytes before the insertion point (fixed header, CSRCs, the existing block). */
  prefix: i32 = 0;
  /** Bytes inserted there: 0 (an element with our ID is overwritten in place), 4 or 8. */
  grow: i32 = 0;
  /** Offset of the element's two data bytes when grow is 0. */
  overwriteAt: i32 = 0;
  /** The block is a two-byte-header one (elements are ID, length, data). */
  twoByte: bool = false;
}

export const plan = new StampPlan();

/** Plans the stamp of an RTP packet of `len` bytes at `ptr`; false if it cannot carry one. */
export function planStamp(ptr: usize, len: i32, id: i32): bool {
  if (len < RTP_HEADER_SIZE) return false;
  const fixed = RTP_HEADER_SIZE + (RtpPacket.csrcCount(ptr) << 2);
  if (fixed > len) return false;
  plan.twoByte = false;
  if (!RtpPacket.hasExtension(ptr)) {
    plan.prefix = fixed;
    plan.grow = 8;
    return true;
  }
  if (fixed + 4 > len) return false;
  const profile = loadBe16(ptr + <usize>fixed);
  const words = <i32>loadBe16(ptr + <usize>fixed + 2);
  const blockEnd = fixed + 4 + (words << 2);
  if (blockEnd > len) return false;
  if (profile != EXT_PROFILE_ONE_BYTE && (profile & TWO_BYTE_MASK) != TWO_BYTE_PROFILE) return false; // another profile: leave it be
  plan.twoByte = profile != EXT_PROFILE_ONE_BYTE;
  const at = findElement(ptr, fixed + 4, blockEnd, id, plan.twoByte);
  if (at == TAKEN) return false; // the origin uses our ID for something else: a second one would hide ours
  if (at >= 0) {
    plan.grow = 0;
    plan.overwriteAt = at;
    plan.prefix = blockEnd;
    return true;
  }
  plan.prefix = blockEnd;
  plan.grow = 4;
  return true;
}

/**
 * Writes the stamped packet at `dst` from the `len` bytes at `src`, following `plan` (planStamp
 * first). In place is allowed with dst == src - plan.grow. Returns the new length.
 */
export function writeStamped(dst: usize, src: usize, len: i32, id: i32, seq: u16): i32 {
  const prefix = plan.prefix;
  const grow = plan.grow;
  if (grow == 0) {
    if (dst != src) memory.copy(dst, src, <usize>len);
    storeBe16(dst + <usize>plan.overwriteAt, seq);
    return len;
  }
  memory.copy(dst, src, <usize>prefix);
  const at = dst + <usize>prefix;
  if (grow == 8) {
    // a new one-byte-header block of one word: element (ID, length-1 = 1), two data bytes, one pad
    store<u8>(dst, load<u8>(dst) | 0x10); // X
    storeBe16(at, EXT_PROFILE_ONE_BYTE);
    storeBe16(at + 2, 1);
    store<u8>(at + 4, <u8>((id << 4) | 1));
    storeBe16(at + 5, seq);
    store<u8>(at + 7, 0);
  } else {
    const fixed = RTP_HEADER_SIZE + (RtpPacket.csrcCount(dst) << 2);
    storeBe16(dst + <usize>fixed + 2, loadBe16(dst + <usize>fixed + 2) + 1);
    if (plan.twoByte) {
      store<u8>(at, <u8>id);
      store<u8>(at + 1, 2);
      storeBe16(at + 2, seq);
    } else {
      store<u8>(at, <u8>((id << 4) | 1));
      storeBe16(at + 1, seq);
      store<u8>(at + 3, 0);
    }
  }
  const rest = len - prefix;
  const from = src + <usize>prefix;
  const to = at + <usize>grow;
  if (from != to) memory.copy(to, from, <usize>rest);
  return len + grow;
}

/** Offset (from ptr) of the transport-wide sequence number's two bytes, or -1. */
export function findSequence(ptr: usize, len: i32, id: i32): i32 {
  if (len < RTP_HEADER_SIZE || !RtpPacket.hasExtension(ptr)) return -1;
  const fixed = RTP_HEADER_SIZE + (RtpPacket.csrcCount(ptr) << 2);
  if (fixed + 4 > len) return -1;
  const profile = loadBe16(ptr + <usize>fixed);
  const blockEnd = fixed + 4 + (<i32>loadBe16(ptr + <usize>fixed + 2) << 2);
  if (blockEnd > len) return -1;
  if (profile == EXT_PROFILE_ONE_BYTE) return findElement(ptr, fixed + 4, blockEnd, id, false);
  if ((profile & TWO_BYTE_MASK) == TWO_BYTE_PROFILE) return findElement(ptr, fixed + 4, blockEnd, id, true);
  return -1;
}

/**
 * Removes the element at `at` (findSequence) from the packet at `ptr`: the whole block when the
 * element is all it holds (the packet then starts `returned` bytes later), else the element's bytes
 * become padding. Returns how many bytes the packet's start moved forward (0, or the block's size).
 */
export function strip(ptr: usize, len: i32, at: i32): i32 {
  const fixed = RTP_HEADER_SIZE + (RtpPacket.csrcCount(ptr) << 2);
  const twoByte = loadBe16(ptr + <usize>fixed) != EXT_PROFILE_ONE_BYTE;
  const blockStart = fixed + 4;
  const blockEnd = blockStart + (<i32>loadBe16(ptr + <usize>fixed + 2) << 2);
  const elementStart = at - (twoByte ? 2 : 1);
  const elementEnd = at + 2;
  let alone = true;
  for (let k = blockStart; k < blockEnd; k++) {
    if (k >= elementStart && k < elementEnd) continue;
    if (load<u8>(ptr + <usize>k) != 0) {
      alone = false;
      break;
    }
  }
  if (!alone) {
    memory.fill(ptr + <usize>elementStart, 0, <usize>(elementEnd - elementStart));
    return 0;
  }
  const block = blockEnd - fixed;
  memory.copy(ptr + <usize>block, ptr, <usize>fixed);
  const b0 = ptr + <usize>block;
  store<u8>(b0, load<u8>(b0) & 0xef); // X off
  return block;
}

/** findElement's answer when the ID is there with another length than ours (2 bytes). */
const TAKEN = -2;

/** Offset of the data of element `id` in [from, end), -1 if absent, TAKEN if there with another length (RFC 8285 4.2 and 4.3 walks). */
function findElement(ptr: usize, from: i32, end: i32, id: i32, twoByte: bool): i32 {
  let k = from;
  while (k < end) {
    const b = <i32>load<u8>(ptr + <usize>k);
    if (b == 0) {
      k++; // padding
      continue;
    }
    if (twoByte) {
      if (k + 2 > end) return -1;
      const n = <i32>load<u8>(ptr + <usize>k + 1);
      if (b == id) return n != 2 ? TAKEN : k + 4 <= end ? k + 2 : -1;
      k += 2 + n;
    } else {
      const elementId = b >> 4;
      if (elementId == 15) return -1; // RFC 8285 4.2: stop
      const n = (b & 15) + 1;
      if (elementId == id) return n != 2 ? TAKEN : k + 3 <= end ? k + 1 : -1;
      k += 1 + n;
    }
  }
  return -1;
}
