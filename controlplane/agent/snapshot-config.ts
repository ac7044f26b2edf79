// Turns a control-plane Snapshot into the runtime's ProxyConfig, field by field. Every problem is
// reported with the path of the snapshot field that caused it (`segments[2].chain[0].config_json`),
// because that path is what an operator reads in a NACK.
import { join } from "node:path";
import type { ChainStage, FilterRef, Segment, Snapshot } from "../api/proto.js";
import { clockRatesOf } from "../api/proto.js";
import { destinationInput, isEmptyEndpoint, legInput, multicastInput } from "../api/segment-input.js";
import type { ProxyConfigInput } from "../../runtime/index.js";

/** A snapshot the agent cannot turn into a config; `issues` name the snapshot fields. */
export class SnapshotError extends Error {
  override readonly name = "SnapshotError";
  constructor(readonly issues: readonly string[]) {
    super(issues.length === 1 ? issues[0]! : issues.join("; "));
  }
}

/** One module a snapshot needs: the registry's reference and the key it gets in the config. */
export interface ModuleUse {
  readonly key: string;
  readonly ref: FilterRef;
}

/** What the agent needs to know about a snapshot before fetching modules and applying it. */
export interface SnapshotPlan {
  /** Modules by config key (each key once). */
  readonly modules: readonly ModuleUse[];
  /** The config, with filter paths still to be placed in the module cache (see `toProxyConfig`). */
  readonly config: ProxyConfigInput;
}

const SHA256 = /^[0-9a-f]{64}$/;
const KEY_ALLOWED = /[^a-z0-9_-]+/g;

/** A registry name as a config filter key (`^[a-z][a-z0-9_-]{0,62}$`). */
function keyOf(text: string): string {
  let key = text.toLowerCase().replace(KEY_ALLOWED, "-").replace(/^[^a-z]+/, "");
  if (key === "") key = "filter";
  return key.slice(0, 56);
}

/** The path of a snapshot field, as the proto names it. */
const at = (i: number, rest = ""): string => `segments[${i}]${rest}`;

/**
 * Which registry entry each chain stage means: the exact version when the stage names one, the
 * newest pushed one otherwise ("" = the newest, as the proto says).
 */
function resolveStage(stage: ChainStage, filters: readonly FilterRef[]): FilterRef | undefined {
  const named = filters.filter((f) => f.name === stage.filter);
  if (stage.version !== "") return named.find((f) => f.version === stage.version);
  let newest: FilterRef | undefined;
  for (const f of named) if (!newest || f.pushedAtMs > newest.pushedAtMs) newest = f;
  return newest;
}

/**
 * Config keys for the modules in use. A filter used in one version only is keyed by its name, so
 * that an upgrade to a new version keeps the key and the running segments' state is carried over
 * by the hot swap (the runtime matches stages by key). Two versions of one filter in use at once
 * get a key each, with the version in it.
 */
function assignKeys(used: readonly FilterRef[]): Map<FilterRef, string> {
  const versionsByName = new Map<string, Set<string>>();
  for (const ref of used) {
    let set = versionsByName.get(ref.name);
    if (!set) versionsByName.set(ref.name, (set = new Set()));
    set.add(ref.sha256);
  }
  const keys = new Map<FilterRef, string>();
  const taken = new Map<string, FilterRef>();
  // a stable order, so the same snapshot always gives the same keys
  const sorted = [...used].sort((a, b) => (a.name === b.name ? (a.version < b.version ? -1 : a.version > b.version ? 1 : 0) : a.name < b.name ? -1 : 1));
  for (const ref of sorted) {
    const base = versionsByName.get(ref.name)!.size > 1 ? keyOf(`${ref.name}-${ref.version}`) : keyOf(ref.name);
    let key = base;
    for (let n = 2; taken.has(key) && taken.get(key) !== ref; n++) key = `${base}-${n}`;
    taken.set(key, ref);
    keys.set(ref, key);
  }
  return keys;
}

function parseStageConfig(stage: ChainStage, path: string, issues: string[]): Record<string, unknown> {
  if (stage.configJson.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(stage.configJson);
  } catch (err) {
    issues.push(`${path}.config_json: not valid JSON (${(err as Error).message})`);
    return {};
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    issues.push(`${path}.config_json: must be a JSON object`);
    return {};
  }
  return value as Record<string, unknown>;
}

