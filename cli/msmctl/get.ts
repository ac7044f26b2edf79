// `msmctl get segments|proxies|filters|streams [NAME...]`: a table, or whole objects with -o json|yaml.
import { unknownListedFields, type FilterRef, type ProxyStatus, type Segment } from "../../controlplane/api/proto.js";
import { CliError, type ReplicaCopy } from "./client.js";
import type { Context } from "./context.js";
import { flag, flagSet } from "./flags.js";
import { REDACTED } from "../../controlplane/security/secrets.js";
import { printable } from "../../controlplane/security/terminal.js";
import { notRunningParts } from "../../controlplane/api/held-back.js";
import { age, bytes, endpoint, listCell, render, table, truncate } from "./format.js";
import { API_VERSION, refusalInManifestTerms, toManifest } from "./manifest.js";
import { resourceAndNames, SINGULAR, type Resource } from "./resources.js";
import { UsageError } from "./flags.js";
import { getStreams } from "./streams.js";

export function chainCell(seg: Segment): string {
  if (seg.chain.length === 0) return "-";
  return seg.chain.map((st) => (st.version ? `${st.filter}@${st.version}` : st.filter)).join(",");
}

/** A row per segment; `wide` (-o wide): every destination and leg, and the source, egress, RTCP and failure columns. */
export function segmentRows(segments: readonly Segment[], wide = false): string[][] {
  const all = wide ? Infinity : undefined;
  return segments.map((s) => {
    const row = [s.name, s.proxy || "-", endpoint(s.listen), listCell(s.destinations.map((d) => endpoint(d)), all), listCell(s.legs.map((l) => l.name), all ?? 3), chainCell(s), String(s.revision)];
    if (wide) row.splice(5, 0, sourceCell(s), endpoint(s.egress), s.rtcpMux ? "mux" : "port+1", s.failure?.mode || "closed");
    return row;
  });
}

export const SEGMENT_HEADERS = ["NAME", "PROXY", "LISTEN", "DESTINATIONS", "LEGS", "CHAIN", "REVISION"];
export const SEGMENT_WIDE_HEADERS = ["NAME", "PROXY", "LISTEN", "DESTINATIONS", "LEGS", "SOURCE", "EGRESS", "RTCP", "FAILURE", "CHAIN", "REVISION"];

/** The sender a segment admits: an address (any port), an address and port, or anyone ("-"). */
function sourceCell(s: Segment): string {
  if (!s.source || s.source.address === "") return "-";
  return s.source.port ? endpoint(s.source) : s.source.address;
}

/** The part of a NACK's text that says what was refused, for a narrow cell: a leading "snapshot N: " or "snapshot N not applied...: " is dropped. */
export function nackReason(error: string): string {
  return refusalInManifestTerms(error.replace(/^snapshot \d+(?: not applied[^:]*)?: /, ""));
}

/**
 * Whether the proxy's last refusal stands. The control plane clears it when the proxy acknowledges
 * a version as new; a refusal of version 0 (a control plane on an empty store, older than what the
 * proxy runs) is one too, known by its reason.
 */
export function hasNack(p: ProxyStatus): boolean {
  return p.nackedVersion > 0 || p.nackError !== "";
}

/** The version a proxy acked, and how many of its segments run nothing, or their previous version (a refused change). */
function ackedCell(p: ProxyStatus): string {
  const { down, held } = notRunningParts(p.notRunning, p.notRunningError);
  const notes = [...(down.length > 0 ? [`${down.length} not running`] : []), ...(held.length > 0 ? [`${held.length} on previous version`] : [])];
  return notes.length > 0 ? `${p.ackedVersion} (${notes.join(", ")})` : String(p.ackedVersion);
}

