// RTCP checks on SRTCP (RFC 3711 3.4), for validate placed before the srtp stage that removes
// the protection. Only the first 8 octets (the first packet's header and sender SSRC) are in
// clear; then come the encrypted rest of the compound, the E flag with the 31-bit SRTCP index,
// and the tag. So the A.2 rules that read the header are checked, and the compound-length walk
// is not: it would read ciphertext.
import { DropReason, Rtcp, RtcpType } from "../../../sdk/assembly";

/** Header and sender SSRC in clear, then at least the 4-octet E flag and index. */
const MIN_SRTCP: i32 = 12;
const SRTCP_INDEX_SIZE: i32 = 4;

/** 0, or the DropReason of the first rule the clear part of SRTCP packet `ptr` breaks. */
export function checkSrtcpClear(ptr: usize, len: i32, reducedSize: bool): u32 {
  if (len < MIN_SRTCP) return DropReason.TooShort;
  if (Rtcp.version(ptr) != 2) return DropReason.BadVersion;
  const type = Rtcp.type(ptr);
  if (reducedSize) {
    if (type < 192 || type > 223) return DropReason.RtcpBadFirst;
  } else if (Rtcp.hasPadding(ptr) || (type != RtcpType.SR && type != RtcpType.RR)) {
    return DropReason.RtcpBadFirst;
  }
  // The first packet must fit before the SRTCP index (its length field is in clear).
  if (Rtcp.byteLength(ptr) > len - SRTCP_INDEX_SIZE) return DropReason.RtcpBadLength;
  return 0;
}
