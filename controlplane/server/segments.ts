// ApplySegments and DeleteSegments as plans: what to check, what to write, guarded by which
// revisions. Segment rules are the runtime's own: each proxy's resulting set of segments is
// converted to the runtime's config and run through validateProxyConfig (ports used twice,
// names, addresses, failure policy, chain length...); this file adds only what the runtime cannot
// know (the proxy a segment belongs to, the filter registry, JSON text in config_json and
// root_config_json, a stage's filter entry settings checked alone) and maps the
// runtime's field paths back to the request's (`segments[2].listen.port`, proto field names).
import { posix } from "node:path";
import { ConfigError, validateProxyConfig, type ProxyConfigInput } from "../../runtime/index.js";
import type { ChainStage, Endpoint, FailurePolicy, Segment } from "../api/proto.js";
import { clockRatesOf } from "../api/proto.js";
import {
  destinationInput, endpointCopy, feedbackInput, gateRecord, isEmptyEndpoint, legInput, legRecord, limitsRecord, multicastInput, multicastRecord,
  noInterface, noTranslation, parseConfigJson, sourceInput, stageEntryInput,
} from "../api/segment-input.js";
import type { Compare, Op } from "../store/index.js";
import { REDACTED, redactSecrets, secretValues } from "../security/secrets.js";
import { invalid } from "./errors.js";
import { proxyKey, segmentKey } from "./keys.js";
import type { DesiredState } from "./state.js";

type SegmentInput = NonNullable<ProxyConfigInput["segments"]>[number];

/** Node ids are the name part of a proxy's SPIFFE ID. */
export const NODE_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** A Segment as stored: the request's fields, config_json canonical, no revision. */
export type SegmentRecord = Omit<Segment, "revision">;

export interface ApplyPlan {
  readonly created: string[];
  readonly configured: string[];
  readonly unchanged: string[];
  readonly compares: Compare[];
  readonly ops: Op[];
}

export interface DeletePlan {
  readonly deleted: string[];
  readonly compares: Compare[];
  readonly ops: Op[];
}

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function endpointRecord(e: Endpoint | null | undefined): Endpoint | null {
  return isEmptyEndpoint(e) ? null : endpointCopy(e!);
}

function failureRecord(f: FailurePolicy | null | undefined): FailurePolicy | null {
  if (!f) return null;
  return { mode: f.mode, restartBackoffMs: f.restartBackoffMs, maxBackoffMs: f.maxBackoffMs, maxFailures: f.maxFailures };
}

/**
 * Checks a stage's filter entry settings (root config, limits, maxMemoryPages) with the proxy's own
 * rules for a filter entry, and names each problem by the stage's fields (`${at}.limits.generated_per_second`).
 */
function checkStageEntry(stage: ChainStage, at: string, issues: string[]): void {
  const entry = stageEntryInput(stage, at, issues); // a root config that is not an object is checked as {}: the rest still is
  try {
    validateProxyConfig({ filters: { stage: { path: "registry", ...entry } }, segments: [] }, "/", "request", "unknown");
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const issue of err.issues) {
      issues.push(issue.replace(/^filters\.stage\.([A-Za-z.]+)/, (_m, path: string) =>
        `${at}.${path.replace(/^config\b/, "root_config_json").replace(/^limits\.([A-Za-z]+)/, (_x, f: string) => `limits.${snake(f)}`).replace(/^maxMemoryPages/, "max_memory_pages")}`));
    }
  }
}

/** The placeholder of a listing that hides secrets, given back as a value: refused, naming where. */
function redactedIssues(config: Record<string, unknown> | undefined, at: string): string[] {
  return secretValues(config).filter((secret) => secret.value === REDACTED).map((secret) =>
    `${at}: '${secret.path.slice(1)}' is the placeholder ${REDACTED} of a listing that hides secrets; give the value itself, a {"$file": PATH} or {"$env": NAME} reference the proxy resolves, or list with show_secrets (msmctl --show-secrets)`);
}

/**
 * `$file` references to a relative path, refused naming where. A proxy resolves one against its
 * config's folder, which under a control plane is its state directory: `{"$file": "last-good.json"}`
 * would hand a filter the node's saved snapshot (its other segments' keys), and a segment written for
 * a proxy file would read something else than meant. A pushed segment names an absolute path.
 */
