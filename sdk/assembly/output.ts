// The output area (docs/abi.md "Output area"): packets a filter creates during on_batch or
// on_timer. The SDK counts them and returns the count from the export.
import { Dest, LogLevel, MAX_LEGS } from "../../runtime/abi";
import { log } from "./host";
import {
  OUT_CAPACITY, HEADROOM, MAX_PACKET, outDesc, outSlot,
  setDescOffset, setDescLength, setDescContext, setDescFlags, setDescDest, setDescLegOnly,
  setDescVerdict, setDescReason, setDescArrival,
} from "./arena";

/** Whether a refused dest or leg was logged: once per instance, the packet path allocates no more. */
let targetRefusalLogged = false;

/** Says once why emit/commit refused a dest or leg: returning false alone is easy to miss. */
function refuseTarget(what: string, dest: i32, leg: i32): bool {
  if (!targetRefusalLogged) {
    targetRefusalLogged = true;
    log(LogLevel.Error, what + " refused dest " + dest.toString() + " on leg " + leg.toString()
      + ": a dest is Dest.Forward (0), Dest.Reverse (1) or Dest.DestinationIndexBase (16) + k (2-15 are invalid),"
      + " a leg 0 to " + (MAX_LEGS - 1).toString() + "; nothing was sent (said once)");
  }
  return false;
}

@final export class Output {
  /** Output packets written so far in this call. */
  static count: i32 = 0;

  /** Whether the host takes `dest` (Forward, Reverse, DestinationIndexBase + k; 2-15 are invalid) and `leg` (below MAX_LEGS). */
  @inline static validTarget(dest: i32, leg: i32): bool {
    return (dest == Dest.Forward || dest == Dest.Reverse || <u32>(dest - Dest.DestinationIndexBase) < <u32>(256 - Dest.DestinationIndexBase))
      && <u32>leg < <u32>MAX_LEGS;
  }

  /** Largest output packet. */
  @inline static get maxPacket(): i32 {
    return MAX_PACKET;
  }

  /** Output slots still free in this call. */
  @inline static remaining(): i32 {
    return OUT_CAPACITY - Output.count;
  }

  /**
   * Copies [ptr, ptr+len) into the next output slot and describes it: context `ctx`,
   * PacketFlag bits `flags` (Rtcp, Upstream are read), `dest` a Dest value, `leg` the leg it
   * leaves on (0: the media; FEC repair goes on the segment's FEC legs). Returns false, writing
   * nothing, when the area is full or len is out of range, and when dest or leg is invalid (the
   * first such refusal is logged as an error).
   */
  static emit(ctx: u32, ptr: usize, len: i32, flags: i32 = 0, dest: i32 = Dest.Forward, leg: i32 = 0): bool {
    if (!Output.validTarget(dest, leg)) return refuseTarget("Output.emit", dest, leg);
    const at = Output.reserve();
    if (at == 0 || len < 0 || len > MAX_PACKET) return false;
    memory.copy(at, ptr, <usize>len);
    return Output.commit(ctx, len, flags, dest, leg);
  }

  /**
   * Address where the next output packet may be built in place (up to maxPacket bytes), or 0
   * when the area is full. Follow with commit().
   */
  @inline static reserve(): usize {
    return Output.count < OUT_CAPACITY ? outSlot(Output.count) + HEADROOM : 0;
  }

  /** Publishes the packet built at reserve() with `len` bytes; refuses as emit() does. */
  static commit(ctx: u32, len: i32, flags: i32 = 0, dest: i32 = Dest.Forward, leg: i32 = 0): bool {
    if (!Output.validTarget(dest, leg)) return refuseTarget("Output.commit", dest, leg);
    const j = Output.count;
    if (j >= OUT_CAPACITY || len < 0 || len > MAX_PACKET) return false;
    const d = outDesc(j);
    setDescOffset(d, outSlot(j) + HEADROOM);
    setDescLength(d, len);
    setDescContext(d, ctx);
    setDescFlags(d, <u16>flags);
    setDescVerdict(d, 0);
    setDescDest(d, <u8>dest);
    setDescReason(d, 0);
    setDescLegOnly(d, <u8>leg);
    setDescArrival(d, 0);
    Output.count = j + 1;
    return true;
  }
}
