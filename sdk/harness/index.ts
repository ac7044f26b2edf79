// Host-side test harness for filter authors: load a filter, feed it packets, and read verdicts,
// output packets, metrics and timers, with a clock the test controls and no sockets. It drives
// the runtime's own FilterInstance, so a filter behaves here exactly as in the proxy. On top of
// that: a watchdog on every call (watchdog.ts), a hot swap in one call (swap), and a check that
// memory stays flat (expectNoMemoryGrowth).
import { readFile } from "node:fs/promises";
import { DropReason, LogLevel, MetricKind, SegmentFlag, StateOrigin } from "../../runtime/abi.js";
import {
  batchProblem, compileFilterModule, DEFAULT_STAGE_LIMITS, dropReasonName, FilterConfigError, FilterFailure, FilterInstance, HELD,
  outputProblem, PASSED, stageBudgets, type FilterHostServices, type TokenBucket, type HistogramValue, type LoadedFilterModule,
} from "./runtime.js";
import { reasonLabel } from "./reasons.js";
import { CallKind, CallWatchdog, DEFAULT_CALL_TIMEOUT_MS } from "./watchdog.js";

export interface HarnessPacket {
  readonly ctx: number;
  readonly bytes: Uint8Array;
  /** PacketFlag bits (Rtcp, Upstream, ...). */
  readonly flags?: number;
  /** Arrival time; default: the harness clock. */
  readonly arrivalUs?: number;
  /** The UDP source port. */
  readonly sourcePort?: number;
  /** The leg it arrived on (0: the media port; docs/proxy.md "Legs"). */
  readonly leg?: number;
}

export interface PacketResult {
  /** As the proxy judges it: a broken descriptor (an unknown verdict, a packet out of its slot) is a drop. */
  readonly verdict: "pass" | "drop" | "hold";
  /** The DropReason the proxy counts (0 unless dropped): a code the filter may not use is HostBadReason. */
  readonly reason: number;
  /**
   * snake_case name of the reason as /metrics and /stats show it: `bad_version` for a shared code,
   * the name the filter gave its own code (nameDropReason, ABI 1.6), `filter_<code>` if it gave none.
   */
  readonly reasonName: string;
  /** The filter named the reason a discard (DropClass.Discard): counted apart from drops, not as one. */
  readonly discard: boolean;
  /** Why the host dropped it, when the reason is HostBadDescriptor or HostBadReason (a filter bug); else "". */
  readonly problem: string;
  /** The packet's bytes after the filter (a copy; empty when its descriptor left its slot). */
  readonly bytes: Uint8Array;
  /** The leg it leaves on. */
  readonly leg: number;
}

export interface OutputPacket {
  readonly ctx: number;
  readonly bytes: Uint8Array;
  readonly flags: number;
  readonly dest: number;
  /** The leg it leaves on. */
  readonly leg: number;
}

export interface BatchResult {
  readonly packets: PacketResult[];
  /** The output packets the host takes (those it refuses are in `hostDrops`). */
  readonly outputs: OutputPacket[];
}

/** A packet or output packet the host dropped for a filter bug (HostBadDescriptor, HostBadReason). */
export interface HostDrop {
  /** The call that made it: "onPacket", "onTimer" or "drainContext". */
  readonly call: string;
  readonly kind: "packet" | "output";
  /** Its index in the batch or in the output area. */
  readonly index: number;
  /** The context of the call. */
  readonly ctx: number;
  readonly reason: number;
  readonly reasonName: string;
  /** What was wrong, as the proxy logs it. */
  readonly problem: string;
}

export interface HarnessOptions {
  readonly name?: string;
  readonly rootConfig?: unknown;
  readonly sha256?: string;
  readonly maxMemoryPages?: number;
  /** Start of the harness clock, microseconds. */
  readonly startUs?: number;
  /**
   * The longest one call into the filter may take, in milliseconds (default 5000; 0: no limit).
   * A call that takes longer (an endless loop) ends the test process with a message naming the
   * filter, the call and the context: nothing can interrupt WebAssembly on the test's thread.
   */
  readonly timeoutMs?: number;
  /**
   * false: the host offers no crypto (ABI 1.4 `HostFeature.Crypto`), as a proxy whose native addon
   * was not built: tests a filter's fallback. Default: the host's crypto where this machine has it.
   */
  readonly hostCrypto?: boolean;
  /**
   * A proxy stage's budgets (`filters.<name>.limits`), on the harness clock. Timer firings always
   * have one (default 2,000 a second, a burst of 200): a timer over it fires later
   * (timersDeferred counts it), so a timer re-armed at 0 us cannot hang advanceTime. Generated
   * packets have one only when `generatedPerSecond` is given (a burst of a tenth of a second, at
   * least 2,048): an output over it is a `host_budget_exceeded` drop in hostDrops. Not by default,
   * because the harness clock stands still between advanceTime calls, and a test's thousands of
   * packets would spend in no time what the proxy spreads over their real arrival.
   */
  readonly limits?: { readonly generatedPerSecond?: number; readonly timerFiresPerSecond?: number };
  /**
   * The wall clock the filter sees (`wall_us`), in microseconds; default: this machine's. A test
   * of what a filter makes of its state's age (a checkpoint restored seconds later) sets it.
   */
  readonly wallClockUs?: () => number;
}

