// `msmctl apply -f FILE`, `msmctl delete segment NAME... | -f FILE` and `msmctl delete proxy NAME...`.
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { CliError } from "./client.js";
import type { Context } from "./context.js";
import { flagSet, flagValues, secondsFlag, UsageError } from "./flags.js";
import { render } from "./format.js";
import { ManifestError, manifestPath, parseManifests, toSegment, type ManifestOrigin, type SegmentManifest } from "./manifest.js";
import { resourceAndNames } from "./resources.js";
import { InseparableError, partFailure, splitNote, splitRequests, type Placed } from "./split.js";
import { loopDependencies } from "./loop-moves.js";
import { portDependencies } from "./port-moves.js";
import { outcomeLines, standingOutcomes, waitForProxies, type ProxyOutcome } from "./wait.js";
import type { ApplySegmentsResponse, DeleteSegmentsResponse } from "../../controlplane/api/proto.js";
import { REDACTED, secretValues } from "../../controlplane/security/secrets.js";

export interface Loaded {
  readonly manifest: SegmentManifest;
  readonly source: string;
  readonly origin: ManifestOrigin;
}

/** The files an -f names: a directory's .yaml, .yml and .json files (not its subdirectories), in name order, as kubectl reads one. */
async function expandDirectories(files: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const file of files) {
    const isDirectory = file !== "-" && (await stat(file).then((st) => st.isDirectory(), () => false));
    if (!isDirectory) {
      out.push(file);
      continue;
    }
    const inside = (await readdir(file, { withFileTypes: true }))
      .filter((e) => e.isFile() && /\.(ya?ml|json)$/.test(e.name))
      .map((e) => join(file, e.name))
      .sort();
    if (inside.length === 0) throw new CliError(`${file}: a directory without .yaml, .yml or .json files`);
    out.push(...inside);
  }
  return out;
}

/** Every manifest of every -f file (a directory's files), checked; a name in two files is refused too. */
async function loadFiles(ctx: Context, named: readonly string[]): Promise<Loaded[]> {
  if (named.filter((f) => f === "-").length > 1) throw new UsageError("-f - (stdin) can be given once");
  const files = await expandDirectories(named);
  const all: Loaded[] = [];
  const from = new Map<string, string>();
  const problems: string[] = [];
  for (const file of files) {
    const source = file === "-" ? "stdin" : file;
    const text = await ctx.readText(file);
    try {
      const { manifests, origins } = parseManifests(text, source);
      manifests.forEach((manifest, i) => {
        const other = from.get(manifest.metadata.name);
        if (other) problems.push(`${source}: segment '${manifest.metadata.name}' is also in ${other}`);
        from.set(manifest.metadata.name, source);
        all.push({ manifest, source, origin: origins[i]! });
      });
    } catch (err) {
      if (err instanceof ManifestError) problems.push(...err.problems);
      else throw err;
    }
  }
  if (problems.length > 0) throw new ManifestError(problems);
  return all;
}

/**
 * A key written into a manifest is stored by the control plane (and in its etcd) and sent to the
 * proxy; a reference the proxy resolves keeps it on the proxy's node only. Each inline one is named.
 */
export function inlineSecretWarnings(loaded: readonly Loaded[]): string[] {
  return loaded.flatMap((l) =>
    (l.manifest.spec.chain ?? []).flatMap((stage, j) =>
      ([["configJson", stage.config], ["rootConfigJson", stage.rootConfig]] as const).flatMap(([field, config]) =>
        secretValues(config ?? {})
          .filter((secret) => secret.value !== REDACTED)
          .map((secret) => `${l.source}: document ${l.origin.document}: ${manifestPath(`.chain[${j}].${field}`, l.origin.prefix)}${secret.path}: a secret given inline is kept by the control plane; ` +
            'prefer { $file: /path/on/the/proxy } or { $env: NAME }, which the proxy reads (docs/control-plane.md, "Keys")'),
      ),
    ),
  );
}

