// Host imports (docs/abi.md "Provided by the host") and friendly wrappers.
// Only the imports a filter actually calls end up in its .wasm.
import { CryptoAlg, HostFeature, LogLevel, MAX_TIMERS_PER_CONTEXT, MetricKind, StateOrigin, Status } from "../../runtime/abi";

// ---- raw imports: exactly the ABI ----

@external("msm", "log")
export declare function msm_log(level: i32, ptr: usize, len: i32): void;
@external("msm", "set_error")
export declare function msm_set_error(ptr: usize, len: i32): void;
@external("msm", "now_us")
export declare function msm_now_us(): i64;
@external("msm", "wall_us")
export declare function msm_wall_us(): i64;
@external("msm", "features")
export declare function msm_features(): i32;
// ABI 1.5
@external("msm", "state_origin")
export declare function msm_state_origin(): i32;
@external("msm", "metric_define")
export declare function msm_metric_define(kind: i32, namePtr: usize, nameLen: i32): i32;
@external("msm", "metric_add")
export declare function msm_metric_add(id: i32, ctx: u32, delta: f64): i32;
@external("msm", "metric_set")
export declare function msm_metric_set(id: i32, ctx: u32, value: f64): i32;
@external("msm", "metric_record")
export declare function msm_metric_record(id: i32, ctx: u32, value: f64): i32;
@external("msm", "metric_define_labelled")
export declare function msm_metric_define_labelled(kind: i32, namePtr: usize, nameLen: i32, labelPtr: usize, labelLen: i32): i32;
@external("msm", "metric_add_labelled")
export declare function msm_metric_add_labelled(id: i32, ctx: u32, label: u32, delta: f64): i32;
@external("msm", "metric_set_labelled")
export declare function msm_metric_set_labelled(id: i32, ctx: u32, label: u32, value: f64): i32;
@external("msm", "metric_record_labelled")
export declare function msm_metric_record_labelled(id: i32, ctx: u32, label: u32, value: f64): i32;
@external("msm", "timer_set")
export declare function msm_timer_set(ctx: u32, timer: i32, delayUs: i64): i32;
@external("msm", "timer_cancel")
export declare function msm_timer_cancel(ctx: u32, timer: i32): i32;
@external("msm", "random_bytes")
export declare function msm_random_bytes(ptr: usize, len: i32): i32;
// ABI 1.4: crypto computed by the host
@external("msm", "crypto_key_create")
export declare function msm_crypto_key_create(alg: i32, keyPtr: usize, keyLen: i32): i32;
@external("msm", "crypto_key_drop")
export declare function msm_crypto_key_drop(key: i32): i32;
@external("msm", "aes_ctr_xor")
export declare function msm_aes_ctr_xor(key: i32, iv: usize, data: usize, len: i32): i32;
@external("msm", "hmac_sha1")
export declare function msm_hmac_sha1(key: i32, msg: usize, msgLen: i32, suffix: usize, suffixLen: i32, out: usize): i32;
@external("msm", "aes_gcm_seal")
export declare function msm_aes_gcm_seal(key: i32, iv: usize, aad: usize, aadLen: i32, data: usize, len: i32, tag: usize): i32;
@external("msm", "aes_gcm_open")
export declare function msm_aes_gcm_open(key: i32, iv: usize, aad: usize, aadLen: i32, data: usize, len: i32, tag: usize): i32;

// ---- text ----

/**
 * Bytes of UTF-8 a log line or an error message may take: what the host keeps of one (docs/abi.md
 * "Limits"). Longer text is cut here, at a character, and ends in "..." within the limit.
 */
export const TEXT_MAX_BYTES: i32 = 1024;
const TEXT_BUF: usize = heap.alloc(TEXT_MAX_BYTES);
/** A metric's name and its label's name share TEXT_BUF; names are valid up to 64 bytes anyway. */
const NAME_MAX_BYTES: i32 = TEXT_MAX_BYTES / 2;
const LABEL_BUF: usize = TEXT_BUF + <usize>NAME_MAX_BYTES;
const ELLIPSIS_BYTES: i32 = 3;

