// The control-plane server: AdminService for operators, ProxyService for proxies, over one gRPC
// port, with every piece of state in the store so that replicas sharing an etcd serve the same
// truth. Each replica keeps a mirror of the desired state (list + watch) and pushes a proxy a new
// snapshot whenever that proxy's version moves, wherever the change was applied.
import { ReportLimiter } from "../api/report-limiter.js";
import { withoutTimestamps } from "../api/status-text.js";
import {
  Server, status,
  type handleBidiStreamingCall, type handleUnaryCall, type ServerDuplexStream, type ServerUnaryCall, type ServiceError, type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import {
  adminService, MAX_TXN_OPS_TRAILER, proxyService, unknownApplyFields,
  type ApplySegmentsResponse, type DeleteSegmentsResponse, type DescribeStreamResponse, type FilterModule, type ListStreamsResponse, type FilterRef, type ProxyMessage, type ProxyStats, type ProxyStatus, type Segment,
} from "../api/proto.js";
import { printable } from "../security/terminal.js";
import { peerIdentity, serverCertificateProblem, serverCredentials, type Identity, type Role, type TlsFiles } from "../security/tls.js";
import { EtcdStore, openStore, StoreError, type Op, type Store } from "../store/index.js";
import { bindServer } from "./bind.js";
import { invalid, RpcError, toStatus } from "./errors.js";
import { DESIRED, SEGMENTS, STATS } from "./keys.js";
import { DesiredMirror } from "./mirror.js";
import { fetchFilter, filtersOf, listFilters, MAX_MODULE_BYTES, pushFilter } from "./registry.js";
import { NODE_ID, planApply, planDelete, withoutSecrets } from "./segments.js";
import { DesiredState } from "./state.js";
import { listProxies, planProxyDeletion, readStats, updateStatus, writeStats } from "./status.js";
import { StatsAssembly } from "./stats-assembly.js";
import { isUnixSocketAddress } from "../api/unix-socket.js";
import { STATS_BYTES_PER_SEC, STATS_MAX_PAGES, STATS_PAGE_BYTES } from "../api/stats-pages.js";
import { DEFAULT_BAD_HOP, type BadHopThresholds, type StreamPath } from "../api/streams.js";
import { StoreHealth } from "./health.js";
import { buildStreamPaths, closeNames, pathsNamed } from "./stream-paths.js";
import { latestReports } from "./stream-reports.js";

/**
 * What makes two failed writes alike for the log: an outage is "etcd unreachable" whichever
 * member failed how (a reset, a refusal, a member shutting down) as it goes down; else the text.
 */
function failureKind(message: string): string {
  return message.startsWith("etcd unreachable") ? "etcd unreachable" : withoutTimestamps(message);
}

export interface ControlPlaneTiming {
  /** How often a replica refreshes last_seen of the proxies connected to it. */
  readonly heartbeatMs: number;
  /** A proxy whose last_seen is older than this is shown disconnected (its replica died). */
  readonly staleAfterMs: number;
  /** Stats reports are written to the store at most this often per proxy (the latest wins). */
  readonly statsIntervalMs: number;
  /** A Connect stream must send Register within this time. */
  readonly registerTimeoutMs: number;
  /** How long ApplySegments / DeleteSegments retry when concurrent writes keep winning. */
  readonly writeRetryMs: number;
  /**
   * Every so often a replica compacts the store's history: status and stats writes would
   * otherwise grow etcd without bound (its space quota is 2 GiB by default). It keeps at most the
   * last `compactKeepRevisions` revisions and nothing written before its previous compaction, so
   * one to two periods of history: a large proxy's stats are 256 KiB pages, a revision each, and
   * 10,000 of them alone were 2.5 GB. 0 turns it off (when etcd runs with --auto-compaction-*).
   */
  readonly compactEveryMs: number;
  readonly compactKeepRevisions: number;
  /** How often the health service (grpc.health.v1) asks the store whether it answers. */
  readonly healthCheckMs: number;
  /** How often the TLS files are looked at for a certificate renewed in place (new connections use it). */
  readonly tlsReloadMs: number;
}

export const DEFAULT_TIMING: ControlPlaneTiming = {
  heartbeatMs: 10_000,
  staleAfterMs: 30_000,
  statsIntervalMs: 2_000,
  registerTimeoutMs: 30_000,
  writeRetryMs: 20_000,
  compactEveryMs: 60_000,
  compactKeepRevisions: 10_000,
  healthCheckMs: 5_000,
  tlsReloadMs: 10_000,
};

export interface ControlPlaneOptions {
  /** "HOST:PORT"; port 0 picks a free one (see ControlPlane.port). IPv6 as "[::1]:PORT". Or "unix:PATH": a unix-domain socket. */
  readonly listen: string;
  /** "file:DIR" (embedded) or "etcd:URL[,URL...]" (shared by replicas). */
  readonly store: string;
  /** mTLS files, or "insecure" for plain text with no identity checks. */
  readonly tls: TlsFiles | "insecure";
  /** SPIFFE trust domain of peers' identities; default "msm.local". */
  readonly trustDomain?: string;
  /** This replica's name, shown in ProxyStatus.server; default "<hostname>:<port>" ("<hostname>:unix:PATH" on a unix socket). */
  readonly name?: string;
  /** Where the server reports what goes wrong; default stderr. */
  readonly log?: (message: string) => void;
  readonly timing?: Partial<ControlPlaneTiming>;
  /** When a hop of a stream's path is called bad; default DEFAULT_BAD_HOP. */
  readonly badHop?: BadHopThresholds;
}

export interface ControlPlane {
  /** The TCP port it listens on; 0 on a unix socket. */
  readonly port: number;
  readonly name: string;
  /** Every stream's path across the proxies, as ListStreams answers it (built at most once a second). */
  streamPaths(): Promise<StreamPath[]>;
  /** Every proxy the replica knows, as ListProxies answers (for the dashboard). */
  proxies(): Promise<ProxyStatus[]>;
  /** Ends every proxy stream (UNAVAILABLE, so proxies move to another replica), stops serving, closes the store. Safe to call twice. */
  close(): Promise<void>;
}

const CONFLICT = Symbol("conflict");
/** Where a listing came from (ListSegmentsResponse): the store, or this replica's copy while the store is down. */
interface ReplicaCopyFields {
  storeUnreachable: string;
  copyRevision: number;
}
/** Every segment as stored, `revision` its key's modification revision. */
async function storedSegments(store: Store): Promise<Segment[]> {
  const { items } = await store.list(SEGMENTS);
  return items.map((kv) => ({ ...(JSON.parse(kv.value.toString()) as Segment), revision: kv.modRevision }));
}

/** The segments of a replica's copy of the desired state, in the store's (key) order. */
function copiedSegments(state: DesiredState): Segment[] {
  return [...state.segments.values()].map((s) => s.segment).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function segmentsAnswer(req: { proxy: string; showSecrets: boolean }, read: { value: Segment[]; copy: ReplicaCopyFields }): { segments: Segment[] } & ReplicaCopyFields {
  const segments = read.value.filter((s) => req.proxy === "" || s.proxy === req.proxy);
  return { segments: req.showSecrets ? segments : segments.map(withoutSecrets), ...read.copy };
}

function filtersAnswer(read: { value: FilterRef[]; copy: ReplicaCopyFields }): { filters: FilterRef[] } & ReplicaCopyFields {
  return { filters: read.value, ...read.copy };
}

/** About how much JSON one ListStreams or DescribeStream answer carries, under a client's 4 MiB default. */
const STREAMS_ANSWER_BYTES = 2 << 20;
/** Paths are rebuilt from the store at most this often: a listing read page by page, and a dashboard polling, share one build. */
const STREAM_PATHS_MAX_AGE_MS = 1000;
const MAX_NACK_ERROR = 4096;
const MAX_NOT_RUNNING = 1000;
/** A retry delay a NACK may announce (the agent backs off to 30 s): a longer one is read as this. */
const MAX_RETRY_IN_MS = 3_600_000;

/** A proxy's error text, cut to a size the status record can hold. */
function bounded(error: string): string {
  return error.length > MAX_NACK_ERROR ? `${error.slice(0, MAX_NACK_ERROR)}...` : error;
}

/**
 * Refuses an ApplySegments request with settings this build's msm.proto does not define (an msmctl
 * newer than the control plane): decoded as usual they vanish, and the segments would be stored,
 * and run, without them while the apply reports success.
 */
function refuseUnknownFields(req: { segments: readonly Segment[] }): void {
  const unknown = unknownApplyFields(req);
  if (unknown.length === 0) return;
  const named = unknown.slice(0, 10).map((f) => f.replace(/^segments\[(\d+)\]([^:]*)/, (at, i: string) => `${at} ('${printable(req.segments[Number(i)]?.name ?? "?")}')`));
  throw invalid([
    ...named,
    ...(unknown.length > 10 ? [`and ${unknown.length - 10} more`] : []),
    "settings this control plane does not know, which it would store without: the client is newer than this control plane: upgrade the control plane, or apply without those settings; nothing was applied",
  ]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

type AnyCall = ServerUnaryCall<unknown, unknown> | ServerDuplexStream<unknown, unknown>;

/** One proxy's Connect stream. */
class ProxySession {
  readonly id = randomUUID();
  nodeId = "";
  registered = false;
  private lastSent = -1;
  /** The snapshot version last held back for settings this build does not know (logged once per version). */
  private heldBackVersion = -1;
  /** What this stream's proxy last acknowledged: the record is written back from it when this stream takes the record over again (heartbeat). */
  private lastAck: { ackedVersion: number; notRunning: string[]; notRunningError: string } | undefined;
  /** This stream's proxy's refusal still standing (none: cleared), written back with lastAck: the other stream's NACK is not this proxy's either. */
  private lastNack = { nackedVersion: 0, nackError: "", nackRetryAtMs: 0 };
  /** What the proxy's Register said of it until that is in the store (a failed write is tried again at each heartbeat). */
  private unrecorded: { capabilities: string[]; abiVersions: string[] } | undefined;
  private closed = false;
  private work: Promise<void> = Promise.resolve();
  private registerTimer: NodeJS.Timeout | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  /** Pages of the report being received, and the newest whole one not stored yet. */
  private readonly stats = new StatsAssembly();
  /** Pages the store holds for this node (undefined until the first write finds out). */
  private storedPages: number | undefined;
  /** The next write of stats may start then: at most every statsIntervalMs, and STATS_BYTES_PER_SEC. */
  private nextStatsWrite = 0;
  /** Stats pages refused: how often that is logged, whether one was since the last write, and whether the status says so. */
  private readonly statsDrops = new ReportLimiter(DROPPED_STATS_LOG_MS);
  private statsDroppedSinceFlush = false;
  private statsDropRecorded = false;
  /** The last line logged for this proxy: a proxy retrying a refused snapshot repeats itself. */
  private lastLogged = "";
  readonly finished: Promise<void>;
  private resolveFinished!: () => void;

  constructor(
    private readonly cp: ControlPlaneServer,
    private readonly call: ServerDuplexStream<ProxyMessage, unknown>,
    private readonly identity: Identity | undefined,
  ) {
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
  }

  start(): void {
    this.registerTimer = setTimeout(() => {
      this.fail(status.DEADLINE_EXCEEDED, `no Register within ${this.cp.timing.registerTimeoutMs} ms`);
    }, this.cp.timing.registerTimeoutMs);
    this.call.on("data", (msg: ProxyMessage) => this.onMessage(msg));
    this.call.on("end", () => this.finish(true));
    this.call.on("cancelled", () => this.finish(false));
    this.call.on("error", () => this.finish(false));
    this.call.on("close", () => this.finish(false));
  }

  /** Refuses a proxy's connection: logged here too, the proxy is told why. */
  private refuse(code: status, details: string): void {
    this.cp.logRefusal(this.peer, details);
    this.fail(code, details);
  }

  /** Ends the stream with a status. */
  fail(code: status, details: string): void {
    if (this.closed) return;
    this.call.emit("error", { code, details } as Partial<ServiceError>);
    this.finish(false);
  }

  /** Logs a line that quotes the proxy (made printable), unless it is the one logged last. */
  private logOnce(line: string): void {
    if (line === this.lastLogged) return;
    this.lastLogged = line;
    this.cp.log(printable(line));
  }

  /**
   * A stats page refused: logged when its reason is new, then once a minute with the count (a
   * proxy sends pages every second, their sizes differ), and recorded in the proxy's status so
   * that msmctl says its stats are not current; flushStats clears that once pages flow again.
   */
  private dropStats(reason: string, detail: string): void {
    this.statsDroppedSinceFlush = true;
    const held = this.statsDrops.admit("stats", reason);
    if (held !== undefined) this.cp.log(printable(`proxy ${this.nodeId}: a stats page was dropped, ${reason} (${detail})${held > 0 ? `; and ${held} more since the last report of it` : ""}`));
    if (held === undefined && this.statsDropRecorded) return;
    this.statsDropRecorded = true;
    const now = Date.now();
    this.enqueue("recording dropped stats", () => updateStatus(this.cp.store, this.nodeId, (s) => ({ ...s, statsDropped: `a stats page was dropped, ${reason} (${detail})`, statsDroppedAtMs: now })));
  }

  private enqueue(what: string, job: () => Promise<void>): void {
    this.work = this.work.then(job).catch((err: Error) => {
      // an etcd outage fails these writes for every proxy every few seconds: one line per minute
      // and reason, for the replica, rather than hundreds of proxies' lines every 2 s
      const held = this.cp.backgroundFailures.admit(`${what}\0${failureKind(err.message)}`, err.message);
      if (held === undefined) return;
      this.cp.log(`proxy ${this.nodeId}: ${what}: ${err.message}${held > 0 ? ` (and ${held} more alike, of this or other proxies, in the last minute)` : ""}`);
    });
  }

  private onMessage(msg: ProxyMessage): void {
    if (this.closed) return;
    if (!this.registered) {
      if (msg.kind !== "register") return this.refuse(status.INVALID_ARGUMENT, "the first message on a Connect stream must be Register");
      return this.register(msg.register);
    }
    const now = this.cp.storeNow();
    switch (msg.kind) {
      case "register":
        return this.fail(status.INVALID_ARGUMENT, "Register was already received on this stream");
      case "ack": {
        const { version } = msg.ack;
        const notRunning = msg.ack.notRunning.slice(0, MAX_NOT_RUNNING);
        const error = bounded(msg.ack.error);
        if (notRunning.length > 0) this.logOnce(`proxy ${this.nodeId} runs version ${version} without segments ${notRunning.join(", ")}: ${error}`);
        // an ACK of a version this replica sent, as new as the refused one, supersedes the refusal; not
        // an ACK of what the proxy ran before (it refused an older version from a new store: still refused)
        const supersedes = version <= this.lastSent;
        this.lastAck = { ackedVersion: version, notRunning, notRunningError: error };
        if (supersedes && version >= this.lastNack.nackedVersion) this.lastNack = { nackedVersion: 0, nackError: "", nackRetryAtMs: 0 };
        this.enqueue("recording an ACK", () => updateStatus(this.cp.store, this.nodeId, (s) => ({
          ...s, ackedVersion: version, notRunning, notRunningError: error, lastSeenMs: now,
          ...(supersedes && version >= s.nackedVersion ? { nackedVersion: 0, nackError: "", nackRetryAtMs: 0 } : {}),
        })));
        return;
      }
      case "nack": {
        const { version } = msg.nack;
        const text = bounded(msg.nack.error);
        const retryInMs = Math.min(msg.nack.retryInMs, MAX_RETRY_IN_MS);
        const nackRetryAtMs = retryInMs > 0 ? now + retryInMs : 0;
        this.logOnce(`proxy ${this.nodeId} refused version ${version}: ${text}`);
        this.lastNack = { nackedVersion: version, nackError: text, nackRetryAtMs };
        this.enqueue("recording a NACK", () => updateStatus(this.cp.store, this.nodeId, (s) => ({ ...s, nackedVersion: version, nackError: text, nackRetryAtMs, lastSeenMs: now })));
        return;
      }
      case "stats": {
        const { statsJson: json, page } = msg.stats;
        const pages = Math.max(1, msg.stats.pages);
        const bytes = Buffer.byteLength(json);
        // a page of a current proxy is at most STATS_PAGE_BYTES; an older proxy's single report may be larger
        const limit = Math.min(this.cp.store.maxValueBytes - 64, pages > 1 ? STATS_PAGE_BYTES : 4 * STATS_PAGE_BYTES);
        // a refused page in range still counts in its report: a gap, not a report never completed
        const inRange = page < pages && pages <= STATS_MAX_PAGES;
        const refused = (reason: string, detail: string): void => {
          this.dropStats(reason, detail);
          if (inRange && this.stats.add(page, pages, undefined, now)) this.scheduleStats();
        };
        if (bytes > limit || !inRange) {
          return refused(bytes > limit ? "too large" : "out of range", `page ${page} of ${pages}, ${bytes} bytes; at most ${STATS_MAX_PAGES} pages of ${limit} bytes`);
        }
        try {
          JSON.parse(json);
        } catch {
          return refused("not JSON", `page ${page} of ${pages} is not JSON`);
        }
        // every page of one report carries the time its first page came: a reader tells a whole
        // report from pages of two (written page by page) by that time (msmctl re-reads those)
        if (this.stats.add(page, pages, json, now)) this.scheduleStats();
        return;
      }
      default:
        return; // a newer proxy's message kind: nothing to do with it
    }
  }

  private register(reg: { nodeId: string; capabilities: string[]; abiVersions: string[]; runningVersion: number }): void {
    if (!NODE_ID.test(reg.nodeId)) return this.refuse(status.INVALID_ARGUMENT, `Register.node_id: '${reg.nodeId}' is not a node id (1-128 letters, digits, '.', '_' or '-')`);
    if (this.identity && this.identity.name !== reg.nodeId) {
      return this.refuse(status.PERMISSION_DENIED, `Register.node_id is '${reg.nodeId}' but the certificate is for proxy '${this.identity.name}' (${this.identity.spiffeId})`);
    }
    clearTimeout(this.registerTimer);
    // another live stream of this node on this replica (a failover from another replica is not
    // one): a reconnect before the old stream ended, or two proxies started with one node id,
    // whose statuses mix in one record (the newer takes it over): say so
    const twin = [...this.cp.sessions].find((o) => o !== this && o.serves(reg.nodeId));
    if (twin) {
      const why = "a reconnect before the old stream ended, or two proxies started with one node id (their statuses mix: give each its own)";
      this.cp.log(printable(`proxy ${reg.nodeId}: registered from ${this.peer} while its connection from ${twin.peer} is live: ${why}`));
      // and to both proxies: their own logs are where an operator of a proxy looks
      this.notice(`node id ${reg.nodeId}: another connection with it, from ${twin.peer}, is live at this control plane (${this.cp.name}): ${why}`);
      twin.notice(`node id ${reg.nodeId}: registered again from ${this.peer} while this connection is live at this control plane (${this.cp.name}): ${why}`);
    }
    this.registered = true;
    this.nodeId = reg.nodeId;
    this.cp.sessions.add(this);
    const now = this.cp.storeNow();
    const peer = this.peer;
    this.unrecorded = { capabilities: reg.capabilities, abiVersions: reg.abiVersions };
    this.enqueue("recording the connection", async () => {
      await updateStatus(this.cp.store, this.nodeId, (s) => ({
        ...s,
        connected: true, connectionId: this.id, peer, server: this.cp.name, lastSeenMs: now,
        capabilities: reg.capabilities, abiVersions: reg.abiVersions,
        // a proxy that restarted from its last good config says which version it runs
        ackedVersion: reg.runningVersion > 0 ? reg.runningVersion : s.ackedVersion,
        // and says again, when it acknowledges, which of its segments do not run
        notRunning: [], notRunningError: "",
        // a mark of pages dropped belongs to a connection: this one records its own (a restart
        // that fixed the page size would otherwise stay NOT CURRENT, as only a recording connection clears it)
        statsDropped: "", statsDroppedAtMs: 0,
      }));
      this.unrecorded = undefined;
    });
    // before the first listing the mirror is empty: sent, it would remove every segment the proxy runs
    if (this.cp.mirror.loaded) this.push(this.cp.mirror.state, true);
  }

  /** Whether this stream is node `node`'s, registered and open. */
  serves(node: string): boolean {
    return this.registered && !this.closed && this.nodeId === node;
  }

  /** Where the proxy connected from; over a unix socket, which has no address, the connection's own id (a duplicate node id must tell two apart). */
  get peer(): string {
    const peer = this.call.getPeer();
    return peer && peer !== "unknown" ? peer : `a unix socket (connection ${this.id.slice(0, 8)})`;
  }

  /** Sends the proxy its snapshot if its version moved (or always, right after Register). */
  push(state: DesiredState, always = false): void {
    if (!this.registered || this.closed) return;
    const snapshot = state.snapshotFor(this.nodeId);
    if (!always && snapshot.version <= this.lastSent) return;
    const newer = state.newerSettingsFor(this.nodeId);
    if (newer.length > 0) {
      // built here, the snapshot would run those segments without the settings: the proxy keeps what it runs
      if (snapshot.version !== this.heldBackVersion) {
        this.heldBackVersion = snapshot.version;
        const named = newer.slice(0, 5).map((n) => `${printable(n.segment)} (${n.fields.slice(0, 5).map((f) => printable(f)).join("; ")})`);
        this.cp.log(`proxy ${this.nodeId}: not sending snapshot ${snapshot.version}: segments stored by a newer control plane have settings this one does not know, which the proxy would run without: ` +
          `${named.join(", ")}${newer.length > 5 ? `, and ${newer.length - 5} more` : ""}. The proxy keeps running what it runs; upgrade this control plane, or apply those segments again without the settings`);
      }
      return;
    }
    this.heldBackVersion = -1;
    this.lastSent = snapshot.version;
    try {
      this.call.write({ snapshot });
    } catch (err) {
      this.cp.log(`proxy ${this.nodeId}: cannot send snapshot ${snapshot.version}: ${(err as Error).message}`);
    }
  }

  /** Text for the proxy's log (ControlMessage.notice): an older proxy skips the message. */
  notice(text: string): void {
    try {
      this.call.write({ notice: { text } });
    } catch (err) {
      this.cp.log(`proxy ${this.nodeId}: cannot send a notice: ${(err as Error).message}`);
    }
  }

  heartbeat(): void {
    if (!this.registered || this.closed) return;
    const now = this.cp.storeNow();
    const stale = this.cp.timing.staleAfterMs;
    const peer = this.peer;
    const unrecorded = this.unrecorded;
    if (unrecorded) {
      // the Register's write failed (the store down): what the proxy said of itself, again; not its
      // version nor its NOT-running list, which its ACKs may have written since
      this.enqueue("recording the connection again", async () => {
        await updateStatus(this.cp.store, this.nodeId, (s) => ({ ...s, connected: true, connectionId: this.id, peer, server: this.cp.name, lastSeenMs: now, ...unrecorded }));
        if (this.unrecorded === unrecorded) this.unrecorded = undefined;
      });
      return;
    }
    this.enqueue("refreshing last_seen", () =>
      updateStatus(this.cp.store, this.nodeId, (s) => {
        if (s.connectionId === this.id) return { ...s, connected: true, lastSeenMs: now };
        // another connection took the record over; reclaim it only if that one went quiet, with
        // what this proxy runs and refused (the other one's ACK and NACK, a second proxy of this node id, are not this one's)
        if (s.connected && now - s.lastSeenMs < stale) return undefined;
        return { ...s, connected: true, connectionId: this.id, peer, server: this.cp.name, lastSeenMs: now, ...(this.lastAck ?? {}), ...this.lastNack };
      }),
    );
  }

  private scheduleStats(): void {
    if (this.statsTimer || this.closed) return;
    this.statsTimer = setTimeout(() => {
      this.statsTimer = undefined;
      this.flushStats();
    }, Math.max(0, this.nextStatsWrite - Date.now()));
  }

  private flushStats(): void {
    const report = this.stats.take();
    if (!report) return;
    const { pages, pageCount } = report;
    let bytes = 0;
    for (const p of pages.values()) bytes += p.json.length;
    this.nextStatsWrite = Date.now() + Math.max(this.cp.timing.statsIntervalMs, (bytes / STATS_BYTES_PER_SEC) * 1000);
    const clearDropped = this.statsDropRecorded && !this.statsDroppedSinceFlush;
    if (clearDropped) this.statsDropRecorded = false;
    this.statsDroppedSinceFlush = false;
    this.enqueue("storing stats", async () => {
      this.storedPages = await writeStats(this.cp.store, this.nodeId, pages, pageCount, this.storedPages);
      if (clearDropped) await updateStatus(this.cp.store, this.nodeId, (s) => ({ ...s, statsDropped: "", statsDroppedAtMs: 0 }));
    });
  }

  private finish(clientEnded: boolean): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.registerTimer);
    clearTimeout(this.statsTimer);
    this.cp.sessions.delete(this);
    if (clientEnded) {
      try {
        this.call.end();
      } catch {
        // already ended
      }
    }
    if (this.registered) {
      this.flushStats();
      const now = this.cp.storeNow();
      this.enqueue("recording the disconnection", () =>
        updateStatus(this.cp.store, this.nodeId, (s) => (s.connectionId === this.id ? { ...s, connected: false, lastSeenMs: now } : undefined)),
      );
    }
    void this.work.then(() => this.resolveFinished());
  }
}

/** A proxy's stats pages dropped for one reason are logged again only this often. */
const DROPPED_STATS_LOG_MS = 60_000;
/** How often a session's background write failing alike (the store down) is logged again. */
const BACKGROUND_FAILURE_LOG_MS = 60_000;

/** A refused proxy connection that repeats (a proxy retries every second or so) is logged again only this often. */
const REFUSAL_LOG_MS = 60_000;

class ControlPlaneServer {
  private readonly refusals = new ReportLimiter(REFUSAL_LOG_MS);

  /** A refused proxy connection, logged when its reason is new for that host, then once a minute with the count. */
  logRefusal(peer: string, details: string): void {
    const host = peer.replace(/:\d+$/, ""); // each retry comes from a new port
    const held = this.refusals.admit(`${host}\0${details}`, details); // two proxies behind one address, failing differently, each once
    if (held === undefined) return;
    this.log(printable(`refused a proxy connection from ${peer}: ${details}${held > 0 ? ` (and ${held} more times from ${host} since the last report)` : ""}`));
  }

  readonly sessions = new Set<ProxySession>();
  readonly timing: ControlPlaneTiming;
  readonly trustDomain: string;
  readonly mirror: DesiredMirror;
  readonly grpc: Server;
  private readonly health: StoreHealth;
  name = "";
  /** Background writes of the proxies' sessions that failed (stats, last_seen): logged once a minute per reason. */
  readonly backgroundFailures = new ReportLimiter(BACKGROUND_FAILURE_LOG_MS);
  private writeQueue: Promise<unknown> = Promise.resolve();
  /** Now by the store's clock: what last_seen is written and judged in, whatever this host's clock says. */
  storeNow(): number {
    return this.store.now?.() ?? Date.now();
  }
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private compactTimer: NodeJS.Timeout | undefined;
  /** The store's revision when the previous compaction ran: the next one keeps nothing older. */
  private revisionAtLastCompaction = 0;
  private tlsReloadTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private paths: { atMs: number; paths: Promise<StreamPath[]> } | undefined;
  readonly badHop: BadHopThresholds;

  constructor(
    readonly store: Store,
    private readonly tls: TlsFiles | "insecure",
    options: ControlPlaneOptions,
    readonly log: (message: string) => void,
  ) {
    const given = Object.entries(options.timing ?? {}).filter(([, v]) => v !== undefined);
    this.timing = { ...DEFAULT_TIMING, ...Object.fromEntries(given) };
    this.trustDomain = options.trustDomain ?? "msm.local";
    this.badHop = options.badHop ?? DEFAULT_BAD_HOP;
    this.mirror = new DesiredMirror(store, (state) => {
      for (const s of this.sessions) s.push(state);
      this.health.recheck(); // SERVING once the state is listed, not at the next probe
    }, log);
    this.grpc = new Server({
      "grpc.max_receive_message_length": MAX_MODULE_BYTES + (1 << 20),
      "grpc.max_send_message_length": MAX_MODULE_BYTES + (1 << 20),
      // a proxy that vanished without closing its stream is noticed within ~15 s
      "grpc.keepalive_time_ms": 10_000,
      "grpc.keepalive_timeout_ms": 5_000,
    });
    this.grpc.addService(adminService, this.adminHandlers());
    this.grpc.addService(proxyService, this.proxyHandlers());
    // no role check: a probe may call it with any certificate the TLS handshake accepts
    this.health = new StoreHealth(store, this.timing.healthCheckMs, log, () => (this.mirror.loaded ? undefined : "the desired state is not listed yet"));
    this.health.addTo(this.grpc);
  }

  async start(listen: string, name: string | undefined): Promise<number> {
    await this.mirror.begin();
    await this.health.start();
    const credentials = serverCredentials(this.tls);
    const bound = await bindServer(this.grpc, listen, credentials);
    if (credentials.reload) {
      // certificates renewed in place (cert-manager, SPIRE) are served from the next connection on
      const reload = credentials.reload.bind(credentials);
      this.tlsReloadTimer = setInterval(() => {
        const line = reload();
        if (line) this.log(line);
      }, this.timing.tlsReloadMs);
      this.tlsReloadTimer.unref();
    }
    const port = isUnixSocketAddress(listen) ? 0 : bound; // grpc-js says 1 for a unix socket
    this.name = name ?? `${hostname()}:${port === 0 ? listen : port}`;
    this.heartbeatTimer = setInterval(() => {
      for (const s of this.sessions) s.heartbeat();
    }, this.timing.heartbeatMs);
    if (this.timing.compactEveryMs > 0) {
      this.compactTimer = setInterval(() => void this.compact(), this.timing.compactEveryMs);
      this.compactTimer.unref();
    }
    return port;
  }

  private async compact(): Promise<void> {
    try {
      const now = await this.store.revision();
      // the history older than the previous compaction goes too: a count alone kept gigabytes of stats pages
      const revision = Math.max(now - this.timing.compactKeepRevisions, this.revisionAtLastCompaction);
      this.revisionAtLastCompaction = now;
      if (revision > 1) await this.store.compact(revision);
    } catch (err) {
      this.log(`compacting the store's history failed: ${(err as Error).message}`);
    }
  }

  /** The caller's identity, checked for `role`; undefined when running insecure. Throws RpcError. */
  private authorize(call: AnyCall, role: Role): Identity | undefined {
    if (this.tls === "insecure") return undefined;
    const id = peerIdentity(call, this.trustDomain);
    if (!id) throw new RpcError(status.UNAUTHENTICATED, `the client certificate carries no SPIFFE ID of trust domain '${this.trustDomain}'`);
    if (id.role !== role) throw new RpcError(status.PERMISSION_DENIED, `${id.spiffeId} may not call ${call.getPath()}: it needs the '${role}' role`);
    return id;
  }

  /**
   * A unary handler: the caller's role checked, errors turned into statuses, and an answer before
   * the caller's deadline: a store that does not answer (etcd without a quorum) gives UNAVAILABLE
   * half a second before the caller would give up, instead of the caller's own timeout. `writes`:
   * the call may change the store, so an answer given early cannot say that nothing changed.
   */
  private unary<Req, Res>(
    role: Role, fn: (request: Req) => Promise<Res>, writes = false,
    /** A read's answer without the store (see readOrCopy), given in place of UNAVAILABLE when the store is that slow. */
    fromCopy?: (request: Req, why: string) => Res | undefined,
  ): handleUnaryCall<Req, Res> {
    return (call, callback) => {
      let answered = false;
      const answer = (err: Partial<ServiceError> | null, res?: Res): void => {
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        callback(err as ServiceError | null, res);
      };
      const deadline = call.getDeadline();
      const ms = (deadline instanceof Date ? deadline.getTime() : deadline) - Date.now() - 500;
      const timer = Number.isFinite(ms) && ms > 0 ? setTimeout(() => {
        const slow = `no answer from ${this.store.description} within ${Math.round(ms / 100) / 10} s`;
        const copy = fromCopy?.(call.request, slow);
        if (copy !== undefined) return answer(null, copy);
        const what = writes ? "the change may or may not be applied when it answers: look before trying again" : "nothing was changed";
        answer({ code: status.UNAVAILABLE, details: `store: ${slow} (${what})` });
      }, ms) : undefined;
      Promise.resolve()
        .then(() => {
          this.authorize(call as AnyCall, role);
          return fn(call.request);
        })
        .then(
          (response) => answer(null, response),
          (err: unknown) => answer(toStatus(err, this.log)),
        );
    };
  }

  /** Every stream's path: the mirrored segments joined with every proxy's latest stored report. */
  streamPaths(): Promise<StreamPath[]> {
    // before the first listing the mirror has no segment: paths built from it would be wrong, and kept a second
    if (!this.mirror.loaded) {
      return Promise.reject(new RpcError(status.UNAVAILABLE, `control plane ${this.name}: the desired state is not listed yet (${this.store.description} was down at its start): try again, or another replica`));
    }
    const now = Date.now();
    if (!this.paths || now - this.paths.atMs > STREAM_PATHS_MAX_AGE_MS) {
      const paths = latestReports(this.store).then((reports) => {
        const segments = [...this.mirror.state.segments.values()].map((s) => s.segment);
        return buildStreamPaths(segments, reports, this.badHop);
      });
      this.paths = { atMs: now, paths };
      paths.catch(() => {
        if (this.paths?.paths === paths) this.paths = undefined; // a failed read is not kept
      });
    }
    return this.paths.paths;
  }

  /** Runs writes of this replica one at a time (fewer conflicts), each retried on a conflict with other replicas. */
  private write<T>(what: string, attempt: () => Promise<T | typeof CONFLICT>): Promise<T> {
    const run = this.writeQueue.then(async () => {
      const deadline = Date.now() + this.timing.writeRetryMs;
      for (let n = 1; ; n++) {
        const result = await attempt();
        if (result !== CONFLICT) return result;
        if (Date.now() > deadline) throw new RpcError(status.ABORTED, `${what}: other writes kept changing the same proxies (${n} attempts); try again`);
        await sleep(Math.random() * Math.min(200, 5 * 2 ** n));
      }
    });
    this.writeQueue = run.catch(() => undefined);
    return run;
  }

  /**
   * A read of the desired state from the store, or, when the store fails (an etcd outage) and the
   * caller allows it, from this replica's mirror of it, saying so: what an operator sees during an
   * outage is what the proxies were last sent, not an error. Only the store's failures fall back;
   * before the mirror's first listing there is nothing to fall back on.
   */
  private async readOrCopy<T>(allowCopy: boolean, fromStore: () => Promise<T>, fromCopy: (state: DesiredState) => T): Promise<{ value: T; copy: ReplicaCopyFields }> {
    try {
      return { value: await fromStore(), copy: { storeUnreachable: "", copyRevision: 0 } };
    } catch (err) {
      const copied = allowCopy && err instanceof StoreError ? this.readCopy(err.message, fromCopy) : undefined;
      if (copied === undefined) throw err;
      return copied;
    }
  }

  /** The copy's answer, read because the store did not answer (`why`); undefined before the first listing. */
  private readCopy<T>(why: string, fromCopy: (state: DesiredState) => T): { value: T; copy: ReplicaCopyFields } | undefined {
    if (!this.mirror.loaded) return undefined;
    const revision = this.mirror.state.revision;
    // a script polling through an outage, or one call answered early and then failing: a line a minute
    const held = this.backgroundFailures.admit("read from the copy", "read from the copy");
    if (held !== undefined) this.log(`store: ${why}: answered a read from this replica's copy of the desired state, revision ${revision}${held > 0 ? ` (and ${held} more in the last minute)` : ""}`);
    return { value: fromCopy(this.mirror.state), copy: { storeUnreachable: why, copyRevision: revision } };
  }

  async proxies(): Promise<ProxyStatus[]> {
    return listProxies(this.store, await this.readDesired(), this.timing.staleAfterMs);
  }

  private async readDesired(): Promise<DesiredState> {
    const listing = await this.store.list(DESIRED);
    return DesiredState.from(listing.items, listing.revision);
  }

  /**
   * Refuses, as the request's fault, a change the store would refuse: too many operations, or a
   * value too large. Too many alone (the request validated whole) is refused with the store's
   * limit in a trailer, for a client to send it again in parts; a dry run that `mayBeSplit` is
   * not refused for it: true says so.
   */
  private checkTxnSize(ops: readonly Op[], compares: number, mayBeSplit = false): boolean {
    const issues: string[] = [];
    const most = Math.max(ops.length, compares);
    const tooMany = most > this.store.maxTxnOps;
    if (tooMany) {
      issues.push(`segments: this request needs ${most} store operations in one transaction; ${this.store.description} takes at most ${this.store.maxTxnOps}: split it`);
    }
    for (const op of ops) {
      const bytes = op.type === "put" ? Buffer.byteLength(op.value) : 0;
      if (bytes > this.store.maxValueBytes) {
        const what = op.key.startsWith(SEGMENTS) ? `segment '${op.key.slice(SEGMENTS.length)}'` : op.key;
        issues.push(`segments: ${what} is ${bytes} bytes stored; ${this.store.description} takes at most ${this.store.maxValueBytes} per value: make its chain configs smaller`);
      }
    }
    if (issues.length === 0) return false;
    const onlyTooMany = tooMany && issues.length === 1;
    if (onlyTooMany && mayBeSplit) return true;
    throw new RpcError(status.INVALID_ARGUMENT, issues.join("\n"), onlyTooMany ? { [MAX_TXN_OPS_TRAILER]: String(this.store.maxTxnOps) } : {});
  }

  private adminHandlers(): UntypedServiceImplementation {
    return {
      ApplySegments: this.unary<{ segments: Segment[]; dryRun: boolean; clientSplits: boolean }, ApplySegmentsResponse>("admin", (req) =>
        this.write("ApplySegments", async () => {
          refuseUnknownFields(req);
          const state = await this.readDesired();
          const plan = planApply(req.segments, state);
          // a dry run checks what the store would refuse too
          const split = this.checkTxnSize(plan.ops, plan.compares.length, req.dryRun && req.clientSplits);
          const response = { created: plan.created, configured: plan.configured, unchanged: plan.unchanged, maxTxnOps: split ? this.store.maxTxnOps : 0 };
          if (req.dryRun || plan.ops.length === 0) return { ...response, revision: state.revision };
          const r = await this.store.txn(plan.compares, plan.ops);
          return r.succeeded ? { ...response, revision: r.revision } : CONFLICT;
        }),
        true,
      ),
      DeleteSegments: this.unary<{ names: string[] }, DeleteSegmentsResponse>("admin", (req) => {
        if (req.names.length === 0) throw invalid(["names: nothing to delete"]);
        return this.write("DeleteSegments", async () => {
          const plan = planDelete(req.names, await this.readDesired());
          if ("missing" in plan) throw new RpcError(status.NOT_FOUND, `${plan.missing.map((n) => `segment "${n}" not found`).join(", ")}; nothing was deleted`);
          this.checkTxnSize(plan.ops, plan.compares.length);
          const r = await this.store.txn(plan.compares, plan.ops);
          return r.succeeded ? { deleted: plan.deleted, revision: r.revision } : CONFLICT;
        });
      }, true),
      ListSegments: this.unary<{ proxy: string; showSecrets: boolean; allowCopy: boolean }, { segments: Segment[] } & ReplicaCopyFields>(
        "admin",
        async (req) => segmentsAnswer(req, await this.readOrCopy(req.allowCopy, () => storedSegments(this.store), copiedSegments)),
        false,
        (req, why) => {
          const read = req.allowCopy ? this.readCopy(why, copiedSegments) : undefined;
          return read && segmentsAnswer(req, read);
        },
      ),
      ListProxies: this.unary<unknown, { proxies: ProxyStatus[] }>("admin", async () => ({ proxies: await this.proxies() })),
      DeleteProxies: this.unary<{ nodeIds: string[] }, { deleted: string[] }>("admin", (req) => {
        if (req.nodeIds.length === 0) throw invalid(["node_ids: nothing to delete"]);
        return this.write("DeleteProxies", async () => {
          const plan = await planProxyDeletion(this.store, await this.readDesired(), [...new Set(req.nodeIds)], this.timing.staleAfterMs);
          if ("refused" in plan) throw new RpcError(plan.notFound ? status.NOT_FOUND : status.FAILED_PRECONDITION, plan.refused);
          this.checkTxnSize(plan.ops, plan.compares.length);
          const r = await this.store.txn(plan.compares, plan.ops);
          return r.succeeded ? { deleted: plan.deleted } : CONFLICT;
        });
      }, true),
      GetStats: this.unary<{ proxy: string; pageToken: string }, { proxies: ProxyStats[]; nextPageToken: string }>("admin", async (req) => {
        if (req.pageToken !== "" && !req.pageToken.startsWith(req.proxy === "" ? STATS : `${STATS}${req.proxy}/`)) throw invalid(["page_token: not a token of this listing"]);
        const { pages, next } = await readStats(this.store, req.proxy, req.pageToken);
        if (req.proxy !== "" && req.pageToken === "" && pages.length === 0) throw new RpcError(status.NOT_FOUND, `no stats from proxy '${req.proxy}' (it never reported, or the name is wrong)`);
        return { proxies: pages, nextPageToken: next };
      }),
      PushFilter: this.unary<{ name: string; version: string; wasm: Buffer }, { ref: FilterRef; alreadyPresent: boolean }>("admin", (req) =>
        pushFilter(this.store, req.name, req.version, req.wasm), true,
      ),
      ListFilters: this.unary<{ allowCopy: boolean }, { filters: FilterRef[] } & ReplicaCopyFields>(
        "admin",
        async (req) => filtersAnswer(await this.readOrCopy(req.allowCopy, () => listFilters(this.store), filtersOf)),
        false,
        (req, why) => {
          const read = req.allowCopy ? this.readCopy(why, filtersOf) : undefined;
          return read && filtersAnswer(read);
        },
      ),
      ListStreams: this.unary<{ proxy: string; badOnly: boolean; pageToken: string }, ListStreamsResponse>("admin", async (req) => {
        const chosen = (await this.streamPaths()).filter((p) => (req.proxy === "" || p.segments.some((s) => s.proxy === req.proxy)) && (!req.badOnly || p.worst >= 0));
        // paths are sorted by name: the token is the last name given
        const rest = req.pageToken === "" ? chosen : chosen.filter((p) => p.name > req.pageToken);
        const { json, taken } = jsonArray(rest);
        return { pathsJson: json, nextPageToken: taken < rest.length ? rest[taken - 1]!.name : "", badLoss: this.badHop.loss, badJitterMs: this.badHop.jitterMs };
      }),
      DescribeStream: this.unary<{ name: string }, DescribeStreamResponse>("admin", async (req) => {
        if (req.name === "") throw invalid(["name: required (a stream's name, as msmctl get streams lists it)"]);
        const all = await this.streamPaths();
        const found = pathsNamed(all, req.name);
        if (found.length === 0) {
          const close = closeNames(req.name, all.map((p) => p.name));
          const hint = close.length > 0 ? ` (close names: ${close.join(", ")})` : all.length > 0 ? ` (${all.length} streams: msmctl get streams lists them)` : " (no proxy reports any stream yet)";
          throw new RpcError(status.NOT_FOUND, `no stream named '${req.name}'${hint}`);
        }
        const { json, taken } = jsonArray(found);
        return { pathsJson: json, omitted: found.length - taken, badLoss: this.badHop.loss, badJitterMs: this.badHop.jitterMs };
      }),
    };
  }

  private proxyHandlers(): UntypedServiceImplementation {
    const connect: handleBidiStreamingCall<ProxyMessage, unknown> = (call) => {
      let identity: Identity | undefined;
      try {
        identity = this.authorize(call as AnyCall, "proxy");
      } catch (err) {
        const refusal = toStatus(err, this.log);
        this.logRefusal(call.getPeer(), refusal.details ?? "refused");
        call.emit("error", refusal);
        return;
      }
      if (this.closing) {
        call.emit("error", { code: status.UNAVAILABLE, details: `control plane ${this.name} is shutting down` });
        return;
      }
      new ProxySession(this, call, identity).start();
    };
    return {
      Connect: connect,
      FetchFilter: this.unary<{ sha256: string }, FilterModule>("proxy", (req) => fetchFilter(this.store, req.sha256)),
    };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.heartbeatTimer);
      clearInterval(this.compactTimer);
      clearInterval(this.tlsReloadTimer);
      this.health.stop();
      const sessions = [...this.sessions];
      for (const s of sessions) s.fail(status.UNAVAILABLE, `control plane ${this.name} is shutting down`);
      // the disconnections recorded, if the store lets us within a moment
      let patience: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(sessions.map((s) => s.finished)), new Promise((r) => (patience = setTimeout(r, 2000)))]);
      clearTimeout(patience); // else it holds the process up to 2 s after the close
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          this.grpc.forceShutdown();
          resolve();
        }, 2000);
        this.grpc.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      this.mirror.close();
      await this.writeQueue;
      await this.store.close();
    })();
    return this.closing;
  }
}

