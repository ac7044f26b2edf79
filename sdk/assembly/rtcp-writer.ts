// Builds one compound RTCP packet (RFC 3550 6.1) in a buffer: SR and RR with report blocks
// (6.4), SDES chunks with a CNAME (6.5), BYE with a reason (6.6), generic NACK (RFC 4585 6.2.1)
// and PLI (6.3.1). Every write is bounds-checked: the first one that does not fit or breaks a
// rule sets `error` and nothing is written from then on, so a filter checks once, at finish() or
// emit(). Each packet's count and length fields are written when the next one starts or at
// finish(). rtcp.ts reads what this writes.
import { Dest, PacketFlag } from "../../runtime/abi";
import { loadBe16, storeBe16, storeBe32, storeBe64 } from "./bytes";
import { Output } from "./output";
import { REPORT_BLOCK_SIZE, PsfbFmt, RtcpType, RtpfbFmt, SdesItem } from "./rtcp";

/** Why a write or finish() failed. The writes stop at the first. */
export enum RtcpWriteError {
  None = 0,
  /** The write does not fit in the buffer. */
  NoRoom = 1,
  /** A report block while the last packet is not an SR or RR. */
  NoReport = 2,
  /** A 32nd report block, SDES chunk or BYE source in one packet (the count field has 5 bits). */
  TooMany = 3,
  /** An SDES item or a BYE reason over 255 bytes of UTF-8, or an SDES item of type End. */
  BadText = 4,
  /** An SDES item while the last packet is not an SDES. */
  NoChunk = 5,
  /** finish(): the compound does not start with an SR or RR (RFC 3550 6.1). */
  FirstNotReport = 6,
  /** finish(): the compound has no SDES CNAME item (RFC 3550 6.1). */
  NoCname = 7,
  /** finish(): nothing was written. */
  Empty = 8,
  /** beginOutput() or emit(): the output area is full. */
  OutputFull = 9,
  /** emit(): `dest` or `leg` is one the host does not take (Output.validTarget); nothing was sent. */
  BadTarget = 10,
}

const SR_HEADER: i32 = 28;
const RR_HEADER: i32 = 8;
const FEEDBACK_HEADER: i32 = 12;
const NACK_ENTRY: i32 = 4;
const MAX_COUNT: i32 = 31;
const MAX_TEXT: i32 = 255;
/** Seconds from the NTP epoch (1900) to the Unix epoch (1970). */
const NTP_UNIX_OFFSET: u64 = 2208988800;

/** The 64-bit NTP timestamp (seconds since 1900 << 32 | fraction) of a Unix time in microseconds (wallUs()). */
export function ntpFromUnixUs(unixUs: i64): u64 {
  const us = <u64>(unixUs < 0 ? 0 : unixUs);
  const seconds = us / 1_000_000 + NTP_UNIX_OFFSET;
  const fraction = ((us % 1_000_000) << 32) / 1_000_000;
  return (seconds << 32) | fraction;
}

/** The middle 32 bits of an NTP timestamp: an SR's LSR value (RFC 3550 6.4.1). */
@inline export function ntpMiddle(ntp: u64): u32 {
  return <u32>(ntp >> 16);
}

/** A delay in microseconds as DLSR units of 1/65536 s (RFC 3550 6.4.1); past 65536 s, the largest. */
export function dlsrFromUs(us: i64): u32 {
  if (us <= 0) return 0;
  if (us >= 65_536_000_000) return u32.MAX_VALUE;
  return <u32>((<u64>us << 16) / 1_000_000);
}

/**
 * One compound under construction. Make one at top level and reuse it: begin() or beginOutput()
 * starts a compound, the packet methods append (each returns false once `error` is set), and
 * finish() or emit() closes it.
 */
@final export class RtcpWriter {
  /** The first failure, or None. */
  error: RtcpWriteError = RtcpWriteError.None;
  /** Bytes written so far. */
  length: i32 = 0;
  private base: usize = 0;
  private capacity: i32 = 0;
  /** Offset of the packet whose count and length are still open, or -1. */
  private open: i32 = -1;
  private openType: i32 = 0;
  /** The open SDES packet has a chunk whose End octet and padding are still to write. */
  private chunkOpen: bool = false;
  /** The open BYE has its reason: no more sources go into it. */
  private byeReason: bool = false;
  /** The open NACK's sender and media SSRC, and the offset of its last entry (-1: none open). */
  private nackSender: u32 = 0;
  private nackMedia: u32 = 0;
  private nackEntry: i32 = -1;
  private firstType: i32 = 0;
  private hasCname: bool = false;

