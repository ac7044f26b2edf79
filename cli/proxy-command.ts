// `msm proxy`: runs a proxy until SIGINT/SIGTERM, in one of two modes.
// - `--config FILE`: from a file. SIGHUP, or a change of the file, reloads it through a hot swap;
//   a bad file is reported with the field and changes nothing.
// - `--control-plane HOST:PORT|unix:PATH[,...]`: from the control plane, through the agent
//   (controlplane/agent/): snapshots applied as they come, last-good.json when none answers.
import {
  ApplyError, boundHeapGrowth, ConfigError, dataPlaneSettings, hostCryptoDescription, hostCryptoUnavailable, isProcessSubstitution, loadNodeSettingsFile, parseProxyConfig, readConfigText,
  Proxy, startAdminServer, validateNodeSettings, type AdminServer, type NodeSettings, type ProxyEvent, type IoPlan,
} from "../runtime/index.js";
import { Agent } from "../controlplane/agent/index.js";
import { isUnixSocketAddress } from "../controlplane/api/unix-socket.js";
import { printable } from "../controlplane/security/terminal.js";
import { applyErrorLines } from "./apply-errors.js";
import { segmentLine } from "./segment-line.js";
import { notRunningReasons, notRunningText } from "../controlplane/api/held-back.js";
import { checkProxyConfigFile } from "./config-check.js";
import { FileReloader } from "./file-reloader.js";
import { parseFlags, numberFlag, UsageError } from "./usage.js";

export const PROXY_USAGE = `usage: msm proxy --config FILE [--admin HOST:PORT] [--check]
       msm proxy --control-plane HOST:PORT|unix:PATH[,...] --node-id ID --state-dir DIR
                 (--tls-ca FILE --tls-cert FILE --tls-key FILE | --insecure)
                 [--config NODE-FILE] [--workers N] [--gso auto|off] [--admin HOST:PORT]
  With --control-plane, --config names the node's own settings (a proxy file's keys but
  segments and filters: workers, socketReceiveBuffer, streams...); the flags win over it.
  --check: check the file (the node's, with --control-plane) as a start would, start nothing.`;

const FLAGS = ["config", "admin", "control-plane", "node-id", "state-dir", "tls-ca", "tls-cert", "tls-key", "workers", "gso"];
const AGENT_ONLY = ["control-plane", "node-id", "state-dir", "tls-ca", "tls-cert", "tls-key", "workers", "gso"];

/** The I/O path, as the start line names it. */
function ioText(io: IoPlan): string {
  if (io.receive === "native") return `batched I/O (recvmmsg/sendmmsg${io.gso ? ", UDP GSO" : ""}${io.watch === "thread" ? ", watcher thread" : ""})`;
  return "node:dgram I/O";
}

function stamp(): string {
  return new Date().toISOString();
}

export function describeEvent(e: ProxyEvent): string {
  switch (e.type) {
    case "log":
      return `filter ${e.filter}${e.segment ? ` (segment ${e.segment})` : ""}: ${e.message}`;
    case "failure":
      return `filter ${e.filter} failed (${e.reason}); segments: ${e.segments.join(", ") || "-"}`;
    case "restarted":
      return `filter ${e.filter} restarted for ${e.segments.join(", ") || "no segment"}`;
    case "gave-up":
      return `filter ${e.filter}: giving up on segment ${e.segment} after ${e.failures} failures`;
    case "restart-failed":
      return `filter ${e.filter}: restart failed: ${e.reason}`;
    case "state-lost":
      return `filter ${e.filter}: the state of segment ${e.segment} was not carried over: ${e.reason}`;
    case "swap":
      return `segment ${e.segment}: chain swapped (state carried: ${e.carried.join(", ") || "none"}; ${e.awaitingRestart.length > 0 ? `kept, imported if the filter restarts: ${e.awaitingRestart.join(", ")}; ` : ""}fresh: ${e.fresh.join(", ") || "none"})`;
    case "error":
      return `${e.segment ? `segment ${e.segment}: ` : ""}${e.message}`;
    case "watchdog":
      return `watchdog: worker ${e.worker} stuck in filter ${e.filter}${e.call ? ` (in ${e.call}: an endless loop?)` : ""} for over ${e.stuckMs} ms (${e.segments.length > 0 ? `segments ${e.segments.join(", ")}` : "no running segment: a call a change made"}); restarting it`;
    case "worker-exit":
      return `worker ${e.worker} ${e.signal ? `killed by ${e.signal}` : `exited with code ${e.code}`}; restarting it`;
    case "worker-restarted":
      return `worker ${e.worker} restarted with its ${e.segments} segment(s)${e.spare ? " (the spare worker took its place)" : ""}; state carried from the last checkpoint for ${e.carried} stage(s)${e.kept ? `; ${e.kept} listen socket(s) kept bound, what they held read by the new worker` : ""}`;
    case "warning":
      return `warning: ${e.message}`;
    case "segment-moved":
      return `segment ${e.segment}: moved from worker ${e.from} to worker ${e.to} (state carried for ${e.carried} stage(s); ${e.handedOver ? "its listen sockets handed over, with what they held" : "packets sent while its ports changed hands are lost"})`;
  }
}

