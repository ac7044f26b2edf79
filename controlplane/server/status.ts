// What every replica knows about every proxy: its connection (which replica, from where, since
// when), what it acknowledged or refused, and its latest stats, all kept in the store so that
// ListProxies and GetStats answer the same on every replica.
import type { ProxyStats, ProxyStatus } from "../api/proto.js";
import type { Store } from "../store/index.js";
import { STATS, STATUS, statsKey, statusKey } from "./keys.js";
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
  /** Segments of the acked version that do not run, and why (see Ack in msm.proto). */
  notRunning: string[];
  notRunningError: string;
}

export function emptyStatus(nodeId: string): StatusRecord {
  return { nodeId, connected: false, connectionId: "", peer: "", server: "", lastSeenMs: 0, capabilities: [], abiVersions: [], ackedVersion: 0, nackedVersion: 0, nackError: "", notRunning: [], notRunningError: "" };
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
 * Every proxy known by a status record or by the desired state. `connected` holds only while the
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
  const now = Date.now();
  const nodes = [...new Set([...records.keys(), ...state.nodes()])].sort();
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
      lastSeenMs: r.lastSeenMs,
      capabilities: r.capabilities,
      abiVersions: r.abiVersions,
      server: r.server,
      notRunning: r.notRunning,
      notRunningError: r.notRunningError,
    };
  });
}

/** Stored as "<atMs>\n<stats JSON>": the report as it came, not escaped into another JSON string. */
export async function writeStats(store: Store, nodeId: string, atMs: number, statsJson: string): Promise<void> {
  await store.txn([], [{ type: "put", key: statsKey(nodeId), value: `${atMs}\n${statsJson}` }]);
}

export async function readStats(store: Store, nodeId: string): Promise<ProxyStats[]> {
  const items = nodeId === "" ? (await store.list(STATS)).items : [await store.get(statsKey(nodeId))].filter((kv) => kv !== undefined);
  return items.map((kv) => {
    const text = kv.value.toString();
    const nl = text.indexOf("\n");
    return { nodeId: kv.key.slice(STATS.length), atMs: Number(text.slice(0, nl)), statsJson: text.slice(nl + 1) };
  });
}
