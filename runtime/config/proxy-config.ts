// The proxy's config: its schema, its defaults, and errors that name the field.
// zod is used because it reports every problem with its path, which is what an operator needs
// from a config error, and rejects unknown keys (a typo must not be silently ignored).
import { isIP } from "node:net";
import { readFile } from "node:fs/promises";
import { resolve, dirname, isAbsolute } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { DEFAULT_FAILURE_POLICY, DEFAULT_STAGE_LIMITS } from "../chain/filter-pool.js";
import { MAX_CHAIN_LENGTH } from "../chain/chain-runner.js";
import { EndpointClaims } from "./endpoints.js";
import { checkSecretReferences } from "./secrets.js";

const address = z.string().refine((s) => isIP(s) !== 0, { message: "must be an IPv4 or IPv6 address" });
const port = z.number().int().min(1).max(65535);
const portOrZero = z.number().int().min(0).max(65535);
const jsonObject = z.record(z.string(), z.unknown());

const endpoint = z.strictObject({ address, port });

const destination = z.strictObject({
  address,
  port,
  /** Where RTCP goes; default port + 1 (or port itself with rtcpMux). */
  rtcpPort: port.optional(),
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
  address: address.optional(),
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

const stage = z.strictObject({
  filter: z.string().min(1),
  config: jsonObject.default({}),
});

const segment = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, "must be 1-63 letters, digits, '.', '_' or '-'"),
  /** Where the sender sends RTP; RTCP on port + 1 unless rtcpMux. */
  listen: endpoint,
  rtcpMux: z.boolean().default(false),
  /** The local address (and optionally port) the proxy sends from; receivers send feedback here. */
  egress: z.strictObject({ address, port: portOrZero.default(0) }).optional(),
  destinations: z.array(destination).min(1),
  source: source.default(() => ({ ...SOURCE_DEFAULTS })),
  /** Who may send feedback (RTCP) to the egress sockets: the destinations' addresses only, or anyone. */
  feedbackFrom: z.enum(["destinations", "any"]).default("destinations"),
  chain: z.array(stage).max(MAX_CHAIN_LENGTH).default([]),
  failure: failurePolicy.default(() => ({ ...DEFAULT_FAILURE_POLICY })),
  /** Pin the segment to a worker; default: spread by name. */
  worker: z.number().int().min(0).optional(),
});

const filterEntry = z.strictObject({
  path: z.string().min(1),
  sha256: z.string().regex(/^(sha256:)?[0-9a-fA-F]{64}$/, "must be 64 hex digits, optionally prefixed with 'sha256:'").optional(),
  config: jsonObject.default({}),
  maxMemoryPages: z.number().int().min(1).max(65536).default(256),
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
  watchdog: z.strictObject({ stuckMs: z.number().int().min(10).max(60_000).default(500) }).default({ stuckMs: 500 }),
  admin: z.strictObject({ address: address.default("127.0.0.1"), port: portOrZero }).optional(),
  /** Kernel receive buffer per socket, bytes. */
  socketReceiveBuffer: z.number().int().min(65_536).max(64 << 20).default(4 << 20),
  /** How often every stage's state is saved, for a filter or worker restart to carry it; 0: never. */
  stateCheckpointMs: z.number().int().min(0).max(3_600_000).default(1000),
  filters: z.record(z.string(), filterEntry).default({}),
  segments: z.array(segment).default([]),
});

export type ProxyConfig = z.infer<typeof proxyConfigSchema>;
export type SegmentConfig = z.infer<typeof segment>;
export type FilterEntry = z.infer<typeof filterEntry>;
export type ProxyConfigInput = z.input<typeof proxyConfigSchema>;

/** A config that cannot be used; `issues` name each field by path (`segments[0].listen.port`). */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly issues: readonly string[], readonly source = "config") {
    super(`${source}: ${issues.length === 1 ? issues[0] : `\n  ${issues.join("\n  ")}`}`);
  }
}

function pathString(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out === "" ? String(p) : `.${String(p)}`;
  return out || "(top level)";
}

