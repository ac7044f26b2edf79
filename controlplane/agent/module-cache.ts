// The proxy's cache of filter modules: `<stateDir>/modules/<sha256>.wasm`, filled from the control
// plane's FetchFilter. A file is only ever written whole (temporary file, then rename) and only
// after its bytes hash to the digest it is named by; a cached file that no longer does is fetched
// again (cached files are hashed again on every use: modules are small and snapshots rare).
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { sha256Hex } from "../../runtime/index.js";
import type { FilterModule, FilterRef } from "../api/proto.js";

/** Fetches a module's bytes by digest (FetchFilter on the current connection). */
export type ModuleFetcher = (sha256: string) => Promise<FilterModule>;

export class ModuleCache {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, "modules");
  }

  pathOf(sha256: string): string {
    return join(this.dir, `${sha256.toLowerCase()}.wasm`);
  }

  /** Makes sure the module is on disk; returns true if it had to be fetched. Throws with a message naming the filter. */
  async ensure(ref: FilterRef, fetch: ModuleFetcher): Promise<boolean> {
    const sha256 = ref.sha256.toLowerCase();
    const path = this.pathOf(sha256);
    try {
      if (sha256Hex(await readFile(path)) === sha256) return false;
      await rm(path, { force: true }); // damaged: fetch it again
    } catch {
      // not cached yet
    }
    let module: FilterModule;
    try {
      module = await fetch(sha256);
    } catch (err) {
      throw new Error(`cannot fetch module sha256:${sha256}: ${(err as Error).message}`);
    }
    const got = sha256Hex(module.wasm);
    if (got !== sha256) throw new Error(`fetched module does not match its digest: asked for sha256:${sha256}, got sha256:${got}`);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
    try {
      await writeFile(tmp, module.wasm, { mode: 0o600 });
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw new Error(`cannot store module sha256:${sha256} in ${this.dir}: ${(err as Error).message}`);
    }
    return true;
  }
}
