// A filter's log lines, at most a budget a second (LOG_LINES_PER_SECOND for its own): a filter
// that logs per packet cannot flood the proxy's log. What it suppressed is reported once its
// window ends.
import { LogLevel } from "../abi.js";

export const LOG_LINES_PER_SECOND = 100;

export class LogLimiter {
  private windowStart = 0;
  private count = 0;
  private suppressed = 0;

  /** `what` names the lines in the report of those suppressed; `clock` gives milliseconds. */
  constructor(
    private readonly emit: (level: LogLevel, message: string) => void,
    private readonly perSecond = LOG_LINES_PER_SECOND,
    private readonly what = "log lines",
    private readonly clock: () => number = Date.now,
  ) {}

  /** Passes the line on, or counts it as suppressed when the window's budget is spent. */
  line(level: LogLevel, message: string): void {
    if (this.admit()) this.emit(level, message);
  }

  /**
   * Counts a line and says whether it is within the budget (else it is counted as suppressed):
   * a caller that builds its line only when admitted allocates nothing past the budget.
   */
  admit(): boolean {
    this.endWindow();
    if (++this.count > this.perSecond) {
      this.suppressed++;
      return false;
    }
    return true;
  }

  /**
   * Ends the window once a second has passed since it began, reporting what it suppressed.
   * Called before each line and by the host once a second (a burst followed by silence still
   * gets its report).
   */
  endWindow(now = this.clock()): void {
    if (now - this.windowStart < 1000) return;
    if (this.suppressed > 0) this.emit(LogLevel.Warn, `${this.suppressed} ${this.what} suppressed (limit ${this.perSecond}/s)`);
    this.windowStart = now;
    this.count = 0;
    this.suppressed = 0;
  }
}
