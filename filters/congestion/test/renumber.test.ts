// priority.renumber: the sequence numbers a receiver sees have no gap where this filter dropped on
// purpose (priority drop, a full queue, the circuit breaker), across a 16-bit wrap, with reordered
// and late input, across a hot swap; and what comes back from downstream (generic NACK, receiver
// report blocks) reaches the origin in the origin's numbers.
import * as assert from "uvu/assert";
import { PacketFlag, buildRtp, type FilterHarness, type PacketResult } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import { emptyReceiverReport } from "../../../test/lib/rtcp-cc.js";
import { decodeRtcp } from "../../../test/lib/rtcp-decode.js";
import { receiverReport as rrFrom } from "../../../test/lib/rtcp-build.js";
import { SSRC, h264Packet, loadCongestion, seqOf, type FrameKind } from "./cc-lib.js";

const test = suite("congestion: renumbering after deliberate drops", { timeoutMs: 60_000 });

const REPORTER = 0x5eed0001;
/** Non-reference frames go whenever anything waits in the queue; reference frames stay. */
const PRIORITY = { h264PayloadTypes: [96], nonReferenceMs: 0, referenceMs: 10_000 };
/** renumber on: with rtxPayloadTypes [] (no RTX) unless `more.priority` says otherwise. */
const config = (renumber: boolean, more: Record<string, unknown> = {}): Record<string, unknown> => ({
  mode: "sender", startBps: 1_000_000, priority: { ...PRIORITY, renumber, rtxPayloadTypes: [] }, signal: { tmmbr: false, remb: false }, ...more,
});

/** Where an RTP packet's payload starts (after CSRCs and header extension). */
function payloadStart(b: Uint8Array): number {
  let at = 12 + 4 * (b[0]! & 0x0f);
  if (b[0]! & 0x10) at += 4 + 4 * ((b[at + 2]! << 8) | b[at + 3]!);
  return at;
}

/** A packet of an H.264 frame whose payload carries its own input number (bytes 2-3 after the FU header), to be recognised after. */
function packet(seq: number, ts: number, kind: FrameKind, first: boolean, last: boolean, size = 1100, ssrc = SSRC): Uint8Array {
  const b = h264Packet(seq & 0xffff, ts >>> 0, kind, { first, last, size, ssrc });
  b[14] = (seq >> 8) & 0xff;
  b[15] = seq & 0xff;
  for (let i = 16; i < b.length; i++) b[i] = (seq * 7 + i) & 0xff;
  return b;
}

const ssrcOf = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset).getUint32(8);

const markerOf = (b: Uint8Array): number => {
  const at = payloadStart(b);
  return (b[at + 2]! << 8) | b[at + 3]!;
};

/** One sender context and everything it let go downstream, in order. */
class Run {
  readonly out: Uint8Array[] = [];
  readonly sent = new Map<number, Uint8Array>();
  constructor(readonly h: FilterHarness, readonly ctx: number) {}

  send(packets: Uint8Array[]): PacketResult[] {
    for (const p of packets) this.sent.set(seqOf(p), p);
    const r = this.h.runBatch(packets.map((bytes) => ({ ctx: this.ctx, bytes })));
    for (const p of r.packets) if (p.verdict === "pass") this.out.push(p.bytes);
    for (const o of r.outputs) if (!(o.flags & PacketFlag.Upstream)) this.out.push(o.bytes);
    return r.packets;
  }

  advance(ms: number): void {
    for (let t = 0; t < ms; t++) for (const o of this.h.advanceTime(1000)) if (!(o.flags & PacketFlag.Upstream)) this.out.push(o.bytes);
  }

  /** The numbers that left for one SSRC, in order. */
  seqsOf(ssrc: number): number[] {
    return this.out.filter((o) => ssrcOf(o) === ssrc).map(seqOf);
  }

  metric(name: string): number {
    const v = this.h.metric(name, this.ctx);
    if (typeof v !== "number") throw new Error(`metric ${name} is ${JSON.stringify(v)}`);
    return v;
  }

  upstream(bytes: Uint8Array): PacketResult {
    return this.h.run({ ctx: this.ctx, bytes, flags: PacketFlag.Rtcp | PacketFlag.Upstream });
  }
}

async function start(renumber = true, more: Record<string, unknown> = {}, startUs = 0): Promise<Run> {
  const h = await loadCongestion({ startUs });
  return new Run(h, h.createContext(config(renumber, more)));
}