const REQUEST_PATH = /segments\[(\d+)\]((?:\.[A-Za-z_]+|\[\d+\])*)/g;

/**
 * The server's refusal of an ApplySegmentsRequest names request fields (`segments[2].listen.port`);
 * each line is turned back into the operator's file, document and manifest field.
 */
export function locateRefusal(details: string, loaded: readonly Loaded[]): string[] {
  return details
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((line) => {
      const where = (i: number): Loaded | undefined => loaded[i];
      // a field may carry a qualifier before its colon: `segments[3].listen.port (RTCP, port + 1): ...`
      const lead = /^segments\[(\d+)\]((?:\.[A-Za-z_]+|\[\d+\])*)((?: \([^()]*\))?): /.exec(line);
      let head = "";
      let rest = line;
      if (lead && where(Number(lead[1]))) {
        const l = where(Number(lead[1]))!;
        const path = manifestPath(lead[2]!, l.origin.prefix);
        const field = `${path}${lead[3]!}`.trimStart();
        head = `${l.source}: document ${l.origin.document}: ${field ? `${field}: ` : ""}`;
        rest = line.slice(lead[0].length);
      }
      rest = rest.replace(REQUEST_PATH, (m, i: string, path: string) => {
        const l = where(Number(i));
        return l ? `segment/${l.manifest.metadata.name}${path ? ` ${manifestPath(path)}` : ""}` : m;
      });
      return head + rest;
    });
}

/**
 * A proxy's refusal in the file's words: the agent names the snapshot's field and the segment
 * (`segments[0].chain[1].config_json: ... (segment 'cam-1')`, snapshot order, not the file's), so
 * each such part becomes `f.yaml: document 2: spec.chain[1].config: ...` for a segment of the files.
 */
export function locateProxyRefusal(text: string, loaded: readonly Loaded[]): string {
  return text.replace(/segments\[\d+\]((?:\.[a-z_]+|\[\d+\])*)(: (?:(?!; segments\[).)*?) \(segment '([^']*)'\)/g, (m, path: string, rest: string, name: string) => {
    const l = loaded.find((x) => x.manifest.metadata.name === name);
    return l ? `${l.source}: document ${l.origin.document}: ${manifestPath(path, l.origin.prefix)}${rest}` : m;
  });
}

/** What an apply stored, in one request or several. */
interface Applied {
  readonly created: string[];
  readonly configured: string[];
  readonly unchanged: string[];
  /** The revision of the last request, and of the first (the same in one request). */
  readonly revision: number;
  readonly firstRevision: number;
  /** Each changed segment's revision: the request that stored it. */
  readonly revisionOf: Map<string, number>;
  readonly requests: number;
  /** The store's limit when the change is, or would be (a dry run), sent in several requests. */
  readonly maxTxnOps: number;
}

/** What was applied before (none: undefined) and one more request's answer. */
function addAnswer(applied: Applied | undefined, res: ApplySegmentsResponse): Applied {
  const revisionOf = new Map(applied?.revisionOf);
  for (const n of [...res.created, ...res.configured]) revisionOf.set(n, res.revision);
  return {
    created: [...(applied?.created ?? []), ...res.created],
    configured: [...(applied?.configured ?? []), ...res.configured],
    unchanged: [...(applied?.unchanged ?? []), ...res.unchanged],
    revision: res.revision,
    firstRevision: applied?.firstRevision ?? res.revision,
    revisionOf,
    requests: (applied?.requests ?? 0) + 1,
    maxTxnOps: applied?.maxTxnOps ?? res.maxTxnOps,
  };
}

