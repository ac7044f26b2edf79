// validate holds a new source's probation packets (RFC 3550 A.1) and sends them on, in order and
// ahead of the packet that validated the source, instead of dropping them: a forwarder must not
// lose a stream's first packets (H.264 SPS/PPS with ffmpeg). Held packets of a source that never
// validates expire, counted; the store is bounded per source and per instance; hot swap carries
// what fits. A valid source's large jump is held the same way until the next packet tells a
// restart (sent on) from a stray (dropped). Through the harness, against the checked build.
import * as assert from "uvu/assert";
import { FilterHarness, StateOrigin, buildRtp, type BatchResult, type HarnessOptions, type OutputPacket } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import { filterWasm } from "../../../test/lib/paths.js";

const test = suite("validate: holding probation packets");
const SSRC = 0x11223344;

const load = (options: HarnessOptions = {}): Promise<FilterHarness> =>
  FilterHarness.load(filterWasm("validate", true), { name: "validate", ...options });

const rtp = (seq: number, ssrc = SSRC, payloadSize = 40): Uint8Array => buildRtp({ seq, ssrc, payloadSize });
const seqOf = (b: Uint8Array): number => (b[2]! << 8) | b[3]!;
const ssrcOf = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset).getUint32(8);
/** Outputs as "ssrc:seq" (hex SSRC), to compare orders. */
const labels = (outs: readonly OutputPacket[]): string[] => outs.map((o) => `${ssrcOf(o.bytes).toString(16)}:${seqOf(o.bytes)}`);
const verdicts = (r: BatchResult): string[] => r.packets.map((p) => (p.verdict === "drop" ? p.reasonName : p.verdict));

function batch(h: FilterHarness, ctx: number, seqs: readonly number[], ssrc = SSRC): BatchResult {
  return h.runBatch(seqs.map((seq) => ({ ctx, bytes: rtp(seq, ssrc) })));
}

const metric = (h: FilterHarness, name: string, ctx: number): number => (h.metric(name, ctx) as number | undefined) ?? 0;

test("the first packet of a new source goes out, byte for byte, ahead of the one that validated it", async () => {
  const h = await load();
  const ctx = h.createContext({});
  const first = rtp(500);
  const held = h.runBatch([{ ctx, bytes: first }]);
  assert.equal(verdicts(held), ["hold"], "probation: held, not dropped");
  assert.is(held.outputs.length, 0);
  assert.is(metric(h, "held", ctx), 1);

  const r = batch(h, ctx, [501, 502]);
  assert.equal(verdicts(r), ["hold", "hold"], "both leave through the output area, behind the held one");
  assert.equal(r.outputs.map((o) => seqOf(o.bytes)), [500, 501, 502]);
  assert.equal(r.outputs[0]!.bytes, first, "the held packet is sent unchanged");
  assert.ok(r.outputs.every((o) => o.ctx === ctx && o.flags === 0 && o.dest === 0 && o.leg === 0), "forward, downstream, on the media leg");
  assert.equal(verdicts(batch(h, ctx, [503, 504])), ["pass", "pass"], "the next batch passes in place again");
  assert.is(metric(h, "packets_held", ctx), 1);
  assert.is(metric(h, "packets_released", ctx), 1);
  assert.is(metric(h, "packets_passed", ctx), 5);
  assert.is(metric(h, "drops_probation", ctx), 0);
  assert.is(metric(h, "held", ctx), 0);
});

test("order holds across batches, with a longer probation, and when probation restarts on a gap", async () => {
  const h = await load();
  const three = h.createContext({ probation: 3 });
  assert.equal(verdicts(batch(h, three, [10])), ["hold"]);
  assert.equal(verdicts(batch(h, three, [11])), ["hold"]);
  const r = batch(h, three, [12, 13]);
  assert.equal(r.outputs.map((o) => seqOf(o.bytes)), [10, 11, 12, 13]);

  // 21 is lost: probation starts again at 22 and completes at 23; 20 is still sent (a gap, not a loss)
  const gap = h.createContext({});
  batch(h, gap, [20]);
  assert.equal(verdicts(batch(h, gap, [22])), ["hold"]);
  assert.equal(batch(h, gap, [23]).outputs.map((o) => seqOf(o.bytes)), [20, 22, 23]);
  assert.is(metric(h, "drops_probation", gap), 0);
});

