// The instances one worker hosts: one per filter (name, module digest, root config), shared by
// every segment whose chain uses it, each segment holding a context in it. Every failure of an
// instance, in whichever call it happens (a batch, a timer, a context change, a state transfer),
// reaches handleFailure through the instance's `failed` hook: the pool discards the instance and
// brings up a new one with backoff, following each segment's policy, with each context's state
// from its last checkpoint.
import { createHash } from "node:crypto";
import { FilterFailure } from "../filter-host/errors.js";
import { FilterInstance, type FilterHostServices } from "../filter-host/filter-instance.js";
import type { FilterMetrics } from "../filter-host/metrics.js";
import { loadFilterModule, type FilterSource, type LoadedFilterModule } from "../filter-host/module-loader.js";
import { stageBudgets, type TokenBucket } from "./budget.js";
import { StageStats } from "./stats.js";
import { BeaconCall, STARTING_SLOT, probeSlot, type WatchdogBeacon } from "../dataplane/watchdog-beacon.js";
import { StateOrigin } from "../abi.js";

export interface FilterSpec extends FilterSource {
  /** Root config (msm_configure_root). */
  readonly config?: unknown;
  readonly limits?: StageLimits;
}

/** What one stage may do per second (the filter entry's `limits`). */
export interface StageLimits {
  readonly generatedPerSecond: number;
  readonly timerFiresPerSecond: number;
}

export const DEFAULT_STAGE_LIMITS: StageLimits = Object.freeze({ generatedPerSecond: 50_000, timerFiresPerSecond: 2_000 });

export interface FailurePolicy {
  readonly mode: "open" | "closed";
  readonly restartBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly maxFailures: number;
}

/** Fail closed unless told otherwise, as Envoy's Wasm filters do (fail_open: false). */
export const DEFAULT_FAILURE_POLICY: FailurePolicy = Object.freeze({
  mode: "closed",
  restartBackoffMs: 100,
  maxBackoffMs: 5000,
  maxFailures: 5,
});

export type PoolEvent =
  | { type: "failure"; filter: string; reason: string; segments: string[] }
  | { type: "restarted"; filter: string; segments: string[] }
  | { type: "gave-up"; filter: string; segment: string; failures: number }
  | { type: "restart-failed"; filter: string; reason: string }
  | { type: "state-lost"; filter: string; segment: string; reason: string };

/** One stage of one segment's chain: a context in a shared instance. */
export class ChainStage {
  failures = 0;
  gaveUp = false;
  /** True while the context exists in the slot's current instance. */
  active = false;
  stats = new StageStats();
  /** The context's state as last exported (checkpoints, swaps); imported when the instance is replaced. */
  checkpoint: Uint8Array | undefined;
  /**
   * Which filter it runs, whatever its entry is keyed (the entry's metricsName, else its name): a
   * stage keyed anew (a second version beside it, other limits) still takes its predecessor's state.
   */
  family = "";
  /** Budgets of packets the stage creates and of its timer firings. */
  readonly generated: TokenBucket;
  readonly timerFires: TokenBucket;

  constructor(
    readonly slot: InstanceSlot,
    readonly ctx: number,
    readonly config: unknown,
    /** The segment's policy, with mode "closed" when the filter declared it must fail closed. */
    readonly policy: FailurePolicy,
    readonly segment: string,
    /** The segment's leg count, told the filter when its context is made (0: not said). */
    readonly legs = 0,
    /** The segment's SegmentFlag bits, told the filter when its context is made (ABI 1.9). */
    readonly segmentFlags = 0,
  ) {
    ({ generated: this.generated, timerFires: this.timerFires } = stageBudgets(slot.limits));
  }

  get filterName(): string {
    return this.slot.name;
  }

  get filterFamily(): string {
    return this.family || this.slot.name;
  }

