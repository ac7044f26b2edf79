// Building the page's elements. Every string from the data (stream, proxy and segment names come
// from users) goes in as a text node or an attribute value, never as markup: no innerHTML anywhere.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.setAttribute("class", Array.isArray(v) ? v.filter(Boolean).join(" ") : v);
    else if (k === "text") el.textContent = String(v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children ?? []) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return el;
}

/** An HTML element: h("td", { class: "num", text: "3" }). */
export function h(tag, attrs, children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replaces an element's children. */
export function put(parent, ...children) {
  parent.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false));
}

const DASH = "\u2013";

export function percent(fraction) {
  if (fraction === null || fraction === undefined) return DASH;
  const p = fraction * 100;
  // the digits of the verdicts beside it (loss 2.99% > 0.50%): 3.0 there read as another figure
  return `${p >= 100 ? p.toFixed(1) : p.toFixed(2)} %`;
}

export function ms(value, signed = false) {
  if (value === null || value === undefined) return DASH;
  const sign = signed && value > 0 ? "+" : "";
  return `${sign}${Math.abs(value) < 10 ? value.toFixed(2) : value.toFixed(1)} ms`;
}

export function bitrate(bps) {
  if (bps === null || bps === undefined) return DASH;
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mbit/s`;
  return `${(bps / 1e3).toFixed(0)} kbit/s`;
}

export function rate(pps) {
  return pps === null || pps === undefined ? DASH : pps.toFixed(0);
}

export function ssrcHex(ssrc) {
  return `0x${(ssrc >>> 0).toString(16).padStart(8, "0")}`;
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}
