// Per-stream stats (docs/streams.md): the table against hand-worked sequences (RFC 3550 A.1/A.3
// loss, duplicates, reordering, wrap, restart; A.8 jitter against a plain transcription of the
// RFC's integer recurrence), RTCP read from what passes (RR/SR report blocks, XR summaries, round
// trips from LSR/DLSR, SRTCP left alone), bounded cardinality; then a real proxy over UDP: what
// its /stats and /metrics say of a stream with known losses, duplicates, reordering and a
// receiver's reports.
import * as assert from "uvu/assert";
import { renderPrometheus } from "../runtime/admin/prometheus.js";
import { SegmentStreams } from "../runtime/streams/segment-streams.js";
import { RECEIVER_TIMEOUT_MS, ROLL_GRACE_MS, StreamTable } from "../runtime/streams/stream-table.js";
import { bye, receiverReport, senderReport, xrSummary } from "./lib/rtcp-build.js";
import { rng } from "./lib/random.js";
import { suite } from "./lib/suite.js";
import { DropWatch } from "./lib/kernel-drops.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { filterWasm } from "./lib/paths.js";
import { bindUdp, freePortPair, freePortRun, indexedRtp, sendPaced, Sink, sleep, waitFor } from "./lib/udp.js";

const SSRC = 0x1234abcd;

function rtp(seq: number, ts: number, ssrc = SSRC, pt = 96, size = 200): Uint8Array {
  const b = Buffer.alloc(size);
  b[0] = 0x80;
  b[1] = pt;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(ts >>> 0, 4);
  b.writeUInt32BE(ssrc >>> 0, 8);
  return b;
}

/** A segment's streams over a fresh table; packets go in as (seq, arrival ms) with ts = seq * 3000 (90 kHz, 30 fps). */
function streamsOf(limit = 100, idleMs = 30_000): { table: StreamTable; streams: SegmentStreams } {
  const table = new StreamTable(limit, idleMs);
  return { table, streams: new SegmentStreams(table, undefined) };
}

function feed(streams: SegmentStreams, packets: [seq: number, atMs: number][], ts = (seq: number) => seq * 3000): void {
  for (const [seq, at] of packets) {
    const p = rtp(seq, ts(seq));
    streams.time[0] = at;
    streams.ingress(p, 0, p.length);
  }
}

const T0 = 1_800_000_000_000; // a wall-clock time (ms)
const frame = (i: number): number => T0 + (i * 1000) / 30; // wall-clock ms carry ~0.2 us of float precision at this size

const table = suite("stream table: RFC 3550 A.1, A.3, A.8");

table("in order across the sequence wrap: nothing lost, jitter 0 at a steady pace", () => {
  const { streams } = streamsOf();
  const seqs = Array.from({ length: 100 }, (_, i) => (65_500 + i) & 0xffff);
  feed(streams, seqs.map((s, i) => [s, frame(i)]), (s) => ((s - 65_500) & 0xffff) * 3000);
  const st = streams.snapshot().streams[0]!;
  assert.is(st.ingress!.packets, 100);
  assert.is(st.ingress!.expected, 100);
  assert.is(st.ingress!.lost, 0);
  assert.is(st.ingress!.highestSeq, 65_536 + 63);
  assert.ok(st.ingress!.jitterMs < 1e-3, `jitter ${st.ingress!.jitterMs}`);
  assert.is(st.clockRate, 90000);
  assert.is(st.clockRateFrom, "assumed");
  assert.is(st.egress, null);
});

table("loss, a duplicate and a swapped pair: each counted as what it is", () => {
  const { streams } = streamsOf();
  const order = [0, 1, 2, 3, 4, 10, 11, 12, 13, 12, 15, 14, 16, 17]; // 5..9 lost, 12 twice, 14/15 swapped
  feed(streams, order.map((s, i) => [s, frame(i)]));
  const d = streams.snapshot().streams[0]!.ingress!;
  assert.is(d.expected, 18);
  assert.is(d.packets, 13);
  assert.is(d.lost, 5);
  assert.is(d.duplicates, 1);
  assert.is(d.reordered, 1);
});

table("a stray packet far off is not counted; a sender that restarts its sequence is followed without loss", () => {
  const { streams } = streamsOf();
  feed(streams, [[0, frame(0)], [1, frame(1)], [40_000, frame(2)], [2, frame(3)], [3, frame(4)]]);
  let d = streams.snapshot().streams[0]!.ingress!;
  assert.is(d.packets, 4, "the stray is left out (A.1)");
  assert.is(d.lost, 0);
  feed(streams, [[30_000, frame(5)], [30_001, frame(6)], [30_002, frame(7)]]);
  d = streams.snapshot().streams[0]!.ingress!;
  assert.is(d.packets, 6, "the first of the new sequence is the probe, its successors count");
  assert.is(d.lost, 0);
});

/** Packets of a stream at `perSecond` (90 kHz), from sequence number `first` on, fed in the order given by offsets from `first`. */
function paced(streams: SegmentStreams, first: number, order: readonly number[], perSecond: number, ts = (k: number) => k * (90_000 / perSecond)): void {
  order.forEach((k, n) => {
    const p = rtp(first + k, ts(k));
    streams.time[0] = T0 + (n * 1000) / perSecond;
    streams.ingress(p, 0, p.length);
  });
}

/** 0..count-1, with `late` of them (from `from` on) held back until `after` newer ones passed, then all delivered in order. */
function heldBack(count: number, from: number, late: number, after: number): number[] {
  const order: number[] = [];
  for (let k = 0; k < from; k++) order.push(k);
  for (let k = from + late; k < from + late + after; k++) order.push(k);
  for (let k = from; k < from + late; k++) order.push(k);
  for (let k = from + late + after; k < count; k++) order.push(k);
  return order;
}

table("a late burst of 120, and of 300, at 1000 packets/s across the sequence wrap: late, not lost; no restart, no wrap that did not happen", () => {
  for (const late of [120, 300]) {
    const { table: t, streams } = streamsOf();
    paced(streams, 64_000, heldBack(3000, 1000, late, 20), 1000);
    t.roll(T0 + 3500);
    const d = streams.snapshot().streams[0]!.ingress!;
    assert.equal(
      [d.packets, d.expected, d.lost, d.reordered, d.duplicates, d.highestSeq],
      [3000, 3000, 0, late, 0, 64_000 + 2999],
      `held back ${late}: every packet counted once, one wrap of the 16 bits`,
    );
    assert.is(d.window!.lost, 0, `held back ${late}: the last window lost nothing`);
  }
});

/**
 * A video stream (29.97 frames a second, each in a burst) over a link that delays each packet by
 * 20 ms +- `jitterMs` (uniform, seeded), so that packets near
 * each other arrive out of order, and loses those `lose` picks: every window seen through it (the
 * table rolled at each second), and the stream's totals once the last window is whole.
 */
