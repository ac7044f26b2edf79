// The context's state blob for hot swap (docs/abi.md msm_state_export / msm_state_import).
// Layout (little-endian):
//   u32 STATE_MAGIC "MREP", u16 STATE_VERSION (2; 1 had no wall clock)
//   i64 wall clock (unix us) when written                                   (version 2)
//   translator: u8 started, u32 in SSRC, u32 out SSRC, u16 last in seq, u32 last in ts,
//               u16 seq offset, u32 ts offset, u16 last out seq, u32 last out ts, u32 interval
//   merge:      u8 started, u32 SSRC, i64 maxSeq, i64 nextOut,
//               MAX_PATHS x (u8 valid, u32 SSRC, u16 seq)   each path's last packet
//               u32 n, n x place, oldest first: the window's claimed places
//   place:      i64 ext, i64 age (us), u8 state, u8 seen, MAX_PATHS x i64 each path's copy's
//               age (us), u16 length, u8 has bytes, bytes
// Held packets carry their bytes as long as the records after them still fit the 64 KiB blob; one
// that does not comes back missing (another path may still bring it), counted in `swap_lost`.
// Places already sent carry which paths brought them, so that a late path's copies after the swap
// are still dropped as duplicates. A place's time travels as an age: a restarted worker's clock
// starts again. Candidates of a new stream are not carried (the next packet makes a new one).
//
// The same blob is the host's checkpoint, imported after a failure up to stateCheckpointMs (1 s)
// later: by then the old instance may have sent what the blob holds, and more. The host says
// which it is (ABI 1.5 state_origin). A checkpoint's blob is a restore: every place of its window
// counts as sent, nothing is sent again, and the next packet starts afresh (the places since went
// out before the failure, or were lost with it). A crash may so lose packets it held; it never
// makes the merge send one twice. (The wall clock stays in the blob for filters before ABI 1.5,
// which told a swap by the blob's age.)
import { StateOrigin, Status, StateReader, StateWriter } from "../../../sdk/assembly";
import { Merge } from "./merge";
import { ABSENT, HELD, LOST, MergeRing, PLACE_DATA, SENT } from "./merge-ring";
import { Count, Counts } from "./metrics";
import { Translator } from "./rewrite";
import { MAX_HELD, MAX_PATHS } from "./settings";

const STATE_MAGIC: u32 = 0x5045524d; // "MREP"
const STATE_VERSION: u16 = 2;
const TRANSLATOR_BYTES = 1 + 4 + 4 + 2 + 4 + 2 + 4 + 2 + 4 + 4;
const MERGE_HEADER = 1 + 4 + 8 + 8 + MAX_PATHS * 7 + 4;
const PLACE_RECORD = 8 + 8 + 1 + 1 + MAX_PATHS * 8 + 2 + 1;
const MAX_AGE_US: i64 = 3_600_000_000;

export function writeState(out: StateWriter, t: Translator | null, m: Merge | null, nowUs: i64, wallUs: i64): Status {
  out.u32(STATE_MAGIC);
  out.u16(STATE_VERSION);
  out.u64(<u64>wallUs);
  writeTranslator(out, t);
  if (m === null || !m.started) {
    zeros(out, MERGE_HEADER);
    return Status.Ok;
  }
  out.u8(1);
  out.u32(m.ssrc);
  out.u64(<u64>m.maxSeq);
  out.u64(<u64>m.nextOut);
  for (let k = 0; k < MAX_PATHS; k++) {
    out.u8(m.lastValid[k] ? 1 : 0);
    out.u32(m.lastSsrc[k]);
    out.u16(m.lastSeq[k]);
  }
  const ring = m.ring;
  let n = 0;
  for (let q = m.lowSeq(); q <= m.maxSeq; q++) if (ring.holds(ring.place(q), q)) n++;
  out.u32(<u32>n);
  let after = n;
  for (let q = m.lowSeq(); q <= m.maxSeq; q++) {
    const i = ring.place(q);
    if (!ring.holds(i, q)) continue;
    after--;
    const state = ring.state(i);
    const len = state == HELD ? ring.length(i) : 0;
    const withBytes = state == HELD && out.remaining >= PLACE_RECORD + len + after * PLACE_RECORD;
    out.u64(<u64>q);
    out.u64(<u64>ageOf(nowUs, ring.since(i)));
    out.u8(state);
    out.u8(ring.seen(i));
    for (let k = 0; k < MAX_PATHS; k++) out.u64(<u64>ageOf(nowUs, ring.arrival(i, k)));
    out.u16(<u16>len);
    out.u8(withBytes ? 1 : 0);
    if (withBytes) out.bytes(ring.bytes(i), len);
  }
  return Status.Ok;
}

