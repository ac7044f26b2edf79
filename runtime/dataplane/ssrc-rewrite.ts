// Per-destination translation (RFC 3550 section 7.1): a destination that negotiated its own SSRC
// or payload type gets the stream under them. RTP: the header's payload type (the marker bit
// kept) and SSRC. RTCP going down to it: every SSRC field that names the stream's source becomes
// the destination's. RTCP coming up from it: the reverse, so the chain and the sender see their
// own SSRC in its reports and feedback. All in place, on a copy the caller owns; no allocation.
//
// SSRC fields rewritten in RTCP (RFC 3550 6.4-6.6, RFC 4585 6.1, RFC 5104 4.2.1 and 4.3.1): the
// SSRC after the header of SR, RR, BYE (each listed source), APP, RTPFB and PSFB; each report
// block's source; each SDES chunk's; the media source of RTPFB and PSFB; each FIR and TMMBR
// entry's; each SSRC a REMB lists (draft-alvestrand-rmcat-remb 2.2); XR's (RFC 3611 2 and 4): the
// SSRC after the header, each report block's source (loss and duplicate RLE, packet receipt times,
// statistics summary, VoIP metrics) and each DLRR sub-block's. Unknown packet and XR block types
// are left as they are. A malformed compound is left as it is from the first bad length on.

const PT_SR = 200, PT_RR = 201, PT_SDES = 202, PT_BYE = 203, PT_APP = 204, PT_RTPFB = 205, PT_PSFB = 206, PT_XR = 207;
/** XR report block types whose first field after the block header is the SSRC of the source they report on (RFC 3611 4.1-4.3, 4.6, 4.7). */
const XR_SOURCE_BLOCKS = new Set([1, 2, 3, 6, 7]);
/** XR DLRR (RFC 3611 4.5): sub-blocks of SSRC, last RR, delay since last RR. */
const XR_DLRR = 5;
const PSFB_FIR = 4, PSFB_AFB = 15, RTPFB_TMMBR = 3;
/** "REMB", the unique identifier of an application layer feedback message that is one. */
const REMB_ID = 0x52454d42;

/** Sets an RTP packet's payload type (-1: keep) and SSRC (-1: keep). */
export function rewriteRtp(buf: Uint8Array, at: number, length: number, payloadType: number, ssrc: number): void {
  if (length < 12) return;
  if (payloadType >= 0) buf[at + 1] = (buf[at + 1]! & 0x80) | payloadType;
  if (ssrc >= 0) writeU32(buf, at + 8, ssrc);
}

/** The SSRC of an RTP packet, or -1 when it is too short to have one. */
export function rtpSsrc(buf: Uint8Array, at: number, length: number): number {
  return length < 12 ? -1 : readU32(buf, at + 8);
}

/**
 * Packets of a compound RTCP the rewrite goes through. A compound holds a few (RFC 3550 6.1: a
 * report, SDES, perhaps a BYE or feedback); a 64 KB datagram of 4-byte packets holds 16,000, each
 * a step of the rewrite, per translated destination (110-200 us a copy, measured).
 */
export const MAX_REWRITTEN_RTCP_PACKETS = 64;

/**
 * In a compound RTCP packet, replaces every SSRC field equal to `from` by `to`, or, when `fromAny`
 * is given, every field holding one of its SSRCs (upstream: any of several destinations' SSRCs).
 * Returns the fields changed, or -1 for a compound of more than MAX_REWRITTEN_RTCP_PACKETS
 * packets, which the caller drops (`host_rtcp_too_many_packets`): the rest would keep the
 * SSRC it must not see. The fields before the limit may be changed by then.
 */
