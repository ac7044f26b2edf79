// One instance of a filter module: its contexts, its lifecycle calls and what it reports (log,
// errors, metrics). Every call into the module goes through here, so that a trap becomes a
// FilterFailure and the instance is never called again. Its memory and arena views are
// ArenaViews', its imports host-imports', its log budget LogLimiter's.
import { AH_CHECKPOINT_WANTED, AH_CONTEXT_LEGS, AH_CONTEXT_SEGMENT_FLAGS, FilterPolicy, HOST_FEATURES_V1, HostFeature, LogLevel, MAX_LEGS, MAX_TIMERS_PER_CONTEXT, ROOT_CONTEXT, StateOrigin, Status } from "../abi.js";
import { checkArena } from "./arena-check.js";
import { parseDropReasons, UNNAMED_REASONS, type OwnReason } from "./drop-reasons.js";
import { ArenaViews } from "./arena-views.js";
import { explainTrap, FilterConfigError, FilterFailure, FilterLoadError, noReason } from "./errors.js";
import { createCryptoKeyTable, type CryptoKeyTable } from "./host-crypto.js";
import { hostImports, type ImportTarget } from "./host-imports.js";
import { checkRequiredFeatures, instantiate, type ModuleExports } from "./instantiate.js";
import { acceptOutput, batchProblem, isHostVerdict, judgeBatch, outputProblem } from "./judge.js";
import { LogLimiter } from "./log-limiter.js";
import { FilterMetrics } from "./metrics.js";
import type { LoadedFilterModule } from "./module-loader.js";

/** What an instance needs from the thread that hosts it. */
export interface FilterHostServices {
  /** `ctx`: the context a host line about a dropped packet concerns (a proxy names its segment). */
  log(filter: string, level: LogLevel, message: string, ctx?: number): void;
  /** Arms (or moves) timer `timer` of context `ctx`; when it fires, call instance.onTimer. */
  timerSet(instance: FilterInstance, ctx: number, timer: number, delayUs: number): void;
  timerCancel(instance: FilterInstance, ctx: number, timer: number): void;
  /** The instance failed (in any call); it is never called again. The one path to failure handling. */
  failed?(instance: FilterInstance, failure: FilterFailure): void;
  /** false: the crypto calls (ABI 1.4) are not offered, as on a host without native crypto (tests of a filter's fallback). */
  readonly hostCrypto?: boolean;
  /**
   * true (the SDK harness): a malformed drop-reason table refuses the module. Otherwise (a
   * proxy) its codes keep their filter_<code> labels and the reason is logged: a metric label is not
   * worth taking media down, least of all at an upgrade whose host knows a name the filter took.
   */
  readonly strictDropReasons?: boolean;
  /** The module asked for a checkpoint of its contexts soon (ABI 1.8: its header's checkpoint_wanted, read after each call that may set it). */
  checkpointWanted?(instance: FilterInstance): void;
}

const utf8Encoder = new TextEncoder();

/** The SDK's name for each export, for messages a filter author reads. */
const SDK_NAMES: Readonly<Record<string, string>> = {
  msm_context_create: "createContext", msm_context_destroy: "destroyContext", msm_on_batch: "onPacket/onBatch",
  msm_on_timer: "onTimer", msm_context_drain: "drainContext", msm_state_export: "exportState", msm_state_import: "importState",
};
/** Distinct late metric names logged per instance: a filter defining a new name per packet logs no more. */
const MAX_LATE_METRICS_LOGGED = 16;
/** Lines a second about packets the host dropped for a broken descriptor or a forged reason (a counter says how many). */
const BAD_PACKET_LINES_PER_SECOND = 10;

/** Thrown from env.abort so that the module's stack unwinds; caught by call(). */
class FilterAbort extends Error {}
/** Frames an abort's stack keeps: the library's and the SDK's frames above the author's must not crowd them out. */
const ABORT_STACK_FRAMES = 32;

export class FilterInstance extends ArenaViews {
  readonly name: string;
  readonly digest: string;
  readonly metrics = new FilterMetrics();
  readonly contexts = new Set<number>();
  /** Clock the module sees, frozen per call (set by the caller through setClock). */
  nowUs = 0;
  wallUs = 0;
  /** What the blob of the msm_state_import under way is (state_origin). */
  private stateOrigin = StateOrigin.None;
  /** Set once the instance failed; it is never called again. */
  failure: FilterFailure | undefined;
  /** The filter declared (msm_policy) that its packets must never pass without it. */
  mustFailClosed = false;
  /** Its own codes 256-319, index code - 256: the names and classes msm_drop_reasons gave (ABI 1.6), else filter_<code> drops. */
  ownReasons: readonly OwnReason[] = UNNAMED_REASONS;