function hostPort(flag: string, value: string): { address: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || m[1] === "" || port > 65535) throw new UsageError(`--${flag} takes HOST:PORT, got '${value}'`);
  return { address: m[1]!.replace(/^\[|\]$/g, ""), port };
}

function waitForSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
}

export async function runProxy(args: readonly string[]): Promise<number> {
  // --insecure and --check are the flags without a value
  const insecure = args.includes("--insecure");
  const check = args.includes("--check");
  const { flags, rest } = parseFlags(args.filter((a) => a !== "--insecure" && a !== "--check"), FLAGS, ["insecure", "check"]);
  if (rest.length > 0) throw new UsageError(`unexpected '${rest[0]}'\n${PROXY_USAGE}`);
  const file = flags.get("config");
  const controlPlane = flags.get("control-plane");
  if (file === undefined && controlPlane === undefined) throw new UsageError(`give --config, or --control-plane\n${PROXY_USAGE}`);
  if (!check) boundHeapGrowth(); // before any worker starts
  if (controlPlane !== undefined) {
    const parsed = agentFlags(flags, insecure); // --check refuses the flags a start would
    return check ? checkNodeFile(flags.get("config")) : runAgent(parsed, flags.get("config"));
  }
  const misplaced = [...AGENT_ONLY.filter((f) => flags.has(f)), ...(insecure ? ["insecure"] : [])];
  if (misplaced.length > 0) throw new UsageError(`--${misplaced[0]} goes with --control-plane, not --config\n${PROXY_USAGE}`);
  const adminFlag = flags.get("admin");
  if (adminFlag !== undefined) hostPort("admin", adminFlag);
  return check ? checkFile(file!) : runFromFile(file!, flags);
}

/** --check: the file as a start would take it, nothing started; 0 when it would start. */
async function checkFile(file: string): Promise<number> {
  const { problems, warnings, config } = await checkProxyConfigFile(file);
  if (problems.length > 0) {
    console.error(`msm proxy: ${file}: NOT valid, a start would refuse it:\n  ${printable(problems.join("\n"), { keepNewlines: true }).replace(/\n/g, "\n  ")}`);
    return 1;
  }
  const filters = new Set(config!.segments.flatMap((s) => s.chain.map((st) => st.filter)));
  // it would start, but the log would say these at once: a --check must not hide them
  for (const w of warnings) console.error(`msm proxy: ${file}: warning: ${printable(w)}`);
  console.log(`${file}: valid: ${config!.segments.length} segment(s), ${filters.size} filter(s) loaded, each of which accepted its root config and every stage's config. Not checked: whether its ports are free and the open-files limit (a start on the node finds them).`);
  return 0;
}

/** The node's settings from its file (the defaults without one), or null after saying why they cannot be used. */
async function readNodeSettings(file: string | undefined): Promise<NodeSettings | null> {
  try {
    return file === undefined ? validateNodeSettings({}) : await loadNodeSettingsFile(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`msm proxy: the node's settings cannot be used, nothing started: ${printable(err.message, { keepNewlines: true })}`);
    return null;
  }
}

