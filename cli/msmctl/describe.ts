// `msmctl describe segment NAME` / `describe proxy NODE`: everything about one object in a form a
// person reads: its spec, whether its proxy runs it (and why not: the NACK's reason), its counters.
import { heldBackOf, notRunningParts } from "../../controlplane/api/held-back.js";
import { newestVersion } from "../../controlplane/api/versions.js";
import { status } from "@grpc/grpc-js";
import type { ChainStage, Endpoint, FilterRef, Leg, ProxyStatus, Segment } from "../../controlplane/api/proto.js";
import { DEFAULT_FAILURE_POLICY, isMulticast } from "../../runtime/index.js";
import { CliError, type AdminApi } from "./client.js";
import type { Context } from "./context.js";
import { flagSet, UsageError } from "./flags.js";
import { printable } from "../../controlplane/security/terminal.js";
import { age, bytes, endpoint, fields, hostPort, render, table } from "./format.js";
import { hasNack, noteNewerSettings, noteRedacted, segmentRows, SEGMENT_HEADERS } from "./get.js";
import { refusalInManifestTerms, toManifest } from "./manifest.js";
import { resourceAndNames } from "./resources.js";
import type { StreamPath } from "../../controlplane/api/streams.js";
import { describeStream, pathsThrough, streamThroughText } from "./streams.js";
import { mergeStatsPages, notCurrent, reportCaveat, type HistogramSummary, type ProxyCounters, type SegmentCounters, type StageMetric } from "./stats.js";

function when(ms: number, now: number): string {
  return ms ? `${age(ms, now)} ago (${new Date(ms).toISOString()})` : "never";
}

/** Where the proxy is with its config: running the newest, applying, or refusing it. */
export function configState(p: ProxyStatus): string {
  // a refusal below the acked version: the proxy runs a newer one than this store has (a new or wrong store)
  if (hasNack(p) && p.nackedVersion >= p.desiredVersion && p.nackedVersion !== p.ackedVersion) {
    return `REFUSED version ${p.nackedVersion}${p.nackRetryAtMs > 0 ? " (the proxy tries it again)" : ""}; runs ${p.ackedVersion ? `version ${p.ackedVersion}` : "nothing from the control plane"}`;
  }
  if (p.desiredVersion === 0) return "no config sent yet";
  // segments whose change the proxy refused run their previous version: not down
  const { down, held } = notRunningParts(p.notRunning, p.notRunningError);
  const without = (down.length > 0 ? `, except ${down.length} segment(s) that do NOT run: ${down.join(", ")}` : "") +
    (held.length > 0 ? `, except ${held.join(", ")}, whose change it refused: ${held.length > 1 ? "they run their" : "it runs its"} previous version` : "");
  if (p.ackedVersion >= p.desiredVersion) return `runs the newest config (version ${p.ackedVersion})${without}`;
  if (!p.connected) return `version ${p.desiredVersion} waits for it to connect; ${p.ackedVersion ? `it ran version ${p.ackedVersion}${without} when last seen` : "it has run nothing from the control plane"}`;
  return `applying version ${p.desiredVersion}; runs ${p.ackedVersion ? `version ${p.ackedVersion}${without}` : "nothing yet"}`;
}

/** The last refusal, its reason and whether the proxy tries that version again. */
function refusalText(p: ProxyStatus, now: number): string {
  const again = p.nackRetryAtMs > 0 ? ` (tried again ${p.nackRetryAtMs > now ? `in ${Math.round((p.nackRetryAtMs - now) / 1000)} s` : "now"})` : "";
  return `version ${p.nackedVersion}${again}: ${refusalInManifestTerms(p.nackError) || "(no reason given)"}`;
}

function connection(p: ProxyStatus): string {
  if (!p.connected) return "no";
  const parts = [p.server ? `to ${p.server}` : "", p.peer ? `from ${p.peer}` : ""].filter(Boolean);
  return `yes${parts.length ? `, ${parts.join(" ")}` : ""}`;
}

