// The AdminService as msmctl calls it: one channel, promises, a deadline per call, and gRPC
// failures turned into one short sentence that names the server.
import { isIP } from "node:net";
import { status, type Client, type ServiceError } from "@grpc/grpc-js";
import {
  AdminServiceClient,
  MAX_TXN_OPS_TRAILER,
  type ApplySegmentsResponse,
  type DeleteSegmentsResponse,
  type DescribeStreamResponse,
  type FilterRef,
  type ListStreamsResponse,
  type ProxyStats,
  type ProxyStatus,
  type Segment,
} from "../../controlplane/api/proto.js";
import { connectionFailure } from "../../controlplane/api/status-text.js";
import { bareConnectFailure, closedAtHandshake, plainTextServer, probeTransport, SERVER_IS_PLAIN_TEXT, SERVER_SPEAKS_TLS } from "../../controlplane/api/transport.js";
import { isUnixSocketAddress } from "../../controlplane/api/unix-socket.js";
import type { BadHopThresholds, StreamPath } from "../../controlplane/api/streams.js";
import { channelCredentials, clientCertificateProblem, type TlsFiles } from "../../controlplane/security/tls.js";
import { UsageError } from "../usage.js";
import { incompleteReports } from "./stats.js";

/** A failure the operator should read; msmctl prints its message and exits 1. */
export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    message: string,
    /**
     * For a failed call: its gRPC status and the server's own words; `maxTxnOps` when the request
     * was refused only for being too large for one store transaction (it may be sent in parts).
     */
    readonly rpc?: { readonly code: status; readonly details: string; readonly maxTxnOps?: number },
  ) {
    super(message);
  }
}

export interface ConnectOptions {
  /** HOST:PORT or unix:PATH */
  readonly server: string;
  readonly tls: TlsFiles | "insecure";
  readonly timeoutMs: number;
}

/** A listing's source: `storeUnreachable` "" (the store), or (asked with allowCopy) why the answering replica's copy of the desired state, as of `copyRevision`, was read instead. */
export interface ReplicaCopy {
  storeUnreachable: string;
  copyRevision: number;
}

export interface AdminApi {
  readonly server: string;
  /** `clientSplits`: a dry run of a request too large for one transaction answers, with maxTxnOps set. */
  applySegments(req: { segments: Segment[]; dryRun: boolean; clientSplits?: boolean }): Promise<ApplySegmentsResponse>;
  deleteSegments(req: { names: string[] }): Promise<DeleteSegmentsResponse>;
  /** Secret-looking config values come back as "<redacted>" unless `showSecrets`. */
  /** `allowCopy`: while the store cannot be read, the replica's copy (for showing only: see ReplicaCopy). */
  listSegments(req: { proxy: string; showSecrets?: boolean; allowCopy?: boolean }): Promise<{ segments: Segment[] } & ReplicaCopy>;
  listProxies(): Promise<{ proxies: ProxyStatus[] }>;
  /** Forgets proxies gone for good (not connected, named by no segment); all or none. */
  deleteProxies(req: { nodeIds: string[] }): Promise<{ deleted: string[] }>;
  /**
   * Every page of the latest report of every proxy (or one), read page by page; `incomplete`
   * says why reading stopped early (more than MAX_STATS_BYTES in all).
   */
  getStats(req: { proxy: string }): Promise<{ proxies: ProxyStats[]; incomplete?: string }>;
  pushFilter(req: { name: string; version: string; wasm: Buffer }): Promise<{ ref: FilterRef | null; alreadyPresent: boolean }>;
  listFilters(req?: { allowCopy?: boolean }): Promise<{ filters: FilterRef[] } & ReplicaCopy>;
  /** Every stream's path (or those crossing one proxy, or with a bad hop), read page by page; `incomplete` as getStats's. */
  listStreams(req: { proxy: string; badOnly: boolean }): Promise<{ paths: StreamPath[]; thresholds: BadHopThresholds; incomplete?: string }>;
  /** The paths of one stream; `omitted` paths matched but did not fit the answer. */
  describeStream(name: string): Promise<{ paths: StreamPath[]; omitted: number; thresholds: BadHopThresholds }>;
  close(): void;
}