/** Paths as a JSON array of about STREAMS_ANSWER_BYTES at most (at least one path), and how many it holds. */
function jsonArray(paths: readonly StreamPath[]): { json: string; taken: number } {
  const parts: string[] = [];
  let bytes = 2;
  for (const p of paths) {
    const json = JSON.stringify(p);
    if (parts.length > 0 && bytes + json.length + 1 > STREAMS_ANSWER_BYTES) break;
    parts.push(json);
    bytes += json.length + 1;
  }
  return { json: `[${parts.join(",")}]`, taken: parts.length };
}

/** Starts a control-plane replica: opens the store, mirrors its desired state, serves gRPC. */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  if (!/^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+):\d{1,5}$/.test(options.listen) && !isUnixSocketAddress(options.listen)) {
    throw new Error(`listen address '${options.listen}' must be HOST:PORT (IPv6 as [ADDR]:PORT) or unix:PATH`);
  }
  const log = options.log ?? ((message: string) => console.error(`${new Date().toISOString()} control-plane: ${message}`));
  if (options.tls !== "insecure") {
    // a certificate no client accepts: a replica that ran would look healthy and serve nobody
    const { fatal, warning } = serverCertificateProblem(options.tls, options.trustDomain ?? "msm.local");
    if (fatal) throw new Error(fatal);
    if (warning) log(`warning: ${warning}`);
  }
  // etcd down at the start: the replica serves NOT_SERVING until it answers (its proxies keep their configs)
  const store = await openStore(options.store, { etcd: { waitForAnswer: false } });
  if (store instanceof EtcdStore) {
    store.onClockOffset = (ms) =>
      log(Math.abs(ms) > 5000
        ? `this host's clock is ${Math.round(Math.abs(ms) / 1000)} s ${ms > 0 ? "behind" : "ahead of"} etcd's (its Date headers): fix its time sync; proxies' last_seen is written and judged by etcd's clock meanwhile`
        : "this host's clock agrees with etcd's again (within 5 s)");
  }
  const cp = new ControlPlaneServer(store, options.tls, options, log);
  let port: number;
  try {
    port = await cp.start(options.listen, options.name);
  } catch (err) {
    await cp.close().catch(() => undefined);
    throw err;
  }
  return { port, name: cp.name, streamPaths: () => cp.streamPaths(), proxies: () => cp.proxies(), close: () => cp.close() };
}