function rtcpOf(e: Endpoint, mux: boolean): string {
  if (mux) return "RTCP muxed";
  return `RTCP ${e.rtcpPort || e.port + 1}`;
}

/** A destination's own SSRC and payload type, when it has them. */
function translationText(d: Endpoint): string {
  const parts = [
    ...(d.ssrc !== undefined && d.ssrc !== null ? [`SSRC 0x${d.ssrc.toString(16).padStart(8, "0")}`] : []),
    ...(d.payloadType !== undefined && d.payloadType !== null ? [`payload type ${d.payloadType}`] : []),
  ];
  return parts.length > 0 ? `, translated: ${parts.join(", ")}` : "";
}

/** A listen endpoint's multicast join: where, and from which sender only (source-specific). */
function joinText(listen: Endpoint, source: string | undefined): string {
  if (!isMulticast(listen.address)) return "";
  return `; joins the group on ${listen.interface || "the interface the kernel picks"}${source ? `, source-specific from ${source}` : ""}`;
}

/** Where a leg receives and where it sends, ports worked out (docs/proxy.md, "Legs"). */
function legText(seg: Segment, l: Leg): string {
  const offset = l.portOffset;
  let receives = "receives nothing";
  if (l.receive !== false && l.listen) receives = `receives on ${hostPort(l.listen.address || (seg.listen?.address ?? "?"), l.listen.port)}`;
  else if (l.receive !== false && offset !== undefined && seg.listen) receives = `receives on ${hostPort(seg.listen.address, seg.listen.port + offset)} (listen port + ${offset})`;
  if (l.receive !== false && l.sourceAddress) receives += ` from ${l.sourceAddress}`;
  let sends = "sends nothing";
  if (l.send !== false && l.destinations.length > 0) sends = `sends to ${l.destinations.map((d) => endpoint(d)).join(", ")}`;
  else if (l.send !== false) sends = `sends to ${seg.destinations.map((d) => hostPort(d.address, d.port + (offset ?? 0))).join(", ")} (destination ports + ${offset})`;
  if (l.send !== false && l.egress) sends += ` from ${l.egress.port ? endpoint(l.egress) : `${l.egress.address}, any port`}`;
  const redundant = l.redundant ? " (a redundant path of the media: counted in its streams' ingress)" : "";
  return `${l.name}: ${receives}; ${sends}${legMulticastText(seg, l)}${redundant}`;
}

/** How a sending leg sends to groups, where it does or has its own settings (docs/proxy.md, "A leg's path"): runtime/config/proxy-config.ts legMulticast. */
function legMulticastText(seg: Segment, l: Leg): string {
  const toGroup = (l.destinations.length > 0 ? l.destinations : seg.destinations).some((d) => isMulticast(d.address));
  if (l.send === false || (!toGroup && !l.multicast)) return "";
  const own = l.multicast;
  const ownEgress = l.egress && !/^(0\.0\.0\.0|::|::ffff:0\.0\.0\.0)$/.test(l.egress.address) ? l.egress.address : undefined;
  const from = own?.interface || (ownEgress ? `the interface of ${ownEgress} (its egress)` : seg.multicast?.interface || "the route's interface");
  const loopback = own?.loopback ?? seg.multicast?.loopback ?? false;
  return `; multicast out: TTL ${own?.ttl ?? seg.multicast?.ttl ?? 16}, from ${from}, loopback ${loopback ? "on" : "off"}`;
}

function dropList(drops: Record<string, number>): string {
  const entries = Object.entries(drops).sort((a, b) => b[1] - a[1]);
  return entries.length ? entries.map(([k, v]) => `${k} ${v}`).join(", ") : "none";
}