/** Prints, as a request's answer comes, each of its segments' outcome (table) or name (-o name). */
function printAnswer(ctx: Context, part: readonly Loaded[], res: ApplySegmentsResponse, dryRun: boolean): void {
  const names = part.map((l) => l.manifest.metadata.name);
  if (ctx.namesOnly) ctx.io.out(names.map((n) => `segment/${n}\n`).join(""));
  if (ctx.namesOnly || ctx.output !== "table") return;
  const outcome = new Map<string, string>();
  for (const n of res.created) outcome.set(n, "created");
  for (const n of res.configured) outcome.set(n, "configured");
  for (const n of res.unchanged) outcome.set(n, "unchanged");
  const suffix = dryRun ? " (dry run)" : "";
  ctx.io.out(names.map((n) => `segment/${n} ${outcome.get(n) ?? "applied"}${suffix}\n`).join(""));
}

/** The server's refusal of a request of `part`'s segments, in the files' words. */
function refusalText(ctx: Context, err: unknown, part: readonly Loaded[]): string {
  if (!(err instanceof CliError) || err.rpc?.code !== status.INVALID_ARGUMENT) return (err as Error).message;
  return [`the control plane at ${ctx.api().server} refused the segments:`, ...locateRefusal(err.rpc.details, part)].join("\n");
}

/**
 * Each segment placed for splitRequests: its proxy, the one it leaves, and the segments of the
 * files that must be stored no later than it (they hold a port it takes, or it would send into
 * them as they are: a loop), all as stored now.
 */
async function placeSegments(ctx: Context, loaded: readonly Loaded[]): Promise<Placed<Loaded>[]> {
  // every stored segment: one the files leave alone may carry packets from one of theirs to another
  const stored = (await ctx.api().listSegments({ proxy: "" })).segments;
  const storedProxy = new Map(stored.map((s) => [s.name, s.proxy]));
  const segments = loaded.map((l) => toSegment(l.manifest));
  const ports = portDependencies(segments, stored);
  const loops = loopDependencies(segments, stored);
  const needs = ports.map((p, i) => [...new Set([...p, ...loops[i]!])]);
  return loaded.map((l, i) => {
    const from = storedProxy.get(l.manifest.metadata.name);
    return { item: l, proxy: l.manifest.spec.proxy, needs: needs[i]!, ...(from !== undefined && from !== l.manifest.spec.proxy ? { leaves: from } : {}) };
  });
}

/** The requests an apply of `loaded` goes in; refused, before anything is written, when segments that must share a request cannot. */
async function applyRequests(ctx: Context, loaded: readonly Loaded[], maxOps: number): Promise<Loaded[][]> {
  try {
    return splitRequests(await placeSegments(ctx, loaded), maxOps);
  } catch (err) {
    if (!(err instanceof InseparableError)) throw err;
    const names = (err.items as Loaded[]).map((l) => l.manifest.metadata.name);
    const whose = err.proxies.length === 1 ? `proxy ${err.proxies[0]}` : `proxies ${err.proxies.join(", ")}`;
    throw new CliError([
      `the manifest is too large for one request, and ${names.length} segments of ${whose} depend on each other in a cycle (each takes a port another gives up, or sends into another as it is stored now): ` +
        `they can only be stored together, in one request of ${err.ops} store operations, more than the ${err.maxOps} the control plane's store takes in one transaction; nothing was applied`,
      `segments that must go together: ${names.join(", ")}`,
      "apply it in two steps: first move some of these segments to free ports (or apply fewer of them at a time, each swap whole), then apply the files again; or raise the store's limit (etcd --max-txn-ops)",
    ].join("\n"));
  }
}

/** Sends the files in requests of at most `maxOps` store operations, one after another; stops at the first that fails. */
async function applyInParts(ctx: Context, loaded: readonly Loaded[], maxOps: number): Promise<Applied> {
  const parts = await applyRequests(ctx, loaded, maxOps);
  let applied: Applied | undefined;
  for (const [k, part] of parts.entries()) {
    let res;
    try {
      res = await ctx.api().applySegments({ segments: part.map((l) => toSegment(l.manifest)), dryRun: false });
    } catch (err) {
      throw partFailure(err, k, parts.map((p) => p.map((l) => l.manifest.metadata.name)), "applied", refusalText(ctx, err, part));
    }
    printAnswer(ctx, part, res, false);
    applied = addAnswer(applied, res);
  }
  return { ...applied!, maxTxnOps: maxOps };
}

