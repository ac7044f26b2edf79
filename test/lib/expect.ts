// Assertions uvu lacks.
import * as assert from "uvu/assert";

/** Awaits `work` and asserts that it rejects with an error of `kind` whose message matches. */
export async function rejects(work: Promise<unknown>, kind: Function, pattern: RegExp): Promise<void> {
  try {
    await work;
  } catch (err) {
    assert.instance(err, kind);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected ${kind.name} matching ${pattern}`);
}