/** Validates a parsed config; resolves filter paths against baseDir. Throws ConfigError. */
export function validateProxyConfig(input: unknown, baseDir = process.cwd(), source = "config"): ProxyConfig {
  const result = proxyConfigSchema.safeParse(input ?? {});
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((i) => {
        const keys = i.code === "unrecognized_keys" ? ` (${(i as { keys: string[] }).keys.join(", ")})` : "";
        return `${pathString(i.path)}: ${i.message}${keys}`;
      }),
      source,
    );
  }
  const config = result.data;
  const problems: string[] = [];
  const names = new Set<string>();
  const ports = new EndpointClaims<string>();
  for (const name of Object.keys(config.filters)) {
    if (!/^[a-z][a-z0-9_-]{0,62}$/.test(name)) problems.push(`filters.${name}: filter names are lower-case letters, digits, '_' and '-', starting with a letter`);
  }
  const claim = (address: string, port: number, what: string): void => {
    const owner = ports.claim({ address, port }, what);
    if (owner) problems.push(`${what}: port already used by ${owner}`);
  };
  config.segments.forEach((seg, i) => {
    const at = `segments[${i}]`;
    if (names.has(seg.name)) problems.push(`${at}.name: duplicate segment name '${seg.name}'`);
    names.add(seg.name);
    if (!seg.rtcpMux && seg.listen.port === 65535) problems.push(`${at}.listen.port: RTCP needs port + 1; use rtcpMux or a lower port`);
    // a segment's sockets are of one family: IPv4 sockets cannot send to IPv6 addresses, nor the reverse
    const family = isIP(seg.egress?.address ?? seg.listen.address);
    const from = seg.egress ? "egress.address" : "listen.address";
    seg.destinations.forEach((d, k) => {
      if (isIP(d.address) !== family) problems.push(`${at}.destinations[${k}].address: IPv${isIP(d.address)}, but the segment sends from IPv${family} (${from}); give an egress.address of the destinations' family`);
    });
    if (seg.source.address !== undefined && isIP(seg.source.address) !== isIP(seg.listen.address)) {
      problems.push(`${at}.source.address: IPv${isIP(seg.source.address)}, but the segment listens on IPv${isIP(seg.listen.address)}`);
    }
    for (const bind of fixedBinds(seg)) claim(bind.address, bind.port, `${at}.${bind.what}`);
    if (seg.worker !== undefined && seg.worker >= config.workers) {
      problems.push(`${at}.worker: ${seg.worker} but there are only ${config.workers} workers`);
    }
    const seen = new Set<string>();
    seg.chain.forEach((st, j) => {
      if (!(st.filter in config.filters)) problems.push(`${at}.chain[${j}].filter: unknown filter '${st.filter}' (not under filters:)`);
      if (seen.has(st.filter)) problems.push(`${at}.chain[${j}].filter: '${st.filter}' appears twice in one chain`);
      seen.add(st.filter);
    });
  });
  problems.push(...checkSecretReferences(config, baseDir));
  if (problems.length > 0) throw new ConfigError(problems, source);
  for (const entry of Object.values(config.filters)) {
    if (!isAbsolute(entry.path)) entry.path = resolve(baseDir, entry.path);
  }
  return config;
}

/** The ports a segment binds that its config names (listen, and egress when it names a port). */
export function fixedBinds(seg: SegmentConfig): { address: string; port: number; what: string }[] {
  const out = [{ address: seg.listen.address, port: seg.listen.port, what: "listen.port" }];
  if (!seg.rtcpMux && seg.listen.port < 65535) out.push({ address: seg.listen.address, port: seg.listen.port + 1, what: "listen.port (RTCP, port + 1)" });
  if (seg.egress && seg.egress.port !== 0) {
    out.push({ address: seg.egress.address, port: seg.egress.port, what: "egress.port" });
    if (!seg.rtcpMux) out.push({ address: seg.egress.address, port: seg.egress.port + 1, what: "egress.port (RTCP, port + 1)" });
  }
  return out;
}

/** What about a segment forces new sockets (and so a brief gap): where it listens and sends from. */
export function socketsKey(seg: SegmentConfig): string {
  return JSON.stringify([seg.listen, seg.rtcpMux, seg.egress ?? null]);
}

/** Reads a YAML or JSON config file. Throws ConfigError naming the file and the field. */
export async function loadProxyConfigFile(file: string): Promise<ProxyConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new ConfigError([`cannot read: ${(err as Error).message}`], file);
  }
  let parsed: unknown;
  try {
    parsed = file.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError([`not valid ${file.endsWith(".json") ? "JSON" : "YAML"}: ${(err as Error).message}`], file);
  }
  return validateProxyConfig(parsed, dirname(resolve(file)), file);
}
