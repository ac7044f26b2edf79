// Segment manifests as operators write them for `msmctl apply -f`: YAML documents (or JSON), each
// `kind: Segment` with `metadata.name` and a `spec` whose keys are the proxy config's own
// (docs/proxy.md), plus the proxy that runs it. Checked here, before anything is sent: an unknown
// key or a wrong type is reported with the file, the document and the field's path.
import { isIP } from "node:net";
import { z } from "zod";
import { nearKey, parseErrorText, parseYamlDocuments, proxyConfigSchema, TextLimitError } from "../../runtime/index.js";
import type { ChainStage, Endpoint, Leg, Multicast, Segment } from "../../controlplane/api/proto.js";
import { clockRatesOf } from "../../controlplane/api/proto.js";
import { FILTER_NAME_PATTERN } from "../../sdk/scaffold/filter-name.js";

export const API_VERSION = "msm/v1";

/** Everything wrong with a file, one line per problem: `FILE: document N: PATH: MESSAGE`. */
export class ManifestError extends Error {
  override readonly name = "ManifestError";
  constructor(readonly problems: readonly string[]) {
    super(problems.join("\n"));
  }
}

/** Alias expansions a document may make (the yaml library's default): a segment needs none. */
const MAX_ALIAS_COUNT = 100;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const FILTER_VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

const address = z.string().refine((s) => isIP(s) !== 0, { message: "must be an IPv4 or IPv6 address" });
const port = z.number().int().min(1).max(65535);
const portOrZero = z.number().int().min(0).max(65535);

const filterRef = z.string().refine(
  (s) => {
    const at = s.indexOf("@");
    return at < 0 ? FILTER_NAME_PATTERN.test(s) : FILTER_NAME_PATTERN.test(s.slice(0, at)) && FILTER_VERSION.test(s.slice(at + 1));
  },
  { message: "must be NAME or NAME@VERSION (lower-case name: letters, digits, '_', '-')" },
);

/**
 * A segment's `legs`, with the proxy's own schema (docs/proxy.md, "Legs"): the same keys, types,
 * defaults and count. Rules across fields (a leg needs listen or portOffset, names unique, ports
 * free) are the proxy's too; the server applies them.
 */
const segmentShape = proxyConfigSchema.shape.segments.unwrap().element.shape;
const legsSchema = segmentShape.legs;

/**
 * The proxy file's `source`, `filters.<name>.limits` and `.maxMemoryPages`, with the proxy's own
 * types and ranges but no defaults filled in: what the operator wrote is what is stored and listed.
 */
const sourceShape = segmentShape.source.unwrap().shape;
const filterEntryShape = proxyConfigSchema.shape.filters.unwrap().valueType.shape;
const limitsShape = filterEntryShape.limits.unwrap().shape;
const sourceSchema = z
  .strictObject({
    address: address.optional(),
    port: port.optional(),
    rtcpPort: port.optional(),
    strict: sourceShape.strict.unwrap().optional(),
    learnMs: sourceShape.learnMs.unwrap().optional(),
    idleMs: sourceShape.idleMs.unwrap().optional(),
  })
  .refine((s) => s.address !== undefined || (s.port === undefined && s.rtcpPort === undefined), { message: "port and rtcpPort need an address" });
const stageSchema = z.strictObject({
  filter: filterRef,
  /** The stage's config (the proxy file's chain[].config). */
  config: z.record(z.string(), z.unknown()).optional(),
  /** The filter entry's, for this stage: filters.<name>.config (root config), .limits, .maxMemoryPages. */
  rootConfig: z.record(z.string(), z.unknown()).optional(),
  limits: z.strictObject({ generatedPerSecond: limitsShape.generatedPerSecond.unwrap().optional(), timerFiresPerSecond: limitsShape.timerFiresPerSecond.unwrap().optional() }).optional(),
  maxMemoryPages: filterEntryShape.maxMemoryPages.unwrap().optional(),
});

