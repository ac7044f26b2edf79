// `msmctl dashboard`: the control plane's dashboard on this machine's loopback, in the manner of
// `kubectl proxy`. The control plane serves it over HTTPS to admin certificates only, which a
// browser does not hold; msmctl does (--tls-* or MSM_TLS_*), so it listens on 127.0.0.1 and
// forwards each request with that certificate. Only GET and HEAD, and only for a Host that names
// loopback: a web page elsewhere cannot use the operator's certificate through it (DNS rebinding).
import { Agent as HttpAgent, createServer, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { printable } from "../../controlplane/security/terminal.js";
import { checkControlPlane, trustDomainOf, type TlsFiles } from "../../controlplane/security/tls.js";
import { CliError } from "./client.js";
import { connectOptions, type Context } from "./context.js";
import { flag, UsageError } from "./flags.js";

export const DEFAULT_DASHBOARD_PORT = 7480;

/** Request headers passed on (the rest, cookies included, stay here). */
const FORWARDED_REQUEST = ["accept", "accept-language", "cache-control", "if-none-match", "if-modified-since", "last-event-id", "user-agent"];
/** Headers of one connection, never passed on (RFC 9110 7.6.1). */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"]);
const UPSTREAM_IDLE_MS = 30_000;

/** The dashboard's origin from --dashboard-url (or MSM_DASHBOARD_URL). */
function dashboardUrl(raw: string | undefined): URL {
  if (raw === undefined || raw === "") {
    throw new UsageError("where is the dashboard? give --dashboard-url https://HOST:PORT (the control plane's --dashboard address) or set MSM_DASHBOARD_URL");
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--dashboard-url must be a URL such as https://cp.example:7401, got '${raw}'`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new UsageError(`--dashboard-url must be https:// (or http:// for an --insecure control plane), got '${raw}'`);
  if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash || url.username) {
    throw new UsageError(`--dashboard-url is the dashboard's origin, scheme://HOST:PORT only, got '${raw}'`);
  }
  return url;
}

function portFlag(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_DASHBOARD_PORT;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--port must be 0-65535 (0 picks a free port), got '${raw}'`);
  return n;
}

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** The host part of a Host header (no port), lower case. */
function hostOf(header: string | undefined): string {
  return (header ?? "").toLowerCase().replace(/:\d+$/, "");
}

/** An agent that presents the admin certificate and accepts only a control plane's (as msmctl's gRPC calls do). */
function upstreamAgent(target: URL, tls: TlsFiles | "insecure"): HttpAgent {
  if (target.protocol === "http:") {
    if (tls !== "insecure") throw new UsageError(`--dashboard-url is http:// (a control plane started --insecure): give --insecure too, or use https://`);
    return new HttpAgent({ keepAlive: true, maxSockets: 64 });
  }
  if (tls === "insecure") throw new UsageError("--dashboard-url is https://: it needs your admin certificate (--tls-ca, --tls-cert, --tls-key or MSM_TLS_*), not --insecure");
  let files: { ca: Buffer; cert: Buffer; key: Buffer; domain: string };
  try {
    const cert = readFileSync(tls.cert);
    files = { ca: readFileSync(tls.ca), cert, key: readFileSync(tls.key), domain: trustDomainOf(cert, tls.cert) };
  } catch (err) {
    throw new CliError(`cannot read the TLS files: ${(err as Error).message}`);
  }
  return new HttpsAgent({
    keepAlive: true,
    maxSockets: 64,
    ca: files.ca,
    cert: files.cert,
    key: files.key,
    // named by SPIFFE ID, not by DNS name: the chain to our CA and the control-plane role are what is checked
    checkServerIdentity: (_host, peer) => checkControlPlane(peer.subjectaltname ?? "", files.domain),
  });
}

