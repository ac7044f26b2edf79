// Which repeats of a failure are worth a log line. The agent retries what fails (a replica every
// second or so, a refused snapshot on a backoff), and each try would otherwise be logged again.
import { withoutTimestamps } from "./status-text.js";

/** Keys kept before the ones not reported for `everyMs` are let go (a server hears many hosts). */
const MAX_KEYS = 1024;

export class ReportLimiter {
  private readonly last = new Map<string, { reason: string; atMs: number; repeats: number }>();

  constructor(private readonly everyMs: number) {}

  /**
   * A reason new for `key` is reported at once; the same reason again only once `everyMs` passed
   * since it was last reported. Returns undefined to hold this one back, else how many were held
   * back since the last report of that reason. Timestamps in reasons do not make them new.
   */
  admit(key: string, reason: string, now = Date.now()): number | undefined {
    if (this.last.size >= MAX_KEYS) for (const [k, v] of this.last) if (now - v.atMs >= this.everyMs) this.last.delete(k); // many sources: the quiet ones go
    const text = withoutTimestamps(reason);
    const last = this.last.get(key);
    if (last && last.reason === text && now - last.atMs < this.everyMs) {
      last.repeats++;
      return undefined;
    }
    this.last.set(key, { reason: text, atMs: now, repeats: 0 });
    return last?.reason === text ? last.repeats : 0;
  }

  /** The failure is over (connected, applied): its next occurrence is reported at once. */
  forget(key: string): void {
    this.last.delete(key);
  }
}
