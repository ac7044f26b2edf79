// What every relay process needs: a free loopback port, a start that waits until the process
// says it is ready (bounded, with an error that shows what it printed), and a stop.
import { spawn, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { join } from "node:path";
import { ROOT } from "../common.js";

/** The Bun binary that npm installs (the package's postinstall may be skipped; the binary works). */
export const BUN = join(ROOT, "node_modules", "bun", "bin", "bun.exe");

export type Runtime = "node" | "bun";

export function runtimeBinary(runtime: Runtime): string {
  return runtime === "bun" ? BUN : process.execPath;
}

export interface Started {
  readonly child: ChildProcess;
  /** The match of `ready` in the process's output. */
  readonly match: RegExpExecArray;
}

/**
 * Spawns `command args` and resolves once `ready` matches its stdout or stderr (both are kept
 * for the error message). Rejects if it exits first or stays silent for `timeoutMs`.
 */
export function spawnUntilReady(command: string, args: readonly string[], ready: RegExp, timeoutMs = 15_000): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    let done = false;
    const fail = (why: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${command} ${args.join(" ")}: ${why}\n--- its output ---\n${output.slice(-2000)}`));
    };
    const onData = (d: Buffer): void => {
      if (done) return; // ready (or failed): the pipes are only drained from now on
      output += d.toString();
      const m = ready.exec(output);
      if (m) {
        done = true;
        clearTimeout(timer);
        resolve({ child, match: m });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("error", (err) => fail(err.message));
    child.on("exit", (code, signal) => fail(`exited (${signal ?? `code ${code}`}) before it was ready`));
    const timer = setTimeout(() => fail(`not ready within ${timeoutMs} ms`), timeoutMs);
  });
}

/**
 * One line on why a process did not get ready (an error of spawnUntilReady): its own error line
 * (a proxy's "segment '...': ..." when it names one, else its last line), after how it ended.
 */
export function whyNotStarted(err: Error): string {
  const [head, output = ""] = err.message.split("--- its output ---");
  const lines = output.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !/^msm proxy: config not applied/.test(l));
  // the output is its tail (the first line may be cut): prefer a whole "segment '...': ..." line
  const first = lines.find((l) => /^segment '/.test(l)) ?? lines[lines.length - 1] ?? head!.trim().split("\n")[0]!;
  const exited = /exited \(([^)]*)\) before it was ready|not ready within \d+ ms/.exec(head!)?.[0];
  return exited ? `${exited}: ${first}` : first;
}

/** The process has exited (or never started). */
export function isGone(child: ChildProcess): boolean {
  return child.pid === undefined || child.exitCode !== null || child.signalCode !== null;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
export async function stopProcess(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (isGone(child)) return;
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await gone;
  clearTimeout(timer);
}

/** A UDP port the kernel says is free on 127.0.0.1 right now. */
export async function freeUdpPort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.bind(0, "127.0.0.1", () => resolve());
  });
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