const specSchema = z.strictObject({
  proxy: z.string().regex(NAME, "must be a node id: 1-63 letters, digits, '.', '_' or '-'"),
  // the proxy's own: a multicast group's interface, at most MAX_DESTINATIONS destinations, multicast's keys and defaults
  listen: segmentShape.listen,
  rtcpMux: z.boolean().optional(),
  egress: z.strictObject({ address, port: portOrZero.optional() }).optional(),
  destinations: segmentShape.destinations,
  multicast: segmentShape.multicast.unwrap().optional(),
  clockRates: segmentShape.clockRates,
  legs: legsSchema,
  source: sourceSchema.optional(),
  feedbackFrom: segmentShape.feedbackFrom.unwrap().optional(),
  symmetricRtp: z.boolean().optional(),
  chain: z.array(stageSchema).optional(),
  failure: z
    .strictObject({
      mode: z.enum(["open", "closed"]).optional(),
      restartBackoffMs: z.number().int().min(0).max(600_000).optional(),
      maxBackoffMs: z.number().int().min(0).max(3_600_000).optional(),
      maxFailures: z.number().int().min(1).max(1_000_000).optional(),
    })
    .optional(),
});

const segmentSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION).optional(),
  kind: z.literal("Segment"),
  metadata: z.strictObject({
    name: z.string().regex(NAME, "must be 1-63 letters, digits, '.', '_' or '-'"),
    /** Printed by `get -o yaml`; ignored on apply, so that its output can be applied again. */
    revision: z.number().int().min(0).optional(),
  }),
  spec: specSchema,
});

export type SegmentManifest = z.infer<typeof segmentSchema>;

function pathString(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out === "" ? String(p) : `.${String(p)}`;
  return out;
}

function join(prefix: string, path: string): string {
  if (prefix === "") return path;
  if (path === "" || path.startsWith("[")) return prefix + path;
  return `${prefix}.${path}`;
}

/**
 * Why a string field got a number or a boolean: YAML reads digits (or true, false) unquoted as
 * one, and a long run of digits (a digest) becomes a float that has lost some of them, so the
 * value cannot be taken back as text: the operator quotes it.
 */
function unquotedHint(received: string): string {
  if (received === "number") return ": YAML reads a value of digits alone as a number (a long one loses digits); write it in quotes";
  if (received === "boolean") return ": YAML reads true and false unquoted as a boolean; write it in quotes";
  return "";
}

