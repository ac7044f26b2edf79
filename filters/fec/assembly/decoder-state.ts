// The decoder's state blob: the packets it holds (not yet sent on), the repairs waiting to be
// used, and as many packets already sent as still fit (a waiting repair may need them), so that
// a hot swap loses as little as the 64 KiB scratch allows.
// Layout (little-endian):
//   u32 STATE_MAGIC, u16 version, u8 KIND_DECODER, u8 L, u8 D, u8 started,
//   i64 maxSeq, i64 nextOut, i64 lowSeq, i32 badSeq,
//   u32 n, n x place   the places nextOut..maxSeq, in order (every one, bytes if they fit)
//   u32 n, n x repair  (left out of a blob of another matrix shape)
//   u32 n, n x place   places already sent on, newest first, bytes always
//   u32 rebuilt        packets rebuilt in the ring but left out of the blob (older builds did not
//                      write it; a reader that does not know it refuses the blob)
//   place:  i64 ext, i64 since, u8 state, u8 has bytes, u16 length, u16 payload offset,
//           u16 payload length, then `length` bytes if it has them
//   repair: i64 base, u8 row, u8 PT recovery, u8 marker, u16 length recovery, u32 TS recovery,
//           u16 payload length, payload
// A held packet whose bytes did not fit comes back missing (it may still be rebuilt), counted
// in `swap_lost`.
import { StateOrigin, Status, StateReader, StateWriter, stateOrigin } from "../../../sdk/assembly";
import { decoderChunks, Decoder } from "./decoder";
import { take } from "../../../sdk/assembly/chunks";
import { Settings } from "./settings";
import { ABSENT, PASSED, PLACE_DATA, PRESENT, REBUILT } from "./media-ring";
import { Count } from "./metrics";
import { KIND_DECODER, readStateHeader, refused, writeStateHeader } from "./state-format";
import { MAX_FEC_PAYLOAD, Recovery } from "./wire";

const HEADER = 4 + 2 + 1 + 3 + 8 + 8 + 8 + 4;
const PLACE_RECORD = 8 + 8 + 1 + 1 + 2 + 2 + 2;
const REPAIR_RECORD = 8 + 1 + 1 + 1 + 2 + 4 + 2;
/** The blob may not reach further back than this from maxSeq (the largest ring there is). */
const MAX_SPAN: i64 = 1 << 12;

const scratch = new Recovery();

export function writeDecoderState(d: Decoder, out: StateWriter, nowUs: i64): Status {
  writeStateHeader(out, KIND_DECODER);
  out.u8(<u8>d.columns);
  out.u8(<u8>d.rows);
  out.u8(d.started ? 1 : 0);
  out.u64(<u64>d.maxSeq);
  out.u64(<u64>d.nextOut);
  out.u64(<u64>d.lowData()); // the window's low edge now, not the run's first packet: the span stays a ring's
  out.u32(<u32>d.badSeq);
  const ring = d.ring;
  // Held places: every record, bytes while the records after them still fit.
  const held = d.started && d.maxSeq >= d.nextOut ? <i32>(d.maxSeq - d.nextOut + 1) : 0;
  out.u32(<u32>held);
  for (let k = 0; k < held; k++) {
    const q = d.nextOut + <i64>k;
    const i = ring.place(q);
    const keepRoom = (held - 1 - k) * PLACE_RECORD + 12; // and the three counts after
    const withBytes = ring.hasBytes(i) && out.remaining >= PLACE_RECORD + ring.length(i) + keepRoom;
    writePlace(out, d, i, withBytes, nowUs);
  }
  // Repairs waiting, as far as they fit.
  const repairs = d.repairs;
  const countAt = out.reserve(4);
  let written: u32 = 0;
  for (let e = 0; e < repairs.capacity && countAt != 0; e++) {
    if (!repairs.used(e)) continue;
    const len = repairs.payloadLength(e);
    if (out.remaining < REPAIR_RECORD + len + 8) break;
    const r = scratch;
    repairs.recovery(e, r);
    out.u64(<u64>repairs.base(e));
    out.u8(r.row ? 1 : 0);
    out.u8(r.ptRecovery);
    out.u8(r.marker ? 1 : 0);
    out.u16(r.lengthRecovery);
    out.u32(r.tsRecovery);
    out.u16(<u16>len);
    out.bytes(repairs.payload(e), len);
    written++;
  }
  if (countAt != 0) store<u32>(countAt, written);
  // Places already sent on, newest first: what a waiting repair is most likely to need.
  const sentAt = out.reserve(4);
  let sent: u32 = 0;
  const low = d.lowData();
  let q = d.nextOut - 1;
  for (; sentAt != 0 && d.started && q >= low; q--) {
    const i = ring.place(q);
    if (!ring.holds(i, q) || !ring.hasBytes(i)) continue;
    if (out.remaining < PLACE_RECORD + ring.length(i) + 4) break;
    writePlace(out, d, i, true, nowUs);
    sent++;
  }
  if (sentAt != 0) store<u32>(sentAt, sent);
  // Rebuilt packets left out are counted as recovered by the new context (their places go here).
  let rebuilt: u32 = 0;
  for (; d.started && q >= low; q--) {
    const i = ring.place(q);
    if (ring.holds(i, q) && ring.state(i) == REBUILT) rebuilt++;
  }
  out.u32(rebuilt);
  return Status.Ok;
}