function throughJitteryLink(opts: { seconds: number; perSecond: number; jitterMs: number; first: number; lose: (k: number) => boolean; restartAt?: number }): { windows: { endMs: number; expected: number; lost: number }[]; lost: number; dropped: number } {
  const { table: t, streams } = streamsOf();
  const random = rng(7);
  const count = opts.seconds * opts.perSecond;
  const arrivals: { k: number; at: number }[] = [];
  let dropped = 0;
  for (let k = 0; k < count; k++) {
    if (opts.lose(k)) {
      dropped++;
      continue;
    }
    // a video sender's frames: 29.97 a second (so that they cross the seconds' edges at every offset),
    // each frame's packets sent in a burst 0.2 ms apart
    const perFrame = opts.perSecond / 30;
    arrivals.push({ k, at: T0 + 3 + (Math.floor(k / perFrame) * 1001) / 30 + (k % perFrame) * 0.2 + 20 + (random() * 2 - 1) * opts.jitterMs });
  }
  arrivals.sort((a, b) => a.at - b.at);
  const windows: { endMs: number; expected: number; lost: number }[] = [];
  const take = (): void => {
    const w = streams.snapshot().streams[0]!.ingress!.window!;
    if (windows.at(-1)?.endMs !== w.endMs) windows.push({ endMs: w.endMs, expected: w.expected, lost: w.lost });
  };
  // the roll timer, 100 ms past each roll's grace after a second's edge
  let nextRoll = T0 + 1000 + ROLL_GRACE_MS + 100;
  for (const { k, at } of arrivals) {
    while (at >= nextRoll) {
      t.roll(nextRoll);
      take();
      nextRoll += 1000;
    }
    // a restarted sender: its sequence numbers jump by 20,000 (RFC 3550 A.1), its timestamps too
    const seq = opts.restartAt !== undefined && k >= opts.restartAt ? opts.first + k + 20_000 : opts.first + k;
    const p = rtp(seq, Math.floor(k / (opts.perSecond / 30)) * 3003 + (opts.restartAt !== undefined && k >= opts.restartAt ? 1e9 : 0));
    streams.time[0] = at;
    streams.ingress(p, 0, p.length);
  }
  // two more seconds: the last packets' window whole, and the one after it
  for (let n = 0; n < 3; n++, nextRoll += 1000) {
    t.roll(nextRoll);
    take();
  }
  return { windows, lost: streams.snapshot().streams[0]!.ingress!.lost, dropped };
}

table("a link that reorders (20 ms +- 10 ms of delay) and loses nothing: no window counts a loss (packets late across a second's edge are late, not lost)", () => {
  // 150 packets/s (a 1 Mbit/s video stream), across the sequence wrap
  const r = throughJitteryLink({ seconds: 20, perSecond: 150, jitterMs: 10, first: 65_000, lose: () => false });
  assert.is(r.lost, 0, "the stream lost nothing");
  assert.ok(r.windows.length >= 18, `windows seen: ${r.windows.length}`);
  const lossy = r.windows.filter((w) => w.lost > 0);
  assert.equal(lossy, [], `windows that counted a loss on a link that lost nothing: ${lossy.map((w) => `${w.lost} of ${w.expected}`).join(", ")}`);
});

table("a link that reorders and loses 3%: the windows' losses add up to what was lost, each loss counted once (and a restarted sender's jump in none)", () => {
  for (const restartAt of [undefined, 1500]) {
    const r = throughJitteryLink({ seconds: 20, perSecond: 150, jitterMs: 10, first: 1000, lose: (k) => (k * 7919) % 100 < 3 && k > 0, restartAt });
    const inWindows = r.windows.reduce((sum, w) => sum + w.lost, 0);
    // (the restarted sender's first packet is taken for a stray one until the next follows it, A.1,
    // and the old sender's packets late behind it are strays too: a few more lost than dropped)
    if (restartAt === undefined) assert.is(r.lost, r.dropped, "the stream's A.3 count: what the link dropped");
    else assert.ok(r.lost >= r.dropped && r.lost <= r.dropped + 5, `restart at ${restartAt}: the stream's A.3 count ${r.lost}, the link dropped ${r.dropped}`);
    assert.is(inWindows, r.lost, `restart at ${restartAt}: the windows counted ${inWindows} lost, the stream ${r.lost} (the link dropped ${r.dropped})`);
  }
});

table("late further back than the history (1024): 2000 at 10,000 packets/s are late by their timestamps; a second path's copies that far behind are duplicates", () => {
  let { streams } = streamsOf();
  paced(streams, 0, heldBack(12_000, 5000, 2000, 2500), 10_000);
  let d = streams.snapshot().streams[0]!.ingress!;
  assert.equal([d.packets, d.expected, d.lost, d.reordered, d.duplicates, d.highestSeq], [12_000, 12_000, 0, 2000, 0, 11_999]);
  // a 2022-7 merge's two paths, path B 1500 packets behind path A, both whole
  ({ streams } = streamsOf());
  const both: number[] = [];
  for (let k = 0; k < 20_000; k++) both.push(k, ...(k >= 1500 ? [k - 1500] : []));
  paced(streams, 0, both, 10_000);
  d = streams.snapshot().streams[0]!.ingress!;
  assert.equal([d.packets, d.expected, d.lost, d.duplicates, d.highestSeq], [20_000, 20_000, 0, 18_500, 19_999]);
});

table("a redundant leg (2022-7 path B) more than the history behind: its copies fill no hole both paths left", () => {
  const { streams } = streamsOf();
  const lostOnBoth = (k: number): boolean => k % 1000 === 7;
  let n = 0;
  const send = (k: number, copy: boolean): void => {
    const p = rtp(k, k * 9);
    streams.time[0] = T0 + n++ / 10;
    if (copy) streams.ingressCopy(p, 0, p.length);
    else streams.ingress(p, 0, p.length);
  };
  for (let k = 0; k < 20_000; k++) {
    if (!lostOnBoth(k)) send(k, false);
    if (k >= 1500 && !lostOnBoth(k - 1500)) send(k - 1500, true);
  }
  const d = streams.snapshot().streams[0]!.ingress!;
  assert.equal([d.expected, d.lost], [20_000, 20], "the 20 neither path delivered are lost (counted as received, path B's copies hid them)");
});

table("duplicates within the history are told from late packets, up to 1023 behind", () => {
  const { streams } = streamsOf();
  const order = Array.from({ length: 2000 }, (_, k) => k).filter((k) => k !== 1500);
  order.push(1000, 980, 1500, 1500, 976); // copies 999 and 1019 behind, the one missing late (and again), a copy 1023 behind
  paced(streams, 0, order, 1000);
  const d = streams.snapshot().streams[0]!.ingress!;
  assert.equal([d.packets, d.expected, d.lost, d.reordered, d.duplicates], [2000, 2000, 0, 1, 4]);
});

table("a sender that restarts its sequence, back or ahead, with new timestamps: followed without loss, the extended number moved only by what the sender did, its jump no jitter", () => {
  const restarted = (k: number): number => k * 90 + 0x7654_3210;
  for (const [from, to, highest] of [[40_000, 20_000, 20_999], [1_000, 10_000, 10_999], [60_000, 10_000, 65_536 + 10_999], [5_000, 63_000, 63_999]] as const) {
    const { streams } = streamsOf();
    paced(streams, from, Array.from({ length: 1000 }, (_, k) => k), 1000);
    const p = (k: number): void => {
      const b = rtp(to + k, restarted(k));
      streams.time[0] = T0 + 1000 + k;
      streams.ingress(b, 0, b.length);
    };
    for (let k = 0; k < 10; k++) p(k);
    // both senders keep a steady pace: the jump between their timestamps is no jitter (it read 10^5-10^6 ms, hundreds of packets to decay)
    const early = streams.snapshot().streams[0]!.ingress!.jitterMs;
    assert.ok(early < 1, `${from} -> ${to}: jitter ${early} ms`);
    for (let k = 10; k < 1000; k++) p(k);
    const d = streams.snapshot().streams[0]!.ingress!;
    assert.equal([d.packets, d.expected, d.lost, d.highestSeq], [1999, 1999, 0, highest], `${from} -> ${to}: the first of the new sequence is the probe`);
  }
});

