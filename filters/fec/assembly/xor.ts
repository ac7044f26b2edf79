// XOR of byte ranges, 16 bytes at a time with WASM SIMD (the build enables it), four blocks per
// loop turn. Only the bytes asked for are read and written: a range's last block is finished 8
// bytes, then 1 byte, at a time, so nothing past a packet's end (the next slot) leaks into a repair.

/** dst[0..n) ^= src[0..n). */
export function xorInto(dst: usize, src: usize, n: i32): void {
  const end = <usize>n;
  let i: usize = 0;
  const wide = end & ~(<usize>63);
  for (; i < wide; i += 64) {
    v128.store(dst + i, v128.xor(v128.load(dst + i), v128.load(src + i)));
    v128.store(dst + i, v128.xor(v128.load(dst + i, 16), v128.load(src + i, 16)), 16);
    v128.store(dst + i, v128.xor(v128.load(dst + i, 32), v128.load(src + i, 32)), 32);
    v128.store(dst + i, v128.xor(v128.load(dst + i, 48), v128.load(src + i, 48)), 48);
  }
  const blocks = end & ~(<usize>15);
  for (; i < blocks; i += 16) v128.store(dst + i, v128.xor(v128.load(dst + i), v128.load(src + i)));
  if (end - i >= 8) {
    store<u64>(dst + i, load<u64>(dst + i) ^ load<u64>(src + i));
    i += 8;
  }
  for (; i < end; i++) store<u8>(dst + i, load<u8>(dst + i) ^ load<u8>(src + i));
}

/** a[0..n) ^= src[0..n) and b[0..n) ^= src[0..n), reading src once (a row and a column at once). */
export function xorInto2(a: usize, b: usize, src: usize, n: i32): void {
  const end = <usize>n;
  let i: usize = 0;
  const wide = end & ~(<usize>31);
  for (; i < wide; i += 32) {
    const s0 = v128.load(src + i);
    const s1 = v128.load(src + i, 16);
    v128.store(a + i, v128.xor(v128.load(a + i), s0));
    v128.store(a + i, v128.xor(v128.load(a + i, 16), s1), 16);
    v128.store(b + i, v128.xor(v128.load(b + i), s0));
    v128.store(b + i, v128.xor(v128.load(b + i, 16), s1), 16);
  }
  const blocks = end & ~(<usize>15);
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
