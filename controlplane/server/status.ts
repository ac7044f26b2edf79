// What every replica knows about every proxy: its connection (which replica, from where, since
// when), what it acknowledged or refused, and its latest stats, all kept in the store so that
// ListProxies and GetStats answer the same on every replica.
import type { ProxyStats, ProxyStatus } from "../api/proto.js";
import type { Compare, Op, Store } from "../store/index.js";
import { STATS, STATUS, statsKey, statsPageKey, statusKey } from "./keys.js";
import type { DesiredState } from "./state.js";

export interface StatusRecord {
  nodeId: string;
  connected: boolean;
  /** The connection that wrote `connected`: a stale connection's close must not undo a newer one. */
  connectionId: string;
  peer: string;
  server: string;
  lastSeenMs: number;
  capabilities: string[];
  abiVersions: string[];
  ackedVersion: number;
  nackedVersion: number;
  nackError: string;
  /** When the proxy tries the refused version again (Unix ms; 0: it does not). */
  nackRetryAtMs: number;
  /** Segments of the acked version that do not run, and why (see Ack in msm.proto). */
  notRunning: string[];
  notRunningError: string;
  /** Why this proxy's stats pages are dropped ("" once a whole report is stored again), and when that was last said. */
  statsDropped: string;
  statsDroppedAtMs: number;
}

export function emptyStatus(nodeId: string): StatusRecord {
  return { nodeId, connected: false, connectionId: "", peer: "", server: "", lastSeenMs: 0, capabilities: [], abiVersions: [], ackedVersion: 0, nackedVersion: 0, nackError: "", nackRetryAtMs: 0, notRunning: [], notRunningError: "", statsDropped: "", statsDroppedAtMs: 0 };
}

/**
 * Read-modify-write of a proxy's record, guarded by its modification revision and retried on a
 * conflict (two replicas may write one record: a proxy moving between them). `change` returns
 * undefined to leave the record as it is.
 */
export async function updateStatus(store: Store, nodeId: string, change: (current: StatusRecord) => StatusRecord | undefined): Promise<void> {
  const key = statusKey(nodeId);
  for (let attempt = 0; attempt < 50; attempt++) {
    const kv = await store.get(key);
    const current = kv ? { ...emptyStatus(nodeId), ...(JSON.parse(kv.value.toString()) as StatusRecord) } : emptyStatus(nodeId);
    const next = change(current);
    if (!next) return;
    const r = await store.txn([{ key, modRevision: kv?.modRevision ?? 0 }], [{ type: "put", key, value: JSON.stringify(next) }]);
    if (r.succeeded) return;
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * (attempt + 1)));
  }
  throw new Error(`status of ${nodeId}: too many conflicting writes`);
}

/**
 * Every proxy known by a status record or named by a segment. `connected` holds only while the
 * replica holding the stream keeps refreshing `lastSeenMs`: a replica that died leaves records
 * that go stale after `staleAfterMs`.
 */
export async function listProxies(store: Store, state: DesiredState, staleAfterMs: number): Promise<ProxyStatus[]> {
  const { items } = await store.list(STATUS);
  const records = new Map<string, StatusRecord>();
  for (const kv of items) {
    const r = { ...emptyStatus(""), ...(JSON.parse(kv.value.toString()) as StatusRecord) };
    records.set(r.nodeId, r);
  }
  const now = store.now?.() ?? Date.now(); // last_seen is written by the store's clock too
  // A node that never connected is listed while segments name it: once they are deleted or moved
  // it is nothing but a set key the store keeps (for its version), not a proxy an operator has.
  const named = [...state.nodes()].filter((node) => records.has(node) || state.hasSegments(node));
  const nodes = [...new Set([...records.keys(), ...named])].sort();
  return nodes.map((nodeId) => {
    const r = records.get(nodeId) ?? emptyStatus(nodeId);
    return {
      nodeId,
      connected: r.connected && now - r.lastSeenMs < staleAfterMs,
      peer: r.peer,
      desiredVersion: state.snapshotFor(nodeId).version,
      ackedVersion: r.ackedVersion,
      nackedVersion: r.nackedVersion,
      nackError: r.nackError,
      nackRetryAtMs: r.nackRetryAtMs,
      lastSeenMs: r.lastSeenMs,
      capabilities: r.capabilities,
      abiVersions: r.abiVersions,
      server: r.server,
      notRunning: r.notRunning,
      notRunningError: r.notRunningError,
      statsDropped: r.statsDropped,
      statsDroppedAtMs: r.statsDroppedAtMs,
    };
  });
}

/** What a DeleteProxies request does: the store operations, guarded by each record's revision, or why it is refused. */
export type ProxyDeletion =
  | { ops: Op[]; compares: Compare[]; deleted: string[] }
  | { refused: string; notFound: boolean };

/**
 * Plans forgetting proxies gone for good (a decommissioned node, whose record and stats would be
 * listed, and counted as disconnected, for ever): their status record and stats pages, all or
 * none. A proxy not known, connected (it would only register again), or still named by segments
 * (it is meant to run them) is refused, naming why.
 */
