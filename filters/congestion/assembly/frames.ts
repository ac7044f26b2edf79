// Priority drop: which frames go when the pacer's queue grows. A frame is the packets of one RTP
// timestamp of one SSRC; its first packet decides for all of it, so a frame is never cut in half
// by a decision. For H.264 (RFC 6184 packetisation) the first packet's NAL header says how much
// the frame matters: IDR (or parameter sets) > reference (nal_ref_idc > 0) > non-reference; a
// first packet holding an AUD or SEI alone says nothing of it, and the next packet decides.
import { RtpPacket } from "../../../sdk/assembly";
import { DROP_DEPENDENT, DROP_NON_REFERENCE, DROP_QUEUE_FULL, DROP_REFERENCE } from "./metrics";
import { MAX_SOURCES, SOURCE_IDLE_US, leastRecent } from "./settings";

export const CLASS_OTHER = 0;
export const CLASS_NON_REFERENCE = 1;
export const CLASS_REFERENCE = 2;
export const CLASS_IDR = 3;

const SOURCES = MAX_SOURCES;

/** The class of the H.264 frame whose first packet's payload is [payload, payload+len). */
export function h264Class(payload: usize, len: i32): i32 {
  if (len < 1) return CLASS_OTHER;
  const header = <i32>load<u8>(payload);
  const type = header & 0x1f;
  const nri = (header >> 5) & 3;
  if (type >= 1 && type <= 23) return nalClass(type, nri);
  if (type == 24) {
    // STAP-A: the most important of its NAL units
    let best = CLASS_OTHER;
    let at = 1;
    while (at + 3 <= len) {
      const size = (<i32>load<u8>(payload + <usize>at) << 8) | <i32>load<u8>(payload + <usize>at + 1);
      if (size == 0 || at + 2 + size > len) break;
      const h = <i32>load<u8>(payload + <usize>at + 2);
      best = max(best, nalClass(h & 0x1f, (h >> 5) & 3));
      at += 2 + size;
    }
    return best;
  }
  if (type == 28 && len >= 2) return nalClass(<i32>load<u8>(payload + 1) & 0x1f, nri); // FU-A
  return CLASS_OTHER;
}

function nalClass(type: i32, nri: i32): i32 {
  if (type == 5 || type == 7 || type == 8) return CLASS_IDR;
  if (type >= 1 && type <= 4) return nri > 0 ? CLASS_REFERENCE : CLASS_NON_REFERENCE;
  return CLASS_OTHER; // SEI, AUD, ...: goes with its frame's next packet's decision if it is first
}

export class FrameGate {
  private readonly ssrcs: StaticArray<u32> = new StaticArray<u32>(SOURCES);
  private readonly timestamps: StaticArray<u32> = new StaticArray<u32>(SOURCES);
  private readonly used: StaticArray<bool> = new StaticArray<bool>(SOURCES);
  /** The current frame's verdict per source: 0 admitted, else the drop reason of all its packets. */
  private readonly verdicts: StaticArray<u32> = new StaticArray<u32>(SOURCES);
  /** Per source: the current frame's packets so far were H.264 without a slice or parameter set (AUD, SEI): the next one decides. */
  private readonly undecided: StaticArray<bool> = new StaticArray<bool>(SOURCES);
  /** The current frame's class per source. */
  private readonly classes: StaticArray<i32> = new StaticArray<i32>(SOURCES);
  /** Per source: a reference frame was lost here; frames up to the next IDR cannot be decoded. */
  private readonly waitingIdr: StaticArray<bool> = new StaticArray<bool>(SOURCES);
  /** Set when the last decision started waiting for an IDR (the caller may ask the origin for one). */
  startedWaiting: bool = false;
  private source: i32 = 0;
  /** Per source: when its last packet came; a new SSRC beyond SOURCES takes the place of one silent for SOURCE_IDLE_US. */
  private readonly lastUse: StaticArray<i64> = new StaticArray<i64>(SOURCES);