/** A zod issue in the words of a config error: "required", "must be at most 65535", "unknown key". */
function describeIssue(issue: z.core.$ZodIssue, prefix: string): string[] {
  const at = join(prefix, pathString(issue.path));
  switch (issue.code) {
    case "unrecognized_keys":
      return issue.keys.map((k) => {
        const near = nearKey(segmentSchema, issue.path, k);
        return `${join(at, k)}: unknown key${near ? `; did you mean '${near}'?` : ""}`;
      });
    case "invalid_type": {
      if (/received undefined$/.test(issue.message)) return [`${at}: required`];
      const received = /received (\w+)$/.exec(issue.message)?.[1];
      const expected = issue.expected === "array" ? "a list" : issue.expected === "object" || issue.expected === "record" ? "a mapping" : `a ${issue.expected}`;
      return [`${at}: must be ${expected}${received ? `, got ${received}` : ""}${issue.expected === "string" && received ? unquotedHint(received) : ""}`];
    }
    case "too_big":
      // a schema's own message (the proxy's destination limit gives the count) says more than the generic wording
      if (!issue.message.startsWith("Too big")) return [`${at}: ${issue.message}`];
      return [`${at}: ${issue.origin === "array" ? `at most ${issue.maximum} items` : `must be at most ${issue.maximum}`}`];
    case "too_small":
      return [`${at}: ${issue.origin === "array" ? `needs at least ${issue.minimum} item${issue.minimum === 1 ? "" : "s"}` : `must be at least ${issue.minimum}`}`];
    case "invalid_value":
      return [`${at}: must be ${issue.values.map((v) => JSON.stringify(v)).join(" or ")}`];
    case "invalid_format":
      return [`${at}: ${issue.message}`];
    default:
      return [`${at}: ${issue.message}`];
  }
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Validates one object that should be a Segment; `prefix` is its path within the document. */
function checkSegment(value: unknown, prefix: string): { manifest?: SegmentManifest; problems: string[] } {
  if (!isMapping(value)) return { problems: [`${prefix || "(document)"}: must be a mapping with kind: Segment`] };
  if (value.kind === undefined) return { problems: [`${join(prefix, "kind")}: required (Segment)`] };
  if (value.kind !== "Segment") return { problems: [`${join(prefix, "kind")}: unknown kind ${JSON.stringify(value.kind)} (msmctl applies Segment)`] };
  const result = segmentSchema.safeParse(value);
  if (result.success) return { manifest: result.data, problems: [] };
  return { problems: result.error.issues.flatMap((i) => describeIssue(i, prefix)) };
}

/** The objects a document holds: itself, the elements of a list, or a `kind: List`'s items. */
function objectsOf(doc: unknown): { objects: { value: unknown; prefix: string }[]; problem?: string } {
  if (Array.isArray(doc)) return { objects: doc.map((value, i) => ({ value, prefix: `[${i}]` })) };
  if (isMapping(doc) && doc.kind === "List") {
    const extra = Object.keys(doc).filter((k) => k !== "kind" && k !== "items" && k !== "apiVersion");
    if (extra.length > 0) return { objects: [], problem: `${extra[0]}: unknown key (a List holds apiVersion, kind and items)` };
    if (!Array.isArray(doc.items)) return { objects: [], problem: "items: must be a list" };
    return { objects: doc.items.map((value, i) => ({ value, prefix: `items[${i}]` })) };
  }
  return { objects: [{ value: doc, prefix: "" }] };
}

/** Where a manifest was written: its document (from 1) and its path inside that document. */
export interface ManifestOrigin {
  readonly document: number;
  /** "" for a document that is the segment, `[2]` or `items[2]` for one in a list. */
  readonly prefix: string;
}

export interface LoadedManifests {
  readonly manifests: readonly SegmentManifest[];
  /** Parallel to `manifests`. */
  readonly origins: readonly ManifestOrigin[];
}

/**
 * Parses a file's text: YAML documents separated by `---` (JSON is YAML too), each a Segment, a
 * list of them, or `kind: List` with `items`. Empty documents are skipped. Throws ManifestError
 * with every problem found, each as `SOURCE: document N: PATH: MESSAGE` (N counts from 1).
 */
export function parseManifests(text: string, source: string): LoadedManifests {
  const problems: string[] = [];
  const manifests: SegmentManifest[] = [];
  const origins: ManifestOrigin[] = [];
  const seen = new Map<string, number>();
  documentsOf(text, source).forEach((doc, d) => {
    const where = `${source}: document ${d + 1}`;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) problems.push(`${where}: not valid YAML or JSON: ${parseErrorText(e)}`);
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      if (!(err instanceof ReferenceError)) throw err;
      // the yaml library's guard against "billion laughs" documents (aliases of aliases), or an alias without its anchor
      problems.push(/alias count/i.test(err.message)
        ? `${where}: refused: its aliases (*name) would expand it too far (${err.message}); write the values out, or use fewer aliases`
        : `${where}: not valid YAML: ${err.message}`);
      return;
    }
    if (value === null || value === undefined) return;
    const { objects, problem } = objectsOf(value);
    if (problem) problems.push(`${where}: ${problem}`);
    for (const { value: obj, prefix } of objects) {
      const { manifest, problems: found } = checkSegment(obj, prefix);
      for (const p of found) problems.push(`${where}: ${p}`);
      if (!manifest) continue;
      const first = seen.get(manifest.metadata.name);
      if (first !== undefined) {
        problems.push(`${where}: ${join(prefix, "metadata.name")}: segment '${manifest.metadata.name}' appears twice (first in document ${first})`);
        continue;
      }
      seen.set(manifest.metadata.name, d + 1);
      manifests.push(manifest);
      origins.push({ document: d + 1, prefix });
    }
  });
  if (problems.length > 0) throw new ManifestError(problems);
  if (manifests.length === 0) throw new ManifestError([`${source}: no segments in it`]);
  return { manifests, origins };
}