function relativeFileIssues(value: unknown, at: string, path = ""): string[] {
  if (typeof value !== "object" || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) => {
    const here = Array.isArray(value) ? `${path}[${k}]` : `${path}.${k}`;
    if (typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 1) {
      const target = (v as Record<string, unknown>).$file;
      if (typeof target === "string" && target !== "" && !posix.isAbsolute(target)) {
        return [`${at}: '${here.replace(/^\./, "")}' is a $file reference to a relative path (${target}); under a control plane give an absolute path on the proxy's node (a relative one would be read from the proxy's state directory)`];
      }
    }
    return relativeFileIssues(v, at, here);
  });
}

/**
 * Checks what only the control plane knows about one requested segment and converts it to the
 * runtime's segment config and the stored record.
 */
function checkSegment(seg: Segment, at: string, state: DesiredState, issues: string[]): { input: SegmentInput; record: SegmentRecord } {
  if (seg.proxy === "") issues.push(`${at}.proxy: required (the node id of the proxy that runs the segment)`);
  else if (!NODE_ID.test(seg.proxy)) issues.push(`${at}.proxy: '${seg.proxy}' is not a node id (1-128 letters, digits, '.', '_' or '-')`);

  const input: Record<string, unknown> = { name: seg.name, rtcpMux: seg.rtcpMux };
  if (!isEmptyEndpoint(seg.listen)) {
    const l = seg.listen!;
    input.listen = { address: l.address, port: l.port, ...(l.interface ? { interface: l.interface } : {}) };
    noTranslation(l, `${at}.listen`, issues);
    if (l.rtcpPort !== 0 && l.rtcpPort !== (seg.rtcpMux ? l.port : l.port + 1)) {
      issues.push(`${at}.listen.rtcp_port: the proxy takes RTCP on port + 1 (or on port itself with rtcp_mux); leave it 0`);
    }
  }
  if (!isEmptyEndpoint(seg.egress)) {
    const e = seg.egress!;
    input.egress = { address: e.address, port: e.port };
    noInterface(e, `${at}.egress`, issues);
    noTranslation(e, `${at}.egress`, issues);
    if (e.rtcpPort !== 0 && e.rtcpPort !== (seg.rtcpMux ? e.port : e.port + 1)) {
      issues.push(`${at}.egress.rtcp_port: the proxy sends RTCP from port + 1 (or from port itself with rtcp_mux); leave it 0`);
    }
  }
  input.destinations = seg.destinations.map(destinationInput);
  seg.destinations.forEach((d, k) => noInterface(d, `${at}.destinations[${k}]`, issues));
  input.legs = seg.legs.map((l, k) => legInput(l, `${at}.legs[${k}]`, issues));
  input.multicast = multicastInput(seg.multicast);
  const clockRates = clockRatesOf(seg);
  if (clockRates) input.clockRates = clockRates;
  if (!isEmptyEndpoint(seg.source)) {
    noInterface(seg.source, `${at}.source`, issues);
    noTranslation(seg.source, `${at}.source`, issues);
  }
  const source = sourceInput(seg);
  if (source) input.source = source;
  Object.assign(input, feedbackInput(seg));
  if (seg.failure) {
    // proto3 has no "unset" for scalars: 0 and "" mean the runtime's default
    const f = seg.failure;
    input.failure = {
      mode: f.mode === "" ? undefined : f.mode,
      restartBackoffMs: f.restartBackoffMs === 0 ? undefined : f.restartBackoffMs,
      maxBackoffMs: f.maxBackoffMs === 0 ? undefined : f.maxBackoffMs,
      maxFailures: f.maxFailures === 0 ? undefined : f.maxFailures,
    };
  }
  const chain = seg.chain.map((stage, j) => {
    const where = `${at}.chain[${j}]`;
    if (stage.filter !== "" && !state.resolve(stage.filter, stage.version)) {
      const known = [...(state.filters.get(stage.filter)?.keys() ?? [])];
      const hint = known.length > 0 ? ` (pushed versions: ${known.join(", ")})` : ` (push it first: msmctl filter push ${stage.filter}@VERSION FILE.wasm)`;
      issues.push(`${where}.filter: unknown filter '${stage.filter}${stage.version !== "" ? `@${stage.version}` : ""}'${hint}`);
    }
    const config = parseConfigJson(stage.configJson, `${where}.config_json`, issues);
    issues.push(...redactedIssues(config, `${where}.config_json`), ...relativeFileIssues(config, `${where}.config_json`));
    checkStageEntry(stage, where, issues);
    const rootConfig = parseConfigJson(stage.rootConfigJson, `${where}.root_config_json`, []);
    issues.push(...redactedIssues(rootConfig, `${where}.root_config_json`), ...relativeFileIssues(rootConfig, `${where}.root_config_json`));
    const limits = limitsRecord(stage.limits);
    const record: ChainStage = { filter: stage.filter, version: stage.version, configJson: config ? JSON.stringify(config) : stage.configJson };
    // only what is set, so that a stage stored before these existed compares equal
    if (stage.rootConfigJson && stage.rootConfigJson.trim() !== "") record.rootConfigJson = rootConfig ? JSON.stringify(rootConfig) : stage.rootConfigJson;
    if (limits) record.limits = limits;
    if (stage.maxMemoryPages !== undefined && stage.maxMemoryPages !== null) record.maxMemoryPages = stage.maxMemoryPages;
    return { input: { filter: stage.filter, config: config ?? {} }, record };
  });
  input.chain = chain.map((c) => c.input);
  const record: SegmentRecord = {
    name: seg.name,
    proxy: seg.proxy,
    listen: endpointRecord(seg.listen),
    rtcpMux: seg.rtcpMux,
    egress: endpointRecord(seg.egress),
    destinations: seg.destinations.map(endpointCopy),
    source: endpointRecord(seg.source),
    chain: chain.map((c) => c.record),
    failure: failureRecord(seg.failure),
    // last: state.ts gives a record stored before legs existed `legs: []` at the end, so that it compares equal to this
    legs: seg.legs.map(legRecord),
    // after legs, and only when not the defaults: a record stored before multicast existed compares equal
    ...(multicastRecord(seg.multicast) ? { multicast: multicastRecord(seg.multicast) } : {}),
    // likewise: only when given
    ...(clockRates ? { clockRates } : {}),
    // the source gate, feedbackFrom and symmetricRtp: likewise
    ...gateRecord(seg),
  };
  return { input: input as SegmentInput, record };
}

