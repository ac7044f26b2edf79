// Unit tests of the data plane's parts, in process and without sockets: ChainRunner (batches
// split above a stage's capacity, descriptors a filter breaks, output descriptors, fail-open and
// fail-closed), FilterPool (one failure path for every call, restarts with backoff, checkpoints,
// give-up, must-fail-closed), EgressRing and SendTracker, TokenBucket and checkArena. The
// filters are real modules (test/fixtures/filters/assembly/hostile.ts attacks on command).
// These parts are internal to the runtime, so this file imports them where they live, as
// bench/chain-bench.ts does.
import * as assert from "uvu/assert";
import { readFile } from "node:fs/promises";
import { TokenBucket } from "../runtime/chain/budget.js";
import { ChainRunner } from "../runtime/chain/chain-runner.js";
import { leavingEntry } from "../runtime/chain/leaving-entry.js";
import {
  DEFAULT_FAILURE_POLICY, FilterPool, type ChainStage, type FailurePolicy, type FilterSpec, type InstanceSlot, type PoolEvent,
} from "../runtime/chain/filter-pool.js";
import { PacketList } from "../runtime/chain/packet-list.js";
import { SegmentStats } from "../runtime/chain/stats.js";
import { EgressRing, pendingAllowance, RING_SLOT_SIZE, SendTracker } from "../runtime/dataplane/egress-ring.js";
import { checkArena, dropReasonName, FilterFailure } from "../runtime/index.js";
import {
  AH_BATCH_CAPACITY, AH_DESC_TABLE, AH_HEADROOM, AH_MAGIC, AH_OUT_CAPACITY, AH_OUT_SLOT_BASE, AH_OUT_TABLE,
  ABI_VERSION_EXPORT, AH_SCRATCH, AH_SCRATCH_SIZE, AH_SLOT_BASE, AH_SLOT_SIZE, ARENA_MAGIC, Dest, DropReason, MAX_FILTER_DROP_REASONS, PacketFlag,
} from "../runtime/abi.js";
import { heapGrowthFlag, HEAP_GROWING_PERCENT } from "../runtime/heap-growth.js";
import { suite } from "./lib/suite.js";
import { filterWasm, fixture } from "./lib/paths.js";
import { indexedRtp, waitFor } from "./lib/udp.js";

const HOSTILE: FilterSpec = { name: "hostile", path: fixture("hostile") };

/** The hostile fixture's commands (see its header). */
const Cmd = {
  drop: 0xc1, verdict: 0xc2, move: 0xc3, outCount: 0xc4, emit: 0xc5, emitOther: 0xc6, emitBroken: 0xc7, flood: 0xc8, report: 0xcb, trap: 0xcc, setLeg: 0xcd,
} as const;

/** Packet `i` (its key, at offset 12, is i) carrying a command with arguments A and B. */
function command(i: number, cmd: number, a = 0, b = 0, size = 64): Buffer {
  const p = Buffer.from(indexedRtp(i, size));
  p[12] = cmd;
  p.writeUInt32BE(a >>> 0, 16);
  p.writeUInt32BE(b >>> 0, 20);
  return p;
}

const keyOf = (b: Buffer): number => (b.length >= 16 ? b.readUInt32BE(12) & 0xffffff : -1);

interface Sent {
  key: number;
  bytes: Buffer;
  flags: number;
  dest: number;
  leg: number;
}

/** A worker's chain machinery without sockets: a pool, a runner, and an egress that copies what leaves. */
class Rig {
  readonly events: PoolEvent[] = [];
  readonly segment = new SegmentStats();
  readonly runner: ChainRunner;
  readonly pool = new FilterPool(
    { log: () => {}, timerSet: () => {}, timerCancel: () => {}, timerCancelAll: () => {} },
    (e) => this.events.push(e),
  );
  /** Each stage's call count whenever packets left the chain: shows the order of calls. */
  readonly egressCalls: number[][] = [];
  private nextCtx = 1;
  private clockUs = 1_000_000;

  /** `listCapacity`: the runner's lists between stages (ChainRunner's default when not given). */
  constructor(listCapacity?: number) {
    this.runner = new ChainRunner(listCapacity);
  }

  async slot(spec: FilterSpec = HOSTILE): Promise<InstanceSlot> {
    return this.pool.acquire(spec);
  }

  async stage(config: unknown = {}, policy: Partial<FailurePolicy> = {}, spec: FilterSpec = HOSTILE, segment = "seg"): Promise<ChainStage> {
    return this.attach(await this.slot(spec), config, policy, segment);
  }

  attach(slot: InstanceSlot, config: unknown = {}, policy: Partial<FailurePolicy> = {}, segment = "seg", state?: Uint8Array): ChainStage {
    return this.pool.attach(slot, this.nextCtx++, config, { ...DEFAULT_FAILURE_POLICY, ...policy }, segment, state);
  }

  /** Runs packets through the stages as one input list; returns what left the chain, copied. */
  run(stages: readonly ChainStage[], packets: readonly Uint8Array[], flags: number | readonly number[] = 0): Sent[] {
    const input = new PacketList(Math.max(1, packets.length));
    packets.forEach((p, k) => input.push(p, 0, p.length, typeof flags === "number" ? flags : flags[k]!, Dest.Forward, 5004, 0, this.clockUs));
    const out: Sent[] = [];
    this.tick();
    this.runner.run(stages, 0, input, this.segment, this.egressInto(out, stages));
    return out;
  }

  /** The segment goes away: every stage hands over what it holds (ChainRunner.drain); returns what left the chain. */
  drain(stages: readonly ChainStage[]): Sent[] {
    const out: Sent[] = [];
    this.tick();
    this.runner.drain(stages, this.segment, this.egressInto(out, stages));
    return out;
  }

  /** `stage` leaves the chain `stages` (a reload): it hands over what it holds, entering `stages` at downFrom / upFrom. */
  drainLeaving(stage: ChainStage, stages: readonly ChainStage[], downFrom: number, upFrom: number): Sent[] {
    const out: Sent[] = [];
    this.tick();
    this.runner.drainLeaving(stage, stages, downFrom, upFrom, this.segment, this.egressInto(out, stages));
    return out;
  }

  /** Timer 0 of stages[index] fires (the rig arms no timers: this is the dataplane's part); returns what left the chain. */
  fire(stages: readonly ChainStage[], index: number): Sent[] {
    const out: Sent[] = [];
    this.tick();
    const stage = stages[index]!;
    const made = stage.live!.onTimer(stage.ctx, 0);
    this.runner.runTimerOutputs(stages, index, stage.live!, made, this.segment, this.egressInto(out, stages));
    return out;
  }

  private tick(): void {
    this.clockUs += 1000;
    this.runner.setClock(this.clockUs, Date.now() * 1000);
  }

  /** An egress that copies what leaves the chain into `out`. */
  private egressInto(out: Sent[], stages: readonly ChainStage[]): (list: PacketList) => void {
    return (list) => {
      this.egressCalls.push(stages.map((s) => s.stats.calls));
      for (let i = 0; i < list.count; i++) {
        const at = list.offset[i]!;
        const bytes = Buffer.from(list.memory[i]!.subarray(at, at + list.length[i]!));
        out.push({ key: keyOf(bytes), bytes, flags: list.flags[i]!, dest: list.dest[i]!, leg: list.leg[i]! });
      }
    };
  }

  /** What the filter counted for the context so far (its state), through the report command. */
  report(stage: ChainStage): number {
    const out = this.run([stage], [command(0, Cmd.report)]);
    assert.is(out.length, 1, "the report packet passes");
    return out[0]!.bytes.readUInt32BE(16);
  }

  close(): void {
    this.pool.close();
  }
}

