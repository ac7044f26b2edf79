// Packet: a view over one batch descriptor (docs/abi.md "Descriptor"). The object *is* the
// descriptor's address, so Packet.at(i) allocates nothing.
import { PacketFlag, Verdict, DESC_SIZE, MAX_LEGS } from "../../runtime/abi";
import {
  DESC_TABLE, SLOT_SIZE, batchDesc, batchSlot,
  descOffset, setDescOffset, descLength, setDescLength, descContext, descFlags,
  descVerdict, setDescVerdict, descReason, setDescReason, descPort, descLeg, setDescLeg, descArrival,
} from "./arena";

@final @unmanaged export class Packet {
  /** The packet of batch descriptor `i` (0 <= i < the batch count). */
  @inline static at(i: i32): Packet {
    return changetype<Packet>(batchDesc(i));
  }

  /** Address of the descriptor. */
  @inline get desc(): usize {
    return changetype<usize>(this);
  }
  /** Index in the batch. */
  @inline get index(): i32 {
    return <i32>((changetype<usize>(this) - DESC_TABLE) / DESC_SIZE);
  }

  /** Address of the packet's first byte. */
  @inline get ptr(): usize {
    return descOffset(this.desc);
  }
  /** Packet length in bytes. */
  @inline get length(): i32 {
    return descLength(this.desc);
  }
  /** Context id of the segment the packet belongs to. */
  @inline get context(): u32 {
    return descContext(this.desc);
  }
  /** PacketFlag bits. */
  @inline get flags(): u16 {
    return descFlags(this.desc);
  }
  @inline get isRtcp(): bool {
    return (descFlags(this.desc) & PacketFlag.Rtcp) != 0;
  }
  @inline get isUpstream(): bool {
    return (descFlags(this.desc) & PacketFlag.Upstream) != 0;
  }
  @inline get isGenerated(): bool {
    return (descFlags(this.desc) & PacketFlag.Generated) != 0;
  }
  /** Arrival time, microseconds on the nowUs() clock (a packet a stage before made: when it was made). */
  @inline get arrivalUs(): i64 {
    return descArrival(this.desc);
  }
  /**
   * The arrival time to judge the packet by: arrivalUs, or `nowUs` when it is unset (0) or later
   * (a test's input). A filter that waits for packets measures from this, so that a backlog read
   * late after a stall counts from when each packet came.
   */
  @inline arrivalOr(nowUs: i64): i64 {
    const at = descArrival(this.desc);
    return at > 0 && at < nowUs ? at : nowUs;
  }
  /** The UDP port the packet came from. */
  @inline get sourcePort(): u32 {
    return descPort(this.desc);
  }
  /**
   * The leg the packet arrived on: 0 for the segment's media port, 1.. for the legs its config
   * lists (docs/proxy.md "Legs"), in that order. A passed packet leaves on the same leg.
   */
  @inline get leg(): i32 {
    return <i32>descLeg(this.desc);
  }
  /** Sends the packet out on another leg (0 .. MAX_LEGS-1); false, changing nothing, otherwise. */
  @inline setLeg(leg: i32): bool {
    if (<u32>leg >= <u32>MAX_LEGS) return false;
    setDescLeg(this.desc, <u8>leg);
    return true;
  }
  @inline get verdict(): Verdict {
    return <Verdict>descVerdict(this.desc);
  }
  @inline get reason(): u32 {
    return descReason(this.desc);
  }

  /** Lets the packet go on down the chain (the verdict the host writes before the call). */
  @inline pass(): void {
    setDescVerdict(this.desc, <u8>Verdict.Pass);
  }
  /** Drops the packet; the host counts it under `reason` (a DropReason, or >= 256 your own). */
  @inline drop(reason: u32): void {
    setDescVerdict(this.desc, <u8>Verdict.Drop);
    setDescReason(this.desc, reason);
  }
  /** Takes the packet out of the chain uncounted; copy what you keep: the slot is reused. */
  @inline hold(): void {
    setDescVerdict(this.desc, <u8>Verdict.Hold);
  }

  /** First byte of the packet's slot (its headroom starts here). */
  @inline get slotStart(): usize {
    return batchSlot(this.index);
  }
  /** One past the slot's last byte. */
  @inline get slotEnd(): usize {
    return batchSlot(this.index) + SLOT_SIZE;
  }

  /**
   * Points the descriptor at [ptr, ptr+len) (to prepend into the headroom, trim or grow).
   * Returns false, changing nothing, if that range leaves the slot.
   */
  resize(ptr: usize, len: i32): bool {
    if (len < 0 || ptr < this.slotStart || ptr + <usize>len > this.slotEnd) return false;
    setDescOffset(this.desc, ptr);
    setDescLength(this.desc, len);
    return true;
  }
}