/** The YAML documents in a file's text; throws ManifestError for a text past the parser's limits. */
function documentsOf(text: string, source: string): ReturnType<typeof parseYamlDocuments> {
  try {
    return parseYamlDocuments(text);
  } catch (err) {
    if (!(err instanceof TextLimitError)) throw err;
    throw new ManifestError([`${source}: ${err.document !== undefined ? `document ${err.document}: ` : ""}${err.message}`]);
  }
}

const camel = (s: string): string => s.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());

/**
 * A proxy's refusal in manifest terms: each `segments[0].chain[1].config_json: ... (segment 'cam-1')`
 * (a field of the snapshot the proxy was sent) becomes `segment/cam-1 spec.chain[1].config: ...`,
 * the field the operator wrote.
 */
export function refusalInManifestTerms(text: string): string {
  return text.replace(/segments\[\d+\]((?:\.[a-z_]+|\[\d+\])*)(: (?:(?!; segments\[).)*?) \(segment '([^']*)'\)/g,
    (_m, path: string, rest: string, name: string) => `segment/${name} ${manifestPath(path)}${rest}`);
}

/**
 * A request field path as the server names it (`.listen.rtcp_port`, `.chain[0].config_json`, after
 * `segments[i]`) in the manifest's terms (`spec.listen.rtcpPort`, `spec.chain[0].config`).
 */
export function manifestPath(requestPath: string, prefix = ""): string {
  if (requestPath === "") return prefix;
  if (requestPath === ".name") return join(prefix, "metadata.name");
  const path = camel(requestPath)
    .replace(/\.configJson\b/g, ".config")
    .replace(/\.rootConfigJson\b/g, ".rootConfig")
    .replace(/^\.source(Strict|LearnMs|IdleMs)\b/, (_m, f: string) => `.source.${f[0]!.toLowerCase()}${f.slice(1)}`);
  return join(prefix, `spec${path}`);
}

function endpoint(e: {
  address: string; port?: number | undefined; rtcpPort?: number | undefined; interface?: string | undefined; ssrc?: number | undefined; payloadType?: number | undefined;
}): Endpoint {
  return {
    address: e.address, port: e.port ?? 0, rtcpPort: e.rtcpPort ?? 0, ...(e.interface ? { interface: e.interface } : {}),
    ...(e.ssrc !== undefined ? { ssrc: e.ssrc } : {}), ...(e.payloadType !== undefined ? { payloadType: e.payloadType } : {}),
  };
}

/** A listen endpoint in manifest form (its multicast interface only when set). */
function listenManifest(e: Endpoint, address = true): Record<string, unknown> {
  return { ...(address ? { address: e.address } : {}), port: e.port, ...(e.interface ? { interface: e.interface } : {}) };
}

/** Splits `name@version` (version "" = the newest pushed). */
export function splitFilterRef(ref: string): { name: string; version: string } {
  const at = ref.indexOf("@");
  return at < 0 ? { name: ref, version: "" } : { name: ref.slice(0, at), version: ref.slice(at + 1) };
}

type LegManifest = NonNullable<SegmentManifest["spec"]["legs"]>[number];

function toLeg(l: LegManifest): Leg {
  return {
    name: l.name,
    portOffset: l.portOffset,
    listen: l.listen ? endpoint({ address: l.listen.address ?? "", port: l.listen.port, interface: l.listen.interface }) : null,
    receive: l.receive,
    destinations: (l.destinations ?? []).map(endpoint),
    egress: l.egress ? endpoint(l.egress) : null,
    send: l.send,
    ...(l.source ? { sourceAddress: l.source.address } : {}),
    ...(l.redundant ? { redundant: true } : {}),
    ...(l.multicast ? { multicast: { ttl: l.multicast.ttl, interface: l.multicast.interface ?? "", loopback: l.multicast.loopback } satisfies Multicast } : {}),
  };
}