async function withRig(work: (rig: Rig) => Promise<void> | void, listCapacity?: number): Promise<void> {
  const rig = new Rig(listCapacity);
  try {
    await work(rig);
  } finally {
    rig.close();
  }
}

const drops = (stage: ChainStage, reason: number): number => stage.stats.drops.byReason.get(reason) ?? 0;
const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

/** The delays the code under test gives setTimeout while `work` runs (synchronously). */
function timeoutsDuring(work: () => void): number[] {
  const real = globalThis.setTimeout;
  const delays: number[] = [];
  globalThis.setTimeout = ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    delays.push(ms ?? 0);
    return real(fn, ms, ...args);
  }) as typeof setTimeout;
  try {
    work();
  } finally {
    globalThis.setTimeout = real;
  }
  return delays;
}

// ---- ChainRunner ----

const runner = suite("ChainRunner", { timeoutMs: 20_000 });

runner("a batch above a stage's capacity is split, order kept, each chunk going depth first through 3 stages", () =>
  withRig(async (rig) => {
    // three filters (names) of the same module: three instances, as three different filters would be
    const stages = [
      await rig.stage({ mark: 1 }, {}, { ...HOSTILE, name: "h1" }),
      await rig.stage({ mark: 2 }, {}, { ...HOSTILE, name: "h2" }),
      await rig.stage({ mark: 3 }, {}, { ...HOSTILE, name: "h3" }),
    ];
    const cap = stages[0]!.live!.arena.batchCapacity;
    const n = 3 * cap + 8;
    const out = rig.run(stages, range(n).map((i) => Buffer.from(indexedRtp(i, 64))));
    assert.equal(out.map((o) => o.key), range(n), "every packet, in order");
    for (const o of out) assert.equal([...o.bytes.subarray(31, 35)], [3, 1, 2, 3], `packet ${o.key} went through stages 1, 2, 3 in order`);
    // each chunk left the last stage before the first stage took the next chunk
    assert.equal(rig.egressCalls, range(4, 1).map((k) => [k, k, k]));
    for (const st of stages) {
      assert.is(st.stats.packetsIn, n);
      assert.is(st.stats.calls, 4);
    }
  }));

/** The marks a packet collected, stage by stage (the hostile fixture's `mark`). */
const marksOf = (o: Sent): number[] => [...o.bytes.subarray(32, 32 + o.bytes[31]!)];
const UP = PacketFlag.Upstream | PacketFlag.Rtcp;

runner("upstream packets pass the stages last to first; downstream ones first to last, in one mixed batch", () =>
  withRig(async (rig) => {
    const stages = [1, 2, 3].map((mark) => rig.stage({ mark }, {}, { ...HOSTILE, name: `h${mark}` }));
    const chain = await Promise.all(stages);
    const out = rig.run(chain, range(6).map((i) => Buffer.from(indexedRtp(i, 64))), range(6).map((i) => (i % 2 === 1 ? UP : 0)));
    assert.is(out.length, 6);
    for (const o of out) assert.equal(marksOf(o), (o.flags & PacketFlag.Upstream) !== 0 ? [3, 2, 1] : [1, 2, 3], `packet ${o.key}`);
    assert.equal(out.filter((o) => (o.flags & PacketFlag.Upstream) !== 0).map((o) => o.key), [1, 3, 5], "each way in order");
  }));

runner("a packet a stage makes upstream passes the stages before it, back to the first; one it makes downstream while feedback goes up passes those after it", () =>
  withRig(async (rig) => {
    const chain = await Promise.all([1, 2, 3].map((mark) => rig.stage({ mark }, {}, { ...HOSTILE, name: `h${mark}` })));
    const cap = chain[0]!.live!.arena.batchCapacity;
    // more than a batch: the stage is called again while what it made upstream waits
    const n = cap + 5;
    const down = rig.run(chain, range(n).map((i) => command(i, 0xcf, 2, UP, 64)));
    const made = down.filter((o) => (o.flags & PacketFlag.Generated) !== 0);
    assert.is(made.length, n, "a copy of each");
    for (const o of made) {
      assert.is(o.flags & UP, UP);
      assert.equal(marksOf(o), [1, 2, 1], "made at stage 1 (mark 2) going up: through stage 0 only");
      assert.is(o.bytes[13], 0xee);
    }
    assert.equal(made.map((o) => o.key & 0xff), range(n).map((i) => i & 0xff), "the copies' bytes are their own: none overwritten by the stage's next call");
    for (const o of down.filter((x) => (x.flags & PacketFlag.Generated) === 0)) assert.equal(marksOf(o), [1, 2, 3]);

    const up = rig.run(chain, range(4).map((i) => command(i, 0xcf, 2, 0, 64)), UP);
    const back = up.filter((o) => (o.flags & PacketFlag.Generated) !== 0);
    assert.is(back.length, 4);
    for (const o of back) {
      assert.is(o.flags & PacketFlag.Upstream, 0);
      assert.equal(marksOf(o), [3, 2, 3], "made at stage 1 going down: through stage 2 only");
    }
    for (const o of up.filter((x) => (x.flags & PacketFlag.Generated) === 0)) assert.equal(marksOf(o), [3, 2, 1]);

    // made upstream by the first stage: it leaves the chain at once
    const first = rig.run(chain, [command(0, 0xcf, 1, UP, 64)]);
    assert.equal(first.map((o) => marksOf(o)), [[1, 2, 3], [1]]);

    // Dest.Reverse: a downstream-flagged answer to the sender runs the stages before it, flagged Upstream (Dest.Forward)
    const answer = rig.run(chain, [command(0, 0xcf, 2, PacketFlag.Rtcp | (Dest.Reverse << 8), 64)]);
    assert.equal(answer.map((o) => [marksOf(o), o.flags, o.dest]), [[[1, 2, 3], 0, Dest.Forward], [[1, 2, 1], UP | PacketFlag.Generated, Dest.Forward]]);
    // and an upstream-flagged one, to the destinations, the stages after it
    const onward = rig.run(chain, [command(0, 0xcf, 2, UP | (Dest.Reverse << 8), 64)], UP);
    assert.equal(onward.map((o) => [marksOf(o), o.flags, o.dest]), [[[3, 2, 1], UP, Dest.Forward], [[3, 2, 3], PacketFlag.Rtcp | PacketFlag.Generated, Dest.Forward]]);
  }));

runner("a packet larger than the stage's slots is dropped as too_large; the others pass", () =>
  withRig(async (rig) => {
    const stage = await rig.stage();
    const room = stage.live!.packetRoom;
    const out = rig.run([stage], [indexedRtp(0, 100), indexedRtp(1, room + 1), indexedRtp(2, room)]);
    assert.equal(out.map((o) => o.key), [0, 2]);
    assert.is(drops(stage, DropReason.TooLarge), 1);
  }));

