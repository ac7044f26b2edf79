// The two graphs of the page, drawn as SVG: the whole mesh (proxies, and the links streams take
// between them) and one stream's path hop by hop. A bad hop is drawn red with its reason.
import { ms, percent, s } from "./dom.js";

const SENDERS = "@senders";
const RECEIVERS = "@receivers";

const NODE_W = 168;
const NODE_H = 54;
const COL_GAP = 120;
const ROW_GAP = 26;
const PAD = 24;

/** A horizontal edge from the right side of one box to the left side of another (an arc below when it goes back). */
function edgePath(a, b) {
  const x1 = a.x + a.w;
  const y1 = a.y + a.h / 2;
  const x2 = b.x;
  const y2 = b.y + b.h / 2;
  if (x2 > x1) {
    const dx = (x2 - x1) / 2;
    return { d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`, mx: (x1 + x2) / 2, my: (y1 + y2) / 2 };
  }
  const low = Math.max(a.y + a.h, b.y + b.h) + 36;
  const sx = a.x + a.w / 2;
  const ex = b.x + b.w / 2;
  return { d: `M${sx},${a.y + a.h} C${sx},${low} ${ex},${low} ${ex},${b.y + b.h}`, mx: (sx + ex) / 2, my: low - 8 };
}

function arrowDefs() {
  const marker = (id, cls) =>
    s("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, [
      s("path", { d: "M0,0 L10,5 L0,10 z", class: cls }),
    ]);
  return s("defs", {}, [marker("arrow", "arrowhead"), marker("arrow-bad", "arrowhead bad")]);
}

function sized(svg, width, height) {
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  svg.setAttribute("preserveAspectRatio", "xMinYMin meet");
  return svg;
}

/** Columns by the longest path from the senders (a link that goes back does not move a proxy). */
function columns(mesh) {
  const col = new Map(mesh.nodes.map((n) => [n.id, n.kind === "senders" ? 0 : 1]));
  for (let round = 0; round < mesh.nodes.length; round++) {
    let moved = false;
    for (const e of mesh.edges) {
      if (e.to === RECEIVERS) continue;
      const next = col.get(e.from) + 1;
      if (next > col.get(e.to) && next <= mesh.nodes.length) {
        col.set(e.to, next);
        moved = true;
      }
    }
    if (!moved) break;
  }
  let last = 1;
  for (const n of mesh.nodes) if (n.kind === "proxy") last = Math.max(last, col.get(n.id));
  if (col.has(RECEIVERS)) col.set(RECEIVERS, last + 1);
  return col;
}

const nodeTitle = (n) => (n.kind === "senders" ? "senders" : n.kind === "receivers" ? "receivers" : n.id);

/** The mesh key of an edge, as the page marks the picked stream's edges. */
export const edgeKey = (from, to) => `${from}\u0000${to}`;

/** The mesh: a node per proxy, an edge per pair of proxies some stream crosses; `selected` holds the picked stream's proxies and edges. */
export function drawMesh(mesh, selected) {
  const svg = s("svg", { class: "mesh", role: "img", "aria-label": "the mesh: proxies and the links streams take" });
  if (mesh.nodes.length === 0) return null;
  const col = columns(mesh);
  const byCol = new Map();
  for (const n of [...mesh.nodes].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const c = col.get(n.id);
    if (!byCol.has(c)) byCol.set(c, []);
    byCol.get(c).push(n);
  }
  const rows = Math.max(...[...byCol.values()].map((l) => l.length));
  // room below the nodes for the arcs of links that go back
  const below = mesh.edges.some((e) => e.to !== RECEIVERS && e.from !== SENDERS && col.get(e.to) <= col.get(e.from)) ? 48 : 0;
  const height = PAD * 2 + rows * NODE_H + (rows - 1) * ROW_GAP + below;
  const box = new Map();
  let width = 0;
  for (const [c, list] of byCol) {
    const colHeight = list.length * NODE_H + (list.length - 1) * ROW_GAP;
    list.forEach((n, i) => {
      const b = { x: PAD + c * (NODE_W + COL_GAP), y: (height - below - colHeight) / 2 + i * (NODE_H + ROW_GAP), w: NODE_W, h: NODE_H };
      box.set(n.id, b);
      width = Math.max(width, b.x + b.w + PAD);
    });
  }
  svg.append(arrowDefs());
  for (const e of mesh.edges) {
    const a = box.get(e.from);
    const b = box.get(e.to);
    const p = edgePath(a, b);
    const bad = e.bad > 0;
    const onPath = selected.edges.has(edgeKey(e.from, e.to));
    const label = bad ? `${e.bad} bad of ${e.streams}` : `${e.streams} stream${e.streams === 1 ? "" : "s"}`;
    svg.append(
      s("g", { class: ["edge", bad && "bad", onPath && "selected"], "data-from": e.from, "data-to": e.to }, [
        s("title", { text: `${nodeTitle({ id: e.from, kind: kindOf(e.from) })} \u2192 ${nodeTitle({ id: e.to, kind: kindOf(e.to) })}: ${label}${e.why ? `\n${e.why}` : ""}` }),
        s("path", { d: p.d, "marker-end": bad ? "url(#arrow-bad)" : "url(#arrow)" }),
        s("text", { x: p.mx, y: p.my - 6, class: "edge-label", "text-anchor": "middle", text: label }),
      ]),
    );
  }
  for (const n of mesh.nodes) {
    const b = box.get(n.id);
    const bad = n.bad > 0;
    const state = n.connected === null ? "unknown" : n.connected ? "connected" : "disconnected";
    const sub =
      n.kind === "proxy" ? `${n.streams} stream${n.streams === 1 ? "" : "s"} \u00b7 ${bad ? `${n.bad} bad inside` : state}` : "";
    svg.append(
      s("g", { class: ["node", n.kind, bad && "bad", selected.proxies.has(n.id) && "selected", n.kind === "proxy" && state], "data-id": n.id }, [
        s("title", { text: `${nodeTitle(n)}${n.kind === "proxy" ? ` (${state})` : ""}${n.why ? `\n${n.why}` : ""}` }),
        s("rect", { x: b.x, y: b.y, width: b.w, height: b.h, rx: n.kind === "proxy" ? 6 : b.h / 2 }),
        n.kind === "proxy" ? s("circle", { cx: b.x + 14, cy: b.y + 18, r: 4, class: "status-dot" }) : null,
        s("text", { x: n.kind === "proxy" ? b.x + 24 : b.x + b.w / 2, y: b.y + (sub ? 22 : 32), class: "node-name", "text-anchor": n.kind === "proxy" ? "start" : "middle", text: clip(nodeTitle(n), 20) }),
        sub ? s("text", { x: b.x + 12, y: b.y + 42, class: "node-sub", text: sub }) : null,
      ]),
    );
  }
  return sized(svg, width, height);
}

function kindOf(id) {
  return id === SENDERS ? "senders" : id === RECEIVERS ? "receivers" : "proxy";
}

function clip(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}\u2026` : text;
}

/** Words in lines of at most `width` characters, at most `most` lines (the last one clipped). */
function wrap(text, width, most) {
  const out = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  if (out.length <= most) return out.map((l) => clip(l, width));
  return [...out.slice(0, most - 1), clip(out.slice(most - 1).join(" "), width)];
}

/** The figures of one hop, one line each; empty when nothing was measured. */
function hopLines(hop) {
  const lines = [];
  if (hop.lossFraction !== null) lines.push(`loss ${percent(hop.lossFraction)}`);
  if (hop.jitterAddedMs !== null) lines.push(`jitter ${ms(hop.jitterAddedMs, true)}`);
  if (hop.delayMs !== null) lines.push(`delay ${ms(hop.delayMs)}`);
  return lines;
}

/** Lines of text, one under the other, starting at y. */
function lines(x, y, texts, attrs) {
  return texts.map((text, i) => s("text", { ...attrs, x, y: y + i * 14, text }));
}

const END_W = 104;
const SEG_W = 190;
const SEG_H = 84;
const GAP = 160;
const ROW_Y = 64;

/** One stream's path: sender, a box per segment (its proxy's own hop inside), receiver; every hop's figures on it. */
export function drawPath(stream) {
  const svg = s("svg", { class: "path", role: "img", "aria-label": `the path of stream ${stream.name}` });
  // boxes keyed "s:NAME" for segments: no segment name can be taken for the sender or the receiver
  const boxes = new Map();
  let x = PAD;
  const place = (key, w) => {
    const b = { x, y: ROW_Y, w, h: SEG_H };
    boxes.set(key, b);
    x += w + GAP;
  };
  place(SENDERS, END_W);
  for (const seg of stream.segments) place(`s:${seg.segment}`, SEG_W);
  place(RECEIVERS, END_W);
  const width = x - GAP + PAD;
  const height = ROW_Y + SEG_H + 56;
  svg.append(arrowDefs());

  const proxyHop = new Map();
  const edges = [];
  stream.hops.forEach((hop, index) => {
    const worst = index === stream.worst;
    if (hop.kind === "proxy") {
      if (hop.from) proxyHop.set(`s:${hop.from.segment}`, { hop, worst, index });
      return;
    }
    const from = hop.kind === "first-link" ? SENDERS : hop.from && `s:${hop.from.segment}`;
    const to = hop.kind === "last-link" ? RECEIVERS : hop.to && `s:${hop.to.segment}`;
    if (boxes.has(from) && boxes.has(to)) edges.push({ hop, worst, index, from, to });
  });
  // an end of the path no hop reaches: drawn dashed, as not measured
  if (stream.segments.length > 0) {
    const first = `s:${stream.segments[0].segment}`;
    const last = `s:${stream.segments[stream.segments.length - 1].segment}`;
    if (!edges.some((e) => e.from === SENDERS)) edges.push({ hop: null, from: SENDERS, to: first });
    if (!edges.some((e) => e.to === RECEIVERS)) edges.push({ hop: null, from: last, to: RECEIVERS });
  }

  for (const e of edges) {
    const p = edgePath(boxes.get(e.from), boxes.get(e.to));
    if (!e.hop) {
      svg.append(s("g", { class: "hop unmeasured" }, [s("path", { d: p.d, "marker-end": "url(#arrow)" }), s("text", { x: p.mx, y: p.my - 10, "text-anchor": "middle", class: "hop-label", text: "no report" })]));
      continue;
    }
    const { hop } = e;
    const figures = hopLines(hop);
    const shown = figures.length > 0 ? figures : ["not measured"];
    svg.append(
      s("g", { class: ["hop", hop.kind, hop.bad && "bad", e.worst && "worst"], "data-hop": e.index, "data-label": hop.label }, [
        s("title", { text: [hop.label, ...figures, hop.why ?? "", hop.note ?? ""].join("\n").trim() }),
        s("path", { d: p.d, "marker-end": hop.bad ? "url(#arrow-bad)" : "url(#arrow)" }),
        ...lines(p.mx, p.my - 10 - 14 * (shown.length - 1), shown, { "text-anchor": "middle", class: "hop-label" }),
        // why a figure is missing: the first words under the edge, all of it in the tooltip
        ...(hop.note && !hop.bad ? lines(p.mx, p.my + 18, wrap(hop.note, 28, 2), { "text-anchor": "middle", class: "note" }) : []),
        hop.bad ? s("text", { x: p.mx, y: ROW_Y + SEG_H + 30, "text-anchor": "middle", class: "why", text: hop.why ?? "bad" }) : null,
      ]),
    );
  }

  const endNode = (key, label) => {
    const b = boxes.get(key);
    return s("g", { class: ["node", key === SENDERS ? "senders" : "receivers"] }, [
      s("rect", { x: b.x, y: b.y + b.h / 2 - 20, width: b.w, height: 40, rx: 20 }),
      s("text", { x: b.x + b.w / 2, y: b.y + b.h / 2 + 5, "text-anchor": "middle", class: "node-name", text: label }),
    ]);
  };
  svg.append(endNode(SENDERS, "sender"), endNode(RECEIVERS, "receiver"));
  for (const seg of stream.segments) {
    const b = boxes.get(`s:${seg.segment}`);
    const inside = proxyHop.get(`s:${seg.segment}`);
    const bad = inside?.hop.bad ?? false;
    const figures = inside ? hopLines(inside.hop) : [];
    svg.append(
      s("g", { class: ["node", "proxy", "segment", bad && "bad"], "data-id": seg.proxy, "data-segment": seg.segment, "data-hop": inside?.index }, [
        s("title", { text: [`proxy ${seg.proxy}, segment ${seg.segment}`, ...figures, inside?.hop.why ?? "", inside?.hop.note ?? ""].join("\n").trim() }),
        s("rect", { x: b.x, y: b.y, width: b.w, height: b.h, rx: 6 }),
        s("text", { x: b.x + 12, y: b.y + 20, class: "node-name", text: clip(seg.proxy, 22) }),
        s("text", { x: b.x + 12, y: b.y + 36, class: "node-sub", text: `segment ${clip(seg.segment, 20)}` }),
        s("text", { x: b.x + 12, y: b.y + 56, class: "node-sub figures", text: figures.length > 0 ? figures.slice(0, 2).join(" \u00b7 ") : clip(`inside: ${inside?.hop.note ?? "not measured"}`, 28) }),
        figures[2] ? s("text", { x: b.x + 12, y: b.y + 72, class: "node-sub figures", text: figures[2] }) : null,
        bad ? s("text", { x: b.x + b.w / 2, y: ROW_Y + SEG_H + 30, "text-anchor": "middle", class: "why", text: inside.hop.why ?? "bad" }) : null,
      ]),
    );
  }
  return sized(svg, width, height);
}