  private exports!: ModuleExports;
  private errorMessage = "";
  private abortMessage = "";
  private metricsOpen = true;
  /** The export being called: where a late metric definition happened. */
  private during = "";
  /** Why the context being created is refused: it defined a metric (see defineMetric). */
  private lateMetric = "";
  private readonly lateMetricsLogged = new Set<string>();
  private readonly logs: LogLimiter;
  /** The host's own lines about this filter's broken descriptors, on a budget of their own. */
  private readonly badPacketLines: LogLimiter;
  /** Native keys the module made (ABI 1.4 crypto calls), wiped and freed by close(). */
  private readonly cryptoKeys: CryptoKeyTable | null;

  private constructor(readonly source: LoadedFilterModule, private readonly services: FilterHostServices) {
    super(source.memoryMinimumPages, source.memoryMaximumPages, source.abiMinor);
    this.name = source.name;
    this.digest = source.digest;
    this.logs = new LogLimiter((level, message) => services.log(this.name, level, message));
    this.badPacketLines = new LogLimiter((level, message) => services.log(this.name, level, message), BAD_PACKET_LINES_PER_SECOND, "lines about dropped packets");
    this.cryptoKeys = services.hostCrypto === false ? null : createCryptoKeyTable();
  }

  /** The HostFeature bits this instance is offered (features()). */
  get features(): number {
    return this.cryptoKeys ? HOST_FEATURES_V1 : HOST_FEATURES_V1 & ~HostFeature.Crypto;
  }

  /** Crypto keys the module holds in the host (ABI 1.4). */
  get cryptoKeyCount(): number {
    return this.cryptoKeys?.size ?? 0;
  }

  /** Frees what the instance holds outside its memory (its crypto keys). It is not called again. */
  close(): void {
    this.cryptoKeys?.close();
  }

  /** Instantiates, initializes and configures the root context. Throws FilterLoadError / FilterConfigError. */
  /**
   * Instantiates the module and runs its start (_initialize, msm_configure_root). `watch` is told
   * when those calls begin and end, for a watchdog (they may loop for ever like any other call).
   */
  static async create(source: LoadedFilterModule, rootConfig: unknown, services: FilterHostServices, watch?: { enter(): void; leave(): void }): Promise<FilterInstance> {
    const self = new FilterInstance(source, services);
    self.exports = await instantiate(source, hostImports(self.importTarget()));
    watch?.enter();
    try {
      self.call("_initialize", () => self.exports._initialize?.());
      checkRequiredFeatures(source.name, self.call("msm_required_features", () => self.exports.msm_required_features?.() ?? 0), self.features);
      const policy = self.call("msm_policy", () => self.exports.msm_policy?.() ?? 0);
      self.mustFailClosed = (policy & FilterPolicy.MustFailClosed) !== 0;
      self.arena = checkArena(self.view, self.call("msm_arena", () => self.exports.msm_arena()), (why) => new FilterLoadError(source.name, why));
      const len = self.writeScratchJson(rootConfig, "root config");
      const status = self.call("msm_configure_root", () => self.exports.msm_configure_root(len));
      if (status !== Status.Ok) throw new FilterConfigError(source.name, status, self.takeError(), "root config");
      if (self.exports.msm_drop_reasons) self.ownReasons = self.readDropReasons(self.call("msm_drop_reasons", () => self.exports.msm_drop_reasons!()));
    } catch (err) {
      if (err instanceof FilterFailure) throw new FilterLoadError(source.name, err.detail, { cause: err });
      throw err;
    } finally {
      watch?.leave();
      self.metricsOpen = false;
    }
    return self;
  }

