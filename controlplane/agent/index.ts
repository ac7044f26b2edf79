// The proxy-side control-plane agent's public entry point (controlplane/agent/README.md explains it).
export { Agent, startAgent, AGENT_TIMING } from "./agent.js";
export type { AgentOptions, AgentEvents, AppliedEvent } from "./types.js";
export { planSnapshot, SnapshotError, type SnapshotPlan, type ModuleUse } from "./snapshot-config.js";
export { readLastGood, lastGoodPath, type LastGood } from "./last-good.js";