function convertSegment(seg: Segment, i: number, keys: Map<FilterRef, string>, resolved: (FilterRef | undefined)[], issues: string[]) {
  if (isEmptyEndpoint(seg.listen)) issues.push(`${at(i, ".listen")}: required`);
  const listen = seg.listen ?? { address: "", port: 0, rtcpPort: 0 };
  if (listen.rtcpPort !== 0 && listen.rtcpPort !== (seg.rtcpMux ? listen.port : listen.port + 1)) {
    issues.push(`${at(i, ".listen.rtcp_port")}: the proxy takes RTCP on port + 1 (or on port itself with rtcp_mux); leave it 0`);
  }
  const out: NonNullable<ProxyConfigInput["segments"]>[number] = {
    name: seg.name,
    listen: { address: listen.address, port: listen.port, ...(listen.interface ? { interface: listen.interface } : {}) },
    rtcpMux: seg.rtcpMux,
    destinations: seg.destinations.map(destinationInput),
    chain: seg.chain.map((stage, j) => {
      const path = at(i, `.chain[${j}]`);
      const ref = resolved[j];
      return { filter: ref ? keys.get(ref)! : stage.filter, config: parseStageConfig(stage, path, issues) };
    }),
    legs: seg.legs.map((l, k) => legInput(l, at(i, `.legs[${k}]`), issues)),
    multicast: multicastInput(seg.multicast),
    ...(clockRatesOf(seg) ? { clockRates: clockRatesOf(seg) } : {}),
  };
  if (!isEmptyEndpoint(seg.egress)) {
    const e = seg.egress!;
    if (e.rtcpPort !== 0 && e.rtcpPort !== (seg.rtcpMux ? e.port : e.port + 1)) {
      issues.push(`${at(i, ".egress.rtcp_port")}: the proxy sends RTCP from port + 1 (or from port itself with rtcp_mux); leave it 0`);
    }
    out.egress = { address: e.address, port: e.port };
  }
  if (!isEmptyEndpoint(seg.source)) {
    const s = seg.source!;
    out.source = s.rtcpPort !== 0 ? { address: s.address, port: s.port, rtcpPort: s.rtcpPort } : { address: s.address, port: s.port };
  }
  if (seg.failure) {
    const f = seg.failure;
    const failure: Record<string, unknown> = {};
    if (f.mode !== "") failure.mode = f.mode;
    if (f.restartBackoffMs !== 0) failure.restartBackoffMs = f.restartBackoffMs;
    if (f.maxBackoffMs !== 0) failure.maxBackoffMs = f.maxBackoffMs;
    if (f.maxFailures !== 0) failure.maxFailures = f.maxFailures;
    out.failure = failure as NonNullable<typeof out.failure>;
  }
  return out;
}

/**
 * Resolves a snapshot's chains against its filter list and converts its segments. Throws
 * SnapshotError naming every bad field. The config's filter paths point into `modulesDir`,
 * where the caller must place `<sha256>.wasm` before applying.
 */
export function planSnapshot(snapshot: Snapshot, modulesDir: string, workers: number): SnapshotPlan {
  const issues: string[] = [];
  snapshot.filters.forEach((f, k) => {
    if (!SHA256.test(f.sha256.toLowerCase())) issues.push(`filters[${k}].sha256: must be 64 hex digits (filter '${f.name}' version '${f.version}')`);
  });
  // resolve every stage first: the keys depend on which modules are in use
  const resolvedBySegment = snapshot.segments.map((seg, i) =>
    seg.chain.map((stage, j) => {
      const ref = resolveStage(stage, snapshot.filters);
      if (!ref) {
        issues.push(`${at(i, `.chain[${j}].filter`)}: '${stage.filter}'${stage.version ? ` version '${stage.version}'` : ""} is not in the snapshot's filters`);
      }
      return ref;
    }),
  );
  const used = [...new Set(resolvedBySegment.flat().filter((r): r is FilterRef => r !== undefined))];
  const keys = assignKeys(used);
  const segments = snapshot.segments.map((seg, i) => convertSegment(seg, i, keys, resolvedBySegment[i]!, issues));
  if (issues.length > 0) throw new SnapshotError(issues);

  const filters: NonNullable<ProxyConfigInput["filters"]> = {};
  const modules: ModuleUse[] = [];
  for (const ref of used) {
    const key = keys.get(ref)!;
    const sha256 = ref.sha256.toLowerCase();
    filters[key] = { path: join(modulesDir, `${sha256}.wasm`), sha256, config: {} };
    modules.push({ key, ref });
  }
  return { modules, config: { workers, filters, segments } };
}

/**
 * Rewrites a runtime error message so that it names snapshot fields: a segment by its index, a
 * stage by its chain index, a filter key by its registry name and version.
 */
export function describeApplyFailure(snapshot: Snapshot, plan: SnapshotPlan, segment: string, message: string): string {
  const i = snapshot.segments.findIndex((s) => s.name === segment);
  const text = message.replace(`segment '${segment}': `, "");
  if (i < 0) return segment ? `segment '${segment}': ${text}` : text;
  const m = /^filter '([^']+)'/.exec(text);
  const use = m ? plan.modules.find((u) => u.key === m[1]) : undefined;
  if (use) {
    const chain = plan.config.segments?.[i]?.chain ?? [];
    const j = chain.findIndex((st) => st.filter === use.key);
    const where = j >= 0 ? (/rejected its config/.test(text) ? at(i, `.chain[${j}].config_json`) : at(i, `.chain[${j}].filter`)) : at(i);
    return `${where}: filter ${use.ref.name}@${use.ref.version}${text.slice(m![0].length)} (segment '${segment}')`;
  }
  return `${at(i)}: ${text} (segment '${segment}')`;
}
