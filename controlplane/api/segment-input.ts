// What a Segment message's fields mean to the proxy's config, where the wire form needs reading:
// proto3's absent-or-zero endpoints, and legs. Shared by the server (which checks an apply with the
// proxy's own rules) and the agent (which builds the proxy's config from a snapshot), so that both
// read a message the same way.
import { parseErrorText, parseJsonText, TextLimitError, type ProxyConfigInput } from "../../runtime/index.js";
import type { ChainStage, Endpoint, Leg, Multicast, Segment, StageLimits } from "./proto.js";

type SegmentInput = NonNullable<ProxyConfigInput["segments"]>[number];
type LegInput = NonNullable<SegmentInput["legs"]>[number];
type FilterEntryInput = NonNullable<ProxyConfigInput["filters"]>[string];

/** Whether a proto3 `optional` field is set (a decoded message leaves it undefined; a JSON record may hold null). */
const isSet = <T>(v: T | null | undefined): v is T => v !== undefined && v !== null;

/**
 * A segment's `source` as the proxy's config takes it, or undefined for none: the endpoint's
 * address (port 0: any port of it; rtcp_port 0: learned), and the gate's strict, learnMs and
 * idleMs when set. A gate without an address is the proxy file's `source: { idleMs: 500 }`.
 */
export function sourceInput(seg: Segment): SegmentInput["source"] {
  const out: Record<string, unknown> = {};
  if (!isEmptyEndpoint(seg.source)) {
    const s = seg.source!;
    out.address = s.address;
    if (s.port !== 0) out.port = s.port;
    if (s.rtcpPort !== 0) out.rtcpPort = s.rtcpPort;
  }
  if (isSet(seg.sourceStrict)) out.strict = seg.sourceStrict;
  if (isSet(seg.sourceLearnMs)) out.learnMs = seg.sourceLearnMs;
  if (isSet(seg.sourceIdleMs)) out.idleMs = seg.sourceIdleMs;
  return Object.keys(out).length > 0 ? (out as SegmentInput["source"]) : undefined;
}

/** A segment's `feedbackFrom` and `symmetricRtp` as the proxy's config takes them: only what is set. */
export function feedbackInput(seg: Segment): Pick<SegmentInput, "feedbackFrom" | "symmetricRtp"> {
  return {
    ...(seg.feedbackFrom ? { feedbackFrom: seg.feedbackFrom as SegmentInput["feedbackFrom"] } : {}),
    ...(seg.symmetricRtp ? { symmetricRtp: true } : {}),
  };
}

/**
 * The source gate, feedbackFrom and symmetricRtp of a segment as stored and listed: only what is
 * set, so that a record stored before they existed compares equal (put after every older field).
 */
export function gateRecord(seg: Segment): Pick<Segment, "sourceStrict" | "sourceLearnMs" | "sourceIdleMs" | "feedbackFrom" | "symmetricRtp"> {
  return {
    ...(isSet(seg.sourceStrict) ? { sourceStrict: seg.sourceStrict } : {}),
    ...(isSet(seg.sourceLearnMs) ? { sourceLearnMs: seg.sourceLearnMs } : {}),
    ...(isSet(seg.sourceIdleMs) ? { sourceIdleMs: seg.sourceIdleMs } : {}),
    ...feedbackInput(seg),
  };
}

/** A stage's limits, only what is set; undefined when nothing is. */
export function limitsRecord(l: StageLimits | null | undefined): StageLimits | undefined {
  if (!l) return undefined;
  const out: StageLimits = {
    ...(isSet(l.generatedPerSecond) ? { generatedPerSecond: l.generatedPerSecond } : {}),
    ...(isSet(l.timerFiresPerSecond) ? { timerFiresPerSecond: l.timerFiresPerSecond } : {}),
  };
  return Object.keys(out).length > 0 ? out : undefined;
}

/**
 * Parses a config object given as JSON text ("" = {}), held to a config file's limits (no key twice, no
 * deep nesting: runtime/config/text-limits.ts); pushes `${at}: ...` to `issues` and
 * returns undefined when it is not a JSON object.
 */
