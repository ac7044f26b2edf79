// The congestion filter piece by piece through the harness: config refusals that name the key,
// the sequence number stamped into every kind of RTP header and removed again byte for byte,
// pacing (a burst queued and released at the rate), drain at a swap, and state across a swap
// (feedback that reaches the new instance before its first media packet included).
import * as assert from "uvu/assert";
import { PacketFlag, StateOrigin, Status, buildRtp } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import { TwccRecorder, decodeTwcc, emptyReceiverReport, encodeRemb, encodeTwcc, rtcpPieces, transportSeqOf, withTransportSeq } from "../../../test/lib/rtcp-cc.js";
import { SSRC, downstreamOf, h264Packet, loadCongestion, rtcpPackets, seqOf, tmmbrBps } from "./cc-lib.js";
import { drive } from "./twcc-drive.js";

const test = suite("congestion filter");

const BAD: readonly [Record<string, unknown>, RegExp][] = [
  [{ mode: "both" }, /config key 'mode' must be 'sender' or 'receiver'/],
  [{ extensionId: 15 }, /config key 'extensionId' must be between 1 and 14/],
  [{ minBps: 2_000_000, maxBps: 1_000_000, startBps: 1_500_000 }, /'minBps' \(2000000\) is above 'maxBps' \(1000000\)/],
  [{ startBps: 50_000 }, /'startBps' \(50000\) must lie between 'minBps' \(150000\) and 'maxBps' \(10000000\)/],
  // startBps not given: its default (1 Mbit/s) is outside what the keys given allow; said as such
  [{ maxBps: 500_000 }, /'startBps' \(1000000, the default: set it too\) must lie between 'minBps' \(150000\) and 'maxBps' \(500000\)/],
  [{ minBps: 2_000_000 }, /'startBps' \(1000000, the default: set it too\) must lie between 'minBps' \(2000000\) and 'maxBps' \(10000000\)/],
  [{ pacing: { factor: 0.5 } }, /config key 'pacing.factor' must be between 1 and 10(?![.\d])/],
  [{ pacing: { maxQueuePackets: 5000 } }, /config key 'pacing.maxQueuePackets' must be between 8 and 4096/],
  [{ pacing: { burst: 3 } }, /unknown config key 'pacing.burst'/],
  [{ priority: { h264PayloadTypes: [96, 200] } }, /'priority.h264PayloadTypes'/],
  [{ priority: { nonReferenceMs: 200, referenceMs: 100 } }, /'priority.nonReferenceMs' is above 'priority.referenceMs'/],
  [{ priority: { renumber: "yes" } }, /config key 'priority.renumber' must be true or false/],
  [{ priority: { renumbering: true } }, /unknown config key 'priority.renumbering'/],
  [{ priority: { rtxPayloadTypes: [97, 128] } }, /config key 'priority.rtxPayloadTypes' must be an array of integers between 0 and 127/],
  [{ startup: { growthPerSecond: 1.1 } }, /config key 'startup.growthPerSecond' must be between 1\.2 and 4(?![.\d])/],
  [{ startup: { growth: 2 } }, /unknown config key 'startup.growth'/],
  [{ circuitBreaker: { intervals: 0 } }, /config key 'circuitBreaker.intervals' must be between 1 and 600/],
  [{ feedbackIntervalMs: 5 }, /config key 'feedbackIntervalMs' must be between 10 and 1000/],
  // a whole number past the safe integers is out of range, not "not an integer"
  [{ signal: { intervalMs: 1e20 } }, /config key 'signal.intervalMs' must be between 100 and 60000/],
  [{ pacing: { maxQueuePackets: -1e19 } }, /config key 'pacing.maxQueuePackets' must be between 8 and 4096/],
  [{ bufferBudgetKiB: 1024 }, /'bufferBudgetKiB' can only be set in the filter's root config/],
  [{ tmmbr: true }, /unknown config key 'tmmbr'/],
];

for (const [config, message] of BAD) {
  test(`refused, naming the key: ${JSON.stringify(config)}`, async () => {
    const { status, reason } = (await loadCongestion()).refusal(config);
    assert.equal(status, Status.BadConfig);
    assert.match(reason, message);
  });
}

test("a context beyond the memory budget is refused with what it needs, and one that goes gives its memory back", async () => {
  const h = await loadCongestion({ rootConfig: { bufferBudgetKiB: 512 } });
  const first = h.createContext({ pacing: { maxQueuePackets: 64 } }); // 64 KiB of history, 128 of queue
  h.createContext({ pacing: { maxQueuePackets: 64 } });
  const { status, reason } = h.refusal({ pacing: { maxQueuePackets: 128 } });
  assert.equal(status, Status.NoSpace);
  assert.match(reason, /no room for another sender context \(a send history of 4096 packets and a pacing queue of 128 packets\): it needs 320 KiB, and 384 of the instance's 512 KiB are taken/);
  h.destroyContext(first);
  h.createContext({ pacing: { maxQueuePackets: 64 } });
});

test("senders come and go without the memory growing", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const memory = (): number => h.instance.memory.buffer.byteLength;
  const live: number[] = [];
  const cycle = (n: number): void => {
    for (let i = 0; i < n; i++) {
      if (live.length >= 20) h.destroyContext(live.shift()!);
      const c = h.createContext({ mode: "sender", pacing: { maxQueuePackets: 16 } });
      // a little traffic, so that history, queue and timers are in use when it goes
      h.runBatch(Array.from({ length: 8 }, (_, k) => ({ ctx: c, bytes: buildRtp({ seq: k, payloadSize: 1100 }) })));
      live.push(c);
    }
  };
  cycle(500);
  const settled = memory();
  cycle(3000);
  assert.is(h.instance.failure, undefined);
  assert.ok(memory() - settled <= 65_536, `memory grew by ${memory() - settled} bytes`);
});

/** One packet through a sender and a receiver context: what left each. */
async function roundTrip(packet: Uint8Array, receiverConfig: object = {}): Promise<{ stamped: Uint8Array; out: Uint8Array }> {
  const h = await loadCongestion();
  const s = h.createContext({ mode: "sender" });
  const r = h.createContext({ mode: "receiver", ...receiverConfig });
  const stamped = h.run({ ctx: s, bytes: packet });
  assert.equal(stamped.verdict, "pass");
  const out = h.run({ ctx: r, bytes: stamped.bytes });
  assert.equal(out.verdict, "pass");
  return { stamped: stamped.bytes, out: out.bytes };
}

test("a packet without a header extension gets a one-byte one with the sequence number, and leaves B as it came to A", async () => {
  const p = buildRtp({ seq: 7, payloadSize: 300 });
  const { stamped, out } = await roundTrip(p);
  assert.equal(stamped.length, p.length + 8);
  assert.equal(stamped[0]! & 0x10, 0x10, "X set");
  assert.equal(Buffer.from(stamped.subarray(12, 20)).toString("hex"), "bede000151000000", "profile, one word, ID 5 length 2, sequence 0, padding");
  assert.equal(Buffer.from(out), Buffer.from(p));
});

test("an existing one-byte extension keeps its elements; ours is appended and removed again", async () => {
  const p = buildRtp({ seq: 9, payloadSize: 200, csrcs: [0xabcdef01], extensions: [[3, new Uint8Array([0xaa, 0xbb, 0xcc])]] });
  const { stamped, out } = await roundTrip(p);
  assert.equal(stamped.length, p.length + 4);
  const ext = 16;
  assert.equal((stamped[ext + 2]! << 8) | stamped[ext + 3]!, 2, "the block grew by a word");
  assert.equal(Buffer.from(stamped.subarray(ext + 4, ext + 8)).toString("hex"), "32aabbcc", "the origin's element first");
  assert.equal(Buffer.from(stamped.subarray(ext + 8, ext + 12)).toString("hex"), "51000000", "then ours");
  // B cannot remove a word from a block it shares: our element becomes padding
  assert.equal(out.length, stamped.length);
  assert.equal(Buffer.from(out.subarray(ext + 4, ext + 8)).toString("hex"), "32aabbcc");
  assert.equal(Buffer.from(out.subarray(ext + 8, ext + 12)).toString("hex"), "00000000");
  assert.equal(Buffer.from(out.subarray(ext + 12)), Buffer.from(p.subarray(ext + 8)), "payload unchanged");
});

test("a two-byte-header extension gets a two-byte element", async () => {
  const p = buildRtp({ seq: 1, payloadSize: 100 });
  const withExt = new Uint8Array(p.length + 8);
  withExt.set(p.subarray(0, 12));
  withExt[0]! |= 0x10;
  withExt.set([0x10, 0x00, 0x00, 0x01, 0x07, 0x01, 0x99, 0x00], 12); // RFC 8285 4.3: ID 7, length 1
  withExt.set(p.subarray(12), 20);
  const { stamped, out } = await roundTrip(withExt);
  assert.equal(Buffer.from(stamped.subarray(12, 24)).toString("hex"), "10000002" + "07019900" + "05020000");
  assert.equal(Buffer.from(out.subarray(20, 24)).toString("hex"), "00000000");
});

test("stripExtension: false leaves the sequence number in", async () => {
  const p = buildRtp({ seq: 3, payloadSize: 100 });
  const { stamped, out } = await roundTrip(p, { stripExtension: false });
  assert.equal(Buffer.from(out), Buffer.from(stamped));
});

test("a burst is paced out at the target rate, in order, each packet stamped in sequence", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const s = h.createContext({ mode: "sender", startBps: 1_000_000, pacing: { factor: 1, burstMs: 10 } });
  const burst = Array.from({ length: 40 }, (_, i) => ({ ctx: s, bytes: buildRtp({ seq: 100 + i, timestamp: 9000, payloadSize: 1188 }) }));
  const first = h.runBatch(burst);
  const passed = first.packets.filter((p) => p.verdict === "pass").length;
  const held = first.packets.filter((p) => p.verdict === "hold").length;
  assert.ok(passed >= 1 && passed <= 2, `the bucket's 10 ms (1250 bytes) lets ${passed} through at once`);
  assert.equal(passed + held, 40);
  const released: { atUs: number; seq: number; tw: number }[] = [];
  for (let t = 0; t < 600; t++) {
    for (const o of h.advanceTime(1000).filter((o) => !(o.flags & PacketFlag.Upstream))) released.push({ atUs: h.nowUs, seq: seqOf(o.bytes), tw: (o.bytes[17]! << 8) | o.bytes[18]! });
  }
  assert.equal(released.length, held);
  assert.equal(released.map((r) => r.seq), Array.from({ length: held }, (_, i) => 100 + passed + i), "in order");
  assert.equal(released.map((r) => r.tw), Array.from({ length: held }, (_, i) => passed + i), "transport-wide numbers in sending order");
  const spanS = (released.at(-1)!.atUs - released[0]!.atUs) / 1e6;
  const bps = ((released.length - 1) * 1208 * 8) / spanS;
  assert.ok(bps > 800_000 && bps < 1_250_000, `released at ${Math.round(bps / 1000)} kbit/s for a 1 Mbit/s target`);
});

