// Reading a file no further than a limit: what a config names may be a pipe, /dev/zero or a file
// of gigabytes, and a whole read took that much memory (or never ended) in the running proxy.
// Opened without blocking: a FIFO that no program writes to held the open, and with it a thread
// of libuv's pool and the reload, for good. A pipe is still read (`--config <(...)`, or a FIFO a
// program fills), as long as its writer comes and keeps sending.
import { constants } from "node:fs";
import { open, readlink, type FileHandle } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";

/** Bytes read at a time: a small file takes one read. */
const READ_CHUNK = 64 << 10;
/** How long a pipe may go without a writer, or its writer without sending, before the read gives up. */
export const PIPE_QUIET_MS = 10_000;
/** How often a quiet pipe is tried again. */
const PIPE_POLL_MS = 20;

/**
 * The file's bytes, or null once it holds more than `limit` (read no further). Throws when a pipe
 * stays quiet for `quietMs`: no writer came, or it sent nothing more and did not close.
 */
export async function readBounded(path: string, limit: number, quietMs = PIPE_QUIET_MS): Promise<Buffer | null> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const pipe = (await handle.stat()).isFIFO();
    const chunks: Buffer[] = [];
    let total = 0;
    // a FIFO reads as ended both when its writer closed and before one came; an anonymous pipe
    // (`--config <(...)`) had its writer from its birth: its end is the end
    const anonymous = pipe && (await isProcessSubstitution(`/proc/self/fd/${handle.fd}`));
    let writerSeen = false;
    let quietSince = performance.now();
    let chunk = Buffer.allocUnsafe(READ_CHUNK);
    for (;;) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await handle.read(chunk, 0, READ_CHUNK, null));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
        writerSeen = true; // a writer holds it open, with nothing to read yet
        bytesRead = -1;
      }
      if (bytesRead > 0) {
        writerSeen = true;
        quietSince = performance.now();
        chunks.push(chunk.subarray(0, bytesRead));
        chunk = Buffer.allocUnsafe(READ_CHUNK); // the one read into is kept
        total += bytesRead;
        if (total > limit) return null;
        continue;
      }
      // read again (a reload), a process substitution has nothing more: an empty config it is not
      if (bytesRead === 0 && anonymous && total === 0) throw new Error("a pipe that was closed with nothing in it (a process substitution, <(...), holds its text once: it was read before, or nothing was written to it)");
      if (bytesRead === 0 && (!pipe || writerSeen)) return Buffer.concat(chunks, total);
      if (performance.now() - quietSince >= quietMs) {
        throw new Error(writerSeen
          ? `a pipe whose writer sent nothing for ${quietMs / 1000} s and did not close it`
          : `a pipe (FIFO) that nothing was written to for ${quietMs / 1000} s`);
      }
      await sleep(PIPE_POLL_MS);
    }
  } finally {
    await handle?.close().catch(() => {});
  }
}

/**
 * Whether `path` names an anonymous pipe (`/dev/fd/63` of a process substitution, `<(...)`; Linux
 * links it to "pipe:[inode]"), whose text can be read once: not a file or a FIFO in a directory,
 * which a reload reads anew. Without /proc: false, and such a pipe is read as a FIFO.
 */
export async function isProcessSubstitution(path: string): Promise<boolean> {
  try {
    return (await readlink(path)).startsWith("pipe:");
  } catch {
    return false; // not a link (a file, a FIFO), or no /proc
  }
}
