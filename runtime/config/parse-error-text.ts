// A YAML or JSON parser's error without the text it quotes. The yaml library appends an excerpt
// of the document around the error, and V8's JSON.parse quotes the input ("...", cut with "..."),
// Bun's the token it stopped at; near a typo that is often an SRTP key, which must not reach a log
// or a terminal through a config mistake.

/** The parser's message, its excerpt of the input left out (the line and column or position stay). */
export function parseErrorText(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const first = message.split(":\n")[0]!.split("\n")[0]!;
  if (/ is not valid JSON$/.test(first)) return first.replace(/,? ?(?:\.\.\.)?".*$/, ""); // V8: Unexpected token 'x', "{"key": ..."... is not valid JSON
  if (/^JSON Parse error: /.test(first)) return first.replace(/ ?".*$/, ""); // Bun: Unexpected identifier "inline"
  return first;
}