export async function planProxyDeletion(store: Store, state: DesiredState, nodeIds: readonly string[], staleAfterMs: number): Promise<ProxyDeletion> {
  const now = store.now?.() ?? Date.now();
  const ops: Op[] = [];
  const compares: Compare[] = [];
  const problems: string[] = [];
  const missing: string[] = [];
  for (const node of nodeIds) {
    const kv = await store.get(statusKey(node));
    const segments = state.segmentsOn(node);
    if (!kv) {
      if (segments.length === 0) missing.push(`proxy "${node}" not found`);
      else problems.push(`proxy "${node}" never connected, and segments name it (${segments.join(", ")}): delete them or move them to another proxy first`);
      continue;
    }
    const r = { ...emptyStatus(node), ...(JSON.parse(kv.value.toString()) as StatusRecord) };
    if (r.connected && now - r.lastSeenMs < staleAfterMs) problems.push(`proxy "${node}" is connected (to ${r.server || "a replica"} from ${r.peer || "?"}): stop it first, or it registers again`);
    else if (segments.length > 0) problems.push(`segments name proxy "${node}" (${segments.join(", ")}): delete them or move them to another proxy first`);
    compares.push({ key: kv.key, modRevision: kv.modRevision });
    ops.push({ type: "delete", key: kv.key }, { type: "delete", key: statsKey(node) });
    const { items } = await store.list(`${STATS}${node}/`, { keysOnly: true });
    for (const page of items) ops.push({ type: "delete", key: page.key });
  }
  if (missing.length > 0) return { refused: `${missing.join(", ")}; nothing was deleted`, notFound: true };
  if (problems.length > 0) return { refused: `${problems.join("; ")}; nothing was deleted`, notFound: false };
  return { ops, compares, deleted: [...nodeIds] };
}

/** A page of a stats report as it arrived. */
export interface StatsPage {
  readonly atMs: number;
  readonly json: string;
}

/**
 * Stores the pages of a proxy's report: each page under its own key, as "<atMs>\n<pages>\n<stats
 * JSON>" (the report as it came, not escaped into another JSON string), one write per page, so
 * that no value passes the store's limit. `storedPages` is how many pages the store holds for the
 * node (undefined: not known yet, listed); pages beyond the report's are deleted, and so is the
 * single key an older version wrote. Returns how many pages the store now holds.
 */
export async function writeStats(store: Store, nodeId: string, pages: ReadonlyMap<number, StatsPage>, pageCount: number, storedPages: number | undefined): Promise<number> {
  for (const [page, p] of pages) {
    await store.txn([], [{ type: "put", key: statsPageKey(nodeId, page), value: `${p.atMs}\n${pageCount}\n${p.json}` }]);
  }
  // a page the report lacks (refused) is removed, not left from an older report: readers count the gap
  const stale: string[] = Array.from({ length: pageCount }, (_, page) => page).filter((page) => !pages.has(page)).map((page) => statsPageKey(nodeId, page));
  if (storedPages === undefined) {
    const { items } = await store.list(`${STATS}${nodeId}/`, { keysOnly: true });
    stale.push(statsKey(nodeId), ...items.map((kv) => kv.key).filter((key) => (parseStatsKey(key)?.page ?? 0) >= pageCount));
  } else {
    stale.push(...Array.from({ length: Math.max(0, storedPages - pageCount) }, (_, i) => statsPageKey(nodeId, pageCount + i)));
  }
  for (let i = 0; i < stale.length; i += store.maxTxnOps) {
    await store.txn([], stale.slice(i, i + store.maxTxnOps).map((key) => ({ type: "delete" as const, key })));
  }
  return pageCount;
}

/** The node and page a stats key names; undefined for the single key of an older version. */
function parseStatsKey(key: string): { nodeId: string; page: number } | undefined {
  const m = /^([^/]+)\/(\d+)$/.exec(key.slice(STATS.length));
  return m ? { nodeId: m[1]!, page: Number(m[2]) } : undefined;
}

/** Roughly what one GetStats answer carries, so that it stays under a client's 4 MiB default. */
export const GET_STATS_BYTES = 2 << 20;

/**
 * Stats pages in key order (by node, then page) from after `pageToken` (a key, "" = the start),
 * up to about GET_STATS_BYTES; `next` is the token for the rest ("" = none).
 */
export async function readStats(store: Store, nodeId: string, pageToken: string): Promise<{ pages: ProxyStats[]; next: string }> {
  const prefix = nodeId === "" ? STATS : `${STATS}${nodeId}/`;
  const pages: ProxyStats[] = [];
  let bytes = 0;
  let after = pageToken === "" ? undefined : pageToken;
  for (;;) {
    const { items, more } = await store.list(prefix, { ...(after !== undefined ? { startAfter: after } : {}), limit: 8 });
    for (const kv of items) {
      if (pages.length > 0 && bytes + kv.value.length > GET_STATS_BYTES) return { pages, next: after! };
      after = kv.key;
      const where = parseStatsKey(kv.key);
      if (!where) continue; // an older version's single key: replaced at the node's next report
      const text = kv.value.toString();
      const a = text.indexOf("\n");
      const b = text.indexOf("\n", a + 1);
      pages.push({ nodeId: where.nodeId, atMs: Number(text.slice(0, a)), pages: Number(text.slice(a + 1, b)), page: where.page, statsJson: text.slice(b + 1) });
      bytes += kv.value.length;
    }
    if (!more) return { pages, next: "" };
  }
}
