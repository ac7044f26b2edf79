// Every filter survives the churn of a long-lived proxy: 100,000 segment changes (context create
// and destroy, one in ten with a config the filter refuses) while 300 other contexts stay alive,
// without its memory growing. A filter that leaks per context change traps after enough of them,
// and a trapped instance takes its segments down with it (issue #9: srtp leaked 830 B a change).
import * as assert from "uvu/assert";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { FilterHarness } from "../sdk/harness/index.js";
import { suite } from "./lib/suite.js";
import { filterWasm, ROOT } from "./lib/paths.js";

const test = suite("filter lifecycle", { timeoutMs: 240_000 });

const SRTP_KEY = "inline:" + Buffer.alloc(30, 7).toString("base64");

/** A context config each filter accepts, and one it refuses. A new filter must add its line here. */
const CONFIGS: Record<string, { good: unknown; bad: unknown }> = {
  validate: { good: { allowedPayloadTypes: [96, 97], rate: { packetsPerSecond: 5000 } }, bad: { allowedPayloadTypes: [300] } },
  srtp: { good: { direction: "protect", key: SRTP_KEY, ssrcs: [1, 2, 3] }, bad: { direction: "sideways", key: SRTP_KEY } },
  fec: { good: { mode: "encode", columns: 5, rows: 5 }, bad: { mode: "encode", columns: 30, rows: 5 } },
  // 300 merges do not fit the default budget: merges come and go in filters/replicate/test/config.test.ts
  replicate: { good: { copyToLegs: [2], rewrite: { ssrc: 7 } }, bad: { merge: { bufferMs: 0 } } },
  // 300 senders (64 KiB of history and a queue each) do not fit the default budget: receivers
  // churn here, senders in filters/congestion/test/filter.test.ts
  congestion: { good: { mode: "receiver", feedbackIntervalMs: 20 }, bad: { mode: "sender", minBps: 5_000_000, maxBps: 1_000_000 } },
};

const CHANGES = 100_000;
const LIVE = 300;

const filters = readdirSync(join(ROOT, "filters")).filter((name) => existsSync(join(ROOT, "filters", name, "assembly", "index.ts")));

test("every filter in filters/ has a lifecycle config in this test", () => {
  assert.ok(filters.length >= 2, `filters found: ${filters.join(", ")}`);
  for (const name of filters) assert.ok(CONFIGS[name], `add a { good, bad } context config for filter '${name}' to CONFIGS`);
});

for (const name of filters) {
  test(`${name}: ${CHANGES.toLocaleString("en")} context changes beside ${LIVE} live contexts, memory flat`, async () => {
    const configs = CONFIGS[name];
    if (!configs) return; // reported by the test above
    const h = await FilterHarness.load(filterWasm(name));
    const memory = (): number => h.instance.memory.buffer.byteLength;
    const live: number[] = [];
    for (let i = 0; i < LIVE; i++) live.push(h.createContext(configs.good));
    let refused = 0;
    const churn = (n: number): void => {
      for (let i = 0; i < n; i++) {
        if (i % 10 === 9) {
          try {
            h.createContext(configs.bad);
          } catch {
            refused++;
          }
          continue;
        }
        // replace the oldest live context, as a rolling config change would
        h.destroyContext(live.shift()!);
        live.push(h.createContext(configs.good));
      }
    };
    churn(10_000); // warm up: the free lists and the collector's interval settle
    const settled = memory();
    churn(CHANGES);
    const grown = memory() - settled;
    assert.is(h.instance.failure, undefined, "the instance never failed");
    assert.ok(refused >= (CHANGES + 10_000) / 10 - 1, `the bad configs were refused (${refused})`);
    assert.ok(grown <= 65_536, `memory grew by ${grown} bytes over ${CHANGES} changes (from ${settled})`);
  });
}

test.run();
