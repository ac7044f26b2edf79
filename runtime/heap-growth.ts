// How far V8 lets a heap grow past what its last full collection kept. By default it may grow to
// about four times that before it collects again, and at 10,000 segments the main thread's once-a-
// second rounds and each /stats or /metrics read leave tens of MB of snapshots behind: its heap
// rose and fell by 300-400 MB between collections, and a container's memory limit meets the top.
// Bounded to 1.5 times, the main thread collects sooner (docs/proxy.md "Memory"). The flag is
// process-wide: the worker threads get it too, and they allocate little between rounds.
import { setFlagsFromString } from "node:v8";

export const HEAP_GROWING_PERCENT = 50;

/**
 * The V8 flag the proxy sets: none under Bun (its collector is not V8's), nor where the operator
 * gave node a value of their own (`node --heap-growing-percent=N`: NODE_OPTIONS does not take it).
 */
export function heapGrowthFlag(execArgv: readonly string[], isBun: boolean): string | null {
  if (isBun || execArgv.some((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a))) return null;
  return `--heap-growing-percent=${HEAP_GROWING_PERCENT}`;
}

/** Sets heapGrowthFlag's flag, if any, for this process; before the worker threads start. Returns it. */
export function boundHeapGrowth(): string | null {
  const flag = heapGrowthFlag(process.execArgv, typeof (globalThis as { Bun?: unknown }).Bun !== "undefined");
  if (flag !== null) setFlagsFromString(flag);
  return flag;
}