test("draining hands over every queued packet, stamped", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const s = h.createContext({ mode: "sender", startBps: 200_000 });
  const r = h.runBatch(Array.from({ length: 30 }, (_, i) => ({ ctx: s, bytes: buildRtp({ seq: i, timestamp: 1, payloadSize: 1000 }) })));
  const held = r.packets.filter((p) => p.verdict === "hold").length;
  assert.ok(held > 20);
  const drained = h.drainContext(s);
  assert.equal(drained.length, held);
  assert.equal(drained.map((o) => seqOf(o.bytes)), Array.from({ length: held }, (_, i) => 30 - held + i));
  h.destroyContext(s);
});

test("state goes to the new instance: the target, the sequence numbers, an open breaker", async () => {
  const old = await loadCongestion({ startUs: 0 });
  const s = old.createContext({ mode: "sender", startBps: 700_000 });
  for (let i = 0; i < 10; i++) old.run({ ctx: s, bytes: buildRtp({ seq: i, payloadSize: 100 }) });
  const blob = old.exportState(s)!;
  assert.ok(blob.length > 0);
  const fresh = await loadCongestion({ startUs: 0 });
  const n = fresh.createContext({ mode: "sender" });
  assert.equal(fresh.importState(n, blob), { ok: true, reason: "" });
  const p = fresh.run({ ctx: n, bytes: buildRtp({ seq: 10, payloadSize: 100 }) });
  assert.equal((p.bytes[17]! << 8) | p.bytes[18]!, 10, "transport-wide numbers go on where the old instance stopped");
  fresh.advanceTime(300_000);
  assert.equal(fresh.metric("target_bps", n), 700_000);
  assert.equal(fresh.metric("startup", n), 1, "the old instance was still in start-up, and so is the new one");
  // a blob of the first version (before start-up existed) comes from a flow past its start
  const v1 = fresh.createContext({ mode: "sender" });
  const blobV1 = new Uint8Array(1 + 8 * 5 + 1 + 8);
  blobV1[0] = 1;
  for (const at of [1, 9, 17]) new DataView(blobV1.buffer).setFloat64(at, 700_000, true);
  assert.equal(fresh.importState(v1, blobV1), { ok: true, reason: "" });
  fresh.run({ ctx: v1, bytes: buildRtp({ seq: 1, payloadSize: 100 }) });
  fresh.advanceTime(300_000);
  assert.equal(fresh.metric("startup", v1), 0);
  // a blob of version 2 (the build before: no SSRCs, no queue) still carries the numbering and start-up
  const v2 = fresh.createContext({ mode: "sender" });
  const blobV2 = new Uint8Array(1 + 8 * 5 + 1 + 8 + 1);
  const view2 = new DataView(blobV2.buffer);
  blobV2[0] = 2;
  for (const at of [1, 9, 17]) view2.setFloat64(at, 700_000, true);
  view2.setBigUint64(33, 1234n, true);
  blobV2[50] = 1;
  assert.equal(fresh.importState(v2, blobV2), { ok: true, reason: "" });
  const q = fresh.run({ ctx: v2, bytes: buildRtp({ seq: 1, payloadSize: 100 }) });
  assert.equal((q.bytes[17]! << 8) | q.bytes[18]!, 1234, "a version-2 blob's numbering goes on");
  const bad = fresh.importState(fresh.createContext({ mode: "sender" }), new Uint8Array([9, 1, 2]));
  assert.equal(bad.ok, false);
  // the version-1 blob (a flow past its start): taken to have seen congestion, the breaker armed
  fresh.advanceTime(300_000);
  assert.equal(fresh.metric("circuit_breaker_armed", v1), 1);
});