/** Who may send: the sender admitted (or learned), and the gate's windows (docs/proxy.md, "Who may send: strict source"). */
function sourceText(seg: Segment): string {
  const s = seg.source;
  const who = s
    ? `only ${s.address}, ${s.port ? `port ${s.port}` : "any port"}; RTCP ${s.rtcpPort ? `to ${s.rtcpPort}` : "port learned"}`
    : "learned from the sender's packets";
  const set = (v: number | boolean | null | undefined): boolean => v !== undefined && v !== null;
  const strict = seg.sourceStrict ?? true;
  const learn = `learn ${seg.sourceLearnMs ?? 3000} ms${set(seg.sourceLearnMs) ? "" : " (default)"}`;
  const idleMs = seg.sourceIdleMs ?? 5000;
  const idle = `idle ${idleMs === 0 ? "never" : `${idleMs} ms`}${set(seg.sourceIdleMs) ? "" : " (default)"}`;
  const gate = strict ? `strict${set(seg.sourceStrict) ? "" : " (default)"}, ${learn}, ${idle}` : "not strict (re-latches on every packet)";
  return `${who}\n${gate}`;
}

/** The registry's newest version of each filter, as the control plane resolves a stage without one (the last pushed). */
export function newestVersions(filters: readonly FilterRef[]): Map<string, FilterRef> {
  const newest = new Map<string, FilterRef>();
  for (const name of new Set(filters.map((f) => f.name))) {
    newest.set(name, newestVersion(filters.filter((f) => f.name === name), (f) => f.version, (f) => f.pushedAtMs)!);
  }
  return newest;
}

/** A chain stage: its filter (a stage without a version: which one that is now), its config, and its filter entry's settings when any are given. */
function stageText(st: ChainStage, i: number, newest: ReadonlyMap<string, FilterRef>): string {
  const now = newest.get(st.filter);
  const which = st.version ? `${st.filter}@${st.version}` : `${st.filter} (newest${now ? `: ${now.version}, sha256 ${now.sha256.slice(0, 12)}` : ", none pushed"})`;
  const parts = [`${i + 1}. ${which}  ${st.configJson || "{}"}`];
  if (st.rootConfigJson) parts.push(`root config ${st.rootConfigJson}`);
  const limits = [
    ...(st.limits?.generatedPerSecond !== undefined && st.limits.generatedPerSecond !== null ? [`generatedPerSecond ${st.limits.generatedPerSecond}`] : []),
    ...(st.limits?.timerFiresPerSecond !== undefined && st.limits.timerFiresPerSecond !== null ? [`timerFiresPerSecond ${st.limits.timerFiresPerSecond}`] : []),
  ];
  if (limits.length > 0) parts.push(`limits ${limits.join(", ")}`);
  if (st.maxMemoryPages !== undefined && st.maxMemoryPages !== null) parts.push(`maxMemoryPages ${st.maxMemoryPages}`);
  return parts.join("; ");
}

/** The segment's failure policy, each unset field as the proxy fills it (DEFAULT_FAILURE_POLICY). */
export function failureText(seg: Segment): string {
  const f = seg.failure;
  const d = DEFAULT_FAILURE_POLICY;
  const either = <T>(v: T | undefined, fallback: T, unit = ""): string => (v ? `${String(v)}${unit}` : `${String(fallback)}${unit} (default)`);
  return `mode ${either(f?.mode, d.mode)}, restart backoff ${either(f?.restartBackoffMs, d.restartBackoffMs, " ms")}, ` +
    `max backoff ${either(f?.maxBackoffMs, d.maxBackoffMs, " ms")}, give up after ${either(f?.maxFailures, d.maxFailures)} failures`;
}

/** How many kernel messages the packets out took, when UDP GSO joined some (what qdiscs and firewalls count). */
function joined(s: SegmentCounters): string {
  return s.messagesOut < s.packetsOut ? ` in ${s.messagesOut} UDP GSO messages` : "";
}

