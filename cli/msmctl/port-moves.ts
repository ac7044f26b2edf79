// Which segments of an apply sent in parts must be stored no later than which. Each request is
// checked against what its proxy runs then: a segment that takes a port another segment of the
// manifest holds now (and gives up in the manifest) is refused until that one has moved, so the
// one that frees the port must be in the same request or an earlier one. A swap or a cycle of
// such moves can only go in one request.
import { endpointsClash, type BindEndpoint } from "../../runtime/index.js";
import { isEmptyEndpoint } from "../../controlplane/api/segment-input.js";
import type { Segment } from "../../controlplane/api/proto.js";

/** The ports a segment binds that its fields name: the proxy's own list (listen, RTCP, egress, legs), read from the API's Segment. */
export function segmentBinds(seg: Segment): BindEndpoint[] {
  const out: BindEndpoint[] = [];
  const listen = isEmptyEndpoint(seg.listen) ? undefined : seg.listen!;
  if (listen) {
    out.push({ address: listen.address, port: listen.port });
    if (!seg.rtcpMux && listen.port < 65535) out.push({ address: listen.address, port: listen.port + 1 });
  }
  if (seg.egress && !isEmptyEndpoint(seg.egress) && seg.egress.port !== 0) {
    out.push({ address: seg.egress.address, port: seg.egress.port });
    if (!seg.rtcpMux) out.push({ address: seg.egress.address, port: seg.egress.port + 1 });
  }
  for (const l of seg.legs) {
    if (l.receive !== false) {
      if (!isEmptyEndpoint(l.listen)) out.push({ address: l.listen!.address || (listen?.address ?? ""), port: l.listen!.port });
      else if (l.portOffset !== undefined && listen) out.push({ address: listen.address, port: listen.port + l.portOffset });
    }
    if (l.send !== false && l.egress && !isEmptyEndpoint(l.egress) && l.egress.port !== 0) out.push({ address: l.egress.address, port: l.egress.port });
  }
  return out;
}

/**
 * For each segment of `applied` (by index), the indices of the others in it that hold now, on the
 * proxy it is to run on, a port it takes: those must be stored in the same request or before.
 * `stored`: the segments as the control plane holds them now.
 */
export function portDependencies(applied: readonly Segment[], stored: readonly Segment[]): number[][] {
  const position = new Map(applied.map((s, i) => [s.name, i]));
  // the binds of the stored segments the apply changes, by port number
  const held = new Map<number, { index: number; proxy: string; bind: BindEndpoint }[]>();
  for (const s of stored) {
    const index = position.get(s.name);
    if (index === undefined) continue; // a segment the apply leaves as it is: a clash with it is the whole apply's
    for (const bind of segmentBinds(s)) {
      if (!held.has(bind.port)) held.set(bind.port, []);
      held.get(bind.port)!.push({ index, proxy: s.proxy, bind });
    }
  }
  return applied.map((seg, i) => {
    const needs = new Set<number>();
    for (const bind of segmentBinds(seg)) {
      for (const h of held.get(bind.port) ?? []) {
        if (h.index !== i && h.proxy === seg.proxy && endpointsClash(h.bind, bind)) needs.add(h.index);
      }
    }
    return [...needs].sort((a, b) => a - b);
  });
}
