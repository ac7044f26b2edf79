// The numbers of MSM filter ABI v1: the one source of truth for both sides.
// This file is compiled twice: by AssemblyScript into every filter (through
// sdk/assembly) and by TypeScript into the host (runtime/). Keep it to plain
// enums and integer constants so that it means the same thing to both.
// docs/abi.md explains every value.

export const ABI_VERSION_MAJOR = 1;
export const ABI_VERSION_MINOR = 9;
/**
 * Name of the version marker export a module built on this SDK carries: 1.5, the oldest version
 * whose imports the SDK needs. What 1.6 added (msm_drop_reasons) is an export, which a 1.5 host
 * ignores, and what 1.7 added (the header's context_legs) a value an older host leaves 0, so that
 * the SDK's modules still load there.
 */
export const ABI_VERSION_EXPORT = "msm_abi_version_1_5";

/** Verdict a filter writes into a packet's descriptor. */
export enum Verdict {
  Pass = 0,
  Drop = 1,
  Hold = 2,
}

/** Descriptor flag bits (descriptor field `flags`). */
export enum PacketFlag {
  /** The packet is RTCP (set by the host from the socket or by RFC 5761 demultiplexing). */
  Rtcp = 1,
  /** The packet flows upstream: feedback from a receiver toward the sender. */
  Upstream = 2,
  /** The packet arrived over IPv6. */
  Ipv6 = 4,
  /** The packet was created by a filter before this stage on its way (output area), not received. */
  Generated = 8,
}

/** Drop reason codes. 0-255 are the host's and the SDK's; 256-65535 are the filter's own. */
export enum DropReason {
  Unspecified = 0,
  // RTP checks (RFC 3550 A.1)
  TooShort = 1,
  BadVersion = 2,
  BadPadding = 3,
  CsrcOverrun = 4,
  ExtensionOverrun = 5,
  RtcpInRtpRange = 6,
  Probation = 7,
  BadSequence = 8,
  // RTCP checks (RFC 3550 A.2)
  RtcpBadFirst = 16,
  RtcpBadLength = 17,
  RtcpBadCompound = 18,
  // policy
  SsrcNotAllowed = 32,
  PayloadTypeNotAllowed = 33,
  TooLarge = 34,
  RateLimitPackets = 35,
  RateLimitBits = 36,
  TooManySources = 37,
  // SRTP / SRTCP (RFC 3711)
  SrtpAuthFailed = 48,
  SrtpReplay = 49,
  SrtpUnknownSsrc = 50,
  SrtpTooShort = 51,
  // host-assigned (a filter never writes these)
  HostFilterFailed = 200,
  HostBadDescriptor = 201,
  HostNoDestination = 202,
  HostSendFailed = 203,
  HostBackpressure = 204,
  /** A stage made more packets than its budget allows (generatedPerSecond). */
  HostBudgetExceeded = 205,
  /** A filter dropped a packet with a code that is not its to use (200-255, unknown shared codes, beyond its range). */
  HostBadReason = 206,
  /** A downstream packet from an address other than the segment's sender (strict source). */
  HostSourceRefused = 207,
  /** Feedback on an egress socket from an address that is none of the segment's destinations. */
  HostFeedbackRefused = 208,
  /** A packet from a destination that is not RTCP: receivers send the sender feedback, never media or other bytes. */
  HostUpstreamNotRtcp = 209,
  /** An RTCP compound of more packets than a translated destination's SSRC rewrite takes (MAX_REWRITTEN_RTCP_PACKETS, 64). */
  HostRtcpTooManyPackets = 210,
  /** First code a filter may define for itself; it may use MAX_FILTER_DROP_REASONS codes from here. */
  FilterDefinedBase = 256,
}
/** How many codes from FilterDefinedBase a filter may use (256-319): labels stay bounded. */
export const MAX_FILTER_DROP_REASONS = 64;

/** What a filter's own drop reason is (ABI 1.6, msm_drop_reasons): the class word in its line. */
export enum DropClass {
  /** Trouble: counted as a drop (msm_*_drops_total). Unnamed codes are drops. */
  Drop = 0,
  /** The filter's normal work (a merge's duplicates): counted apart (msm_*_discards_total), never as a drop. */
  Discard = 1,
}
/** Longest name a filter may give one of its own drop reasons (ABI 1.6), in bytes. */
export const MAX_DROP_REASON_NAME = 48;

