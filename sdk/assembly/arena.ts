// The arena: the one memory area through which batches, output packets, configs and state
// blobs travel (docs/abi.md "Arena"). It is reserved once, while _initialize runs, and never
// moves; nothing here allocates per packet.
//
// Why not memory.data(): the memory is imported, so the compiler cannot assume it is zero
// and would store ~330 KB of zeros in every .wasm. One heap.alloc at start costs nothing.
import {
  ARENA_MAGIC, ARENA_HEADER_SIZE, DESC_SIZE,
  AH_MAGIC, AH_BATCH_CAPACITY, AH_DESC_TABLE, AH_SLOT_BASE, AH_SLOT_SIZE, AH_HEADROOM,
  AH_OUT_CAPACITY, AH_OUT_TABLE, AH_OUT_SLOT_BASE, AH_SCRATCH, AH_SCRATCH_SIZE, AH_CONTEXT_LEGS, AH_CHECKPOINT_WANTED, AH_CONTEXT_SEGMENT_FLAGS,
  D_OFFSET, D_LENGTH, D_CONTEXT, D_FLAGS, D_VERDICT, D_DEST, D_REASON, D_PORT, D_LEG, D_RESERVED, D_ARRIVAL,
} from "../../runtime/abi";

/** Descriptors in the batch table. */
export const BATCH_CAPACITY: i32 = 64;
/** Descriptors in the output table. */
export const OUT_CAPACITY: i32 = 64;
/** Bytes per packet slot, batch and output alike. */
export const SLOT_SIZE: i32 = 2048;
/** Bytes in front of each packet that a filter may prepend into (SRTP, FEC headers). */
export const HEADROOM: i32 = 64;
/** Largest packet a slot holds when it starts at the headroom. */
export const MAX_PACKET: i32 = SLOT_SIZE - HEADROOM;
/** Bytes of scratch (configs in, state blobs out). */
export const SCRATCH_SIZE: i32 = 65536;

const TABLE_BYTES: usize = <usize>BATCH_CAPACITY * DESC_SIZE;
const OUT_TABLE_BYTES: usize = <usize>OUT_CAPACITY * DESC_SIZE;
const SLOTS_BYTES: usize = <usize>BATCH_CAPACITY * SLOT_SIZE;
const OUT_SLOTS_BYTES: usize = <usize>OUT_CAPACITY * SLOT_SIZE;
const ARENA_BYTES: usize =
  <usize>ARENA_HEADER_SIZE + TABLE_BYTES + OUT_TABLE_BYTES + SLOTS_BYTES + OUT_SLOTS_BYTES + <usize>SCRATCH_SIZE;

// 64-byte aligned so that every slot and descriptor is naturally aligned.
const ARENA_BASE: usize = (heap.alloc(ARENA_BYTES + 63) + 63) & ~(<usize>63);

/** Address of the arena header (what msm_arena returns). */
export const ARENA_HEADER: usize = ARENA_BASE;
/** Address of batch descriptor 0. */
export const DESC_TABLE: usize = ARENA_BASE + <usize>ARENA_HEADER_SIZE;
/** Address of output descriptor 0. */
export const OUT_TABLE: usize = DESC_TABLE + TABLE_BYTES;
/** Address of batch slot 0. */
export const SLOT_BASE: usize = OUT_TABLE + OUT_TABLE_BYTES;
/** Address of output slot 0. */
export const OUT_SLOT_BASE: usize = SLOT_BASE + SLOTS_BYTES;
/** Address of the scratch area. */
export const SCRATCH: usize = OUT_SLOT_BASE + OUT_SLOTS_BYTES;

memory.fill(ARENA_BASE, 0, ARENA_BYTES);
store<u32>(ARENA_HEADER, ARENA_MAGIC, AH_MAGIC);
store<u32>(ARENA_HEADER, <u32>BATCH_CAPACITY, AH_BATCH_CAPACITY);
store<u32>(ARENA_HEADER, <u32>DESC_TABLE, AH_DESC_TABLE);
store<u32>(ARENA_HEADER, <u32>SLOT_BASE, AH_SLOT_BASE);
store<u32>(ARENA_HEADER, <u32>SLOT_SIZE, AH_SLOT_SIZE);
store<u32>(ARENA_HEADER, <u32>HEADROOM, AH_HEADROOM);
store<u32>(ARENA_HEADER, <u32>OUT_CAPACITY, AH_OUT_CAPACITY);
store<u32>(ARENA_HEADER, <u32>OUT_TABLE, AH_OUT_TABLE);
store<u32>(ARENA_HEADER, <u32>OUT_SLOT_BASE, AH_OUT_SLOT_BASE);
store<u32>(ARENA_HEADER, <u32>SCRATCH, AH_SCRATCH);
store<u32>(ARENA_HEADER, <u32>SCRATCH_SIZE, AH_SCRATCH_SIZE);

