// Pushes a batch of packets through a segment's chain, stage by stage: copy into the stage's
// arena, one call, read verdicts and output packets, go on with what passed. Downstream packets
// pass the stages first to last, upstream ones (PacketFlag.Upstream) last to first, like a
// protocol stack. Depth first, so that a stage's memory is read by the next stage before the
// stage is called again; a packet a stage makes the other way waits, copied, until the pass is done.
import { Dest, DropReason, PacketFlag } from "../abi.js";
import { FilterFailure } from "../filter-host/errors.js";
import type { FilterInstance } from "../filter-host/filter-instance.js";
import { HELD, PASSED } from "../filter-host/judge.js";
import type { ChainStage } from "./filter-pool.js";
import { PacketList } from "./packet-list.js";
import { BeaconCall } from "../dataplane/watchdog-beacon.js";
import type { SegmentStats } from "./stats.js";

export const MAX_CHAIN_LENGTH = 16;
const LIST_CAPACITY = 2048;
/** Most msm_context_drain calls per stage when a segment goes. */
const DRAIN_CALLS = 64;
/** Packets that turned back in one run (see Turnarounds), and the bytes they may take. */
const TURN_CAPACITY = 1024;
const TURN_BYTES = 1 << 20;
/** Rounds of turned-back packets one run follows: a pair of stages answering each other forever stops here. */
const TURN_ROUNDS = 2 * MAX_CHAIN_LENGTH;

/** Where packets go when they leave the chain. */
export type EgressFn = (list: PacketList) => void;

/** Tells the watchdog which instance a call is in; a stuck call never leaves. */
export interface CallBeacon {
  enter(slotId: number, call: BeaconCall): void;
  leave(): void;
}

/**
 * Packets a stage made going the other way than the pass that called it (feedback a stage made
 * upstream while media went down, or the reverse): copied out of the stage's memory, since the
 * stage may be called again before the pass is done, and run once it is. Preallocated.
 */
class Turnarounds {
  readonly list = new PacketList(TURN_CAPACITY);
  /** The stage that made each packet: it goes on from the next stage its way. */
  readonly stage = new Uint8Array(TURN_CAPACITY);
  private readonly bytes = new Uint8Array(TURN_BYTES);
  private used = 0;

  add(memory: Uint8Array, offset: number, length: number, flags: number, dest: number, leg: number, arrivalUs: number, stage: number): boolean {
    if (this.list.full || this.used + length > this.bytes.length) return false;
    const bytes = this.bytes;
    const at = this.used;
    for (let k = 0; k < length; k++) bytes[at + k] = memory[offset + k]!; // no view made per packet
    this.stage[this.list.count] = stage;
    this.list.push(this.bytes, this.used, length, flags, dest, 0, leg, arrivalUs);
    this.used += length;
    return true;
  }

  clear(): void {
    this.list.clear();
    this.used = 0;
  }
}

/**
 * Runs packets through a chain like a protocol stack: downstream (media, and what goes to the
 * destinations) through stages 0 .. n-1; upstream (PacketFlag.Upstream: the receivers' feedback,
 * what a stage makes for the sender) through n-1 .. 0. A packet stage i makes goes on from
 * stage i + 1 downstream, from stage i - 1 upstream.
 */
export class ChainRunner {
  beacon: CallBeacon | undefined;
  /**
   * Lists shared by every chain of the worker (runs never overlap): down[i + 1] holds what stage i
   * passes downstream, up[i] what it passes upstream (up[0]: what leaves toward the sender).
   */
  private readonly down: PacketList[] = [];
  private readonly up: PacketList[] = [];
  /** A run's received packets that go upstream, apart from those that go down. */
  private readonly entryUp: PacketList;
  private readonly entryDown: PacketList;
  /** Turned-back packets: the round being run, and the next. */
  private turning = new Turnarounds();
  private turned = new Turnarounds();
  /** What a round of turned-back packets hands one pass. */
  private readonly resume = new PacketList(TURN_CAPACITY);
  private nowUs = 0;
  private wallUs = 0;
  /**
   * A stage kept a packet with an origin (PacketList.origin) since the caller last cleared this:
   * kept is accepted, as passed is (the segment sees those leave the chain).
   */
  keptOrigin = false;

