// The proxy's config: its schema, its defaults, and errors that name the field.
// zod is used because it reports every problem with its path, which is what an operator needs
// from a config error, and rejects unknown keys (a typo must not be silently ignored).
import { isIP } from "node:net";
import { resolve, dirname, isAbsolute } from "node:path";
import { z } from "zod";
import { DEFAULT_FAILURE_POLICY, DEFAULT_STAGE_LIMITS } from "../chain/filter-pool.js";
import { MAX_CHAIN_LENGTH } from "../chain/chain-runner.js";
import { MAX_LEGS, SegmentFlag } from "../abi.js";
import { canonicalAddress, EndpointClaims } from "./endpoints.js";
import { parseErrorText } from "./parse-error-text.js";
import { pathString } from "./field-path.js";
import { MAX_CONFIG_BYTES, parseJsonText, parseYamlDocuments, TextLimitError } from "./text-limits.js";
import { forwardingLoopProblems, type HostAddresses, type LoopNode } from "./forwarding-loops.js";
import { schemaProblems } from "./schema-messages.js";
import { unknownZoneProblems } from "./address-zones.js";
import { interfaceProblem, isMulticast } from "./multicast.js";
import { checkSecretReferences } from "./secrets.js";
import { readBounded } from "../bounded-read.js";

const address = z.string().refine((s) => isIP(s) !== 0, { message: "must be an IPv4 or IPv6 address" });
/**
 * An address a segment's sockets bind, send to or hear from. Their IPv6 sockets are IPv6-only
 * (endpoints.ts): an IPv4-mapped address (::ffff:10.0.0.5) failed to bind (EINVAL), every packet
 * sent to one failed (host_send_failed), and a sender named so was never heard. ::ffff:0.0.0.0 is
 * left to the rule on unspecified destinations.
 */
const udpAddress = address.refine((s) => {
  if (isIP(s) !== 6) return true;
  const a = canonicalAddress(s);
  return a === "::ffff:0:0" || !/^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}(%.*)?$/.test(a);
}, { message: "an IPv4 address written as IPv6 (IPv4-mapped, ::ffff:a.b.c.d): the segment's IPv6 sockets are IPv6-only and never reach it; write the IPv4 address" });
const port = z.number().int().min(1).max(65535);
const portOrZero = z.number().int().min(0).max(65535);
const jsonObject = z.record(z.string(), z.unknown());

/**
 * Destinations per segment (and per leg). Every packet costs one send per destination, and the
 * egress ring holds a packet's slot until every one of its sends has completed (a 16-bit count
 * per slot, dataplane/egress-ring.ts); past a few thousand receivers, a multicast group or a tree
 * of proxies is the way to reach them.
 */
export const MAX_DESTINATIONS = 4096;

/** A list of destinations, refused past MAX_DESTINATIONS with the count it has. */
function destinationList<T extends z.ZodType>(element: T) {
  return z.array(element).min(1).max(MAX_DESTINATIONS, {
    error: (issue) => `${(issue.input as unknown[]).length} destinations, at most ${MAX_DESTINATIONS} per segment (each packet is sent once per destination); reach more receivers through a multicast group or a tree of proxies`,
  });
}

/** Where the segment receives; a multicast group is joined (on `interface`, when given). */
const listenEndpoint = z.strictObject({
  address: udpAddress,
  port,
  /** A multicast listen address: the interface to join the group on (IPv4: a local address; IPv6: an interface name). */
  interface: z.string().min(1).optional(),
});

export const MULTICAST_DEFAULTS = { ttl: 16, loopback: false } as const;

/** How the egress sockets send to multicast destinations (the media's; a leg's, as legMulticast says). */
const multicast = z.strictObject({
  /** Hops a multicast packet may cross (IP TTL / IPv6 hop limit); 0 keeps it on this host. */
  ttl: z.number().int().min(0).max(255).default(MULTICAST_DEFAULTS.ttl),
  /** The interface multicast leaves from (IPv4: a local address; IPv6: an interface name); default: the route to the group. */
  interface: z.string().min(1).optional(),
  /** Whether listeners on this host (and its network namespace) hear the proxy's multicast too. */
  loopback: z.boolean().default(MULTICAST_DEFAULTS.loopback),
});

/**
 * A leg's own `multicast` (docs/proxy.md "Multicast", "A leg's path"): the segment's keys, each
 * unset one taken as legMulticast says (ttl and loopback: the segment's; interface: the one that
 * has the leg's egress address, when the leg has its own, else the segment's).
 */
const legMulticastSchema = z.strictObject({
  ttl: multicast.shape.ttl.unwrap().optional(),
  interface: multicast.shape.interface,
  loopback: multicast.shape.loopback.unwrap().optional(),
});

const destination = z.strictObject({
  address: udpAddress,
  port,
  /** Where RTCP goes; default port + 1 (or port itself with rtcpMux). */
  rtcpPort: port.optional(),
  /** Translation for this destination alone (RFC 3550 7.1): the SSRC it gets the stream under; its reports are mapped back. */
  ssrc: z.number().int().min(0).max(0xffffffff).optional(),
  /** The payload type it gets the stream under (the one its SDP negotiated). */
  payloadType: z.number().int().min(0).max(127)
    .refine((pt) => pt < 72 || pt > 76, { message: "72-76 look like RTCP (SR to APP with the marker bit set; RFC 5761 section 4)" }).optional(),
});

const failurePolicy = z.strictObject({
  mode: z.enum(["open", "closed"]).default(DEFAULT_FAILURE_POLICY.mode),
  restartBackoffMs: z.number().int().min(0).max(600_000).default(DEFAULT_FAILURE_POLICY.restartBackoffMs),
  maxBackoffMs: z.number().int().min(0).max(3_600_000).default(DEFAULT_FAILURE_POLICY.maxBackoffMs),
  maxFailures: z.number().int().min(1).max(1_000_000).default(DEFAULT_FAILURE_POLICY.maxFailures),
});

const SOURCE_DEFAULTS = { strict: true, learnMs: 3000, idleMs: 5000 } as const;

