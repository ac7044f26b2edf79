// The smallest search the bench tests run through real relays: one short trial per step, rates a
// busy 2-core machine offers, the validate filter.
import { DEFAULT_FILTER } from "../../bench/common.js";
import type { SearchOptions } from "../../bench/e2e.js";

export const TINY_SEARCH: SearchOptions & { filterPath: string; filterName: string } = {
  filterPath: DEFAULT_FILTER,
  filterName: "validate",
  size: 1200,
  repeats: 1,
  trialMs: 300,
  drainMs: 100,
  steps: 1,
  floorPps: 2000,
  maxPps: 20_000,
  maxLoss: 0.001,
  sweepRates: [],
  // a trial that failed while other processes loaded the machine is tried again (CI: the harness's
  // own generator fell short, 1918 of 2000 pps, beside other test files, and the ceiling read 0)
  noisyRetries: 2,
  pin: false,
};
