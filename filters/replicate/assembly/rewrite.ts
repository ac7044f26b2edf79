// The translator (RFC 3550 section 7.1): the segment's outgoing stream keeps one SSRC (the
// configured one, else the first input SSRC) and optionally one payload type. With continuity,
// when the input switches (a new SSRC, or a sequence or timestamp jump beyond RFC 3550 A.1's
// MAX_DROPOUT), the output goes on at the last sequence number + 1 and at the last timestamp +
// the last frame interval, so that a receiver's decoder sees one stream.
//
// The frame interval is the last positive timestamp step between two packets in sequence (the
// packets of one video frame share a timestamp, so this is the frame-to-frame step; for audio the
// packet-to-packet step); before any, 3000 (90 kHz at 30 frames per second).
//
// The sender's RTCP is rewritten to match (SR, SDES, BYE and XR name the output SSRC, the SR's RTP
// timestamp moves by the same offset), and feedback from receivers about the output SSRC is
// mapped back to the input (mapFeedbackToSender) before it goes upstream. For MAX_DROPOUT packets
// after a switch, the previous input's mapping is kept for the output numbers it used, so that a
// NACK for one of its packets still names that packet.
import {
  Feedback, PsfbFmt, Rtcp, RtcpCompound, RtcpError, RtcpType, RtpPacket, RtpfbFmt, Sdes,
  ReportBlock, REPORT_BLOCK_SIZE, loadBe16, loadBe32, storeBe16, storeBe32,
} from "../../../sdk/assembly";
import { Count, Counts } from "./metrics";
import { MAX_DROPOUT } from "./settings";

/** RFC 3550 A.1: this far back a packet is reordered, not a new stream. */
const MAX_MISORDER: u16 = 100;
const DEFAULT_INTERVAL: u32 = 3000;
/** REMB (draft-alvestrand-rmcat-remb 2.2): PSFB FMT 15 whose FCI starts with "REMB". */
const REMB_ID: u32 = 0x52454d42;
/** XR report block types whose first field after the block header is the SSRC of the source they report on (RFC 3611 4.1-4.3, 4.6, 4.7). */
const XR_SOURCE_BLOCK_MASK: u32 = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 7);
/** XR DLRR (RFC 3611 4.5): sub-blocks of SSRC, last RR, delay since last RR. */
const XR_DLRR: u8 = 5;

export class Translator {
  started: bool = false;
  inSsrc: u32 = 0;
  outSsrc: u32 = 0;
  lastInSeq: u16 = 0;
  lastInTs: u32 = 0;
  seqOffset: u16 = 0;
  tsOffset: u32 = 0;
  lastOutSeq: u16 = 0;
  lastOutTs: u32 = 0;
  interval: u32 = DEFAULT_INTERVAL;
  // The input before the last switch (with continuity): its SSRC and sequence offset, and the
  // first output sequence number of the input after it (its packets are the MAX_DROPOUT before).
  hasPrevious: bool = false;
  prevInSsrc: u32 = 0;
  prevSeqOffset: u16 = 0;
  switchOutSeq: u16 = 0;

  constructor(
    /** The configured output SSRC, or -1. */
    readonly fixedSsrc: i64,
    /** The output payload type, or -1. */
    readonly payloadType: i32,
    readonly continuity: bool,
    private readonly counts: Counts,
  ) {}

  /** Rewrites a valid RTP packet leaving on leg 0, in place. */
  rtp(ptr: usize): void {
    const ssrc = RtpPacket.ssrc(ptr);
    const seq = RtpPacket.sequence(ptr);
    const ts = RtpPacket.timestamp(ptr);
    let newest = true;
    if (!this.started) {
      this.started = true;
      this.inSsrc = ssrc;
      this.outSsrc = this.fixedSsrc >= 0 ? <u32>this.fixedSsrc : ssrc;
    } else {
      const d = <u16>(seq - this.lastInSeq);
      const inOrder = d != 0 && d < <u16>MAX_DROPOUT;
      const behind = d == 0 || d >= <u16>(0 - MAX_MISORDER);
      if (ssrc != this.inSsrc || (!inOrder && !behind) || (inOrder && this.timestampJump(ts))) {
        this.switchTo(ssrc, seq, ts);
      } else if (inOrder) {
        const step = ts - this.lastInTs;
        if (d == 1 && step != 0 && <i32>step > 0) this.interval = step;
      } else {
        newest = false; // reordered or repeated: same offsets, the newest stays
      }
    }
    if (newest) {
      this.lastInSeq = seq;
      this.lastInTs = ts;
    }
    const outSeq = <u16>(seq + this.seqOffset);
    const outTs = ts + this.tsOffset;
    RtpPacket.setSsrc(ptr, this.outSsrc);
    RtpPacket.setSequence(ptr, outSeq);
    RtpPacket.setTimestamp(ptr, outTs);
    if (this.payloadType >= 0) RtpPacket.setPayloadType(ptr, <u8>this.payloadType);
    if (newest) {
      this.lastOutSeq = outSeq;
      this.lastOutTs = outTs;
      if (<u16>(outSeq - this.switchOutSeq) >= <u16>MAX_DROPOUT) this.hasPrevious = false;
    }
  }