/** One place; its time as an age (the clock is the worker's: a restarted worker's starts again). */
function writePlace(out: StateWriter, d: Decoder, i: i32, withBytes: bool, nowUs: i64): void {
  const ring = d.ring;
  out.u64(<u64>ring.ext(i));
  const age = nowUs - ring.since(i);
  out.u64(<u64>(age > 0 ? age : 0));
  out.u8(ring.state(i));
  out.u8(withBytes ? 1 : 0);
  out.u16(<u16>ring.length(i));
  out.u16(<u16>ring.payloadOffset(i));
  out.u16(<u16>ring.payloadLength(i));
  if (withBytes) out.bytes(ring.bytes(i), ring.length(i));
}

export function readDecoderState(d: Decoder, blob: StateReader, nowUs: i64): Status {
  if (blob.length == 0) return Status.Ok;
  const header = readStateHeader(blob, KIND_DECODER, HEADER);
  if (header != Status.Ok) return header;
  const columns = <i32>blob.u8();
  const rows = <i32>blob.u8();
  const started = blob.u8() != 0;
  const maxSeq = <i64>blob.u64();
  const nextOut = <i64>blob.u64();
  // a build before 2026-12-06 wrote the run's first packet here, not the ring's low edge: what is
  // more than MAX_SPAN behind the newest is no longer in any ring anyway
  const lowSeq = max<i64>(<i64>blob.u64(), maxSeq - MAX_SPAN);
  const badSeq = <i32>blob.u32();
  if (!started) return blob.remaining == 12 || blob.remaining == 16 ? Status.Ok : refused("of a decoder not started has records");
  if (nextOut > maxSeq + 1 || lowSeq > nextOut || maxSeq - lowSeq > MAX_SPAN || maxSeq < 0 || lowSeq < 0) {
    return refused("has a window out of range (low " + lowSeq.toString() + ", next " + nextOut.toString() + ", newest " + maxSeq.toString() + ")");
  }
  const recordsAt = blob.position;
  if (!wellFormed(blob, maxSeq, lowSeq)) return refused("has a record that is truncated or out of range");
  blob.position = recordsAt;

  // The blob is sound: the context takes its stream over.
  d.reset();
  const ring = d.ring;
  d.started = true;
  d.maxSeq = maxSeq;
  d.badSeq = badSeq;
  d.lowSeq = lowSeq;
  const low = d.lowData(); // the new ring may be smaller than the old one
  d.lowSeq = low;
  d.nextOut = nextOut > low ? nextOut : low;
  for (let q = low; q <= maxSeq; q++) ring.claim(ring.place(q), q, q < d.nextOut ? PASSED : ABSENT, nowUs);
  let lost = readPlaces(d, blob, nowUs, nextOut);
  const repairs = <i32>blob.u32();
  const sameShape = columns == d.columns && rows == d.rows;
  for (let k = 0; k < repairs; k++) {
    const base = <i64>blob.u64();
    const r = scratch;
    r.row = blob.u8() != 0;
    r.ptRecovery = blob.u8();
    r.marker = blob.u8() != 0;
    r.lengthRecovery = blob.u16();
    r.tsRecovery = blob.u32();
    const len = <i32>blob.u16();
    const payload = blob.take(len);
    if (sameShape && base >= low && base <= maxSeq) d.store(base, r, payload, len); // one ahead of its media is not carried
  }
  lost += readPlaces(d, blob, nowUs, nextOut);
  if (lost > 0) d.counts.add(Count.SwapLost, lost);
  if (blob.remaining == 4) d.counts.add(Count.Recovered, <i32>blob.u32()); // (a blob of an older build has no such count)
  return Status.Ok;
}

