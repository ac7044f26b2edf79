// This replica's copy of the desired state: listed once, then kept current by a watch of the
// store, so that a change applied on any replica reaches the proxies connected to this one.
// When the watch fails (its revision compacted away, the store unreachable for long), the state
// is listed again and the watch reopened from there.
import { DESIRED } from "./keys.js";
import { DesiredState } from "./state.js";
import type { Store, Watcher } from "../store/index.js";

export class DesiredMirror {
  state = new DesiredState();
  /** The state was listed at least once: before that it is empty, not the desired state, and no proxy may be sent it. */
  loaded = false;
  private watcher: Watcher | undefined;
  private closed = false;
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    /** Called after the state moved to a new revision (never concurrently with itself). */
    private readonly onChange: (state: DesiredState) => void,
    private readonly log: (message: string) => void,
  ) {}

  async start(): Promise<void> {
    const listing = await this.store.list(DESIRED);
    if (this.closed) return;
    this.state = DesiredState.from(listing.items, listing.revision);
    this.loaded = true;
    for (const key of this.state.malformed) this.log(`ignoring ${key}: its value is not what this version writes`);
    this.watcher = this.store.watch(DESIRED, {
      fromRevision: listing.revision + 1,
      onEvents: (batch) => {
        for (const e of batch.events) {
          if (e.type === "put") {
            const bad = this.state.put({ key: e.key, value: e.value, createRevision: 0, modRevision: e.modRevision, version: 0 });
            if (bad) this.log(`ignoring ${bad}: its value is not what this version writes`);
          } else this.state.delete(e.key);
        }
        this.state.revision = batch.revision;
        this.onChange(this.state);
      },
      onStall: (why) => this.log(`store watch stalled: ${why}`),
      onError: (err) => {
        if (this.closed) return;
        this.log(`store watch failed (${err.message}); listing the desired state again`);
        this.resync(500);
      },
    });
  }

  /**
   * Starts, or, when the store does not answer (etcd down when the replica starts), goes on without
   * the state and lists it again until it does; `onChange` then hears the first state.
   */
  async begin(): Promise<void> {
    try {
      await this.start();
    } catch (err) {
      if (this.closed) return;
      this.log(`listing the desired state failed (${(err as Error).message}): serving without it, NOT_SERVING, no snapshot sent, until the store answers; retrying`);
      this.resync(500);
    }
  }

  private resync(delayMs: number): void {
    this.watcher?.close();
    this.watcher = undefined;
    this.resyncTimer = setTimeout(() => {
      this.start().then(
        () => this.onChange(this.state),
        (err: Error) => {
          if (this.closed) return;
          this.log(`listing the desired state failed (${err.message}); retrying`);
          this.resync(Math.min(delayMs * 2, 10_000));
        },
      );
    }, delayMs);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.resyncTimer);
    this.watcher?.close();
  }
}