/**
 * `steps` times: a reference frame of 4 packets (some wait in the pacer) and at once a non-reference
 * frame of 2, which finds the queue not empty and is dropped; then 100 ms for the queue to empty.
 * Input numbers from `first` on (taken mod 2^16): per step, 4 kept, 2 dropped. (No IDR: a queued
 * keyframe does not count toward the queue the priority drop looks at.)
 */
function refAndDropped(run: Run, first: number, steps: number, tsFrom = 0, ssrc = SSRC): void {
  for (let k = 0; k < steps; k++) {
    const base = first + 6 * k;
    const ts = (tsFrom + 2 * k) * 3000;
    const ref = [0, 1, 2, 3].map((i) => packet(base + i, ts, "ref", i === 0, i === 3, 1100, ssrc));
    const nonref = [4, 5].map((i) => packet(base + i, ts + 3000, "nonref", i === 4, i === 5, 300, ssrc));
    const verdicts = run.send([...ref, ...nonref]);
    assert.ok(verdicts.slice(0, 4).every((v) => v.verdict !== "drop"), `step ${k}: the reference frame is kept`);
    assert.ok(verdicts.slice(4).every((v) => v.reasonName === "non_reference"), `step ${k}: the non-reference frame is dropped: ${verdicts.map((v) => v.reasonName || v.verdict)}`);
    run.advance(100);
  }
}

/** The output numbers are contiguous from `from` (mod 2^16) and each payload is that of the admitted input `inputs[i]`, byte for byte. */
function assertContiguous(run: Run, from: number, inputs: number[]): void {
  assert.equal(run.out.map(seqOf), inputs.map((_, i) => (from + i) & 0xffff), "no gap in the numbers the receiver sees");
  assert.equal(run.out.map(markerOf), inputs.map((x) => x & 0xffff), "the admitted packets, in order");
  for (const o of run.out) {
    const input = run.sent.get(markerOf(o))!;
    assert.equal(Buffer.from(o.subarray(payloadStart(o))), Buffer.from(input.subarray(12)), "payload as it came");
  }
}

/** Input numbers of the reference frames of refAndDropped. */
const keptOf = (first: number, steps: number): number[] => Array.from({ length: steps * 4 }, (_, i) => first + 6 * Math.floor(i / 4) + (i % 4));

/** A compound [empty RR][generic NACK about SSRC with these (PID, BLP) entries] from downstream. */
function nack(entries: [number, number][], media = SSRC): Uint8Array {
  const rr = emptyReceiverReport(REPORTER);
  const b = Buffer.alloc(rr.length + 12 + 4 * entries.length);
  b.set(rr);
  const at = rr.length;
  b[at] = 0x81;
  b[at + 1] = 205;
  b.writeUInt16BE(2 + entries.length, at + 2);
  b.writeUInt32BE(REPORTER, at + 4);
  b.writeUInt32BE(media >>> 0, at + 8);
  entries.forEach(([pid, blp], i) => {
    b.writeUInt16BE(pid & 0xffff, at + 12 + 4 * i);
    b.writeUInt16BE(blp, at + 14 + 4 * i);
  });
  return b;
}

/** A receiver report with one block about SSRC (jitter, LSR and DLSR 0). */
const receiverReport = (highest: number, cumulative: number, fraction = 0): Uint8Array => rrFrom(REPORTER, SSRC, fraction, cumulative, highest, 0, 0, 0);

/** The input number of output o in refAndDropped from 0. */
const outputToInput = (o: number): number => 6 * Math.floor(o / 4) + (o % 4);

/** The (output) number input x leaves with in refAndDropped from `first`: 4 of every 6 kept. */
const outputOf = (first: number, x: number): number => first + 4 * Math.floor((x - first) / 6) + ((x - first) % 6);

test("frames dropped by priority drop leave no gap: the packets that leave are numbered on without one, and are the admitted frames, in order", async () => {
  const run = await start();
  refAndDropped(run, 1000, 10);
  assertContiguous(run, 1000, keptOf(1000, 10));
  assert.is(run.metric("dropped_non_reference"), 20);
  assert.is(run.metric("dropped_renumber_late"), 0);
});

test("across the 16-bit wrap, for every start near it", async () => {
  for (const first of [65_520, 65_530, 65_533, 65_535]) {
    const run = await start();
    refAndDropped(run, first, 8);
    assertContiguous(run, first, keptOf(first, 8));
  }
});

