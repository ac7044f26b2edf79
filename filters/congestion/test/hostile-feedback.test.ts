// Hostile transport-wide feedback at a sender-mode context, built with the independent codec
// (test/lib/rtcp-cc.ts): forged (numbers never sent, another media SSRC), huge (the largest
// packet, thousands of statuses, all lost, enormous and negative deltas), out of order and
// repeated (feedback counts that do not move forward), truncated and malformed, and a seeded
// fuzz. Whatever comes, the filter must not fail (the harness throws FilterFailure on a trap), its
// target must stay at or above minBps, feedback about packets never sent must not move it, and
// feedback_rejected must count each packet it refused.
import * as assert from "uvu/assert";
import { PacketFlag, type FilterHarness } from "../../../sdk/harness/index.js";
import { rng } from "../../../test/lib/random.js";
import {
  TwccRecorder, emptyReceiverReport, encodeTwcc, encodeTwccWire, transportSeqOf, type Chunk, type TwccWire,
} from "../../../test/lib/rtcp-cc.js";
import { suite } from "../../../test/lib/suite.js";
import { SSRC, loadCongestion } from "./cc-lib.js";
import { drive } from "./twcc-drive.js";

const test = suite("congestion: hostile feedback", { timeoutMs: 120_000 });

const MIN_BPS = 150_000;
const REPORTER = 0xfeed0001;

interface Sender {
  readonly h: FilterHarness;
  readonly ctx: number;
  /** The last transport-wide number the sender stamped (16 bits). */
  readonly latest: number;
  /** The feedback count the next honest feedback would carry. */
  readonly nextFbCount: number;
}

/** A sender after 5 s of honest feedback (constant 20 ms delay, no loss) about 1000 packets of 500 bytes every 5 ms. */
async function establishedSender(config: Record<string, unknown> = {}): Promise<Sender> {
  const h = await loadCongestion();
  const ctx = h.createContext({ mode: "sender", extensionId: 5, minBps: MIN_BPS, ...config });
  const recorder = new TwccRecorder(REPORTER, SSRC);
  const run = drive(h, ctx, recorder, { packets: 1000, intervalUs: 5000, size: 500, delayUs: () => 20_000 });
  assert.ok(num(h, ctx, "feedback_packets") > 30, "honest feedback was used");
  assert.is(num(h, ctx, "feedback_rejected"), 0, "and none refused");
  return { h, ctx, latest: transportSeqOf(run.stamped.at(-1)!, 5)!, nextFbCount: recorder.fbCount };
}

const num = (h: FilterHarness, ctx: number, name: string): number => {
  const v = h.metric(name, ctx);
  if (typeof v !== "number") throw new Error(`metric ${name} is ${JSON.stringify(v)}`);
  return v;
};

const compound = (fb: Uint8Array): Uint8Array => {
  const rr = emptyReceiverReport(REPORTER);
  const out = new Uint8Array(rr.length + fb.length);
  out.set(rr);
  out.set(fb, rr.length);
  return out;
};

/** Feeds one upstream RTCP packet; returns its verdict. Throws (FilterFailure) if the filter traps. */
function feed(s: Sender, bytes: Uint8Array): string {
  const r = s.h.run({ ctx: s.ctx, bytes, flags: PacketFlag.Rtcp | PacketFlag.Upstream });
  return r.verdict === "drop" ? r.reasonName : r.verdict;
}

function assertFloor(s: Sender, what: string): void {
  const target = num(s.h, s.ctx, "target_bps");
  assert.ok(Number.isFinite(target) && target >= MIN_BPS, `${what}: target ${target} below minBps ${MIN_BPS}`);
}