test("the breaker is armed only once the hop showed congestion, and a hot swap carries whether it had: start-up off is no congestion", async () => {
  const old = await loadCongestion({ startUs: 0 });
  const s = old.createContext({ mode: "sender", startBps: 700_000, startup: { enabled: false } });
  for (let i = 0; i < 10; i++) old.run({ ctx: s, bytes: buildRtp({ seq: i, payloadSize: 100 }) });
  old.advanceTime(300_000);
  assert.equal([old.metric("startup", s), old.metric("circuit_breaker_armed", s)], [0, 0], "no start-up, and no congestion seen");
  const fresh = await loadCongestion({ startUs: 0 });
  const n = fresh.createContext({ mode: "sender", startBps: 700_000, startup: { enabled: false } });
  assert.equal(fresh.importState(n, old.exportState(s)!), { ok: true, reason: "" });
  fresh.run({ ctx: n, bytes: buildRtp({ seq: 10, payloadSize: 100 }) });
  fresh.advanceTime(300_000);
  assert.equal(fresh.metric("circuit_breaker_armed", n), 0, "the swap did not arm it (a version-3 blob from this flow would have)");
});

test("after a swap, feedback that comes before the new instance's first media packet is used, not refused as about another stream", async () => {
  const old = await loadCongestion({ startUs: 0 });
  const s = old.createContext({ mode: "sender", extensionId: 5 });
  const recorder = new TwccRecorder(0xfeed0001, SSRC);
  const run = drive(old, s, recorder, { packets: 200, intervalUs: 5000, size: 500, delayUs: () => 20_000 });
  assert.is(old.metric("feedback_rejected", s), 0);
  const fresh = await loadCongestion({ startUs: old.nowUs });
  const n = fresh.createContext({ mode: "sender", extensionId: 5 });
  assert.equal(fresh.importState(n, old.exportState(s)!), { ok: true, reason: "" });
  // the feedback B was about to send, about the old instance's last packets, with the next count
  const latest = transportSeqOf(run.stamped.at(-1)!, 5)!;
  const fb = encodeTwcc({
    senderSsrc: 0xfeed0001, mediaSsrc: SSRC, baseSeq: (latest - 9) & 0xffff, referenceTime: 1000, fbCount: recorder.fbCount,
    reports: Array.from({ length: 10 }, () => 20),
  });
  const rr = emptyReceiverReport(0xfeed0001);
  const compound = new Uint8Array(rr.length + fb.length);
  compound.set(rr);
  compound.set(fb, rr.length);
  fresh.run({ ctx: n, bytes: compound, flags: PacketFlag.Rtcp | PacketFlag.Upstream });
  assert.is(fresh.metric("feedback_rejected", n), 0, "the new instance knows the stream the feedback names");
  assert.is(fresh.metric("feedback_packets", n), 1);
});

/** Media (not upstream signals) the harness's context lets go over `ms` of its clock, 1 ms at a time. */
function releasedOver(h: Awaited<ReturnType<typeof loadCongestion>>, ms: number): { seq: number; tw: number }[] {
  const out: { seq: number; tw: number }[] = [];
  for (let t = 0; t < ms; t++) {
    for (const o of h.advanceTime(1000).filter((o) => !(o.flags & PacketFlag.Upstream))) out.push({ seq: seqOf(o.bytes), tw: transportSeqOf(o.bytes, 5)! });
  }
  return out;
}

test("a hot swap hands the pacer's queue to the new instance: paced on, in order, numbered on, however slow the swap; a restore after a failure does not send it again", async () => {
  const old = await loadCongestion({ startUs: 0 });
  const s = old.createContext({ mode: "sender", extensionId: 5, startBps: 200_000 });
  const r = old.runBatch(Array.from({ length: 30 }, (_, i) => ({ ctx: s, bytes: buildRtp({ seq: i, timestamp: 1, payloadSize: 1000 }) })));
  const passed = r.packets.filter((p) => p.verdict === "pass").length;
  assert.ok(30 - passed > 20, "most of the burst waits in the pacer");
  const fresh = await loadCongestion({ startUs: old.nowUs });
  const n = fresh.createContext({ mode: "sender", extensionId: 5, startBps: 200_000 });
  const blob = old.exportState(s)!;
  // a slow swap (before ABI 1.5 the filter took a blob this old for a restore and dropped its queue, uncounted)
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(fresh.importState(n, blob, StateOrigin.Swap), { ok: true, reason: "" });
  const released = releasedOver(fresh, 3000);
  assert.equal(released.map((x) => x.seq), Array.from({ length: 30 - passed }, (_, i) => passed + i), "every queued packet, in order");
  assert.equal(released.map((x) => x.tw), Array.from({ length: 30 - passed }, (_, i) => passed + i), "stamped by the new instance, numbered on");
  assert.is(fresh.metric("swap_lost", n), 0);

  // a checkpoint restored after a failure at once (a short restart backoff: the old rule took a
  // blob this fresh for a swap): the failed instance may have sent the queue
  const checkpoint = old.exportState(s)!; // the old context still holds its queue
  assert.ok(checkpoint.length > 20 * 1000, "a queue in the checkpoint");
  const restored = fresh.createContext({ mode: "sender", extensionId: 5, startBps: 200_000 });
  assert.equal(fresh.importState(restored, checkpoint, StateOrigin.Checkpoint), { ok: true, reason: "" });
  assert.equal(releasedOver(fresh, 1000).length, 0, "nothing of the queue again");
  assert.is(fresh.metric("swap_lost", restored), 0);
});

