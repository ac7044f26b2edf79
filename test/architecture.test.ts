// The house's arrows (.dependency-cruiser.cjs says which): dependency-cruiser reads every source
// file's imports and reports a rule broken or a cycle, naming the files.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { ROOT } from "./lib/paths.js";
import { suite } from "./lib/suite.js";

const test = suite("architecture", { timeoutMs: 120_000 });
const FOLDERS = ["runtime", "sdk", "cli", "bench", "filters", "test"];

function cruise(): { status: number | null; output: string } {
  const bin = join(ROOT, "node_modules", ".bin", "depcruise");
  const r = spawnSync(bin, ["-c", ".dependency-cruiser.cjs", "--output-type", "err-long", ...FOLDERS], { cwd: ROOT, encoding: "utf8" });
  return { status: r.status, output: `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? String(r.error) : ""}` };
}

test("imports run one way (cli -> controlplane/sdk -> runtime), runtime's internals stay inside, no cycles", () => {
  const { status, output } = cruise();
  assert.is(status, 0, `dependency rules broken:\n${output}`);
  const cruised = /\((\d+) modules, (\d+) dependencies cruised\)/.exec(output);
  assert.ok(cruised && Number(cruised[1]) > 300, `the whole tree was read (${cruised?.[0] ?? output})`);
});

test.run();