table("a sequence stepping 1023 a packet (the longest step the history keeps): the numbers it skips cleared a word at a time, and still told apart", () => {
  const { table: t, streams } = streamsOf();
  feed(streams, [[0, frame(0)]]);
  // the writes to the history (a private column) counted: its cost per packet, not a time
  const columns = t as unknown as { history: Uint32Array };
  let writes = 0;
  columns.history = new Proxy(columns.history, {
    set(target, key, value) {
      writes++;
      return Reflect.set(target, key, value);
    },
  });
  const steps = 64;
  feed(streams, Array.from({ length: steps }, (_, k) => [((k + 1) * 1023) & 0xffff, frame(k + 1)]), (seq) => seq * 3);
  // one set bit a packet, and the 1022 numbers skipped: 32 words or so, not 1022 bits one by one
  assert.ok(writes <= steps * 34, `${writes} writes to the history for ${steps} packets`);
  const last = (steps * 1023) & 0xffff;
  feed(streams, [[last - 1023, frame(steps + 1)], [last - 5, frame(steps + 2)]], (seq) => seq * 3);
  const d = streams.snapshot().streams[0]!.ingress!;
  assert.equal([d.packets, d.expected, d.duplicates, d.reordered], [steps + 2, steps * 1023 + 1, 1, 1], "the one before: a copy; one it skipped: late");
});

table("jitter: the RFC's integer recurrence on the same arrivals agrees", () => {
  const { streams } = streamsOf();
  const offsets = [0, 7, -3, 12, 0, 25, -8, 4, 0, 30, 1, -2, 18, 0, 9, 3]; // ms off the frame grid
  const packets: [number, number][] = offsets.map((o, i) => [i, frame(i) + o]);
  feed(streams, packets);
  // RFC 3550 A.8 as written: arrival in timestamp units, transit, d = |transit - last|, J += (d - J) / 16
  let jitter = 0;
  let last = 0;
  packets.forEach(([seq, at], i) => {
    const arrival = ((at - T0) * 90000) / 1000;
    const transit = arrival - seq * 3000;
    if (i > 0) jitter += (Math.abs(transit - last) - jitter) / 16;
    last = transit;
  });
  const got = streams.snapshot().streams[0]!.ingress!.jitterMs;
  assert.ok(Math.abs(got - (jitter * 1000) / 90000) <= 0.0005, `jitter ${got} ms, the RFC's ${(jitter * 1000) / 90000} ms`);
  assert.ok(got > 1);
});

table("clock rate: the segment's clockRates first, then RFC 3551's static types", () => {
  const t = new StreamTable(10, 30_000);
  const configured = new SegmentStreams(t, { "111": 48000 });
  const opus = rtp(1, 960, 1, 111);
  configured.time[0] = T0;
    configured.ingress(opus, 0, opus.length);
  const pcmu = rtp(1, 160, 2, 0);
  configured.time[0] = T0;
    configured.ingress(pcmu, 0, pcmu.length);
  const [a, b] = configured.snapshot().streams;
  assert.equal([a!.clockRate, a!.clockRateFrom], [48000, "config"]);
  assert.equal([b!.clockRate, b!.clockRateFrom], [8000, "payload-type"]);
});

table("clock rate changed by a reload: a stream counted already takes it, its jitter starting again in the new rate's units", () => {
  const t = new StreamTable(10, 30_000);
  const streams = new SegmentStreams(t, undefined);
  // Opus: 20 ms a packet, 960 ticks of 48 kHz, arriving exactly on time
  const send = (from: number, to: number): void => {
    for (let i = from; i < to; i++) {
      const p = rtp(i, i * 960, 7, 111);
      streams.time[0] = T0 + i * 20;
      streams.ingress(p, 0, p.length);
    }
  };
  send(0, 100);
  const before = streams.snapshot().streams[0]!;
  assert.equal([before.clockRate, before.clockRateFrom], [90000, "assumed"]);
  assert.ok(before.ingress!.jitterMs > 9, `read at 90 kHz, each packet is 9.3 ms off: ${before.ingress!.jitterMs}`);
  streams.setClockRates({ "111": 48000 });
  send(100, 200);
  const after = streams.snapshot().streams[0]!;
  assert.equal([after.clockRate, after.clockRateFrom], [48000, "config"]);
  assert.ok(after.ingress!.jitterMs < 1e-6, `on time at 48 kHz: jitter ${after.ingress!.jitterMs}`);
  assert.is(after.ingress!.packets, 200, "the stream's counters carry on");
});

table("clockRates naming the rate a stream was assumed to have: only where it comes from changes, its jitter carries on", () => {
  const t = new StreamTable(10, 30_000);
  const streams = new SegmentStreams(t, undefined);
  // 90 kHz video, 30 frames a second, each frame 2 ms late or early in turn: a jitter to keep
  for (let i = 0; i < 100; i++) {
    const p = rtp(i, i * 3000, 9, 96);
    streams.time[0] = T0 + i * 33.333 + (i % 2 === 0 ? 2 : -2);
    streams.ingress(p, 0, p.length);
  }
  const before = streams.snapshot().streams[0]!;
  assert.equal([before.clockRate, before.clockRateFrom], [90000, "assumed"]);
  assert.ok(before.ingress!.jitterMs > 1, `jitter ${before.ingress!.jitterMs}`);
  streams.setClockRates({ "96": 90000 });
  const after = streams.snapshot().streams[0]!;
  assert.equal([after.clockRate, after.clockRateFrom], [90000, "config"]);
  assert.is(after.ingress!.jitterMs, before.ingress!.jitterMs, "the same rate: the jitter measured in it holds");
});

table("windows: the last whole window's loss fraction, rates and transit", () => {
  const { table: t, streams } = streamsOf();
  const packets: [number, number][] = [];
  // 3 of 30 lost, 5 ms late each; each hole opens before the window's last LATE_GRACE_MS (a hole
  // the highest passed in them is counted in the next window, if still missing then)
  for (let i = 0; i < 30; i++) if (![3, 13, 17].includes(i)) packets.push([i, frame(i) + 5]);
  feed(streams, packets);
  t.roll(frame(30) + ROLL_GRACE_MS);
  const w = streams.snapshot().streams[0]!.ingress!.window!;
  assert.is(w.expected, 30);
  assert.is(w.lost, 3);
  // of the sequence numbers the window settled: those up to its last packet before its last
  // LATE_GRACE_MS (frame 22, at 738 ms), 23 of them; 23 to 29 are the next window's to judge
  assert.ok(Math.abs(w.fractionLost - 3 / 23) < 1e-9, `fraction lost ${w.fractionLost}`);
  assert.ok(Math.abs(w.packetRate - 27 / (frame(30) - frame(0) - 5) * 1000) <= 0.05, `rate ${w.packetRate}`);
  assert.ok(w.transitMs !== null && Math.abs(w.transitMs - (T0 + 5)) < 1e-3, `transit ${w.transitMs}`);
});

table("a window keeps the jitter estimate as it ended, while packets after it move the estimate on", () => {
  const { streams } = streamsOf();
  // 30 frames a second, on time through the first second, then 8 ms late every other one
  const packets: [number, number][] = [];
  for (let i = 0; i < 60; i++) packets.push([i, frame(i) + 5 + (i >= 30 && i % 2 === 1 ? 8 : 0)]);
  feed(streams, packets.slice(0, 31));
  const atEnd = streams.snapshot().streams[0]!.ingress!;
  assert.is(atEnd.window!.endMs, T0 + 1000);
  assert.is(atEnd.window!.jitterMs, 0, "on time through the second");
  feed(streams, packets.slice(31));
  const later = streams.snapshot().streams[0]!.ingress!;
  assert.is(later.window!.endMs, T0 + 1000, "the same window");
  assert.ok(later.jitterMs > 3, `the estimate moved on: ${later.jitterMs} ms`);
  assert.is(later.window!.jitterMs, 0, "the window's is as it ended");
});