export function parseConfigJson(text: string | undefined, at: string, issues: string[]): Record<string, unknown> | undefined {
  if (text === undefined || text.trim() === "") return {};
  let value: unknown;
  try {
    value = parseJsonText(text);
  } catch (err) {
    issues.push(err instanceof TextLimitError ? `${at}: ${err.message}` : `${at}: not valid JSON (${parseErrorText(err)})`);
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    issues.push(`${at}: must be a JSON object`);
    return undefined;
  }
  return value as Record<string, unknown>;
}

/**
 * What a stage puts in its filter entry besides the module (the proxy file's
 * filters.<name>.config, .limits, .maxMemoryPages): only what is set, the root config parsed.
 * A root config that is not a JSON object is pushed to `issues` as `${at}.root_config_json`.
 */
export function stageEntryInput(stage: ChainStage, at: string, issues: string[]): Omit<FilterEntryInput, "path" | "sha256"> {
  const config = parseConfigJson(stage.rootConfigJson, `${at}.root_config_json`, issues) ?? {};
  const limits = limitsRecord(stage.limits);
  return { config, ...(limits ? { limits } : {}), ...(isSet(stage.maxMemoryPages) ? { maxMemoryPages: stage.maxMemoryPages } : {}) };
}

/** An endpoint message that is absent, or present with every field at its default. */
export function isEmptyEndpoint(e: Endpoint | null | undefined): boolean {
  return !e || (e.address === "" && e.port === 0 && e.rtcpPort === 0 && !e.interface);
}

/** An endpoint as stored: `interface`, `ssrc` and `payloadType` only when set, so that a record stored before they existed compares equal. */
export function endpointCopy(e: Endpoint): Endpoint {
  return { address: e.address, port: e.port, rtcpPort: e.rtcpPort, ...(e.interface ? { interface: e.interface } : {}), ...translation(e) };
}

/** A destination's translation, only what is set. */
function translation(e: Endpoint): { ssrc?: number; payloadType?: number } {
  return { ...(e.ssrc !== undefined && e.ssrc !== null ? { ssrc: e.ssrc } : {}), ...(e.payloadType !== undefined && e.payloadType !== null ? { payloadType: e.payloadType } : {}) };
}

/** A segment destination as the proxy's config takes it. */
export function destinationInput(d: Endpoint): NonNullable<SegmentInput["destinations"]>[number] {
  return { address: d.address, port: d.port, ...(d.rtcpPort !== 0 ? { rtcpPort: d.rtcpPort } : {}), ...translation(d) };
}

/** Only a segment destination is translated: an `ssrc` or `payload_type` elsewhere is pushed to `issues`. */
export function noTranslation(e: Endpoint | null | undefined, path: string, issues: string[]): void {
  if (e && Object.keys(translation(e)).length > 0) issues.push(`${path}: only a segment destination takes ssrc and payload_type; leave them unset`);
}

/** Only a listen endpoint joins a multicast group: an `interface` elsewhere is pushed to `issues`. */
export function noInterface(e: Endpoint | null | undefined, path: string, issues: string[]): void {
  if (e?.interface) issues.push(`${path}.interface: only a listen endpoint joins a multicast group; leave it ""`);
}

/** A segment's multicast message as the proxy's config takes it (absent: the defaults). */
export function multicastInput(m: Multicast | null | undefined): SegmentInput["multicast"] {
  if (!m) return undefined;
  return { ...(isSet(m.ttl) ? { ttl: m.ttl } : {}), ...(m.interface ? { interface: m.interface } : {}), loopback: m.loopback ?? false };
}

/** A multicast message as stored and listed: null for the defaults (TTL 16, no interface, loopback off). */
export function multicastRecord(m: Multicast | null | undefined): Multicast | null {
  if (!m || ((m.ttl ?? 16) === 16 && !m.interface && !m.loopback)) return null;
  return { ttl: m.ttl ?? 16, interface: m.interface, loopback: m.loopback ?? false };
}

