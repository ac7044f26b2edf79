// The control plane's /metrics: what each hop of each stream adds, as Prometheus gauges (text
// exposition format 0.0.4) in base units. Only the worst `limit` streams get series of their own,
// so that 10,000 streams do not become 300,000 series; msm_paths counts them all.
import { familyLines, type LabelSet, type Sample } from "../../runtime/index.js";
import type { ProxyStatus } from "../api/proto.js";
import { hopJudged, type StreamPath } from "../api/streams.js";
import { unknownHops, worstFirst } from "./view.js";

type Labels = LabelSet;
type Row = Sample;

class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: "gauge" | "counter", help: string, rows: readonly Row[]): void {
    this.lines.push(...familyLines(name, type, help, rows));
  }

  text(): string {
    return this.lines.join("\n") + "\n";
  }
}

export interface FeedCounters {
  /** Live-update (SSE) clients connected now, and dropped so far for reading too slowly. */
  clients: number;
  dropped: number;
  refused: number;
}

/** Each hop with the labels of its series: a label repeated within one stream gets " #n" so that no two series collide. */
function labelledHops(path: StreamPath): { labels: Labels; hop: StreamPath["hops"][number] }[] {
  const used = new Map<string, number>();
  return path.hops.map((hop) => {
    const n = (used.get(hop.label) ?? 0) + 1;
    used.set(hop.label, n);
    return { labels: { stream: path.name, hop: n === 1 ? hop.label : `${hop.label} #${n}`, kind: hop.kind }, hop };
  });
}

/**
 * What the store gave this scrape: the paths and the proxies' statuses, or, when the store did not
 * answer (etcd down, no quorum), nothing: then `msm_control_plane_store_up` is 0 and the families
 * read from the store are absent (not 0: nothing is known of them), the others are still served.
 */
export type StoreView = { paths: readonly StreamPath[]; proxies: readonly ProxyStatus[] } | undefined;

/** A proxy's config as its status says: a refusal standing (newer than what it acknowledged), behind what it should run, or current. */
export function proxyConfigState(p: ProxyStatus): "refused" | "behind" | "current" {
  if (Number(p.nackedVersion) > Number(p.ackedVersion)) return "refused";
  if (Number(p.ackedVersion) < Number(p.desiredVersion)) return "behind";
  return "current";
}

export function renderMetrics(view: StoreView, limit: number, feed: FeedCounters): string {
  const out = new Exposition();
  out.family("msm_control_plane_store_up", "gauge", "1 when this scrape's reads of the store answered; 0 when they failed (etcd down or without a quorum), and then the stream and proxy families are absent.", [[{}, view ? 1 : 0]]);
  if (view) {
    const connected = view.proxies.filter((p) => p.connected);
    out.family("msm_proxies", "gauge", "Proxies the control plane knows: connected to some replica, or not (30 s without a heartbeat).", [
      [{ state: "connected" }, connected.length],
      [{ state: "disconnected" }, view.proxies.length - connected.length],
    ]);
    const count = (state: string, among: readonly ProxyStatus[]): number => among.filter((p) => proxyConfigState(p) === state).length;
    out.family("msm_proxies_config", "gauge", "Proxies by what they run: current (acknowledged their newest version), behind (not yet), refused (a NACK newer than what they acknowledged); connected or not.", ["current", "behind", "refused"].flatMap((state): Row[] => [
      [{ state, connected: "true" }, count(state, connected)],
      [{ state, connected: "false" }, count(state, view.proxies.filter((p) => !p.connected))],
    ]));
    out.family("msm_proxies_segments_not_running", "gauge", "Segments of acknowledged versions that do not run (a port held, a filter refused), over every proxy.",
      [[{}, view.proxies.reduce((n, p) => n + p.notRunning.length, 0)]]);
  }
  renderPaths(out, view?.paths, limit);
  out.family("msm_dashboard_event_clients", "gauge", "Browsers following the dashboard's live updates now.", [[{}, feed.clients]]);
  out.family("msm_dashboard_event_clients_dropped_total", "counter", "Live-update clients dropped for reading too slowly.", [[{}, feed.dropped]]);
  out.family("msm_dashboard_event_clients_refused_total", "counter", "Live-update clients refused because the limit was reached.", [[{}, feed.refused]]);
  return out.text();
}

function renderPaths(out: Exposition, paths: readonly StreamPath[] | undefined, limit: number): void {
  if (!paths) return;
  const sorted = [...paths].sort(worstFirst);
  const shown = sorted.slice(0, limit);
  const hops = shown.flatMap(labelledHops);
  // a figure that was not measured has no sample (absent, not 0)
  const per = (pick: (h: StreamPath["hops"][number]) => number | null, scale = 1): Row[] =>
    hops.flatMap(({ labels, hop }) => {
      const v = pick(hop);
      return v === null ? [] : [[labels, v * scale] as Row];
    });
  out.family("msm_hop_loss_ratio", "gauge", "Loss the hop adds over the last window, 0 to 1.", per((h) => h.lossFraction));
  out.family("msm_hop_lost_packets", "gauge", "Packets the hop lost since both its ends started counting.", per((h) => h.lost));
  out.family("msm_hop_jitter_seconds", "gauge", "RFC 3550 interarrival jitter at the hop's far end.", per((h) => h.jitterMs, 1e-3));
  out.family("msm_hop_jitter_added_seconds", "gauge", "Jitter the hop adds: its far end's minus its near end's.", per((h) => h.jitterAddedMs, 1e-3));
  out.family("msm_hop_delay_seconds", "gauge", "Mean one-way delay of the hop (half the round trip for the last link).", per((h) => h.delayMs, 1e-3));
  out.family("msm_hop_bad", "gauge", "1 while the hop breaks a threshold (--bad-loss, --bad-jitter-ms), 0 while its figures are within them; absent while it has none.",
    per((h) => (h.bad ? 1 : hopJudged(h) ? 0 : null)));
  const perPath = (pick: (p: StreamPath) => number | null, scale = 1): Row[] =>
    shown.flatMap((p) => {
      const v = pick(p);
      return v === null ? [] : [[{ stream: p.name }, v * scale] as Row];
    });
  out.family("msm_path_loss_ratio", "gauge", "End-to-end loss of the stream, 0 to 1: the worst receiver's report, else the last proxy's window.", perPath((p) => p.lossFraction));
  out.family("msm_path_jitter_seconds", "gauge", "End-to-end jitter of the stream: the worst receiver's report, else at the last proxy.", perPath((p) => p.jitterMs, 1e-3));
  out.family("msm_path_bad_hops", "gauge", "Hops of the stream that break a threshold.", perPath((p) => p.hops.filter((h) => h.bad).length));
  out.family("msm_path_unknown_hops", "gauge", "Hops of the stream without figures (a proxy gone quiet, reports apart): not known to be fine.", perPath(unknownHops));
  const bad = sorted.filter((p) => p.worst >= 0).length;
  const unknown = sorted.filter((p) => p.worst < 0 && unknownHops(p) > 0).length;
  out.family("msm_paths", "gauge", "Streams the control plane joined into paths: with a bad hop, else with a hop without figures (unknown), else ok.", [
    [{ state: "bad" }, bad],
    [{ state: "unknown" }, unknown],
    [{ state: "ok" }, sorted.length - bad - unknown],
  ]);
  out.family("msm_paths_exported", "gauge", "Streams with series of their own here (the worst ones, at most the dashboard's limit).", [[{}, shown.length]]);
}
