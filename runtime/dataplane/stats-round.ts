// A worker's once-a-second round of counters (and states, when a checkpoint is due), taken and
// sent a part at a time. In one go, over 5,000 segments it held the worker's packet loop for
// 100-280 ms each second (building the snapshots, exporting the states, then cloning them into one
// message): every stream of the worker stalled that long. Between parts the loop runs, so a
// packet waits for one part at most.
import { setImmediate as nextTurn } from "node:timers/promises";
import type { StateCheckpoint } from "./dataplane.js";
import type { SegmentSnapshot } from "./snapshot.js";

export interface RoundPart {
  segments: SegmentSnapshot[];
  checkpoints: StateCheckpoint[];
}

/** What a round is taken from (DataPlane). */
export interface RoundSource<Segment> {
  beginRound(streams: boolean, checkpoint: boolean): Segment[];
  roundSlice(segs: readonly Segment[], streams: boolean, checkpoint: boolean): RoundPart;
}

/** How long one part may hold the packet loop, taking it and sending it. */
const PART_MS = 2;
/** Segments in the first part; later parts are sized by how long the ones before took. */
const FIRST_PART = 32;
const MAX_PART = 4096;

/**
 * Takes a round over the segments running at its start: every part but the last goes to `send`
 * as it is taken; the last is returned (it goes with the reply). The caller keeps changes to
 * which segments run (commit, open, close) from interleaving with it. A `send` that returns a
 * promise holds the next part until it settles (the main thread's flow control).
 */
export async function takeRound<Segment>(plane: RoundSource<Segment>, streams: boolean, checkpoint: boolean, send: (part: RoundPart) => void | Promise<void>): Promise<RoundPart> {
  const segs = plane.beginRound(streams, checkpoint);
  let size = FIRST_PART;
  let from = 0;
  for (;;) {
    const started = performance.now();
    const to = Math.min(segs.length, from + size);
    const part = plane.roundSlice(segs.slice(from, to), streams, checkpoint);
    if (to >= segs.length) return part;
    const sent = send(part);
    from = to;
    const tookMs = performance.now() - started;
    // aim at PART_MS, growing at most twofold: one cheap part must not make the next a long one
    size = Math.max(1, Math.min(MAX_PART, 2 * size, Math.floor((size * PART_MS) / Math.max(tookMs, 0.01))));
    await nextTurn(); // the packets that came meanwhile go first
    await sent;
  }
}
