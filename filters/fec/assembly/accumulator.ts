// One FEC group being built by the encoder: its recovery fields and the XOR of its payloads, in
// raw memory (ACC_SIZE bytes). Only the first `maxLen` bytes (the longest payload so far) mean
// anything: a payload XORs into that part and is copied beyond it, which is XOR with zeros, as
// ST 2022-1 pads shorter payloads. So a group starts again without clearing its bytes, and its
// first packet is a copy.
import { xorInto, xorInto2 } from "./xor";
import { FEC_PAYLOAD_ROOM, Recovery } from "./wire";

const A_LENGTH: usize = 0; //  u16  XOR of payload lengths
const A_MAXLEN: usize = 2; //  u16  longest payload so far (the FEC payload length)
const A_TS: usize = 4; //      u32  XOR of timestamps
const A_PT: usize = 8; //      u8   XOR of payload types
const A_MARKER: usize = 9; //  u8   XOR of markers
const A_COUNT: usize = 10; //  u8   packets XORed in
const A_SNBASE: usize = 12; // u16  first sequence number of the group (set when it is complete)
/** Bytes of recovery fields before the payload. */
export const ACC_META: i32 = 16;
export const ACC_SIZE: i32 = ACC_META + FEC_PAYLOAD_ROOM;

@inline export function accData(acc: usize): usize {
  return acc + <usize>ACC_META;
}

@inline export function accCount(acc: usize): i32 {
  return <i32>load<u8>(acc, A_COUNT);
}

@inline export function accMaxLen(acc: usize): i32 {
  return <i32>load<u16>(acc, A_MAXLEN);
}

@inline export function setAccSnBase(acc: usize, snBase: u16): void {
  store<u16>(acc, snBase, A_SNBASE);
}

/** Folds one packet's header fields into the group. */
@inline function fold(acc: usize, payLen: i32, ts: u32, pt: u8, marker: bool): void {
  store<u16>(acc, load<u16>(acc, A_LENGTH) ^ <u16>payLen, A_LENGTH);
  if (payLen > <i32>load<u16>(acc, A_MAXLEN)) store<u16>(acc, <u16>payLen, A_MAXLEN);
  store<u32>(acc, load<u32>(acc, A_TS) ^ ts, A_TS);
  store<u8>(acc, load<u8>(acc, A_PT) ^ pt, A_PT);
  if (marker) store<u8>(acc, load<u8>(acc, A_MARKER) ^ 1, A_MARKER);
  store<u8>(acc, load<u8>(acc, A_COUNT) + 1, A_COUNT);
}

/** Bytes [from, payLen) of a payload into `acc`: XOR up to its maxLen, a copy beyond. */
@inline function addTail(acc: usize, pay: usize, from: i32, payLen: i32): void {
  const have = accMaxLen(acc);
  if (have > from) xorInto(accData(acc) + <usize>from, pay + <usize>from, (have < payLen ? have : payLen) - from);
  if (payLen > have) {
    const at = have > from ? have : from;
    memory.copy(accData(acc) + <usize>at, pay + <usize>at, <usize>(payLen - at));
  }
}

/** XORs one packet (payload at `pay`, `payLen` bytes) into `acc`. */
export function accAdd(acc: usize, pay: usize, payLen: i32, ts: u32, pt: u8, marker: bool): void {
  addTail(acc, pay, 0, payLen);
  fold(acc, payLen, ts, pt, marker);
}

/** XORs one packet into two groups at once (its row and its column). */
export function accAdd2(a: usize, b: usize, pay: usize, payLen: i32, ts: u32, pt: u8, marker: bool): void {
  const haveA = accMaxLen(a);
  const haveB = accMaxLen(b);
  let both = payLen < haveA ? payLen : haveA;
  if (haveB < both) both = haveB;
  xorInto2(accData(a), accData(b), pay, both);
  addTail(a, pay, both, payLen);
  addTail(b, pay, both, payLen);
  fold(a, payLen, ts, pt, marker);
  fold(b, payLen, ts, pt, marker);
}

/** Back to an empty group (its bytes are left as they are: see above). */
export function accReset(acc: usize): void {
  memory.fill(acc, 0, <usize>ACC_META);
}

/** The group's recovery fields (the caller sets row, offset and NA). */
export function accRecovery(acc: usize, r: Recovery): void {
  r.snBase = load<u16>(acc, A_SNBASE);
  r.lengthRecovery = load<u16>(acc, A_LENGTH);
  r.ptRecovery = load<u8>(acc, A_PT);
  r.tsRecovery = load<u32>(acc, A_TS);
  r.marker = load<u8>(acc, A_MARKER) != 0;
}
