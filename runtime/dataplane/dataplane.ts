// The data plane of one worker: its segments, the filter instances they share, timers, and the
// three-step apply that makes a config change all-or-nothing and a chain swap lossless:
// prepare (bind new sockets, build and configure new chains; nothing running is touched), commit
// (between two batches: remove, swap, add), and open (bind what had to wait for a port that a
// removed segment, maybe on another worker, released in the commit).
import { isIPv6 } from "node:net";
import { LogLevel, MAX_TIMERS_PER_CONTEXT, StateOrigin } from "../abi.js";
import { ChainRunner } from "../chain/chain-runner.js";
import { ChainStage, FilterPool, type FilterSpec, type InstanceSlot, type PoolEvent } from "../chain/filter-pool.js";
import { leavingEntry } from "../chain/leaving-entry.js";
import { segmentFlags, socketsKey, type FilterEntry, type SegmentConfig } from "../config/proxy-config.js";
import { FilterConfigError, FilterFailure, noReason } from "../filter-host/errors.js";
import type { FilterInstance } from "../filter-host/filter-instance.js";
import { BatchedIo, type IoPlan } from "./batched-io.js";
import { EgressRing } from "./egress-ring.js";
import { SegmentRuntime } from "./segment-runtime.js";
import {
  closeSockets, completeSockets, listenPlaces, openFixedSockets, openSegmentSockets, placeOf, type EgressPorts, type PartialSockets, type Reclaim, type SegmentSockets,
} from "./segment-sockets.js";
import { checkMulticast } from "./multicast-sockets.js";
import { BeaconCall, type WatchdogBeacon } from "./watchdog-beacon.js";
import { carryFilterCounters, carrySegmentCounts, snapshotSegment, type SegmentSnapshot } from "./snapshot.js";
import type { SegmentStreams } from "../streams/segment-streams.js";
import { StreamTable } from "../streams/stream-table.js";
import { resyncWallClock, wallClockMs } from "../streams/wall-clock.js";

/** How often per-stream windows end (rates and loss fractions cover one). */
const STREAM_WINDOW_MS = 1000;
/** A filter timer this late fires after the segment's sockets are read (the addon's stall threshold too). */
const LATE_TIMER_MS = 1;

/** exportFrom's answer when msm_state_export failed. */
const EXPORT_FAILED = Symbol("export failed");

/** A filter's armed timer: when it is due, on performance.now()'s clock. */
interface ArmedTimer {
  handle: NodeJS.Timeout | undefined;
  readonly dueMs: number;
  /** It came due before its context's segment ran (see `timerFired`): it fires once it does. */
  waiting: boolean;
}

/** A filter instance of the worker: which segments' stages it serves, and its memory. */
export interface InstanceUsers {
  id: number;
  filter: string;
  users: { segment: string; stage: number }[];
  /** The instance's linear memory now, in bytes; null while it is down. */
  memoryBytes: number | null;
  /** Its memory cap (maxMemoryPages), in bytes. */
  memoryMaxBytes: number;
}

export interface DataPlaneOptions {
  readonly batchSize: number;
  /** Batched I/O where the plan says so (docs/batched-io.md); node:dgram when absent. */
  readonly io?: IoPlan;
  readonly socketReceiveBuffer: number;
  /** Per-stream stats (docs/streams.md); absent: none. */
  readonly streams?: { readonly max: number; readonly maxPerSegment: number; readonly idleMs: number };
  readonly beacon?: WatchdogBeacon;
  readonly onEvent?: (event: DataPlaneEvent) => void;
  /**
   * This worker's number among those the proxy started (WorkerHandle.keepOwner): its listen
   * sockets outlive it for its replacement (BatchedIo.claim). Absent: they close with it.
   */
  readonly keepOwner?: number;
  /** A worker process: its end of the channel that carries its listen sockets to the proxy and its predecessor's back (BatchedIo.shareKept). */
  readonly keepChannel?: number;
}

export type DataPlaneEvent =
  | PoolEvent
  /** segment: the one a host line about a dropped packet concerns (an instance serves many) */
  | { type: "log"; filter: string; level: LogLevel; message: string; segment?: string }
  /** carried: state moved over; awaitingRestart: the new stage is down, a restart of it imports the state (none comes if the filter gave up); fresh: no state. */
  | { type: "swap"; segment: string; carried: string[]; awaitingRestart: string[]; fresh: string[]; /** stage indexes whose module, root config or config changed */ renewed: number[] }
  | { type: "error"; segment: string; message: string }
  /** A filter asked for a checkpoint soon (ABI 1.8); said once until the next checkpoint is taken. */
  | { type: "checkpoint-wanted" };

/** A stage's state blob, as a checkpoint carries it across a worker restart. */
export interface StateCheckpoint {
  readonly segment: string;
  readonly filter: string;
  /** The filter the entry runs (ChainStage.filterFamily): a stage keyed anew since finds it by that. */
  readonly family?: string;
  /** The blob, base64 (it crosses a process boundary under Bun). */
  readonly state: string;
}

