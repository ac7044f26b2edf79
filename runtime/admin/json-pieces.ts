// The text JSON.stringify(value, null, 2) gives, in pieces: one of the value's fields is an array
// whose elements are written one at a time. /stats at 10,000 segments is 43 MB of JSON; as one
// string, and then one buffer for the socket, each read held about 90 MB more than its snapshot.
import { randomUUID } from "node:crypto";

/** Yields, in order, the pieces of `JSON.stringify(value, null, 2)`; `value[field]` must be an array. */
export function* prettyJsonPieces<T extends object>(value: T, field: keyof T & string): Generator<string> {
  const items: unknown = value[field];
  if (!Array.isArray(items)) throw new TypeError(`prettyJsonPieces: '${field}' is not an array`);
  // a string no field of the value can hold, where the array goes (the field keeps its place)
  const placeholder = `\u0000${randomUUID()}`;
  const marker = JSON.stringify(placeholder);
  const skeleton = JSON.stringify({ ...value, [field]: placeholder }, null, 2);
  const at = skeleton.indexOf(marker);
  yield skeleton.slice(0, at);
  if (items.length === 0) yield "[]";
  else {
    // an element of a field of the top-level object sits two levels deep: four spaces in
    for (let i = 0; i < items.length; i++) yield `${i === 0 ? "[\n" : ",\n"}    ${JSON.stringify(items[i] ?? null, null, 2).replace(/\n/g, "\n    ")}`;
    yield "\n  ]";
  }
  yield skeleton.slice(at + marker.length);
}
