// The plain node:dgram relay (bench/relay.ts) as a process of its own, under Node or Bun.
import { join } from "node:path";
import { ROOT } from "../common.js";
import type { RelayProcess } from "./relay-process.js";
import { runtimeBinary, spawnUntilReady, stopProcess, type Runtime } from "./spawn.js";

export async function startPlainRelay(sinkPort: number, runtime: Runtime): Promise<RelayProcess> {
  const { child, match } = await spawnUntilReady(runtimeBinary(runtime), [join(ROOT, "dist", "bench", "relay.js"), String(sinkPort)], /^(\d+)$/m);
  const port = Number(match[1]);
  return {
    name: `${runtime} relay`,
    port,
    pids: () => [child.pid!],
    close: () => stopProcess(child),
  };
}
