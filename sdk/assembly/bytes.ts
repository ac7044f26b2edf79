// Network-byte-order (big-endian) loads and stores over raw linear memory.
// Callers bounds-check once (a packet's validate()), then read through these.

@inline export function loadU8(p: usize): u8 {
  return load<u8>(p);
}

@inline export function loadBe16(p: usize): u16 {
  return bswap<u16>(load<u16>(p));
}

/** Three bytes, as in RTCP's cumulative-lost field. */
@inline export function loadBe24(p: usize): u32 {
  return (<u32>load<u8>(p) << 16) | (<u32>load<u8>(p, 1) << 8) | <u32>load<u8>(p, 2);
}

@inline export function loadBe32(p: usize): u32 {
  return bswap<u32>(load<u32>(p));
}

@inline export function loadBe64(p: usize): u64 {
  return bswap<u64>(load<u64>(p));
}

@inline export function storeBe16(p: usize, v: u16): void {
  store<u16>(p, bswap<u16>(v));
}

@inline export function storeBe32(p: usize, v: u32): void {
  store<u32>(p, bswap<u32>(v));
}

@inline export function storeBe64(p: usize, v: u64): void {
  store<u64>(p, bswap<u64>(v));
}