runner("batch descriptors a filter breaks: the packet is dropped as host_bad_descriptor, the rest of the batch goes on", () =>
  withRig(async (rig) => {
    const stage = await rig.stage();
    const slotSize = stage.live!.arena.slotSize;
    const headroom = stage.live!.arena.headroom;
    const cases: [string, Buffer, "pass" | "bad" | "held"][] = [
      ["moved before its slot", command(1, Cmd.move, -(headroom + 1)), "bad"],
      ["moved into the next slot", command(1, Cmd.move, slotSize), "bad"],
      ["moved far outside memory", command(1, Cmd.move, 0x40000000), "bad"],
      ["length past the slot's end", command(1, Cmd.move, 0, slotSize - headroom + 1), "bad"],
      ["length 2^32-1", command(1, Cmd.move, 0, 0xffffffff), "bad"],
      ["grown into its headroom (allowed)", command(1, Cmd.move, -headroom, 64 + headroom), "pass"],
      ["verdict 3 (none such)", command(1, Cmd.verdict, 3), "bad"],
      ["verdict 255", command(1, Cmd.verdict, 255), "bad"],
      ["verdict Hold", command(1, Cmd.verdict, 2), "held"],
    ];
    for (const [label, packet, expected] of cases) {
      const bad0 = drops(stage, DropReason.HostBadDescriptor);
      const held0 = stage.stats.held;
      const out = rig.run([stage], [indexedRtp(0, 64), packet, indexedRtp(2, 64)]);
      assert.equal([out[0]!.key, out[out.length - 1]!.key], [0, 2], `${label}: its neighbours pass`);
      assert.is(out.length, expected === "pass" ? 3 : 2, label);
      assert.is(drops(stage, DropReason.HostBadDescriptor) - bad0, expected === "bad" ? 1 : 0, label);
      assert.is(stage.stats.held - held0, expected === "held" ? 1 : 0, label);
      if (expected === "pass") assert.is(out[1]!.bytes.length, 64 + headroom, `${label}: the descriptor's new length`);
    }
    assert.ok(stage.live, "a broken descriptor does not fail the filter");
    assert.is(stage.stats.failures, 0);
  }));

runner("drop reasons: shared codes the ABI names pass, host codes, unknown codes and codes past the filter's range count as host_bad_reason", () =>
  withRig(async (rig) => {
    const stage = await rig.stage();
    const cases: [number, string][] = [
      [0, "unspecified"], [2, "bad_version"], [7, "probation"], [18, "rtcp_bad_compound"], [37, "too_many_sources"], [51, "srtp_too_short"],
      [9, "host_bad_reason"], [100, "host_bad_reason"], [199, "host_bad_reason"],
      [DropReason.HostFilterFailed, "host_bad_reason"], [DropReason.HostBackpressure, "host_bad_reason"],
      [DropReason.HostBudgetExceeded, "host_bad_reason"], [DropReason.HostBadReason, "host_bad_reason"],
      [DropReason.HostSourceRefused, "host_bad_reason"], [DropReason.HostFeedbackRefused, "host_bad_reason"], [255, "host_bad_reason"],
      [256, "filter_256"], [256 + MAX_FILTER_DROP_REASONS - 1, `filter_${256 + MAX_FILTER_DROP_REASONS - 1}`],
      [256 + MAX_FILTER_DROP_REASONS, "host_bad_reason"], [65535, "host_bad_reason"], [0x7fffffff, "host_bad_reason"], [0xffffffff, "host_bad_reason"],
    ];
    for (const [code, name] of cases) {
      const before = { ...stage.stats.drops.toJSON() };
      const out = rig.run([stage], [command(0, Cmd.drop, code)]);
      assert.is(out.length, 0, `code ${code} dropped`);
      const now = stage.stats.drops.toJSON();
      const changed = Object.keys(now).filter((k) => now[k] !== before[k]);
      assert.equal(changed, [name], `code ${code} counted as ${name}`);
    }
    // however many codes a filter writes, the labels stay few
    for (let code = 0; code < 4096; code++) rig.run([stage], [command(0, Cmd.drop, code)]);
    const named = Object.values(DropReason).filter((v): v is number => typeof v === "number" && v < DropReason.HostFilterFailed).length;
    const labels = Object.keys(stage.stats.drops.toJSON());
    assert.ok(labels.length <= named + MAX_FILTER_DROP_REASONS + 1, `${labels.length} labels`);
    assert.ok(labels.every((l) => !l.startsWith("host_") || l === "host_bad_reason"), `no forged host reason: ${labels.join(",")}`);
    assert.equal(rig.segment.drops.toJSON(), stage.stats.drops.toJSON(), "the segment counts what the stage counts");
  }));

runner("a filter moves a batch packet to another leg; a leg past the ABI's is refused; a 1.1 module's port offset is refused, not sent to the media port", () =>
  withRig(async (rig) => {
    const stage = await rig.stage();
    const moved = rig.run([stage], [command(1, Cmd.setLeg, 1), command(2, Cmd.setLeg, 256 + 8), command(3, Cmd.setLeg, 0)]);
    assert.equal(moved.map((o) => [o.key & 0xff, o.leg]), [[1, 1], [3, 0]], "leg 1 kept; leg 8 refused");
    assert.is(drops(stage, DropReason.HostBadDescriptor), 1);
    for (const [abi, refused] of [["msm_abi_version_1_2", 0], ["msm_abi_version_1_1", 1]] as const) {
      const bytes = Buffer.from(await readFile(fixture("hostile")));
      bytes.write(abi, bytes.indexOf(ABI_VERSION_EXPORT), "latin1");
      const st = rig.attach(await rig.slot({ name: `hostile-${abi}`, bytes: new Uint8Array(bytes) }));
      const bad0 = drops(st, DropReason.HostBadDescriptor);
      const out = rig.run([st], [command(4, Cmd.emit, Dest.Forward, 2 << 16)]); // leg 0, port offset 2
      assert.is(out.filter((o) => (o.flags & PacketFlag.Generated) !== 0).length, 1 - refused, abi);
      assert.is(drops(st, DropReason.HostBadDescriptor) - bad0, refused, abi);
    }
  }));

runner("output descriptors: only known dests, legs below 8, the own slot and the own context", () =>
  withRig(async (rig) => {
    const slot = await rig.slot();
    const stage = rig.attach(slot);
    const other = rig.attach(slot, {}, {}, "other-segment");
    const cases: [string, Buffer, boolean][] = [
      ["Forward", command(1, Cmd.emit, Dest.Forward), true],
      ["Reverse", command(1, Cmd.emit, Dest.Reverse), true],
      ...range(14, 2).map((d): [string, Buffer, boolean] => [`dest ${d} (none such)`, command(1, Cmd.emit, d), false]),
      ["destination 0", command(1, Cmd.emit, Dest.DestinationIndexBase), true],
      ["destination 239", command(1, Cmd.emit, 255), true], // the segment refuses what it does not have (HostNoDestination)
      ["leg 2 (FEC row)", command(1, Cmd.emit, Dest.Forward, 2), true],
      ["leg 7", command(1, Cmd.emit, Dest.Forward, 7), true], // the segment refuses a leg it does not have (HostNoDestination)
      ["leg 8", command(1, Cmd.emit, Dest.Forward, 8), false],
      ["leg 255", command(1, Cmd.emit, Dest.Forward, 0xff), false],
      ["offset in the next output slot", command(1, Cmd.emitBroken, 1), false],
      ["length past its slot", command(1, Cmd.emitBroken, 2), false],
      ["offset in the batch slots", command(1, Cmd.emitBroken, 3), false],
      ["another segment's context", command(1, Cmd.emitOther), false],
    ];
    for (const [label, packet, accepted] of cases) {
      const bad0 = drops(stage, DropReason.HostBadDescriptor);
      const generated0 = stage.stats.generated;
      const out = rig.run([stage], [packet]);
      const made = out.filter((o) => (o.flags & PacketFlag.Generated) !== 0);
      assert.is(made.length, accepted ? 1 : 0, label);
      assert.is(drops(stage, DropReason.HostBadDescriptor) - bad0, accepted ? 0 : 1, label);
      assert.is(stage.stats.generated - generated0, 1, `${label}: made, whether the host took it or not`);
      if (accepted) {
        // Dest.Reverse leaves as a packet of the other way to Dest.Forward (the same peers), having run that way's stages
        const reverse = packet.readUInt32BE(16) === Dest.Reverse;
        assert.is(made[0]!.dest, reverse ? Dest.Forward : packet.readUInt32BE(16), `${label}: dest`);
        assert.is(made[0]!.flags & PacketFlag.Upstream, reverse ? PacketFlag.Upstream : 0, `${label}: its way`);
        assert.is(made[0]!.leg, packet.readUInt32BE(20), `${label}: leg`);
      }
    }
    assert.is(other.stats.generated, 0, "nothing was counted for the other segment");
    assert.is(stage.stats.failures, 0);
  }));

