// Loads controlplane/proto/msm.proto (the one source of truth for the wire format) and exposes
// its services and the TypeScript shapes of its messages, as @grpc/proto-loader decodes them:
// camelCase fields, uint64 as number, oneofs named by `kind`, defaults filled in. The options
// here and in controlplane/proto/generate-types.mjs must agree.
import { loadSync } from "@grpc/proto-loader";
import { loadPackageDefinition, makeClientConstructor, type MethodDefinition, type ServiceClientConstructor, type ServiceDefinition } from "@grpc/grpc-js";
import protobuf from "protobufjs";
import { unknownFields, unknownRecordFields } from "./unknown-fields.js";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { Endpoint__Output } from "./generated/msm/v1/Endpoint.js";
import type { Multicast__Output } from "./generated/msm/v1/Multicast.js";
import type { ChainStage__Output } from "./generated/msm/v1/ChainStage.js";
import type { StageLimits__Output } from "./generated/msm/v1/StageLimits.js";
import type { FailurePolicy__Output } from "./generated/msm/v1/FailurePolicy.js";
import type { Segment__Output } from "./generated/msm/v1/Segment.js";
import type { Leg__Output } from "./generated/msm/v1/Leg.js";
import type { FilterRef__Output } from "./generated/msm/v1/FilterRef.js";
import type { Ack__Output } from "./generated/msm/v1/Ack.js";
import type { Register__Output } from "./generated/msm/v1/Register.js";
import type { ProxyMessage__Output } from "./generated/msm/v1/ProxyMessage.js";
import type { Snapshot__Output } from "./generated/msm/v1/Snapshot.js";
import type { ControlMessage__Output } from "./generated/msm/v1/ControlMessage.js";
import type { FilterModule__Output } from "./generated/msm/v1/FilterModule.js";
import type { ProxyStatus__Output } from "./generated/msm/v1/ProxyStatus.js";
import type { ApplySegmentsResponse__Output } from "./generated/msm/v1/ApplySegmentsResponse.js";
import type { DeleteSegmentsResponse__Output } from "./generated/msm/v1/DeleteSegmentsResponse.js";
import type { ProxyStats__Output } from "./generated/msm/v1/ProxyStats.js";
import type { ListStreamsResponse__Output } from "./generated/msm/v1/ListStreamsResponse.js";
import type { DescribeStreamResponse__Output } from "./generated/msm/v1/DescribeStreamResponse.js";

const PROTO = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..", "..", "controlplane", "proto", "msm.proto");

const definition = loadSync(PROTO, { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true, bytes: Buffer });
const pkg = loadPackageDefinition(definition) as unknown as {
  msm: { v1: { ProxyService: ServiceClientConstructor; AdminService: ServiceClientConstructor } };
};

/** msm.proto as protobufjs reads it, for the wire-level checks below. */
const wire = protobuf.loadSync(PROTO);

/**
 * `method` with its request or response decoder also handing `note` each decoded message and the
 * fields of `type` (the message's own) its bytes hold that msm.proto does not define
 * (unknown-fields.ts), when there are any.
 */
function noticingUnknown(method: MethodDefinition<object, object>, side: "request" | "response", typeName: string, note: (msg: object, unknown: string[]) => void): MethodDefinition<object, object> {
  const type = wire.lookupType(typeName);
  const decode = side === "request" ? method.requestDeserialize : method.responseDeserialize;
  const deserialize = (bytes: Buffer): object => {
    const msg = decode(bytes);
    const unknown = unknownFields(type, bytes);
    if (unknown.length > 0) note(msg, unknown);
    return msg;
  };
  return side === "request" ? { ...method, requestDeserialize: deserialize } : { ...method, responseDeserialize: deserialize };
}

