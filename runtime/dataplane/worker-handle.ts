// The main thread's side of one data-plane worker: start it (thread, or process under Bun),
// talk to it by request id, watch its beacon, and terminate it when told.
import { fork, type ChildProcess } from "node:child_process";
import { closeSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { Worker } from "node:worker_threads";
import { BEACON_BYTES, WatchdogBeacon } from "./watchdog-beacon.js";
import { loadAddon, stopReadingOf } from "./batched-io.js";
import type { InstanceUsers, WorkerInit, WorkerReply, WorkerRequest } from "./worker-protocol.js";
import type { DataPlaneEvent, SegmentError, StateCheckpoint } from "./dataplane.js";
import type { SegmentSnapshot } from "./snapshot.js";

const ENTRY = new URL("./worker-entry.js", import.meta.url);
const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

/** Where a worker process's watchdog beacon lives (a file both processes map). */
const BEACON_DIR = process.platform === "linux" ? "/dev/shm" : tmpdir();

/**
 * Removes the beacon files of proxies that are gone: a proxy killed together with its workers
 * (SIGKILL to the process group, an OOM kill) leaves its files, 96 bytes each, until the next
 * proxy's start. A file whose proxy (the pid in its name) still runs is kept.
 */
export function removeStaleBeacons(): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(BEACON_DIR);
  } catch {
    return 0;
  }
  for (const name of names) {
    const m = /^msm-beacon-(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
      continue; // its proxy runs
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") continue; // another user's: not ours to judge
    }
    rmSync(join(BEACON_DIR, name), { force: true });
    removed++;
  }
  return removed;
}

export type Reply = Extract<WorkerReply, { type: "reply" }>;
type WorkerRequestBody = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, "id"> : never) : never;

/** How workers run: threads under Node; processes under Bun (its threads cannot be terminated inside WebAssembly). */
export const WORKER_MODE: "thread" | "process" = isBun ? "process" : "thread";

/**
 * A worker process's environment: the proxy's, with Bun's idle-GC timer off. That timer starts a
 * collection every second in which the heap grew at all, and a data plane's heap always grows a
 * little (its IPC, its timers): measured, an idle worker collected about once a second, pauses of
 * about 1 ms each, and the idle proxy spent 8-9 ms of CPU a second against 2-3 without the timer
 * (docs/batched-io.md). JavaScriptCore's own collections, paced by allocation, go on.
 */
export function workerProcessEnv(): NodeJS.ProcessEnv {
  return { ...process.env, BUN_GC_TIMER_DISABLE: "1" };
}

/** The parts of a stats round received before its reply (worker-protocol.ts, "part"). */
interface RoundParts {
  segments: SegmentSnapshot[];
  texts: string[];
  checkpoints: StateCheckpoint[];
}

/**
 * A stats reply with the parts that came before it in front of its own segments and states. An
 * error reply (the round failed part way) has none: its parts are dropped, not passed off as a round.
 */
function withParts(reply: Reply, parts: RoundParts | undefined): Reply {
  if (!parts || (reply.segments === undefined && reply.segmentsText === undefined)) return reply;
  return {
    ...reply,
    segments: [...parts.segments, ...(reply.segments ?? [])],
    ...(reply.segmentsText ? { segmentsText: [...parts.texts, ...reply.segmentsText] } : {}),
    ...(reply.checkpoints ? { checkpoints: [...parts.checkpoints, ...reply.checkpoints] } : {}),
  };
}

/**
 * Turns V8's allocation-site pretenuring off, process-wide, before the first worker thread starts.
 * A worker builds every segment's counters once a second, each part alive until it is sent:
 * objects that survive a young-generation collection or two, from the same allocation sites each
 * time, so V8 took to allocating them in the old generation directly, where they stayed as garbage
 * until a full collection. With 5,000 segments on each of 2 workers, each worker's heap went from
 * 100 to 330 MB and back every 12 s or so, and the proxy's RSS swung between 650 and 1,200 MB (the
 * 10,000-segment bench read it over 1 GiB); without pretenuring each worker's heap stays at 80-120
 * MB. What the packet path allocates (a subarray view per packet copied, docs/benchmarks.md (a))
 * dies young, so nothing there gains from pretenuring.
 */
let pretenuringOff = false;
function turnPretenuringOff(): void {
  if (pretenuringOff) return;
  pretenuringOff = true;
  setFlagsFromString("--no-allocation-site-pretenuring");
}

/** The next worker's keepOwner: unique in the process (tests run several proxies in one). */
let nextKeepOwner = 0;
/** The descriptor a worker process finds its end of the keep channel at (its stdio's fifth). */
const KEEP_CHANNEL_FD = 4;
/** Most rounds of sending a replacement its predecessor's listen sockets (each a channel's worth). */
const HAND_OVER_ROUNDS = 10_000;