const SHORT: Partial<Record<status, string>> = {
  [status.INVALID_ARGUMENT]: "refused",
  [status.NOT_FOUND]: "not found",
  [status.ALREADY_EXISTS]: "already exists",
  [status.FAILED_PRECONDITION]: "refused",
  [status.OUT_OF_RANGE]: "refused",
  [status.ABORTED]: "conflict, try again",
  [status.RESOURCE_EXHAUSTED]: "too large or too many",
  [status.INTERNAL]: "control-plane error",
  [status.UNKNOWN]: "control-plane error",
  [status.DATA_LOSS]: "control-plane error",
  [status.CANCELLED]: "cancelled",
};

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === "number";
}

/** How often, and how far apart, a proxy whose pages hold no whole report is read again. */
const INCOMPLETE_REREADS = 10;
const REREAD_GAP_MS = 150;
/** How long msmctl --insecure may spend finding out whether a server it could not reach speaks TLS. */
const PROBE_MS = 2000;

/** One line for a failed call: what happened, with the server's own words when it gave any. `tls`: how msmctl spoke to it. */
export function explainError(err: unknown, server: string, method: string, timeoutMs: number, tls: "tls" | "insecure" = "tls"): string {
  if (!isServiceError(err)) return (err as Error)?.message ?? String(err);
  const details = err.details || "";
  switch (err.code) {
    case status.UNAVAILABLE: {
      if (/^store: .*is out of space and refuses every write/.test(details)) return `the control plane at ${server} cannot write to its store (nothing was changed): ${details.slice(7)}`;
      if (/^store: /.test(details)) return `the control plane at ${server} cannot reach its store (nothing was changed): ${details.slice(7)}`;
      const cause = connectionFailure(details);
      if (/not a control plane/.test(cause)) return `refusing the server at ${server}: ${cause} (is --server right?)`;
      if (/ECONNREFUSED/.test(cause)) return `cannot connect to the control plane at ${server}: connection refused (is it running? see --server or MSM_SERVER)`;
      if (/ENOTFOUND|EAI_AGAIN/.test(cause)) return `cannot connect to the control plane at ${server}: unknown host`;
      if (/EHOSTUNREACH|ENETUNREACH|ETIMEDOUT/.test(cause)) return `cannot connect to the control plane at ${server}: unreachable`;
      if (tls === "tls" && plainTextServer(cause)) return `cannot talk to the control plane at ${server}: ${SERVER_IS_PLAIN_TEXT.replace("give --insecure", "give msmctl --insecure (or MSM_INSECURE=1)")}`;
      if (/certificate|SSL|TLS|handshake|alert/i.test(cause)) return `TLS with the control plane at ${server} failed: ${cause} (check --tls-ca, --tls-cert, --tls-key)`;
      if (/Connection dropped|Protocol error|Received RST|ECONNRESET/i.test(cause)) {
        return `the control plane at ${server} closed the connection (${cause}): does it use TLS while you use --insecure, or the reverse?`;
      }
      return `the control plane at ${server} is unavailable: ${cause || "no connection"}`;
    }
    case status.DEADLINE_EXCEEDED:
      return `no answer from the control plane at ${server} within ${Math.round(timeoutMs / 100) / 10} s (see --timeout)`;
    case status.PERMISSION_DENIED:
      return `permission denied by the control plane at ${server}: ${details || `${method} needs an admin certificate (spiffe://<trust-domain>/admin/<name>)`}`;
    case status.UNAUTHENTICATED:
      return `not authenticated by the control plane at ${server}${details ? `: ${details}` : ""} (check --tls-cert and --tls-key)`;
    case status.UNIMPLEMENTED:
      return `the control plane at ${server} does not offer ${method}${details ? ` (${details})` : ""}: is it an older version, or not an MSM control plane?`;
    default:
      return `${SHORT[err.code] ?? status[err.code]?.toLowerCase() ?? `error ${err.code}`}: ${details || "(no details)"}`;
  }
}

/** Checks HOST:PORT (IPv6 in brackets; a bare host gets port 7400) or unix:PATH. */
export function normalizeServer(server: string): string {
  if (isUnixSocketAddress(server.trim())) return server.trim();
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+)(?::(\d+))?$/.exec(server.trim());
  if (!m) throw new UsageError(`--server must be HOST:PORT (IPv6 as [ADDR]:PORT) or unix:PATH, got '${server}'`);
  const port = m[2] === undefined ? 7400 : Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--server: port must be 1-65535, got '${m[2]}'`);
  return `${m[1]}:${port}`;
}

/** How much stats msmctl reads in one poll, in all (each answer is about 2 MiB). */
const MAX_STATS_BYTES = 64 << 20;

function parsePaths(json: string, server: string): StreamPath[] {
  try {
    const paths = JSON.parse(json) as unknown;
    if (Array.isArray(paths)) return paths as StreamPath[];
  } catch {
    // said below
  }
  throw new CliError(`the control plane at ${server} sent stream paths that are not a JSON array`);
}

function thresholdsOf(res: { badLoss: number; badJitterMs: number }): BadHopThresholds {
  return { loss: res.badLoss, jitterMs: res.badJitterMs };
}

/** The store's limit a refusal names when only that limit refused the request. */
function maxTxnOpsOf(err: ServiceError): { maxTxnOps?: number } {
  const value = Number(err.metadata?.get(MAX_TXN_OPS_TRAILER)[0]);
  return Number.isInteger(value) && value > 0 ? { maxTxnOps: value } : {};
}

type Callback = (err: ServiceError | null, res: unknown) => void;
type Unary = (req: unknown, options: { deadline: number }, cb: Callback) => unknown;

export function connectAdmin(opts: ConnectOptions): AdminApi {
  let creds;
  try {
    creds = channelCredentials(opts.tls);
  } catch (err) {
    throw new CliError(`cannot read the TLS files: ${(err as Error).message}`);
  }
  // Peers are checked by the chain to the CA and their SPIFFE ID, not by name; an IP literal as
  // the TLS server name (SNI) only earns a warning from Node (RFC 6066 forbids it), so send a fixed one.
  const host = opts.server.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  const options = opts.tls !== "insecure" && isIP(host) !== 0 ? { "grpc.ssl_target_name_override": "msm-control-plane" } : {};
  const client = new AdminServiceClient(opts.server, creds, options) as Client & Record<string, Unary>;
  const call = <Res>(method: string, req: unknown): Promise<Res> =>
    new Promise<Res>((resolve, reject) => {
      const fn = client[method[0]!.toLowerCase() + method.slice(1)]!;
      fn.call(client, req, { deadline: Date.now() + opts.timeoutMs }, (err, res) => {
        if (!err) return resolve(res as Res);
        const rpc = { code: err.code, details: err.details ?? "", ...maxTxnOpsOf(err) };
        let message = explainError(err, opts.server, method, opts.timeoutMs, opts.tls === "insecure" ? "insecure" : "tls");
        if (opts.tls !== "insecure" && err.code === status.UNAVAILABLE) {
          const cause = connectionFailure(rpc.details);
          const problem = closedAtHandshake(cause) ? clientCertificateProblem(opts.tls) : undefined;
          if (problem) message = `TLS with the control plane at ${opts.server} failed: ${problem} (${cause})`;
        }
        // plain text to a TLS server fails with grpc-js's bare "Failed to connect": ask the server
        if (opts.tls !== "insecure" || err.code !== status.UNAVAILABLE || !bareConnectFailure(connectionFailure(rpc.details))) return reject(new CliError(message, rpc));
        void probeTransport(opts.server, Math.min(PROBE_MS, opts.timeoutMs)).then((speaks) =>
          reject(new CliError(speaks === "tls" ? `cannot talk to the control plane at ${opts.server}: ${SERVER_SPEAKS_TLS} (or MSM_TLS_*)` : message, rpc)),
        );
      });
    });
  return {
    server: opts.server,
    applySegments: (req) => call("ApplySegments", req),
    deleteSegments: (req) => call("DeleteSegments", req),
    listSegments: (req) => call("ListSegments", req),
    listProxies: () => call("ListProxies", {}),
    deleteProxies: (req) => call("DeleteProxies", req),
    getStats: async (req) => {
      const readAll = async (proxy: string): Promise<{ proxies: ProxyStats[]; incomplete?: string }> => {
        const proxies: ProxyStats[] = [];
        let bytes = 0;
        let pageToken = "";
        do {
          const res = await call<{ proxies: ProxyStats[]; nextPageToken: string }>("GetStats", { proxy, pageToken });
          proxies.push(...res.proxies);
          for (const p of res.proxies) bytes += p.statsJson.length;
          pageToken = res.nextPageToken;
          if (pageToken !== "" && bytes > MAX_STATS_BYTES) {
            return { proxies, incomplete: `stopped reading stats after ${MAX_STATS_BYTES >> 20} MiB: give --proxy NODE to see one proxy's` };
          }
        } while (pageToken !== "");
        return { proxies };
      };
      const first = await readAll(req.proxy);
      // a report is stored page by page, so a read can catch one half written. Read such a proxy
      // again and keep every page read: the pages of the reads together hold a whole report once
      // one read saw the rest of it (each segment is shown from the newest page that has it).
      let proxies = first.proxies;
      for (const node of incompleteReports(proxies)) {
        const seen = new Set(proxies.filter((p) => p.nodeId === node).map((p) => `${p.atMs}/${p.page}`));
        for (let attempt = 0; attempt < INCOMPLETE_REREADS && incompleteReports(proxies).includes(node); attempt++) {
          await new Promise((r) => setTimeout(r, REREAD_GAP_MS));
          for (const p of (await readAll(node)).proxies) {
            if (p.nodeId !== node || seen.has(`${p.atMs}/${p.page}`)) continue;
            seen.add(`${p.atMs}/${p.page}`);
            proxies = [...proxies, p];
          }
        }
      }
      return { proxies, ...(first.incomplete ? { incomplete: first.incomplete } : {}) };
    },
    pushFilter: (req) => call("PushFilter", req),
    listFilters: (req = {}) => call("ListFilters", req),
    listStreams: async (req) => {
      const paths: StreamPath[] = [];
      let bytes = 0;
      let pageToken = "";
      let res: ListStreamsResponse;
      do {
        res = await call<ListStreamsResponse>("ListStreams", { ...req, pageToken });
        paths.push(...parsePaths(res.pathsJson, opts.server));
        bytes += res.pathsJson.length;
        pageToken = res.nextPageToken;
        if (pageToken !== "" && bytes > MAX_STATS_BYTES) {
          return { paths, thresholds: thresholdsOf(res), incomplete: `stopped reading streams after ${MAX_STATS_BYTES >> 20} MiB: give --proxy NODE to see the streams crossing one proxy` };
        }
      } while (pageToken !== "");
      return { paths, thresholds: thresholdsOf(res) };
    },
    describeStream: async (name) => {
      const res = await call<DescribeStreamResponse>("DescribeStream", { name });
      return { paths: parsePaths(res.pathsJson, opts.server), omitted: res.omitted, thresholds: thresholdsOf(res) };
    },
    close: () => client.close(),
  };
}