runner("a Dest.Reverse output on a leg is not turned into a packet of the other way (to Dest.Forward it would go to the leg's destinations): it stays Dest.Reverse, which the segment refuses", () =>
  withRig(async (rig) => {
    const stage = rig.attach(await rig.slot());
    const made = rig.run([stage], [command(1, Cmd.emit, Dest.Reverse, 2)]).filter((o) => (o.flags & PacketFlag.Generated) !== 0);
    assert.is(made.length, 1);
    assert.equal([made[0]!.dest, made[0]!.flags & PacketFlag.Upstream, made[0]!.leg], [Dest.Reverse, 0, 2]);
  }));

/** A stage's packets in, and out - generated + held + drops + discards + bypassed: equal (docs/proxy.md, msm_filter_held_total). */
function balance(st: ChainStage): [number, number] {
  const s = st.stats;
  return [s.packetsIn, s.packetsOut - s.generated + s.held + s.drops.total + s.discards.total + s.bypassed];
}

/**
 * A packet the hostile fixture's stages hold in turn (command 0xD0): held by the stage marked
 * holders[0], then holders[1] ..., carrying `then` (0 or 0xCF with A and B) once the last let it go.
 */
function held(i: number, holders: readonly number[], then = 0, a = 0, b = 0): Buffer {
  const p = command(i, 0xd0, a, b, 64);
  holders.forEach((mark, k) => (p[24 + k] = mark));
  p[30] = then;
  return p;
}

runner("more answers turned back in one run than the 1,024 places that wait for them: the rest are counted generated and dropped (host_budget_exceeded), and the stage's counts add up", () =>
  withRig(async (rig) => {
    const stage = await rig.stage({ mark: 1 });
    const n = 1100;
    // each packet answered to the sender (Dest.Reverse) while the pass goes down: every answer turns back
    const out = rig.run([stage], range(n).map((i) => command(i, 0xcf, 1, PacketFlag.Rtcp | (Dest.Reverse << 8), 64)));
    const answers = out.filter((o) => (o.flags & PacketFlag.Generated) !== 0);
    assert.is(answers.length, 1024, "as many answers as places");
    assert.is(out.length - answers.length, n, "the packets themselves all passed");
    assert.is(drops(stage, DropReason.HostBudgetExceeded), n - answers.length);
    assert.is(rig.segment.drops.byReason.get(DropReason.HostBudgetExceeded), n - answers.length);
    assert.is(stage.stats.generated, n, "every answer it made within its budget counts as generated");
    assert.equal(balance(stage), [n, n], "in = out - generated + held + drops");
  }));

/** The host's refusals of a stage's outputs so far: bad descriptors and those over the budget (or with no place). */
const refusedOutputs = (st: ChainStage): number => drops(st, DropReason.HostBadDescriptor) + drops(st, DropReason.HostBudgetExceeded);
const madeBy = (out: readonly Sent[]): number => out.filter((o) => (o.flags & PacketFlag.Generated) !== 0).length;

runner("every output the host refuses is generated and dropped, so the stage's counts add up: bad descriptors, in a batch and as Dest.Reverse answers", () =>
  withRig(async (rig) => {
    const stage = await rig.stage();
    const cap = stage.live!.arena.outCapacity;
    let left = 0;
    left += madeBy(rig.run([stage], [command(0, Cmd.outCount, cap)])); // cap outputs, none written
    assert.equal(balance(stage), [1, 1], "an output count with nothing written");
    left += madeBy(rig.run([stage], [command(1, Cmd.emit, 5), command(2, Cmd.emit, Dest.Forward), command(3, Cmd.emitBroken, 2)]));
    assert.equal(balance(stage), [4, 4], "a dest that does not exist, a good copy, one past its slot");
    left += madeBy(rig.run([stage], [command(4, Cmd.emit, Dest.Reverse, 8), command(5, Cmd.emit, Dest.Reverse)]));
    assert.equal(balance(stage), [6, 6], "an answer on leg 8, a good answer");
    assert.is(left, 2, "the good copy and the good answer left");
    assert.is(drops(stage, DropReason.HostBadDescriptor), cap + 3);
    assert.is(stage.stats.generated, cap + 5, "every output the stage made");
    assert.is(stage.stats.generated - refusedOutputs(stage), left, "generated less refused: what left");
    assert.is(rig.segment.drops.byReason.get(DropReason.HostBadDescriptor), cap + 3, "the segment counts the same drops");
  }));

runner("every output over the budget of generated packets is generated and dropped: in a batch, as turned-back answers, from a timer, in a drain", () =>
  withRig(async (rig) => {
    // 1 a second: the burst (2,048) is all there is while the rig's clock moves a millisecond a run
    const stage = await rig.stage({ mark: 1 }, {}, { ...HOSTILE, limits: { generatedPerSecond: 1, timerFiresPerSecond: 1000 } });
    const burst = 2048;
    let left = 0;
    let sent = 0;
    const copies = (n: number, dest: number = Dest.Forward): Buffer[] => range(n).map(() => command(sent++, Cmd.emit, dest));
    const cap = stage.live!.arena.batchCapacity;
    for (let k = 0; k < burst / cap + 1; k++) left += madeBy(rig.run([stage], copies(cap)));
    assert.is(left, burst, "the burst left, no more");
    assert.is(drops(stage, DropReason.HostBudgetExceeded), cap, "a batch's copies over the budget");
    assert.equal(balance(stage), [sent, sent], "batch outputs");
    left += madeBy(rig.run([stage], copies(10, Dest.Reverse)));
    assert.equal(balance(stage), [sent, sent], "answers that would have turned back");
    // the timer: the fixture fills its output area each firing
    rig.run([stage], [command(sent++, Cmd.flood, 1_000_000)]);
    left += madeBy(rig.fire([stage], 0));
    assert.equal(balance(stage), [sent, sent], "a timer's outputs");
    // held packets handed over when the segment goes
    assert.is(rig.run([stage], [held(sent++, [1]), held(sent++, [1])]).length, 0, "both held");
    left += madeBy(rig.drain([stage]));
    assert.equal(balance(stage), [sent, sent], "a drain's outputs");
    assert.is(stage.stats.held, 2);
    assert.is(left, burst, "nothing more left");
    const over = cap + 10 + stage.live!.arena.outCapacity + 2;
    assert.is(drops(stage, DropReason.HostBudgetExceeded), over);
    assert.is(stage.stats.generated, burst + over, "every output the stage made");
    assert.is(rig.segment.drops.byReason.get(DropReason.HostBudgetExceeded), over, "the segment counts the same drops");
  }));

runner("an output that finds the list to the next stage full is generated and dropped (host_budget_exceeded), and the stage's counts add up", () =>
  withRig(async (rig) => {
    const stage = await rig.stage();
    const cap = stage.live!.arena.batchCapacity;
    // every packet passes and makes a copy: the packets fill the list first, 100 - cap copies find a place
    const out = rig.run([stage], range(cap).map((i) => command(i, Cmd.emit, Dest.Forward)));
    assert.is(out.length, 100);
    assert.is(madeBy(out), 100 - cap);
    assert.is(drops(stage, DropReason.HostBudgetExceeded), 2 * cap - 100);
    assert.is(stage.stats.generated, cap);
    assert.equal(balance(stage), [cap, cap]);
    assert.is(rig.segment.drops.total, 2 * cap - 100);
  }, 100));

