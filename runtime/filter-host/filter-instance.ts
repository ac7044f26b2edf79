// One instance of a filter module: its memory, its arena, its contexts, and the host imports it
// calls. Every call into the module goes through here, so that a trap becomes a FilterFailure and
// the instance is never called again.
import {
  D_ARRIVAL, D_CONTEXT, D_LEG, D_PORT, D_RESERVED, D_DEST, D_FLAGS, D_LENGTH, D_OFFSET, D_REASON, D_VERDICT, Verdict,
  DESC_SIZE, FilterPolicy, HOST_FEATURES_V1, HostFeature, LogLevel, MAX_TIMERS_PER_CONTEXT,
  ROOT_CONTEXT, Status,
} from "../abi.js";
import { randomFillSync } from "node:crypto";
import { checkArena, type ArenaLayout } from "./arena-check.js";
import { FilterConfigError, FilterFailure, FilterLoadError } from "./errors.js";
import { FilterMetrics } from "./metrics.js";
import type { LoadedFilterModule } from "./module-loader.js";

/** What an instance needs from the thread that hosts it. */
export interface FilterHostServices {
  log(filter: string, level: LogLevel, message: string): void;
  /** Arms (or moves) timer `timer` of context `ctx`; when it fires, call instance.onTimer. */
  timerSet(instance: FilterInstance, ctx: number, timer: number, delayUs: number): void;
  timerCancel(instance: FilterInstance, ctx: number, timer: number): void;
  /** The instance failed (in any call); it is never called again. The one path to failure handling. */
  failed?(instance: FilterInstance, failure: FilterFailure): void;
}


interface ModuleExports {
  _initialize?: () => void;
  msm_required_features?: () => number;
  msm_policy?: () => number;
  msm_arena: () => number;
  msm_configure_root: (len: number) => number;
  msm_context_create: (ctx: number, len: number) => number;
  msm_context_destroy: (ctx: number) => void;
  msm_on_batch: (count: number) => number;
  msm_on_timer?: (ctx: number, timer: number) => number;
  msm_context_drain?: (ctx: number) => number;
  msm_state_export: (ctx: number) => number;
  msm_state_import: (ctx: number, len: number) => number;
}

const TWO_32 = 4294967296;
const LOG_LINES_PER_SECOND = 100;
const MAX_LOG_BYTES = 1024;
const MAX_ERROR_BYTES = 1024;
const utf8 = new TextDecoder();
const utf8Encoder = new TextEncoder();

/** Text a filter wrote, with control characters shown as \xNN: a log line cannot forge others or drive a terminal. */
function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** Thrown from env.abort so that the module's stack unwinds; caught by call(). */
class FilterAbort extends Error {}

export class FilterInstance {
  readonly name: string;
  readonly digest: string;
  readonly memory: WebAssembly.Memory;
  readonly metrics = new FilterMetrics();
  readonly contexts = new Set<number>();
  arena!: ArenaLayout;
  /** Byte view of memory; refreshed when memory grows. Valid until the next call into the module. */
  bytes: Uint8Array;
  view: DataView;
  /** Clock the module sees, frozen per call (set by the caller through setClock). */
  nowUs = 0;
  wallUs = 0;
  /** Set once the instance failed; it is never called again. */
  failure: FilterFailure | undefined;
  /** The filter declared (msm_policy) that its packets must never pass without it. */
  mustFailClosed = false;

  private exports!: ModuleExports;
  private errorMessage = "";
  private abortMessage = "";
  private metricsOpen = true;
  private logWindowStart = 0;
  private logCount = 0;
  private logSuppressed = 0;

  private constructor(readonly source: LoadedFilterModule, private readonly services: FilterHostServices) {
    this.name = source.name;
    this.digest = source.digest;
    this.memory = new WebAssembly.Memory({ initial: source.memoryMinimumPages, maximum: source.memoryMaximumPages });
    this.bytes = new Uint8Array(this.memory.buffer);
    this.view = new DataView(this.memory.buffer);
  }

