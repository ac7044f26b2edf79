// The functions a filter module imports from the host (docs/abi.md "Imported from the host"):
// env.abort and env.memory, and the msm.* calls. Each reads the module's memory defensively: a
// pointer or length out of bounds gives "<out of bounds>" or BadArgument, never a host exception.
import { randomFillSync } from "node:crypto";
import { LogLevel, MAX_TIMERS_PER_CONTEXT, StateOrigin, Status } from "../abi.js";
import type { CryptoKeyTable } from "./host-crypto.js";
import type { FilterMetrics } from "./metrics.js";

const MAX_LOG_BYTES = 1024;
export const MAX_ERROR_BYTES = 1024;
const utf8 = new TextDecoder();

/** What the imports act on: one instance's memory, metrics, clock, log, error and timers. */
export interface ImportTarget {
  readonly memory: WebAssembly.Memory;
  readonly metrics: FilterMetrics;
  /** The instance's keys for the crypto calls (ABI 1.4); null where the host has no native crypto. */
  readonly cryptoKeys: CryptoKeyTable | null;
  /** The HostFeature bits features() returns. */
  readonly features: number;
  /** The clock the module sees, frozen per call. */
  readonly nowUs: number;
  readonly wallUs: number;
  /** What the blob of the msm_state_import under way is (None outside one). */
  readonly stateOrigin: StateOrigin;
  /** Whether context `ctx` exists (timers belong to one). */
  hasContext(ctx: number): boolean;
  log(level: LogLevel, message: string): void;
  setError(message: string): void;
  /** Records the abort's text and unwinds the module's stack (throws). */
  abort(message: string): never;
  /** msm.metric_define(_labelled): the id, or a negative Status. */
  defineMetric(kind: number, name: string, label?: string): number;
  timerSet(ctx: number, timer: number, delayUs: number): void;
  timerCancel(ctx: number, timer: number): void;
}

/** Text a filter wrote, with control characters shown as \xNN: a log line cannot forge others or drive a terminal. */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

function readString(memory: WebAssembly.Memory, ptr: number, len: number): string {
  if (ptr < 0 || len < 0 || ptr + len > memory.buffer.byteLength) return "<out of bounds>";
  return utf8.decode(new Uint8Array(memory.buffer, ptr, len));
}

/** A metric or label name: at most 64 bytes are valid, so no more than 65 are read (a longer one stays invalid). */
function readName(memory: WebAssembly.Memory, ptr: number, len: number): string {
  return readString(memory, ptr, Math.min(len, 65));
}

/** AssemblyScript string: UTF-16LE, byte length stored at ptr - 4. */
function readAsString(memory: WebAssembly.Memory, ptr: number): string {
  const buf = memory.buffer;
  if (ptr < 4 || ptr > buf.byteLength) return "";
  const byteLength = new DataView(buf).getUint32(ptr - 4, true);
  if (ptr + byteLength > buf.byteLength) return "";
  return Buffer.from(buf, ptr, byteLength & ~1).toString("utf16le");
}

