// Loading one of the project's N-API addons (runtime/native, built by `npm install`): the module,
// or null with one line that says why and how to build it. Each addon checks its own build (a
// stale one, from an older source, would misread what it is given).
import { createRequire } from "node:module";

export interface LoadedAddon<T> {
  readonly addon: T | null;
  /** Why `addon` is null ("" when it loaded). */
  readonly error: string;
}

/**
 * Requires the addon at `path`; `what` names it in messages ("the batched-I/O addon"); `check`
 * returns "" for a usable build or why it is not.
 */
export function loadNativeAddon<T>(path: string, what: string, check: (addon: T) => string): LoadedAddon<T> {
  let addon: T;
  try {
    addon = createRequire(import.meta.url)(path) as T;
  } catch (err) {
    return { addon: null, error: `${what} did not load (${(err as Error).message.split("\n")[0]}); build it with \`node scripts/build-native.mjs\`` };
  }
  const why = check(addon);
  return why === "" ? { addon, error: "" } : { addon: null, error: why };
}