  /** Instantiates, initializes and configures the root context. Throws FilterLoadError / FilterConfigError. */
  static async create(source: LoadedFilterModule, rootConfig: unknown, services: FilterHostServices): Promise<FilterInstance> {
    const self = new FilterInstance(source, services);
    let instance: WebAssembly.Instance;
    try {
      instance = await WebAssembly.instantiate(source.module, self.imports());
    } catch (err) {
      throw new FilterLoadError(source.name, `instantiation failed: ${(err as Error).message}`);
    }
    self.exports = instance.exports as unknown as ModuleExports;
    self.checkExportArity(instance.exports);
    try {
      self.call("_initialize", () => self.exports._initialize?.());
      const required = self.call("msm_required_features", () => self.exports.msm_required_features?.() ?? 0);
      const missing = required & ~HOST_FEATURES_V1;
      if (missing !== 0) {
        const names = Object.entries(HostFeature).filter(([, bit]) => typeof bit === "number" && (missing & bit) !== 0).map(([n]) => n);
        throw new FilterLoadError(source.name, `requires host features the host lacks: ${names.join(", ") || `bits 0x${missing.toString(16)}`}`);
      }
      const policy = self.call("msm_policy", () => self.exports.msm_policy?.() ?? 0);
      self.mustFailClosed = (policy & FilterPolicy.MustFailClosed) !== 0;
      self.arena = checkArena(self.view, self.call("msm_arena", () => self.exports.msm_arena()), (why) => new FilterLoadError(source.name, why));
      const len = self.writeScratchJson(rootConfig);
      const status = self.call("msm_configure_root", () => self.exports.msm_configure_root(len));
      if (status !== Status.Ok) throw new FilterConfigError(source.name, status, self.takeError());
    } catch (err) {
      if (err instanceof FilterFailure) throw new FilterLoadError(source.name, err.message);
      throw err;
    } finally {
      self.metricsOpen = false;
    }
    return self;
  }

  /** Sets the clock the module sees during the next calls. */
  setClock(nowUs: number, wallUs: number): void {
    this.nowUs = nowUs;
    this.wallUs = wallUs;
  }