export class WorkerHandle {
  readonly beacon: WatchdogBeacon;
  /**
   * The worker's number among every worker this process started: its listen sockets, when it
   * ends with them open (killed, crashed), stay bound under it for its replacement to take over
   * (reclaimFrom), until the proxy releases them (releaseParked). A thread parks them as it ends;
   * a process sends the proxy duplicates as it opens and closes them (keepChannel).
   */
  readonly keepOwner = nextKeepOwner++;
  /** A worker process with batched I/O: the proxy's end of the channel for its listen sockets (-1: none, or closed at its exit). */
  keepChannel = -1;
  /** It sends its listen sockets over a keep channel: the proxy holds duplicates, parked under keepOwner. */
  sharesKept = false;
  /**
   * The keepOwner of the worker this one replaces, while its restart sets it up: each prepare
   * first closes the listen sockets that worker left at places its segments do not listen on.
   */
  reclaimFrom: number | undefined;
  instances: InstanceUsers[] = [];
  /**
   * Every segment's counters as of the worker's last round (what a restart carries on from).
   * Kept as the JSON text the worker sent, parsed when read: 10,000 segments' snapshots as objects,
   * replaced every second, lived just long enough to reach the old generation and swung the main
   * thread's heap by 150 MB.
   */
  get lastSegments(): SegmentSnapshot[] {
    if (this.lastText) {
      this.last = this.lastText.flatMap((text) => JSON.parse(text) as SegmentSnapshot[]);
      this.lastText = undefined;
    }
    return this.last;
  }

  set lastSegments(segments: SegmentSnapshot[]) {
    this.last = segments;
    this.lastText = undefined;
  }

  private last: SegmentSnapshot[] = [];
  private lastText: string[] | undefined;
  private readonly pending = new Map<number, (reply: Reply) => void>();
  /** The parts of the answers to stats requests received so far (worker-protocol.ts, "part"). */
  private readonly parts = new Map<number, RoundParts>();
  private nextId = 1;
  private thread: Worker | undefined;
  private child: ChildProcess | undefined;
  private beaconFile: string | undefined;
  private exited = false;
  readonly ready: Promise<void>;
  /** Set once `ready` resolved (the worker answered, or exited). */
  isReady = false;
  /** The settings it was started with (batchSize, socketReceiveBuffer, ...), fixed for its life: a spare made with others is not taken. */
  readonly settings: string;
  /** Resolves once the worker's exit has been seen. */
  private readonly gone: Promise<void>;

  /** Resolves once the worker's exit has been seen (a thread's parked sockets are parked by then). */
  whenGone(): Promise<void> {
    return this.gone;
  }

