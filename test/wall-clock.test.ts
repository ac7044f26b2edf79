// The wall clock the per-stream stats stamp with (runtime/streams/wall-clock.ts), over clocks the
// test drives: the start's calibration finds the offset, a step of the wall clock is noticed and
// followed without spinning (the data plane's thread checks it), and the offset settles again.
import * as assert from "uvu/assert";
import { WallClock, type Clocks } from "../runtime/streams/wall-clock.js";
import { suite } from "./lib/suite.js";

const test = suite("wall clock");

/** A monotonic clock that moves `tickMs` per read, and a wall clock `offset` ahead of it, truncated to the millisecond as Date.now() is. */
class FakeClocks implements Clocks {
  mono = 5_000.25;
  offset = 1_800_000_000_000.6;
  wallReads = 0;
  constructor(private readonly tickMs = 0.0137) {}
  wall(): number {
    this.wallReads++;
    this.mono += this.tickMs;
    return Math.floor(this.mono + this.offset);
  }
  monotonic(): number {
    this.mono += this.tickMs;
    return this.mono;
  }
  /** The true wall-clock time now, without moving the clocks. */
  truth(): number {
    return this.mono + this.offset;
  }
}

/** A fraction of a millisecond that varies from call to call, as a once-a-second timer's does. */
const seeded = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

test("the start's calibration finds the offset within the bracket of a tick", () => {
  const clocks = new FakeClocks();
  const clock = new WallClock(clocks);
  assert.ok(Math.abs(clock.nowMs() - clocks.truth()) < 0.05, `off by ${clock.nowMs() - clocks.truth()} ms`);
});

test("without a step, a resync reads the clock once and leaves the offset alone", () => {
  const clocks = new FakeClocks();
  const clock = new WallClock(clocks);
  const before = clock.nowMs() - clocks.mono;
  const reads = clocks.wallReads;
  for (let i = 0; i < 10; i++) {
    clocks.mono += 1000.3;
    clock.resync();
  }
  assert.is(clocks.wallReads - reads, 10);
  assert.is(clock.nowMs() - clocks.mono, before);
});

test("a step of the wall clock, either way: followed at once within a millisecond without spinning, settled within 0.1 ms after a minute of resyncs, never moving back", () => {
  for (const step of [5_000.37, -3_600_000.81, 3.4]) {
    const clocks = new FakeClocks();
    const clock = new WallClock(clocks);
    const fraction = seeded(7);
    clocks.offset += step;
    const reads = clocks.wallReads;
    clock.resync();
    assert.is(clocks.wallReads - reads, 1, `step ${step}: one read, no spin`);
    const atOnce = clock.nowMs() - clocks.truth();
    assert.ok(atOnce <= 0.05 && atOnce > -1.05, `step ${step}: at once at most a millisecond early, off by ${atOnce} ms`);
    let offset = clock.nowMs() - clocks.mono;
    for (let i = 0; i < 60; i++) {
      clocks.mono += 1000 + fraction();
      clock.resync();
      const now = clock.nowMs() - clocks.mono;
      assert.ok(now >= offset, `step ${step}: the offset never moves back while it settles`);
      offset = now;
    }
    assert.is(clocks.wallReads - reads, 61, `step ${step}: a read per resync`);
    const off = clock.nowMs() - clocks.truth();
    assert.ok(Math.abs(off) < 0.1, `step ${step}: after 60 resyncs off by ${off} ms`);
  }
});

test.run();