/** Where the blob msm_state_import is given comes from (ABI 1.5: the state_origin import). */
export enum StateOrigin {
  /** Not in msm_state_import. */
  None = 0,
  /** A hot swap: exported by the instance being replaced, which has sent nothing since. */
  Swap = 1,
  /**
   * A checkpoint restored after a failure or a worker restart: exported up to stateCheckpointMs
   * before the old context stopped, which may have sent, or lost, what the blob holds.
   */
  Checkpoint = 2,
}

/** Status codes returned by module exports and host imports. */
export enum Status {
  Ok = 0,
  /** The config (root or context) is invalid; the message was set with set_error. */
  BadConfig = 1,
  /** An argument was out of range (an unknown context, timer or metric id, a bad pointer). */
  BadArgument = 2,
  /** A fixed table is full (contexts, timers, metrics, sources). */
  NoSpace = 3,
  /** A state blob was written by an incompatible filter version. */
  BadState = 4,
  /** The call is not allowed at this point (for example metric_define after the root is configured). */
  NotAllowed = 5,
  /** Unspecified failure. */
  Failed = 6,
}

/** Bits a module returns from msm_policy (ABI 1.1): what the host must do for it, whatever the config says. */
export enum FilterPolicy {
  /** While the filter is down, its packets are dropped, never passed on without it (SRTP protect would leak plaintext). */
  MustFailClosed = 1,
}

/** Metric kinds for metric_define. */
export enum MetricKind {
  Counter = 0,
  Gauge = 1,
  Histogram = 2,
}

/** Log levels for log(). */
export enum LogLevel {
  Trace = 0,
  Debug = 1,
  Info = 2,
  Warn = 3,
  Error = 4,
}

/** Output-packet destinations (output descriptor field `dest`). */
export enum Dest {
  /** Continue in the packet's direction (flags) to the segment's normal destinations. */
  Forward = 0,
  /** Go back the other way: toward the sender for a downstream packet, toward the receivers for an upstream one. */
  Reverse = 1,
  /** Dest >= DestinationIndexBase: only to destination (dest - DestinationIndexBase) of the segment. 2-15 are invalid. */
  DestinationIndexBase = 16,
}
/**
 * Legs per segment (descriptor field `leg`): leg 0 is the segment's media (listen / destinations),
 * legs 1.. are the ones its config lists (FEC column and row ports, a second path of a dual-path
 * stream). A descriptor naming leg MAX_LEGS or above is invalid.
 */
export const MAX_LEGS = 8;

/** Host feature bits: what the host offers (host import features()) and what a module requires (export msm_required_features). */
export enum HostFeature {
  Log = 1,
  Time = 2,
  Metrics = 4,
  Timers = 8,
  Random = 16,
  StateTransfer = 32,
  OutputArea = 64,
  /** ABI 1.2: descriptors carry the packet's leg (multi-port segments: FEC, dual path). */
  Legs = 128,
  /** ABI 1.3: metrics with one label (metric_define_labelled and the *_labelled updates). */
  LabelledMetrics = 256,
  /** ABI 1.4: AES and HMAC-SHA1 computed by the host (crypto_key_create and the calls on its keys). */
  Crypto = 512,
}
/** Every feature this host can implement (features() leaves Crypto out where the host has no native crypto). */
export const HOST_FEATURES_V1 = 1023;

/** Algorithms of crypto_key_create (ABI 1.4). */
export enum CryptoAlg {
  /** AES in counter mode (RFC 3711 AES-CM, SP 800-38A CTR); 16- or 32-byte key. */
  AesCtr = 1,
  /** HMAC-SHA1 (RFC 2104); 1- to 64-byte key. */
  HmacSha1 = 2,
  /** AES-GCM (SP 800-38D) with a 12-byte IV and a 16-byte tag; 16- or 32-byte key. */
  AesGcm = 3,
}
/** Live crypto keys per filter instance (ABI 1.4). */
export const MAX_CRYPTO_KEYS = 4096;
/** The most bytes one crypto call reads or writes (ABI 1.4). */
export const MAX_CRYPTO_BYTES = 65536;

