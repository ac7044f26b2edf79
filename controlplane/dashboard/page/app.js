// The dashboard page: follows the control plane's live updates (/api/events), keeps a few minutes
// of each stream's per-hop figures for the charts, and redraws the mesh, the picked stream's path,
// its charts and the table of streams worst first on every update.
import { HopCharts } from "./charts.js";
import { bitrate, clock, h, ms, percent, put, rate, ssrcHex } from "./dom.js";
import { drawMesh, drawPath, edgeKey } from "./graph.js";

const HISTORY_SECONDS = 300;
const RETRY_MS = 5000;
const SENDERS = "@senders";
const RECEIVERS = "@receivers";

const $ = (id) => document.getElementById(id);
const charts = new HopCharts($("charts"));

/** stream name -> { t: seconds[], hops: Map(hop label -> (sample | null)[]), seenAt: seconds } */
const past = new Map();
let latest = null;
/** The picked stream; "" follows the worst one. Kept in the URL's fragment across reloads. */
let picked = decodeURIComponent(location.hash.slice(1));

function record(state) {
  const t = state.atMs / 1000;
  for (const stream of state.streams) {
    let h = past.get(stream.name);
    if (!h) past.set(stream.name, (h = { t: [], hops: new Map(), seenAt: t }));
    if (h.t.length > 0 && h.t[h.t.length - 1] >= t) continue; // the same update again (a reconnect)
    h.t.push(t);
    h.seenAt = t;
    const now = new Map(stream.hops.map((hop) => [hop.label, hop]));
    for (const label of now.keys()) if (!h.hops.has(label)) h.hops.set(label, new Array(h.t.length - 1).fill(null));
    for (const [label, samples] of h.hops) samples.push(now.get(label) ?? null);
    // the last few minutes only
    let cut = 0;
    while (cut < h.t.length && h.t[cut] < t - HISTORY_SECONDS) cut++;
    if (cut > 0) {
      h.t.splice(0, cut);
      for (const samples of h.hops.values()) samples.splice(0, cut);
    }
  }
  for (const [name, h] of past) if (h.seenAt < t - HISTORY_SECONDS) past.delete(name);
}

function setStatus(state, text) {
  const el = $("status");
  el.dataset.state = state;
  el.textContent = text;
}

function showBanner(text) {
  const el = $("banner");
  el.hidden = !text;
  el.textContent = text ?? "";
}

function currentStream(state) {
  return state.streams.find((s) => s.name === picked) ?? state.streams[0] ?? null;
}

function pick(name) {
  picked = name;
  window.history.replaceState(null, "", name ? `#${encodeURIComponent(name)}` : location.pathname);
  if (latest) render(latest);
}

function renderSummary(state) {
  const proxies = state.mesh.nodes.filter((n) => n.kind === "proxy");
  const disconnected = proxies.filter((n) => n.connected === false).length;
  const stat = (label, value, cls) => h("div", { class: ["stat", cls] }, [h("span", { class: "value", text: value }), h("span", { class: "label", text: label })]);
  put(
    $("summary"),
    stat("proxies", String(proxies.length), disconnected > 0 ? "warn" : null),
    stat("streams", String(state.total)),
    stat("with a bad hop", String(state.bad), state.bad > 0 ? "bad" : "ok"),
  );
  if (disconnected > 0) $("summary").append(stat("disconnected", String(disconnected), "warn"));
}

/** The picked stream's proxies and mesh edges, to mark them on the mesh. */
function selection(stream) {
  const proxies = new Set();
  const edges = new Set();
  if (stream) {
    for (const s of stream.segments) proxies.add(s.proxy);
    for (const hop of stream.hops) {
      if (hop.kind === "first-link" && hop.to) edges.add(edgeKey(SENDERS, hop.to.proxy));
      else if (hop.kind === "last-link" && hop.from) edges.add(edgeKey(hop.from.proxy, RECEIVERS));
      else if (hop.kind === "link" && hop.from && hop.to) edges.add(edgeKey(hop.from.proxy, hop.to.proxy));
    }
  }
  return { proxies, edges };
}

function renderMesh(state, stream) {
  const svg = drawMesh(state.mesh, selection(stream));
  put($("mesh"), svg ?? h("p", { class: "empty", text: "No proxy has registered with the control plane yet." }));
  const bad = state.mesh.edges.filter((e) => e.bad > 0).concat(state.mesh.nodes.filter((n) => n.bad > 0));
  put(
    $("mesh-bad"),
    ...bad.map((x) =>
      h("li", {}, [
        h("span", { class: "where", text: "from" in x ? `${name(x.from)} \u2192 ${name(x.to)}` : `inside ${x.id}` }),
        h("span", { class: "why", text: x.why ?? "" }),
      ]),
    ),
  );
}