/**
 * UTF-16 units of `s` whose UTF-8 fits in `room` bytes, never half a surrogate pair. Counts as
 * String.UTF8.encodeUnsafe writes: a pair is 4 bytes, a lone surrogate 3.
 */
function unitsWithin(s: string, room: i32): i32 {
  const n = s.length;
  let units = 0;
  let bytes = 0;
  while (units < n) {
    const c = s.charCodeAt(units);
    let width = 1;
    let size = c < 0x80 ? 1 : c < 0x800 ? 2 : 3;
    if ((c & 0xfc00) == 0xd800 && units + 1 < n && (s.charCodeAt(units + 1) & 0xfc00) == 0xdc00) {
      width = 2;
      size = 4;
    }
    if (bytes + size > room) break;
    bytes += size;
    units += width;
  }
  return units;
}

/**
 * Encodes `s` as UTF-8 at `at`, at most `maxBytes` bytes, and returns the byte count. Text that
 * does not fit is cut at a character; `mark` ends it in "..." (within maxBytes). Allocates nothing.
 */
function encodeText(s: string, at: usize, maxBytes: i32, mark: bool): i32 {
  if (String.UTF8.byteLength(s) <= maxBytes) return <i32>String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, at, false);
  const room = mark ? maxBytes - ELLIPSIS_BYTES : maxBytes;
  let len = <i32>String.UTF8.encodeUnsafe(changetype<usize>(s), unitsWithin(s, room), at, false);
  if (mark) {
    memory.fill(at + <usize>len, 0x2e /* . */, ELLIPSIS_BYTES);
    len += ELLIPSIS_BYTES;
  }
  return len;
}

/** Writes a log line at `level` (rate-limited by the host); past TEXT_MAX_BYTES it is cut and ends in "...". */
export function log(level: LogLevel, message: string): void {
  const len = encodeText(message, TEXT_BUF, TEXT_MAX_BYTES, true);
  msm_log(level, TEXT_BUF, len);
}

/** Sets the message that explains the non-Ok Status the current export is about to return (cut as log's). */
export function setError(message: string): void {
  const len = encodeText(message, TEXT_BUF, TEXT_MAX_BYTES, true);
  msm_set_error(TEXT_BUF, len);
}

// ---- time ----

/** Monotonic microseconds, frozen for the whole of one on_batch / on_timer call. */
@inline export function nowUs(): i64 {
  return msm_now_us();
}

/** Unix time in microseconds (for RTCP sender reports), frozen like nowUs(). */
@inline export function wallUs(): i64 {
  return msm_wall_us();
}

/** The HostFeature bits this host implements. */
@inline export function hostFeatures(): i32 {
  return msm_features();
}

/**
 * In importState: whether the blob is a hot swap's (the old context stopped when it exported,
 * so what the blob holds was never sent) or a checkpoint's (restored after a failure: what it
 * holds may have gone out since). StateOrigin.None anywhere else.
 */
@inline export function stateOrigin(): StateOrigin {
  return <StateOrigin>msm_state_origin();
}

// ---- metrics ----

/**
 * Defines a metric (only during _initialize or configureRoot) and returns its id (>= 0), or a
 * negative Status. The name must match [a-z][a-z0-9_]*, at most 64 bytes.
 */
export function defineMetric(kind: MetricKind, name: string): i32 {
  const len = encodeText(name, TEXT_BUF, NAME_MAX_BYTES, false);
  return msm_metric_define(kind, TEXT_BUF, len);
}

export function defineCounter(name: string): i32 {
  return defineMetric(MetricKind.Counter, name);
}

export function defineGauge(name: string): i32 {
  return defineMetric(MetricKind.Gauge, name);
}

export function defineHistogram(name: string): i32 {
  return defineMetric(MetricKind.Histogram, name);
}