// ---- arena layout (little-endian; byte offsets) ----
/** Arena header: the structure whose address msm_arena() returns. */
export const ARENA_MAGIC = 0x414d534d; // "MSMA" as little-endian u32
export const ARENA_HEADER_SIZE = 64;
export const AH_MAGIC = 0; //           u32  ARENA_MAGIC
export const AH_BATCH_CAPACITY = 4; //  u32  descriptors in the batch table
export const AH_DESC_TABLE = 8; //      u32  address of the batch descriptor table
export const AH_SLOT_BASE = 12; //      u32  address of the first batch packet slot
export const AH_SLOT_SIZE = 16; //      u32  bytes per packet slot (batch and output)
export const AH_HEADROOM = 20; //       u32  bytes in front of each packet the filter may prepend into
export const AH_OUT_CAPACITY = 24; //   u32  descriptors in the output table
export const AH_OUT_TABLE = 28; //      u32  address of the output descriptor table
export const AH_OUT_SLOT_BASE = 32; //  u32  address of the first output packet slot
export const AH_SCRATCH = 36; //        u32  address of the scratch area (config, state blobs)
export const AH_SCRATCH_SIZE = 40; //   u32  bytes in the scratch area
/** u32, 1.7: the legs of the segment whose context msm_context_create makes (1..MAX_LEGS); 0 otherwise, and from a host before 1.7. Written by the host. */
export const AH_CONTEXT_LEGS = 44;
/**
 * u32, 1.8: written by the module, not 0: take a checkpoint of its contexts soon (srtp, for a new
 * source). The host reads it after the module's calls and sets it back to 0; an older host, or
 * one that takes no checkpoints, leaves it as it is.
 */
export const AH_CHECKPOINT_WANTED = 48;
/**
 * u32, 1.9: SegmentFlag bits of the segment whose context msm_context_create makes; 0 otherwise,
 * and from a host before 1.9. Written by the host.
 */
export const AH_CONTEXT_SEGMENT_FLAGS = 52;

/** What the host tells a filter of its segment while the context is created (AH_CONTEXT_SEGMENT_FLAGS, 1.9). */
export enum SegmentFlag {
  /**
   * A destination has its own `ssrc` or `payloadType`: the host rewrites the RTP header (and the
   * SSRCs of RTCP) of that destination's copy after the chain, and the RTCP coming back from it
   * before the chain. Bytes a stage authenticated (SRTP's header) no longer match their tag there.
   */
  TranslatedDestinations = 1,
}

/** Batch and output descriptor: DESC_SIZE bytes each. */
export const DESC_SIZE = 32;
export const D_OFFSET = 0; //   u32  address of the packet's first byte (filter may move it into headroom)
export const D_LENGTH = 4; //   u32  packet length (filter may change it, up to the slot's end)
export const D_CONTEXT = 8; //  u32  context id of the stream segment
export const D_FLAGS = 12; //   u16  PacketFlag bits
export const D_VERDICT = 14; // u8   Verdict (filter writes; host sets Pass before the call)
export const D_DEST = 15; //    u8   Dest (output descriptors; ignored in the batch)
export const D_REASON = 16; //  u32  DropReason when verdict is Drop
export const D_PORT = 20; //    u16  batch: the UDP source port; output: ignored
export const D_LEG = 22; //     u8   the leg the packet arrived on (batch) or leaves on (batch and output); < MAX_LEGS
export const D_RESERVED = 23; // u8  zero
export const D_ARRIVAL = 24; // i64  arrival time, microseconds on the host's monotonic clock

/** Limits. */
export const MAX_TIMERS_PER_CONTEXT = 8;
export const MAX_METRICS = 64;
/**
 * Label values a labelled metric keeps per context (ABI 1.3); values beyond are counted together
 * under the label value "other", so that a metric has at most MAX_LABEL_VALUES + 1 series per context.
 */
export const MAX_LABEL_VALUES = 64;
export const ROOT_CONTEXT = 0;
