// The proxy configs in filters/congestion/README.md are taken from its text and checked as the
// proxy checks a config file, and their congestion stages are created in the filter: the document
// cannot show a config that does not work.
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { validateProxyConfig } from "../../../runtime/index.js";
import { ROOT } from "../../../test/lib/paths.js";
import { suite } from "../../../test/lib/suite.js";
import { loadCongestion } from "./cc-lib.js";

const test = suite("congestion README configs");

const readme = readFileSync(join(ROOT, "filters", "congestion", "README.md"), "utf8");
const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);

test("the README shows proxy A and proxy B", () => {
  assert.is(blocks.length, 2);
});

blocks.forEach((text, k) => {
  test(`README config ${k + 1}: a valid proxy config whose congestion stage the filter accepts, in the mode its place asks`, async () => {
    const config = validateProxyConfig(parse(text), ROOT);
    const entry = config.filters.congestion;
    assert.ok(entry, "a filter entry named congestion");
    const h = await loadCongestion({ rootConfig: entry.config });
    for (const seg of config.segments) {
      const stages = seg.chain.filter((s) => s.filter === "congestion");
      assert.is(stages.length, 1);
      h.createContext(stages[0]!.config);
      const mode = (stages[0]!.config as { mode?: string }).mode;
      const place = seg.chain.findIndex((s) => s.filter === "congestion");
      assert.is(place, mode === "sender" ? seg.chain.length - 1 : 0, "the sender last, the receiver first");
    }
  });
});

test.run();