  /** The instance to call, or null while the stage is down. */
  get live(): FilterInstance | null {
    const inst = this.slot.instance;
    return this.active && inst !== null && inst.failure === undefined ? inst : null;
  }
}

export class InstanceSlot {
  instance: FilterInstance | null = null;
  readonly users = new Set<ChainStage>();
  restartTimer: NodeJS.Timeout | undefined;
  /** A new instance is being made (restart): stages attached meanwhile get their contexts in it. */
  restarting = false;
  /**
   * The metrics of the instance that failed, until a new one took its stages over: while a stage
   * is down its counts still show, and a swap then still carries them to its successor.
   */
  retiredMetrics: FilterMetrics | undefined;

  constructor(
    readonly id: number,
    readonly key: string,
    readonly module: LoadedFilterModule,
    readonly rootConfig: unknown,
    /** From the module's msm_policy: its stages drop packets while it is down, whatever the config says. */
    readonly mustFailClosed: boolean,
    readonly limits: StageLimits,
    /** The config change that made the slot: one made earlier may have segments running on it. */
    readonly change: number,
  ) {}

  get name(): string {
    return this.module.name;
  }

  /** Down with nothing to bring it back: every stage on it gave up. */
  get abandoned(): boolean {
    return this.instance === null && this.restartTimer === undefined && !this.restarting;
  }

  /** The metrics holding context `ctx`'s values: the instance's, or the failed one's while the stage is down. */
  metricsOf(ctx: number): FilterMetrics | undefined {
    if (this.instance?.metrics.forContext(ctx)) return this.instance.metrics;
    return this.retiredMetrics?.forContext(ctx) ? this.retiredMetrics : undefined;
  }
}

function slotKey(name: string, digest: string, rootConfig: unknown, limits: StageLimits | undefined): string {
  const configHash = createHash("sha256").update(JSON.stringify([rootConfig ?? {}, limits ?? null])).digest("hex").slice(0, 16);
  return `${name}@${digest}#${configHash}`;
}

export class FilterPool {
  /** The worker's watchdog beacon: a context's creation is a filter call the watchdog must see. */
  beacon: Pick<WatchdogBeacon, "enter" | "enterNamed" | "leave"> | undefined;
  private readonly slots = new Map<string, InstanceSlot>();
  /** Which slot each live instance serves, for the instances' `failed` hook. */
  private readonly slotOf = new Map<FilterInstance, InstanceSlot>();
  /** Compiled modules of the current config change, by path, name, digest pin and memory cap. */
  private readonly modules = new Map<string, Promise<LoadedFilterModule>>();
  /**
   * Instances a new context's config is tried in first, one per slot, for one config change: a
   * context that traps while it is created takes its instance down, and the running segments on a
   * shared instance must not pay for a change that is then refused.
   */
  private readonly probes = new Map<InstanceSlot, Promise<FilterInstance>>();
  private readonly probeServices: FilterHostServices;
  private change = 0;
  private nextSlotId = 1;
  private readonly services: FilterHostServices;
  private readonly timerCancelAll: (instance: FilterInstance) => void;

  constructor(
    services: Omit<FilterHostServices, "failed"> & { timerCancelAll(instance: FilterInstance): void },
    private readonly onEvent: (event: PoolEvent) => void = () => {},
  ) {
    this.timerCancelAll = services.timerCancelAll;
    this.services = {
      log: services.log,
      timerSet: services.timerSet,
      timerCancel: services.timerCancel,
      ...(services.hostCrypto === false && { hostCrypto: false }),
      ...(services.checkpointWanted && { checkpointWanted: services.checkpointWanted }),
      failed: (instance, failure) => {
        const slot = this.slotOf.get(instance);
        if (slot) this.handleFailure(slot, failure);
      },
    };
    // a probe's timers never fire and its logs are not the running filter's: its answer is the call's
    this.probeServices = {
      log: () => {},
      timerSet: () => {},
      timerCancel: () => {},
      ...(services.hostCrypto === false && { hostCrypto: false }),
    };
  }

