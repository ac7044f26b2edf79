// XOR of byte ranges, 16 bytes at a time with WASM SIMD (the build enables it). Only the bytes
// asked for are read and written: a packet's last block is finished 8 bytes, then 1 byte, at a
// time, so nothing past its end (the next packet in the slot area) leaks into a repair.

/** dst[0..n) ^= src[0..n). */
export function xorInto(dst: usize, src: usize, n: i32): void {
  const end = <usize>n;
  const blocks = end & ~(<usize>15);
  let i: usize = 0;
  for (; i < blocks; i += 16) v128.store(dst + i, v128.xor(v128.load(dst + i), v128.load(src + i)));
  if (end - i >= 8) {
    store<u64>(dst + i, load<u64>(dst + i) ^ load<u64>(src + i));
    i += 8;
  }
  for (; i < end; i++) store<u8>(dst + i, load<u8>(dst + i) ^ load<u8>(src + i));
}

/** a[0..n) ^= src[0..n) and b[0..n) ^= src[0..n), reading src once (row and column at once). */
export function xorInto2(a: usize, b: usize, src: usize, n: i32): void {
  const end = <usize>n;
  const blocks = end & ~(<usize>15);
  let i: usize = 0;
  for (; i < blocks; i += 16) {
    const s = v128.load(src + i);
    v128.store(a + i, v128.xor(v128.load(a + i), s));
    v128.store(b + i, v128.xor(v128.load(b + i), s));
  }
  for (; i < end; i++) {
    const s = load<u8>(src + i);
    store<u8>(a + i, load<u8>(a + i) ^ s);
    store<u8>(b + i, load<u8>(b + i) ^ s);
  }
}