/**
 * While a context is created (createContext, readConfig): how many legs its segment has (1 ..
 * MAX_LEGS: leg 0 and the config's `legs:`), so that a config naming a leg the segment lacks can
 * be refused, naming the key. 0 when the host does not say (before ABI 1.7, or the SDK harness
 * without `legs`): check nothing then. 0 in every other call.
 */
@inline export function segmentLegs(): i32 {
  return <i32>load<u32>(ARENA_HEADER, AH_CONTEXT_LEGS);
}

/**
 * While a context is created (createContext, readConfig): the SegmentFlag bits of its segment
 * (ABI 1.9), such as TranslatedDestinations. 0 when the host does not say (before 1.9) or in any
 * other call.
 */
@inline export function segmentFlags(): u32 {
  return load<u32>(ARENA_HEADER, AH_CONTEXT_SEGMENT_FLAGS);
}

/**
 * Asks the host for a checkpoint of this module's contexts soon (ABI 1.8): a proxy takes one at
 * once (then at most every 50 ms) rather than at its next period, so that what a restart must not
 * lose (srtp: a new source) is in a checkpoint within milliseconds. A store, cheap enough for a
 * packet's path: the host takes note after the call. An older host ignores it.
 */
@inline export function askForCheckpoint(): void {
  store<u32>(ARENA_HEADER, 1, AH_CHECKPOINT_WANTED);
}

// ---- addresses ----

/** Address of batch descriptor `i`. */
@inline export function batchDesc(i: i32): usize {
  return DESC_TABLE + (<usize>i) * DESC_SIZE;
}

/** Address of output descriptor `j`. */
@inline export function outDesc(j: i32): usize {
  return OUT_TABLE + (<usize>j) * DESC_SIZE;
}

/** Start of batch slot `i` (its headroom begins here). */
@inline export function batchSlot(i: i32): usize {
  return SLOT_BASE + (<usize>i) * SLOT_SIZE;
}

/** Start of output slot `j`. */
@inline export function outSlot(j: i32): usize {
  return OUT_SLOT_BASE + (<usize>j) * SLOT_SIZE;
}

// ---- descriptor fields (d = a descriptor's address) ----

@inline export function descOffset(d: usize): usize {
  return <usize>load<u32>(d, D_OFFSET);
}
@inline export function setDescOffset(d: usize, v: usize): void {
  store<u32>(d, <u32>v, D_OFFSET);
}
@inline export function descLength(d: usize): i32 {
  return <i32>load<u32>(d, D_LENGTH);
}
@inline export function setDescLength(d: usize, v: i32): void {
  store<u32>(d, <u32>v, D_LENGTH);
}
@inline export function descContext(d: usize): u32 {
  return load<u32>(d, D_CONTEXT);
}
@inline export function setDescContext(d: usize, v: u32): void {
  store<u32>(d, v, D_CONTEXT);
}
@inline export function descFlags(d: usize): u16 {
  return load<u16>(d, D_FLAGS);
}
@inline export function setDescFlags(d: usize, v: u16): void {
  store<u16>(d, v, D_FLAGS);
}
@inline export function descVerdict(d: usize): u8 {
  return load<u8>(d, D_VERDICT);
}
@inline export function setDescVerdict(d: usize, v: u8): void {
  store<u8>(d, v, D_VERDICT);
}
@inline export function descDest(d: usize): u8 {
  return load<u8>(d, D_DEST);
}
@inline export function setDescDest(d: usize, v: u8): void {
  store<u8>(d, v, D_DEST);
}
@inline export function descReason(d: usize): u32 {
  return load<u32>(d, D_REASON);
}
@inline export function setDescReason(d: usize, v: u32): void {
  store<u32>(d, v, D_REASON);
}
@inline export function descPort(d: usize): u32 {
  return <u32>load<u16>(d, D_PORT);
}
@inline export function descLeg(d: usize): u8 {
  return load<u8>(d, D_LEG);
}
/** Writes the leg and clears the port and reserved bytes around it (output descriptors). */
@inline export function setDescLegOnly(d: usize, leg: u8): void {
  store<u16>(d, 0, D_PORT);
  store<u8>(d, leg, D_LEG);
  store<u8>(d, 0, D_RESERVED);
}
@inline export function setDescLeg(d: usize, leg: u8): void {
  store<u8>(d, leg, D_LEG);
}
@inline export function descArrival(d: usize): i64 {
  return load<i64>(d, D_ARRIVAL);
}
@inline export function setDescArrival(d: usize, v: i64): void {
  store<i64>(d, v, D_ARRIVAL);
}