function ageOf(nowUs: i64, at: i64): i64 {
  const age = nowUs - at;
  return age > 0 ? age : 0;
}

function timeOf(nowUs: i64, age: i64): i64 {
  return nowUs - (age >= 0 && age < MAX_AGE_US ? age : 0);
}

function zeros(out: StateWriter, n: i32): void {
  const at = out.reserve(n);
  if (at != 0) memory.fill(at, 0, <usize>n);
}

function writeTranslator(out: StateWriter, t: Translator | null): void {
  if (t === null || !t.started) {
    zeros(out, TRANSLATOR_BYTES);
    return;
  }
  out.u8(1);
  out.u32(t.inSsrc);
  out.u32(t.outSsrc);
  out.u16(t.lastInSeq);
  out.u32(t.lastInTs);
  out.u16(t.seqOffset);
  out.u32(t.tsOffset);
  out.u16(t.lastOutSeq);
  out.u32(t.lastOutTs);
  out.u32(t.interval);
}

/** Reads a blob into the context's parts; BadState (taking nothing) for one it does not understand. */
export function readState(blob: StateReader, t: Translator | null, m: Merge | null, counts: Counts, nowUs: i64, origin: StateOrigin): Status {
  if (blob.length == 0) return Status.Ok;
  if (blob.length < 6 || blob.u32() != STATE_MAGIC) return Status.BadState;
  const version = blob.u16();
  if (version != 1 && version != STATE_VERSION) return Status.BadState;
  if (version >= 2) blob.u64(); // the wall clock when written
  if (blob.remaining < TRANSLATOR_BYTES + MERGE_HEADER) return Status.BadState;
  const start = blob.position;
  if (!wellFormed(blob)) return Status.BadState;
  blob.position = start;
  readTranslator(blob, t);
  if (blob.u8() == 0 || m === null) return Status.Ok; // a merge that was not running, or is not configured now
  const restore = origin != StateOrigin.Swap;
  m.reset();
  m.started = true;
  m.ssrc = blob.u32();
  m.maxSeq = <i64>blob.u64();
  const nextOut = <i64>blob.u64();
  for (let k = 0; k < MAX_PATHS; k++) {
    const valid = blob.u8() != 0;
    const ssrc = blob.u32();
    const seq = blob.u16();
    if (k >= m.paths) continue;
    m.lastValid[k] = valid;
    m.lastSsrc[k] = ssrc;
    m.lastSeq[k] = seq;
    m.lastGeneration[k] = m.generation;
  }
  const ring = m.ring;
  const low = m.lowSeq(); // the new ring may be smaller than the old one
  m.nextOut = restore ? m.maxSeq + 1 : nextOut > low ? nextOut : low;
  m.restored = restore;
  for (let q = low; q <= m.maxSeq; q++) ring.claim(ring.place(q), q, restore ? SENT : q < m.nextOut ? LOST : ABSENT, nowUs);
  let lost = 0;
  const n = <i32>blob.u32();
  for (let k = 0; k < n; k++) {
    const ext = <i64>blob.u64();
    const since = timeOf(nowUs, <i64>blob.u64());
    const state = blob.u8();
    const seen = <i32>blob.u8() & ((1 << m.paths) - 1);
    const arrivalsAt = blob.take(MAX_PATHS * 8);
    const len = <i32>blob.u16();
    const bytes = blob.u8() != 0 ? blob.take(len) : 0;
    if (ext < low) {
      if (state == HELD && !restore) lost++;
      continue;
    }
    const i = ring.place(ext);
    if (restore) { // sent, or lost with the failure: who brought it still tells duplicates
      ring.claim(i, ext, SENT, since);
      arrivals(ring, i, seen, m.paths, arrivalsAt, nowUs);
      continue;
    }
    if (state == HELD && bytes == 0) {
      ring.claim(i, ext, ABSENT, since); // missing from now: another path may still bring it
      lost++;
      continue;
    }
    ring.claim(i, ext, ext < m.nextOut && state != SENT ? LOST : state, since);
    arrivals(ring, i, seen, m.paths, arrivalsAt, nowUs);
    if (bytes != 0) ring.keep(i, bytes, len);
  }
  if (lost > 0) counts.add(Count.SwapLost, lost);
  if (!restore) m.armFlush(); // what is due goes on from a timer: the output area is not ours here
  return Status.Ok;
}