export interface ApplyRequest {
  readonly filters: Readonly<Record<string, FilterEntry>>;
  readonly segments: readonly SegmentConfig[];
  /** Watchdog kills so far per segment and stage index (counted against the failure policy). */
  readonly stuck?: readonly { segment: string; stage: number; count: number; /** the export the watchdog found it in */ call?: string }[];
  /** New segments whose ports a segment removed by this change holds: bound in the open step. */
  readonly deferBind?: readonly string[];
  /** State to import into new contexts (a worker restarted from the last checkpoints). */
  readonly checkpoints?: readonly StateCheckpoint[];
  /** The egress ports segments new here had where they ran before: bound again when free. */
  readonly egressPorts?: readonly EgressPorts[];
  /** The proxy saves the new stages' state before the commit (a stateFile): the prepare's reply carries it (preparedStates). */
  readonly exportPrepared?: boolean;
  /** Segments this change moves from this worker to another: their listen sockets are left bound for it, with what they hold. */
  readonly handOver?: readonly string[];
  /**
   * The worker this one replaces (its keepOwner): its listen sockets, left bound with their queues,
   * are taken over (as any worker takes over what an ended thread left at a place it binds), and
   * those at places none of these segments listens on are closed first.
   */
  readonly reclaimFrom?: number;
}

export interface SegmentError {
  readonly segment: string;
  readonly message: string;
}

interface PlannedSegment {
  config: SegmentConfig;
  existing: SegmentRuntime | undefined;
  sockets: SegmentSockets | undefined;
  /** New stages, when the chain changes; undefined keeps the old chain. */
  stages: ChainStage[] | undefined;
  /** The egress ports it had where it ran before (a restart, a move). */
  before: EgressPorts | undefined;
  /** Bind in the open step, after every removal of this change. */
  bindLater: boolean;
  chainKey: string | undefined;
  /** The segment it replaces on new sockets (bindLater): its counters go on from that one's. */
  countsFrom?: SegmentRuntime;
  /** That segment's streams, which its successor takes over (their counters and state). */
  streamsFrom?: SegmentStreams | null;
}

interface Plan {
  segments: PlannedSegment[];
  removed: SegmentRuntime[];
  acquired: InstanceSlot[];
  stuck: ApplyRequest["stuck"];
  /** ApplyRequest.handOver */
  handOver: ReadonlySet<string>;
}

/** Most packets one batched read takes. */
const MAX_RECEIVE_SLOTS = 256;
/** How soon a worker process sends again the listen sockets its channel to the proxy could not take. */
const SHARE_RETRY_MS = 50;

const checkpointKey = (segment: string, filter: string): string => `${segment}\0${filter}`;

function stateCheckpoint(segment: string, stage: ChainStage, blob: Uint8Array): StateCheckpoint {
  return { segment, filter: stage.filterName, family: stage.filterFamily, state: Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength).toString("base64") };
}

/** What the pool needs of a filter entry of the config. */
function filterSpec(name: string, entry: FilterEntry): FilterSpec {
  return { name, path: entry.path, sha256: entry.sha256, config: entry.config, maxMemoryPages: entry.maxMemoryPages, limits: entry.limits };
}

/**
 * Each stage of a new chain's predecessor in the old one: the stage of the same filter entry (the
 * k-th of that entry for the k-th), else, where both chains have as many stages of the same filter
 * (family) left unmatched, the k-th of those: a canary's second version, or other limits, keys
 * the entry anew (`validate-1-0-0`), and the stage (an SRTP edge's unprotect and protect alike)
 * must still take its state and counters.
 */
export function predecessors(old: readonly ChainStage[], next: readonly ChainStage[]): Map<ChainStage, ChainStage> {
  const found = new Map<ChainStage, ChainStage>();
  const taken = new Set<ChainStage>();
  const seen = new Map<string, number>();
  for (const st of next) {
    const k = seen.get(st.filterName) ?? 0;
    seen.set(st.filterName, k + 1);
    const same = old.filter((o) => o.filterName === st.filterName)[k];
    if (same) {
      found.set(st, same);
      taken.add(same);
    }
  }
  for (const family of new Set(next.filter((st) => !found.has(st)).map((st) => st.filterFamily))) {
    const left = next.filter((st) => !found.has(st) && st.filterFamily === family);
    const olds = old.filter((o) => !taken.has(o) && o.filterFamily === family);
    if (left.length !== olds.length) continue; // a stage added or removed: which is which is not known
    left.forEach((st, k) => {
      found.set(st, olds[k]!);
      taken.add(olds[k]!);
    });
  }
  return found;
}

/**
 * The states a restarted worker's stages import: by segment and entry, and by segment and filter
 * (family) where the segment has one checkpoint of that filter (null: several), for a stage keyed
 * anew since the last checkpoint (a canary beside it).
 */
interface CheckpointStates {
  readonly byEntry: ReadonlyMap<string, Uint8Array>;
  readonly byFamily: ReadonlyMap<string, Uint8Array | null>;
}

function checkpointStates(checkpoints: readonly StateCheckpoint[]): CheckpointStates {
  const byEntry = new Map<string, Uint8Array>();
  const byFamily = new Map<string, Uint8Array | null>();
  for (const c of checkpoints) {
    const blob = Buffer.from(c.state, "base64");
    byEntry.set(checkpointKey(c.segment, c.filter), blob);
    if (c.family === undefined) continue;
    const key = checkpointKey(c.segment, c.family);
    byFamily.set(key, byFamily.has(key) ? null : blob);
  }
  return { byEntry, byFamily };
}

/** How long a removed segment's sockets wait for its last sends before they close anyway. */
const CLOSE_WAIT_MS = 500;

/** Closes a segment once the sends it made have completed (a closed socket cancels its queue). */
async function closeWhenSent(seg: SegmentRuntime, handOver: boolean): Promise<void> {
  const until = performance.now() + CLOSE_WAIT_MS;
  while (seg.pendingSends > 0 && performance.now() < until) await new Promise((r) => setImmediate(r));
  seg.close(handOver);
}

