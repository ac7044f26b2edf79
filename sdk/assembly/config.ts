// A reader for filter configs: the UTF-8 JSON object the host writes into scratch
// (docs/abi.md "Config"). The host re-serialized it, so it is well-formed JSON; this reader
// only has to find keys and check types and ranges. It scans the bytes in place; it allocates
// only what it returns (strings, arrays, sub-readers), and only at config time.
//
// Errors do not throw: the first one is kept (naming the key) and finish() turns it into
// setError(...) + Status.BadConfig. A key whose value is null reads as absent.
import { Status } from "../../runtime/abi";
import { SCRATCH, segmentLegs } from "./arena";
import { setError } from "./host";

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;
/** Integers beyond this are not exactly representable in the JSON the host produced. */
const MAX_SAFE: f64 = 9007199254740991;

/** The first problem found by any reader of one config (shared with its sub-readers). */
class Problem {
  message: string | null = null;
}

export class Config {
  // The value of the last key found by find().
  private valStart: usize = 0;
  private valEnd: usize = 0;

  private constructor(
    /** Address of the object's '{' (0 for an absent or malformed object: no keys). */
    private start: usize,
    /** Address just past the object's '}'. */
    private end: usize,
    /** "" at top level, "rate." inside key "rate": prefixes key names in messages. */
    private path: string,
    private problem: Problem,
  ) {}

  /** A reader over the config the host wrote into the scratch area (`len` bytes). */
  static fromScratch(len: i32): Config {
    return Config.fromBytes(SCRATCH, len);
  }

  /** A reader over UTF-8 JSON text at [ptr, ptr+len). Empty text reads as {}. */
  static fromBytes(ptr: usize, len: i32): Config {
    const end = ptr + <usize>len;
    const p = skipWs(ptr, end);
    const problem = new Problem();
    if (p >= end) return new Config(0, 0, "", problem);
    if (load<u8>(p) != OPEN_BRACE) {
      problem.message = "config must be a JSON object";
      return new Config(0, 0, "", problem);
    }
    return new Config(p, skipValue(p, end), "", problem);
  }

  /** A reader over a JSON string (for tests and for filters that embed defaults). */
  static fromString(json: string): Config {
    const buf = String.UTF8.encode(json);
    return Config.fromBytes(changetype<usize>(buf), buf.byteLength);
  }

  // ---- outcome ----

  /** True while no problem has been found. */
  get ok(): bool {
    return this.problem.message === null;
  }

  /** The first problem found, naming the key; null if none. */
  get error(): string | null {
    return this.problem.message;
  }

  /** Records a problem of your own (for example a cross-key rule); the first one wins. */
  fail(message: string): void {
    if (this.problem.message === null) this.problem.message = message;
  }

  /**
   * Fails, naming `key`, if `leg` is one the context's segment does not have. Only while a
   * context is created, and only where the host says the leg count (ABI 1.7; segmentLegs()):
   * elsewhere nothing is checked.
   */
  requireLeg(key: string, leg: i32): void {
    const has = segmentLegs();
    if (has == 0 || leg < has) return;
    const list = has == 1 ? "leg 0 only: it lists no 'legs'" : "legs 0-" + (has - 1).toString() + " (its 'legs' list " + (has - 1).toString() + ")";
    this.fail("config key '" + key + "' names leg " + leg.toString() + ", but the segment has " + list);
  }

  /** Status.Ok, or (after setError with the first problem) Status.BadConfig. */
  finish(): Status {
    const message = this.problem.message;
    if (message === null) return Status.Ok;
    setError(message);
    return Status.BadConfig;
  }

  // ---- keys ----

  /** True if `key` is present with a non-null value. */
  has(key: string): bool {
    return this.find(key);
  }

  /** The keys of this object, in order. */
  keys(): string[] {
    const out = new Array<string>();
    if (this.start == 0) return out;
    let p = this.firstMember();
    while (p != 0) {
      out.push(decodeString(p, this.end));
      p = this.nextMember(p);
    }
    return out;
  }

  /**
   * Records an error for each of `keys` this config sets unless it is the root config (`root`):
   * keys that size what the whole instance shares (a buffer budget) belong to the filter's root
   * config, not to one segment's.
   */
  rootOnly(keys: string[], root: bool): void {
    if (root) return;
    for (let i = 0, n = keys.length; i < n; i++) {
      const key = unchecked(keys[i]);
      if (this.has(key)) this.fail("config key '" + key + "' can only be set in the filter's root config (filters.<name>.config)");
    }
  }