  /** Starts a compound in [ptr, ptr + capacity). */
  begin(ptr: usize, capacity: i32): void {
    this.base = ptr;
    this.capacity = capacity < 0 ? 0 : capacity;
    this.length = 0;
    this.error = RtcpWriteError.None;
    this.open = -1;
    this.openType = 0;
    this.chunkOpen = false;
    this.nackEntry = -1;
    this.firstType = 0;
    this.hasCname = false;
  }

  /** Starts a compound in place in the next output slot; false (OutputFull) when the area is full. */
  beginOutput(): bool {
    const at = Output.reserve();
    this.begin(at, at == 0 ? 0 : Output.maxPacket);
    if (at == 0) this.error = RtcpWriteError.OutputFull;
    return at != 0;
  }

  /** Address of the compound's first byte. */
  @inline get ptr(): usize {
    return this.base;
  }

  /** Sender report (RFC 3550 6.4.1) from `ssrc` at NTP time `ntp` (ntpFromUnixUs(wallUs())); add its blocks with reportBlock(). */
  senderReport(ssrc: u32, ntp: u64, rtpTimestamp: u32, packetCount: u32, octetCount: u32): bool {
    const at = this.startPacket(RtcpType.SR, 0, SR_HEADER);
    if (at == 0) return false;
    storeBe32(at + 4, ssrc);
    storeBe64(at + 8, ntp);
    storeBe32(at + 16, rtpTimestamp);
    storeBe32(at + 20, packetCount);
    storeBe32(at + 24, octetCount);
    return true;
  }

  /** Receiver report (RFC 3550 6.4.2) from `ssrc`; add its blocks with reportBlock(). */
  receiverReport(ssrc: u32): bool {
    const at = this.startPacket(RtcpType.RR, 0, RR_HEADER);
    if (at == 0) return false;
    storeBe32(at + 4, ssrc);
    return true;
  }

  /**
   * A report block about source `ssrc` in the SR or RR just written (at most 31).
   * `cumulativeLost` is clamped to its signed 24 bits; `lastSr` is ntpMiddle() of the last SR
   * received (0: none), `delaySinceLastSr` in 1/65536 s (dlsrFromUs()).
   */
  reportBlock(ssrc: u32, fractionLost: u8, cumulativeLost: i32, highestSeq: u32, jitter: u32, lastSr: u32, delaySinceLastSr: u32): bool {
    if (this.error != RtcpWriteError.None) return false;
    if (this.open < 0 || (this.openType != RtcpType.SR && this.openType != RtcpType.RR)) return this.fail(RtcpWriteError.NoReport);
    if (this.openCount() == MAX_COUNT) return this.fail(RtcpWriteError.TooMany);
    const at = this.take(REPORT_BLOCK_SIZE);
    if (at == 0) return false;
    const lost = min(max(cumulativeLost, -0x800000), 0x7fffff);
    storeBe32(at, ssrc);
    storeBe32(at + 4, (<u32>fractionLost << 24) | (<u32>lost & 0xffffff));
    storeBe32(at + 8, highestSeq);
    storeBe32(at + 12, jitter);
    storeBe32(at + 16, lastSr);
    storeBe32(at + 20, delaySinceLastSr);
    this.bumpCount();
    return true;
  }

  /** An SDES chunk for `ssrc` with its CNAME (RFC 3550 6.5.1): in the SDES just written, or a new one. */
  sdes(ssrc: u32, cname: string): bool {
    if (this.error != RtcpWriteError.None) return false;
    if (this.open >= 0 && this.openType == RtcpType.SDES) {
      if (this.openCount() == MAX_COUNT) return this.fail(RtcpWriteError.TooMany);
      this.endChunk();
      if (!this.reserveChunkEnd(4)) return false;
      storeBe32(this.take(4), ssrc);
    } else {
      this.closePacket();
      // header and SSRC, with room for the chunk's End octet and padding after them
      if (this.length + 8 + 4 > this.capacity) return this.fail(RtcpWriteError.NoRoom);
      storeBe32(this.startPacket(RtcpType.SDES, 0, 8) + 4, ssrc);
    }
    this.bumpCount();
    this.chunkOpen = true;
    return this.sdesItem(SdesItem.Cname, cname);
  }