/** A value as /metrics would give it, or a histogram's count and mean (its buckets are on /metrics). */
function valueText(v: { value?: number; histogram?: HistogramSummary }): string {
  if (v.histogram) return v.histogram.count > 0 ? `count ${v.histogram.count}, mean ${Number((v.histogram.sum / v.histogram.count).toPrecision(4))}` : "count 0";
  return v.value === undefined ? "-" : String(v.value);
}

/** A filter's own metric in a stage: `name value`, each series of a labelled one as `name{label=value} value`. */
function metricText(m: StageMetric): string {
  if (m.label === undefined || !m.series) return `${m.name} ${valueText(m)}`;
  return m.series.map((x) => `${m.name}{${m.label}=${x.labelValue}} ${valueText(x)}`).join("; ");
}

/** Nothing counted yet: 0, an empty histogram, a labelled metric with no series. */
function isZero(m: StageMetric): boolean {
  if (m.series) return m.series.length === 0;
  return m.histogram ? m.histogram.count === 0 : (m.value ?? 0) === 0;
}

/** A stage's metrics that counted something, then how many are at 0 (-o json gives each). */
function metricsText(metrics: readonly StageMetric[]): string {
  const counted = metrics.filter((m) => !isZero(m));
  const zero = metrics.length - counted.length;
  if (counted.length === 0) return `all ${zero} at 0`;
  return counted.map(metricText).join("; ") + (zero > 0 ? `; ${zero} more at 0` : "");
}

export function segmentStatsLines(s: SegmentCounters): string {
  const lines = [
    `packets in ${s.packetsIn} (${bytes(s.bytesIn)}), out ${s.packetsOut} (${bytes(s.bytesOut)}${joined(s)}); RTCP in ${s.rtcpIn}, feedback in ${s.upstreamIn}`,
    `dropped ${s.dropsTotal}: ${dropList(s.drops)}`,
  ];
  // the filters' normal work (a merge's duplicates), by their names: not drops, not in top's DROPS/S
  if (s.discardsTotal > 0) lines.push(`discarded ${s.discardsTotal} (the filters' normal work, not drops): ${dropList(s.discards)}`);
  if (s.legs.length > 1) lines.push(`per leg: ${s.legs.map((l) => `${l.name} in ${l.packetsIn}, out ${l.packetsOut}`).join("; ")}`);
  s.stages.forEach((t, i) => {
    const drops = Object.values(t.drops).reduce((a, b) => a + b, 0);
    const discards = Object.values(t.discards).reduce((a, b) => a + b, 0);
    // numbered from 0, as /metrics and /stats number stages; held and made packets so that in and out add up
    const kept = [...(t.held > 0 ? [`held ${t.held}`] : []), ...(t.generated > 0 ? [`made ${t.generated}`] : [])].map((x) => `, ${x}`).join("");
    lines.push(`stage ${i} ${t.filter} (${t.state}): in ${t.packetsIn}, out ${t.packetsOut}${kept}, dropped ${drops}${drops ? ` (${dropList(t.drops)})` : ""}${discards ? `, discarded ${discards} (${dropList(t.discards)})` : ""}, failures ${t.failures}, ${Math.round(t.nsPerPacket)} ns/packet`);
    if (t.metrics.length > 0) lines.push(`  metrics: ${metricsText(t.metrics)}`);
  });
  return lines.join("\n");
}

/**
 * The streams the control plane joined into paths, for describe segment / proxy: the paths, or why
 * they could not be listed (a control plane without ListStreams, a listing that failed).
 */
export type StreamsKnown = { paths: readonly StreamPath[] } | { error: string };