export class DataPlane {
  readonly segments = new Map<string, SegmentRuntime>();
  private readonly ring = new EgressRing();
  /** The worker's batched I/O, or null (node:dgram). */
  private readonly io: BatchedIo | null;
  private readonly pool: FilterPool;
  private readonly runner: ChainRunner;
  /** The worker's per-stream counters (null: off), and the timer that ends their windows each second. */
  private readonly streams: StreamTable | null;
  private readonly streamTimer: NodeJS.Timeout | undefined;
  private readonly timers = new Map<FilterInstance, Map<number, ArmedTimer>>();
  private readonly stageOwner = new Map<number, SegmentRuntime>();
  /** Contexts a prepared change created whose segment does not run them yet (no `stageOwner`). */
  private readonly notRunning = new Set<number>();
  /** Per segment: its chain, filter entries and module digests, to tell whether a change touches the chain. */
  private chainKeys = new Map<string, string>();
  private nextContext = 1;
  private plan: Plan | undefined;
  /** Segments the last commit left to the open step. */
  private pendingOpen: PlannedSegment[] = [];
  /** Removed segments whose sockets close once their last sends completed. */
  private closing = new Set<Promise<void>>();
  /** A filter's wish for a checkpoint went to the main thread, and no round was taken since. */
  private checkpointWishSent = false;
  /**
   * A filter asked for a checkpoint since the prepared change's states were exported
   * (preparedStates): a hot swap at the commit then carries a state newer than the one the
   * stateFile holds for the new stage (a rollout's new entry, or the same entry saved after a round
   * of the old one), and the round asked for may have exported the old stage: asked again then.
   */
  private askedSincePrepared = false;

  /** The segment whose chain has context `ctx` (for a rate-limited log line: a scan is fine). */
  private segmentOfContext(ctx: number): string | undefined {
    for (const seg of this.segments.values()) if (seg.stages.some((st) => st.ctx === ctx)) return seg.name;
    return undefined;
  }

  constructor(private readonly options: DataPlaneOptions) {
    const emit = options.onEvent ?? (() => {});
    this.pool = new FilterPool(
      {
        log: (filter, level, message, ctx) => {
          const segment = ctx === undefined ? undefined : this.segmentOfContext(ctx);
          emit(segment === undefined ? { type: "log", filter, level, message } : { type: "log", filter, level, message, segment });
        },
        timerSet: (instance, ctx, timer, delayUs) => this.timerSet(instance, ctx, timer, delayUs),
        timerCancel: (instance, ctx, timer) => this.timerCancel(instance, ctx, timer),
        timerCancelAll: (instance) => this.timerCancelAll(instance),
        checkpointWanted: () => this.wishCheckpoint(),
      },
      emit,
    );
    this.runner = new ChainRunner();
    // a receive arena slot per packet of a batch, at most 256 (64 KiB each, touched only as far as packets reach)
    this.io = options.io && options.io.send === "native" ? new BatchedIo(options.io, Math.min(options.batchSize, MAX_RECEIVE_SLOTS), options.keepOwner ?? -1, options.keepChannel ?? -1) : null;
    if (options.beacon) this.runner.beacon = this.pool.beacon = options.beacon;
    const streams = options.streams;
    this.streams = streams && streams.max > 0 ? new StreamTable(streams.max, streams.idleMs, streams.maxPerSegment) : null;
    if (this.streams) {
      const table = this.streams;
      this.streamTimer = setInterval(() => {
        resyncWallClock();
        table.roll(wallClockMs());
      }, STREAM_WINDOW_MS);
      this.streamTimer.unref();
    }
  }

  /** Per segment, the listen sockets this change took over (takeReclaimed). */
  private readonly reclaimed = new Map<string, number>();

  /** The reclaim of segment `name`'s binds, counted. */
  private reclaimFor(name: string): Reclaim | undefined {
    const reclaim = this.reclaim;
    if (!reclaim) return undefined;
    return (address, port, detail) => {
      const socket = reclaim(address, port, detail);
      if (socket) this.reclaimed.set(name, (this.reclaimed.get(name) ?? 0) + 1);
      return socket;
    };
  }

  /** Per segment, the listen sockets the last change took over with what they held (its open step's reply). */
  takeReclaimed(): Record<string, number> {
    const out = Object.fromEntries(this.reclaimed);
    this.reclaimed.clear();
    return out;
  }

  /** Where segments that get new sockets in this change left their listen sockets for the open step (commitSegment). */
  private readonly reopening = new Set<string>();

  /** Takes over the listen sockets a killed or crashed worker thread left bound (a restart's, or a segment's that moved meanwhile). */
  private reclaim: Reclaim | undefined;

  /**
   * How a change (request) takes over listen sockets that ended worker threads left bound. In a
   * restart's, those of the worker this one replaces at places none of its segments listens on
   * are closed first: their ports may be bound otherwise now.
   */
  private reclaimer(request: ApplyRequest): Reclaim | undefined {
    const io = this.io;
    if (!io) return undefined;
    io.receiveKept(); // a worker process: what the proxy sent of its predecessor's
    if (request.reclaimFrom !== undefined) io.releaseParkedExcept(request.reclaimFrom, new Set(request.segments.flatMap(listenPlaces)));
    return (address, port, detail) => io.claim(placeOf(address, port), detail, { address, port, family: isIPv6(address) ? "IPv6" : "IPv4" });
  }