/** Sends the files in one request, or, when only the store's limit refuses it, in several. */
async function applyAll(ctx: Context, loaded: readonly Loaded[], dryRun: boolean): Promise<Applied> {
  let res;
  try {
    res = await ctx.api().applySegments({ segments: loaded.map((l) => toSegment(l.manifest)), dryRun, clientSplits: true });
  } catch (err) {
    if (err instanceof CliError && err.rpc?.maxTxnOps !== undefined) return applyInParts(ctx, loaded, err.rpc.maxTxnOps);
    if (err instanceof CliError && err.rpc?.code === status.INVALID_ARGUMENT) {
      throw new CliError([`the control plane at ${ctx.api().server} refused the segments; nothing was applied:`, ...locateRefusal(err.rpc.details, loaded)].join("\n"), err.rpc);
    }
    throw err;
  }
  // a dry run the store could not take in one transaction: how many a real apply would send (or why it could not)
  const requests = res.maxTxnOps > 0 ? (await applyRequests(ctx, loaded, res.maxTxnOps)).length : 1;
  printAnswer(ctx, loaded, res, dryRun);
  return { ...addAnswer(undefined, res), requests };
}

export async function applyCommand(ctx: Context): Promise<number> {
  const files = flagValues(ctx.args, "filename");
  if (files.length === 0) throw new UsageError("apply needs -f FILE (YAML or JSON; - for stdin)");
  if (ctx.words.length > 0) throw new UsageError(`apply takes no arguments besides -f, got '${ctx.words[0]}'`);
  const dryRun = flagSet(ctx.args, "dry-run");
  const wait = waitOption(ctx);
  if (wait && dryRun) throw new UsageError("--wait and --dry-run exclude each other: a dry run changes nothing to wait for");
  const loaded = await loadFiles(ctx, files);
  for (const line of inlineSecretWarnings(loaded)) ctx.io.err(`msmctl: warning: ${line}\n`);
  const manifests = loaded.map((l) => l.manifest);
  // a segment that moves to another proxy leaves its old one: that one must answer too
  const before = wait ? await proxiesOf(ctx, manifests.map((m) => m.metadata.name)) : new Map<string, string>();
  // what was stored shows before the wait: an interrupted or failed wait leaves it said
  const res = await applyAll(ctx, loaded, dryRun);
  const changed = [...res.created, ...res.configured];
  const inFileTerms = (o: ProxyOutcome): ProxyOutcome => (o.result === "refused" || o.result === "partial" ? { ...o, detail: locateProxyRefusal(o.detail, loaded) } : o);
  // a proxy the apply leaves as it is keeps its answer: a dry run says a refusal a real apply would meet
  const standing = dryRun ? (await standingOutcomes(ctx.api(), await untouchedProxies(ctx, manifests, res))).filter((o) => o.result !== "runs").map(inFileTerms) : [];
  const notes = (res.requests > 1 ? splitNote(res.requests, res.maxTxnOps, dryRun) : "") + (wait ? "" : pendingNote(manifests, changed, res, dryRun) ?? "") + standingNote(standing) +
    (wait ? "" : await strangerWarning(ctx, manifests, changed));
  let outcomes: ProxyOutcome[] | undefined;
  if (wait) {
    // each changed segment's proxy (and the one a moved segment leaves) for the revision that
    // stored it; an unchanged segment's proxy for whatever it is meant to run (a retried apply
    // after a refusal or a timeout must not pass because nothing changed this time)
    const targets = new Map<string, number>();
    for (const m of manifests) {
      const revision = res.revisionOf.get(m.metadata.name) ?? 0;
      for (const p of [m.spec.proxy, before.get(m.metadata.name) ?? m.spec.proxy]) targets.set(p, Math.max(targets.get(p) ?? 0, revision));
    }
    outcomes = (await waitForProxies(ctx.api(), targets, wait.timeoutMs, false, (line) => ctx.io.err(locateProxyRefusal(line, loaded)))).map(inFileTerms);
  }
  if (ctx.output !== "table") {
    const requests = res.requests > 1 ? { requests: res.requests } : {};
    const proxies = outcomes ?? (standing.length > 0 ? standing : undefined);
    ctx.io.out(render({ created: res.created, configured: res.configured, unchanged: res.unchanged, revision: res.revision, dryRun, ...requests, ...(proxies ? { proxies } : {}) }, ctx.output));
  } else if (outcomes || standing.length > 0) {
    const lines = outcomeLines(outcomes ?? standing, wait?.timeoutMs ?? 0);
    if (ctx.namesOnly) ctx.io.err(lines); // stdout holds only the names
    else ctx.io.out(lines);
  }
  if (notes) ctx.io.err(notes);
  return waitExit(outcomes ?? standing);
}

