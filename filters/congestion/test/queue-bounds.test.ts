// The pacer's queue bounds through the harness: it never holds more than pacing.maxQueuePackets
// packets, no packet waits much beyond pacing.maxQueueMs, what a full queue refuses is counted as
// queue_full, and a frame the queue cannot take whole goes whole (never half a frame), the part of
// it already queued included.
import * as assert from "uvu/assert";
import { PacketFlag, buildRtp, type FilterHarness } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import { h264Packet, loadCongestion, seqOf, tsOf } from "./cc-lib.js";

const test = suite("congestion filter: the pacer's queue bounds");

/** The media the sender lets go downstream over the next `ms` (1 ms steps), with when. */
function releasedOver(h: FilterHarness, ms: number): { atUs: number; bytes: Uint8Array }[] {
  const out: { atUs: number; bytes: Uint8Array }[] = [];
  for (let t = 0; t < ms; t++) for (const o of h.advanceTime(1000)) if (!(o.flags & PacketFlag.Upstream)) out.push({ atUs: h.nowUs, bytes: o.bytes });
  return out;
}

test("pacing.maxQueuePackets: a burst fills the queue to exactly that many packets; the rest is dropped as queue_full, counted", async () => {
  const h = await loadCongestion({ startUs: 0 });
  // 10 is not a whole number of the queue's 8-cell chunks: the bound is the config's, not the memory's
  const s = h.createContext({ mode: "sender", startBps: 200_000, pacing: { maxQueuePackets: 10, maxQueueMs: 10_000 } });
  // one packet a frame (a timestamp each), not H.264: only the queue bounds decide
  const r = h.runBatch(Array.from({ length: 40 }, (_, i) => ({ ctx: s, bytes: buildRtp({ seq: i, timestamp: i * 3000, payloadSize: 500 }) })));
  const verdicts = r.packets.map((p) => (p.verdict === "drop" ? p.reasonName : p.verdict));
  const passed = verdicts.filter((v) => v === "pass").length;
  assert.is(verdicts.filter((v) => v === "hold").length, 10, `held: ${verdicts.join(" ")}`);
  assert.is(verdicts.filter((v) => v === "queue_full").length, 40 - passed - 10, `the rest queue_full: ${verdicts.join(" ")}`);
  assert.is(h.metric("dropped_queue_full", s), 40 - passed - 10);
  // the held ones leave, in order, and then the queue takes packets again
  const out = releasedOver(h, 2000);
  assert.equal(out.map((o) => seqOf(o.bytes)), Array.from({ length: 10 }, (_, i) => passed + i));
  const after = h.run({ ctx: s, bytes: buildRtp({ seq: 40, timestamp: 40 * 3000, payloadSize: 500 }) });
  assert.is(after.verdict === "drop", false, "an empty queue takes a packet again");
});

test("pacing.maxQueueMs: a frame that finds the queue longer is dropped whole; no packet waits much longer than the bound", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const maxQueueMs = 200;
  const rateBps = 400_000; // pacing factor 1: the bucket's rate
  // renumbering off: a packet that left is told by its sequence number as it came
  const s = h.createContext({ mode: "sender", startBps: rateBps, pacing: { factor: 1, maxQueueMs, maxQueuePackets: 1024 }, priority: { renumber: false } });
  // 3 x the rate for 3 s: 30 frames a second of 5 packets of 1012 bytes (1.2 Mbit/s)
  const arrived = new Map<number, number>();
  const verdictsByFrame: string[][] = [];
  const released: { atUs: number; bytes: Uint8Array }[] = [];
  let seq = 0;
  for (let f = 0; f < 90; f++) {
    const frame = Array.from({ length: 5 }, () => ({ ctx: s, bytes: buildRtp({ seq: seq++, timestamp: f * 3000, payloadSize: 1000 }) }));
    for (const p of frame) arrived.set(seqOf(p.bytes), h.nowUs);
    const r = h.runBatch(frame);
    verdictsByFrame.push(r.packets.map((p) => (p.verdict === "drop" ? p.reasonName : "kept")));
    released.push(...releasedOver(h, 33));
  }
  released.push(...releasedOver(h, 2000));
  for (const [f, v] of verdictsByFrame.entries()) assert.is(new Set(v).size, 1, `frame ${f} is all one: ${v.join(",")}`);
  const dropped = verdictsByFrame.filter((v) => v[0] === "queue_full").length;
  assert.ok(dropped > 30, `at 3x the rate most frames go as queue_full: ${dropped} of 90`);
  assert.is(h.metric("dropped_queue_full", s), dropped * 5);
  const waits = released.map((o) => (o.atUs - arrived.get(seqOf(o.bytes))!) / 1000);
  const longest = Math.max(...waits);
  // a frame admitted just under the bound waits the bound plus its own 5 packets (101 ms at the rate) and a timer's step
  const frameMs = (5 * 1012 * 8 * 1000) / rateBps;
  assert.ok(longest <= maxQueueMs + frameMs + 10, `a packet waited ${longest} ms; the bound is ${maxQueueMs} ms, a frame ${frameMs} ms`);
  assert.ok(longest >= maxQueueMs * 0.8, `the queue never came near its bound (longest wait ${longest} ms): the test tested nothing`);
});

