// An apply or delete too large for one store transaction, sent in parts: the control plane
// refuses such a request whole (after validating all of it) and names the store's limit, and
// msmctl sends it again as requests that fit, one after another, as kubectl applies any number
// of objects. Each request is atomic; the whole is not.
import { status } from "@grpc/grpc-js";
import { CliError } from "./client.js";
import { components, dependenciesFirst } from "./dependency-order.js";

/** A segment as a request's store operations count it: its own key, its proxy's, and the proxy it leaves. */
export interface Placed<T> {
  readonly item: T;
  readonly proxy: string;
  /** The proxy it is stored on now, when it moves from there. */
  readonly leaves?: string;
  /** Indices of the placed items that must be stored in the same request as this one or an earlier one (they free a port it takes). */
  readonly needs?: readonly number[];
}

/** Items that must be stored in one request (each takes a port another frees) but need more operations than one transaction takes. */
export class InseparableError<T> extends Error {
  override readonly name = "InseparableError";
  constructor(readonly items: readonly T[], readonly proxies: readonly string[], readonly ops: number, readonly maxOps: number) {
    super(`${items.length} segments must go in one request, which takes ${ops} store operations, more than ${maxOps}`);
  }
}

/** The proxy keys `placed` touch that `known` does not hold yet. */
function newKeys<T>(placed: readonly Placed<T>[], known: ReadonlySet<string>): Set<string> {
  const keys = new Set<string>();
  for (const p of placed) {
    for (const k of p.leaves === undefined ? [p.proxy] : [p.proxy, p.leaves]) if (!known.has(k)) keys.add(k);
  }
  return keys;
}

/** Union-find over proxy names: proxies whose segments depend on each other's are sent as one group. */
function joinedProxies(): { join: (a: string, b: string) => void; root: (a: string) => string } {
  const parent = new Map<string, string>();
  const root = (a: string): string => {
    let r = a;
    while (parent.has(r) && parent.get(r) !== r) r = parent.get(r)!;
    parent.set(a, r);
    return r;
  };
  return { join: (a, b) => void parent.set(root(a), root(b)), root };
}

/**
 * The units to send, in order, grouped: each unit is items that must share a request (a cycle of
 * port moves, or one item), a unit after the units it needs, a group a proxy's units (or those of
 * proxies whose segments need each other's). Throws InseparableError for a unit of several items
 * larger than `maxOps`.
 */
function orderedGroups<T>(placed: readonly Placed<T>[], maxOps: number): Placed<T>[][][] {
  const needs = placed.map((p) => p.needs ?? []);
  const componentOf = components(needs);
  const members: number[][] = [];
  placed.forEach((_p, i) => (members[componentOf[i]!] ??= []).push(i));
  for (const m of members) {
    const items = m.map((i) => placed[i]!);
    const ops = items.length + newKeys(items, new Set()).size;
    if (items.length > 1 && ops > maxOps) throw new InseparableError(items.map((p) => p.item), [...new Set(items.map((p) => p.proxy))], ops, maxOps);
  }
  const unitNeeds = members.map((m, u) => [...new Set(m.flatMap((i) => needs[i]!.map((w) => componentOf[w]!)))].filter((w) => w !== u));
  const proxyOf = (u: number): string => placed[members[u]![0]!]!.proxy;
  const proxies = joinedProxies();
  unitNeeds.forEach((ws, u) => ws.forEach((w) => proxies.join(proxyOf(u), proxyOf(w))));
  // the order without dependencies: proxies in order of first appearance, a proxy's units in
  // order; a unit's first item places it
  const proxyRank = new Map<string, number>();
  for (const p of placed) if (!proxyRank.has(p.proxy)) proxyRank.set(p.proxy, proxyRank.size);
  const groupRank = new Map<string, number>();
  for (const p of placed) {
    const g = proxies.root(p.proxy);
    if (!groupRank.has(g)) groupRank.set(g, groupRank.size);
  }
  const key = (u: number): [number, number, number] => [groupRank.get(proxies.root(proxyOf(u)))!, proxyRank.get(proxyOf(u))!, members[u]![0]!];
  const preferred = members.map((_m, u) => u).sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
  });
  const groups: Placed<T>[][][] = [];
  let last = -1;
  for (const u of dependenciesFirst(preferred, unitNeeds)) {
    const g = key(u)[0];
    if (g !== last) groups.push([]);
    last = g;
    groups[groups.length - 1]!.push(members[u]!.map((i) => placed[i]!));
  }
  return groups;
}

