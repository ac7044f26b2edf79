// The harness names a dropped packet's reason as the proxy's /metrics and /stats do: a filter's
// own code by the name its drop-reason table gave it (ABI 1.6), with its class, and
// `filter_<code>` only for a code it left unnamed (test/drop-reasons.test.ts has the proxy's side).
import * as assert from "uvu/assert";
import { DropReason } from "../runtime/abi.js";
import { buildRtp, FilterFailure, FilterHarness } from "../sdk/harness/index.js";
import { suite } from "./lib/suite.js";
import { fixture } from "./lib/paths.js";

const test = suite("harness reason names", { timeoutMs: 30_000 });

/** named_reasons drops payload type pt with code 256 + (pt & 63). */
async function dropWithPayloadTypes(rootConfig: unknown, pts: number[]): Promise<{ reason: number; reasonName: string; discard: boolean }[]> {
  const h = await FilterHarness.load(fixture("named_reasons"), { rootConfig });
  const ctx = h.createContext();
  return h.runBatch(pts.map((pt, seq) => ({ ctx, bytes: buildRtp({ seq, payloadType: pt }) }))).packets
    .map(({ reason, reasonName, discard }) => ({ reason, reasonName, discard }));
}

test("a filter's own codes go by the names it gave them, with their class", async () => {
  const got = await dropWithPayloadTypes({ 256: "duplicate discard", 257: "late drop" }, [0, 1, 2]);
  assert.equal(got, [
    { reason: DropReason.FilterDefinedBase, reasonName: "duplicate", discard: true },
    { reason: DropReason.FilterDefinedBase + 1, reasonName: "late", discard: false },
    { reason: DropReason.FilterDefinedBase + 2, reasonName: "filter_258", discard: false }, // left unnamed
  ]);
});

test("a filter that names nothing keeps filter_<code>; passed packets have no reason", async () => {
  const got = await dropWithPayloadTypes({}, [63, 96]);
  assert.equal(got, [
    { reason: DropReason.FilterDefinedBase + 63, reasonName: "filter_319", discard: false },
    { reason: 0, reasonName: "", discard: false },
  ]);
});

test("a name given after configureRoot, when the host has read the table, aborts saying so", async () => {
  const h = await FilterHarness.load(fixture("named_reasons"), { rootConfig: { 256: "duplicate discard" } });
  const err = (() => {
    try {
      h.createContext({ lateName: 258 });
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  assert.instance(err, FilterFailure);
  assert.match((err as Error).message, "nameDropReason(258, 'late_name') after configureRoot: the host reads the names once, right after it; name every code in configureRoot");
});

test.run();
