// Hostile RTCP receiver reports at a sender-mode context toward a plain receiver (no transport-wide
// feedback, so reports drive the loss-based part): fraction lost 255, cumulative lost at both ends
// of its 24 bits, LSR/DLSR that make no sense, jitter 0xffffffff, report counts past the packet's
// length, blocks about SSRCs the segment never carried. The filter must not fail (the harness
// throws FilterFailure on a trap), the target must never go below minBps, the reports pass on to
// the origin as they came. And what forged reports CAN do, as the README says: "all lost" about
// the media trips the RFC 8083 circuit breaker of a flow sending above 1.25 x minBps, which drops
// it for the cooldown; a flow at or below that it cannot trip.
import * as assert from "uvu/assert";
import { PacketFlag, buildRtp, type FilterHarness } from "../../../sdk/harness/index.js";
import { suite } from "../../../test/lib/suite.js";
import { SSRC, loadCongestion } from "./cc-lib.js";

const test = suite("congestion: hostile receiver reports", { timeoutMs: 60_000 });

const MIN_BPS = 150_000;
const REPORTER = 0x5eed0001;
const STRANGER = 0x0bad0bad;
/** The middle 32 bits of the NTP time of the origin's SR (what a receiver echoes as LSR). */
const SR_MIDDLE = 0x00010002;

interface Block {
  readonly ssrc?: number;
  readonly fraction?: number;
  /** Cumulative lost, its 24 bits as written. */
  readonly cumulative?: number;
  readonly jitter?: number;
  readonly lsr?: number;
  readonly dlsr?: number;
}

/** An RTCP RR (or SR, with `sr`) with report blocks; `count` may claim more blocks than it holds. */
function report(blocks: readonly Block[], o: { sr?: boolean; count?: number } = {}): Uint8Array {
  const head = o.sr ? 28 : 8;
  const b = Buffer.alloc(head + 24 * blocks.length);
  b[0] = 0x80 | (o.count ?? blocks.length);
  b[1] = o.sr ? 200 : 201;
  b.writeUInt16BE(b.length / 4 - 1, 2);
  b.writeUInt32BE(REPORTER, 4);
  blocks.forEach((x, i) => {
    const at = head + 24 * i;
    b.writeUInt32BE((x.ssrc ?? SSRC) >>> 0, at);
    b[at + 4] = x.fraction ?? 0;
    b.writeUIntBE((x.cumulative ?? 0) & 0xffffff, at + 5, 3);
    b.writeUInt32BE(0x10000, at + 8);
    b.writeUInt32BE((x.jitter ?? 0) >>> 0, at + 12);
    b.writeUInt32BE((x.lsr ?? 0) >>> 0, at + 16);
    b.writeUInt32BE((x.dlsr ?? 0) >>> 0, at + 20);
  });
  return b;
}

/** The origin's SR as it passes downstream (the filter remembers its NTP middle for the round trip). */
function originSr(): Uint8Array {
  const sr = Buffer.alloc(28);
  sr.writeUInt32BE(0x80c80006, 0);
  sr.writeUInt32BE(SSRC, 4);
  sr.writeUInt32BE(SR_MIDDLE >>> 16, 8);
  sr.writeUInt32BE((SR_MIDDLE & 0xffff) << 16, 12);
  return sr;
}

/** The hostile reports of one round: each a compound the filter gets from downstream. */
const HOSTILE: readonly [string, Uint8Array][] = [
  ["fraction lost 255", report([{ fraction: 255 }])],
  ["cumulative lost 0x7fffff (the most)", report([{ fraction: 255, cumulative: 0x7fffff }])],
  ["cumulative lost -0x800000 (negative)", report([{ fraction: 255, cumulative: 0x800000 }])],
  ["jitter 0xffffffff", report([{ fraction: 255, jitter: 0xffffffff }])],
  ["the SR echoed, DLSR 0xffffffff (a negative round trip)", report([{ fraction: 255, lsr: SR_MIDDLE, dlsr: 0xffffffff }])],
  ["the SR echoed, DLSR 0 (a round trip of the SR's age)", report([{ fraction: 255, lsr: SR_MIDDLE, dlsr: 0 }])],
  ["an LSR no SR had", report([{ fraction: 255, lsr: 0xdeadbeef, dlsr: 1 }])],
  ["count 31, one block held", report([{ fraction: 255 }], { count: 31 })],
  ["an SR with a block about the media and one about a stranger", report([{ fraction: 255 }, { ssrc: STRANGER, fraction: 255 }], { sr: true })],
];

interface Flow {
  readonly h: FilterHarness;
  readonly ctx: number;
  seq: number;
}

async function flow(config: Record<string, unknown>): Promise<Flow> {
  const h = await loadCongestion({ startUs: 0 });
  const ctx = h.createContext({ mode: "sender", minBps: MIN_BPS, startBps: 1_000_000, ...config });
  const f = { h, ctx, seq: 0 };
  h.run({ ctx, bytes: buildRtp({ seq: f.seq++, timestamp: 0, ssrc: SSRC, payloadSize: 100 }) });
  h.run({ ctx, bytes: originSr(), flags: PacketFlag.Rtcp });
  return f;
}

const num = (f: Flow, name: string): number => {
  const v = f.h.metric(name, f.ctx);
  if (typeof v !== "number") throw new Error(`metric ${name} is ${JSON.stringify(v)}`);
  return v;
};

/**
 * One second of media at `bps` (100 packets, one frame each, not H.264: no priority drop), then
 * `reports` from downstream; returns the media's verdicts and the reports'.
 */
