// The proxy: data-plane workers, the segments assigned to them, all-or-nothing config changes,
// the watchdog that restarts a worker stuck inside a filter, state checkpoints that a restarted
// worker starts from, and the health the admin endpoint reports.
import { networkInterfaces } from "node:os";
import { EventEmitter } from "node:events";
import { EndpointIndex } from "./config/endpoints.js";
import { fixedBinds, socketsKey, type ProxyConfig, type SegmentConfig } from "./config/proxy-config.js";
import { resolveSecrets } from "./config/secrets.js";
import type { DataPlaneEvent, InstanceUsers, SegmentError, StateCheckpoint } from "./dataplane/dataplane.js";
import type { EgressPorts } from "./dataplane/segment-sockets.js";
import { carriedForChain, withCarriedCounters, type SegmentSnapshot } from "./dataplane/snapshot.js";
import { StreamTotalsCarry } from "./streams/carried-totals.js";
import { DESCRIPTOR_RESERVE, descriptorShortfall, openFileCount, socketsFor, socketsPerWorkerDuringChange } from "./dataplane/descriptor-budget.js";
import { bindProblem, PORT_TAKEN } from "./dataplane/segment-sockets.js";
import { removeStaleBeacons, WorkerHandle, WORKER_MODE } from "./dataplane/worker-handle.js";
import { STARTING_SLOT, probedSlotOf } from "./dataplane/watchdog-beacon.js";
import { planIo, type IoPlan } from "./dataplane/batched-io.js";
import { ParkedListenSockets } from "./dataplane/parked-listen-sockets.js";
import { readStateFile, removeLeftoverTemporaries, StateFileError, writeStateFile } from "./state-file.js";
import { LOCK_STALE_MS, StateFileLock } from "./state-file-lock.js";

/**
 * A config change that could not be applied. Before the commit (`committed` false) nothing of it
 * was applied and the running config is unchanged. After it (`committed` true) the new config
 * runs except for the segments named, which could not be (re)started and do not run. At start
 * (`starting`) there was no running config, and the proxy stopped again: nothing runs, `committed`
 * is false. (A port another process holds at start does not stop it: see Proxy.start.)
 */
export class ApplyError extends Error {
  override readonly name = "ApplyError";
  constructor(readonly errors: readonly SegmentError[], readonly committed = false, readonly starting = false) {
    const lead = starting
      ? "the proxy did not start: its config could not be applied (nothing was running yet, and nothing runs now)"
      : committed
        ? "config applied, except these segments, which are NOT running"
        : "config not applied, the running config is unchanged";
    super(`${lead}:\n  ${ApplyError.list(errors)}`);
  }

  /** The errors alone, a line each, without the lead (for a caller that says what happened itself). */
  get detail(): string {
    return ApplyError.list(this.errors);
  }

  private static list(errors: readonly SegmentError[]): string {
    return errors.map((e) => (e.segment ? `segment '${e.segment}': ` : "") + e.message.replace(`segment '${e.segment}': `, "")).join("\n  ");
  }
}

export type ProxyEvent =
  | Exclude<DataPlaneEvent, { type: "checkpoint-wanted" }>
  | { type: "watchdog"; worker: number; filter: string; segments: string[]; stuckMs: number; /** the export it was in ("msm_on_batch"), "" when not known */ call?: string }
  | { type: "worker-exit"; worker: number; code: number | null; signal: string | null }
  /** spare: the worker started ahead took its place (else a new one was started for it). */
  /** kept: listen sockets the new worker took over from the old one, with what they held (Node). */
  | { type: "worker-restarted"; worker: number; segments: number; carried: number; spare?: boolean; kept?: number }
  /** handedOver: the new worker took its listen sockets over with what they held (Node), else packets sent meanwhile were lost. */
  | { type: "segment-moved"; segment: string; from: number; to: number; carried: number; handedOver?: boolean }
  | { type: "warning"; message: string };

interface ProxyEvents {
  event: [ProxyEvent];
}

/** Where a segment sent from: a new worker binds these again, so that the next hop's source gate still knows it. */
function egressPortsOf(s: SegmentSnapshot): EgressPorts {
  return { segment: s.name, rtp: s.ports.egress, rtcp: s.ports.egressRtcp, legs: s.ports.legs.map((l) => l.egress) };
}

/** A running segment a change puts on another worker. */
interface SegmentMove {
  readonly from: number;
  readonly to: number;
}

/** A checkpoint's place in Proxy.checkpoints: its segment and filter entry. */
function checkpointKey(c: StateCheckpoint): string {
  return `${c.segment}\0${c.filter}`;
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
  /** How the workers move packets (docs/batched-io.md). */
  io: IoPlan;
  segments: (SegmentSnapshot & { worker: number })[];
  /** The filter instances of every worker (one serves each segment there whose chain uses its filter, module and root config). */
  instances: (InstanceUsers & { worker: number })[];
  watchdogRestarts: number;
  /** Workers that ended by themselves (a crash, an abort, a kill from outside) and were restarted. */
  workerExits: number;
  /** Configs given to apply() since the start (reloads, snapshots, retries): applied (if partly: see notRunning), and refused whole (the running config kept). */
  configApplies: { applied: number; refused: number };
  /** Segments of the running config that do not run (a port taken after the change was committed), with why. */
  notRunning: { segment: string; reason: string }[];
  /** The host's interface addresses: how the control plane tells that a destination is this proxy's wildcard listen. */
  addresses: string[];
  /** When the snapshot was taken (wall clock, ms). */
  atMs: number;
  /** The filters (entries) whose own metrics are named after another name than theirs (`metricsName`). */
  metricsNames?: Record<string, string>;
}

/** Every address of the host's interfaces, loopback included, as node:dgram writes them. */
function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}

/** What /healthz (live) and /readyz (ready) answer, with the reasons when not. */
export interface ProxyHealth {
  /** False when the proxy cannot recover by itself: a worker that stays down or stops answering. */
  live: boolean;
  /** True once a config is applied and every worker runs and answers. */
  ready: boolean;
  problems: string[];
}

/** How often the proxy looks whether a checkpoint or the counters are due. */
const REFRESH_TICK_MS = 100;
/**
 * The least time between two checkpoint rounds that filters asked for (ABI 1.8): a burst of new
 * srtp sources (or a filter that asks at every batch) costs at most 20 rounds a second, and fewer
 * where the stateFile is large: the gap is at least WISHED_ROUND_WRITE_FACTOR times the last
 * write's duration from the start of one such round to the next, so that their writes take at most
 * a third of the time.
 */
const WISHED_ROUND_GAP_MS = 50;
const WISHED_ROUND_WRITE_FACTOR = 3;
/** How often each worker's counters are taken (to carry across its restart, and for the health). */
const STATS_EVERY_MS = 1000;

/** A worker that has not answered (or has been down) for this long makes the proxy not ready... */
const NOT_READY_MS = 5_000;
/** ...and for this long, not live: long enough for a large apply, short enough to be restarted. */
const NOT_LIVE_MS = 30_000;

/** The longest a new spare waits after spares kept dying (the back-off doubles from 2 s up to this). */
const SPARE_DELAY_MAX_MS = 60_000;

