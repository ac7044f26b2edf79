// Turns a control-plane Snapshot into the runtime's ProxyConfig, field by field. Every problem is
// reported with the path of the snapshot field that caused it (`segments[2].chain[0].config_json`),
// because that path is what an operator reads in a NACK.
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { ChainStage, FilterRef, Segment, Snapshot } from "../api/proto.js";
import { clockRatesOf } from "../api/proto.js";
import { newestVersion } from "../api/versions.js";
import { destinationInput, feedbackInput, isEmptyEndpoint, legInput, multicastInput, parseConfigJson, sourceInput, stageEntryInput } from "../api/segment-input.js";
import { proxyConfigSchema, type ProxyConfigInput } from "../../runtime/index.js";

/** A snapshot the agent cannot turn into a config; `issues` name the snapshot fields. */
export class SnapshotError extends Error {
  override readonly name = "SnapshotError";
  constructor(readonly issues: readonly string[]) {
    super(issues.length === 1 ? issues[0]! : issues.join("; "));
  }
}

/**
 * One filter entry a snapshot needs: the key it gets in the config, the registry's module it runs,
 * and the stage settings it has (root config, limits, maxMemoryPages). Several keys may run one
 * module, one per distinct settings.
 */
export interface ModuleUse {
  readonly key: string;
  readonly ref: FilterRef;
}

type FilterEntryInput = NonNullable<ProxyConfigInput["filters"]>[string];
type EntrySettings = Omit<FilterEntryInput, "path" | "sha256">;

/** One module with one set of stage settings: what a filter entry of the proxy's config is. */
interface Variant {
  readonly ref: FilterRef;
  readonly settings: EntrySettings;
  /** The settings with the proxy's defaults filled in, keys sorted: equal for settings that mean the same. */
  readonly canonical: string;
}

const filterEntrySchema = proxyConfigSchema.shape.filters.unwrap().valueType;
/** The canonical form of a filter entry with no settings given (root config {}, default limits and memory). */
const DEFAULT_SETTINGS = canonicalSettings({});

