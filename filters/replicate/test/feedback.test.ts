// The replicate filter's feedback part: RTCP from many receivers reaches the sender as one
// receiver's would (README.md). Reports aggregate into one RR per interval with the worst
// numbers and a DLSR that covers the time held; keyframe requests and NACKs go on de-duplicated
// and rate limited; everything else, and anything malformed, is dropped and counted. All timing
// runs on the harness clock.
import * as assert from "uvu/assert";
import { Status, buildRtp } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import { rng } from "../../../test/lib/random.js";
import {
  AUDIO, VIDEO, UPSTREAM_RTCP, app, bye, compound, feedbackContext, fir, loadReplicate, nack, parseCompound,
  pli, readSent, remb, rr, rtcpPacket, sdes, sr, twcc, upstream, xr, type Block,
} from "./feedback-lib.js";

const test = suite("replicate feedback");

// Drop reasons (README.md "Drop reasons").
const MALFORMED = 270;
const MERGED = 271;
const DUPLICATE = 272;
const RATE_LIMITED = 273;
const NOT_FORWARDED = 274;
const NO_ROOM = 275;

const MS = 1000;
/** The harness clock's DLSR units for `us` microseconds held, as the filter computes them. */
const dlsrUnits = (us: number): number => Math.floor((us * 65536) / 1_000_000);

const receiver = (k: number): number => 0x7ec00000 + k;

// ---- receiver reports ----

test("five receivers' RRs at different losses: one RR per interval, with the worst numbers and the worst path's LSR, its DLSR grown by the time held", async () => {
  const { h, ctx } = await feedbackContext();
  const blocks: Block[] = [
    { ssrc: VIDEO, fractionLost: 0, cumulativeLost: 0, extendedHighest: 70_000, jitter: 10, lsr: 0x11110000, dlsr: 65536 },
    { ssrc: VIDEO, fractionLost: 10, cumulativeLost: 50, extendedHighest: 69_990, jitter: 300, lsr: 0x22220000, dlsr: 32768 },
    { ssrc: VIDEO, fractionLost: 50, cumulativeLost: 20, extendedHighest: 70_005, jitter: 40, lsr: 0x33330000, dlsr: 6553 },
    { ssrc: VIDEO, fractionLost: 25, cumulativeLost: 400, extendedHighest: 70_002, jitter: 20, lsr: 0x44440000, dlsr: 100 },
    { ssrc: VIDEO, fractionLost: 0, cumulativeLost: -3, extendedHighest: 70_001, jitter: 0, lsr: 0, dlsr: 0 },
  ];
  const t0 = h.nowUs;
  blocks.forEach((b, k) => {
    if (k > 0) assert.is(h.advanceTime(100 * MS).length, 0, "nothing is sent before the interval is up");
    const r = upstream(h, ctx, compound(rr(receiver(k), [b]), sdes(receiver(k), `rx${k}@example.net`)));
    assert.equal(r.reasons, [MERGED], "each receiver's compound is taken in");
    assert.is(r.sent.length, 0, "a report is never passed on by itself");
  });
  const out = h.advanceTime(600 * MS); // the timer armed by the first report fires at t0 + 1 s
  assert.is(out.length, 1);
  const sent = readSent(out[0]!);
  assert.is(sent.packets.length, 2, "RR and SDES only");
  assert.equal(sent.blocks, [{
    ssrc: VIDEO, fractionLost: 50, cumulativeLost: 400, extendedHighest: 69_990, jitter: 300,
    lsr: 0x33330000, dlsr: 6553 + dlsrUnits(t0 + 1000 * MS - (t0 + 200 * MS)),
  }]);
  assert.is(h.metric("feedback_report_blocks_in", ctx), 5);
  assert.is(h.metric("feedback_reports_sent", ctx), 1);
  assert.is(h.metric("feedback_receivers", ctx), 5);

  // The next interval reports the same receivers' latest state, held one second longer.
  const again = readSent(h.advanceTime(1000 * MS)[0]!);
  assert.is(again.blocks[0]!.dlsr, 6553 + dlsrUnits(1800 * MS));
  assert.is(again.blocks[0]!.fractionLost, 50);
});

