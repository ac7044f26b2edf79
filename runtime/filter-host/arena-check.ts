// The arena header a module describes (docs/abi.md "Arena"), checked once at load: every area
// inside memory, none overlapping, capacities and sizes in range. The host then trusts the layout
// and never checks it per packet.
import {
  AH_BATCH_CAPACITY, AH_DESC_TABLE, AH_HEADROOM, AH_MAGIC, AH_OUT_CAPACITY, AH_OUT_SLOT_BASE,
  AH_OUT_TABLE, AH_SCRATCH, AH_SCRATCH_SIZE, AH_SLOT_BASE, AH_SLOT_SIZE, ARENA_HEADER_SIZE,
  ARENA_MAGIC, DESC_SIZE,
} from "../abi.js";

const MIN_PACKET_ROOM = 1280;
const MIN_SCRATCH = 256;

export interface ArenaLayout {
  /** The header's address (msm_arena's answer). */
  readonly header: number;
  readonly batchCapacity: number;
  readonly descTable: number;
  readonly slotBase: number;
  readonly slotSize: number;
  readonly headroom: number;
  readonly outCapacity: number;
  readonly outTable: number;
  readonly outSlotBase: number;
  readonly scratch: number;
  readonly scratchSize: number;
}

/** Reads and checks the arena header at `address` of the memory `v` views; throws refuse(why). */
export function checkArena(v: DataView, address: number, refuse: (why: string) => Error): ArenaLayout {
  const memSize = v.byteLength;
  if (address <= 0 || address + ARENA_HEADER_SIZE > memSize) {
    throw refuse(`msm_arena returned ${address}, outside memory`);
  }
  if (v.getUint32(address + AH_MAGIC, true) !== ARENA_MAGIC) {
    throw refuse("arena header has the wrong magic (expected 0x414D534D)");
  }
  const u = (off: number): number => v.getUint32(address + off, true);
  const a: ArenaLayout = {
    header: address, batchCapacity: u(AH_BATCH_CAPACITY), descTable: u(AH_DESC_TABLE), slotBase: u(AH_SLOT_BASE),
    slotSize: u(AH_SLOT_SIZE), headroom: u(AH_HEADROOM), outCapacity: u(AH_OUT_CAPACITY),
    outTable: u(AH_OUT_TABLE), outSlotBase: u(AH_OUT_SLOT_BASE), scratch: u(AH_SCRATCH), scratchSize: u(AH_SCRATCH_SIZE),
  };
  const bad = (why: string): never => {
    throw refuse(`bad arena: ${why}`);
  };
  if (a.batchCapacity < 1 || a.batchCapacity > 1024) bad(`batch_capacity ${a.batchCapacity} not in 1..1024`);
  if (a.outCapacity > 1024) bad(`out_capacity ${a.outCapacity} not in 0..1024`);
  if (a.slotSize - a.headroom < MIN_PACKET_ROOM || a.headroom > a.slotSize) bad(`slot_size - headroom below ${MIN_PACKET_ROOM}`);
  if (a.scratchSize < MIN_SCRATCH) bad(`scratch_size below ${MIN_SCRATCH}`);
  const areas: [string, number, number][] = [
    ["header", address, ARENA_HEADER_SIZE],
    ["desc_table", a.descTable, a.batchCapacity * DESC_SIZE],
    ["slots", a.slotBase, a.batchCapacity * a.slotSize],
    ["out_table", a.outTable, a.outCapacity * DESC_SIZE],
    ["out_slots", a.outSlotBase, a.outCapacity * a.slotSize],
    ["scratch", a.scratch, a.scratchSize],
  ];
  for (const [label, start, size] of areas) {
    if (start + size > memSize || (size > 0 && start <= 0)) bad(`${label} [${start}, ${start + size}) is outside memory (${memSize} bytes)`);
  }
  for (let i = 0; i < areas.length; i++) {
    for (let j = i + 1; j < areas.length; j++) {
      const [la, sa, za] = areas[i]!;
      const [lb, sb, zb] = areas[j]!;
      if (za > 0 && zb > 0 && sa < sb + zb && sb < sa + za) bad(`${la} overlaps ${lb}`);
    }
  }
  return a;
}
