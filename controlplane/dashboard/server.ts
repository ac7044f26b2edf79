// The control plane's live dashboard over HTTP(S): the page, its live updates (SSE), the stream
// paths as JSON, and the per-hop figures for Prometheus. Authenticated as the admin API is: with
// the control plane's TLS files every client presents a certificate of the CA, and only the admin
// role gets an answer; insecure, plain HTTP for anyone (the caller says so loudly).
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import type { Server as TlsServer, TLSSocket } from "node:tls";
import type { ProxyStatus } from "../api/proto.js";
import type { StreamPath } from "../api/streams.js";
import { filesStamp, identityIn, TLS_HANDSHAKE_TIMEOUT_MS, TlsFileWatch, type TlsFiles } from "../security/tls.js";
import { loadAssets } from "./assets.js";
import { LiveFeed } from "./live-feed.js";
import { renderMetrics, type StoreView } from "./metrics.js";
import { dashboardState, worstFirst } from "./view.js";

export interface DashboardLimits {
  /** How often live clients get the state. */
  updateIntervalMs: number;
  /** Live-update (SSE) clients at once; more get 503. */
  maxEventClients: number;
  /** A live client with more unsent bytes than this reads too slowly and is dropped. */
  maxBufferedBytes: number;
  /** Streams the page is sent (the worst ones); the mesh graph and the counts cover all. */
  maxPageStreams: number;
  /** Streams with series of their own on /metrics (the worst ones). */
  maxMetricStreams: number;
  /** Open connections at once. */
  maxConnections: number;
  /** How often the TLS files are looked at for a certificate renewed in place (new connections use it). */
  tlsReloadMs: number;
}

export const DEFAULT_DASHBOARD_LIMITS: DashboardLimits = {
  updateIntervalMs: 1000,
  maxEventClients: 32,
  maxBufferedBytes: 4 << 20,
  maxPageStreams: 100,
  maxMetricStreams: 500,
  maxConnections: 256,
  tlsReloadMs: 10_000,
};

export interface DashboardOptions {
  /** "HOST:PORT"; port 0 picks a free one. IPv6 as "[::1]:PORT". */
  readonly listen: string;
  /** The control plane's own TLS files (HTTPS, admin client certificates only), or "insecure" (plain HTTP). */
  readonly tls: TlsFiles | "insecure";
  /** SPIFFE trust domain of the admin certificates; default "msm.local", the control plane's. */
  readonly trustDomain?: string;
  /** Every stream's path across the proxies, as the control plane joins them. */
  readonly getPaths: () => Promise<StreamPath[]>;
  /** Every proxy the control plane knows (ListProxies): shown even when no stream crosses it. */
  readonly getProxies?: () => Promise<ProxyStatus[]>;
  readonly log?: (message: string) => void;
  readonly limits?: Partial<DashboardLimits>;
}

export interface Dashboard {
  readonly port: number;
  /** Where it serves, e.g. "https://127.0.0.1:7401". */
  readonly url: string;
  /** Ends live clients, stops serving. Safe to call twice. */
  close(): Promise<void>;
}

/** Headers on every answer: nothing but our own files runs, loads, or frames the page. */
const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

/** Concurrent callers share one call of `fn` in flight: a page, the live feed and a scrape read the store once. */
function shared<T>(fn: () => Promise<T>): () => Promise<T> {
  let inFlight: Promise<T> | undefined;
  return () => (inFlight ??= fn().finally(() => (inFlight = undefined)));
}