test("a queue larger than the state blob: what fits goes on, the rest is counted as swap_lost", async () => {
  const old = await loadCongestion({ startUs: 0 });
  const s = old.createContext({ mode: "sender", extensionId: 5, startBps: 150_000, minBps: 150_000, pacing: { maxQueuePackets: 256 } });
  const results = [0, 60].flatMap((from) => old.runBatch(Array.from({ length: 60 }, (_, i) => ({ ctx: s, bytes: buildRtp({ seq: from + i, timestamp: 1, payloadSize: 1100 }) }))).packets);
  const passed = results.filter((p) => p.verdict === "pass").length;
  const queued = results.filter((p) => p.verdict === "hold").length;
  assert.is(passed + queued, 120);
  const fresh = await loadCongestion({ startUs: old.nowUs });
  const n = fresh.createContext({ mode: "sender", extensionId: 5, startBps: 150_000, minBps: 150_000, pacing: { maxQueuePackets: 256 } });
  assert.equal(fresh.importState(n, old.exportState(s)!), { ok: true, reason: "" });
  const lost = fresh.metric("swap_lost", n) as number;
  assert.ok(lost > 0 && lost < queued, `a 64 KiB blob holds some of ${queued} packets of 1112 bytes: ${lost} left out`);
  const released = releasedOver(fresh, 10_000);
  assert.is(released.length + lost, queued, "every queued packet sent or counted");
  assert.equal(released.map((x) => x.seq), Array.from({ length: released.length }, (_, i) => passed + i), "the oldest first");
});

test("TMMBR and REMB go to the origin with the target, behind an empty receiver report", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const s = h.createContext({ mode: "sender", startBps: 640_000 });
  h.run({ ctx: s, bytes: h264Packet(1, 3000, "idr", { first: true, last: true, size: 500 }) });
  const outs = h.advanceTime(300_000).filter((o) => o.flags & PacketFlag.Upstream);
  assert.equal(outs.length, 1);
  const packets = rtcpPackets(outs[0]!.bytes);
  assert.equal(packets.map((p) => [p.type, p.fmt]), [[201, 0], [205, 3], [206, 15]]);
  assert.equal(tmmbrBps(outs[0]!.bytes), 640_000);
  assert.equal(outs[0]!.flags & PacketFlag.Rtcp, PacketFlag.Rtcp);
});

test("the receiver follows a sending proxy that starts its numbering again (a restart without state)", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const r = h.createContext({ mode: "receiver" });
  const stampedBy = async (count: number, state?: Uint8Array): Promise<Uint8Array[]> => {
    const a = await loadCongestion({ startUs: 0 });
    const s = a.createContext({ mode: "sender", startBps: 100_000_000, maxBps: 100_000_000 });
    if (state) a.importState(s, state);
    return Array.from({ length: count }, (_, i) => a.run({ ctx: s, bytes: buildRtp({ seq: i, payloadSize: 100 }) }).bytes);
  };
  // the first sender had reached 20000 (a state blob with nextSeq 20000), the second starts at 0
  const blob = new Uint8Array(1 + 8 * 5 + 1 + 8);
  const v = new DataView(blob.buffer);
  blob[0] = 1;
  v.setFloat64(1, 1e6, true);
  v.setFloat64(9, 1e6, true);
  v.setFloat64(17, 1e6, true);
  v.setFloat64(25, 50, true);
  v.setBigUint64(33, 20000n, true);
  const reports: { base: number; count: number }[] = [];
  const feed = (packets: Uint8Array[]): void => {
    for (const p of packets) h.run({ ctx: r, bytes: p });
    for (const o of h.advanceTime(60_000)) {
      const fb = rtcpPackets(o.bytes).find((q) => q.type === 205 && q.fmt === 15)!;
      reports.push({ base: (fb.bytes[12]! << 8) | fb.bytes[13]!, count: (fb.bytes[14]! << 8) | fb.bytes[15]! });
    }
  };
  feed(await stampedBy(50, blob));
  feed(await stampedBy(50));
  assert.equal(reports, [{ base: 20000, count: 50 }, { base: 0, count: 50 }]);
});