test("several sources and contexts in one batch: each context's packets leave in arrival order", async () => {
  const h = await load();
  const a = h.createContext({});
  const b = h.createContext({});
  const r = h.runBatch([
    { ctx: a, bytes: rtp(1, 0xa1) },
    { ctx: b, bytes: rtp(7, 0xb1) },
    { ctx: a, bytes: rtp(100, 0xa2) },
    { ctx: a, bytes: rtp(2, 0xa1) }, // a1 validates: a1:1 and a1:2 go out
    { ctx: a, bytes: rtp(101, 0xa2) }, // a2 validates behind them
    { ctx: b, bytes: rtp(8, 0xb1) },
    { ctx: a, bytes: rtp(3, 0xa1) },
  ]);
  assert.equal(verdicts(r), ["hold", "hold", "hold", "hold", "hold", "hold", "hold"]);
  const ofCtx = (ctx: number): string[] => labels(r.outputs.filter((o) => o.ctx === ctx));
  assert.equal(ofCtx(a), ["a1:1", "a1:2", "a2:100", "a2:101", "a1:3"]);
  assert.equal(ofCtx(b), ["b1:7", "b1:8"]);
});

test("RTCP, upstream and generated packets are not held and pass in place while media goes out", async () => {
  const h = await load();
  const ctx = h.createContext({});
  batch(h, ctx, [1]);
  const rr = new Uint8Array([0x80, 201, 0, 1, 0, 0, 0, 9]);
  const r = h.runBatch([
    { ctx, bytes: rtp(2) },
    { ctx, bytes: rr, flags: 1 /* Rtcp */ },
    { ctx, bytes: rtp(99, 0x77), flags: 8 /* Generated */ },
  ]);
  assert.equal(verdicts(r), ["hold", "pass", "pass"]);
  assert.equal(r.outputs.map((o) => seqOf(o.bytes)), [1, 2]);
});

test("a source that never validates loses its held packets after holdTimeoutMs, counted as probation", async () => {
  const h = await load();
  const ctx = h.createContext({ holdTimeoutMs: 200 });
  // every packet restarts probation: 0, 5, 10 never make two in a row
  assert.equal(verdicts(batch(h, ctx, [0, 5, 10])), ["hold", "hold", "hold"]);
  assert.is(metric(h, "held", ctx), 3);
  assert.equal(h.advanceTime(199_000), [], "not yet");
  assert.is(metric(h, "drops_probation", ctx), 0);
  h.advanceTime(1_000);
  assert.is(metric(h, "drops_probation", ctx), 3);
  assert.is(metric(h, "held", ctx), 0);
  assert.is(metric(h, "packets_released", ctx), 0);
  assert.equal(h.timers(), [], "no timer left once nothing is held");
  // when the source validates later, nothing of before is sent
  const late = batch(h, ctx, [11]);
  assert.equal(verdicts(late), ["pass"]);
  assert.is(late.outputs.length, 0);
});

test("expiry is per packet: the younger held packets of a source wait their own timeout", async () => {
  const h = await load();
  const ctx = h.createContext({ holdTimeoutMs: 100, probation: 10 });
  batch(h, ctx, [1]);
  h.advanceTime(60_000);
  batch(h, ctx, [2]);
  h.advanceTime(40_000); // packet 1 is 100 ms old
  assert.is(metric(h, "drops_probation", ctx), 1);
  assert.is(metric(h, "held", ctx), 1);
  h.advanceTime(60_000);
  assert.is(metric(h, "drops_probation", ctx), 2);
});

