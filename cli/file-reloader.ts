// What `msm proxy --config FILE` does after the start: reloads on SIGHUP or a change of what the
// proxy runs (ConfigWatch), and tries again, backing off, the segments a committed change left
// NOT running (a port taken meanwhile). Reloads and retries run one at a time, in order.
import { ApplyError, ConfigError, parseProxyConfig, readConfigText, type Proxy, type ProxyConfig } from "../runtime/index.js";
import { printable } from "../controlplane/security/terminal.js";
import { applyErrorLines } from "./apply-errors.js";
import { ConfigWatch, configFingerprint } from "./config-watch.js";
import { segmentLine } from "./segment-line.js";

const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;

export class FileReloader {
  private running: ProxyConfig;
  /** The fingerprint of what was last tried: a refused file is not tried again until it changes (a log written into its folder would retry it at every line). */
  private tried: string;
  private queue = Promise.resolve();
  private retryMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly watch: ConfigWatch;
  private readonly fileAdmin: string;

  /**
   * Starts watching. `started`: the config the proxy started with (its admin the endpoint the CLI
   * bound for good), `startedText` the text it was validated from; `fileAdmin`: the file's admin
   * key, which a reload may not change unless --admin (`adminFromFlag`) set the endpoint.
   * `read`: how a reload reads the file (a test changes the file as it is read).
   */
  static async start(
    file: string, proxy: Proxy, started: ProxyConfig, startedText: string, fileAdmin: ProxyConfig["admin"], adminFromFlag: boolean,
    log: (line: string) => void, read: (file: string) => Promise<string> = readConfigText,
  ): Promise<FileReloader> {
    const reloader = new FileReloader(file, proxy, started, fileAdmin, adminFromFlag, log, read, await configFingerprint(file, startedText, started));
    reloader.retryIfNotRunning(); // a proxy started without segments whose port was taken
    return reloader;
  }

  private constructor(
    private readonly file: string,
    private readonly proxy: Proxy,
    started: ProxyConfig,
    fileAdmin: ProxyConfig["admin"],
    private readonly adminFromFlag: boolean,
    private readonly log: (line: string) => void,
    private readonly read: (file: string) => Promise<string>,
    fingerprint: string,
  ) {
    this.running = started;
    this.tried = fingerprint;
    this.fileAdmin = JSON.stringify(fileAdmin ?? null);
    this.watch = new ConfigWatch(file, () => this.reload("file changed", true));
    this.watch.follow(started);
  }

  close(): void {
    clearTimeout(this.retryTimer);
    this.watch.close();
  }

  /**
   * Reloads the file; `onlyIfChanged`: unless what it would run is what was last tried. Queued
   * after any reload under way (a change written during one is read after it). Resolves when done.
   */
  reload(why: string, onlyIfChanged: boolean): Promise<void> {
    this.queue = this.queue.then(async () => {
      // an event that changed nothing (a log written into the config's folder) leaves the retries' back-off be
      if (await this.reloadNow(why, onlyIfChanged)) this.retryIfNotRunning();
    });
    return this.queue;
  }

  /** False when nothing was tried: the file would run what was tried last. */
  private async reloadNow(why: string, onlyIfChanged: boolean): Promise<boolean> {
    let next: ProxyConfig | undefined;
    try {
      // the file is read once: the fingerprint is of the text validated. Read again, it could be a
      // newer edit, written during a long validation, that would count as tried and never reload.
      let text: string | undefined;
      let invalid: unknown;
      try {
        text = await this.read(this.file);
        next = parseProxyConfig(text, this.file);
      } catch (err) {
        invalid = err;
      }
      // a file that does not validate names no modules: its text and the running ones are what changes
      const fingerprint = await configFingerprint(this.file, text ?? (invalid as Error), next ?? this.running);
      if (onlyIfChanged && fingerprint === this.tried) return false;
      this.tried = fingerprint;
      if (!next) throw invalid;
      // the admin endpoint is the CLI's, bound once (--admin overrides the file's for good)
      if (!this.adminFromFlag && JSON.stringify(next.admin ?? null) !== this.fileAdmin) {
        throw new ConfigError([`admin: cannot change from ${this.fileAdmin} to ${JSON.stringify(next.admin ?? null)} while running; restart the proxy`]);
      }
      next.admin = this.running.admin;
      const before = this.running;
      await this.proxy.apply(next);
      this.runs(next);
      this.log(`config reloaded (${why})${await this.segmentsChanged(before, next)}`);
    } catch (err) {
      if (err instanceof ConfigError || (err instanceof ApplyError && !err.committed)) {
        if (err instanceof ConfigError) this.proxy.noteRefusedConfig();
        const what = err instanceof ApplyError ? `\n  ${applyErrorLines(err, next ?? this.running)}` : err.message;
        this.log(`config NOT reloaded (${why}), the running config stays: ${printable(what, { keepNewlines: true })}`);
      } else if (err instanceof ApplyError) {
        // committed: the new config runs, without the segments named
        this.runs(next!);
        this.log(`config reloaded (${why}), but these segments are NOT running:\n  ${printable(applyErrorLines(err, next!), { keepNewlines: true })}`);
      } else {
        // a file that failed to read or validate in a way not foreseen: as refused as any other
        if (!next) this.proxy.noteRefusedConfig();
        this.log(`reload failed${next ? "" : ", the running config stays"}: ${(err as Error).stack ?? err}`);
      }
    }
    return true;
  }

  /** The segments a reload started (with their ports, as at start) and stopped. */
  private async segmentsChanged(before: ProxyConfig, after: ProxyConfig): Promise<string> {
    const had = new Set(before.segments.map((s) => s.name));
    const has = new Set(after.segments.map((s) => s.name));
    const stopped = [...had].filter((name) => !has.has(name));
    // the change is applied: a report that cannot be had costs the ports' line, not the reload's
    const started = (await this.proxy.stats().catch(() => ({ segments: [] }))).segments.filter((s) => !had.has(s.name));
    return `${stopped.length > 0 ? `; stopped: ${stopped.join(", ")}` : ""}${started.map((s) => `\n  started ${segmentLine(s)}`).join("")}`;
  }

  private runs(config: ProxyConfig): void {
    this.running = config;
    this.watch.follow(config);
  }

  private retryIfNotRunning(): void {
    clearTimeout(this.retryTimer);
    const down = this.proxy.segmentsNotRunning;
    if (down.length === 0) {
      this.retryMs = 0;
      return;
    }
    this.retryMs = Math.min(this.retryMs === 0 ? RETRY_FIRST_MS : this.retryMs * 2, RETRY_MAX_MS);
    this.log(`${down.length} segment(s) NOT running (${down.slice(0, 5).join(", ")}${down.length > 5 ? ", ..." : ""}): next try in ${this.retryMs / 1000} s`);
    this.retryTimer = setTimeout(() => this.retry(), this.retryMs);
    this.retryTimer.unref();
  }

  /** The config that runs is applied again (not the file, which may since hold a refused edit). */
  private retry(): void {
    this.queue = this.queue.then(async () => {
      try {
        await this.proxy.apply(this.running);
        this.log("retry: every segment runs");
      } catch (err) {
        if (!(err instanceof ApplyError)) this.log(`retry failed: ${(err as Error).stack ?? err}`);
      }
      this.retryIfNotRunning();
    });
  }
}