/** --check with --control-plane: the node's settings file. */
async function checkNodeFile(file: string | undefined): Promise<number> {
  if (file === undefined) throw new UsageError("--check with --control-plane checks the node's file: give --config NODE-FILE");
  if (!(await readNodeSettings(file))) return 1;
  console.log(`${file}: valid node settings`);
  return 0;
}

interface AgentFlags {
  controlPlanes: string[];
  nodeId: string;
  stateDir: string;
  tls: "insecure" | { ca: string; cert: string; key: string };
  insecure: boolean;
  workers: number | undefined;
  gso: "auto" | "off" | undefined;
  admin: { address: string; port: number } | undefined;
}

/** The flags of a proxy run by the control plane, each checked as a start needs it (UsageError naming the flag). */
function agentFlags(flags: Map<string, string>, insecure: boolean): AgentFlags {
  const controlPlanes = flags.get("control-plane")!.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (controlPlanes.length === 0) throw new UsageError(`--control-plane needs at least one HOST:PORT\n${PROXY_USAGE}`);
  for (const cp of controlPlanes) {
    const m = /^(.+):(\d+)$/.exec(cp);
    if (!isUnixSocketAddress(cp) && !(m && Number(m[2]) <= 65535)) throw new UsageError(`--control-plane takes HOST:PORT or unix:PATH, got '${cp}'`);
  }
  const nodeId = flags.get("node-id");
  const stateDir = flags.get("state-dir");
  const lacking = [!nodeId && "--node-id", !stateDir && "--state-dir"].filter(Boolean);
  if (!nodeId || !stateDir) throw new UsageError(`--control-plane needs ${lacking.join(" and ")} (missing)\n${PROXY_USAGE}`);
  const tlsFlags = ["tls-ca", "tls-cert", "tls-key"].filter((f) => flags.has(f));
  if (insecure && tlsFlags.length > 0) throw new UsageError(`--insecure and --${tlsFlags[0]} exclude each other`);
  if (!insecure && tlsFlags.length !== 3) {
    const absent = ["tls-ca", "tls-cert", "tls-key"].filter((f) => !flags.has(f)).map((f) => `--${f}`);
    throw new UsageError(`give --tls-ca, --tls-cert and --tls-key (missing: ${absent.join(", ")}), or --insecure for plain text\n${PROXY_USAGE}`);
  }
  const tls = insecure ? ("insecure" as const) : { ca: flags.get("tls-ca")!, cert: flags.get("tls-cert")!, key: flags.get("tls-key")! };
  const workers = numberFlag(flags, "workers", 1, 1, 64);
  if (!Number.isInteger(workers)) throw new UsageError(`--workers must be a whole number, got '${flags.get("workers")}'`);
  const gso = flags.get("gso");
  if (gso !== undefined && gso !== "auto" && gso !== "off") throw new UsageError(`--gso must be auto or off, got '${gso}'`);
  const adminFlag = flags.get("admin");
  return {
    controlPlanes, nodeId, stateDir, tls, insecure,
    workers: flags.has("workers") ? workers : undefined,
    gso,
    admin: adminFlag !== undefined ? hostPort("admin", adminFlag) : undefined,
  };
}

/** The segments of a running version that do not run, when they are tried again, and why. */
function notRunningLine(e: { version: number; notRunning: readonly string[]; error?: string; retryInMs?: number }): string {
  return `snapshot ${e.version}: ${notRunningText(e.notRunning, e.error ?? "")}, ${e.retryInMs === undefined ? "not tried again" : `next try in ${e.retryInMs} ms`}: ${notRunningReasons(e.error ?? "")}`;
}

