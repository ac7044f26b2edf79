// `msmctl get streams`, `describe stream NAME`, `top streams`: each RTP stream's path across the
// proxies as the control plane joins it (ListStreams, DescribeStream), hop by hop with the loss,
// jitter and delay each adds and the bad hop named. docs/control-plane.md, "Streams across proxies".
import { status } from "@grpc/grpc-js";
import type { ReceiverReport, StreamDirection } from "../../runtime/index.js";
import { hopJudged, type BadHopThresholds, type StreamHop, type StreamPath, type StreamPoint } from "../../controlplane/api/streams.js";
import { escapeSerialized, printable } from "../../controlplane/security/terminal.js";
import { closeNames, pathsNamed } from "../../controlplane/server/stream-paths.js";
import { CliError } from "./client.js";
import type { Context } from "./context.js";
import { drawScreen, untilInterrupted } from "./live.js";
import { age, fields, rate, render, table } from "./format.js";
import { API_VERSION } from "./manifest.js";

export const hexSsrc = (ssrc: number): string => `0x${(ssrc >>> 0).toString(16).padStart(8, "0")}`;

/** A fraction as a percentage: 0.00%, 4.12%, 100.00%. */
export function percent(f: number | null | undefined): string {
  return f === null || f === undefined ? "-" : `${(f * 100).toFixed(2)}%`;
}

function ms(v: number | null | undefined, signed = false): string {
  if (v === null || v === undefined) return "-";
  return `${signed && v >= 0 ? "+" : ""}${v.toFixed(1)}ms`;
}

/** Bits per second with a metric prefix: 480kb/s, 4.80Mb/s. */
export function bitrate(bps: number | null | undefined): string {
  if (bps === null || bps === undefined) return "-";
  if (bps < 1000) return `${Math.round(bps)}b/s`;
  if (bps < 1_000_000) return `${Math.round(bps / 1000)}kb/s`;
  return `${(bps / 1_000_000).toFixed(2)}Mb/s`;
}

/** The worst hop in a few words, for a table cell; "-" only when every hop has figures (a hop without is not known to be fine). */
export function badHopCell(p: StreamPath): string {
  const h = p.hops[p.worst];
  if (h) return `${h.label}: ${h.why}`;
  const unknown = p.hops.filter((x) => !hopJudged(x)).length;
  return unknown > 0 ? `? ${unknown} of ${p.hops.length} hops unknown` : "-";
}

/** End-to-end loss, marked when a report it may rest on is stale (its figures are the past, not now). */
export function lossCell(p: StreamPath): string {
  const stale = p.lossFraction !== null && p.hops.some((h) => h.from?.stale || h.to?.stale);
  return `${percent(p.lossFraction)}${stale ? " STALE" : ""}`;
}

/**
 * A stream through segment `segment` of `proxy`, in a line for describe segment / proxy: where its
 * worst bad hop is from there (into it, out of it, within its proxy, upstream, downstream), so that
 * describing the segment an alert named points at the hop to look at.
 */
export function streamThroughText(p: StreamPath, proxy: string, segment: string): string {
  const here = (pt: StreamHop["from"]): boolean => pt?.proxy === proxy && pt.segment === segment;
  const w = p.hops[p.worst];
  const unknown = p.hops.filter((x) => !hopJudged(x)).length;
  if (!w) return `${p.name} (${hexSsrc(p.ssrc)}): no bad hop${unknown > 0 ? `; ${unknown} of ${p.hops.length} hops unknown` : ""}`;
  const first = p.hops.findIndex((h) => here(h.from) || here(h.to));
  const where = w.kind === "proxy" && here(w.to) ? "within this segment's proxy"
    : here(w.to) ? "on the link into this segment"
      : here(w.from) ? "on the link out of this segment"
        : p.worst < first ? "upstream" : "downstream";
  const more = p.hops.filter((h) => h.bad).length - 1;
  return `${p.name} (${hexSsrc(p.ssrc)}): BAD ${where}, ${w.label}: ${w.why}${more > 0 ? ` (and ${more} more bad hop${more > 1 ? "s" : ""})` : ""} (msmctl describe stream ${p.name})`;
}