test("each media source gets its block; an SR's report blocks count as a receiver's; a tie on fraction lost takes the block that has an LSR", async () => {
  const { h, ctx } = await feedbackContext({ reportIntervalMs: 500 });
  upstream(h, ctx,
    compound(rr(receiver(1), [{ ssrc: VIDEO, fractionLost: 3, lsr: 0, jitter: 9 }, { ssrc: AUDIO, fractionLost: 1, lsr: 0xaaaa0000, dlsr: 10 }])),
    compound(sr(receiver(2), [{ ssrc: VIDEO, fractionLost: 3, lsr: 0xbbbb0000, dlsr: 20, jitter: 5 }])),
  );
  const sent = readSent(h.advanceTime(500 * MS)[0]!);
  const byMedia = new Map(sent.blocks.map((b) => [b.ssrc, b]));
  assert.is(byMedia.size, 2);
  assert.equal([byMedia.get(VIDEO)!.lsr, byMedia.get(VIDEO)!.jitter, byMedia.get(VIDEO)!.dlsr], [0xbbbb0000, 9, 20 + dlsrUnits(500 * MS)]);
  assert.equal([byMedia.get(AUDIO)!.fractionLost, byMedia.get(AUDIO)!.lsr], [1, 0xaaaa0000]);
});

test("a worst block with no LSR is reported with LSR and DLSR 0 (the sender gets no round-trip time from it)", async () => {
  const { h, ctx } = await feedbackContext();
  upstream(h, ctx, rr(receiver(1), [{ ssrc: VIDEO, fractionLost: 9, lsr: 0, dlsr: 777 }]), rr(receiver(2), [{ ssrc: VIDEO, fractionLost: 2, lsr: 0x12340000, dlsr: 5 }]));
  const b = readSent(h.advanceTime(1000 * MS)[0]!).blocks[0]!;
  assert.equal([b.fractionLost, b.lsr, b.dlsr], [9, 0, 0]);
});

test("extended highest sequence: the furthest behind (a receiver past the wrap is ahead); cumulative lost: the highest, negative ones too", async () => {
  const { h, ctx } = await feedbackContext();
  upstream(h, ctx,
    rr(receiver(1), [{ ssrc: VIDEO, extendedHighest: 0x0001_0005, cumulativeLost: -7 }]),
    rr(receiver(2), [{ ssrc: VIDEO, extendedHighest: 0x0000_fff0, cumulativeLost: -2 }]),
  );
  const b = readSent(h.advanceTime(1000 * MS)[0]!).blocks[0]!;
  assert.equal([b.extendedHighest, b.cumulativeLost], [0x0000_fff0, -2]);
});

test("a late joiner counts fewer sequence cycles (RFC 3550 A.1): the aggregate keeps the early receivers' cycles, behind or ahead of them", async () => {
  const { h, ctx } = await feedbackContext();
  const cycles = (k: number, seq: number): number => k * 0x10000 + seq;
  // Receiver 1 joined three wraps ago; receiver 2 joined after the last wrap, 20 packets ahead.
  upstream(h, ctx, rr(receiver(1), [{ ssrc: VIDEO, extendedHighest: cycles(3, 100) }]), rr(receiver(2), [{ ssrc: VIDEO, extendedHighest: cycles(0, 120) }]));
  assert.is(readSent(h.advanceTime(1000 * MS)[0]!).blocks[0]!.extendedHighest, cycles(3, 100), "not the late joiner's 120");
  // Now the late joiner is the one behind: its position, in receiver 1's cycles.
  upstream(h, ctx, rr(receiver(1), [{ ssrc: VIDEO, extendedHighest: cycles(3, 300) }]), rr(receiver(2), [{ ssrc: VIDEO, extendedHighest: cycles(0, 250) }]));
  assert.is(readSent(h.advanceTime(1000 * MS)[0]!).blocks[0]!.extendedHighest, cycles(3, 250));
  // Receiver 1 just past a wrap, the late joiner just before it: one cycle fewer than receiver 1's.
  upstream(h, ctx, rr(receiver(1), [{ ssrc: VIDEO, extendedHighest: cycles(4, 5) }]), rr(receiver(2), [{ ssrc: VIDEO, extendedHighest: cycles(0, 65_530) }]));
  assert.is(readSent(h.advanceTime(1000 * MS)[0]!).blocks[0]!.extendedHighest, cycles(3, 65_530));
});

