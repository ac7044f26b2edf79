// Orders that respect "stored no later than": the parts of a graph that must go together (its
// strongly connected components), and an order that puts each node's dependencies before it.
// Iterative, so that a chain of thousands of segments does not overflow the stack.

/** Each node's component: nodes that reach each other through `needs` share one. Components are numbered from 0. */
export function components(needs: readonly (readonly number[])[]): number[] {
  const n = needs.length;
  const index = new Array<number>(n).fill(-1);
  const low = new Array<number>(n).fill(0);
  const onStack = new Array<boolean>(n).fill(false);
  const component = new Array<number>(n).fill(-1);
  const stack: number[] = [];
  let next = 0;
  let count = 0;
  const visit = (v: number): void => {
    index[v] = low[v] = next++;
    stack.push(v);
    onStack[v] = true;
  };
  for (let root = 0; root < n; root++) {
    if (index[root] !== -1) continue;
    visit(root);
    const work: [number, number][] = [[root, 0]];
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const [v, i] = top;
      const out = needs[v]!;
      if (i < out.length) {
        top[1]++;
        const w = out[i]!;
        if (index[w] === -1) {
          visit(w);
          work.push([w, 0]);
        } else if (onStack[w]) low[v] = Math.min(low[v]!, index[w]!);
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1]![0];
        low[parent] = Math.min(low[parent]!, low[v]!);
      }
      if (low[v] === index[v]) {
        let w: number;
        do {
          w = stack.pop()!;
          onStack[w] = false;
          component[w] = count;
        } while (w !== v);
        count++;
      }
    }
  }
  return component;
}

/**
 * The nodes of an acyclic `needs` in `preferred` order, except that each node's dependencies come
 * before it (pulled forward, in preferred order, as late as they can be).
 */
export function dependenciesFirst(preferred: readonly number[], needs: readonly (readonly number[])[]): number[] {
  const rank = new Map(preferred.map((v, i) => [v, i]));
  const byRank = (a: number, b: number): number => rank.get(a)! - rank.get(b)!;
  const placed = new Set<number>();
  const out: number[] = [];
  for (const start of preferred) {
    if (placed.has(start)) continue;
    placed.add(start);
    const work: [number, readonly number[], number][] = [[start, [...needs[start]!].sort(byRank), 0]];
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const [v, deps, i] = top;
      if (i < deps.length) {
        top[2]++;
        const w = deps[i]!;
        if (!placed.has(w)) {
          placed.add(w);
          work.push([w, [...needs[w]!].sort(byRank), 0]);
        }
        continue;
      }
      work.pop();
      out.push(v);
    }
  }
  return out;
}