test("off by default: the numbers go on as they came, with the gaps; on needs the stream's RTX payload types, none of them an H.264 one", async () => {
  const h = await loadCongestion({ startUs: 0 });
  const cfg = config(true);
  delete (cfg.priority as Record<string, unknown>).renumber;
  const byDefault = new Run(h, h.createContext(cfg));
  refAndDropped(byDefault, 1000, 5);
  assert.equal(byDefault.out.map(seqOf), keptOf(1000, 5));
  const off = await start(false);
  refAndDropped(off, 1000, 5);
  assert.equal(off.out.map(seqOf), keptOf(1000, 5));
  const noRtx = config(true);
  delete (noRtx.priority as Record<string, unknown>).rtxPayloadTypes;
  assert.match(h.refusal(noRtx).reason, "config key 'priority.renumber' needs 'priority.rtxPayloadTypes'");
  assert.match(h.refusal(config(true, { priority: { ...PRIORITY, renumber: true, rtxPayloadTypes: [96] } })).reason, "config key 'priority.rtxPayloadTypes' lists 96, which 'priority.h264PayloadTypes' lists too");
});

test("a frame cut by a full queue (its queued part discarded) leaves no gap", async () => {
  const run = await start(true, { startBps: 200_000, pacing: { maxQueuePackets: 8 } });
  let seq = 40_000;
  const inputs: number[] = [];
  const frame = (ts: number, kind: FrameKind, n: number): PacketResult[] => {
    const ps = Array.from({ length: n }, (_, i) => packet(seq + i, ts, kind, i === 0, i === n - 1));
    const r = run.send(ps);
    r.forEach((v, i) => v.verdict !== "drop" && inputs.push(seq + i));
    seq += n;
    return r;
  };
  frame(0, "idr", 3);
  run.advance(300);
  const cut = frame(3000, "ref", 14); // more than the queue holds: cut, and the queued part discarded
  assert.ok(cut.some((v) => v.reasonName === "queue_full"), "the frame is cut");
  run.advance(500);
  frame(6000, "idr", 3); // the next IDR
  run.advance(500);
  const discarded = run.metric("dropped_queue_full") - cut.filter((v) => v.verdict === "drop").length;
  assert.ok(discarded > 0, "part of the frame was discarded from the queue");
  const kept = inputs.filter((x) => run.out.some((o) => markerOf(o) === x));
  assertContiguous(run, 40_000, kept);
  assert.is(kept.length + run.metric("dropped_queue_full"), 20, "every packet left or was counted");
});

test("the queue flushed when the circuit breaker opens, and the flow dropped while it is open, leave no gap", async () => {
  const run = await start(true, { startBps: 1_000_000, minBps: 150_000, circuitBreaker: { intervals: 1, cooldownSeconds: 2 } });
  let seq = 10;
  const allLost = receiverReport(0, 0, 255);
  let breakerVerdicts = 0;
  const second = (reports: boolean, size = 1200): void => {
    // 1.9 Mbit/s into a 1.1 Mbit/s pacer: a queue stands when the breaker opens
    for (let k = 0; k < 200; k++) {
      const r = run.send([buildRtpMarked(seq++, size)]);
      if (r[0]!.reasonName === "circuit_breaker") breakerVerdicts++;
      run.advance(5);
    }
    if (reports) run.upstream(allLost);
  };
  for (let s = 0; s < 8 && run.metric("circuit_breaker_trips") === 0; s++) second(true);
  assert.is(run.metric("circuit_breaker_trips"), 1, "the breaker tripped");
  assert.ok(run.metric("dropped_circuit_breaker") > breakerVerdicts, `its queue was flushed too: ${run.metric("dropped_circuit_breaker")} > ${breakerVerdicts}`);
  const before = run.out.length;
  // then below 1.25 x minBps, which cannot trip it again
  for (let s = 0; s < 4; s++) second(false, 80);
  assert.is(run.metric("circuit_breaker_open"), 0, "closed after the cooldown");
  assert.ok(breakerVerdicts > 0 && run.out.length > before + 100, "media dropped while open, and forwarded again after");
  const seen = run.out.map(markerOf);
  assert.equal(run.out.map(seqOf), seen.map((_, i) => 10 + i), "no gap before, across and after");
});

/** Plain RTP (not H.264) whose payload carries its input number as markerOf reads it. */
function buildRtpMarked(seq: number, size: number): Uint8Array {
  const b = buildRtp({ seq: seq & 0xffff, timestamp: seq * 900, ssrc: SSRC, payloadSize: size });
  b[14] = (seq >> 8) & 0xff;
  b[15] = seq & 0xff;
  return b;
}