  /**
   * `listCapacity`: packets a list between two stages holds. The default holds a full batch and a
   * full output area (1,024 each at most: filter-host/arena-check.ts), so no output ever finds it
   * full; tests pass less to reach that refusal.
   */
  constructor(listCapacity = LIST_CAPACITY) {
    this.entryUp = new PacketList(listCapacity);
    this.entryDown = new PacketList(listCapacity);
    for (let i = 0; i <= MAX_CHAIN_LENGTH; i++) {
      this.down.push(new PacketList(listCapacity));
      this.up.push(new PacketList(listCapacity));
    }
  }

  /** Sets the clock that filters see for the next runs (frozen per batch). */
  setClock(nowUs: number, wallUs: number): void {
    this.nowUs = nowUs;
    this.wallUs = wallUs;
  }

  /**
   * Runs received packets through the chain, handing what leaves it to `egress`: downstream ones
   * through stages[from..], upstream ones through stages[..n-1] backwards (`from` is 0 but in tests).
   */
  run(stages: readonly ChainStage[], from: number, input: PacketList, segment: SegmentStats, egress: EgressFn): void {
    this.clearTurned(); // none left by a run that threw: they were another chain's
    let ups = 0;
    for (let i = 0; i < input.count; i++) if ((input.flags[i]! & PacketFlag.Upstream) !== 0) ups++;
    if (ups === 0) {
      this.runDown(stages, from, input, segment, egress);
    } else if (ups === input.count) {
      this.runUp(stages, stages.length - 1, input, segment, egress);
    } else {
      const down = this.entryDown;
      const up = this.entryUp;
      down.clear();
      up.clear();
      for (let i = 0; i < input.count; i++) ((input.flags[i]! & PacketFlag.Upstream) !== 0 ? up : down).copyEntry(input, i);
      this.runDown(stages, from, down, segment, egress);
      this.runUp(stages, stages.length - 1, up, segment, egress);
    }
    this.runTurned(stages, segment, egress);
  }

  /** Feeds a timer's output packets (already in the instance's output area) to the rest of the chain, each its way. */
  runTimerOutputs(stages: readonly ChainStage[], index: number, instance: FilterInstance, outCount: number, segment: SegmentStats, egress: EgressFn): void {
    // neither pass calls stage `index`: its memory holds until both are done
    this.runMade(stages, index + 1, index - 1, stages[index]!, instance, outCount, segment, egress);
  }

  /**
   * Runs what `stage` wrote into its output area: downstream packets through stages[downFrom..],
   * upstream ones through stages[upFrom], stages[upFrom - 1] .. stages[0]. `stage` need not be one
   * of `stages` (a stage leaving the chain), and none of the passes calls it.
   */
  private runMade(stages: readonly ChainStage[], downFrom: number, upFrom: number, stage: ChainStage, instance: FilterInstance, outCount: number, segment: SegmentStats, egress: EgressFn): void {
    this.clearTurned();
    // lists no pass of this run writes: down[k] is stage k - 1's downstream output, up[k] stage k's
    // upstream one, and neither stage runs that way here
    const down = this.down[downFrom]!;
    const up = this.up[upFrom + 1]!;
    down.clear();
    up.clear();
    this.collectOutputs(stage, -1, instance, outCount, down, up, segment);
    this.runDown(stages, downFrom, down, segment, egress);
    this.runUp(stages, upFrom, up, segment, egress);
    this.runTurned(stages, segment, egress);
  }

  /**
   * The segment is going away: each stage, first to last, hands over what it holds (held
   * packets, a pending FEC matrix) through msm_context_drain, called until it returns 0 (at most
   * DRAIN_CALLS times: an output area's worth each); what it emits runs through the stages after
   * it (downstream) or before it (upstream), each drained in turn after.
   */
  drain(stages: readonly ChainStage[], segment: SegmentStats, egress: EgressFn): void {
    // what a stage hands over upstream reaches stages already drained, which may hold it: sweep
    // again while a sweep handed anything over (each sweep moves what is held at least one stage
    // on its way, so a chain's length in sweeps empties it)
    for (let sweep = 0; sweep <= stages.length; sweep++) {
      let handedOver = false;
      for (let i = 0; i < stages.length; i++) if (this.drainStage(stages, i, segment, egress)) handedOver = true;
      if (!handedOver) break;
    }
  }