for (const restored of [false, true]) {
  const how = restored ? "restored from a checkpoint 300 packets old" : "restarting without its state (numbering from 0 again)";
  test(`proxy A ${how}, behind what B reported: B starts its feedback afresh from the new numbers, and A's new instance is fed`, async () => {
    const h = await loadCongestion({ startUs: 0 });
    const r = h.createContext({ mode: "receiver" });
    const feedback: { ctx: number; base: number; received: number[] }[] = [];
    let checkpoint: Uint8Array | undefined;
    /** `n` packets, 5 every 10 ms, from sender `s` through the receiver, its feedback back to the sender. */
    const stream = (s: number, n: number): void => {
      for (let k = 0; k < n; k += 5) {
        if (k === 700) checkpoint = h.exportState(s);
        for (let j = 0; j < 5; j++) {
          const out = h.run({ ctx: s, bytes: buildRtp({ seq: k + j, payloadSize: 500 }) });
          assert.is(out.verdict, "pass");
          h.run({ ctx: r, bytes: out.bytes });
        }
        for (const o of h.advanceTime(10_000).filter((o) => o.ctx === r)) {
          const fb = decodeTwcc(rtcpPieces(o.bytes)[1]!.bytes);
          feedback.push({ ctx: s, base: fb.baseSeq, received: fb.reports.filter((x) => x.deltaTicks !== null).map((x) => x.seq) });
          h.run({ ctx: s, bytes: o.bytes, flags: PacketFlag.Rtcp | PacketFlag.Upstream });
        }
      }
    };
    const sender = (): number => h.createContext({ mode: "sender", startBps: 50_000_000, maxBps: 100_000_000 });
    const a1 = sender();
    stream(a1, 1000); // numbers 0..999
    assert.ok((h.metric("feedback_packets", a1) as number) >= 30);
    const sentBefore = h.metric("feedback_sent", r) as number;
    h.destroyContext(a1); // proxy A goes
    h.advanceTime(300_000);
    const a2 = sender();
    if (restored) assert.ok(h.importState(a2, checkpoint!, StateOrigin.Checkpoint).ok);
    const from = restored ? 700 : 0;
    stream(a2, 600); // numbers from..from+599, starting behind the 999 B already reported
    const sent = (h.metric("feedback_sent", r) as number) - sentBefore;
    assert.ok(sent >= 20, `B's feedback goes on for the new stream (${sent} sent)`);
    const second = feedback.filter((f) => f.ctx === a2);
    assert.is(second[0]?.base, from, "from the first number of the new stream");
    assert.equal(second.flatMap((f) => f.received), Array.from({ length: 600 }, (_, i) => from + i), "every packet of the new stream reported received, once");
    assert.ok((h.metric("feedback_packets", a2) as number) >= 20, `A's new instance uses it (${h.metric("feedback_packets", a2)})`);
    assert.is(h.metric("feedback_rejected", a2), 0);
    assert.ok((h.metric("acked_bps", a2) as number) > 0, "the receiver acknowledges a rate");
    assert.is(h.metric("feedback_timeouts", a2), 0);
  });
}

test("delivered_bps says what got through in the last half second: a hop that stops delivering shows 0, while acked_bps keeps the last burst's rate", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const r = h.createContext({ mode: "receiver" });
  const a = h.createContext({ mode: "sender", startBps: 50_000_000, maxBps: 100_000_000, circuitBreaker: { enabled: false } });
  let seq = 0;
  let receivedBytes = 0;
  /** `ms` of media, a 1000-byte packet every 5 ms, through the hop if `delivered`; B's feedback back to A. */
  const media = (ms: number, delivered: boolean): void => {
    for (let t = 0; t < ms; t += 5) {
      const out = h.run({ ctx: a, bytes: buildRtp({ seq: seq++, payloadSize: 1000 }) });
      assert.is(out.verdict, "pass");
      if (delivered) {
        h.run({ ctx: r, bytes: out.bytes });
        receivedBytes += out.bytes.length;
      }
      for (const o of h.advanceTime(5_000).filter((o) => o.ctx === r)) h.run({ ctx: a, bytes: o.bytes, flags: PacketFlag.Rtcp | PacketFlag.Upstream });
    }
  };
  media(1000, true);
  const steady = h.metric("delivered_bps", a) as number;
  const sent = 1000 * 8 / 0.005; // ~1.6 Mbit/s of payload, a little more on the wire
  assert.ok(steady > 0.9 * sent && steady < 1.2 * sent, `a steady stream: delivered ${steady} bit/s, about what was sent`);
  const before = receivedBytes;
  media(1000, false); // the hop delivers nothing for a second (the origin still sends, so the filter ticks)
  assert.is(receivedBytes, before);
  assert.is(h.metric("delivered_bps", a), 0, "nothing got through in the last half second");
  assert.ok((h.metric("acked_bps", a) as number) > 0.9 * sent, "acked_bps stays at the last rate measured (what the controller uses)");
  media(1000, true);
  assert.ok((h.metric("delivered_bps", a) as number) > 0.9 * sent, "delivering again");
  h.advanceTime(2_000_000); // the origin stops: no packet re-arms the ticks
  assert.is(h.metric("delivered_bps", a), 0, "the origin stopped: nothing got through in the last half second");
});

test("a reordered burst of fewer than 8 packets behind what B reported does not restart its numbering", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const r = h.createContext({ mode: "receiver" });
  const bases: [number, number][] = [];
  const arrive = (nums: number[]): void => {
    for (const n of nums) h.run({ ctx: r, bytes: withTransportSeq(buildRtp({ seq: n, payloadSize: 100 }), 5, n) });
    for (const o of h.advanceTime(60_000)) {
      const fb = decodeTwcc(rtcpPieces(o.bytes)[1]!.bytes);
      bases.push([fb.baseSeq, fb.statusCount]);
    }
  };
  const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);
  arrive(range(0, 100));
  arrive([...range(90, 97), ...range(100, 120)]); // 90..96 come after their feedback went: too late
  arrive([80, 81, 82, 40, 41, 42, 43, 44, ...range(120, 130)]); // not in a row: no restart
  assert.equal(bases, [[0, 100], [100, 20], [120, 10]]);
});

test("a sender that hears nothing back while its media goes out counts feedback timeouts, without cutting the rate it never had an answer about", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const s = h.createContext({ mode: "sender", startBps: 2_000_000 });
  for (let k = 0; k < 200; k++) {
    h.run({ ctx: s, bytes: buildRtp({ seq: k, payloadSize: 500 }) });
    h.advanceTime(20_000); // 4 s
  }
  const timeouts = h.metric("feedback_timeouts", s) as number;
  assert.ok(timeouts >= 1 && timeouts <= 2, `counted once a second after 2 s (${timeouts})`);
  assert.is(h.metric("target_bps", s), 2_000_000, "the target stays: nothing was ever heard to cut it from");
  assert.is(h.metric("startup", s), 1);
});

test("an estimate carried by a hot swap is distrusted when silence follows: the new instance halves it, as the old would have", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const s = h.createContext({ mode: "sender" });
  // a flow past its start at 700 kbit/s with a round trip (a version-1 blob: target, estimates, rtt)
  const blob = new Uint8Array(1 + 8 * 5 + 1 + 8);
  blob[0] = 1;
  for (const at of [1, 9, 17]) new DataView(blob.buffer).setFloat64(at, 700_000, true);
  new DataView(blob.buffer).setFloat64(25, 40, true);
  assert.equal(h.importState(s, blob), { ok: true, reason: "" });
  for (let k = 0; k < 200; k++) {
    h.run({ ctx: s, bytes: buildRtp({ seq: k, payloadSize: 500 }) });
    h.advanceTime(20_000); // 4 s without feedback
  }
  assert.ok((h.metric("feedback_timeouts", s) as number) >= 1);
  assert.ok((h.metric("target_bps", s) as number) < 700_000, `the carried target cut: ${h.metric("target_bps", s)}`);
});