/** The human view of a segment, with its proxy's status, its counters and its streams when known. */
export function describeSegment(seg: Segment, proxy: ProxyStatus | undefined, stats: ProxyCounters | undefined, now = Date.now(), newest: ReadonlyMap<string, FilterRef> = new Map(), streams?: StreamsKnown): string {
  const rows: [string, string][] = [
    ["Name", seg.name],
    ["Proxy", seg.proxy || "-"],
    ["Revision", String(seg.revision)],
    ["Listen", seg.listen ? `${endpoint(seg.listen)} (${rtcpOf(seg.listen, seg.rtcpMux)})${joinText(seg.listen, seg.source?.address)}` : "-"],
    ["RTCP mux", seg.rtcpMux ? "yes" : "no"],
    ["Egress", seg.symmetricRtp ? "the listen socket (symmetric RTP)" : seg.egress ? `${seg.egress.address}, ${seg.egress.port ? `port ${seg.egress.port}` : "any port"}` : "any address, any port"],
    ["Destinations", seg.destinations.map((d) => `${endpoint(d)} (${rtcpOf(d, seg.rtcpMux)})${translationText(d)}`).join("\n") || "-"],
    ["Legs", seg.legs.map((l) => legText(seg, l)).join("\n") || "none (media only)"],
    ["Multicast out", seg.multicast ? `TTL ${seg.multicast.ttl ?? 16}, from ${seg.multicast.interface || "the route's interface"}, loopback ${seg.multicast.loopback ? "on" : "off"}` : "TTL 16, from the route's interface, loopback off (defaults)"],
    ["Source", sourceText(seg)],
    ["Feedback from", seg.feedbackFrom === "any" ? "anyone" : "the destinations' addresses only"],
    [
      "Chain",
      seg.chain.length === 0
        ? "empty (packets pass untouched)"
        : seg.chain.map((st, i) => stageText(st, i, newest)).join("\n"),
    ],
    ["Failure", failureText(seg)],
  ];
  if (!proxy) rows.push(["Proxy status", "never connected"]);
  else {
    const link = proxy.connected ? "connected" : proxy.lastSeenMs ? `not connected (last seen ${when(proxy.lastSeenMs, now)})` : "never connected";
    rows.push(["Proxy status", `${link}; ${configState(proxy)}`]);
    if (proxy.notRunning.includes(seg.name)) {
      // refused while the rest of the snapshot runs: the camera forwards on its previous version
      const previous = heldBackOf(proxy.notRunningError).includes(seg.name);
      rows.push([previous ? "This revision" : "NOT running", `${previous ? "REFUSED by the proxy, which runs the segment's previous version (the chain above is the refused one): " : ""}${refusalInManifestTerms(proxy.notRunningError) || "(no reason given)"}`]);
    }
    if (hasNack(proxy)) rows.push(["Last refusal", refusalText(proxy, now)]);
  }
  const counters = stats?.segments.find((s) => s.name === seg.name);
  const caveat = notCurrent(counters?.atMs ?? stats?.atMs, proxy, now);
  const marked = caveat ? `; ${caveat}` : "";
  if (stats?.error) rows.push(["Stats", stats.error]);
  else if (counters?.note) rows.push(["Stats", `reported ${when(counters.atMs, now)}; ${counters.note}${marked}`]);
  else if (counters) rows.push(["Stats", `reported ${when(counters.atMs, now)}${marked}\n${segmentStatsLines(counters)}`]);
  else if (stats?.note) rows.push(["Stats", `not in the proxy's last report: ${stats.note}${marked}`]);
  // a report not current may lack a segment only because newer reports did not reach the control plane
  else if (stats && caveat) rows.push(["Stats", `not in the proxy's last stored report (${age(stats.atMs, now)} ago), which is not current: ${caveat}`]);
  else rows.push(["Stats", stats ? `the proxy's last report (${age(stats.atMs, now)} ago) has no such segment` : `none reported${marked}`]);
  if (streams) {
    const through = "paths" in streams ? pathsThrough(streams.paths, seg.proxy, seg.name) : [];
    rows.push(["Streams", "error" in streams ? `not listed: ${streams.error}` : through.length === 0 ? "none reported" : through.map((p) => printable(streamThroughText(p, seg.proxy, seg.name))).join("\n")]);
  }
  return fields(rows) + "\n";
}

