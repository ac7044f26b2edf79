// A proxy's stats report in pages. One report of a proxy with many segments is megabytes (about
// 1.5 KB per segment: 700 segments pass etcd's 1 MiB value limit), more than one store value, one
// gRPC message or one answer to msmctl should carry. So a report travels and is stored as pages
// of whole segments, each at most STATS_PAGE_BYTES of JSON, and a report has at most
// STATS_MAX_PAGES pages: the segments beyond are left out and every page says so (`truncated`).
// Each page is a ProxySnapshot (runtime/) whose `segments` are that page's, plus `segmentsTotal`,
// and whose `instances` are those serving that page's segments, each listing only them as users:
// a filter instance shared by every segment would otherwise list them all on every page.
import type { ProxySnapshot } from "../../runtime/index.js";

export const STATS_PAGE_BYTES = 256 * 1024;
export const STATS_MAX_PAGES = 32;
/** How fast one proxy's reports may flow (agent to server, server to store), bytes per second. */
export const STATS_BYTES_PER_SEC = 1 << 20;

/** The share of a page the fields besides segments and instances may take: a long notRunning list is cut to it. */
const HEAD_MAX_BYTES = STATS_PAGE_BYTES / 4;

export interface StatsTruncation {
  readonly segmentsReported: number;
  readonly segmentsTotal: number;
  readonly reason: string;
}

type Instance = ProxySnapshot["instances"][number];

/** A page being filled: segments as JSON, and the instances serving them with those users only. */
interface Page {
  segments: string[];
  instances: Map<string, { instance: Instance; users: Instance["users"] }>;
  bytes: number;
}

const bytesOf = (json: string): number => Buffer.byteLength(json) + 1; // with its comma

/** A segment whose counters alone pass a page: its name and why its counters are missing. */
function stub(name: unknown, bytes: number): string {
  return JSON.stringify({ name: String(name), truncated: `its counters are ${bytes} bytes, more than the ${STATS_PAGE_BYTES >> 10} KiB a stats page holds` });
}

type Place = { key: string; instance: Instance; user: Instance["users"][number]; userBytes: number };

/** Each segment's places among the instances: which instance (worker and id) serves which stage. */
function usersBySegment(instances: readonly Instance[]): Map<string, Place[]> {
  const out = new Map<string, Place[]>();
  for (const instance of instances) {
    const key = `${instance.worker}/${instance.id}`;
    for (const u of instance.users) {
      let list = out.get(u.segment);
      if (!list) out.set(u.segment, (list = []));
      list.push({ key, instance, user: u, userBytes: bytesOf(JSON.stringify(u)) });
    }
  }
  return out;
}

/** The fields besides segments and instances, with a notRunning list cut to HEAD_MAX_BYTES (`notRunningTotal` then says how long it was). */
function boundedHead(head: Omit<ProxySnapshot, "segments" | "instances">): Record<string, unknown> {
  const notRunning = head.notRunning ?? [];
  let bytes = Buffer.byteLength(JSON.stringify({ ...head, notRunning: [] }));
  if (bytes + Buffer.byteLength(JSON.stringify(notRunning)) <= HEAD_MAX_BYTES) return head;
  const kept: typeof notRunning = [];
  for (const entry of notRunning) {
    bytes += bytesOf(JSON.stringify(entry));
    if (bytes > HEAD_MAX_BYTES) break;
    kept.push(entry);
  }
  return { ...head, notRunning: kept, notRunningTotal: notRunning.length };
}

/** The JSON text of the fields before `segments`, without braces. */
function headFields(head: Record<string, unknown>, segmentsTotal: number, truncated: StatsTruncation | undefined): string {
  return JSON.stringify({ ...head, segmentsTotal, ...(truncated ? { truncated } : {}) }).slice(1, -1);
}

function render(fields: string, page: Page): string {
  const instances = [...page.instances.values()].map(({ instance, users }) => JSON.stringify({ ...instance, users }));
  return `{${fields}${fields ? "," : ""}"segments":[${page.segments.join(",")}],"instances":[${instances.join(",")}]}`;
}

/** Splits a report into pages (always at least one), each at most STATS_PAGE_BYTES: every part is measured as it is encoded. */
export function pageStats(snapshot: ProxySnapshot): string[] {
  const { segments, instances = [], ...rest } = snapshot;
  const head = boundedHead(rest);
  const reason = `a report holds at most ${STATS_MAX_PAGES} pages of ${STATS_PAGE_BYTES >> 10} KiB`;
  // the head as long as it can be: `truncated` with the largest counts
  const fixed = render(headFields(head, segments.length, { segmentsReported: segments.length, segmentsTotal: segments.length, reason }), { segments: [], instances: new Map(), bytes: 0 });
  const budget = STATS_PAGE_BYTES - Buffer.byteLength(fixed);
  const users = usersBySegment(instances);
  const newPage = (): Page => ({ segments: [], instances: new Map(), bytes: 0 });
  const pages: Page[] = [newPage()];
  let reported = 0;
  // streamsCarried is /metrics' own (runtime/streams/carried-totals.ts): the control plane compares /stats' counts
  for (const { streamsCarried: _metricsOnly, ...segment } of segments) {
    let json = JSON.stringify(segment);
    let places = users.get(segment.name) ?? [];
    // what the segment adds to a page: itself, its users, and each instance not on the page yet
    const cost = (page: Page): number => bytesOf(json) + places.reduce((n, p) => n + p.userBytes + (page.instances.has(p.key) ? 0 : bytesOf(JSON.stringify({ ...p.instance, users: [] }))), 0);
    if (cost(newPage()) > budget) {
      json = stub(segment.name, Buffer.byteLength(json));
      places = [];
    }
    let page = pages[pages.length - 1]!;
    if (page.bytes + cost(page) > budget && page.segments.length > 0) {
      if (pages.length === STATS_MAX_PAGES) break;
      pages.push((page = newPage()));
    }
    page.bytes += cost(page);
    page.segments.push(json);
    for (const p of places) {
      let entry = page.instances.get(p.key);
      if (!entry) page.instances.set(p.key, (entry = { instance: p.instance, users: [] }));
      entry.users.push(p.user);
    }
    reported++;
  }
  const truncated: StatsTruncation | undefined = reported < segments.length ? { segmentsReported: reported, segmentsTotal: segments.length, reason } : undefined;
  const fields = headFields(head, segments.length, truncated);
  return pages.map((page) => render(fields, page));
}
