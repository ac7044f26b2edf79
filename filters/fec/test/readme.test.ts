// The proxy configs in filters/fec/README.md are taken from its text and checked as the proxy
// checks a config file, and their fec stages are created in the filter: the document cannot show
// a config that does not work.
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { validateProxyConfig } from "../../../runtime/index.js";
import { suite } from "../../../test/lib/suite.js";
import { ROOT } from "../../../test/lib/paths.js";
import { loadFec } from "./fec-lib.js";

const test = suite("fec README configs");

const readme = readFileSync(join(ROOT, "filters", "fec", "README.md"), "utf8");
const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);

test("the README shows an encoder and a decoder proxy config", () => {
  assert.is(blocks.length, 2);
});

blocks.forEach((text, k) => {
  test(`README config ${k + 1}: a valid proxy config whose fec stages the filter accepts, legs as ST 2022-1 lays them out`, async () => {
    const config = validateProxyConfig(parse(text), ROOT);
    const entry = config.filters.fec;
    assert.ok(entry, "a filter entry named fec");
    const h = await loadFec({ rootConfig: entry.config });
    for (const seg of config.segments) {
      assert.equal(seg.legs.map((l) => l.portOffset), [2, 4], "column leg at P+2 first, row leg at P+4");
      for (const stage of seg.chain.filter((s) => s.filter === "fec")) {
        h.createContext(stage.config);
        const mode = (stage.config as { mode?: string }).mode;
        assert.equal(seg.legs.map((l) => (mode === "encode" ? l.receive : l.send)), [false, false],
          mode === "encode" ? "an encoder's FEC legs only send" : "a stripping decoder's FEC legs only receive");
      }
    }
  });
});

test.run();