/** Records the copies of place `i` the blob's paths `seen` brought, at the ages stored at `ages`. */
function arrivals(ring: MergeRing, i: i32, seen: i32, paths: i32, ages: usize, nowUs: i64): void {
  for (let p = 0; p < paths; p++) {
    if (seen & (1 << p)) ring.arrive(i, p, timeOf(nowUs, load<i64>(ages + (<usize>p << 3))));
  }
}

function readTranslator(blob: StateReader, t: Translator | null): void {
  const started = blob.u8() != 0;
  const inSsrc = blob.u32();
  const outSsrc = blob.u32();
  const lastInSeq = blob.u16();
  const lastInTs = blob.u32();
  const seqOffset = blob.u16();
  const tsOffset = blob.u32();
  const lastOutSeq = blob.u16();
  const lastOutTs = blob.u32();
  const interval = blob.u32();
  if (t === null || !started) return;
  t.started = true;
  t.inSsrc = inSsrc;
  t.outSsrc = t.fixedSsrc >= 0 ? <u32>t.fixedSsrc : outSsrc;
  t.lastInSeq = lastInSeq;
  t.lastInTs = lastInTs;
  t.seqOffset = seqOffset;
  t.tsOffset = tsOffset;
  t.lastOutSeq = lastOutSeq;
  t.lastOutTs = lastOutTs;
  t.interval = interval;
}

/** Whether the sections are whole and in range, with nothing after them. */
function wellFormed(blob: StateReader): bool {
  blob.take(TRANSLATOR_BYTES);
  const started = blob.u8();
  blob.u32();
  const maxSeq = <i64>blob.u64();
  const nextOut = <i64>blob.u64();
  blob.take(MAX_PATHS * 7);
  const n = blob.u32();
  if (started > 1 || blob.overflow) return false;
  if (started == 0) return n == 0 && blob.remaining == 0;
  if (maxSeq < 0 || nextOut < 0 || nextOut > maxSeq + 1 || maxSeq - nextOut >= <i64>MAX_HELD || n > <u32>MAX_HELD) return false;
  let previous: i64 = -1;
  for (let k: u32 = 0; k < n && !blob.overflow; k++) {
    const ext = <i64>blob.u64();
    blob.u64();
    const state = blob.u8();
    blob.u8();
    blob.take(MAX_PATHS * 8);
    const len = <i32>blob.u16();
    const withBytes = blob.u8();
    if (ext <= previous || ext > maxSeq || maxSeq - ext >= <i64>MAX_HELD || state > LOST || withBytes > 1) return false;
    if (withBytes == 1) {
      if (state != HELD || len < 12 || len > PLACE_DATA) return false;
      blob.take(len);
    }
    previous = ext;
  }
  return !blob.overflow && blob.remaining == 0;
}
