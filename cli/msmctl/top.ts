// `msmctl top [segments]`: live rates per segment, from successive GetStats snapshots. Rates use
// the time of each proxy's own report, so a slow poll does not inflate them; while a proxy has
// sent nothing new, its last rates stay on screen.
import type { Context } from "./context.js";
import { drawScreen, untilInterrupted } from "./live.js";
import { CliError } from "./client.js";
import { flag, flagSet, secondsFlag, UsageError } from "./flags.js";
import { bytes, rate, render, table } from "./format.js";
import { escapeSerialized, printable } from "../../controlplane/security/terminal.js";
import { resourceOf } from "./resources.js";
import { topStreams } from "./streams.js";
import { mergeStatsPages, reportCaveat, segmentRate, type ProxyCounters, type SegmentCounters, type SegmentRates } from "./stats.js";

export const TOP_HEADERS = ["PROXY", "SEGMENT", "PKTS-IN/S", "PKTS-OUT/S", "DROPS/S", "BYTES-IN/S", "BYTES-OUT/S"];

export function topRows(rates: readonly SegmentRates[]): string[][] {
  const b = (n: number | undefined): string => (n === undefined ? "-" : bytes(Math.round(n)));
  return [...rates]
    .sort((x, y) => (x.proxy === y.proxy ? (x.segment < y.segment ? -1 : 1) : x.proxy < y.proxy ? -1 : 1))
    .map((r) => [r.proxy, r.segment, rate(r.packetsInPerSec), rate(r.packetsOutPerSec), rate(r.dropsPerSec), b(r.bytesInPerSec), b(r.bytesOutPerSec)]);
}

/**
 * Tracks, per segment of each proxy, its newest counters and the ones before them with an earlier
 * time (a proxy's pages may arrive at different times, so each segment keeps its own).
 */
export class RateTracker {
  private readonly latest = new Map<string, { proxy: string; counters: SegmentCounters }>();
  private readonly previous = new Map<string, SegmentCounters>();

  /** Takes one poll's reports; returns true when every segment in it now has two reports to compare. */
  update(reports: readonly ProxyCounters[]): boolean {
    let complete = reports.length > 0;
    const seen = new Set<string>();
    for (const r of reports) {
      for (const s of r.segments) {
        const key = `${r.nodeId}\0${s.name}`;
        seen.add(key);
        const last = this.latest.get(key);
        if (!last || s.atMs > last.counters.atMs) {
          if (last) this.previous.set(key, last.counters);
          this.latest.set(key, { proxy: r.nodeId, counters: s });
        }
        if (!this.previous.has(key)) complete = false;
      }
    }
    for (const key of [...this.latest.keys()]) {
      if (!seen.has(key)) {
        this.latest.delete(key);
        this.previous.delete(key);
      }
    }
    return complete;
  }

  rates(): SegmentRates[] {
    return [...this.latest].map(([key, { proxy, counters }]) => segmentRate(proxy, this.previous.get(key), counters));
  }
}

export async function topCommand(ctx: Context): Promise<number> {
  if (ctx.words.length > 1) throw new UsageError("usage: msmctl top [segments|streams] [--proxy NODE] [--once] [--interval SECONDS]");
  const resource = ctx.words.length === 1 ? resourceOf(ctx.words[0], ["segments", "streams"], "top") : "segments";
  const proxy = flag(ctx.args, "proxy") ?? "";
  const intervalMs = secondsFlag(ctx.args, "interval", 1, 0.1, 3600);
  if (resource === "streams") return topStreams(ctx, { proxy, badOnly: flagSet(ctx.args, "bad"), intervalMs, once: flagSet(ctx.args, "once") });
  if (flagSet(ctx.args, "bad")) throw new UsageError("--bad applies to top streams");
  const api = ctx.api();
  let notes: string[] = [];
  const poll = async (): Promise<ProxyCounters[]> => {
    const { proxies, incomplete } = await api.getStats({ proxy });
    const reports = mergeStatsPages(proxies);
    const now = Date.now();
    notes = [
      ...(incomplete ? [incomplete] : []),
      ...reports.filter((r) => r.note || r.error).map((r) => `${r.nodeId}: ${r.note ?? r.error}`),
      // rates of a proxy whose reports stopped coming would stay on screen as if current
      ...reports.filter((r) => !r.error && reportCaveat(r, undefined, now)).map((r) => `${r.nodeId}: ${reportCaveat(r, undefined, now)}`),
    ];
    return reports;
  };
  const tracker = new RateTracker();

  if (flagSet(ctx.args, "once")) {
    // Two polls at least; more while a proxy has not reported anything newer (it reports on its
    // own schedule), up to five intervals or five seconds.
    tracker.update(await poll());
    const deadline = Date.now() + Math.max(5 * intervalMs, 5000);
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
      if (tracker.update(await poll()) || Date.now() >= deadline) break;
    }
    const rates = tracker.rates();
    if (rates.length === 0) throw new CliError(`no stats yet: no proxy${proxy ? ` named ${proxy}` : ""} has reported segments to ${api.server} (see msmctl get proxies)`);
    if (ctx.output !== "table") ctx.io.out(render({ segments: rates, ...(notes.length > 0 ? { notes } : {}) }, ctx.output));
    else ctx.io.out(table(TOP_HEADERS, topRows(rates)) + notes.map((n) => `note: ${printable(n)}\n`).join(""));
    return 0;
  }

  await untilInterrupted(ctx, intervalMs, async () => {
    let note = "";
    try {
      tracker.update(await poll());
    } catch (err) {
      note = `poll failed: ${(err as Error).message}`;
    }
    const rates = tracker.rates();
    if (ctx.output !== "table") {
      ctx.io.out(escapeSerialized(JSON.stringify({ atMs: Date.now(), segments: rates, ...(note ? { error: note } : {}), ...(notes.length > 0 ? { notes } : {}) })) + "\n");
    } else {
      const head = `msmctl top segments: ${api.server}, every ${intervalMs / 1000} s, Ctrl-C to stop${note ? `\n${printable(note)}` : ""}\n\n`;
      const body = (rates.length ? table(TOP_HEADERS, topRows(rates)) : "no stats yet: no proxy has reported segments\n") + notes.map((n) => `note: ${printable(n)}\n`).join("");
      drawScreen(ctx, head, body);
    }
  });
  return 0;
}