test("a keyframe that takes long to leave at a low rate does not cost the frames after it", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const s = h.createContext({ mode: "sender", startBps: 300_000, priority: { h264PayloadTypes: [96] } });
  // a 22 KB IDR: 590 ms at the 330 kbit/s pacing rate, far above referenceMs (120) and maxQueueMs (300)
  let seq = 0;
  const idr = h.runBatch(Array.from({ length: 20 }, (_, k) => ({ ctx: s, bytes: h264Packet(seq++, 0, "idr", { first: k === 0, last: k === 19, size: 1100 }) })));
  assert.ok(idr.packets.every((p) => p.verdict !== "drop"), "the keyframe is admitted whole");
  const verdicts: string[] = [];
  for (let f = 1; f <= 10; f++) {
    h.advanceTime(33_000);
    const r = h.run({ ctx: s, bytes: h264Packet(seq++, f * 3000, f % 2 ? "ref" : "nonref", { first: true, last: true, size: 300 }) });
    verdicts.push(r.verdict === "drop" ? r.reasonName : "kept");
  }
  // reference frames all go; non-reference ones may give way to the backlog the keyframe left
  assert.equal(verdicts.filter((_, k) => k % 2 === 0), Array(5).fill("kept"), `the reference frames behind it go: ${verdicts.join(" ")}`);
  assert.ok(verdicts.every((v) => v === "kept" || v === "non_reference"), "nothing but non-reference frames dropped");
});

test("feedback from a proxy B that started again is refused twice, then followed (its count begins anew)", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const s = h.createContext({ mode: "sender", startBps: 50_000_000, maxBps: 100_000_000 });
  let seq = 0;
  /** Ten rounds of 5 packets through a receiver context, its feedback back to the sender. */
  const rounds = (r: number, n: number): void => {
    for (let k = 0; k < n; k++) {
      const sent = Array.from({ length: 5 }, () => h.run({ ctx: s, bytes: buildRtp({ seq: seq++ & 0xffff, payloadSize: 200 }) }).bytes);
      for (const b of sent) h.run({ ctx: r, bytes: b });
      for (const o of h.advanceTime(60_000).filter((o) => o.ctx === r)) h.run({ ctx: s, bytes: o.bytes, flags: PacketFlag.Rtcp | PacketFlag.Upstream });
    }
  };
  rounds(h.createContext({ mode: "receiver" }), 10);
  assert.is(h.metric("feedback_packets", s), 10);
  rounds(h.createContext({ mode: "receiver" }), 5); // counts 0..4 again
  assert.is(h.metric("feedback_rejected", s), 2, "the first two look repeated");
  assert.is(h.metric("feedback_packets", s), 13, "the third in a row that follows the last is taken as a restart");
});

test("with audio first and video after, TMMBR names the busier video and the keyframe request the stream that lost a reference", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const s = h.createContext({ mode: "sender", startBps: 300_000, priority: { h264PayloadTypes: [96], nonReferenceMs: 10, referenceMs: 20 } });
  const AUDIO = 0xa0d10000;
  let aseq = 0;
  let vseq = 0;
  const pli: number[] = [];
  const tmmbr: number[] = [];
  for (let f = 0; f < 60; f++) {
    h.run({ ctx: s, bytes: buildRtp({ seq: aseq++, timestamp: f * 960, ssrc: AUDIO, payloadType: 111, payloadSize: 80 }) });
    const kind = f === 0 ? "idr" : f % 2 ? "nonref" : "ref";
    h.runBatch(Array.from({ length: 4 }, (_, k) => ({ ctx: s, bytes: h264Packet(vseq++, f * 3000, kind, { first: k === 0, last: k === 3, size: 1100 }) })));
    for (const o of h.advanceTime(33_000).filter((o) => o.flags & PacketFlag.Upstream)) {
      for (const p of rtcpPackets(o.bytes)) {
        const v = new DataView(p.bytes.buffer, p.bytes.byteOffset);
        if (p.type === 206 && p.fmt === 1) pli.push(v.getUint32(8));
        if (p.type === 205 && p.fmt === 3) tmmbr.push(v.getUint32(12));
      }
    }
  }
  assert.ok(pli.length >= 1, "a keyframe was asked for");
  assert.ok(pli.every((x) => x === SSRC), `PLI about the video: ${pli.map((x) => x.toString(16))}`);
  assert.ok(tmmbr.length >= 2 && tmmbr.at(-1) === SSRC, `TMMBR about the video once it is the busier: ${tmmbr.map((x) => x.toString(16))}`);
});

test("SSRC churn (a camera restarting under a new SSRC, ten times): the keyframe request and TMMBR name the stream that runs now, not one long gone", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const s = h.createContext({ mode: "sender", startBps: 300_000, priority: { h264PayloadTypes: [96], nonReferenceMs: 10, referenceMs: 20 } });
  const sources = Array.from({ length: 10 }, (_, i) => 0x7e570000 + i);
  let pli: number[] = [];
  let tmmbr: number[] = [];
  for (const ssrc of sources) {
    pli = [];
    tmmbr = [];
    let seq = 0;
    for (let f = 0; f < 40; f++) {
      const kind = f === 0 ? "idr" : f % 2 ? "nonref" : "ref";
      h.runBatch(Array.from({ length: 4 }, (_, k) => ({ ctx: s, bytes: h264Packet(seq++, f * 3000, kind, { first: k === 0, last: k === 3, size: 1100, ssrc }) })));
      for (const o of h.advanceTime(33_000).filter((o) => o.flags & PacketFlag.Upstream)) {
        for (const p of rtcpPackets(o.bytes)) {
          const v = new DataView(p.bytes.buffer, p.bytes.byteOffset);
          if (p.type === 206 && p.fmt === 1) pli.push(v.getUint32(8));
          if (p.type === 205 && p.fmt === 3) tmmbr.push(v.getUint32(12));
        }
      }
    }
    h.advanceTime(1_000_000); // the camera restarts
  }
  const last = sources.at(-1)!;
  assert.ok(pli.length >= 1, "the tenth stream lost a reference frame: a keyframe was asked for");
  assert.ok(pli.every((x) => x === last), `PLI about the stream that runs: ${pli.map((x) => x.toString(16))}`);
  assert.ok(tmmbr.length >= 1 && tmmbr.at(-1) === last, `TMMBR about it: ${tmmbr.map((x) => x.toString(16))}`);
});