test("reordered input near a drop maps consistently (no number given twice); a copy of a dropped packet and one older than the history are dropped and counted", async () => {
  const run = await start();
  refAndDropped(run, 100, 1); // 100-103 kept (0-3), 104-105 dropped
  // the next frame's packets come 107, 106, 108, 109
  run.send([packet(107, 6000, "ref", false, false), packet(106, 6000, "ref", true, false)]);
  run.send([packet(108, 6000, "ref", false, false), packet(109, 6000, "ref", false, true)]);
  run.advance(100);
  assert.equal(run.out.map(markerOf), [100, 101, 102, 103, 107, 106, 108, 109]);
  assert.equal(run.out.map(seqOf), [100, 101, 102, 103, 105, 104, 106, 107], "each its own number: the order of the input kept");
  assert.is(new Set(run.out.map(seqOf)).size, run.out.length, "no duplicate");
  // a copy of 104 (dropped): its number went to 106
  const late = run.send([packet(104, 3000, "nonref", true, true, 300)]);
  assert.is(late[0]!.reasonName, "renumber_late");
  assert.is(run.metric("dropped_renumber_late"), 1);
  // 40 more steps push the first drops out of the 32 ranges remembered: 101 is then older than the history
  refAndDropped(run, 110, 40, 10);
  const old = run.send([packet(101, 0, "ref", false, false)]);
  assert.is(old[0]!.reasonName, "renumber_late", "older than the history");
  assert.is(run.metric("dropped_renumber_late"), 2);
  const seqs = run.out.map(seqOf);
  assert.is(new Set(seqs).size, seqs.length, "no number given twice");
  assert.equal(seqs.slice(8), seqs.slice(8).map((_, i) => 108 + i), "and no gap after");
});

test("a NACK from downstream naming output numbers reaches the origin naming the input numbers, a BLP across a dropped range included", async () => {
  const run = await start();
  refAndDropped(run, 1000, 6); // input 1000-1003 -> 1000-1003, 1006-1009 -> 1004-1007, ...
  // PID 1001, BLP: 1002, 1004, 1005 (across the first drop) -> 1001, then 1002, 1006, 1007
  const r = run.upstream(nack([[1001, 0b1101]]));
  assert.is(r.verdict, "pass");
  const n = decodeRtcp(r.bytes).find((p) => p.type === "NACK");
  assert.ok(n && n.type === "NACK");
  assert.equal(n.lost, [1001, 1002, 1006, 1007]);
  assert.equal(n.pairs, [{ pid: 1001, blp: 0b110001 }]);
  assert.equal(n.media, SSRC);
  assert.is(run.metric("renumber_nack_dropped"), 0);
  // a NACK about another SSRC passes untouched
  const other = nack([[1001, 0b1101]], 0x12345678);
  assert.equal(Buffer.from(run.upstream(other).bytes), Buffer.from(other));
});

test("a NACK whose input numbers need more FCI entries than it had: those that fit are written, the rest counted; one with none left goes", async () => {
  const run = await start();
  refAndDropped(run, 0, 10);
  // outputs 0-16 (PID 0, all 16 bits) and 30: inputs 0-3, 6-9, 12-15, 18-21, 24 (two entries now:
  // PID 0 and PID 18) and 44, for which no third entry is left
  const r = run.upstream(nack([[0, 0xffff], [30, 0]]));
  const n = decodeRtcp(r.bytes).find((p) => p.type === "NACK");
  assert.ok(n && n.type === "NACK");
  const want = Array.from({ length: 17 }, (_, o) => outputToInput(o));
  assert.equal(n.lost, want, "two entries, as it came with");
  assert.equal(n.pairs.map((x) => x.pid), [0, 18]);
  assert.is(run.metric("renumber_nack_dropped"), 1, "44 did not fit, and is counted");
  // a NACK only about a number older than the history (41 drop ranges, 32 remembered): the NACK goes, the RR stays
  const fresh = await start();
  refAndDropped(fresh, 0, 41);
  const gone = fresh.upstream(nack([[7, 0]]));
  assert.equal(decodeRtcp(gone.bytes).map((p) => p.type), ["RR"]);
  assert.is(fresh.metric("renumber_nack_dropped"), 1);
  // in the middle of a compound: what follows it moves up, byte for byte
  const pli = Buffer.alloc(12);
  pli.writeUInt32BE(0x81ce0002, 0);
  pli.writeUInt32BE(REPORTER, 4);
  pli.writeUInt32BE(SSRC, 8);
  const middle = fresh.upstream(Buffer.concat([nack([[7, 0]]), pli]));
  assert.equal(decodeRtcp(middle.bytes).map((p) => p.type), ["RR", "PLI"]);
  assert.equal(Buffer.from(middle.bytes.subarray(8)), pli);
});

