// CPU time and memory of a relay's process tree, read from Linux /proc. The relays under test run
// as their own processes (some spawn workers of their own: the proxy under Bun runs its data
// plane in child processes), so a relay's account is its processes and all their descendants.
import { readdirSync, readFileSync } from "node:fs";

function read(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null; // the process or thread is gone
  }
}

/** The given processes and every live descendant of theirs. */
export function processTree(roots: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = read(`/proc/${name}/stat`);
    if (stat === null) continue;
    // the command name is in parentheses and may hold spaces: fields start after the last ')'
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const visit = (pid: number): void => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) visit(c);
  };
  for (const r of roots) visit(r);
  return out;
}

/** Per process (pid and start time, so that a reused pid starts afresh): each thread's CPU at its last reading, and its exited threads'. */
const threadsSeen = new Map<string, { threads: Map<string, number>; exitedNs: number }>();

/**
 * CPU time used so far by the processes and their descendants, microseconds. From each thread's
 * schedstat (nanoseconds, unlike the 10 ms ticks of /proc/PID/stat). A thread that exits takes its
 * schedstat with it, and JavaScriptCore's helper threads come and go: without care, a reading
 * after one exited was lower than the one before (negative CPU over an idle second under Bun). So
 * a thread's time as last read stays in its process's account after it exits; only what it used
 * between that reading and its exit is missed.
 */
export function treeCpuUs(roots: readonly number[]): number {
  let ns = 0;
  for (const pid of processTree(roots)) {
    const stat = read(`/proc/${pid}/stat`);
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    // starttime is field 22: the 20th after the command's ')'
    const key = `${pid}@${stat?.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "?"}`;
    const before = threadsSeen.get(key) ?? { threads: new Map<string, number>(), exitedNs: 0 };
    const now = new Map<string, number>();
    for (const tid of tasks) {
      const s = read(`/proc/${pid}/task/${tid}/schedstat`);
      if (s !== null) now.set(tid, Number(s.split(" ")[0]));
    }
    let exitedNs = before.exitedNs;
    for (const [tid, last] of before.threads) if (!now.has(tid)) exitedNs += last;
    threadsSeen.set(key, { threads: now, exitedNs });
    ns += exitedNs;
    for (const v of now.values()) ns += v;
  }
  return ns / 1000;
}

/**
 * User and system CPU time used so far by the processes and their descendants, microseconds, from
 * /proc/PID/stat (utime, stime: all threads, in clock ticks of 10 ms, so read it over seconds).
 */
export function treeUserSystemUs(roots: readonly number[]): { userUs: number; systemUs: number } {
  let user = 0;
  let system = 0;
  for (const pid of processTree(roots)) {
    const stat = read(`/proc/${pid}/stat`);
    if (stat === null) continue;
    // fields after the command's ')': state is field 3, utime 14, stime 15
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    user += Number(f[11]);
    system += Number(f[12]);
  }
  return { userUs: user * 10_000, systemUs: system * 10_000 }; // USER_HZ is 100 on Linux
}

function statusKb(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(read(`/proc/${pid}/status`) ?? "");
  return m ? Number(m[1]) : 0;
}

/** Resident memory of the tree now (VmRSS), and the sum of each process's peak (VmHWM), bytes. */
export function treeMemory(roots: readonly number[]): { rssBytes: number; peakRssBytes: number } {
  let rss = 0;
  let peak = 0;
  for (const pid of processTree(roots)) {
    rss += statusKb(pid, "VmRSS");
    peak += statusKb(pid, "VmHWM");
  }
  return { rssBytes: rss * 1024, peakRssBytes: peak * 1024 };
}