export function hostImports(t: ImportTarget): WebAssembly.Imports {
  const { memory, metrics, cryptoKeys: keys } = t;
  const validTimer = (ctx: number, timer: number): boolean =>
    t.hasContext(ctx) && Number.isInteger(timer) && timer >= 0 && timer < MAX_TIMERS_PER_CONTEXT;
  return {
    env: {
      memory,
      abort: (msg: number, file: number, line: number, column: number) => {
        const text = (ptr: number): string => printable(readAsString(memory, ptr).slice(0, MAX_ERROR_BYTES));
        // an abort() called by hand has no file or line: no "at ?:0:0"
        const at = text(file) === "" && line === 0 ? "" : ` at ${text(file) || "?"}:${line}:${column}`;
        t.abort(`abort: ${text(msg) || "(no message)"}${at}`);
      },
    },
    msm: {
      log: (level: number, ptr: number, len: number) => t.log(level, len > MAX_LOG_BYTES
        ? `${printable(readString(memory, ptr, MAX_LOG_BYTES))}... (${len} bytes, cut at ${MAX_LOG_BYTES})`
        : printable(readString(memory, ptr, len))),
      set_error: (ptr: number, len: number) => t.setError(printable(readString(memory, ptr, Math.min(len, MAX_ERROR_BYTES)))),
      now_us: () => BigInt(Math.trunc(t.nowUs)),
      wall_us: () => BigInt(Math.trunc(t.wallUs)),
      features: () => t.features,
      // ABI 1.5: whether msm_state_import's blob is a hot swap's or a checkpoint's
      state_origin: () => t.stateOrigin,
      metric_define: (kind: number, ptr: number, len: number) => t.defineMetric(kind, readName(memory, ptr, len)),
      metric_add: (id: number, ctx: number, delta: number) => metrics.add(id, ctx, delta),
      metric_set: (id: number, ctx: number, value: number) => metrics.set(id, ctx, value),
      metric_record: (id: number, ctx: number, value: number) => metrics.record(id, ctx, value),
      // ABI 1.3: one label, whose value is a u32 (an SSRC, say)
      metric_define_labelled: (kind: number, ptr: number, len: number, labelPtr: number, labelLen: number) =>
        t.defineMetric(kind, readName(memory, ptr, len), readName(memory, labelPtr, labelLen)),
      metric_add_labelled: (id: number, ctx: number, label: number, delta: number) => metrics.addLabelled(id, ctx, label, delta),
      metric_set_labelled: (id: number, ctx: number, label: number, value: number) => metrics.setLabelled(id, ctx, label, value),
      metric_record_labelled: (id: number, ctx: number, label: number, value: number) => metrics.recordLabelled(id, ctx, label, value),
      timer_set: (ctx: number, timer: number, delayUs: bigint) => {
        const delay = Number(delayUs);
        if (!validTimer(ctx, timer) || !(delay >= 0)) return Status.BadArgument;
        t.timerSet(ctx, timer, delay);
        return Status.Ok;
      },
      timer_cancel: (ctx: number, timer: number) => {
        if (!validTimer(ctx, timer)) return Status.BadArgument;
        t.timerCancel(ctx, timer);
        return Status.Ok;
      },
      random_bytes: (ptr: number, len: number) => {
        if (len < 0 || len > 65536 || ptr < 0 || ptr + len > memory.buffer.byteLength) return Status.BadArgument;
        randomFillSync(new Uint8Array(memory.buffer, ptr, len));
        return Status.Ok;
      },
      // ABI 1.4: AES and HMAC-SHA1 in native code (host-crypto.ts); the table checks every range
      crypto_key_create: (alg: number, keyPtr: number, keyLen: number) => (keys ? keys.create(alg, memory.buffer, keyPtr, keyLen) : -Status.Failed),
      crypto_key_drop: (key: number) => (keys ? keys.drop(key) : Status.BadArgument),
      aes_ctr_xor: (key: number, iv: number, data: number, len: number) => (keys ? keys.ctrXor(key, memory.buffer, iv, data, len) : Status.BadArgument),
      hmac_sha1: (key: number, msg: number, msgLen: number, suffix: number, suffixLen: number, out: number) =>
        (keys ? keys.hmacSha1(key, memory.buffer, msg, msgLen, suffix, suffixLen, out) : Status.BadArgument),
      aes_gcm_seal: (key: number, iv: number, aad: number, aadLen: number, data: number, len: number, tag: number) =>
        (keys ? keys.gcmSeal(key, memory.buffer, iv, aad, aadLen, data, len, tag) : Status.BadArgument),
      aes_gcm_open: (key: number, iv: number, aad: number, aadLen: number, data: number, len: number, tag: number) =>
        (keys ? keys.gcmOpen(key, memory.buffer, iv, aad, aadLen, data, len, tag) : Status.BadArgument),
    },
  };
}