/** A leg in manifest form: what the operator wrote, defaults left out. */
function legManifest(l: Leg): Record<string, unknown> {
  const out: Record<string, unknown> = { name: l.name };
  if (l.portOffset !== undefined) out.portOffset = l.portOffset;
  if (l.listen) out.listen = listenManifest(l.listen, l.listen.address !== "");
  if (l.receive === false) out.receive = false;
  if (l.destinations.length > 0) out.destinations = l.destinations.map((d) => ({ address: d.address, port: d.port }));
  if (l.egress) out.egress = l.egress.port ? { address: l.egress.address, port: l.egress.port } : { address: l.egress.address };
  if (l.send === false) out.send = false;
  if (l.sourceAddress) out.source = { address: l.sourceAddress };
  if (l.redundant) out.redundant = true;
  if (l.multicast) {
    const m = l.multicast; // only what is set: an unset key is the segment's (docs/proxy.md, "A leg's path")
    const own = { ...(isSet(m.ttl) ? { ttl: m.ttl } : {}), ...(m.interface ? { interface: m.interface } : {}), ...(isSet(m.loopback) ? { loopback: m.loopback } : {}) };
    if (Object.keys(own).length > 0) out.multicast = own;
  }
  return out;
}

/** A checked manifest as the API's Segment (revision 0: the server sets it). */
export function toSegment(m: SegmentManifest): Segment {
  const s = m.spec;
  return {
    name: m.metadata.name,
    proxy: s.proxy,
    listen: endpoint(s.listen),
    rtcpMux: s.rtcpMux ?? false,
    egress: s.egress ? endpoint(s.egress) : null,
    destinations: s.destinations.map(endpoint),
    source: s.source?.address !== undefined ? endpoint({ address: s.source.address, port: s.source.port, rtcpPort: s.source.rtcpPort }) : null,
    chain: (s.chain ?? []).map((st): ChainStage => {
      const { name, version } = splitFilterRef(st.filter);
      const config = st.config ?? {};
      const stage: ChainStage = { filter: name, version, configJson: Object.keys(config).length > 0 ? JSON.stringify(config) : "" };
      if (st.rootConfig && Object.keys(st.rootConfig).length > 0) stage.rootConfigJson = JSON.stringify(st.rootConfig);
      if (st.limits && Object.keys(st.limits).length > 0) stage.limits = { ...st.limits };
      if (st.maxMemoryPages !== undefined) stage.maxMemoryPages = st.maxMemoryPages;
      return stage;
    }),
    failure: s.failure
      ? {
          mode: s.failure.mode ?? "",
          restartBackoffMs: s.failure.restartBackoffMs ?? 0,
          maxBackoffMs: s.failure.maxBackoffMs ?? 0,
          maxFailures: s.failure.maxFailures ?? 0,
        }
      : null,
    revision: 0,
    legs: s.legs.map(toLeg),
    ...(s.multicast ? { multicast: { ttl: s.multicast.ttl, interface: s.multicast.interface ?? "", loopback: s.multicast.loopback } satisfies Multicast } : {}),
    ...(s.clockRates ? { clockRates: s.clockRates } : {}),
    ...(s.source?.strict !== undefined ? { sourceStrict: s.source.strict } : {}),
    ...(s.source?.learnMs !== undefined ? { sourceLearnMs: s.source.learnMs } : {}),
    ...(s.source?.idleMs !== undefined ? { sourceIdleMs: s.source.idleMs } : {}),
    ...(s.feedbackFrom !== undefined ? { feedbackFrom: s.feedbackFrom } : {}),
    ...(s.symmetricRtp !== undefined ? { symmetricRtp: s.symmetricRtp } : {}),
  };
}

const isSet = <T>(v: T | null | undefined): v is T => v !== undefined && v !== null;