/**
 * A leg's own multicast message, only what is set (unset ttl and loopback are the segment's,
 * interface "" is legMulticast's rule: runtime/config/proxy-config.ts); null when nothing is, so
 * that a leg stored before it existed compares equal. As stored, and as the proxy's config takes it.
 */
export function legMulticastRecord(m: Multicast | null | undefined): Multicast | null {
  if (!m) return null;
  const out = {
    ...(isSet(m.ttl) ? { ttl: m.ttl } : {}),
    ...(m.interface ? { interface: m.interface } : {}),
    ...(isSet(m.loopback) ? { loopback: m.loopback } : {}),
  };
  return Object.keys(out).length > 0 ? { interface: "", ...out } : null;
}

/**
 * A leg as the proxy's config takes it. A leg carries no RTCP, so an rtcp_port other than 0 is
 * pushed to `issues` with its path (`${at}.listen.rtcp_port`); everything else is left to the
 * proxy's own rules (validateProxyConfig), which name the field.
 */
export function legInput(l: Leg, at: string, issues: string[]): LegInput {
  const noRtcp = (e: Endpoint, path: string): void => {
    if (e.rtcpPort !== 0) issues.push(`${at}.${path}.rtcp_port: a leg carries no RTCP; leave it 0`);
  };
  const out: LegInput = { name: l.name };
  if (l.portOffset !== undefined) out.portOffset = l.portOffset;
  if (!isEmptyEndpoint(l.listen)) {
    const listen = l.listen!;
    noRtcp(listen, "listen");
    out.listen = { ...(listen.address !== "" ? { address: listen.address } : {}), port: listen.port, ...(listen.interface ? { interface: listen.interface } : {}) };
  }
  if (l.receive !== undefined) out.receive = l.receive;
  if (l.destinations.length > 0) {
    l.destinations.forEach((d, j) => {
      noRtcp(d, `destinations[${j}]`);
      noInterface(d, `${at}.destinations[${j}]`, issues);
      noTranslation(d, `${at}.destinations[${j}]`, issues);
    });
    out.destinations = l.destinations.map((d) => ({ address: d.address, port: d.port }));
  }
  if (!isEmptyEndpoint(l.egress)) {
    noRtcp(l.egress!, "egress");
    noInterface(l.egress, `${at}.egress`, issues);
    noTranslation(l.egress, `${at}.egress`, issues);
    out.egress = { address: l.egress!.address, port: l.egress!.port };
  }
  if (l.send !== undefined) out.send = l.send;
  if (l.sourceAddress) out.source = { address: l.sourceAddress };
  if (l.redundant) out.redundant = true;
  const multicast = legMulticastRecord(l.multicast);
  if (multicast) out.multicast = { ...(isSet(multicast.ttl) ? { ttl: multicast.ttl } : {}), ...(multicast.interface ? { interface: multicast.interface } : {}), ...(isSet(multicast.loopback) ? { loopback: multicast.loopback } : {}) };
  return out;
}

/**
 * A leg as stored and listed: field by field (a decoded message also holds proto3's virtual oneof
 * fields), absent endpoints as null, receive and send spelled out (unset is true), so that a leg
 * applied again with the defaults written out is unchanged.
 */
export function legRecord(l: Leg): Leg {
  return {
    name: l.name,
    ...(l.portOffset !== undefined ? { portOffset: l.portOffset } : {}),
    listen: isEmptyEndpoint(l.listen) ? null : endpointCopy(l.listen!),
    receive: l.receive ?? true,
    destinations: l.destinations.map(endpointCopy),
    egress: isEmptyEndpoint(l.egress) ? null : endpointCopy(l.egress!),
    send: l.send ?? true,
    ...(l.sourceAddress ? { sourceAddress: l.sourceAddress } : {}),
    ...(l.redundant ? { redundant: true } : {}),
    // last, and only when set: a leg stored before it existed compares equal
    ...(legMulticastRecord(l.multicast) ? { multicast: legMulticastRecord(l.multicast) } : {}),
  };
}
