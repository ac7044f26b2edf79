// Fields on the wire that this build's msm.proto does not define. Protobuf decoders skip them, so a
// control plane newer than its proxy could assign a setting the proxy would silently run without
// (a source policy, say). The agent finds them in each snapshot and refuses it instead.
import protobuf from "protobufjs";

/**
 * Where `bytes`, a `type` message, holds fields `type` does not define, recursively through its
 * message fields: `segments[2].chain[0]: field 12 of msm.v1.ChainStage`. Map entries are not
 * looked into (the maps of msm.proto hold scalars). Bytes the decoder cannot read give none: the
 * decoder that read them first would have refused them.
 */
export function unknownFields(type: protobuf.Type, bytes: Uint8Array, path = ""): string[] {
  const out: string[] = [];
  try {
    scan(type, bytes, path, out);
  } catch {
    // malformed: the real decoder's business
  }
  return out;
}

function scan(type: protobuf.Type, bytes: Uint8Array, path: string, out: string[]): void {
  const reader = protobuf.Reader.create(bytes);
  const seen = new Map<number, number>(); // per repeated field, the index of the next element
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const id = tag >>> 3;
    const wireType = tag & 7;
    const field = type.fieldsById[id];
    if (!field) {
      out.push(`${path || "(top level)"}: field ${id} of ${type.fullName.replace(/^\./, "")}`);
      reader.skipType(wireType);
      continue;
    }
    field.resolve();
    if (wireType === 2 && !field.map && field.resolvedType instanceof protobuf.Type) {
      const k = seen.get(id) ?? 0;
      seen.set(id, k + 1);
      const at = `${path ? `${path}.` : ""}${field.name}${field.repeated ? `[${k}]` : ""}`;
      scan(field.resolvedType, reader.bytes(), at, out);
    } else reader.skipType(wireType);
  }
}

/**
 * Where `value`, a `type` message as JSON (a record the control plane stored, in the decoder's
 * camelCase names), holds keys `type` does not define, recursively through its message fields:
 * what a newer control plane stored and this one would drop from the snapshots it builds.
 * Map fields are not looked into; keys starting with "_" (a decoder's virtual oneof names) are not fields.
 */
export function unknownRecordFields(type: protobuf.Type, value: unknown, path = ""): string[] {
  const out: string[] = [];
  if (value === null || typeof value !== "object" || Array.isArray(value)) return out;
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (key.startsWith("_")) continue;
    const field = type.fields[key];
    if (!field) {
      out.push(`${path || "(top level)"}: '${key}' (not a field of ${type.fullName.replace(/^\./, "")})`);
      continue;
    }
    field.resolve();
    if (field.map || !(field.resolvedType instanceof protobuf.Type)) continue;
    const at = `${path ? `${path}.` : ""}${key}`;
    if (field.repeated && Array.isArray(v)) v.forEach((item, i) => out.push(...unknownRecordFields(field.resolvedType as protobuf.Type, item, `${at}[${i}]`)));
    else out.push(...unknownRecordFields(field.resolvedType, v, at));
  }
  return out;
}