table("a packet leaving counts in the second it arrived in: a proxy's ingress and egress windows hold the same packets, and their transits differ by its dwell", () => {
  const { table: t, streams } = streamsOf();
  // 100 packets a second from T0 + 10 ms, each second's 5 ms later on the sender's timestamps (a
  // queue building upstream); each leaves 0.3 ms after it arrived, but those arriving in the last
  // 40 ms of a second wait 50 ms (a stall at the second's edge: they leave in the next one)
  const arrive = (k: number): number => T0 + 10 + k * 10;
  const dwell = (k: number): number => ((arrive(k) - T0) % 1000 >= 960 ? 50 : 0.3);
  for (let k = 0; k < 300; k++) {
    const p = rtp(k, k * 900 - Math.floor(k / 100) * 450);
    streams.time[0] = arrive(k);
    streams.ingress(p, 0, p.length);
    streams.time[0] = arrive(k) + dwell(k);
    streams.time[1] = arrive(k);
    streams.egress(p, 0, p.length);
  }
  t.roll(T0 + 3100);
  const st = streams.snapshot().streams[0]!;
  const [i, e] = [st.ingress!.window!, st.egress!.window!];
  assert.equal([e.endMs, e.expected, e.packetRate], [i.endMs, i.expected, i.packetRate], "the same second over the same packets");
  const meanDwell = (96 * 0.3 + 4 * 50) / 100;
  assert.ok(Math.abs(e.transitMs! - i.transitMs! - meanDwell) < 2e-3, `dwell ${e.transitMs! - i.transitMs!} ms, the packets' mean ${meanDwell}`);
});

table("transit across the RTP timestamp's wrap: continuous within a window (the wrap is 13.3 h at 90 kHz)", () => {
  const { table: t, streams } = streamsOf();
  // 30 frames a second, 5 ms late each, the timestamp wrapping at the 16th
  const ts = (seq: number): number => (2 ** 32 - 15 * 3000 + seq * 3000) % 2 ** 32;
  feed(streams, Array.from({ length: 30 }, (_, i): [number, number] => [i, frame(i) + 5]), ts);
  t.roll(frame(30) + ROLL_GRACE_MS);
  const w = streams.snapshot().streams[0]!.ingress!.window!;
  const first = frame(0) + 5 - (ts(0) * 1000) / 90_000; // the first packet's transit: the others' equal it
  assert.ok(w.transitMs !== null && Math.abs(w.transitMs - first) < 1e-3, `transit ${w.transitMs}, the first packet's ${first}`);
});

table("windows end on the wall clock's seconds, each packet counted in its own: the same second at two points covers the same packets", () => {
  const { table: t, streams } = streamsOf();
  // 10 packets a second from T0 + 950 ms (50 ms before a second ends: the first window runs on to the next end)
  const at = (k: number): number => T0 + 950 + k * 100;
  feed(streams, Array.from({ length: 16 }, (_, k): [number, number] => [k, at(k)]).filter(([k]) => k !== 12));
  let w = streams.snapshot().streams[0]!.ingress!.window!;
  assert.is(w.endMs, T0 + 2000, "the packet at T0 + 2050 ended the first window, at T0 + 2000");
  assert.is(w.ms, 1050, "from the first packet");
  assert.is(w.expected, 11);
  // a roll late after the next second's end (T0 + 3000) ends it at that end, not at the roll
  t.roll(T0 + 3400);
  let d = streams.snapshot().streams[0]!.ingress!;
  w = d.window!;
  assert.equal([w.endMs, w.ms, w.expected, w.lost], [T0 + 3000, 1000, 5, 1]);
  assert.equal([d.previousWindow!.endMs, d.previousWindow!.expected], [T0 + 2000, 11], "the window before it, reported too");
  assert.is(d.firstMs, T0 + 950);
  // seconds without a packet: the last whole one is empty
  t.roll(T0 + 5200 + ROLL_GRACE_MS);
  d = streams.snapshot().streams[0]!.ingress!;
  w = d.window!;
  assert.equal([w.endMs, w.ms, w.expected, w.packetRate, w.transitMs], [T0 + 5000, 1000, 0, 0, null]);
  assert.equal([d.previousWindow!.endMs, d.previousWindow!.expected], [T0 + 4000, 0], "the one before it, empty too");
  feed(streams, [[16, T0 + 5300], [17, T0 + 6100]]);
  w = streams.snapshot().streams[0]!.ingress!.window!;
  assert.equal([w.endMs, w.expected, w.packetRate], [T0 + 6000, 1, 1]);
  // the wall clock stepped back 3 s: the windows start again from the packet's time (they would
  // have counted the 3 s as one second)
  feed(streams, [[18, T0 + 3050], [19, T0 + 3500], [20, T0 + 4100]]);
  d = streams.snapshot().streams[0]!.ingress!;
  assert.equal([d.window!.endMs, d.window!.ms, d.window!.expected, d.previousWindow], [T0 + 4000, 950, 2, null]);
});

table("a hole just before a sender's pause: its window's fraction lost is of the sequence numbers it settled, not of the few packets after the pause", () => {
  const { table: t, streams } = streamsOf();
  // 100 packets a second from T0 + 5 ms; 190..194 lost (in the second's last 250 ms, so judged in
  // the next); the sender pauses from T0 + 2 s and sends 200..209 from T0 + 2905
  const sent: [number, number][] = [];
  for (let k = 0; k < 200; k++) if (k < 190 || k > 194) sent.push([k, T0 + 5 + k * 10]);
  for (let k = 200; k < 211; k++) sent.push([k, T0 + 2905 + (k - 200) * 10]);
  feed(streams, sent, (k) => k * 900);
  const d = streams.snapshot().streams[0]!.ingress!;
  const [w, before] = [d.window!, d.previousWindow!];
  assert.equal([before.endMs, before.lost, before.fractionLost], [T0 + 2000, 0, 0], "the holes came too late in their second to judge");
  // the window to T0 + 3000 settled 175..199 (from the mark of the one before, its packets before
  // T0 + 1750, to the end of that second): 5 lost of 25; of its own 10 packets' expected, 50%
  assert.equal([w.endMs, w.expected, w.lost], [T0 + 3000, 10, 5]);
  assert.ok(Math.abs(w.fractionLost - 5 / 25) < 1e-9, `fraction lost ${w.fractionLost}`);
  t.roll(T0 + 9000); // nothing left to settle: no loss read into the quiet seconds
  assert.is(streams.snapshot().streams[0]!.ingress!.window!.fractionLost, 0);
});

table("a sender that pauses across a second's edge, resuming before the roll's grace ran out: the second before the pause stays in the report, before the empty one", () => {
  const { table: t, streams } = streamsOf();
  // 50 packets a second from T0 + 10 ms to T0 + 1990; the roll timer 100 ms past each second
  // (inside the grace: it ends nothing); the sender resumes at T0 + 3050
  const sent: [number, number][] = [];
  for (let k = 0; k < 100; k++) sent.push([k, T0 + 10 + k * 20]);
  feed(streams, sent, (k) => k * 1800);
  t.roll(T0 + 2100);
  t.roll(T0 + 3100 - ROLL_GRACE_MS);
  feed(streams, [[100, T0 + 3050]], () => 100 * 1800 + 1040 * 90);
  let d = streams.snapshot().streams[0]!.ingress!;
  assert.equal([d.window!.endMs, d.window!.expected], [T0 + 3000, 0], "the pause's second, empty");
  assert.equal([d.previousWindow!.endMs, d.previousWindow!.expected, d.previousWindow!.lost], [T0 + 2000, 50, 0], "the second before it, with its 50 packets");
  // a pause of more than a second after a second's end: both whole windows are empty
  feed(streams, [[101, T0 + 3070]], () => 101 * 1800 + 1040 * 90);
  feed(streams, [[102, T0 + 6050]], () => 102 * 1800 + 4020 * 90);
  d = streams.snapshot().streams[0]!.ingress!;
  assert.equal([d.window!.endMs, d.window!.expected, d.previousWindow!.endMs, d.previousWindow!.expected], [T0 + 6000, 0, T0 + 5000, 0]);
});

