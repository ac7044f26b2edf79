// The test runner runs two files at a time (test/run.ts, MSM_TEST_JOBS): the ports one file's
// freePortPair hands out must not be handed out by the other, nor taken meanwhile by a socket the
// kernel numbers (a sink's, a proxy's egress) in either. Each file learns its lane from the runner
// (MSM_TEST_LANE of MSM_TEST_LANES) and picks within it, below Linux's ephemeral range.
//
// This file binds ports only in its own lane: probing the other lane's, while the runner has a
// file there, could hold a port that file was just handed, for the moment it binds it.
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { laneRange } from "./lib/udp.js";
import { suite } from "./lib/suite.js";
import { ROOT } from "./lib/paths.js";

const test = suite("test-lanes");
const UDP = pathToFileURL(join(ROOT, "dist", "test", "lib", "udp.js")).href;
/** Linux's default ip_local_port_range starts here: bind(0) numbers sockets from it. */
const EPHEMERAL_LOW = 32768;

/** This file's lane as the runner set it; run on its own, lane 0 of 2 (nothing else is binding). */
const OWN_LANES = Number(process.env.MSM_TEST_LANES) > 1 ? Math.floor(Number(process.env.MSM_TEST_LANES)) : 2;
const OWN_LANE = Number(process.env.MSM_TEST_LANES) > 1 ? Math.floor(Number(process.env.MSM_TEST_LANE)) : 0;

/** What a process in `lane` of `lanes` is handed: `pairs` freePortPair calls and one run of `run` ports (each probe closed, as a test's are). */
function handedOut(lane: number | undefined, lanes: number | undefined, pairs: number, run: number): { pairs: number[]; run: number } {
  const script = `const { freePortPair, freePortRun } = await import(${JSON.stringify(UDP)}); const pairs = []; for (let i = 0; i < ${pairs}; i++) pairs.push(await freePortPair()); console.log(JSON.stringify({ pairs, run: await freePortRun(${run}) }));`;
  const env = { ...process.env };
  delete env.MSM_TEST_LANE;
  delete env.MSM_TEST_LANES;
  if (lane !== undefined && lanes !== undefined) Object.assign(env, { MSM_TEST_LANE: String(lane), MSM_TEST_LANES: String(lanes) });
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", env, timeout: 60_000 });
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { pairs: number[]; run: number };
}

test("lanes split the picking range into even-aligned parts apart, all below the kernel's ephemeral range", () => {
  for (const lanes of [2, 3]) { // test/run.ts runs at most 3 lanes
    const ranges = Array.from({ length: lanes }, (_, lane) => laneRange(lane, lanes));
    ranges.forEach(([low, high], k) => {
      assert.ok(low % 2 === 0 && low < high && high <= EPHEMERAL_LOW, `lane ${k} of ${lanes}: [${low}, ${high})`);
      if (k > 0) assert.is(low, ranges[k - 1]![1], `lane ${k} of ${lanes} begins where lane ${k - 1} ends`);
    });
    assert.ok(ranges.every(([low, high]) => high - low >= 2600 + 1000), `every lane of ${lanes} holds a run of 1000 ports above its pairs`);
  }
  assert.equal(laneRange(0, 1), laneRange(Number.NaN, Number.NaN), "one lane is no lanes: the whole range");
});

test("a file in a lane is handed pairs and long runs inside that lane only", () => {
  const [low, high] = laneRange(OWN_LANE, OWN_LANES);
  const got = handedOut(OWN_LANE, OWN_LANES, 300, 1000);
  const outside = got.pairs.filter((p) => p < low || p + 2 > high);
  assert.equal(outside, [], `every pair inside lane ${OWN_LANE} of ${OWN_LANES}: [${low}, ${high})`);
  assert.ok(got.run >= low && got.run + 1000 <= high, `the run of 1000 inside the lane: ${got.run}`);
  assert.is(new Set(got.pairs).size, got.pairs.length, "no pair handed out twice");
});

test("a file run on its own (no lane) picks below the ephemeral range too", () => {
  const got = handedOut(undefined, undefined, 1, 1000);
  assert.ok(got.run + 1000 <= EPHEMERAL_LOW && got.pairs[0]! + 2 <= EPHEMERAL_LOW, `${got.run}, ${got.pairs[0]}`);
});

test.run();