runner("a segment going away: stages drain first to last in sweeps, so what a later stage hands over upstream to one already drained that holds it is handed over again; all delivered, counts add up", () =>
  withRig(async (rig) => {
    const chain = await Promise.all([1, 2, 3].map((mark) => rig.stage({ mark }, {}, { ...HOSTILE, name: `h${mark}` })));
    // feedback held by the last stage, then by the first; media held by the first, then the last
    const before = rig.run(chain, [held(0, [3, 1]), held(1, [1, 3])], [UP, 0]);
    assert.is(before.length, 0, "both held");
    const out = rig.drain(chain);
    assert.equal(out.map((o) => [o.key, marksOf(o), o.flags]), [
      [1, [1, 2, 3], PacketFlag.Generated],
      [0, [3, 2, 1], UP | PacketFlag.Generated],
    ], "each went its way through every stage, none left held");
    for (const st of chain) assert.equal(balance(st), [st.stats.packetsIn, st.stats.packetsIn], `stage ${st.filterName}`);
    assert.equal(chain.map((st) => st.stats.held), [2, 0, 2]);
    assert.is(rig.segment.drops.total, 0);
  }));

runner("a stage leaving a chain hands over into the new one at the place given, and is not called again: the answer a later stage makes to what it handed over goes back from the stage before that one", () =>
  withRig(async (rig) => {
    const [h1, h2, h3] = await Promise.all([1, 2, 3].map((mark) => rig.stage({ mark }, {}, { ...HOSTILE, name: `h${mark}` })));
    // media held by h2 that h3 answers to the sender once it is let go; and feedback h2 holds
    const kept = rig.run([h1!, h2!, h3!], [held(0, [2], 0xcf, 3, PacketFlag.Rtcp | (Dest.Reverse << 8)), held(1, [2])], [0, UP]);
    assert.is(kept.length, 0, "both held");
    const calls = h2!.stats.calls;
    const inBefore = h2!.stats.packetsIn;
    // the new chain [h1, h3]: h2 stood between them
    const out = rig.drainLeaving(h2!, [h1!, h3!], 1, 0);
    assert.equal(out.map((o) => [o.key & 0xff, marksOf(o), o.flags & PacketFlag.Upstream]).sort(), [
      [0, [1, 2, 3], 0],
      [0, [1, 2, 3, 1], PacketFlag.Upstream],
      [1, [3, 2, 1], PacketFlag.Upstream],
    ].sort(), "the answer passed h1 only; the feedback h1");
    assert.is(h2!.stats.calls, calls, "h2 was not called after its drain");
    assert.is(h2!.stats.packetsIn, inBefore);
  }));

/**
 * Where a leaving stage's packets enter the new chain, on chains of names: `next` names a kept stage
 * as the old one it continues (an apostrophe marks a successor that refused its state), a new one
 * by a name the old chain does not have.
 */
function entryOf(old: string, next: string, leaving: string): [number, number] {
  const o = old.split(" ");
  const n = next.split(" ").filter((x) => x !== "");
  const predecessor = new Map<string, string>();
  for (const st of n) if (o.includes(st.replace("'", ""))) predecessor.set(st, st.replace("'", ""));
  const e = leavingEntry(o, n, predecessor, o.indexOf(leaving));
  return [e.downFrom, e.upFrom];
}

runner("a leaving stage's place in the new chain: downstream it enters after the kept stages of the sender's side, upstream before those of the receivers' side, passing the stages added between either way", () => {
  const cases: [string, string, string, [number, number], string][] = [
    ["A B C", "A C", "B", [1, 0], "between the stages around it"],
    ["B C", "S C", "B", [0, 0], "an srtp stage added at the head: upstream through it"],
    ["A B", "A S", "B", [1, 1], "one added at the tail: downstream through it"],
    ["A B C", "A S C", "B", [1, 1], "one added in its place: both ways through it"],
    ["A B C", "S A T C", "B", [2, 2], "the head's addition on the sender's side of A"],
    ["A B C D", "A S D", "B", [1, 1], "two removed side by side"],
    ["A B C D", "A S D", "C", [1, 1], "two removed side by side"],
    ["A B C", "A X B' Y C", "B", [3, 1], "its successor (state refused) is not passed; what was added on each side of it is, that way"],
    ["A B C", "C A", "B", [0, 1], "kept stages reordered across it: each way takes in every kept stage of its side"],
    ["A B C", "C B' A", "B", [2, 0], "with a successor the new chain places it, reordered or not: the successor is never passed"],
    ["A B", "", "A", [0, -1], "no stage left"],
  ];
  for (const [old, next, leaving, expected, label] of cases) assert.equal(entryOf(old, next, leaving), expected, `${old} -> ${next}, ${leaving} leaving: ${label}`);
});

for (const [label, count] of [["-1", -1], ["-2^31", -0x80000000], ["capacity + 1", 65], ["2^31-1", 0x7fffffff]] as const) {
  runner(`an output count of ${label} is a filter failure`, () =>
    withRig(async (rig) => {
      const stage = await rig.stage({}, { mode: "open", restartBackoffMs: 60_000 });
      const out = rig.run([stage], [indexedRtp(0, 64), command(1, Cmd.outCount, count), indexedRtp(2, 64)]);
      assert.equal(out.map((o) => o.key), [0, 1, 2], "fail-open: the failed batch passes untouched");
      assert.is(stage.live, null);
      assert.is(stage.stats.failures, 1);
      const failure = rig.events.find((e) => e.type === "failure");
      assert.ok(failure && failure.type === "failure" && /output packets \(capacity 64\)/.test(failure.reason), JSON.stringify(rig.events));
    }));
}

runner("an output count equal to the capacity with nothing written: 64 descriptors refused, no failure", () =>
  withRig(async (rig) => {
    const stage = await rig.stage();
    const cap = stage.live!.arena.outCapacity;
    const out = rig.run([stage], [command(0, Cmd.outCount, cap)]);
    assert.is(out.length, 1, "only the packet itself");
    assert.is(drops(stage, DropReason.HostBadDescriptor), cap);
    assert.is(stage.stats.generated, cap, "each refused output was made (generated) and dropped");
    assert.equal(balance(stage), [1, 1], "in = out - generated + held + drops");
    assert.ok(stage.live);
  }));

for (const mode of ["open", "closed"] as const) {
  runner(`fail-${mode}: a trap in the second chunk; the chunk and the rest follow the policy, and so does the next batch`, () =>
    withRig(async (rig) => {
      const stage = await rig.stage({}, { mode, restartBackoffMs: 60_000 });
      const cap = stage.live!.arena.batchCapacity;
      const n = 3 * cap + 8;
      const trapAt = cap + 5;
      const packets = range(n).map((i) => (i === trapAt ? command(i, Cmd.trap) : Buffer.from(indexedRtp(i, 64))));
      const out = rig.run([stage], packets);
      assert.is(stage.stats.failures, 1);
      assert.is(stage.live, null);
      assert.equal(rig.events.map((e) => e.type), ["failure"]);
      if (mode === "open") {
        assert.equal(out.map((o) => o.key), range(n), "every packet, in order, the trapping one too");
        assert.is(stage.stats.bypassed, n - cap);
        assert.is(rig.segment.drops.total, 0);
      } else {
        assert.equal(out.map((o) => o.key), range(cap), "only the chunk before the trap");
        assert.is(rig.segment.drops.byReason.get(DropReason.HostFilterFailed), n - cap);
        assert.is(stage.stats.bypassed, 0);
      }
      const next = rig.run([stage], range(10).map((i) => indexedRtp(i, 64)));
      assert.is(next.length, mode === "open" ? 10 : 0, "while down");
      assert.is(drops(stage, DropReason.HostFilterFailed), mode === "open" ? 0 : n - cap + 10);
    }));
}

