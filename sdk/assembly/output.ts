// The output area (docs/abi.md "Output area"): packets a filter creates during on_batch or
// on_timer. The SDK counts them and returns the count from the export.
import { Dest } from "../abi/constants";
import {
  OUT_CAPACITY, HEADROOM, MAX_PACKET, outDesc, outSlot,
  setDescOffset, setDescLength, setDescContext, setDescFlags, setDescDest, setDescAux,
  setDescVerdict, setDescReason, setDescArrival,
} from "./arena";

@final export class Output {
  /** Output packets written so far in this call. */
  static count: i32 = 0;

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
   * PacketFlag bits `flags` (Rtcp, Upstream are read), `dest` a Dest value, `aux` a port
   * offset (0 normally). Returns false, writing nothing, when the area is full or len is out
   * of range.
   */
  static emit(ctx: u32, ptr: usize, len: i32, flags: i32 = 0, dest: i32 = Dest.Forward, aux: u32 = 0): bool {
    const at = Output.reserve();
    if (at == 0 || len < 0 || len > MAX_PACKET) return false;
    memory.copy(at, ptr, <usize>len);
    return Output.commit(ctx, len, flags, dest, aux);
  }

  /**
   * Address where the next output packet may be built in place (up to maxPacket bytes), or 0
   * when the area is full. Follow with commit().
   */
  @inline static reserve(): usize {
    return Output.count < OUT_CAPACITY ? outSlot(Output.count) + HEADROOM : 0;
  }

  /** Publishes the packet built at reserve() with `len` bytes. */
  static commit(ctx: u32, len: i32, flags: i32 = 0, dest: i32 = Dest.Forward, aux: u32 = 0): bool {
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
    setDescAux(d, aux);
    setDescArrival(d, 0);
    Output.count = j + 1;
    return true;
  }
}
