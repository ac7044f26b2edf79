// `msmctl apply --wait` and `delete --wait`: a change is stored at once, but it runs only when each
// proxy concerned acknowledges the snapshot that carries it (or refuses it, or runs it without
// some segments). This waits for those answers, as `kubectl rollout status` waits for a rollout,
// so that a script or a pipeline knows the change runs before it goes on.
import type { AdminApi } from "./client.js";
import type { ProxyStatus } from "../../controlplane/api/proto.js";
import { printable } from "../../controlplane/security/terminal.js";

const POLL_MS = 250;

export interface ProxyOutcome {
  readonly proxy: string;
  /** runs: acknowledged; partial: acknowledged, some segments NOT running; refused: NACKed; timeout: no answer in time. */
  readonly result: "runs" | "partial" | "refused" | "timeout";
  /** The proxy's reason (refused, partial) or why no answer came (timeout). */
  readonly detail: string;
  readonly notRunning?: readonly string[];
}

/** The outcome of a proxy that answered `revision` or later, or undefined while it has not. */
function answered(s: ProxyStatus, revision: number): ProxyOutcome | undefined {
  if (s.nackedVersion >= revision && s.nackedVersion > s.ackedVersion) return { proxy: s.nodeId, result: "refused", detail: s.nackError };
  if (s.ackedVersion < revision) return undefined;
  if (s.notRunning.length > 0) return { proxy: s.nodeId, result: "partial", detail: s.notRunningError, notRunning: s.notRunning };
  return { proxy: s.nodeId, result: "runs", detail: "" };
}

/** Why a proxy has not answered: what an operator checks next. */
function silence(s: ProxyStatus | undefined, revision: number, now: number): string {
  if (!s || (!s.connected && s.lastSeenMs === 0)) return "it never connected to the control plane";
  if (!s.connected) return `it is not connected to the control plane${s.lastSeenMs > 0 ? ` (last seen ${Math.round((now - s.lastSeenMs) / 1000)} s ago)` : ""}`;
  return `it is connected and still runs revision ${s.ackedVersion || "-"} (applying ${revision} may take that long: modules to fetch, a filter's start)`;
}

/** Polls the proxies' status until each of `proxies` answered `revision` (or a later one), or `timeoutMs` passed. */
export async function waitForProxies(api: AdminApi, proxies: readonly string[], revision: number, timeoutMs: number): Promise<ProxyOutcome[]> {
  const deadline = Date.now() + timeoutMs;
  const done = new Map<string, ProxyOutcome>();
  for (;;) {
    const statuses = new Map((await api.listProxies()).proxies.map((s) => [s.nodeId, s]));
    for (const p of proxies) {
      if (done.has(p)) continue;
      const s = statuses.get(p);
      const outcome = s && answered(s, revision);
      if (outcome) done.set(p, outcome);
    }
    if (done.size === proxies.length) break;
    if (Date.now() >= deadline) {
      for (const p of proxies) if (!done.has(p)) done.set(p, { proxy: p, result: "timeout", detail: silence(statuses.get(p), revision, Date.now()) });
      break;
    }
    await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(0, deadline - Date.now()))));
  }
  return proxies.map((p) => done.get(p)!);
}

/** One line per proxy, as `apply` prints its segments. */
export function outcomeLines(outcomes: readonly ProxyOutcome[], revision: number, timeoutMs: number): string {
  return outcomes.map((o) => {
    const head = `proxy/${o.proxy}`;
    switch (o.result) {
      case "runs":
        return `${head} runs revision ${revision}\n`;
      case "partial":
        return `${head} runs revision ${revision} WITHOUT segments ${o.notRunning!.join(", ")}: ${printable(o.detail)}\n`;
      case "refused":
        return `${head} REFUSED revision ${revision}: ${printable(o.detail)}\n`;
      case "timeout":
        return `${head} did not answer revision ${revision} within ${timeoutMs / 1000} s: ${o.detail}\n`;
    }
  }).join("");
}