  /**
   * Drains stages[i] alone; what it hands over runs through stages[i + 1..], or stages[..i - 1]
   * backwards upstream. Returns whether it handed anything over.
   */
  private drainStage(stages: readonly ChainStage[], i: number, segment: SegmentStats, egress: EgressFn): boolean {
    return this.drainInto(stages[i]!, stages, i + 1, i - 1, segment, egress);
  }

  /**
   * Drains a stage that is leaving `stages` (it is not one of them, and is not called again): what
   * it hands over enters `stages` at downFrom (downstream) or upFrom (upstream, toward stage 0),
   * and what the stages make of it follows `stages` like any packet. Returns whether it handed
   * anything over.
   */
  drainLeaving(stage: ChainStage, stages: readonly ChainStage[], downFrom: number, upFrom: number, segment: SegmentStats, egress: EgressFn): boolean {
    return this.drainInto(stage, stages, downFrom, upFrom, segment, egress);
  }

  private drainInto(stage: ChainStage, stages: readonly ChainStage[], downFrom: number, upFrom: number, segment: SegmentStats, egress: EgressFn): boolean {
    let handedOver = false;
    for (let call = 0; call < DRAIN_CALLS; call++) {
      const inst = stage.live;
      if (inst === null || !inst.drains) break;
      inst.setClock(this.nowUs, this.wallUs);
      let out: number;
      this.beacon?.enter(stage.slot.id, BeaconCall.Drain);
      try {
        out = inst.drainContext(stage.ctx);
      } catch {
        break; // a failure: the failed hook told the pool; what the stage still held is lost
      } finally {
        this.beacon?.leave();
      }
      if (out === 0) break;
      handedOver = true;
      this.runMade(stages, downFrom, upFrom, stage, inst, out, segment, egress);
    }
    return handedOver;
  }

  private clearTurned(): void {
    this.turned.clear();
    this.turning.clear();
  }

  /** Runs downstream packets through stages[from..], depth first; what turns back waits in `turned`. */
  private runDown(stages: readonly ChainStage[], from: number, input: PacketList, segment: SegmentStats, egress: EgressFn): void {
    this.runWay(stages, from, input, segment, egress, false);
  }

  /** Runs upstream packets through stages[from], stages[from - 1] .. stages[0], depth first. */
  private runUp(stages: readonly ChainStage[], from: number, input: PacketList, segment: SegmentStats, egress: EgressFn): void {
    this.runWay(stages, from, input, segment, egress, true);
  }

  /** One stage of a pass, then the next on the packets' way: stages[from + 1], or stages[from - 1] upstream. */
  private runWay(stages: readonly ChainStage[], from: number, input: PacketList, segment: SegmentStats, egress: EgressFn, upstream: boolean): void {
    if (input.count === 0) return;
    if (from < 0 || from >= stages.length) {
      egress(input);
      return;
    }
    const next = upstream ? from - 1 : from + 1;
    const stage = stages[from]!;
    const output = upstream ? this.up[from]! : this.down[from + 1]!;
    if (stage.live === null) {
      output.clear();
      this.bypassRange(stage, input, 0, input.count, output, segment);
      this.runWay(stages, next, output, segment, egress, upstream);
      return;
    }
    const capacity = stage.live.arena.batchCapacity;
    for (let start = 0; start < input.count; start += capacity) {
      const end = Math.min(start + capacity, input.count);
      output.clear();
      if (stage.live === null) {
        // the stage failed on an earlier chunk of this input
        this.bypassRange(stage, input, start, end, output, segment);
      } else {
        this.runStage(stage, from, stage.live, input, start, end, output, upstream, segment);
      }
      this.runWay(stages, next, output, segment, egress, upstream);
    }
  }

