// Reading a file no further than a limit: what a config names may be a pipe, /dev/zero or a file
// of gigabytes, and a whole read took that much memory (or never ended) in the running proxy.
import { open, type FileHandle } from "node:fs/promises";

/** Bytes read at a time: a small file takes one read. */
const READ_CHUNK = 64 << 10;

/** The file's bytes, or null once it holds more than `limit` (read no further). */
export async function readBounded(path: string, limit: number): Promise<Buffer | null> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, "r");
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(READ_CHUNK);
      const { bytesRead } = await handle.read(chunk, 0, READ_CHUNK, null);
      if (bytesRead === 0) return Buffer.concat(chunks, total);
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > limit) return null;
    }
  } finally {
    await handle?.close().catch(() => {});
  }
}
