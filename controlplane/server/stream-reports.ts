// Every proxy's latest report as buildStreamPaths reads it, put back together from the stats
// pages the store holds (api/stats-pages.ts: a report is stored page by page, whole segments per page).
import type { ProxyStats } from "../api/proto.js";
import type { Store } from "../store/index.js";
import { readStats } from "./status.js";
import type { ProxyReport, ReportedSegment } from "./stream-paths.js";

/**
 * Each proxy's report from its pages: the segments of every readable page, the newest of each name
 * (a page left over from a longer report may repeat one), the addresses of the newest page. Its
 * times (when it reached the control plane, when the proxy took it) are the oldest page's it took
 * segments from, so that a report is never fresher than any part of it. Unreadable pages are left out.
 */
export function reportsFromPages(pages: readonly ProxyStats[]): Map<string, ProxyReport> {
  const byNode = new Map<string, { atMs: number; page: number; pages: number; truncated: boolean; takenAtMs?: number; addresses?: string[]; segments: ReportedSegment[] }[]>();
  for (const p of pages) {
    let snap: { addresses?: unknown; atMs?: unknown; segments?: unknown; truncated?: unknown };
    try {
      snap = JSON.parse(p.statsJson) as typeof snap;
    } catch {
      continue;
    }
    if (typeof snap !== "object" || snap === null) continue;
    const segments = Array.isArray(snap.segments) ? (snap.segments as ReportedSegment[]).filter((s) => typeof s?.name === "string") : [];
    const addresses = Array.isArray(snap.addresses) ? snap.addresses.filter((a): a is string => typeof a === "string") : undefined;
    let list = byNode.get(p.nodeId);
    if (!list) byNode.set(p.nodeId, (list = []));
    const takenAtMs = typeof snap.atMs === "number" && Number.isFinite(snap.atMs) ? snap.atMs : undefined;
    list.push({ atMs: p.atMs, page: p.page, pages: Math.max(1, p.pages), truncated: snap.truncated !== undefined, ...(takenAtMs !== undefined ? { takenAtMs } : {}), ...(addresses ? { addresses } : {}), segments });
  }
  const reports = new Map<string, ProxyReport>();
  for (const [node, list] of byNode) {
    const newest = new Map<string, { page: (typeof list)[number]; segment: ReportedSegment }>();
    for (const page of list) {
      for (const s of page.segments) if ((newest.get(s.name)?.page.atMs ?? -1) < page.atMs) newest.set(s.name, { page, segment: s });
    }
    const used = newest.size > 0 ? [...new Set([...newest.values()].map((n) => n.page))] : [list.reduce((a, b) => (b.atMs > a.atMs ? b : a))];
    const oldest = used.reduce((a, b) => (b.atMs < a.atMs ? b : a));
    const addresses = [...list].sort((a, b) => b.atMs - a.atMs).find((p) => p.addresses)?.addresses;
    // segments left out by the proxy, or pages of the report not read (written while they were read)
    const incomplete = list.some((p) => p.truncated) || new Set(list.map((p) => p.page)).size < Math.max(...list.map((p) => p.pages));
    reports.set(node, {
      atMs: oldest.atMs,
      snapshot: {
        ...(oldest.takenAtMs !== undefined ? { atMs: oldest.takenAtMs } : {}),
        ...(addresses ? { addresses } : {}),
        segments: [...newest.values()].map((n) => n.segment),
        ...(incomplete ? { incomplete } : {}),
      },
    });
  }
  return reports;
}

/** Reads every stored page of every proxy (in answers of about 2 MiB each) and puts the reports together. */
export async function latestReports(store: Store): Promise<Map<string, ProxyReport>> {
  const pages: ProxyStats[] = [];
  let token = "";
  do {
    const { pages: got, next } = await readStats(store, "", token);
    pages.push(...got);
    token = next;
  } while (token !== "");
  return reportsFromPages(pages);
}
