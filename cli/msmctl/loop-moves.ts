// Which segments of an apply sent in parts must be stored no later than which, for the proxy's
// loop rule (a request is refused when packets would come back to a segment through others of
// its proxy). A segment as the files have it that sends, directly or through segments the files
// leave alone, into a segment of the files as it is stored now, may close a ring that neither
// what is stored nor the whole files have (cam-1 now sending to cam-2, which still sends to
// cam-1): the segment it reaches must be stored first, or in the same request. Any ring of an
// order that keeps to this has a segment of the files in it as stored and one as the files have
// it, so somewhere one of these reaches one of those through untouched segments: none can.
import { canonicalAddress, isMulticast, type BindEndpoint } from "../../runtime/index.js";
import { isEmptyEndpoint } from "../../controlplane/api/segment-input.js";
import type { Segment } from "../../controlplane/api/proto.js";

/** Where a segment receives: its listen port, RTCP at port + 1, its legs'. */
function receives(seg: Segment): BindEndpoint[] {
  if (isEmptyEndpoint(seg.listen)) return [];
  const listen = seg.listen!;
  const out: BindEndpoint[] = [{ address: listen.address, port: listen.port }];
  if (!seg.rtcpMux && listen.port < 65535) out.push({ address: listen.address, port: listen.port + 1 });
  for (const l of seg.legs) {
    if (l.receive === false) continue;
    if (!isEmptyEndpoint(l.listen)) out.push({ address: l.listen!.address || listen.address, port: l.listen!.port });
    else if (l.portOffset !== undefined) out.push({ address: listen.address, port: listen.port + l.portOffset });
  }
  return out;
}

/** Where a segment sends: each destination, its RTCP (rtcpPort, muxed or port + 1), each sending leg's. */
function sends(seg: Segment): BindEndpoint[] {
  const out: BindEndpoint[] = [];
  for (const d of seg.destinations) {
    out.push({ address: d.address, port: d.port });
    out.push({ address: d.address, port: d.rtcpPort !== 0 ? d.rtcpPort : seg.rtcpMux ? d.port : d.port + 1 });
  }
  for (const l of seg.legs) {
    if (l.send === false) continue;
    if (l.destinations.length > 0) out.push(...l.destinations.map((d) => ({ address: d.address, port: d.port })));
    else if (l.portOffset !== undefined) out.push(...seg.destinations.map((d) => ({ address: d.address, port: d.port + l.portOffset! })));
  }
  return out;
}

/** Whether a datagram sent to `to` reaches a socket bound to `bind` on the proxy's host, as the control plane judges it (loopback is the host's; a group reaches its own bind). */
function delivers(to: BindEndpoint, bind: BindEndpoint): boolean {
  if (to.port !== bind.port || to.port === 0) return false;
  const dest = canonicalAddress(to.address);
  const at = canonicalAddress(bind.address);
  if (dest === at) return true;
  if (isMulticast(to.address)) return false;
  const loopback = dest.startsWith("127.") || dest === "::1";
  return loopback && ((at === "0.0.0.0" && !dest.includes(":")) || (at === "::" && dest === "::1"));
}

interface Receiver {
  readonly bind: BindEndpoint;
  /** The segment of the files (its index) as stored now, or a stored segment the files leave alone. */
  readonly applied?: number;
  readonly untouched?: Segment;
}

/**
 * For each segment of `applied` (by index), the indices of the others in it whose stored state
 * its packets reach on its proxy, directly or through stored segments `applied` does not name.
 */
export function loopDependencies(applied: readonly Segment[], stored: readonly Segment[]): number[][] {
  const position = new Map(applied.map((s, i) => [s.name, i]));
  // each proxy's stored receivers, by port
  const byProxy = new Map<string, Map<number, Receiver[]>>();
  for (const s of stored) {
    if (!byProxy.has(s.proxy)) byProxy.set(s.proxy, new Map());
    const ports = byProxy.get(s.proxy)!;
    const index = position.get(s.name);
    for (const bind of receives(s)) {
      if (!ports.has(bind.port)) ports.set(bind.port, []);
      ports.get(bind.port)!.push(index === undefined ? { bind, untouched: s } : { bind, applied: index });
    }
  }
  return applied.map((seg, i) => {
    const ports = byProxy.get(seg.proxy);
    const needs = new Set<number>();
    if (!ports) return [];
    const passed = new Set<Segment>();
    const targets = sends(seg);
    while (targets.length > 0) {
      const to = targets.pop()!;
      for (const r of ports.get(to.port) ?? []) {
        if (!delivers(to, r.bind)) continue;
        if (r.applied !== undefined) {
          if (r.applied !== i) needs.add(r.applied);
        } else if (!passed.has(r.untouched!)) {
          passed.add(r.untouched!);
          targets.push(...sends(r.untouched!));
        }
      }
    }
    return [...needs].sort((a, b) => a - b);
  });
}
