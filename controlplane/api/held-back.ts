// How an ACK says which of the segments it names as not running still run their previous version
// (a proxy refused their change and ran the rest of the snapshot: controlplane/agent/agent.ts),
// written by the agent and read back by msmctl, so that a camera that forwards is not shown as down.

/** The words the ACK's error carries: `(cam-4 runs its previous version)`. */
export function heldBackText(kept: readonly string[]): string {
  return kept.length === 0 ? "" : ` (${kept.join(", ")} ${kept.length > 1 ? "run their" : "runs its"} previous version)`;
}

/** A proxy's segments of the version it acked that run nothing (`down`), and those that run their previous version (`held`). */
export function notRunningParts(notRunning: readonly string[], error: string): { down: string[]; held: string[] } {
  const kept = heldBackOf(error);
  return { down: notRunning.filter((name) => !kept.includes(name)), held: notRunning.filter((name) => kept.includes(name)) };
}

/** An ACK's error without its lead (`snapshot 7 applied, except ...: `): the reasons. */
export function notRunningReasons(error: string): string {
  return error.replace(/^snapshot \d+ applied, except [^:]*: /, "");
}

/** What a proxy runs besides the version it acked, in words: `cam-2 NOT running; the change of cam-1 refused (it runs its previous version)`. */
export function notRunningText(notRunning: readonly string[], error: string): string {
  const { down, held } = notRunningParts(notRunning, error);
  return [
    ...(down.length > 0 ? [`${down.join(", ")} NOT running`] : []),
    ...(held.length > 0 ? [`the change of ${held.join(", ")} refused (${held.length > 1 ? "they run their" : "it runs its"} previous version)`] : []),
  ].join("; ");
}

/** The segments an ACK's error says run their previous version. */
export function heldBackOf(error: string): string[] {
  const m = /\(([^()]+) (?:runs its|run their) previous version\)/.exec(error);
  return m ? m[1]!.split(", ") : [];
}
