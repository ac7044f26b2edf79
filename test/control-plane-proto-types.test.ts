// The message types in controlplane/api/generated/ are generated from controlplane/proto/msm.proto
// (npm run build:proto) and committed: generated again here, they must be the same files, so a
// change to the .proto without a new build:proto fails here rather than type-checking stale shapes.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import * as assert from "uvu/assert";
import { ROOT } from "./lib/paths.js";
import { suite } from "./lib/suite.js";

const test = suite("control-plane message types from the .proto");

function files(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else out.set(relative(dir, path), readFileSync(path, "utf8"));
    }
  };
  walk(dir);
  return out;
}

test("controlplane/api/generated/ is what build:proto makes of msm.proto now", () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-proto-types-"));
  try {
    const run = spawnSync(process.execPath, [join(ROOT, "controlplane", "proto", "generate-types.mjs"), dir], { encoding: "utf8" });
    assert.is(run.status, 0, run.stderr);
    const fresh = files(dir);
    const committed = files(join(ROOT, "controlplane", "api", "generated"));
    assert.ok(fresh.has("msm/v1/Segment.ts"), `the generator wrote the messages: ${[...fresh.keys()].join(", ")}`);
    assert.equal([...committed.keys()].sort(), [...fresh.keys()].sort(), "the same files (run npm run build:proto)");
    for (const [name, text] of fresh) assert.is(committed.get(name), text, `${name} is stale: run npm run build:proto`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
