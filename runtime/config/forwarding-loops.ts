// A config whose segments send packets back into themselves: a destination that is the segment's
// own listen socket, or a ring of segments each sending to the next one's. One packet would then
// circle at the rate the proxy can forward (an operator's typo, 127.0.0.1:5004 for 6004, made one
// packet 90,000 a second), and the source gate would learn the proxy's own egress as the sender.
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { canonicalAddress, type Endpoint } from "./endpoints.js";
import { isMulticast } from "./multicast.js";

/** A segment as far as loops go: where it receives, where it sends. */
export interface LoopNode {
  readonly name: string;
  /** `what`: the socket, as the segment's config calls it ("listen", "legs[0] (fec) listen"). */
  readonly receives: readonly { readonly endpoint: Endpoint; readonly what: string }[];
  /** `field`: the config field that sends there ("segments[2].destinations[0]"). */
  readonly sends: readonly { readonly endpoint: Endpoint; readonly field: string }[];
}

/** The problems, one per loop, each naming the destination that closes it. */
export function forwardingLoopProblems(segments: readonly LoopNode[]): string[] {
  const isLocal = localAddressTest();
  const receivers = new Map<number, { endpoint: Endpoint; what: string; segment: number }[]>();
  segments.forEach((seg, i) => {
    for (const r of seg.receives) {
      let list = receivers.get(r.endpoint.port);
      if (!list) receivers.set(r.endpoint.port, (list = []));
      list.push({ ...r, segment: i });
    }
  });
  // edges: segment i sends into segment j's socket (field names the destination)
  const edges = segments.map((seg) => {
    const out: { to: number; field: string; what: string; endpoint: Endpoint }[] = [];
    for (const t of seg.sends) {
      for (const r of receivers.get(t.endpoint.port) ?? []) {
        if (delivers(t.endpoint, r.endpoint, isLocal)) out.push({ to: r.segment, field: t.field, what: r.what, endpoint: t.endpoint });
      }
    }
    return out;
  });
  const problems: string[] = [];
  // depth-first, iterative (a chain of 10,000 segments must not exhaust the stack)
  const state = new Uint8Array(segments.length); // 0 unseen, 1 on the path, 2 done
  for (let start = 0; start < segments.length; start++) {
    if (state[start] !== 0) continue;
    const path: { node: number; next: number }[] = [{ node: start, next: 0 }];
    state[start] = 1;
    while (path.length > 0) {
      const top = path[path.length - 1]!;
      const edge = edges[top.node]![top.next++];
      if (!edge) {
        state[top.node] = 2;
        path.pop();
        continue;
      }
      if (state[edge.to] === 0) {
        state[edge.to] = 1;
        path.push({ node: edge.to, next: 0 });
      } else if (state[edge.to] === 1) {
        problems.push(loopText(segments, path.map((p) => p.node), edge));
      }
    }
  }
  return problems;
}

function loopText(segments: readonly LoopNode[], path: number[], edge: { to: number; field: string; what: string; endpoint: Endpoint }): string {
  const at = `${edge.endpoint.address}:${edge.endpoint.port}`;
  if (path[path.length - 1] === edge.to) {
    return `${edge.field}: ${at} is this segment's own ${edge.what}: every packet would come back to it; did you mean another port?`;
  }
  const ring = [...path.slice(path.indexOf(edge.to)), edge.to].map((k) => segments[k]!.name);
  const shown = ring.length <= 8 ? ring : [...ring.slice(0, 3), `(${ring.length - 6} more)`, ...ring.slice(-3)];
  return `${edge.field}: ${at} is segments[${edge.to}].${edge.what} ('${segments[edge.to]!.name}'), which closes a loop: ${shown.join(" -> ")}`;
}

/** True when a datagram sent to `to` reaches a socket bound to `bind` on this host. */
function delivers(to: Endpoint, bind: Endpoint, isLocal: (address: string) => boolean): boolean {
  if (to.port !== bind.port || to.port === 0 || isIP(to.address) !== isIP(bind.address)) return false;
  if (isMulticast(to.address)) return false; // sent with multicast loopback off: not to this host's sockets
  const dest = canonicalAddress(to.address);
  const at = canonicalAddress(bind.address);
  if (dest === at) return true;
  return (at === "0.0.0.0" || at === "::") && isLocal(dest);
}

/** Whether an address (canonical) is this host's: 127/8, ::1, or an interface's. */
function localAddressTest(): (address: string) => boolean {
  const own = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) own.add(canonicalAddress(a.address));
  return (a) => a.startsWith("127.") || a === "::1" || own.has(a);
}
