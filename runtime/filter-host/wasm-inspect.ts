// Reads the parts of a WebAssembly binary that the JS API does not show: the limits of an
// imported memory. Only the import section is decoded; everything else is skipped by size.

export interface MemoryImportLimits {
  readonly module: string;
  readonly name: string;
  readonly minimumPages: number;
  readonly maximumPages: number | undefined;
  readonly shared: boolean;
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

const SECTION_IMPORT = 2;
const KIND_FUNC = 0;
const KIND_TABLE = 1;
const KIND_MEMORY = 2;
const KIND_GLOBAL = 3;
const KIND_TAG = 4;

function skipLimits(r: Reader): void {
  const flags = r.byte();
  r.u32();
  if (flags & 1) r.u32();
}

/** Returns every memory the module imports, with its declared limits. */
export function importedMemories(bytes: Uint8Array): MemoryImportLimits[] {
  const r = new Reader(bytes);
  r.skip(8); // magic + version, already checked by WebAssembly.Module
  const found: MemoryImportLimits[] = [];
  while (!r.done) {
    const id = r.byte();
    const size = r.u32();
    if (id !== SECTION_IMPORT) {
      r.skip(size);
      continue;
    }
    const count = r.u32();
    for (let i = 0; i < count; i++) {
      const module = r.name();
      const name = r.name();
      const kind = r.byte();
      switch (kind) {
        case KIND_FUNC:
          r.u32();
          break;
        case KIND_TABLE:
          r.byte();
          skipLimits(r);
          break;
        case KIND_MEMORY: {
          const flags = r.byte();
          const minimumPages = r.u32();
          const maximumPages = flags & 1 ? r.u32() : undefined;
          found.push({ module, name, minimumPages, maximumPages, shared: (flags & 2) !== 0 });
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
    break; // at most one import section
  }
  return found;
}