export class Proxy extends EventEmitter<ProxyEvents> {
  private workers: WorkerHandle[] = [];
  private config: ProxyConfig;
  private readonly stuck = new Map<string, number>(); // "segment#stage" -> watchdog kills
  private readonly stuckCall = new Map<string, string>(); // "segment#stage" -> the export the last kill found it in
  /** Counters of segments whose worker restarted, as last seen before the restart. */
  private readonly carried = new Map<string, SegmentSnapshot>();
  /** Per-stream counters of segments whose worker restarted or that moved, for /metrics. */
  private readonly streamCarry = new StreamTotalsCarry(() => this.config.streams.idleSeconds * 1000);
  /** The last state of every running stage, by segment and filter: a restarted worker starts from it. */
  private readonly checkpoints = new Map<string, StateCheckpoint>();
  /**
   * Segments the stateFile holds a state for that no config of this run has had yet: the last run
   * had them, the start's config does not (a control plane's agent starting from a last-good.json
   * older than its last change, or a file edited while the proxy was stopped). Their states stay in
   * the file, and a change that adds them back starts them from there: under the same key, a
   * fresh start would protect from SRTCP index 0 again.
   */
  private readonly savedElsewhere = new Set<string>();
  /** Segments a change moves to another worker, from the save of their restored states until every worker committed. */
  private readonly moving = new Set<string>();
  /**
   * Workers spawned in place of one that died and not yet given their segments, with the old
   * one's end (its ports are free after it). Whichever sets one up first, its restart or an apply
   * queued ahead of it, gives it the last checkpoints: a worker that already runs a segment would
   * not import them.
   */
  private readonly unseeded = new Map<WorkerHandle, Promise<void>>();
  private lastCheckpointAt = 0;
  private lastStatsAt = 0;
  /** Writes of the stateFile, one at a time, in order (each writes the checkpoints as they are when it runs). */
  private stateWrites: Promise<void> = Promise.resolve();
  /**
   * stateFile writes under way or waiting, and the one that waits (at most one: whoever asks
   * meanwhile gets it, as it writes the checkpoints as they are when it runs). A round a filter
   * asked for (ABI 1.8) waits for none to be under way: asks never queue writes behind a slow
   * disk, while the periodic rounds go on (in memory too, for a worker's restart).
   */
  private stateWritesRunning = 0;
  private queuedWrite: Promise<void> | undefined;
  /** Workers whose filters asked for a checkpoint (checkpointWished), the round that takes them, and when the last began. */
  private readonly wished = new Set<WorkerHandle>();
  private wishedRound: NodeJS.Timeout | undefined;
  private lastWishedRoundAt = 0;
  /** How long the last stateFile write took (the wished rounds' gap grows with it). */
  private lastStateWriteMs = 0;
  /** The last stateFile write's failure, said once until a write succeeds again. */
  private stateWriteFailure = "";
  private saidNoStateFile = false;
  /** This process's hold on the stateFile (state-file-lock.ts). */
  private stateLock: StateFileLock | undefined;
  /** Stages the start restored from the stateFile. */
  restoredStages = 0;
  private statsTimer: NodeJS.Timeout | undefined;
  private watchdogTimer: NodeJS.Timeout | undefined;
  /** Set while workers prepare a change: a stuck call then is most likely a new stage's context creation. */
  private preparing = false;
  /** Applies and worker restarts, one at a time, in order. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  watchdogRestarts = 0;
  workerExits = 0;
  /** Counted by apply(); an owner that refuses a config before it reaches apply() says so with noteRefusedConfig(). */
  private readonly configApplies = { applied: 0, refused: 0 };
  /** The segments whose sockets are bound (none before the first apply). */
  private running: readonly SegmentConfig[] = [];
  private applied = false;
  /** Segments of the running config that do not run (their sockets failed after the commit), with why. */
  private notRunning = new Map<string, string>();
  private crashDelay = 100;
  private lastCrash = 0;
  /** Per worker: when it last answered, and since when it has been down (0: up). */
  private readonly answeredAt: number[] = [];
  private readonly downSince: number[] = [];

  /** How the workers move packets, planned once at start (a plan that cannot hold throws there). */
  readonly io: IoPlan;
  /** The listen sockets ended or handing-over worker threads left bound, from this side. */
  private readonly parked: ParkedListenSockets;

  private constructor(config: ProxyConfig) {
    super();
    this.config = config;
    try {
      this.io = planIo(config.io, config.gso);
    } catch (err) {
      throw new ApplyError([{ segment: "", message: (err as Error).message }], false, true);
    }
    this.parked = new ParkedListenSockets(this.io);
  }

  /**
   * Starts workers and applies the config. Throws ApplyError (and stops) if it cannot. A segment
   * whose port another process holds does not stop the start (one camera's port must not keep
   * every other from forwarding): it is set up like the others, so that a config problem still
   * refuses the start, and runs as NOT running (segmentsNotRunning, /readyz) for its owner to
   * apply the config again later. `onEvent` hears the events of the start itself (a filter's
   * lines while it loads): a listener added after start() returns would miss them.
   */
  static async start(config: ProxyConfig, onEvent?: (event: ProxyEvent) => void): Promise<Proxy> {
    const proxy = new Proxy(config);
    if (onEvent) proxy.on("event", onEvent);
    removeStaleBeacons(); // of proxies killed with their worker processes (Bun), whatever runs this one
    if (config.stateFile !== undefined) {
      try {
        // said at once: the wait is silent for seconds otherwise, and a start that ends in a refusal
        // after it looked hung
        const waiting = (holder: string, waitMs: number): void =>
          void proxy.emit("event", { type: "warning", message: `stateFile ${config.stateFile} is in use by another proxy (${holder}): waiting up to ${waitMs / 1000} s for it to stop (a restart that overlaps the old process's stop), then not starting` });
        proxy.stateLock = await StateFileLock.acquire(config.stateFile, (holder) => proxy.stateLockTaken(holder), undefined, waiting);
        await removeLeftoverTemporaries(config.stateFile);
        for (const c of await readStateFile(config.stateFile)) {
          proxy.checkpoints.set(checkpointKey(c), c);
          proxy.savedElsewhere.add(c.segment);
        }
      } catch (err) {
        proxy.stateLock?.release();
        if (err instanceof StateFileError) throw new ApplyError([{ segment: "", message: err.message }], false, true);
        throw err;
      }
    }
    try {
      for (let i = 0; i < config.workers; i++) proxy.workers.push(proxy.spawn(i));
      await Promise.all(proxy.workers.map((w) => w.ready));
    } catch (err) {
      await proxy.close(); // the workers started, and the stateFile's lock
      throw err;
    }
    // watching from the first apply: a filter that never returns from a context's creation must
    // fail the start, not hang it
    proxy.watchdogTimer = setInterval(() => proxy.checkWatchdog(), Math.max(5, Math.floor(config.watchdog.stuckMs / 4)));
    proxy.watchdogTimer.unref();
    try {
      await proxy.apply(config);
    } catch (err) {
      // committed: it runs, without the segments whose port was taken (recorded as not running)
      if (!(err instanceof ApplyError && err.committed)) {
        await proxy.close();
        throw err instanceof ApplyError ? new ApplyError(err.errors, false, true) : err; // closed: nothing of it runs
      }
    }
    // a recent snapshot and checkpoint per worker, so that a restart loses little of either
    proxy.statsTimer = setInterval(() => void proxy.refresh(), REFRESH_TICK_MS);
    proxy.statsTimer.unref();
    proxy.spawnSpareSoon();
    return proxy;
  }

  get currentConfig(): ProxyConfig {
    return this.config;
  }

  /** A config its owner refused before it reached apply() (a file that does not parse, a snapshot that cannot be planned): counted with the refused ones. */
  noteRefusedConfig(): void {
    this.configApplies.refused++;
  }

  /** Configs refused so far, by apply() or noteRefusedConfig(). */
  get configsRefused(): number {
    return this.configApplies.refused;
  }