function send(res: ServerResponse, code: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void {
  res.writeHead(code, { ...SECURITY_HEADERS, "content-type": type, "content-length": String(Buffer.byteLength(body)), ...extra });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

const TEXT = "text/plain; charset=utf-8";
const JSON_TYPE = "application/json; charset=utf-8";

/** "HOST:PORT" split, or an Error that says what is wrong with it. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(listen);
  if (!m || Number(m[2]) > 65535) throw new Error(`dashboard address '${listen}' must be HOST:PORT (IPv6 as [ADDR]:PORT)`);
  return { host: m[1]!, port: Number(m[2]) };
}

export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const { host, port: wanted } = parseListen(options.listen);
  const limits = { ...DEFAULT_DASHBOARD_LIMITS, ...options.limits };
  const log = options.log ?? ((message: string) => console.error(`${new Date().toISOString()} ${message}`));
  const trustDomain = options.trustDomain ?? "msm.local";
  const assets = loadAssets();
  const getPaths = shared(options.getPaths);
  const getProxies = shared(options.getProxies ?? (async () => []));
  const state = async (): Promise<string> => {
    const [paths, proxies] = await Promise.all([getPaths(), getProxies()]);
    return JSON.stringify(dashboardState(paths, proxies, limits.maxPageStreams));
  };
  const feed = new LiveFeed(state, { intervalMs: limits.updateIntervalMs, maxClients: limits.maxEventClients, maxBufferedBytes: limits.maxBufferedBytes }, log);

  /** Why this request may not be answered, or undefined. Plain HTTP (insecure) lets everyone in. */
  const refusal = (req: IncomingMessage): [number, string] | undefined => {
    if (options.tls === "insecure") return undefined;
    const cert = (req.socket as TLSSocket).getPeerCertificate();
    const id = identityIn(cert?.subjectaltname ?? "", trustDomain);
    if (!id) return [401, `the client certificate carries no SPIFFE ID of trust domain '${trustDomain}'`];
    if (id.role !== "admin") return [403, `${id.spiffeId} may not read the dashboard: it needs the 'admin' role`];
    return undefined;
  };

  /** The store's failure the last scrape logged: a scrape every 15 s during an outage says it once. */
  let metricsFailure: string | undefined;
  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void> | void> = {
    "/healthz": (_req, res) => send(res, 200, TEXT, "ok\n"),
    "/api/streams": async (_req, res) => {
      const paths = [...(await getPaths())].sort(worstFirst);
      send(res, 200, JSON_TYPE, JSON.stringify(paths), { "cache-control": "no-store" });
    },
    "/api/state": async (_req, res) => send(res, 200, JSON_TYPE, await state(), { "cache-control": "no-store" }),
    "/api/events": (req, res) => feed.serve(req, res, SECURITY_HEADERS),
    "/metrics": async (_req, res) => {
      // a store outage is when the scrape matters most: answer it, saying the store is down
      let view: StoreView;
      try {
        const [paths, proxies] = await Promise.all([getPaths(), getProxies()]);
        view = { paths, proxies };
      } catch (err) {
        if (metricsFailure !== (err as Error).message) log(`dashboard: /metrics: the store did not answer (${(err as Error).message}): msm_control_plane_store_up 0`);
        metricsFailure = (err as Error).message;
      }
      if (view) metricsFailure = undefined;
      const text = renderMetrics(view, limits.maxMetricStreams, { clients: feed.size, dropped: feed.dropped, refused: feed.refused });
      send(res, 200, "text/plain; version=0.0.4; charset=utf-8", text, { "cache-control": "no-store" });
    },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const denied = refusal(req);
    if (denied) return send(res, denied[0], TEXT, `${denied[1]}\n`);
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, TEXT, "only GET and HEAD\n", { allow: "GET, HEAD" });
    const path = new URL(req.url ?? "/", "http://dashboard").pathname;
    const route = routes[path];
    if (route) return route(req, res);
    const asset = assets.get(path);
    if (asset) return send(res, 200, asset.type, asset.body, { "cache-control": "no-cache" });
    send(res, 404, TEXT, `no such page: ${path}\n`);
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: Error) => {
      log(`dashboard: ${req.url}: ${err.message}`);
      if (!res.headersSent) send(res, 503, TEXT, `the control plane cannot answer now: ${err.message}\n`, { "cache-control": "no-store" });
      else res.destroy();
    });
  };

  const tlsStamp = options.tls === "insecure" ? undefined : filesStamp(options.tls);
  const server: Server =
    options.tls === "insecure"
      ? createHttpServer(onRequest)
      : createHttpsServer(
          {
            ca: readFileSync(options.tls.ca),
            cert: readFileSync(options.tls.cert),
            key: readFileSync(options.tls.key),
            requestCert: true,
            rejectUnauthorized: true,
            handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
          },
          onRequest,
        );
  let tlsReload: NodeJS.Timeout | undefined;
  if (options.tls !== "insecure") {
    // a certificate renewed in place (as the control plane's gRPC port): new connections get it
    const watch = new TlsFileWatch(options.tls, (p) => (server as unknown as TlsServer).setSecureContext({ ca: p.ca, cert: p.cert, key: p.key }), tlsStamp);
    tlsReload = setInterval(() => {
      const line = watch.check();
      if (line) log(`dashboard: ${line}`);
    }, limits.tlsReloadMs);
    tlsReload.unref();
  }
  server.maxConnections = limits.maxConnections;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => {
      clearInterval(tlsReload);
      reject(new Error(`dashboard: cannot listen on ${options.listen}: ${err.message}`));
    });
    server.listen(wanted, host.replace(/^\[|\]$/g, ""), () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port,
    url: `${options.tls === "insecure" ? "http" : "https"}://${host}:${port}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        clearInterval(tlsReload);
        feed.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
