// The C recvmmsg/sendmmsg relay (bench/hosts/c-relay.c), the end-to-end benchmark's ceiling for
// any user-space relay: compiled here with `cc -O2` into dist/ (never committed) when the binary
// is missing or older than the source, then started as a process of its own.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../common.js";
import type { RelayProcess } from "./relay-process.js";
import { spawnUntilReady, stopProcess } from "./spawn.js";

export const C_RELAY_SOURCE = join(ROOT, "bench", "hosts", "c-relay.c");
const BINARY = join(ROOT, "dist", "bench", "hosts", "c-relay");

/** The relay's binary, compiled if missing or stale; throws with the compiler's output when it cannot be. */
export function buildCRelay(): string {
  if (existsSync(BINARY) && statSync(BINARY).mtimeMs >= statSync(C_RELAY_SOURCE).mtimeMs) return BINARY;
  mkdirSync(join(BINARY, ".."), { recursive: true });
  // built under a name of its own, then renamed: two runs compiling at once never run a half-written file
  const partial = `${BINARY}.${process.pid}.tmp`;
  try {
    execFileSync("cc", ["-O2", "-Wall", "-Wextra", "-o", partial, C_RELAY_SOURCE], { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
  } catch (err) {
    const e = err as Error & { stderr?: Buffer };
    throw new Error(`cc -O2 ${C_RELAY_SOURCE} failed (a C compiler is needed for the ceiling relay): ${e.stderr?.toString().trim() || e.message}`);
  }
  renameSync(partial, BINARY);
  return BINARY;
}

export async function startCRelay(sinkPort: number): Promise<RelayProcess> {
  const { child, match } = await spawnUntilReady(buildCRelay(), [String(sinkPort)], /^(\d+)$/m);
  return {
    name: "c relay",
    port: Number(match[1]),
    pids: () => [child.pid!],
    close: () => stopProcess(child),
  };
}
