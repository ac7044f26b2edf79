// `msmctl apply --wait` and `delete --wait`: a change is stored at once, but it runs only when each
// proxy concerned acknowledges the snapshot that carries it (or refuses it, or runs it without
// some segments). This waits for those answers, as `kubectl rollout status` waits for a rollout,
// so that a script or a pipeline knows the change runs before it goes on.
import type { AdminApi } from "./client.js";
import type { ProxyStatus } from "../../controlplane/api/proto.js";
import { printable } from "../../controlplane/security/terminal.js";
import { heldBackOf, notRunningReasons } from "../../controlplane/api/held-back.js";

const POLL_MS = 250;

export interface ProxyOutcome {
  readonly proxy: string;
  /** runs: acknowledged; partial: acknowledged, some segments NOT running; refused: NACKed; timeout: no answer in time. */
  readonly result: "runs" | "partial" | "refused" | "timeout";
  /** The version meant for it, that it ran, refused or did not answer. */
  readonly revision: number;
  /** The proxy's reason (refused, partial) or why no answer came (timeout). */
  readonly detail: string;
  readonly notRunning?: readonly string[];
}

/**
 * The outcome of a proxy once it answered the snapshot meant for it (its desired version, at
 * least `revision`), or undefined while it has not. It runs that version only when its ACKed
 * version is the desired one: a proxy reports the version it ran before (last-good.json) when it
 * connects, and after a store reset or restore that is higher than anything the store sends.
 */
function answered(s: ProxyStatus, revision: number): ProxyOutcome | undefined {
  const target = Math.max(revision, s.desiredVersion);
  const runs = s.ackedVersion >= target && s.ackedVersion === s.desiredVersion;
  // a refusal the proxy will try again (a port held for a moment) is no answer yet: the try may run it
  if (!runs && retrying(s, target)) return undefined;
  if (!runs && s.nackedVersion >= target) return { proxy: s.nodeId, result: "refused", revision: s.nackedVersion, detail: s.nackError };
  if (!runs) return undefined;
  if (s.notRunning.length > 0) return { proxy: s.nodeId, result: "partial", revision: s.ackedVersion, detail: s.notRunningError, notRunning: s.notRunning };
  return { proxy: s.nodeId, result: "runs", revision: s.ackedVersion, detail: "" };
}

/** The proxy refused the version meant for it and tries it again (also while it reconnects: a replica's failover). */
function retrying(s: ProxyStatus, target: number): boolean {
  return s.nackedVersion >= target && s.nackRetryAtMs > 0;
}

/** A retried refusal as it stands: when the proxy tries again, and why it refused. */
function retryText(s: ProxyStatus, now: number): string {
  const inS = Math.round((s.nackRetryAtMs - now) / 1000);
  return `${inS > 0 ? `tries again in ${inS} s` : "tries again now"}: ${printable(s.nackError)}`;
}

function neverConnected(s: ProxyStatus | undefined): boolean {
  return !s || (!s.connected && s.lastSeenMs === 0);
}

/** Why a proxy has not answered: what an operator checks next. */
function silence(s: ProxyStatus | undefined, revision: number, now: number): string {
  if (!s || neverConnected(s)) return "it never connected to the control plane";
  if (!s.connected) return `it is not connected to the control plane${s.lastSeenMs > 0 ? ` (last seen ${Math.round((now - s.lastSeenMs) / 1000)} s ago)` : ""}`;
  return `it is connected and still runs revision ${s.ackedVersion || "-"} (applying ${revision} may take that long: modules to fetch, a filter's start)`;
}

/**
 * Polls the proxies' status until each proxy of `targets` answered the version meant for it (the
 * revision given or later; 0: whatever it is meant to run now), or `timeoutMs` passed. `nothingToRemove`: a proxy
 * that never connected had nothing of the change to run (a delete), and counts as done.
 * `progress` hears of each new refusal a proxy will try again, while the wait goes on.
 */
