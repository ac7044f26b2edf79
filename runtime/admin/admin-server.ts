// The proxy's admin HTTP endpoint: /metrics (Prometheus), /stats (JSON), and the probes:
// /healthz (liveness: 503 when the proxy cannot recover by itself) and /readyz (readiness: 503
// until a config is applied and while a worker is down). Each probe answers with its reasons.
// It may start before the proxy does (an agent waiting for its first snapshot): then it is live,
// not ready, and has no figures yet.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Proxy, ProxySnapshot } from "../proxy.js";
import { excludedFamilies, prometheusPieces, renderNotRunning } from "./prometheus.js";
import { prettyJsonPieces } from "./json-pieces.js";
import { WRITE_STALL_MS, writePieces } from "./write-pieces.js";

export interface AdminServer {
  readonly port: number;
  close(): Promise<void>;
}

export interface AdminOptions {
  /** More readiness problems from whoever owns the proxy (the agent: no snapshot applied yet). */
  readonly notReady?: () => string[];
  /** More /metrics families from whoever owns the proxy (the agent: its control plane, its snapshot), exposition text. */
  readonly metrics?: () => string;
  /** How long a body's write may wait for its client to take more before the connection is dropped (WRITE_STALL_MS). */
  readonly writeStallMs?: number;
}

/** Why there is nothing to report before the proxy starts. */
const NOT_STARTED = "no proxy running yet: no config applied";

/**
 * A proxy's snapshots for the endpoint: a request that comes while a round of the workers is under
 * way waits for the next one, which starts when that one ends and serves every request that came
 * meanwhile. N scrapers at once cost two rounds, not N: each round is every segment's and
 * stream's figures (0.3 s and 2 MB at 3,000 segments), taken by the workers between batches and
 * held until written, so a flood of requests held memory and worker time in proportion. No
 * request is answered with a round that began before it came. Each request writes its body from
 * the round a piece at a time as its client reads (at 10,000 segments /stats is 64 MB and
 * /metrics 43 MB): held whole, once per request, those bodies cost more than the round.
 */
class Rounds {
  private running: Promise<ProxySnapshot> | null = null;
  private queued: Promise<ProxySnapshot> | null = null;
  constructor(private readonly proxy: Proxy) {}

  next(): Promise<ProxySnapshot> {
    if (this.running === null) return this.start();
    const done = (): void => {};
    this.queued ??= this.running.then(done, done).then(() => {
      this.queued = null;
      return this.start();
    });
    return this.queued;
  }

  private start(): Promise<ProxySnapshot> {
    const round = this.proxy.stats();
    this.running = round;
    const over = (): void => {
      if (this.running === round) this.running = null;
    };
    round.then(over, over);
    return round;
  }
}

/** The /metrics text a family at a time, then the owner's families. */
function* metricsPieces(snap: ProxySnapshot, exclude: readonly string[], more: () => string): Generator<string> {
  yield* prometheusPieces(snap, excludedFamilies(exclude));
  yield more();
}

/** `proxy`: the proxy, or where to find it once it runs (null until then). */
export async function startAdminServer(proxy: Proxy | (() => Proxy | null), address: string, port: number, options: AdminOptions = {}): Promise<AdminServer> {
  const running = typeof proxy === "function" ? proxy : () => proxy;
  const rounds = new WeakMap<Proxy, Rounds>(); // an agent's proxy is replaced when its process restarts one
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const reply = (status: number, type: string, body: string, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { "content-type": type, ...headers });
      res.end(body);
    };
    // reads only: a POST or DELETE that got 200 looked as if it had done something
    if (req.method !== "GET" && req.method !== "HEAD") return reply(405, "text/plain", `method ${req.method} not allowed: the admin endpoint answers GET and HEAD\n`, { allow: "GET, HEAD" });
    const proxy = running();
    if (path === "/healthz" || path === "/readyz") {
      const health = proxy?.health() ?? { live: true, ready: false, problems: [NOT_STARTED] };
      const problems = [...health.problems, ...(path === "/readyz" ? options.notReady?.() ?? [] : [])];
      const ok = path === "/healthz" ? health.live : health.ready && problems.length === health.problems.length;
      return reply(ok ? 200 : 503, "text/plain", ok ? `ok\n${problems.map((p) => `note: ${p}\n`).join("")}` : problems.map((p) => `${p}\n`).join(""));
    }
    if (path !== "/metrics" && path !== "/stats") return reply(404, "text/plain", "not found: try /metrics, /stats, /healthz or /readyz\n");
    const more = (): string => options.metrics?.() ?? "";
    if (!proxy && path === "/metrics") return reply(200, "text/plain; version=0.0.4", renderNotRunning() + more()); // Prometheus' up stays 1: the node is there
    if (!proxy) return reply(503, "text/plain", `${NOT_STARTED}\n`);
    let r = rounds.get(proxy);
    if (r === undefined) rounds.set(proxy, (r = new Rounds(proxy)));
    const its = r;
    const type = path === "/metrics" ? "text/plain; version=0.0.4" : "application/json";
    its.next().then(
      (snap) => {
        if (req.method === "HEAD") return void res.writeHead(200, { "content-type": type }).end(); // as GET's head: no length, chunked
        const pieces = path === "/metrics" ? metricsPieces(snap, proxy.currentConfig.metrics.exclude, more) : prettyJsonPieces(snap, "segments");
        let first: IteratorResult<string>;
        try {
          first = pieces.next(); // a throw making the first piece is a 500: nothing is written yet
        } catch (err) {
          return reply(500, "text/plain", `${(err as Error).message}\n`);
        }
        res.writeHead(200, { "content-type": type });
        // a throw after the first piece cuts the body: the client sees a chunked body end short
        return writePieces(res, first, pieces, options.writeStallMs ?? WRITE_STALL_MS).catch(() => res.destroy());
      },
      (err: Error) => reply(500, "text/plain", `${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, address, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      // a body under way ends only when its client reads it all: a client that stopped reading
      // held the close, and with it the stop of the proxy, for good
      server.closeAllConnections();
    }),
  };
}