test("a late joiner past maxReceivers (not tracked) is also counted in the early receivers' cycles", async () => {
  const { h, ctx } = await feedbackContext({ maxReceivers: 1 });
  upstream(h, ctx, rr(receiver(1), [{ ssrc: VIDEO, extendedHighest: 0x3_0064 }]), rr(receiver(2), [{ ssrc: VIDEO, extendedHighest: 90 }]));
  assert.is(h.metric("feedback_receivers_overflow", ctx), 1);
  assert.is(readSent(h.advanceTime(1000 * MS)[0]!).blocks[0]!.extendedHighest, 0x3_0000 + 90);
});

test("the extended highest sequence the sender sees never drops by a wrap: when the receivers that count more cycles leave, it goes on in the numbering of the first receiver, across the next wrap too, with steps of more than half a wrap between reports", async () => {
  const { h, ctx } = await feedbackContext();
  const cycles = (k: number, seq: number): number => k * 0x10000 + seq;
  const report = (): number => readSent(h.advanceTime(1000 * MS)[0]!).blocks[0]!.extendedHighest;
  const seen: number[] = [];
  upstream(h, ctx, rr(receiver(1), [{ ssrc: VIDEO, extendedHighest: cycles(2, 65_520) }]), rr(receiver(2), [{ ssrc: VIDEO, extendedHighest: cycles(0, 65_530) }]));
  seen.push(report());
  upstream(h, ctx, rr(receiver(1), [{ ssrc: VIDEO, extendedHighest: cycles(3, 16) }]), rr(receiver(2), [{ ssrc: VIDEO, extendedHighest: cycles(1, 20) }]));
  seen.push(report());
  // The early receiver leaves: only the late joiner (one cycle) is left.
  upstream(h, ctx, compound(rr(receiver(1)), bye(receiver(1))), rr(receiver(2), [{ ssrc: VIDEO, extendedHighest: cycles(1, 40_000) }]));
  seen.push(report());
  upstream(h, ctx, rr(receiver(2), [{ ssrc: VIDEO, extendedHighest: cycles(1, 65_535) }]));
  seen.push(report());
  upstream(h, ctx, rr(receiver(2), [{ ssrc: VIDEO, extendedHighest: cycles(2, 30) }]));
  seen.push(report());
  // A receiver that joins now, a little behind and with no cycles, moves it back a little only.
  upstream(h, ctx, rr(receiver(3), [{ ssrc: VIDEO, extendedHighest: cycles(0, 10) }]));
  seen.push(report());
  assert.equal(seen, [cycles(2, 65_520), cycles(3, 16), cycles(3, 40_000), cycles(3, 65_535), cycles(4, 30), cycles(4, 10)]);
});

test("a receiver silent for receiverTimeoutMs leaves the aggregate; with none left, reports and the timer stop", async () => {
  const { h, ctx } = await feedbackContext({ receiverTimeoutMs: 3000 });
  upstream(h, ctx, rr(receiver(1), [{ ssrc: VIDEO, fractionLost: 200, jitter: 1000 }]));
  const seen: number[] = [];
  for (let s = 0; s < 5; s++) {
    upstream(h, ctx, rr(receiver(2), [{ ssrc: VIDEO, fractionLost: 5, jitter: 7 }]));
    seen.push(...h.advanceTime(1000 * MS).map((o) => readSent(o).blocks[0]!.fractionLost));
  }
  // Receiver 1 reported at t0; the timer at t0 + 4 s finds it silent for more than 3 s.
  assert.equal(seen, [200, 200, 200, 5, 5]);
  assert.is(h.metric("feedback_receivers_timed_out", ctx), 1);
  assert.is(h.metric("feedback_receivers", ctx), 1);
  const later = h.advanceTime(10_000 * MS);
  assert.ok(later.length >= 2 && later.length <= 4, `${later.length} reports while receiver 2 timed out`);
  assert.equal(h.timers().filter((t) => t.ctx === ctx), [], "nothing tracked: no timer");
  assert.is(h.metric("feedback_receivers", ctx), 0);
  assert.is(h.advanceTime(5000 * MS).length, 0);
});

test("BYE from a receiver takes it out of the aggregate at once and never reaches the sender", async () => {
  const { h, ctx } = await feedbackContext();
  upstream(h, ctx, rr(receiver(1), [{ ssrc: VIDEO, fractionLost: 100 }]), rr(receiver(2), [{ ssrc: VIDEO, fractionLost: 4 }]));
  const r = upstream(h, ctx, compound(rr(receiver(1)), bye(receiver(1))));
  assert.equal(r.reasons, [NOT_FORWARDED]);
  assert.is(r.sent.length, 0);
  assert.is(readSent(h.advanceTime(1000 * MS)[0]!).blocks[0]!.fractionLost, 4);
  assert.is(h.metric("feedback_dropped_bye", ctx), 1);
});