// msmctl's client notes, in each ListSegments answer, the fields of each segment this build does
// not define (a control plane newer than msmctl): unknownListedFields() says which, so that `get`
// can say its output lacks them (applied back, it would remove them).
const unknownInListed = new WeakMap<object, string[]>();
const adminClientDefinition = pkg.msm.v1.AdminService.service;
export const AdminServiceClient: ServiceClientConstructor = makeClientConstructor({
  ...adminClientDefinition,
  ListSegments: noticingUnknown(adminClientDefinition.ListSegments!, "response", "msm.v1.ListSegmentsResponse", (msg, unknown) => {
    const segments = (msg as { segments?: object[] }).segments;
    for (const f of unknown) {
      const m = /^segments\[(\d+)\]\.?([^:]*): (.*)$/.exec(f);
      const seg = m ? segments?.[Number(m[1])] : undefined;
      if (!seg) continue;
      const list = unknownInListed.get(seg) ?? [];
      list.push(m![2] ? `${m![2]}: ${m![3]}` : m![3]!);
      unknownInListed.set(seg, list);
    }
  }),
}, "msm.v1.AdminService");

/** The fields of a segment listed through AdminServiceClient that msm.proto does not define (`field 40 of msm.v1.Segment`, `destinations[0]: field 7 of msm.v1.Endpoint`). */
export function unknownListedFields(segment: object): readonly string[] {
  return unknownInListed.get(segment) ?? [];
}
export const proxyService: ServiceDefinition = pkg.msm.v1.ProxyService.service;

// A proxy's client notes, in each snapshot it receives, the fields this build does not define
// (a control plane newer than the proxy): unknownSnapshotFields() says which.
const unknownInSnapshot = new WeakMap<object, string[]>();
export const ProxyServiceClient: ServiceClientConstructor = makeClientConstructor({
  ...proxyService,
  Connect: noticingUnknown(proxyService.Connect!, "response", "msm.v1.ControlMessage", (msg, unknown) => {
    const snapshot = (msg as { snapshot?: object | null }).snapshot;
    const inSnapshot = unknown.filter((f) => f.startsWith("snapshot")).map((f) => (f.startsWith("snapshot.") ? f.slice(9) : f));
    if (snapshot && inSnapshot.length > 0) unknownInSnapshot.set(snapshot, inSnapshot);
  }),
}, "msm.v1.ProxyService");

/** The fields of a snapshot received by ProxyServiceClient that msm.proto does not define (`segments[0]: field 40 of msm.v1.Segment`). */
export function unknownSnapshotFields(snapshot: object): readonly string[] {
  return unknownInSnapshot.get(snapshot) ?? [];
}

// The control plane notes, in each ApplySegments request, the fields this build does not define
// (an msmctl newer than the control plane), so that it refuses the request rather than store the
// segments without them: unknownApplyFields() says which.
const unknownInApply = new WeakMap<object, string[]>();
const adminDefinition = pkg.msm.v1.AdminService.service;
export const adminService: ServiceDefinition = {
  ...adminDefinition,
  ApplySegments: noticingUnknown(adminDefinition.ApplySegments!, "request", "msm.v1.ApplySegmentsRequest", (msg, unknown) => unknownInApply.set(msg, unknown)),
};

const segmentType = wire.lookupType("msm.v1.Segment");
/** Keys of a stored segment record that msm.proto does not define (a newer control plane stored them): `legs[0]: 'future' (not a field of msm.v1.Leg)`. */
export function unknownSegmentRecordFields(record: unknown): string[] {
  return unknownRecordFields(segmentType, record);
}

/** The fields of an ApplySegments request received through adminService that msm.proto does not define (`segments[0]: field 40 of msm.v1.Segment`). */
export function unknownApplyFields(request: object): readonly string[] {
  return unknownInApply.get(request) ?? [];
}

/** The trailing metadata of a request refused only for being too large for one store transaction: the store's limit. */
export const MAX_TXN_OPS_TRAILER = "msm-max-txn-ops";