test("a receiver report's extended highest number and cumulative lost go back to the origin's view, across the wrap", async () => {
  const first = 65_530;
  const run = await start();
  refAndDropped(run, first, 6); // inputs to 65_565 (wrapped), outputs to 65_553
  const lastOut = outputOf(first, first + 33); // the last kept input: step 5, packet 3
  assert.is(lastOut, first + 23);
  const r = run.upstream(receiverReport(lastOut, 3)); // the receiver's cycles count: 0x10000 | low bits
  const block = decodeRtcp(r.bytes).find((p) => p.type === "RR")!;
  assert.ok(block.type === "RR");
  assert.is(block.blocks[0]!.highestSeq, first + 33, "the input's extended number (one cycle on)");
  assert.is(block.blocks[0]!.cumulativeLost, 3 + 10, "the path's 3 and the 10 this filter dropped below it");
  // a report about a number between drops: only the drops below it added
  const mid = run.upstream(receiverReport(outputOf(first, first + 7), 0));
  const b2 = decodeRtcp(mid.bytes).find((p) => p.type === "RR")!;
  assert.ok(b2.type === "RR");
  assert.is(b2.blocks[0]!.highestSeq, first + 7);
  assert.is(b2.blocks[0]!.cumulativeLost, 2);
});

test("the origin's fraction lost: from the reporter's last block, this filter's drops counted, as RFC 3550 A.3 computes it", async () => {
  const run = await start();
  refAndDropped(run, 0, 6);
  const fractionOf = (r: PacketResult): number => {
    const rr = decodeRtcp(r.bytes).find((p) => p.type === "RR")!;
    assert.ok(rr.type === "RR");
    return rr.blocks[0]!.fractionLost;
  };
  // the first block of a reporter: nothing to count from, the receiver's fraction stays
  assert.is(fractionOf(run.upstream(receiverReport(outputOf(0, 33), 0, 7))), 7);
  refAndDropped(run, 36, 4, 12);
  // 24 more numbers up to input 57: 8 dropped here, 2 lost on the path (the receiver's 2 of 16)
  const r = run.upstream(receiverReport(outputOf(0, 57), 2, 32));
  const block = decodeRtcp(r.bytes).find((p) => p.type === "RR")!;
  assert.ok(block.type === "RR");
  assert.equal([block.blocks[0]!.highestSeq, block.blocks[0]!.cumulativeLost], [57, 2 + 18]);
  assert.is(fractionOf(r), Math.floor(((2 + 8) * 256) / 24));
  // another reporter's first block: its own fraction stays
  const other = Buffer.from(receiverReport(outputOf(0, 57), 2, 32));
  other.writeUInt32BE(0x5eed0002, 4);
  assert.is(fractionOf(run.upstream(other)), 32);
});

test("the filter's own loss from receiver reports is not corrected twice: with renumbering the receiver's loss is the path's", async () => {
  const loss = async (renumber: boolean): Promise<number> => {
    const run = await start(renumber, { startBps: 1_000_000 });
    refAndDropped(run, 0, 8); // 0.8 s, a third of the packets dropped here
    run.upstream(receiverReport(100, 0, 51)); // 20% lost
    run.advance(400);
    return run.metric("loss_per_mille");
  };
  const on = await loss(true);
  const off = await loss(false);
  assert.is(on, Math.trunc((51 / 256) * 1000), "renumbered: the receiver's 20% is the hop's");
  assert.ok(off < on, `without renumbering the filter's own share is taken out: ${off}`);
});

