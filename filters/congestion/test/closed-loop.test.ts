// The sender and receiver modes in a closed loop over a simulated bottleneck (cc-lib.ts): the
// feedback the receiver writes drives the sender's estimate toward the capacity, TMMBR tells the
// origin, and the pacer and priority drop keep the queue short. Deterministic: no sockets, the
// harness clocks advance together in 1 ms steps.
import * as assert from "uvu/assert";
import { PacketFlag, type FilterHarness, type OutputPacket } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import { Bottleneck, h264Packet, loadCongestion, tmmbrBps, type FrameKind } from "./cc-lib.js";

const test = suite("congestion closed loop");

type Sample = [number, number, number, number, number, number];

interface LoopResult {
  /** [seconds, target bps, capacity bps, origin bps, start-up gauge, over-use signals so far] once per 500 ms. */
  readonly samples: Sample[];
  readonly link: Bottleneck;
  readonly sender: FilterHarness;
  readonly senderCtx: number;
  readonly originSent: number;
  readonly tmmbrs: number;
}

/**
 * Runs `seconds` of a 30 fps origin that starts at `originBps` and follows TMMBR (when `follows`)
 * through sender -> bottleneck -> receiver, feedback back to the sender with the same delay.
 */
async function closedLoop(seconds: number, capacity: (tUs: number) => number, opts: { originBps: number; follows: boolean; senderConfig?: object; originSchedule?: (tUs: number) => number; feedbackUntilUs?: number; idrFactor?: number; maxOriginBps?: number }): Promise<LoopResult> {
  const sender = await loadCongestion({ startUs: 0 });
  const receiver = await loadCongestion({ startUs: 0 });
  const senderCtx = sender.createContext({ mode: "sender", priority: { h264PayloadTypes: [96] }, ...(opts.senderConfig ?? {}) });
  const receiverCtx = receiver.createContext({ mode: "receiver" });
  const link = new Bottleneck({ capacity, delayUs: 20_000, queueBytes: 60_000 });
  const feedback: { bytes: Uint8Array; dueUs: number }[] = [];
  let originBps = opts.originBps;
  let seq = 0;
  let frame = 0;
  let originSent = 0;
  let tmmbrs = 0;
  const samples: Sample[] = [];
  const fromSender = (outs: OutputPacket[], passed: Uint8Array[], t: number): void => {
    for (const b of passed) link.enqueue(b, t);
    for (const o of outs) {
      if (o.flags & PacketFlag.Upstream) {
        const bps = tmmbrBps(o.bytes);
        if (bps !== undefined) {
          tmmbrs++;
          if (opts.follows) originBps = Math.min(bps, opts.maxOriginBps ?? Infinity);
        }
      } else link.enqueue(o.bytes, t);
    }
  };
  for (let t = 0; t < seconds * 1e6; t += 1000) {
    // the origin: a frame every 33.3 ms, its size from the rate; an IDR every 2 s, every other frame non-reference
    if (opts.originSchedule) originBps = opts.originSchedule(t);
    if (t >= (frame * 1e6) / 30) {
      const kind: FrameKind = frame % 60 === 0 ? "idr" : frame % 2 === 1 ? "nonref" : "ref";
      const bytes = Math.max(200, Math.round(originBps / 8 / 30) * (kind === "idr" ? (opts.idrFactor ?? 2) : 1));
      const n = Math.ceil(bytes / 1100);
      const batch = [];
      for (let k = 0; k < n; k++) {
        batch.push({ ctx: senderCtx, bytes: h264Packet(seq++ & 0xffff, (frame * 3000) >>> 0, kind, { first: k === 0, last: k === n - 1, size: Math.ceil(bytes / n) }) });
      }
      originSent += n;
      for (let i = 0; i < batch.length; i += 64) {
        const r = sender.runBatch(batch.slice(i, i + 64));
        fromSender(r.outputs, r.packets.filter((p) => p.verdict === "pass").map((p) => p.bytes), t);
      }
      frame++;
    }
    fromSender(sender.advanceTime(1000), [], t + 1000);
    for (const o of receiver.advanceTime(1000)) feedback.push({ bytes: o.bytes, dueUs: t + 1000 + 20_000 });
    const arrived = link.advance(t + 1000);
    for (const a of arrived) {
      const r = receiver.runBatch([{ ctx: receiverCtx, bytes: a.bytes, arrivalUs: a.arriveUs }]);
      for (const o of r.outputs) feedback.push({ bytes: o.bytes, dueUs: t + 1000 + 20_000 });
    }
    while (feedback.length > 0 && feedback[0]!.dueUs <= t + 1000) {
      const f = feedback.shift()!;
      if (opts.feedbackUntilUs !== undefined && t > opts.feedbackUntilUs) continue; // the way back is cut
      const r = sender.runBatch([{ ctx: senderCtx, bytes: f.bytes, flags: PacketFlag.Rtcp | PacketFlag.Upstream }]);
      assert.equal(r.packets[0]!.verdict, "hold", "the sender consumes the receiver's feedback");
      fromSender(r.outputs, [], t + 1000);
    }
    if (t % 500_000 === 0) {
      const m = (name: string): number => sender.metric(name, senderCtx) as number;
      samples.push([t / 1e6, m("target_bps"), capacity(t), originBps, m("startup"), m("overuse_signals")]);
    }
  }
  if (process.env.CC_DEBUG) for (const m of sender.metricNames()) console.log("   ", m, sender.metric(m, senderCtx));
  return { samples, link, sender, senderCtx, originSent, tmmbrs };
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

test("the target settles near a steady capacity, the origin follows it, and the link barely loses", async () => {
  const r = await closedLoop(30, () => 1_000_000, { originBps: 2_000_000, follows: true });
  const late = r.samples.filter(([s]) => s >= 15).map(([, target]) => target);
  const settled = mean(late);
  console.log(`  steady 1 Mbit/s: target over 15-30 s ${Math.round(settled / 1000)} kbit/s (min ${Math.round(Math.min(...late) / 1000)}, max ${Math.round(Math.max(...late) / 1000)}); link lost ${r.link.lost} of ${r.originSent}; TMMBR ${r.tmmbrs}`);
  assert.ok(settled > 600_000 && settled < 1_300_000, `target ${settled} should settle near the 1 Mbit/s capacity`);
  assert.ok(r.tmmbrs > 0, "TMMBR sent to the origin");
  assert.ok(r.link.lost < r.originSent * 0.05, `link lost ${r.link.lost} of ${r.originSent}`);
  const delivered = r.link.delivered.filter((d) => d.sentUs >= 15e6);
  const bytes = delivered.reduce((a, d) => a + d.size, 0);
  assert.ok(bytes * 8 / 15 > 0.7 * 1_000_000, `utilisation ${(bytes * 8 / 15 / 1e6).toFixed(2)} of 1 Mbit/s`);
});

test("the target follows the capacity down and back up", async () => {
  const capacity = (t: number): number => (t < 15e6 ? 2_000_000 : t < 30e6 ? 700_000 : 2_000_000);
  const r = await closedLoop(50, capacity, { originBps: 3_000_000, follows: true });
  const phase = (a: number, b: number): number => mean(r.samples.filter(([s]) => s >= a && s < b).map(([, t]) => t));
  const [high, low, back] = [phase(8, 15), phase(22, 30), phase(43, 50)];
  console.log(`  2 -> 0.7 -> 2 Mbit/s: target ${Math.round(high / 1000)} / ${Math.round(low / 1000)} / ${Math.round(back / 1000)} kbit/s`);
  assert.ok(high > 1_200_000, `first phase ${high}`);
  assert.ok(low < 900_000 && low > 350_000, `low phase ${low}`);
  assert.ok(back > 1_200_000, `recovered ${back}`);
});

// RFC 8867's start rate (150 kbit/s) on a path that carries far more: the origin at the start rate,
// following TMMBR, up to 1.5 Mbit/s
const LOW_START = { originBps: 150_000, follows: true, maxOriginBps: 1_500_000 };
const LOW_START_CONFIG = { startBps: 150_000, minBps: 150_000, maxBps: 1_500_000 };
const at = (r: LoopResult, s: number): Sample => r.samples.find(([x]) => x === s)!;

test("start-up: with clean feedback the target grows several times faster than the steady increase", async () => {
  const [fast, slow] = await Promise.all([{}, { startup: { enabled: false } }].map((extra) =>
    closedLoop(4, () => 5_000_000, { ...LOW_START, senderConfig: { ...LOW_START_CONFIG, ...extra } })));
  const [fastAt3, slowAt3] = [at(fast!, 3)[1], at(slow!, 3)[1]];
  console.log(`  150 kbit/s start on 5 Mbit/s: target at 3 s ${Math.round(fastAt3 / 1000)} kbit/s with start-up, ${Math.round(slowAt3 / 1000)} without`);
  assert.ok(fast!.samples.every(([, , , , startup, overuse]) => startup === 1 && overuse === 0), "no over-use, and start-up all along");
  assert.ok(fastAt3 > 3 * 150_000, `with start-up, more than 3x the start rate after 3 s (${fastAt3})`);
  assert.ok(slowAt3 < 1.5 * 150_000, `without it, the steady 12% a second (${slowAt3})`);
  assert.ok(slow!.samples.every(([, , , , startup]) => startup === 0), "start-up disabled");
});

test("start-up ends at the first over-use and does not come back when the path clears", async () => {
  // 1 Mbit/s for 10 s, then 5 Mbit/s: clean feedback again, but start-up is over
  const r = await closedLoop(16, (t) => (t < 10e6 ? 1_000_000 : 5_000_000), { ...LOW_START, senderConfig: LOW_START_CONFIG });
  const end = r.samples.findIndex(([, , , , startup]) => startup === 0);
  console.log(`  150 kbit/s start on 1 Mbit/s: start-up over at ${r.samples[end]?.[0]} s, target ${Math.round(r.samples[end]![1] / 1000)} kbit/s; after the rise to 5 Mbit/s at 10 s: ${Math.round(at(r, 10)[1] / 1000)} -> ${Math.round(at(r, 13)[1] / 1000)} kbit/s at 13 s`);
  assert.ok(end > 0 && r.samples[end]![0] <= 6, `start-up ends within 6 s (at ${r.samples[end]?.[0]} s)`);
  assert.ok(r.samples[end]![5] >= 1, "ended by an over-use");
  assert.ok(r.samples.slice(end).every(([, , , , startup]) => startup === 0), "and never comes back");
  assert.ok(at(r, 13)[1] < 1.6 * at(r, 10)[1], "after it the target grows at the steady rate, not the start-up's");
  assert.equal(r.link.lost, 0, "the bottleneck's queue never overflowed");
});

test("an origin that ignores the signals loses non-reference frames first, not reference ones", async () => {
  const r = await closedLoop(20, () => 1_000_000, { originBps: 1_600_000, follows: false, senderConfig: { circuitBreaker: { enabled: false } } });
  const nonRef = r.sender.metric("dropped_non_reference", r.senderCtx) as number;
  const ref = r.sender.metric("dropped_reference", r.senderCtx) as number;
  const full = r.sender.metric("dropped_queue_full", r.senderCtx) as number;
  console.log(`  1.6 Mbit/s into 1 Mbit/s: dropped non-reference ${nonRef}, reference ${ref}, dependent ${r.sender.metric("dropped_dependent", r.senderCtx)}, queue full ${full}; link lost ${r.link.lost}`);
  assert.ok(nonRef > 0, "non-reference frames dropped");
  assert.ok(nonRef > ref + full, "mostly non-reference");
  assert.ok(r.link.lost < nonRef, `the bottleneck tail-dropped ${r.link.lost}`);
});

test("when the receiver goes quiet, the target halves each second down to minBps instead of staying put", async () => {
  const r = await closedLoop(16, () => 2_000_000, { originBps: 1_000_000, follows: true, feedbackUntilUs: 8e6 });
  const before = r.samples.find(([s]) => s === 8)![1];
  const end = r.sender.metric("target_bps", r.senderCtx) as number;
  console.log(`  feedback cut at 8 s: target ${Math.round(before / 1000)} kbit/s then ${Math.round(end / 1000)} kbit/s at 16 s, ${r.sender.metric("feedback_timeouts", r.senderCtx)} cuts`);
  assert.ok(before > 500_000);
  assert.equal(end, 150_000, "minBps");
  assert.ok((r.sender.metric("feedback_timeouts", r.senderCtx) as number) >= 3);
});

test("RFC 8867 5.1's fall from 2.5 to 0.6 Mbit/s with large IDR frames: no breaker trip, and dependent drops end", async () => {
  const capacity = (t: number): number => (t < 20e6 ? 2_500_000 : 600_000);
  const r = await closedLoop(50, capacity, { originBps: 1_500_000, follows: true, idrFactor: 4, maxOriginBps: 1_500_000 });
  const m = (name: string): number => r.sender.metric(name, r.senderCtx) as number;
  const late = r.link.delivered.filter((d) => d.sentUs > 35e6).reduce((a, d) => a + d.size, 0) * 8 / 15;
  console.log(`  2.5 -> 0.6 Mbit/s: trips ${m("circuit_breaker_trips")}, dropped non-ref ${m("dropped_non_reference")} ref ${m("dropped_reference")} dependent ${m("dropped_dependent")} queue-full ${m("dropped_queue_full")}; link lost ${r.link.lost}; delivered over 35-50 s ${Math.round(late / 1000)} kbit/s; target ${Math.round(m("target_bps") / 1000)}`);
  assert.equal(m("circuit_breaker_trips"), 0);
  assert.ok(late > 0.6 * 600_000, "the flow goes on near the new capacity");
});

test("the circuit breaker trips on a persistent overload, once, and the flow's media stops", async () => {
  const r = await closedLoop(12, () => 1_000_000, { originBps: 3_000_000, follows: false, senderConfig: { circuitBreaker: { cooldownSeconds: 0 } } });
  const trips = r.sender.metric("circuit_breaker_trips", r.senderCtx);
  const open = r.sender.metric("circuit_breaker_open", r.senderCtx);
  const dropped = r.sender.metric("dropped_circuit_breaker", r.senderCtx) as number;
  const warning = r.sender.logs.find((l) => /circuit breaker tripped/.test(l.message));
  console.log(`  3 Mbit/s into 1 Mbit/s: trips ${trips}, open ${open}, dropped by the breaker ${dropped}; ${warning?.message}`);
  assert.equal(trips, 1);
  assert.equal(open, 1);
  assert.ok(dropped > 1000, "the flow's media is dropped once it is open");
  assert.ok(warning, "a warning names the figures");
  assert.match(warning!.message, /kbit\/s with \d+% loss/);
  const lastDelivered = Math.max(...r.link.delivered.map((d) => d.sentUs));
  assert.ok(lastDelivered < 8e6, `nothing crosses the hop after the breaker opened (last at ${lastDelivered / 1e6} s)`);
});

test("the circuit breaker does not trip on a short overload", async () => {
  const schedule = (t: number): number => (t >= 3e6 && t < 5e6 ? 3_000_000 : 500_000);
  const r = await closedLoop(12, () => 1_000_000, { originBps: 500_000, follows: false, originSchedule: schedule });
  assert.equal(r.sender.metric("circuit_breaker_trips", r.senderCtx), 0);
  assert.equal(r.sender.metric("dropped_circuit_breaker", r.senderCtx), 0);
  const late = r.link.delivered.filter((d) => d.sentUs > 10e6).length;
  assert.ok(late > 100, `the flow goes on after the overload (${late} packets in its last 2 s)`);
});

test("the circuit breaker closes after its cooldown", async () => {
  const schedule = (t: number): number => (t < 6e6 ? 3_000_000 : 400_000);
  const r = await closedLoop(14, () => 1_000_000, { originBps: 3_000_000, follows: false, originSchedule: schedule, senderConfig: { circuitBreaker: { cooldownSeconds: 4 } } });
  assert.equal(r.sender.metric("circuit_breaker_trips", r.senderCtx), 1);
  assert.equal(r.sender.metric("circuit_breaker_open", r.senderCtx), 0);
  assert.ok(r.sender.logs.some((l) => /circuit breaker closed after 4 s/.test(l.message)));
  assert.ok(r.link.delivered.some((d) => d.sentUs > 12e6), "forwarded again");
});

test.run();
