// Which pushed version of a filter an unpinned chain stage runs (controlplane/api/versions.ts):
// the highest version, not the one pushed last; push order only where versions do not compare.
import * as assert from "uvu/assert";
import { compareVersions, newestVersion } from "../controlplane/api/versions.js";
import { planSnapshot } from "../controlplane/agent/index.js";
import type { Segment } from "../controlplane/api/proto.js";
import { suite } from "./lib/suite.js";

const test = suite("filter versions");

test("dotted versions compare as numbers; a pre-release before its release; a leading v and build metadata understood; others do not compare", () => {
  const sign = (a: string, b: string): number | undefined => {
    const c = compareVersions(a, b);
    return c === undefined ? undefined : Math.sign(c);
  };
  assert.is(sign("1.10.0", "1.9.0"), 1);
  assert.is(sign("1.0.1", "1.1.0"), -1);
  assert.is(sign("2", "1.9.9"), 1);
  assert.is(sign("1.0", "1.0.0"), 0);
  assert.is(sign("v1.2.0", "1.1.0"), 1);
  assert.is(sign("1.1.0-rc1", "1.1.0"), -1);
  assert.is(sign("1.1.0-rc2", "1.1.0-rc1"), 1);
  assert.is(sign("1.1.0+build5", "1.1.0"), 0);
  assert.is(sign("latest", "1.0.0"), undefined);
  assert.is(sign("2024-05-01", "2024-04-30"), 1, "dates order too (read as 2024 with a suffix)");
});

test("the newest: the highest version whatever the push order; pushed last where versions do not compare", () => {
  const pushed = (...vs: string[]) => vs.map((version, order) => ({ version, order }));
  const newest = (items: { version: string; order: number }[]) => newestVersion(items, (i) => i.version, (i) => i.order)?.version;
  assert.is(newest(pushed("1.0.0", "1.1.0", "0.9.0")), "1.1.0", "an older build pushed again moves nothing");
  assert.is(newest(pushed("1.1.0", "1.0.1")), "1.1.0", "a hotfix of an older line");
  assert.is(newest(pushed("1.1.0", "1.2.0-rc1")), "1.1.0", "a pre-release is not the newest while a release is pushed");
  assert.is(newest(pushed("1.2.0-rc1", "1.2.0-rc.10", "1.2.0-rc.9")), "1.2.0-rc1", "pre-releases among themselves: SemVer's identifiers");
  assert.is(newest(pushed("1.2.0-rc.9", "1.2.0-rc.10")), "1.2.0-rc.10", "numeric identifiers as numbers");
  assert.is(newest(pushed("nightly-a", "nightly-b")), "nightly-b", "no order of their own: the one pushed last");
  assert.is(newest([]), undefined);
  // one answer whatever order the registry is read in (a replica reads it in push order, another in key order)
  for (const order of [["1.1.0", "dev", "1.0.0"], ["dev", "1.0.0", "1.1.0"], ["1.0.0", "1.1.0", "dev"]]) {
    assert.is(newest(order.map((version) => ({ version, order: ["1.0.0", "1.1.0", "dev"].indexOf(version) }))), "1.1.0", order.join(", "));
  }
});

test("a proxy's snapshot: an unpinned stage runs the highest version pushed, not the last", () => {
  const refs = [
    { name: "validate", version: "1.0.0", sha256: "a".repeat(64), size: 1, pushedAtMs: 1 },
    { name: "validate", version: "1.1.0", sha256: "b".repeat(64), size: 1, pushedAtMs: 2 },
    { name: "validate", version: "0.9.0", sha256: "c".repeat(64), size: 1, pushedAtMs: 3 },
  ];
  const segment: Segment = {
    name: "s", proxy: "p", listen: { address: "127.0.0.1", port: 5000, rtcpPort: 0 }, rtcpMux: false, egress: null,
    destinations: [], source: null, chain: [{ filter: "validate", version: "", configJson: "" }], failure: null, revision: 1, legs: [],
  };
  const plan = planSnapshot({ version: 1, segments: [segment], filters: refs }, "/m", 1);
  assert.is(plan.config.filters!.validate!.sha256, "b".repeat(64));
});

test.run();