/** The human view of a proxy: connection, config state with the refusal's reason, its segments and their counters. */
export function describeProxy(p: ProxyStatus, segments: readonly Segment[], stats: ProxyCounters | undefined, now = Date.now(), streams?: StreamsKnown): string {
  const rows: [string, string][] = [
    ["Node", p.nodeId],
    ["Connected", connection(p)],
    ["Last seen", when(p.lastSeenMs, now)],
    ["Config", configState(p)],
    ["Versions", `desired ${p.desiredVersion}, acked ${p.ackedVersion}, nacked ${hasNack(p) ? p.nackedVersion : "-"}`],
  ];
  if (p.notRunning.length > 0) {
    const { down, held } = notRunningParts(p.notRunning, p.notRunningError);
    const what = [...(down.length > 0 ? [`NOT running: ${down.join(", ")}`] : []), ...(held.length > 0 ? [`previous version: ${held.join(", ")}`] : [])].join("; ");
    rows.push([down.length > 0 ? "NOT running" : "Refused", `${what}: ${refusalInManifestTerms(p.notRunningError) || "(no reason given)"}`]);
  }
  if (hasNack(p)) rows.push(["Last refusal", refusalText(p, now)]);
  rows.push(["Capabilities", p.capabilities.join(", ") || "-"], ["ABI versions", p.abiVersions.join(", ") || "-"]);
  let text = fields(rows) + "\n";
  text += `\nSegments (${segments.length}):\n`;
  // the PROXY column would repeat this proxy's name on every row
  const without = (row: readonly string[]): string[] => row.filter((_, i) => i !== 1);
  text += segments.length ? indent(table(without(SEGMENT_HEADERS), segmentRows(segments).map(without))) : "  none\n";
  if (stats?.error) text += `\nStats: ${stats.error}\n`;
  else if (!stats) text += `\nStats: none reported${p.statsDropped ? `; ${notCurrent(undefined, p, now)}` : ""}\n`;
  else {
    text += `\nStats, reported ${when(stats.atMs, now)}; watchdog restarts: ${stats.watchdogRestarts}\n`;
    if (stats.note) text += `  note: ${printable(stats.note)}\n`;
    const caveat = reportCaveat(stats, p, now);
    if (caveat) text += `  note: ${printable(caveat)}\n`;
    const rowsOut = stats.segments.map((s) => [
      s.name,
      String(s.packetsIn),
      String(s.packetsOut),
      bytes(s.bytesIn),
      bytes(s.bytesOut),
      String(s.dropsTotal),
      s.dropsTotal ? dropList(s.drops) : "-",
      s.stages.map((t) => (t.state === "running" ? t.filter : `${t.filter}(${t.state})`)).join(",") || "-",
    ]);
    text += rowsOut.length
      ? indent(table(["SEGMENT", "PACKETS-IN", "PACKETS-OUT", "BYTES-IN", "BYTES-OUT", "DROPS", "DROP-REASONS", "STAGES"], rowsOut))
      : "  no segments running\n";
  }
  if (streams && "error" in streams) text += `\nStreams: not listed: ${printable(streams.error)}\n`;
  else if (streams) {
    const lines = segments.flatMap((seg) => pathsThrough(streams.paths, p.nodeId, seg.name).map((path) => {
      const text = streamThroughText(path, p.nodeId, seg.name);
      const cut = text.indexOf(": ");
      return printable(`${text.slice(0, cut)} through ${seg.name}${text.slice(cut)}`);
    }));
    text += `\nStreams (${lines.length}):\n${lines.length ? lines.map((l) => `  ${l}\n`).join("") : "  none reported\n"}`;
  }
  return text;
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((l) => (l ? `  ${l}` : l))
    .join("\n");
}