/** What changes at a hot swap (`swap`); what is left out stays as it was. */
export interface SwapChange {
  /** The new module (a new build of the filter); default: the same one. */
  readonly wasm?: string | Uint8Array;
  /** The new instance's root config; default: the old one's. */
  readonly rootConfig?: unknown;
  /** Every context's new config; default: each keeps its own. */
  readonly contextConfig?: unknown;
  /** Or each context's new config from its id and its old config. */
  readonly contextConfigFor?: (ctx: number, old: unknown) => unknown;
}

/** What a hot swap did to each context, as the proxy's "swap" event tells per stage. */
export interface SwapResult {
  /** Contexts whose state the new instance imported. */
  readonly carried: number[];
  /** Contexts that start fresh in the new instance, and why. */
  readonly fresh: { ctx: number; reason: string }[];
  /** What the old instance handed over (msm_context_drain) for the contexts whose state did not move. */
  readonly drained: OutputPacket[];
}

export interface MemoryGrowthOptions {
  /** Rounds measured (default 1000). */
  readonly rounds?: number;
  /** Rounds run first so that free lists and the collector's interval settle (default rounds / 10, at least 1). */
  readonly warmupRounds?: number;
  /** Growth still taken as flat (default 65,536: one WebAssembly page). */
  readonly allowBytes?: number;
}

interface PendingTimer {
  instance: FilterInstance;
  ctx: number;
  timer: number;
  dueUs: number;
}

export class FilterHarness {
  /** Every line the filter logged, and the host's lines about it (packets it dropped for a broken descriptor), as the proxy logs them. */
  readonly logs: { level: LogLevel; message: string }[] = [];
  /** Every packet and output packet the host dropped for a filter bug, in every call, unlike `logs` not rate-limited. */
  readonly hostDrops: HostDrop[] = [];
  private nextContext = 1;
  private clockUs: number;
  /** Armed timers by "instance:ctx:timer" (both instances have timers during a swap). */
  private readonly pending = new Map<string, PendingTimer>();
  /** The filter asked for a checkpoint since takeCheckpointWish last looked. */
  private checkpointWish = false;
  private readonly configs = new Map<number, unknown>();
  /** Each context's segment leg count, as the host tells it (ABI 1.7; 0: not said). */
  private readonly legs = new Map<number, number>();
  /** Each context's SegmentFlag bits (ABI 1.9), told it again when a swap or restart makes it anew. */
  private readonly segmentFlags = new Map<number, number>();
  private readonly watchdog: CallWatchdog;
  private current!: FilterInstance;
  private module!: LoadedFilterModule;
  private rootConfig: unknown;
  private readonly instanceIds = new WeakMap<FilterInstance, number>();
  private instanceCount = 0;
  /** Timer firings put off because their context's budget of firings was spent, as the proxy does. */
  timersDeferred = 0;
  private readonly budgets = new Map<number, { generated: TokenBucket | null; timerFires: TokenBucket }>();

  private constructor(private readonly options: HarnessOptions, name: string) {
    for (const [key, value] of Object.entries(options.limits ?? {})) {
      if (value !== undefined && !(Number.isFinite(value) && value >= 1)) throw new RangeError(`limits.${key}: must be at least 1 a second, got ${value}`);
    }
    this.clockUs = options.startUs ?? 1_000_000;
    this.watchdog = new CallWatchdog(name, options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS);
  }

  /** The filter instance the harness drives (a new one after `swap`). */
  get instance(): FilterInstance {
    return this.current;
  }

