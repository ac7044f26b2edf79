// How an ACK says which of the segments it names as not running still run their previous version
// (a proxy refused their change and ran the rest of the snapshot: controlplane/agent/agent.ts),
// written by the agent and read back by msmctl, so that a camera that forwards is not shown as down.

/** The words the ACK's error carries: `(cam-4 runs its previous version)`. */
export function heldBackText(kept: readonly string[]): string {
  return kept.length === 0 ? "" : ` (${kept.join(", ")} ${kept.length > 1 ? "run their" : "runs its"} previous version)`;
}

/** The segments an ACK's error says run their previous version. */
export function heldBackOf(error: string): string[] {
  const m = /\(([^()]+) (?:runs its|run their) previous version\)/.exec(error);
  return m ? m[1]!.split(", ") : [];
}
