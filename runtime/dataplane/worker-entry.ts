// Entry point of a data-plane worker. Under Node it runs as a worker thread; under Bun, whose
// worker threads cannot be terminated while inside WebAssembly, as a child process. Either way it
// answers the same messages (see WorkerRequest in worker-protocol.ts).
import { rmSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { DataPlane, type SegmentError } from "./dataplane.js";
import { stopReadingOf } from "./batched-io.js";
import { WatchdogBeacon } from "./watchdog-beacon.js";
import { takeRound } from "./stats-round.js";
import type { SegmentSnapshot } from "./snapshot.js";
import { PARTS_IN_FLIGHT, type WorkerInit, type WorkerReply, type WorkerRequest } from "./worker-protocol.js";

type Send = (message: WorkerReply) => void;

function openBeacon(init: WorkerInit): WatchdogBeacon | undefined {
  if (init.beacon instanceof SharedArrayBuffer) return new WatchdogBeacon(init.beacon);
  if (typeof init.beaconFile === "string") {
    const bun = (globalThis as { Bun?: { mmap(path: string): Uint8Array } }).Bun;
    if (bun) return new WatchdogBeacon(bun.mmap(init.beaconFile));
  }
  return undefined;
}

function serve(init: WorkerInit, send: Send, onMessage: (handler: (m: WorkerRequest) => void) => void, exit: () => void): void {
  const plane = new DataPlane({
    batchSize: init.batchSize,
    io: init.io,
    socketReceiveBuffer: init.socketReceiveBuffer,
    streams: init.streams,
    beacon: openBeacon(init),
    ...(init.keepOwner !== undefined ? { keepOwner: init.keepOwner } : {}),
    ...(init.keepChannel !== undefined ? { keepChannel: init.keepChannel } : {}),
    onEvent: (event) => send({ type: "event", event }),
  });
  // a stats round is taken in parts, the loop running between them: a change of which segments run
  // (commit, open, close) waits for the round under way, and rounds follow one another, so that a
  // round's parts hold the segments of one moment. A round asked for during a change waits for it
  // in turn: the open step can take turns of the loop (a removed segment's last sends, a multicast
  // join), and a round begun then would answer after the open with the segments of before it (the
  // main thread's lastSegments, what a restart carries on from, without the ones it started)
  let round: Promise<unknown> = Promise.resolve();
  // parts sent and not yet taken by the main thread (worker-protocol.ts, "partTaken"), and the send waiting for room
  let partsInFlight = 0;
  let room: (() => void) | undefined;
  const sendPart = (part: Extract<WorkerReply, { type: "part" }>): Promise<void> | undefined => {
    send(part);
    if (++partsInFlight < PARTS_IN_FLIGHT) return undefined;
    return new Promise<void>((resolve) => (room = resolve));
  };
  /** Takes a round and sends it as parts and then the reply to request `id`, with `reply`'s fields. */
  const sendRound = async (id: number, how: { streams: boolean; checkpoint: boolean; asText: boolean }, reply: { errors: SegmentError[]; reclaimed?: Record<string, number> }): Promise<void> => {
    // as text, the main thread keeps one string a part instead of every snapshot's objects
    const counters = (segments: SegmentSnapshot[]) => (how.asText ? { segments: [], segmentsText: JSON.stringify(segments) } : { segments });
    const last = await takeRound(plane, how.streams, how.checkpoint, (part) => sendPart({ type: "part", id, ...counters(part.segments), checkpoints: part.checkpoints }));
    const { segmentsText, ...rest } = counters(last.segments);
    send({
      type: "reply", id, ...reply, ...rest, ...(segmentsText !== undefined ? { segmentsText: [segmentsText] } : {}),
      instances: plane.instanceMap(), ...(how.checkpoint ? { checkpoints: last.checkpoints } : {}),
    });
  };
  const statsRound = (m: Extract<WorkerRequest, { type: "stats" }>): Promise<void> =>
    sendRound(m.id, { streams: m.streams !== false, checkpoint: m.checkpoint === true, asText: m.asText === true }, { errors: [] });
  onMessage(async (m) => {
    if (m.type === "partTaken") {
      partsInFlight = Math.max(0, partsInFlight - 1);
      room?.();
      room = undefined;
      return;
    }
    let changed: (() => void) | undefined;
    try {
      if (m.type === "stats") {
        const taken = round.then(() => statsRound(m));
        round = taken.catch(() => undefined);
        await taken;
        return;
      }
      if (m.type === "commit" || m.type === "open" || m.type === "close") {
        const before = round;
        round = new Promise<void>((r) => (changed = r));
        await before;
      }
      switch (m.type) {
        case "prepare": {
          const errors = await plane.prepare(m.request);
          send({ type: "reply", id: m.id, errors, ...(errors.length === 0 && m.request.exportPrepared ? { prepared: plane.preparedStates() } : {}) });
          break;
        }
        case "commit": {
          const errors = plane.commit();
          plane.shareKept(); // before the reply: the proxy lets go of closed ports before any worker binds them
          send({ type: "reply", id: m.id, errors, segments: plane.takeRemovedCounts() });
          break;
        }
        case "released":
          await plane.released();
          plane.shareKept();
          send({ type: "reply", id: m.id, errors: [] });
          break;
        case "kept":
          plane.receiveKept();
          send({ type: "reply", id: m.id, errors: [] });
          break;
        case "open": {
          const errors = await plane.open();
          plane.shareKept();
          // the counters the main thread keeps from here on, in parts as a round's (one go held the loop)
          await sendRound(m.id, { streams: false, checkpoint: false, asText: true }, { errors, reclaimed: plane.takeReclaimed() });
          break;
        }
        case "abort":
          plane.abort();
          send({ type: "reply", id: m.id, errors: [] });
          break;
        case "close":
          await plane.close();
          send({ type: "reply", id: m.id, errors: [] });
          exit();
          break;
      }
    } catch (err) {
      send({ type: "reply", id: m.id, errors: [{ segment: "", message: `worker error: ${(err as Error).stack ?? err}` }] });
    } finally {
      changed?.();
    }
  });
  send({ type: "ready" });
}

if (parentPort) {
  const port = parentPort;
  // a crash (an uncaught exception) ends the thread after this: its last loop turn must not read
  // what the listen sockets hold, which the worker that replaces it takes over (docs/proxy.md)
  const init = workerData as WorkerInit;
  process.on("exit", () => stopReadingOf(init.keepOwner ?? -1));
  serve(workerData as WorkerInit, (m) => port.postMessage(m), (h) => port.on("message", h), () => port.close());
} else if (process.send) {
  // child-process mode: the first message is the init
  const send = process.send.bind(process);
  process.once("message", (init: WorkerInit) => {
    serve(init, (m) => send(m), (h) => process.on("message", h), () => process.exit(0));
  });
  // the proxy is gone (killed, so it could not remove the beacon file it made for this worker, the
  // first argument): nothing else would, and every crash of the proxy would leave one per worker in
  // /dev/shm. It may have gone while this process was still loading.
  const beaconFile = process.argv[2];
  const proxyGone = (): never => {
    if (beaconFile?.includes("msm-beacon-")) rmSync(beaconFile, { force: true });
    process.exit(0);
  };
  process.on("disconnect", proxyGone);
  if (!process.connected) proxyGone();
}
