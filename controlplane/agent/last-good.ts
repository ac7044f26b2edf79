// `<stateDir>/last-good.json`: the last snapshot the proxy applied and the config it ran, written
// durably (runtime/durable-file.ts) after every applied snapshot. A proxy that restarts
// while no control plane answers starts from it. It holds whatever keys the snapshot holds, so it
// is written 0600 in a 0700 directory.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Snapshot } from "../api/proto.js";
import { parseErrorText, writeFileDurably, type ProxyConfigInput } from "../../runtime/index.js";
import type { NotRunning } from "./types.js";

export const LAST_GOOD_FORMAT = 1;

export interface LastGood {
  readonly format: typeof LAST_GOOD_FORMAT;
  readonly nodeId: string;
  readonly version: number;
  readonly savedAtMs: number;
  readonly snapshot: Snapshot;
  /** The config it ran; module paths are relative to the state directory. */
  readonly config: ProxyConfigInput;
  /** Segments of the snapshot that did not run (refused, or a port taken), and why. */
  readonly notRunning?: NotRunning;
}

export function lastGoodPath(stateDir: string): string {
  return join(stateDir, "last-good.json");
}

export async function writeLastGood(stateDir: string, record: LastGood): Promise<void> {
  // it may hold keys: this user only, from the first byte
  await writeFileDurably(lastGoodPath(stateDir), `${JSON.stringify(record, null, 2)}\n`, 0o600);
}

/** The saved record, or undefined when there is none. Throws when it exists but cannot be used. */
export async function readLastGood(stateDir: string): Promise<LastGood | undefined> {
  const path = lastGoodPath(stateDir);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`${path}: cannot read: ${(err as Error).message}`);
  }
  let record: Partial<LastGood>;
  try {
    record = JSON.parse(text) as Partial<LastGood>;
  } catch (err) {
    throw new Error(`${path}: not valid JSON: ${parseErrorText(err)}`);
  }
  if (record.format !== LAST_GOOD_FORMAT) throw new Error(`${path}: format ${String(record.format)}, this agent reads format ${LAST_GOOD_FORMAT}`);
  if (typeof record.version !== "number" || typeof record.config !== "object" || record.config === null || typeof record.snapshot !== "object") {
    throw new Error(`${path}: version, snapshot or config missing`);
  }
  return record as LastGood;
}
