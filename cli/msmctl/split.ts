// An apply or delete too large for one store transaction, sent in parts: the control plane
// refuses such a request whole (after validating all of it) and names the store's limit, and
// msmctl sends it again as requests that fit, one after another, as kubectl applies any number
// of objects. Each request is atomic; the whole is not.
import { status } from "@grpc/grpc-js";
import { CliError } from "./client.js";

/** A segment as a request's store operations count it: its own key, its proxy's, and the proxy it leaves. */
export interface Placed<T> {
  readonly item: T;
  readonly proxy: string;
  /** The proxy it is stored on now, when it moves from there. */
  readonly leaves?: string;
}

/** The proxy keys `placed` touch that `known` does not hold yet. */
function newKeys<T>(placed: readonly Placed<T>[], known: ReadonlySet<string>): Set<string> {
  const keys = new Set<string>();
  for (const p of placed) {
    for (const k of p.leaves === undefined ? [p.proxy] : [p.proxy, p.leaves]) if (!known.has(k)) keys.add(k);
  }
  return keys;
}

/**
 * The items in requests of at most `maxOps` store operations each (one per segment, one per proxy
 * key touched: the server's count, or more when a segment is unchanged), a proxy's segments
 * together in one request when they fit in one. Order kept within a proxy, proxies in order of
 * first appearance. A segment that cannot fit even alone goes alone (the server says why).
 */
export function splitRequests<T>(placed: readonly Placed<T>[], maxOps: number): T[][] {
  const groups = new Map<string, Placed<T>[]>();
  for (const p of placed) {
    if (!groups.has(p.proxy)) groups.set(p.proxy, []);
    groups.get(p.proxy)!.push(p);
  }
  const requests: T[][] = [];
  let items: T[] = [];
  let keys = new Set<string>();
  const close = (): void => {
    if (items.length > 0) requests.push(items);
    items = [];
    keys = new Set();
  };
  const fits = (more: readonly Placed<T>[]): boolean => items.length + keys.size + more.length + newKeys(more, keys).size <= maxOps;
  for (const group of groups.values()) {
    if (!fits(group)) close(); // a proxy's segments start a request of their own rather than straddle two
    for (const p of group) {
      if (items.length > 0 && !fits([p])) close();
      items.push(p.item);
      for (const k of newKeys([p], keys)) keys.add(k);
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