  /** The table msm_drop_reasons wrote into scratch (`len` bytes, or a negative Status); see strictDropReasons for a bad one. */
  private readDropReasons(len: number): readonly OwnReason[] {
    try {
      if (len < 0) throw new Error(`msm_drop_reasons failed: ${this.takeError() || noReason(-len)}`);
      if (len > this.arena.scratchSize) throw new Error(`msm_drop_reasons returned ${len} bytes, more than the scratch area (${this.arena.scratchSize})`);
      if (len === 0) return UNNAMED_REASONS;
      return parseDropReasons(new TextDecoder("utf-8", { fatal: false }).decode(this.bytes.subarray(this.arena.scratch, this.arena.scratch + len)));
    } catch (err) {
      const why = `${(err as Error).message} (docs/abi.md "Naming your own reasons")`;
      if (this.services.strictDropReasons) throw new FilterLoadError(this.name, why);
      this.services.log(this.name, LogLevel.Warn, `its own drop reasons are shown as filter_<code>: ${why}`);
      return UNNAMED_REASONS;
    }
  }

  /** Sets the clock the module sees during the next calls. */
  setClock(nowUs: number, wallUs: number): void {
    this.nowUs = nowUs;
    this.wallUs = wallUs;
  }

  /**
   * Creates context `ctx` with its stage's config. `legs`: the segment's leg count (1 ..
   * MAX_LEGS), told the filter in the arena header's context_legs (ABI 1.7) for this call only, so
   * that a config naming a leg the segment lacks is refused; 0 says nothing (a filter checks nothing).
   * `segmentFlags`: SegmentFlag bits of the segment, in the header's context_segment_flags (ABI 1.9)
   * for this call only, so that a stage the segment's translation would break can refuse.
   */
  createContext(ctx: number, config: unknown, legs = 0, segmentFlags = 0): void {
    if (ctx === ROOT_CONTEXT || this.contexts.has(ctx)) throw new RangeError(`context ${ctx} is taken`);
    if (!(Number.isInteger(legs) && legs >= 0 && legs <= MAX_LEGS)) throw new RangeError(`legs ${legs} not in 0..${MAX_LEGS}`);
    const len = this.writeScratchJson(config);
    this.metrics.openContext(ctx);
    this.contexts.add(ctx); // before the call: the module may arm timers while it creates the context
    this.lateMetric = "";
    let status: number;
    this.view.setUint32(this.arena.header + AH_CONTEXT_LEGS, legs, true);
    this.view.setUint32(this.arena.header + AH_CONTEXT_SEGMENT_FLAGS, segmentFlags >>> 0, true);
    try {
      status = this.call("msm_context_create", () => this.exports.msm_context_create(ctx, len));
    } catch (err) {
      this.contexts.delete(ctx);
      throw err;
    } finally {
      if (!this.failure) {
        this.view.setUint32(this.arena.header + AH_CONTEXT_LEGS, 0, true);
        this.view.setUint32(this.arena.header + AH_CONTEXT_SEGMENT_FLAGS, 0, true);
      }
    }
    if (status === Status.Ok && this.lateMetric !== "") {
      // refused where the author looks (the apply's answer), instead of a metric that never shows
      const why = this.lateMetric;
      this.destroyContext(ctx);
      throw new FilterConfigError(this.name, Status.NotAllowed, why);
    }
    if (status !== Status.Ok) {
      this.contexts.delete(ctx);
      for (let t = 0; t < MAX_TIMERS_PER_CONTEXT; t++) this.services.timerCancel(this, ctx, t);
      this.metrics.closeContext(ctx);
      throw new FilterConfigError(this.name, status, this.takeError());
    }
  }

  destroyContext(ctx: number): void {
    if (!this.contexts.delete(ctx)) return;
    for (let t = 0; t < MAX_TIMERS_PER_CONTEXT; t++) this.services.timerCancel(this, ctx, t);
    this.metrics.closeContext(ctx);
    if (!this.failure) this.call("msm_context_destroy", () => this.exports.msm_context_destroy(ctx));
  }

  /** Runs msm_on_batch over descriptors [0, count). Returns the number of output packets. */
  runBatch(count: number): number {
    if (this.failure) throw this.failure;
    this.during = "msm_on_batch";
    let out: number;
    try {
      out = this.exports.msm_on_batch(count);
    } catch (err) {
      throw this.fail("msm_on_batch", err);
    }
    this.refreshViews();
    this.noteCheckpointWish();
    return this.checkOutputCount("msm_on_batch", out);
  }

  onTimer(ctx: number, timer: number): number {
    if (this.failure) throw this.failure;
    const fn = this.exports.msm_on_timer;
    if (!fn) throw this.fail("msm_on_timer", new Error("timer fired but the module has no msm_on_timer export"));
    this.during = "msm_on_timer";
    let out: number;
    try {
      out = fn(ctx, timer);
    } catch (err) {
      throw this.fail("msm_on_timer", err);
    }
    this.refreshViews();
    this.noteCheckpointWish();
    return this.checkOutputCount("msm_on_timer", out);
  }

