// The proxy: data-plane workers, the segments assigned to them, all-or-nothing config changes,
// and the watchdog that restarts a worker stuck inside a filter.
import { EventEmitter } from "node:events";
import type { ProxyConfig, SegmentConfig } from "./config/proxy-config.js";
import type { DataPlaneEvent, SegmentError } from "./dataplane/dataplane.js";
import { withCarriedCounters, type SegmentSnapshot } from "./dataplane/snapshot.js";
import { DESCRIPTOR_RESERVE, descriptorShortfall, openFileCount, socketsFor } from "./dataplane/descriptor-budget.js";
import { WorkerHandle, WORKER_MODE } from "./dataplane/worker-handle.js";

/**
 * A config change that could not be applied. Before the commit (`committed` false) nothing of it
 * was applied and the running config is unchanged. After it (`committed` true) the new config
 * runs except for the segments named, which could not be (re)started and do not run.
 */
export class ApplyError extends Error {
  override readonly name = "ApplyError";
  constructor(readonly errors: readonly SegmentError[], readonly committed = false) {
    const lead = committed
      ? "config applied, except these segments, which are NOT running"
      : "config not applied, the running config is unchanged";
    super(`${lead}:\n  ${errors.map((e) => (e.segment ? `segment '${e.segment}': ` : "") + e.message.replace(`segment '${e.segment}': `, "")).join("\n  ")}`);
  }
}

export type ProxyEvent =
  | DataPlaneEvent
  | { type: "watchdog"; worker: number; filter: string; segments: string[]; stuckMs: number }
  | { type: "worker-exit"; worker: number; code: number | null };

interface ProxyEvents {
  event: [ProxyEvent];
}