/** Feeds `bytes` and checks it was refused: feedback_rejected one more, feedback_packets and the target unchanged. */
function assertRefused(s: Sender, bytes: Uint8Array, what: string): void {
  const before = ["feedback_rejected", "feedback_packets", "target_bps"].map((n) => num(s.h, s.ctx, n));
  feed(s, bytes);
  const after = ["feedback_rejected", "feedback_packets", "target_bps"].map((n) => num(s.h, s.ctx, n));
  assert.equal(after, [before[0]! + 1, before[1]!, before[2]!], `${what}: [rejected, used, target] ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
}

/** An honest-looking feedback about `count` numbers from `base`, each received `deltaTicks` after the previous. */
const about = (s: Sender, base: number, count: number, o: { deltaTicks?: number | null; media?: number; fbCount?: number } = {}): Uint8Array =>
  compound(encodeTwcc({
    senderSsrc: REPORTER, mediaSsrc: o.media ?? SSRC, baseSeq: base & 0xffff, referenceTime: 1000, fbCount: o.fbCount ?? s.nextFbCount,
    reports: Array.from({ length: count }, () => (o.deltaTicks === undefined ? 20 : o.deltaTicks)),
  }));

test("forged: numbers never sent (ahead, straddling the newest, older than anything remembered) are refused and move nothing", async () => {
  const s = await establishedSender();
  assertRefused(s, about(s, s.latest + 1, 50, { deltaTicks: 32_767 }), "50 numbers after the newest sent");
  assertRefused(s, about(s, s.latest - 10, 50, { deltaTicks: 32_767 }), "from 10 before the newest to 39 after");
  assertRefused(s, about(s, s.latest + 30_000, 1), "30000 ahead");
  assertRefused(s, about(s, s.latest - 40_000, 100, { deltaTicks: null }), "40000 behind, all lost");
  assertFloor(s, "after forged feedback");
  // and later: the same as a twin that was sent none of it
  const twin = await establishedSender();
  for (const x of [s, twin]) x.h.advanceTime(2_000_000);
  assert.is(num(s.h, s.ctx, "target_bps"), num(twin.h, twin.ctx, "target_bps"), "2 s later, the target of a twin given no forged feedback");
});

test("forged: feedback naming another media SSRC is refused", async () => {
  const s = await establishedSender();
  const forged = about(s, s.latest - 50, 50, { deltaTicks: null, media: SSRC ^ 0x5a5a5a5a });
  assertRefused(s, forged, `all lost, for another SSRC (${Buffer.from(forged).toString("hex")})`);
});

test("repeated and out of order: a feedback count that does not move forward is refused", async () => {
  const s = await establishedSender();
  const previous = (s.nextFbCount - 1) & 0xff;
  assertRefused(s, about(s, s.latest - 20, 20, { fbCount: previous }), "the last count again");
  assertRefused(s, about(s, s.latest - 20, 20, { fbCount: (previous - 5) & 0xff }), "5 counts back");
  assertRefused(s, about(s, s.latest - 20, 20, { fbCount: (previous - 127) & 0xff }), "127 counts back");
  // the next count is taken; the same packet again is not
  const next = about(s, s.latest - 20, 20, { fbCount: s.nextFbCount });
  const used = num(s.h, s.ctx, "feedback_packets");
  feed(s, next);
  assert.is(num(s.h, s.ctx, "feedback_packets"), used + 1, "the next count is used");
  assertRefused(s, next, "the same packet replayed");
});

/** Malformed FMT 15 packets, each well framed as RTCP (its length field right) but wrong inside. */
function malformed(s: Sender): [string, Uint8Array][] {
  const base: TwccWire = {
    senderSsrc: REPORTER, mediaSsrc: SSRC, baseSeq: (s.latest - 9) & 0xffff, statusCount: 10, referenceTime: 5, fbCount: s.nextFbCount,
    chunks: [{ kind: "run", symbol: 1, length: 10 }], deltas: Array.from({ length: 10 }, () => ({ ticks: 4, bytes: 1 as const })),
  };
  const wire = (w: Partial<TwccWire>): Uint8Array => compound(encodeTwccWire({ ...base, ...w }));
  const short = encodeTwccWire(base).slice(0, 16);
  short[3] = 3; // a 16-byte FMT 15 packet: no room for the reference time
  return [
    ["status count 0", wire({ statusCount: 0, chunks: [], deltas: [] })],
    ["reserved symbol 11 in a run", wire({ chunks: [{ kind: "run", symbol: 3, length: 10 }] })],
    ["reserved symbol 11 in a two-bit vector", wire({ chunks: [{ kind: "vector2", symbols: [1, 1, 3, 1, 1, 1, 1] }, { kind: "vector2", symbols: [1, 1, 1] }] })],
    ["run length 0", wire({ chunks: [{ kind: "run", symbol: 1, length: 0 }, { kind: "run", symbol: 1, length: 10 }] })],
    ["chunks for fewer statuses than counted, then nothing", wire({ statusCount: 4000, deltas: [] })],
    ["deltas missing", wire({ deltas: base.deltas.slice(0, 3) })],
    ["large deltas cut in half", wire({ chunks: [{ kind: "run", symbol: 2, length: 10 }], deltas: Array.from({ length: 5 }, () => ({ ticks: 4, bytes: 1 as const })) })],
    ["16 bytes: no reference time", compound(short)],
    ["status count above the largest the filter keeps (65535, all lost)", wire({ statusCount: 65_535, chunks: [...Array(8)].map((): Chunk => ({ kind: "run", symbol: 0, length: 8191 })).concat([{ kind: "run", symbol: 0, length: 7 }]), deltas: [] })],
  ];
}

test("malformed chunks and deltas inside a well-framed packet: each refused and counted", async () => {
  const s = await establishedSender();
  for (const [what, bytes] of malformed(s)) assertRefused(s, bytes, what);
  assertFloor(s, "after malformed feedback");
});

test("broken framing (a length past the compound, a truncated packet, bad padding): no failure, nothing used, the target kept", async () => {
  const s = await establishedSender();
  const good = about(s, s.latest - 9, 10);
  const cases: [string, Uint8Array][] = [
    ["the compound cut 6 bytes short of the feedback's length", good.slice(0, good.length - 6)],
    ["the feedback's length field 40 words", (() => { const b = good.slice(); b[8 + 3] = 40; return b; })()],
    ["a lone 4-byte header of FMT 15", new Uint8Array([0x8f, 205, 0, 0])],
    ["padding bit with a count of 200", (() => { const b = good.slice(); b[8] = b[8]! | 0x20; b[b.length - 1] = 200; return b; })()],
  ];
  for (const [what, bytes] of cases) {
    const before = ["feedback_packets", "target_bps"].map((n) => num(s.h, s.ctx, n));
    const verdict = feed(s, bytes);
    const after = ["feedback_packets", "target_bps"].map((n) => num(s.h, s.ctx, n));
    console.log(`${what}: verdict ${verdict}`);
    assert.equal(after, before, `${what} (verdict ${verdict}): [used, target] ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
  }
});

