// The instance's memory budget for FEC buffers. One instance serves every segment of a worker, and
// a context that cannot get its buffers must be refused (Status.NoSpace) at create, not trap later:
// an out-of-memory trap would take every segment of the instance down with it. Each context's
// buffers are one block, allocated at create and freed at destroy.

/** Default: 12 MiB of the default 16 MiB instance cap (the rest: arena, code, small state). */
export const DEFAULT_BUDGET_KIB: i64 = 12 * 1024;

let budgetBytes: i64 = DEFAULT_BUDGET_KIB * 1024;
let usedBytes: i64 = 0;

export function setBudget(kib: i64): void {
  budgetBytes = kib * 1024;
}

@inline export function budgetUsed(): i64 {
  return usedBytes;
}

@inline export function budgetTotal(): i64 {
  return budgetBytes;
}

/** A block of `bytes`, or 0 when it does not fit the budget. */
export function allocate(bytes: i32): usize {
  if (usedBytes + <i64>bytes > budgetBytes) return 0;
  usedBytes += bytes;
  return heap.alloc(<usize>bytes);
}

export function release(block: usize, bytes: i32): void {
  if (block == 0) return;
  heap.free(block);
  usedBytes -= bytes;
}
