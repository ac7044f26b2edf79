// A node's own settings when the control plane runs its segments (`msm proxy --control-plane ...
// --config node.yaml`): the proxy file's keys that are not segments or filters. The control plane
// says what runs; how this node runs it (its socket buffers, workers, stats, checkpoints) is the
// node's, as an operator sizes it for the machine.
import { ConfigError, pathString, proxyConfigSchema, readConfigDocument, type ProxyConfig } from "./proxy-config.js";
import { schemaProblems } from "./schema-messages.js";

export const nodeSettingsSchema = proxyConfigSchema.omit({ filters: true, segments: true, stateFile: true });

export type NodeSettings = ReturnType<typeof nodeSettingsSchema.parse>;

/** The settings a proxy config takes from the node (what the flags and the agent's own options do not set). */
export type NodeDataPlaneSettings = Pick<ProxyConfig, "batchSize" | "io" | "watchdog" | "socketReceiveBuffer" | "streams" | "stateCheckpointMs" | "spareWorker" | "metrics" | "secrets">;

const NOT_A_NODE_KEY: Readonly<Record<string, string>> = {
  segments: "segments come from the control plane (msmctl apply); a node's file holds only its own settings",
  filters: "filters come from the control plane's registry (msmctl filter push); a node's file holds only its own settings",
  stateFile: "a node run by the control plane saves its stages' state in --state-dir (stage-state.json)",
};

/** Checks a node's settings document. Throws ConfigError naming each bad field. */
export function validateNodeSettings(input: unknown, source = "node settings"): NodeSettings {
  const problems: string[] = [];
  if (input !== null && typeof input === "object" && !Array.isArray(input)) {
    for (const [key, why] of Object.entries(NOT_A_NODE_KEY)) if (key in input) problems.push(`${key}: not a node's setting: ${why}`);
  }
  const rest = problems.length === 0 ? input : Object.fromEntries(Object.entries(input as object).filter(([k]) => !(k in NOT_A_NODE_KEY)));
  const result = nodeSettingsSchema.safeParse(rest ?? {});
  if (!result.success) problems.push(...schemaProblems(result.error.issues, pathString, nodeSettingsSchema));
  // every config of such a node has a stateFile (stage-state.json), which needs checkpoints: each
  // snapshot would otherwise be refused for a key the operator did not set
  if (result.success && result.data.stateCheckpointMs === 0) {
    problems.push("stateCheckpointMs: 0 takes no checkpoints, but a node run by the control plane saves its stages' state (--state-dir's stage-state.json) at each; give it a period (1000 by default)");
  }
  if (problems.length > 0) throw new ConfigError(problems, source);
  return result.data!;
}

/** Reads and checks a node's settings file (YAML, or JSON by its extension). Throws ConfigError naming the file and field. */
export async function loadNodeSettingsFile(file: string): Promise<NodeSettings> {
  return validateNodeSettings(await readConfigDocument(file), file);
}

/** The part of a node's settings that goes into every config the agent applies. */
export function dataPlaneSettings(s: NodeSettings): NodeDataPlaneSettings {
  return {
    batchSize: s.batchSize, io: s.io, watchdog: s.watchdog, socketReceiveBuffer: s.socketReceiveBuffer,
    streams: s.streams, stateCheckpointMs: s.stateCheckpointMs, spareWorker: s.spareWorker, metrics: s.metrics,
    ...(s.secrets !== undefined ? { secrets: s.secrets } : {}),
  };
}