test("past maxReceivers, a receiver's block counts as the worst case in the next report only (counted), and the table stays at its maximum", async () => {
  const { h, ctx } = await feedbackContext({ maxReceivers: 2 });
  upstream(h, ctx, ...[1, 2, 3, 4].map((k) => rr(receiver(k), [{ ssrc: VIDEO, fractionLost: k * 10, jitter: k }])));
  assert.is(h.metric("feedback_receivers", ctx), 2);
  assert.is(h.metric("feedback_receivers_overflow", ctx), 2);
  assert.equal([readSent(h.advanceTime(1000 * MS)[0]!).blocks[0]!.fractionLost], [40]);
  assert.equal([readSent(h.advanceTime(1000 * MS)[0]!).blocks[0]!.fractionLost], [20], "then the tracked two only");
});

test("thousands of receivers: memory bounded by maxReceivers (default 1024), the rest counted", async () => {
  const { h, ctx } = await feedbackContext();
  const pagesBefore = (h.instance.memory.buffer.byteLength / 65536);
  for (let k = 0; k < 5000; k += 50) {
    upstream(h, ctx, ...Array.from({ length: 50 }, (_, i) => rr(receiver(k + i), [{ ssrc: VIDEO, fractionLost: 1 }])));
  }
  assert.is(h.metric("feedback_receivers", ctx), 1024);
  assert.is(h.metric("feedback_receivers_overflow", ctx), 5000 - 1024);
  assert.ok((h.instance.memory.buffer.byteLength / 65536) - pagesBefore <= 2, `memory grew by ${(h.instance.memory.buffer.byteLength / 65536) - pagesBefore} pages`);
});

// ---- keyframe requests ----

test("100 PLIs from 100 receivers within keyframeIntervalMs: one goes on; the next interval lets one more through; media sources are limited apart", async () => {
  const { h, ctx } = await feedbackContext();
  const reasons: number[] = [];
  const forwarded: number[] = [];
  for (let k = 0; k < 100; k += 20) {
    const r = upstream(h, ctx, ...Array.from({ length: 20 }, (_, i) => compound(rr(receiver(k + i)), pli(receiver(k + i), VIDEO))));
    reasons.push(...r.reasons);
    for (const s of r.sent) forwarded.push(...s.plis);
    h.advanceTime(90 * MS); // 100 requests over 450 ms
  }
  assert.equal(forwarded, [VIDEO]);
  assert.equal(reasons, [MERGED, ...Array<number>(99).fill(DUPLICATE)]);
  assert.is(h.metric("feedback_keyframe_requests_in", ctx), 100);
  assert.is(h.metric("feedback_keyframe_requests_forwarded", ctx), 1);
  assert.equal(upstream(h, ctx, pli(receiver(1), AUDIO)).sent.map((s) => s.plis), [[AUDIO]], "another source has its own limit");
  h.advanceTime(50 * MS); // 500 ms after the first
  assert.equal(upstream(h, ctx, pli(receiver(7), VIDEO)).sent.map((s) => s.plis), [[VIDEO]]);
});

test("FIR: forwarded with the filter's own sequence number, one more for each FIR it sends for that source (mod 256), never a receiver's", async () => {
  const { h, ctx } = await feedbackContext({ keyframeIntervalMs: 0 });
  const seqs: number[] = [];
  for (let k = 0; k < 300; k++) {
    const r = upstream(h, ctx, fir(receiver(k % 3), [{ ssrc: VIDEO, seq: 7 }]));
    for (const s of r.sent) {
      assert.equal(s.firs.map((f) => f.ssrc), [VIDEO]);
      seqs.push(s.firs[0]!.seq);
    }
  }
  assert.is(seqs.length, 300);
  seqs.forEach((s, i) => i > 0 && assert.is(s, (seqs[i - 1]! + 1) & 0xff, `FIR ${i}`));
  // Another source counts on its own; a FIR with entries for two sources forwards each.
  const both = upstream(h, ctx, fir(receiver(9), [{ ssrc: AUDIO, seq: 1 }, { ssrc: VIDEO, seq: 1 }])).sent[0]!;
  assert.equal(both.firs.map((f) => f.ssrc), [AUDIO, VIDEO]);
  assert.is(both.firs[1]!.seq, (seqs[299]! + 1) & 0xff);
});