function workerFor(seg: SegmentConfig, workers: number): number {
  if (seg.worker !== undefined) return seg.worker;
  let h = 0;
  for (const ch of seg.name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h % workers;
}

export interface ProxySnapshot {
  workers: number;
  workerMode: "thread" | "process";
  segments: (SegmentSnapshot & { worker: number })[];
  watchdogRestarts: number;
}

export class Proxy extends EventEmitter<ProxyEvents> {
  private workers: WorkerHandle[] = [];
  private config: ProxyConfig;
  private readonly stuck = new Map<string, number>(); // "segment#stage" -> watchdog kills
  /** Counters of segments whose worker restarted, as last seen before the restart. */
  private readonly carried = new Map<string, SegmentSnapshot>();
  private statsTimer: NodeJS.Timeout | undefined;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private applying: Promise<unknown> = Promise.resolve();
  private closed = false;
  watchdogRestarts = 0;
  /** The segments whose sockets are bound (none before the first apply). */
  private running: readonly SegmentConfig[] = [];
  private crashDelay = 100;
  private lastCrash = 0;

  private constructor(config: ProxyConfig) {
    super();
    this.config = config;
  }

  /** Starts workers and applies the config. Throws ApplyError (and stops) if it cannot. */
  static async start(config: ProxyConfig): Promise<Proxy> {
    const proxy = new Proxy(config);
    for (let i = 0; i < config.workers; i++) proxy.workers.push(proxy.spawn(i));
    await Promise.all(proxy.workers.map((w) => w.ready));
    try {
      await proxy.applyNow(config);
    } catch (err) {
      await proxy.close();
      throw err;
    }
    proxy.watchdogTimer = setInterval(() => proxy.checkWatchdog(), Math.max(5, Math.floor(config.watchdog.stuckMs / 4)));
    proxy.watchdogTimer.unref();
    // keep a recent snapshot per worker, so that a restart loses little of the counters
    proxy.statsTimer = setInterval(() => void proxy.workers.forEach((w) => w.alive && void w.stats()), 1000);
    proxy.statsTimer.unref();
    return proxy;
  }

  get currentConfig(): ProxyConfig {
    return this.config;
  }

  /** Applies a new config: every worker prepares, then all commit; or none does. */
  apply(config: ProxyConfig): Promise<void> {
    const run = this.applying.then(() => this.applyNow(config));
    this.applying = run.catch(() => {});
    return run;
  }

  async stats(): Promise<ProxySnapshot> {
    const perWorker = await Promise.all(this.workers.map((w) => w.stats()));
    return {
      workers: this.workers.length,
      workerMode: WORKER_MODE,
      segments: perWorker.flatMap((segs, worker) => segs.map((s) => ({ ...withCarriedCounters(s, this.carried.get(s.name)), worker }))),
      watchdogRestarts: this.watchdogRestarts,
    };
  }

  /** Local ports of a segment (useful when the config asked for port 0). */
  async ports(segment: string): Promise<SegmentSnapshot["ports"] | undefined> {
    const snap = await this.stats();
    return snap.segments.find((s) => s.name === segment)?.ports;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.watchdogTimer);
    clearInterval(this.statsTimer);
    await Promise.all(this.workers.map((w) => w.close()));
  }

  private spawn(index: number): WorkerHandle {
    const handle = new WorkerHandle(
      index,
      { batchSize: this.config.batchSize, socketReceiveBuffer: this.config.socketReceiveBuffer },
      (event) => this.emit("event", event),
      (code) => {
        if (this.closed || this.workers[index] !== handle) return;
        this.emit("event", { type: "worker-exit", worker: index, code });
        // a crash loop must not spin: back off from 100 ms up to 5 s
        const now = Date.now();
        this.crashDelay = now - this.lastCrash > 10_000 ? 100 : Math.min(this.crashDelay * 2, 5000);
        this.lastCrash = now;
        setTimeout(() => void this.restartWorker(index), this.crashDelay).unref();
      },
    );
    return handle;
  }

  private segmentsOf(config: ProxyConfig, worker: number): SegmentConfig[] {
    return config.segments.filter((s) => workerFor(s, config.workers) === worker);
  }

  private stuckFor(segments: SegmentConfig[]): { segment: string; stage: number; count: number }[] {
    const names = new Set(segments.map((s) => s.name));
    const out: { segment: string; stage: number; count: number }[] = [];
    for (const [key, count] of this.stuck) {
      const [segment, stage] = key.split("#") as [string, string];
      if (names.has(segment)) out.push({ segment, stage: Number(stage), count });
    }
    return out;
  }

  private async applyNow(config: ProxyConfig): Promise<void> {
    if (config.workers !== this.workers.length) {
      throw new ApplyError([{ segment: "", message: `workers: cannot change from ${this.workers.length} to ${config.workers} while running; restart the proxy` }]);
    }
    const budget = this.descriptorProblems(config);
    if (budget.length > 0) throw new ApplyError(budget);
    const prepared = await Promise.all(
      this.workers.map((w, i) => w.prepare({ filters: config.filters, segments: this.segmentsOf(config, i) })),
    );
    const errors = prepared.flat();
    if (errors.length > 0) {
      await Promise.all(this.workers.map((w) => w.request({ type: "abort" })));
      throw new ApplyError(errors);
    }
    const committed = (await Promise.all(this.workers.map((w) => w.commit()))).flat();
    this.config = config;
    this.running = config.segments;
    // forget the history of segments that are gone
    for (const key of [...this.stuck.keys()]) {
      if (!config.segments.some((s) => key.startsWith(`${s.name}#`))) this.stuck.delete(key);
    }
    for (const name of [...this.carried.keys()]) if (!config.segments.some((s) => s.name === name)) this.carried.delete(name);
    if (committed.length > 0) throw new ApplyError(committed, true);
  }

  /**
   * Whether the segments' sockets fit the open-files limit: of this process when the workers are
   * threads, of each worker process otherwise. During a change, the running segments keep their
   * sockets while segments with new names bind theirs, so the peak is the two together.
   */
  private descriptorProblems(config: ProxyConfig): SegmentError[] {
    const running = new Set(this.running.map((s) => s.name));
    const fresh = config.segments.filter((s) => !running.has(s.name));
    const during = this.running.length > 0 ? " (running and new ones together, while the change is prepared)" : "";
    const label = (n: number, worker?: number): string => `segments: ${worker === undefined ? "" : `worker ${worker}'s `}${n} segments${during}`;
    if (WORKER_MODE === "thread") {
      const held = socketsFor(this.running);
      const open = openFileCount();
      if (open === null) return [];
      const other = Math.max(DESCRIPTOR_RESERVE, open - held + DESCRIPTOR_RESERVE / 2);
      const problem = descriptorShortfall(held + socketsFor(fresh), other, label(this.running.length + fresh.length));
      return problem ? [{ segment: "", message: problem }] : [];
    }
    for (let i = 0; i < config.workers; i++) {
      const mine = (segs: readonly SegmentConfig[]): SegmentConfig[] => segs.filter((s) => workerFor(s, config.workers) === i);
      const peak = socketsFor(mine(this.running)) + socketsFor(mine(fresh));
      const problem = descriptorShortfall(peak, DESCRIPTOR_RESERVE, label(mine(this.running).length + mine(fresh).length, i));
      if (problem) return [{ segment: "", message: problem }];
    }
    return [];
  }

  private checkWatchdog(): void {
    const limit = this.config.watchdog.stuckMs;
    this.workers.forEach((w, index) => {
      if (!w.alive) return;
      const slot = w.beacon.stuckSlot(limit);
      if (slot === 0) return;
      const culprit = w.instances.find((i) => i.id === slot);
      for (const u of culprit?.users ?? []) {
        const key = `${u.segment}#${u.stage}`;
        this.stuck.set(key, (this.stuck.get(key) ?? 0) + 1);
      }
      this.watchdogRestarts++;
      this.emit("event", {
        type: "watchdog",
        worker: index,
        filter: culprit?.filter ?? `slot ${slot}`,
        segments: culprit?.users.map((u) => u.segment) ?? [],
        stuckMs: limit,
      });
      void this.restartWorker(index);
    });
  }

  private async restartWorker(index: number): Promise<void> {
    if (this.closed) return;
    const old = this.workers[index]!;
    for (const s of old.lastSegments) this.carried.set(s.name, withCarriedCounters(s, this.carried.get(s.name)));
    const replacement = this.spawn(index);
    this.workers[index] = replacement; // from now on, the old one's exit is not news
    await old.kill();
    await replacement.ready;
    const segments = this.segmentsOf(this.config, index);
    const errors = await replacement.prepare({ filters: this.config.filters, segments, stuck: this.stuckFor(segments) });
    if (errors.length > 0) {
      for (const e of errors) this.emit("event", { type: "error", segment: e.segment, message: `after worker restart: ${e.message}` });
      await replacement.request({ type: "abort" });
      return;
    }
    for (const e of await replacement.commit()) this.emit("event", { type: "error", segment: e.segment, message: e.message });
  }
}
