// The state blob carried across a hot swap: the per-SSRC table, so that probation, sequence
// and rate state survive, and the held packets, so that a swap loses none that fit.
// Layout (little-endian):
//   u32 STATE_MAGIC, u16 version, u16 record size, u32 count, count x record (STATE_RECORD_SIZE)
//   versions 2 and 3: u32 lost (held packets left out: no room in the blob), u32 n, n x packet
//   packet: u8 queue (RELEASE, or SOURCE: held for the source `ssrc`), u32 ssrc, u16 length,
//           i64 arrival (now_us clock), length bytes
// Version 3 gives a record's byte 5 its meaning (what the source holds is a jump, sources.ts);
// versions 1 (no packets) and 2 are still read.
import { DropReason, StateOrigin, Status, StateReader, StateWriter, stateOrigin } from "../../../sdk/assembly";
import { MAX_PACKET } from "../../../sdk/assembly";
import { ValidateContext } from "./context";
import { NONE, heldPackets, queueCount } from "./hold-store";
import { discardHeld, releaseHeld } from "./hold";
import { countDrops } from "./metrics";
import { STATE_RECORD_SIZE, heldQueue, heldReason, isJumpHeld, isValidSource, recordSsrc, setJumpHeld } from "./sources";

const STATE_MAGIC: u32 = 0x4c41564d; // "MVAL"
const VERSION_RECORDS: u16 = 1;
const VERSION_HELD: u16 = 2;
const VERSION_JUMPS: u16 = 3;
const STATE_HEADER = 12;
const PACKET_HEADER = 15;
const RELEASE: u8 = 0;
const SOURCE: u8 = 1;

export function writeState(c: ValidateContext, out: StateWriter): Status {
  const t = c.sources;
  out.u32(STATE_MAGIC);
  out.u16(VERSION_JUMPS);
  out.u16(<u16>STATE_RECORD_SIZE);
  out.u32(<u32>t.count);
  for (let i = 0; i < t.count; i++) out.bytes(t.record(i), STATE_RECORD_SIZE);
  const lostAt = out.reserve(4);
  const countAt = out.reserve(4);
  if (out.overflow) return Status.Ok; // the SDK reports NoSpace
  let lost: u32 = 0;
  let carried: u32 = 0;
  // Packets on their way out first: they are older than anything still held.
  for (let i = heldPackets.head(c.release); i != NONE; i = heldPackets.next(i)) {
    if (writePacket(out, i, RELEASE, 0)) carried++;
    else lost++;
  }
  for (let k = 0; k < t.count; k++) {
    const r = t.record(k);
    for (let i = heldPackets.head(heldQueue(r)); i != NONE; i = heldPackets.next(i)) {
      if (writePacket(out, i, SOURCE, recordSsrc(r))) carried++;
      else lost++;
    }
  }
  store<u32>(lostAt, lost);
  store<u32>(countAt, carried);
  return Status.Ok;
}

/** Writes held packet `i` if it fits in what is left of the blob. */
function writePacket(out: StateWriter, i: i32, queue: u8, ssrc: u32): bool {
  const len = heldPackets.length(i);
  if (out.remaining < PACKET_HEADER + len) return false;
  out.u8(queue);
  out.u32(ssrc);
  out.u16(<u16>len);
  out.u64(<u64>heldPackets.arrival(i));
  out.bytes(heldPackets.packet(i), len);
  return true;
}

export function readState(c: ValidateContext, blob: StateReader): Status {
  if (blob.length == 0) return Status.Ok;
  if (blob.length < STATE_HEADER || blob.u32() != STATE_MAGIC) return Status.BadState;
  const version = blob.u16();
  if (version < VERSION_RECORDS || version > VERSION_JUMPS || blob.u16() != <u16>STATE_RECORD_SIZE) {
    return Status.BadState;
  }
  const count = <i32>blob.u32();
  if (count < 0 || count > blob.remaining / STATE_RECORD_SIZE) return Status.BadState;
  const recordsAt = blob.position;
  if (version == VERSION_RECORDS) {
    if (blob.remaining != count * STATE_RECORD_SIZE) return Status.BadState;
  } else {
    blob.take(count * STATE_RECORD_SIZE);
    if (!packetsWellFormed(blob)) return Status.BadState;
  }

  // The blob is sound: replace the context's state with it.
  const before = discardHeld(c);
  if (before > 0) countDrops(DropReason.Probation, before);
  c.sources.clear();
  blob.position = recordsAt;
  for (let i = 0; i < count; i++) c.sources.insertCopy(blob.take(STATE_RECORD_SIZE), c.settings, version >= VERSION_JUMPS);
  if (stateOrigin() != StateOrigin.Swap) {
    // a checkpoint restored after a failure: the failed instance ran on after it and has likely
    // sent what the blob holds; sending it again would repeat packets, so it is taken as sent
    for (let k = 0; k < c.sources.count; k++) setJumpHeld(c.sources.record(k), false);
  } else if (version >= VERSION_HELD) {
    readPackets(c, blob);
  }
  // a source the new config's probation made valid at once sends what it held for probation
  for (let k = 0; k < c.sources.count; k++) {
    const r = c.sources.record(k);
    if (isValidSource(r) && !isJumpHeld(r)) releaseHeld(c, r);
  }
  return Status.Ok;
}

/** Whether the packet section that follows is whole, with nothing after it. */
function packetsWellFormed(blob: StateReader): bool {
  blob.take(4); // lost
  const n = blob.u32();
  for (let k: u32 = 0; k < n && !blob.overflow; k++) {
    const queue = blob.u8();
    blob.u32();
    const len = <i32>blob.u16();
    blob.u64();
    if (queue > SOURCE || len > MAX_PACKET) return false;
    blob.take(len);
  }
  return !blob.overflow && blob.remaining == 0;
}

/**
 * Holds the blob's packets again, in order. A packet whose source was left out, or that the
 * store or the source's holdPackets has no room for, is dropped and counted as probation with
 * the ones the old instance could not fit.
 */
function readPackets(c: ValidateContext, blob: StateReader): void {
  let lost = <i32>blob.u32();
  const n = blob.u32();
  for (let k: u32 = 0; k < n; k++) {
    const queue = blob.u8();
    const ssrc = blob.u32();
    const len = <i32>blob.u16();
    const arrival = <i64>blob.u64();
    const ptr = blob.take(len);
    let q: usize = 0;
    if (queue == RELEASE) {
      q = c.release;
    } else {
      const r = c.sources.find(ssrc);
      if (r != 0 && queueCount(heldQueue(r)) < c.settings.holdPackets) q = heldQueue(r);
    }
    if (q != 0 && heldPackets.push(q, ptr, len, arrival)) {
      c.held++;
    } else if (queue == SOURCE && c.sources.find(ssrc) != 0) {
      countDrops(heldReason(c.sources.find(ssrc)), 1);
    } else {
      lost++;
    }
  }
  if (lost > 0) countDrops(DropReason.Probation, lost);
}
