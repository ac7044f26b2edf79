// Builds the RTCP compounds the feedback part sends to the sender, and puts them in the output
// area (upstream, Dest.Forward). Every compound starts as RFC 3550 6.1 requires: an RR (with the
// aggregate's report blocks, or none) from the filter's reporter SSRC, then an SDES with its
// CNAME; keyframe requests and NACKs follow (RFC 4585 AVPF compound). A compound stays under
// MAX_COMPOUND bytes; more feedback goes into the next one.
import {
  Dest, Output, PacketFlag, PsfbFmt, REPORT_BLOCK_SIZE, RtcpType, RtpfbFmt, SdesItem, loadBe16, storeBe16, storeBe32,
} from "../../../sdk/assembly";
import { FbCount, FbCounts } from "./rtcp-counts";
import { WorstReport } from "./rtcp-worst";

/** Small enough for any path's MTU with IP, UDP and SRTCP overhead. */
export const MAX_COMPOUND: i32 = 1200;
const RR_HEADER: i32 = 8;
const FEEDBACK_HEADER: i32 = 12;
const NACK_ENTRY: i32 = 4;
const FIR_ENTRY: i32 = 8;
/** A 24-bit signed field's range (cumulative lost). */
const CUMULATIVE_MAX: i32 = 0x7fffff;
const CUMULATIVE_MIN: i32 = -0x800000;

/**
 * One compound under construction, shared by every context (a call builds and sends it before
 * returning). Unmanaged: a managed array known only by its address would be collected.
 */
const BUF: usize = heap.alloc(MAX_COMPOUND);

export class RtcpWriter {
  private len: i32 = 0;
  /** Offset of the RR's header, whose count and length grow with each block (-1: no compound). */
  private rrAt: i32 = -1;
  /** Whether the SDES after the RR is written (no more report blocks then). */
  private sdesDone: bool = false;
  /** Offset of the NACK packet being filled (-1: none), its media source and its last entry. */
  private nackAt: i32 = -1;
  private nackMedia: u32 = 0;
  private entryAt: i32 = 0;
  private entryPid: i32 = 0;
  private readonly cname: ArrayBuffer;

  constructor(readonly reporter: u32, cname: string, private readonly counts: FbCounts) {
    this.cname = String.UTF8.encode(cname);
  }

  // ---- the aggregate report (timer) ----

  /**
   * Adds one report block about `media`, from the worst receivers' aggregate, sent at `nowUs`.
   * Blocks go into a compound of their own: call flush() after the last one (as after requests).
   */
  reportBlock(ctx: u32, media: u32, w: WorstReport, nowUs: i64): void {
    if (this.rrAt < 0 || this.sdesDone || this.len + REPORT_BLOCK_SIZE + this.sdesSize() > MAX_COMPOUND || rrCount(this.rrAt) == 31) {
      this.flush(ctx);
      this.start();
    }
    const at = BUF + <usize>this.len;
    const cumulative = min(max(w.cumulativeLost, CUMULATIVE_MIN), CUMULATIVE_MAX);
    storeBe32(at, media);
    storeBe32(at + 4, (<u32>w.fractionLost << 24) | (<u32>cumulative & 0xffffff));
    storeBe32(at + 8, w.extendedHighest);
    storeBe32(at + 12, w.jitter);
    storeBe32(at + 16, w.lsr);
    storeBe32(at + 20, w.dlsrAt(nowUs));
    this.len += REPORT_BLOCK_SIZE;
    const rr = BUF + <usize>this.rrAt;
    store<u8>(rr, 0x80 | (rrCount(this.rrAt) + 1));
    storeBe16(rr + 2, <u16>((RR_HEADER + REPORT_BLOCK_SIZE * rrCount(this.rrAt)) / 4 - 1));
  }

  // ---- requests (a receiver's packet) ----

  /** A PLI (RFC 4585 6.3.1) for `media`. */
  pli(ctx: u32, media: u32): void {
    const at = this.room(ctx, FEEDBACK_HEADER);
    feedbackHeader(at, RtcpType.PSFB, PsfbFmt.Pli, FEEDBACK_HEADER, this.reporter, media);
  }

  /** A FIR (RFC 5104 4.3.1) for `media` with the filter's sequence number `seq`. */
  fir(ctx: u32, media: u32, seq: u8): void {
    const at = this.room(ctx, FEEDBACK_HEADER + FIR_ENTRY);
    feedbackHeader(at, RtcpType.PSFB, PsfbFmt.Fir, FEEDBACK_HEADER + FIR_ENTRY, this.reporter, 0); // media SSRC 0: the FCI names it
    storeBe32(at + 12, media);
    storeBe32(at + 16, <u32>seq << 24);
  }

