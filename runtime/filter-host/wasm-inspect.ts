// Reads the parts of a WebAssembly binary that the JS API does not show: the limits of an
// imported memory, and the types of imported and exported functions (the JS API gives names and
// kinds only, and a JS host function accepts any type: a module importing msm.metric_add with an
// i64 where the host passes an f64 would only fail at its first call). The type, import, function
// and export sections are decoded; everything else is skipped by size.

export interface MemoryImportLimits {
  readonly module: string;
  readonly name: string;
  readonly minimumPages: number;
  readonly maximumPages: number | undefined;
  readonly shared: boolean;
}

/** What the binary says of its imports and exports. */
export interface ModuleShape {
  readonly memories: MemoryImportLimits[];
  /** "module.name" and type (as typeText writes it) of each imported function, in order (a name may come twice). */
  readonly importedFunctions: [string, string][];
  /** Name of each exported function -> its type. */
  readonly exportedFunctions: Map<string, string>;
}

class Reader {
  pos = 0;
  constructor(private readonly bytes: Uint8Array) {}
  get done(): boolean {
    return this.pos >= this.bytes.length;
  }
  byte(): number {
    if (this.pos >= this.bytes.length) throw new RangeError("unexpected end of module");
    return this.bytes[this.pos++]!;
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result >>> 0;
      shift += 7;
      if (shift > 28) throw new RangeError("LEB128 value too long");
    }
  }
  name(): string {
    const len = this.u32();
    const start = this.pos;
    this.skip(len);
    return new TextDecoder().decode(this.bytes.subarray(start, start + len));
  }
  skip(n: number): void {
    if (this.pos + n > this.bytes.length) throw new RangeError("section runs past the end of module");
    this.pos += n;
  }
}

const SECTION_TYPE = 1;
const SECTION_IMPORT = 2;
const SECTION_FUNCTION = 3;
const SECTION_EXPORT = 7;
const KIND_FUNC = 0;
const KIND_TABLE = 1;
const KIND_MEMORY = 2;
const KIND_GLOBAL = 3;
const KIND_TAG = 4;
const FUNC_TYPE = 0x60;
const VALUE_TYPES: Readonly<Record<number, string>> = { 0x7f: "i32", 0x7e: "i64", 0x7d: "f32", 0x7c: "f64", 0x7b: "v128", 0x70: "funcref", 0x6f: "externref" };

function skipLimits(r: Reader): void {
  const flags = r.byte();
  r.u32();
  if (flags & 1) r.u32();
}

/** A function type as docs/abi.md writes one, without names: `(i32, i32) -> i32`, `() -> ()`. */
export function typeText(params: readonly string[], results: readonly string[]): string {
  const out = results.length === 0 ? "()" : results.length === 1 ? results[0]! : `(${results.join(", ")})`;
  return `(${params.join(", ")}) -> ${out}`;
}

function valueTypes(r: Reader): string[] {
  const count = r.u32();
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const code = r.byte();
    out.push(VALUE_TYPES[code] ?? `0x${code.toString(16)}`);
  }
  return out;
}

/** Reads the module's imports and exports: memory limits and function types. Throws RangeError on a malformed binary. */
export function moduleShape(bytes: Uint8Array): ModuleShape {
  const r = new Reader(bytes);
  r.skip(8); // magic + version, already checked by WebAssembly.Module
  const types: string[] = [];
  const functionTypes: number[] = []; // imported functions first, then the module's own: the function index space
  const memories: MemoryImportLimits[] = [];
  const importedFunctions: [string, string][] = [];
  const exportedFunctions = new Map<string, string>();
  const typeOf = (index: number): string => types[index] ?? `type ${index}`;
  while (!r.done) {
    const id = r.byte();
    const size = r.u32();
    const end = r.pos + size;
    if (id === SECTION_TYPE) {
      const count = r.u32();
      for (let i = 0; i < count; i++) {
        const form = r.byte();
        if (form !== FUNC_TYPE) throw new RangeError(`type ${i} is not a function type (0x${form.toString(16)})`);
        types.push(typeText(valueTypes(r), valueTypes(r)));
      }
    } else if (id === SECTION_IMPORT) {
      const count = r.u32();
      for (let i = 0; i < count; i++) {
        const module = r.name();
        const name = r.name();
        const kind = r.byte();
        switch (kind) {
          case KIND_FUNC: {
            const type = r.u32();
            functionTypes.push(type);
            importedFunctions.push([`${module}.${name}`, typeOf(type)]);
            break;
          }
          case KIND_TABLE:
            r.byte();
            skipLimits(r);
            break;
          case KIND_MEMORY: {
            const flags = r.byte();
            const minimumPages = r.u32();
            const maximumPages = flags & 1 ? r.u32() : undefined;
            memories.push({ module, name, minimumPages, maximumPages, shared: (flags & 2) !== 0 });
            break;
          }
          case KIND_GLOBAL:
            r.byte();
            r.byte();
            break;
          case KIND_TAG:
            r.byte();
            r.u32();
            break;
          default:
            throw new RangeError(`unknown import kind ${kind}`);
        }
      }
    } else if (id === SECTION_FUNCTION) {
      const count = r.u32();
      for (let i = 0; i < count; i++) functionTypes.push(r.u32());
    } else if (id === SECTION_EXPORT) {
      const count = r.u32();
      for (let i = 0; i < count; i++) {
        const name = r.name();
        const kind = r.byte();
        const index = r.u32();
        if (kind === KIND_FUNC) exportedFunctions.set(name, typeOf(functionTypes[index] ?? -1));
      }
    }
    if (r.pos > end) throw new RangeError(`section ${id} runs past its size`);
    r.skip(end - r.pos);
  }
  return { memories, importedFunctions, exportedFunctions };
}