test("a FIR within keyframeIntervalMs of a PLI for the same source is absorbed (one keyframe serves both)", async () => {
  const { h, ctx } = await feedbackContext();
  assert.equal(upstream(h, ctx, pli(receiver(1), VIDEO)).sent[0]!.plis, [VIDEO]);
  h.advanceTime(200 * MS);
  assert.equal(upstream(h, ctx, fir(receiver(2), [{ ssrc: VIDEO, seq: 0 }])), { reasons: [DUPLICATE], sent: [] });
  h.advanceTime(300 * MS);
  assert.is(upstream(h, ctx, fir(receiver(2), [{ ssrc: VIDEO, seq: 0 }])).sent[0]!.firs.length, 1);
});

// ---- NACK ----

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => (from + i) & 0xffff);

test("NACKs from two receivers: the union goes on, each sequence number once per nackIntervalMs, packed as PID + BLP", async () => {
  const { h, ctx } = await feedbackContext();
  const a = upstream(h, ctx, nack(receiver(1), VIDEO, range(100, 110)));
  assert.equal(a.sent[0]!.nacks.get(VIDEO), range(100, 110));
  h.advanceTime(20 * MS);
  const b = upstream(h, ctx, compound(rr(receiver(2)), nack(receiver(2), VIDEO, range(105, 140))));
  assert.equal(b.sent[0]!.nacks.get(VIDEO), range(111, 140), "only what was not asked for already");
  assert.is(b.sent[0]!.nackEntries, 2, "30 sequence numbers in two entries");
  h.advanceTime(20 * MS);
  assert.equal(upstream(h, ctx, nack(receiver(3), VIDEO, range(100, 140))), { reasons: [DUPLICATE], sent: [] });
  h.advanceTime(70 * MS); // 110 ms after the first: its numbers may go again, the second's (90 ms ago) not yet
  assert.equal(upstream(h, ctx, nack(receiver(3), VIDEO, range(100, 140))).sent[0]!.nacks.get(VIDEO), range(100, 110));
  assert.is(h.metric("feedback_nack_seqs_in", ctx), 11 + 36 + 41 + 41);
  assert.is(h.metric("feedback_nack_seqs_forwarded", ctx), 41 + 11);
});

test("NACK across the sequence wrap, for two media sources in one compound", async () => {
  const { h, ctx } = await feedbackContext();
  const s = upstream(h, ctx, compound(rr(receiver(1)), nack(receiver(1), VIDEO, range(65530, 65541)), nack(receiver(1), AUDIO, [1, 3, 40]))).sent[0]!;
  assert.equal(s.nacks.get(VIDEO), range(65530, 65541));
  assert.equal(s.nacks.get(AUDIO), [1, 3, 40]);
});

test("maxNacksPerSecond: the excess is refused and counted (not remembered, so a repeat may go later)", async () => {
  const { h, ctx } = await feedbackContext({ maxNacksPerSecond: 50 });
  const first = upstream(h, ctx, nack(receiver(1), VIDEO, range(1000, 1099)));
  assert.equal(first.reasons, [RATE_LIMITED]);
  assert.equal(first.sent[0]!.nacks.get(VIDEO), range(1000, 1049));
  assert.is(h.metric("feedback_nack_seqs_rate_limited", ctx), 50);
  h.advanceTime(500 * MS); // 25 more
  assert.equal(upstream(h, ctx, nack(receiver(2), VIDEO, range(1050, 1099))).sent[0]!.nacks.get(VIDEO), range(1050, 1074));
});

test("a NACK of scattered sequence numbers too long for one packet goes out in several compounds of at most 1200 bytes", async () => {
  const { h, ctx } = await feedbackContext();
  const seqs = Array.from({ length: 400 }, (_, i) => (i * 20) & 0xffff);
  const parts: number[][] = [];
  for (let k = 0; k < seqs.length; k += 100) {
    const r = upstream(h, ctx, nack(receiver(1), VIDEO, seqs.slice(k, k + 100)));
    for (const s of r.sent) parts.push(s.nacks.get(VIDEO)!);
  }
  assert.equal(parts.flat(), seqs);
  const big = await feedbackContext();
  const r = upstream(big.h, big.ctx, nack(receiver(1), VIDEO, seqs.slice(0, 300)));
  assert.is(r.sent.length, 2, "300 entries: more than one compound");
  assert.equal(r.sent.flatMap((s) => s.nacks.get(VIDEO)!), seqs.slice(0, 300));
});

