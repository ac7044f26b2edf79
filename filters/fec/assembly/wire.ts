// SMPTE ST 2022-1 FEC packets on the wire: a 12-byte RTP header, the 16-byte FEC header, then the
// XOR of the protected payloads. Field values follow what GStreamer's rtpst2022-1-fecenc sends
// (README "Packets"), so that either side decodes the other's.
//
//  FEC header (network byte order):
//   0  SNBase low bits   u16   first protected sequence number
//   2  Length recovery   u16   XOR of the protected payload lengths
//   4  E (1) | PT recovery (7) XOR of the protected payload types
//   5  Mask              u24   0 (offset and NA say who is protected)
//   8  TS recovery       u32   XOR of the protected timestamps
//  12  N (1) | D (1) | type (3) | index (3): N 0, D 0 column / 1 row, type 0 (XOR), index 0
//  13  Offset            u8    L for a column, 1 for a row
//  14  NA                u8    D for a column, L for a row
//  15  SNBase ext bits   u8    0
import { MAX_PACKET, loadBe16, loadBe32, storeBe16, storeBe32 } from "../../../sdk/assembly";

export const RTP_SIZE: i32 = 12;
export const FEC_HEADER_SIZE: i32 = 16;
/** Largest XOR payload a FEC packet can carry in an output slot. */
export const MAX_FEC_PAYLOAD: i32 = MAX_PACKET - RTP_SIZE - FEC_HEADER_SIZE;
/** MAX_FEC_PAYLOAD rounded up to whole 16-byte blocks (buffers are XORed a v128 at a time). */
export const FEC_PAYLOAD_ROOM: i32 = (MAX_FEC_PAYLOAD + 15) & ~15;

const F_SNBASE: usize = 0;
const F_LENGTH: usize = 2;
const F_E_PT: usize = 4;
const F_MASK: usize = 5;
const F_TS: usize = 8;
const F_FLAGS: usize = 12;
const F_OFFSET: usize = 13;
const F_NA: usize = 14;
const F_SNBASE_EXT: usize = 15;

const E_BIT: u8 = 0x80;
const N_BIT: u8 = 0x80;
const D_BIT: u8 = 0x40;

/** The recovery fields of one FEC group: what an encoder accumulates and a decoder reads. */
export class Recovery {
  snBase: u16 = 0;
  lengthRecovery: u16 = 0;
  ptRecovery: u8 = 0;
  tsRecovery: u32 = 0;
  marker: bool = false;
  /** Row FEC (D bit 1) rather than column FEC. */
  row: bool = false;
  offset: u8 = 0;
  na: u8 = 0;
}

/**
 * Writes the RTP and FEC headers of a FEC packet at `at` (RTP_SIZE + FEC_HEADER_SIZE bytes):
 * SSRC 0, the given sequence number, timestamp and payload type, marker = XOR of the markers.
 */
export function writeFecHeaders(at: usize, r: Recovery, seq: u16, timestamp: u32, payloadType: i32): void {
  store<u8>(at, 0x80); // V=2, no padding, extension or CSRC: those are not protected
  store<u8>(at, (r.marker ? 0x80 : 0) | <u8>payloadType, 1);
  storeBe16(at + 2, seq);
  storeBe32(at + 4, timestamp);
  storeBe32(at + 8, 0);
  const f = at + RTP_SIZE;
  storeBe16(f + F_SNBASE, r.snBase);
  storeBe16(f + F_LENGTH, r.lengthRecovery);
  store<u8>(f + F_E_PT, E_BIT | (r.ptRecovery & 0x7f));
  store<u8>(f + F_MASK, 0);
  storeBe16(f + F_MASK + 1, 0);
  storeBe32(f + F_TS, r.tsRecovery);
  store<u8>(f + F_FLAGS, r.row ? D_BIT : 0);
  store<u8>(f + F_OFFSET, r.offset);
  store<u8>(f + F_NA, r.na);
  store<u8>(f + F_SNBASE_EXT, 0);
}

/** Why a FEC header is refused (0: it is well-formed). */
export const FEC_OK = 0;
export const FEC_MALFORMED = 1;

/**
 * Reads the FEC header at `f` (FEC_HEADER_SIZE bytes present) and the RTP marker of its packet
 * into `r`. Returns FEC_MALFORMED for what ST 2022-1 rules out: E clear, N set, a type other than
 * XOR, an index, or a mask. The SNBase extension bits are ignored, as GStreamer does.
 */
export function readFecHeader(f: usize, marker: bool, r: Recovery): i32 {
  const ept = load<u8>(f + F_E_PT);
  const flags = load<u8>(f + F_FLAGS);
  const mask = (<u32>load<u8>(f + F_MASK) << 16) | <u32>loadBe16(f + F_MASK + 1);
  if ((ept & E_BIT) == 0 || (flags & N_BIT) != 0 || (flags & 0x3f) != 0 || mask != 0) return FEC_MALFORMED;
  r.snBase = loadBe16(f + F_SNBASE);
  r.lengthRecovery = loadBe16(f + F_LENGTH);
  r.ptRecovery = ept & 0x7f;
  r.tsRecovery = loadBe32(f + F_TS);
  r.marker = marker;
  r.row = (flags & D_BIT) != 0;
  r.offset = load<u8>(f + F_OFFSET);
  r.na = load<u8>(f + F_NA);
  return FEC_OK;
}