test("huge: thousands of statuses all lost or with enormous and negative deltas about new packets, round after round, then the largest packet: the target goes down, never below minBps", async () => {
  const s = await establishedSender({ circuitBreaker: { enabled: false } });
  const room = s.h.instance.packetRoom;
  let fbCount = s.nextFbCount;
  const silent = new TwccRecorder(REPORTER, SSRC); // records nothing: the media goes out unanswered
  const kinds: [string, (k: number) => number | null][] = [
    ["all lost", () => null],
    ["all received, 8191.75 ms apart", () => 32_767],
    ["all received, -8192 ms apart", () => -32_768],
    ["alternating enormous and negative", (k) => (k % 2 ? 32_767 : -32_768)],
  ];
  let seq0 = 1000;
  for (let round = 0; round < 40; round++) {
    const media = drive(s.h, s.ctx, silent, { packets: 300, intervalUs: 1000, size: 500, delayUs: () => null, seq0 });
    seq0 += 300;
    const numbers = media.stamped.map((b) => transportSeqOf(b, 5)).filter((n): n is number => n !== undefined);
    if (numbers.length === 0) continue;
    const [what, delta] = kinds[round % kinds.length]!;
    const first = numbers[0]!;
    const count = ((numbers.at(-1)! - first) & 0xffff) + 1;
    const fb = compound(encodeTwcc({ senderSsrc: REPORTER, mediaSsrc: SSRC, baseSeq: first, referenceTime: -(2 ** 23) + round, fbCount: fbCount++ & 0xff, reports: Array.from({ length: count }, (_, k) => delta(k)) }));
    assert.ok(fb.length <= room, `${what}: ${fb.length} bytes fit the slot of ${room}`);
    const used = num(s.h, s.ctx, "feedback_packets");
    feed(s, fb);
    assert.is(num(s.h, s.ctx, "feedback_packets"), used + 1, `round ${round}, ${what} about ${count} packets sent: used`);
    assertFloor(s, `round ${round}, ${what}`);
  }
  const low = num(s.h, s.ctx, "target_bps");
  console.log(`after 40 rounds of huge feedback: target ${low}`);
  assert.ok(low < 500_000, `all that loss and delay brought the target down (${low})`);
  // the largest packet the slot holds: two-bit vectors of large deltas about the newest numbers
  const media = drive(s.h, s.ctx, silent, { packets: 900, intervalUs: 8000, size: 100, delayUs: () => null, seq0 }); // 100 kbit/s: below the floor, so none waits
  const newest = transportSeqOf(media.stamped.at(-1)!, 5)!;
  const statuses = Math.min(media.stamped.length, Math.floor((room - 8 - 20 - 3) / (2 / 7 + 2)));
  const big = compound(encodeTwccWire({
    senderSsrc: REPORTER, mediaSsrc: SSRC, baseSeq: (newest - statuses + 1) & 0xffff, statusCount: statuses, referenceTime: 0, fbCount: fbCount++ & 0xff,
    chunks: Array.from({ length: Math.ceil(statuses / 7) }, (_, c): Chunk => ({ kind: "vector2", symbols: Array(Math.min(7, statuses - 7 * c)).fill(2) })),
    deltas: Array.from({ length: statuses }, (_, k) => ({ ticks: k % 2 ? 32_767 : -32_768, bytes: 2 as const })),
  }));
  assert.ok(big.length > room - 16 && big.length <= room, `${big.length} bytes for a slot of ${room}`);
  feed(s, big);
  assertFloor(s, "after the largest packet");
  s.h.advanceTime(3_000_000);
  assertFloor(s, "3 s later");
});