/** The runtime's config input for a stored segment (already validated when it was applied). */
function storedInput(seg: Segment, state: DesiredState): SegmentInput {
  return checkSegment(seg, "", state, []).input;
}

/**
 * Runs the runtime's validation over one proxy's resulting set of segments and returns its
 * issues with paths rewritten: `segments[k]` of the per-proxy list becomes the request's
 * `segments[i]`, or `segment 'name'` for a stored segment the request does not touch.
 */
function validateProxySet(inputs: readonly SegmentInput[], origin: readonly string[]): string[] {
  const filters: Record<string, { path: string }> = {};
  for (const seg of inputs) for (const stage of seg.chain ?? []) if (stage.filter !== "") filters[stage.filter] = { path: "registry" };
  try {
    validateProxyConfig({ filters, segments: inputs as SegmentInput[] }, "/", "request", "unknown"); // the proxy's addresses are not this host's
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const rewrite = (text: string): string =>
      text.replace(/segments\[(\d+)\]((?:\.[A-Za-z]+|\[\d+\])*)/g, (_m, k: string, rest: string) => {
        const path = rest
          .replace(/(\.chain\[\d+\])\.config$/, "$1.configJson")
          .replace(/^\.source\.(strict|learnMs|idleMs)$/, (_x, f: string) => `.source${f[0]!.toUpperCase()}${f.slice(1)}`) // Segment.source_strict, ...
          .replace(/\.([A-Za-z]+)/g, (_x, f: string) => `.${snake(f)}`);
        const where = origin[Number(k)]!;
        return where.startsWith("segments[") ? `${where}${path}` : `${where}${path === "" ? "" : ` ${path.slice(1)}`}`;
      });
    // a filter name the runtime refuses cannot be in the registry: already reported as unknown
    return err.issues.filter((i) => !i.startsWith("filters.")).map(rewrite);
  }
}

