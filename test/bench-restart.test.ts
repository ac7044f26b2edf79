// The worker-restart bench in a tiny run (one trial each way): figures are not asserted (a shared
// machine), only that each trial ended with the worker back and the bystander's stream through it.
import * as assert from "uvu/assert";
import { runRestart } from "../bench/restart.js";
import { suite } from "./lib/suite.js";

const test = suite("bench restart", { timeoutMs: 60_000 });

test("a trial with the spare and one without: the watchdog restarted the worker, and the bystander's packets stopped and came back", async () => {
  const { spare, none } = await runRestart(1);
  for (const [label, trials] of [["spare", spare], ["none", none]] as const) {
    assert.is(trials.length, 1, label);
    const t = trials[0]!;
    assert.ok(t.restartMs > 0, `${label}: the worker came back after the watchdog (${t.restartMs} ms)`);
    assert.ok(t.gapMs >= 50, `${label}: the bystander's stream stopped while its worker was stuck (longest gap ${t.gapMs} ms, watchdog.stuckMs 100)`);
  }
});

test.run();
