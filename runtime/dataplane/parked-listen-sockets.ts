// The listen sockets worker threads leave parked in the batched-I/O addon (msm_udp.c, "Listen
// sockets a worker thread leaves bound"), from the main thread's side: which ended workers may
// still have some, and when what no worker claimed is closed. Under Node the workers are threads
// sharing the descriptors and park them as they end; under Bun they are processes, and the proxy
// holds duplicates they send it (msm_udp.c, "Listen sockets a worker process keeps"), parked
// under each worker's number from the start. Without batched I/O every call here does nothing.
import { listenPlaces } from "./segment-sockets.js";
import { loadAddon, releaseParkedExcept, type IoPlan, type UdpAddon } from "./batched-io.js";
import type { WorkerHandle } from "./worker-handle.js";
import type { SegmentConfig } from "../config/proxy-config.js";

export class ParkedListenSockets {
  /** Workers that ended (or were killed) and whose parked listen sockets nothing has released yet. */
  private readonly ended = new Set<WorkerHandle>();
  /** Per worker place, ended workers whose sockets wait for a replacement that serves (restartDone). */
  private readonly leftBehind = new Map<number, WorkerHandle[]>();

  constructor(private readonly io: IoPlan) {}

  /** Whether a worker's listen sockets outlive it (batched I/O: a thread's, WorkerHandle.keepOwner; a process's, WorkerHandle.sharesKept). */
  keeps(worker: WorkerHandle): boolean {
    return worker.keepOwner >= 0 && this.io.send === "native" && (this.io.watch === "loop" || worker.sharesKept);
  }

  /**
   * Before a worker process prepares or opens `segments`: hands it what ended workers (and those
   * left behind) left, and what `live` workers (itself too) handed over in this change, at places
   * those segments listen on, for it to claim as a thread claims what another thread parked. A
   * worker thread finds them in the table all threads share.
   */
  async handTo(worker: WorkerHandle, segments: readonly SegmentConfig[], live: readonly WorkerHandle[]): Promise<void> {
    if (!worker.sharesKept || !this.keeps(worker)) return;
    const addon = loadAddon();
    if (!addon) return;
    const wanted = new Set(segments.flatMap(listenPlaces));
    const ended = new Set([...this.ended, ...[...this.leftBehind.values()].flat()].filter((w) => w !== worker && this.keeps(w)));
    for (const owner of ended) {
      const all = addon.parkedPlaces(owner.keepOwner);
      const places = all.filter((p) => wanted.has(p));
      // all of them (a restart's own): one pass; else place by place (a segment moved off a crashed worker)
      if (places.length > 0 && places.length === all.length) await worker.handOver(owner.keepOwner, "", false);
      else for (const place of places) await worker.handOver(owner.keepOwner, place, false);
    }
    // a live worker's other copies are of sockets it still reads: only what it handed over moves
    for (const owner of live) {
      if (ended.has(owner) || !owner.alive || !this.keeps(owner)) continue;
      for (const place of addon.parkedPlaces(owner.keepOwner, true)) if (wanted.has(place)) await worker.handOver(owner.keepOwner, place, true);
    }
  }

  /** A worker ended (its exit seen): it may have parked sockets. */
  workerEnded(worker: WorkerHandle): void {
    this.ended.add(worker);
  }

  /**
   * Closes what a worker parked that nobody claimed: segments no longer there, a restart that
   * failed, a close. `handedOnly`: what it handed over (a move, new sockets), not what its thread's
   * end parked (a worker that crashed just now, its exit not seen yet, leaves those to its replacement).
   */
  release(worker: WorkerHandle, handedOnly = false): void {
    if (!handedOnly) this.ended.delete(worker);
    if (this.keeps(worker)) loadAddon()?.releaseParked(worker.keepOwner, handedOnly);
  }

  /** At the proxy's close, after every worker ended: all of it. */
  releaseAll(workers: readonly WorkerHandle[]): void {
    for (const w of [...workers, ...this.ended]) this.release(w);
    for (const left of this.leftBehind.values()) for (const w of left) this.release(w);
    this.leftBehind.clear();
  }

  /**
   * A restart of worker place `index` that replaced `old` is done: what `old` (and the workers
   * before it that a replacement dying early left behind) parked is released if the replacement
   * serves, else left to the next restart of that place.
   */
  restartDone(index: number, old: WorkerHandle, serves: boolean): void {
    const left = [old, ...(this.leftBehind.get(index) ?? [])];
    this.leftBehind.delete(index);
    if (!serves) this.leftBehind.set(index, left);
    else for (const w of left) this.release(w);
  }

  /**
   * Before a change's open step: what `ended` workers (the watchdog's, a crash during the change)
   * and those left behind parked at places `segments` no longer listen on is closed, once they are
   * gone; another worker may bind those ports at an overlapping address (0.0.0.0 against
   * 127.0.0.1), as it could when their sockets closed with the thread. The others wait for a claim.
   */
  async releaseEndedExcept(ended: readonly WorkerHandle[], segments: readonly SegmentConfig[]): Promise<void> {
    const workers = [...ended, ...[...this.leftBehind.values()].flat()].filter((w) => this.keeps(w));
    const addon = workers.length > 0 ? loadAddon() : null;
    if (!addon) return;
    await Promise.all(workers.map((w) => w.whenGone()));
    closeUnwanted(addon, workers, segments);
  }

  /**
   * After the commit and every worker's release: what live workers parked at the commit (a
   * segment that moves, or gets new sockets) at places `segments` no longer listen on is closed
   * before any open step binds (a worker's own open step would be too late for another worker's).
   */
  releaseLiveExcept(live: readonly WorkerHandle[], segments: readonly SegmentConfig[]): void {
    const workers = live.filter((w) => w.alive && this.keeps(w));
    const addon = workers.length > 0 ? loadAddon() : null;
    if (addon) closeUnwanted(addon, workers, segments);
  }
}

function closeUnwanted(addon: UdpAddon, workers: readonly WorkerHandle[], segments: readonly SegmentConfig[]): void {
  const wanted = new Set(segments.flatMap(listenPlaces));
  for (const w of workers) releaseParkedExcept(addon, w.keepOwner, wanted);
}
