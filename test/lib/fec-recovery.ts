// What a perfect SMPTE ST 2022-1 decoder can rebuild: given the media packets lost and the FEC
// packets that arrived, XOR recovery repeated over rows and columns until nothing changes (each
// FEC packet rebuilds the one packet its group misses; a rebuilt packet may complete another
// group). Tests compare what a real decoder (ours, GStreamer's) rebuilt against this.
//
// Media packets are named by their index in the stream (0, 1, 2, ...: the RTP sequence number
// less the first one, unwrapped), so a matrix may straddle the 16-bit wrap.

/** L columns x D rows. */
export interface MatrixShape {
  readonly columns: number;
  readonly rows: number;
}

/**
 * One FEC packet's group, by the index of its SNBase: a row protects base..base+L-1, a column
 * base, base+L, ..., base+(D-1)L.
 */
export interface FecGroup {
  readonly kind: "row" | "column";
  readonly base: number;
}

export function groupMembers(shape: MatrixShape, g: FecGroup): number[] {
  const members: number[] = [];
  if (g.kind === "row") for (let k = 0; k < shape.columns; k++) members.push(g.base + k);
  else for (let k = 0; k < shape.rows; k++) members.push(g.base + k * shape.columns);
  return members;
}

/**
 * The groups of every complete matrix of `count` packets, matrices starting at index 0 (an
 * encoder's matrix starts at the first packet it gets): D rows and L columns each, as enabled.
 */
export function matrixGroups(shape: MatrixShape, count: number, enabled: { row: boolean; column: boolean }): FecGroup[] {
  const groups: FecGroup[] = [];
  const size = shape.columns * shape.rows;
  for (let start = 0; start + size <= count; start += size) {
    if (enabled.row) for (let r = 0; r < shape.rows; r++) groups.push({ kind: "row", base: start + r * shape.columns });
    if (enabled.column) for (let c = 0; c < shape.columns; c++) groups.push({ kind: "column", base: start + c });
  }
  return groups;
}

export interface Recovery {
  /** Lost packets XOR recovery rebuilds, ascending. */
  readonly recovered: number[];
  /** Lost packets it cannot rebuild, ascending. */
  readonly unrecovered: number[];
}

/** Iterative row/column recovery of `lost` with the FEC groups that arrived. */
export function recoverable(shape: MatrixShape, lost: Iterable<number>, arrived: Iterable<FecGroup>): Recovery {
  if (!(shape.columns >= 1 && shape.rows >= 1)) throw new RangeError(`matrix shape ${shape.columns}x${shape.rows}: L and D must be at least 1`);
  const missing = new Set(lost);
  // Per group: its lost members; per lost packet: the groups that hold it.
  const groups = new Map<string, Set<number>>();
  const holding = new Map<number, string[]>();
  for (const g of arrived) {
    const key = `${g.kind}:${g.base}`;
    if (groups.has(key)) continue;
    const gone = new Set(groupMembers(shape, g).filter((i) => missing.has(i)));
    groups.set(key, gone);
    for (const i of gone) holding.set(i, [...(holding.get(i) ?? []), key]);
  }
  const ready = [...groups].filter(([, gone]) => gone.size === 1).map(([key]) => key);
  const recovered: number[] = [];
  while (ready.length > 0) {
    const gone = groups.get(ready.pop()!)!;
    if (gone.size !== 1) continue; // another group rebuilt its packet meanwhile
    const i = gone.values().next().value!;
    recovered.push(i);
    missing.delete(i);
    for (const key of holding.get(i) ?? []) {
      const other = groups.get(key)!;
      other.delete(i!);
      if (other.size === 1) ready.push(key);
    }
  }
  return { recovered: recovered.sort((a, b) => a - b), unrecovered: [...missing].sort((a, b) => a - b) };
}
