// Dual-path send (SMPTE ST 2022-7 send side): every downstream RTP packet leaving on leg 0 also
// leaves on each leg of `copyToLegs`, byte for byte; RTCP, feedback and non-RTP are not copied.
import * as assert from "uvu/assert";
import { Dest, PacketFlag, buildRtcpReceiverReport } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import { arrivals, equalBytes, loadReplicate, metric, packet, run, seqOf, stream } from "./replicate-lib.js";

const test = suite("replicate dual-path send");

test("copyToLegs [1]: a full batch of 64 passes on leg 0 untouched and leaves again on leg 1 (64 copies, in order)", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ copyToLegs: [1] });
  const p = stream(64);
  const r = h.runBatch(p.map((bytes) => ({ ctx, bytes })));
  r.packets.forEach((x, k) => assert.ok(x.verdict === "pass" && x.leg === 0 && equalBytes(x.bytes, p[k]!)));
  assert.is(r.outputs.length, 64);
  r.outputs.forEach((o, k) => {
    assert.is(o.leg, 1);
    assert.is(o.dest, Dest.Forward);
    assert.is(o.flags, 0);
    assert.ok(equalBytes(o.bytes, p[k]!));
  });
  assert.is(metric(h, "copies_sent", ctx), 64);
  assert.is(metric(h, "copies_not_sent", ctx), 0);
});

test("RTCP, upstream packets, non-RTP and packets on other legs are not copied", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ copyToLegs: [1, 2] });
  const rr = buildRtcpReceiverReport();
  const r = h.runBatch([
    { ctx, bytes: rr, flags: PacketFlag.Rtcp },
    { ctx, bytes: rr, flags: PacketFlag.Rtcp | PacketFlag.Upstream },
    { ctx, bytes: packet(1), flags: PacketFlag.Upstream },
    { ctx, bytes: new Uint8Array([1, 2, 3]) },
    { ctx, bytes: packet(2), leg: 3 },
    { ctx, bytes: packet(3) },
  ]);
  assert.ok(r.packets.every((x) => x.verdict === "pass"));
  assert.equal(r.outputs.map((o) => `${seqOf(o.bytes) - 1000}@${o.leg}`), ["3@1", "3@2"]);
});

test("copies beyond the output area (two legs, a full batch of 64) are counted as not sent", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ copyToLegs: [1, 2] });
  const r = h.runBatch(stream(64).map((bytes) => ({ ctx, bytes })));
  assert.is(r.outputs.length, 64);
  assert.is(metric(h, "copies_sent", ctx), 64);
  assert.is(metric(h, "copies_not_sent", ctx), 64);
});

test("merge and copy together: the merged stream, in order, is copied to leg 2", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ merge: { legs: [0, 1], maxHeld: 64 }, copyToLegs: [2] });
  const packets = stream(500);
  const items = arrivals(packets, [{ leg: 0, delayUs: 0, lose: (i) => i % 7 === 3 }, { leg: 1, delayUs: 5000, lose: (i) => i % 7 === 5 }], h.nowUs);
  const m = run(h, ctx, items, 1000, 100_000);
  assert.equal(m.out.map(seqOf), packets.map(seqOf));
  assert.equal(m.copies.filter((o) => o.leg === 2).map((o) => seqOf(o.bytes)), packets.map(seqOf));
});

test("merge + copyToLegs: a release of 99 held packets sends every one with its copies, over as many calls as the output area needs", async () => {
  const h = await loadReplicate();
  const ctx = h.createContext({ merge: { legs: [0, 1], bufferMs: 50, maxHeld: 256 }, copyToLegs: [2, 3] });
  const p = stream(120);
  // packet 1 lost on both paths; 2..100 held behind it
  h.runBatch([{ ctx, bytes: p[0]!, leg: 0 }]);
  for (let i = 2; i <= 100; i += 33) h.runBatch(Array.from({ length: Math.min(33, 101 - i) }, (_, k) => ({ ctx, bytes: p[i + k]!, leg: 0 })));
  const out = h.advanceTime(60_000); // the wait ends: 99 packets and 198 copies, 64 outputs a call
  const on = (leg: number): number[] => out.filter((o) => o.leg === leg).map((o) => seqOf(o.bytes) - 1000);
  const want = Array.from({ length: 99 }, (_, k) => k + 2);
  assert.equal(on(0), want);
  assert.equal(on(2), want);
  assert.equal(on(3), want);
  assert.is(metric(h, "copies_not_sent", ctx), 0);
  assert.is(metric(h, "copies_sent", ctx), 200, "packets 0 and 2..100, on two legs");
});

test.run();