table("a worker held across a second's edge runs its roll timer before it reads what arrived just before the edge: those packets still count in their second, with their jitter", () => {
  const { table: t, streams } = streamsOf();
  // 100 packets a second from T0 + 5 ms, on time, but for two of the last three before T0 + 2000, 8 ms late on the link
  const edge = T0 + 2000;
  const arrive = (k: number): number => T0 + 5 + k * 10 + (k === 197 || k === 198 ? 8 : 0);
  const ts = (k: number): number => k * 900;
  const feedOne = (k: number): void => {
    const p = rtp(k, ts(k));
    streams.time[0] = arrive(k); // the kernel's receive time, whenever the worker reads it
    streams.ingress(p, 0, p.length);
  };
  for (let k = 0; k < 197; k++) feedOne(k);
  // held from edge - 20 ms to edge + 30 ms: the timer first, then the backlog
  t.roll(edge + 30);
  for (let k = 197; k < 200; k++) feedOne(k);
  const jitterAtEdge = streams.snapshot().streams[0]!.ingress!.jitterMs;
  assert.ok(jitterAtEdge > 0.8, `the late pair and the one after them moved the estimate: ${jitterAtEdge} ms`);
  for (let k = 200; k < 203; k++) feedOne(k);
  const w = streams.snapshot().streams[0]!.ingress!.window!;
  assert.equal([w.endMs, w.expected, w.lost], [edge, 100, 0], "the second ends at its edge with its 100 packets");
  assert.is(w.jitterMs, jitterAtEdge, "and with the estimate as of its last packet");
});

table("bounded: streams past the limit are counted together; an idle stream gives its slot back", () => {
  const { table: t, streams } = streamsOf(2, 1000);
  for (const ssrc of [1, 2, 3, 4]) {
    const p = rtp(0, 0, ssrc);
    streams.time[0] = T0;
    streams.ingress(p, 0, p.length);
    streams.time[0] = T0;
    streams.egress(p, 0, p.length);
  }
  let snap = streams.snapshot();
  assert.equal(snap.streams.map((s) => s.ssrc), [1, 2]);
  assert.equal(snap.streamsOverflow, { ingressPackets: 2, egressPackets: 2 });
  t.roll(T0 + 5000);
  assert.is(t.used, 0);
  const p = rtp(0, 0, 9);
  streams.time[0] = T0 + 5000;
    streams.ingress(p, 0, p.length);
  snap = streams.snapshot();
  assert.equal(snap.streams.map((s) => s.ssrc), [9]);
});

table("one segment's share: a sender changing SSRC on every packet takes maxPerSegment slots, not every slot of the worker; another segment's stream is still counted on its own", () => {
  const t = new StreamTable(100, 30_000, 3);
  const noisy = new SegmentStreams(t, undefined);
  const quiet = new SegmentStreams(t, undefined);
  streamsTime(noisy, quiet);
  for (let ssrc = 1; ssrc <= 50; ssrc++) {
    const p = rtp(0, 0, ssrc);
    noisy.ingress(p, 0, p.length);
  }
  const p = rtp(0, 0, 777);
  quiet.ingress(p, 0, p.length);
  assert.equal(noisy.snapshot().streams.map((s) => s.ssrc), [1, 2, 3]);
  assert.equal(noisy.snapshot().streamsOverflow, { ingressPackets: 47, egressPackets: 0 });
  assert.equal(quiet.snapshot().streams.map((s) => s.ssrc), [777]);
  assert.is(quiet.snapshot().streamsOverflow, null);
  assert.is(t.used, 4);
});

function streamsTime(...list: SegmentStreams[]): void {
  for (const s of list) s.time[0] = T0;
}

// ---- RTCP read as it passes ----

const rtcp = suite("stream table: RTCP");

rtcp("a receiver's RR block: loss, jitter in ms, the round trip from the SR this proxy forwarded", () => {
  const { streams } = streamsOf();
  feed(streams, [[0, T0]]);
  const sr = senderReport(SSRC, 0xe0001234, 0x56780000);
  streams.downstreamRtcp(sr, 0, sr.length, T0 + 100);
  const lsr = 0x12345678; // middle 32 bits of the SR's NTP time
  const rr = receiverReport(0xbeef, SSRC, 64, -1, 70_000, 900, lsr, 0x8000); // DLSR 0.5 s
  streams.upstreamRtcp(rr, 0, rr.length, T0 + 100 + 520);
  const r = streams.snapshot().streams[0]!.receivers[0]!;
  assert.is(r.reporterSsrc, 0xbeef);
  assert.is(r.fractionLost, 0.25);
  assert.is(r.cumulativeLost, -1);
  assert.is(r.highestSeq, 70_000);
  assert.ok(Math.abs(r.jitterMs - 10) < 1e-9, "900 at 90 kHz is 10 ms");
  assert.ok(r.rttMs !== null && Math.abs(r.rttMs - 20) < 1e-6, `rtt ${r.rttMs}`);
  assert.is(r.xr, null);
  assert.is(r.egressJitterMs, null, "this proxy had sent none of the stream");
});

rtcp("a receiver's report keeps this proxy's egress jitter as of its arrival: later packets change the egress jitter, not the report's", () => {
  const { streams } = streamsOf();
  const out = (seq: number, lateMs: number): void => {
    const p = rtp(seq, seq * 3000);
    streams.time[0] = frame(seq) + lateMs;
    streams.egress(p, 0, p.length);
  };
  for (let seq = 0; seq < 50; seq++) out(seq, seq % 2 === 0 ? 0 : 8); // every other packet 8 ms late: jitter builds up
  const rr = receiverReport(0xbeef, SSRC, 0, 0, 49, 900, 0, 0);
  streams.upstreamRtcp(rr, 0, rr.length, frame(50));
  const atReport = streams.snapshot().streams[0]!.egress!.jitterMs;
  assert.ok(atReport > 3, `egress jitter ${atReport}`);
  for (let seq = 50; seq < 150; seq++) out(seq, 0); // then steady: it decays
  const s = streams.snapshot().streams[0]!;
  assert.ok(s.egress!.jitterMs < atReport / 2, `egress jitter now ${s.egress!.jitterMs}`);
  assert.is(s.receivers[0]!.egressJitterMs, atReport);
});

/** A segment's streams, and a function sending `seq` out of its egress at frame(seq) (ts = seq * 3000). */
function egressOf(): { streams: SegmentStreams; out: (seq: number) => void } {
  const { streams } = streamsOf();
  const out = (seq: number): void => {
    const p = rtp(seq, seq * 3000);
    streams.time[0] = frame(seq);
    streams.egress(p, 0, p.length);
  };
  return { streams, out };
}

rtcp("the last link's loss: the receiver's reported loss between two reports, less what the proxy's egress already missed over the same span", () => {
  const { streams, out } = egressOf();
  for (let seq = 0; seq < 100; seq++) out(seq);
  const first = receiverReport(0xbeef, SSRC, 0, 0, 99, 0, 0, 0);
  streams.upstreamRtcp(first, 0, first.length, frame(100));
  assert.is(streams.snapshot().streams[0]!.receivers[0]!.linkFractionLost, null, "one report: nothing to pair yet");
  for (let seq = 100; seq < 200; seq++) if (seq !== 150 && seq !== 151) out(seq); // 2 missing before the proxy sent
  const second = receiverReport(0xbeef, SSRC, 18, 5, 199, 0, 0, 0); // 5 lost since the first report: 3 on the last link
  streams.upstreamRtcp(second, 0, second.length, frame(200));
  const r = streams.snapshot().streams[0]!.receivers[0]!;
  assert.ok(Math.abs(r.linkFractionLost! - 0.03) < 1e-12, `link loss ${r.linkFractionLost}`);
  assert.is(r.fractionLost, 18 / 256, "the receiver's own fraction, upstream losses and all, is kept as it said");
});