  /** Another item (NAME, TOOL, ...) in the SDES chunk sdes() just opened. */
  sdesItem(type: SdesItem, text: string): bool {
    if (this.error != RtcpWriteError.None) return false;
    if (!this.chunkOpen || this.openType != RtcpType.SDES) return this.fail(RtcpWriteError.NoChunk);
    const n = String.UTF8.byteLength(text);
    if (type == SdesItem.End || n > MAX_TEXT) return this.fail(RtcpWriteError.BadText);
    if (!this.reserveChunkEnd(2 + n)) return false;
    const at = this.take(2 + n);
    store<u8>(at, <u8>type);
    store<u8>(at, <u8>n, 1);
    String.UTF8.encodeUnsafe(changetype<usize>(text), text.length, at + 2, false);
    if (type == SdesItem.Cname) this.hasCname = true;
    return true;
  }

  /**
   * Goodbye (RFC 3550 6.6) from `ssrc`: added to the BYE just written unless that one has its
   * reason. `reason` (at most 255 bytes) ends the packet's source list.
   */
  bye(ssrc: u32, reason: string = ""): bool {
    if (this.error != RtcpWriteError.None) return false;
    const n = String.UTF8.byteLength(reason);
    if (n > MAX_TEXT) return this.fail(RtcpWriteError.BadText);
    const reasonBytes = n == 0 ? 0 : (1 + n + 3) & ~3;
    if (this.open >= 0 && this.openType == RtcpType.BYE && !this.byeReason) {
      if (this.openCount() == MAX_COUNT) return this.fail(RtcpWriteError.TooMany);
      if (this.length + 4 + reasonBytes > this.capacity) return this.fail(RtcpWriteError.NoRoom);
      storeBe32(this.take(4), ssrc);
    } else {
      this.closePacket();
      if (this.length + 8 + reasonBytes > this.capacity) return this.fail(RtcpWriteError.NoRoom);
      storeBe32(this.startPacket(RtcpType.BYE, 0, 8) + 4, ssrc);
    }
    this.bumpCount();
    if (n == 0) return true;
    const at = this.take(reasonBytes);
    memory.fill(at, 0, <usize>reasonBytes);
    store<u8>(at, <u8>n);
    String.UTF8.encodeUnsafe(changetype<usize>(reason), reason.length, at + 1, false);
    this.byeReason = true;
    return true;
  }

  /**
   * Asks `mediaSsrc`'s sender for sequence number `seq` again (RFC 4585 6.2.1 generic NACK):
   * into the bitmask of the NACK just written when `seq` is 1-16 after its last entry's PID,
   * else a new entry, or a new NACK for another source. Ascending order packs best; any order
   * is correct.
   */
  nack(senderSsrc: u32, mediaSsrc: u32, seq: u16): bool {
    if (this.error != RtcpWriteError.None) return false;
    if (this.nackEntry >= 0 && this.open >= 0 && this.nackSender == senderSsrc && this.nackMedia == mediaSsrc) {
      const entry = this.base + <usize>this.nackEntry;
      const d = <i32>((seq - loadBe16(entry)) & 0xffff);
      if (d == 0) return true;
      if (d <= 16) {
        storeBe16(entry + 2, loadBe16(entry + 2) | <u16>(1 << <u16>(d - 1)));
        return true;
      }
      const at = this.take(NACK_ENTRY);
      if (at == 0) return false;
      this.nackEntry = <i32>(at - this.base);
      storeBe16(at, seq);
      storeBe16(at + 2, 0);
      return true;
    }
    const at = this.feedback(RtcpType.RTPFB, RtpfbFmt.Nack, senderSsrc, mediaSsrc, NACK_ENTRY);
    if (at == 0) return false;
    this.nackSender = senderSsrc;
    this.nackMedia = mediaSsrc;
    this.nackEntry = <i32>(at + FEEDBACK_HEADER - this.base);
    storeBe16(at + FEEDBACK_HEADER, seq);
    storeBe16(at + FEEDBACK_HEADER + 2, 0);
    return true;
  }

  /** nack() for the first `count` sequence numbers of `lost`. */
  nackList(senderSsrc: u32, mediaSsrc: u32, lost: StaticArray<u16>, count: i32): bool {
    if (count < 0 || count > lost.length) count = lost.length;
    for (let i = 0; i < count; i++) if (!this.nack(senderSsrc, mediaSsrc, unchecked(lost[i]))) return false;
    return true;
  }

  /** Picture loss indication (RFC 4585 6.3.1) for `mediaSsrc`. */
  pli(senderSsrc: u32, mediaSsrc: u32): bool {
    return this.feedback(RtcpType.PSFB, PsfbFmt.Pli, senderSsrc, mediaSsrc, 0) != 0;
  }

