// Replacing a file so that a crash at any moment finds the old one or the new one, whole: a
// temporary file written and synced, renamed over the old one, and the directory synced (the
// rename itself survives a power cut only then). Created with `mode` from the first byte: the
// files written so (the stateFile, an agent's last-good.json) may say more than their readers should.
import { mkdir, open, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";

/** `beforeRename`: a last check, after the data is synced (which can take long): throwing leaves the old file in place. */
export async function writeFileDurably(path: string, text: string, mode = 0o600, beforeRename?: () => void): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 }); // a directory of its own, made at the first write
  const tmp = `${path}.${process.pid}.tmp`;
  const file = await open(tmp, "w", mode);
  try {
    await file.writeFile(text);
    await file.sync();
  } catch (err) {
    await file.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await file.close();
  try {
    beforeRename?.();
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await rename(tmp, path);
  const dir = await open(dirname(path), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