  /**
   * Records "unknown config key '<key>'" for the first key not in `allowed` (nested readers
   * name it as 'outer.inner') and returns false; true if every key is allowed.
   */
  rejectUnknown(allowed: string[]): bool {
    if (this.start == 0) return true;
    let p = this.firstMember();
    while (p != 0) {
      let known = false;
      for (let i = 0, n = allowed.length; i < n; i++) {
        if (keyEquals(p, this.end, unchecked(allowed[i]))) {
          known = true;
          break;
        }
      }
      if (!known) {
        const key = decodeString(p, this.end);
        const meant = nearestKey(key, allowed);
        this.fail("unknown config key '" + this.path + key + "'" + (meant.length > 0 ? "; did you mean '" + this.path + meant + "'?" : ""));
        return false;
      }
      p = this.nextMember(p);
    }
    return true;
  }

  // ---- typed getters: `def` when absent; on a wrong type or range, a problem and `def` ----

  /** An integer in [min, max]. */
  getInt(key: string, def: i64, min: i64 = i64.MIN_VALUE, max: i64 = i64.MAX_VALUE): i64 {
    if (!this.find(key)) return def;
    const v = parseInteger(this.valStart, this.valEnd);
    if (!v.ok && !v.huge) {
      this.fail("config key '" + this.path + key + "' must be an integer");
      return def;
    }
    if (v.huge || v.value < min || v.value > max) {
      this.fail("config key '" + this.path + key + "' must be between " + min.toString() + " and " + max.toString());
      return def;
    }
    return v.value;
  }

  /** A number in [min, max]. */
  getNumber(key: string, def: f64, min: f64 = -Infinity, max: f64 = Infinity): f64 {
    if (!this.find(key)) return def;
    const c = <i32>load<u8>(this.valStart);
    if (c != MINUS && !isDigit(c)) {
      this.fail("config key '" + this.path + key + "' must be a number");
      return def;
    }
    const v = parseFloat(String.UTF8.decodeUnsafe(this.valStart, this.valEnd - this.valStart));
    if (!(v >= min && v <= max)) {
      this.fail("config key '" + this.path + key + "' must be between " + numberText(min) + " and " + numberText(max));
      return def;
    }
    return v;
  }

  getBool(key: string, def: bool): bool {
    if (!this.find(key)) return def;
    const c = load<u8>(this.valStart);
    if (c == 0x74 /* t */) return true;
    if (c == 0x66 /* f */) return false;
    this.fail("config key '" + this.path + key + "' must be true or false");
    return def;
  }

  getString(key: string, def: string): string {
    if (!this.find(key)) return def;
    if (load<u8>(this.valStart) != QUOTE) {
      this.fail("config key '" + this.path + key + "' must be a string");
      return def;
    }
    return decodeString(this.valStart, this.valEnd);
  }

  /** An array of integers, each in [min, max]; null when absent (or on a problem). */
  getIntArray(key: string, min: i64 = i64.MIN_VALUE, max: i64 = i64.MAX_VALUE): i64[] | null {
    if (!this.find(key)) return null;
    const message = "config key '" + this.path + key + "' must be an array of integers between " +
      min.toString() + " and " + max.toString();
    if (load<u8>(this.valStart) != OPEN_BRACKET) {
      this.fail(message);
      return null;
    }
    const out = new Array<i64>();
    const end = this.valEnd;
    let p = skipWs(this.valStart + 1, end);
    if (load<u8>(p) == CLOSE_BRACKET) return out;
    while (true) {
      const vEnd = skipValue(p, end);
      const v = parseInteger(p, vEnd);
      if (!v.ok || v.value < min || v.value > max) {
        this.fail(message);
        return null;
      }
      out.push(v.value);
      p = skipWs(vEnd, end);
      if (load<u8>(p) != COMMA) break;
      p = skipWs(p + 1, end);
    }
    return out;
  }

