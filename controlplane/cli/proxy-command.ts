// `msm proxy --config FILE`: runs a proxy until SIGINT/SIGTERM. SIGHUP, or a change of the file,
// reloads it through a hot swap; a bad file is reported with the field and changes nothing.
import { watch } from "node:fs";
import { ApplyError, ConfigError, loadProxyConfigFile, Proxy, startAdminServer, type AdminServer, type ProxyEvent } from "../../runtime/index.js";
import { parseFlags, UsageError } from "./usage.js";

function stamp(): string {
  return new Date().toISOString();
}

export function describeEvent(e: ProxyEvent): string {
  switch (e.type) {
    case "log":
      return `filter ${e.filter}: ${e.message}`;
    case "failure":
      return `filter ${e.filter} failed (${e.reason}); segments: ${e.segments.join(", ") || "-"}`;
    case "restarted":
      return `filter ${e.filter} restarted for ${e.segments.join(", ") || "no segment"}`;
    case "gave-up":
      return `filter ${e.filter}: giving up on segment ${e.segment} after ${e.failures} failures`;
    case "restart-failed":
      return `filter ${e.filter}: restart failed: ${e.reason}`;
    case "swap":
      return `segment ${e.segment}: chain swapped (state carried: ${e.carried.join(", ") || "none"}; fresh: ${e.fresh.join(", ") || "none"})`;
    case "error":
      return `${e.segment ? `segment ${e.segment}: ` : ""}${e.message}`;
    case "watchdog":
      return `watchdog: worker ${e.worker} stuck in filter ${e.filter} for over ${e.stuckMs} ms (segments ${e.segments.join(", ")}); restarting it`;
    case "worker-exit":
      return `worker ${e.worker} exited with code ${e.code}; restarting it`;
  }
}

export async function runProxy(args: readonly string[]): Promise<number> {
  const { flags, rest } = parseFlags(args, ["config", "admin"]);
  const file = flags.get("config");
  if (!file || rest.length > 0) throw new UsageError("usage: msm proxy --config FILE [--admin HOST:PORT]");
  let config;
  try {
    config = await loadProxyConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`msm proxy: invalid config ${err.message}`);
      return 1;
    }
    throw err;
  }
  const adminFlag = flags.get("admin");
  if (adminFlag) {
    const m = /^(.*):(\d+)$/.exec(adminFlag);
    if (!m) throw new UsageError("--admin takes HOST:PORT");
    config.admin = { address: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) };
  }
  let proxy: Proxy;
  try {
    proxy = await Proxy.start(config);
  } catch (err) {
    if (err instanceof ApplyError) {
      console.error(`msm proxy: ${err.message}`);
      return 1;
    }
    throw err;
  }
  proxy.on("event", (e) => console.error(`${stamp()} ${describeEvent(e)}`));
  let admin: AdminServer | undefined;
  if (config.admin) {
    admin = await startAdminServer(proxy, config.admin.address, config.admin.port);
    console.error(`${stamp()} admin: http://${config.admin.address}:${admin.port}/metrics`);
  }
  const segments = (await proxy.stats()).segments;
  console.error(`${stamp()} proxy running: ${segments.length} segment(s) on ${config.workers} worker(s)`);
  for (const s of segments) {
    console.error(`  ${s.name}: listen ${s.ports.listen}${s.ports.listenRtcp ? `/${s.ports.listenRtcp}` : ""}, egress ${s.ports.egress}, chain ${s.stages.map((t) => t.filter).join(" -> ") || "(empty)"}`);
  }

  let reloading = Promise.resolve();
  const reload = (why: string): void => {
    reloading = reloading.then(async () => {
      try {
        const next = await loadProxyConfigFile(file);
        next.admin = config.admin;
        await proxy.apply(next);
        console.error(`${stamp()} config reloaded (${why})`);
      } catch (err) {
        if (err instanceof ConfigError || err instanceof ApplyError) {
          console.error(`${stamp()} config NOT reloaded (${why}), the running config stays: ${err.message}`);
        } else console.error(`${stamp()} reload failed: ${(err as Error).stack ?? err}`);
      }
    });
  };
  process.on("SIGHUP", () => reload("SIGHUP"));
  let debounce: NodeJS.Timeout | undefined;
  const watcher = watch(file, () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => reload("file changed"), 200);
  });

  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  watcher.close();
  clearTimeout(debounce);
  await admin?.close();
  await proxy.close();
  console.error(`${stamp()} proxy stopped`);
  return 0;
}