/**
 * Defines a metric with one label (ABI 1.3), as defineMetric does; `label` is the label's name
 * (same rules as a metric name; not segment, stage, filter, le, instance or job). Update it with the *Labelled
 * functions, which take the label's value as a u32 (an SSRC, say). The host keeps
 * MAX_LABEL_VALUES values per metric per context and counts the values past those under "other".
 */
export function defineLabelledMetric(kind: MetricKind, name: string, label: string): i32 {
  const len = encodeText(name, TEXT_BUF, NAME_MAX_BYTES, false);
  const labelLen = encodeText(label, LABEL_BUF, NAME_MAX_BYTES, false);
  return msm_metric_define_labelled(kind, TEXT_BUF, len, LABEL_BUF, labelLen);
}

export function defineLabelledCounter(name: string, label: string): i32 {
  return defineLabelledMetric(MetricKind.Counter, name, label);
}

export function defineLabelledGauge(name: string, label: string): i32 {
  return defineLabelledMetric(MetricKind.Gauge, name, label);
}

export function defineLabelledHistogram(name: string, label: string): i32 {
  return defineLabelledMetric(MetricKind.Histogram, name, label);
}

/** Adds `delta` (>= 0) to counter `id` of context `ctx`. */
@inline export function metricAdd(id: i32, ctx: u32, delta: i64 = 1): Status {
  return msm_metric_add(id, ctx, <f64>delta);
}

/** Sets gauge `id` of context `ctx`. */
@inline export function metricSet(id: i32, ctx: u32, value: i64): Status {
  return msm_metric_set(id, ctx, <f64>value);
}

/** Records one observation in histogram `id` of context `ctx`. */
@inline export function metricRecord(id: i32, ctx: u32, value: i64): Status {
  return msm_metric_record(id, ctx, <f64>value);
}

/** Adds `delta` (>= 0) to labelled counter `id` of context `ctx`, for label value `label`. */
@inline export function metricAddLabelled(id: i32, ctx: u32, label: u32, delta: i64 = 1): Status {
  return msm_metric_add_labelled(id, ctx, label, <f64>delta);
}

/** Sets labelled gauge `id` of context `ctx`, for label value `label`. */
@inline export function metricSetLabelled(id: i32, ctx: u32, label: u32, value: i64): Status {
  return msm_metric_set_labelled(id, ctx, label, <f64>value);
}

/** Records one observation in labelled histogram `id` of context `ctx`, for label value `label`. */
@inline export function metricRecordLabelled(id: i32, ctx: u32, label: u32, value: i64): Status {
  return msm_metric_record_labelled(id, ctx, label, <f64>value);
}

// ---- timers ----

/** Whether a refused timerSet / timerCancel was logged: once per instance (a refusal in a loop allocates nothing more). */
let timerRefusalLogged = false;

/** Says once why the host refused a timer call: a timer that never fires is otherwise silent. */
function refuseTimer(set: bool, ctx: u32, timer: i32, delayUs: i64, status: Status): void {
  if (timerRefusalLogged) return;
  timerRefusalLogged = true;
  const call = set
    ? "timerSet(ctx " + ctx.toString() + ", timer " + timer.toString() + ", " + delayUs.toString() + " us)"
    : "timerCancel(ctx " + ctx.toString() + ", timer " + timer.toString() + ")";
  const name = status == Status.BadArgument ? "BadArgument" : "status " + (<i32>status).toString();
  log(LogLevel.Error, call + " refused (" + name + "): a timer id is 0 to " + (MAX_TIMERS_PER_CONTEXT - 1).toString()
    + " (MAX_TIMERS_PER_CONTEXT - 1), " + (set ? "a delay 0 us or more, " : "")
    + "on a context the filter has" + (set ? "; the timer is not armed" : "") + " (said once)");
}