  /**
   * Runs the packets stages made going the other way than the pass they were made in, from the
   * stage next to the one that made them, round after round (what they make in turn), at most
   * TURN_ROUNDS rounds: the rest is dropped as over budget.
   */
  private runTurned(stages: readonly ChainStage[], segment: SegmentStats, egress: EgressFn): void {
    for (let round = 0; this.turned.list.count > 0; round++) {
      const batch = this.turned;
      this.turned = this.turning;
      this.turning = batch;
      const list = batch.list;
      if (round === TURN_ROUNDS) {
        segment.drops.add(DropReason.HostBudgetExceeded, list.count);
        batch.clear();
        continue;
      }
      // consecutive packets from the same stage, the same way, run as one pass
      for (let i = 0; i < list.count; ) {
        const stage = batch.stage[i]!;
        const upstream = list.flags[i]! & PacketFlag.Upstream;
        const resume = this.resume;
        resume.clear();
        for (; i < list.count && batch.stage[i] === stage && (list.flags[i]! & PacketFlag.Upstream) === upstream; i++) resume.copyEntry(list, i);
        if (upstream !== 0) this.runUp(stages, stage - 1, resume, segment, egress);
        else this.runDown(stages, stage + 1, resume, segment, egress);
      }
      batch.clear();
    }
  }

  /** The stage is down: fail-open passes packets on untouched, fail-closed drops them. */
  private bypassRange(stage: ChainStage, input: PacketList, start: number, end: number, output: PacketList, segment: SegmentStats): void {
    // they reached the stage: counted in, so that in = out - generated + held + drops + discards + bypassed holds while it is down too
    stage.stats.packetsIn += end - start;
    for (let i = start; i < end; i++) stage.stats.bytesIn += input.length[i]!;
    if (stage.policy.mode === "open") {
      for (let i = start; i < end; i++) output.copyEntry(input, i);
      stage.stats.bypassed += end - start;
    } else {
      stage.stats.drops.add(DropReason.HostFilterFailed, end - start);
      segment.drops.add(DropReason.HostFilterFailed, end - start);
    }
  }

  private runStage(stage: ChainStage, index: number, inst: FilterInstance, input: PacketList, start: number, end: number, output: PacketList, upstream: boolean, segment: SegmentStats): void {
    const t0 = performance.now();
    const stats = stage.stats;
    const room = inst.packetRoom;
    let count = 0;
    for (let i = start; i < end; i++) {
      const len = input.length[i]!;
      stats.packetsIn++;
      stats.bytesIn += len;
      if (len > room) {
        stats.drops.add(DropReason.TooLarge);
        segment.drops.add(DropReason.TooLarge);
        continue;
      }
      inst.putBatchPacket(count, input.memory[i]!, input.offset[i]!, len, stage.ctx, input.flags[i]!, input.port[i]!, input.leg[i]!, input.arrivalUs[i]!);
      this.slotSource[count] = i; // which input each slot came from, for fail-open after a trap
      count++;
    }
    if (count === 0) return;
    inst.setClock(this.nowUs, this.wallUs);
    let outCount: number;
    this.beacon?.enter(stage.slot.id, BeaconCall.Batch);
    try {
      outCount = inst.runBatch(count);
    } catch (err) {
      this.beacon?.leave();
      if (!(err instanceof FilterFailure)) throw err;
      // the instance's failed hook has already told the pool
      for (let k = 0; k < count; k++) {
        const i = this.slotSource[k]!;
        if (stage.policy.mode === "open") {
          output.copyEntry(input, i);
          stats.bypassed++;
        } else {
          stats.drops.add(DropReason.HostFilterFailed);
          segment.drops.add(DropReason.HostFilterFailed);
        }
      }
      stats.busyNs += (performance.now() - t0) * 1e6;
      stats.calls++;
      return;
    }
    this.beacon?.leave();
    const bytes = inst.bytes;
    for (let k = 0; k < count; k++) {
      // the filter host's judgment (filter-host/judge.ts), shared with the SDK's harness
      const outcome = inst.judgeBatch(k);
      if (outcome === PASSED) {
        const offset = inst.batchOffset(k);
        const length = inst.batchLength(k);
        const i = this.slotSource[k]!;
        output.push(bytes, offset, length, input.flags[i]!, input.dest[i]!, input.port[i]!, inst.batchLeg(k), input.arrivalUs[i]!, input.origin[i]!);
        stats.packetsOut++;
        stats.bytesOut += length;
      } else if (outcome === HELD) {
        stats.held++;
        if (input.origin[this.slotSource[k]!] !== 0) this.keptOrigin = true;
      } else if (outcome >= DropReason.FilterDefinedBase) {
        // the filter's own code (judged to be in its range): counted under its name, a discard apart from drops
        const own = inst.ownReasons[outcome - DropReason.FilterDefinedBase]!;
        if (own.discard) {
          stats.discards.addOwn(own);
          segment.discards.addOwn(own);
        } else {
          stats.drops.addOwn(own);
          segment.drops.addOwn(own);
        }
      } else {
        stats.drops.add(outcome);
        segment.drops.add(outcome);
      }
    }
    if (upstream) this.collectOutputs(stage, index, inst, outCount, null, output, segment);
    else this.collectOutputs(stage, index, inst, outCount, output, null, segment);
    stats.busyNs += (performance.now() - t0) * 1e6;
    stats.calls++;
  }

