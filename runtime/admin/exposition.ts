// The Prometheus text exposition format (version 0.0.4), as the proxy's /metrics and the control
// plane's dashboard write it: one family at a time, label values escaped.
export type LabelSet = Readonly<Record<string, string | number>>;
export type Sample = readonly [LabelSet, number];

/** A label value as the format wants it: backslash, double quote and newline escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** `{k="v",...}`, or "" for no labels. */
export function labelText(labels: LabelSet): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(String(v))}"`);
  return pairs.length > 0 ? `{${pairs.join(",")}}` : "";
}

/** A family's HELP and TYPE lines, then one line per sample. */
export function familyLines(name: string, type: string, help: string, samples: readonly Sample[]): string[] {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...samples.map(([labels, value]) => `${name}${labelText(labels)} ${value}`)];
}