function second(f: Flow, bps: number, reports: readonly Uint8Array[]): { media: string[]; reports: string[] } {
  const size = Math.round(bps / 8 / 100);
  const media: string[] = [];
  for (let k = 0; k < 100; k++) {
    const r = f.h.run({ ctx: f.ctx, bytes: buildRtp({ seq: f.seq & 0xffff, timestamp: f.seq * 900, ssrc: SSRC, payloadSize: size - 12 }) });
    f.seq++;
    media.push(r.verdict === "drop" ? r.reasonName : r.verdict);
    f.h.advanceTime(10_000);
  }
  const verdicts = reports.map((bytes) => f.h.run({ ctx: f.ctx, bytes, flags: PacketFlag.Rtcp | PacketFlag.Upstream }).verdict);
  return { media, reports: verdicts };
}

test("hostile reports about the media for 15 s: no failure, they pass on, the target goes down to minBps and no lower, the round trip stays sane; honest ones after bring it up again", async () => {
  const f = await flow({ circuitBreaker: { enabled: false } });
  const targets: number[] = [];
  for (let s = 0; s < 15; s++) {
    const r = second(f, 1_000_000, HOSTILE.map(([, bytes]) => bytes));
    assert.ok(r.reports.every((v) => v === "pass"), `second ${s}: receiver reports go on to the origin: ${r.reports.join(" ")}`);
    const target = num(f, "target_bps");
    targets.push(target);
    assert.ok(Number.isFinite(target) && target >= MIN_BPS, `second ${s}: target ${target} below minBps`);
    const rtt = num(f, "rtt_ms");
    assert.ok(rtt >= 0 && rtt <= 60_000, `second ${s}: round trip ${rtt} ms`);
  }
  console.log(`  target under hostile reports (kbit/s): ${targets.map((t) => Math.round(t / 1000)).join(" ")}`);
  assert.is(targets.at(-1), MIN_BPS, "all lost, every second: the target sits at minBps");
  const honest = report([{ fraction: 0, lsr: SR_MIDDLE, dlsr: 655 }]);
  for (let s = 0; s < 10; s++) second(f, 1_000_000, [honest]);
  assert.ok(num(f, "target_bps") > MIN_BPS * 1.3, `without loss it grows again: ${num(f, "target_bps")}`);
});

test("reports about SSRCs the segment never carried change nothing: the target, the loss and the round trip as a twin's that got none", async () => {
  const [f, twin] = [await flow({}), await flow({})];
  const strange = HOSTILE.map(([, bytes]) => {
    const b = Buffer.from(bytes);
    const head = b[1] === 200 ? 28 : 8;
    for (let at = head; at + 24 <= b.length; at += 24) b.writeUInt32BE(STRANGER, at);
    return b;
  });
  for (let s = 0; s < 8; s++) {
    second(f, 600_000, strange);
    second(twin, 600_000, []);
  }
  for (const name of ["target_bps", "loss_based_bps", "loss_per_mille", "rtt_ms", "circuit_breaker_trips"]) {
    assert.is(num(f, name), num(twin, name), `${name}: as the twin's`);
  }
});

test("what forged reports can do, as documented: 'all lost' about a flow above 1.25 x minBps trips the circuit breaker after circuitBreaker.intervals seconds; it drops the flow for the cooldown, then forwards it again", async () => {
  const f = await flow({ circuitBreaker: { intervals: 5, cooldownSeconds: 10 } });
  const allLost = report([{ fraction: 255 }]);
  const trippedAt: number[] = [];
  for (let s = 0; s < 12; s++) {
    second(f, 1_000_000, [allLost]);
    if (num(f, "circuit_breaker_open") === 1 && trippedAt.length === 0) trippedAt.push(s);
    assert.ok(num(f, "target_bps") >= MIN_BPS, `second ${s}: target below minBps`);
  }
  assert.is(num(f, "circuit_breaker_trips"), 1, "tripped once");
  assert.ok(trippedAt[0]! >= 4 && trippedAt[0]! <= 6, `tripped in second ${trippedAt[0]} (5 intervals in a row)`);
  // open: the media is dropped as circuit_breaker
  const open = second(f, 1_000_000, []);
  assert.ok(open.media.every((v) => v === "circuit_breaker"), `while open, the media is dropped: ${open.media.join(" ")}`);
  // after the cooldown, forwarded again
  for (let s = 0; s < 10 && num(f, "circuit_breaker_open") === 1; s++) second(f, 1_000_000, []);
  const after = second(f, 300_000, []);
  assert.is(num(f, "circuit_breaker_open"), 0, "closed after the cooldown");
  assert.ok(after.media.some((v) => v === "pass" || v === "hold") && !after.media.includes("circuit_breaker"), `forwarded again: ${after.media.join(" ")}`);
});

test("what forged reports cannot do: a flow at or below 1.25 x minBps never trips the breaker, all lost for 20 s", async () => {
  const f = await flow({ circuitBreaker: { intervals: 5 } });
  const allLost = report([{ fraction: 255 }]);
  for (let s = 0; s < 20; s++) {
    const r = second(f, 1.2 * MIN_BPS, [allLost]);
    assert.ok(!r.media.includes("circuit_breaker"), `second ${s}: the media was dropped by the breaker`);
  }
  assert.is(num(f, "circuit_breaker_trips"), 0);
  assert.is(num(f, "target_bps"), MIN_BPS, "the target is at minBps, no lower");
});

test("a downstream SR without report blocks passes on to the origin (its sender info is the origin's to read); an empty RR alone, what proxy B sends, is taken", async () => {
  const f = await flow({});
  const { reports } = second(f, 600_000, [report([], { sr: true }), report([])]);
  assert.equal(reports, ["pass", "hold"]);
});

test.run();