  /** A step of more than MAX_DROPOUT frame intervals either way. */
  private timestampJump(ts: u32): bool {
    const step = <i64>(<i32>(ts - this.lastInTs));
    const limit = <i64>MAX_DROPOUT * <i64>this.interval;
    return step > limit || step < -limit;
  }

  private switchTo(ssrc: u32, seq: u16, ts: u32): void {
    this.counts.add(Count.RewriteSwitches);
    const from = this.inSsrc;
    this.inSsrc = ssrc;
    if (!this.continuity) return;
    this.hasPrevious = true;
    this.prevInSsrc = from;
    this.prevSeqOffset = this.seqOffset;
    this.switchOutSeq = <u16>(this.lastOutSeq + 1);
    this.seqOffset = <u16>(this.lastOutSeq + 1 - seq);
    this.tsOffset = this.lastOutTs + this.interval - ts;
  }

  /** The sender's RTCP on leg 0, downstream: its SSRC becomes the output's, SR timestamps move with the stream. */
  senderRtcp(ptr: usize, len: i32): void {
    if (!this.started || RtcpCompound.validate(ptr, len, true) != RtcpError.None) return;
    const from = this.inSsrc;
    const to = this.outSsrc;
    let changed = false;
    for (let off = RtcpCompound.first(len); off >= 0; off = RtcpCompound.next(ptr, len, off)) {
      const p = ptr + <usize>off;
      const type = <i32>Rtcp.type(p);
      if (type == RtcpType.SR || type == RtcpType.RR || type == RtcpType.APP) {
        if (Rtcp.ssrc(p) != from) continue;
        storeBe32(p + 4, to);
        if (type == RtcpType.SR) storeBe32(p + 16, loadBe32(p + 16) + this.tsOffset);
        changed = true;
      } else if (type == RtcpType.SDES) {
        for (let c = Sdes.firstChunk(p); c >= 0; c = Sdes.nextChunk(p, c)) {
          if (Sdes.chunkSsrc(p, c) != from) continue;
          storeBe32(p + <usize>c, to);
          changed = true;
        }
      } else if (type == RtcpType.BYE) {
        for (let k = 0; k < Rtcp.count(p); k++) {
          const at = p + 4 + (<usize>k << 2);
          if (loadBe32(at) != from) continue;
          storeBe32(at, to);
          changed = true;
        }
      } else if (type == RtcpType.XR) {
        if (swapXr(p, from, to)) changed = true;
      }
    }
    if (changed) this.counts.add(Count.RtcpRewritten);
  }

  /**
   * Whether output sequence number `outSeq` is one of the previous input's: among the MAX_DROPOUT
   * before the switch, while the current input has sent fewer than MAX_DROPOUT since.
   */
  private fromPrevious(outSeq: u16): bool {
    if (!this.hasPrevious) return false;
    const back = <u16>(this.switchOutSeq - outSeq);
    return back != 0 && back <= <u16>MAX_DROPOUT;
  }

  /** Output sequence number `outSeq` in its input's numbering. */
  private inputSeq(outSeq: u16): u16 {
    return <u16>(outSeq - (this.fromPrevious(outSeq) ? this.prevSeqOffset : this.seqOffset));
  }