/** Who may send into the segment, and where feedback for the sender goes (dataplane/source-gate.ts). */
const source = z.strictObject({
  /** Admit only this sender address (an allow list of one); feedback goes here before it is heard. */
  address: udpAddress.optional(),
  port: port.optional(),
  rtcpPort: port.optional(),
  /** Refuse packets from other senders once one is latched (outside the windows below). */
  strict: z.boolean().default(SOURCE_DEFAULTS.strict),
  /** For this long after the first packet, a new sender replaces the latched one. */
  learnMs: z.number().int().min(0).max(600_000).default(SOURCE_DEFAULTS.learnMs),
  /** A latched sender silent this long may be replaced (0: never). */
  idleMs: z.number().int().min(0).max(3_600_000).default(SOURCE_DEFAULTS.idleMs),
}).refine((s) => s.address !== undefined || (s.port === undefined && s.rtcpPort === undefined), {
  message: "port and rtcpPort need an address",
});

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const NAME_RULE = "must be 1-63 letters, digits, '.', '_' or '-'";

/**
 * A leg: one more UDP flow of the segment beside its media (leg 0), such as SMPTE 2022-1 column
 * and row FEC on ports P+2 and P+4, or the second path of a dual-path stream. Packets that
 * arrive on leg k carry k in their descriptor; packets a filter puts on leg k leave from the
 * leg's own socket to the leg's destinations. RTP only: a leg has no RTCP and no feedback.
 */
const leg = z.strictObject({
  name: z.string().regex(NAME, NAME_RULE),
  /** Receives on listen.port + portOffset, sends to each destination's port + portOffset. */
  portOffset: z.number().int().min(1).max(1000).optional(),
  /** Where the leg receives, instead of listen.port + portOffset (address: the segment's listen address; interface: the segment's). */
  listen: z.strictObject({ address: udpAddress.optional(), port, interface: z.string().min(1).optional() }).optional(),
  /** Whether the leg binds a listen socket at all (an encoder's repair legs only send). */
  receive: z.boolean().default(true),
  /** The leg's sender, when it is not the media's (a second path from another address); default: the media's latched sender. */
  source: z.strictObject({ address: udpAddress }).optional(),
  /** Where the leg sends, instead of each destination at port + portOffset. */
  destinations: destinationList(z.strictObject({ address: udpAddress, port })).optional(),
  /** The local address (and port) the leg sends from; default the segment's egress address, a port the kernel picks. */
  egress: z.strictObject({ address: udpAddress, port: portOrZero.default(0) }).optional(),
  /** Whether the leg sends (a decoder that strips repair packets only receives them). */
  send: z.boolean().default(true),
  /** How the leg's egress socket sends to multicast destinations, where it differs from what legMulticast gives it. */
  multicast: legMulticastSchema.optional(),
  /**
   * Whether the leg carries the media stream's own packets over another path (ST 2022-7): its
   * RTP then counts in the segment's per-stream ingress with the media's, each sequence number
   * once, so that the ingress is what the paths deliver together.
   */
  redundant: z.boolean().default(false),
});

const stage = z.strictObject({
  filter: z.string().min(1),
  config: jsonObject.default({}),
});

const segment = z.strictObject({
  name: z.string().regex(NAME, NAME_RULE),
  /** Where the sender sends RTP; RTCP on port + 1 unless rtcpMux. A multicast group is joined. */
  listen: listenEndpoint,
  rtcpMux: z.boolean().default(false),
  /** The local address (and optionally port) the proxy sends from; receivers send feedback here. */
  egress: z.strictObject({ address: udpAddress, port: portOrZero.default(0) }).optional(),
  /**
   * Send to the destinations from the listen socket(s) (symmetric RTP, RFC 4961): half the
   * sockets. Receivers send feedback to the listen port, from the port they receive on.
   */
  symmetricRtp: z.boolean().default(false),
  destinations: destinationList(destination),
  /** How multicast destinations are sent to. */
  multicast: multicast.default(() => ({ ...MULTICAST_DEFAULTS })),
  /** Legs 1.. beside the media (leg 0): FEC ports, a second path. */
  legs: z.array(leg).max(MAX_LEGS - 1).default([]),
  source: source.default(() => ({ ...SOURCE_DEFAULTS })),
  /** Who may send feedback (RTCP) to the egress sockets: the destinations' addresses only, or anyone. */
  feedbackFrom: z.enum(["destinations", "any"]).default("destinations"),
  chain: z.array(stage).max(MAX_CHAIN_LENGTH).default([]),
  failure: failurePolicy.default(() => ({ ...DEFAULT_FAILURE_POLICY })),
  /** Pin the segment to a worker; default: spread by name. */
  worker: z.number().int().min(0).optional(),
  /** RTP clock rates (Hz) by payload type, for the per-stream jitter; default: RFC 3551's static types, else 90000. */
  clockRates: z.record(z.string(), z.number().int().min(1000).max(10_000_000)).superRefine((rates, ctx) => {
    for (const pt of Object.keys(rates)) {
      if (!/^(12[0-7]|1[01][0-9]|[1-9]?[0-9])$/.test(pt)) ctx.addIssue({ code: "custom", path: [pt], message: `'${pt}' is not a payload type (0-127)` });
    }
  }).optional(),
});

export const STREAMS_DEFAULTS = { max: 10_000, maxPerSegment: 128, idleSeconds: 30 };

const filterEntry = z.strictObject({
  path: z.string().min(1),
  sha256: z.string().regex(/^(sha256:)?[0-9a-fA-F]{64}$/, "must be 64 hex digits, optionally prefixed with 'sha256:'").optional(),
  config: jsonObject.default({}),
  maxMemoryPages: z.number().int().min(1).max(65536).default(256),
  /**
   * The `<filter>` of its own metrics' names, msm_filter_<metricsName>_<metric> (default: the
   * entry's name): entries of one filter that give the same one share its families (a control
   * plane gives every version and setting of a filter the filter's name), their series told apart
   * by segment and stage, so that a dashboard outlives an upgrade.
   */
  metricsName: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, "lower-case letters, digits, '_' and '-', starting with a letter").optional(),
  /** Bounds on what one stage (one segment's use of the filter) may do. */
  limits: z.strictObject({
    /** Packets a stage may create per second (output area), with a tenth of a second's burst. */
    generatedPerSecond: z.number().int().min(1).max(10_000_000).default(DEFAULT_STAGE_LIMITS.generatedPerSecond),
    /** Timer firings per context per second; more wait for the budget (a timer at 0 delay is not a busy loop). */
    timerFiresPerSecond: z.number().int().min(1).max(1_000_000).default(DEFAULT_STAGE_LIMITS.timerFiresPerSecond),
  }).default(() => ({ ...DEFAULT_STAGE_LIMITS })),
});