  /** Applies a new config: every worker prepares, then all commit; or none does. */
  apply(config: ProxyConfig): Promise<void> {
    return this.serially(async () => {
      try {
        await this.applyNow(config);
        this.configApplies.applied++;
      } catch (err) {
        if (err instanceof ApplyError && err.committed) this.configApplies.applied++;
        else this.configApplies.refused++;
        throw err;
      }
    });
  }

  async stats(): Promise<ProxySnapshot> {
    const handles = [...this.workers];
    const perWorker = await Promise.all(handles.map((w) => w.stats()));
    const segments = perWorker.flatMap((segs, worker) => segs.map((s) => {
      if (this.workers[worker] === handles[worker]) {
        this.streamCarry.seen(s.name, worker, s.streams);
        const streamsCarried = this.streamCarry.of(s.name, s.streams, Date.now());
        return { ...withCarriedCounters(s, this.carried.get(s.name)), worker, ...(streamsCarried ? { streamsCarried } : {}) };
      }
      // replaced while it answered (a stuck worker answers only when killed, with its last
      // snapshot): restartWorker has already added that snapshot to the carried counters
      const last = this.carried.get(s.name) ?? s;
      return shownDown(last, worker);
    }));
    // a worker being replaced has no segments to report yet, nor one replaced while it answered
    // (killed, it may answer with nothing, and its replacement is up by now): they still show, with
    // what they had counted and their stages down, rather than vanish from /stats and msmctl for a moment
    const reported = new Set(segments.map((s) => s.name));
    this.workers.forEach((current, worker) => {
      if ((this.downSince[worker] ?? 0) === 0 && current === handles[worker]) return;
      for (const { name } of this.segmentsOf(this.config, worker)) {
        const last = this.carried.get(name);
        if (last && !reported.has(name)) segments.push(shownDown(last, worker));
      }
    });
    return {
      workers: this.workers.length,
      workerMode: WORKER_MODE,
      io: this.io,
      segments,
      instances: this.workers.flatMap((w, worker) => w.instances.map((i) => ({ ...i, worker }))),
      watchdogRestarts: this.watchdogRestarts,
      workerExits: this.workerExits,
      configApplies: { ...this.configApplies },
      notRunning: [...this.notRunning].map(([segment, reason]) => ({ segment, reason })),
      addresses: localAddresses(),
      atMs: Date.now(),
      ...this.metricsNames(),
    };
  }

  private metricsNames(): { metricsNames?: Record<string, string> } {
    const named = Object.entries(this.config.filters).filter(([, f]) => f.metricsName !== undefined);
    return named.length > 0 ? { metricsNames: Object.fromEntries(named.map(([name, f]) => [name, f.metricsName!])) } : {};
  }

  /** Segments of the running config that do not run (see notRunning in stats). */
  get segmentsNotRunning(): string[] {
    return [...this.notRunning.keys()];
  }

  /** Liveness and readiness, for the admin endpoint's probes. */
  health(now = Date.now()): ProxyHealth {
    const problems: string[] = [];
    let live = !this.closed;
    let ready = this.applied && !this.closed;
    if (this.closed) problems.push("the proxy is shutting down");
    if (!this.applied) problems.push("no config applied yet");
    for (const [segment, reason] of this.notRunning) {
      ready = false; // a configured segment that does not run: the node does not do its job
      problems.push(`segment '${segment}' is NOT running: ${reason}`);
    }
    this.workers.forEach((w, i) => {
      const down = this.downSince[i] ?? 0;
      if (!w.alive || down > 0) {
        ready = false;
        problems.push(`worker ${i} is down${down > 0 ? ` since ${Math.round((now - down) / 1000)} s` : ""} (restarting)`);
        if (down > 0 && now - down > NOT_LIVE_MS) live = false;
      } else if (now - (this.answeredAt[i] ?? now) > NOT_READY_MS) {
        const silent = now - this.answeredAt[i]!;
        ready = false;
        if (silent > NOT_LIVE_MS) live = false;
        problems.push(`worker ${i} has not answered for ${Math.round(silent / 1000)} s`);
      }
    });
    return { live, ready, problems };
  }

  /** Local ports of a segment (useful when the config asked for port 0). */
  async ports(segment: string): Promise<SegmentSnapshot["ports"] | undefined> {
    const snap = await this.stats();
    return snap.segments.find((s) => s.name === segment)?.ports;
  }

  /** Stops: every worker stops reading, sends what it holds (filters drain), and exits. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.statsTimer);
    clearTimeout(this.wishedRound);
    // an apply or restart in flight ends first, unless it waits on a stuck worker: closing the
    // workers (killed when they do not answer) then ends it
    await Promise.race([this.queue, new Promise((r) => setTimeout(r, 2000).unref())]);
    if (this.config.stateFile !== undefined && this.applied) await this.saveFinalStates();
    this.stateLock?.release();
    clearTimeout(this.spareTimer);
    const spare = this.spare;
    this.spare = undefined;
    await Promise.all([...this.workers, ...(spare ? [spare] : [])].map((w) => w.close()));
    clearInterval(this.watchdogTimer);
    this.parked.releaseAll(this.workers);
  }

  /** Whether a running segment gets new sockets (its old listen sockets wait for the open step: DataPlane.commitSegment). */
  private socketsChanged(before: readonly SegmentConfig[], config: ProxyConfig): boolean {
    const was = new Map(before.map((s) => [s.name, s]));
    return config.segments.some((s) => {
      const r = was.get(s.name);
      return r !== undefined && socketsKey(r) !== socketsKey(s);
    });
  }

  /** At close: every stage's state as it stops, to the stateFile (a worker that does not answer within a second keeps its last checkpoint). */
  private async saveFinalStates(): Promise<void> {
    await Promise.all(this.workers.map(async (w) => {
      if (!w.alive || this.unseeded.has(w)) return;
      const taken = await Promise.race([w.checkpoint().catch(() => []), new Promise<StateCheckpoint[]>((r) => setTimeout(() => r([]), 1000).unref())]);
      this.keepCheckpoints(taken);
    }));
    await this.saveStates().catch(() => {}); // said by saveStates
  }

