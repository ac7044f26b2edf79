import type { StatsPage } from "./status.js";

/** A whole report of one proxy, ready to store: its pages by number (a dropped one missing) and how many it has. */
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
 * page closes the report. A page the server refused (too large, not JSON) is still added, without
 * its text: a refused last page closes its report all the same (else a last page refused every
 * time would leave the store with no report of the proxy again), and a refused first page begins
 * a report (else the pages after it would join the report before, all stored as one).
 */
export class StatsAssembly {
  private receiving = new Map<number, StatsPage>();
  /** When the report being received began (every page of it is stored with this time); 0: none begun. */
  private receivingAtMs = 0;
  private receivingCount = 0;
  private lastPage = -1;
  private whole: WholeReport | undefined;

  /** Adds one page (`json` undefined: refused, a gap in its report); true when it completed a report. */
  add(page: number, pageCount: number, json: string | undefined, now: number): boolean {
    // a page not after the last one, or counting other pages, is of a new report whose first ones were lost
    if (page === 0 || this.receivingAtMs === 0 || page <= this.lastPage || pageCount !== this.receivingCount) {
      this.receiving = new Map();
      this.receivingAtMs = now;
      this.receivingCount = pageCount;
    }
    this.lastPage = page;
    if (json !== undefined) this.receiving.set(page, { atMs: this.receivingAtMs, json });
    if (page < pageCount - 1) return false;
    const complete = this.receiving.size > 0; // every page refused: the stored report stays
    if (complete) this.whole = { pages: this.receiving, pageCount };
    this.receiving = new Map();
    this.receivingAtMs = 0;
    this.lastPage = -1;
    return complete;
  }

  /** The newest whole report not taken yet (an older one not taken is replaced by it). */
  take(): WholeReport | undefined {
    const whole = this.whole;
    this.whole = undefined;
    return whole;
  }
}
