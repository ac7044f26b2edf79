// Loads controlplane/proto/msm.proto (the one source of truth for the wire format) and exposes
// its services and the TypeScript shapes of its messages, as @grpc/proto-loader decodes them:
// camelCase fields, uint64 as number, oneofs named by `kind`, defaults filled in.
import { loadSync } from "@grpc/proto-loader";
import { loadPackageDefinition, type ServiceClientConstructor, type ServiceDefinition } from "@grpc/grpc-js";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const PROTO = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..", "..", "controlplane", "proto", "msm.proto");

const definition = loadSync(PROTO, { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true, bytes: Buffer });
const pkg = loadPackageDefinition(definition) as unknown as {
  msm: { v1: { ProxyService: ServiceClientConstructor; AdminService: ServiceClientConstructor } };
};

export const ProxyServiceClient = pkg.msm.v1.ProxyService;
export const AdminServiceClient = pkg.msm.v1.AdminService;
export const proxyService: ServiceDefinition = pkg.msm.v1.ProxyService.service;
export const adminService: ServiceDefinition = pkg.msm.v1.AdminService.service;

/** `interface`: a listen endpoint's multicast interface ("" or absent: none); a message decoded from the wire always has it. */
export interface Endpoint { address: string; port: number; rtcpPort: number; interface?: string; ssrc?: number; payloadType?: number }
export interface Multicast { ttl?: number; interface: string; loopback: boolean }
export interface ChainStage { filter: string; version: string; configJson: string }
export interface FailurePolicy { mode: string; restartBackoffMs: number; maxBackoffMs: number; maxFailures: number }
export interface Segment {
  name: string;
  proxy: string;
  listen: Endpoint | null;
  rtcpMux: boolean;
  egress: Endpoint | null;
  destinations: Endpoint[];
  source: Endpoint | null;
  chain: ChainStage[];
  failure: FailurePolicy | null;
  revision: number;
  legs: Leg[];
  /** Absent (or null) for the defaults. */
  multicast?: Multicast | null;
  /** Payload type (as text: a proto map's key) -> RTP clock rate, Hz; absent or {} for none. */
  clockRates?: Record<string, number>;
}

/** A segment's clock rates as the proxy's config and the store take them: undefined when there are none. */
export function clockRatesOf(seg: Pick<Segment, "clockRates">): Record<string, number> | undefined {
  const entries = Object.entries(seg.clockRates ?? {});
  return entries.length > 0 ? Object.fromEntries(entries.map(([pt, hz]) => [String(Number(pt)), hz])) : undefined;
}
/**
 * A segment's leg. The optional fields are proto3 `optional`: absent when unset (decoded messages
 * then also carry the oneof's virtual `_receive`-style fields; build records field by field).
 */
export interface Leg {
  name: string;
  portOffset?: number;
  listen: Endpoint | null;
  receive?: boolean;
  destinations: Endpoint[];
  egress: Endpoint | null;
  send?: boolean;
  /** "" (or absent): the leg hears the media's sender; else its own sender's address. */
  sourceAddress?: string;
}
export interface FilterRef { name: string; version: string; sha256: string; size: number; pushedAtMs: number }

export interface Ack { version: number; notRunning: string[]; error: string }
export interface Register { nodeId: string; capabilities: string[]; abiVersions: string[]; runningVersion: number }
export type ProxyMessage =
  | { kind: "register"; register: Register }
  | { kind: "ack"; ack: Ack }
  | { kind: "nack"; nack: { version: number; error: string } }
  | { kind: "stats"; stats: { statsJson: string; page: number; pages: number } };

export interface Snapshot { version: number; segments: Segment[]; filters: FilterRef[] }
export type ControlMessage = { kind: "snapshot"; snapshot: Snapshot };

export interface FilterModule { ref: FilterRef; wasm: Buffer }

export interface ProxyStatus {
  nodeId: string;
  connected: boolean;
  peer: string;
  desiredVersion: number;
  ackedVersion: number;
  nackedVersion: number;
  nackError: string;
  lastSeenMs: number;
  capabilities: string[];
  abiVersions: string[];
  server: string;
  notRunning: string[];
  notRunningError: string;
}

export interface ApplySegmentsResponse { created: string[]; configured: string[]; unchanged: string[]; revision: number }
export interface DeleteSegmentsResponse { deleted: string[]; revision: number }
export interface ProxyStats { nodeId: string; atMs: number; statsJson: string; page: number; pages: number }

export interface ListStreamsResponse { pathsJson: string; nextPageToken: string; badLoss: number; badJitterMs: number }
export interface DescribeStreamResponse { pathsJson: string; omitted: number; badLoss: number; badJitterMs: number }