test("seeded fuzz: 3000 mutated and random feedback packets, the filter never fails, the target never below minBps, every refusal counted", async () => {
  const s = await establishedSender();
  const r = rng(0xcc12);
  const int = (n: number): number => Math.floor(r() * n);
  const honest = about(s, s.latest - 30, 30);
  const usedBefore = num(s.h, s.ctx, "feedback_packets");
  const rejectedBefore = num(s.h, s.ctx, "feedback_rejected");
  let fmt15 = 0;
  for (let n = 0; n < 3000; n++) {
    let bytes: Uint8Array;
    const kind = n % 3;
    if (kind === 0) {
      // the honest packet with 1-6 bytes of its feedback part overwritten
      bytes = honest.slice();
      for (let k = 1 + int(6); k > 0; k--) bytes[8 + 12 + int(bytes.length - 20)] = int(256);
    } else if (kind === 1) {
      // random chunks and deltas behind a valid header, length right
      const chunks = Array.from({ length: 1 + int(20) }, () => int(65_536));
      const deltaBytes = int(80);
      const body = 20 + 2 * chunks.length + deltaBytes;
      const fb = new Uint8Array(Math.ceil(body / 4) * 4);
      fb.set(encodeTwccWire({ senderSsrc: REPORTER, mediaSsrc: SSRC, baseSeq: (s.latest - int(600)) & 0xffff, statusCount: int(3000), referenceTime: int(2 ** 24) - 2 ** 23, fbCount: int(256), chunks: [], deltas: [] }).subarray(0, 20));
      fb[2] = 0;
      fb[3] = fb.length / 4 - 1;
      chunks.forEach((c, k) => { fb[20 + 2 * k] = c >> 8; fb[21 + 2 * k] = c & 0xff; });
      for (let k = 20 + 2 * chunks.length; k < body; k++) fb[k] = int(256);
      bytes = compound(fb);
    } else {
      // honest framing, random statuses about numbers near the newest, truncated at a random word
      const count = 1 + int(700);
      const reports = Array.from({ length: count }, () => (r() < 0.3 ? null : r() < 0.5 ? int(256) : int(65_536) - 32_768));
      const fb = encodeTwcc({ senderSsrc: REPORTER, mediaSsrc: SSRC, baseSeq: (s.latest - int(800)) & 0xffff, referenceTime: int(2 ** 24) - 2 ** 23, fbCount: int(256), reports });
      const words = 5 + int(fb.length / 4 - 4);
      const cut = fb.slice(0, words * 4);
      cut[2] = (words - 1) >> 8;
      cut[3] = (words - 1) & 0xff;
      bytes = compound(cut);
    }
    if (bytes.length > s.h.instance.packetRoom) continue;
    fmt15++;
    try {
      feed(s, bytes);
    } catch (err) {
      throw new Error(`case ${n} (${Buffer.from(bytes).toString("hex")}): ${String(err)}`);
    }
    assertFloor(s, `case ${n}`);
    if (n % 100 === 99) s.h.advanceTime(50_000);
  }
  const used = num(s.h, s.ctx, "feedback_packets") - usedBefore;
  const rejected = num(s.h, s.ctx, "feedback_rejected") - rejectedBefore;
  console.log(`fuzz: ${fmt15} feedback packets, ${used} used, ${rejected} refused; target ${num(s.h, s.ctx, "target_bps")}`);
  assert.is(used + rejected, fmt15, `each of the ${fmt15} feedback packets used (${used}) or refused (${rejected})`);
  assert.ok(rejected > fmt15 / 2, `most were refused (${rejected} of ${fmt15})`);
});

test.run();
