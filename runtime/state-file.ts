// The proxy's stateFile: every stage's last state blob on disk, so that a restarted proxy process
// carries what a restarted worker carries (srtp's send windows and SRTCP indexes: without them a
// stage under the same key would encrypt indexes a second time, RFC 3711 section 9.1). Written
// durably (durable-file.ts), 0600: the blobs hold no keys, but they say which sources a segment saw.
import { readdir, readFile, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { writeFileDurably } from "./durable-file.js";
import type { StateCheckpoint } from "./dataplane/dataplane.js";

export const STATE_FILE_FORMAT = 1;

interface StateFileRecord {
  readonly format: typeof STATE_FILE_FORMAT;
  readonly savedAtMs: number;
  readonly stages: readonly StateCheckpoint[];
}

/** A state file that exists but cannot be used: the proxy does not start from nothing in its place. */
export class StateFileError extends Error {
  override readonly name = "StateFileError";
}

/** What a start without the file's states would do, and how to choose it knowingly. */
const FRESH_START_ADVICE =
  "starting without it would restart every stage's state (srtp would protect from ROC 0 and SRTCP index 0 again under keys it already used); " +
  "to start fresh on purpose, give every srtp stage new keys and delete the file";

/** The saved states, [] when the file does not exist yet. Throws StateFileError when it exists but cannot be read. */
export async function readStateFile(path: string): Promise<StateCheckpoint[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new StateFileError(`stateFile ${path}: cannot read it: ${(err as Error).message}; ${FRESH_START_ADVICE}`);
  }
  let record: Partial<StateFileRecord>;
  try {
    record = JSON.parse(text) as Partial<StateFileRecord>;
  } catch (err) {
    throw new StateFileError(`stateFile ${path}: not valid JSON (${(err as Error).message}); ${FRESH_START_ADVICE}`);
  }
  if (record === null || typeof record !== "object" || record.format !== STATE_FILE_FORMAT) {
    throw new StateFileError(`stateFile ${path}: format ${String((record as { format?: unknown } | null)?.format)}, this proxy reads format ${STATE_FILE_FORMAT}; ${FRESH_START_ADVICE}`);
  }
  const stages = record.stages;
  if (!Array.isArray(stages) || !stages.every(isCheckpoint)) {
    throw new StateFileError(`stateFile ${path}: 'stages' is not a list of {segment, filter, state}; ${FRESH_START_ADVICE}`);
  }
  return stages;
}

function isCheckpoint(c: unknown): c is StateCheckpoint {
  if (c === null || typeof c !== "object") return false;
  const { segment, filter, family, state } = c as Record<string, unknown>;
  return typeof segment === "string" && typeof filter === "string" && typeof state === "string" && (family === undefined || typeof family === "string");
}

/** Replaces the file with `stages`, durably: once this resolves, a crash finds them. `beforeRename`: as writeFileDurably's. */
export async function writeStateFile(path: string, stages: readonly StateCheckpoint[], beforeRename?: () => void): Promise<void> {
  const record: StateFileRecord = { format: STATE_FILE_FORMAT, savedAtMs: Date.now(), stages };
  await writeFileDurably(path, `${JSON.stringify(record)}\n`, 0o600, beforeRename);
}

/**
 * Removes what writes killed midway left beside the file (writeFileDurably's `<file>.<pid>.tmp`):
 * one per crash during a write, never read. Only by the holder of the file's lock.
 */
export async function removeLeftoverTemporaries(path: string): Promise<void> {
  const prefix = `${basename(path)}.`;
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return; // no directory yet: nothing left over
  }
  const leftovers = names.filter((n) => n.startsWith(prefix) && /^\d+\.tmp$/.test(n.slice(prefix.length)));
  await Promise.all(leftovers.map((n) => rm(join(dirname(path), n), { force: true })));
}