/**
 * Restores one section of places; returns how many packets held since `heldFrom` it could not
 * bring back (their bytes were left out, or the new ring is too small for them).
 */
function readPlaces(d: Decoder, blob: StateReader, nowUs: i64, heldFrom: i64): i32 {
  const ring = d.ring;
  const n = <i32>blob.u32();
  let lost = 0;
  for (let k = 0; k < n; k++) {
    const ext = <i64>blob.u64();
    const age = <i64>blob.u64();
    const since = nowUs - (age >= 0 && age < 3_600_000_000 ? age : 0);
    const state = blob.u8();
    const withBytes = blob.u8() != 0;
    const len = <i32>blob.u16();
    const payOff = <i32>blob.u16();
    const payLen = <i32>blob.u16();
    const bytes = withBytes ? blob.take(len) : 0;
    const held = ext >= heldFrom && (state == PRESENT || state == REBUILT);
    if (ext < d.lowData() || ext > d.maxSeq) {
      if (held) lost++;
      else if (ext >= heldFrom && state == ABSENT) d.counts.add(Count.Unrecoverable); // the smaller ring gives it up
      if (state == REBUILT && !held) d.counts.add(Count.Recovered); // sent on: its place goes here (a held one is swap_lost)
      continue;
    }
    const i = ring.place(ext);
    if (bytes != 0) {
      memory.copy(ring.bytes(i), bytes, <usize>len);
      ring.claim(i, ext, state, since);
      ring.setPacket(i, state, len, payOff, payLen);
    } else if (held) {
      lost++; // missing from now: a repair may still bring it back
    } else if (ext >= d.nextOut) {
      ring.claim(i, ext, state, state == ABSENT ? since : nowUs);
    }
  }
  return lost;
}

/** Whether the three sections are whole and in range, with nothing after them. */
function wellFormed(blob: StateReader, maxSeq: i64, lowSeq: i64): bool {
  if (!placesWellFormed(blob, maxSeq, lowSeq)) return false;
  const repairs = blob.u32();
  for (let k: u32 = 0; k < repairs && !blob.overflow; k++) {
    blob.take(REPAIR_RECORD - 2);
    const len = <i32>blob.u16();
    if (len > MAX_FEC_PAYLOAD) return false;
    blob.take(len);
  }
  if (!placesWellFormed(blob, maxSeq, lowSeq)) return false;
  if (blob.remaining == 4) blob.u32(); // rebuilt packets left out (absent from an older build's blob)
  return !blob.overflow && blob.remaining == 0;
}

function placesWellFormed(blob: StateReader, maxSeq: i64, lowSeq: i64): bool {
  const n = blob.u32();
  if (<i64>n > MAX_SPAN) return false;
  for (let k: u32 = 0; k < n && !blob.overflow; k++) {
    const ext = <i64>blob.u64();
    blob.u64();
    const state = blob.u8();
    const withBytes = blob.u8();
    const len = <i32>blob.u16();
    const payOff = <i32>blob.u16();
    const payLen = <i32>blob.u16();
    if (ext < lowSeq || ext > maxSeq || state > PASSED || withBytes > 1) return false;
    if (withBytes == 1) {
      if ((state != PRESENT && state != REBUILT) || len > PLACE_DATA || payOff + payLen > len) return false;
      blob.take(len);
    }
  }
  return !blob.overflow;
}

/** The decoder with its state carried across a hot swap (the blob above): the class the filter makes. */
class DecoderWithState extends Decoder {
  exportState(out: StateWriter, now: i64): Status {
    return writeDecoderState(this, out, now);
  }

  importState(blob: StateReader, nowUs: i64): Status {
    // a checkpoint's held packets have most likely gone out since (the failed instance ran on):
    // the decoder starts afresh from the next packet rather than send them again
    if (stateOrigin() != StateOrigin.Swap) return Status.Ok;
    const status = readDecoderState(this, blob, nowUs);
    if (status == Status.Ok && this.started) {
      this.armFlush(); // the output area is not ours here
      this.settleRebuilt(nowUs); // the rebuilt packets carried: counted when their wait is over
    }
    return status;
  }
}

/** A new decoder for `s`, or null when its buffers do not fit (chunks.takeFailure() says why). */
export function newDecoder(id: u32, s: Settings): Decoder | null {
  const chunks = take(decoderChunks(s));
  return chunks === null ? null : new DecoderWithState(id, s, chunks);
}