/** The paths that pass through segment `segment` of `proxy`. */
export function pathsThrough(paths: readonly StreamPath[], proxy: string, segment: string): StreamPath[] {
  return paths.filter((p) => p.segments.some((s) => s.proxy === proxy && s.segment === segment));
}

export const STREAM_HEADERS = ["NAME", "SSRC", "HOPS", "LOSS", "JITTER", "BITRATE", "BAD HOP"];

export function streamRows(paths: readonly StreamPath[]): string[][] {
  return paths.map((p) => [p.name, hexSsrc(p.ssrc), String(p.segments.length), lossCell(p), ms(p.jitterMs), bitrate(p.bitrateBps), badHopCell(p)]);
}

/** Worst first: streams with a bad hop (by its loss, then its jitter), then by loss and jitter end to end, then by name. */
export function worstFirst(paths: readonly StreamPath[]): StreamPath[] {
  const key = (p: StreamPath): number[] => {
    const w = p.hops[p.worst];
    return [w ? 1 : 0, w?.lossFraction ?? 0, w?.jitterAddedMs ?? 0, p.lossFraction ?? -1, p.jitterMs ?? -1];
  };
  return [...paths].sort((a, b) => {
    const x = key(a);
    const y = key(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return y[i]! - x[i]!;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  });
}

export const TOP_STREAM_HEADERS = ["NAME", "SSRC", "LOSS", "JITTER", "BITRATE", "PKTS/S", "WORST HOP"];

export function topStreamRows(paths: readonly StreamPath[]): string[][] {
  return worstFirst(paths).map((p) => [p.name, hexSsrc(p.ssrc), lossCell(p), ms(p.jitterMs), bitrate(p.bitrateBps), rate(p.packetRate ?? undefined), badHopCell(p)]);
}

function thresholdText(t: BadHopThresholds): string {
  return `a hop is bad above ${percent(t.loss)} loss or ${t.jitterMs} ms of jitter added`;
}

function pointName(p: StreamPoint): string {
  return `${p.proxy}/${p.segment}`;
}

function reported(p: StreamPoint, now: number): string {
  if (!p.reportedAtMs) return "never";
  return `${age(p.reportedAtMs, now)} ago${p.stale ? " (STALE)" : ""}`;
}

function pointRow(p: StreamPoint, now: number): string[] {
  const s: StreamDirection | null = p.stats;
  const w = s?.window ?? null;
  return [
    p.proxy, p.segment, p.direction,
    s ? String(s.packets) : "-", s ? String(s.lost) : "-", s ? String(s.duplicates) : "-", s ? String(s.reordered) : "-",
    percent(w?.fractionLost), ms(s?.jitterMs), w ? rate(w.packetRate) : "-", bitrate(w?.bitrateBps), reported(p, now),
  ];
}

function receiverRow(at: string, r: ReceiverReport, now: number): string[] {
  const xr = r.xr ? `lost ${r.xr.lost ?? "-"}, dup ${r.xr.duplicates ?? "-"}${r.xr.jitterMeanMs !== null ? `, jitter ${r.xr.jitterMeanMs.toFixed(1)}ms` : ""}` : "-";
  return [hexSsrc(r.reporterSsrc), at, percent(r.fractionLost), String(r.cumulativeLost), ms(r.jitterMs), ms(r.rttMs), xr, `${age(r.atMs, now)} ago`];
}

function hopRow(h: StreamHop): string[] {
  // a hop without figures is not "ok": nothing says so (a proxy gone quiet, reports apart in time)
  const state = h.bad ? `BAD: ${h.why}` : hopJudged(h) ? "ok" : "unknown";
  return [h.label, h.kind, percent(h.lossFraction), h.lost === null ? "-" : String(h.lost), ms(h.jitterMs), ms(h.jitterAddedMs, true), ms(h.delayMs), state];
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((l) => (l ? `  ${l}` : l))
    .join("\n");
}

function unknownHops(p: StreamPath): string {
  const unknown = p.hops.filter((h) => !hopJudged(h)).length;
  return unknown === 0 ? "none" : `none found, but ${unknown} of ${p.hops.length} hops have no figures (see the notes)`;
}

/** The rate the stream's jitter is counted in, and whether it was only assumed (a wrong rate makes the jitter wrong). */
function clockText(c: NonNullable<StreamPath["clock"]>): string {
  const head = `payload type ${c.payloadType}, ${c.clockRate} Hz`;
  if (c.from === "config") return `${head} (the segment's clockRates)`;
  if (c.from === "payload-type") return `${head} (RFC 3551)`;
  return `${head} ASSUMED: no clockRates entry for it; a stream of another rate (audio) has its jitter off by the ratio of the rates`;
}

/** One path as a person reads it: where it goes, end to end, the bad hop and why, every hop, every point measured, the receivers' reports. */
export function describeStreamPath(p: StreamPath, t: BadHopThresholds, now = Date.now()): string {
  const worst = p.hops[p.worst];
  const rows: [string, string][] = [
    ["Name", p.name],
    ["SSRC", hexSsrc(p.ssrc)],
    ...(p.clock ? [["Clock", clockText(p.clock)] as [string, string]] : []),
    ["Path", ["sender", ...p.segments.map((s) => `${s.proxy}/${s.segment}`)].join(" -> ")],
    ["End to end", `loss ${percent(p.lossFraction)}, jitter ${ms(p.jitterMs)}, ${bitrate(p.bitrateBps)}, ${rate(p.packetRate ?? undefined)} packets/s`],
    ["Bad hop", worst ? `${worst.label} (${worst.kind}): ${worst.why}` : unknownHops(p)],
    ["Thresholds", thresholdText(t)],
  ];
  let text = fields(rows) + "\n";
  text += `\nHops:\n${indent(table(["HOP", "KIND", "LOSS", "LOST", "JITTER", "ADDED", "DELAY", "STATE"], p.hops.map(hopRow)))}`;
  const notes = p.hops.filter((h) => h.note);
  if (notes.length > 0) text += notes.map((h) => `  note: ${printable(h.label)}: ${printable(h.note!)}\n`).join("");
  const points: StreamPoint[] = [];
  for (const h of p.hops) for (const pt of [h.from, h.to]) if (pt && !points.some((x) => pointName(x) === pointName(pt) && x.direction === pt.direction)) points.push(pt);
  text += `\nMeasured (last window for LOSS, RATE and BITRATE; counts since the proxy first saw the stream):\n`;
  text += indent(table(["PROXY", "SEGMENT", "DIRECTION", "PACKETS", "LOST", "DUP", "REORDERED", "LOSS", "JITTER", "RATE", "BITRATE", "REPORTED"], points.map((pt) => pointRow(pt, now))));
  const receivers = p.hops.filter((h) => h.kind === "last-link" && h.receiver);
  text += `\nReceivers (RTCP RR/XR to the last proxy; RTT from LSR/DLSR):\n`;
  text += receivers.length > 0
    ? indent(table(["RECEIVER", "AT", "LOSS", "CUM-LOST", "JITTER", "RTT", "XR", "REPORTED"], receivers.map((h) => receiverRow(h.from?.proxy ?? "-", h.receiver!, now))))
    : "  none reports\n";
  return text;
}

function notFound(name: string, known: readonly string[]): CliError {
  const close = closeNames(name, known);
  const hint = close.length > 0 ? ` (close names: ${close.join(", ")})` : known.length > 0 ? " (msmctl get streams lists them)" : " (no proxy reports any stream yet)";
  return new CliError(`stream "${name}" not found${hint}`);
}

export async function getStreams(ctx: Context, names: readonly string[], proxy: string, badOnly: boolean): Promise<number> {
  const { paths, incomplete } = await ctx.api().listStreams({ proxy, badOnly });
  let chosen = paths;
  const missing = names.filter((n) => pathsNamed(paths, n).length === 0);
  if (names.length > 0) chosen = paths.filter((p) => names.some((n) => pathsNamed([p], n).length > 0));
  // what was found is printed, then a name that matched nothing is an error (as kubectl does)
  const fail = (): number => {
    if (incomplete && chosen.length === 0) ctx.io.err(`msmctl: note: ${incomplete}\n`); // what may explain a stream not found
    if (missing.length > 0) throw new CliError(missing.map((n) => notFound(n, paths.map((p) => p.name)).message).join("\n"));
    return 0;
  };
  if (chosen.length === 0 && missing.length > 0) return fail();
  if (ctx.output !== "table") {
    ctx.io.out(render(names.length === 1 && chosen.length === 1 ? chosen[0] : { apiVersion: API_VERSION, kind: "List", items: chosen }, ctx.output));
  } else if (chosen.length === 0) {
    ctx.io.err(`No streams found${proxy ? ` crossing proxy ${proxy}` : ""}${badOnly ? " with a bad hop" : ""}.\n`);
  } else ctx.io.out(table(STREAM_HEADERS, streamRows(chosen)));
  if (incomplete) ctx.io.err(`msmctl: note: ${incomplete}\n`);
  return fail();
}

export async function describeStream(ctx: Context, name: string): Promise<number> {
  let answer;
  try {
    answer = await ctx.api().describeStream(name);
  } catch (err) {
    // the server's NOT_FOUND already names close names; say it in msmctl's words
    if (err instanceof CliError && err.rpc?.code === status.NOT_FOUND) throw new CliError(err.rpc.details.replace(/^no stream named '(.*?)'/s, (_m, n: string) => `stream "${n}" not found`));
    throw err;
  }
  const { paths, omitted, thresholds } = answer;
  if (ctx.output !== "table") {
    ctx.io.out(render({ thresholds, paths, ...(omitted > 0 ? { omitted } : {}) }, ctx.output));
    return 0;
  }
  const now = Date.now();
  ctx.io.out(paths.map((p) => describeStreamPath(p, thresholds, now)).join("\n---\n\n"));
  if (omitted > 0) ctx.io.out(`\n${omitted} more path(s) of "${printable(name)}" left out: describe one by its own name (msmctl get streams lists them)\n`);
  return 0;
}

/** `top streams`: worst first, redrawn every interval until Ctrl-C, or once. The figures are the proxies' last windows: one poll is enough. */
export async function topStreams(ctx: Context, opts: { proxy: string; badOnly: boolean; intervalMs: number; once: boolean }): Promise<number> {
  const api = ctx.api();
  const poll = (): ReturnType<typeof api.listStreams> => api.listStreams({ proxy: opts.proxy, badOnly: opts.badOnly });
  if (opts.once) {
    const { paths, incomplete } = await poll();
    if (ctx.output !== "table") ctx.io.out(render({ streams: worstFirst(paths), ...(incomplete ? { notes: [incomplete] } : {}) }, ctx.output));
    else ctx.io.out((paths.length ? table(TOP_STREAM_HEADERS, topStreamRows(paths)) : "no streams: no proxy reports one now (a stream silent for streams.idleSeconds, 30 by default, is forgotten)\n") + (incomplete ? `note: ${incomplete}\n` : ""));
    return 0;
  }
  await untilInterrupted(ctx, opts.intervalMs, async () => {
    let paths: StreamPath[] = [];
    let note = "";
    try {
      const r = await poll();
      paths = r.paths;
      note = r.incomplete ?? "";
    } catch (err) {
      note = `poll failed: ${(err as Error).message}`;
    }
    if (ctx.output !== "table") {
      ctx.io.out(escapeSerialized(JSON.stringify({ atMs: Date.now(), streams: worstFirst(paths), ...(note ? { error: note } : {}) })) + "\n");
    } else {
      const head = `msmctl top streams: ${api.server}, every ${opts.intervalMs / 1000} s, worst first, Ctrl-C to stop${note ? `\n${printable(note)}` : ""}\n\n`;
      const body = paths.length ? table(TOP_STREAM_HEADERS, topStreamRows(paths)) : "no streams: no proxy reports one now (a stream silent for streams.idleSeconds, 30 by default, is forgotten)\n";
      drawScreen(ctx, head, body);
    }
  });
  return 0;
}