  /**
   * mapFeedbackToSender: upstream RTCP from receivers that names the output SSRC as media source
   * is mapped back to the input SSRC, report blocks' extended highest sequence numbers back by the
   * sequence offset, and NACKed sequence numbers back by the offset of the input that sent them
   * (the one before the last switch for its packets, see fromPrevious). Report blocks, NACK, PLI,
   * FIR, TMMBR and REMB's SSRC list are mapped (a sender obeys only a TMMBR or REMB naming its own
   * SSRC); other feedback and XR pass as they came.
   */
  mapFeedbackToSender(ptr: usize, len: i32): void {
    if (!this.started || RtcpCompound.validate(ptr, len, true) != RtcpError.None) return;
    const from = this.outSsrc;
    const to = this.inSsrc;
    let changed = false;
    for (let off = RtcpCompound.first(len); off >= 0; off = RtcpCompound.next(ptr, len, off)) {
      const p = ptr + <usize>off;
      const type = <i32>Rtcp.type(p);
      if (type == RtcpType.SR || type == RtcpType.RR) {
        const first = p + (type == RtcpType.SR ? 28 : 8);
        for (let k = 0; k < Rtcp.count(p); k++) {
          const b = first + <usize>k * REPORT_BLOCK_SIZE;
          if (ReportBlock.ssrc(b) != from) continue;
          storeBe32(b, to);
          storeBe32(b + 8, this.inputExtended(loadBe32(b + 8)));
          changed = true;
        }
      } else if (type == RtcpType.RTPFB || type == RtcpType.PSFB) {
        const ours = Feedback.mediaSsrc(p) == from;
        if (ours) {
          storeBe32(p + 8, to);
          changed = true;
        }
        const fci = p + <usize>Feedback.fciOffset();
        const fciLen = Feedback.fciLength(p);
        const fmt = Feedback.fmt(p);
        if (type == RtcpType.RTPFB && fmt == RtpfbFmt.Nack && ours) {
          this.mapNack(p, fci, fciLen);
        } else if ((type == RtcpType.PSFB && fmt == PsfbFmt.Fir) || (type == RtcpType.RTPFB && fmt == RtpfbFmt.Tmmbr)) {
          // FIR and TMMBR entries of 8 bytes, each naming its stream first (RFC 5104 4.3.1, 4.2.1)
          for (let k = 0; k + 8 <= fciLen; k += 8) {
            if (loadBe32(fci + <usize>k) != from) continue;
            storeBe32(fci + <usize>k, to);
            changed = true;
          }
        } else if (type == RtcpType.PSFB && fmt == PsfbFmt.Afb && fciLen >= 8 && loadBe32(fci) == REMB_ID) {
          // REMB: "REMB", the SSRC count, the bitrate, then the SSRCs it is about
          const listed = min<i32>(<i32>load<u8>(fci + 4), (fciLen - 8) >> 2);
          for (let k = 0; k < listed; k++) {
            const at = fci + 8 + (<usize>k << 2);
            if (loadBe32(at) != from) continue;
            storeBe32(at, to);
            changed = true;
          }
        }
      }
    }
    if (changed) this.counts.add(Count.FeedbackMapped);
  }

  /**
   * A report block's extended highest sequence number (output numbering) in the current input's:
   * back by the offset, done as a step forward of 65536 - offset so that the cycle count never goes
   * below 0. Where the low 16 bits wrap under the offset the cycles move by one less, so the number
   * goes on exactly as the receiver's does (also across the switch: one offset for all of it).
   */
  private inputExtended(extended: u32): u32 {
    return extended + <u32>(<u16>(0 - this.seqOffset));
  }

  /**
   * The NACK at `p` (its media SSRC already the input's): each entry's packet ID in the numbering
   * of the input that sent it (the bitmask is relative and stays). A NACK all of whose entries are
   * the previous input's names the previous input's SSRC.
   */
  private mapNack(p: usize, fci: usize, fciLen: i32): void {
    let allPrevious = fciLen >= 4;
    for (let k = 0; k + 4 <= fciLen; k += 4) {
      const at = fci + <usize>k;
      const pid = loadBe16(at);
      if (!this.fromPrevious(pid)) allPrevious = false;
      storeBe16(at, this.inputSeq(pid));
    }
    if (allPrevious) storeBe32(p + 8, this.prevInSsrc);
  }
}

/**
 * XR at `p` (RFC 3611 2, 4): its sender's SSRC, each block's SSRC of source (types 1-3, 6, 7) and
 * each DLRR sub-block's SSRC that is `from` become `to`. A block running past the packet ends the
 * walk. Whether anything changed.
 */
function swapXr(p: usize, from: u32, to: u32): bool {
  const end = p + <usize>Rtcp.contentLength(p);
  if (end < p + 8) return false;
  let changed = false;
  if (loadBe32(p + 4) == from) {
    storeBe32(p + 4, to);
    changed = true;
  }
  let q = p + 8;
  while (q + 4 <= end) {
    const type = load<u8>(q);
    const blockEnd = q + 4 + (<usize>loadBe16(q + 2) << 2);
    if (blockEnd > end) break;
    if (type < 32 && (XR_SOURCE_BLOCK_MASK & (1 << type)) != 0 && blockEnd >= q + 8) {
      if (loadBe32(q + 4) == from) {
        storeBe32(q + 4, to);
        changed = true;
      }
    } else if (type == XR_DLRR) {
      for (let sub = q + 4; sub + 12 <= blockEnd; sub += 12) {
        if (loadBe32(sub) != from) continue;
        storeBe32(sub, to);
        changed = true;
      }
    }
    q = blockEnd;
  }
  return changed;
}
