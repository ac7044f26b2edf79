// A config whose segments send packets back into themselves: a destination that is the segment's
// own listen socket, or a ring of segments each sending to the next one's. One packet would then
// circle at the rate the proxy can forward (an operator's typo, 127.0.0.1:5004 for 6004, made one
// packet 90,000 a second), and the source gate would learn the proxy's own egress as the sender.
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { canonicalAddress, type Endpoint } from "./endpoints.js";
import { isMulticast } from "./multicast.js";

/**
 * What a segment's sockets carry. Media (RTP, and what legs carry) that arrives goes out to the
 * media destinations and legs; RTCP goes out to the destinations' RTCP ports. An rtcpMux socket
 * carries both, told apart per packet. So RTCP that lands on a media socket goes out once as
 * media and stops (no loop), while media landing on a media socket of its own segment circles.
 */
export type Channel = "media" | "rtcp";

/** A segment as far as loops go: where it receives, where it sends, on which channel. */
export interface LoopNode {
  readonly name: string;
  /** `what`: the socket, as the segment's config calls it ("listen", "legs[0] (fec) listen"); `carries` "both" for rtcpMux. */
  readonly receives: readonly { readonly endpoint: Endpoint; readonly what: string; readonly carries: Channel | "both" }[];
  /** `field`: the config field that sends there ("segments[2].destinations[0]"); `loopback`: multicast sent with loopback on. */
  readonly sends: readonly { readonly endpoint: Endpoint; readonly field: string; readonly channel: Channel; readonly loopback: boolean }[];
}

/**
 * Which addresses are the proxy host's: "this host" (validated where the proxy runs: loopback and
 * every interface's) or "unknown" (a control plane validating for a proxy elsewhere: loopback only).
 */
export type HostAddresses = "this host" | "unknown";

interface Edge {
  readonly to: number;
  readonly field: string;
  readonly what: string;
  readonly endpoint: Endpoint;
}

/** The problems, one per loop, each naming the destination that closes it. */
export function forwardingLoopProblems(segments: readonly LoopNode[], host: HostAddresses = "this host"): string[] {
  const isLocal = localAddressTest(host);
  const receivers = new Map<number, { endpoint: Endpoint; what: string; carries: Channel | "both"; segment: number }[]>();
  segments.forEach((seg, i) => {
    for (const r of seg.receives) {
      let list = receivers.get(r.endpoint.port);
      if (!list) receivers.set(r.endpoint.port, (list = []));
      list.push({ ...r, segment: i });
    }
  });
  // a node per segment and channel (2i media, 2i + 1 RTCP); an edge where what leaves on a
  // channel lands on a socket of this proxy, on the channel that socket reads it as
  const node = (segment: number, channel: Channel): number => 2 * segment + (channel === "rtcp" ? 1 : 0);
  const edges: Edge[][] = Array.from({ length: 2 * segments.length }, () => []);
  segments.forEach((seg, i) => {
    for (const t of seg.sends) {
      for (const r of receivers.get(t.endpoint.port) ?? []) {
        if (!delivers(t.endpoint, t.loopback, r.endpoint, isLocal)) continue;
        const lands = r.carries === "both" ? t.channel : r.carries;
        edges[node(i, t.channel)]!.push({ to: node(r.segment, lands), field: t.field, what: r.what, endpoint: t.endpoint });
      }
    }
  });
  const problems = new Map<string, string>(); // by destination: a typo is one line, whichever channel found it
  // depth-first, iterative (a chain of 10,000 segments must not exhaust the stack)
  const state = new Uint8Array(edges.length); // 0 unseen, 1 on the path, 2 done
  for (let start = 0; start < edges.length; start++) {
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
        const field = edge.field.replace(/ \(.*$/, "");
        if (!problems.has(field)) problems.set(field, loopText(segments, path.map((p) => p.node >> 1), edge));
      }
    }
  }
  return [...problems.values()];
}

function loopText(segments: readonly LoopNode[], path: number[], edge: Edge): string {
  const at = `${edge.endpoint.address}:${edge.endpoint.port}`;
  const to = edge.to >> 1;
  const ring = [...path.slice(path.indexOf(to)), to].filter((k, i, all) => i === 0 || all[i - 1] !== k).map((k) => segments[k]!.name);
  if (ring.length <= 2) {
    return `${edge.field}: ${at} is this segment's own ${edge.what}: every packet would come back to it; did you mean another port?`;
  }
  const shown = ring.length <= 8 ? ring : [...ring.slice(0, 3), `(${ring.length - 6} more)`, ...ring.slice(-3)];
  return `${edge.field}: ${at} is segments[${to}].${edge.what} ('${segments[to]!.name}'), which closes a loop: ${shown.join(" -> ")}`;
}

/** True when a datagram sent to `to` reaches a socket bound to `bind` on this host. */
function delivers(to: Endpoint, loopback: boolean, bind: Endpoint, isLocal: (address: string) => boolean): boolean {
  if (to.port !== bind.port || to.port === 0 || isIP(to.address) !== isIP(bind.address)) return false;
  const dest = canonicalAddress(to.address);
  const at = canonicalAddress(bind.address);
  // a group reaches this host's sockets on it only with multicast loopback on
  if (isMulticast(to.address)) return loopback && dest === at;
  if (dest === at) return true;
  return (at === "0.0.0.0" || at === "::") && isLocal(dest);
}

/** Whether an address (canonical) is the proxy host's: 127/8, ::1, or (on that host) an interface's. */
function localAddressTest(host: HostAddresses): (address: string) => boolean {
  const own = new Set<string>();
  if (host === "this host") for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) own.add(canonicalAddress(a.address));
  return (a) => a.startsWith("127.") || a === "::1" || own.has(a);
}