test("a hot swap carries the renumbering: the new instance numbers on, and maps NACKs about the old one's numbers", async () => {
  const old = await start();
  refAndDropped(old, 500, 5);
  const blob = old.h.exportState(old.ctx)!;
  const h = await loadCongestion({ startUs: old.h.nowUs });
  const fresh = new Run(h, h.createContext(config(true)));
  assert.equal(h.importState(fresh.ctx, blob), { ok: true, reason: "" });
  refAndDropped(fresh, 530, 5, 10);
  const seqs = [...old.out, ...fresh.out].map(seqOf);
  assert.equal(seqs, seqs.map((_, i) => 500 + i), "numbers go on across the swap, no gap, no jump back");
  const r = fresh.upstream(nack([[outputOf(500, 507), 0], [outputOf(500, 537), 0]]));
  const n = decodeRtcp(r.bytes).find((p) => p.type === "NACK");
  assert.ok(n && n.type === "NACK");
  assert.equal(n.lost, [507, 537]);
  // a blob cut short inside the renumbering section is refused
  const bad = h.importState(h.createContext(config(true)), blob.subarray(0, 70));
  assert.equal(bad.ok, false);
  // a version-4 blob (the build before renumbering: the same without the section) is read: that
  // instance forwarded numbers as they came, and so does the new one until it drops
  const sourcesEnd = 58 + 4 * blob[57]!; // the SSRC count at 57, the SSRCs after it
  const ranges = blob[sourcesEnd + 1 + 4 + 40]!;
  const retiredAt = sourcesEnd + 1 + 4 + 40 + 1 + 24 * ranges; // (version 6) the retired sources' count
  assert.is(blob[retiredAt], 0, "no source retired");
  const v4 = Uint8Array.from([...blob.subarray(0, sourcesEnd), ...blob.subarray(retiredAt + 1)]);
  v4[0] = 4;
  assert.is(blob[sourcesEnd], 1, "one SSRC renumbered");
  // a version-5 blob (no retired sources) numbers on as the version-6 one does
  const v5 = Uint8Array.from([...blob.subarray(0, retiredAt), ...blob.subarray(retiredAt + 1)]);
  v5[0] = 5;
  const fromV5 = new Run(h, h.createContext(config(true)));
  assert.equal(h.importState(fromV5.ctx, v5), { ok: true, reason: "" });
  refAndDropped(fromV5, 530, 1, 10);
  assert.equal(fromV5.out.map(seqOf), [520, 521, 522, 523], "on from the old instance's numbers");
  const older = new Run(h, h.createContext(config(true)));
  assert.equal(h.importState(older.ctx, v4), { ok: true, reason: "" });
  older.send([packet(600, 90_000, "ref", true, true)]);
  assert.equal(older.out.map(seqOf), [600]);
});

test("a packet waiting in the queue while the origin's numbers jump by more than 32768 leaves with the number it came for", async () => {
  const run = await start(true, { startBps: 300_000 });
  // 1000-1003 (three of them wait in the pacer), 1004-1005 dropped; then the origin's numbers move
  // on by 40,000 in two steps (each less than 32768: the newest number moves) while they wait
  const ref = [0, 1, 2, 3].map((i) => packet(1000 + i, 0, "ref", i === 0, i === 3));
  const nonref = [4, 5].map((i) => packet(1000 + i, 3000, "nonref", i === 4, i === 5, 300));
  run.send([...ref, ...nonref]);
  assert.ok(run.out.length < 4, "some wait");
  run.send([packet(21_006, 6000, "ref", true, true), packet(41_006, 9000, "ref", true, true)]);
  run.advance(500);
  assert.equal(run.out.map(markerOf), [1000, 1001, 1002, 1003, 21_006, 41_006]);
  // extended against the newest number when it left, a waiting packet read 2^16 on, and the two drops after it counted below it
  assert.equal(run.out.map(seqOf), [1000, 1001, 1002, 1003, 21_004, 41_004], "each its own number: the jumps passed on less the drops");
});

test("SSRC churn: a source silent for 5 s gives its slot to a new one, which is renumbered too; one that comes back numbers on where it was", async () => {
  const run = await start();
  // ten senders one after another (a camera restarting under a new SSRC), each dropping
  const sources = Array.from({ length: 10 }, (_, i) => SSRC + 0x100 * (i + 1));
  sources.forEach((ssrc, i) => {
    refAndDropped(run, 1000 * (i + 1), 3, 100 * i, ssrc);
    run.advance(100);
    run.h.advanceTime(5_000_000); // silent for 5 s
  });
  sources.forEach((ssrc, i) => {
    const first = 1000 * (i + 1);
    assert.equal(run.seqsOf(ssrc), Array.from({ length: 12 }, (_, k) => first + k), `source ${i + 1} of 10: no gap`);
  });
  assert.is(run.metric("dropped_renumber_late"), 0);
  // the first source, whose slot went to the ninth, comes back where its numbers were: on less its 6 drops
  refAndDropped(run, 1018, 2, 3000, sources[0]);
  assert.equal(run.seqsOf(sources[0]!), Array.from({ length: 20 }, (_, k) => 1000 + k), "no jump back by the drops it had");
  // eight sources busy: a ninth within 5 s of them is not renumbered (its numbers as they came, with the gaps)
  const busy = await start();
  const many = Array.from({ length: 9 }, (_, i) => SSRC + 0x10000 * (i + 1));
  many.forEach((ssrc, i) => refAndDropped(busy, 1000 * (i + 1), 2, 10 * i, ssrc));
  assert.equal(busy.seqsOf(many[8]!), keptOf(9000, 2), "the ninth with its gaps");
  assert.equal(busy.seqsOf(many[7]!), Array.from({ length: 8 }, (_, k) => 8000 + k), "the eighth renumbered");
});

