// The MSM filter SDK (AssemblyScript). Import from here; re-export "./exports" from your
// entry file. docs/sdk.md is the guide, docs/abi.md the contract.
export {
  Verdict, PacketFlag, DropReason, Status, MetricKind, LogLevel, Dest, HostFeature, FilterPolicy,
  MAX_TIMERS_PER_CONTEXT, MAX_METRICS, MAX_LABEL_VALUES, MAX_LEGS, ROOT_CONTEXT,
  CryptoAlg, MAX_CRYPTO_KEYS, MAX_CRYPTO_BYTES, StateOrigin, DropClass, MAX_FILTER_DROP_REASONS, SegmentFlag,
} from "../../runtime/abi";
export { nameDropReason } from "./drop-reasons";
export {
  BATCH_CAPACITY, OUT_CAPACITY, SLOT_SIZE, HEADROOM, MAX_PACKET, SCRATCH_SIZE, SCRATCH,
  batchDesc, outDesc, batchSlot, outSlot,
  descOffset, setDescOffset, descLength, setDescLength, descContext, setDescContext,
  descFlags, setDescFlags, descVerdict, setDescVerdict, descDest, setDescDest,
  descReason, setDescReason, descPort, descLeg, setDescLeg, descArrival, setDescArrival, segmentLegs, segmentFlags, askForCheckpoint,
} from "./arena";
export { loadBe16, loadBe24, loadBe32, loadBe64, storeBe16, storeBe32, storeBe64 } from "./bytes";
export {
  log, setError, nowUs, wallUs, hostFeatures, stateOrigin,
  defineMetric, defineCounter, defineGauge, defineHistogram, metricAdd, metricSet, metricRecord,
  defineLabelledMetric, defineLabelledCounter, defineLabelledGauge, defineLabelledHistogram,
  metricAddLabelled, metricSetLabelled, metricRecordLabelled,
  timerSet, timerCancel, randomBytes, randomU32, TEXT_MAX_BYTES,
  hostHasCrypto, cryptoKeyCreate, cryptoKeyDrop, aesCtrXor, hmacSha1Host, aesGcmSeal, aesGcmOpen,
} from "./host";
export { Config, numberText } from "./config";
export { Deadline } from "./deadline";
export { ContextMap } from "./contexts";
export { ContextFactory, SegmentContext, PASS, TAKE } from "./context-factory";
export { ContextFilter, currentCall } from "./context-filter";
export { ContextPool, sizeClass } from "./context-pool";
export { Filter, register } from "./filter";
export { Output } from "./output";
export { Packet } from "./packet";
export {
  RtpPacket, RtpError, RTP_HEADER_SIZE, EXT_PROFILE_ONE_BYTE, EXT_PROFILE_TWO_BYTE,
} from "./rtp";
export {
  RtcpCompound, Rtcp, RtcpError, RtcpType, SdesItem, RtpfbFmt, PsfbFmt,
  SenderReport, ReceiverReport, ReportBlock, Sdes, Bye, App, Feedback,
  RTCP_HEADER_SIZE, RTCP_MIN_COMPOUND, REPORT_BLOCK_SIZE,
} from "./rtcp";
export { RtcpWriter, RtcpWriteError, ntpFromUnixUs, ntpMiddle, dlsrFromUs } from "./rtcp-writer";
export { StateReader, StateWriter } from "./state";