async function runAgent(parsed: AgentFlags, nodeFile: string | undefined): Promise<number> {
  const { controlPlanes, nodeId, stateDir, tls, insecure } = parsed;
  // the node's own settings: read once, at start (the flags win over the file's)
  const node = await readNodeSettings(nodeFile);
  if (!node) return 1;
  const admin = parsed.admin ?? node.admin;
  const fromNode = {
    workers: parsed.workers ?? node.workers,
    gso: parsed.gso ?? node.gso,
    settings: dataPlaneSettings(node),
  };

  let agent: Agent;
  try {
    agent = new Agent({ controlPlanes, nodeId, stateDir, tls, ...fromNode, ...(admin ? { admin } : {}) });
  } catch (err) {
    if (err instanceof TypeError) throw new UsageError(err.message);
    console.error(`msm proxy: ${(err as Error).message}`);
    return 1;
  }
  // lines quote the control plane, filters and the runtime: one printable line each
  const log = (line: string): void => console.error(`${stamp()} ${printable(line)}`);
  // listening before start(): what it finds in last-good.json (or why it cannot use it) is logged too
  agent.on("proxy-event", (e) => log(describeEvent(e)));
  // what a start from a file says at once: the I/O path (node:dgram when the addon is missing, at 2.3x the CPU) and the crypto
  const started = (): void => {
    const io = agent.proxy?.io;
    if (io?.note) log(`WARNING: ${io.note}`);
    const noCrypto = hostCryptoUnavailable();
    if (noCrypto) log(`note: no host crypto (${noCrypto}): filters that use it (srtp) compute their own, slower and not constant-time`);
    if (io) log(`proxy running on ${ioText(io)}${noCrypto ? "" : `, ${hostCryptoDescription()}`}`);
  };
  agent.on("restored", (e) => {
    log(`proxy running from last-good.json: snapshot ${e.version}, ${e.segments} segment(s)`);
    started();
    if (e.notRunning.length > 0) log(notRunningLine(e));
  });
  agent.on("connected", ({ address }) => log(`control plane ${address}: connected`));
  let stopping = false;
  agent.on("disconnected", ({ address, reason }) => log(`control plane ${address}: disconnected (${reason})${stopping ? "" : "; trying the next one"}`));
  agent.on("connect-failed", ({ address, reason, repeats }) => log(`control plane ${address}: cannot connect: ${reason}${repeats > 0 ? ` (and ${repeats} more times in the last minute)` : ""}`));
  agent.on("applied", (e) => {
    log(`snapshot ${e.version} applied (${e.started ? "proxy started" : "hot swap"}; ${e.segments} segment(s), ${e.fetched} module(s) fetched, ${e.ms} ms)`);
    if (e.started) started();
    if (e.notRunning.length > 0) log(notRunningLine(e));
  });
  agent.on("refused", (e) => {
    const notes = [...(e.retryInMs !== undefined ? [`next try in ${e.retryInMs} ms`] : []), ...(e.repeats > 0 ? [`${e.repeats} more tries refused alike since the last report`] : [])];
    log(`snapshot ${e.version} REFUSED, the running config stays${notes.length > 0 ? ` (${notes.join("; ")})` : ""}: ${e.error}`);
  });
  agent.on("warning", (e) => log(`warning: ${e.message}`));
  agent.on("tls-files", (e) => log(e.message));
  log(`node ${nodeId}: state in ${stateDir}${nodeFile ? `, settings from ${nodeFile}` : ""}, connecting to ${controlPlanes.join(", ")} (${insecure ? "plain text" : "mTLS"})`);
  try {
    await agent.start();
  } catch (err) {
    await agent.close();
    console.error(`msm proxy: ${(err as Error).message}`);
    return 1;
  }
  if (agent.adminPort !== null) log(`admin: http://${admin!.address}:${agent.adminPort}/metrics`);
  // the control plane owns the segments; what a SIGHUP can reload is what their $file and $env references read
  const onHup = (): void => {
    const nodeNote = nodeFile ? `; the node's settings (${nodeFile}) are read at start only` : "";
    const why = agent.rereadReferences();
    if (why === undefined) log(`SIGHUP: applying snapshot ${agent.runningVersion} again to read its $file and $env references anew${nodeNote}`);
    else log(`SIGHUP: nothing to reload: the control plane owns the segments, ${why}${nodeNote}`);
  };
  process.on("SIGHUP", onHup);
  await waitForSignal();
  process.off("SIGHUP", onHup);
  stopping = true;
  await agent.close();
  log("proxy stopped");
  return 0;
}