  /** The slot for a filter, loading and instantiating it if no segment uses it yet. */
  async acquire(spec: FilterSpec): Promise<InstanceSlot> {
    const module = await this.module(spec);
    const key = slotKey(spec.name, module.digest, spec.config, spec.limits);
    let slot = this.slots.get(key);
    if (slot && (slot.instance !== null || slot.users.size > 0)) return slot;
    const instance = await FilterInstance.create(module, spec.config, this.services, this.startWatch(module.name));
    slot = this.slots.get(key); // another acquire may have finished meanwhile
    if (slot?.instance) return slot;
    slot = new InstanceSlot(this.nextSlotId++, key, module, spec.config, instance.mustFailClosed, spec.limits ?? DEFAULT_STAGE_LIMITS, this.change);
    this.install(slot, instance);
    this.slots.set(key, slot);
    return slot;
  }

  /**
   * A stage for a config change: its config tried first where a failure would reach running
   * segments (see `probes`), and a filter every stage had given up on brought up again for it.
   * Throws FilterConfigError, or FilterFailure (nothing running was touched).
   */
  async prepareStage(slot: InstanceSlot, ctx: number, config: unknown, policy: FailurePolicy, segment: string, state?: Uint8Array, legs = 0, segmentFlags = 0): Promise<ChainStage> {
    if (slot.change !== this.change || slot.instance === null) {
      try {
        await this.tryOnProbe(slot, ctx, config, legs, segmentFlags);
      } catch (err) {
        if (!(err instanceof FilterFailure)) throw err;
        throw new FilterFailure(err.filter, err.during, `${err.reason}; tried in an instance of its own, so no running segment was touched`);
      }
    }
    const stage = this.attach(slot, ctx, config, policy, segment, state, legs, segmentFlags);
    if (!stage.active && slot.abandoned) {
      await this.restart(slot, null); // a fixed config after the others gave up: a new instance, for it
      if (stage.gaveUp) {
        this.detach(stage);
        throw new Error(`filter '${slot.name}' refused the context when it was brought up again (see the proxy's log)`);
      }
    }
    return stage;
  }

  /**
   * Creates a stage: a context for the segment in the slot's instance, with `state` imported when
   * given (a worker restarted from checkpoints). While the instance is down the stage waits for
   * its restart, inactive, its `state` the checkpoint the restart imports. Throws
   * FilterConfigError, or FilterFailure when the instance failed (the pool has then already
   * handled the failure for the others on it).
   */
  attach(slot: InstanceSlot, ctx: number, config: unknown, policy: FailurePolicy, segment: string, state?: Uint8Array, legs = 0, segmentFlags = 0): ChainStage {
    const effective = slot.mustFailClosed && policy.mode !== "closed" ? { ...policy, mode: "closed" as const } : policy;
    const stage = new ChainStage(slot, ctx, config, effective, segment, legs, segmentFlags);
    if (!slot.instance) {
      slot.users.add(stage);
      stage.checkpoint = state;
      return stage;
    }
    const instance = slot.instance;
    this.watched(slot, BeaconCall.ContextCreate, () => instance.createContext(ctx, config, legs, segmentFlags));
    slot.users.add(stage);
    stage.active = true;
    if (state) this.importCheckpoint(stage, slot.instance, state);
    return stage;
  }

  /** Removes a stage; the instance goes when its last stage does. */
  detach(stage: ChainStage): void {
    const slot = stage.slot;
    slot.users.delete(stage);
    const instance = slot.instance;
    if (stage.active && instance && !instance.failure) {
      try {
        this.watched(slot, BeaconCall.ContextDestroy, () => instance.destroyContext(stage.ctx));
      } catch {
        // a failure here went through the failed hook: the others on the instance follow their policy
      }
    }
    stage.active = false;
    if (slot.users.size === 0) this.dropSlot(slot);
    else if (slot.instance && [...slot.users].every((st) => st.gaveUp && !st.active)) this.retire(slot);
  }