/** Plans ApplySegments against `state`; throws INVALID_ARGUMENT naming every bad field. */
export function planApply(segments: readonly Segment[], state: DesiredState): ApplyPlan {
  if (segments.length === 0) throw invalid(["segments: nothing to apply"]);
  const issues: string[] = [];
  const firstIndex = new Map<string, number>();
  const checked = segments.map((seg, i) => {
    const at = `segments[${i}]`;
    const seen = firstIndex.get(seg.name);
    if (seen !== undefined && seg.name !== "") issues.push(`${at}.name: duplicate segment name '${seg.name}' (also segments[${seen}])`);
    else firstIndex.set(seg.name, i);
    return checkSegment(seg, at, state, issues);
  });

  // every proxy the request puts a segment on: its resulting set, through the runtime's rules
  // (stored segments first, so that a clash is reported on the requested segment)
  const requestNames = new Set(segments.map((s) => s.name));
  const groups = new Map<string, { inputs: SegmentInput[]; origin: string[] }>();
  segments.forEach((seg, i) => {
    if (firstIndex.get(seg.name) !== i) return;
    const valid = NODE_ID.test(seg.proxy);
    const group = valid ? seg.proxy : `\0${i}`; // a segment without a valid proxy is checked alone
    let g = groups.get(group);
    if (!g) {
      groups.set(group, (g = { inputs: [], origin: [] }));
      for (const name of valid ? [...(state.byProxy.get(seg.proxy) ?? [])].sort() : []) {
        if (requestNames.has(name)) continue; // replaced by the request
        g.inputs.push(storedInput(state.segments.get(name)!.segment, state));
        g.origin.push(`segment '${name}'`);
      }
    }
    g.inputs.push(checked[i]!.input);
    g.origin.push(`segments[${i}]`);
  });
  for (const g of groups.values()) issues.push(...validateProxySet(g.inputs, g.origin));
  if (issues.length > 0) throw invalid([...new Set(issues)]);

  const created: string[] = [];
  const configured: string[] = [];
  const unchanged: string[] = [];
  const compares: Compare[] = [];
  const ops: Op[] = [];
  const sets = new Map<string, Set<string>>(); // affected proxies -> their resulting names
  const touch = (proxy: string): Set<string> => {
    let set = sets.get(proxy);
    if (!set) sets.set(proxy, (set = new Set(state.byProxy.get(proxy) ?? [])));
    return set;
  };
  segments.forEach((seg, i) => {
    const { record } = checked[i]!;
    const old = state.segments.get(seg.name);
    const text = JSON.stringify(record);
    if (old) {
      const { revision: _r, ...oldRecord } = old.segment;
      if (JSON.stringify(oldRecord) === text) {
        unchanged.push(seg.name);
        return;
      }
      configured.push(seg.name);
      if (old.segment.proxy !== seg.proxy) touch(old.segment.proxy).delete(seg.name);
    } else {
      created.push(seg.name);
    }
    touch(seg.proxy).add(seg.name);
    compares.push({ key: segmentKey(seg.name), modRevision: old?.modRevision ?? 0 });
    ops.push({ type: "put", key: segmentKey(seg.name), value: text });
  });
  for (const [proxy, names] of sets) {
    compares.push({ key: proxyKey(proxy), modRevision: state.proxies.get(proxy) ?? 0 });
    ops.push({ type: "put", key: proxyKey(proxy), value: JSON.stringify({ segments: [...names].sort() }) });
  }
  return { created, configured, unchanged, compares, ops };
}

/** Plans DeleteSegments: all named segments must exist (NOT_FOUND otherwise, nothing deleted). */
export function planDelete(names: readonly string[], state: DesiredState): DeletePlan | { missing: string[] } {
  const unique = [...new Set(names)];
  const missing = unique.filter((n) => !state.segments.has(n));
  if (missing.length > 0) return { missing };
  const compares: Compare[] = [];
  const ops: Op[] = [];
  const sets = new Map<string, Set<string>>();
  for (const name of unique) {
    const { segment, modRevision } = state.segments.get(name)!;
    let set = sets.get(segment.proxy);
    if (!set) sets.set(segment.proxy, (set = new Set(state.byProxy.get(segment.proxy) ?? [])));
    set.delete(name);
    compares.push({ key: segmentKey(name), modRevision });
    ops.push({ type: "delete", key: segmentKey(name) });
  }
  for (const [proxy, set] of sets) {
    compares.push({ key: proxyKey(proxy), modRevision: state.proxies.get(proxy) ?? 0 });
    ops.push({ type: "put", key: proxyKey(proxy), value: JSON.stringify({ segments: [...set].sort() }) });
  }
  return { deleted: unique, compares, ops };
}

/** A stored segment as a listing without show_secrets gives it: secret-looking config values replaced by REDACTED. */
export function withoutSecrets(seg: Segment): Segment {
  const hides = (json: string | undefined): boolean => !!json && secretValues(JSON.parse(json)).length > 0;
  const redact = (json: string): string => JSON.stringify(redactSecrets(JSON.parse(json)));
  if (!seg.chain.some((st) => hides(st.configJson) || hides(st.rootConfigJson))) return seg;
  return {
    ...seg,
    chain: seg.chain.map((st) => ({
      ...st,
      ...(hides(st.configJson) ? { configJson: redact(st.configJson) } : {}),
      ...(hides(st.rootConfigJson) ? { rootConfigJson: redact(st.rootConfigJson!) } : {}),
    })),
  };
}