test("a sender that restarts its numbering: the jump is held and goes out ahead of the packet that confirms the restart", async () => {
  const h = await load();
  const ctx = h.createContext({});
  batch(h, ctx, [100, 101, 102]);
  const restarted = rtp(40000, SSRC, 300);
  assert.equal(verdicts(h.runBatch([{ ctx, bytes: restarted }])), ["hold"], "a jump of maxDropout or more: held, not dropped");
  assert.is(metric(h, "held", ctx), 1);
  const r = batch(h, ctx, [40001, 40002]);
  assert.equal(r.outputs.map((o) => seqOf(o.bytes)), [40000, 40001, 40002], "the restart's first packet first");
  assert.equal(r.outputs[0]!.bytes, restarted, "unchanged");
  assert.equal(verdicts(batch(h, ctx, [40003])), ["pass"], "then in place again");
  assert.is(metric(h, "drops_bad_sequence", ctx), 0);
  assert.is(metric(h, "held", ctx), 0);
  assert.equal(verdicts(batch(h, ctx, [103])), ["hold"], "after the resync the old numbers are the jump");
});

test("a jump the old numbering goes on after is a stray: dropped, counted as bad sequence; a newer jump replaces an older one", async () => {
  const h = await load();
  const ctx = h.createContext({});
  batch(h, ctx, [100, 101]);
  batch(h, ctx, [30000]);
  const r = batch(h, ctx, [102, 103]);
  assert.equal(verdicts(r), ["pass", "pass"]);
  assert.is(r.outputs.length, 0, "the stray is not sent");
  assert.is(metric(h, "drops_bad_sequence", ctx), 1);
  assert.is(metric(h, "held", ctx), 0);
  // two jumps: the second replaces the first (RFC 3550 A.1 keeps one bad_seq), and its follower confirms it
  assert.equal(verdicts(batch(h, ctx, [50000, 60000])), ["hold", "hold"]);
  assert.is(metric(h, "drops_bad_sequence", ctx), 2);
  assert.equal(batch(h, ctx, [60001]).outputs.map((o) => seqOf(o.bytes)), [60000, 60001]);
  // one no packet follows waits holdTimeoutMs (default 1000 ms), then is dropped, counted
  batch(h, ctx, [20000]);
  h.advanceTime(999_000);
  assert.is(metric(h, "held", ctx), 1);
  h.advanceTime(1_000);
  assert.is(metric(h, "held", ctx), 0);
  assert.is(metric(h, "drops_bad_sequence", ctx), 3);
  assert.is(metric(h, "drops_probation", ctx), 0);
  assert.equal(h.timers(), []);
});

test("a late packet of the old numbering between a restart's first packet and the next keeps the jump held", async () => {
  const h = await load();
  const ctx = h.createContext({});
  batch(h, ctx, [100, 101, 102]);
  const r = batch(h, ctx, [40000, 101, 40001]);
  assert.equal(verdicts(r), ["hold", "pass", "hold"], "101 again: a duplicate, valid as in the RFC, passes; 40001 confirms the restart");
  assert.equal(r.outputs.map((o) => seqOf(o.bytes)), [40000, 40001], "the restart's first packet was still held, and goes first");
  assert.is(metric(h, "drops_bad_sequence", ctx), 0, "the jump was not taken for a stray");
});

test("holding a jump does not let a source past its rate: the jump is charged as if it passed", async () => {
  const h = await load();
  const ctx = h.createContext({ probation: 0, rate: { packetsPerSecond: 1, burstPackets: 2 } });
  assert.equal(verdicts(batch(h, ctx, [10, 11])), ["pass", "pass"]);
  assert.equal(verdicts(batch(h, ctx, [30000])), ["rate_limit_packets"], "the bucket is empty: the jump is dropped for the rate, not held");
  assert.is(metric(h, "held", ctx), 0);
  h.advanceTime(1_000_000); // one token
  assert.equal(verdicts(batch(h, ctx, [40000, 40001])), ["hold", "rate_limit_packets"], "the held jump took the token");
  assert.is(metric(h, "held", ctx), 1);
});

