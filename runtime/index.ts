// The runtime's public entry point: what the CLI, the control plane, the SDK harness, tests and
// benchmarks may import. Everything else under runtime/ is internal.
export { Proxy, ApplyError, type ProxyEvent, type ProxySnapshot, type ProxyHealth } from "./proxy.js";
export {
  ConfigError, loadProxyConfigFile, parseProxyConfig, readConfigText, validateProxyConfig, proxyConfigSchema, STREAMS_DEFAULTS, hostFamilyClash,
  legMulticast, segmentFlags, type MulticastOut, type ProxyConfig, type ProxyConfigInput, type SegmentConfig, type FilterEntry,
} from "./config/proxy-config.js";
export { resolveSecrets } from "./config/secrets.js";
export {
  loadNodeSettingsFile, validateNodeSettings, dataPlaneSettings, nodeSettingsSchema, type NodeSettings, type NodeDataPlaneSettings,
} from "./config/node-settings.js";
export { isMulticast } from "./config/multicast.js";
export { nearKey, nearName } from "./config/schema-messages.js";
export { canonicalAddress, endpointsClash, type Endpoint as BindEndpoint } from "./config/endpoints.js";
export { parseErrorText } from "./config/parse-error-text.js";
export { writeFileDurably } from "./durable-file.js";
export { parseJsonText, parseYamlDocuments, TextLimitError } from "./config/text-limits.js";
export type { StreamStats, StreamDirection, StreamWindow, ReceiverReport, StreamOverflow } from "./streams/types.js";
export { FilterInstance, type FilterHostServices } from "./filter-host/filter-instance.js";
export { hostCryptoUnavailable, hostCryptoDescription } from "./filter-host/host-crypto.js";
export { checkArena, type ArenaLayout } from "./filter-host/arena-check.js";
export { loadFilterModule, compileFilterModule, MAX_MODULE_FILE_BYTES, sha256Hex, type LoadedFilterModule, type FilterSource } from "./filter-host/module-loader.js";
export { FilterLoadError, FilterConfigError, FilterFailure } from "./filter-host/errors.js";
export { acceptOutput, batchProblem, filterReason, judgeBatch, outputProblem, validOutputTarget, PASSED, HELD } from "./filter-host/judge.js";
export { HISTOGRAM_BOUNDS, type HistogramValue } from "./filter-host/metrics.js";
export { dropReasonName, SegmentStats } from "./chain/stats.js";
// The packet loop's parts, for benchmarks that drive a chain without sockets.
export { ChainRunner, type EgressFn } from "./chain/chain-runner.js";
export { DEFAULT_FAILURE_POLICY, DEFAULT_STAGE_LIMITS, FilterPool, type ChainStage, type FilterSpec, type InstanceSlot } from "./chain/filter-pool.js";
export { PacketList } from "./chain/packet-list.js";
export { stageBudgets, type TokenBucket } from "./chain/budget.js";
export { SegmentStreams } from "./streams/segment-streams.js";
export { INGRESS, PKT_AT_MS, PKT_BYTES, PKT_SEQ, PKT_TS, PKT_WINDOW_MS, RECEIVER_TIMEOUT_MS, StreamTable } from "./streams/stream-table.js";
export { planIo, type IoPlan } from "./dataplane/batched-io.js";
// the batched-I/O addon itself, for the bench's load generator and sink
export { loadAddon as loadUdpAddon, udpAddonError, socketHandle, META_STRIDE, RECEIVE_SLOT, type UdpAddon } from "./dataplane/batched-io.js";
export { DataPlane, type ApplyRequest, type DataPlaneEvent } from "./dataplane/dataplane.js";
export type { SegmentSnapshot, StageSnapshot } from "./dataplane/snapshot.js";
export { WORKER_MODE } from "./dataplane/worker-handle.js";
export { excludedFamilies, renderPrometheus } from "./admin/prometheus.js";
export { boundHeapGrowth } from "./heap-growth.js";
export { DropWatch } from "./udp-kernel-drops.js";
export { isProcessSubstitution } from "./bounded-read.js";
export { familyLines, escapeLabelValue, type LabelSet, type Sample } from "./admin/exposition.js";
export { startAdminServer, type AdminServer, type AdminOptions } from "./admin/admin-server.js";
export * as abi from "./abi.js";