rtcp("the last link's loss when duplicates came from upstream: the receiver counts them as received (RFC 3550 A.3), and so does the proxy's side of the difference", () => {
  const { streams, out } = egressOf();
  for (let seq = 0; seq < 100; seq++) out(seq);
  const first = receiverReport(0xbeef, SSRC, 0, 0, 99, 0, 0, 0);
  streams.upstreamRtcp(first, 0, first.length, frame(100));
  // 100..199: 150 and 151 never reached the proxy, 3 came twice (a duplicating hop before it) and
  // left twice; the last link lost 4 of what the proxy sent
  const sent: number[] = [];
  for (let seq = 100; seq < 200; seq++) {
    if (seq === 150 || seq === 151) continue;
    sent.push(seq);
    if (seq === 110 || seq === 120 || seq === 130) sent.push(seq);
  }
  sent.forEach(out);
  const arrived = sent.filter((seq) => seq < 160 || seq > 163).length;
  const lost = 100 - arrived; // A.3 at the receiver: expected - received, its duplicates received: 3
  const second = receiverReport(0xbeef, SSRC, 0, lost, 199, 0, 0, 0);
  streams.upstreamRtcp(second, 0, second.length, frame(200));
  const r = streams.snapshot().streams[0]!.receivers[0]!;
  assert.ok(Math.abs(r.linkFractionLost! - 0.04) < 1e-12, `link loss ${r.linkFractionLost}, the link lost 4 of 100`);
});

rtcp("a receiver not heard from for 25 s has left (RFC 3550 6.3.5): its row goes while the stream runs; back, it starts afresh", () => {
  assert.is(RECEIVER_TIMEOUT_MS, 25_000);
  const { table: t, streams } = streamsOf();
  const out = (seq: number, at: number): void => {
    const p = rtp(seq, seq * 3000);
    streams.time[0] = at;
    streams.egress(p, 0, p.length);
  };
  out(0, T0);
  for (const [k, at] of [[0, T0], [1, T0 + 5000]] as const) {
    const rr = receiverReport(0xbeef, SSRC, 0, 0, k, 0, 0, 0);
    streams.upstreamRtcp(rr, 0, rr.length, at);
  }
  const reporters = (): number[] => streams.snapshot().streams[0]!.receivers.map((r) => r.reporterSsrc);
  let seq = 1;
  for (let at = T0 + 1000; at <= T0 + 30_000; at += 1000) out(seq++, at); // the sender goes on
  t.roll(T0 + 5000 + 25_000);
  assert.equal(reporters(), [0xbeef], "25 s after its last report: not yet");
  out(seq++, T0 + 30_500);
  t.roll(T0 + 5000 + 25_001);
  assert.equal(reporters(), [], "past 25 s: gone, the stream still counted");
  assert.is(streams.snapshot().streams[0]!.egress!.packets, seq);
  const again = receiverReport(0xbeef, SSRC, 0, 0, seq - 1, 0, 0, 0);
  streams.upstreamRtcp(again, 0, again.length, T0 + 31_000);
  const [r] = streams.snapshot().streams[0]!.receivers;
  assert.equal([r!.reporterSsrc, r!.linkFractionLost], [0xbeef, null], "back: a first report again");
});

rtcp("an RTCP BYE from a receiver drops it at the next roll (before any snapshot); a report after it brings it back; other receivers and other segments' stay", () => {
  const table = new StreamTable(100, 30_000);
  const [a, b] = [new SegmentStreams(table, undefined), new SegmentStreams(table, undefined)];
  for (const s of [a, b]) feed(s, [[0, T0]]);
  const report = (s: SegmentStreams, reporter: number, at: number, ...then: Buffer[]): void => {
    const compound = Buffer.concat([receiverReport(reporter, SSRC, 0, 0, 0, 0, 0, 0), ...then]);
    s.upstreamRtcp(compound, 0, compound.length, at);
  };
  report(a, 0xcafe, T0 + 10);
  report(b, 0xbeef, T0 + 10);
  report(a, 0xbeef, T0 + 20, bye(0xbeef, 0xdead)); // RR and BYE in one compound, as RFC 3550 6.1 has it
  const reporters = (s: SegmentStreams): number[] => s.snapshot().streams[0]!.receivers.map((r) => r.reporterSsrc);
  table.roll(T0 + 30);
  assert.equal(reporters(a), [0xcafe], "0xbeef said BYE to a");
  assert.equal(reporters(b), [0xbeef], "not to b, which it still receives");
  report(a, 0xbeef, T0 + 40, bye(0xbeef)); // BYE again; then back
  report(a, 0xbeef, T0 + 50);
  table.roll(T0 + 60);
  assert.equal(reporters(a).sort(), [0xbeef, 0xcafe], "its report after its BYE: back");
});

rtcp("an XR Statistics Summary joins the same receiver's row; an unknown LSR gives no round trip; a field its flags leave out is null", () => {
  const { streams } = streamsOf();
  feed(streams, [[0, T0]]);
  const compound = Buffer.concat([receiverReport(0xbeef, SSRC, 0, 3, 10, 0, 0xdead, 0), xrSummary(0xbeef, SSRC, 7, 1800)]);
  streams.upstreamRtcp(compound, 0, compound.length, T0 + 10);
  const [r] = streams.snapshot().streams[0]!.receivers;
  assert.is(r!.rttMs, null);
  // the block says nothing of duplicates (its flag unset): null, not NaN (which /stats wrote as null and msmctl as "NaN")
  assert.equal(r!.xr, { lost: 7, duplicates: null, jitterMeanMs: 20 });
  assert.equal(JSON.parse(JSON.stringify(r)), r, "what /stats says of it reads back the same");
});

rtcp("SRTCP (an index and tag after the packets) and reports about other SSRCs are not read", () => {
  const { streams } = streamsOf();
  feed(streams, [[0, T0]]);
  const srtcp = Buffer.concat([receiverReport(0xbeef, SSRC, 200, 5, 10, 0, 0, 0), Buffer.alloc(14, 0x80)]);
  streams.upstreamRtcp(srtcp, 0, srtcp.length, T0);
  const other = receiverReport(0xbeef, 0x999, 200, 5, 10, 0, 0, 0);
  streams.upstreamRtcp(other, 0, other.length, T0);
  assert.equal(streams.snapshot().streams[0]!.receivers, []);
});

rtcp("an SR whose length leaves out its sender info is no SR forwarded: the packet after it is not read as its NTP time", () => {
  const { streams } = streamsOf();
  feed(streams, [[0, T0]]);
  // an SR header and SSRC only (length 1), then an RR whose words sit where the SR's NTP time would
  const cut = senderReport(SSRC, 0, 0).subarray(0, 8);
  cut.writeUInt16BE(1, 2);
  const after = receiverReport(0x12340000, 0x999, 0, 0, 0, 0, 0, 0);
  const compound = Buffer.concat([cut, after]);
  streams.downstreamRtcp(compound, 0, compound.length, T0 + 100);
  // a receiver naming the LSR those bytes would make: the RR's header word's low half (its length, 7), then its SSRC's high half
  const rr = receiverReport(0xbeef, SSRC, 0, 0, 10, 0, 0x0007_1234, 0);
  streams.upstreamRtcp(rr, 0, rr.length, T0 + 120);
  assert.is(streams.snapshot().streams[0]!.receivers[0]!.rttMs, null);
});

