// What the dashboard page is sent: the stream paths worst first, cut to what the page draws (no
// per-point counters), at most a bounded number of them, and the mesh as one graph of proxies
// built from every path (so a bad link shows even when its stream is not among those sent).
import type { ProxyStatus } from "../api/proto.js";
import { hopJudged, type StreamHop, type StreamPath } from "../api/streams.js";

/** A hop as the page draws it: the contract's figures, each end cut to its proxy and segment (null: the sender, or the receiver). */
export type HopView = Omit<StreamHop, "from" | "to" | "receiver"> & {
  from: { proxy: string; segment: string } | null;
  to: { proxy: string; segment: string } | null;
  /** Whether it has a figure it is judged by: one without is neither bad nor fine (api/streams.ts hopJudged). */
  judged: boolean;
};

/** A stream as the page draws it: the contract's path with its hops cut down. */
export type StreamView = Omit<StreamPath, "hops"> & { hops: HopView[] };

/** Pseudo-nodes for where streams come from and go to; '@' is never in a proxy's node id. */
export const SENDERS = "@senders";
export const RECEIVERS = "@receivers";

export interface MeshNode {
  id: string;
  kind: "proxy" | "senders" | "receivers";
  /** For a proxy the control plane knows: whether it is connected now; null: not known. */
  connected: boolean | null;
  /** Streams through this node, and how many of them are bad inside it (proxy hops). */
  streams: number;
  bad: number;
  /** The worst stream's reason, "<stream>: <why>". */
  why: string | null;
}

export interface MeshEdge {
  from: string;
  to: string;
  streams: number;
  bad: number;
  why: string | null;
}

export interface DashboardState {
  atMs: number;
  /** Every stream the control plane joined, and how many of them have a bad hop. */
  total: number;
  bad: number;
  /** The worst `limit` streams, worst first. */
  streams: StreamView[];
  mesh: { nodes: MeshNode[]; edges: MeshEdge[] };
}

const endOf = (p: StreamHop["from"]): HopView["from"] => (p ? { proxy: p.proxy, segment: p.segment } : null);

function hopView(h: StreamHop): HopView {
  return {
    kind: h.kind, label: h.label, from: endOf(h.from), to: endOf(h.to),
    lossFraction: h.lossFraction, lost: h.lost, jitterMs: h.jitterMs, jitterAddedMs: h.jitterAddedMs, delayMs: h.delayMs,
    bad: h.bad, why: h.why, note: h.note, judged: hopJudged(h),
  };
}

export function streamView(p: StreamPath): StreamView {
  return {
    name: p.name, ssrc: p.ssrc, segments: p.segments, hops: p.hops.map(hopView), worst: p.worst,
    lossFraction: p.lossFraction, jitterMs: p.jitterMs, bitrateBps: p.bitrateBps, packetRate: p.packetRate,
  };
}

/** Descending order of a measure that may be missing (missing last). */
/** Hops of the path without figures. */
export function unknownHops(p: StreamPath): number {
  return p.hops.filter((h) => !hopJudged(h)).length;
}

function desc(a: number | null, b: number | null): number {
  return (b ?? -1) - (a ?? -1);
}

/**
 * Worst first: streams with a bad hop before the others, then those with a hop that has no
 * figures (a proxy gone quiet: not known to be fine); among those with a bad hop, the worst hop's
 * added loss, then its added jitter; then the end-to-end loss and jitter; then by name, so that the
 * order is stable.
 */
export function worstFirst(a: StreamPath, b: StreamPath): number {
  const wa = a.hops[a.worst];
  const wb = b.hops[b.worst];
  if (!!wa !== !!wb) return wa ? -1 : 1;
  const ua = unknownHops(a) > 0;
  const ub = unknownHops(b) > 0;
  if (!wa && ua !== ub) return ua ? -1 : 1;
  return (
    (wa && wb ? desc(wa.lossFraction, wb.lossFraction) || desc(wa.jitterAddedMs, wb.jitterAddedMs) : 0) ||
    desc(a.lossFraction, b.lossFraction) ||
    desc(a.jitterMs, b.jitterMs) ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : a.ssrc - b.ssrc)
  );
}

/** The two ends of a hop in the mesh graph, or null for a hop that has none there (a proxy's own). */
function meshEnds(h: StreamHop): [string, string] | null {
  switch (h.kind) {
    case "first-link":
      return h.to ? [SENDERS, h.to.proxy] : null;
    case "last-link":
      return h.from ? [h.from.proxy, RECEIVERS] : null;
    case "link":
      return h.from && h.to ? [h.from.proxy, h.to.proxy] : null;
    case "proxy":
      return null;
  }
}

/** One graph of the mesh: a node per proxy (every proxy known, with or without streams), an edge per pair of proxies some stream crosses. */
export function meshOf(sorted: readonly StreamPath[], proxies: readonly ProxyStatus[]): DashboardState["mesh"] {
  const nodes = new Map<string, MeshNode>();
  const node = (id: string): MeshNode => {
    let n = nodes.get(id);
    if (!n) {
      const kind = id === SENDERS ? "senders" : id === RECEIVERS ? "receivers" : "proxy";
      nodes.set(id, (n = { id, kind, connected: null, streams: 0, bad: 0, why: null }));
    }
    return n;
  };
  for (const p of proxies) node(p.nodeId).connected = p.connected;
  const edges = new Map<string, MeshEdge>();
  for (const path of sorted) {
    const seen = new Set<string>();
    for (const s of path.segments) {
      if (seen.has(s.proxy)) continue;
      seen.add(s.proxy);
      node(s.proxy).streams++;
    }
    for (const h of path.hops) {
      const reason = h.bad ? `${path.name}: ${h.why ?? "bad"}` : null;
      const ends = meshEnds(h);
      if (!ends) {
        if (h.from) count(node(h.from.proxy), reason);
        continue;
      }
      const [from, to] = ends;
      node(from);
      node(to);
      const key = `${from}\u0000${to}`;
      let e = edges.get(key);
      if (!e) edges.set(key, (e = { from, to, streams: 0, bad: 0, why: null }));
      e.streams++;
      count(e, reason);
    }
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()] };
}

/** Counts a bad hop on a node or an edge; the first reason (the worst stream's, paths being sorted) is kept. */
function count(at: { bad: number; why: string | null }, reason: string | null): void {
  if (reason === null) return;
  at.bad++;
  at.why ??= reason;
}

/** The page's whole state from the paths and the proxies, with at most `limit` streams. */
export function dashboardState(paths: readonly StreamPath[], proxies: readonly ProxyStatus[], limit: number, atMs = Date.now()): DashboardState {
  const sorted = [...paths].sort(worstFirst);
  return {
    atMs,
    total: sorted.length,
    bad: sorted.filter((p) => p.worst >= 0).length,
    streams: sorted.slice(0, limit).map(streamView),
    mesh: meshOf(sorted, proxies),
  };
}