export function rewriteRtcpSsrc(buf: Uint8Array, at: number, length: number, from: number, to: number, fromAny?: ReadonlySet<number>): number {
  let changed = 0;
  const end = at + length;
  let p = at;
  for (let n = 0; p + 4 <= end; n++) {
    if (n === MAX_REWRITTEN_RTCP_PACKETS) return -1;
    const count = buf[p]! & 0x1f;
    const pt = buf[p + 1]!;
    const size = (((buf[p + 2]! << 8) | buf[p + 3]!) + 1) * 4;
    if ((buf[p]! >> 6) !== 2 || p + size > end) break;
    const body = p + 4;
    switch (pt) {
      case PT_SR:
      case PT_RR: {
        if (size < 8) break;
        changed += swap(buf, body, from, to, fromAny);
        const blocks = body + 4 + (pt === PT_SR ? 20 : 0);
        for (let k = 0; k < count && blocks + (k + 1) * 24 <= p + size; k++) changed += swap(buf, blocks + k * 24, from, to, fromAny);
        break;
      }
      case PT_SDES:
        changed += rewriteSdesChunks(buf, p, p + size, count, from, to, fromAny);
        break;
      case PT_BYE:
        for (let k = 0; k < count && body + (k + 1) * 4 <= p + size; k++) changed += swap(buf, body + k * 4, from, to, fromAny);
        break;
      case PT_APP:
        if (size >= 8) changed += swap(buf, body, from, to, fromAny);
        break;
      case PT_RTPFB:
      case PT_PSFB:
        if (size < 12) break;
        changed += swap(buf, body, from, to, fromAny) + swap(buf, body + 4, from, to, fromAny);
        // the media source of these is 0: the stream is named in the FCI, and a sender obeys only
        // a TMMBR or REMB that names its own SSRC there
        if (pt === PT_PSFB && count === PSFB_FIR) for (let e = body + 8; e + 8 <= p + size; e += 8) changed += swap(buf, e, from, to, fromAny);
        else if (pt === PT_RTPFB && count === RTPFB_TMMBR) for (let e = body + 8; e + 8 <= p + size; e += 8) changed += swap(buf, e, from, to, fromAny);
        else if (pt === PT_PSFB && count === PSFB_AFB && size >= 20 && readU32(buf, body + 8) === REMB_ID) {
          const listed = body + 16;
          for (let k = 0; k < buf[body + 12]! && listed + (k + 1) * 4 <= p + size; k++) changed += swap(buf, listed + k * 4, from, to, fromAny);
        }
        break;
      case PT_XR: {
        if (size < 8) break;
        changed += swap(buf, body, from, to, fromAny);
        const blocks = rewriteXrBlocks(buf, body + 4, p + size, from, to, fromAny);
        if (blocks < 0) return -1;
        changed += blocks;
        break;
      }
    }
    p += size;
  }
  return changed;
}

/**
 * XR report blocks from `q` to `end`: each a header (type, type-specific, length in words after it),
 * at most MAX_REWRITTEN_RTCP_PACKETS of them (-1 past that, as for packets); a block running past
 * the packet stops the walk.
 */
function rewriteXrBlocks(buf: Uint8Array, q: number, end: number, from: number, to: number, fromAny: ReadonlySet<number> | undefined): number {
  let changed = 0;
  for (let n = 0; q + 4 <= end; n++) {
    if (n === MAX_REWRITTEN_RTCP_PACKETS) return -1;
    const type = buf[q]!;
    const blockEnd = q + (((buf[q + 2]! << 8) | buf[q + 3]!) + 1) * 4;
    if (blockEnd > end) break;
    if (XR_SOURCE_BLOCKS.has(type) && blockEnd >= q + 8) changed += swap(buf, q + 4, from, to, fromAny);
    else if (type === XR_DLRR) for (let sub = q + 4; sub + 12 <= blockEnd; sub += 12) changed += swap(buf, sub, from, to, fromAny);
    q = blockEnd;
  }
  return changed;
}

/** Rewrites the SSRC field at `p` when it names the source; 1 when it did. */
function swap(buf: Uint8Array, p: number, from: number, to: number, fromAny: ReadonlySet<number> | undefined): number {
  const v = readU32(buf, p);
  if (fromAny ? !fromAny.has(v) : v !== from) return 0;
  writeU32(buf, p, to);
  return 1;
}

/** SDES: `count` chunks, each an SSRC then items up to an END item, padded to 32 bits. */
function rewriteSdesChunks(buf: Uint8Array, packet: number, end: number, count: number, from: number, to: number, fromAny: ReadonlySet<number> | undefined): number {
  let changed = 0;
  let p = packet + 4;
  for (let c = 0; c < count && p + 4 <= end; c++) {
    changed += swap(buf, p, from, to, fromAny);
    let q = p + 4;
    while (q < end && buf[q] !== 0) {
      if (q + 2 > end) return changed;
      q += 2 + buf[q + 1]!;
    }
    p = packet + ((q - packet + 4) & ~3); // past the END octet, to the next 32-bit boundary of the packet
  }
  return changed;
}

function readU32(buf: Uint8Array, p: number): number {
  return ((buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!) >>> 0;
}

function writeU32(buf: Uint8Array, p: number, v: number): void {
  buf[p] = v >>> 24;
  buf[p + 1] = (v >>> 16) & 0xff;
  buf[p + 2] = (v >>> 8) & 0xff;
  buf[p + 3] = v & 0xff;
}
