// `msm control-plane`: runs one control-plane replica until SIGINT/SIGTERM. Several replicas
// sharing one etcd serve the same segments and filters; each proxy connects to any of them.
import { existsSync } from "node:fs";
import { parseListen, startDashboard } from "../controlplane/dashboard/index.js";
import { startControlPlane } from "../controlplane/server/index.js";
import { isUnixSocketAddress } from "../controlplane/api/unix-socket.js";
import { parseStoreSpec } from "../controlplane/store/index.js";
import type { TlsFiles } from "../controlplane/security/tls.js";
import { DEFAULT_BAD_HOP } from "../controlplane/api/streams.js";
import { numberFlag, parseFlags, UsageError } from "./usage.js";

export const CONTROL_PLANE_USAGE =
  "usage: msm control-plane --listen HOST:PORT|unix:PATH --store file:DIR|etcd:URL[,URL...] [--name NAME] [--trust-domain TD]\n" +
  "                         (--tls-ca FILE --tls-cert FILE --tls-key FILE | --insecure) [--dashboard HOST:PORT]\n" +
  "                         [--bad-loss FRACTION] [--bad-jitter-ms MS]   (when a hop of a stream is bad; default 0.005, 5)";

export async function runControlPlane(args: readonly string[]): Promise<number> {
  // --insecure is the one flag without a value
  const insecure = args.includes("--insecure");
  const { flags, rest } = parseFlags(
    args.filter((a) => a !== "--insecure"),
    ["listen", "store", "name", "trust-domain", "tls-ca", "tls-cert", "tls-key", "bad-loss", "bad-jitter-ms", "dashboard"],
  );
  const listen = flags.get("listen");
  const store = flags.get("store");
  if (!listen || !store || rest.length > 0) throw new UsageError(CONTROL_PLANE_USAGE);
  try {
    parseStoreSpec(store); // a misspelt --store is the command line's fault (exit 2), not the store's
  } catch (err) {
    throw new UsageError(`--store: ${(err as Error).message}`);
  }
  // a hop of a stream's path is bad when it adds more loss (a fraction) or more jitter (ms) than these
  const badHop = {
    loss: numberFlag(flags, "bad-loss", DEFAULT_BAD_HOP.loss, 0, 1),
    jitterMs: numberFlag(flags, "bad-jitter-ms", DEFAULT_BAD_HOP.jitterMs, 0, 60_000),
  };
  const files = ["tls-ca", "tls-cert", "tls-key"].map((f) => flags.get(f));
  const given = files.filter((f) => f !== undefined).length;
  let tls: TlsFiles | "insecure";
  if (insecure) {
    if (given > 0) throw new UsageError("--insecure and --tls-* exclude each other");
    tls = "insecure";
  } else {
    if (given !== 3) {
      throw new UsageError("the control plane needs --tls-ca, --tls-cert and --tls-key (mutual TLS); --insecure runs it without any, on a trusted network only");
    }
    for (const f of files) if (!existsSync(f!)) throw new UsageError(`no such file: ${f}`);
    tls = { ca: files[0]!, cert: files[1]!, key: files[2]! };
  }

  const dashboardAt = flags.get("dashboard");
  if (dashboardAt !== undefined) {
    try {
      parseListen(dashboardAt);
    } catch (err) {
      throw new UsageError(`--dashboard: ${(err as Error).message}`);
    }
  }

  const stamp = (): string => new Date().toISOString();
  // handlers first: a signal that comes while starting (or right after the line below) stops it cleanly
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      console.error(`${stamp()} ${signal}: shutting down`);
      resolve();
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
  const cp = await startControlPlane({
    listen,
    store,
    tls,
    trustDomain: flags.get("trust-domain"),
    name: flags.get("name"),
    badHop,
    log: (message) => console.error(`${stamp()} ${message}`),
  });
  const where = isUnixSocketAddress(listen) ? listen : `${listen.replace(/:\d+$/, "")}:${cp.port}`;
  console.error(`${stamp()} control plane ${cp.name} listening on ${where} (store ${store}, ${tls === "insecure" ? "INSECURE: no TLS, no identity checks" : "mutual TLS"})`);
  const dashboard = dashboardAt
    ? await startDashboard({
        listen: dashboardAt,
        tls,
        trustDomain: flags.get("trust-domain"),
        getPaths: () => cp.streamPaths(),
        getProxies: () => cp.proxies(),
        log: (message) => console.error(`${stamp()} ${message}`),
      }).catch(async (err: Error) => {
        await cp.close();
        throw err;
      })
    : undefined;
  if (dashboard) {
    const how = tls === "insecure" ? "INSECURE: plain HTTP, anyone who reaches it reads the mesh's streams" : "HTTPS, admin client certificates only";
    console.error(`${stamp()} dashboard on ${dashboard.url} (${how})`);
  }
  await stopped;
  await dashboard?.close();
  await cp.close();
  return 0;
}
