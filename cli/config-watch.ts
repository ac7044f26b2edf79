// Reload triggers for `msm proxy --config FILE`. Editors save by writing a new file and renaming
// it over the old one, and a Kubernetes ConfigMap volume swaps a `..data` symlink: a watch on the
// file itself stops after the first such save. So the folders are watched (the config's, and
// each filter module's), and a change counts only when what the proxy runs would differ: the
// config's text or a module's bytes (a .wasm rebuilt at the same path).
import { createHash } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { MAX_MODULE_FILE_BYTES, type ProxyConfig } from "../runtime/index.js";

/**
 * A digest of the config file's text and of every filter module it names (a path that is no
 * regular file: by its kind). `text`: the config's text as read for validation, or why it could
 * not be read; taken as given, not read again (the file may since hold a newer edit, which must
 * not count as tried).
 */
export async function configFingerprint(file: string, text: string | Error, config: ProxyConfig): Promise<string> {
  const hash = createHash("sha256");
  hash.update(file).update("\0").update(typeof text === "string" ? `text: ${text}` : `unreadable: ${text.message}`).update("\0");
  for (const path of Object.values(config.filters).map((f) => f.path)) {
    hash.update(path).update("\0");
    try {
      // only a regular file's bytes: reading a FIFO or a device here would wait on whatever feeds
      // it (and take what the proxy was to read)
      const info = await stat(path);
      if (!info.isFile()) hash.update(`not a regular file: ${info.mode.toString(8)}`);
      // past the size a module may have, the load refuses it unread: so is it here, by size and time
      // (read whole, a file of gigabytes took that much memory at every change in its folder)
      else if (info.size > MAX_MODULE_FILE_BYTES) hash.update(`too large: ${info.size} bytes, changed ${info.mtimeMs}`);
      else hash.update(await readFile(path));
    } catch (err) {
      hash.update(`unreadable: ${(err as NodeJS.ErrnoException).code}`);
    }
    hash.update("\0");
  }
  return hash.digest("hex");
}

/**
 * Watches the folders of the config file and of its filters; calls `changed` (debounced) on an
 * event that may concern them. Other files in those folders (a log, a capture beside the config)
 * are not looked at, and a burst of events that never pauses still calls `changed` every
 * `maxWaitMs`: a debounce that only restarts would wait for the writes to stop.
 */
export class ConfigWatch {
  private watchers = new Map<string, FSWatcher>();
  private debounce: NodeJS.Timeout | undefined;
  /** When the first event not yet passed on came (0: none waits). */
  private firstPendingMs = 0;
  /** File names whose events count: the config's, the modules', and a ConfigMap's `..data` swap (any `..` name). */
  private names = new Set<string>();

  constructor(private readonly file: string, private readonly changed: () => void, private readonly debounceMs = 200, private readonly maxWaitMs = 1000) {}

  /** Watches the folders `config` needs (call again after each reload: filters may have moved). */
  follow(config: ProxyConfig): void {
    const paths = [resolve(this.file), ...Object.values(config.filters).map((f) => resolve(f.path))];
    this.names = new Set(paths.map((p) => basename(p)));
    const dirs = new Set(paths.map((p) => dirname(p)));
    for (const [dir, w] of this.watchers) {
      if (dirs.has(dir)) continue;
      w.close();
      this.watchers.delete(dir);
    }
    for (const dir of dirs) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, (_event, name) => {
          if (this.concerns(name)) this.poke();
        });
        w.on("error", () => this.watchers.delete(dir)); // the folder went away; SIGHUP still reloads
        this.watchers.set(dir, w);
      } catch {
        // a folder that cannot be watched: SIGHUP still reloads
      }
    }
  }

  close(): void {
    clearTimeout(this.debounce);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /** A name the platform did not give may be anything: it counts. */
  private concerns(name: string | Buffer | null): boolean {
    if (name === null) return true;
    const text = name.toString();
    return this.names.has(text) || text.startsWith("..");
  }

  private poke(): void {
    const now = Date.now();
    if (this.firstPendingMs === 0) this.firstPendingMs = now;
    clearTimeout(this.debounce);
    const wait = Math.max(0, Math.min(this.debounceMs, this.firstPendingMs + this.maxWaitMs - now));
    this.debounce = setTimeout(() => {
      this.firstPendingMs = 0;
      this.changed();
    }, wait);
  }
}
