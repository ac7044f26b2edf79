// Types of the proxy-side control-plane agent (type-only: nothing here runs).
import type { NodeDataPlaneSettings, ProxyEvent } from "../../runtime/index.js";
import type { TlsFiles } from "../security/tls.js";

export interface AgentOptions {
  /** Control-plane replicas as "host:port" or "unix:PATH", tried in this order; the next one when one fails. */
  readonly controlPlanes: readonly string[];
  /** This proxy's node id (the name in its certificate's spiffe://<td>/proxy/<node-id>). */
  readonly nodeId: string;
  /** Where the module cache (`modules/<sha256>.wasm`) and `last-good.json` live. */
  readonly stateDir: string;
  /** mTLS files, or "insecure" for plain text (tests, a laptop). */
  readonly tls: TlsFiles | "insecure";
  /** Data-plane workers (fixed for the agent's life). Default 1. */
  readonly workers?: number;
  /** UDP GSO on the data plane's sends (the proxy config's `gso`; fixed for the agent's life). Default "auto". */
  readonly gso?: "auto" | "off";
  /**
   * The node's own data-plane settings, as in a proxy file (`batchSize`, `io`, `watchdog`,
   * `socketReceiveBuffer`, `streams`, `stateCheckpointMs`, `spareWorker`; docs/proxy.md "Keys"), in every config
   * the agent applies, whatever the snapshot (fixed for the agent's life). Unset: the defaults.
   */
  readonly settings?: Partial<NodeDataPlaneSettings>;
  /** The proxy's admin HTTP endpoint (/metrics, /stats, /healthz), started with the proxy. */
  readonly admin?: { readonly address: string; readonly port: number };
}

export interface AppliedEvent {
  readonly version: number;
  readonly segments: number;
  /** Modules fetched from the control plane for this snapshot (the others were cached). */
  readonly fetched: number;
  /** True when this snapshot started the proxy, false when it was a hot swap. */
  readonly started: boolean;
  readonly ms: number;
  /**
   * Segments of this version that could not be started (the change was committed, but a port
   * could not be bound, say): the version runs without them, `error` says why, and the agent
   * tries them again in `retryInMs`. Empty when the whole version runs.
   */
  readonly notRunning: readonly string[];
  readonly error?: string;
  readonly retryInMs?: number;
}

export interface AgentEvents {
  /** A snapshot now runs (and was acknowledged, if its stream is still open). */
  applied: [AppliedEvent];
  /**
   * A snapshot was refused (NACK); what ran before runs on. `retryInMs` is set when the same
   * snapshot will be tried again (a refusal that may pass: a port held, a fetch that failed).
   * Every try is NACKed, but a refusal is reported here when its reason is new, and then once
   * every 10 minutes with `repeats`, the tries refused alike meanwhile.
   */
  refused: [{ readonly version: number; readonly error: string; readonly retryInMs?: number; readonly repeats: number }];
  /** A control-plane replica answered the Register. */
  connected: [{ readonly address: string }];
  /**
   * The TLS files changed on disk (a certificate renewed in place): the next connection uses them,
   * or, when they are not usable, the ones read before (the message says which).
   */
  "tls-files": [{ readonly message: string }];
  /**
   * An attempt to reach a replica failed before it answered (connection refused, TLS failure, a
   * server whose certificate is not a control plane's, a Register it refused, no answer): the
   * agent tries the next one. A failure that repeats with the same reason is reported once a
   * minute, with how many times it repeated meanwhile.
   */
  "connect-failed": [{ readonly address: string; readonly reason: string; readonly repeats: number }];
  /** The stream to that replica ended; the agent tries the next one. */
  disconnected: [{ readonly address: string; readonly reason: string }];
  /**
   * The proxy was started from last-good.json. `notRunning`: segments of that version that do not
   * run (a port another process holds now, or as saved), `error` why, and `retryInMs` when the
   * version is tried again (as for an applied snapshot).
   */
  restored: [{ readonly version: number; readonly segments: number; readonly notRunning: readonly string[]; readonly error?: string; readonly retryInMs?: number }];
  /** Something went wrong that changes nothing that runs (a write of last-good.json, a stats report). */
  warning: [{ readonly message: string }];
  /** Everything the running proxy reports (filter logs, failures, swaps, watchdog). */
  "proxy-event": [ProxyEvent];
}

/** Segments of the running version that do not run, and why (a snapshot applied in part); `final`: trying again cannot start them. */
export interface NotRunning {
  readonly segments: readonly string[];
  readonly error: string;
  readonly final?: boolean;
}
