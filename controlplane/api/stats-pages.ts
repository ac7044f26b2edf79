// A proxy's stats report in pages. One report of a proxy with many segments is megabytes (about
// 1.5 KB per segment: 700 segments pass etcd's 1 MiB value limit), more than one store value, one
// gRPC message or one answer to msmctl should carry. So a report travels and is stored as pages
// of whole segments, each at most STATS_PAGE_BYTES of JSON, and a report has at most
// STATS_MAX_PAGES pages: the segments beyond are left out and every page says so (`truncated`).
// Each page is a ProxySnapshot (runtime/) whose `segments` are that page's, plus `segmentsTotal`.
import type { ProxySnapshot } from "../../runtime/index.js";

export const STATS_PAGE_BYTES = 256 * 1024;
export const STATS_MAX_PAGES = 32;
/** How fast one proxy's reports may flow (agent to server, server to store), bytes per second. */
export const STATS_BYTES_PER_SEC = 1 << 20;

/** Room on every page for the fields besides `segments`. */
const HEAD_BYTES = 1024;

export interface StatsTruncation {
  readonly segmentsReported: number;
  readonly segmentsTotal: number;
  readonly reason: string;
}

/** A segment whose counters alone pass a page: its name and why its counters are missing. */
function stub(name: unknown, bytes: number): string {
  return JSON.stringify({ name: String(name), truncated: `its counters are ${bytes} bytes, more than the ${STATS_PAGE_BYTES >> 10} KiB a stats page holds` });
}

/** Splits a report into pages (always at least one), each at most STATS_PAGE_BYTES. */
export function pageStats(snapshot: ProxySnapshot): string[] {
  const { segments, ...head } = snapshot;
  const budget = STATS_PAGE_BYTES - HEAD_BYTES;
  const pages: string[][] = [[]];
  let size = 0;
  let reported = 0;
  for (const segment of segments) {
    let json = JSON.stringify(segment);
    if (Buffer.byteLength(json) + 1 > budget) json = stub(segment.name, Buffer.byteLength(json));
    const bytes = Buffer.byteLength(json) + 1;
    if (size + bytes > budget && pages[pages.length - 1]!.length > 0) {
      if (pages.length === STATS_MAX_PAGES) break;
      pages.push([]);
      size = 0;
    }
    pages[pages.length - 1]!.push(json);
    size += bytes;
    reported++;
  }
  const truncated: StatsTruncation | undefined = reported < segments.length
    ? { segmentsReported: reported, segmentsTotal: segments.length, reason: `a report holds at most ${STATS_MAX_PAGES} pages of ${STATS_PAGE_BYTES >> 10} KiB` }
    : undefined;
  const fields = JSON.stringify({ ...head, segmentsTotal: segments.length, ...(truncated ? { truncated } : {}) }).slice(1, -1);
  return pages.map((list) => `{${fields}${fields ? "," : ""}"segments":[${list.join(",")}]}`);
}