function parseConfig(json: string): Record<string, unknown> | string {
  if (json === "") return {};
  try {
    const v: unknown = JSON.parse(json);
    return isMapping(v) ? v : json;
  } catch {
    return json;
  }
}

/**
 * An API Segment in manifest form, for `get -o yaml|json`: what `apply -f` takes back. Zero values
 * that mean "the default" are left out.
 */
export function toManifest(seg: Segment): Record<string, unknown> {
  const spec: Record<string, unknown> = { proxy: seg.proxy };
  if (seg.listen) spec.listen = listenManifest(seg.listen);
  if (seg.rtcpMux) spec.rtcpMux = true;
  if (seg.egress) spec.egress = seg.egress.port ? { address: seg.egress.address, port: seg.egress.port } : { address: seg.egress.address };
  spec.destinations = seg.destinations.map((d) => ({
    address: d.address, port: d.port, ...(d.rtcpPort ? { rtcpPort: d.rtcpPort } : {}),
    ...(d.ssrc !== undefined && d.ssrc !== null ? { ssrc: d.ssrc } : {}), ...(d.payloadType !== undefined && d.payloadType !== null ? { payloadType: d.payloadType } : {}),
  }));
  if (seg.multicast) spec.multicast = { ttl: seg.multicast.ttl ?? 16, ...(seg.multicast.interface ? { interface: seg.multicast.interface } : {}), loopback: seg.multicast.loopback ?? false };
  if (seg.legs.length > 0) spec.legs = seg.legs.map(legManifest);
  if (clockRatesOf(seg)) spec.clockRates = clockRatesOf(seg);
  const source: Record<string, unknown> = {};
  if (seg.source) {
    source.address = seg.source.address;
    if (seg.source.port) source.port = seg.source.port;
    if (seg.source.rtcpPort) source.rtcpPort = seg.source.rtcpPort;
  }
  if (isSet(seg.sourceStrict)) source.strict = seg.sourceStrict;
  if (isSet(seg.sourceLearnMs)) source.learnMs = seg.sourceLearnMs;
  if (isSet(seg.sourceIdleMs)) source.idleMs = seg.sourceIdleMs;
  if (Object.keys(source).length > 0) spec.source = source;
  if (seg.feedbackFrom) spec.feedbackFrom = seg.feedbackFrom;
  if (seg.symmetricRtp) spec.symmetricRtp = true;
  if (seg.chain.length > 0) {
    spec.chain = seg.chain.map((st) => {
      const stage: Record<string, unknown> = { filter: st.version ? `${st.filter}@${st.version}` : st.filter };
      const config = parseConfig(st.configJson);
      if (typeof config === "string" || Object.keys(config).length > 0) stage.config = config;
      const rootConfig = parseConfig(st.rootConfigJson ?? "");
      if (typeof rootConfig === "string" || Object.keys(rootConfig).length > 0) stage.rootConfig = rootConfig;
      const limits: Record<string, number> = {};
      if (isSet(st.limits?.generatedPerSecond)) limits.generatedPerSecond = st.limits.generatedPerSecond;
      if (isSet(st.limits?.timerFiresPerSecond)) limits.timerFiresPerSecond = st.limits.timerFiresPerSecond;
      if (Object.keys(limits).length > 0) stage.limits = limits;
      if (isSet(st.maxMemoryPages)) stage.maxMemoryPages = st.maxMemoryPages;
      return stage;
    });
  }
  if (seg.failure) {
    const f: Record<string, unknown> = {};
    if (seg.failure.mode) f.mode = seg.failure.mode;
    if (seg.failure.restartBackoffMs) f.restartBackoffMs = seg.failure.restartBackoffMs;
    if (seg.failure.maxBackoffMs) f.maxBackoffMs = seg.failure.maxBackoffMs;
    if (seg.failure.maxFailures) f.maxFailures = seg.failure.maxFailures;
    if (Object.keys(f).length > 0) spec.failure = f;
  }
  return { apiVersion: API_VERSION, kind: "Segment", metadata: { name: seg.name, revision: seg.revision }, spec };
}
