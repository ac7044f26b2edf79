// Limits a config or manifest text is held to before a parser builds anything from it. The yaml
// library composes nested collections recursively: a few hundred `[` (or `- `) overflow the stack,
// and an overflow while V8 compiles a regular expression leaves it unable to compile the next one,
// so the process aborts at its next parse. JSON.parse copes, but what walks a config afterwards
// (secret references, structuredClone, JSON.stringify) recurses. No real config comes near these.
import { Composer, CST, Lexer, LineCounter, Parser, type Document, type YAMLError } from "yaml";
import { pathString } from "./field-path.js";

/** The bytes a config file, a manifest file or a filter config given as text may hold. */
export const MAX_CONFIG_BYTES = 16 << 20;

/** Mappings and lists inside one another (`{"a": [1]}` is 2 levels); a proxy config uses under 10. */
export const MAX_NESTING = 64;

/** A text refused by these limits; the message names no content but keys, with a line and column. */
export class TextLimitError extends Error {
  override readonly name = "TextLimitError";
  /** The YAML document past the limits (from 1), if the text is not refused whole. */
  constructor(message: string, readonly document?: number) {
    super(message);
  }
}

/** Why a text is refused whatever its format: its size. */
function sizeProblem(text: string): string | undefined {
  const bytes = Buffer.byteLength(text);
  return bytes > MAX_CONFIG_BYTES ? `${bytes} bytes, more than the ${MAX_CONFIG_BYTES >> 20} MiB a config or manifest may hold` : undefined;
}

function nestingProblem(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return `nested deeper than ${MAX_NESTING} levels of mappings and lists at line ${line}, column ${offset - before.lastIndexOf("\n")}`;
}

/**
 * The documents of a YAML stream (split by `---`), as the yaml library's parseAllDocuments makes
 * them, their errors placed at a line and column (not followed by its excerpt of the text), held
 * to these limits: throws TextLimitError, naming the document past them. One pass: the parser
 * keeps the collections open at a point on a stack of its own (no recursion), checked after each
 * token, and a document reaches the recursive composer only once it is whole and within the
 * limits (a stream of `[` costs no more than its first 65).
 */
export function parseYamlDocuments(text: string): Document.Parsed[] {
  const size = sizeProblem(text);
  if (size) throw new TextLimitError(size);
  const lines = new LineCounter();
  const docs = Array.from(new Composer().compose(limitedTokens(text, lines)));
  for (const doc of docs) for (const e of [...doc.errors, ...doc.warnings]) placeError(e, lines);
  return docs;
}

/** What the yaml library's prettyErrors adds to a message, less the excerpt: where the error is. */
function placeError(e: YAMLError, lines: LineCounter): void {
  if (e.pos[0] === -1) return;
  const { line, col } = lines.linePos(e.pos[0]);
  e.message += ` at line ${line}, column ${col}`;
}

/** The parser's tokens for `text`, stopped by TextLimitError at the first collection too deep. */
function* limitedTokens(text: string, lines: LineCounter): Generator<CST.Token> {
  const parser = new Parser(lines.addNewLine);
  lines.addNewLine(0); // as Parser.parse does
  let document = 1;
  for (const lexeme of new Lexer().lex(text)) {
    for (const token of parser.next(lexeme)) {
      yield token;
      if (token.type === "document") document++;
    }
    const deep = tooDeep(parser.stack);
    if (deep) throw new TextLimitError(nestingProblem(text, deep.offset), document);
  }
  yield* parser.end();
}

/** The first collection past MAX_NESTING among those open on the parser's stack, if any. */
function tooDeep(stack: readonly CST.Token[]): CST.Token | undefined {
  if (stack.length <= MAX_NESTING + 1) return undefined; // the document, its collections, a scalar being read
  const open = stack.filter(CST.isCollection);
  return open[MAX_NESTING];
}

/**
 * JSON text parsed, held to the same rules as YAML: within these limits, and no key twice in an
 * object (JSON.parse keeps the last silently, the yaml library refuses it). Throws TextLimitError,
 * or JSON.parse's SyntaxError (for parseErrorText).
 */
export function parseJsonText(text: string): unknown {
  const size = sizeProblem(text);
  if (size) throw new TextLimitError(size);
  const scan = scanJson(text); // before JSON.parse: another engine's may recurse
  if (scan.deep !== undefined) throw new TextLimitError(nestingProblem(text, scan.deep));
  const value: unknown = JSON.parse(text); // a syntax error comes first: a key seen twice in broken text is a guess
  if (scan.twice) throw new TextLimitError(`key '${scan.twice.key}' appears twice ${scan.twice.in.length === 0 ? "at the top level" : `in ${pathString(scan.twice.in)}`}`);
  return value;
}

/** An object or array open in scanJson: an object's keys so far, or an array's index. */
interface Open {
  keys: Set<string> | undefined;
  /** An object's last key, an array's current index: where the next collection opened sits. */
  at: string | number;
  expectKey: boolean;
}

/**
 * One pass over JSON text: the offset of the first collection past MAX_NESTING, or the first key
 * seen twice in one object (with the object's path). On broken JSON its answer may be wrong, but
 * JSON.parse refuses that text anyway.
 */
function scanJson(text: string): { deep?: number; twice?: { key: string; in: PropertyKey[] } } {
  const open: Open[] = [];
  const marks = /["{}[\],]/g; // the rest (numbers, literals, blanks) neither nests nor names a key
  for (let m = marks.exec(text); m; m = marks.exec(text)) {
    const i = m.index;
    const c = text[i];
    const top = open[open.length - 1];
    if (c === '"') {
      const end = stringEnd(text, i);
      if (top?.keys && top.expectKey) {
        const key = keyText(text.slice(i, end + 1));
        if (top.keys.has(key)) return { twice: { key, in: open.slice(0, -1).map((o) => o.at) } };
        top.keys.add(key);
        top.at = key;
        top.expectKey = false;
      }
      marks.lastIndex = end + 1;
    } else if (c === "{" || c === "[") {
      if (open.length === MAX_NESTING) return { deep: i };
      open.push({ keys: c === "{" ? new Set() : undefined, at: 0, expectKey: c === "{" });
    } else if (c === "}" || c === "]") {
      open.pop();
    } else if (top) {
      if (top.keys) top.expectKey = true; // a comma
      else top.at = (top.at as number) + 1;
    }
  }
  return {};
}

/** The offset of the quote that closes the string opening at `start` (the text's end if none). */
function stringEnd(text: string, start: number): number {
  for (let q = text.indexOf('"', start + 1); q !== -1; q = text.indexOf('"', q + 1)) {
    let backslashes = 0;
    while (text[q - 1 - backslashes] === "\\") backslashes++;
    if (backslashes % 2 === 0) return q;
  }
  return text.length;
}

/** A key's text, its escapes decoded ("\u0061" and "a" are one key). */
function keyText(quoted: string): string {
  if (!quoted.includes("\\")) return quoted.slice(1, -1);
  try {
    return JSON.parse(quoted) as string;
  } catch {
    return quoted; // broken: JSON.parse refuses the whole text
  }
}