export const proxyConfigSchema = z.strictObject({
  workers: z.number().int().min(1).max(64).default(1),
  /** Largest batch handed to a chain at once. */
  batchSize: z.number().int().min(1).max(1024).default(64),
  /** Socket I/O: batched through the addon (docs/batched-io.md), node:dgram, or the addon where it is built. */
  io: z.enum(["auto", "native", "dgram"]).default("auto"),
  /**
   * UDP generic segmentation offload on batched sends (Linux 4.18+), where the kernel has it;
   * "off" sends every datagram as its own message (docs/batched-io.md: what tc on the sending host sees).
   */
  gso: z.enum(["auto", "off"]).default("auto"),
  watchdog: z.strictObject({ stuckMs: z.number().int().min(10).max(60_000).default(500) }).default({ stuckMs: 500 }),
  admin: z.strictObject({ address: address.default("127.0.0.1"), port: portOrZero }).optional(),
  /** Kernel receive buffer per socket, bytes. */
  socketReceiveBuffer: z.number().int().min(65_536).max(64 << 20).default(4 << 20),
  /** Per-stream (SSRC) stats (docs/streams.md): how many streams each worker counts one by one (0: none), and when a silent one is forgotten. */
  streams: z.strictObject({
    max: z.number().int().min(0).max(1_000_000).default(STREAMS_DEFAULTS.max),
    /** Of those, how many one segment may take: a sender that changes SSRC on every packet must not take every slot of its worker. */
    maxPerSegment: z.number().int().min(1).max(1_000_000).default(STREAMS_DEFAULTS.maxPerSegment),
    idleSeconds: z.number().int().min(1).max(86_400).default(STREAMS_DEFAULTS.idleSeconds),
  }).default(() => ({ ...STREAMS_DEFAULTS })),
  /** /metrics families left out (family names, or prefixes ending in '*'): fewer series for a proxy with many segments. */
  metrics: z.strictObject({
    exclude: z.array(z.string().superRefine((v, ctx) => {
      const problem = excludePatternProblem(v);
      if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
    })).max(256).default([]),
  }).default(() => ({ exclude: [] })),
  /** How often every stage's state is saved, for a filter or worker restart to carry it; 0: never. */
  stateCheckpointMs: z.number().int().min(0).max(3_600_000).default(1000),
  /**
   * Where the checkpoints are also saved, for a restart of the proxy process to carry them
   * (runtime/state-file.ts); relative to the config file. Unset: they live in memory only.
   */
  stateFile: z.string().min(1).optional(),
  /** A worker started ahead that takes the place of the next one to fail (a faster restart, for about 25 MB). */
  spareWorker: z.boolean().default(true),
  /**
   * Where the secrets a filter config names by reference may come from (config/secrets.ts): a
   * `$file` under one of `files` (directories, absolute), a `$env` among `env` (names, or prefixes
   * ending in '*'). Unset: any file or variable the proxy can read.
   */
  secrets: z.strictObject({
    files: z.array(z.string().min(1).refine((p) => isAbsolute(p), "must be an absolute directory path")).max(64).optional(),
    env: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*\*?$|^\*$/, "must be a variable name, or a prefix ending in '*'")).max(256).optional(),
  }).optional(),
  filters: z.record(z.string(), filterEntry).default({}),
  segments: z.array(segment).default([]),
});

export type ProxyConfig = z.infer<typeof proxyConfigSchema>;
export type SegmentConfig = z.infer<typeof segment>;
export type FilterEntry = z.infer<typeof filterEntry>;
export type LegConfig = z.infer<typeof leg>;
export type ProxyConfigInput = z.input<typeof proxyConfigSchema>;

export { pathString };

/** A config that cannot be used; `issues` name each field by path (`segments[0].listen.port`). */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly issues: readonly string[], readonly source = "config") {
    super(`${source}: ${issues.length === 1 ? issues[0] : `\n  ${issues.join("\n  ")}`}`);
  }
}

/** The families the proxy's /metrics has (runtime/admin/prometheus.ts; test/config.test.ts keeps the two lists alike), besides the filters' own. */
export const HOST_FAMILIES: readonly string[] = [
  "msm_segment_packets_in_total", "msm_segment_bytes_in_total", "msm_segment_packets_out_total", "msm_segment_bytes_out_total",
  "msm_segment_send_messages_total", "msm_segment_leg_packets_in_total", "msm_segment_leg_packets_out_total", "msm_segment_drops_total",
  "msm_segment_discards_total",
  "msm_filter_packets_in_total", "msm_filter_packets_out_total", "msm_filter_bytes_in_total", "msm_filter_bytes_out_total",
  "msm_filter_failures_total", "msm_filter_busy_seconds_total", "msm_filter_up", "msm_filter_memory_bytes", "msm_filter_memory_max_bytes",
  "msm_filter_drops_total", "msm_filter_discards_total", "msm_filter_held_total", "msm_filter_generated_total", "msm_filter_bypassed_total",
  "msm_stream_packets_total", "msm_stream_bytes_total", "msm_stream_expected_packets_total", "msm_stream_lost_packets",
  "msm_stream_duplicates_total", "msm_stream_reordered_total", "msm_stream_jitter_seconds", "msm_stream_window_loss_ratio",
  "msm_stream_window_bits_per_second", "msm_stream_window_packets_per_second", "msm_stream_receiver_loss_ratio",
  "msm_stream_receiver_lost_packets", "msm_stream_receiver_jitter_seconds", "msm_stream_receiver_rtt_seconds",
  "msm_proxy_running", "msm_watchdog_restarts_total", "msm_worker_exits_total", "msm_config_applies_total", "msm_segments_not_running",
];

/** The families a proxy run by the control plane's agent adds to its /metrics (controlplane/agent/agent.ts; test/agent.test.ts keeps the two alike): a node file may leave them out too. */
export const AGENT_FAMILIES: readonly string[] = ["msm_control_plane_connected", "msm_snapshot_version", "msm_snapshot_segments_held_back"];

/** The host's own msm_filter_* families, without the prefix: a filter's name must not make its metrics one of them. */
export const HOST_FILTER_FAMILIES: readonly string[] = HOST_FAMILIES.filter((f) => f.startsWith("msm_filter_")).map((f) => f.slice("msm_filter_".length));