test("an output area too full for the filter's compounds: each one lost is counted, none is half written", async () => {
  const { h, ctx } = await feedbackContext({ maxNacksPerSecond: 1_000_000, nackIntervalMs: 0 });
  // 64 NACKs of 300 numbers 20 apart (an entry each): two compounds apiece, 128 for the 64 output slots.
  const batch = Array.from({ length: 64 }, (_, k) => nack(receiver(k), VIDEO, Array.from({ length: 300 }, (_, i) => (i * 20 + k) & 0xffff)));
  const r = upstream(h, ctx, ...batch);
  assert.is(r.sent.length, 64);
  assert.is(h.metric("feedback_output_full", ctx), 64);
});

// ---- everything else ----

test("SDES, APP, XR, REMB, transport-cc and unknown types never reach the sender; each type is counted", async () => {
  const { h, ctx } = await feedbackContext();
  const r = upstream(h, ctx,
    compound(rr(receiver(1)), sdes(receiver(1), "a@b"), app(receiver(1)), xr(receiver(1)), remb(receiver(1), VIDEO), twcc(receiver(1), VIDEO), rtcpPacket(210, 0, new Uint8Array(4))),
    remb(receiver(2), VIDEO), // reduced-size (RFC 5506): a lone feedback packet
  );
  assert.equal(r, { reasons: [NOT_FORWARDED, NOT_FORWARDED], sent: [] });
  for (const [name, n] of [["sdes", 1], ["app", 1], ["xr", 1], ["feedback_other", 3], ["unknown", 1]] as const) {
    assert.is(h.metric(`feedback_dropped_${name}`, ctx), n, name);
  }
  assert.equal(h.timers(), [], "nothing tracked");
});

test("a full media-source table refuses a new source (counted) until the old one times out", async () => {
  const { h, ctx } = await feedbackContext({ maxMediaSources: 1, receiverTimeoutMs: 2000, reportIntervalMs: 1000 });
  assert.is(upstream(h, ctx, pli(receiver(1), VIDEO)).sent.length, 1);
  assert.equal(upstream(h, ctx, pli(receiver(1), AUDIO)), { reasons: [NO_ROOM], sent: [] });
  assert.is(h.metric("feedback_media_sources_full", ctx), 1);
  h.advanceTime(3000 * MS);
  assert.equal(upstream(h, ctx, pli(receiver(1), AUDIO)).sent[0]!.plis, [AUDIO]);
});

test("reporter SSRC: random per context unless configured, with a CNAME named after it unless configured", async () => {
  const h = await loadReplicate();
  const ssrcs: number[] = [];
  for (let k = 0; k < 2; k++) {
    const ctx = h.createContext({ feedback: {} });
    const o = h.runBatch([{ ctx, bytes: pli(receiver(1), VIDEO), flags: UPSTREAM_RTCP }]).outputs[0]!;
    const [rrPacket, sdesPacket] = parseCompound(o.bytes);
    const ssrc = rrPacket!.view.getUint32(4);
    ssrcs.push(ssrc);
    const cname = new TextDecoder().decode(sdesPacket!.bytes.slice(10, 10 + sdesPacket!.bytes[9]!));
    assert.is(cname, `msm-replicate-${ssrc.toString(16).padStart(8, "0")}`);
    readSent(o, ssrc);
  }
  assert.not.equal(ssrcs[0], ssrcs[1]);
  const ctx = h.createContext({ feedback: { reporterSsrc: 42, reporterCname: "edge-7@msm" } });
  const o = h.runBatch([{ ctx, bytes: pli(receiver(1), VIDEO), flags: UPSTREAM_RTCP }]).outputs[0]!;
  const [, sdesPacket] = parseCompound(o.bytes);
  assert.is(new TextDecoder().decode(sdesPacket!.bytes.slice(10, 20)), "edge-7@msm");
  readSent(o, 42);
});

// ---- hostile input ----