runner.run();

// ---- FilterPool ----

const pool = suite("FilterPool", { timeoutMs: 20_000 });

pool("one instance serves every stage of a filter; it goes with the last stage", () =>
  withRig(async (rig) => {
    const a = await rig.slot();
    const b = await rig.slot();
    assert.is(a, b);
    const stages = [rig.attach(a), rig.attach(a), rig.attach(b)];
    assert.is(rig.pool.instanceCount, 1);
    assert.ok(stages.every((s) => s.live !== null && s.live === a.instance));
    assert.is(new Set(stages.map((s) => s.ctx)).size, 3, "a context each");
    const other = await rig.slot({ ...HOSTILE, limits: { generatedPerSecond: 10, timerFiresPerSecond: 10 } });
    assert.is.not(other, a, "other limits: another instance");
    for (const s of stages) rig.pool.detach(s);
    assert.is(a.instance, null);
  }));

const POLICY = { mode: "closed", restartBackoffMs: 1, maxBackoffMs: 10, maxFailures: 5 } as const;

/** How each lifecycle call is made to trap, given a slot with a running stage. */
const lifecycleTraps: [string, (rig: Rig, slot: InstanceSlot) => void][] = [
  ["createContext", (rig, slot) => assert.throws(() => rig.attach(slot, { trap: "create" }, POLICY, "b"), (e: unknown) => e instanceof FilterFailure)],
  ["destroyContext", (rig, slot) => rig.pool.detach(rig.attach(slot, { trap: "destroy" }, POLICY, "b"))],
  ["exportState", (rig, slot) => {
    const b = rig.attach(slot, { trap: "export" }, POLICY, "b");
    assert.throws(() => b.live!.exportState(b.ctx), (e: unknown) => e instanceof FilterFailure);
  }],
  ["importState", (rig, slot) => {
    rig.attach(slot, { trap: "import" }, POLICY, "b", Uint8Array.of(1, 0, 0, 0, 9, 0, 0, 0));
  }],
];

for (const [call, trap] of lifecycleTraps) {
  pool(`a trap in ${call}: the others on the instance go down, restart after their backoff and import their checkpoint`, () =>
    withRig(async (rig) => {
      const slot = await rig.slot();
      const a = rig.attach(slot, {}, POLICY, "a");
      rig.run([a], range(5).map((i) => indexedRtp(i, 64)));
      a.checkpoint = a.live!.exportState(a.ctx); // what the worker's checkpoint does every second
      rig.run([a], range(3).map((i) => indexedRtp(i, 64)));
      const dead = slot.instance;
      trap(rig, slot);
      const failure = rig.events.find((e) => e.type === "failure");
      assert.ok(failure && failure.type === "failure" && failure.segments.includes("a"), JSON.stringify(rig.events));
      assert.match(failure.type === "failure" ? failure.reason : "", /unreachable/i);
      assert.is(a.live, null, "down");
      assert.is(a.stats.failures, 1);
      assert.is(rig.run([a], [indexedRtp(0, 64)]).length, 0, "closed while down");
      await waitFor(() => rig.events.some((e) => e.type === "restarted"), 5000, "a restart");
      const restarted = rig.events.find((e) => e.type === "restarted");
      assert.ok(restarted && restarted.type === "restarted" && restarted.segments.includes("a"), JSON.stringify(rig.events));
      assert.ok(a.live && a.live !== dead, "a new instance");
      assert.is(rig.report(a), 5 + 1, "the checkpoint (5 packets) was imported, then the report packet counted");
      assert.ok(!rig.events.some((e) => e.type === "gave-up"), JSON.stringify(rig.events));
    }));
}

pool("a checkpoint whose import traps is not imported again: the others on the instance come back", () =>
  withRig(async (rig) => {
    const slot = await rig.slot();
    const a = rig.attach(slot, {}, POLICY, "a");
    const b = rig.attach(slot, {}, POLICY, "b");
    rig.run([a], range(4).map((i) => indexedRtp(i, 64)));
    a.checkpoint = a.live!.exportState(a.ctx);
    b.checkpoint = Uint8Array.of(1, 0, 0, 0, 7, 0, 0, 0);
    // b's filter version now traps on that blob (a poisoned checkpoint): its stage is replaced
    rig.pool.detach(b);
    const poisoned = rig.attach(slot, { trap: "import" }, POLICY, "b", b.checkpoint);
    await waitFor(() => rig.events.some((e) => e.type === "restarted" || e.type === "gave-up"), 5000, "a restart");
    assert.ok(!rig.events.some((e) => e.type === "gave-up"), `nobody gives up: ${JSON.stringify(rig.events)}`);
    assert.is(rig.events.filter((e) => e.type === "failure").length, 1, JSON.stringify(rig.events));
    assert.ok(a.live && poisoned.live, "both run again");
    assert.is(rig.report(a), 4 + 1, "a's own checkpoint was imported");
    assert.is(rig.report(poisoned), 1, "the poisoned stage started fresh");
    assert.ok(rig.events.some((e) => e.type === "state-lost" && e.segment === "b"), "and that was said");
  }));

pool("a stage attached while its instance waits to restart joins the restart, with the state it was given", () =>
  withRig(async (rig) => {
    const slot = await rig.slot();
    const a = rig.attach(slot, {}, { ...POLICY, restartBackoffMs: 50 }, "a");
    rig.run([a], [command(0, Cmd.trap)]);
    assert.is(slot.instance, null, "down, its restart pending");
    const state = Uint8Array.of(1, 0, 0, 0, 3, 0, 0, 0); // the hostile fixture's count blob: 3 packets
    const b = rig.attach(slot, {}, POLICY, "b", state);
    assert.is(b.live, null, "waits for the restart");
    await waitFor(() => rig.events.some((e) => e.type === "restarted"), 5000, "a restart");
    assert.ok(a.live && b.live, "both run on the new instance");
    assert.is(rig.report(b), 3 + 1, "b's state was imported at the restart");
  }));

pool("a stage given up by a restored count while it ran (a watchdog restart) goes down with the instance and stays down after the others' restart", () =>
  withRig(async (rig) => {
    const slot = await rig.slot();
    const a = rig.attach(slot, {}, { ...POLICY, maxFailures: 1 }, "a");
    const b = rig.attach(slot, {}, POLICY, "b");
    rig.pool.restoreFailureCount(a, 1); // what a worker restart carries over: a's limit is reached
    assert.ok(a.gaveUp && a.active, "given up, its context still in the instance");
    rig.pool.handleFailure(slot, new Error("stuck in a filter call"));
    assert.is(a.live, null, "down with the instance");
    await waitFor(() => rig.events.some((e) => e.type === "restarted"), 5000, "the restart for b");
    assert.ok(b.live, "b runs again");
    assert.is(a.live, null, "a stays down: the new instance has no context for it");
    assert.is(rig.run([a], [indexedRtp(0, 64)]).length, 0, "closed: nothing passes a given-up stage");
  }));