  /** Builds everything a new config needs without touching what runs. Returns the errors; none means commit may follow. */
  async prepare(request: ApplyRequest): Promise<SegmentError[]> {
    if (this.plan) this.abort();
    this.pool.beginChange(); // each change reads its files afresh
    const plan: Plan = { segments: [], removed: [], acquired: [], stuck: request.stuck, handOver: new Set(request.handOver ?? []) };
    this.plan = plan;
    const errors: SegmentError[] = [];
    const wanted = new Set(request.segments.map((s) => s.name));
    for (const seg of this.segments.values()) if (!wanted.has(seg.name)) plan.removed.push(seg);
    const deferred = new Set(request.deferBind ?? []);
    const states = checkpointStates(request.checkpoints ?? []);
    const before = new Map((request.egressPorts ?? []).map((e) => [e.segment, e]));
    this.reclaim = this.reclaimer(request);
    this.reclaimed.clear();
    // every port the config names first, then the ports the kernel picks (see openFixedSockets)
    const partial = new Map<string, PartialSockets>();
    for (const config of request.segments) {
      if (this.segments.has(config.name) || deferred.has(config.name)) continue;
      try {
        partial.set(config.name, await openFixedSockets(config, this.options.socketReceiveBuffer, this.reclaimFor(config.name)));
      } catch (err) {
        errors.push({ segment: config.name, message: (err as Error).message });
      }
    }
    for (const config of request.segments) {
      const existing = this.segments.get(config.name);
      const socketsChange = existing !== undefined && socketsKey(existing.config) !== socketsKey(config);
      const planned: PlannedSegment = {
        config, existing, sockets: undefined, stages: undefined, bindLater: socketsChange || deferred.has(config.name), chainKey: undefined,
        before: before.get(config.name),
      };
      plan.segments.push(planned);
      const fixed = partial.get(config.name);
      if (!existing && !fixed && !planned.bindLater) continue; // its error is recorded above
      try {
        if (fixed) planned.sockets = await completeSockets(config, this.options.socketReceiveBuffer, fixed, planned.before);
        else if (planned.bindLater) await checkMulticast(config); // its sockets bind after the commit: a group it cannot join must refuse the change now
        const key = (planned.chainKey = await this.chainKey(config, request.filters));
        if (!existing || socketsChange || this.chainKeys.get(config.name) !== key) {
          planned.stages = await this.buildStages(config, request.filters, plan, states);
        }
      } catch (err) {
        errors.push({ segment: config.name, message: (err as Error).message });
      }
    }
    this.pool.closeProbes();
    if (errors.length > 0) this.abort();
    return errors;
  }

  /** Applies the prepared plan. The chain swaps happen here, synchronously, between two batches. */
  commit(): SegmentError[] {
    const plan = this.plan;
    if (!plan) return [{ segment: "", message: "nothing prepared" }];
    this.plan = undefined;
    const errors: SegmentError[] = [];
    this.removedCounts = [];
    for (const seg of plan.removed) this.removeSegment(seg, true, this.removedCounts, plan.handOver.has(seg.name));
    for (const p of plan.segments) {
      try {
        this.commitSegment(p);
      } catch (err) {
        // a bug, not an outcome: the segment does not run, and the change says so
        for (const st of p.stages ?? []) this.detachStage(st);
        if (p.sockets) closeSockets(p.sockets);
        errors.push({ segment: p.config.name, message: `not started: ${(err as Error).message}` });
      }
    }
    for (const slot of plan.acquired) this.pool.releaseIfUnused(slot);
    // each stage's stalls so far, then the last one once per instance (it counts for each of its
    // stages: once per stage of a shared instance would count it twice for the others)
    const stalled = new Map<InstanceSlot, string | undefined>();
    for (const s of plan.stuck ?? []) {
      const stage = this.segments.get(s.segment)?.stages[s.stage];
      if (!stage) continue;
      this.pool.restoreFailureCount(stage, s.count - 1);
      stalled.set(stage.slot, s.call);
    }
    for (const [slot, call] of stalled) {
      const where = call ? `stuck in ${call} (an endless loop?)` : "stuck in a filter call";
      this.pool.handleFailure(slot, new Error(`${where}: the watchdog restarted the worker`));
    }
    return errors;
  }

  /** One segment of a commit: swap its chain, add it, or leave it to the open step. */
  private commitSegment(p: PlannedSegment): void {
    if (p.bindLater) {
      // new sockets: the old ones close now, the new ones are bound in the open step, once
      // every worker has released the ports this change frees; the new chain takes the old one's state
      if (p.existing) {
        p.existing.flush();
        const before = predecessors(p.existing.stages, p.stages ?? []);
        this.carryState(p.existing, p.stages ?? [], before);
        carryFilterCounters(before); // before the old contexts, and their counts, go
        p.streamsFrom = p.existing.takeStreams(); // before its removal gives their slots back
        // its listen sockets wait, with what they hold, for the open step to take them back where they stay the same
        this.removeSegment(p.existing, false, undefined, true);
        for (const place of listenPlaces(p.existing.config)) this.reopening.add(place);
        p.countsFrom = p.existing;
      }
      p.existing = undefined;
      this.pendingOpen.push(p);
      return;
    }
    if (p.existing) {
      p.existing.updateConfig(p.config);
      if (p.stages) this.swapChain(p.existing, p.stages);
    } else if (p.sockets && p.stages) {
      this.addSegment(p.config, p.sockets, p.stages);
    }
    this.chainKeys.set(p.config.name, p.chainKey!);
  }

  /**
   * The counters of the segments the last commit took out of this worker, as they ended: a
   * segment moved to another worker goes on from them there (runtime/proxy.ts).
   */
  takeRemovedCounts(): SegmentSnapshot[] {
    const out = this.removedCounts;
    this.removedCounts = [];
    return out;
  }