test("probation packets go out when the source validates, even when the packet that validated it is dropped for its rate", async () => {
  const h = await load();
  // a bit bucket one 52-byte packet deep: the 212-byte packet that validates the source cannot pass
  const ctx = h.createContext({ rate: { bitsPerSecond: 8 * 52, burstBits: 8 * 52 } });
  assert.equal(verdicts(batch(h, ctx, [500])), ["hold"]);
  const r = h.runBatch([{ ctx, bytes: rtp(501, SSRC, 200) }]);
  assert.equal(verdicts(r), ["rate_limit_bits"]);
  const released = [...r.outputs, ...h.advanceTime(1000)];
  assert.equal(released.map((o) => seqOf(o.bytes)), [500], "the held packet leaves although 501 did not");
  assert.is(metric(h, "held", ctx), 0);
  h.advanceTime(2_000_000);
  assert.equal(verdicts(batch(h, ctx, [502])), ["pass"]);
  assert.is(metric(h, "drops_bad_sequence", ctx) + metric(h, "drops_probation", ctx), 0, "nothing held was dropped, nor taken for a jump");
});

test("a held jump crosses a hot swap, and the new instance sends it when the restart is confirmed", async () => {
  const oldH = await load();
  const oldCtx = oldH.createContext({});
  batch(oldH, oldCtx, [7, 8, 9]);
  batch(oldH, oldCtx, [9000]);
  const newH = await load({ startUs: oldH.nowUs });
  const ctx = newH.createContext({});
  assert.equal(newH.importState(ctx, oldH.exportState(oldCtx)!), { ok: true, reason: "" });
  assert.is(metric(newH, "held", ctx), 1);
  assert.equal(batch(newH, ctx, [9001]).outputs.map((o) => seqOf(o.bytes)), [9000, 9001]);
});