pool("restarts back off (doubling, capped, the soonest stage's delay), then give up after maxFailures", () =>
  withRig(async (rig) => {
    const slot = await rig.slot();
    const a = rig.attach(slot, {}, { mode: "open", restartBackoffMs: 4, maxBackoffMs: 10, maxFailures: 4 }, "a");
    const b = rig.attach(slot, {}, { mode: "closed", restartBackoffMs: 50, maxBackoffMs: 100, maxFailures: 100 }, "b");
    const delays: number[][] = [];
    for (let k = 1; k <= 4; k++) {
      delays.push(timeoutsDuring(() => rig.run([a], [command(0, Cmd.trap)])));
      assert.is(a.stats.failures, k);
      if (k < 4) await waitFor(() => rig.events.filter((e) => e.type === "restarted").length === k, 5000, `restart ${k}`);
    }
    // a: 4, 8, 10 (capped), then it gives up; b's delays (50, 100, 100) are later, so a's win until then
    assert.equal(delays, [[4], [8], [10], [100]]);
    const gaveUp = rig.events.filter((e) => e.type === "gave-up");
    assert.equal(gaveUp.map((e) => e.type === "gave-up" && [e.segment, e.failures]), [["a", 4]]);
    assert.ok(a.gaveUp && !b.gaveUp);
    await waitFor(() => b.live !== null, 5000, "b restarted");
    assert.is(a.live, null, "a stays down while b runs on the new instance");
    const bypassed = a.stats.bypassed;
    const out = rig.run([a], range(5).map((i) => indexedRtp(i, 64)));
    assert.is(out.length, 5, "a: fail-open passes what it gets");
    assert.is(a.stats.bypassed - bypassed, 5);
  }));

pool("a filter that declares MustFailClosed (srtp) is never bypassed, whatever the segment's mode", () =>
  withRig(async (rig) => {
    assert.is(DEFAULT_FAILURE_POLICY.mode, "closed", "fail closed by default");
    const srtp = await rig.slot({ name: "srtp", path: filterWasm("srtp") });
    assert.ok(srtp.mustFailClosed);
    const stage = rig.attach(srtp, { direction: "protect", key: "ab".repeat(30) }, { mode: "open", restartBackoffMs: 60_000 });
    assert.is(stage.policy.mode, "closed");
    const plain = await rig.stage({}, { mode: "open" });
    assert.is(plain.policy.mode, "open", "the others keep their mode");
    rig.pool.handleFailure(srtp, new Error("stuck in a filter call")); // as the watchdog reports it
    const out = rig.run([stage], range(10).map((i) => indexedRtp(i, 100)));
    assert.is(out.length, 0, "no plaintext leaves");
    assert.is(drops(stage, DropReason.HostFilterFailed), 10);
    assert.is(stage.stats.bypassed, 0);
  }));

pool.run();

// ---- EgressRing and SendTracker ----

const ring = suite("EgressRing and SendTracker");

const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);

ring("a slot is reused only after every send of it completed; -1 while it is busy", () => {
  const r = new EgressRing(4);
  const at = range(4).map((k) => r.put(bytes(100, k + 1), 0, 100));
  assert.equal(at, range(4).map((k) => k * RING_SLOT_SIZE));
  for (const a of at) assert.ok(r.hold(a));
  assert.is(r.pending, 4);
  assert.is(r.put(bytes(10, 9), 0, 10), -1, "the oldest slot is being sent");
  assert.is(r.put(bytes(10, 9), 0, 10), -1, "still: the ring waits for it rather than skip it");
  r.release(at[0]!);
  assert.is(r.put(bytes(10, 9), 0, 10), 0, "free once its send completed");
  assert.equal([...r.buffer.subarray(0, 11)], [...bytes(10, 9), 1], "new bytes, the rest of the slot untouched");
  assert.equal([...r.buffer.subarray(RING_SLOT_SIZE, RING_SLOT_SIZE + 100)], [...bytes(100, 2)], "the busy slots keep their bytes");
});

ring("fan-out: a slot sent to several destinations is held until the last send completes", () => {
  const r = new EgressRing(1);
  const at = r.put(bytes(50, 7), 0, 50);
  assert.ok(r.hold(at) && r.hold(at) && r.hold(at));
  r.release(at);
  r.release(at);
  assert.is(r.put(bytes(1, 1), 0, 1), -1);
  r.release(at);
  assert.is(r.put(bytes(1, 1), 0, 1), 0);
  assert.is(r.pending, 0);
});

ring("a slot never sent (no destination) is free at once; a slot held 65535 times refuses more", () => {
  const r = new EgressRing(2);
  assert.is(r.put(bytes(5, 1), 0, 5), 0);
  const at = r.put(bytes(5, 2), 0, 5);
  assert.is(r.put(bytes(5, 3), 0, 5), 0, "slot 0 was never held");
  for (let k = 0; k < 0xffff; k++) assert.ok(r.hold(at));
  assert.not.ok(r.hold(at), "the counter would wrap");
  assert.is(r.pending, 0xffff);
});

ring("SendTracker: completions release in send order, an error is counted, a send that threw is taken back", () => {
  const r = new EgressRing(8);
  const t = new SendTracker(r);
  const at = range(3).map((k) => r.put(bytes(10, k), 0, 10));
  for (const a of at) {
    r.hold(a);
    t.push(a);
  }
  t.push(-1); // a buffer outside the ring (a received datagram sent as it is)
  assert.is(t.count, 4);
  t.onSent(null);
  assert.is(r.pending, 2, "the first send released its slot");
  t.onSent(new Error("EPERM"));
  assert.is(t.failed, 1);
  assert.is(r.pending, 1, "a failed send releases its slot too");
  r.hold(at[2]!); // a second destination of the last slot: its send throws
  t.push(at[2]!);
  assert.is(t.unpush(), at[2]!, "unpush returns the slot, the caller releases it");
  r.release(at[2]!);
  assert.is(t.count, 2);
  t.onSent(null);
  t.onSent(null);
  assert.is(r.pending, 0);
  assert.is(t.count, 0);
  t.onSent(null); // a callback nothing was tracked for: ignored, nothing released twice
  assert.is(r.pending, 0);
});

/** A ring that records which slots are released, in order. */
class RecordingRing extends EgressRing {
  readonly released: number[] = [];
  override release(at: number): void {
    this.released.push(at);
    super.release(at);
  }
}

ring("a fan-out's allowance of sends in flight: four batches to every destination, never less than 16384", () => {
  assert.is(pendingAllowance(1, 64), 16384);
  assert.is(pendingAllowance(1000, 64), 256_000);
  assert.is(pendingAllowance(4096, 1024), 4 * 1024 * 4096);
});

ring("SendTracker grows past its first 32 entries with the send order kept, and is full at its bound", () => {
  const r = new RecordingRing(256);
  const t = new SendTracker(r);
  t.maxPending = 200;
  const send = (): number => {
    const a = r.put(bytes(1, 1), 0, 1);
    assert.ok(a >= 0 && r.hold(a));
    t.push(a);
    return a;
  };
  for (let k = 0; k < 10; k++) {
    send();
    t.onSent(null); // moves the queue's head off 0, so that growing has to unwrap it
  }
  r.released.length = 0;
  const sent = range(200).map(send);
  assert.ok(t.full);
  assert.is(t.count, 200);
  for (let k = 0; k < 200; k++) t.onSent(null);
  assert.equal(r.released, sent, "released in the order sent");
  assert.is(r.pending, 0);
  assert.not.ok(t.full);
});

ring("SendTracker.abandon releases what a closed socket still held; late callbacks change nothing", () => {
  const r = new EgressRing(64);
  const t = new SendTracker(r);
  for (let k = 0; k < 40; k++) {
    const a = r.put(bytes(1, k), 0, 1);
    r.hold(a);
    t.push(a);
  }
  t.push(-1);
  t.abandon();
  assert.is(t.count, 0);
  assert.is(r.pending, 0);
  t.onSent(new Error("ECANCELED"));
  assert.is(r.pending, 0, "no release past zero");
  assert.is(r.put(bytes(1, 1), 0, 1) >= 0, true);
});

ring.run();

// ---- TokenBucket ----

const bucket = suite("TokenBucket");

