// An HTTP body written a piece at a time as its client takes it (/stats and /metrics: tens of MB
// at 10,000 segments), without holding the event loop from start to end.
import type { ServerResponse } from "node:http";
import { setImmediate as nextTurn } from "node:timers/promises";

/** Bytes gathered before a write: large enough that a write is not per segment, small beside the body. */
export const WRITE_CHUNK = 64 * 1024;

/**
 * A client that takes nothing of a body for this long is dropped, as nginx's send_timeout does:
 * its response holds the round's snapshot (tens of MB at 10,000 segments) until it ends.
 */
export const WRITE_STALL_MS = 60_000;

/**
 * Writes `first`, then the rest of the pieces, as the client takes them: what waits is at most a
 * chunk, not the whole body. After each chunk the loop takes its turn: a loopback client takes a
 * write at once, its drain comes before the loop's next turn, and a /metrics of 10,000 segments
 * (43 MB) held /healthz for 3.5 s without it.
 */
export async function writePieces(res: ServerResponse, first: IteratorResult<string>, rest: Iterator<string>, stallMs = WRITE_STALL_MS): Promise<void> {
  let chunk = "";
  for (let piece = first; !piece.done; piece = rest.next()) {
    chunk += piece.value;
    if (chunk.length < WRITE_CHUNK) continue;
    const room = res.write(chunk);
    chunk = "";
    if (!room && !(await drained(res, stallMs))) return; // the client went away, or took nothing for stallMs
    await nextTurn();
    if (res.destroyed) return;
  }
  res.end(chunk);
}

/** True once the response can take more; false if its connection closed first, or was dropped after `stallMs` without room. */
function drained(res: ServerResponse, stallMs: number): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean) => (): void => {
      clearTimeout(stall);
      res.off("drain", onDrain);
      res.off("close", onClose);
      resolve(ok);
    };
    const onDrain = done(true);
    const onClose = done(false);
    const stall = setTimeout(() => {
      onClose();
      res.destroy();
    }, stallMs);
    res.once("drain", onDrain);
    res.once("close", onClose);
  });
}
