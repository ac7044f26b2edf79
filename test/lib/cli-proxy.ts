// A proxy run by the CLI in a process of its own (under the runtime running the test), from a
// config file, so that a test can stop it as a busy machine or a long pause would.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./paths.js";

const MSM = join(ROOT, "dist", "cli", "msm.js");

export interface CliProxy {
  readonly pid: number;
  /** What it printed so far (for failure messages). */
  output(): string;
  /** SIGTERM, then waits for it to exit; removes its config. */
  stop(): Promise<void>;
  /** SIGKILL to it and its worker processes, as a crash or an OOM kill would end it; removes its config. */
  kill(): Promise<void>;
}

/** `msm proxy --config FILE ...args` with `config` written to FILE (JSON is YAML: the CLI reads it as a user's file). */
export function startCliProxy(config: object, args: readonly string[] = []): CliProxy {
  const dir = mkdtempSync(join(tmpdir(), "msm-cli-proxy-"));
  const file = join(dir, "proxy.yaml");
  writeFileSync(file, JSON.stringify(config));
  const child = spawn(process.execPath, [MSM, "proxy", "--config", file, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise((r) => child.once("exit", r));
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  return {
    pid: child.pid!,
    output: () => output,
    async stop(): Promise<void> {
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
    async kill(): Promise<void> {
      for (const p of processTree(child.pid!)) {
        try {
          process.kill(p, "SIGKILL");
        } catch {
          // gone meanwhile
        }
      }
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `pid` and every process below it (the proxy's worker processes under Bun). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // gone meanwhile
    }
  }
  const out = [pid];
  for (let k = 0; k < out.length; k++) out.push(...(children.get(out[k]!) ?? []));
  return out;
}

/** Stops a process tree (SIGSTOP, parents first); returns what to give to resumeTree. */
export function stopTree(pid: number): number[] {
  const stopped = processTree(pid);
  for (const p of stopped) process.kill(p, "SIGSTOP");
  return stopped;
}

/** Lets a stopped tree run again (children first). */
export function resumeTree(stopped: readonly number[]): void {
  for (const p of [...stopped].reverse()) {
    try {
      process.kill(p, "SIGCONT");
    } catch {
      // gone meanwhile
    }
  }
}