/**
 * Arms one-shot timer `timer` (0..MAX_TIMERS_PER_CONTEXT-1) of `ctx` to fire in `delayUs`
 * microseconds (0 or more). `Status.BadArgument` otherwise (the first such refusal is logged as an error).
 */
@inline export function timerSet(ctx: u32, timer: i32, delayUs: i64): Status {
  const status = msm_timer_set(ctx, timer, delayUs);
  if (status != Status.Ok) refuseTimer(true, ctx, timer, delayUs, status);
  return status;
}

/** Disarms timer `timer` of `ctx`; `Status.BadArgument` for a timer id or context timerSet would refuse (logged once, as there). */
@inline export function timerCancel(ctx: u32, timer: i32): Status {
  const status = msm_timer_cancel(ctx, timer);
  if (status != Status.Ok) refuseTimer(false, ctx, timer, 0, status);
  return status;
}

// ---- randomness ----

/** Fills [ptr, ptr+len) with cryptographically secure random bytes (len <= 65536). */
@inline export function randomBytes(ptr: usize, len: i32): Status {
  return msm_random_bytes(ptr, len);
}

const RANDOM_WORD: usize = heap.alloc(8);

/** A cryptographically secure random u32 (for SSRCs, initial sequence numbers). */
export function randomU32(): u32 {
  msm_random_bytes(RANDOM_WORD, 4);
  return load<u32>(RANDOM_WORD);
}

// ---- crypto (ABI 1.4) ----
// AES and HMAC-SHA1 computed by the host: hardware AES and SHA where the CPU has them, and
// constant-time. A host without native crypto leaves HostFeature.Crypto out of hostFeatures() and
// refuses keys (-Status.Failed): keep a WebAssembly implementation to fall back on.

/** Whether the host computes crypto for this instance (HostFeature.Crypto). */
export function hostHasCrypto(): bool {
  return (msm_features() & HostFeature.Crypto) != 0;
}

/**
 * Hands the host a key of `alg` (CryptoAlg) from [key, key+len); returns its handle (> 0) or a
 * negative Status (Failed: no host crypto; NoSpace: MAX_CRYPTO_KEYS live; BadArgument: a wrong
 * length). The host keeps a copy: wipe yours when you no longer need it; drop the handle with
 * cryptoKeyDrop when the key retires (the host frees an instance's keys when it goes).
 */
@inline export function cryptoKeyCreate(alg: CryptoAlg, key: usize, len: i32): i32 {
  return msm_crypto_key_create(alg, key, len);
}

/** Wipes and frees a key the host holds. */
@inline export function cryptoKeyDrop(key: i32): Status {
  return msm_crypto_key_drop(key);
}

/** XORs the AES-CTR keystream from the 16-byte counter block at `iv` into [data, data+len), in place. */
@inline export function aesCtrXor(key: i32, iv: usize, data: usize, len: i32): Status {
  return msm_aes_ctr_xor(key, iv, data, len);
}

/** Writes the 20-byte HMAC-SHA1 of msg || suffix to `out` (suffixLen may be 0). */
@inline export function hmacSha1Host(key: i32, msg: usize, msgLen: i32, suffix: usize, suffixLen: i32, out: usize): Status {
  return msm_hmac_sha1(key, msg, msgLen, suffix, suffixLen, out);
}

/** AES-GCM encryption in place under the 12-byte `iv`, authenticating `aad` too; writes the 16-byte tag to `tag`. */
@inline export function aesGcmSeal(key: i32, iv: usize, aad: usize, aadLen: i32, data: usize, len: i32, tag: usize): Status {
  return msm_aes_gcm_seal(key, iv, aad, aadLen, data, len, tag);
}

/** AES-GCM decryption in place after checking the 16-byte tag at `tag`: Failed (data untouched) when it does not match. */
@inline export function aesGcmOpen(key: i32, iv: usize, aad: usize, aadLen: i32, data: usize, len: i32, tag: usize): Status {
  return msm_aes_gcm_open(key, iv, aad, aadLen, data, len, tag);
}