  constructor(
    /** Its place among the proxy's workers; a spare gets one when it takes a failed worker's place. */
    public index: number,
    init: Omit<WorkerInit, "beacon" | "beaconFile" | "index">,
    private readonly onEvent: (event: DataPlaneEvent) => void,
    private readonly onExit: (code: number | null, signal: string | null) => void,
  ) {
    this.settings = JSON.stringify(init);
    let resolveReady!: () => void;
    this.ready = new Promise<void>((r) => (resolveReady = r)).then(() => void (this.isReady = true));
    let resolveGone!: () => void;
    this.gone = new Promise((r) => (resolveGone = r));
    const onMessage = (m: WorkerReply): void => {
      // listen sockets it sent come before the reply that follows them (a closed one must be let go
      // of before the next step binds its port)
      if (this.keepChannel >= 0) loadAddon()?.receiveKept(this.keepChannel, this.keepOwner);
      if (m.type === "ready") resolveReady();
      else if (m.type === "event") this.onEvent(m.event);
      else if (m.type === "part") {
        let soFar = this.parts.get(m.id);
        if (!soFar) this.parts.set(m.id, (soFar = { segments: [], texts: [], checkpoints: [] }));
        soFar.segments.push(...m.segments);
        if (m.segmentsText !== undefined) soFar.texts.push(m.segmentsText);
        soFar.checkpoints.push(...m.checkpoints);
        // taken once the loop has turned: what waits for it (a /healthz, a packet of the agent's)
        // goes before the worker's next part
        setImmediate(() => this.partTaken(m.id));
      } else {
        const waiter = this.pending.get(m.id);
        this.pending.delete(m.id);
        waiter?.(withParts(m, this.parts.get(m.id)));
        this.parts.delete(m.id);
      }
    };
    const exit = (code: number | null, signal: string | null = null): void => {
      if (this.exited) return;
      this.exited = true;
      this.closeKeepChannel();
      for (const waiter of this.pending.values()) waiter({ type: "reply", id: 0, errors: [{ segment: "", message: `${this.name} ${this.killedFor ?? "exited"}` }] });
      this.pending.clear();
      this.parts.clear();
      this.cleanupBeacon();
      resolveReady();
      this.onExit(code, signal);
      resolveGone();
    };
    if (WORKER_MODE === "thread") {
      turnPretenuringOff();
      const sab = new SharedArrayBuffer(BEACON_BYTES);
      this.beacon = new WatchdogBeacon(sab);
      this.thread = new Worker(ENTRY, { workerData: { ...init, index, beacon: sab, keepOwner: this.keepOwner } satisfies WorkerInit });
      this.thread.on("message", onMessage);
      this.thread.on("error", (err) => this.onEvent({ type: "error", segment: "", message: `${this.name}: ${err.stack ?? err}` }));
      this.thread.on("exit", exit);
    } else {
      this.beaconFile = join(BEACON_DIR, `msm-beacon-${process.pid}-${index < 0 ? "spare" : index}-${Date.now()}`);
      writeFileSync(this.beaconFile, new Uint8Array(BEACON_BYTES));
      const bun = (globalThis as unknown as { Bun: { mmap(path: string): Uint8Array } }).Bun;
      this.beacon = new WatchdogBeacon(bun.mmap(this.beaconFile));
      // its listen sockets outlive it through duplicates it sends the proxy over a channel of their own
      const pair = init.io.send === "native" ? loadAddon()?.channelPair() : undefined;
      // the beacon file's name as an argument too: a worker whose proxy dies before the init arrives removes it all the same
      try {
        this.child = fork(ENTRY, [this.beaconFile], { stdio: ["ignore", "inherit", "inherit", "ipc", ...(pair ? [pair[1]] : [])], env: workerProcessEnv() });
      } catch (err) {
        if (pair) closeSync(pair[0]); // no worker to keep sockets for
        throw err;
      } finally {
        if (pair) closeSync(pair[1]); // the worker's now
      }
      if (pair) {
        this.keepChannel = pair[0];
        this.sharesKept = true;
      }
      this.child.on("message", (m) => onMessage(m as WorkerReply));
      this.child.on("exit", (code, signal) => exit(code, signal));
      // a message sent to a worker that is going away (killed, its channel closed before its exit
      // is seen) fails here: unheard, Node and Bun throw it and the whole proxy ends; its exit
      // follows, and the restart answers for it
      this.child.on("error", (err) => {
        if (!this.exited) this.onEvent({ type: "error", segment: "", message: `${this.name}: ${err.message}` });
      });
      this.child.send({ ...init, index, beaconFile: this.beaconFile, keepOwner: this.keepOwner, ...(pair ? { keepChannel: KEEP_CHANNEL_FD } : {}) } satisfies WorkerInit);
    }
  }