  private serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => {});
    return run;
  }

  private spawn(index: number): WorkerHandle {
    const handle = this.newWorker(index);
    this.answeredAt[index] = Date.now();
    this.downSince[index] = 0;
    return handle;
  }

  /** What a worker started now is started with (from the running config). */
  private workerSettings(config: ProxyConfig = this.config): ConstructorParameters<typeof WorkerHandle>[1] {
    return {
      batchSize: config.batchSize, io: this.io, socketReceiveBuffer: config.socketReceiveBuffer,
      streams: { max: config.streams.max, maxPerSegment: config.streams.maxPerSegment, idleMs: config.streams.idleSeconds * 1000 },
    };
  }

  /** Whether the spare was started with the settings a worker started now would get (a reload may have changed batchSize or socketReceiveBuffer since). */
  private spareFits(spare: WorkerHandle, config: ProxyConfig = this.config): boolean {
    return spare.settings === JSON.stringify(this.workerSettings(config));
  }

  /**
   * batchSize and socketReceiveBuffer are what a worker starts with: a change reaches the workers
   * (and the spare) started after it, not the running ones. Said, so that a change made for its
   * effect (a smaller batch for tail latency) is not taken for one that happened.
   */
  private sayWorkerSettingsChanged(config: ProxyConfig): void {
    const changed = (["batchSize", "socketReceiveBuffer"] as const).filter((k) => config[k] !== this.config[k]);
    if (changed.length === 0) return;
    const what = changed.map((k) => `${k} ${this.config[k]} -> ${config[k]}`).join(", ");
    this.emit("event", {
      type: "warning",
      message: `${what}: the running workers keep what they started with until they restart; workers started from now on (a restart after a crash or the watchdog, the spare) take the new value; restart the proxy to apply it everywhere`,
    });
  }

  /** A worker started with nothing to run yet: index -1 for the spare. */
  private newWorker(index: number): WorkerHandle {
    const handle: WorkerHandle = new WorkerHandle(
      index,
      this.workerSettings(),
      (event) => {
        if (event.type === "swap") {
          for (const i of event.renewed) {
            this.stuck.delete(`${event.segment}#${i}`);
            this.stuckCall.delete(`${event.segment}#${i}`);
          }
        }
        // a filter instance restarted from its checkpoint may have moved on from it at once (srtp
        // skips 2^22 SRTCP indexes): a second failure must not restore the same blob again
        if (event.type === "restarted" && this.workers.includes(handle)) this.checkpointNow(handle);
        if (event.type === "checkpoint-wanted") {
          if (this.workers.includes(handle)) this.checkpointWished(handle);
          return; // the proxy's own business
        }
        this.emit("event", event);
      },
      (code, signal) => {
        if (handle === this.spare) return this.spareLost(code, signal);
        this.parked.workerEnded(handle);
        const index = handle.index; // a spare's, once it took a failed worker's place
        if (this.closed || this.workers[index] !== handle) return;
        this.workerExits++;
        this.emit("event", { type: "worker-exit", worker: index, code, signal });
        // a crash loop must not spin: back off from 100 ms up to 5 s
        const now = Date.now();
        this.crashDelay = now - this.lastCrash > 10_000 ? 100 : Math.min(this.crashDelay * 2, 5000);
        this.lastCrash = now;
        if (!this.downSince[index]) this.downSince[index] = now; // a crash before it served keeps the first failure's time
        // unless a change replaced it meanwhile (applyNow does not wait out the delay)
        setTimeout(() => {
          if (this.workers[index] === handle) void this.restartWorker(index);
        }, this.crashDelay).unref();
      },
    );
    return handle;
  }

  /**
   * A worker started ahead, with nothing to run, that takes the place of the next one to fail: a
   * worker's start (a thread or process, and the runtime's modules loaded in it) is most of a
   * restart's time, and its segments lose every packet meanwhile. Started a second after the
   * proxy's start and after each restart that used it, so as not to compete with either.
   */
  private spare: WorkerHandle | undefined;
  private spareTimer: NodeJS.Timeout | undefined;
  /** The spare was ended from outside (or crashed): the next one waits longer, up to a minute. */
  private spareDelay = 1000;
  private spareStartedAt = 0;

  private spawnSpareSoon(delayMs = 1000): void {
    if (this.closed || this.spare || this.spareTimer || !this.config.spareWorker) return;
    this.spareTimer = setTimeout(() => {
      this.spareTimer = undefined;
      if (!this.closed && !this.spare) {
        this.spare = this.newWorker(-1);
        this.spareStartedAt = Date.now();
      }
    }, delayMs);
    this.spareTimer.unref();
  }

  private spareLost(code: number | null, signal: string | null): void {
    this.spare = undefined;
    // one that lived longer than the longest wait is not a spare that keeps dying: from 2 s again
    const lived = Date.now() - this.spareStartedAt;
    this.spareDelay = lived >= SPARE_DELAY_MAX_MS ? 2000 : Math.min(this.spareDelay * 2, SPARE_DELAY_MAX_MS);
    // not a worker's exit (nothing ran on it), but said: a spare that keeps dying leaves restarts slow
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    this.emit("event", { type: "warning", message: `the spare worker ${how}; another starts in ${this.spareDelay / 1000} s` });
    this.spawnSpareSoon(this.spareDelay);
  }

  /**
   * The spare as worker `index`, ready or still starting (its start is under way: further along
   * than a new worker's); undefined when there is none (or it was made with other settings).
   */
  private takeSpare(index: number): WorkerHandle | undefined {
    const spare = this.spare;
    if (!spare?.alive || !this.spareFits(spare)) return undefined;
    this.spare = undefined;
    // once it is up and serves, the next spare that dies starts the back-off afresh
    void spare.ready.then(() => {
      if (spare.alive) this.spareDelay = 1000;
    });
    spare.index = index;
    this.answeredAt[index] = Date.now();
    this.downSince[index] = 0;
    return spare;
  }

  private segmentsOf(config: ProxyConfig, worker: number): SegmentConfig[] {
    return config.segments.filter((s) => workerFor(s, config.workers) === worker);
  }

  /**
   * What worker `index`'s replacement gets with `segments` (of the config it is set up with): the
   * last checkpoints and watchdog history of the segments the worker ran in the running config,
   * the history only where the stage at that place is still the same filter. A segment moved in
   * from another worker, which goes on running there until the change commits, starts fresh.
   */
  private restoreFor(index: number, segments: SegmentConfig[]): { stuck: { segment: string; stage: number; count: number; call?: string }[]; checkpoints: StateCheckpoint[]; egressPorts: EgressPorts[] } {
    const ran = new Map(this.segmentsOf(this.config, index).map((s) => [s.name, s]));
    const kept = new Map(segments.filter((s) => ran.has(s.name)).map((s) => [s.name, s]));
    const sameFilter = (segment: string, stage: number): boolean =>
      ran.get(segment)?.chain[stage]?.filter === kept.get(segment)?.chain[stage]?.filter;
    return {
      stuck: this.stuckFor([...kept.values()]).filter((e) => sameFilter(e.segment, e.stage)),
      checkpoints: [...this.checkpoints.values()].filter((c) => kept.has(c.segment)),
      // the egress ports the old worker had (restartWorker carried its last snapshot)
      egressPorts: [...kept.keys()].flatMap((name) => {
        const last = this.carried.get(name);
        return last ? [egressPortsOf(last)] : [];
      }),
    };
  }

  private stuckFor(segments: SegmentConfig[]): { segment: string; stage: number; count: number; call?: string }[] {
    const names = new Set(segments.map((s) => s.name));
    const out: { segment: string; stage: number; count: number; call?: string }[] = [];
    for (const [key, count] of this.stuck) {
      const [segment, stage] = key.split("#") as [string, string];
      if (names.has(segment)) out.push({ segment, stage: Number(stage), count, call: this.stuckCall.get(key) });
    }
    return out;
  }

  private async applyNow(config: ProxyConfig): Promise<void> {
    if (this.closed) throw new ApplyError([{ segment: "", message: "the proxy is shutting down" }]);
    if (config.io !== this.config.io) {
      throw new ApplyError([{ segment: "", message: `io: cannot change from ${this.config.io} to ${config.io} while running; restart the proxy` }]);
    }
    if (config.gso !== this.config.gso) {
      throw new ApplyError([{ segment: "", message: `gso: cannot change from ${this.config.gso} to ${config.gso} while running; restart the proxy` }]);
    }
    if (config.streams.max !== this.config.streams.max || config.streams.maxPerSegment !== this.config.streams.maxPerSegment || config.streams.idleSeconds !== this.config.streams.idleSeconds) {
      throw new ApplyError([{ segment: "", message: "streams: cannot change while running (each worker sized its stream table at start); restart the proxy" }]);
    }
    if (config.stateFile !== this.config.stateFile) {
      throw new ApplyError([{ segment: "", message: `stateFile: cannot change from ${this.config.stateFile ?? "none"} to ${config.stateFile ?? "none"} while running; restart the proxy` }]);
    }
    if (config.workers !== this.workers.length) {
      throw new ApplyError([{ segment: "", message: `workers: cannot change from ${this.workers.length} to ${config.workers} while running; restart the proxy` }]);
    }
    const budget = this.descriptorProblems(config);
    if (budget.length > 0) throw new ApplyError(budget);
    const secrets = await resolveSecrets(config);
    if (secrets.problems.length > 0) throw new ApplyError(secrets.problems.map((message) => ({ segment: "", message })));
    const resolved = secrets.config;
    // a segment whose worker changes leaves its old worker at the commit and binds its ports on
    // the new one in the open step, once the old one has closed them
    const moved = this.applied ? this.movedSegments(config) : new Map<string, SegmentMove>();
    // at start nothing runs to be kept: a segment whose port is taken binds (and fails) after the commit
    const deferBind = this.applied ? [...this.portsReleasedFor(config), ...moved.keys()] : await this.portsTakenAtStart(config);
    const taken = this.applied ? await this.portsTakenBeforeCommit(config, deferBind) : [];
    if (taken.length > 0) throw new ApplyError(taken);
    // before the workers are fixed for this change: an export the watchdog ends (a stuck stage)
    // leaves a dead worker, which the next lines replace instead of refusing the change for it
    const movedIn = await this.stateOfMoved(moved, this.workers);
    // a worker killed from outside whose exit is not seen yet (its channel closed) exits first,
    // counted as any crash; then a worker that crashed and waits out its restart delay is replaced
    // now, and this change sets it up: refused for 'worker N is not running', an edit made then
    // would be lost until the next
    await Promise.all(this.workers.filter((w) => w.goingAway).map((w) => w.awaitExit(1000)));
    for (const [i, w] of this.workers.entries()) if (!w.alive) void this.restartWorker(i);
    const workers = [...this.workers];
    // a worker replaced meanwhile is set up by its own restart, from the config then running
    const current = (): WorkerHandle[] => workers.filter((w, i) => this.workers[i] === w);
    const seeding = new Map<WorkerHandle, ReturnType<Proxy["restoreFor"]>>();
    this.preparing = true;
    const prepared = await Promise.all(workers.map(async (w, i) => {
      const segments = this.segmentsOf(resolved, i);
      const oldWorkerGone = this.unseeded.get(w);
      if (oldWorkerGone) {
        await Promise.all([oldWorkerGone, w.ready]); // its ports are the old worker's until then
        seeding.set(w, this.restoreFor(i, segments));
      }
      const seed = seeding.get(w);
      // at start, what the stateFile saved of the last run of this process; later, the last state of
      // a segment that does not run (its port was taken): its stages are created again, and under
      // the same key they must go on from it, not from SRTCP index 0
      const notRunning = segments.filter((s) => !this.applied || this.notRunning.has(s.name) || this.savedElsewhere.has(s.name));
      const checkpoints = [...(seed?.checkpoints ?? []), ...(movedIn.get(i) ?? []), ...this.checkpointsOf(notRunning)];
      const egressPorts = [...(seed?.egressPorts ?? []), ...this.egressPortsMovedTo(i, moved, workers)];
      const handOver = [...moved].filter(([, m]) => m.from === i).map(([name]) => name);
      await this.parked.handTo(w, segments, workers);
      return w.prepare({ filters: resolved.filters, segments, deferBind, handOver, ...seed, checkpoints, egressPorts, exportPrepared: config.stateFile !== undefined });
    })).finally(() => (this.preparing = false));
    const errors = prepared.flat();
    // until every worker committed, a moved segment's old worker still runs it: a checkpoint it
    // answers meanwhile is behind the state its new worker restored (and saves now), and must not
    // replace it in the file (the new worker would then use indexes a restart restores again)
    for (const name of moved.keys()) this.moving.add(name);
    let committed: SegmentError[];
    const fromLive = (w: WorkerHandle, errors: SegmentError[]): SegmentError[] => (w.alive && this.workers.includes(w) ? errors : []);
    try {
      if (errors.length === 0) errors.push(...(await this.saveNewStages(current(), config)));
      if (errors.length > 0) {
        await Promise.all(current().map((w) => w.request({ type: "abort" })));
        throw new ApplyError(errors);
      }
      // the point of no return: from here the new config is the one running, whatever fails
      // a worker that died during the commit or the open step (the watchdog, a crash) is set up by
      // its restart from this config: its unanswered requests name no segment that does not run
      committed = (await Promise.all(current().map(async (w) => fromLive(w, await w.commit())))).flat();
    } finally {
      this.moving.clear();
    }
    if (this.applied) this.sayWorkerSettingsChanged(config);
    const before = this.running;
    this.config = config;
    this.running = config.segments;
    this.applied = true;
    this.carryMovedCounters(moved, workers);
    await this.parked.releaseEndedExcept(workers.filter((w, i) => !w.alive || this.workers[i] !== w), config.segments);
    // a port freed on one worker may be bound on another: every worker's closed (or parked) first
    if (deferBind.length > 0 || this.socketsChanged(before, config)) {
      await Promise.all(current().map((w) => w.released()));
      this.parked.releaseLiveExcept(current(), config.segments);
    }
    committed.push(...(await Promise.all(current().map(async (w) => {
      // a worker process takes what another (or it, for new sockets) handed over at its commit
      await this.parked.handTo(w, this.segmentsOf(config, this.workers.indexOf(w)), current());
      return fromLive(w, await w.open());
    }))).flat());
    // listen sockets left for a moved segment's new worker, or a segment's new sockets, and not
    // taken over (it failed, or died): closed; not those a worker that crashed just now (its exit
    // not seen yet) left for its replacement
    for (const w of current()) if (w.alive) this.parked.release(w, true);
    const failed = new Set(committed.map((e) => e.segment));
    for (const [segment, m] of moved) {
      if (failed.has(segment)) continue;
      const handedOver = (workers[m.to]?.reclaimed[segment] ?? 0) > 0;
      this.emit("event", { type: "segment-moved", segment, from: m.from, to: m.to, carried: (movedIn.get(m.to) ?? []).filter((c) => c.segment === segment).length, handedOver });
    }
    for (const [w, restore] of seeding) {
      this.unseeded.delete(w);
      const index = workers.indexOf(w);
      if (!w.alive || this.workers[index] !== w) continue; // gone again: its own restart reports
      this.downSince[index] = 0;
      void this.checkpointNow(w);
      this.emit("event", { type: "worker-restarted", worker: index, segments: this.segmentsOf(resolved, index).length, carried: restore.checkpoints.length, kept: keptBy(w) });
    }
    // forget the history of segments that are gone
    const names = new Set(config.segments.map((s) => s.name));
    for (const key of [...this.stuck.keys()]) {
      if (names.has(key.slice(0, key.lastIndexOf("#")))) continue;
      this.stuck.delete(key);
      this.stuckCall.delete(key);
    }
    for (const name of [...this.carried.keys()]) if (!names.has(name)) this.carried.delete(name);
    this.streamCarry.keepOnly(names);
    for (const seg of config.segments) {
      const base = this.carried.get(seg.name);
      if (base) this.carried.set(seg.name, carriedForChain(base, seg.chain));
    }
    for (const name of names) this.savedElsewhere.delete(name); // it runs here now: removing it later forgets it
    for (const [key, c] of [...this.checkpoints]) if (!names.has(c.segment) && !this.savedElsewhere.has(c.segment)) this.checkpoints.delete(key);
    this.recordNotRunning(config.segments, committed);
    // the spare follows the settings: none when off, a new one for a new batchSize or socketReceiveBuffer
    if (this.spare && (!config.spareWorker || !this.spareFits(this.spare, config))) {
      void this.spare.close().catch(() => {});
      this.spare = undefined;
    }
    this.spawnSpareSoon();
    if (this.config.stateFile !== undefined) void this.saveStates().catch(() => {}); // the removed segments out of it
    if (committed.length > 0) throw new ApplyError(committed, true);
  }

  /** Running segments that `config` puts on another worker (a changed or removed `worker` pin). */
  private movedSegments(config: ProxyConfig): Map<string, SegmentMove> {
    const before = new Map(this.running.map((s) => [s.name, workerFor(s, this.config.workers)]));
    const moved = new Map<string, SegmentMove>();
    for (const s of config.segments) {
      const from = before.get(s.name);
      const to = workerFor(s, config.workers);
      if (from !== undefined && from !== to && !this.notRunning.has(s.name)) moved.set(s.name, { from, to });
    }
    return moved;
  }

  /**
   * The state of each moved segment's stages, exported by its old worker now (fresher than the
   * last periodic checkpoint), by the worker it moves to: its new stages import it.
   */
  private async stateOfMoved(moved: ReadonlyMap<string, SegmentMove>, workers: readonly WorkerHandle[]): Promise<Map<number, StateCheckpoint[]>> {
    const byWorker = new Map<number, StateCheckpoint[]>();
    const from = new Set([...moved.values()].map((m) => m.from));
    await Promise.all([...from].map(async (i) => {
      const w = workers[i];
      if (!w?.alive || this.unseeded.has(w)) return; // restarting: the last checkpoints stand
      for (const c of await w.checkpoint()) this.checkpoints.set(checkpointKey(c), c);
    }));
    for (const c of this.checkpoints.values()) {
      const m = moved.get(c.segment);
      if (m) byWorker.set(m.to, [...(byWorker.get(m.to) ?? []), c]);
    }
    return byWorker;
  }

  /** The egress ports of the segments moving to worker `to`, as their old workers last reported them. */
  private egressPortsMovedTo(to: number, moved: ReadonlyMap<string, SegmentMove>, workers: readonly WorkerHandle[]): EgressPorts[] {
    const out: EgressPorts[] = [];
    for (const [name, m] of moved) {
      // a crashed old worker's replacement has no segments yet: its last snapshot was carried
      const last = m.to === to ? workers[m.from]?.lastSegments.find((s) => s.name === name) ?? this.carried.get(name) : undefined;
      if (last) out.push(egressPortsOf(last));
    }
    return out;
  }

  /** A moved segment's counters go on from what its old worker had counted when it let it go. */
  private carryMovedCounters(moved: ReadonlyMap<string, SegmentMove>, workers: readonly WorkerHandle[]): void {
    for (const [name, m] of moved) {
      const last = workers[m.from]?.removedAtCommit.find((s) => s.name === name);
      if (last) this.carried.set(name, withCarriedCounters(last, this.carried.get(name)));
      this.streamCarry.carry(name, m.from, Date.now());
    }
  }

  /**
   * New segments that want a port a running segment holds until this change removes it (or
   * moves it): they bind in the open step, after every worker's commit released the ports.
   */
  private portsReleasedFor(config: ProxyConfig): string[] {
    const next = new Map(config.segments.map((s) => [s.name, s]));
    const released = new EndpointIndex<true>();
    let any = false;
    for (const r of this.running) {
      const n = next.get(r.name);
      if (n && socketsKey(n) === socketsKey(r)) continue;
      for (const b of fixedBinds(r)) {
        released.add(b, true);
        any = true;
      }
    }
    if (!any) return [];
    const running = new Set(this.running.map((s) => s.name));
    return config.segments
      .filter((s) => !running.has(s.name) && fixedBinds(s).some((b) => released.clashing(b) !== undefined))
      .map((s) => s.name);
  }

  /** The segments of a first config that name a port another process holds (a typo's address still refuses the start). */
  private async portsTakenAtStart(config: ProxyConfig): Promise<string[]> {
    const taken: string[] = [];
    for (const seg of config.segments) if ((await bindProblem(seg, () => false))?.endsWith(PORT_TAKEN)) taken.push(seg.name);
    return taken;
  }

  /** After `segments` were (re)started: those the errors name do not run, the others do. */
  private recordNotRunning(segments: readonly SegmentConfig[], errors: readonly SegmentError[]): void {
    for (const s of segments) this.notRunning.delete(s.name);
    for (const e of errors) if (e.segment !== "") this.notRunning.set(e.segment, e.message.replace(`segment '${e.segment}': `, ""));
    // a segment the config no longer has is not missing
    const names = new Set(this.running.map((s) => s.name));
    for (const name of [...this.notRunning.keys()]) if (!names.has(name)) this.notRunning.delete(name);
  }

  /**
   * The segments that bind after the commit (new sockets for a running segment, or ports this
   * change frees) would fail there, and be down, if another process holds a port they name: each
   * such port is bound for a moment now, while the change can still be refused. Ports this proxy
   * holds are left out (the change frees them).
   */
  private async portsTakenBeforeCommit(config: ProxyConfig, deferBind: readonly string[]): Promise<SegmentError[]> {
    const running = new Map(this.running.map((s) => [s.name, s]));
    const deferred = new Set(deferBind);
    // indexed: a change that moves 10,000 segments (each at its own address on one port, say) looks each bind up at once
    const held = new EndpointIndex<true>();
    for (const s of this.running) {
      if (this.notRunning.has(s.name)) continue;
      for (const b of fixedBinds(s)) held.add(b, true);
    }
    const late = config.segments.filter((s) => {
      const r = running.get(s.name);
      return deferred.has(s.name) || (r !== undefined && (socketsKey(r) !== socketsKey(s) || this.notRunning.has(s.name)));
    });
    const errors: SegmentError[] = [];
    for (const seg of late) {
      const problem = await bindProblem(seg, (b) => held.clashing(b) !== undefined);
      if (problem) errors.push({ segment: seg.name, message: problem });
    }
    return errors;
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
    const peaks = socketsPerWorkerDuringChange(this.running, config.segments, config.workers, (s) => workerFor(s, config.workers));
    for (const [i, peak] of peaks.entries()) {
      const problem = descriptorShortfall(peak.sockets, DESCRIPTOR_RESERVE, label(peak.segments, i));
      if (problem) return [{ segment: "", message: problem }];
    }
    return [];
  }

  /**
   * A replacement's state, checkpointed as soon as it runs: a filter may move on from the state it
   * restored (srtp skips the SRTCP indexes the failed worker may have used), and a second failure
   * before the next periodic checkpoint must restore from there, not from the same blob again.
   */
  private checkpointNow(w: WorkerHandle): void {
    this.checkpointDue.add(w);
    this.refreshWorker(w)
      .then((taken) => {
        // taken (not skipped for a refresh in flight: the next tick takes it then, and saves): to the file
        // at once. Whether it was taken, not whether w is still due: a round may have made it due again
        // meanwhile (and skipped it, as this one was in flight), and without this save nothing would
        // write what it kept until the next round
        if (taken && this.config.stateFile !== undefined && !this.closed) return this.saveStates();
      })
      .catch(() => {}); // gone again: its own restart takes over; a failed write is said by saveStates
  }

  /** Workers asked by refreshWorker() that have not answered yet. */
  private readonly refreshing = new Set<WorkerHandle>();
  /** Workers whose checkpoint is due (taken at their next refresh). */
  private readonly checkpointDue = new Set<WorkerHandle>();

  /**
   * Every REFRESH_TICK_MS: every stage's state when a checkpoint is due (every stateCheckpointMs,
   * which may be shorter than a second), and each worker's counters once a second.
   */
  private async refresh(): Promise<void> {
    const every = this.config.stateCheckpointMs;
    const now = Date.now();
    if (every > 0 && now - this.lastCheckpointAt >= every) {
      this.lastCheckpointAt = now;
      for (const w of this.workers) this.checkpointDue.add(w);
    }
    this.dropNotDue();
    const statsDue = now - this.lastStatsAt >= STATS_EVERY_MS;
    if (statsDue) this.lastStatsAt = now;
    // a checkpoint brings the counters too; a worker due for neither is not asked
    const took = await Promise.all(this.workers.map((w) => (statsDue || this.checkpointDue.has(w) ? this.refreshWorker(w) : false)));
    // none taken (each due worker still answering a refresh): nothing new to write; the next tick tries again
    if (took.includes(true) && !this.closed) await this.afterCheckpoint();
  }

  /** Workers replaced, or dead (their replacement takes one once it runs: checkpointNow), are not due. */
  private dropNotDue(): void {
    for (const w of this.checkpointDue) if (!w.alive || !this.workers.includes(w)) this.checkpointDue.delete(w);
  }

  /**
   * A filter of worker `w` asked for a checkpoint soon (ABI 1.8: srtp, for a new source, whose
   * roll-over counter a restore without it could not tell): taken at once, or once no stateFile
   * write is under way (asked rounds never queue writes behind a slow disk; the periodic ones go
   * on, in memory too), and at most one such round every WISHED_ROUND_GAP_MS (or more: see there).
   */
  private checkpointWished(w: WorkerHandle): void {
    if (this.config.stateCheckpointMs <= 0 || this.closed) return;
    this.wished.add(w); // due only when the round comes: the periodic tick does not take it sooner
    this.scheduleWishedRound();
  }

  private scheduleWishedRound(): void {
    if (this.wishedRound !== undefined || this.closed) return;
    const gap = Math.max(WISHED_ROUND_GAP_MS, WISHED_ROUND_WRITE_FACTOR * this.lastStateWriteMs);
    const wait = Math.max(0, this.lastWishedRoundAt + gap - Date.now());
    this.wishedRound = setTimeout(() => {
      this.wishedRound = undefined;
      void this.takeDueCheckpoints();
    }, wait);
    this.wishedRound.unref();
  }

  /** The wished checkpoints and any due, now, if no stateFile write is under way (else its end calls again). */
  private async takeDueCheckpoints(): Promise<void> {
    if (this.closed || this.stateWritesRunning > 0) return;
    for (const w of this.wished) if (this.workers.includes(w)) this.checkpointDue.add(w);
    this.wished.clear();
    this.dropNotDue();
    const due = this.workers.filter((w) => this.checkpointDue.has(w));
    if (due.length === 0) return;
    this.lastWishedRoundAt = Date.now();
    const took = await Promise.all(due.map((w) => this.refreshWorker(w)));
    // none taken (each worker still answering a refresh): nothing to write; the periodic tick takes them within 100 ms
    if (took.includes(true) && !this.closed) await this.afterCheckpoint();
  }

  /** A round of checkpoints taken: saved to the stateFile, or, without one, said once that a process restart loses them. */
  private async afterCheckpoint(): Promise<void> {
    if (this.config.stateFile !== undefined) {
      await this.saveStates().catch(() => {}); // said by saveStates; the next round tries again
      return;
    }
    if (this.saidNoStateFile || this.checkpoints.size === 0) return;
    this.saidNoStateFile = true;
    const filters = [...new Set([...this.checkpoints.values()].map((c) => c.family ?? c.filter))].sort();
    this.emit("event", {
      type: "warning",
      message: `stateFile is not set: the state of ${this.checkpoints.size} stage(s) (filters ${filters.join(", ")}) lives in this process only, and a restart of the proxy starts them afresh (an srtp stage would send its keystream twice, RFC 3711 section 9.1, and accept replays): set stateFile (docs/proxy.md)`,
    });
  }

  /** A worker's checkpoints, as the last state of their stages (but see `moving`). */
  private keepCheckpoints(taken: readonly StateCheckpoint[]): void {
    for (const c of taken) if (!this.moving.has(c.segment)) this.checkpoints.set(checkpointKey(c), c);
  }

  /** The checkpoints kept for `segments`. */
  private checkpointsOf(segments: readonly SegmentConfig[]): StateCheckpoint[] {
    const names = new Set(segments.map((s) => s.name));
    return [...this.checkpoints.values()].filter((c) => names.has(c.segment));
  }

  /**
   * Before a commit, with a stateFile: the states of the stages the change creates, as they are
   * before their first packet, go to the file. A restored one replaces its checkpoint (srtp moved
   * its SRTCP indexes on: a crash right after must not restore the same blob again); a fresh one
   * is saved where its stage has none yet (a new stage under a key used in a run the file knows
   * nothing of is the operator's, docs/proxy.md). Returns why the change cannot go on, if it cannot.
   */
  private async saveNewStages(workers: readonly WorkerHandle[], config: ProxyConfig): Promise<SegmentError[]> {
    if (config.stateFile === undefined) return [];
    if (!this.applied) this.restoredStages = workers.reduce((n, w) => n + w.prepared.restored.length, 0);
    let added = 0;
    for (const w of workers) {
      for (const c of w.prepared.restored) {
        this.checkpoints.set(checkpointKey(c), c);
        added++;
      }
      for (const c of w.prepared.fresh) {
        if (this.checkpoints.has(checkpointKey(c))) continue;
        this.checkpoints.set(checkpointKey(c), c);
        added++;
      }
    }
    // a change that brings no state (a segment removed, a stateless stage) does not wait on the file, nor fail with it
    if (added === 0) return [];
    try {
      await this.saveStates();
      return [];
    } catch (err) {
      return [{ segment: "", message: `stateFile ${config.stateFile}: cannot save the new stages' state, so they do not start: ${(err as Error).message}` }];
    }
  }

  /**
   * Another process took the stateFile's lock over: this one stalled past LOCK_STALE_MS (stopped,
   * frozen). Both would write the file: this one stops, and says so.
   */
  private stateLockTaken(holder: string): void {
    this.emit("event", {
      type: "error", segment: "",
      message: `stateFile ${this.config.stateFile}: another proxy took its lock (${holder}) after this one did not refresh it for ${LOCK_STALE_MS / 1000} s; ` +
        "this proxy no longer saves its stages' state there, and a change that adds stages is refused: stop one of the two",
    });
  }

  /** Writes the checkpoints of the running config's and the applying config's segments to the stateFile (after the writes before it). */
  private saveStates(): Promise<void> {
    const path = this.config.stateFile;
    if (path === undefined) return Promise.resolve();
    if (this.queuedWrite) return this.queuedWrite;
    this.stateWritesRunning++;
    const write = this.stateWrites.then(async () => {
      this.queuedWrite = undefined; // under way: a save asked from now on writes after it
      try {
        // asked now, not from the last refresh: a process frozen past LOCK_STALE_MS may write before
        // its timer runs; and again before the rename, as the sync before it can take long
        const stillOurs = (): void => {
          const holder = this.stateLock?.check();
          if (holder !== undefined) throw new Error(`another proxy holds its lock now (${holder}): this one no longer writes it`);
        };
        stillOurs();
        const began = performance.now();
        await writeStateFile(path, [...this.checkpoints.values()], stillOurs);
        this.lastStateWriteMs = performance.now() - began;
        this.stateWriteFailure = "";
      } catch (err) {
        const message = `stateFile ${path}: cannot save the stages' state: ${(err as Error).message}; a restart of the proxy process now would restore older states`;
        if (message !== this.stateWriteFailure) this.emit("event", { type: "error", segment: "", message });
        this.stateWriteFailure = message;
        throw err;
      }
    });
    this.queuedWrite = write;
    this.stateWrites = write.catch(() => {}).finally(() => {
      this.stateWritesRunning--;
      // a filter's wish that came while it was written (see stateWritesRunning)
      if (this.stateWritesRunning === 0 && this.wished.size > 0) this.scheduleWishedRound();
    });
    return write;
  }

  /**
   * One worker's counters, or its state when a checkpoint is due (one due while it was busy is taken
   * at its next free second, not a whole period later). A worker that has not answered the last
   * request (busy, or stuck until the watchdog acts) is not asked again: requests would pile up.
   * Whether it took the checkpoint (whoever took one saves it).
   */
  private async refreshWorker(w: WorkerHandle): Promise<boolean> {
    if (!w.alive || this.refreshing.has(w)) return false;
    this.refreshing.add(w);
    let took = false;
    try {
      if (this.checkpointDue.delete(w)) {
        this.keepCheckpoints(await w.checkpoint());
        took = true;
      } else {
        await w.refresh(); // counters to carry across a restart: per-stream stats are not carried
      }
    } finally {
      this.refreshing.delete(w);
    }
    const i = this.workers.indexOf(w);
    if (w.alive && i >= 0) this.answeredAt[i] = Date.now();
    return took;
  }

  private checkWatchdog(): void {
    // stopping: close() kills a worker that does not answer; there is no restart to announce or count
    if (this.closed) return;
    const limit = this.config.watchdog.stuckMs;
    this.workers.forEach((w, index) => {
      if (!w.alive) return;
      const slot = w.beacon.stuckSlot(limit);
      if (slot === 0) return;
      // stuck in a change's probe of a running instance: the change is refused for it; the stages
      // running on that instance did not fail (the worker's restart is all they pay)
      const probed = probedSlotOf(slot);
      const culprit = w.instances.find((i) => i.id === (probed ?? slot));
      const callName = w.beacon.callName();
      if (probed === undefined) {
        for (const u of culprit?.users ?? []) {
          const key = `${u.segment}#${u.stage}`;
          this.stuck.set(key, (this.stuck.get(key) ?? 0) + 1);
          if (callName) this.stuckCall.set(key, callName);
          else this.stuckCall.delete(key);
        }
      }
      // an instance the worker has not reported yet is one a change is creating contexts in (its name in the beacon)
      const name = culprit?.filter ?? w.beacon.filterName();
      this.watchdogRestarts++;
      this.emit("event", {
        type: "watchdog",
        worker: index,
        filter: name || `slot ${slot}`,
        segments: probed === undefined ? culprit?.users.map((u) => u.segment) ?? [] : [],
        stuckMs: limit,
        call: callName,
      });
      const what = name ? `filter '${name}'` : "a filter of the change";
      const call = slot === STARTING_SLOT ? "its _initialize or msm_configure_root" : "a new stage's msm_context_create";
      // a change's own call (a probe, an instance's start, or one of an instance the change made):
      // a running stage's packet call stuck during a change is not the change's
      const changeCall = probed !== undefined || slot === STARTING_SLOT || !culprit;
      const when = this.preparing && changeCall ? ` while the change was prepared (an endless loop in ${call}?)` : "";
      // a change's call says which above; any other names the export it was in, as the harness does
      const where = when === "" && callName ? ` (in ${callName})` : "";
      void this.restartWorker(index, `was stuck in ${what}${where} for over ${limit} ms${when}; the watchdog restarted it`);
    });
  }

  /**
   * Replaces a worker that is stuck or gone. The old one is killed at once (an apply waiting on
   * it then fails instead of hanging); the new one is set up in turn with applies, from the
   * config that runs and the stages' last checkpoints.
   */
  private async restartWorker(index: number, why?: string): Promise<void> {
    if (this.closed) return;
    const old = this.workers[index]!;
    // down since its first failure: a crash loop must not look fresh at every restart
    const downSince = this.downSince[index] || Date.now();
    for (const s of old.lastSegments) this.carried.set(s.name, withCarriedCounters(s, this.carried.get(s.name)));
    for (const { name } of this.segmentsOf(this.config, index)) this.streamCarry.carry(name, index, Date.now());
    const spare = this.takeSpare(index);
    if (!spare) this.spare?.close().catch(() => {}); // one made with other settings: a fresh one follows this restart
    if (!spare) this.spare = undefined;
    const replacement = spare ?? this.spawn(index);
    this.downSince[index] = downSince; // until it serves its segments again
    this.workers[index] = replacement; // from now on, the old one's exit is not news
    // a replacement that died before it was set up: the worker it replaced may still be ending,
    // holding the ports (a thread being terminated), and the next one waits for both
    const predecessorGone = this.unseeded.get(old);
    this.unseeded.delete(old);
    // its listen sockets stay bound, their queues too, for the replacement to read (docs/proxy.md)
    replacement.reclaimFrom = old.keepOwner;
    const oldGone = Promise.all([old.kill(why), predecessorGone]).then(() => undefined);
    this.unseeded.set(replacement, oldGone);
    await oldGone;
    await this.serially(() => this.setUpReplacement(index, replacement, spare !== undefined).finally(() => {
      if (replacement.reclaimFrom === old.keepOwner) replacement.reclaimFrom = undefined;
      // a replacement that died before it served leaves what it did not take to the next one (whose
      // restart is under way): released by whichever restart of this place serves
      this.parked.restartDone(index, old, this.closed || (replacement.alive && this.workers[index] === replacement));
    }));
    this.spawnSpareSoon();
  }

  /** A restart's second half: the replacement gets the worker's segments, from the config that runs and their last checkpoints. */
  private async setUpReplacement(index: number, replacement: WorkerHandle, fromSpare: boolean): Promise<void> {
    if (this.closed || this.workers[index] !== replacement || !this.unseeded.has(replacement)) return; // an apply set it up
    await replacement.ready;
    const secrets = await resolveSecrets(this.config);
    for (const message of secrets.problems) this.emit("event", { type: "error", segment: "", message: `after worker restart: ${message}` });
    const segments = this.segmentsOf(secrets.config, index);
    const restore = this.restoreFor(index, segments);
    await this.parked.handTo(replacement, segments, this.workers);
    const errors = await replacement.prepare({ filters: secrets.config.filters, segments, ...restore, exportPrepared: this.config.stateFile !== undefined });
    // the restored states go to the stateFile before their first packet, as a change's do
    if (errors.length === 0) errors.push(...(await this.saveNewStages([replacement], this.config)));
    if (errors.length > 0) {
      for (const e of errors) this.emit("event", { type: "error", segment: e.segment, message: `after worker restart: ${e.message}` });
      await replacement.request({ type: "abort" });
      return;
    }
    const late = [...(await replacement.commit()), ...(await replacement.open())];
    this.recordNotRunning(segments, late);
    this.unseeded.delete(replacement);
    for (const e of late) this.emit("event", { type: "error", segment: e.segment, message: `after worker restart: ${e.message}` });
    if (!replacement.alive || this.workers[index] !== replacement) return; // gone again: its own restart reports
    this.downSince[index] = 0;
    void this.checkpointNow(replacement);
    this.emit("event", { type: "worker-restarted", worker: index, segments: segments.length, carried: restore.checkpoints.length, spare: fromSpare, kept: keptBy(replacement) });
  }
}

/** The listen sockets a worker's last change took over (WorkerHandle.reclaimed). */
function keptBy(worker: WorkerHandle): number {
  return Object.values(worker.reclaimed).reduce((a, b) => a + b, 0);
}

/** A segment as it last counted, its stages down: what /stats shows while its worker is replaced. */
function shownDown(last: SegmentSnapshot, worker: number): SegmentSnapshot & { worker: number } {
  return { ...last, stages: last.stages.map((st) => ({ ...st, state: "down" as const })), worker };
}