test("per-source bound: past holdPackets, probation packets are dropped; the oldest stay held", async () => {
  const h = await load();
  const ctx = h.createContext({ probation: 10, holdPackets: 4 });
  const r = batch(h, ctx, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(verdicts(r), ["hold", "hold", "hold", "hold", "probation", "probation", "probation", "probation", "probation"]);
  assert.equal(batch(h, ctx, [9]).outputs.map((o) => seqOf(o.bytes)), [0, 1, 2, 3, 9], "the first packets, then the validating one");
  assert.is(metric(h, "drops_probation", ctx), 5);
  const off = h.createContext({ holdPackets: 0 });
  assert.equal(verdicts(batch(h, off, [0, 1])), ["probation", "pass"], "holdPackets 0: RFC 3550's drop");
});

test("per-instance bound: when the store is full a probation packet is dropped, counted; destroy frees the store", async () => {
  const h = await load({ rootConfig: { holdStorePackets: 2 } });
  const a = h.createContext({});
  const r = h.runBatch([1, 2, 3].map((ssrc) => ({ ctx: a, bytes: rtp(0, ssrc) })));
  assert.equal(verdicts(r), ["hold", "hold", "probation"]);
  assert.is(metric(h, "drops_probation", a), 1);
  assert.equal(verdicts(batch(h, a, [1], 3)), ["pass"], "the unheld source validates without anything to send first");
  h.destroyContext(a);
  const b = h.createContext({});
  const again = h.runBatch([4, 5].map((ssrc) => ({ ctx: b, bytes: rtp(0, ssrc) })));
  assert.equal(verdicts(again), ["hold", "hold"], "the destroyed context's slots are free again");
  const none = await load({ rootConfig: { holdStorePackets: 0 } });
  const c = none.createContext({});
  assert.equal(verdicts(batch(none, c, [0, 1])), ["probation", "pass"], "no store: RFC 3550's drop");
});

test("a flood of new SSRCs stays within the store and never grows memory; every packet is accounted for", async () => {
  const store = 256;
  const h = await load({ rootConfig: { holdStorePackets: store } });
  // sources idle for 1 ms are recycled, so the flood keeps creating new ones (and frees their held packets)
  const contexts = Array.from({ length: 8 }, () => h.createContext({ maxSources: 64, sourceTimeoutMs: 1, holdTimeoutMs: 60_000 }));
  const pages = (): number => h.instance.memory.buffer.byteLength;
  const before = pages();
  let ssrc = 1;
  let sent = 0;
  let verdictProbation = 0;
  let verdictOther = 0;
  let holds = 0;
  for (let round = 0; round < 400; round++) {
    const r = h.runBatch(Array.from({ length: 64 }, (_, k) => ({ ctx: contexts[k % 8]!, bytes: rtp(round, ssrc++, 1000) })));
    sent += 64;
    for (const p of r.packets) {
      if (p.verdict === "hold") holds++;
      else if (p.reasonName === "probation") verdictProbation++;
      else verdictOther++;
    }
    assert.is(r.outputs.length, 0, "no source ever sends twice: nothing validates");
    const held = contexts.reduce((n, c) => n + metric(h, "held", c), 0);
    assert.ok(held <= store, `round ${round}: ${held} held, store of ${store}`);
    h.advanceTime(2_000);
  }
  assert.is(pages(), before, "memory did not grow");
  assert.ok(holds >= store && verdictProbation > 0, `the store filled (${holds} held, ${verdictProbation} dropped)`);
  assert.is(holds + verdictProbation + verdictOther, sent);
  const sum = (name: string): number => contexts.reduce((n, c) => n + metric(h, name, c), 0);
  assert.is(sum("packets_held"), holds);
  // held packets either are still held or were dropped (counted as probation) when their source was recycled
  assert.is(sum("drops_probation"), verdictProbation + holds - sum("held"));
  assert.is(sum("drops_too_many_sources"), verdictOther);
});

test("a fleet starting at once: the default store holds 1,024 new sources' first packets; past a full store they are dropped as probation, counted in hold_store_full and said once in 10 s", async () => {
  const h = await load();
  const cameras = Array.from({ length: 1024 }, () => h.createContext({ holdTimeoutMs: 60_000 }));
  // batches of 64, as the host gives them
  const inBatches = (seq: number): BatchResult[] => Array.from({ length: 16 }, (_, b) => h.runBatch(cameras.slice(b * 64, b * 64 + 64).map((ctx, k) => ({ ctx, bytes: rtp(seq, b * 64 + k + 1) }))));
  const first = inBatches(0).flatMap((r) => r.packets);
  assert.ok(first.every((p) => p.verdict === "hold"), "the default store takes 1,024 (it took 256: camera 257 on lost its first packet)");
  const late = h.createContext({});
  const past = h.runBatch([1, 2, 3].map((k) => ({ ctx: late, bytes: rtp(0, 5000 + k) })));
  assert.equal(verdicts(past), ["probation", "probation", "probation"]);
  assert.is(metric(h, "hold_store_full", late), 3);
  assert.is(metric(h, "drops_probation", late), 3);
  const said = (): number => h.logs.filter((l) => /hold store full \(holdStorePackets 1024, shared by every segment of this worker\)/.test(l.message)).length;
  assert.is(said(), 1, "said once, not per packet");
  h.advanceTime(11_000_000);
  h.runBatch([{ ctx: late, bytes: rtp(0, 6000) }]);
  assert.is(said(), 2, "said again 10 s on, the store still full");
  // the sources validate: their held packets go out, and the store has room again
  const second = inBatches(1);
  const sent = second.reduce((n, r) => n + r.outputs.length + r.packets.filter((p) => p.verdict === "pass").length, 0) + h.advanceTime(10_000).length;
  assert.is(sent, 2048, "every camera's two packets went out");
  assert.equal(verdicts(h.runBatch([{ ctx: late, bytes: rtp(0, 7000) }])), ["hold"]);
  const none = await load({ rootConfig: { holdStorePackets: 0 } });
  const c = none.createContext({});
  assert.equal(verdicts(batch(none, c, [0])), ["probation"]);
  assert.is(metric(none, "hold_store_full", c), 0, "no store by config is not a full one");
  assert.is(none.logs.length, 0);
  assert.ok(await load({ rootConfig: { holdStorePackets: 4096 } }), "the largest store fits the default memory cap");
});

test("a full output area: what does not fit goes out from a timer, in order, before later packets", async () => {
  const h = await load();
  const ctx = h.createContext({ probation: 9, holdPackets: 8 });
  const sources = [1, 2, 3, 4, 5, 6, 7, 8];
  // 8 sources x 8 probation packets = 64 held
  const held = h.runBatch(sources.flatMap((s) => [0, 1, 2, 3, 4, 5, 6, 7].map((seq) => ({ ctx, bytes: rtp(seq, s) }))));
  assert.ok(held.packets.every((p) => p.verdict === "hold"));
  // each source validates: 8 x (8 held + 1) = 72 packets for 64 output slots
  const r = h.runBatch(sources.map((s) => ({ ctx, bytes: rtp(8, s) })));
  assert.is(r.outputs.length, 64);
  assert.is(metric(h, "held", ctx), 8);
  const later = batch(h, ctx, [9], 1);
  assert.equal(verdicts(later), ["hold"], "queued behind what waits");
  const rest = h.advanceTime(0);
  const all = labels([...r.outputs, ...later.outputs, ...rest]);
  const expected = [...sources.flatMap((s) => [0, 1, 2, 3, 4, 5, 6, 7, 8].map((q) => `${s.toString(16)}:${q}`)), "1:9"];
  assert.equal(all, expected);
  assert.is(metric(h, "held", ctx), 0);
  assert.is(metric(h, "packets_released", ctx), 64 + 1, "64 held on probation, and 1:9 queued behind");
});

test("hot swap carries held packets: the new instance sends them once the source validates", async () => {
  const oldH = await load();
  const oldCtx = oldH.createContext({});
  const first = rtp(700, SSRC, 300);
  oldH.runBatch([{ ctx: oldCtx, bytes: first }]);
  const blob = oldH.exportState(oldCtx)!;
  assert.is(metric(oldH, "held", oldCtx), 1, "export does not take the packets from the old instance");

  const newH = await load({ startUs: oldH.nowUs });
  const ctx = newH.createContext({});
  assert.equal(newH.importState(ctx, blob), { ok: true, reason: "" });
  assert.is(metric(newH, "held", ctx), 1);
  const r = batch(newH, ctx, [701]);
  assert.equal(r.outputs.map((o) => seqOf(o.bytes)), [700, 701]);
  assert.equal(r.outputs[0]!.bytes, first);

  // the same blob as a checkpoint restored after a failure: the failed instance ran on and sent 700
  const restoredH = await load({ startUs: oldH.nowUs });
  const restored = restoredH.createContext({});
  assert.equal(restoredH.importState(restored, blob, StateOrigin.Checkpoint), { ok: true, reason: "" });
  assert.is(metric(restoredH, "held", restored), 0, "nothing held again");
  const after = batch(restoredH, restored, [701, 702]);
  assert.equal(verdicts(after), ["pass", "pass"], "the source goes on (its record came across)");
  assert.equal(after.outputs.map((o) => seqOf(o.bytes)), [], "700 is not sent twice");
  assert.is(metric(restoredH, "drops_probation", restored), 0);

  // and expiry goes on: held in the old instance 600 ms before the swap, 1000 ms timeout
  const again = await load();
  const c1 = again.createContext({});
  batch(again, c1, [5]);
  again.advanceTime(600_000);
  const swapped = await load({ startUs: again.nowUs });
  const c2 = swapped.createContext({});
  swapped.importState(c2, again.exportState(c1)!);
  swapped.advanceTime(399_000);
  assert.is(metric(swapped, "held", c2), 1);
  swapped.advanceTime(1_000);
  assert.is(metric(swapped, "held", c2), 0);
  assert.is(metric(swapped, "drops_probation", c2), 1);
});

test("hot swap carries packets still waiting for the output area, in order", async () => {
  const oldH = await load();
  const oldCtx = oldH.createContext({ probation: 9, holdPackets: 8 });
  const sources = [1, 2, 3, 4, 5, 6, 7, 8];
  oldH.runBatch(sources.flatMap((s) => [0, 1, 2, 3, 4, 5, 6, 7].map((seq) => ({ ctx: oldCtx, bytes: rtp(seq, s) }))));
  const sent = oldH.runBatch(sources.map((s) => ({ ctx: oldCtx, bytes: rtp(8, s) }))).outputs;
  assert.is(sent.length, 64);
  const blob = oldH.exportState(oldCtx)!; // 8 still wait; the swap comes before the drain timer

  const newH = await load({ startUs: oldH.nowUs });
  const ctx = newH.createContext({ probation: 9, holdPackets: 8 });
  assert.is(newH.importState(ctx, blob).ok, true);
  const rest = newH.advanceTime(0);
  assert.equal(labels([...sent, ...rest]), sources.flatMap((s) => [0, 1, 2, 3, 4, 5, 6, 7, 8].map((q) => `${s.toString(16)}:${q}`)));
  assert.equal(verdicts(batch(newH, ctx, [9], 8)), ["pass"], "sequence state came along");
});

test("hot swap: held packets that do not fit the 64 KiB blob or the new store are dropped, counted", async () => {
  const oldH = await load({ rootConfig: { holdStorePackets: 512 } });
  const oldCtx = oldH.createContext({ maxSources: 16, probation: 20, holdPackets: 8 });
  // 16 sources x 8 packets of 1,000 bytes: 128 KB held, twice what a state blob holds
  for (let s = 1; s <= 16; s++) {
    const r = oldH.runBatch([0, 1, 2, 3, 4, 5, 6, 7].map((seq) => ({ ctx: oldCtx, bytes: rtp(seq, s, 988) })));
    assert.ok(r.packets.every((p) => p.verdict === "hold"));
  }
  const blob = oldH.exportState(oldCtx)!;
  assert.ok(blob.length <= 65536);
  const newH = await load({ rootConfig: { holdStorePackets: 40 } });
  const ctx = newH.createContext({ maxSources: 16, probation: 20, holdPackets: 8 });
  assert.is(newH.importState(ctx, blob).ok, true);
  const carried = metric(newH, "held", ctx);
  const lost = metric(newH, "drops_probation", ctx);
  assert.is(carried, 40, "the new store is full");
  assert.is(carried + lost, 128, "every held packet is either carried or counted");
  // the carried ones are the oldest of each source: source 1's first packets go out when it validates
  const r = newH.runBatch(Array.from({ length: 12 }, (_, k) => ({ ctx, bytes: rtp(8 + k, 1, 988) })));
  assert.equal(r.outputs.slice(0, 8).map((o) => seqOf(o.bytes)), [0, 1, 2, 3, 4, 5, 6, 7]);
});

test("hot swap from the previous blob version (no held packets) still carries the source table", async () => {
  const oldH = await load();
  const oldCtx = oldH.createContext({});
  batch(oldH, oldCtx, [100, 101, 102]);
  const v2 = oldH.exportState(oldCtx)!;
  const v1 = v2.slice(0, v2.length - 8); // no held packets: drop the empty packet section
  v1[4] = 1; // version 1
  const newH = await load();
  const ctx = newH.createContext({});
  assert.is(newH.importState(ctx, v1).ok, true);
  assert.equal(verdicts(batch(newH, ctx, [103])), ["pass"], "no new probation");
  const bad = v2.slice();
  bad[bad.length - 4] = 1; // claims one packet, has none
  assert.is(newH.importState(newH.createContext({}), bad).ok, false, "a truncated packet section is refused");
});

test.run();
