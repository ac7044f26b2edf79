// The proxy's control-plane agent: holds one ProxyService.Connect stream to a control-plane
// replica, applies the snapshots it receives (fetching modules it lacks, then Proxy.start or a
// two-phase proxy.apply), answers each with Ack or Nack, and streams stats. Without a control
// plane the proxy keeps forwarding with what it runs, and a restarted proxy starts from
// last-good.json. Replicas are tried in order; a lost stream moves to the next one at once.
import { EventEmitter } from "node:events";
import { chmod, mkdir, readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { connectivityState, status as grpcStatus, type ChannelCredentials, type ChannelOptions, type Client, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import {
  abi, ApplyError, ConfigError, excludedFamilies, familyLines as allFamilyLines, Proxy, startAdminServer, validateProxyConfig, validateNodeSettings, dataPlaneSettings,
  type AdminServer, type NodeDataPlaneSettings, type ProxyConfig, type ProxyConfigInput,
} from "../../runtime/index.js";
import { ProxyServiceClient, unknownSnapshotFields, type Ack, type ControlMessage, type FilterModule, type ProxyMessage, type Snapshot } from "../api/proto.js";
import { pageStats, STATS_BYTES_PER_SEC } from "../api/stats-pages.js";
import { connectionFailure } from "../api/status-text.js";
import { bareConnectFailure, closedAtHandshake, plainTextServer, probeTransport, SERVER_IS_PLAIN_TEXT, SERVER_SPEAKS_TLS } from "../api/transport.js";
import { isUnixSocketAddress } from "../api/unix-socket.js";
import { printable } from "../security/terminal.js";
import { clientCertificateProblem, reloadingChannelCredentials } from "../security/tls.js";
import { lastGoodPath, readLastGood, writeLastGood, LAST_GOOD_FORMAT } from "./last-good.js";
import { ModuleCache } from "./module-cache.js";
import { ReportLimiter } from "../api/report-limiter.js";
import { describeApplyFailure, planSnapshot, SnapshotError, type SnapshotPlan } from "./snapshot-config.js";
import type { AgentEvents, AgentOptions, NotRunning } from "./types.js";
import { heldBackOf, heldBackText, notRunningText } from "../api/held-back.js";

/** The proxy's stateFile under the state directory: its stages' state, for a restart to carry (runtime/state-file.ts). */
export function stageStatePath(stateDir: string): string {
  return join(stateDir, "stage-state.json");
}

/**
 * Stats go out at a node's own phase, 100-499 ms past each multiple of statsIntervalMs by the wall
 * clock: every proxy's report then holds the last whole seconds of each stream as they stood just
 * after the second ended (runtime/streams: windows end on the wall clock's seconds), so that the
 * control plane finds a second both ends of a hop counted; and a fleet's reports spread over the
 * second instead of all arriving at once.
 */
export function statsPhaseMs(nodeId: string): number {
  let h = 0;
  for (let k = 0; k < nodeId.length; k++) h = (h * 31 + nodeId.charCodeAt(k)) >>> 0;
  return 100 + (h % 400);
}

/** Milliseconds from `nowMs` to the next moment stats are due at `phaseMs`. */
export function msToStatsPhase(nowMs: number, phaseMs: number): number {
  const every = AGENT_TIMING.statsIntervalMs;
  const phase = phaseMs % every;
  const wait = (((phase - nowMs) % every) + every) % every;
  return wait < every / 10 ? wait + every : wait; // not twice in a moment
}

/**
 * Timing. A stopped replica is noticed at once (its connection closes); a peer that is gone
 * without closing is noticed by keepalive pings in 1.0-1.5 s (a ping every 0.5 s, 1 s for its
 * answer), leaving time to reach another replica within 2 s. Between full rounds of
 * failed attempts the agent waits from 100 ms up to 1 s, so a replica that comes back is found fast.
 */
export const AGENT_TIMING = {
  keepaliveMs: 500,
  keepaliveTimeoutMs: 1000,
  /** How long a replica may take to accept the connection. */
  connectTimeoutMs: 1500,
  /** How long a connected replica may take to send the first snapshot after Register. */
  firstSnapshotTimeoutMs: 10_000,
  backoffStartMs: 100,
  backoffMaxMs: 1000,
  /**
   * A Register the control plane refused (another node's certificate, a bad node id, no SPIFFE
   * ID) stays refused until an operator changes something: tried again after 1 s, doubling up to
   * 30 s, not every second.
   */
  refusedBackoffStartMs: 1000,
  refusedBackoffMaxMs: 30_000,
  statsIntervalMs: 1000,
  fetchTimeoutMs: 15_000,
  fetchAttempts: 3,
  /**
   * A snapshot refused for a reason that may pass (a port briefly held, a module fetch that
   * failed), or applied with segments that could not start, is tried again after 1 s, doubling up
   * to 30 s (plus or minus 20%), until it runs whole or a newer snapshot replaces it.
   */
  retryStartMs: 1000,
  retryMaxMs: 30_000,
  /** A connection failure that repeats with the same reason is reported again after this long. */
  failureReportMs: 60_000,
  /** A refusal that repeats with the same reason (a retried snapshot) is reported again after this long. */
  refusalReportMs: 600_000,
  /** How long a plain-text agent's probe may take to tell whether a replica speaks TLS. */
  probeTimeoutMs: 1000,
} as const;

const CHANNEL_OPTIONS: ChannelOptions = {
  "grpc.keepalive_time_ms": AGENT_TIMING.keepaliveMs,
  "grpc.keepalive_timeout_ms": AGENT_TIMING.keepaliveTimeoutMs,
  "grpc.keepalive_permit_without_calls": 1,
  // a channel of its own per attempt: no shared subchannel still backing off from an old failure
  "grpc.use_local_subchannel_pool": 1,
  "grpc.initial_reconnect_backoff_ms": AGENT_TIMING.backoffStartMs,
  "grpc.max_reconnect_backoff_ms": AGENT_TIMING.backoffMaxMs,
  "grpc.max_receive_message_length": 64 << 20,
  "grpc.enable_retries": 0,
};

/** Replicas are named by SPIFFE ID, not by DNS name (tls.ts checks the chain only): a fixed TLS server name keeps Node from warning about IP addresses as SNI. */
const TLS_OPTIONS: ChannelOptions = { "grpc.ssl_target_name_override": "msm-control-plane" };

/** What the agent writes on the stream: proto-loader takes the oneof member by its field name. */
type Outgoing = { register: Extract<ProxyMessage, { kind: "register" }>["register"] } | { ack: Ack } | { nack: { version: number; error: string; retryInMs: number } } | { stats: { statsJson: string; page: number; pages: number } };


/** What one attempt to apply a snapshot came to. */
type Outcome =
  | { readonly kind: "applied"; readonly segments: number; readonly fetched: number; readonly started: boolean; readonly config: ProxyConfigInput; readonly notRunning?: NotRunning }
  | { readonly kind: "refused"; readonly error: string; /** false when the same snapshot can only fail again (a bad field, a filter refusing its config) */ readonly retry: boolean };

/**
 * A filter's refusal of its config (runtime/filter-host/errors.ts, FilterConfigError), or a filter
 * that never returned from its start or a new context's creation (the watchdog, runtime/proxy.ts):
 * the same module given the same config does the same again, and each try would restart a worker.
 */
const FILTER_REFUSED_CONFIG = /rejected its (root )?config|while the change was prepared \(an endless loop in/;

/**
 * Whether a chain stage's config or root config reads a {"$file"} or {"$env"} reference, whose
 * contents may change on the node: of `segment`'s stages when one is named, else of any segment's.
 */
function readsReferences(snapshot: Snapshot, segment = ""): boolean {
  const reads = (json: string | undefined): boolean => !!json && /"\$(?:file|env)"\s*:/.test(json);
  return snapshot.segments.some((s) => (segment === "" || s.name === segment) && s.chain.some((st) => reads(st.configJson) || reads(st.rootConfigJson)));
}

/**
 * `config` with the segments the proxy refused held back: each keeps the version that runs now
 * (`running`), with the filter entries it uses, or is left out when it is new. One camera's bad
 * config must not stop every other change on its node. A held segment's entry keeps its key
 * unless the new config gives that key another module or settings (an upgrade keeps the key): it
 * then runs under a key of its own, so that it really runs its previous version. Undefined when
 * holding back leaves nothing else to change (the refusal then stands for the whole snapshot, as
 * the proxy keeps what runs), unless `reread`: the running snapshot applied again to read its
 * $file and $env references anew, whose contents may have changed where the config did not.
 */
export function holdBack(config: ProxyConfigInput, running: ProxyConfigInput | undefined, refused: readonly string[], reread = false): { config: ProxyConfigInput; kept: string[] } | undefined {
  type Entry = NonNullable<ProxyConfigInput["filters"]>[string];
  const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
  const kept: string[] = [];
  const filters: Record<string, Entry> = { ...(config.filters ?? {}) };
  const keyFor = (key: string): string => {
    const def = running?.filters?.[key];
    if (!def || same(filters[key], def)) return key;
    if (!(key in filters)) {
      filters[key] = def;
      return key;
    }
    let held = `${key.slice(0, 56)}-held`;
    for (let n = 2; held in filters && !same(filters[held], def); n++) held = `${key.slice(0, 52)}-held${n}`;
    filters[held] = def;
    return held;
  };
  const segments = (config.segments ?? []).flatMap((seg) => {
    if (!refused.includes(seg.name)) return [seg];
    const old = running?.segments?.find((s) => s.name === seg.name);
    if (!old) return [];
    kept.push(seg.name);
    return [{ ...old, chain: (old.chain ?? []).map((stage) => ({ ...stage, filter: keyFor(stage.filter) })) }];
  });
  // what runs is the segments and the entries they use
  const used = (segs: readonly { chain?: readonly { filter: string }[] }[], defs: Record<string, Entry>): [string, Entry][] => {
    const keys = new Set(segs.flatMap((s) => (s.chain ?? []).map((st) => st.filter)));
    return Object.entries(defs).filter(([k]) => keys.has(k)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  };
  const heldFilters = Object.fromEntries(used(segments, filters));
  const changes = !same([segments, Object.entries(heldFilters)], [running?.segments ?? [], used(running?.segments ?? [], running?.filters ?? {})]);
  return (changes || reread) && segments.length > 0 ? { config: { ...config, filters: heldFilters, segments }, kept } : undefined;
}

/** Module paths in a config are relative to the state directory, so that a moved directory still works. */
const MODULES_DIR = "modules";

type ProxyClient = Client & {
  Connect(): ClientDuplexStream<Outgoing, ControlMessage>;
  FetchFilter(req: { sha256: string }, options: { deadline: number }, cb: (err: ServiceError | null, res?: FilterModule) => void): void;
};

/** One Connect stream to one replica. */
interface Session {
  readonly address: string;
  readonly client: ProxyClient;
  readonly call: ClientDuplexStream<Outgoing, ControlMessage>;
  connected: boolean;
  ended: boolean;
  end(reason: string, refused?: boolean): void;
}

/** How a Connect stream ended: whether the replica answered, and whether it refused this proxy. */
interface SessionEnd {
  connected: boolean;
  refused: boolean;
}

/** Status codes of a refused Register: no retry soon will pass them. */
const REFUSALS: ReadonlySet<number> = new Set([grpcStatus.PERMISSION_DENIED, grpcStatus.UNAUTHENTICATED, grpcStatus.INVALID_ARGUMENT]);

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

function delay(ms: number, signal: { wake?: () => void }): Promise<void> {
  return new Promise((done) => {
    const timer = setTimeout(() => {
      signal.wake = undefined;
      done();
    }, ms);
    signal.wake = () => {
      clearTimeout(timer);
      signal.wake = undefined;
      done();
    };
  });
}

export class Agent extends EventEmitter<AgentEvents> {
  /** The runtime proxy, once a config exists (from a snapshot or last-good.json); null before and after close(). */
  proxy: Proxy | null = null;
  /** The snapshot version the proxy runs (0: none). */
  runningVersion = 0;
  private admin: AdminServer | null = null;
  private readonly cache: ModuleCache;
  /** The credentials of the TLS files as they are now: a certificate renewed in place is used from the next connection on. */
  private readonly credentials: () => ChannelCredentials;
  private readonly channelOptions: ChannelOptions;
  private readonly workers: number;
  private readonly gso: "auto" | "off";
  /** The node's data-plane settings, the same in every config applied. */
  private readonly settings: NodeDataPlaneSettings;
  private readonly stateDir: string;
  private readonly addresses: readonly string[];
  private session: Session | null = null;
  private pending: Snapshot | undefined;
  private applying: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Attempts so far at applying `version` (for the retry backoff). */
  private attempts = { version: 0, count: 0 };
  /** Set while the running version runs without some of its segments. */
  private notRunning: NotRunning | undefined;
  /** The config the proxy runs (what a refused segment's previous version is taken from). */
  private runningInput: ProxyConfigInput | undefined;
  private loop: Promise<void> | undefined;
  private readonly sleeper: { wake?: () => void } = {};
  private closing = false;
  private closed: Promise<void> | undefined;
  private statsBusy = false;
  private nextStatsAt = 0;
  /** Connection failures per replica, so that one that repeats is not logged every second. */
  private readonly connectReports = new ReportLimiter(AGENT_TIMING.failureReportMs);
  /** Refusals and segments still not running, so that a retried snapshot does not log every try. */
  private readonly refusalReports = new ReportLimiter(AGENT_TIMING.refusalReportMs);
  /** The snapshot a retry waits for, re-armed if a snapshot that cannot replace it came meanwhile. */
  private retrying: Snapshot | undefined;
  /** The snapshot that runs: what rereadReferences() applies again. */
  private runningSnapshot: Snapshot | undefined;
  /** Set by rereadReferences(): the running version is applied again when it next comes up, not just acknowledged. */
  private rereading = false;

  /**
   * Checks the options (TypeError); nothing starts before start(). Listen to the events first to
   * hear what start() finds: a last-good.json it restores or cannot use, a state directory it
   * cannot restrict. startAgent() is the two steps in one.
   */
  constructor(private readonly options: AgentOptions) {
    super();
    if (options.controlPlanes.length === 0) throw new TypeError("controlPlanes: at least one HOST:PORT is needed");
    for (const cp of options.controlPlanes) if (!/^.+:\d+$/.test(cp) && !isUnixSocketAddress(cp)) throw new TypeError(`controlPlanes: '${cp}' is not HOST:PORT or unix:PATH`);
    if (!/^[A-Za-z0-9._-]+$/.test(options.nodeId)) throw new TypeError(`nodeId: '${options.nodeId}' must be letters, digits, '.', '_' or '-'`);
    const workers = options.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new TypeError(`workers: must be an integer from 1 to 64, got ${workers}`);
    this.workers = workers;
    const gso = options.gso ?? "auto";
    if (gso !== "auto" && gso !== "off") throw new TypeError(`gso: must be auto or off, got ${String(gso)}`);
    this.gso = gso;
    // workers, gso and admin are options of their own: one given here would be dropped unseen
    const misplaced = ["workers", "gso", "admin"].find((k) => k in (options.settings ?? {}));
    if (misplaced) throw new TypeError(`settings.${misplaced}: give ${misplaced} as the agent's own option, not under settings`);
    try {
      this.settings = dataPlaneSettings(validateNodeSettings(options.settings ?? {}, "settings"));
    } catch (err) {
      throw new TypeError((err as Error).message);
    }
    this.addresses = [...options.controlPlanes];
    this.stateDir = resolve(options.stateDir);
    this.cache = new ModuleCache(this.stateDir);
    this.credentials = reloadingChannelCredentials(options.tls, (line) => this.emit("tls-files", { message: line }));
    this.channelOptions = options.tls === "insecure" ? CHANNEL_OPTIONS : { ...CHANNEL_OPTIONS, ...TLS_OPTIONS };
  }

  /** The replica the agent is connected to ("host:port"), or null. */
  get connectedTo(): string | null {
    return this.session?.connected ? this.session.address : null;
  }

  /** The admin endpoint's port once it runs (useful when asked for port 0). */
  get adminPort(): number | null {
    return this.admin?.port ?? null;
  }

  /** Starts the proxy from last-good.json if there is one, then starts connecting. */
  async start(): Promise<void> {
    if (this.loop || this.closing) throw new Error("the agent was already started");
    await this.secureStateDir();
    if (this.settings.secrets === undefined) {
      // whoever may apply segments may have this node read any file or variable it can into a filter (which may send it on)
      this.emit("warning", { message: "secrets is not set in the node's settings: a segment from the control plane may name any file ($file) or environment variable ($env) this proxy can read as a filter's secret; set secrets.files and secrets.env to where keys live (docs/proxy.md, \"Secrets by reference\")" });
    }
    const admin = this.options.admin;
    if (admin) {
      // up before the first snapshot: probes find a live node that is not ready yet, and a port
      // another process holds ends the start, as it does for a proxy run from a file
      try {
        this.admin = await startAdminServer(() => this.proxy, admin.address, admin.port, {
          notReady: () => (this.proxy ? [] : [`no snapshot from the control plane applied yet (${this.session?.connected ? "connected" : "connecting"})`]),
          metrics: () => this.metricsText(),
        });
      } catch (err) {
        throw new Error(`admin endpoint ${admin.address}:${admin.port}: ${(err as Error).message}; the proxy did not start`);
      }
    }
    await this.restore();
    this.loop = this.connectLoop();
  }

  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    this.pending = undefined;
    clearTimeout(this.retryTimer);
    this.sleeper.wake?.();
    this.session?.end("agent closing");
    await this.loop;
    await this.applying;
    await this.admin?.close();
    this.admin = null;
    await this.proxy?.close();
    this.proxy = null;
  }

  /**
   * The state directory holds last-good.json, which holds the snapshot's keys: files 0600 (also
   * when an older version or a umask left them open), the directory and modules/ 0700. A directory
   * that also holds files not the agent's (an operator's choice of /var/lib, say) is not changed:
   * that is said instead, since its other users may need it open.
   */
  private async secureStateDir(): Promise<void> {
    await mkdir(this.cache.dir, { recursive: true, mode: 0o700 });
    const foreign = (await readdir(this.stateDir)).filter((name) => !/^((last-good|stage-state)\.json(\..*)?|modules)$/.test(name));
    const mode = (await stat(this.stateDir)).mode & 0o777;
    const restrict: [string, number][] = [[this.cache.dir, 0o700], [lastGoodPath(this.stateDir), 0o600], [stageStatePath(this.stateDir), 0o600]];
    if (foreign.length === 0) restrict.push([this.stateDir, 0o700]);
    else if (mode & 0o077) {
      this.emit("warning", { message: `state directory ${this.stateDir} (mode ${mode.toString(8)}) holds other files too (${foreign.slice(0, 3).join(", ")}${foreign.length > 3 ? ", ..." : ""}), so it is left as it is; last-good.json is written 0600, but a directory of the proxy's own is made 0700` });
    }
    for (const [path, m] of restrict) {
      try {
        await chmod(path, m);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") this.emit("warning", { message: `cannot restrict ${path} to mode ${m.toString(8)}: ${(err as Error).message}` });
      }
    }
  }

  /** The agent's own families on the proxy's /metrics: what a fleet alerts on per node, without asking the control plane. */
  private metricsText(): string {
    // the node file's metrics.exclude covers these too (known to its check as AGENT_FAMILIES)
    const excluded = excludedFamilies(this.settings.metrics.exclude);
    const familyLines: typeof allFamilyLines = (name, ...rest) => (excluded(name) ? [] : allFamilyLines(name, ...rest));
    const lines = [
      ...familyLines("msm_control_plane_connected", "gauge", "1 while the proxy is connected to a control-plane replica (it forwards with what it runs either way).",
        [[{}, this.session?.connected ? 1 : 0]]),
      ...familyLines("msm_snapshot_version", "gauge", "The control plane's snapshot version the proxy runs (0: none yet).", [[{}, this.runningVersion]]),
      ...familyLines("msm_snapshot_segments_held_back", "gauge", "Segments of the running snapshot that do not run it (refused, or a port taken): msmctl describe proxy says why.",
        [[{}, this.notRunning?.segments.length ?? 0]]),
    ];
    return lines.length === 0 ? "" : lines.join("\n") + "\n";
  }

  // ---- last-good.json  // ---- last-good.json

  private async restore(): Promise<void> {
    let record;
    try {
      record = await readLastGood(this.stateDir);
    } catch (err) {
      this.emit("warning", { message: `not starting from last-good.json: ${(err as Error).message}` });
      return;
    }
    if (!record) return;
    if (record.nodeId !== this.options.nodeId) {
      this.emit("warning", { message: `not starting from last-good.json: it was written for node '${record.nodeId}', this is '${this.options.nodeId}'` });
      return;
    }
    const { version, snapshot } = record;
    let config: ProxyConfig;
    let down: NotRunning | undefined;
    try {
      // what ran, with this node's settings of today (the record's were those of its run)
      const { filters, segments } = record.config;
      config = validateProxyConfig({ ...this.nodeConfig(), filters, segments }, this.stateDir, "last-good.json");
      await this.startProxy(config);
    } catch (err) {
      // started without segments whose port another process holds: they are said as a snapshot's would be
      if (!(err instanceof ApplyError && err.committed && this.proxy)) {
        this.emit("warning", { message: `cannot start from last-good.json (version ${version}): ${(err as Error).message}` });
        return;
      }
      down = committedWithout(version, err.errors.map((e) => describeApplyFailure(snapshot, { modules: [], config: record.config }, e.segment, e.message)), err);
    }
    this.runningVersion = version;
    this.runningSnapshot = snapshot;
    this.runningInput = record.config;
    this.notRunning = withSaved(down, record.notRunning);
    this.attempts = { version, count: 1 }; // the start was the first try
    // tried again as a snapshot applied without some segments is, before any control plane answers
    const retryInMs = this.notRunning && !this.notRunning.final ? this.scheduleRetry(snapshot) : undefined;
    this.emit("restored", {
      version, segments: config!.segments.length, notRunning: [...(this.notRunning?.segments ?? [])],
      ...(this.notRunning ? { error: this.notRunning.error, retryInMs } : {}),
    });
  }

  /** The proxy-wide keys of every config this node runs: its own, never a snapshot's. */
  private nodeConfig(): ProxyConfigInput {
    return { ...this.settings, workers: this.workers, gso: this.gso, stateFile: stageStatePath(this.stateDir) };
  }

  /**
   * Starts the proxy. One that started without some segments (a port another process holds) runs,
   * and throws them as an apply committed without them, so that they are said and tried again.
   */
  private async startProxy(config: ProxyConfig): Promise<void> {
    const proxy = await Proxy.start(config, (e) => this.emit("proxy-event", e));
    this.proxy = proxy;
    const down = (await proxy.stats()).notRunning;
    if (down.length > 0) throw new ApplyError(down.map((d) => ({ segment: d.segment, message: d.reason })), true);
  }

  // ---- connection

  private async connectLoop(): Promise<void> {
    const addresses = this.addresses;
    let index = 0;
    let failures = 0; // attempts in a row that never got a snapshot
    let refusals = 0; // of those, refused Registers (a replica down among refusing ones must not hide them)
    while (!this.closing) {
      const { connected, refused } = await this.runSession(addresses[index]!);
      if (this.closing) break;
      index = (index + 1) % addresses.length;
      failures = connected ? 0 : failures + 1;
      refusals = connected ? 0 : refusals + (refused ? 1 : 0);
      if (failures >= addresses.length && refusals > 0) {
        // every replica tried, and the ones that answered refused it: they will again until an operator acts
        const base = Math.min(AGENT_TIMING.refusedBackoffStartMs * 2 ** (refusals - 1), AGENT_TIMING.refusedBackoffMaxMs);
        await delay(base * (0.8 + 0.4 * Math.random()), this.sleeper);
      } else if (failures >= addresses.length) {
        // every replica gets one immediate try; then back off, capped low
        const base = Math.min(AGENT_TIMING.backoffStartMs * 2 ** (failures - addresses.length), AGENT_TIMING.backoffMaxMs);
        await delay(base * (0.8 + 0.4 * Math.random()), this.sleeper);
      }
    }
  }

  /** Runs one Connect stream until it ends. */
  private runSession(address: string): Promise<SessionEnd> {
    return new Promise((done) => {
      const client = new ProxyServiceClient(address, this.credentials(), this.channelOptions) as unknown as ProxyClient;
      const call = client.Connect();
      let timer: NodeJS.Timeout | undefined;
      let statsTimer: NodeJS.Timeout | undefined;
      const session: Session = {
        address,
        client,
        call,
        connected: false,
        ended: false,
        end: (reason, refused = false) => {
          if (session.ended) return;
          session.ended = true;
          clearTimeout(timer);
          clearTimeout(statsTimer);
          call.cancel();
          client.close();
          if (this.session === session) this.session = null;
          if (session.connected) this.emit("disconnected", { address, reason });
          else this.reportConnectFailure(address, reason);
          done({ connected: session.connected, refused: refused && !session.connected });
        },
      };
      this.session = session;
      timer = setTimeout(() => {
        // accepted but quiet: give the Register its answer time; not even accepted: next replica
        if (client.getChannel().getConnectivityState(false) !== connectivityState.READY) return session.end(`no connection within ${AGENT_TIMING.connectTimeoutMs} ms`);
        timer = setTimeout(() => session.end(`no snapshot within ${AGENT_TIMING.firstSnapshotTimeoutMs} ms of Register`), AGENT_TIMING.firstSnapshotTimeoutMs);
      }, AGENT_TIMING.connectTimeoutMs);
      call.on("data", (msg: ControlMessage) => {
        if (session.ended) return;
        if (!session.connected) {
          session.connected = true;
          this.connectReports.forget(address);
          clearTimeout(timer);
          this.emit("connected", { address });
          const tick = (): void => {
            this.sendStats(session);
            statsTimer = setTimeout(tick, msToStatsPhase(Date.now(), phase));
          };
          const phase = statsPhaseMs(this.options.nodeId);
          statsTimer = setTimeout(tick, msToStatsPhase(Date.now(), phase));
        }
        if (msg.kind === "snapshot") this.enqueue(msg.snapshot);
        else if (msg.kind === "notice") this.emit("warning", { message: `the control plane at ${address} says: ${printable(msg.notice.text)}` });
      });
      call.on("error", (err: ServiceError) => session.end(connectionFailure(err.details || err.message), REFUSALS.has(err.code)));
      call.on("status", (s: { code: number; details: string }) => session.end(s.details || `stream closed (code ${s.code})`));
      call.on("end", () => session.end("stream ended by the control plane"));
      this.send(session, {
        register: {
          nodeId: this.options.nodeId,
          capabilities: [`workers=${this.workers}`, `runtime=${isBun ? "bun" : "node"}`],
          abiVersions: [`${abi.ABI_VERSION_MAJOR}.${abi.ABI_VERSION_MINOR}`],
          runningVersion: this.runningVersion,
        },
      });
    });
  }

  /**
   * Every failed attempt (refused connection, TLS failure, a server that is not a control plane,
   * a Register refused) is reported: at once when its reason is new for that replica, and then
   * once a minute with the number of repeats. TLS on one side and plain text on the other is
   * named as such; a plain-text agent's bare "Failed to connect" is probed for it first.
   */
  private reportConnectFailure(address: string, reason: string): void {
    const repeats = this.connectReports.admit(address, reason);
    if (repeats === undefined) return;
    const report = (why: string): void => void (this.closing || this.emit("connect-failed", { address, reason: why, repeats }));
    if (this.options.tls !== "insecure") {
      if (plainTextServer(reason)) return report(`${SERVER_IS_PLAIN_TEXT} (${reason})`);
      const problem = closedAtHandshake(reason) ? clientCertificateProblem(this.options.tls) : undefined;
      return report(problem ? `${problem} (${reason})` : reason);
    }
    if (!bareConnectFailure(reason)) return report(reason);
    void probeTransport(address, AGENT_TIMING.probeTimeoutMs).then((speaks) => report(speaks === "tls" ? SERVER_SPEAKS_TLS : reason));
  }

  private send(session: Session, message: Outgoing): void {
    if (session.ended) return;
    try {
      session.call.write(message);
    } catch (err) {
      session.end(`write failed: ${(err as Error).message}`);
    }
  }

  /**
   * Sends the proxy's stats in pages (api/stats-pages.ts). A large report is sent less often than
   * every second, so that one proxy sends at most STATS_BYTES_PER_SEC.
   */
  private sendStats(session: Session): void {
    const proxy = this.proxy;
    if (!proxy || this.statsBusy || session.ended || Date.now() < this.nextStatsAt) return;
    this.statsBusy = true;
    proxy.stats().then(
      (snap) => {
        const pages = pageStats(snap);
        let bytes = 0;
        pages.forEach((statsJson, page) => {
          bytes += statsJson.length;
          this.send(session, { stats: { statsJson, page, pages: pages.length } });
        });
        this.nextStatsAt = Date.now() + (bytes / STATS_BYTES_PER_SEC) * 1000;
      },
      (err: Error) => this.emit("warning", { message: `stats not sent: ${err.message}` }),
    ).finally(() => {
      this.statsBusy = false;
    });
  }

  /** Module bytes by digest, from whichever replica the agent is connected to now. */
  private async fetchModule(sha256: string): Promise<FilterModule> {
    let last: Error | undefined;
    for (let attempt = 0; attempt < AGENT_TIMING.fetchAttempts; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 300 * attempt));
      const session = this.session;
      if (!session || session.ended) throw last ?? new Error("no control plane connected");
      try {
        return await new Promise<FilterModule>((ok, fail) => {
          session.client.FetchFilter({ sha256 }, { deadline: Date.now() + AGENT_TIMING.fetchTimeoutMs }, (err, res) => (err ? fail(new Error(err.details || err.message)) : res ? ok(res) : fail(new Error("empty answer"))));
        });
      } catch (err) {
        last = err as Error;
        if (/NOT_FOUND|not found/i.test(last.message)) break;
      }
    }
    throw last!;
  }

  // ---- snapshots

  /**
   * Queues a snapshot; only the newest waiting one is applied (each apply is a whole config). A
   * snapshot that comes in replaces a retry that waits; a reread of the running one (`keepRetry`)
   * does not: a newer snapshot refused for a reference not readable yet is still tried again.
   */
  private enqueue(snapshot: Snapshot, keepRetry = false): void {
    if (!keepRetry) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    this.pending = snapshot;
    if (this.applying) return;
    this.applying = (async () => {
      while (this.pending && !this.closing) {
        const next = this.pending;
        this.pending = undefined;
        await this.handle(next);
      }
    })().finally(() => {
      this.applying = undefined;
      if (this.pending && !this.closing) this.enqueue(this.pending);
      else if (this.rereading && this.runningSnapshot && !this.closing) this.enqueue(this.runningSnapshot, true);
    });
  }

  /**
   * Applies the running snapshot again, so that its `$file` and `$env` references are read anew:
   * a key file rotated on the node changes nothing the control plane sends (the snapshot names
   * the file, not its contents), so without this the new key would take effect at whatever next
   * reads the references (an unrelated segment's change, a worker's restart). Queued after any
   * snapshot being applied; what it comes to is told as a snapshot's apply is (`applied`, or
   * `refused` with the field, the running config kept). Returns why nothing is applied, or
   * undefined when it is queued.
   */
  rereadReferences(): string | undefined {
    if (this.closing) return "the agent is closing";
    const snapshot = this.runningSnapshot;
    if (!this.proxy || !snapshot) return "no snapshot runs yet";
    if (!readsReferences(snapshot)) return `snapshot ${snapshot.version} reads no $file or $env reference`;
    this.rereading = true;
    // a snapshot being applied reads them anew; one queued behind it too (handle() clears the flag)
    if (!this.applying) this.enqueue(snapshot, true);
    return undefined;
  }

  /** Answers on the stream that is open now, if any (a proxy that reconnects says what it runs in Register). */
  private reply(message: Outgoing): void {
    if (this.session?.connected) this.send(this.session, message);
  }

  private ack(version: number): void {
    this.reply({ ack: { version, notRunning: [...(this.notRunning?.segments ?? [])], error: this.notRunning?.error ?? "" } });
  }

  /** Tries `snapshot` again later; returns the delay. */
  private scheduleRetry(snapshot: Snapshot): number {
    const base = Math.min(AGENT_TIMING.retryStartMs * 2 ** (this.attempts.count - 1), AGENT_TIMING.retryMaxMs);
    const ms = Math.round(base * (0.8 + 0.4 * Math.random()));
    clearTimeout(this.retryTimer);
    this.retrying = snapshot;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closing && !this.pending) this.enqueue(snapshot);
    }, ms);
    return ms;
  }

  /** A refusal, reported when its reason is new and then once every refusalReportMs (each try is NACKed all the same). */
  private reportRefusal(version: number, error: string, retryInMs: number | undefined): void {
    const repeats = this.refusalReports.admit("refused", error);
    if (repeats !== undefined) this.emit("refused", { version, error, repeats, ...(retryInMs !== undefined ? { retryInMs } : {}) });
  }

  /**
   * Versions only grow on one store, so a lower one comes from a control plane on another store (a
   * new, empty etcd; a restored backup; the wrong --store): applying it would remove what runs.
   * Refused, without a retry; what runs and last-good.json stay. An operator who means to start
   * over from that control plane removes last-good.json and restarts the proxy.
   */
  private refuseOlder(snapshot: Snapshot): void {
    const { version } = snapshot;
    const running = this.runningVersion;
    const error = `snapshot ${version} not applied: version ${version} is older than the running ${running}: a control plane on a new or wrong store? ` +
      `The proxy keeps running version ${running}; to take this control plane's config instead, stop the proxy, delete ${lastGoodPath(this.stateDir)} and start it again`;
    this.reply({ nack: { version, error, retryInMs: 0 } });
    this.reportRefusal(version, error, undefined);
    // its arrival cancelled a retry of the running version's missing segments: that one still holds
    if (this.notRunning && !this.notRunning.final && this.retrying?.version === running && !this.retryTimer) this.scheduleRetry(this.retrying);
  }

  private async handle(snapshot: Snapshot): Promise<void> {
    const version = snapshot.version;
    // asked to read the running version's references anew (rereadReferences)
    const reread = this.rereading && version === this.runningVersion;
    if (this.proxy && version === this.runningVersion && !this.notRunning && !reread) {
      this.ack(version); // already running it (a reconnect, or a restart from last-good.json)
      return;
    }
    if (this.proxy && version < this.runningVersion) return this.refuseOlder(snapshot);
    this.rereading = false; // what is applied now reads every reference anew
    if (this.attempts.version !== version) this.attempts = { version, count: 0 };
    this.attempts.count++;
    const startedAt = performance.now();
    let outcome: Outcome;
    const refusedBefore = this.proxy?.configsRefused;
    try {
      outcome = await this.apply(snapshot, reread);
    } catch (err) {
      outcome = { kind: "refused", error: `snapshot ${version} not applied: ${(err as Error).message}`, retry: true };
    }
    if (this.closing) return;
    // refused before the proxy saw it (a plan, a module fetch, a field): counted with its refusals
    if (outcome.kind === "refused" && this.proxy && this.proxy.configsRefused === refusedBefore) this.proxy.noteRefusedConfig();

    if (outcome.kind === "refused") {
      if (version === this.runningVersion && this.notRunning) {
        // a retry of the running version's missing segments failed again: it still runs without them,
        // those whose change it refused on their previous version still (the ACK keeps saying so)
        const segments = this.notRunning.segments;
        const kept = heldBackOf(this.notRunning.error).filter((name) => segments.includes(name));
        this.notRunning = { segments, error: `${outcome.error}${heldBackText(kept)}`, ...(outcome.retry ? {} : { final: true }) };
        this.ack(version);
        const retryInMs = outcome.retry ? this.scheduleRetry(snapshot) : undefined;
        const repeats = this.refusalReports.admit("not-running", outcome.error);
        if (repeats !== undefined) {
          const more = repeats > 0 ? `; ${repeats} more tries failed alike since the last report` : "";
          const next = retryInMs === undefined ? "not tried again" : `next try in ${retryInMs} ms`;
          this.emit("warning", { message: `snapshot ${version}: ${notRunningText(segments, this.notRunning.error)} still (${next}${more}): ${outcome.error}` });
        }
        return;
      }
      // the NACK says whether it is tried again, so that `msmctl apply --wait` waits for that try;
      // a reread the proxy refused is not (a retry of the running version would only acknowledge it)
      const retryInMs = outcome.retry && !reread ? this.scheduleRetry(snapshot) : undefined;
      this.reply({ nack: { version, error: outcome.error, retryInMs: retryInMs ?? 0 } });
      this.reportRefusal(version, outcome.error, retryInMs);
      return;
    }

    this.refusalReports.forget("refused");
    this.refusalReports.forget("not-running");
    this.runningVersion = version;
    this.runningSnapshot = snapshot;
    this.runningInput = outcome.config;
    this.notRunning = outcome.notRunning;
    try {
      await writeLastGood(this.stateDir, {
        format: LAST_GOOD_FORMAT, nodeId: this.options.nodeId, version, savedAtMs: Date.now(), snapshot, config: outcome.config,
        ...(outcome.notRunning ? { notRunning: outcome.notRunning } : {}),
      });
    } catch (err) {
      this.emit("warning", { message: `last-good.json not written: ${(err as Error).message}` });
    }
    this.ack(version);
    const retryInMs = this.notRunning && !this.notRunning.final ? this.scheduleRetry(snapshot) : undefined;
    this.emit("applied", {
      version, segments: outcome.segments, fetched: outcome.fetched, started: outcome.started, ms: Math.round(performance.now() - startedAt),
      notRunning: [...(this.notRunning?.segments ?? [])],
      ...(this.notRunning ? { error: this.notRunning.error, retryInMs } : {}),
    });
  }

  /** One attempt at a snapshot: plan, fetch what is missing, check, then start or swap. */
  private async apply(snapshot: Snapshot, reread = false): Promise<Outcome> {
    const version = snapshot.version;
    const unknown = unknownSnapshotFields(snapshot);
    if (unknown.length > 0) return { kind: "refused", error: unknownFieldsRefusal(snapshot, unknown), retry: false };
    let plan: SnapshotPlan;
    try {
      plan = planSnapshot(snapshot, MODULES_DIR, this.workers);
      plan = { ...plan, config: { ...plan.config, ...this.nodeConfig() } };
    } catch (err) {
      if (err instanceof SnapshotError) return { kind: "refused", error: err.message, retry: false };
      throw err;
    }
    let fetched = 0;
    for (const use of plan.modules) {
      try {
        if (await this.cache.ensure(use.ref, (sha) => this.fetchModule(sha))) fetched++;
      } catch (err) {
        const k = snapshot.filters.indexOf(use.ref);
        return { kind: "refused", error: `filters[${k}] (${use.ref.name}@${use.ref.version}): ${(err as Error).message}`, retry: true };
      }
    }
    if (this.closing) return { kind: "refused", error: "the agent is closing", retry: false };
    let config: ProxyConfig;
    try {
      config = validateProxyConfig(plan.config, this.stateDir, `snapshot ${version}`);
    } catch (err) {
      if (err instanceof ConfigError) {
        return { kind: "refused", error: err.message, retry: false };
      }
      throw err;
    }
    const started = !this.proxy;
    const applied = { kind: "applied", segments: config.segments.length, fetched, started, config: plan.config } as const;
    try {
      if (this.proxy) await this.proxy.apply(config);
      else await this.startProxy(config);
    } catch (err) {
      if (!(err instanceof ApplyError)) return { kind: "refused", error: `snapshot ${version} not applied: ${(err as Error).message}`, retry: true };
      const lines = err.errors.map((e) => describeApplyFailure(snapshot, plan, e.segment, e.message)).join("; ");
      // a filter answers the same module and config the same way: only what a reference of the refused segment's stages reads may change
      const final = (e: { segment: string; message: string }): boolean => FILTER_REFUSED_CONFIG.test(e.message) && !readsReferences(snapshot, e.segment);
      if (!err.committed) {
        const partial = await this.applyHoldingBack(plan.config, err, applied, version, lines, final, reread);
        if (partial) return partial;
        const state = err.starting ? "the proxy did not start, nothing runs" : "the running config is unchanged";
        return { kind: "refused", error: `snapshot ${version} not applied, ${state}: ${lines}`, retry: !err.errors.some(final) };
      }
      return { ...applied, notRunning: committedWithout(version, [lines], err) };
    }
    return applied;
  }

  /**
   * A snapshot refused for some of its segments runs without them (each keeps the version it
   * runs, or a new one is not started), so that a bad segment does not hold back the others' changes.
   * Undefined when that is not possible (a refusal that names no segment, nothing else changes,
   * or the rest is refused too): the refusal then stands for the whole snapshot.
   */
  private async applyHoldingBack(
    input: ProxyConfigInput, err: ApplyError, applied: Extract<Outcome, { kind: "applied" }>, version: number, lines: string,
    final: (e: { segment: string; message: string }) => boolean, reread: boolean,
  ): Promise<Outcome | undefined> {
    const refused = [...new Set(err.errors.map((e) => e.segment))];
    if (refused.includes("")) return undefined;
    // a reread applies the held config even when it is the running one: what its references read may have changed
    const held = holdBack(input, this.runningInput, refused, reread);
    if (!held) return undefined;
    // a segment whose change was refused runs its previous version: it is not called down
    const down = refused.filter((name) => !held.kept.includes(name));
    const error = `snapshot ${version} applied, except the change${refused.length > 1 ? "s" : ""} it refused${down.length > 0 ? `; ${down.join(", ")} NOT running` : ""}${heldBackText(held.kept)}: ${lines}`;
    try {
      const config = validateProxyConfig(held.config, this.stateDir, `snapshot ${version}`);
      if (this.proxy) await this.proxy.apply(config);
      else await this.startProxy(config);
      return { ...applied, segments: config.segments.length, config: held.config, notRunning: { segments: refused, error, ...(err.errors.every(final) ? { final: true } : {}) } };
    } catch (again) {
      if (!(again instanceof ApplyError) || !again.committed) return undefined;
      const more = again.errors.map((e) => e.segment).filter((name) => name !== "" && !refused.includes(name));
      return { ...applied, segments: held.config.segments?.length ?? 0, config: held.config, notRunning: { segments: [...refused, ...more], error: `${error}; ${again.detail}` } };
    }
  }
}