/**
 * Why `pattern` (metrics.exclude) names no family this proxy could have, or undefined. A family
 * name, or a prefix ending in '*'; a filter's own families (msm_filter_<filter>_<metric>) depend on
 * the filters loaded, so any msm_filter_ name or prefix is taken.
 */
export function excludePatternProblem(pattern: string): string | undefined {
  if (!/^msm_[a-z0-9_]*\*?$/.test(pattern)) return `'${pattern}' is neither a family name (msm_segment_drops_total) nor a prefix ending in '*' (msm_stream_*)`;
  const prefix = pattern.endsWith("*") ? pattern.slice(0, -1) : undefined;
  const families = [...HOST_FAMILIES, ...AGENT_FAMILIES];
  const known = prefix === undefined
    ? families.includes(pattern) || pattern.startsWith("msm_filter_")
    : families.some((f) => f.startsWith(prefix)) || prefix.startsWith("msm_filter_") || "msm_filter_".startsWith(prefix);
  return known ? undefined : `'${pattern}' matches no family of this proxy's /metrics (docs/proxy.md "Metrics")`;
}

/**
 * Why a filter name would put its metrics under one of the host's own families, or undefined.
 * A filter's metrics are msm_filter_<name, '-' as '_'>_<metric> in /metrics: a filter `drops`
 * with a metric `total` would repeat msm_filter_drops_total (a second # TYPE line). Shared by
 * the config check and `msm filter new`.
 */
export function hostFamilyClash(name: string): string | undefined {
  const prefix = name.replace(/-/g, "_");
  const host = HOST_FILTER_FAMILIES.find((f) => f.startsWith(`${prefix}_`));
  return host === undefined ? undefined : `its metrics could take the name of the host's msm_filter_${host}; choose another filter name`;
}

/**
 * Where `value` has a key `__proto__` of its own (YAML and JSON.parse make one). Copied into a
 * record (filters, clockRates, a stage's config), it set the copy's prototype instead: the entry
 * vanished without a word, and its keys showed through as if every record had them.
 */
function prototypeKeys(value: unknown, path: PropertyKey[], out: string[], depth = 0): void {
  if (value === null || typeof value !== "object" || depth > 128 || out.length >= 5) return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => prototypeKeys(v, [...path, i], out, depth + 1));
    return;
  }
  if (Object.hasOwn(value, "__proto__")) out.push(`${pathString([...path, "__proto__"])}: no key of a config may be named __proto__`);
  for (const [k, v] of Object.entries(value)) prototypeKeys(v, [...path, k], out, depth + 1);
}

/** Validates a parsed config; resolves filter paths against baseDir. Throws ConfigError naming every problem found. */
export function validateProxyConfig(input: unknown, baseDir = process.cwd(), source = "config", host: HostAddresses = "this host"): ProxyConfig {
  const proto: string[] = [];
  prototypeKeys(input, [], proto);
  if (proto.length > 0) throw new ConfigError(proto, source);
  const result = proxyConfigSchema.safeParse(input ?? {});
  if (!result.success) {
    // the rules between fields too, over the parts that parse: all of a file's problems at once,
    // not a second list once the first is fixed
    const problems = schemaProblems(result.error.issues, pathString, proxyConfigSchema);
    const parts = partsThatParse(input ?? {});
    if (parts) problems.push(...ruleProblems(parts, baseDir, host));
    throw new ConfigError(problems, source);
  }
  const config = result.data;
  const problems = ruleProblems(config, baseDir, host);
  if (config.stateFile !== undefined && config.stateCheckpointMs === 0) {
    // the file would keep the states of the start only: a restart long after would restore srtp's
    // roll-over counters from then, and protect with one that the stream has long left behind
    problems.push("stateCheckpointMs: 0 takes no checkpoints, so stateFile would keep only the states of the start; give it a period (1000 by default)");
  }
  if (problems.length > 0) throw new ConfigError(problems, source);
  for (const entry of Object.values(config.filters)) {
    if (!isAbsolute(entry.path)) entry.path = resolve(baseDir, entry.path);
  }
  if (config.stateFile !== undefined && !isAbsolute(config.stateFile)) config.stateFile = resolve(baseDir, config.stateFile);
  return config;
}

/** A config as far as it parses: a segment that does not is left out (undefined, its index kept), a filter entry that does not is there by name only. */
interface ConfigParts {
  readonly workers: number;
  /** null: `filters` itself did not parse (no chain's filter is judged unknown then). */
  readonly filters: Readonly<Record<string, FilterEntry | undefined>> | null;
  readonly segments: readonly (SegmentConfig | undefined)[];
}

function partsThatParse(input: unknown): ConfigParts | undefined {
  if (input === null || typeof input !== "object" || Array.isArray(input)) return undefined;
  const raw = input as Record<string, unknown>;
  const workers = proxyConfigSchema.shape.workers.safeParse(raw.workers);
  let filters: Record<string, FilterEntry | undefined> | null = {};
  if (raw.filters !== null && typeof raw.filters === "object" && !Array.isArray(raw.filters)) {
    for (const [name, entry] of Object.entries(raw.filters)) filters[name] = filterEntry.safeParse(entry).data;
  } else if (raw.filters !== undefined) filters = null;
  const segments = Array.isArray(raw.segments) ? raw.segments.map((s) => segment.safeParse(s).data) : [];
  // workers that do not parse: no segment's worker is judged against them
  return { workers: workers.success ? workers.data : 64, filters, segments };
}