  private removedCounts: SegmentSnapshot[] = [];

  /**
   * A worker process: sends the proxy a duplicate of each listen socket it keeps and the places of
   * those it closed, so that they outlive it (a kill) for its replacement; what the channel cannot
   * take now is sent on a timer.
   */
  shareKept(): void {
    if (!this.io?.shareKept() || this.shareRetry) return;
    this.shareRetry = setTimeout(() => {
      this.shareRetry = undefined;
      this.shareKept();
    }, SHARE_RETRY_MS);
  }

  private shareRetry: NodeJS.Timeout | undefined;

  /** A worker process: parks the listen sockets the proxy sent (its predecessor's), for the claims of the next prepare. */
  receiveKept(): void {
    this.io?.receiveKept();
  }

  /** Resolves once the sockets of every segment taken out have closed: their ports are free for any worker. */
  async released(): Promise<void> {
    await Promise.all(this.closing);
  }

  /** The open step: binds the segments the commit left waiting for their ports. */
  async open(): Promise<SegmentError[]> {
    await Promise.all(this.closing); // the ports of removed segments are free once their sockets closed
    const errors: SegmentError[] = [];
    const pending = this.pendingOpen;
    this.pendingOpen = [];
    this.io?.receiveKept(); // a worker process: what the proxy handed it of the sockets handed over at the commit
    // a listen socket left for a segment's new sockets at a place it no longer listens on: closed
    // before anything binds (its port may be bound otherwise now)
    const wanted = new Set(pending.flatMap((p) => listenPlaces(p.config)));
    for (const place of this.reopening) if (!wanted.has(place)) this.io?.closeParkedAt(place);
    this.reopening.clear();
    try {
      await this.openPending(pending, errors);
    } finally {
      this.io?.dropUnclaimed();
    }
    return errors;
  }

  private async openPending(pending: PlannedSegment[], errors: SegmentError[]): Promise<void> {
    for (const p of pending) {
      let sockets: SegmentSockets | undefined;
      try {
        sockets = await openSegmentSockets(p.config, this.options.socketReceiveBuffer, p.before, this.reclaimFor(p.config.name));
        const seg = this.addSegment(p.config, sockets, p.stages ?? []);
        if (p.countsFrom) carrySegmentCounts(p.countsFrom, seg);
        if (p.streamsFrom && seg.streams) p.streamsFrom.handOverTo(seg.streams);
        p.streamsFrom = undefined;
        this.chainKeys.set(p.config.name, p.chainKey!);
      } catch (err) {
        for (const st of p.stages ?? []) this.detachStage(st);
        p.streamsFrom?.close();
        if (sockets) closeSockets(sockets);
        errors.push({ segment: p.config.name, message: (err as Error).message });
      }
    }
  }

  /** Drops a prepared plan: closes the sockets it opened and the contexts it created. */
  abort(): void {
    const plan = this.plan;
    if (!plan) return;
    this.io?.dropUnclaimed();
    this.plan = undefined;
    for (const p of plan.segments) {
      if (p.sockets) closeSockets(p.sockets);
      for (const st of p.stages ?? []) this.detachStage(st);
    }
    for (const slot of plan.acquired) this.pool.releaseIfUnused(slot);
  }

  /**
   * Starts a round of counters (asked for once a second, which also closes the filters' log
   * windows) and, with `checkpoint`, of every running stage's state; returns the segments running
   * now, for `roundSlice` to take a part at a time: one go over thousands of segments holds the
   * packet loop for tens of milliseconds (worker-entry.ts). `streams` false leaves the per-stream
   * stats out (the refresh that only keeps counters to carry across a worker restart: 10,000
   * streams' objects every second are not free).
   */
  beginRound(streams: boolean, checkpoint: boolean): SegmentRuntime[] {
    this.pool.endLogWindows();
    // every stream's last whole window as of now, whatever the roll timer's phase: two proxies'
    // reports then hold the same second (a quiet stream's windows end only here or by the timer)
    if (streams && this.streams) this.streams.roll(wallClockMs());
    if (checkpoint) this.checkpointWishSent = false; // a wish during this round's exports asks for the next
    return [...this.segments.values()];
  }

  /**
   * The counters of `segs` (a part of a round) and, with `checkpoint`, the state of each of their
   * stages: kept on the stage (a failed instance's replacement imports it) and returned for the
   * main thread (a restarted worker's new contexts import it). A segment no longer running is left out.
   */
  roundSlice(segs: readonly SegmentRuntime[], streams: boolean, checkpoint: boolean): { segments: SegmentSnapshot[]; checkpoints: StateCheckpoint[] } {
    const segments: SegmentSnapshot[] = [];
    const checkpoints: StateCheckpoint[] = [];
    for (const seg of segs) {
      if (this.segments.get(seg.name) !== seg) continue;
      segments.push(snapshotSegment(seg, streams));
      if (!checkpoint) continue;
      for (const stage of seg.stages) {
        const blob = this.stateNow(stage); // none after a failure: the last checkpoint stands
        if (!blob) continue;
        stage.checkpoint = blob;
        checkpoints.push(stateCheckpoint(seg.name, stage, blob));
      }
    }
    return { segments, checkpoints };
  }

