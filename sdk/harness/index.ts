// Host-side test harness for filter authors: load a filter, feed it packets, and read verdicts,
// output packets, metrics and timers, with a clock the test controls and no sockets. It drives
// the runtime's own FilterInstance, so a filter behaves here exactly as in the proxy.
import { readFile } from "node:fs/promises";
import { LogLevel, MetricKind, Verdict } from "../../runtime/abi.js";
import {
  compileFilterModule, dropReasonName, FilterConfigError, FilterInstance, type FilterHostServices, type HistogramValue,
} from "./runtime.js";

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
  readonly verdict: "pass" | "drop" | "hold";
  /** DropReason code (0 unless dropped). */
  readonly reason: number;
  /** snake_case name of the reason (`bad_version`), `filter_<code>` for the filter's own codes. */
  readonly reasonName: string;
  /** The packet's bytes after the filter (a copy). */
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
  readonly outputs: OutputPacket[];
}

export interface HarnessOptions {
  readonly name?: string;
  readonly rootConfig?: unknown;
  readonly sha256?: string;
  readonly maxMemoryPages?: number;
  /** Start of the harness clock, microseconds. */
  readonly startUs?: number;
}

interface PendingTimer {
  ctx: number;
  timer: number;
  dueUs: number;
}

const VERDICTS: Record<number, PacketResult["verdict"]> = { [Verdict.Pass]: "pass", [Verdict.Drop]: "drop", [Verdict.Hold]: "hold" };

export class FilterHarness {
  /** Every line the filter logged. */
  readonly logs: { level: LogLevel; message: string }[] = [];
  private nextContext = 1;
  private clockUs: number;
  private readonly pending = new Map<string, PendingTimer>();

  private constructor(readonly instance: FilterInstance, startUs: number) {
    this.clockUs = startUs;
  }