rtcp("a compound of more than 64 packets (a datagram of 4-byte ones costs thousands of steps) is not read; one of 64 is", () => {
  for (const [fillers, read] of [[63, true], [64, false], [16_000, false]] as const) {
    const { streams } = streamsOf();
    feed(streams, [[0, T0]]);
    const empty = Buffer.from([0x80, 201, 0, 0]); // an RR header alone: length 0
    const compound = Buffer.concat([...Array.from({ length: fillers }, () => empty), receiverReport(0xbeef, SSRC, 0, 0, 10, 0, 0, 0)]);
    streams.upstreamRtcp(compound, 0, compound.length, T0 + 10);
    streams.downstreamRtcp(compound, 0, compound.length, T0 + 10);
    assert.is(streams.snapshot().streams[0]!.receivers.length, read ? 1 : 0, `${fillers + 1} packets`);
  }
});

// ---- a real proxy ----

const proxySuite = suite("per-stream stats through a proxy", { timeoutMs: 30_000 });

proxySuite("a stream with known loss, a duplicate, a swapped pair and a receiver's RR, then its BYE: /stats and /metrics say so", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open(0, { keep: false });
  const receiverRtcp = await bindUdp();
  const { proxy } = await startProxy({
    streams: { max: 100 },
    segments: [{
      name: "cam", listen: { address: "127.0.0.1", port: listen },
      destinations: [{ address: "127.0.0.1", port: sink.port, rtcpPort: receiverRtcp.address().port }],
      egress: { address: "127.0.0.1", port: 0 },
    }],
  });
  const sender = await bindUdp();
  const drops = new DropWatch([listen]);
  try {
    const order: number[] = [];
    for (let i = 0; i < 300; i++) if (i < 100 || i > 104) order.push(i); // 100..104 never sent
    order.splice(order.indexOf(200) + 1, 0, 200); // 200 twice
    const a = order.indexOf(250);
    [order[a], order[a + 1]] = [order[a + 1]!, order[a]!]; // 251 before 250
    for (let k = 0; k < order.length; k++) {
      sender.send(indexedRtp(order[k]!), listen, "127.0.0.1");
      if (k % 20 === 19) await sleep(2);
    }
    // an SR downstream, and the receiver's RR naming it, 50 ms later by its own account
    let lsr = 0;
    receiverRtcp.once("message", (sr) => {
      lsr = sr.readUInt32BE(10); // middle of the NTP time
      const ports = proxy.stats().then((snap) => snap.segments[0]!.ports);
      void ports.then((p) => receiverRtcp.send(receiverReport(0xbeef, 0x1234abcd, 12, 5, 299, 450, lsr, 0x0ccc), p.egressRtcp!, "127.0.0.1"));
    });
    sender.send(senderReport(0x1234abcd, 0xe0000001, 0x00020000), listen + 1, "127.0.0.1");
    await waitFor(async () => (await segmentStats(proxy, "cam")).streams[0]?.receivers.length === 1, 5000, "the receiver's report");
    const kernelDropped = drops.since().total;
    const seg = await segmentStats(proxy, "cam");
    const st = seg.streams[0]!;
    assert.is(st.ssrc, 0x1234abcd);
    const inn = st.ingress!;
    assert.is(inn.expected, 300);
    // 5 never sent; each kernel drop is one more lost, unless it was a copy of the duplicate
    assert.is(inn.lost + (1 - inn.duplicates), 5 + kernelDropped, `lost ${inn.lost}, duplicates ${inn.duplicates}, ${kernelDropped} dropped by the kernel`);
    if (kernelDropped === 0) assert.equal([inn.lost, inn.duplicates, inn.reordered], [5, 1, 1]);
    const out = st.egress!;
    assert.is(out.packets, inn.packets - seg.dropsTotal, "egress: what came in, less what the segment dropped");
    assert.is(out.duplicates, inn.duplicates, "the proxy forwards duplicates (no validate in this chain)");
    const r = st.receivers[0]!;
    assert.is(r.reporterSsrc, 0xbeef);
    assert.ok(Math.abs(r.fractionLost - 12 / 256) < 1e-9);
    assert.ok(Math.abs(r.jitterMs - 5) < 1e-9);
    assert.ok(r.rttMs !== null && r.rttMs >= 0 && r.rttMs < 5000, `rtt ${r.rttMs}`);
    const metrics = renderPrometheus(await proxy.stats());
    assert.match(metrics, `msm_stream_packets_total{segment="cam",ssrc="0x1234abcd",direction="ingress"} ${inn.packets}\n`);
    assert.match(metrics, `msm_stream_lost_packets{segment="cam",ssrc="0x1234abcd",direction="ingress"} ${inn.lost}\n`);
    assert.match(metrics, `msm_stream_receiver_loss_ratio{segment="cam",ssrc="0x1234abcd",reporter="0x0000beef"} ${12 / 256}\n`);
    assert.match(metrics, /msm_stream_receiver_rtt_seconds\{segment="cam",ssrc="0x1234abcd",reporter="0x0000beef"\} \d/);
    // seconds to the microsecond the stats keep, without binary noise (0.0036160000000000003)
    for (const line of metrics.split("\n").filter((l) => /^msm_stream_(receiver_)?(jitter|rtt)_seconds/.test(l))) {
      assert.ok(/ \d+(\.\d{1,6})?(e-\d+)?$/.test(line), line);
    }
    // the receiver leaves: its last RR and a BYE
    const leaving = Buffer.concat([receiverReport(0xbeef, 0x1234abcd, 0, 5, 299, 450, 0, 0), bye(0xbeef)]);
    receiverRtcp.send(leaving, seg.ports.egressRtcp!, "127.0.0.1");
    await waitFor(async () => (await segmentStats(proxy, "cam")).streams[0]?.receivers.length === 0, 5000, "the receiver gone at its BYE");
    assert.not.ok(/reporter="0x0000beef"/.test(renderPrometheus(await proxy.stats())), "nor in /metrics");
  } finally {
    sender.close();
    receiverRtcp.close();
    sink.close();
    await proxy.close();
  }
});

proxySuite("through a proxy, its ingress and egress windows of a second hold the same packets and the dwell between them is not below zero", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const segments = [{ name: "s", listen: { address: "127.0.0.1", port: listen }, destinations: [{ address: "127.0.0.1", port: sink.port }] }];
  const { proxy } = await startProxy({ segments });
  const sender = await bindUdp();
  try {
    // 200 packets a second for 3.5 s: three whole seconds at both points
    await sendPaced(sender, listen, "127.0.0.1", 700, 200, (i) => indexedRtp(i));
    await waitFor(() => sink.received >= 700, 5000, "every packet through");
    await sleep(1100); // the last second ends
    const st = (await segmentStats(proxy, "s")).streams[0]!;
    const pairs = [[st.ingress!.window, st.egress!.window], [st.ingress!.previousWindow, st.egress!.previousWindow]];
    for (const [i, e] of pairs) {
      assert.ok(i && e && i.endMs === e.endMs, `windows of the same second: ${i?.endMs} and ${e?.endMs}`);
      if (i!.expected === 0) continue; // a second after the stream ended
      assert.equal([e!.expected, e!.lost, e!.packetRate], [i!.expected, i!.lost, i!.packetRate], `the second ending ${i!.endMs}: the same packets at both points`);
      assert.ok(e!.transitMs! - i!.transitMs! >= 0, `a dwell of ${e!.transitMs! - i!.transitMs!} ms`);
    }
  } finally {
    sender.close();
    sink.close();
    await proxy.close();
  }
});