  /**
   * The state of every stage the prepared change creates, before any packet reaches it: `restored`
   * the ones that imported a checkpoint (as they hold it after the import: a filter may move on
   * from it, srtp skips SRTCP indexes), and, under its own entry, the state of the stage a new one
   * takes over at the commit (a hot swap: a new entry of the same filter, a rollout, goes on from
   * its predecessor, and a restart must too, not from a fresh state); `fresh` the others. The proxy
   * saves them (stateFile) before the commit, so that a process that dies at any moment after
   * restarts from them.
   */
  preparedStates(): { restored: StateCheckpoint[]; fresh: StateCheckpoint[] } {
    this.askedSincePrepared = false;
    const restored: StateCheckpoint[] = [];
    const fresh: StateCheckpoint[] = [];
    for (const p of this.plan?.segments ?? []) {
      const before = p.existing && p.stages ? predecessors(p.existing.stages, p.stages) : undefined;
      for (const stage of p.stages ?? []) {
        const predecessor = before?.get(stage);
        if (predecessor) {
          const taken = this.stateNow(predecessor) ?? predecessor.checkpoint;
          if (taken) restored.push(stateCheckpoint(p.config.name, stage, taken));
          continue;
        }
        const wasRestored = stage.checkpoint !== undefined;
        const blob = stage.checkpoint ?? this.stateNow(stage);
        if (!blob) continue;
        (wasRestored ? restored : fresh).push(stateCheckpoint(p.config.name, stage, blob));
      }
    }
    return { restored, fresh };
  }

  /** A filter's wish for a checkpoint soon, passed on once until the next round. */
  private wishCheckpoint(): void {
    this.askedSincePrepared = true;
    if (this.checkpointWishSent) return;
    this.checkpointWishSent = true;
    this.options.onEvent?.({ type: "checkpoint-wanted" });
  }

  /** A running stage's state now, or undefined (it keeps none, it is down, or its export failed: the failed hook handled that). */
  private stateNow(stage: ChainStage): Uint8Array | undefined {
    const live = stage.live;
    if (!live) return undefined;
    live.setClock(performance.now() * 1000, Date.now() * 1000);
    try {
      return this.watched(stage.slot, BeaconCall.StateExport, () => live.exportState(stage.ctx));
    } catch {
      return undefined;
    }
  }

  /** Which filter instances (by slot id) serve which segments, and their memory: the watchdog's map and /metrics'. */
  instanceMap(): InstanceUsers[] {
    const out = new Map<number, InstanceUsers>();
    for (const seg of this.segments.values()) {
      seg.stages.forEach((st, i) => {
        let e = out.get(st.slot.id);
        if (!e) {
          const memoryBytes = st.slot.instance?.memoryBytes ?? null;
          out.set(st.slot.id, (e = { id: st.slot.id, filter: st.filterName, users: [], memoryBytes, memoryMaxBytes: st.slot.module.memoryMaximumPages * 65536 }));
        }
        e.users.push({ segment: seg.name, stage: i });
      });
    }
    return [...out.values()];
  }

  /** Stops: every segment stops receiving, sends what it has and what its filters hold, then closes. */
  async close(): Promise<void> {
    this.abort();
    for (const p of this.pendingOpen) {
      for (const st of p.stages ?? []) this.detachStage(st);
      p.streamsFrom?.close();
    }
    this.pendingOpen = [];
    for (const seg of [...this.segments.values()]) this.removeSegment(seg);
    await Promise.all(this.closing);
    this.pool.close();
    for (const m of this.timers.values()) for (const t of m.values()) clearTimeout(t.handle);
    this.timers.clear();
    clearInterval(this.streamTimer);
    clearTimeout(this.shareRetry);
  }

  /** The chain as it runs: stages with their configs, the filters' entries, and their modules' digests. */
  private async chainKey(config: SegmentConfig, filters: Readonly<Record<string, FilterEntry>>): Promise<string> {
    const digests: (string | null)[] = [];
    for (const st of config.chain) {
      const entry = filters[st.filter];
      // a rebuilt .wasm at the same path is a new chain: compare what the file holds, not its name
      digests.push(entry ? (await this.pool.module(filterSpec(st.filter, entry))).digest : null);
    }
    // what the stages are told of the segment (a translated destination) is theirs to refuse: a change of it makes them again
    return JSON.stringify([config.chain, config.chain.map((s) => filters[s.filter] ?? null), digests, config.failure, segmentFlags(config)]);
  }

  private async buildStages(
    config: SegmentConfig, filters: Readonly<Record<string, FilterEntry>>, plan: Plan, states: CheckpointStates,
  ): Promise<ChainStage[]> {
    const stages: ChainStage[] = [];
    try {
      for (const [i, st] of config.chain.entries()) {
        const entry = filters[st.filter];
        if (!entry) throw new Error(`chain[${i}].filter: unknown filter '${st.filter}'`);
        const slot = await this.pool.acquire(filterSpec(st.filter, entry)).catch((err: unknown) => {
          // the module-wide config is the filter entry's, not the stage's: say so
          if (err instanceof FilterConfigError) throw new Error(`filter '${st.filter}' rejected its root config (filters.${st.filter}.config): ${err.reason || noReason(err.status)}`);
          throw err;
        });
        plan.acquired.push(slot);
        const family = entry.metricsName ?? st.filter;
        const ofFamily = config.chain.filter((other) => (filters[other.filter]?.metricsName ?? other.filter) === family).length === 1;
        const state = states.byEntry.get(checkpointKey(config.name, st.filter)) ?? (ofFamily ? states.byFamily.get(checkpointKey(config.name, family)) ?? undefined : undefined);
        const stage = await this.pool.prepareStage(slot, this.nextContext++, st.config, config.failure, config.name, state, 1 + config.legs.length, segmentFlags(config));
        stage.family = family;
        stages.push(stage);
        this.notRunning.add(stage.ctx);
      }
    } catch (err) {
      for (const st of stages) this.detachStage(st);
      const crashed = err instanceof FilterFailure ? " (while its context was created)" : "";
      throw new Error(`segment '${config.name}': ${(err as Error).message}${crashed}`);
    }
    return stages;
  }

