// Text that came from elsewhere (a proxy's NACK, its stats' segment names, a filter's message),
// made safe to print: control characters (C0, DEL, C1, which carry ANSI escape sequences) and the
// bidirectional-override characters that reorder what a terminal shows become visible escapes
// (\x1b, \u{202e}), so such text can neither drive the terminal nor forge a line of output.

const UNSAFE = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;
const UNSAFE_WITH_NEWLINE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

function escape(ch: string): string {
  const code = ch.codePointAt(0)!;
  if (ch === "\n") return "\\n";
  if (ch === "\t") return "\\t";
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
}

/** `text` with every unsafe character escaped; newlines too unless `keepNewlines`. */
export function printable(text: string, options: { keepNewlines?: boolean } = {}): string {
  return text.replace(options.keepNewlines ? UNSAFE : UNSAFE_WITH_NEWLINE, escape);
}

/** Characters that JSON.stringify and the YAML printer leave raw: DEL, C1, bidi overrides. */
const RAW_WHEN_SERIALIZED = /[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/** True when serialized text holds a character that escapeSerialized would rewrite. */
export function hasRawUnsafe(text: string): boolean {
  return text.search(RAW_WHEN_SERIALIZED) >= 0;
}

/**
 * JSON or YAML text with those characters written as \u escapes, which mean the same character
 * inside a JSON string or a double-quoted YAML scalar (C0 controls are escaped by both already).
 * For YAML the caller double-quotes every string when hasRawUnsafe says so.
 */
export function escapeSerialized(text: string): string {
  return text.replace(RAW_WHEN_SERIALIZED, (ch) => `\\u${ch.codePointAt(0)!.toString(16).padStart(4, "0")}`);
}
