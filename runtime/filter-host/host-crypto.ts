// Host crypto for filters (docs/host-crypto.md): the msm_crypto addon (runtime/native) behind the
// key tables the msm.* crypto imports use, one table per filter instance. Every call passes its
// numbers and the filter's ArrayBuffer straight through, so a packet allocates nothing here; the
// addon checks every range against that buffer.
import { fileURLToPath } from "node:url";
import { MAX_CRYPTO_KEYS as MAX_KEYS } from "../abi.js";
import { loadNativeAddon, type LoadedAddon } from "../native-addon.js";

export { CryptoAlg } from "../abi.js";

type Table = { readonly __cryptoTable: unique symbol };

interface Addon {
  /** "" when OpenSSL was found, else why not. */
  unavailable(): string;
  describe(): string;
  createTable(maxKeys: number): Table | null;
  create(t: Table, alg: number, mem: ArrayBuffer, keyPtr: number, keyLen: number): number;
  drop(t: Table, key: number): number;
  ctrXor(t: Table, key: number, mem: ArrayBuffer, ivPtr: number, dataPtr: number, len: number): number;
  hmacSha1(t: Table, key: number, mem: ArrayBuffer, msgPtr: number, msgLen: number, suffixPtr: number, suffixLen: number, outPtr: number): number;
  gcmSeal(t: Table, key: number, mem: ArrayBuffer, ivPtr: number, aadPtr: number, aadLen: number, dataPtr: number, len: number, tagPtr: number): number;
  gcmOpen(t: Table, key: number, mem: ArrayBuffer, ivPtr: number, aadPtr: number, aadLen: number, dataPtr: number, len: number, tagPtr: number): number;
  size(t: Table): number;
  close(t: Table): void;
}

/** Where install builds the addon; MSM_CRYPTO_ADDON names another build. */
const ADDON_PATH = process.env.MSM_CRYPTO_ADDON ?? fileURLToPath(new URL("../../../runtime/native/build/Release/msm_crypto.node", import.meta.url));

let loaded: LoadedAddon<Addon> | undefined;

/** The addon with OpenSSL found, or null (loaded.error says why). */
function loadAddon(): Addon | null {
  loaded ??= loadNativeAddon<Addon>(ADDON_PATH, "the host-crypto addon", (a) => {
    if (typeof a.unavailable !== "function") return `the host-crypto addon at ${ADDON_PATH} is stale or not msm_crypto; rebuild it with \`node scripts/build-native.mjs\``;
    const why = a.unavailable();
    return why === "" ? "" : `no OpenSSL for host crypto: ${why}`;
  });
  return loaded.addon;
}

/** Why host crypto is unavailable in this process, or "" when it is available. */
export function hostCryptoUnavailable(): string {
  return loadAddon() === null ? loaded!.error : "";
}

/** One line for logs: e.g. "AES-NI and SHA via OpenSSL 3.0.19 (node)" or the reason it is unavailable. */
export function hostCryptoDescription(): string {
  const native = loadAddon();
  return native === null ? loaded!.error : native.describe();
}

export interface CryptoKeyTable {
  /** A handle > 0, or a negative Status (-BadArgument: bad alg, key length or range; -NoSpace: table full; -Failed: unavailable). key bytes are read from mem[keyPtr, keyPtr+keyLen). */
  create(alg: number, mem: ArrayBuffer, keyPtr: number, keyLen: number): number;
  /** Status (BadArgument: unknown key). */
  drop(key: number): number;
  /** Status: data ^= AES-CTR keystream from the 16-byte IV, a 128-bit big-endian counter. */
  ctrXor(key: number, mem: ArrayBuffer, ivPtr: number, dataPtr: number, len: number): number;
  /** Status: 20 bytes at outPtr, HMAC-SHA1 of msg || suffix. */
  hmacSha1(key: number, mem: ArrayBuffer, msgPtr: number, msgLen: number, suffixPtr: number, suffixLen: number, outPtr: number): number;
  /** Status: encrypts data in place with a 12-byte IV and writes the 16-byte tag. */
  gcmSeal(key: number, mem: ArrayBuffer, ivPtr: number, aadPtr: number, aadLen: number, dataPtr: number, len: number, tagPtr: number): number;
  /** Ok, or Failed on a wrong tag (data then unchanged). */
  gcmOpen(key: number, mem: ArrayBuffer, ivPtr: number, aadPtr: number, aadLen: number, dataPtr: number, len: number, tagPtr: number): number;
  /** Live keys. */
  readonly size: number;
  /** Drops every key; the table is unusable after (calls return -Failed / Failed). */
  close(): void;
}

class NativeKeyTable implements CryptoKeyTable {
  readonly #native: Addon;
  readonly #table: Table;

  constructor(native: Addon, table: Table) {
    this.#native = native;
    this.#table = table;
  }

  create(alg: number, mem: ArrayBuffer, keyPtr: number, keyLen: number): number {
    return this.#native.create(this.#table, alg, mem, keyPtr, keyLen);
  }

  drop(key: number): number {
    return this.#native.drop(this.#table, key);
  }

  ctrXor(key: number, mem: ArrayBuffer, ivPtr: number, dataPtr: number, len: number): number {
    return this.#native.ctrXor(this.#table, key, mem, ivPtr, dataPtr, len);
  }

  hmacSha1(key: number, mem: ArrayBuffer, msgPtr: number, msgLen: number, suffixPtr: number, suffixLen: number, outPtr: number): number {
    return this.#native.hmacSha1(this.#table, key, mem, msgPtr, msgLen, suffixPtr, suffixLen, outPtr);
  }

  gcmSeal(key: number, mem: ArrayBuffer, ivPtr: number, aadPtr: number, aadLen: number, dataPtr: number, len: number, tagPtr: number): number {
    return this.#native.gcmSeal(this.#table, key, mem, ivPtr, aadPtr, aadLen, dataPtr, len, tagPtr);
  }

  gcmOpen(key: number, mem: ArrayBuffer, ivPtr: number, aadPtr: number, aadLen: number, dataPtr: number, len: number, tagPtr: number): number {
    return this.#native.gcmOpen(this.#table, key, mem, ivPtr, aadPtr, aadLen, dataPtr, len, tagPtr);
  }

  get size(): number {
    return this.#native.size(this.#table);
  }

  close(): void {
    this.#native.close(this.#table);
  }
}

/** A new table, or null when host crypto is unavailable. */
export function createCryptoKeyTable(maxKeys: number = MAX_KEYS): CryptoKeyTable | null {
  if (!Number.isInteger(maxKeys) || maxKeys < 1 || maxKeys > MAX_KEYS) {
    throw new RangeError(`createCryptoKeyTable: maxKeys must be an integer from 1 to ${MAX_KEYS}, got ${maxKeys}`);
  }
  const native = loadAddon();
  if (native === null) return null;
  const table = native.createTable(maxKeys);  // null only when malloc failed
  return table === null ? null : new NativeKeyTable(native, table);
}