  private addSegment(config: SegmentConfig, sockets: SegmentSockets, stages: ChainStage[]): SegmentRuntime {
    const seg = new SegmentRuntime(config, sockets, this.runner, this.ring, this.options.batchSize, this.io, this.streams);
    seg.onNotice = (message) => this.options.onEvent?.({ type: "error", segment: config.name, message });
    seg.stages = stages;
    this.run(seg, stages);
    this.segments.set(config.name, seg);
    return seg;
  }

  /**
   * Takes a segment out: it drains (nothing it holds is lost) unless its state went to a new chain,
   * and its sockets close once its sends completed.
   */
  /** `handOver`: it moves to another worker, which takes over its listen sockets with what they hold. */
  private removeSegment(seg: SegmentRuntime, drain = true, finalCounts?: SegmentSnapshot[], handOver = false): void {
    if (drain) seg.drain();
    else seg.stopReceiving();
    finalCounts?.push(snapshotSegment(seg, false)); // what it drained included, before its stages go
    for (const st of seg.stages) this.detachStage(st);
    seg.stages = [];
    this.segments.delete(seg.name);
    this.chainKeys.delete(seg.name);
    const closed = closeWhenSent(seg, handOver).finally(() => this.closing.delete(closed));
    this.closing.add(closed);
  }

  /** Replaces a running segment's chain between two batches, carrying state stage by stage. */
  private swapChain(seg: SegmentRuntime, next: ChainStage[]): void {
    seg.flush(); // what has arrived goes through the old chain, whole
    const old = seg.stages;
    const before = predecessors(old, next);
    const carried = this.carryState(seg, next, before);
    seg.stages = next;
    this.run(seg, next);
    // a stage whose state did not move (removed, or refused by its successor) hands over what it
    // holds, instead of losing it: into the new chain at its place (leaving-entry.ts), each way
    // through every new stage on that side, the ones this reload added too
    old.forEach((st, k) => {
      if (carried.has(st) || !st.live) return;
      seg.drainLeaving(st, leavingEntry(old, next, before, k));
    });
    carryFilterCounters(before);
    for (const st of old) this.detachStage(st);
  }

  /** `seg` runs `stages` from now: their timers fire, those that came due before it too. */
  private run(seg: SegmentRuntime, stages: readonly ChainStage[]): void {
    for (const st of stages) {
      this.stageOwner.set(st.ctx, seg);
      if (!this.notRunning.delete(st.ctx)) continue;
      const instance = st.live;
      const armed = instance && this.timers.get(instance);
      if (!armed) continue;
      for (let timer = 0; timer < MAX_TIMERS_PER_CONTEXT; timer++) {
        const key = st.ctx * MAX_TIMERS_PER_CONTEXT + timer;
        const t = armed.get(key);
        if (!t?.waiting) continue;
        t.waiting = false;
        t.handle = setTimeout(() => this.timerFired(instance, st.ctx, timer, key, t), 0);
      }
    }
  }

  /** Takes a stage out of this worker: its context is destroyed and its timers cancelled. */
  private detachStage(st: ChainStage): void {
    this.stageOwner.delete(st.ctx);
    this.notRunning.delete(st.ctx);
    const instance = st.slot.instance;
    if (instance) for (let timer = 0; timer < MAX_TIMERS_PER_CONTEXT; timer++) this.timerCancel(instance, st.ctx, timer);
    this.pool.detach(st);
  }

  /** Moves each stage's state (and counters) from its predecessor in `seg`'s chain (`predecessor`) to it; returns the old stages whose state moved. */
  private carryState(seg: SegmentRuntime, next: ChainStage[], predecessor: ReadonlyMap<ChainStage, ChainStage>): Set<ChainStage> {
    const carried: string[] = [];
    const moved = new Set<ChainStage>();
    const awaitingRestart: string[] = [];
    const fresh: string[] = [];
    for (const st of next) {
      const before = predecessor.get(st);
      if (before) st.stats = before.stats;
      const from = before?.live;
      // a stage that is down, or whose export failed (its instance is down now), carries its last
      // checkpoint, if it has one: what a restart after the failure would restore
      const exported = from ? this.exportFrom(seg, before!, from) : EXPORT_FAILED;
      const swapped = exported !== EXPORT_FAILED;
      const blob = swapped ? exported : before?.checkpoint;
      const to = st.live;
      if (!blob || !to) {
        // the new stage down too (its instance is the one that failed): its restart imports it
        if (blob) st.checkpoint = blob;
        (blob ? awaitingRestart : fresh).push(st.filterName);
        continue;
      }
      let result: { ok: boolean; reason: string };
      try {
        to.setClock(performance.now() * 1000, Date.now() * 1000); // a filter may judge the blob's age
        result = this.watched(st.slot, BeaconCall.StateImport, () => to.importState(st.ctx, blob, swapped ? StateOrigin.Swap : StateOrigin.Checkpoint));
      } catch (err) {
        fresh.push(st.filterName); // a failure: the failed hook handled it
        this.options.onEvent?.({ type: "error", segment: seg.name, message: `${st.filterName}: state transfer failed: ${(err as Error).message}` });
        continue;
      }
      if (result.ok) {
        st.checkpoint = swapped ? blob : this.stateNow(st) ?? blob; // a filter may move on from a checkpoint on import
        carried.push(st.filterName);
        if (before) moved.add(before);
      } else {
        fresh.push(st.filterName);
        this.options.onEvent?.({ type: "error", segment: seg.name, message: `${st.filterName}: state not carried over: ${result.reason}` });
      }
    }
    // a stage whose instance (module, root config) or config changed is a new one: the proxy counts
    // its failures toward the policy's limit from 0 (an operator's fix is not held against it)
    const renewed: number[] = [];
    next.forEach((st, i) => {
      const before = predecessor.get(st);
      if (!before || before.slot !== st.slot || JSON.stringify(before.config) !== JSON.stringify(st.config)) renewed.push(i);
    });
    this.options.onEvent?.({ type: "swap", segment: seg.name, carried, awaitingRestart, fresh, renewed });
    if (moved.size > 0 && this.askedSincePrepared) {
      // the new stages hold what a filter asked to have in a checkpoint (see askedSincePrepared)
      this.checkpointWishSent = false;
      this.wishCheckpoint();
    }
    return moved;
  }