/** An RR from a plain receiver about SSRC with `fraction` lost (in 1/256) and LSR/DLSR. */
function receiverReport(fraction: number, lsr = 0, dlsr = 0): Uint8Array {
  const b = Buffer.alloc(32);
  b.writeUInt32BE(0x81c90007, 0);
  b.writeUInt32BE(0x5ece1fe0, 4);
  b.writeUInt32BE(SSRC, 8);
  b[12] = fraction;
  b.writeUInt32BE(lsr >>> 0, 24);
  b.writeUInt32BE(dlsr >>> 0, 28);
  return b;
}

test("toward a plain receiver, receiver reports alone drive the target: down under heavy loss, up without, never below minBps; the round trip from LSR/DLSR", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const s = h.createContext({ mode: "sender", startBps: 2_000_000 });
  const media = (i: number): Uint8Array => h264Packet(i, i * 3000, "ref", { first: true, last: true, size: 200 });
  // the origin's SR passes downstream: its NTP middle 0x00010002 is what the receiver echoes
  const sr = Buffer.alloc(28);
  sr.writeUInt32BE(0x80c80006, 0);
  sr.writeUInt32BE(SSRC, 4);
  sr.writeUInt32BE(0x00000001, 8);
  sr.writeUInt32BE(0x00020000, 12);
  let i = 0;
  h.run({ ctx: s, bytes: media(i++) });
  h.run({ ctx: s, bytes: sr, flags: PacketFlag.Rtcp });
  const targets: number[] = [];
  for (let second = 0; second < 8; second++) {
    for (let k = 0; k < 20; k++) {
      h.run({ ctx: s, bytes: media(i++) });
      h.advanceTime(50_000);
    }
    // 30% lost for 4 s, then none; 80 ms after the SR plus the receiver's 10 ms hold
    const held = Math.round(0.01 * 65536);
    const rr = h.run({ ctx: s, bytes: receiverReport(second < 4 ? 77 : 0, 0x00010002, held), flags: PacketFlag.Rtcp | PacketFlag.Upstream });
    assert.equal(rr.verdict, "pass", "receiver reports go on to the origin");
    targets.push(h.metric("loss_based_bps", s) as number);
  }
  h.advanceTime(250_000);
  console.log(`  loss-based over 8 s (30% loss for 4 s, then none): ${targets.map((t) => Math.round(t / 1000)).join(" ")} kbit/s`);
  assert.ok(targets[3]! < 1_300_000, "heavy loss cut it (by half the loss at each report)");
  assert.ok(targets[3]! >= 150_000);
  assert.ok(targets[7]! > targets[4]!, "it grows again without loss");
  const rtt = h.metric("rtt_ms", s) as number;
  assert.ok(rtt > 0 && rtt < 60_000, `round trip from the reports: ${rtt} ms`);
});

test("more live SSRCs than followed: a ninth never takes the place of a live stream (one waiting for an IDR still waits)", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const s = h.createContext({ mode: "sender", startBps: 1_000_000, priority: { h264PayloadTypes: [96], nonReferenceMs: 20, referenceMs: 60 } });
  let seq = 0;
  let f = 0;
  const frame = (kind: "idr" | "ref" | "nonref"): string => {
    const r = h.runBatch(Array.from({ length: 10 }, (_, k) => ({ ctx: s, bytes: h264Packet(seq++, f * 3000, kind, { first: k === 0, last: k === 9, size: 1100 }) })));
    f++;
    h.advanceTime(33_000);
    return r.packets[0]!.verdict === "drop" ? r.packets[0]!.reasonName : "kept";
  };
  frame("idr");
  let lost = false;
  for (let k = 0; k < 40 && !lost; k++) lost = frame(k % 2 ? "nonref" : "ref") === "reference";
  assert.ok(lost, "a reference frame was dropped: the stream waits for an IDR");
  // eight other live streams (audio, other layers) take the other places, and one more
  for (let i = 1; i <= 8; i++) h.run({ ctx: s, bytes: buildRtp({ seq: i, timestamp: i, ssrc: 0xa0000000 + i, payloadType: 111, payloadSize: 80 }) });
  h.advanceTime(1_000_000); // the queue drains; nobody silent for 2 s
  assert.is(frame("ref"), "dependent", "still waiting for the IDR: its place was not given to the ninth");
  assert.is(frame("idr"), "kept");
});

/** A GOP under priority dropping (10 packets of 1100 bytes a frame at 30 fps: 2.6 Mbit/s into 1.1, 1.3 without the non-reference frames); per frame, each slice's verdict. */
async function priorityGop(withAud: boolean): Promise<{ kinds: readonly string[]; byFrame: string[][]; nextIdr: number; pliSent: unknown }> {
  const h = await loadCongestion({ startUs: 0 });
  const s = h.createContext({ mode: "sender", startBps: 1_000_000, priority: { h264PayloadTypes: [96], nonReferenceMs: 20, referenceMs: 60 } });
  const gop: ("ref" | "nonref")[] = Array.from({ length: 18 }, (_, k) => (k % 2 === 0 ? "ref" : "nonref"));
  const kinds = ["idr", ...gop, "idr", "nonref", "ref"] as const;
  let seq = 0;
  const byFrame: string[][] = [];
  kinds.forEach((kind, f) => {
    // with withAud, every frame is led by an access unit delimiter alone (RFC 6184 single NAL unit packet, type 9)
    const aud = buildRtp({ seq: withAud ? seq++ : seq, timestamp: f * 3000, ssrc: SSRC, payloadType: 96, payloadSize: 2 });
    aud[12] = 0x09;
    aud[13] = 0xf0;
    const slices = Array.from({ length: 10 }, (_, k) => ({ ctx: s, bytes: h264Packet(seq++, f * 3000, kind, { first: k === 0, last: k === 9, size: 1100 }) }));
    const r = h.runBatch(withAud ? [{ ctx: s, bytes: aud }, ...slices] : slices);
    byFrame.push(r.packets.slice(withAud ? 1 : 0).map((p) => (p.verdict === "drop" ? p.reasonName : "kept")));
    h.advanceTime(33_000);
  });
  console.log(`  ${byFrame.map((v, f) => `${kinds[f]}:${[...new Set(v)].join("/")}`).join("  ")}`);
  return { kinds, byFrame, nextIdr: kinds.indexOf("idr", 1), pliSent: h.metric("pli_sent", s) };
}