/** A version committed without the segments `err` names (the ACK's not_running and error); `lines` say why. */
function committedWithout(version: number, lines: readonly string[], err: ApplyError): NotRunning {
  const segments = [...new Set(err.errors.map((e) => e.segment).filter((name) => name !== ""))];
  return { segments, error: `snapshot ${version} applied, except these segments, which are NOT running: ${lines.join("; ")}` };
}

/** What last-good.json said did not run, with what a start from it could not start besides. */
function withSaved(down: NotRunning | undefined, saved: NotRunning | undefined): NotRunning | undefined {
  if (!down || !saved) return down ?? saved;
  return { segments: [...new Set([...down.segments, ...saved.segments])], error: `${down.error}; ${saved.error}` };
}

/**
 * Why a snapshot with fields this build does not know is refused: run without them, a segment
 * would lack what was asked of it (a source policy, a multicast interface) and nobody would know.
 */
function unknownFieldsRefusal(snapshot: Snapshot, unknown: readonly string[]): string {
  const named = unknown.slice(0, 5).map((f) => f.replace(/^segments\[(\d+)\]/, (at, i: string) => `${at} ('${snapshot.segments[Number(i)]?.name ?? "?"}')`));
  return `snapshot ${snapshot.version} has settings this proxy does not know, which it would run without: ${named.join("; ")}`
    + `${unknown.length > 5 ? `; and ${unknown.length - 5} more` : ""}. The control plane is newer than this proxy: upgrade the proxy, or apply the segments without those settings`;
}

/** Creates the state directory, starts the proxy from last-good.json if any, and starts connecting. */
export async function startAgent(options: AgentOptions): Promise<Agent> {
  const agent = new Agent(options);
  try {
    await agent.start();
  } catch (err) {
    await agent.close();
    throw err;
  }
  return agent;
}