function withPadding(p: Uint8Array, padding: number): Uint8Array {
  const body = p.slice(4);
  return rtcpPacket(p[1]!, p[0]! & 0x1f, body, padding);
}

const MALFORMED_CASES: readonly [string, Uint8Array][] = [
  ["empty", new Uint8Array(0)],
  ["truncated header", rr(receiver(1)).slice(0, 3)],
  ["version 1", (() => { const b = rr(receiver(1)); b[0] = 0x40; return b; })()],
  ["length past the end", (() => { const b = rr(receiver(1), [{ ssrc: VIDEO }]); b[3] = 20; return b; })()],
  ["report count past the length", (() => { const b = rr(receiver(1), [{ ssrc: VIDEO }]); b[0] = 0x82; return b; })()],
  ["length not a multiple of 4", compound(rr(receiver(1)), new Uint8Array(2))],
  ["padding on a packet that is not last", compound(rr(receiver(1)), withPadding(sdes(receiver(1), "abc"), 4), pli(receiver(1), VIDEO))],
  ["padding count 0", withPadding(pli(receiver(1), VIDEO), 4).map((v, i, a) => (i === a.length - 1 ? 0 : v))],
  ["NACK without an entry", rtcpPacket(205, 1, new Uint8Array([0, 0, 0, 1, 0, 0, 0, 2]))],
  ["FIR with half an entry", rtcpPacket(206, 4, new Uint8Array([0, 0, 0, 1, 0, 0, 0, 0, 0x5e, 0x1d, 0, 1]))],
  ["feedback shorter than its header", rtcpPacket(206, 1, new Uint8Array([0, 0, 0, 1]))],
  ["SDES item past its chunk", compound(rr(receiver(1)), rtcpPacket(202, 1, new Uint8Array([0, 0, 0, 1, 1, 200, 0x61, 0])))],
];

for (const [name, bytes] of MALFORMED_CASES) {
  test(`malformed, dropped and counted, nothing used: ${name}`, async () => {
    const { h, ctx } = await feedbackContext();
    assert.equal(upstream(h, ctx, bytes), { reasons: [MALFORMED], sent: [] });
    assert.is(h.metric("feedback_malformed", ctx), 1);
    assert.equal(h.timers(), []);
  });
}

test("fuzz: 5000 mutated compounds never trap; each is dropped with one of the filter's reasons; whatever goes out is well formed", async () => {
  const { h, ctx } = await feedbackContext({ keyframeIntervalMs: 0, nackIntervalMs: 0 });
  const next = rng(0xfeedbac);
  const seeds = [
    compound(rr(receiver(1), [{ ssrc: VIDEO, fractionLost: 3 }]), sdes(receiver(1), "x@y"), nack(receiver(1), VIDEO, [1, 2, 5, 30])),
    compound(sr(receiver(2), [{ ssrc: AUDIO }]), fir(receiver(2), [{ ssrc: VIDEO, seq: 1 }]), pli(receiver(2), AUDIO), bye(receiver(2))),
    compound(rr(receiver(3)), app(receiver(3)), xr(receiver(3)), remb(receiver(3), VIDEO)),
  ];
  let outputs = 0;
  for (let round = 0; round < 100; round++) {
    const batch = Array.from({ length: 50 }, () => {
      const b = seeds[Math.floor(next() * seeds.length)]!.slice(0, undefined);
      const cut = next() < 0.2 ? Math.floor(next() * b.length) : b.length;
      for (let flips = 1 + Math.floor(next() * 4); flips > 0; flips--) b[Math.floor(next() * b.length)] = Math.floor(next() * 256);
      return b.slice(0, cut);
    });
    const r = upstream(h, ctx, ...batch);
    for (const reason of r.reasons) assert.ok(reason >= MALFORMED && reason <= NO_ROOM, `reason ${reason}`);
    outputs += r.sent.length + h.advanceTime(200 * MS).map((o) => readSent(o)).length;
  }
  assert.is(h.instance.failure, undefined);
  assert.ok(outputs > 0 && (h.metric("feedback_malformed", ctx) as number) > 0);
});

// ---- config ----

async function refusal(feedback: unknown): Promise<{ status: number; reason: string }> {
  return (await loadReplicate()).refusal({ feedback });
}