  /**
   * The verdict for one RTP packet: 0 (admit) or a drop reason. `h264` says whether its payload
   * type is H.264; `queueMs` is the pacer's queue now; the limits come from the config.
   */
  decide(ptr: usize, len: i32, h264: bool, queueMs: f64, nonReferenceMs: f64, referenceMs: f64, maxQueueMs: f64, nowUs: i64): u32 {
    this.startedWaiting = false;
    const s = this.sourceOf(RtpPacket.ssrc(ptr), nowUs);
    this.source = s;
    const ts = RtpPacket.timestamp(ptr);
    const sameFrame = unchecked(this.timestamps[s]) == ts && unchecked(this.verdicts[s]) != 0xffffffff;
    if (sameFrame && !unchecked(this.undecided[s])) return unchecked(this.verdicts[s]);
    // a new frame, or the next packet of one whose packets so far said nothing of its class
    unchecked((this.timestamps[s] = ts));
    let cls = CLASS_OTHER;
    if (h264) {
      const off = RtpPacket.payloadOffset(ptr);
      if (off > 0 && off < len) cls = h264Class(ptr + <usize>off, len - off - RtpPacket.paddingLength(ptr, len));
    }
    unchecked((this.classes[s] = cls));
    unchecked((this.undecided[s] = false));
    let verdict: u32 = 0;
    if (cls == CLASS_IDR) {
      unchecked((this.waitingIdr[s] = false));
    } else if (unchecked(this.waitingIdr[s])) {
      verdict = DROP_DEPENDENT;
    } else if (cls == CLASS_NON_REFERENCE && queueMs > nonReferenceMs) {
      verdict = DROP_NON_REFERENCE;
    } else if (cls == CLASS_REFERENCE && queueMs > referenceMs) {
      verdict = DROP_REFERENCE;
      this.waitFor(s);
    }
    if (verdict == 0 && queueMs > maxQueueMs) {
      verdict = DROP_QUEUE_FULL;
      if (cls >= CLASS_REFERENCE) this.waitFor(s);
    }
    // an H.264 frame led by a packet of an AUD or SEI alone (no slice, no parameter set): that
    // packet has its verdict, and the frame's next packet decides for the rest (an IDR led by an
    // AUD ends the wait for one, a non-reference frame led by one can still go first)
    if (h264 && cls == CLASS_OTHER && verdict != DROP_QUEUE_FULL) unchecked((this.undecided[s] = true));
    unchecked((this.verdicts[s] = verdict));
    return verdict;
  }

  /** The SSRC of the last decided packet (the one a keyframe request is about). */
  @inline get currentSsrc(): u32 {
    return unchecked(this.ssrcs[this.source]);
  }

  /** Whether the last decided packet's frame is a keyframe (IDR or parameter sets first). */
  @inline get currentIsKeyframe(): bool {
    return unchecked(this.classes[this.source]) == CLASS_IDR;
  }

  /**
   * The admitted frame of the last decided packet could not be queued (the queue was full): the
   * rest of it goes too, and what depends on it.
   */
  cutCurrent(): void {
    const s = this.source;
    unchecked((this.verdicts[s] = DROP_QUEUE_FULL));
    if (unchecked(this.classes[s]) >= CLASS_REFERENCE) this.waitFor(s);
  }

  private waitFor(s: i32): void {
    if (!unchecked(this.waitingIdr[s])) this.startedWaiting = true;
    unchecked((this.waitingIdr[s] = true));
  }

  private sourceOf(ssrc: u32, now: i64): i32 {
    for (let i = 0; i < SOURCES; i++) {
      if (!unchecked(this.used[i])) {
        unchecked((this.used[i] = true));
        return this.start(i, ssrc, now);
      }
      if (unchecked(this.ssrcs[i]) == ssrc) {
        unchecked((this.lastUse[i] = now));
        return i;
      }
    }
    const oldest = leastRecent(this.lastUse, SOURCES);
    // a sender that restarted under a new SSRC: its old stream, silent, gives up its place (shared,
    // a keyframe request would name the old SSRC, and its wait for an IDR the new one's); while
    // all are busy (more live SSRCs than followed), the new one shares the last place, never
    // taking a live stream's in the middle of its frame
    if (now - unchecked(this.lastUse[oldest]) < SOURCE_IDLE_US) return SOURCES - 1;
    return this.start(oldest, ssrc, now);
  }

  private start(i: i32, ssrc: u32, now: i64): i32 {
    unchecked((this.ssrcs[i] = ssrc));
    unchecked((this.verdicts[i] = 0xffffffff)); // no frame yet
    unchecked((this.undecided[i] = false));
    unchecked((this.waitingIdr[i] = false));
    unchecked((this.lastUse[i] = now));
    return i;
  }
}