  /**
   * Closes the compound and returns its length, or the negated RtcpWriteError. Unless
   * `reducedSize` (RFC 5506), it must start with an SR or RR and carry a CNAME (RFC 3550 6.1).
   */
  finish(reducedSize: bool = false): i32 {
    this.closePacket();
    if (this.error == RtcpWriteError.None) {
      if (this.length == 0) this.error = RtcpWriteError.Empty;
      else if (!reducedSize && this.firstType != RtcpType.SR && this.firstType != RtcpType.RR) this.error = RtcpWriteError.FirstNotReport;
      else if (!reducedSize && !this.hasCname) this.error = RtcpWriteError.NoCname;
    }
    return this.error == RtcpWriteError.None ? this.length : -this.error;
  }

  /**
   * finish(), then the compound goes out as an output packet of context `ctx` (PacketFlag.Rtcp
   * added to `flags`): published in place after beginOutput(), copied from a buffer of your own
   * after begin(). Returns None or the error: OutputFull when the output area is full, BadTarget
   * for an invalid dest or leg.
   */
  emit(ctx: u32, flags: i32 = 0, dest: i32 = Dest.Forward, leg: i32 = 0, reducedSize: bool = false): RtcpWriteError {
    const len = this.finish(reducedSize);
    if (len < 0) return this.error;
    if (!Output.validTarget(dest, leg)) {
      this.error = RtcpWriteError.BadTarget;
      return this.error;
    }
    const sent = this.base == Output.reserve()
      ? Output.commit(ctx, len, flags | PacketFlag.Rtcp, dest, leg)
      : Output.emit(ctx, this.base, len, flags | PacketFlag.Rtcp, dest, leg);
    if (!sent) this.error = RtcpWriteError.OutputFull;
    return this.error;
  }

  // ---- internals ----

  @inline private fail(error: RtcpWriteError): bool {
    this.error = error;
    return false;
  }

  /** Reserves `n` bytes and returns their address, or 0 (NoRoom). */
  private take(n: i32): usize {
    if (this.error != RtcpWriteError.None) return 0;
    if (n > this.capacity - this.length) {
      this.error = RtcpWriteError.NoRoom;
      return 0;
    }
    const at = this.base + <usize>this.length;
    this.length += n;
    return at;
  }

  /** True when `n` more bytes of the open SDES chunk still leave room for its End octet and padding. */
  private reserveChunkEnd(n: i32): bool {
    const end = this.length + n;
    if (end + (4 - (end & 3)) > this.capacity) return this.fail(RtcpWriteError.NoRoom);
    return true;
  }

  /** Closes the open packet and starts one of `type` with count `count`, `size` bytes; its address or 0. */
  private startPacket(type: i32, count: i32, size: i32): usize {
    if (this.error != RtcpWriteError.None) return 0;
    this.closePacket();
    const at = this.take(size);
    if (at == 0) return 0;
    store<u8>(at, <u8>(0x80 | count));
    store<u8>(at, <u8>type, 1);
    this.open = <i32>(at - this.base);
    this.openType = type;
    this.byeReason = false;
    if (this.firstType == 0) this.firstType = type;
    return at;
  }

  /** An RTPFB or PSFB packet with `fci` bytes of FCI after its header; its address or 0. */
  private feedback(type: i32, fmt: i32, senderSsrc: u32, mediaSsrc: u32, fci: i32): usize {
    const at = this.startPacket(type, fmt, FEEDBACK_HEADER + fci);
    if (at == 0) return 0;
    storeBe32(at + 4, senderSsrc);
    storeBe32(at + 8, mediaSsrc);
    return at;
  }

  @inline private openCount(): i32 {
    return <i32>(load<u8>(this.base + <usize>this.open) & 0x1f);
  }

  @inline private bumpCount(): void {
    const p = this.base + <usize>this.open;
    store<u8>(p, load<u8>(p) + 1);
  }

  /** Writes the open SDES chunk's End octet and zero fill to 32 bits (room was kept for them). */
  private endChunk(): void {
    if (!this.chunkOpen) return;
    const pad = 4 - (this.length & 3);
    const at = this.base + <usize>this.length;
    memory.fill(at, 0, <usize>pad);
    this.length += pad;
    this.chunkOpen = false;
  }

  /** Writes the open packet's length field; nothing is open after it. */
  private closePacket(): void {
    if (this.open < 0) return;
    this.endChunk();
    storeBe16(this.base + <usize>this.open + 2, <u16>((this.length - this.open) / 4 - 1));
    this.open = -1;
    this.openType = 0;
    this.nackEntry = -1;
  }
}