  createContext(ctx: number, config: unknown): void {
    if (ctx === ROOT_CONTEXT || this.contexts.has(ctx)) throw new RangeError(`context ${ctx} is taken`);
    const len = this.writeScratchJson(config);
    this.metrics.openContext(ctx);
    this.contexts.add(ctx); // before the call: the module may arm timers while it creates the context
    let status: number;
    try {
      status = this.call("msm_context_create", () => this.exports.msm_context_create(ctx, len));
    } catch (err) {
      this.contexts.delete(ctx);
      throw err;
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
    let out: number;
    try {
      out = this.exports.msm_on_batch(count);
    } catch (err) {
      throw this.fail("msm_on_batch", err);
    }
    this.refreshViews();
    return this.checkOutputCount("msm_on_batch", out);
  }

  onTimer(ctx: number, timer: number): number {
    if (this.failure) throw this.failure;
    const fn = this.exports.msm_on_timer;
    if (!fn) throw this.fail("msm_on_timer", new Error("timer fired but the module has no msm_on_timer export"));
    let out: number;
    try {
      out = fn(ctx, timer);
    } catch (err) {
      throw this.fail("msm_on_timer", err);
    }
    this.refreshViews();
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
    if (len <= 0) return undefined;
    if (len > this.arena.scratchSize) throw this.fail("msm_state_export", new Error(`state of ${len} bytes overruns the scratch area`));
    return this.bytes.slice(this.arena.scratch, this.arena.scratch + len);
  }

  /** Returns false when the module refused the blob (BadState); the context then starts fresh. */
  importState(ctx: number, blob: Uint8Array): { ok: boolean; reason: string } {
    if (blob.length > this.arena.scratchSize) return { ok: false, reason: "state blob larger than the scratch area" };
    this.bytes.set(blob, this.arena.scratch);
    const status = this.call("msm_state_import", () => this.exports.msm_state_import(ctx, blob.length));
    return status === Status.Ok ? { ok: true, reason: "" } : { ok: false, reason: this.takeError() || `status ${status}` };
  }

  // ---- descriptor access (docs/abi.md "Descriptor"), shared by the chain runner and the SDK harness ----

  /** Largest packet a slot holds after the headroom. */
  get packetRoom(): number {
    return this.arena.slotSize - this.arena.headroom;
  }

  /** Copies a packet (at most packetRoom bytes: the caller checks) into batch slot k and fills its descriptor. */
  putBatchPacket(k: number, src: Uint8Array, srcOffset: number, length: number, ctx: number, flags: number, port: number, leg: number, arrivalUs: number): void {
    const a = this.arena;
    const at = a.slotBase + k * a.slotSize + a.headroom;
    if (srcOffset === 0 && src.length === length) this.bytes.set(src, at);
    else this.bytes.set(src.subarray(srcOffset, srcOffset + length), at);
    const v = this.view;
    const d = a.descTable + k * DESC_SIZE;
    v.setUint32(d + D_OFFSET, at, true);
    v.setUint32(d + D_LENGTH, length, true);
    v.setUint32(d + D_CONTEXT, ctx, true);
    v.setUint16(d + D_FLAGS, flags, true);
    v.setUint8(d + D_VERDICT, Verdict.Pass);
    v.setUint8(d + D_DEST, 0);
    v.setUint32(d + D_REASON, 0, true);
    v.setUint16(d + D_PORT, port, true);
    v.setUint8(d + D_LEG, leg);
    v.setUint8(d + D_RESERVED, 0);
    v.setUint32(d + D_ARRIVAL, arrivalUs % TWO_32, true);
    v.setUint32(d + D_ARRIVAL + 4, Math.floor(arrivalUs / TWO_32), true);
  }

  batchVerdict(k: number): number {
    return this.view.getUint8(this.arena.descTable + k * DESC_SIZE + D_VERDICT);
  }

  batchReason(k: number): number {
    return this.view.getUint32(this.arena.descTable + k * DESC_SIZE + D_REASON, true);
  }

  /** Where batch packet k now starts, or -1 if the filter moved it out of its slot. Read batchLength after. */
  batchOffset(k: number): number {
    const a = this.arena;
    const d = a.descTable + k * DESC_SIZE;
    const slotStart = a.slotBase + k * a.slotSize;
    const offset = this.view.getUint32(d + D_OFFSET, true);
    const length = this.view.getUint32(d + D_LENGTH, true);
    return offset < slotStart || offset + length > slotStart + a.slotSize ? -1 : offset;
  }

  /** The leg batch packet k leaves on (the filter may have changed it; the caller checks the bound). */
  batchLeg(k: number): number {
    return this.view.getUint8(this.arena.descTable + k * DESC_SIZE + D_LEG);
  }

  batchLength(k: number): number {
    return this.view.getUint32(this.arena.descTable + k * DESC_SIZE + D_LENGTH, true);
  }

  /** Where output packet j starts, or -1 if its descriptor points outside output slot j. */
  outputOffset(j: number): number {
    const a = this.arena;
    const d = a.outTable + j * DESC_SIZE;
    const slotStart = a.outSlotBase + j * a.slotSize;
    const offset = this.view.getUint32(d + D_OFFSET, true);
    const length = this.view.getUint32(d + D_LENGTH, true);
    return offset < slotStart || offset + length > slotStart + a.slotSize ? -1 : offset;
  }

  outputLength(j: number): number {
    return this.view.getUint32(this.arena.outTable + j * DESC_SIZE + D_LENGTH, true);
  }

  outputContext(j: number): number {
    return this.view.getUint32(this.arena.outTable + j * DESC_SIZE + D_CONTEXT, true);
  }

  outputFlags(j: number): number {
    return this.view.getUint16(this.arena.outTable + j * DESC_SIZE + D_FLAGS, true);
  }

  outputDest(j: number): number {
    return this.view.getUint8(this.arena.outTable + j * DESC_SIZE + D_DEST);
  }

  /**
   * Whether output j's bytes 20-21 are 0. ABI 1.1 put a port offset there (FEC: 2, 4); 1.2 sends
   * by leg instead, so a 1.1 module's offset would quietly land on the media port: refused.
   */
  outputPortFieldClear(j: number): boolean {
    return this.source.abiMinor >= 2 || this.view.getUint16(this.arena.outTable + j * DESC_SIZE + D_PORT, true) === 0;
  }

  outputLeg(j: number): number {
    return this.view.getUint8(this.arena.outTable + j * DESC_SIZE + D_LEG);
  }

  // ---- internals ----

  private call<T>(what: string, fn: () => T): T {
    if (this.failure) throw this.failure;
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
    let reason = this.abortMessage || (err instanceof Error ? err.message : String(err));
    const pages = this.memory.buffer.byteLength / 65536;
    const cap = this.source.memoryMaximumPages;
    if (!this.abortMessage && /unreachable/i.test(reason) && pages >= cap * 0.9) {
      // the allocator traps when memory cannot grow: say so, instead of a bare "unreachable"
      reason += ` (most likely out of memory: the instance uses ${pages} of its ${cap} pages of 64 KiB; raise the filter's maxMemoryPages)`;
    }
    this.failure = new FilterFailure(this.name, during, reason);
    this.services.failed?.(this, this.failure);
    return this.failure;
  }

  private checkOutputCount(during: string, out: number): number {
    if (out < 0 || out > this.arena.outCapacity) {
      throw this.fail(during, new Error(`returned ${out} output packets (capacity ${this.arena.outCapacity})`));
    }
    return out;
  }

  private refreshViews(): void {
    // memory.grow detaches the old buffer, and a detached view reads as empty: cheaper than
    // comparing against memory.buffer, whose getter costs more than the whole check
    if (this.bytes.byteLength === 0) {
      this.bytes = new Uint8Array(this.memory.buffer);
      this.view = new DataView(this.memory.buffer);
    }
  }

  private checkExportArity(exports: WebAssembly.Exports): void {
    const expected: Record<string, number> = {
      msm_arena: 0, msm_configure_root: 1, msm_context_create: 2, msm_context_destroy: 1, msm_on_batch: 1,
      msm_state_export: 1, msm_state_import: 2, _initialize: 0, msm_required_features: 0, msm_on_timer: 2, msm_policy: 0, msm_context_drain: 1,
    };
    for (const [name, arity] of Object.entries(expected)) {
      const fn = exports[name];
      if (fn === undefined) continue;
      if (typeof fn !== "function" || fn.length !== arity) {
        throw new FilterLoadError(this.name, `export ${name} must be a function of ${arity} parameters (see docs/abi.md)`);
      }
    }
  }

  private writeScratchJson(config: unknown): number {
    const text = JSON.stringify(config ?? {});
    const encoded = utf8Encoder.encode(text);
    if (encoded.length > this.arena.scratchSize) {
      throw new FilterConfigError(this.name, Status.BadConfig, `config of ${encoded.length} bytes exceeds the filter's scratch area (${this.arena.scratchSize} bytes)`);
    }
    this.bytes.set(encoded, this.arena.scratch);
    return encoded.length;
  }

  private takeError(): string {
    const message = this.errorMessage;
    this.errorMessage = "";
    return message;
  }

  private readString(ptr: number, len: number): string {
    if (ptr < 0 || len < 0 || ptr + len > this.memory.buffer.byteLength) return "<out of bounds>";
    return utf8.decode(new Uint8Array(this.memory.buffer, ptr, len));
  }

  /** A metric or label name: at most 64 bytes are valid, so no more than 65 are read (a longer one stays invalid). */
  private readName(ptr: number, len: number): string {
    return this.readString(ptr, Math.min(len, 65));
  }

  /** AssemblyScript string: UTF-16LE, byte length stored at ptr - 4. */
  private readAsString(ptr: number): string {
    const buf = this.memory.buffer;
    if (ptr < 4 || ptr > buf.byteLength) return "";
    const byteLength = new DataView(buf).getUint32(ptr - 4, true);
    if (ptr + byteLength > buf.byteLength) return "";
    return Buffer.from(buf, ptr, byteLength & ~1).toString("utf16le");
  }

  /**
   * Ends the log window once a second has passed since it began, reporting what it suppressed.
   * Called before each line and by the host once a second (a burst followed by silence still
   * gets its report).
   */
  endLogWindow(now = Date.now()): void {
    if (now - this.logWindowStart < 1000) return;
    if (this.logSuppressed > 0) {
      this.services.log(this.name, LogLevel.Warn, `${this.logSuppressed} log lines suppressed (limit ${LOG_LINES_PER_SECOND}/s)`);
    }
    this.logWindowStart = now;
    this.logCount = 0;
    this.logSuppressed = 0;
  }

  private log(level: number, message: string): void {
    this.endLogWindow();
    if (++this.logCount > LOG_LINES_PER_SECOND) {
      this.logSuppressed++;
      return;
    }
    this.services.log(this.name, level, message);
  }

  private validTimer(ctx: number, timer: number): boolean {
    return this.contexts.has(ctx) && Number.isInteger(timer) && timer >= 0 && timer < MAX_TIMERS_PER_CONTEXT;
  }

  private imports(): WebAssembly.Imports {
    return {
      env: {
        memory: this.memory,
        abort: (msg: number, file: number, line: number, column: number) => {
          const text = (ptr: number): string => printable(this.readAsString(ptr).slice(0, MAX_ERROR_BYTES));
          this.abortMessage = `abort: ${text(msg) || "(no message)"} at ${text(file) || "?"}:${line}:${column}`;
          throw new FilterAbort(this.abortMessage);
        },
      },
      msm: {
        log: (level: number, ptr: number, len: number) => this.log(level, len > MAX_LOG_BYTES
          ? `${printable(this.readString(ptr, MAX_LOG_BYTES))}... (${len} bytes, cut at ${MAX_LOG_BYTES})`
          : printable(this.readString(ptr, len))),
        set_error: (ptr: number, len: number) => {
          this.errorMessage = printable(this.readString(ptr, Math.min(len, MAX_ERROR_BYTES)));
        },
        now_us: () => BigInt(Math.trunc(this.nowUs)),
        wall_us: () => BigInt(Math.trunc(this.wallUs)),
        features: () => HOST_FEATURES_V1,
        metric_define: (kind: number, ptr: number, len: number) =>
          this.metricsOpen ? this.metrics.define(kind, this.readName(ptr, len)) : -Status.NotAllowed,
        metric_add: (id: number, ctx: number, delta: number) => this.metrics.add(id, ctx, delta),
        metric_set: (id: number, ctx: number, value: number) => this.metrics.set(id, ctx, value),
        metric_record: (id: number, ctx: number, value: number) => this.metrics.record(id, ctx, value),
        // ABI 1.3: one label, whose value is a u32 (an SSRC, say)
        metric_define_labelled: (kind: number, ptr: number, len: number, labelPtr: number, labelLen: number) =>
          this.metricsOpen ? this.metrics.define(kind, this.readName(ptr, len), this.readName(labelPtr, labelLen)) : -Status.NotAllowed,
        metric_add_labelled: (id: number, ctx: number, label: number, delta: number) => this.metrics.addLabelled(id, ctx, label, delta),
        metric_set_labelled: (id: number, ctx: number, label: number, value: number) => this.metrics.setLabelled(id, ctx, label, value),
        metric_record_labelled: (id: number, ctx: number, label: number, value: number) => this.metrics.recordLabelled(id, ctx, label, value),
        timer_set: (ctx: number, timer: number, delayUs: bigint) => {
          const delay = Number(delayUs);
          if (!this.validTimer(ctx, timer) || !(delay >= 0)) return Status.BadArgument;
          this.services.timerSet(this, ctx, timer, delay);
          return Status.Ok;
        },
        timer_cancel: (ctx: number, timer: number) => {
          if (!this.validTimer(ctx, timer)) return Status.BadArgument;
          this.services.timerCancel(this, ctx, timer);
          return Status.Ok;
        },
        random_bytes: (ptr: number, len: number) => {
          if (len < 0 || len > 65536 || ptr < 0 || ptr + len > this.memory.buffer.byteLength) return Status.BadArgument;
          randomFillSync(new Uint8Array(this.memory.buffer, ptr, len));
          return Status.Ok;
        },
      },
    };
  }
}