  /**
   * Takes what the stage wrote into its output area. The filter host judges each (a packet must
   * name the stage's own context, a known dest and leg: filter-host/judge.ts), and it must fit the
   * stage's budget of generated packets. Downstream ones go to `down`, upstream ones to `up`; when
   * the pass has no list for a packet's way (it turns back), it waits in `turned`.
   */
  private collectOutputs(stage: ChainStage, index: number, inst: FilterInstance, outCount: number, down: PacketList | null, up: PacketList | null, segment: SegmentStats): void {
    const stats = stage.stats;
    // every output the stage made is generated, also one refused below, which is a drop too: so
    // in = out - generated + held + drops + discards + bypassed holds whatever the host refuses
    stats.generated += outCount;
    for (let j = 0; j < outCount; j++) {
      if (!inst.acceptOutput(j, stage.ctx)) {
        refuse(stage, segment, DropReason.HostBadDescriptor);
        continue;
      }
      let flags = (inst.outputFlags(j) & (PacketFlag.Rtcp | PacketFlag.Upstream)) | PacketFlag.Generated;
      let dest = inst.outputDest(j);
      // a leg has no way back (docs/abi.md "Legs"): on one it stays Dest.Reverse, which the egress
      // refuses (host_no_destination); turned, it would go to the leg's destinations
      if (dest === Dest.Reverse && inst.outputLeg(j) === 0) {
        // it goes the other way than its flag says: it runs the stages of that way, flagged so
        // (the egress sends a packet of the other way to Dest.Forward where it sent this one)
        flags ^= PacketFlag.Upstream;
        dest = Dest.Forward;
      }
      const output = (flags & PacketFlag.Upstream) !== 0 ? up : down;
      if (output !== null && output.full) {
        // no place in the list to the next stage (only a runner with lists shorter than a batch
        // and an output area reaches this): like a turned-back packet that finds no place
        refuse(stage, segment, DropReason.HostBudgetExceeded);
        continue;
      }
      if (!stage.generated.take(this.nowUs)) {
        refuse(stage, segment, DropReason.HostBudgetExceeded);
        continue;
      }
      const length = inst.outputLength(j);
      if (output !== null) {
        output.push(inst.bytes, inst.outputOffset(j), length, flags, dest, 0, inst.outputLeg(j), this.nowUs);
      } else if (!this.turned.add(inst.bytes, inst.outputOffset(j), length, flags, dest, inst.outputLeg(j), this.nowUs, index)) {
        // made within its budget, but no place to wait in
        refuse(stage, segment, DropReason.HostBudgetExceeded);
        continue;
      }
      stats.packetsOut++;
      stats.bytesOut += length;
    }
  }

  private readonly slotSource = new Uint32Array(1024);
}

/** An output the host refused: a drop of the stage and of the segment (it is already counted generated). */
function refuse(stage: ChainStage, segment: SegmentStats, reason: DropReason): void {
  stage.stats.drops.add(reason);
  segment.drops.add(reason);
}