  /**
   * Closes the instance of a slot whose every stage gave up: one brought up again for a new stage
   * (prepareStage) whose change was then refused would otherwise stay, its memory held for no one.
   * The slot is abandoned again, and a fixed config brings it up as before.
   */
  private retire(slot: InstanceSlot): void {
    const instance = slot.instance!;
    this.timerCancelAll(instance);
    this.slotOf.delete(instance);
    instance.close();
    slot.instance = null;
  }

  /** Releases a slot acquired for a chain that was then not built. */
  releaseIfUnused(slot: InstanceSlot): void {
    if (slot.users.size === 0) this.dropSlot(slot);
  }

  /**
   * An instance failed (or, with `failure` an Error, its worker was restarted by the watchdog):
   * discard it, count the failure against every stage on it, schedule a restart.
   */
  handleFailure(slot: InstanceSlot, failure: FilterFailure | Error, restartFailed = false): void {
    const dead = slot.instance;
    if (dead) {
      this.timerCancelAll(dead);
      this.slotOf.delete(dead);
      slot.instance = null;
      // a restart that failed part way holds only the stages it got to: the others' values stay
      // with the instance before it
      const older = slot.retiredMetrics;
      if (older && older !== dead.metrics) {
        for (const st of slot.users) {
          const kept = older.forContext(st.ctx);
          if (kept && !dead.metrics.forContext(st.ctx)) dead.metrics.adopt(st.ctx, kept);
        }
      }
      slot.retiredMetrics = dead.metrics;
    }
    if (slot.users.size === 0) {
      this.dropSlot(slot);
      return;
    }
    const affected: string[] = [];
    let delay = Infinity;
    for (const stage of slot.users) {
      if (stage.gaveUp) {
        // no restart brings it back; one still active (given up by a restored count) had a
        // context in the dead instance: it goes down with it and counts this failure
        if (!stage.active) continue;
        stage.active = false;
        stage.failures++;
        stage.stats.failures++;
        affected.push(stage.segment);
        continue;
      }
      // a stage already down was counted for the instance it was on, unless a new one failed to start
      if (!stage.active && dead === null && !restartFailed) continue;
      stage.active = false;
      stage.failures++;
      stage.stats.failures++;
      affected.push(stage.segment);
      if (stage.failures >= stage.policy.maxFailures) {
        if (!stage.gaveUp) this.onEvent({ type: "gave-up", filter: slot.name, segment: stage.segment, failures: stage.failures });
        stage.gaveUp = true;
        continue;
      }
      delay = Math.min(delay, Math.min(stage.policy.restartBackoffMs * 2 ** (stage.failures - 1), stage.policy.maxBackoffMs));
    }
    this.onEvent({ type: "failure", filter: slot.name, reason: failure.message, segments: affected });
    if (delay !== Infinity) this.scheduleRestart(slot, delay, dead);
  }

  /**
   * Marks stages failed without an instance at hand (after a watchdog restart of the worker): the
   * count toward the policy's limit. The stage's failure counter (stats) counts only this worker's
   * failures: the main thread adds those of the workers before (withCarriedCounters).
   */
  restoreFailureCount(stage: ChainStage, failures: number): void {
    stage.failures = failures;
    if (failures >= stage.policy.maxFailures) stage.gaveUp = true;
  }

  close(): void {
    for (const slot of this.slots.values()) {
      clearTimeout(slot.restartTimer);
      if (slot.instance) this.timerCancelAll(slot.instance);
    }
    this.slots.clear();
    this.slotOf.clear();
  }

  /** Once a second: every instance reports the log lines it suppressed in the last window. */
  endLogWindows(): void {
    for (const slot of this.slots.values()) slot.instance?.endLogWindow();
  }