/**
 * The items in requests of at most `maxOps` store operations each (one per segment, one per proxy
 * key touched: the server's count, or more when a segment is unchanged), a proxy's segments
 * together in one request when they fit in one. Order kept within a proxy, proxies in order of
 * first appearance, except that an item goes no earlier than those it `needs`, and items that
 * need each other in a cycle go in one request (InseparableError when they cannot). A segment
 * that cannot fit even alone goes alone (the server says why).
 */
export function splitRequests<T>(placed: readonly Placed<T>[], maxOps: number): T[][] {
  const requests: T[][] = [];
  let items: T[] = [];
  let keys = new Set<string>();
  const close = (): void => {
    if (items.length > 0) requests.push(items);
    items = [];
    keys = new Set();
  };
  const fits = (more: readonly Placed<T>[]): boolean => items.length + keys.size + more.length + newKeys(more, keys).size <= maxOps;
  for (const group of orderedGroups(placed, maxOps)) {
    if (!fits(group.flat())) close(); // a proxy's segments start a request of their own rather than straddle two
    for (const unit of group) {
      if (items.length > 0 && !fits(unit)) close();
      for (const p of unit) items.push(p.item);
      for (const k of newKeys(unit, keys)) keys.add(k);
    }
  }
  close();
  return requests;
}

/** Refusals that leave the store as it was: the request failing with one of these changed nothing. */
const NOTHING_CHANGED = new Set([status.INVALID_ARGUMENT, status.NOT_FOUND, status.ABORTED, status.FAILED_PRECONDITION, status.PERMISSION_DENIED, status.UNAUTHENTICATED, status.UNIMPLEMENTED]);

/**
 * Request `k` (from 0) of `parts` failed: the error, then which segments the earlier requests
 * stored and which were not (or may have been, when the failure leaves it unknown). `done`:
 * "applied" or "deleted". `reason`: the failure in the operator's words.
 */
export function partFailure(err: unknown, k: number, parts: readonly (readonly string[])[], done: string, reason: string): CliError {
  const rpc = err instanceof CliError ? err.rpc : undefined;
  const before = parts.slice(0, k).flat();
  const unknown = rpc && NOTHING_CHANGED.has(rpc.code) ? [] : parts[k]!;
  const not = parts.slice(unknown.length > 0 ? k + 1 : k).flat();
  const list = (names: readonly string[]): string => (names.length > 0 ? names.join(", ") : "none");
  return new CliError([
    `request ${k + 1} of ${parts.length} failed, so the segments went in part only: ${reason}`,
    `${done} (${before.length}): ${list(before)}`,
    ...(unknown.length > 0 ? [`perhaps ${done}, look with msmctl get segments (${unknown.length}, request ${k + 1}): ${list(unknown)}`] : []),
    `not ${done} (${not.length}): ${list(not)}`,
  ].join("\n"), rpc);
}

/** The note after a change sent in `requests` requests. */
export function splitNote(requests: number, maxOps: number, dryRun: boolean): string {
  const why = `the control plane's store takes at most ${maxOps} operations in one transaction`;
  return dryRun
    ? `msmctl: note: the whole manifest is valid; it is too large for one request, so a real apply goes in ${requests} requests, one after another (${why}): each request is atomic, the whole is not\n`
    : `msmctl: note: sent in ${requests} requests, one after another, because ${why}: each request was atomic, the whole was not\n`;
}
