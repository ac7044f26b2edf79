// `msm proxy --config FILE --check`: what a start would refuse, found without starting, as
// `nginx -t` does: the file's keys and rules, its secret references, the I/O it asks for, and each
// filter's answer to its module-wide config and to every stage's config. The filters run in a
// process of their own (config-check-child.ts), each call bounded by the file's watchdog.stuckMs
// as in the proxy. Ports and the open-files limit are not checked: they are the node's at start.
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ConfigError, loadProxyConfigFile, planIo, resolveSecrets, type ProxyConfig } from "../runtime/index.js";
import type { CheckMessage, CheckRequest } from "./config-check-child.js";

const CHILD = fileURLToPath(new URL("./config-check-child.js", import.meta.url));
/** A module's compilation is no filter call: it gets this long at least. */
const LOAD_MS = 10_000;
/** A call's bound here, at least: on a busy machine a slow call must not be taken for a stuck one. */
const MIN_CALL_MS = 2000;

export interface CheckResult {
  readonly problems: readonly string[];
  /** What a start would log but run with (a filter's drop-reason table it cannot use). */
  readonly warnings: readonly string[];
  readonly config?: ProxyConfig;
}

/** Checks a proxy config file; `problems` name the field, as a start or a reload would. */
export async function checkProxyConfigFile(file: string): Promise<CheckResult> {
  let config: ProxyConfig;
  try {
    config = await loadProxyConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigError) return { problems: err.issues, warnings: [] };
    throw err;
  }
  const problems: string[] = [];
  try {
    planIo(config.io, config.gso);
  } catch (err) {
    problems.push((err as Error).message);
  }
  const secrets = await resolveSecrets(config);
  if (secrets.problems.length > 0) return { problems: [...problems, ...secrets.problems], warnings: [], config };
  const filters = await checkFilters(secrets.config);
  problems.push(...filters.problems);
  return { problems, warnings: filters.warnings, config };
}

/** Runs the filters' checks in a child process; a call that outlives watchdog.stuckMs is named, and the child ended. */
function checkFilters(config: ProxyConfig): Promise<{ problems: string[]; warnings: string[] }> {
  return new Promise((resolve, reject) => {
    const child = fork(CHILD, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    let current: { at: string; call: string } | undefined;
    let timer: NodeJS.Timeout | undefined;
    const arm = (ms: number): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        child.kill("SIGKILL");
        const at = current?.at ?? "filters";
        resolve({ warnings: [], problems: [`${at}: the filter did not return within ${ms} ms from ${current?.call ?? "its load"} (an endless loop?); a start would be stuck there, or its worker restarted by the watchdog again and again. Filters after it were not checked`] });
      }, ms);
    };
    arm(LOAD_MS);
    child.on("message", (m: CheckMessage) => {
      if (m.type === "done") {
        clearTimeout(timer);
        child.kill();
        resolve({ problems: m.problems, warnings: m.warnings });
        return;
      }
      current = m;
      arm(m.call.startsWith("its start") ? LOAD_MS : Math.max(config.watchdog.stuckMs, MIN_CALL_MS));
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (signal !== "SIGKILL") reject(new Error(`the filter check ended before its answer (${signal ?? `exit code ${code}`})`));
    });
    child.send({ config } satisfies CheckRequest);
  });
}
