// Constant-time comparison for authentication tags (RFC 3711 and RFC 7714 tags: 4, 10, 16 bytes).

/**
 * True if the `len` bytes at `a` and `b` are equal. The time taken depends on `len` only, not on
 * where (or whether) the bytes differ: every byte is read and the differences are OR-ed together
 * without branching, so a forger learns nothing from timing about how much of a tag was right.
 */
export function ctEqual(a: usize, b: usize, len: i32): bool {
  let diff: u32 = 0;
  for (let i: usize = 0; i < <usize>len; i++) diff |= <u32>(load<u8>(a + i) ^ load<u8>(b + i));
  return diff == 0;
}