// The messages' shapes are generated from msm.proto (npm run build:proto, controlplane/api/generated/):
// the __Output types, as the decoder hands messages over. Where this code builds records itself
// they are loosened: a stored segment leaves out the fields an older version did not write, and
// a oneof is a union discriminated by `kind`.
type Optional<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;
/** A oneof as a union: `kind` names the field that is set, and that field is not null. */
type OneOf<T, K extends keyof T & string> = { [P in K]: { kind: P } & { [Q in P]: NonNullable<T[Q]> } }[K];

/** `interface`: a listen endpoint's multicast interface ("" or absent: none); a message decoded from the wire always has it. */
export type Endpoint = Optional<Endpoint__Output, "interface">;
export type Multicast = Multicast__Output;
/**
 * A chain stage. `rootConfigJson` and `limits` are absent (or "" and null) in a record stored before
 * they existed, and mean the defaults; `maxMemoryPages` is proto3 `optional` (absent: the default).
 */
export type ChainStage = Optional<ChainStage__Output, "rootConfigJson" | "limits">;
export type StageLimits = StageLimits__Output;
export type FailurePolicy = FailurePolicy__Output;
export type Segment = Omit<Segment__Output, "listen" | "egress" | "source" | "destinations" | "legs" | "multicast" | "clockRates" | "chain" | "feedbackFrom" | "symmetricRtp"> & {
  listen: Endpoint | null;
  egress: Endpoint | null;
  destinations: Endpoint[];
  /** The one sender admitted: port 0 = any of its ports, rtcpPort 0 = learned from its first RTCP packet. */
  source: Endpoint | null;
  chain: ChainStage[];
  /** "destinations" or "any"; "" or absent (a record stored before it existed): destinations. */
  feedbackFrom?: string;
  /** Absent (a record stored before it existed): false. */
  symmetricRtp?: boolean;
  legs: Leg[];
  /** Absent (or null) for the defaults. */
  multicast?: Multicast | null;
  /** Payload type (as text: a proto map's key) -> RTP clock rate, Hz; absent or {} for none. */
  clockRates?: Record<string, number>;
};

/** A segment's clock rates as the proxy's config and the store take them: undefined when there are none. */
export function clockRatesOf(seg: Pick<Segment, "clockRates">): Record<string, number> | undefined {
  const entries = Object.entries(seg.clockRates ?? {});
  return entries.length > 0 ? Object.fromEntries(entries.map(([pt, hz]) => [String(Number(pt)), hz])) : undefined;
}
/**
 * A segment's leg. The optional fields are proto3 `optional`: absent when unset (decoded messages
 * then also carry the oneof's virtual `_receive`-style fields; build records field by field).
 * `sourceAddress` "" (or absent): the leg hears the media's sender; else its own sender's address.
 */
export type Leg = Optional<Omit<Leg__Output, "listen" | "destinations" | "egress" | "multicast">, "sourceAddress" | "redundant"> & {
  listen: Endpoint | null;
  destinations: Endpoint[];
  egress: Endpoint | null;
  /** The leg's own multicast settings (unset ttl, loopback: the segment's); absent or null: none (a record stored before it existed too). */
  multicast?: Multicast | null;
};
export type FilterRef = FilterRef__Output;

export type Ack = Ack__Output;
export type Register = Register__Output;
export type ProxyMessage = OneOf<ProxyMessage__Output, "register" | "ack" | "nack" | "stats">;

export type Snapshot = Omit<Snapshot__Output, "segments"> & { segments: Segment[] };
export type ControlMessage = OneOf<Omit<ControlMessage__Output, "snapshot"> & { snapshot: Snapshot }, "snapshot" | "notice">;

export type FilterModule = Omit<FilterModule__Output, "ref"> & { ref: FilterRef };

export type ProxyStatus = ProxyStatus__Output;
export type ApplySegmentsResponse = ApplySegmentsResponse__Output;
export type DeleteSegmentsResponse = DeleteSegmentsResponse__Output;
export type ProxyStats = ProxyStats__Output;
export type ListStreamsResponse = ListStreamsResponse__Output;
export type DescribeStreamResponse = DescribeStreamResponse__Output;