test("a source back while every slot is busy goes with its own numbers, and when it gets a slot later it numbers on from those, never back over them", async () => {
  const run = await start();
  const a = SSRC + 0x77;
  refAndDropped(run, 1000, 2, 0, a); // 1000-1011 in, 4 dropped: out 1000-1007
  run.advance(100);
  run.h.advanceTime(5_000_000);
  // eight others take every slot (a's, idle, among them)
  for (let i = 0; i < 8; i++) refAndDropped(run, 5000 * (i + 1), 1, 10 * i, SSRC + 0x1000 * (i + 1));
  refAndDropped(run, 1012, 2, 100, a); // no slot free: as it came, with its gaps
  run.advance(100);
  run.h.advanceTime(5_000_000);
  refAndDropped(run, 1024, 2, 200, a); // a slot again
  const seqs = run.seqsOf(a);
  assert.equal(seqs.slice(0, 8), Array.from({ length: 8 }, (_, k) => 1000 + k));
  assert.equal(seqs.slice(8, 16), keptOf(1012, 2), "with no slot, the numbers it came with");
  assert.ok(seqs.every((x, i) => i === 0 || x > seqs[i - 1]!), `never back over numbers sent: ${seqs.join()}`);
  assert.equal(seqs.slice(16), Array.from({ length: 8 }, (_, k) => 1024 + k), "renumbered again, on from its own numbers");
});

test("hostile NACKs (no FCI, padding, before any media, more entries than translated, every bit set) do not fail the filter; a NACK about every output number comes back as their inputs", async () => {
  const run = await start();
  const early = nack([[5, 0xffff]]);
  assert.equal(Buffer.from(run.upstream(early).bytes), Buffer.from(early), "before any media left: as it came");
  refAndDropped(run, 100, 5);
  const shapes: Uint8Array[] = [];
  const noFci = Buffer.from(nack([[0, 0]])).subarray(0, 8 + 12);
  noFci.writeUInt16BE(2, 8 + 2);
  shapes.push(noFci);
  const padded = Buffer.from(nack([[101, 1]]));
  padded[8] |= 0x20;
  shapes.push(padded);
  shapes.push(nack(Array.from({ length: 400 }, (_, i): [number, number] => [100 + i, 0xffff])));
  shapes.push(nack(Array.from({ length: 40 }, (_, i): [number, number] => [(i * 1637) & 0xffff, 0xffff])));
  for (const [k, b] of shapes.entries()) {
    const r = run.upstream(b);
    assert.ok(r.verdict !== "drop", r.verdict);
    // padded, or longer than any receiver's: not read whole, so not passed on in the receiver's numbers
    if (k === 1 || k === 2) assert.not.ok(r.bytes.length > 0 && decodeRtcp(r.bytes).some((p) => p.type === "NACK"), `shape ${k} passed on`);
  }
  assert.is(run.h.instance.failure, undefined);
  assert.ok((run.metric("renumber_nack_dropped") ?? 0) >= 1 * 17 + 400 * 17, "what was not passed on is counted");
  // a NACK about every output number, its entries in either order: each comes back as the input it left as
  for (const entries of [[[100, 0xffff], [117, 0b11]], [[117, 0b11], [100, 0xffff]]] as [number, number][][]) {
    const n = decodeRtcp(run.upstream(nack(entries)).bytes).find((p) => p.type === "NACK");
    assert.ok(n && n.type === "NACK");
    assert.equal(n.lost, keptOf(100, 5));
  }
});

