// The control plane's /metrics: what each hop of each stream adds, as Prometheus gauges (text
// exposition format 0.0.4) in base units. Only the worst `limit` streams get series of their own,
// so that 10,000 streams do not become 300,000 series; msm_paths counts them all.
import { familyLines, type LabelSet, type Sample } from "../../runtime/index.js";
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

export function renderMetrics(paths: readonly StreamPath[], limit: number, feed: FeedCounters): string {
  const sorted = [...paths].sort(worstFirst);
  const shown = sorted.slice(0, limit);
  const hops = shown.flatMap(labelledHops);
  const out = new Exposition();
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
  out.family("msm_dashboard_event_clients", "gauge", "Browsers following the dashboard's live updates now.", [[{}, feed.clients]]);
  out.family("msm_dashboard_event_clients_dropped_total", "counter", "Live-update clients dropped for reading too slowly.", [[{}, feed.dropped]]);
  out.family("msm_dashboard_event_clients_refused_total", "counter", "Live-update clients refused because the limit was reached.", [[{}, feed.refused]]);
  return out.text();
}
