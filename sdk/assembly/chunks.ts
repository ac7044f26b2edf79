// A filter's packet buffers, in chunks of CHUNK_SIZE bytes (fec and replicate use it). One instance serves every
// segment of a worker, and segments of every size come and go: buffers of many sizes allocated
// and freed in turn fragment a general-purpose heap until an allocation traps, which takes every
// segment of the instance down. So buffers are made of equal chunks, recycled through a free list
// and never returned. Chunks come in slabs taken straight from memory.grow, so that a memory cap
// reached shows as a refused context (Status.NoSpace), not as a trap.
//
// The budget bounds the chunks in use, leaving the rest of the instance's memory to the arena,
// code and small per-context objects (the general heap gets a reserve of its own at load, since
// chunks taken up to the cap would leave it nothing to grow into).

import { Config } from "./config";

export const CHUNK_SIZE: i32 = 16384;
const SLAB_PAGES: i32 = 16; // 1 MiB: 64 chunks
/** Kept free in the general heap for small objects, so that chunks can never starve it. */
const HEAP_RESERVE: usize = 1 << 20;

/** Default: 12 MiB of the default 16 MiB instance cap. */
export const DEFAULT_BUDGET_KIB: i64 = 12 * 1024;

let budgetChunks: i32 = <i32>(DEFAULT_BUDGET_KIB * 1024 / CHUNK_SIZE);
let usedChunks: i32 = 0;
let freeChunks: i32 = 0;
/** Free chunks, linked through their first word. */
let freeHead: usize = 0;

/** Sets the budget and makes sure the general heap has room of its own (root config, once). */
export function setBudget(kib: i64): void {
  budgetChunks = <i32>(kib * 1024 / CHUNK_SIZE);
  heap.free(heap.alloc(HEAP_RESERVE));
}

@inline export function budgetUsedBytes(): i64 {
  return <i64>usedChunks * CHUNK_SIZE;
}

@inline export function budgetBytes(): i64 {
  return <i64>budgetChunks * CHUNK_SIZE;
}

/** Reads the root config's `bufferBudgetKiB` (256 KiB to 4 GiB); apply it with setBudget once the config is accepted. */
export function readBudgetKiB(cfg: Config): i64 {
  return cfg.getInt("bufferBudgetKiB", DEFAULT_BUDGET_KIB, 256, 4 * 1024 * 1024);
}

/**
 * The error for a context that did not fit, after take() failed: "no room for another `what`: it
 * needs N KiB, and" what ran out, with what to raise; `orLower` names one more way out (", or lower X").
 */
export function noRoomMessage(what: string, needBytes: i64, orLower: string = ""): string {
  const head = "no room for another " + what + ": it needs " + kib(needBytes) + " KiB, and ";
  return lastFailure == NO_MEMORY
    ? head + "the instance's memory is at its cap (raise the filter's maxMemoryPages, or lower bufferBudgetKiB)"
    : head + kib(budgetUsedBytes()) + " of the instance's " + kib(budgetBytes()) +
      " KiB are taken (raise the root config's bufferBudgetKiB, and the filter's maxMemoryPages with it" + orLower + ")";
}

function kib(bytes: i64): string {
  return ((bytes + 1023) / 1024).toString();
}

/** Why take() failed. */
export const NO_BUDGET = 1;
export const NO_MEMORY = 2;
let lastFailure: i32 = 0;

@inline export function takeFailure(): i32 {
  return lastFailure;
}

/** `n` chunks, or null (takeFailure() says why): all or nothing. */
export function take(n: i32): StaticArray<usize> | null {
  if (usedChunks + n > budgetChunks) {
    lastFailure = NO_BUDGET;
    return null;
  }
  while (freeChunks < n) {
    // A slab, or near the cap just the pages still missing.
    let pages = SLAB_PAGES;
    let before = memory.grow(pages);
    if (before < 0) {
      pages = (((n - freeChunks) * CHUNK_SIZE) + 0xffff) >> 16;
      before = memory.grow(pages);
    }
    if (before < 0) {
      lastFailure = NO_MEMORY;
      return null;
    }
    const slab = <usize>before << 16;
    const count = (pages << 16) / CHUNK_SIZE;
    for (let k = 0; k < count; k++) giveOne(slab + <usize>k * <usize>CHUNK_SIZE);
  }
  const out = new StaticArray<usize>(n);
  for (let k = 0; k < n; k++) {
    const c = freeHead;
    freeHead = load<usize>(c);
    freeChunks--;
    unchecked((out[k] = c));
  }
  usedChunks += n;
  return out;
}

/** Returns chunks taken with take(). */
export function giveBack(chunks: StaticArray<usize>): void {
  for (let k = 0; k < chunks.length; k++) giveOne(unchecked(chunks[k]));
  usedChunks -= chunks.length;
}

function giveOne(c: usize): void {
  store<usize>(c, freeHead);
  freeHead = c;
  freeChunks++;
}