/** JSON with every object's keys sorted, so that {a, b} and {b, a} compare equal. */
function sortedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${sortedJson((value as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function canonicalSettings(settings: EntrySettings): string {
  const parsed = filterEntrySchema.safeParse({ path: "-", ...settings });
  if (!parsed.success) return sortedJson(settings); // refused later by validateProxyConfig, naming the field
  const { config, limits, maxMemoryPages } = parsed.data;
  return sortedJson({ config, limits, maxMemoryPages });
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
 * newest otherwise ("" = the newest, as the proto says: the highest version, api/versions.ts).
 */
function resolveStage(stage: ChainStage, filters: readonly FilterRef[]): FilterRef | undefined {
  const named = filters.filter((f) => f.name === stage.filter);
  if (stage.version !== "") return named.find((f) => f.version === stage.version);
  return newestVersion(named, (f) => f.version, (f) => f.pushedAtMs);
}

/**
 * Config keys for the filter entries in use. A filter used in one version, with one set of stage
 * settings, is keyed by its name, so that an upgrade to a new version (or a change of its settings)
 * keeps the key and the running segments' state is carried over by the hot swap (the runtime
 * matches stages by key). Two versions of one filter in use at once get a key each, with the
 * version in it. One version used with different settings (root config, limits, maxMemoryPages)
 * is an entry per settings: the one with the defaults keeps the key, each other gets the first 8
 * hex digits of its settings' SHA-256 added (`fec-3b1c09e2`), which stays the same whatever other
 * segments use.
 */
function assignKeys(used: readonly Variant[]): Map<Variant, string> {
  const versionsByName = new Map<string, Set<string>>();
  const variantsByRef = new Map<FilterRef, number>();
  for (const v of used) {
    let set = versionsByName.get(v.ref.name);
    if (!set) versionsByName.set(v.ref.name, (set = new Set()));
    set.add(v.ref.sha256);
    variantsByRef.set(v.ref, (variantsByRef.get(v.ref) ?? 0) + 1);
  }
  const keys = new Map<Variant, string>();
  const taken = new Map<string, Variant>();
  const order = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  // a stable order, so the same snapshot always gives the same keys
  const sorted = [...used].sort((a, b) => order(a.ref.name, b.ref.name) || order(a.ref.version, b.ref.version) || order(a.canonical, b.canonical));
  for (const v of sorted) {
    let base = versionsByName.get(v.ref.name)!.size > 1 ? keyOf(`${v.ref.name}-${v.ref.version}`) : keyOf(v.ref.name);
    if (variantsByRef.get(v.ref)! > 1 && v.canonical !== DEFAULT_SETTINGS) {
      base = `${base.slice(0, 47)}-${createHash("sha256").update(v.canonical).digest("hex").slice(0, 8)}`;
    }
    let key = base;
    for (let n = 2; taken.has(key) && taken.get(key) !== v; n++) key = `${base}-${n}`;
    taken.set(key, v);
    keys.set(v, key);
  }
  return keys;
}

/**
 * Each filter's metrics are named after the filter (`msm_filter_<name>_*`), whatever the version
 * or settings its key carries (`fec-3b1c09e2`), so that dashboards and alerts outlive an upgrade
 * or a change of limits; two filters whose names read alike as keys get one each.
 */
function metricsNamesOf(used: readonly Variant[]): Map<string, string> {
  const names = new Map<string, string>();
  const taken = new Set<string>();
  for (const filter of [...new Set(used.map((v) => v.ref.name))].sort()) {
    const base = keyOf(filter);
    let name = base;
    for (let n = 2; taken.has(name); n++) name = `${base}-${n}`;
    taken.add(name);
    names.set(filter, name);
  }
  return names;
}

function parseStageConfig(stage: ChainStage, path: string, issues: string[]): Record<string, unknown> {
  return parseConfigJson(stage.configJson, `${path}.config_json`, issues) ?? {};
}

function convertSegment(seg: Segment, i: number, keys: Map<Variant, string>, resolved: (Variant | undefined)[], issues: string[]) {
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
    ...feedbackInput(seg),
  };
  if (!isEmptyEndpoint(seg.egress)) {
    const e = seg.egress!;
    if (e.rtcpPort !== 0 && e.rtcpPort !== (seg.rtcpMux ? e.port : e.port + 1)) {
      issues.push(`${at(i, ".egress.rtcp_port")}: the proxy sends RTCP from port + 1 (or from port itself with rtcp_mux); leave it 0`);
    }
    out.egress = { address: e.address, port: e.port };
  }
  const source = sourceInput(seg);
  if (source) out.source = source;
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
  // resolve every stage first: the keys depend on which modules, with which settings, are in use
  const variants = new Map<string, Variant>(); // by module digest and canonical settings
  const resolvedBySegment = snapshot.segments.map((seg, i) =>
    seg.chain.map((stage, j): Variant | undefined => {
      const ref = resolveStage(stage, snapshot.filters);
      if (!ref) {
        issues.push(`${at(i, `.chain[${j}].filter`)}: '${stage.filter}'${stage.version ? ` version '${stage.version}'` : ""} is not in the snapshot's filters`);
        return undefined;
      }
      const settings = stageEntryInput(stage, at(i, `.chain[${j}]`), issues);
      const canonical = canonicalSettings(settings);
      const id = `${ref.name}@${ref.version}\0${canonical}`;
      let v = variants.get(id);
      if (!v) variants.set(id, (v = { ref, settings, canonical }));
      return v;
    }),
  );
  const used = [...variants.values()];
  const keys = assignKeys(used);
  const segments = snapshot.segments.map((seg, i) => convertSegment(seg, i, keys, resolvedBySegment[i]!, issues));
  if (issues.length > 0) throw new SnapshotError(issues);

  const filters: NonNullable<ProxyConfigInput["filters"]> = {};
  const modules: ModuleUse[] = [];
  const metricsNames = metricsNamesOf(used);
  for (const v of used) {
    const key = keys.get(v)!;
    const sha256 = v.ref.sha256.toLowerCase();
    filters[key] = { path: join(modulesDir, `${sha256}.wasm`), sha256, ...v.settings, metricsName: metricsNames.get(v.ref.name)! };
    modules.push({ key, ref: v.ref });
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
    const field = /rejected its config/.test(text) ? "config_json" : /rejected its root config/.test(text) ? "root_config_json" : "filter";
    const where = j >= 0 ? at(i, `.chain[${j}].${field}`) : at(i);
    // the filter entry's key is the agent's own: the operator knows the stage's fields
    const rest = text.slice(m![0].length).replace(` (filters.${use.key}.config)`, "");
    return `${where}: filter ${use.ref.name}@${use.ref.version}${rest} (segment '${segment}')`;
  }
  return `${at(i)}: ${text} (segment '${segment}')`;
}
