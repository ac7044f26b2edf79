// One proxy process per stateFile. Two on one file overwrite each other's stage states, and a
// restart then restores the other's: an srtp stage behind its own indexes encrypts them a second
// time. The lock is a file beside the stateFile (`<stateFile>.lock`), created exclusively, naming
// its holder, its modification time refreshed every second while the holder runs. A lock is
// taken over when its holder is gone: a process of this host and pid namespace that no longer
// exists (at once; a SIGKILLed proxy restarts without waiting), or a lock not refreshed for
// LOCK_STALE_MS (a holder in another container or host, or frozen). Otherwise the start waits
// about as long for it (a restart overlapping the old process's stop), then refuses.
import { mkdirSync, readFileSync, readlinkSync, realpathSync, statSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import { randomUUID } from "node:crypto";
import { StateFileError } from "./state-file.js";

export const LOCK_REFRESH_MS = 1000;
export const LOCK_STALE_MS = 10_000;

interface LockRecord {
  readonly pid: number;
  readonly host: string;
  /** The holder's pid namespace (/proc/self/ns/pid): its pid means something here only if ours is the same. */
  readonly pidNamespace: string;
  readonly startedAtMs: number;
  /** Tells this process's lock from another's, whatever pid it has. */
  readonly token: string;
}

/**
 * Locks held by this process, by their real path: a second proxy in one process on one file is
 * refused too, however it spells the file (relative, through a symlink): by the spelling, a lock
 * of this process under another one looked like an earlier run's, and was taken over.
 */
const heldHere = new Set<string>();

/** The lock file's real path (its directory exists), the key of heldHere. */
function realLockPath(path: string): string {
  try {
    return join(realpathSync(dirname(path)), basename(path));
  } catch {
    return path;
  }
}

function pidNamespace(): string {
  try {
    return readlinkSync("/proc/self/ns/pid");
  } catch {
    return ""; // not Linux, or no /proc: pids are not compared
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // exists, another user's
  }
}

export class StateFileLock {
  private readonly timer: NodeJS.Timeout;
  private lost = false;
  private released = false;
  /** Who took it over, once lost. */
  private holder = "";

  private constructor(readonly path: string, private readonly realPath: string, private readonly record: LockRecord, private readonly onLost: (holder: string) => void) {
    heldHere.add(realPath);
    this.timer = setInterval(() => void this.check(), LOCK_REFRESH_MS);
    this.timer.unref();
  }

  /**
   * Undefined while the lock is this process's (touched), else who holds it (`onLost` is told the
   * first time). A write of the stateFile asks first: a process that was frozen past
   * LOCK_STALE_MS may run a write before its refresh timer, and must not write over the taker's.
   */
  check(): string | undefined {
    if (this.released) return "nobody: this proxy let it go at its stop";
    if (this.lost) return this.holder;
    const holder = this.refresh();
    if (holder === undefined) return undefined;
    this.lost = true;
    this.holder = holder;
    this.onLost(holder);
    return holder;
  }

  /**
   * Takes the lock of `stateFile`, waiting up to `waitMs` for a live holder to let go. Throws
   * StateFileError naming the holder. `onLost` hears that another process took it over (this one
   * did not refresh it for LOCK_STALE_MS: stopped or frozen), with who holds it now. `onWaiting`
   * hears once that a live holder was found and the wait begins, with who it is and for how long.
   */
  static async acquire(
    stateFile: string,
    onLost: (holder: string) => void,
    waitMs = LOCK_STALE_MS + 2 * LOCK_REFRESH_MS,
    onWaiting?: (holder: string, waitMs: number) => void,
  ): Promise<StateFileLock> {
    const path = `${stateFile}.lock`;
    const token = randomUUID();
    const record: LockRecord = { pid: process.pid, host: hostname(), pidNamespace: pidNamespace(), startedAtMs: Date.now(), token };
    const deadline = Date.now() + waitMs;
    let told = false;
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const realPath = realLockPath(path);
    for (;;) {
      try {
        writeFileSync(path, JSON.stringify(record) + "\n", { flag: "wx", mode: 0o600 });
        return new StateFileLock(path, realPath, record, onLost);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw new StateFileError(`stateFile ${stateFile}: cannot create its lock ${path}: ${(err as Error).message}`);
      }
      const held = readHolder(path, realPath);
      if (held === undefined) continue; // gone meanwhile
      if (held.stale) {
        try {
          unlinkSync(path);
        } catch {
          // another starter removed it first: the next round finds out who holds it
        }
        continue;
      }
      if (!told) {
        told = true;
        onWaiting?.(held.who, waitMs);
      }
      if (Date.now() >= deadline) {
        throw new StateFileError(
          `stateFile ${stateFile} is in use by another proxy (${held.who}): two proxies on one stateFile overwrite each other's stage states, ` +
            `and a restart then restores the other's (srtp would encrypt indexes a second time). Give each proxy its own stateFile, or stop the other; ` +
            `the lock of a proxy that is gone expires ${LOCK_STALE_MS / 1000} s after its last refresh (${path})`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Touches the lock; undefined while it is this process's, else who holds it now. */
  refresh(): string | undefined {
    const holder = readRecord(this.path);
    // removed by hand (taken for a stale one): made again, since no other process holds it
    if (holder === undefined && this.recreate()) return undefined;
    if (holder?.record?.token !== this.record.token) return holder?.record ? describe(holder.record) : "nobody: the lock file was removed";
    try {
      const now = new Date();
      utimesSync(this.path, now, now);
    } catch {
      // removed just now: the next refresh says so
    }
    return undefined;
  }

  /** Creates the lock file again with this process's record; false when another process made one first. */
  private recreate(): boolean {
    try {
      writeFileSync(this.path, JSON.stringify(this.record) + "\n", { flag: "wx", mode: 0o600 });
      return true;
    } catch {
      return false;
    }
  }

  /** Lets go (at stop, after the last write of the stateFile). */
  release(): void {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    heldHere.delete(this.realPath);
    if (this.lost || readRecord(this.path)?.record?.token !== this.record.token) return;
    try {
      unlinkSync(this.path);
    } catch {
      // gone already
    }
  }
}

function readRecord(path: string): { record: LockRecord | undefined; mtimeMs: number } | undefined {
  let text: string;
  let mtimeMs: number;
  try {
    mtimeMs = statSync(path).mtimeMs;
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    const r = JSON.parse(text) as Partial<LockRecord>;
    const ok = typeof r.pid === "number" && typeof r.host === "string" && typeof r.pidNamespace === "string" && typeof r.startedAtMs === "number" && typeof r.token === "string";
    return { record: ok ? (r as LockRecord) : undefined, mtimeMs };
  } catch {
    return { record: undefined, mtimeMs }; // being written, or not ours: judged by its age
  }
}

/** Whether the lock at `path` is held (and by whom) or stale; undefined: there is none. */
function readHolder(path: string, realPath: string): { stale: boolean; who: string } | undefined {
  const found = readRecord(path);
  if (!found) return undefined;
  const { record, mtimeMs } = found;
  const age = Date.now() - mtimeMs;
  if (age > LOCK_STALE_MS) return { stale: true, who: "" };
  if (!record) return { stale: false, who: `an unreadable lock file, refreshed ${Math.round(age / 1000)} s ago` };
  const here = record.host === hostname() && record.pidNamespace !== "" && record.pidNamespace === pidNamespace();
  // our own pid in a lock this process does not hold: an earlier run of a restarted container (its pid 1, say)
  const gone = here && (record.pid === process.pid ? !heldHere.has(realPath) : !alive(record.pid));
  return { stale: gone, who: `${describe(record)}, refreshed ${Math.round(age / 1000)} s ago` };
}

function describe(r: LockRecord): string {
  return `pid ${r.pid} on ${r.host}, started ${new Date(r.startedAtMs).toISOString()}`;
}