/** A row per proxy; `wide` (-o wide): the refusal in full, and the peer, runtime, workers, ABI and segments not running. */
export function proxyRows(proxies: readonly ProxyStatus[], now = Date.now(), wide = false): string[][] {
  return proxies.map((p) => {
    const row = [
      p.nodeId,
      p.connected ? "yes" : "no",
      p.server || "-",
      String(p.desiredVersion),
      ackedCell(p),
      hasNack(p) ? `${p.nackedVersion}${p.nackError ? `: ${wide ? nackReason(p.nackError).replace(/\s+/g, " ") : truncate(nackReason(p.nackError), 40)}` : ""}` : "-",
      age(p.lastSeenMs, now),
    ];
    if (wide) {
      const capability = (key: string): string => p.capabilities.find((c) => c.startsWith(`${key}=`))?.slice(key.length + 1) ?? "-";
      const { down } = notRunningParts(p.notRunning, p.notRunningError);
      row.splice(6, 0, p.peer || "-", capability("runtime"), capability("workers"), listCell(p.abiVersions, Infinity), listCell(down, Infinity));
    }
    return row;
  });
}

export const PROXY_HEADERS = ["NODE", "CONNECTED", "SERVER", "DESIRED", "ACKED", "NACKED", "LAST-SEEN"];
export const PROXY_WIDE_HEADERS = ["NODE", "CONNECTED", "SERVER", "DESIRED", "ACKED", "NACKED", "PEER", "RUNTIME", "WORKERS", "ABI", "NOT-RUNNING", "LAST-SEEN"];

/** A row per filter version; `wide` (-o wide): the whole digest, to compare with sha256sum. */
export function filterRows(filters: readonly FilterRef[], now = Date.now(), wide = false): string[][] {
  return filters.map((f) => [f.name, f.version || "-", wide ? f.sha256 : f.sha256.slice(0, 12), bytes(f.size), age(f.pushedAtMs, now)]);
}

export const FILTER_HEADERS = ["NAME", "VERSION", "SHA256", "SIZE", "AGE"];

/** The chosen items, in the order asked, and the names that match nothing. */
function pick<T>(items: readonly T[], names: readonly string[], matches: (item: T, name: string) => boolean): { chosen: T[]; missing: string[] } {
  if (names.length === 0) return { chosen: [...items], missing: [] };
  const chosen: T[] = [];
  const missing: string[] = [];
  for (const n of names) {
    const found = items.filter((i) => matches(i, n));
    if (found.length === 0) missing.push(n);
    for (const f of found) if (!chosen.includes(f)) chosen.push(f);
  }
  return { chosen, missing };
}

/** After what was found is printed (as kubectl does): a name that matched nothing is an error. */
function missingError(missing: readonly string[], kind: string): number {
  if (missing.length > 0) throw new CliError(missing.map((n) => `${kind} "${n}" not found`).join("\n"));
  return 0;
}

/** One object as itself; several (or a listing) as a List. */
function listOrOne(items: readonly unknown[], single: boolean): unknown {
  return single && items.length === 1 ? items[0] : { apiVersion: API_VERSION, kind: "List", items };
}

function print(ctx: Context, headers: string[], rows: string[][], objects: unknown[], single: boolean, kind: Resource, ids: readonly string[]): void {
  if (ctx.namesOnly) ctx.io.out(ids.map((id) => `${SINGULAR[kind]}/${id}\n`).join(""));
  else if (ctx.output !== "table") ctx.io.out(render(listOrOne(objects, single), ctx.output));
  else if (rows.length === 0) ctx.io.err(`No ${kind} found.\n`);
  else ctx.io.out(table(headers, rows));
}