/**
 * A changed segment's proxy that never connected, where the control plane knows others: most often
 * a typo in spec.proxy, which is stored all the same and runs nowhere (--wait says so; without it
 * nothing did). Nothing when the control plane knows no proxy (segments applied before the fleet
 * starts), or the listing fails.
 */
async function strangerWarning(ctx: Context, manifests: readonly SegmentManifest[], changed: readonly string[]): Promise<string> {
  const wanted = [...new Set(manifests.filter((m) => changed.includes(m.metadata.name)).map((m) => m.spec.proxy))].sort();
  if (wanted.length === 0) return "";
  // a proxy is listed once segments name it; one that ever connected has been seen
  const known = await ctx.api().listProxies().then((r) => r.proxies.filter((p) => p.connected || Number(p.lastSeenMs) > 0).map((p) => p.nodeId).sort(), () => undefined);
  if (!known || known.length === 0) return "";
  return wanted
    .filter((p) => !known.includes(p))
    .map((p) => `msmctl: warning: proxy ${p} has never connected to this control plane (it knows ${known.join(", ")}): its segments run nowhere until a proxy with that node id connects; a typo in spec.proxy?\n`)
    .join("");
}

/** The proxies of the files' segments that an apply of them leaves alone: none of their segments is created, changed or moved away. */
async function untouchedProxies(ctx: Context, manifests: readonly SegmentManifest[], applied: Applied): Promise<string[]> {
  const changed = new Set([...applied.created, ...applied.configured]);
  const touched = new Set(manifests.filter((m) => changed.has(m.metadata.name)).map((m) => m.spec.proxy));
  if (applied.configured.length > 0) for (const from of (await proxiesOf(ctx, applied.configured)).values()) touched.add(from);
  const untouched = [...new Set(manifests.map((m) => m.spec.proxy))].filter((p) => !touched.has(p));
  return untouched;
}

/** Why a dry run fails: a proxy it leaves alone refuses (or runs without some of) what it is meant to run, as a real apply would find. */
function standingNote(standing: readonly ProxyOutcome[]): string {
  return standing
    .map((o) => `msmctl: this apply changes nothing on proxy ${o.proxy}, so a real apply meets what it answers now: ${o.result === "refused" ? "refused" : "runs without some segments"} (apply --wait exits 1); change what its reason names\n`)
    .join("");
}

/** --wait and its timeout, or undefined without --wait. */
function waitOption(ctx: Context): { timeoutMs: number } | undefined {
  const timeoutMs = secondsFlag(ctx.args, "wait-timeout", 60, 1, 3600);
  if (!flagSet(ctx.args, "wait")) {
    if (ctx.args.flags.has("wait-timeout")) throw new UsageError("--wait-timeout goes with --wait");
    return undefined;
  }
  return { timeoutMs };
}

/** Each named segment's proxy as stored now (a name not stored yet has none). */
async function proxiesOf(ctx: Context, names: readonly string[]): Promise<Map<string, string>> {
  const wanted = new Set(names);
  return new Map((await ctx.api().listSegments({ proxy: "" })).segments.filter((s) => wanted.has(s.name)).map((s) => [s.name, s.proxy]));
}