test("a keyframe the queue cannot take whole goes whole: the part already queued is dropped too (queue_full), and the frames after it up to the next IDR", async () => {
  const h = await loadCongestion({ startUs: 0 });
  // thresholds high: only the packet bound decides
  const s = h.createContext({
    mode: "sender", startBps: 300_000,
    pacing: { maxQueuePackets: 16, maxQueueMs: 10_000 }, priority: { h264PayloadTypes: [96], nonReferenceMs: 5000, referenceMs: 5000 },
  });
  let seq = 0;
  const frame = (f: number, kind: "idr" | "ref" | "nonref", packets: number): { ctx: number; bytes: Uint8Array }[] =>
    Array.from({ length: packets }, (_, k) => ({ ctx: s, bytes: h264Packet(seq++, f * 3000, kind, { first: k === 0, last: k === packets - 1, size: 1000 }) }));
  // an IDR and two P frames take most of the 16 cells (the first packet or two leave at once); the next IDR has 12 packets for the 6 or 7 left
  const before = h.runBatch([...frame(0, "idr", 5), ...frame(1, "ref", 4), ...frame(2, "nonref", 3)]);
  assert.ok(before.packets.every((p) => p.verdict !== "drop"), "the first frames are admitted");
  const cut = h.runBatch(frame(3, "idr", 12));
  const cutVerdicts = cut.packets.map((p) => (p.verdict === "drop" ? p.reasonName : p.verdict));
  const after = h.runBatch(frame(4, "ref", 2));
  const out = releasedOver(h, 3000);
  const outByFrame = new Map<number, number>();
  for (const o of out) outByFrame.set(tsOf(o.bytes) / 3000, (outByFrame.get(tsOf(o.bytes) / 3000) ?? 0) + 1);
  const passed = (f: number, r: typeof before): number => r.packets.filter((p, i) => p.verdict === "pass" && (i < 5 ? 0 : i < 9 ? 1 : 2) === f).length;
  // every frame left whole or not at all
  assert.is((outByFrame.get(0) ?? 0) + passed(0, before), 5, "the first IDR went whole");
  assert.is(outByFrame.get(1), 4, "the reference frame went whole");
  assert.is(outByFrame.get(2), 3, "the non-reference frame went whole");
  assert.is(outByFrame.get(3) ?? 0, 0, `nothing of the IDR the queue could not take whole went on (its verdicts: ${cutVerdicts.join(" ")})`);
  const firstFull = cutVerdicts.indexOf("queue_full");
  assert.ok(firstFull > 0 && cutVerdicts.slice(0, firstFull).every((v) => v === "hold"), `part of the IDR was queued before the queue was full: ${cutVerdicts.join(" ")}`);
  assert.ok(cutVerdicts.slice(firstFull).every((v) => v === "queue_full"), `the rest of it is queue_full: ${cutVerdicts.join(" ")}`);
  assert.is(h.metric("dropped_queue_full", s), 12, "every packet of the IDR counted as queue_full, the queued ones too");
  assert.ok(after.packets.every((p) => p.reasonName === "dependent"), "the frame after it depends on it: dropped");
  assert.is(outByFrame.get(4) ?? 0, 0);
  assert.is(h.metric("pli_sent", s), 1, "the origin is asked for a new IDR");
});

test.run();