export async function getCommand(ctx: Context): Promise<number> {
  const { resource, names } = resourceAndNames(ctx.words, ["segments", "proxies", "filters", "streams"], "get");
  const single = names.length === 1;
  const proxyFilter = flag(ctx.args, "proxy");
  if (proxyFilter !== undefined && resource !== "segments" && resource !== "streams") throw new UsageError("--proxy applies to get segments and get streams");
  if (flagSet(ctx.args, "bad") && resource !== "streams") throw new UsageError("--bad applies to get streams");
  switch (resource) {
    case "segments": {
      const listing = await ctx.api().listSegments({ proxy: proxyFilter ?? "", showSecrets: flagSet(ctx.args, "show-secrets"), allowCopy: true });
      const { segments } = listing;
      noteReplicaCopy(ctx, listing, "segments");
      const { chosen, missing } = pick(sortBy(segments, (s) => s.name), names, (s, n) => s.name === n);
      if (chosen.length > 0 || missing.length === 0) print(ctx, ctx.wide ? SEGMENT_WIDE_HEADERS : SEGMENT_HEADERS, segmentRows(chosen, ctx.wide), chosen.map(toManifest), single, "segments", chosen.map((s) => s.name));
      noteRedacted(ctx, chosen);
      noteNewerSettings(ctx, chosen);
      return missingError(missing, SINGULAR.segments);
    }
    case "proxies": {
      const { proxies } = await ctx.api().listProxies();
      const { chosen, missing } = pick(sortBy(proxies, (p) => p.nodeId), names, (p, n) => p.nodeId === n);
      if (chosen.length > 0 || missing.length === 0) print(ctx, ctx.wide ? PROXY_WIDE_HEADERS : PROXY_HEADERS, proxyRows(chosen, Date.now(), ctx.wide), chosen, single, "proxies", chosen.map((p) => p.nodeId));
      return missingError(missing, SINGULAR.proxies);
    }
    case "filters": {
      const listing = await ctx.api().listFilters({ allowCopy: true });
      const { filters } = listing;
      noteReplicaCopy(ctx, listing, "filters");
      const sorted = sortBy(filters, (f) => `${f.name}\u0000${String(f.pushedAtMs).padStart(16, "0")}`);
      const { chosen, missing } = pick(sorted, names, (f, n) => f.name === n || `${f.name}@${f.version}` === n);
      if (chosen.length > 0 || missing.length === 0) print(ctx, FILTER_HEADERS, filterRows(chosen, Date.now(), ctx.wide), chosen, single && names[0]!.includes("@"), "filters", chosen.map((f) => `${f.name}@${f.version}`));
      return missingError(missing, SINGULAR.filters);
    }
    case "streams":
      if (ctx.namesOnly) throw new UsageError("-o name applies to get segments, proxies and filters");
      if (ctx.wide) throw new UsageError("-o wide applies to get segments, proxies and filters (describe stream NAME shows every hop)");
      return getStreams(ctx, names, proxyFilter ?? "", flagSet(ctx.args, "bad"));
  }
}

/** Says on stderr that a listing is the control plane's copy, read while its store did not answer. */
export function noteReplicaCopy(ctx: Context, listing: ReplicaCopy, what: string): void {
  if (listing.storeUnreachable === "") return;
  ctx.io.err(`msmctl: warning: the control plane at ${ctx.api().server} could not read its store (${printable(listing.storeUnreachable)}): ` +
    `these ${what} are its copy of the desired state as of store revision ${listing.copyRevision}, as it last saw the store; ` +
    "a change written through another replica since then may not be in it\n");
}

/** Says on stderr when secret values were hidden (a backup made with -o yaml needs them). */
export function noteRedacted(ctx: Context, segments: readonly Segment[]): void {
  if (segments.some((s) => s.chain.some((st) => `${st.configJson}${st.rootConfigJson ?? ""}`.includes(JSON.stringify(REDACTED))))) {
    ctx.io.err(`msmctl: secret-looking config values are shown as ${REDACTED}; --show-secrets prints them (apply refuses the placeholder)\n`);
  }
}

/** Segments with settings this msmctl does not know (a newer control plane): not shown, and applying the output back would remove them. */
export function noteNewerSettings(ctx: Context, segments: readonly Segment[]): void {
  for (const s of segments) {
    const fields = unknownListedFields(s);
    if (fields.length === 0) continue;
    ctx.io.err(`msmctl: warning: segment ${printable(s.name)} has settings this msmctl does not know (${fields.slice(0, 5).map((f) => printable(f)).join("; ")}${fields.length > 5 ? `; and ${fields.length - 5} more` : ""}): ` +
      "they are not shown, and applying this output back would remove them; the control plane is newer than this msmctl: upgrade msmctl\n");
  }
}

function sortBy<T>(items: readonly T[], key: (item: T) => string): T[] {
  return [...items].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}