export async function waitForProxies(api: AdminApi, targets: ReadonlyMap<string, number>, timeoutMs: number, nothingToRemove = false, progress?: (line: string) => void): Promise<ProxyOutcome[]> {
  const proxies = [...targets.keys()].sort();
  const deadline = Date.now() + timeoutMs;
  const done = new Map<string, ProxyOutcome>();
  /** Per proxy, the retried refusal last said (version and reason), so that each is said once. */
  const said = new Map<string, string>();
  for (;;) {
    const statuses = new Map((await api.listProxies()).proxies.map((s) => [s.nodeId, s]));
    const now = Date.now();
    for (const p of proxies) {
      if (done.has(p)) continue;
      const s = statuses.get(p);
      const revision = targets.get(p)!;
      if (nothingToRemove && neverConnected(s)) {
        done.set(p, { proxy: p, result: "runs", revision, detail: "it never connected: nothing to remove" });
        continue;
      }
      const outcome = s && answered(s, revision);
      if (outcome) done.set(p, outcome);
      else if (s && progress && retrying(s, Math.max(revision, s.desiredVersion))) {
        const key = `${s.nackedVersion} ${s.nackError}`;
        if (said.get(p) !== key) progress(`proxy/${p} refused revision ${s.nackedVersion} and ${retryText(s, now)}\n`);
        said.set(p, key);
      }
    }
    if (done.size === proxies.length) break;
    if (now >= deadline) {
      for (const p of proxies) {
        if (done.has(p)) continue;
        const s = statuses.get(p);
        const target = Math.max(targets.get(p)!, s?.desiredVersion ?? 0);
        // still refused when the time is up: a refusal, though the proxy goes on trying
        if (s && retrying(s, target)) done.set(p, { proxy: p, result: "refused", revision: s.nackedVersion, detail: `${s.nackError} (the proxy keeps trying)` });
        else done.set(p, { proxy: p, result: "timeout", revision: target, detail: silence(s, target, now) });
      }
      break;
    }
    await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(0, deadline - Date.now()))));
  }
  return proxies.map((p) => done.get(p)!);
}

/**
 * What each of `proxies` answered, as it stands, for the version it is meant to run now: a dry run
 * that leaves a proxy's segments as they are gets this answer from a real apply too. A proxy that
 * has not answered yet, or that will try a refusal again, has no outcome here.
 */
export async function standingOutcomes(api: AdminApi, proxies: readonly string[]): Promise<ProxyOutcome[]> {
  const statuses = new Map((await api.listProxies()).proxies.map((s) => [s.nodeId, s]));
  return [...proxies].sort().flatMap((p) => {
    const s = statuses.get(p);
    const outcome = s && answered(s, 0);
    return outcome ? [outcome] : [];
  });
}

/** One line per proxy, as `apply` prints its segments. */
export function outcomeLines(outcomes: readonly ProxyOutcome[], timeoutMs: number): string {
  return outcomes.map((o) => {
    const head = `proxy/${o.proxy}`;
    switch (o.result) {
      case "runs":
        return o.detail ? `${head}: ${o.detail}\n` : `${head} runs revision ${o.revision}\n`;
      case "partial": {
        const kept = heldBackOf(o.detail);
        const down = o.notRunning!.filter((name) => !kept.includes(name));
        const parts = [
          ...(down.length > 0 ? [`WITHOUT segment${down.length > 1 ? "s" : ""} ${down.join(", ")} (NOT running)`] : []),
          ...(kept.length > 0 ? [`except ${kept.join(", ")}, whose change it refused (${kept.length > 1 ? "they run their" : "it runs its"} previous version)`] : []),
        ];
        // the detail's own lead says the same again: its reasons are what is left to say
        return `${head} runs revision ${o.revision} ${parts.join(" and ")}: ${printable(notRunningReasons(o.detail))}\n`;
      }
      case "refused":
        return `${head} REFUSED revision ${o.revision}: ${printable(o.detail)}\n`;
      case "timeout":
        return `${head} did not answer revision ${o.revision} within ${timeoutMs / 1000} s: ${o.detail}\n`;
    }
  }).join("");
}