/** A proxy's latest report (all its pages, merged), or undefined when it never sent one (the server says NOT_FOUND). */
async function latestStats(api: AdminApi, proxy: string): Promise<ProxyCounters | undefined> {
  try {
    return mergeStatsPages((await api.getStats({ proxy })).proxies).find((p) => p.nodeId === proxy);
  } catch (err) {
    if (err instanceof CliError && err.rpc?.code === status.NOT_FOUND) return undefined;
    throw err;
  }
}

export async function describeCommand(ctx: Context): Promise<number> {
  const { resource, names } = resourceAndNames(ctx.words, ["segments", "proxies", "streams"], "describe");
  if (resource === "streams") {
    if (names.length !== 1) throw new UsageError("describe stream NAME: one name");
    return describeStream(ctx, names[0]!);
  }
  const api = ctx.api();
  const showSecrets = flagSet(ctx.args, "show-secrets");
  // as kubectl: no name describes every one, several each in turn (-o json|yaml: a list of them then)
  const [{ proxies }, { segments }, { filters }] = await Promise.all([api.listProxies(), api.listSegments({ proxy: "", showSecrets }), api.listFilters()]);
  const newest = newestVersions(filters);
  const all = resource === "segments" ? segments.map((s) => s.name) : proxies.map((p) => p.nodeId);
  const chosen = names.length > 0 ? names : [...all].sort();
  if (chosen.length === 0) {
    ctx.io.err(`msmctl: no ${resource} to describe\n`);
    return 0;
  }
  if (resource === "segments") noteNewerSettings(ctx, segments.filter((s) => chosen.includes(s.name)));
  const reports = new Map<string, Promise<ProxyCounters | undefined>>();
  const statsOf = (proxy: string): Promise<ProxyCounters | undefined> => {
    if (!reports.has(proxy)) reports.set(proxy, latestStats(api, proxy));
    return reports.get(proxy)!;
  };
  // the streams through what is described, where their bad hop is from there (the table only: -o
  // json/yaml keep their shape, and describe stream gives the paths whole)
  let streams: Promise<StreamsKnown> | undefined;
  const streamsKnown = (): Promise<StreamsKnown> | undefined => {
    if (ctx.output !== "table") return undefined;
    streams ??= api.listStreams({ proxy: "", badOnly: false }).then((r) => ({ paths: r.paths }), (err: Error) => ({ error: err.message }));
    return streams;
  };
  const texts: string[] = [];
  const objects: unknown[] = [];
  const shown: Segment[] = [];
  for (const name of chosen) {
    if (resource === "segments") {
      const seg = segments.find((s) => s.name === name);
      if (!seg) throw new CliError(`segment "${name}" not found`);
      const proxy = proxies.find((p) => p.nodeId === seg.proxy);
      const counters = await statsOf(seg.proxy);
      objects.push({ segment: toManifest(seg), proxy: proxy ?? null, stats: counters?.segments.find((s) => s.name === seg.name) ?? null, statsAtMs: counters?.atMs ?? 0 });
      texts.push(describeSegment(seg, proxy, counters, Date.now(), newest, await streamsKnown()));
      shown.push(seg);
    } else {
      const proxy = proxies.find((p) => p.nodeId === name);
      const waiting = segments.filter((s) => s.proxy === name);
      if (!proxy) throw new CliError(`proxy "${name}" not found${waiting.length ? ` (${waiting.length} segment(s) wait for it: ${waiting.map((s) => s.name).join(", ")})` : ""}`);
      const mine = waiting.sort((a, b) => (a.name < b.name ? -1 : 1));
      const counters = await statsOf(name);
      objects.push({ proxy, segments: mine.map(toManifest), stats: counters ?? null });
      texts.push(describeProxy(proxy, mine, counters, Date.now(), await streamsKnown()));
      if (ctx.output !== "table") shown.push(...mine);
    }
  }
  if (ctx.output !== "table") ctx.io.out(render(objects.length === 1 ? objects[0] : { items: objects }, ctx.output));
  else ctx.io.out(texts.join("\n"));
  noteRedacted(ctx, shown);
  return 0;
}