  /** How its messages name it: the spare has no place yet. */
  get name(): string {
    return this.index < 0 ? "the spare worker" : `worker ${this.index}`;
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** A worker process whose channel closed before its exit was seen (killed from outside, under Bun): it is going away. */
  get goingAway(): boolean {
    return !this.exited && this.child !== undefined && !this.child.connected;
  }

  /** Waits for a going-away worker's exit (counted and handled as any exit), killing it after `ms`. */
  async awaitExit(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), ms)));
    const outcome = await Promise.race([this.gone, late]);
    clearTimeout(timer);
    if (outcome === "late") await this.kill();
    await this.gone;
  }

  request(message: WorkerRequestBody): Promise<Reply> {
    if (this.exited) return Promise.resolve({ type: "reply", id: 0, errors: [{ segment: "", message: `${this.name} is not running` }] });
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      const full = { ...message, id } as WorkerRequest;
      if (this.thread) this.thread.postMessage(full);
      else if (!this.child!.connected) this.answerGone(id);
      else this.child!.send(full, (err) => err && this.answerGone(id));
    });
  }

  /** Tells the worker a part of round `id` was taken (worker-protocol.ts, "partTaken"). */
  private partTaken(id: number): void {
    if (this.exited) return;
    const message: WorkerRequest = { type: "partTaken", id };
    if (this.thread) this.thread.postMessage(message);
    else if (this.child!.connected) this.child!.send(message, () => {}); // one going away: its exit answers the round
  }

  /** Answers a request a worker process can no longer receive, as its exit answers those it had. */
  private answerGone(id: number): void {
    const waiter = this.pending.get(id);
    this.pending.delete(id);
    this.parts.delete(id);
    waiter?.({ type: "reply", id: 0, errors: [{ segment: "", message: `${this.name} ${this.killedFor ?? "exited"}` }] });
  }

  /** The states of the stages the last successful prepare created (see DataPlane.preparedStates). */
  prepared: { restored: StateCheckpoint[]; fresh: StateCheckpoint[] } = { restored: [], fresh: [] };

  async prepare(request: Extract<WorkerRequest, { type: "prepare" }>["request"]): Promise<SegmentError[]> {
    const reclaim = this.reclaimFrom !== undefined ? { reclaimFrom: this.reclaimFrom } : {};
    const reply = await this.request({ type: "prepare", request: { ...request, ...reclaim } });
    this.prepared = reply.prepared ?? { restored: [], fresh: [] };
    return reply.errors;
  }

  async commit(): Promise<SegmentError[]> {
    const reply = await this.request({ type: "commit" });
    this.removedAtCommit = reply.segments ?? [];
    // they are no longer this worker's: a crash before the next report must not carry them again
    const removed = new Set(this.removedAtCommit.map((s) => s.name));
    if (removed.size > 0) this.lastSegments = this.lastSegments.filter((s) => !removed.has(s.name));
    return reply.errors;
  }

  /** The counters of the segments the last commit took out of this worker, as they ended. */
  removedAtCommit: SegmentSnapshot[] = [];

  /** Resolves once the ports of the segments the last commit took out are free. */
  async released(): Promise<void> {
    await this.request({ type: "released" });
  }

  /** Per segment, the listen sockets the last change (prepare to open) took over with what they held. */
  reclaimed: Record<string, number> = {};

  /** The apply's last step: binds what waited for ports the commit released. */
  async open(): Promise<SegmentError[]> {
    const reply = await this.request({ type: "open" });
    this.reclaimed = reply.reclaimed ?? {};
    this.keep(reply);
    return reply.errors;
  }

  /**
   * Every segment's counters with its per-stream stats, now (a /stats or /metrics read), kept as
   * `lastSegments` until the next round; the last round's when the worker does not answer (killed,
   * it answers with an error).
   */
  async stats(): Promise<SegmentSnapshot[]> {
    const reply = await this.request({ type: "stats", streams: true });
    if (reply.instances) this.instances = reply.instances;
    if (reply.segments) this.lastSegments = reply.segments;
    return this.lastSegments;
  }

  /** The proxy's once-a-second round: the counters (without per-stream stats) kept as `lastSegments`. */
  async refresh(): Promise<void> {
    this.keep(await this.request({ type: "stats", streams: false, asText: true }));
  }

  /** A refresh with every running stage's state (see DataPlane.roundSlice). */
  async checkpoint(): Promise<StateCheckpoint[]> {
    const reply = await this.request({ type: "stats", checkpoint: true, streams: false, asText: true });
    this.keep(reply);
    return reply.checkpoints ?? [];
  }

  private keep(reply: Reply): void {
    if (reply.instances) this.instances = reply.instances;
    if (reply.segmentsText) {
      this.last = [];
      this.lastText = reply.segmentsText;
    }
  }

  /**
   * A worker process: hands it the listen sockets the proxy holds for worker `owner` (at `place`,
   * "": all; handedOnly: those that worker handed over), a channel's worth at a time, each read by
   * the worker before the next.
   */
  async handOver(owner: number, place: string, handedOnly: boolean): Promise<void> {
    const addon = this.keepChannel >= 0 ? loadAddon() : null;
    if (!addon) return;
    let left = addon.sendParked(this.keepChannel, owner, place, handedOnly);
    for (let round = 0; left > 0 && round < HAND_OVER_ROUNDS && this.alive; round++) {
      await this.request({ type: "kept" });
      left = addon.sendParked(this.keepChannel, owner, place, handedOnly);
    }
  }

  private closeKeepChannel(): void {
    if (this.keepChannel < 0) return;
    loadAddon()?.receiveKept(this.keepChannel, this.keepOwner); // what it sent before it ended
    closeSync(this.keepChannel);
    this.keepChannel = -1;
  }

  /** Why kill() ended it, for the requests it leaves unanswered ("was stuck in filter x ..."). */
  private killedFor: string | undefined;

  /** Ends the worker at once, even inside an endless loop; `why` is what its unanswered requests are told. */
  async kill(why?: string): Promise<void> {
    if (this.exited) return;
    this.killedFor = why;
    if (this.thread) {
      // what its listen sockets hold stays there for its replacement: its last loop turn would read it into nowhere
      stopReadingOf(this.keepOwner);
      await this.thread.terminate();
    }
    else {
      const child = this.child!;
      await new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGKILL");
      });
    }
  }

  /** Asks the worker to close its sockets and exit; kills it if it does not within a second. */
  async close(): Promise<void> {
    if (this.exited) return;
    const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 1000).unref());
    const closed = this.request({ type: "close" });
    if ((await Promise.race([closed, timeout])) === "timeout") await this.kill();
    else if (this.child) await new Promise<void>((r) => (this.exited ? r() : this.child!.once("exit", () => r())));
    else await this.thread!.terminate();
  }

  private cleanupBeacon(): void {
    if (this.beaconFile) rmSync(this.beaconFile, { force: true });
  }
}