  /** Whether the module hands over what it holds when a context goes (msm_context_drain, ABI 1.1). */
  get drains(): boolean {
    return this.exports.msm_context_drain !== undefined;
  }

  /** The context is going away: the module writes what it holds into the output area. Returns the output count. */
  drainContext(ctx: number): number {
    const fn = this.exports.msm_context_drain;
    if (!fn || !this.contexts.has(ctx)) return 0;
    return this.checkOutputCount("msm_context_drain", this.call("msm_context_drain", () => fn(ctx)));
  }

  /** Returns a copy of the context's state blob, or undefined when there is none. */
  exportState(ctx: number): Uint8Array | undefined {
    const len = this.call("msm_state_export", () => this.exports.msm_state_export(ctx));
    this.noteCheckpointWish();
    if (len <= 0) return undefined;
    if (len > this.arena.scratchSize) throw this.fail("msm_state_export", new Error(`state of ${len} bytes overruns the scratch area`));
    return this.bytes.slice(this.arena.scratch, this.arena.scratch + len);
  }

  /**
   * Returns false when the module refused the blob (BadState); the context then starts fresh.
   * `origin`: a hot swap's blob, or a checkpoint's (the module asks through state_origin).
   */
  importState(ctx: number, blob: Uint8Array, origin: StateOrigin.Swap | StateOrigin.Checkpoint): { ok: boolean; reason: string } {
    if (blob.length > this.arena.scratchSize) return { ok: false, reason: "state blob larger than the scratch area" };
    this.bytes.set(blob, this.arena.scratch);
    this.stateOrigin = origin;
    let status: number;
    try {
      status = this.call("msm_state_import", () => this.exports.msm_state_import(ctx, blob.length));
    } finally {
      this.stateOrigin = StateOrigin.None;
    }
    this.noteCheckpointWish();
    return status === Status.Ok ? { ok: true, reason: "" } : { ok: false, reason: this.takeError() || noReason(status) };
  }

  /**
   * Ends the log window once a second has passed since it began, reporting what it suppressed.
   * Called by the host once a second (a burst followed by silence still gets its report).
   */
  endLogWindow(now = Date.now()): void {
    this.logs.endWindow(now);
    this.badPacketLines.endWindow(now);
  }

  /**
   * Batch packet k after runBatch, judged as the host does (judge.ts): PASSED, HELD, or the
   * DropReason it counts. A broken descriptor or a forged reason is logged, rate-limited, naming
   * what was wrong. Allocates nothing unless it logs.
   */
  judgeBatch(k: number): number {
    const outcome = judgeBatch(this, k);
    if (isHostVerdict(outcome) && this.badPacketLines.admit()) this.services.log(this.name, LogLevel.Warn, batchProblem(this, k), this.batchContext(k));
    return outcome;
  }

  /**
   * Whether the host takes output j of a call made for context `ctx` (judge.ts); one it refuses
   * (counted as HostBadDescriptor) is logged, rate-limited, naming what was wrong.
   */
  acceptOutput(j: number, ctx: number): boolean {
    if (acceptOutput(this, j, ctx)) return true;
    if (this.badPacketLines.admit()) this.services.log(this.name, LogLevel.Warn, outputProblem(this, j, ctx), ctx);
    return false;
  }

  // ---- internals ----

  /** After a call that may have set the header's checkpoint_wanted (ABI 1.8): passes the wish on once and clears it. */
  private noteCheckpointWish(): void {
    if (this.failure) return;
    const at = this.arena.header + AH_CHECKPOINT_WANTED;
    if (this.view.getUint32(at, true) === 0) return;
    this.view.setUint32(at, 0, true);
    this.services.checkpointWanted?.(this);
  }

  private call<T>(what: string, fn: () => T): T {
    if (this.failure) throw this.failure;
    this.during = what;
    try {
      const result = fn();
      this.refreshViews();
      return result;
    } catch (err) {
      if (err instanceof FilterConfigError || err instanceof FilterLoadError) throw err;
      throw this.fail(what, err);
    }
  }