/** The rules between fields, once each field has its type: names, ports, families, chains, loops, secret references. */
function ruleProblems(config: ConfigParts, baseDir: string, host: HostAddresses): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  const ports = new EndpointClaims<string>();
  const metricPrefixes = new Map<string, { name: string; shared: string | undefined }>();
  for (const [name, entry] of Object.entries(config.filters ?? {})) {
    if (!/^[a-z][a-z0-9_-]{0,62}$/.test(name)) problems.push(`filters.${name}: filter names are lower-case letters, digits, '_' and '-', starting with a letter`);
    // a filter's metrics are msm_filter_<metricsName or name, '-' as '_'>_<metric> in /metrics: two
    // that read the same there, or a host family's word, would mix families (a second # TYPE
    // line), unless both entries share the name on purpose (one filter's versions and settings)
    const shared = entry?.metricsName;
    const prefix = (shared ?? name).replace(/-/g, "_");
    const what = shared !== undefined ? `filters.${name}.metricsName` : `filters.${name}`;
    const twin = metricPrefixes.get(prefix);
    if (twin !== undefined) {
      if (shared === undefined || twin.shared !== shared) problems.push(`${what}: its metrics would share the names msm_filter_${prefix}_* with filters.${twin.name}'s; rename one`);
    } else {
      const clash = hostFamilyClash(shared ?? name);
      if (clash !== undefined) problems.push(`${what}: ${clash}`);
    }
    metricPrefixes.set(prefix, { name, shared });
  }
  const claim = (address: string, port: number, what: string): void => {
    const owner = ports.claim({ address, port }, what);
    if (owner) problems.push(`${what}: port already used by ${owner}`);
  };
  config.segments.forEach((seg, i) => {
    if (!seg) return;
    const at = `segments[${i}]`;
    if (names.has(seg.name)) problems.push(`${at}.name: duplicate segment name '${seg.name}'`);
    names.add(seg.name);
    if (!seg.rtcpMux && seg.listen.port === 65535) problems.push(`${at}.listen.port: RTCP needs port + 1; use rtcpMux or a lower port`);
    // node:dgram binds "port 65536" to a port the kernel picks, and the addon refuses it as a peer
    if (!seg.rtcpMux && seg.egress?.port === 65535) problems.push(`${at}.egress.port: RTCP needs port + 1; use rtcpMux or a lower port`);
    seg.destinations.forEach((d, k) => {
      if (!seg.rtcpMux && d.rtcpPort === undefined && d.port === 65535) problems.push(`${at}.destinations[${k}].port: its RTCP would go to port + 1, past 65535; give its rtcpPort, use rtcpMux, or a lower port`);
    });
    // a segment's sockets are of one family: IPv4 sockets cannot send to IPv6 addresses, nor the reverse
    const family = isIP(seg.egress?.address ?? seg.listen.address);
    const from = seg.egress ? "egress.address" : "listen.address";
    problems.push(...destinationListProblems(seg.destinations, `${at}.destinations`));
    seg.destinations.forEach((d, k) => {
      if (isIP(d.address) !== family) problems.push(`${at}.destinations[${k}].address: IPv${isIP(d.address)}, but the segment sends from IPv${family} (${from}); give an egress.address of the destinations' family`);
      if (seg.rtcpMux && d.payloadType !== undefined && d.payloadType >= 64 && d.payloadType <= 95) {
        problems.push(`${at}.destinations[${k}].payloadType: ${d.payloadType} with rtcpMux: 64-95 read as RTCP packet types 192-223 on a muxed port (RFC 5761 section 4)`);
      }
    });
    if (seg.source.address !== undefined && isIP(seg.source.address) !== isIP(seg.listen.address)) {
      problems.push(`${at}.source.address: IPv${isIP(seg.source.address)}, but the segment listens on IPv${isIP(seg.listen.address)}`);
    }
    if (seg.symmetricRtp && seg.egress) problems.push(`${at}.egress: with symmetricRtp the segment sends from its listen socket; remove egress or symmetricRtp`);
    if (seg.symmetricRtp && seg.feedbackFrom === "any") problems.push(`${at}.feedbackFrom: 'any' with symmetricRtp: on the listen socket feedback is told from the sender's packets by the destinations' ports, so it can only come from a destination; remove one of the two`);
    if (seg.symmetricRtp && isMulticast(seg.listen.address)) problems.push(`${at}.symmetricRtp: the listen address ${seg.listen.address} is a multicast group, which cannot be a source; use an egress socket`);
    problems.push(...multicastProblems(seg, at, family));
    problems.push(...legProblems(seg, at, family));
    problems.push(...sharedLegDestinationProblems(seg, at));
    for (const bind of fixedBinds(seg)) claim(bind.address, bind.port, `${at}.${bind.what}`);
    if (seg.worker !== undefined && seg.worker >= config.workers) {
      problems.push(`${at}.worker: ${seg.worker} but there are only ${config.workers} workers`);
    }
    const seen = new Set<string>();
    seg.chain.forEach((st, j) => {
      // own keys only: `in` took 'toString' or 'constructor' for a filter, and the apply failed later with a misleading error
      if (config.filters && !Object.hasOwn(config.filters, st.filter)) problems.push(`${at}.chain[${j}].filter: unknown filter '${st.filter}' (not under filters:)`);
      if (seen.has(st.filter)) problems.push(`${at}.chain[${j}].filter: '${st.filter}' appears twice in one chain`);
      seen.add(st.filter);
    });
  });
  const parsed = config.segments.flatMap((seg, i) => (seg ? [{ seg, at: `segments[${i}]` }] : []));
  if (host === "this host") for (const { seg, at } of parsed) problems.push(...unknownZoneProblems(seg, at));
  problems.push(...forwardingLoopProblems(parsed.map(({ seg, at }) => ({ name: seg.name, receives: receiveEndpoints(seg), sends: sendTargets(seg, at) })), host));
  const entries = Object.fromEntries(Object.entries(config.filters ?? {}).filter((e): e is [string, FilterEntry] => e[1] !== undefined));
  problems.push(...checkSecretReferences({ filters: entries, segments: config.segments.map((seg) => seg ?? { chain: [] }) }, baseDir));
  return problems;
}

/** What is wrong with a segment's multicast: groups where a unicast address belongs and the reverse, interfaces of the wrong form. */
function multicastProblems(seg: SegmentConfig, at: string, egressFamily: number): string[] {
  const problems: string[] = [];
  const listen = seg.listen;
  if (listen.interface !== undefined) {
    if (!isMulticast(listen.address)) problems.push(`${at}.listen.interface: only a multicast group is joined, and listen.address ${listen.address} is not one (224.0.0.0/4, ff00::/8)`);
    else {
      const problem = interfaceProblem(listen.interface, isIP(listen.address));
      if (problem) problems.push(`${at}.listen.interface: ${problem}`);
    }
  }
  if (seg.source.address !== undefined && isMulticast(seg.source.address)) problems.push(`${at}.source.address: ${seg.source.address} is a multicast group; a sender's address is unicast`);
  if (seg.egress && isMulticast(seg.egress.address)) problems.push(`${at}.egress.address: ${seg.egress.address} is a multicast group; the proxy sends from a local unicast address (multicast destinations go under destinations)`);
  const out = seg.multicast.interface;
  if (out !== undefined) {
    const problem = interfaceProblem(out, egressFamily);
    if (problem) problems.push(`${at}.multicast.interface: ${problem} (the segment sends from IPv${egressFamily})`);
  }
  return problems;
}