  /** Loads a filter from a .wasm path or bytes. Throws FilterLoadError / FilterConfigError as the proxy would. */
  static async load(wasm: string | Uint8Array, options: HarnessOptions = {}): Promise<FilterHarness> {
    expectKnownKeys(options, LOAD_OPTIONS, "FilterHarness.load: unknown option");
    const name = options.name ?? (typeof wasm === "string" ? wasm.replace(/^.*\//, "").replace(/(\.checked)?\.wasm$/, "") : "filter");
    const harness = new FilterHarness(options, name);
    harness.module = await harness.compile(wasm, name);
    harness.rootConfig = options.rootConfig ?? {};
    harness.current = await harness.instantiate(harness.module, harness.rootConfig);
    return harness;
  }

  private async compile(wasm: string | Uint8Array, name: string): Promise<LoadedFilterModule> {
    const bytes = typeof wasm === "string" ? new Uint8Array(await readFile(wasm)) : wasm;
    return compileFilterModule(name, bytes, this.options.sha256, this.options.maxMemoryPages);
  }

  private instantiate(module: LoadedFilterModule, rootConfig: unknown): Promise<FilterInstance> {
    const key = (inst: FilterInstance, ctx: number, timer: number): string => `${this.instanceId(inst)}:${ctx}:${timer}`;
    const services: FilterHostServices = {
      log: (_filter, level, message) => this.logs.push({ level, message }),
      timerSet: (instance, ctx, timer, delayUs) => this.pending.set(key(instance, ctx, timer), { instance, ctx, timer, dueUs: this.clockUs + delayUs }),
      timerCancel: (instance, ctx, timer) => this.pending.delete(key(instance, ctx, timer)),
      ...(this.options.hostCrypto === false && { hostCrypto: false }),
      checkpointWanted: () => void (this.checkpointWish = true),
      strictDropReasons: true, // a filter author hears of a bad table at once; a proxy logs it and goes on
    };
    this.watchdog.enter(CallKind.Load, 0, 0); // _initialize and configureRoot, after the instantiation
    return FilterInstance.create(module, rootConfig, services).finally(() => this.watchdog.leave());
  }

  /**
   * The proxy only calls a filter for contexts it created: a test naming another (a typo, a
   * destroyed one) would otherwise see the filter pass a packet it never judged.
   */
  private expectContext(ctx: number, what: string): void {
    if (this.current.contexts.has(ctx)) return;
    const live = [...this.current.contexts].join(", ") || "none";
    throw new RangeError(`${what}: context ${ctx} is not one of the filter's (live: ${live}); use the id createContext returned`);
  }

  private instanceId(inst: FilterInstance): number {
    let id = this.instanceIds.get(inst);
    if (id === undefined) this.instanceIds.set(inst, (id = ++this.instanceCount));
    return id;
  }

  /** A call into the filter, watched: `ctx` and `arg` (timer, packet count) name it if it never returns. */
  private guarded<T>(kind: CallKind, ctx: number, arg: number, fn: () => T): T {
    this.watchdog.enter(kind, ctx, arg);
    try {
      return fn();
    } finally {
      this.watchdog.leave();
    }
  }

  /** The wall clock the filter sees (HarnessOptions.wallClockUs). */
  private wallUs(): number {
    return this.options.wallClockUs?.() ?? Date.now() * 1000;
  }

  /** The harness clock (what now_us returns), microseconds. */
  get nowUs(): number {
    return this.clockUs;
  }

  /**
   * Creates a context with this config and returns its id. Throws FilterConfigError with the
   * filter's message. `segment.legs`: the segment's leg count the host tells the filter (ABI 1.7,
   * the SDK's segmentLegs(); 1 .. 8); without it, 0, as a host before 1.7.
   * `segment.translatedDestinations`: a destination of the segment has its own `ssrc` or
   * `payloadType` (ABI 1.9, SegmentFlag.TranslatedDestinations in the SDK's segmentFlags()).
   */
  createContext(config: unknown = {}, segment: { readonly legs?: number; readonly translatedDestinations?: boolean } = {}): number {
    expectKnownKeys(segment, ["legs", "translatedDestinations"], "createContext: unknown key", "the segment takes");
    const ctx = this.nextContext++;
    const legs = segment.legs ?? 0;
    const flags = segment.translatedDestinations ? SegmentFlag.TranslatedDestinations : 0;
    this.current.setClock(this.clockUs, this.wallUs());
    this.guarded(CallKind.CreateContext, ctx, 0, () => this.current.createContext(ctx, config, legs, flags));
    this.configs.set(ctx, config);
    this.legs.set(ctx, legs);
    this.segmentFlags.set(ctx, flags);
    return ctx;
  }

  /**
   * How the filter refuses a context config: its status and message. Throws if the config is
   * accepted (a config test expects a refusal) or the filter fails otherwise.
   */
  refusal(config: unknown, segment: { readonly legs?: number; readonly translatedDestinations?: boolean } = {}): { status: number; reason: string } {
    try {
      this.createContext(config, segment);
    } catch (err) {
      if (err instanceof FilterConfigError) return { status: err.status, reason: err.reason };
      throw err;
    }
    throw new Error(`config ${JSON.stringify(config)} was accepted`);
  }

  /**
   * The segment is going away (msm_context_drain): called as the proxy does, again while the
   * filter emits (at most 64 times); returns what it handed over. Follow with destroyContext.
   */
  drainContext(ctx: number): OutputPacket[] {
    this.expectContext(ctx, "drainContext");
    const all: OutputPacket[] = [];
    for (let call = 0; call < 64; call++) {
      this.current.setClock(this.clockUs, this.wallUs());
      const n = this.guarded(CallKind.DrainContext, ctx, 0, () => this.current.drainContext(ctx));
      if (n === 0) break;
      all.push(...this.readOutputs(n, "drainContext", () => ctx));
    }
    return all;
  }

  destroyContext(ctx: number): void {
    this.expectContext(ctx, "destroyContext");
    this.destroyIn(this.current, ctx);
    this.configs.delete(ctx);
    this.legs.delete(ctx);
    this.segmentFlags.delete(ctx);
  }

  private destroyIn(inst: FilterInstance, ctx: number): void {
    this.guarded(CallKind.DestroyContext, ctx, 0, () => inst.destroyContext(ctx));
    for (const [key, t] of this.pending) if (t.instance === inst && t.ctx === ctx) this.pending.delete(key);
  }

  /** Runs one batch (at most the filter's batch capacity). Throws FilterFailure if the filter traps. */
  runBatch(packets: readonly HarnessPacket[]): BatchResult {
    const inst = this.current;
    if (packets.length > inst.arena.batchCapacity) {
      throw new RangeError(`batch of ${packets.length} exceeds the filter's capacity of ${inst.arena.batchCapacity}`);
    }
    packets.forEach((p, k) => {
      expectPacket(p, k);
      this.expectContext(p.ctx, `packet ${k}`);
      if (p.bytes.length > inst.packetRoom) throw new RangeError(`packet ${k} of ${p.bytes.length} bytes exceeds the slot room of ${inst.packetRoom}`);
      inst.putBatchPacket(k, p.bytes, 0, p.bytes.length, p.ctx, p.flags ?? 0, p.sourcePort ?? 0, p.leg ?? 0, p.arrivalUs ?? this.clockUs);
    });
    inst.setClock(this.clockUs, this.wallUs());
    const outCount = this.guarded(CallKind.OnPacket, packets[0]?.ctx ?? 0, packets.length, () => inst.runBatch(packets.length));
    const results = packets.map((p, k): PacketResult => {
      const outcome = inst.judgeBatch(k); // as the proxy: logs a broken descriptor
      const offset = inst.batchOffset(k);
      const bytes = offset < 0 ? new Uint8Array(0) : inst.bytes.slice(offset, offset + inst.batchLength(k));
      const leg = inst.batchLeg(k);
      if (outcome === PASSED) return { verdict: "pass", reason: 0, reasonName: "", discard: false, problem: "", bytes, leg };
      if (outcome === HELD) return { verdict: "hold", reason: 0, reasonName: "", discard: false, problem: "", bytes, leg };
      const problem = batchProblem(inst, k);
      if (problem !== "") this.hostDrops.push({ call: "onPacket", kind: "packet", index: k, ctx: p.ctx, reason: outcome, reasonName: dropReasonName(outcome), problem });
      const label = reasonLabel(inst, outcome);
      return { verdict: "drop", reason: outcome, reasonName: label.name, discard: label.discard, problem, bytes, leg };
    });
    // the proxy runs one context per batch and takes outputs of that context; here a batch may mix them
    const ctxs = new Set(packets.map((p) => p.ctx));
    const first = packets[0]?.ctx ?? 0;
    return { packets: results, outputs: this.readOutputs(outCount, "onPacket", (j) => (ctxs.has(inst.outputContext(j)) ? inst.outputContext(j) : first)) };
  }

  /** Runs a single packet and returns its result. */
  run(packet: HarnessPacket): PacketResult {
    return this.runBatch([packet]).packets[0]!;
  }

  /** Moves the clock forward, firing due timers in order; returns what they output. */
  advanceTime(us: number): OutputPacket[] {
    expectDuration(us, "advanceTime");
    const target = this.clockUs + us;
    const outputs: OutputPacket[] = [];
    for (;;) {
      let next: [string, PendingTimer] | undefined;
      for (const entry of this.pending) if (entry[1].dueUs <= target && (!next || entry[1].dueUs < next[1].dueUs)) next = entry;
      if (!next) break;
      this.pending.delete(next[0]);
      this.clockUs = Math.max(this.clockUs, next[1].dueUs);
      const { ctx, timer } = next[1];
      const fires = this.budget(ctx).timerFires;
      if (!fires.take(this.clockUs)) {
        // over its budget of firings: it fires once the budget allows, as in the proxy
        this.timersDeferred++;
        this.pending.set(next[0], { ...next[1], dueUs: this.clockUs + fires.waitUs(this.clockUs) });
        continue;
      }
      this.current.setClock(this.clockUs, this.wallUs());
      outputs.push(...this.readOutputs(this.guarded(CallKind.OnTimer, ctx, timer, () => this.current.onTimer(ctx, timer)), "onTimer", () => ctx));
    }
    this.clockUs = target;
    return outputs;
  }

  /**
   * The host stalls for `us` (a busy machine, a long pause): the clock moves on and no timer fires.
   * Packets that arrived meanwhile carry their `arrivalUs`; the host hands them over before the
   * timers that came due (runBatch, then advanceTime(0)), as the proxy does after a stall.
   */
  stall(us: number): void {
    expectDuration(us, "stall");
    this.clockUs += us;
  }

  /** Armed timers, soonest first. */
  timers(): { ctx: number; timer: number; dueUs: number }[] {
    return [...this.pending.values()].sort((a, b) => a.dueUs - b.dueUs).map((t) => ({ ctx: t.ctx, timer: t.timer, dueUs: t.dueUs }));
  }

  /**
   * A metric's value for a context: a number (counter, gauge), a histogram, or undefined for a
   * context that has none. A labelled metric needs `labelValue` (the u32 the filter gave, or
   * "other"); a label value it never used reads as 0 or an empty histogram. A name the filter did
   * not define throws a RangeError naming those it did: a misspelt name must fail the test, not
   * read as undefined that an assertion might expect.
   */
  metric(name: string, ctx: number, labelValue?: number | "other"): number | HistogramValue | undefined {
    const def = this.definedMetric(name);
    const values = this.current.metrics.forContext(ctx);
    if (!values) return undefined;
    const empty = (): HistogramValue => ({ buckets: [], count: 0, sum: 0 });
    if (def.label !== undefined) {
      if (labelValue === undefined) throw new TypeError(`metric '${name}' has the label '${def.label}': give its value`);
      const series = this.metricSeries(name, ctx)?.get(String(labelValue));
      return series ?? (def.kind === MetricKind.Histogram ? empty() : 0);
    }
    if (def.kind === MetricKind.Histogram) return values.histograms[def.id] ?? empty();
    return values.values[def.id];
  }

  /** A labelled metric's series for a context, in the order of first use ("other" last): label value -> value or histogram. */
  metricSeries(name: string, ctx: number): Map<string, number | HistogramValue> | undefined {
    const def = this.definedMetric(name);
    if (def.label === undefined) throw new TypeError(`metric '${name}' has no label: read it with h.metric(name, ctx)`);
    const m = this.current.metrics.snapshot(ctx).find((x) => x.name === name);
    if (!m?.series) return undefined;
    return new Map(m.series.map((s) => [s.labelValue, s.histogram ?? s.value!]));
  }

  /** Names of the metrics the filter defined. */
  metricNames(): string[] {
    return this.current.metrics.definitions.map((d) => d.name);
  }

  /** The filter's definition of the metric `name`; throws, naming the metrics it defined, for one it did not. */
  private definedMetric(name: string) {
    const def = this.current.metrics.definitions.find((d) => d.name === name);
    if (def) return def;
    const names = this.metricNames();
    throw new RangeError(`the filter defined no metric '${name}'; ${names.length === 0 ? "it defined none" : `it defined: ${names.join(", ")}`}`);
  }

  /** msm_state_export at the harness clock (as the proxy, which sets the clock first). */
  exportState(ctx: number): Uint8Array | undefined {
    this.expectContext(ctx, "exportState");
    return this.exportFrom(this.current, ctx);
  }

  /** Whether the filter asked for a checkpoint (`askForCheckpoint`, ABI 1.8) since the last look; a proxy would take one at once. */
  takeCheckpointWish(): boolean {
    const wish = this.checkpointWish;
    this.checkpointWish = false;
    return wish;
  }

  /**
   * msm_state_import at the harness clock. `origin`: a hot swap's blob (the default: exported by
   * an instance that has stopped), or a checkpoint's, as the proxy restores after a failure.
   */
  importState(ctx: number, blob: Uint8Array, origin: StateOrigin.Swap | StateOrigin.Checkpoint = StateOrigin.Swap): { ok: boolean; reason: string } {
    this.expectContext(ctx, "importState");
    return this.importInto(this.current, ctx, blob, origin);
  }

  private exportFrom(inst: FilterInstance, ctx: number): Uint8Array | undefined {
    inst.setClock(this.clockUs, this.wallUs());
    return this.guarded(CallKind.ExportState, ctx, 0, () => inst.exportState(ctx));
  }

  private importInto(inst: FilterInstance, ctx: number, blob: Uint8Array, origin: StateOrigin.Swap | StateOrigin.Checkpoint): { ok: boolean; reason: string } {
    inst.setClock(this.clockUs, this.wallUs()); // a filter may judge the blob's age
    return this.guarded(CallKind.ImportState, ctx, 0, () => inst.importState(ctx, blob, origin));
  }

  /**
   * A hot swap, as the proxy does it when a chain's filter or config changes: a new instance
   * (of `change.wasm`, or the same module) takes every context, with its new config; each
   * context's state is exported from the old instance and imported into the new one. A context
   * whose state does not move (nothing exported, refused, a failure) starts fresh, and the old
   * instance drains it. Counters and histograms go on; gauges are the new instance's to set.
   * Timers of the old instance are gone. The harness then drives the new instance.
   * Throws FilterConfigError if the new instance refuses a config: the old one stays, untouched.
   */
  async swap(change: SwapChange = {}): Promise<SwapResult> {
    expectKnownKeys(change, SWAP_KEYS, "swap: unknown key");
    const old = this.current;
    const module = change.wasm === undefined ? this.module : await this.compile(change.wasm, old.name);
    const rootConfig = "rootConfig" in change ? change.rootConfig : this.rootConfig;
    const next = await this.instantiate(module, rootConfig);
    const ctxs = [...this.configs.keys()];
    const configs = new Map(ctxs.map((ctx) => [ctx, newContextConfig(change, ctx, this.configs.get(ctx))]));
    // every new context first: a refused config leaves the old instance running, as in the proxy
    next.setClock(this.clockUs, this.wallUs());
    try {
      for (const ctx of ctxs) this.guarded(CallKind.CreateContext, ctx, 0, () => next.createContext(ctx, configs.get(ctx), this.legs.get(ctx) ?? 0, this.segmentFlags.get(ctx) ?? 0));
    } catch (err) {
      this.dropTimersOf(next);
      throw err;
    }

    const carried: number[] = [];
    const fresh: { ctx: number; reason: string }[] = [];
    for (const ctx of ctxs) {
      const reason = this.carry(old, next, ctx);
      if (reason === "") carried.push(ctx);
      else fresh.push({ ctx, reason });
    }
    // the old instance's way out, in the proxy's order; a failure on it does not undo the swap
    const drained: OutputPacket[] = [];
    this.whileAlive(old, () => {
      for (const { ctx } of fresh) drained.push(...this.drainContext(ctx)); // reads the old instance's outputs
    });
    for (const ctx of ctxs) next.metrics.carryFrom(old.metrics, ctx, ctx); // what the drain counted too; before destroy closes them
    this.whileAlive(old, () => {
      for (const ctx of ctxs) this.destroyIn(old, ctx);
    });
    this.dropTimersOf(old);
    old.close(); // its crypto keys, as the proxy frees a dropped instance's
    this.current = next;
    this.module = module;
    this.rootConfig = rootConfig;
    for (const [ctx, config] of configs) this.configs.set(ctx, config);
    return { carried, fresh, drained };
  }

  /**
   * A checkpoint, as the proxy takes one every `stateCheckpointMs`: each context's exported state
   * (contexts that export nothing are left out). Keep it for `restart`.
   */
  checkpoint(): Map<number, Uint8Array> {
    const out = new Map<number, Uint8Array>();
    for (const ctx of this.configs.keys()) {
      const blob = this.exportFrom(this.current, ctx);
      if (blob) out.set(ctx, blob);
    }
    return out;
  }

  /**
   * What the proxy does once an instance failed (a trap, a call the watchdog ended) or its worker was
   * restarted: a new instance of the same module and root config takes every context, created again
   * with its config, then imports its state from `checkpoint` (taken by `checkpoint()`) with
   * `StateOrigin.Checkpoint`. Works after a FilterFailure (the failed instance is dropped without a
   * drain or a destroy, as the proxy drops it). Counters and histograms go on; the old timers are
   * gone. Returns the contexts whose state was restored and those that start fresh, with why.
   */
  async restart(checkpoint: ReadonlyMap<number, Uint8Array> = new Map()): Promise<{ carried: number[]; fresh: { ctx: number; reason: string }[] }> {
    if (!(checkpoint instanceof Map)) throw new TypeError("restart: takes the Map that checkpoint() returned");
    for (const ctx of checkpoint.keys()) this.expectContext(ctx, "restart: the checkpoint's");
    const old = this.current;
    const next = await this.instantiate(this.module, this.rootConfig);
    const ctxs = [...this.configs.keys()];
    next.setClock(this.clockUs, this.wallUs());
    for (const ctx of ctxs) this.guarded(CallKind.CreateContext, ctx, 0, () => next.createContext(ctx, this.configs.get(ctx), this.legs.get(ctx) ?? 0, this.segmentFlags.get(ctx) ?? 0));
    for (const ctx of ctxs) next.metrics.carryFrom(old.metrics, ctx, ctx);
    this.dropTimersOf(old);
    old.close();
    this.current = next; // from here on the new instance serves: a trap in an import is its failure, as in the proxy
    const carried: number[] = [];
    const fresh: { ctx: number; reason: string }[] = [];
    for (const ctx of ctxs) {
      const blob = checkpoint.get(ctx);
      if (!blob) {
        fresh.push({ ctx, reason: "no checkpoint of it" });
        continue;
      }
      const result = this.importInto(next, ctx, blob, StateOrigin.Checkpoint);
      if (result.ok) carried.push(ctx);
      else fresh.push({ ctx, reason: `state not carried over: ${result.reason}` });
    }
    return { carried, fresh };
  }

  /** Runs `fn` unless `inst` has failed; a FilterFailure in it ends it quietly. */
  private whileAlive(inst: FilterInstance, fn: () => void): void {
    if (inst.failure) return;
    try {
      fn();
    } catch (err) {
      if (!(err instanceof FilterFailure)) throw err;
    }
  }

    private dropTimersOf(inst: FilterInstance): void {
    for (const [key, t] of this.pending) if (t.instance === inst) this.pending.delete(key);
  }

  /** Moves one context's state; "" when it moved, else why not. */
  private carry(from: FilterInstance, to: FilterInstance, ctx: number): string {
    let blob: Uint8Array | undefined;
    try {
      blob = this.exportFrom(from, ctx);
    } catch (err) {
      if (err instanceof FilterFailure) return `state transfer failed: ${err.message}`;
      throw err;
    }
    if (!blob) return "the old instance exported no state";
    try {
      const result = this.importInto(to, ctx, blob, StateOrigin.Swap);
      return result.ok ? "" : `state not carried over: ${result.reason}`;
    } catch (err) {
      if (err instanceof FilterFailure) return `state transfer failed: ${err.message}`;
      throw err;
    }
  }

  /** The filter's memory now, in bytes (WebAssembly memory only grows, by 64 KiB pages). */
  get memoryBytes(): number {
    return this.current.memoryBytes;
  }

  /**
   * Runs `round` (which drives the filter: packets, contexts, swaps...) `warmupRounds` times, then
   * `rounds` times, and throws if memory grew by more than `allowBytes` over the measured rounds:
   * a leak. Returns the memory after the warm-up and the growth.
   */
  async expectNoMemoryGrowth(round: (i: number) => void | Promise<void>, options: MemoryGrowthOptions = {}): Promise<{ settledBytes: number; grownBytes: number }> {
    expectKnownKeys(options, GROWTH_OPTIONS, "expectNoMemoryGrowth: unknown option");
    const rounds = options.rounds ?? 1000;
    const warmup = options.warmupRounds ?? Math.max(1, Math.floor(rounds / 10));
    const allow = options.allowBytes ?? 65_536;
    if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`rounds must be an integer >= 1, got ${rounds}`);
    for (let i = 0; i < warmup; i++) await round(i);
    const settledBytes = this.memoryBytes;
    for (let i = 0; i < rounds; i++) await round(warmup + i);
    const grownBytes = this.memoryBytes - settledBytes;
    if (grownBytes > allow) {
      throw new Error(
        `filter '${this.current.name}': memory grew by ${grownBytes} bytes over ${rounds} rounds (from ${settledBytes} to ${this.memoryBytes}, ` +
          `after ${warmup} warm-up rounds; allowed ${allow}): a leak? Something allocated per round is still referenced (docs/sdk.md "Per-context state and memory")`,
      );
    }
    return { settledBytes, grownBytes };
  }

  /** A context's budgets, made as a proxy's stage makes them (runtime/chain/filter-pool.ts); generated: only when limits give one. */
  private budget(ctx: number): { generated: TokenBucket | null; timerFires: TokenBucket } {
    let b = this.budgets.get(ctx);
    if (!b) {
      const made = stageBudgets({ ...DEFAULT_STAGE_LIMITS, ...this.options.limits });
      b = { generated: this.options.limits?.generatedPerSecond === undefined ? null : made.generated, timerFires: made.timerFires };
      this.budgets.set(ctx, b);
    }
    return b;
  }

  /**
   * The output packets of a call that the host takes, judged as the proxy judges them: `ctxOf(j)`
   * is the context output j must name. Those refused go to hostDrops (and the log).
   */
  private readOutputs(count: number, call: string, ctxOf: (j: number) => number): OutputPacket[] {
    const inst = this.current;
    const out: OutputPacket[] = [];
    for (let j = 0; j < count; j++) {
      const ctx = ctxOf(j);
      if (!inst.acceptOutput(j, ctx)) {
        const reason = DropReason.HostBadDescriptor;
        this.hostDrops.push({ call, kind: "output", index: j, ctx, reason, reasonName: dropReasonName(reason), problem: outputProblem(inst, j, ctx) });
        continue;
      }
      const generated = this.budget(ctx).generated;
      if (generated && !generated.take(this.clockUs)) {
        const reason = DropReason.HostBudgetExceeded;
        const problem = `over the context's budget of generated packets (limits.generatedPerSecond ${generated.perSecond}, a burst of ${generated.burst})`;
        this.hostDrops.push({ call, kind: "output", index: j, ctx, reason, reasonName: dropReasonName(reason), problem });
        continue;
      }
      const offset = inst.outputOffset(j);
      out.push({
        ctx: inst.outputContext(j),
        bytes: inst.bytes.slice(offset, offset + inst.outputLength(j)),
        flags: inst.outputFlags(j),
        dest: inst.outputDest(j),
        leg: inst.outputLeg(j),
      });
    }
    return out;
  }
}

/** The harness clock only moves forward, by a finite number of microseconds. */
/**
 * Throws a TypeError for a key of `given` that is not in `known`: a test in plain JavaScript (the
 * scaffold writes .mjs tests) has no type check, and a misspelt key would be ignored.
 */
function expectKnownKeys(given: object | undefined, known: readonly string[], what: string, takes = "it takes"): void {
  if (given === undefined || given === null) return;
  for (const key of Object.keys(given)) {
    if (!known.includes(key)) throw new TypeError(`${what} '${key}'; ${takes} ${known.join(", ")}`);
  }
}

const LOAD_OPTIONS = ["name", "rootConfig", "sha256", "maxMemoryPages", "startUs", "timeoutMs", "hostCrypto", "limits", "wallClockUs"] as const satisfies readonly (keyof HarnessOptions)[];
const PACKET_KEYS = ["ctx", "bytes", "flags", "arrivalUs", "sourcePort", "leg"] as const satisfies readonly (keyof HarnessPacket)[];
const SWAP_KEYS = ["wasm", "rootConfig", "contextConfig", "contextConfigFor"] as const satisfies readonly (keyof SwapChange)[];
const GROWTH_OPTIONS = ["rounds", "warmupRounds", "allowBytes"] as const satisfies readonly (keyof MemoryGrowthOptions)[];

function expectPacket(p: HarnessPacket, k: number): void {
  expectKnownKeys(p, PACKET_KEYS, `packet ${k}: unknown key`, "a packet takes");
  if (!(p.bytes instanceof Uint8Array)) {
    const got = p.bytes === undefined || p.bytes === null ? String(p.bytes) : Array.isArray(p.bytes) ? "an Array" : `a ${(p.bytes as object).constructor?.name ?? typeof p.bytes}`;
    throw new TypeError(`packet ${k}: bytes must be a Uint8Array (a Buffer is one), got ${got}`);
  }
}

function expectDuration(us: number, what: string): void {
  if (!(Number.isFinite(us) && us >= 0)) throw new RangeError(`${what}: takes microseconds >= 0, got ${us}`);
}

function newContextConfig(change: SwapChange, ctx: number, old: unknown): unknown {
  if (change.contextConfigFor) return change.contextConfigFor(ctx, old);
  return "contextConfig" in change ? change.contextConfig : old;
}

export { FilterLoadError, FilterConfigError, FilterFailure, hostCryptoUnavailable } from "./runtime.js";
export { DEFAULT_CALL_TIMEOUT_MS } from "./watchdog.js";
export * from "../../runtime/abi.js";
export * from "./packets.js";