/** 1 when a proxy waited for did not run the change whole. */
function waitExit(outcomes: readonly ProxyOutcome[] | undefined): number {
  return outcomes?.some((o) => o.result !== "runs") ? 1 : 0;
}

/**
 * What an apply does not tell: the control plane checks a segment with the proxy's rules, but a
 * filter checks its own config only on the proxy, when it applies the snapshot (the server runs no
 * filters). So a change is stored, not yet accepted; the proxy's ACK or NACK says so later.
 */
function pendingNote(manifests: readonly SegmentManifest[], changed: readonly string[], applied: Applied, dryRun: boolean): string | undefined {
  const proxies = [...new Set(manifests.filter((m) => changed.includes(m.metadata.name)).map((m) => m.spec.proxy))].sort();
  if (proxies.length === 0) return undefined;
  if (dryRun) return "msmctl: note: a dry run checks what the control plane can; each filter checks its own config only on its proxy, when the change is applied\n";
  const who = proxies.length === 1 ? `proxy ${proxies[0]} has` : `proxies ${proxies.join(", ")} have`;
  const { firstRevision: first, revision: last } = applied;
  // in several requests, each proxy's DESIRED is the revision of the last request that changed it
  const stored = first === last ? `revision ${last}` : `revisions ${first} to ${last}`;
  const shows = first === last ? `ACKED ${last} or NACKED` : "ACKED (its DESIRED revision) or NACKED";
  return `msmctl: note: stored as ${stored}; ${who} not accepted it yet, and a filter may still refuse its config there: 'msmctl get proxies' shows ${shows}\n`;
}

/** What a delete removed, in one request or several: each name with the revision of the request that removed it. */
interface Deleted {
  readonly deleted: string[];
  readonly revision: number;
  readonly revisionOf: Map<string, number>;
  readonly requests: number;
  readonly maxTxnOps: number;
}

/** Prints, as a request's answer comes, each segment it deleted (table and -o name). */
function printDeleted(ctx: Context, res: DeleteSegmentsResponse): void {
  if (ctx.output === "table") ctx.io.out(res.deleted.map((n) => (ctx.namesOnly ? `segment/${n}\n` : `segment/${n} deleted\n`)).join(""));
}

/** Deletes `names` in requests of at most `maxOps` store operations, a proxy's segments together, one after another. */
async function deleteInParts(ctx: Context, names: readonly string[], maxOps: number): Promise<Deleted> {
  const stored = await proxiesOf(ctx, names);
  const parts = splitRequests(names.map((n) => ({ item: n, proxy: stored.get(n) ?? "" })), maxOps);
  const revisionOf = new Map<string, number>();
  let revision = 0;
  for (const [k, part] of parts.entries()) {
    let res;
    try {
      res = await ctx.api().deleteSegments({ names: part });
    } catch (err) {
      throw partFailure(err, k, parts, "deleted", (err as Error).message);
    }
    printDeleted(ctx, res);
    for (const n of res.deleted) revisionOf.set(n, res.revision);
    revision = res.revision;
  }
  return { deleted: [...revisionOf.keys()], revision, revisionOf, requests: parts.length, maxTxnOps: maxOps };
}

/** Deletes `names` in one request, or, when only the store's limit refuses it, in several. */
async function deleteAll(ctx: Context, names: string[]): Promise<Deleted> {
  let res;
  try {
    res = await ctx.api().deleteSegments({ names });
  } catch (err) {
    if (err instanceof CliError && err.rpc?.maxTxnOps !== undefined) return deleteInParts(ctx, names, err.rpc.maxTxnOps);
    if (err instanceof CliError && err.rpc?.code === status.NOT_FOUND) {
      throw new CliError(`${err.rpc.details || "not found; nothing was deleted"} (--ignore-not-found deletes those that exist)`, err.rpc);
    }
    throw err;
  }
  printDeleted(ctx, res);
  return { deleted: res.deleted, revision: res.revision, revisionOf: new Map(res.deleted.map((n) => [n, res.revision])), requests: 1, maxTxnOps: 0 };
}

