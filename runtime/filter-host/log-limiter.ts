// A filter's log lines, at most LOG_LINES_PER_SECOND a second: a filter that logs per packet
// cannot flood the proxy's log. What it suppressed is reported once its window ends.
import { LogLevel } from "../abi.js";

export const LOG_LINES_PER_SECOND = 100;

export class LogLimiter {
  private windowStart = 0;
  private count = 0;
  private suppressed = 0;

  constructor(private readonly emit: (level: LogLevel, message: string) => void) {}

  /** Passes the line on, or counts it as suppressed when the window's budget is spent. */
  line(level: LogLevel, message: string): void {
    this.endWindow();
    if (++this.count > LOG_LINES_PER_SECOND) {
      this.suppressed++;
      return;
    }
    this.emit(level, message);
  }

  /**
   * Ends the window once a second has passed since it began, reporting what it suppressed.
   * Called before each line and by the host once a second (a burst followed by silence still
   * gets its report).
   */
  endWindow(now = Date.now()): void {
    if (now - this.windowStart < 1000) return;
    if (this.suppressed > 0) this.emit(LogLevel.Warn, `${this.suppressed} log lines suppressed (limit ${LOG_LINES_PER_SECOND}/s)`);
    this.windowStart = now;
    this.count = 0;
    this.suppressed = 0;
  }
}