async function runFromFile(file: string, flags: Map<string, string>): Promise<number> {
  let config;
  let text;
  try {
    text = await readConfigText(file);
    config = parseProxyConfig(text, file);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`msm proxy: invalid config ${err.message}`);
      return 1;
    }
    throw err;
  }
  const adminFlag = flags.get("admin");
  const fileAdmin = config.admin;
  if (adminFlag) config.admin = hostPort("admin", adminFlag);
  // the admin endpoint first: a port another process holds ends the start before anything binds
  // or writes (a proxy started and stopped at once saved its fresh stages to the stateFile, and the
  // next start said it restored them); until the proxy runs, /readyz says it is not started
  let admin: AdminServer | undefined;
  let started: Proxy | null = null;
  if (config.admin) {
    try {
      admin = await startAdminServer(() => started, config.admin.address, config.admin.port);
    } catch (err) {
      // probes and scrapes would find nothing: a proxy without its admin endpoint does not run
      console.error(`msm proxy: admin endpoint ${config.admin.address}:${config.admin.port}: ${(err as Error).message}; the proxy did not start`);
      return 1;
    }
  }
  let proxy: Proxy;
  try {
    proxy = await Proxy.start(config, (e) => console.error(`${stamp()} ${printable(describeEvent(e))}`));
  } catch (err) {
    await admin?.close();
    if (err instanceof ApplyError) {
      console.error(`msm proxy: the proxy did not start: its config could not be applied:\n  ${printable(applyErrorLines(err, config), { keepNewlines: true })}`);
      return 1;
    }
    throw err;
  }
  started = proxy;
  // reloads: SIGHUP, or a change in the config's folder or a filter's that changes what it runs
  const reloader = await FileReloader.start(file, proxy, config, text, fileAdmin, adminFlag !== undefined, (line) => console.error(`${stamp()} ${line}`));
  process.on("SIGHUP", () => reloader.reload("SIGHUP", false));
  if (admin) console.error(`${stamp()} admin: http://${config.admin!.address}:${admin.port}/metrics`);
  const { segments, notRunning } = await proxy.stats();
  const io = proxy.io;
  if (io.note) console.error(`${stamp()} WARNING: ${io.note}`);
  const noCrypto = hostCryptoUnavailable();
  if (noCrypto) console.error(`${stamp()} note: no host crypto (${noCrypto}): filters that use it (srtp) compute their own, slower and not constant-time`);
  console.error(`${stamp()} proxy running: ${segments.length} segment(s) on ${config.workers} worker(s), ${ioText(io)}${noCrypto ? "" : `, ${hostCryptoDescription()}`}`);
  for (const s of segments) {
    console.error(`  ${segmentLine(s)}`);
  }
  if (config.segments.length === 0) console.error(`${stamp()} note: ${file} has no segments: nothing is forwarded until it gets some (the proxy reloads it when it changes)`);
  // started without them (a port another process holds): the reloader tries them again
  for (const { segment, reason } of notRunning) console.error(`  segment '${segment}' NOT running: ${printable(reason)}`);
  if (config.stateFile !== undefined) {
    const restored = proxy.restoredStages;
    console.error(`${stamp()} stage state: saved to ${config.stateFile} every ${config.stateCheckpointMs} ms; ${restored > 0 ? `${restored} stage(s) restored from it` : "nothing restored (no file yet, or none of its stages run)"}`);
  }
  const reloadHow = (await isProcessSubstitution(file))
    ? `not from ${file}, a process substitution read once (give a file, or a FIFO a program fills, to reload)`
    : `edit ${file}, or kill -HUP ${process.pid}`;
  console.error(`${stamp()} reload: ${reloadHow}; stop: kill ${process.pid} (or Ctrl-C)`);

  await waitForSignal();
  reloader.close();
  console.error(`${stamp()} stopping: draining the segments`);
  await admin?.close();
  await proxy.close();
  console.error(`${stamp()} proxy stopped`);
  return 0;
}
