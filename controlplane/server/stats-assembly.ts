import type { StatsPage } from "./status.js";

/** A whole report of one proxy, ready to store: its pages by number and how many it has. */
export interface WholeReport {
  readonly pages: ReadonlyMap<number, StatsPage>;
  readonly pageCount: number;
}

/**
 * Collects a proxy's stats pages into whole reports. The store is written at most every few
 * seconds, on a timer; a write that took whatever pages had come would, when it fell between two
 * pages of one report, store the new report's first pages beside the old one's last: a mix every
 * reader sees until the next write (msmctl notes that segments may be missing). Only a report
 * whose last page came is handed out. A proxy sends its pages in order on one stream, so the last
 * page closes the report; a page refused before it (too large) leaves a gap the reader counts.
 */
export class StatsAssembly {
  private receiving = new Map<number, StatsPage>();
  /** When the report being received began (every page of it is stored with this time); 0: none begun. */
  private receivingAtMs = 0;
  private whole: WholeReport | undefined;

  /** Adds one page; true when it completed a report. */
  add(page: number, pageCount: number, json: string, now: number): boolean {
    if (page === 0 || this.receivingAtMs === 0) {
      this.receiving = new Map();
      this.receivingAtMs = now;
    }
    this.receiving.set(page, { atMs: this.receivingAtMs, json });
    if (page < pageCount - 1) return false;
    this.whole = { pages: this.receiving, pageCount };
    this.receiving = new Map();
    this.receivingAtMs = 0;
    return true;
  }

  /** The newest whole report not taken yet (an older one not taken is replaced by it). */
  take(): WholeReport | undefined {
    const whole = this.whole;
    this.whole = undefined;
    return whole;
  }
}
