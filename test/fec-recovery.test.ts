// The reference for what a perfect 2022-1 decoder rebuilds (test/lib/fec-recovery.ts): patterns
// whose answer is known by hand, 1-D and 2-D, non-square matrices, lost FEC packets, and random
// patterns checked against the plain fixed-point definition.
import * as assert from "uvu/assert";
import { groupMembers, matrixGroups, recoverable, type FecGroup, type MatrixShape } from "./lib/fec-recovery.js";
import { suite } from "./lib/suite.js";

const test = suite("fec recovery reference");

const S44: MatrixShape = { columns: 4, rows: 4 };
const twoD = (shape: MatrixShape, count: number): FecGroup[] => matrixGroups(shape, count, { row: true, column: true });
const oneD = (shape: MatrixShape, count: number): FecGroup[] => matrixGroups(shape, count, { row: false, column: true });
/** Index of (row, column) in matrix `m` of `shape`. */
const at = (shape: MatrixShape, r: number, c: number, m = 0): number => m * shape.columns * shape.rows + r * shape.columns + c;

test("groups: a row is L consecutive packets, a column D packets L apart", () => {
  assert.equal(groupMembers({ columns: 5, rows: 3 }, { kind: "row", base: 10 }), [10, 11, 12, 13, 14]);
  assert.equal(groupMembers({ columns: 5, rows: 3 }, { kind: "column", base: 2 }), [2, 7, 12]);
  // 35 packets of 4x4: two complete matrices, the third is not protected yet
  const g = twoD(S44, 35);
  assert.is(g.filter((x) => x.kind === "row").length, 8);
  assert.is(g.filter((x) => x.kind === "column").length, 8);
  assert.ok(g.every((x) => x.base < 32));
  assert.equal(oneD(S44, 16).map((x) => x.kind), ["column", "column", "column", "column"]);
});

test("2-D: one loss per row is rebuilt, a 2x2 square is not", () => {
  const single = [at(S44, 0, 1), at(S44, 1, 3), at(S44, 3, 0, 1)];
  assert.equal(recoverable(S44, single, twoD(S44, 32)), { recovered: single.sort((a, b) => a - b), unrecovered: [] });
  const square = [at(S44, 1, 1), at(S44, 1, 2), at(S44, 2, 1), at(S44, 2, 2)];
  assert.equal(recoverable(S44, square, twoD(S44, 16)), { recovered: [], unrecovered: square });
});

test("2-D: a staircase needs seven rounds of row and column recovery", () => {
  const stairs = [[0, 0], [0, 1], [1, 1], [1, 2], [2, 2], [2, 3], [3, 3]].map(([r, c]) => at(S44, r!, c!));
  const result = recoverable(S44, stairs, twoD(S44, 16));
  assert.equal(result.recovered, [...stairs].sort((a, b) => a - b));
  assert.equal(result.unrecovered, []);
  // it unwinds from either end: without row 3's FEC it starts from column 0's...
  const noRow3 = twoD(S44, 16).filter((g) => !(g.kind === "row" && g.base === at(S44, 3, 0)));
  assert.equal(recoverable(S44, stairs, noRow3).unrecovered, []);
  // ...and without both ends it never starts
  const noEnds = noRow3.filter((g) => !(g.kind === "column" && g.base === 0));
  assert.equal(recoverable(S44, stairs, noEnds).recovered, []);
});

test("1-D: one loss per column is rebuilt, two in a column are not", () => {
  const shape = { columns: 10, rows: 5 };
  const row = Array.from({ length: 10 }, (_, c) => at(shape, 2, c)); // a burst of L: one per column
  assert.equal(recoverable(shape, row, oneD(shape, 50)).unrecovered, []);
  const column = [at(shape, 1, 4), at(shape, 3, 4)];
  assert.equal(recoverable(shape, column, oneD(shape, 50)), { recovered: [], unrecovered: column });
});

test("2-D non-square: a whole row or a whole column is rebuilt", () => {
  for (const shape of [{ columns: 10, rows: 5 }, { columns: 5, rows: 10 }, { columns: 20, rows: 5 }]) {
    const row = Array.from({ length: shape.columns }, (_, c) => at(shape, 1, c));
    const column = Array.from({ length: shape.rows }, (_, r) => at(shape, r, 3));
    const groups = twoD(shape, shape.columns * shape.rows);
    assert.equal(recoverable(shape, row, groups).unrecovered, [], `${shape.columns}x${shape.rows} row`);
    assert.equal(recoverable(shape, column, groups).unrecovered, [], `${shape.columns}x${shape.rows} column`);
  }
});

test("lost FEC: a packet is rebuilt by the other dimension, and not when both its FEC packets are gone", () => {
  const lost = [at(S44, 2, 1)];
  const all = twoD(S44, 16);
  const withoutRow = all.filter((g) => !(g.kind === "row" && g.base === at(S44, 2, 0)));
  assert.equal(recoverable(S44, lost, withoutRow).recovered, lost);
  const withoutBoth = withoutRow.filter((g) => !(g.kind === "column" && g.base === 1));
  assert.equal(recoverable(S44, lost, withoutBoth), { recovered: [], unrecovered: lost });
});

test("groups need not start at 0, and duplicates count once", () => {
  // a matrix starting at index 5 (an encoder that started mid-stream)
  const groups: FecGroup[] = [{ kind: "row", base: 5 }, { kind: "row", base: 5 }, { kind: "column", base: 6 }];
  assert.equal(recoverable(S44, [7, 10], groups), { recovered: [7, 10], unrecovered: [] });
});

test("a matrix shape below 1x1 is refused", () => {
  assert.throws(() => recoverable({ columns: 0, rows: 4 }, [], []), /L and D must be at least 1/);
});

test("random patterns agree with the fixed-point definition", () => {
  let seed = 12345;
  const next = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32); // a plain LCG: test input only
  for (const shape of [S44, { columns: 10, rows: 5 }, { columns: 5, rows: 10 }, { columns: 1, rows: 4 }]) {
    for (let round = 0; round < 60; round++) {
      const count = 3 * shape.columns * shape.rows;
      const lost = Array.from({ length: count }, (_, i) => i).filter(() => next() < 0.15);
      const groups = twoD(shape, count).filter(() => next() > 0.1);
      // the definition: apply any group that misses exactly one packet until none does
      const missing = new Set(lost);
      for (let changed = true; changed;) {
        changed = false;
        for (const g of groups) {
          const gone = groupMembers(shape, g).filter((i) => missing.has(i));
          if (gone.length === 1) {
            missing.delete(gone[0]!);
            changed = true;
          }
        }
      }
      const result = recoverable(shape, lost, groups);
      assert.equal(result.unrecovered, [...missing].sort((a, b) => a - b));
      assert.equal(result.recovered, lost.filter((i) => !missing.has(i)));
    }
  }
});

test.run();