  /** The stage's state (undefined: it keeps none), or EXPORT_FAILED when the export failed. */
  private exportFrom(seg: SegmentRuntime, st: ChainStage, from: FilterInstance): Uint8Array | undefined | typeof EXPORT_FAILED {
    from.setClock(performance.now() * 1000, Date.now() * 1000);
    try {
      // the old stage's call: a stuck export is the old filter's, on its slot
      return this.watched(st.slot, BeaconCall.StateExport, () => from.exportState(st.ctx));
    } catch (err) {
      this.options.onEvent?.({ type: "error", segment: seg.name, message: `${st.filterName}: state transfer failed: ${(err as Error).message}` });
      return EXPORT_FAILED;
    }
  }

  /** A filter call outside the packet loop (a state export or import), told to the watchdog as the loop's are: an endless one gets the worker restarted. */
  private watched<T>(slot: InstanceSlot, what: BeaconCall, call: () => T): T {
    // named: a slot new in the change being applied may not be known to the main thread yet
    this.options.beacon?.enterNamed(slot.id, slot.name, what);
    try {
      return call();
    } finally {
      this.options.beacon?.leave();
    }
  }

  // ---- timers (msm.timer_set) ----

  private timerSet(instance: FilterInstance, ctx: number, timer: number, delayUs: number): void {
    let m = this.timers.get(instance);
    if (!m) this.timers.set(instance, (m = new Map()));
    const key = ctx * MAX_TIMERS_PER_CONTEXT + timer;
    clearTimeout(m.get(key)?.handle);
    const delayMs = Math.max(0, delayUs / 1000);
    // Node and Bun fire a timer of under 1 ms after 1 ms
    const armed: ArmedTimer = { handle: undefined, dueMs: performance.now() + Math.max(1, delayMs), waiting: false };
    armed.handle = setTimeout(() => this.timerFired(instance, ctx, timer, key, armed), delayMs);
    m.set(key, armed);
  }

  private timerCancel(instance: FilterInstance, ctx: number, timer: number): void {
    const m = this.timers.get(instance);
    const key = ctx * MAX_TIMERS_PER_CONTEXT + timer;
    const armed = m?.get(key);
    if (armed !== undefined) {
      clearTimeout(armed.handle);
      m!.delete(key);
    }
  }

  private timerCancelAll(instance: FilterInstance): void {
    const m = this.timers.get(instance);
    if (!m) return;
    for (const t of m.values()) clearTimeout(t.handle);
    this.timers.delete(instance);
  }

  private timerFired(instance: FilterInstance, ctx: number, timer: number, key: number, armed: ArmedTimer): void {
    const seg = this.stageOwner.get(ctx);
    if (!seg && this.notRunning.has(ctx) && !instance.failure) {
      // armed in createContext or an import during a prepare, due before the commit (or the open
      // step) put the segment to work: it stays armed, and fires once the segment runs (`run`)
      armed.waiting = true;
      return;
    }
    if (seg && performance.now() - armed.dueMs > LATE_TIMER_MS) {
      // late (a stall): the packets that came meanwhile go first, as they would have without it
      // (the loop runs timers before it polls; a poll since may have read only a wakeup's worth);
      // they may cancel or re-arm this timer, and then it does not fire
      seg.receiveBacklog();
      if (this.timers.get(instance)?.get(key) !== armed) return;
    }
    this.timers.get(instance)?.delete(key);
    if (!seg || instance.failure) return;
    const index = seg.stages.findIndex((s) => s.ctx === ctx && s.slot.instance === instance);
    const stage = seg.stages[index];
    if (!stage || stage.live !== instance) return;
    const nowUs = performance.now() * 1000;
    if (!stage.timerFires.take(nowUs)) {
      // over its budget of firings: the timer fires once the budget allows (a timer at 0 delay
      // re-armed from its own callback would otherwise keep the worker busy)
      stage.stats.timersDeferred++;
      this.timerSet(instance, ctx, timer, stage.timerFires.waitUs(nowUs));
      return;
    }
    seg.flush();
    const wallUs = Date.now() * 1000;
    instance.setClock(nowUs, wallUs);
    this.runner.setClock(nowUs, wallUs);
    let out: number;
    this.options.beacon?.enter(stage.slot.id, BeaconCall.Timer);
    try {
      out = instance.onTimer(ctx, timer);
    } catch {
      return; // a failure: the instance's failed hook has told the pool
    } finally {
      this.options.beacon?.leave();
    }
    if (out > 0) seg.runTimerOutputs(index, out);
  }
}