  private fail(during: string, err: unknown): FilterFailure {
    if (this.failure) return this.failure;
    const reason = this.abortMessage
      || explainTrap(err instanceof Error ? err.message : String(err), this.memory.buffer.byteLength, this.source.memoryMaximumPages);
    this.failure = new FilterFailure(this.name, during, reason, { cause: err });
    this.close();
    this.services.failed?.(this, this.failure);
    return this.failure;
  }

  private checkOutputCount(during: string, out: number): number {
    if (out < 0 || out > this.arena.outCapacity) {
      throw this.fail(during, new Error(`returned ${out} output packets (capacity ${this.arena.outCapacity})`));
    }
    return out;
  }

  private writeScratchJson(config: unknown, what: "config" | "root config" = "config"): number {
    const text = JSON.stringify(config ?? {});
    const encoded = utf8Encoder.encode(text);
    if (encoded.length > this.arena.scratchSize) {
      throw new FilterConfigError(this.name, Status.BadConfig, `config of ${encoded.length} bytes exceeds the filter's scratch area (${this.arena.scratchSize} bytes)${largestKeyText(config)}`, what);
    }
    this.bytes.set(encoded, this.arena.scratch);
    return encoded.length;
  }

  private takeError(): string {
    const message = this.errorMessage;
    this.errorMessage = "";
    return message;
  }

  /**
   * msm.metric_define(_labelled). Past configuration a metric cannot be made (-NotAllowed); so that
   * this is not silent, a context whose creation defined one is refused, and a definition
   * anywhere else is logged as an error, once per name.
   */
  private defineMetric(kind: number, name: string, label?: string): number {
    if (this.metricsOpen) {
      const id = this.metrics.define(kind, name, label);
      // a refused definition is otherwise silent: the filter runs, and the metric is never in /metrics
      if (id < 0 && this.lateMetricsLogged.size < MAX_LATE_METRICS_LOGGED && !this.lateMetricsLogged.has(name)) {
        this.lateMetricsLogged.add(name);
        this.logs.line(LogLevel.Error, `metric '${name}' was not defined (${Status[-id] ?? -id}): ${this.metrics.lastRefusal}; its updates are lost`);
      }
      return id;
    }
    const where = SDK_NAMES[this.during] ? `${SDK_NAMES[this.during]} (${this.during})` : this.during;
    const why = `metric '${name}' is defined in ${where}, after the filter was configured, so it does not exist and`
      + " its updates are lost: define every metric in configureRoot (msm_configure_root) or at module start (_initialize),"
      + " and keep its id in a global";
    if (this.during === "msm_context_create") {
      if (this.lateMetric === "") this.lateMetric = why;
    } else if (this.lateMetricsLogged.size < MAX_LATE_METRICS_LOGGED && !this.lateMetricsLogged.has(name)) {
      this.lateMetricsLogged.add(name);
      this.logs.line(LogLevel.Error, why);
    }
    return -Status.NotAllowed;
  }

  private importTarget(): ImportTarget {
    const self = this;
    return {
      memory: this.memory,
      metrics: this.metrics,
      cryptoKeys: this.cryptoKeys,
      features: this.features,
      get nowUs() {
        return self.nowUs;
      },
      get wallUs() {
        return self.wallUs;
      },
      get stateOrigin() {
        return self.stateOrigin;
      },
      hasContext: (ctx) => this.contexts.has(ctx),
      log: (level, message) => this.logs.line(level, message),
      setError: (message) => {
        this.errorMessage = message;
      },
      abort: (message) => {
        this.abortMessage = message;
        const limit = Error.stackTraceLimit;
        Error.stackTraceLimit = Math.max(limit, ABORT_STACK_FRAMES);
        const error = new FilterAbort(message);
        Error.stackTraceLimit = limit;
        throw error;
      },
      defineMetric: (kind, name, label) => this.defineMetric(kind, name, label),
      timerSet: (ctx, timer, delayUs) => this.services.timerSet(this, ctx, timer, delayUs),
      timerCancel: (ctx, timer) => this.services.timerCancel(this, ctx, timer),
    };
  }
}

/** For a config too large to hand over: the key that takes most of it, so the message names a field. */
function largestKeyText(config: unknown): string {
  if (typeof config !== "object" || config === null || Array.isArray(config)) return "";
  let largest: [string, number] | undefined;
  for (const [key, value] of Object.entries(config)) {
    const size = JSON.stringify(value)?.length ?? 0;
    if (!largest || size > largest[1]) largest = [key, size];
  }
  return largest ? `; its largest key is '${largest[0]}' (${largest[1]} bytes)` : "";
}