/**
 * Destinations that are no one's or someone's twice: an unspecified address (0.0.0.0, ::) is
 * this host on any address, which no loop check can follow (packets sent there came back to the
 * proxy's own port and went round for ever); a destination listed twice gets every packet twice.
 */
function destinationListProblems(list: readonly { address: string; port: number; ssrc?: number | undefined; payloadType?: number | undefined }[], at: string): string[] {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  let twice = 0;
  const MAX_SAID = 5; // a generated list can repeat thousands of times: a few name the mistake
  list.forEach((d, k) => {
    const address = canonicalAddress(d.address);
    if (address === "0.0.0.0" || address === "::" || address === "::ffff:0:0") problems.push(`${at}[${k}].address: ${d.address} is no host to send to (it means any address of this one); name the receiver's address`);
    // one address and port may take several rewrites of the stream (a receiver that tells them apart by SSRC)
    const key = `${address}|${d.port}|${d.ssrc ?? ""}|${d.payloadType ?? ""}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, k);
    else if (++twice <= MAX_SAID) problems.push(`${at}[${k}]: the same as ${at}[${first}] (${d.address}:${d.port}); each packet would go there twice`);
  });
  if (twice > MAX_SAID) problems.push(`${at}: ${twice - MAX_SAID} more destinations the same as an earlier one`);
  return problems;
}

/**
 * Two legs of a segment (leg 0, the media, among them) sending to one address and port from one
 * address: the receiver gets both legs' packets on one socket from one host, and cannot tell them
 * apart. A dual-path copy (replicate's copyToLegs) arrives there twice, FEC lands in the media
 * stream or in its RTCP. A leg with an egress address of its own (a second network) may send to
 * the same address and port, and so may one that sends to a multicast group on another interface
 * (the same group on two networks); one leg to a destination twice with other rewrites is checked
 * with its own list. Compared as configured: a leg whose source address is the route's is taken
 * for another address than one named.
 */
function sharedLegDestinationProblems(seg: SegmentConfig, at: string): string[] {
  const problems: string[] = [];
  const specified = (a: string | undefined): string => (a === undefined || isUnspecified(a) ? "" : canonicalAddress(a));
  const segmentFrom = specified(seg.symmetricRtp ? seg.listen.address : seg.egress?.address);
  const seen = new Map<string, { leg: number; field: string }>();
  let twice = 0;
  const MAX_SAID = 5;
  // a group is sent to on an interface: the same group on two networks is two paths
  const via = (leg: number, address: string): string => (isMulticast(address) ? (leg === 0 ? segmentMulticast(seg) : legMulticast(seg, leg - 1)).interface ?? "" : "");
  const add = (leg: number, from: string, address: string, port: number, field: string): void => {
    const key = `${from}|${via(leg, address)}|${canonicalAddress(address)}|${port}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, { leg, field });
    else if (first.leg !== leg && ++twice <= MAX_SAID) {
      const name = (k: number): string => (k === 0 ? "leg 0's" : `leg '${seg.legs[k - 1]!.name}''s`);
      problems.push(`${field}: the same as ${first.field} (${address}:${port}), sent from the same address: its receiver would get ${name(leg)} packets and ${name(first.leg)} on one port (a dual-path copy twice, FEC in the media or its RTCP); give the leg another destination, or its own egress.address on another network`);
    }
  };
  seg.destinations.forEach((d, k) => {
    add(0, segmentFrom, d.address, d.port, `${at}.destinations[${k}]`);
    const rtcp = d.rtcpPort ?? (seg.rtcpMux ? d.port : d.port + 1);
    if (rtcp !== d.port) add(0, segmentFrom, d.address, rtcp, `${at}.destinations[${k}] (RTCP, port ${rtcp})`);
  });
  seg.legs.forEach((l, k) => {
    if (!l.send) return;
    const from = specified(l.egress?.address ?? seg.egress?.address);
    if (l.destinations) l.destinations.forEach((d, j) => add(k + 1, from, d.address, d.port, `${at}.legs[${k}].destinations[${j}]`));
    else if (l.portOffset !== undefined) {
      seg.destinations.forEach((d, j) => add(k + 1, from, d.address, d.port + l.portOffset!, `${at}.destinations[${j}] (leg '${l.name}', port + ${l.portOffset})`));
    }
  });
  if (twice > MAX_SAID) problems.push(`${at}: ${twice - MAX_SAID} more leg destinations the same as another leg's`);
  return problems;
}

