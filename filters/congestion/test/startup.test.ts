// The sender's start-up phase (README "Estimation"): it ends at the first loss the feedback shows,
// even with no over-use, and does not come back with clean feedback after it. Feedback from the
// independent codec (test/lib/rtcp-cc.ts), a hop of constant delay: the detector never sees over-use.
import * as assert from "uvu/assert";
import type { FilterHarness } from "../../../sdk/harness/index.js";
import { TwccRecorder } from "../../../test/lib/rtcp-cc.js";
import { suite } from "../../../test/lib/suite.js";
import { SSRC, loadCongestion } from "./cc-lib.js";
import { drive } from "./twcc-drive.js";

const test = suite("congestion: start-up");

const num = (h: FilterHarness, ctx: number, name: string): number => h.metric(name, ctx) as number;

test("start-up ends at the first lost packet, without over-use, and clean feedback does not bring it back", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const ctx = h.createContext({ mode: "sender", startBps: 300_000, minBps: 150_000 });
  const recorder = new TwccRecorder(0xfeed0001, SSRC);
  // 300 bytes every 10 ms (about 270 kbit/s on the wire), 20 ms of delay each: no queue anywhere
  const media = { intervalUs: 10_000, size: 300 };
  const clean = (): number => 20_000;
  drive(h, ctx, recorder, { ...media, packets: 150, delayUs: clean });
  assert.is(num(h, ctx, "startup"), 1, "clean feedback: still in start-up");
  const grown = num(h, ctx, "target_bps");
  assert.ok(grown > 300_000, `the target grew (${grown})`);
  // one packet of the next 100 lost (1%: below the loss-based controller's 2%, which would not cut)
  drive(h, ctx, recorder, { ...media, packets: 100, delayUs: (k) => (k === 30 ? null : 20_000), seq0: 150 });
  assert.is(num(h, ctx, "startup"), 0, "the loss ended it");
  assert.is(num(h, ctx, "overuse_signals"), 0, "the detector saw no over-use: the loss alone did");
  const after = num(h, ctx, "target_bps");
  drive(h, ctx, recorder, { ...media, packets: 300, delayUs: clean, seq0: 250 });
  assert.is(num(h, ctx, "startup"), 0, "3 s of clean feedback later, still over");
  assert.is(num(h, ctx, "feedback_rejected"), 0);
  console.log(`  start-up: ${Math.round(grown / 1000)} kbit/s after 1.5 s, ${Math.round(after / 1000)} at the loss, ${Math.round(num(h, ctx, "target_bps") / 1000)} 3 s later`);
});

test("start-up never grows faster than 1.5x what the receiver acknowledged (an origin that sends little)", async () => {
  const h = await loadCongestion({ startUs: 0 });
  // starting at the floor: the cap bounds growth only (it does not cut an estimate already made,
  // see the quiet-origin test in test/congestion-proxy.test.ts)
  const ctx = h.createContext({ mode: "sender", startBps: 150_000, minBps: 150_000, startup: { growthPerSecond: 4 } });
  // about 100 kbit/s for 4 s, clean: the estimate has nothing to go on beyond what comes through
  drive(h, ctx, new TwccRecorder(0xfeed0001, SSRC), { intervalUs: 10_000, size: 100, packets: 400, delayUs: () => 20_000 });
  assert.is(num(h, ctx, "startup"), 1);
  const acked = num(h, ctx, "acked_bps");
  const target = num(h, ctx, "target_bps");
  // each step is capped by the acknowledged rate of its moment (the first feedback's, measured over
  // few packets, reads a little higher than the settled one): near 1.5x, where 4 s of start-up at
  // 4x a second would have reached the maximum
  assert.ok(target <= 1.75 * acked + 10_000, `target ${target} within about 1.5x the acknowledged ${acked}`);
});

test.run();