  /** A reader over the object under `key`; null when absent (or not an object: a problem). */
  getObject(key: string): Config | null {
    if (!this.find(key)) return null;
    if (load<u8>(this.valStart) != OPEN_BRACE) {
      this.fail("config key '" + this.path + key + "' must be an object");
      return null;
    }
    return new Config(this.valStart, this.valEnd, this.path + key + ".", this.problem);
  }

  // ---- scanning ----

  /** Finds `key`; on success valStart/valEnd bound its value. A null value counts as absent. */
  private find(key: string): bool {
    if (this.start == 0) return false;
    let p = this.firstMember();
    while (p != 0) {
      if (keyEquals(p, this.end, key)) {
        const v = skipWs(skipString(p, this.end), this.end);
        this.valStart = skipWs(v + 1, this.end); // past ':'
        this.valEnd = skipValue(this.valStart, this.end);
        return load<u8>(this.valStart) != 0x6e; /* n(ull) */
      }
      p = this.nextMember(p);
    }
    return false;
  }

  /** Address of the first member's key quote, or 0 for {}. */
  private firstMember(): usize {
    const p = skipWs(this.start + 1, this.end);
    return load<u8>(p) == QUOTE ? p : 0;
  }

  /** Address of the key quote of the member after the one at `p`, or 0. */
  private nextMember(p: usize): usize {
    const end = this.end;
    p = skipWs(skipString(p, end), end); // at ':'
    p = skipWs(skipValue(skipWs(p + 1, end), end), end); // at ',' or '}'
    if (load<u8>(p) != COMMA) return 0;
    return skipWs(p + 1, end);
  }
}

// ---- JSON primitives over [p, end) ----

@inline function isDigit(c: i32): bool {
  return c >= 0x30 && c <= 0x39;
}

/** A number as a config error shows it: a whole number without AssemblyScript's ".0" (10000, not 10000.0). */
export function numberText(v: f64): string {
  return Math.abs(v) < 9007199254740992 && v == Math.floor(v) ? (<i64>v).toString() : v.toString();
}

function skipWs(p: usize, end: usize): usize {
  while (p < end) {
    const c = load<u8>(p);
    if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
    p++;
  }
  return p;
}

/** `p` at an opening quote; returns the address past the closing quote. */
function skipString(p: usize, end: usize): usize {
  p++;
  while (p < end) {
    const c = load<u8>(p);
    if (c == BACKSLASH) p += 2;
    else if (c == QUOTE) return p + 1;
    else p++;
  }
  return end;
}

/** `p` at the first byte of a value; returns the address just past it. */
function skipValue(p: usize, end: usize): usize {
  const c = load<u8>(p);
  if (c == QUOTE) return skipString(p, end);
  if (c == OPEN_BRACE || c == OPEN_BRACKET) {
    let depth = 0;
    while (p < end) {
      const d = load<u8>(p);
      if (d == QUOTE) {
        p = skipString(p, end);
        continue;
      }
      if (d == OPEN_BRACE || d == OPEN_BRACKET) depth++;
      else if (d == CLOSE_BRACE || d == CLOSE_BRACKET) {
        if (--depth == 0) return p + 1;
      }
      p++;
    }
    return end;
  }
  // number, true, false, null
  while (p < end) {
    const d = load<u8>(p);
    if (d == COMMA || d == CLOSE_BRACE || d == CLOSE_BRACKET || d == 0x20 || d == 0x09 || d == 0x0a || d == 0x0d) break;
    p++;
  }
  return p;
}

/** The allowed key a misspelt `key` most likely meant (case aside, at most 2 edits and a third of its length), or "". */
function nearestKey(key: string, allowed: string[]): string {
  const lower = key.toLowerCase();
  let best = "";
  let bestEdits = i32.MAX_VALUE;
  for (let i = 0, n = allowed.length; i < n; i++) {
    const k = unchecked(allowed[i]);
    const edits = editDistance(lower, k.toLowerCase());
    if (edits <= min(2, max(key.length, k.length) / 3) && edits < bestEdits) {
      best = k;
      bestEdits = edits;
    }
  }
  return best;
}