proxySuite("a 2022-7 receiver: a redundant leg's packets count in the ingress, whose loss is then what neither path delivered", async () => {
  const base = await freePortRun(8);
  const sink = await Sink.open(0, { keep: false });
  // the same merge twice: path 1 marked redundant, and path 1 not (the ingress is path 0 alone)
  const merged = (name: string, listen: number, redundant: boolean) => ({
    name, listen: { address: "127.0.0.1", port: listen }, rtcpMux: true, destinations: [{ address: "127.0.0.1", port: sink.port }],
    legs: [{ name: "path1", portOffset: 2, send: false, ...(redundant ? { redundant: true } : {}) }],
    chain: [{ filter: "replicate", config: { merge: { legs: [0, 1], bufferMs: 50 } } }],
  });
  const { proxy } = await startProxy({
    filters: { replicate: { path: filterWasm("replicate") } },
    streams: { max: 100 },
    segments: [merged("both", base, true), merged("path0", base + 4, false)],
  });
  const sender = await bindUdp();
  const drops = new DropWatch([base, base + 2, base + 4, base + 6]);
  const COUNT = 300;
  const onPath0 = (i: number): boolean => i % 10 !== 3 && i !== 150;
  const onPath1 = (i: number): boolean => i % 10 !== 7 && i !== 150;
  try {
    for (let i = 0; i < COUNT; i++) {
      const p = indexedRtp(i);
      if (onPath0(i)) for (const port of [base, base + 4]) sender.send(p, port, "127.0.0.1");
      if (onPath1(i)) for (const port of [base + 2, base + 6]) sender.send(p, port, "127.0.0.1");
      if (i % 10 === 9) await sleep(2);
    }
    await waitFor(() => sink.received >= 2 * (COUNT - 1), 5000, "both merges' packets");
    await sleep(200);
    assert.is(drops.since().total, 0, "no kernel drop (the counts below would be off by it)");
    const both = (await segmentStats(proxy, "both")).streams[0]!;
    const path0 = (await segmentStats(proxy, "path0")).streams[0]!;
    const delivered = (on: (i: number) => boolean): number => Array.from({ length: COUNT }, (_, i) => i).filter(on).length;
    assert.equal(
      [both.ingress!.expected, both.ingress!.packets, both.ingress!.lost, both.ingress!.duplicates],
      [COUNT, COUNT - 1, 1, delivered(onPath0) + delivered(onPath1) - (COUNT - 1)],
      "the ingress of both paths: every packet either delivered, one lost on both, the second copies counted as duplicates",
    );
    assert.is(both.egress!.packets, COUNT - 1, "the merged stream leaves whole but for the packet neither path had");
    assert.equal([path0.ingress!.packets, path0.ingress!.lost], [delivered(onPath0), COUNT - delivered(onPath0)], "without redundant: path 0 alone");
  } finally {
    sender.close();
    sink.close();
    await proxy.close();
  }
});

proxySuite("streams.maxPerSegment: a sender cycling through 40 SSRCs gets 4 streams and the rest as ssrc=\"other\"; a second segment on the same worker still gets its stream", async () => {
  const [noisyPort, quietPort] = [await freePortPair(), await freePortPair()];
  const sink = await Sink.open();
  const to = [{ address: "127.0.0.1", port: sink.port }];
  const segments = [
    { name: "noisy", listen: { address: "127.0.0.1", port: noisyPort }, destinations: to },
    { name: "quiet", listen: { address: "127.0.0.1", port: quietPort }, destinations: to },
  ];
  const { proxy } = await startProxy({ workers: 1, streams: { max: 20, maxPerSegment: 4 }, segments });
  const sender = await bindUdp();
  try {
    for (let i = 0; i < 40; i++) sender.send(indexedRtp(i, 200, 0x1000 + i), noisyPort, "127.0.0.1");
    sender.send(indexedRtp(0, 200, 0x9999), quietPort, "127.0.0.1");
    await waitFor(() => sink.received === 41, 5000, "every packet through");
    const noisy = await segmentStats(proxy, "noisy");
    assert.is(noisy.streams.length, 4);
    assert.equal(noisy.streamsOverflow, { ingressPackets: 36, egressPackets: 36 });
    assert.equal((await segmentStats(proxy, "quiet")).streams.map((s) => s.ssrc), [0x9999]);
    const err = await proxy.apply({ ...proxy.currentConfig, streams: { ...proxy.currentConfig.streams, maxPerSegment: 8 } }).then(() => null, (e: Error) => e);
    assert.ok(err && /streams: cannot change while running/.test(err.message), String(err));
  } finally {
    sender.close();
    sink.close();
    await proxy.close();
  }
});

proxySuite("clockRates added by a reload reach the stream already flowing: /stats says 48000 from config, not 90000 assumed", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const segments = [{ name: "mic", listen: { address: "127.0.0.1", port: listen }, destinations: [{ address: "127.0.0.1", port: sink.port }] }];
  const { proxy } = await startProxy({ workers: 1, segments });
  const sender = await bindUdp();
  let i = 0;
  const opus = (): void => void sender.send(rtp(i, i++ * 960, 0x0b05, 111), listen, "127.0.0.1");
  const mic = async () => (await segmentStats(proxy, "mic")).streams.find((x) => x.ssrc === 0x0b05);
  try {
    await waitFor(async () => (opus(), (await mic()) !== undefined), 5000, "the stream counted");
    assert.equal([(await mic())!.clockRate, (await mic())!.clockRateFrom], [90000, "assumed"]);
    await proxy.apply({ ...proxy.currentConfig, segments: [{ ...proxy.currentConfig.segments[0]!, clockRates: { "111": 48000 } }] });
    await waitFor(async () => (opus(), (await mic())!.clockRate === 48000), 5000, "the stream's clock rate after the reload");
    assert.is((await mic())!.clockRateFrom, "config");
  } finally {
    sender.close();
    sink.close();
    await proxy.close();
  }
});

proxySuite("RTCP sent to the RTP port of a segment without rtcpMux is not taken for a stream (its header read as RTP named a stream 0x81ca000b)", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const segments = [{ name: "cam", listen: { address: "127.0.0.1", port: listen }, destinations: [{ address: "127.0.0.1", port: sink.port }] }];
  const { proxy } = await startProxy({ workers: 1, segments });
  const sender = await bindUdp();
  let i = 0;
  try {
    await waitFor(async () => {
      sender.send(indexedRtp(i++), listen, "127.0.0.1");
      // a sender (or a relay) that gets its ports wrong: an SR on the RTP port
      sender.send(senderReport(0x1234abcd, 0xe0000001, 0x00020000), listen, "127.0.0.1");
      return (await segmentStats(proxy, "cam")).streams.length > 0 && i > 20;
    }, 5000, "the stream counted");
    const cam = await segmentStats(proxy, "cam");
    assert.equal(cam.streams.map((x) => x.ssrc.toString(16)), ["1234abcd"], "the media's SSRC alone");
  } finally {
    sender.close();
    sink.close();
    await proxy.close();
  }
});

proxySuite("streams.max 0 turns them off; streams.max is fixed while running", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  const segments = [{ name: "s", listen: { address: "127.0.0.1", port: listen }, destinations: [{ address: "127.0.0.1", port: sink.port }] }];
  const { proxy } = await startProxy({ streams: { max: 0 }, segments });
  const sender = await bindUdp();
  try {
    sender.send(indexedRtp(0), listen, "127.0.0.1");
    await waitFor(() => sink.received === 1, 3000, "the packet");
    assert.equal((await segmentStats(proxy, "s")).streams, []);
    const err = await proxy.apply({ ...proxy.currentConfig, streams: { max: 10, maxPerSegment: 10, idleSeconds: 30 } }).then(() => null, (e: Error) => e);
    assert.ok(err && /streams: cannot change while running/.test(err.message), String(err));
  } finally {
    sender.close();
    sink.close();
    await proxy.close();
  }
});

table.run();
rtcp.run();
proxySuite.run();
