// The decoder's FEC packets waiting to be used: a fixed table of `capacity` entries, each with the
// group's recovery fields and the XOR payload. An entry lives only while its group misses two or
// more packets, or one that is not known missing yet; a repair that can act at once is never
// stored. When the table is full the entry of the oldest group makes room.
import { CHUNK_SIZE } from "../../../sdk/assembly/chunks";
import { FEC_PAYLOAD_ROOM, Recovery } from "./wire";

const E_BASE: usize = 0; //    i64  extended sequence number of the group's first packet
const E_USED: usize = 8; //    u8
const E_ROW: usize = 9; //     u8   1: row group, 0: column group
const E_PT: usize = 10; //     u8   PT recovery
const E_MARKER: usize = 11; // u8   marker recovery (the FEC packet's RTP marker)
const E_LENGTH: usize = 12; // u16  length recovery
const E_PAYLEN: usize = 14; // u16  FEC payload length
const E_TS: usize = 16; //     u32  TS recovery
export const ENTRY_META: i32 = 32;
export const ENTRY_DATA: i32 = FEC_PAYLOAD_ROOM;
/** Entries per chunk of payload bytes (CHUNK_SIZE / ENTRY_DATA, rounded down to a power of two). */
const ENTRIES_SHIFT: i32 = 3;
export const ENTRIES_PER_CHUNK: i32 = 1 << ENTRIES_SHIFT;
assert(ENTRIES_PER_CHUNK * ENTRY_DATA <= CHUNK_SIZE);

export class RepairTable {
  /** Entries in use. */
  live: i32 = 0;

  constructor(
    readonly capacity: i32,
    /** capacity x ENTRY_META bytes. */
    private readonly meta: usize,
    /** The payloads: chunks[first ..], ENTRIES_PER_CHUNK entries each. */
    private readonly chunks: StaticArray<usize>,
    private readonly first: i32,
  ) {
    this.clear();
  }

  clear(): void {
    memory.fill(this.meta, 0, <usize>this.capacity * <usize>ENTRY_META);
    this.live = 0;
  }

  @inline private metaAt(e: i32): usize {
    return this.meta + (<usize>e << 5);
  }

  @inline payload(e: i32): usize {
    return unchecked(this.chunks[this.first + (e >> ENTRIES_SHIFT)]) + <usize>(e & (ENTRIES_PER_CHUNK - 1)) * <usize>ENTRY_DATA;
  }

  @inline used(e: i32): bool {
    return load<u8>(this.metaAt(e), E_USED) != 0;
  }

  @inline base(e: i32): i64 {
    return load<i64>(this.metaAt(e), E_BASE);
  }

  @inline isRow(e: i32): bool {
    return load<u8>(this.metaAt(e), E_ROW) != 0;
  }

  @inline payloadLength(e: i32): i32 {
    return <i32>load<u16>(this.metaAt(e), E_PAYLEN);
  }

  /** Entry `e`'s recovery fields into `r`. */
  recovery(e: i32, r: Recovery): void {
    const m = this.metaAt(e);
    r.row = load<u8>(m, E_ROW) != 0;
    r.ptRecovery = load<u8>(m, E_PT);
    r.marker = load<u8>(m, E_MARKER) != 0;
    r.lengthRecovery = load<u16>(m, E_LENGTH);
    r.tsRecovery = load<u32>(m, E_TS);
  }

  /** A free entry, or -1. */
  findFree(): i32 {
    for (let e = 0; e < this.capacity; e++) if (!this.used(e)) return e;
    return -1;
  }

  /** The entry of the oldest group (live > 0). */
  oldest(): i32 {
    let best = -1;
    for (let e = 0; e < this.capacity; e++) {
      if (this.used(e) && (best < 0 || this.base(e) < this.base(best))) best = e;
    }
    return best;
  }

  /** Fills free entry `e`: group `base`, fields `r`, payload [payload, payload+payLen). */
  fill(e: i32, base: i64, r: Recovery, payload: usize, payLen: i32): void {
    const m = this.metaAt(e);
    store<i64>(m, base, E_BASE);
    store<u8>(m, 1, E_USED);
    store<u8>(m, r.row ? 1 : 0, E_ROW);
    store<u8>(m, r.ptRecovery, E_PT);
    store<u8>(m, r.marker ? 1 : 0, E_MARKER);
    store<u16>(m, r.lengthRecovery, E_LENGTH);
    store<u16>(m, <u16>payLen, E_PAYLEN);
    store<u32>(m, r.tsRecovery, E_TS);
    memory.copy(this.payload(e), payload, <usize>payLen);
    this.live++;
  }

  free(e: i32): void {
    store<u8>(this.metaAt(e), 0, E_USED);
    this.live--;
  }
}