const name = (id) => (id === SENDERS ? "senders" : id === RECEIVERS ? "receivers" : id);

function renderPicker(state, stream) {
  const select = $("picker");
  const options = state.streams.map((s) =>
    h("option", { value: s.name, text: `${s.worst >= 0 ? "\u25cf " : ""}${s.name} (${ssrcHex(s.ssrc)})`, selected: stream && s.name === stream.name }),
  );
  if (picked && !stream) options.unshift(h("option", { value: picked, text: `${picked} (gone)`, selected: true }));
  put(select, ...options);
  select.disabled = options.length === 0;
}

function renderStream(stream) {
  const verdict = $("verdict");
  if (!stream) {
    put($("path"), h("p", { class: "empty", text: "No stream crosses the mesh now." }));
    put(verdict);
    verdict.className = "verdict";
    charts.show(null, []);
    return;
  }
  const worst = stream.hops[stream.worst];
  // a hop without figures (a proxy gone quiet) is not known to be fine
  const unknown = stream.hops.filter((x) => !x.judged).length;
  verdict.className = worst ? "verdict bad" : unknown > 0 ? "verdict unknown" : "verdict ok";
  put(
    verdict,
    ...(worst
      ? [h("strong", { text: "Bad hop: " }), h("span", { class: "hop-name", text: worst.label }), " \u2014 ", h("span", { class: "why", text: worst.why ?? "breaks a threshold" })]
      : unknown > 0
        ? [h("strong", { text: "No hop is known to break a threshold, " }), h("span", { class: "why", text: `but ${unknown} of ${stream.hops.length} hops have no figures (see their notes)` })]
        : [h("strong", { text: "No hop breaks a threshold." })]),
    h("span", { class: "end-to-end", text: `end to end: loss ${percent(stream.lossFraction)} \u00b7 jitter ${ms(stream.jitterMs)} \u00b7 ${bitrate(stream.bitrateBps)} \u00b7 ${rate(stream.packetRate)} packets/s` }),
  );
  put($("path"), drawPath(stream));
  charts.show(past.get(stream.name), stream.hops);
}

function renderTable(state, stream) {
  const rows = state.streams.map((s) => {
    const worst = s.hops[s.worst];
    return h("tr", { class: [worst && "bad", stream && s.name === stream.name && "selected"], "data-stream": s.name, onclick: () => pick(s.name) }, [
      // a button for the keyboard; its click reaches the row's
      h("td", {}, [h("button", { class: "link", type: "button", text: s.name })]),
      h("td", { class: "mono", text: ssrcHex(s.ssrc) }),
      h("td", { class: "path-cell", text: s.segments.map((x) => x.proxy).join(" \u2192 ") }),
      h("td", { text: worst ? worst.label : "\u2013" }),
      h("td", { class: "why", text: worst ? worst.why ?? "" : "" }),
      h("td", { class: "num", text: percent(s.lossFraction) }),
      h("td", { class: "num", text: ms(s.jitterMs) }),
      h("td", { class: "num", text: bitrate(s.bitrateBps) }),
      h("td", { class: "num", text: rate(s.packetRate) }),
    ]);
  });
  put($("streams-body"), ...(rows.length > 0 ? rows : [h("tr", {}, [h("td", { colspan: 9, class: "empty", text: "No streams." })])]));
  $("more").textContent = state.total > state.streams.length ? `Showing the ${state.streams.length} worst of ${state.total} streams.` : "";
}

function render(state) {
  const stream = currentStream(state);
  renderSummary(state);
  renderMesh(state, stream);
  renderPicker(state, stream);
  renderStream(stream);
  renderTable(state, stream);
  $("updated").textContent = `updated ${clock(state.atMs)}`;
}

function follow() {
  setStatus("connecting", "connecting\u2026");
  const events = new EventSource("/api/events");
  events.addEventListener("open", () => setStatus("live", "live"));
  events.addEventListener("state", (e) => {
    const state = JSON.parse(e.data);
    latest = state;
    record(state);
    showBanner(null);
    setStatus("live", "live");
    render(state);
  });
  events.addEventListener("failure", (e) => {
    showBanner(`The control plane cannot give the stream paths now: ${JSON.parse(e.data).error}`);
    setStatus("stale", "stale");
  });
  events.addEventListener("error", () => {
    if (events.readyState !== EventSource.CLOSED) return setStatus("reconnecting", "reconnecting\u2026");
    // refused (the server's limit of live clients, or it restarted without the dashboard): try again later
    setStatus("down", "disconnected");
    setTimeout(follow, RETRY_MS);
  });
}

$("picker").addEventListener("change", (e) => pick(e.target.value));
follow();