/** What is wrong with a segment's legs: each must say where it receives and sends, in the segment's families. */
function legProblems(seg: SegmentConfig, at: string, egressFamily: number): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  seg.legs.forEach((l, k) => {
    const where = `${at}.legs[${k}]`;
    if (l.destinations) problems.push(...destinationListProblems(l.destinations, `${where}.destinations`));
    if (names.has(l.name)) problems.push(`${where}.name: duplicate leg name '${l.name}'`);
    if (l.name === "media") problems.push(`${where}.name: 'media' is leg 0's name (the segment's own port)`);
    names.add(l.name);
    if (!l.receive && !l.send) problems.push(`${where}: a leg that neither receives nor sends does nothing (receive and send are both false)`);
    if (l.redundant && !l.receive) problems.push(`${where}.redundant: a leg's packets count in the stream's ingress as they arrive, and this one has receive: false`);
    if (l.portOffset === 1 && !seg.rtcpMux) problems.push(`${where}.portOffset: port + 1 is RTCP's (without rtcpMux); FEC uses 2 and 4`);
    if (l.receive && l.listen === undefined && l.portOffset === undefined) problems.push(`${where}: a receiving leg needs listen or portOffset (or receive: false)`);
    if (l.send && l.destinations === undefined && l.portOffset === undefined) problems.push(`${where}: a sending leg needs destinations or portOffset (or send: false)`);
    const listen = legListen(seg, l);
    if (listen && listen.port > 65535) problems.push(`${where}.portOffset: listen.port + ${l.portOffset} is past 65535`);
    if (listen && isIP(listen.address) !== isIP(seg.listen.address)) problems.push(`${where}.listen.address: IPv${isIP(listen.address)}, but the segment listens on IPv${isIP(seg.listen.address)}`);
    if (l.listen?.interface !== undefined && (!listen || !isMulticast(listen.address))) problems.push(`${where}.listen.interface: only a multicast group is joined, and the leg ${listen ? `listens on ${listen.address}` : "does not receive"}`);
    else if (l.listen?.interface !== undefined) {
      const problem = interfaceProblem(l.listen.interface, isIP(listen!.address));
      if (problem) problems.push(`${where}.listen.interface: ${problem}`);
    }
    if (l.source && listen && isIP(l.source.address) !== isIP(listen.address)) problems.push(`${where}.source.address: IPv${isIP(l.source.address)}, but the leg listens on IPv${isIP(listen.address)}`);
    if (l.source && isMulticast(l.source.address)) problems.push(`${where}.source.address: ${l.source.address} is a multicast group; a sender's address is unicast`);
    if (l.egress && isMulticast(l.egress.address)) problems.push(`${where}.egress.address: ${l.egress.address} is a multicast group; a leg sends from a local unicast address`);
    const family = l.egress ? isIP(l.egress.address) : egressFamily;
    const out = legMulticast(seg, k);
    if (l.multicast && !l.send) problems.push(`${where}.multicast: the leg does not send (send: false), and multicast is how its egress socket sends; a group the leg receives is joined on listen.interface`);
    else if (l.multicast?.interface !== undefined) {
      const problem = interfaceProblem(l.multicast.interface, family);
      if (problem) problems.push(`${where}.multicast.interface: ${problem} (the leg sends from IPv${family})`);
    } else if (l.send && family !== egressFamily && out.field === "multicast.interface" && out.interface !== undefined) {
      problems.push(`${where}.egress.address: IPv${family}, but multicast.interface names an IPv${egressFamily} interface (the leg's egress socket could not send multicast from it); give the leg its own multicast.interface`);
    }
    if (l.send) {
      for (const [j, d] of (l.destinations ?? seg.destinations).entries()) {
        const field = l.destinations ? `${where}.destinations[${j}]` : `${at}.destinations[${j}]`;
        if (!l.destinations && d.port + l.portOffset! > 65535) problems.push(`${field}.port: port + ${l.portOffset} (leg '${l.name}') is past 65535`);
        if (isIP(d.address) !== family) problems.push(`${field}.address: IPv${isIP(d.address)}, but leg '${l.name}' sends from IPv${family}`);
      }
    }
  });
  return problems;
}

/** Where a segment receives: its listen socket (and RTCP's), its legs'. */
function receiveEndpoints(seg: SegmentConfig): LoopNode["receives"] {
  const out: LoopNode["receives"][number][] = [{ endpoint: seg.listen, what: "listen", carries: seg.rtcpMux ? "both" : "media" }];
  if (!seg.rtcpMux && seg.listen.port < 65535) out.push({ endpoint: { address: seg.listen.address, port: seg.listen.port + 1 }, what: "listen (RTCP, port + 1)", carries: "rtcp" });
  seg.legs.forEach((l, k) => {
    const listen = legListen(seg, l);
    if (listen) out.push({ endpoint: listen, what: `legs[${k}] (${l.name}) listen`, carries: "media" });
  });
  return out;
}

/** Where a segment sends: each destination (media, and RTCP at port + 1 or muxed), each sending leg's. */
function sendTargets(seg: SegmentConfig, at: string): LoopNode["sends"] {
  const out: LoopNode["sends"][number][] = [];
  const loopback = seg.multicast.loopback;
  seg.destinations.forEach((d, k) => {
    const field = `${at}.destinations[${k}]`;
    out.push({ endpoint: d, field, channel: "media", loopback });
    // where the segment sends a destination's RTCP (segment-runtime.ts): rtcpPort, else muxed or port + 1
    const rtcp = d.rtcpPort ?? (seg.rtcpMux ? d.port : d.port + 1);
    out.push({ endpoint: { address: d.address, port: rtcp }, field: rtcp === d.port ? field : `${field} (RTCP, port ${rtcp})`, channel: "rtcp", loopback });
  });
  seg.legs.forEach((l, k) => {
    if (!l.send) return;
    const legLoopback = legMulticast(seg, k).loopback;
    if (l.destinations) l.destinations.forEach((d, j) => out.push({ endpoint: d, field: `${at}.legs[${k}].destinations[${j}]`, channel: "media", loopback: legLoopback }));
    else if (l.portOffset !== undefined) {
      seg.destinations.forEach((d, j) => out.push({ endpoint: { address: d.address, port: d.port + l.portOffset! }, field: `${at}.destinations[${j}] (leg '${l.name}', port + ${l.portOffset})`, channel: "media", loopback: legLoopback }));
    }
  });
  return out;
}

/** Where a leg receives (null: it does not). */
export function legListen(seg: SegmentConfig, l: LegConfig): { address: string; port: number } | null {
  if (!l.receive) return null;
  if (l.listen) return { address: l.listen.address ?? seg.listen.address, port: l.listen.port };
  return l.portOffset === undefined ? null : { address: seg.listen.address, port: seg.listen.port + l.portOffset };
}

/** How an egress socket sends to multicast destinations, and which config field named its interface (for errors). */
export interface MulticastOut {
  readonly ttl: number;
  readonly loopback: boolean;
  /** IPv4: a local address; IPv6: an interface name, or with `ofEgress` the address whose interface it is; undefined: the route's. */
  readonly interface: string | undefined;
  /** The interface is the one that has the leg's own egress address (`interface` is that address). */
  readonly ofEgress: boolean;
  /** `multicast.interface`, `legs[1].multicast.interface` or `legs[1].egress.address`. */
  readonly field: string;
}

/** What the segment's own egress sockets (media and RTCP) get: its `multicast`. */
export function segmentMulticast(seg: SegmentConfig): MulticastOut {
  const m = seg.multicast;
  return { ttl: m.ttl, loopback: m.loopback, interface: m.interface, ofEgress: false, field: "multicast.interface" };
}

/**
 * What leg `k`'s egress socket gets (docs/proxy.md "Multicast", "A leg's path"): each key of the
 * leg's own `multicast` when set; else TTL and loopback are the segment's, and the interface is
 * the one that has the leg's own `egress.address` (a second path leaves on its own network, not
 * on the media's), or the segment's `multicast.interface` for a leg that sends from the segment's
 * address (FEC legs) or from an unspecified one.
 */