bucket("starts with its burst, refills at its rate, never above the burst, not when the clock goes back", () => {
  const b = new TokenBucket(1000, 5); // one token per millisecond
  const t0 = 10_000_000;
  let took = 0;
  while (b.take(t0)) took++;
  assert.is(took, 5, "the burst");
  assert.is(b.waitUs(t0), 1000, "one token in a millisecond");
  assert.is(b.waitUs(t0 + 400), 600);
  assert.not.ok(b.take(t0 + 999));
  assert.ok(b.take(t0 + 1000));
  assert.not.ok(b.take(t0 + 1000));
  assert.not.ok(b.take(t0 - 50_000), "a clock going back refills nothing");
  took = 0;
  while (b.take(t0 + 60_000_000)) took++;
  assert.is(took, 5, "a long silence refills up to the burst only");
  assert.is(b.waitUs(t0 + 60_000_000), 1000);
});

bucket("a slow rate: 3 per second gives the next token a third of a second after the last", () => {
  const b = new TokenBucket(3, 1);
  assert.ok(b.take(0));
  assert.is(b.waitUs(0), 333_334);
  assert.not.ok(b.take(333_333));
  assert.ok(b.take(333_334));
});

bucket.run();

// ---- checkArena ----

const arena = suite("checkArena");

const MEM = 1 << 20;
const HEADER = 1024;

/** A good header: batch 64 x 2048 bytes, out 64, scratch 64 KiB, laid out after the header. */
function goodArena(): Record<number, number> {
  const descTable = HEADER + 64;
  const outTable = descTable + 64 * 32;
  const slotBase = outTable + 64 * 32;
  const outSlotBase = slotBase + 64 * 2048;
  const scratch = outSlotBase + 64 * 2048;
  return {
    [AH_MAGIC]: ARENA_MAGIC, [AH_BATCH_CAPACITY]: 64, [AH_DESC_TABLE]: descTable, [AH_SLOT_BASE]: slotBase,
    [AH_SLOT_SIZE]: 2048, [AH_HEADROOM]: 64, [AH_OUT_CAPACITY]: 64, [AH_OUT_TABLE]: outTable,
    [AH_OUT_SLOT_BASE]: outSlotBase, [AH_SCRATCH]: scratch, [AH_SCRATCH_SIZE]: 65536,
  };
}

function check(fields: Record<number, number>, address = HEADER, memSize = MEM): string {
  const v = new DataView(new ArrayBuffer(memSize));
  if (address >= 0 && address + 64 <= memSize) for (const [off, value] of Object.entries(fields)) v.setUint32(address + Number(off), value >>> 0, true);
  try {
    const layout = checkArena(v, address, (why) => new Error(why));
    return `ok ${layout.batchCapacity}`;
  } catch (err) {
    return (err as Error).message;
  }
}

arena("a good header passes, read as written", () => {
  assert.is(check(goodArena()), "ok 64");
  const g = goodArena();
  assert.is(check({ ...g, [AH_OUT_CAPACITY]: 0, [AH_OUT_TABLE]: 0, [AH_OUT_SLOT_BASE]: 0 }), "ok 64", "no output area at all");
  assert.is(check({ ...g, [AH_BATCH_CAPACITY]: 1 }), "ok 1");
});

arena("bad headers are refused, each with its reason", () => {
  const g = goodArena();
  const cases: [string, Record<number, number>, RegExp, number?, number?][] = [
    ["header at 0", g, /returned 0, outside memory/, 0],
    ["header at -8", g, /returned -8, outside memory/, -8],
    ["header past the end", g, /outside memory/, MEM - 32],
    ["wrong magic", { ...g, [AH_MAGIC]: 0x12345678 }, /wrong magic/],
    ["batch_capacity 0", { ...g, [AH_BATCH_CAPACITY]: 0 }, /batch_capacity 0 not in 1\.\.1024/],
    ["batch_capacity 1025", { ...g, [AH_BATCH_CAPACITY]: 1025 }, /batch_capacity 1025 not in 1\.\.1024/],
    ["batch_capacity 2^32-1", { ...g, [AH_BATCH_CAPACITY]: 0xffffffff }, /batch_capacity 4294967295/],
    ["out_capacity 1025", { ...g, [AH_OUT_CAPACITY]: 1025 }, /out_capacity 1025 not in 0\.\.1024/],
    ["slot room 1279", { ...g, [AH_SLOT_SIZE]: 1279 + 64 }, /slot_size - headroom below 1280/],
    ["headroom above the slot", { ...g, [AH_HEADROOM]: 4096 }, /slot_size - headroom below 1280/],
    ["headroom 2^32-1", { ...g, [AH_HEADROOM]: 0xffffffff }, /slot_size - headroom below 1280/],
    ["scratch 255 bytes", { ...g, [AH_SCRATCH_SIZE]: 255 }, /scratch_size below 256/],
    ["slots past memory", { ...g, [AH_SLOT_BASE]: MEM - 1000 }, /slots \[\d+, \d+\) is outside memory/],
    ["scratch past memory", { ...g, [AH_SCRATCH]: MEM - 100 }, /scratch \[\d+, \d+\) is outside memory/],
    ["huge scratch", { ...g, [AH_SCRATCH_SIZE]: 0xffffffff }, /scratch .* is outside memory/],
    ["desc_table at 0", { ...g, [AH_DESC_TABLE]: 0 }, /desc_table \[0, 2048\) is outside memory/],
    ["out_slots at 0", { ...g, [AH_OUT_SLOT_BASE]: 0 }, /out_slots \[0, \d+\) is outside memory/],
    ["desc_table over the header", { ...g, [AH_DESC_TABLE]: HEADER + 32 }, /header overlaps desc_table/],
    ["out_table over the batch table", { ...g, [AH_OUT_TABLE]: g[AH_DESC_TABLE]! + 32 }, /desc_table overlaps out_table/],
    ["slots over the out slots", { ...g, [AH_SLOT_BASE]: g[AH_OUT_SLOT_BASE]! - 2048 }, /slots overlaps out_slots/],
    ["scratch inside a slot", { ...g, [AH_SCRATCH]: g[AH_SLOT_BASE]! + 100 }, /slots overlaps scratch/],
    ["scratch over the header", { ...g, [AH_SCRATCH]: HEADER - 100, [AH_SCRATCH_SIZE]: 256 }, /header overlaps scratch/],
    ["memory too small for the good layout", g, /outside memory/, HEADER, 256 * 1024],
  ];
  for (const [label, fields, pattern, address, memSize] of cases) {
    const result = check(fields, address, memSize);
    assert.match(result, pattern, `${label}: ${result}`);
  }
});

arena.run();

// dropReasonName is what /metrics shows: the clamped code has a name of its own
const names = suite("drop reason names");
names("the host's new reasons have their names", () => {
  assert.equal(
    [DropReason.HostBudgetExceeded, DropReason.HostBadReason, DropReason.HostSourceRefused, DropReason.HostFeedbackRefused].map(dropReasonName),
    ["host_budget_exceeded", "host_bad_reason", "host_source_refused", "host_feedback_refused"],
  );
});
names.run();

const heap = suite("heap growth");

heap("heapGrowthFlag: bounds V8's heap growth unless node was given a value, and never under Bun", () => {
  assert.is(HEAP_GROWING_PERCENT, 50);
  assert.is(heapGrowthFlag([], false), "--heap-growing-percent=50");
  assert.is(heapGrowthFlag(["--enable-source-maps", "--max-old-space-size=2048"], false), "--heap-growing-percent=50");
  for (const given of ["--heap-growing-percent=20", "--heap_growing_percent=0", "--heap-growing-percent"]) assert.is(heapGrowthFlag([given], false), null, given);
  assert.is(heapGrowthFlag(["--heap-growing-percentage=5"], false), "--heap-growing-percent=50", "another flag's name");
  assert.is(heapGrowthFlag([], true), null, "Bun");
});
heap.run();
