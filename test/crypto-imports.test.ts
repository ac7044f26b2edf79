// The crypto calls of ABI 1.4 (docs/abi.md "Crypto") as a module sees them: the hostile fixture
// misuses every one (test/fixtures/filters/assembly/hostile.ts, command 0xCE) and reads back the
// statuses, on a host with native crypto and on one without. Nothing traps, nothing is touched,
// the key table holds its limit and is empty again after. The native side alone:
// test/host-crypto.test.ts.
import * as assert from "uvu/assert";
import { FilterHarness, HostFeature, MAX_CRYPTO_KEYS, Status, buildRtp, hostCryptoUnavailable } from "../sdk/harness/index.js";
import { fixture } from "./lib/paths.js";
import { peer, peerTest } from "./lib/peers.js";
import { suite } from "./lib/suite.js";

const test = suite("crypto imports (ABI 1.4)");

/** Runs the fixture's crypto abuse once; the statuses it wrote, in its order. */
async function abuse(hostCrypto: boolean): Promise<{ results: number[]; harness: FilterHarness; ctx: number; verdict: string }> {
  const harness = await FilterHarness.load(fixture("hostile"), { hostCrypto });
  const ctx = harness.createContext({});
  const bytes = buildRtp({ seq: 1, ssrc: 5, payloadSize: 100 });
  bytes[12] = 0xce;
  const r = harness.run({ ctx, bytes });
  const out = Buffer.from(r.bytes);
  const results = Array.from({ length: 14 }, (_, k) => out.readInt32BE(16 + 4 * k));
  return { results, harness, ctx, verdict: r.verdict };
}

const NAMES = [
  "key made", "IV outside memory", "data outside memory", "data at -1", "length over MAX_CRYPTO_BYTES", "HMAC on an AES key",
  "unknown handle", "unknown algorithm", "AES key of 17 bytes", "drop", "use after drop", "keys made until refused", "the refusal", "drops that failed",
];

const native = peer("the host's native crypto (runtime/native msm_crypto)", "npm install (builds runtime/native), with libcrypto.so.3", () => hostCryptoUnavailable() === "");

peerTest(test, native, "with native crypto: every misuse is BadArgument and touches nothing, keys stop at MAX_CRYPTO_KEYS with NoSpace, all drop again", async () => {
  const { results, harness, ctx, verdict } = await abuse(true);
  assert.is(verdict, "pass");
  assert.ok(results[0]! > 0, `a key is a positive handle, got ${results[0]}`);
  const expected = [results[0]!, Status.BadArgument, Status.BadArgument, Status.BadArgument, Status.BadArgument, Status.BadArgument,
    Status.BadArgument, -Status.BadArgument, -Status.BadArgument, Status.Ok, Status.BadArgument, MAX_CRYPTO_KEYS, -Status.NoSpace, 0];
  assert.equal(Object.fromEntries(NAMES.map((n, k) => [n, results[k]])), Object.fromEntries(NAMES.map((n, k) => [n, expected[k]])));
  assert.ok((harness.instance.features & HostFeature.Crypto) !== 0);
  assert.is(harness.instance.cryptoKeyCount, 0, "every key the module made was dropped");
  // the instance still works: a plain packet passes
  assert.is(harness.run({ ctx, bytes: buildRtp({ seq: 2, ssrc: 5, payloadSize: 20 }) }).verdict, "pass");
});

test("without native crypto (hostCrypto: false): features() leaves Crypto out, every key is refused with -Failed, every call is BadArgument", async () => {
  const { results, harness, verdict } = await abuse(false);
  assert.is(verdict, "pass");
  const expected = [-Status.Failed, Status.BadArgument, Status.BadArgument, Status.BadArgument, Status.BadArgument, Status.BadArgument,
    Status.BadArgument, -Status.Failed, -Status.Failed, Status.BadArgument, Status.BadArgument, 0, -Status.Failed, 0];
  assert.equal(Object.fromEntries(NAMES.map((n, k) => [n, results[k]])), Object.fromEntries(NAMES.map((n, k) => [n, expected[k]])));
  assert.is(harness.instance.features & HostFeature.Crypto, 0);
});

test.run();