/**
 * `delete proxy NAME...`: forgets proxies gone for good (a decommissioned node stays listed, and
 * counted as disconnected, until then). The control plane refuses one that is connected or that
 * segments name, and deletes all or none.
 */
async function deleteProxies(ctx: Context, names: string[]): Promise<number> {
  if (names.length === 0) throw new UsageError("delete proxy needs at least one NAME");
  for (const f of ["wait", "wait-timeout"]) if (flagSet(ctx.args, f)) throw new UsageError(`--${f} applies to segments: a deleted proxy runs nothing to wait for`);
  let unique = [...new Set(names)];
  if (flagSet(ctx.args, "ignore-not-found")) {
    const known = new Set((await ctx.api().listProxies()).proxies.map((p) => p.nodeId));
    unique = unique.filter((n) => known.has(n));
    if (unique.length === 0) return 0;
  }
  const res = await ctx.api().deleteProxies({ nodeIds: unique });
  if (ctx.output !== "table") ctx.io.out(render({ deleted: res.deleted }, ctx.output));
  else ctx.io.out(res.deleted.map((n) => (ctx.namesOnly ? `proxy/${n}\n` : `proxy/${n} deleted\n`)).join(""));
  return 0;
}

export async function deleteCommand(ctx: Context): Promise<number> {
  const files = flagValues(ctx.args, "filename");
  let names: string[];
  if (files.length > 0) {
    if (ctx.words.length > 0) throw new UsageError("delete takes either -f FILE or segment NAME..., not both");
    names = (await loadFiles(ctx, files)).map((l) => l.manifest.metadata.name);
  } else {
    const parsed = resourceAndNames(ctx.words, ["segments", "proxies"], "delete");
    if (parsed.resource === "proxies") return deleteProxies(ctx, parsed.names);
    if (parsed.names.length === 0) throw new UsageError("delete segment needs at least one NAME (or -f FILE)");
    names = [...new Set(parsed.names)];
  }
  const wait = waitOption(ctx);
  const api = ctx.api();
  // what is stored now: for --wait, where each segment runs; for --ignore-not-found, what exists
  const before = wait || flagSet(ctx.args, "ignore-not-found") ? await proxiesOf(ctx, names) : new Map<string, string>();
  if (flagSet(ctx.args, "ignore-not-found")) {
    // the server deletes all the names or none: ask only for those that exist
    names = names.filter((n) => before.has(n));
    if (names.length === 0) return 0;
  }
  const res = await deleteAll(ctx, names);
  const missing = names.filter((n) => !res.deleted.includes(n));
  const targets = new Map<string, number>();
  for (const [n, revision] of res.revisionOf) {
    const p = before.get(n);
    if (p !== undefined) targets.set(p, Math.max(targets.get(p) ?? 0, revision));
  }
  const outcomes = wait ? await waitForProxies(api, targets, wait.timeoutMs, true, (line) => ctx.io.err(line)) : undefined;
  if (ctx.output !== "table") {
    const requests = res.requests > 1 ? { requests: res.requests } : {};
    ctx.io.out(render({ deleted: res.deleted, notFound: missing, revision: res.revision, ...requests, ...(outcomes ? { proxies: outcomes } : {}) }, ctx.output));
  } else if (outcomes) {
    const lines = outcomeLines(outcomes, wait!.timeoutMs);
    if (ctx.namesOnly) ctx.io.err(lines); // stdout holds only the names
    else ctx.io.out(lines);
  }
  if (res.requests > 1) ctx.io.err(splitNote(res.requests, res.maxTxnOps, false));
  if (missing.length > 0 && !flagSet(ctx.args, "ignore-not-found")) {
    throw new CliError(missing.map((n) => `segment "${n}" not found`).join("\n"));
  }
  return waitExit(outcomes);
}