  /** Loads a filter from a .wasm path or bytes. Throws FilterLoadError / FilterConfigError as the proxy would. */
  static async load(wasm: string | Uint8Array, options: HarnessOptions = {}): Promise<FilterHarness> {
    const bytes = typeof wasm === "string" ? new Uint8Array(await readFile(wasm)) : wasm;
    const name = options.name ?? (typeof wasm === "string" ? wasm.replace(/^.*\//, "").replace(/(\.checked)?\.wasm$/, "") : "filter");
    const module = await compileFilterModule(name, bytes, options.sha256, options.maxMemoryPages);
    let harness: FilterHarness | undefined;
    const services: FilterHostServices = {
      log: (_filter, level, message) => harness?.logs.push({ level, message }),
      timerSet: (_inst, ctx, timer, delayUs) => harness?.pending.set(`${ctx}:${timer}`, { ctx, timer, dueUs: harness.clockUs + delayUs }),
      timerCancel: (_inst, ctx, timer) => harness?.pending.delete(`${ctx}:${timer}`),
    };
    const startUs = options.startUs ?? 1_000_000;
    const instance = await FilterInstance.create(module, options.rootConfig ?? {}, services);
    harness = new FilterHarness(instance, startUs);
    return harness;
  }

  /** The harness clock (what now_us returns), microseconds. */
  get nowUs(): number {
    return this.clockUs;
  }

  /** Creates a context with this config and returns its id. Throws FilterConfigError with the filter's message. */
  createContext(config: unknown = {}): number {
    const ctx = this.nextContext++;
    this.instance.setClock(this.clockUs, Date.now() * 1000);
    this.instance.createContext(ctx, config);
    return ctx;
  }

  /**
   * How the filter refuses a context config: its status and message. Throws if the config is
   * accepted (a config test expects a refusal) or the filter fails otherwise.
   */
  refusal(config: unknown): { status: number; reason: string } {
    try {
      this.createContext(config);
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
    const all: OutputPacket[] = [];
    for (let call = 0; call < 64; call++) {
      this.instance.setClock(this.clockUs, Date.now() * 1000);
      const n = this.instance.drainContext(ctx);
      if (n === 0) break;
      all.push(...this.readOutputs(n));
    }
    return all;
  }

  destroyContext(ctx: number): void {
    this.instance.destroyContext(ctx);
    for (const [key, t] of this.pending) if (t.ctx === ctx) this.pending.delete(key);
  }

  /** Runs one batch (at most the filter's batch capacity). Throws FilterFailure if the filter traps. */
  runBatch(packets: readonly HarnessPacket[]): BatchResult {
    const inst = this.instance;
    if (packets.length > inst.arena.batchCapacity) {
      throw new RangeError(`batch of ${packets.length} exceeds the filter's capacity of ${inst.arena.batchCapacity}`);
    }
    packets.forEach((p, k) => {
      if (p.bytes.length > inst.packetRoom) throw new RangeError(`packet ${k} of ${p.bytes.length} bytes exceeds the slot room of ${inst.packetRoom}`);
      inst.putBatchPacket(k, p.bytes, 0, p.bytes.length, p.ctx, p.flags ?? 0, p.sourcePort ?? 0, p.leg ?? 0, p.arrivalUs ?? this.clockUs);
    });
    inst.setClock(this.clockUs, Date.now() * 1000);
    const outCount = inst.runBatch(packets.length);
    const results = packets.map((_, k): PacketResult => {
      const verdict = VERDICTS[inst.batchVerdict(k)];
      if (verdict === undefined) throw new RangeError(`packet ${k}: invalid verdict ${inst.batchVerdict(k)}`);
      const reason = verdict === "drop" ? inst.batchReason(k) : 0;
      const offset = inst.batchOffset(k);
      if (offset < 0) throw new RangeError(`packet ${k}: the filter moved it outside its slot`);
      return {
        verdict,
        reason,
        reasonName: verdict === "drop" ? dropReasonName(reason) : "",
        bytes: inst.bytes.slice(offset, offset + inst.batchLength(k)),
        leg: inst.batchLeg(k),
      };
    });
    return { packets: results, outputs: this.readOutputs(outCount) };
  }

  /** Runs a single packet and returns its result. */
  run(packet: HarnessPacket): PacketResult {
    return this.runBatch([packet]).packets[0]!;
  }

  /** Moves the clock forward, firing due timers in order; returns what they output. */
  advanceTime(us: number): OutputPacket[] {
    const target = this.clockUs + us;
    const outputs: OutputPacket[] = [];
    for (;;) {
      let next: [string, PendingTimer] | undefined;
      for (const entry of this.pending) if (entry[1].dueUs <= target && (!next || entry[1].dueUs < next[1].dueUs)) next = entry;
      if (!next) break;
      this.pending.delete(next[0]);
      this.clockUs = Math.max(this.clockUs, next[1].dueUs);
      this.instance.setClock(this.clockUs, Date.now() * 1000);
      outputs.push(...this.readOutputs(this.instance.onTimer(next[1].ctx, next[1].timer)));
    }
    this.clockUs = target;
    return outputs;
  }

  /** Armed timers, soonest first. */
  timers(): { ctx: number; timer: number; dueUs: number }[] {
    return [...this.pending.values()].sort((a, b) => a.dueUs - b.dueUs).map((t) => ({ ...t }));
  }

  /**
   * A metric's value for a context: a number (counter, gauge), a histogram, or undefined if not
   * defined. A labelled metric needs `labelValue` (the u32 the filter gave, or "other"); a label
   * value it never used reads as 0 or an empty histogram.
   */
  metric(name: string, ctx: number, labelValue?: number | "other"): number | HistogramValue | undefined {
    const def = this.instance.metrics.definitions.find((d) => d.name === name);
    const values = this.instance.metrics.forContext(ctx);
    if (!def || !values) return undefined;
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
    const m = this.instance.metrics.snapshot(ctx).find((x) => x.name === name);
    if (!m?.series) return undefined;
    return new Map(m.series.map((s) => [s.labelValue, s.histogram ?? s.value!]));
  }

  /** Names of the metrics the filter defined. */
  metricNames(): string[] {
    return this.instance.metrics.definitions.map((d) => d.name);
  }

  /** msm_state_export at the harness clock (as the proxy, which sets the clock first). */
  exportState(ctx: number): Uint8Array | undefined {
    this.instance.setClock(this.clockUs, Date.now() * 1000);
    return this.instance.exportState(ctx);
  }

  importState(ctx: number, blob: Uint8Array): { ok: boolean; reason: string } {
    this.instance.setClock(this.clockUs, Date.now() * 1000);
    return this.instance.importState(ctx, blob);
  }

  private readOutputs(count: number): OutputPacket[] {
    const inst = this.instance;
    const out: OutputPacket[] = [];
    for (let j = 0; j < count; j++) {
      const offset = inst.outputOffset(j);
      if (offset < 0) throw new RangeError(`output ${j}: descriptor points outside its output slot`);
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

export { FilterLoadError, FilterConfigError, FilterFailure } from "./runtime.js";
export * from "../../runtime/abi.js";
export * from "./packets.js";