  get instanceCount(): number {
    let n = 0;
    for (const slot of this.slots.values()) if (slot.instance) n++;
    return n;
  }

  private scheduleRestart(slot: InstanceSlot, delayMs: number, previous: FilterInstance | null): void {
    clearTimeout(slot.restartTimer);
    slot.restartTimer = setTimeout(() => void this.restart(slot, previous), delayMs);
    slot.restartTimer.unref?.();
  }

  private async restart(slot: InstanceSlot, previous: FilterInstance | null): Promise<void> {
    slot.restartTimer = undefined;
    if (slot.users.size === 0 || slot.instance || slot.restarting) return;
    let instance: FilterInstance;
    slot.restarting = true;
    try {
      instance = await FilterInstance.create(slot.module, slot.rootConfig, this.services, this.startWatch(slot.name));
    } catch (err) {
      slot.restarting = false;
      this.onEvent({ type: "restart-failed", filter: slot.name, reason: (err as Error).message });
      this.handleFailure(slot, err as Error, true); // each stage waiting for it counts the try, and the next is scheduled
      return;
    }
    slot.restarting = false;
    if (slot.instance || slot.users.size === 0) {
      instance.close();
      return;
    }
    this.install(slot, instance);
    const restarted: string[] = [];
    for (const stage of slot.users) {
      if (stage.gaveUp) continue;
      try {
        this.watched(slot, BeaconCall.ContextCreate, () => instance.createContext(stage.ctx, stage.config, stage.legs, stage.segmentFlags));
      } catch (err) {
        if (instance.failure) return; // the failed hook counted it and scheduled the next try
        stage.gaveUp = true;
        this.onEvent({ type: "gave-up", filter: slot.name, segment: stage.segment, failures: stage.failures });
        continue;
      }
      const kept = previous?.metrics.forContext(stage.ctx);
      if (kept) instance.metrics.adopt(stage.ctx, kept);
      stage.active = true;
      if (stage.checkpoint) this.importCheckpoint(stage, instance, stage.checkpoint);
      if (instance.failure) return;
      restarted.push(stage.segment);
    }
    // the new instance adopted every running stage's values; a stage that gave up keeps showing its own
    if ([...slot.users].every((st) => !st.gaveUp)) slot.retiredMetrics = undefined;
    this.onEvent({ type: "restarted", filter: slot.name, segments: restarted });
  }

  private install(slot: InstanceSlot, instance: FilterInstance): void {
    slot.instance = instance;
    this.slotOf.set(instance, slot);
  }

  /** Imports a stage's saved state into its fresh context; a refusal or a trap starts it fresh, with an event. */
  private importCheckpoint(stage: ChainStage, instance: FilterInstance, state: Uint8Array): void {
    stage.checkpoint = state;
    let result: { ok: boolean; reason: string };
    try {
      instance.setClock(performance.now() * 1000, Date.now() * 1000); // a filter may judge the checkpoint's age
      result = this.watchedResult(stage.slot, BeaconCall.StateImport, () => instance.importState(stage.ctx, state, StateOrigin.Checkpoint));
    } catch (err) {
      // the failed hook handled the failure; imported again at every restart, a blob the filter
      // traps on would take the instance down until every stage on it gave up
      stage.checkpoint = undefined;
      this.onEvent({ type: "state-lost", filter: stage.filterName, segment: stage.segment, reason: `importing it failed: ${(err as Error).message}` });
      return;
    }
    if (!result.ok) {
      this.onEvent({ type: "state-lost", filter: stage.filterName, segment: stage.segment, reason: result.reason });
      return;
    }
    // the restored state at once becomes the checkpoint: a filter may move on from a checkpoint's
    // state on import (srtp skips SRTCP indexes the failed instance may have used), and a second
    // failure before the next periodic checkpoint must restore from there, not from the same blob
    try {
      const now = this.watchedResult(stage.slot, BeaconCall.StateExport, () => instance.exportState(stage.ctx));
      if (now) stage.checkpoint = now;
    } catch {
      // a failure: the failed hook handled it; the blob imported stays the checkpoint
    }
  }