test("RTX (RFC 4588) answering a translated NACK: its original sequence number becomes the receiver's; one answering no NACK goes, counted (its number is the origin's)", async () => {
  const run = await start(true, { priority: { ...PRIORITY, renumber: true, rtxPayloadTypes: [97] } });
  refAndDropped(run, 1000, 6);
  const back = decodeRtcp(run.upstream(nack([[1004, 0b10]])).bytes).find((p) => p.type === "NACK");
  assert.ok(back && back.type === "NACK");
  assert.equal(back.lost, [1006, 1008], "the origin is asked for its 1006 and 1008");
  const RTX_SSRC = 0x0cc0_0002;
  const rtx = (rtxSeq: number, osn: number): Uint8Array => {
    const b = buildRtp({ seq: rtxSeq, timestamp: 6000, ssrc: RTX_SSRC, payloadType: 97, payloadSize: 300 });
    b[12] = osn >> 8;
    b[13] = osn & 0xff;
    return b;
  };
  const osnOf = (b: Uint8Array): number => (b[payloadStart(b)]! << 8) | b[payloadStart(b) + 1]!;
  const from = run.out.length;
  run.send([rtx(50, 1006), rtx(51, 1008), rtx(52, 1020)]);
  run.advance(100);
  const sent = run.out.slice(from);
  assert.equal(sent.map(osnOf), [1004, 1006], "1006 and 1008 as the receiver numbered them; 1020, asked by nobody, not passed on");
  assert.equal(sent.map(seqOf), [50, 51], "the RTX stream's own numbers");
  assert.is(run.metric("renumber_rtx_unmatched"), 1);
  // with rtxPayloadTypes [] (the operator says there is no RTX), a packet of payload type 97 is not read as RTX
  const plain = await start();
  refAndDropped(plain, 1000, 6);
  plain.upstream(nack([[1004, 0]]));
  plain.send([rtx(60, 1006)]);
  assert.is(osnOf(plain.out.at(-1)!), 1006);
});

/** A small seeded generator (the sweep fails the same way every run). */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

test("a sweep of random frames, drops, reordering and pauses across the wrap: no output number given twice, and a NACK for each names its input", async () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const rand = lcg(seed);
    const first = 65_536 - 300 - Math.floor(rand() * 400);
    const run = await start(true, { startBps: 600_000, priority: { ...PRIORITY, nonReferenceMs: 20, referenceMs: 60, renumber: true, rtxPayloadTypes: [] } });
    let seq = first;
    let ts = 0;
    const reorder = seed % 2 === 0;
    const given = new Map<number, number>(); // output number -> input number
    for (let f = 0; f < 300; f++) {
      const kind: FrameKind = f % 30 === 0 ? "idr" : rand() < 0.5 ? "nonref" : "ref";
      const n = 1 + Math.floor(rand() * (kind === "idr" ? 8 : 4));
      const ps = Array.from({ length: n }, (_, i) => packet(seq + i, ts, kind, i === 0, i === n - 1, 600 + Math.floor(rand() * 500)));
      seq += n;
      ts += 3000;
      // swap two neighbours now and then (after the first packet, which decides the frame)
      if (reorder && n > 2 && rand() < 0.3) [ps[1], ps[2]] = [ps[2]!, ps[1]!];
      const from = run.out.length;
      run.send(ps);
      run.advance(Math.floor(rand() * 40));
      const fresh = run.out.slice(from);
      for (const o of fresh) {
        const out = seqOf(o);
        assert.not.ok(given.has(out), `seed ${seed}: output ${out} given twice (inputs ${given.get(out)} and ${markerOf(o)})`);
        given.set(out, markerOf(o));
      }
      if (fresh.length > 0) {
        const r = run.upstream(nack(fresh.map((o) => [seqOf(o), 0])));
        const back = decodeRtcp(r.bytes).find((p) => p.type === "NACK");
        assert.ok(back && back.type === "NACK");
        // in the NACK's order: ascending from the lowest, across the wrap
        const inputs = fresh.map(markerOf);
        const low = inputs.reduce((a, x) => (((x - a) << 16) >> 16 < 0 ? x : a));
        const ordered = [...inputs].sort((a, b) => ((a - low) & 0xffff) - ((b - low) & 0xffff));
        assert.equal(back.lost, ordered, `seed ${seed}: NACKs back to the inputs`);
      }
    }
    run.advance(2000);
    assert.is(new Set(run.out.map(seqOf)).size, run.out.length, `seed ${seed}: no output number twice, the queue's last ones included`);
    const drops = ["non_reference", "reference", "dependent", "queue_full"].reduce((a, k) => a + run.metric(`dropped_${k}`), 0);
    assert.ok(drops > 50, `seed ${seed}: the sweep dropped (${drops})`);
    if (!reorder) {
      const outs = run.out.map(seqOf);
      assert.equal(outs, outs.map((_, i) => (first + i) & 0xffff), `seed ${seed}: in order, no gap`);
    }
  }
});

test.run();
