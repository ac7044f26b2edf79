// The workers part in a tiny run: real proxies with 1 and 2 workers over 4 segments pinned to
// them, the generator spreading over the segments' ports. Figures are not asserted (a shared
// machine): that every proxy was searched, packets went through, both workers of the 2-worker
// proxy took their share, and the report shows it.
import * as assert from "uvu/assert";
import { printText } from "../bench/report.js";
import { runWorkers, workerCountsFor, type WorkersResult } from "../bench/workers.js";
import { TINY_SEARCH } from "./lib/bench-search.js";
import { benchResults } from "./lib/bench-results.js";
import { suite } from "./lib/suite.js";

const test = suite("bench workers", { timeoutMs: 90_000 });

let result: WorkersResult;

test.before(async () => {
  result = await runWorkers({ ...TINY_SEARCH, workerCounts: [1, 2], segments: 4 });
});

test("each worker count was searched through a real proxy, and the segments shared the load", () => {
  assert.equal(result.rows.map((r) => r.workers), [1, 2]);
  assert.is(result.segments, 4);
  assert.ok(result.ceilingPps !== null && result.ceilingPps > 0, "the harness ceiling was measured");
  for (const row of result.rows) {
    const trials = row.repeats[0]!.trials;
    assert.ok(trials.length >= 1, `${row.label}: no trial`);
    assert.ok(trials.some((t) => t.received > 0), `${row.label}: nothing arrived`);
    assert.is(row.perWorkerPps, Math.round(row.maxPps / row.workers));
  }
  // the 2-worker proxy's segments are pinned 2 to each worker, and the generator spreads evenly:
  // both workers took packets in every trial
  const two = result.rows[1]!;
  for (const t of two.repeats[0]!.trials) {
    assert.is(t.packetsInByWorker?.length, 2, JSON.stringify(t.packetsInByWorker));
    assert.ok(t.packetsInByWorker!.every((n) => n > 0), `a worker took nothing: ${JSON.stringify(t.packetsInByWorker)}`);
  }
  assert.is(result.rows[0]!.repeats[0]!.trials[0]!.packetsInByWorker, undefined, "one worker: no split to show");
  if (result.rows[0]!.maxPps > 0) assert.is(two.vsFirst, Math.round((two.maxPps / result.rows[0]!.maxPps) * 100) / 100);
});

test("the report shows the rows and says how many cores the harness shared", () => {
  const results = benchResults(["workers"], { workers: result }, { mode: "quick" });
  const text = printText(results);
  assert.match(text, /\(g\) Workers: the chain \[validate\] on 1 to 2 workers, 4 segments/);
  assert.match(text, new RegExp(`This machine has ${result.cores} cores`));
  assert.match(text, /busiest worker's share/);
});

test("worker counts follow the cores: 1 and 2, then up to 4", () => {
  assert.equal(workerCountsFor(1), [1, 2]);
  assert.equal(workerCountsFor(2), [1, 2]);
  assert.equal(workerCountsFor(3), [1, 2, 3]);
  assert.equal(workerCountsFor(16), [1, 2, 4]);
});

test("too few segments for the workers is refused", async () => {
  try {
    await runWorkers({ ...TINY_SEARCH, workerCounts: [1, 2], segments: 3 });
    assert.unreachable("3 segments on 2 workers was accepted");
  } catch (err) {
    assert.match((err as Error).message, /3 segments, fewer than 2 per worker at 2 workers/);
  }
});

test.run();