  /**
   * Asks for `seq` of `media` (RFC 4585 6.2.1 generic NACK): into the open entry's bitmask when it
   * is 1-16 after that entry's PID, else a new entry (and a new NACK packet for another source).
   */
  nack(ctx: u32, media: u32, seq: i32): void {
    if (this.nackAt >= 0 && this.nackMedia == media) {
      const d = (seq - this.entryPid) & 0xffff;
      if (d >= 1 && d <= 16) {
        const blp = BUF + <usize>this.entryAt + 2;
        storeBe16(blp, loadBe16(blp) | <u16>(1 << <u16>(d - 1)));
        return;
      }
      if (this.len + NACK_ENTRY <= MAX_COMPOUND) {
        this.len += NACK_ENTRY;
        this.nackEntry(this.len - NACK_ENTRY, seq);
        return;
      }
    }
    const at = this.room(ctx, FEEDBACK_HEADER + NACK_ENTRY);
    feedbackHeader(at, RtcpType.RTPFB, RtpfbFmt.Nack, FEEDBACK_HEADER + NACK_ENTRY, this.reporter, media);
    this.nackAt = <i32>(at - BUF);
    this.nackMedia = media;
    this.nackEntry(this.nackAt + FEEDBACK_HEADER, seq);
  }

  // ---- sending ----

  /**
   * Sends the compound built so far, if any, upstream; false when there was none, or when the
   * output area was full (counted: the compound is lost).
   */
  flush(ctx: u32): bool {
    if (this.len == 0) return false;
    this.endReport();
    const sent = Output.emit(ctx, BUF, this.len, PacketFlag.Rtcp | PacketFlag.Upstream, Dest.Forward);
    if (!sent) this.counts.add(FbCount.OutputFull);
    this.len = 0;
    this.rrAt = -1;
    this.sdesDone = false;
    this.nackAt = -1;
    return sent;
  }

  /** Starts a compound with an RR of no blocks (the SDES goes after the RR's blocks: endReport()). */
  private start(): void {
    this.rrAt = 0;
    this.sdesDone = false;
    storeBe32(BUF, 0x80000000 | (<u32>RtcpType.RR << 16) | 1);
    storeBe32(BUF + 4, this.reporter);
    this.len = RR_HEADER;
  }

  /** The address where `size` more bytes of feedback go (a new compound when this one is full). */
  private room(ctx: u32, size: i32): usize {
    this.nackAt = -1;
    if (this.len == 0 || this.len + size + (this.sdesDone ? 0 : this.sdesSize()) > MAX_COMPOUND) {
      this.flush(ctx);
      this.start();
    }
    this.endReport();
    const at = BUF + <usize>this.len;
    this.len += size;
    return at;
  }

  /** Closes the RR with the SDES CNAME after it, once per compound. */
  private endReport(): void {
    if (this.sdesDone) return;
    this.len += writeSdes(BUF + <usize>this.len, this.reporter, this.cname);
    this.sdesDone = true;
  }

  /** Writes a NACK entry for `seq` alone at offset `entryAt` (room taken) and the open NACK's length. */
  private nackEntry(entryAt: i32, seq: i32): void {
    const at = BUF + <usize>entryAt;
    storeBe16(at, <u16>seq);
    storeBe16(at + 2, 0);
    this.entryAt = entryAt;
    this.entryPid = seq;
    storeBe16(BUF + <usize>this.nackAt + 2, <u16>((entryAt + NACK_ENTRY - this.nackAt) / 4 - 1));
  }

  private sdesSize(): i32 {
    return sdesLength(this.cname.byteLength);
  }
}

@inline function rrCount(rrAt: i32): i32 {
  return <i32>(load<u8>(BUF + <usize>rrAt) & 0x1f);
}

function feedbackHeader(at: usize, type: i32, fmt: i32, size: i32, sender: u32, media: u32): void {
  store<u8>(at, <u8>(0x80 | fmt));
  store<u8>(at, <u8>type, 1);
  storeBe16(at + 2, <u16>(size / 4 - 1));
  storeBe32(at + 4, sender);
  storeBe32(at + 8, media);
}

/** Bytes of an SDES packet with one chunk holding a CNAME of `cnameBytes` (RFC 3550 6.5). */
function sdesLength(cnameBytes: i32): i32 {
  return 4 + ((4 + 2 + cnameBytes + 1 + 3) & ~3); // header, then SSRC, item, End, zero fill to 32 bits
}

function writeSdes(at: usize, ssrc: u32, cname: ArrayBuffer): i32 {
  const n = cname.byteLength;
  const size = sdesLength(n);
  memory.fill(at, 0, <usize>size);
  storeBe32(at, 0x81000000 | (<u32>RtcpType.SDES << 16) | <u32>(size / 4 - 1));
  storeBe32(at + 4, ssrc);
  store<u8>(at, <u8>SdesItem.Cname, 8);
  store<u8>(at, <u8>n, 9);
  memory.copy(at + 10, changetype<usize>(cname), <usize>n);
  return size;
}