/** Levenshtein distance, a row at a time (config parsing only: not on the packet path). */
function editDistance(a: string, b: string): i32 {
  let row = new Array<i32>(b.length + 1);
  for (let j = 0; j <= b.length; j++) unchecked((row[j] = j));
  for (let i = 1; i <= a.length; i++) {
    const next = new Array<i32>(b.length + 1);
    unchecked((next[0] = i));
    for (let j = 1; j <= b.length; j++) {
      const swap = unchecked(row[j - 1]) + (a.charCodeAt(i - 1) == b.charCodeAt(j - 1) ? 0 : 1);
      unchecked((next[j] = min(min(unchecked(row[j]) + 1, unchecked(next[j - 1]) + 1), swap)));
    }
    row = next;
  }
  return unchecked(row[b.length]);
}

/** Compares the JSON string at `p` (its opening quote) with `key`. */
function keyEquals(p: usize, end: usize, key: string): bool {
  const stop = skipString(p, end) - 1;
  const n = <i32>(stop - p - 1);
  // Fast path: plain ASCII without escapes compares byte for unit.
  let plain = true;
  for (let i = 0; i < n; i++) {
    const c = load<u8>(p + 1 + <usize>i);
    if (c == BACKSLASH || c >= 0x80) {
      plain = false;
      break;
    }
  }
  if (!plain) return decodeString(p, end) == key;
  if (n != key.length) return false;
  for (let i = 0; i < n; i++) {
    if (<i32>load<u8>(p + 1 + <usize>i) != key.charCodeAt(i)) return false;
  }
  return true;
}

/** Decodes the JSON string at `p` (its opening quote), escapes included. */
function decodeString(p: usize, end: usize): string {
  const stop = skipString(p, end) - 1;
  let out = "";
  let run = p + 1;
  let q = run;
  while (q < stop) {
    if (load<u8>(q) != BACKSLASH) {
      q++;
      continue;
    }
    out += String.UTF8.decodeUnsafe(run, q - run);
    const e = load<u8>(q, 1);
    let unit = <i32>e;
    let size: usize = 2;
    if (e == 0x62) unit = 0x08; // \b
    else if (e == 0x66) unit = 0x0c; // \f
    else if (e == 0x6e) unit = 0x0a; // \n
    else if (e == 0x72) unit = 0x0d; // \r
    else if (e == 0x74) unit = 0x09; // \t
    else if (e == 0x75) { // \uXXXX: one UTF-16 unit; pairs concatenate into one code point
      unit = 0;
      for (let i: usize = 2; i < 6; i++) unit = (unit << 4) | hexValue(<i32>load<u8>(q + i));
      size = 6;
    }
    out += String.fromCharCode(unit);
    q += size;
    run = q;
  }
  return out + String.UTF8.decodeUnsafe(run, stop - run);
}

function hexValue(c: i32): i32 {
  if (c <= 0x39) return c - 0x30;
  return (c | 0x20) - 0x61 + 10;
}

class ParsedInt {
  ok: bool = false;
  value: i64 = 0;
  /** Not ok, but a whole number all the same: one past the safe integers (1e20), out of any range asked. */
  huge: bool = false;
}
const parsed = new ParsedInt();

/** Parses [p, end) as an integer: plain digits, or a number with fraction/exponent that is integral. */
function parseInteger(p: usize, end: usize): ParsedInt {
  parsed.ok = false;
  parsed.value = 0;
  parsed.huge = false;
  if (p >= end) return parsed;
  const first = <i32>load<u8>(p);
  if (first != MINUS && !isDigit(first)) return parsed;
  let negative = first == MINUS;
  let q = negative ? p + 1 : p;
  let value: i64 = 0;
  let digits = 0;
  let plain = true;
  while (q < end) {
    const c = <i32>load<u8>(q);
    if (!isDigit(c)) {
      plain = false;
      break;
    }
    value = value * 10 + (c - 0x30);
    digits++;
    q++;
  }
  if (plain && digits > 0 && digits <= 18) {
    parsed.ok = true;
    parsed.value = negative ? -value : value;
    return parsed;
  }
  // 1e3, 2.0 or long digit strings: go through f64 and insist on an exact integer.
  const v = parseFloat(String.UTF8.decodeUnsafe(p, end - p));
  if (isFinite(v) && Math.floor(v) == v && Math.abs(v) <= MAX_SAFE) {
    parsed.ok = true;
    parsed.value = <i64>v;
  } else if (isFinite(v) && Math.floor(v) == v) {
    parsed.huge = true;
  }
  return parsed;
}
