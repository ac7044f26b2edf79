// Pushes a batch of packets through a segment's chain, stage by stage: copy into the stage's
// arena, one call, read verdicts and output packets, go on with what passed. Depth first, so
// that a stage's memory is read by the next stage before the stage is called again.
import { DropReason, PacketFlag } from "../abi.js";
import { FilterFailure } from "../filter-host/errors.js";
import type { FilterInstance } from "../filter-host/filter-instance.js";
import { HELD, PASSED } from "../filter-host/judge.js";
import type { ChainStage } from "./filter-pool.js";
import { PacketList } from "./packet-list.js";
import type { SegmentStats } from "./stats.js";

export const MAX_CHAIN_LENGTH = 16;
const LIST_CAPACITY = 2048;
/** Most msm_context_drain calls per stage when a segment goes. */
const DRAIN_CALLS = 64;

/** Where packets go when they leave the chain. */
export type EgressFn = (list: PacketList) => void;

/** Tells the watchdog which instance a call is in; a stuck call never leaves. */
export interface CallBeacon {
  enter(slotId: number): void;
  leave(): void;
}

export class ChainRunner {
  beacon: CallBeacon | undefined;
  /** One list per depth, shared by every chain of the worker (runs never overlap). */
  private readonly lists: PacketList[] = [];
  private nowUs = 0;
  private wallUs = 0;

  constructor() {
    for (let i = 0; i <= MAX_CHAIN_LENGTH; i++) this.lists.push(new PacketList(LIST_CAPACITY));
  }

  /** Sets the clock that filters see for the next runs (frozen per batch). */
  setClock(nowUs: number, wallUs: number): void {
    this.nowUs = nowUs;
    this.wallUs = wallUs;
  }

  /** Runs `input` through stages[from..], handing what leaves the last stage to `egress`. */
  run(stages: readonly ChainStage[], from: number, input: PacketList, segment: SegmentStats, egress: EgressFn): void {
    if (from >= stages.length) {
      egress(input);
      return;
    }
    const stage = stages[from]!;
    const instance = stage.live;
    if (instance === null) {
      this.bypass(stages, from, input, segment, egress);
      return;
    }
    const capacity = instance.arena.batchCapacity;
    for (let start = 0; start < input.count; start += capacity) {
      const end = Math.min(start + capacity, input.count);
      const output = this.lists[from + 1]!;
      output.clear();
      if (stage.live === null) {
        // the stage failed on an earlier chunk of this input
        this.bypassRange(stage, input, start, end, output, segment);
      } else {
        this.runStage(stage, stage.live, input, start, end, output, segment);
      }
      this.run(stages, from + 1, output, segment, egress);
    }
  }

  /** Feeds a timer's output packets (already in the instance's output area) to the rest of the chain. */
  runTimerOutputs(stages: readonly ChainStage[], index: number, instance: FilterInstance, outCount: number, segment: SegmentStats, egress: EgressFn): void {
    const output = this.lists[index + 1]!;
    output.clear();
    this.collectOutputs(stages[index]!, instance, outCount, output, segment);
    this.run(stages, index + 1, output, segment, egress);
  }

  /**
   * The segment is going away: each stage, first to last, hands over what it holds (held
   * packets, a pending FEC matrix) through msm_context_drain, called until it returns 0 (at most
   * DRAIN_CALLS times: an output area's worth each); what it emits runs through the stages after
   * it before they are drained in turn.
   */
  drain(stages: readonly ChainStage[], segment: SegmentStats, egress: EgressFn): void {
    for (let i = 0; i < stages.length; i++) this.drainStage(stages, i, segment, egress);
  }

  /** Drains stages[i] alone; what it hands over runs through stages[i + 1..]. */
  drainStage(stages: readonly ChainStage[], i: number, segment: SegmentStats, egress: EgressFn): void {
    const stage = stages[i]!;
    for (let call = 0; call < DRAIN_CALLS; call++) {
      const inst = stage.live;
      if (inst === null || !inst.drains) break;
      inst.setClock(this.nowUs, this.wallUs);
      let out: number;
      this.beacon?.enter(stage.slot.id);
      try {
        out = inst.drainContext(stage.ctx);
      } catch {
        break; // a failure: the failed hook told the pool; what the stage still held is lost
      } finally {
        this.beacon?.leave();
      }
      if (out === 0) break;
      this.runTimerOutputs(stages, i, inst, out, segment, egress);
    }
  }

  private bypass(stages: readonly ChainStage[], from: number, input: PacketList, segment: SegmentStats, egress: EgressFn): void {
    const stage = stages[from]!;
    const output = this.lists[from + 1]!;
    output.clear();
    this.bypassRange(stage, input, 0, input.count, output, segment);
    this.run(stages, from + 1, output, segment, egress);
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

  private runStage(stage: ChainStage, inst: FilterInstance, input: PacketList, start: number, end: number, output: PacketList, segment: SegmentStats): void {
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
    this.beacon?.enter(stage.slot.id);
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
        output.push(bytes, offset, length, input.flags[i]!, input.dest[i]!, input.port[i]!, inst.batchLeg(k), input.arrivalUs[i]!);
        stats.packetsOut++;
        stats.bytesOut += length;
      } else if (outcome === HELD) {
        stats.held++;
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
    this.collectOutputs(stage, inst, outCount, output, segment);
    stats.busyNs += (performance.now() - t0) * 1e6;
    stats.calls++;
  }

  /**
   * Takes what the stage wrote into its output area. The filter host judges each (a packet must
   * name the stage's own context, a known dest and leg: filter-host/judge.ts), and it must fit the
   * stage's budget of generated packets.
   */
  private collectOutputs(stage: ChainStage, inst: FilterInstance, outCount: number, output: PacketList, segment: SegmentStats): void {
    const stats = stage.stats;
    for (let j = 0; j < outCount; j++) {
      if (output.full || !inst.acceptOutput(j, stage.ctx)) {
        stats.drops.add(DropReason.HostBadDescriptor);
        segment.drops.add(DropReason.HostBadDescriptor);
        continue;
      }
      if (!stage.generated.take(this.nowUs)) {
        stats.drops.add(DropReason.HostBudgetExceeded);
        segment.drops.add(DropReason.HostBudgetExceeded);
        continue;
      }
      const length = inst.outputLength(j);
      const flags = (inst.outputFlags(j) & (PacketFlag.Rtcp | PacketFlag.Upstream)) | PacketFlag.Generated;
      output.push(inst.bytes, inst.outputOffset(j), length, flags, inst.outputDest(j), 0, inst.outputLeg(j), this.nowUs);
      stats.generated++;
      stats.packetsOut++;
      stats.bytesOut += length;
    }
  }

  private readonly slotSource = new Uint32Array(1024);
}