export function legMulticast(seg: SegmentConfig, k: number): MulticastOut {
  const l = seg.legs[k]!;
  const own = l.multicast;
  const base = { ttl: own?.ttl ?? seg.multicast.ttl, loopback: own?.loopback ?? seg.multicast.loopback };
  if (own?.interface !== undefined) return { ...base, interface: own.interface, ofEgress: false, field: `legs[${k}].multicast.interface` };
  if (l.egress && !isUnspecified(l.egress.address)) return { ...base, interface: l.egress.address, ofEgress: true, field: `legs[${k}].egress.address` };
  return { ...base, interface: seg.multicast.interface, ofEgress: false, field: "multicast.interface" };
}

function isUnspecified(address: string): boolean {
  const canonical = canonicalAddress(address);
  return canonical === "0.0.0.0" || canonical === "::" || canonical === "::ffff:0:0";
}

/** A multicast group a listen socket joins: on which interface (undefined: the kernel's choice), from which sender only (source-specific). */
export interface GroupJoin {
  readonly group: string;
  readonly interface: string | undefined;
  readonly source: string | undefined;
  /** The config field that names the group, for errors: `listen` or `legs[1].listen`. */
  readonly field: string;
}

/** The group the segment's listen sockets join (leg `k`'s when given), or null for a unicast listen address. */
export function groupJoin(seg: SegmentConfig, k?: number): GroupJoin | null {
  if (k === undefined) {
    if (!isMulticast(seg.listen.address)) return null;
    return { group: seg.listen.address, interface: seg.listen.interface, source: seg.source.address, field: "listen" };
  }
  const l = seg.legs[k]!;
  const at = legListen(seg, l);
  if (!at || !isMulticast(at.address)) return null;
  return { group: at.address, interface: l.listen?.interface ?? seg.listen.interface, source: l.source?.address ?? seg.source.address, field: l.listen ? `legs[${k}].listen` : "listen" };
}

/** The ports a segment binds that its config names (listen, egress when it names a port, and the legs'). */
export function fixedBinds(seg: SegmentConfig): { address: string; port: number; what: string }[] {
  const out = [{ address: seg.listen.address, port: seg.listen.port, what: "listen.port" }];
  if (!seg.rtcpMux && seg.listen.port < 65535) out.push({ address: seg.listen.address, port: seg.listen.port + 1, what: "listen.port (RTCP, port + 1)" });
  if (seg.egress && seg.egress.port !== 0) {
    out.push({ address: seg.egress.address, port: seg.egress.port, what: "egress.port" });
    if (!seg.rtcpMux) out.push({ address: seg.egress.address, port: seg.egress.port + 1, what: "egress.port (RTCP, port + 1)" });
  }
  seg.legs.forEach((l, k) => {
    const listen = legListen(seg, l);
    if (listen && listen.port <= 65535) out.push({ ...listen, what: `legs[${k}] (${l.name}) listen` });
    if (l.send && l.egress && l.egress.port !== 0) out.push({ address: l.egress.address, port: l.egress.port, what: `legs[${k}].egress.port` });
  });
  return out;
}

/** What about a segment forces new sockets (and so a brief gap): where it listens and sends from. */
export function socketsKey(seg: SegmentConfig): string {
  const legs = seg.legs.map((l, k) => [legListen(seg, l), l.send, l.egress ?? null, groupJoin(seg, k), l.multicast ?? null]);
  return JSON.stringify([seg.listen, seg.rtcpMux, seg.egress ?? null, seg.symmetricRtp, legs, groupJoin(seg), seg.multicast]);
}

/**
 * What a segment's filters are told of it when their contexts are made (ABI 1.9): whether a
 * destination is translated after the chain (its own `ssrc` or `payloadType`).
 */
export function segmentFlags(seg: SegmentConfig): number {
  return seg.destinations.some((d) => d.ssrc !== undefined || d.payloadType !== undefined) ? SegmentFlag.TranslatedDestinations : 0;
}

/** Reads a YAML or JSON config file. Throws ConfigError naming the file and the field. */
export async function loadProxyConfigFile(file: string): Promise<ProxyConfig> {
  return parseProxyConfig(await readConfigText(file), file);
}

/** A config file's text, validated as loadProxyConfigFile does (`file`: its path, for the format, the base folder and messages). */
export function parseProxyConfig(text: string, file: string): ProxyConfig {
  return validateProxyConfig(parseConfigDocument(text, file), dirname(resolve(file)), file);
}

/** The document in a YAML or JSON file (by its extension), unchecked. Throws ConfigError naming the file. */
export async function readConfigDocument(file: string): Promise<unknown> {
  return parseConfigDocument(await readConfigText(file), file);
}

/**
 * A config file's text. Throws ConfigError naming the file. Read no further than the size a config
 * may have: a file past it (a log written over it, a pipe or /dev/zero behind it) was read whole,
 * up to gigabytes or without end, before the size check refused it, in the running proxy on a reload.
 */
export async function readConfigText(file: string): Promise<string> {
  let bytes: Buffer | null;
  try {
    bytes = await readBounded(file, MAX_CONFIG_BYTES);
  } catch (err) {
    throw new ConfigError([`cannot read: ${(err as Error).message}`], file);
  }
  if (bytes === null) throw new ConfigError([`more than the ${MAX_CONFIG_BYTES >> 20} MiB a config or manifest may hold (read no further)`], file);
  return bytes.toString("utf8");
}

function parseConfigDocument(text: string, file: string): unknown {
  const json = file.endsWith(".json");
  try {
    return json ? parseJsonText(text) : yamlDocument(text);
  } catch (err) {
    if (err instanceof TextLimitError) throw new ConfigError([err.message], file);
    throw new ConfigError([`not valid ${json ? "JSON" : "YAML"}: ${parseErrorText(err)}`], file);
  }
}

/** The one YAML document in `text` as a value (null if none); throws its first error. */
function yamlDocument(text: string): unknown {
  const docs = parseYamlDocuments(text);
  if (docs.length > 1) throw new Error(`${docs.length} documents (separated by ---); a config is one`);
  const error = docs[0]?.errors[0];
  if (error) throw error;
  return docs[0]?.toJS() ?? null;
}