const BAD_CONFIG: readonly [unknown, RegExp][] = [
  [5, /config key 'feedback' must be an object/],
  [{ keyframeIntervalMs: -1 }, /config key 'feedback.keyframeIntervalMs' must be between 0 and 60000/],
  [{ nackIntervalMs: "100" }, /config key 'feedback.nackIntervalMs' must be an integer/],
  [{ maxNacksPerSecond: 1.5 }, /config key 'feedback.maxNacksPerSecond' must be an integer/],
  [{ reportIntervalMs: 50 }, /config key 'feedback.reportIntervalMs' must be between 100 and 60000/],
  [{ receiverTimeoutMs: 2000, reportIntervalMs: 5000 }, /'feedback.receiverTimeoutMs' must be at least 'feedback.reportIntervalMs'/],
  [{ maxReceivers: 0 }, /config key 'feedback.maxReceivers' must be between 1 and 65536/],
  [{ maxMediaSources: 32 }, /config key 'feedback.maxMediaSources' must be between 1 and 31/],
  [{ reporterSsrc: 4294967296 }, /config key 'feedback.reporterSsrc' must be between 0 and 4294967295/],
  [{ reporterCname: "" }, /config key 'feedback.reporterCname' must be 1 to 64 bytes/],
  [{ reporterCname: 7 }, /config key 'feedback.reporterCname' must be a string/],
  [{ keyframeInterval: 500 }, /unknown config key 'feedback.keyframeInterval'/],
];

for (const [feedback, message] of BAD_CONFIG) {
  test(`config refused, naming the field: ${JSON.stringify(feedback)}`, async () => {
    const r = await refusal(feedback);
    assert.is(r.status, Status.BadConfig);
    assert.match(r.reason, message);
  });
}

test("config: an empty feedback means the defaults; every key at its limits is accepted", async () => {
  const h = await loadReplicate();
  h.createContext({ feedback: {} });
  h.createContext({ feedback: { keyframeIntervalMs: 0, nackIntervalMs: 0, maxNacksPerSecond: 0, reportIntervalMs: 100, receiverTimeoutMs: 1000, maxReceivers: 1, maxMediaSources: 1, reporterSsrc: 0, reporterCname: "x" } });
  h.createContext({ feedback: { keyframeIntervalMs: 60000, nackIntervalMs: 10000, maxNacksPerSecond: 1000000, reportIntervalMs: 60000, receiverTimeoutMs: 3600000, maxReceivers: 65536, maxMediaSources: 31, reporterSsrc: 4294967295, reporterCname: "c".repeat(64) } });
  assert.is(h.instance.failure, undefined);
});

test("a receiver naming SSRCs the sender never sent cannot keep the sender's own media out of the full table", async () => {
  const { h, ctx } = await feedbackContext({ maxMediaSources: 4, receiverTimeoutMs: 60000 });
  // the sender's video goes down through the stage (leg 0)
  h.runBatch([0, 1, 2].map((i) => ({ ctx, bytes: buildRtp({ seq: 100 + i, ssrc: VIDEO, payloadSize: 100 }) })));
  // one hostile receiver takes every place with keyframe requests and reports about made-up SSRCs
  const made = [0x0bad0001, 0x0bad0002, 0x0bad0003, 0x0bad0004, 0x0bad0005];
  for (const ssrc of made.slice(0, 4)) upstream(h, ctx, pli(receiver(66), ssrc));
  assert.equal(upstream(h, ctx, pli(receiver(66), made[4]!)), { reasons: [NO_ROOM], sent: [] }, "a fifth made-up source is refused");
  // an honest receiver's requests and report about the video still go to the sender
  const honest = upstream(h, ctx, compound(rr(receiver(1), [{ ssrc: VIDEO, fractionLost: 12 }]), pli(receiver(1), VIDEO)), nack(receiver(1), VIDEO, [105]));
  assert.equal(honest.reasons, [MERGED, MERGED]);
  assert.equal(honest.sent.flatMap((s) => s.plis), [VIDEO]);
  assert.equal(honest.sent.flatMap((s) => s.nacks.get(VIDEO) ?? []), [105]);
  // and a made-up source does not push the video out again
  assert.equal(upstream(h, ctx, pli(receiver(66), made[4]!)).reasons, [NO_ROOM]);
  h.advanceTime(600 * MS);
  assert.equal(upstream(h, ctx, pli(receiver(1), VIDEO)).sent.flatMap((s) => s.plis), [VIDEO]);
});

test.run();
