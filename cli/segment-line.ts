// A running segment in one line of the proxy's log: where it listens and sends from, and its
// chain. Said at start for every segment, and at a reload for the segments it started.
import type { ProxySnapshot } from "../runtime/index.js";

type SegmentSnapshot = ProxySnapshot["segments"][number];

export function segmentLine(s: SegmentSnapshot): string {
  return `${s.name}: listen ${s.ports.listen}${s.ports.listenRtcp ? `/${s.ports.listenRtcp}` : ""}, egress ${s.ports.egress}, chain ${s.stages.map((t) => t.filter).join(" -> ") || "(empty)"}`;
}
