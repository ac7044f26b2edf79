// The proxy configs in filters/replicate/README.md are taken from its text and checked as the
// proxy checks a config file, and their replicate stages are created in the filter: the document
// cannot show a config that does not work.
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { validateProxyConfig } from "../../../runtime/index.js";
import { suite } from "../../../test/lib/suite.js";
import { ROOT } from "../../../test/lib/paths.js";
import { loadReplicate } from "./replicate-lib.js";

const test = suite("replicate README configs");

const readme = readFileSync(join(ROOT, "filters", "replicate", "README.md"), "utf8");
const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);

test("the README shows the send side and the receive side of a 2022-7 pair", () => {
  assert.is(blocks.length, 2);
});

blocks.forEach((text, k) => {
  test(`README config ${k + 1}: a valid proxy config whose replicate stages the filter accepts, with a leg per path`, async () => {
    const config = validateProxyConfig(parse(text), ROOT);
    const entry = config.filters.replicate;
    assert.ok(entry, "a filter entry named replicate");
    const h = await loadReplicate({ rootConfig: entry.config });
    for (const seg of config.segments) {
      assert.is(seg.legs.length, 1, "one second path");
      for (const stage of seg.chain.filter((s) => s.filter === "replicate")) {
        h.createContext(stage.config);
        const merging = "merge" in stage.config;
        const leg = seg.legs[0]!;
        assert.equal([leg.receive, leg.send], merging ? [true, false] : [false, true],
          merging ? "the receive side's second path only receives" : "the send side's second path only sends");
        if (merging) assert.ok(leg.source?.address && seg.source.address, "each path names its sender");
      }
    }
  });
});

test.run();