/** One sentence for a request to the dashboard that failed. */
function explain(err: NodeJS.ErrnoException, target: string): string {
  const code = err.code ?? "";
  if (code === "ECONNREFUSED") return `cannot connect to the dashboard at ${target}: connection refused (is the control plane running with --dashboard?)`;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return `cannot connect to the dashboard at ${target}: unknown host`;
  if (/not a control plane/.test(err.message)) return `refusing the server at ${target}: ${err.message} (is --dashboard-url right?)`;
  if (/certificate|SSL|TLS|handshake|alert/i.test(`${code} ${err.message}`)) return `TLS with the dashboard at ${target} failed: ${err.message} (check --tls-ca, --tls-cert, --tls-key)`;
  if (code === "ECONNRESET" || code === "EPROTO") return `the dashboard at ${target} closed the connection (${err.message}): does it use TLS while you use --insecure, or the reverse?`;
  return `the dashboard at ${target} did not answer: ${err.message}`;
}

export async function dashboardCommand(ctx: Context): Promise<number> {
  if (ctx.words.length > 0) throw new UsageError(`dashboard takes no arguments, got '${ctx.words[0]}'`);
  const target = dashboardUrl(flag(ctx.args, "dashboard-url") ?? ctx.io.env.MSM_DASHBOARD_URL);
  const { tls } = connectOptions(ctx.args, ctx.io.env);
  const agent = upstreamAgent(target, tls);
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  const port = portFlag(flag(ctx.args, "port"));
  const address = flag(ctx.args, "address") ?? "127.0.0.1";
  const shownAddress = address.includes(":") ? `[${address}]` : address;
  const accepted = new Set([...LOOPBACK_NAMES, shownAddress.toLowerCase()]);
  const origin = target.origin;
  let lastProblem = "";

  const answer = (res: ServerResponse, code: number, text: string): void => {
    res.writeHead(code, { "content-type": "text/plain; charset=utf-8", "content-length": String(Buffer.byteLength(text)) });
    res.end(text);
  };

  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    if (!accepted.has(hostOf(req.headers.host))) {
      return answer(res, 403, `msmctl dashboard answers only requests for ${[...accepted].join(", ")}, not Host '${req.headers.host ?? ""}'\n`);
    }
    if (req.method !== "GET" && req.method !== "HEAD") return answer(res, 405, "only GET and HEAD\n");
    if (!req.url?.startsWith("/")) return answer(res, 400, "a path is expected\n");
    const headers: OutgoingHttpHeaders = {};
    for (const name of FORWARDED_REQUEST) if (req.headers[name] !== undefined) headers[name] = req.headers[name];
    let done = false;
    const upstream = send(new URL(req.url, origin), { method: req.method, headers, agent }, (reply) => {
      const passed: OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(reply.headers)) if (!HOP_BY_HOP.has(name) && value !== undefined) passed[name] = value;
      res.writeHead(reply.statusCode ?? 502, passed);
      reply.on("end", () => (done = true));
      reply.pipe(res);
    });
    upstream.setTimeout(UPSTREAM_IDLE_MS, () => upstream.destroy(Object.assign(new Error(`no data for ${UPSTREAM_IDLE_MS / 1000} s`), { code: "ETIMEDOUT" })));
    upstream.on("error", (err: NodeJS.ErrnoException) => {
      const problem = explain(err, origin);
      if (problem !== lastProblem) ctx.io.err(`msmctl: ${printable(problem)}\n`);
      lastProblem = problem;
      if (!res.headersSent) answer(res, 502, `${problem}\n`);
      else res.destroy();
    });
    // the browser went away (a live-update stream it closed): stop reading for it
    res.on("close", () => {
      if (!done) upstream.destroy();
    });
    upstream.end();
  };

  const server = createServer(forward);
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(new CliError(`cannot listen on ${shownAddress}:${port}: ${err.code === "EADDRINUSE" ? "the port is in use (give --port)" : err.message}`)),
    );
    server.listen(port, address, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  if (!LOOPBACK_NAMES.has(shownAddress) && !/^127\./.test(address)) {
    ctx.io.err(`msmctl: WARNING: listening on ${shownAddress}, not loopback: whoever reaches this port reads the dashboard with your admin certificate\n`);
  }
  ctx.io.out(`Serving the dashboard of ${origin} at http://${shownAddress}:${bound}/ (Ctrl-C to stop)\n`);
  await new Promise<void>((resolve) => {
    const off = ctx.io.onInterrupt(() => {
      off();
      resolve();
    });
  });
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  agent.destroy();
  return 0;
}