/** Each frame's slices share one verdict; non-reference frames go first, then reference ones, each taking the frames after it up to the next IDR, which goes. */
function assertWholeFramesInPriority({ kinds, byFrame, nextIdr }: Awaited<ReturnType<typeof priorityGop>>): void {
  for (const [f, verdicts] of byFrame.entries()) assert.is(new Set(verdicts).size, 1, `frame ${f} (${kinds[f]}): its slices are all one: ${verdicts.join(",")}`);
  const first = (name: string): number => byFrame.findIndex((v) => v[0] === name);
  assert.ok(first("non_reference") >= 0, "non-reference frames went first");
  const refDropped = first("reference");
  assert.ok(refDropped > first("non_reference"), "reference frames only after non-reference ones");
  for (let f = refDropped + 1; f < nextIdr; f++) assert.equal(byFrame[f]![0], "dependent", `frame ${f} depends on the dropped reference`);
  assert.equal(byFrame[nextIdr]![0], "kept", "the next IDR goes");
}

test("never half a frame: every packet of a frame gets the frame's verdict, and a reference frame dropped takes the frames up to the next IDR with it", async () => {
  const gop = await priorityGop(false);
  assertWholeFramesInPriority(gop);
  assert.equal(gop.pliSent, 1, "the origin is asked for an IDR, once");
});

test("a frame led by a packet of an access unit delimiter alone is judged by its next packet: non-reference ones still go first, and an IDR led by one ends the wait for an IDR", async () => {
  const gop = await priorityGop(true);
  assertWholeFramesInPriority(gop);
  assert.not.equal(gop.byFrame[gop.nextIdr + 2]![0], "dependent", "the frames after it are decodable again");
});

test("receivers' REMBs cap the target: two receivers, the lower one holds (no flipping each second), a cap nobody renews lapses, and none reaches the origin", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const s = h.createContext({ mode: "sender", startBps: 2_000_000 });
  let i = 0;
  const remb = (reporter: number, bps: number) => h.run({ ctx: s, bytes: Buffer.concat([emptyReceiverReport(reporter), encodeRemb(reporter, bps, [SSRC])]), flags: PacketFlag.Rtcp | PacketFlag.Upstream });
  const targets: number[] = [];
  const toOrigin: Uint8Array[] = [];
  for (let second = 0; second < 12; second++) {
    for (let k = 0; k < 20; k++) {
      h.run({ ctx: s, bytes: h264Packet(i, i * 3000, "ref", { first: true, last: true, size: 200 }) });
      i++;
      for (const o of h.advanceTime(50_000)) if (o.flags & PacketFlag.Upstream) toOrigin.push(...rtcpPieces(o.bytes).filter((p) => p.pt === 206 && p.fmt === 15).map((p) => p.bytes));
      // for 6 s, two receivers each send a REMB a second, half a second apart: 400 kbit/s and 5 Mbit/s
      if (second < 6 && k === 0) assert.not.equal(remb(0x1111, 400_000).verdict, "pass", "a REMB behind an empty report goes no further");
      if (second < 6 && k === 10) remb(0x2222, 5_000_000);
    }
    targets.push(h.metric("target_bps", s) as number);
  }
  console.log(`  two receivers' REMBs (400 kbit/s, 5 Mbit/s) for 6 s, then none: target ${targets.map((t) => Math.round(t / 1000)).join(" ")} kbit/s`);
  assert.ok(targets.slice(0, 6).every((t) => t <= 400_000), "the lower receiver's REMB held the target all along");
  assert.ok(targets[9]! > 1_000_000, "3.5 s after the last REMB the cap had lapsed");
  assert.is(h.metric("remb_received", s), 12);
  const senders = toOrigin.map((b) => new DataView(b.buffer, b.byteOffset).getUint32(4));
  assert.ok(senders.length > 0 && senders.every((x) => x !== 0x1111 && x !== 0x2222), "the REMBs that reached the origin are the filter's own");
});

test("feedback lost for a while, the media not: once the feedback is back and says it all arrived, the target returns to where it was, not from minBps at 12% a second", async () => {
  // Only the way back failed (a firewall, a route): the silence halvings were a precaution, and the
  // first feedback after it reports every packet sent meanwhile as received, at the usual delay.
  const h = await loadCongestion({ startUs: 0 });
  const ctx = h.createContext({ mode: "sender", startBps: 1_000_000, maxBps: 5_000_000, circuitBreaker: { enabled: false } });
  const recorder = new TwccRecorder(0x5ece1fe0, SSRC);
  const media = { intervalUs: 10_000, size: 800 }; // 0.67 Mbit/s of RTP payload
  let seq0 = 0;
  drive(h, ctx, recorder, { ...media, packets: 300, delayUs: () => 20_000 });
  seq0 += 300;
  const before = h.metric("target_bps", ctx) as number;
  // 6 s: the media goes through, the feedback does not come back
  for (let k = 0; k < 600; k++, seq0++) {
    const r = h.runBatch([{ ctx, bytes: buildRtp({ seq: seq0 & 0xffff, timestamp: Math.floor(seq0 / 3) * 3000, ssrc: SSRC, payloadSize: media.size, marker: seq0 % 3 === 2 }), leg: 0 }]);
    const timed = h.advanceTime(media.intervalUs);
    for (const b of [...downstreamOf(r), ...timed.filter((x) => !(x.flags & PacketFlag.Upstream)).map((x) => x.bytes)]) {
      const t = transportSeqOf(b, 5);
      if (t !== undefined) recorder.record(t, h.nowUs + 20_000);
    }
  }
  const during = h.metric("target_bps", ctx) as number;
  assert.ok((h.metric("feedback_timeouts", ctx) as number) >= 3, "the silence was counted");
  drive(h, ctx, recorder, { ...media, packets: 200, delayUs: () => 20_000, seq0 });
  const after = h.metric("target_bps", ctx) as number;
  console.log(`  feedback lost for 6 s: target ${Math.round(before / 1000)} kbit/s before, ${Math.round(during / 1000)} at its end, ${Math.round(after / 1000)} 2 s after the feedback came back`);
  assert.ok(during < before / 4, "the silence cut the target");
  assert.ok(after >= before * 0.9, `back to where it was (${before}) once the feedback said all arrived: ${after}`);
});

test.run();
