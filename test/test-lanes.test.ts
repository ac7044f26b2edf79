// The test runner runs two files at a time (test/run.ts, MSM_TEST_JOBS): the ports one file's
// freePortPair hands out must not be handed out by the other, nor taken meanwhile by a socket the
// kernel numbers (a sink's, a proxy's egress) in either. Each file learns its lane from the runner
// (MSM_TEST_LANE of MSM_TEST_LANES) and picks within it, below Linux's ephemeral range.
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { suite } from "./lib/suite.js";
import { ROOT } from "./lib/paths.js";

const test = suite("test-lanes");
const UDP = pathToFileURL(join(ROOT, "dist", "test", "lib", "udp.js")).href;
/** Linux's default ip_local_port_range starts here: bind(0) numbers sockets from it. */
const EPHEMERAL_LOW = 32768;

/** The ports a process in `lane` of `lanes` is handed by 400 freePortPair calls (each pair's probe sockets closed, as a test's are). */
function handedOut(lane: number, lanes: number): number[] {
  const script = `const { freePortPair } = await import(${JSON.stringify(UDP)}); const out = []; for (let i = 0; i < 400; i++) out.push(await freePortPair()); console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8", env: { ...process.env, MSM_TEST_LANE: String(lane), MSM_TEST_LANES: String(lanes) }, timeout: 60_000,
  });
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as number[];
}

test("two files running at once (two lanes) are handed ports apart, below the kernel's ephemeral range", () => {
  const a = handedOut(0, 2);
  const b = handedOut(1, 2);
  const portsOf = (pairs: number[]): Set<number> => new Set(pairs.flatMap((p) => [p, p + 1]));
  const inA = portsOf(a);
  const both = [...portsOf(b)].filter((p) => inA.has(p));
  assert.equal(both, [], "no port handed out in both lanes");
  const ephemeral = [...a, ...b].filter((p) => p + 1 >= EPHEMERAL_LOW);
  assert.equal(ephemeral, [], "none where bind(0) numbers sockets");
});

test("a file run on its own (no lane) picks below the ephemeral range too", () => {
  const script = `const { freePortRun } = await import(${JSON.stringify(UDP)}); console.log(JSON.stringify([await freePortRun(1000), await freePortPair()]));`.replace("{ freePortRun }", "{ freePortRun, freePortPair }");
  const env = { ...process.env };
  delete env.MSM_TEST_LANE;
  delete env.MSM_TEST_LANES;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", env, timeout: 60_000 });
  assert.is(r.status, 0, r.stderr);
  const [run, pair] = JSON.parse(r.stdout) as [number, number];
  assert.ok(run + 1000 <= EPHEMERAL_LOW && pair + 2 <= EPHEMERAL_LOW, `${run}, ${pair}`);
});

test.run();
