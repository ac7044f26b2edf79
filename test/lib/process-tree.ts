// Stopping a proxy run as a process, as a busy machine or a long pause would stop it.
import { readdirSync, readFileSync } from "node:fs";

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