  /**
   * The compiled module of a filter, read and compiled once per config change: a config of 10,000
   * segments names the same .wasm 10,000 times. The cache lives for one change only (see
   * beginChange), so that a file replaced for the next reload is read again, and nothing of an
   * old rollout stays in memory once no instance uses it.
   */
  module(spec: FilterSpec): Promise<LoadedFilterModule> {
    if (spec.bytes || !spec.path) return loadFilterModule(spec);
    const key = `${spec.path}|${spec.name}|${spec.sha256 ?? ""}|${spec.maxMemoryPages ?? ""}`;
    const cached = this.modules.get(key);
    if (cached) return cached;
    const module = loadFilterModule(spec);
    this.modules.set(key, module);
    module.catch(() => {
      if (this.modules.get(key) === module) this.modules.delete(key);
    });
    return module;
  }

  /** Starts a config change: its module cache is fresh (the last change's ends here). */
  beginChange(): void {
    this.closeProbes();
    this.modules.clear();
    this.change++;
  }

  /** The change is prepared: its probes go. */
  closeProbes(): void {
    for (const probe of this.probes.values()) void probe.then((p) => p.close(), () => {});
    this.probes.clear();
  }

  /** An instance's start (_initialize, msm_configure_root), told to the watchdog: its slot may not exist yet, so it goes as STARTING_SLOT. */
  private startWatch(filter: string): { enter(): void; leave(): void } {
    return { enter: (): void => this.beacon?.enterNamed(STARTING_SLOT, filter, BeaconCall.Start), leave: (): void => this.beacon?.leave() };
  }

  /** Runs a filter call of `slot`'s with the watchdog told, as the packet loop's calls are (`probe`: a change's call on a probe, not the running instance). */
  private watched(slot: InstanceSlot, what: BeaconCall, call: () => void, probe = false): void {
    // (a change's calls: the name goes too, as the main thread may not know the slot yet)
    this.beacon?.enterNamed(probe ? probeSlot(slot.id) : slot.id, slot.name, what);
    try {
      call();
    } finally {
      this.beacon?.leave();
    }
  }

  /** watched() for a call with a result. */
  private watchedResult<T>(slot: InstanceSlot, what: BeaconCall, call: () => T): T {
    let result: T | undefined;
    this.watched(slot, what, () => void (result = call()));
    return result!;
  }

  /**
   * Creates the context in the slot's probe and destroys it again. A trap there is the change's
   * error alone; the probe is discarded and the next stage gets a fresh one.
   */
  private async tryOnProbe(slot: InstanceSlot, ctx: number, config: unknown, legs: number, segmentFlags: number): Promise<void> {
    let pending = this.probes.get(slot);
    if (!pending) {
      pending = FilterInstance.create(slot.module, slot.rootConfig, this.probeServices, this.startWatch(slot.name));
      this.probes.set(slot, pending);
      pending.catch(() => this.probes.delete(slot));
    }
    const probe = await pending;
    try {
      this.watched(slot, BeaconCall.ContextCreate, () => {
        probe.createContext(ctx, config, legs, segmentFlags);
        probe.destroyContext(ctx);
      }, true);
    } catch (err) {
      if (probe.failure && this.probes.get(slot) === pending) this.probes.delete(slot);
      throw err;
    }
  }

  private dropSlot(slot: InstanceSlot): void {
    clearTimeout(slot.restartTimer);
    if (slot.instance) {
      this.timerCancelAll(slot.instance);
      this.slotOf.delete(slot.instance);
      slot.instance.close();
    }
    slot.instance = null;
    if (this.slots.get(slot.key) === slot) this.slots.delete(slot.key);
  }
}
