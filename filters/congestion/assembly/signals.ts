// What the sending proxy tells the origin (upstream, in one compound behind an empty receiver
// report): TMMBR (RFC 5104 section 4.2.1), REMB (draft-alvestrand-rmcat-remb-03 section 2.2) and
// PLI (RFC 4585 section 6.3.1), written into the output area.
import { Dest, Output, PacketFlag, storeBe32 } from "../../../sdk/assembly";

/** IPv4 + UDP + RTP fixed header: TMMBR's "measured overhead" (RFC 5104 4.2.1.2). */
const OVERHEAD_BYTES: u32 = 40;

/** Writes [empty RR][TMMBR][REMB][PLI] as asked (TMMBR and REMB about `mediaSsrc`, PLI about `pliSsrc`); false when the output area is full or nothing was asked. */
export function writeSignals(ctx: u32, ourSsrc: u32, mediaSsrc: u32, pliSsrc: u32, bps: f64, tmmbr: bool, remb: bool, pli: bool): bool {
  if (!tmmbr && !remb && !pli) return false;
  const out = Output.reserve();
  if (out == 0) return false;
  let at = out;
  storeBe32(at, 0x80c90001); // RR, no blocks, length 1
  storeBe32(at + 4, ourSsrc);
  at += 8;
  const rate = <u64>Math.max(Math.min(bps, 1e15), 0);
  if (tmmbr) {
    storeBe32(at, 0x83cd0004); // RTPFB FMT 3, length 4
    storeBe32(at + 4, ourSsrc);
    storeBe32(at + 8, 0); // media source: 0 (RFC 5104 4.2.1.1)
    storeBe32(at + 12, mediaSsrc);
    let mantissa = rate;
    let exp: u32 = 0;
    while (mantissa > 0x1ffff) {
      mantissa >>= 1;
      exp++;
    }
    storeBe32(at + 16, (exp << 26) | (<u32>mantissa << 9) | OVERHEAD_BYTES);
    at += 20;
  }
  if (remb) {
    storeBe32(at, 0x8fce0005); // PSFB FMT 15, length 5
    storeBe32(at + 4, ourSsrc);
    storeBe32(at + 8, 0);
    storeBe32(at + 12, 0x52454d42); // "REMB"
    let mantissa = rate;
    let exp: u32 = 0;
    while (mantissa > 0x3ffff) {
      mantissa >>= 1;
      exp++;
    }
    storeBe32(at + 16, (1 << 24) | (exp << 18) | <u32>mantissa);
    storeBe32(at + 20, mediaSsrc);
    at += 24;
  }
  if (pli) {
    storeBe32(at, 0x81ce0002); // PSFB FMT 1, length 2
    storeBe32(at + 4, ourSsrc);
    storeBe32(at + 8, pliSsrc);
    at += 12;
  }
  return Output.commit(ctx, <i32>(at - out), PacketFlag.Rtcp | PacketFlag.Upstream, Dest.Forward);
}

