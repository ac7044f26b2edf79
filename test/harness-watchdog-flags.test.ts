// The harness's watchdog thread starts whatever node flags the test process runs with: a test
// run as `node --input-type=module -e '...'` (a one-off check, a CI step) must neither crash when
// the thread starts nor hang in an endless loop with no watchdog to end it.
import * as assert from "uvu/assert";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Child } from "./lib/child.js";
import { suite } from "./lib/suite.js";
import { fixture, ROOT } from "./lib/paths.js";

const test = suite("harness watchdog under node flags", { timeoutMs: 90_000 });
const HARNESS = pathToFileURL(join(ROOT, "dist", "sdk", "harness", "index.js")).href;

/** Runs `node --input-type=module -e script`, killed after `limitMs` (an endless loop no watchdog ended). */
async function evalModule(script: string, limitMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = new Child(process.execPath, ["--input-type=module", "-e", script], { limitMs });
  const { code } = await child.exited;
  return { code, stdout: child.stdout, stderr: child.stderr };
}

test("a test that waits a little still passes", async () => {
  const r = await evalModule(`
    import { FilterHarness, buildRtp } from ${JSON.stringify(HARNESS)};
    const h = await FilterHarness.load(${JSON.stringify(fixture("misbehave"))});
    await new Promise((r) => setTimeout(r, 500)); // the watchdog thread has started by now
    console.log(h.run({ ctx: h.createContext({}), bytes: buildRtp({ seq: 1 }) }).verdict);
  `, 60_000);
  assert.equal([r.code, r.stdout.trim()], [0, "pass"], r.stderr);
});

test("an endless loop is still ended by the watchdog, naming the call", async () => {
  // misbehave loops forever on a packet whose first payload byte is 0xAD
  const r = await evalModule(`
    import { FilterHarness, buildRtp } from ${JSON.stringify(HARNESS)};
    const h = await FilterHarness.load(${JSON.stringify(fixture("misbehave"))}, { timeoutMs: 300 });
    await new Promise((r) => setTimeout(r, 200));
    h.run({ ctx: h.createContext({}), bytes: buildRtp({ seq: 2, payloadByte: 0xad }) });
  `, 30_000);
  assert.ok(r.code !== 0);
  assert.match(r.stderr, /filter 'misbehave' did not return within 300 ms in onPacket/);
});

test.run();
