// How msmctl prints: aligned tables in kubectl's manner, ages, sizes, endpoints, and the json and
// yaml forms of whole objects.
import { stringify as toYaml } from "yaml";
import type { Endpoint } from "../../controlplane/api/proto.js";
import { escapeSerialized, hasRawUnsafe, printable } from "../../controlplane/security/terminal.js";

export type OutputFormat = "table" | "json" | "yaml";

export const OUTPUT_FORMATS: readonly OutputFormat[] = ["table", "json", "yaml"];

/** Columns padded to their widest cell, three spaces apart, no trailing blanks; cells made printable. */
export function table(headers: readonly string[], unsafeRows: readonly (readonly string[])[]): string {
  const rows = unsafeRows.map((r) => r.map((cell) => printable(cell)));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("   ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

/** A document in the chosen machine-readable form; characters that could drive a terminal are escaped. */
export function render(value: unknown, format: "json" | "yaml"): string {
  const json = JSON.stringify(value, null, 2);
  if (format === "json") return escapeSerialized(json) + "\n";
  const quoteAll = hasRawUnsafe(json) ? { defaultStringType: "QUOTE_DOUBLE", defaultKeyType: "QUOTE_DOUBLE" } as const : {};
  return escapeSerialized(toYaml(value, { lineWidth: 0, ...quoteAll }));
}

/** kubectl's short ages: 45s, 12m, 5h, 3d ("-" for an unknown time). */
export function age(ms: number, now = Date.now()): string {
  if (!ms) return "-";
  const s = Math.max(0, Math.floor((now - ms) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

/** A byte count in binary units: 512B, 40.1KiB, 3.2MiB. */
export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v}B` : `${v >= 100 ? Math.round(v) : v.toFixed(1)}${units[u]}`;
}

/** A rate with a metric suffix: 950, 12.5k, 1.20M (per second; the unit is the column's). */
export function rate(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return "-";
  if (n < 1000) return n < 10 && n !== Math.round(n) ? n.toFixed(1) : String(Math.round(n));
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 10_000 ? 2 : 1)}k`;
  return `${(n / 1_000_000).toFixed(2)}M`;
}

export function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

export function endpoint(e: Endpoint | null | undefined): string {
  return e ? hostPort(e.address, e.port) : "-";
}

/** Cuts a string to `max` characters, ending with an ellipsis when cut. */
export function truncate(s: string, max: number): string {
  const one = s.replace(/\s+/g, " ");
  return one.length <= max ? one : `${one.slice(0, max - 1)}…`;
}

/** A list for a table cell: the first items, then "+N more". */
export function listCell(items: readonly string[], max = 2): string {
  if (items.length === 0) return "-";
  if (items.length <= max) return items.join(",");
  return `${items.slice(0, max).join(",")} +${items.length - max} more`;
}

/**
 * "label:   value" lines with the values aligned, for describe. Continuation lines keep the
 * indent (so a value's own newlines cannot forge a label); values are made printable.
 */
export function fields(rows: readonly (readonly [string, string])[], indent = ""): string {
  const width = Math.max(...rows.map(([k]) => k.length + 1));
  return rows
    .map(([k, v]) => {
      const [first, ...more] = printable(v, { keepNewlines: true }).split("\n");
      const pad = " ".repeat(width + 2);
      return [`${indent}${`${k}:`.padEnd(width)}  ${first}`.trimEnd(), ...more.map((m) => `${indent}${pad}${m}`.trimEnd())].join("\n");
    })
    .join("\n");
}
