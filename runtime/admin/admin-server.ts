// The proxy's admin HTTP endpoint: /metrics (Prometheus), /stats (JSON), and the probes:
// /healthz (liveness: 503 when the proxy cannot recover by itself) and /readyz (readiness: 503
// until a config is applied and while a worker is down). Each probe answers with its reasons.
// It may start before the proxy does (an agent waiting for its first snapshot): then it is live,
// not ready, and has no figures yet.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Proxy, ProxySnapshot } from "../proxy.js";
import { excludedFamilies, renderNotRunning, renderPrometheus } from "./prometheus.js";

export interface AdminServer {
  readonly port: number;
  close(): Promise<void>;
}

export interface AdminOptions {
  /** More readiness problems from whoever owns the proxy (the agent: no snapshot applied yet). */
  readonly notReady?: () => string[];
  /** More /metrics families from whoever owns the proxy (the agent: its control plane, its snapshot), exposition text. */
  readonly metrics?: () => string;
}

/** Why there is nothing to report before the proxy starts. */
const NOT_STARTED = "no proxy running yet: no config applied";

/**
 * A proxy's snapshots for the endpoint: a request that comes while a round of the workers is under
 * way waits for the next one, which starts when that one ends and serves every request that came
 * meanwhile. N scrapers at once cost two rounds, not N: each round is every segment's and
 * stream's figures (0.3 s and 2 MB at 3,000 segments), taken by the workers between batches and
 * held until written, so a flood of requests held memory and worker time in proportion. No
 * request is answered with a round that began before it came.
 */
class Rounds {
  private running: Promise<ProxySnapshot> | null = null;
  private queued: Promise<ProxySnapshot> | null = null;
  /** The last round's bodies, rendered once for all its requests. */
  private rendered: { snap: ProxySnapshot; json?: string; metrics?: string; exclude?: readonly string[] } | null = null;

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

  json(snap: ProxySnapshot): string {
    const r = this.of(snap);
    return (r.json ??= JSON.stringify(snap, null, 2));
  }

  metrics(snap: ProxySnapshot): string {
    const r = this.of(snap);
    const exclude = this.proxy.currentConfig.metrics.exclude;
    if (r.metrics === undefined || r.exclude !== exclude) {
      r.metrics = renderPrometheus(snap, excludedFamilies(exclude));
      r.exclude = exclude;
    }
    return r.metrics;
  }

  private of(snap: ProxySnapshot): NonNullable<Rounds["rendered"]> {
    if (this.rendered?.snap !== snap) this.rendered = { snap };
    return this.rendered;
  }
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
    // rendering inside the chain: a throw there is a 500, not an unhandled rejection
    its.next().then((snap) => (path === "/metrics" ? its.metrics(snap) + more() : its.json(snap))).then(
      (body) => reply(200, path === "/metrics" ? "text/plain; version=0.0.4" : "application/json", body),
      (err: Error) => reply(500, "text/plain", `${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, address, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
