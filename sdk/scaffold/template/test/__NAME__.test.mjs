// Tests for the __NAME__ filter. FilterHarness runs the filter in the proxy's own filter host,
// without sockets: give it packets, read back verdicts and metrics. They test
// build/__NAME__.checked.wasm, the build whose every unchecked() access is bounds-checked again,
// so that an out-of-range index traps here instead of corrupting memory in the proxy.
// Run with `npm test` (it builds the filter first).
import { fileURLToPath } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FilterHarness, FilterConfigError, DropReason, PacketFlag } from "msm/dist/sdk/harness/index.js";

const WASM = fileURLToPath(new URL("../build/__NAME__.checked.wasm", import.meta.url));

/** A minimal RTP packet (RFC 3550 5.1): version 2, payload type `pt`, `size` bytes in all. */
function rtp(pt, seq, size = 100) {
  const b = new Uint8Array(size);
  b[0] = 0x80;
  b[1] = pt;
  b[2] = seq >> 8;
  b[3] = seq & 0xff;
  b[11] = 1; // SSRC 1
  return b;
}

test("passes the listed payload types, drops the others and counts both", async () => {
  const h = await FilterHarness.load(WASM);
  const ctx = h.createContext({ payloadTypes: [96, 111] });
  assert.is(h.run({ ctx, bytes: rtp(96, 1) }).verdict, "pass");
  assert.is(h.run({ ctx, bytes: rtp(111, 2) }).verdict, "pass");
  const dropped = h.run({ ctx, bytes: rtp(97, 3) });
  assert.is(dropped.verdict, "drop");
  assert.is(dropped.reason, DropReason.PayloadTypeNotAllowed);
  assert.is(dropped.reasonName, "payload_type_not_allowed");
  assert.is(h.metric("passed", ctx), 2);
  assert.is(h.metric("dropped", ctx), 1);
});

test("drops malformed RTP with the reason the RFC 3550 checks give", async () => {
  const h = await FilterHarness.load(WASM);
  const ctx = h.createContext({ payloadTypes: [96] });
  const v1 = rtp(96, 1);
  v1[0] = 0x40; // version 1
  assert.is(h.run({ ctx, bytes: v1 }).reasonName, "bad_version");
  assert.is(h.run({ ctx, bytes: rtp(96, 2, 8) }).reasonName, "too_short");
  assert.is(h.metric("dropped", ctx), 2);
});

test("RTCP and upstream feedback pass untouched", async () => {
  const h = await FilterHarness.load(WASM);
  const ctx = h.createContext({ payloadTypes: [96] });
  const rr = new Uint8Array([0x80, 201, 0, 1, 0, 0, 0, 1]); // an empty receiver report
  assert.is(h.run({ ctx, bytes: rr, flags: PacketFlag.Rtcp }).verdict, "pass");
  assert.is(h.run({ ctx, bytes: rtp(97, 1), flags: PacketFlag.Upstream }).verdict, "pass");
  assert.is(h.metric("dropped", ctx), 0);
});

test("each segment has its own list", async () => {
  const h = await FilterHarness.load(WASM);
  const audio = h.createContext({ payloadTypes: [111] });
  const video = h.createContext({ payloadTypes: [96] });
  assert.is(h.run({ ctx: audio, bytes: rtp(96, 1) }).verdict, "drop");
  assert.is(h.run({ ctx: video, bytes: rtp(96, 1) }).verdict, "pass");
});

test("memory stays flat while segments come and go", async () => {
  const h = await FilterHarness.load(WASM);
  let seq = 0;
  await h.expectNoMemoryGrowth(() => {
    const ctx = h.createContext({ payloadTypes: [96] });
    h.run({ ctx, bytes: rtp(96, seq++ & 0xffff) });
    h.destroyContext(ctx);
  }, { rounds: 2000 });
});

test("a bad config is refused with a message naming the key", async () => {
  const h = await FilterHarness.load(WASM);
  const cases = [
    [{}, /'payloadTypes' is required/],
    [{ payloadTypes: [] }, /at least one/],
    [{ payloadTypes: [96, 200] }, /'payloadTypes' must be an array of integers between 0 and 127/],
    [{ payloadTypes: "96" }, /'payloadTypes' must be an array/],
    [{ payloadTypes: [96], payloadType: 97 }, /unknown config key 'payloadType'/],
  ];
  for (const [config, message] of cases) {
    assert.throws(() => h.createContext(config), (err) => err instanceof FilterConfigError && message.test(err.message),
      `config ${JSON.stringify(config)} should be refused with ${message}`);
  }
});

test.run();
