// A seeded pseudo-random source for tests (xorshift32): the same seed gives the same draws on
// every run, so a loss pattern or a fuzz case that fails can be replayed. Not for anything secret.

/** Uniform numbers in [0, 1) from `seed`. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}
