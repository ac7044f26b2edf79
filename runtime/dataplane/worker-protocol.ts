// Messages between the proxy's main thread and its data-plane workers.
import type { IoPlan } from "./batched-io.js";
import type { ApplyRequest, DataPlaneEvent, InstanceUsers, SegmentError, StateCheckpoint } from "./dataplane.js";
import type { SegmentSnapshot } from "./snapshot.js";

export type { InstanceUsers } from "./dataplane.js";

export interface WorkerInit {
  readonly index: number;
  readonly batchSize: number;
  /** How the worker's sockets move packets (planned once by the proxy). */
  readonly io: IoPlan;
  readonly socketReceiveBuffer: number;
  /** Per-stream stats: streams counted one by one (0: none), and how long a silent one is kept. */
  readonly streams: { readonly max: number; readonly maxPerSegment: number; readonly idleMs: number };
  /** Its number among the workers the proxy started, which its kept listen sockets carry (DataPlaneOptions.keepOwner). */
  readonly keepOwner?: number;
  /** Process mode with batched I/O: the descriptor of its end of the channel its listen sockets go to the proxy by (DataPlaneOptions.keepChannel). */
  readonly keepChannel?: number;
  /** Thread mode: the watchdog beacon's memory. */
  readonly beacon?: SharedArrayBuffer;
  /** Process mode (Bun): a file in /dev/shm both sides map. */
  readonly beaconFile?: string;
}

export type WorkerRequest =
  | { type: "prepare"; id: number; request: ApplyRequest }
  | { type: "commit"; id: number }
  | { type: "open"; id: number }
  /** Waits until the sockets of the segments the last commit took out have closed. */
  | { type: "released"; id: number }
  | { type: "abort"; id: number }
  /** Process mode: read the listen sockets the proxy sent (a replacement's predecessor's), as the next prepare would. */
  | { type: "kept"; id: number }
  /**
   * Counters; with `checkpoint`, also every running stage's state. `asText`: the segments' counters
   * come as JSON text (`segmentsText`), for the main thread to keep rather than read.
   */
  | { type: "stats"; id: number; checkpoint?: boolean; streams?: boolean; asText?: boolean }
  /**
   * The main thread took a part of round `id` (no reply). A worker sends at most PARTS_IN_FLIGHT
   * parts ahead of these: the main thread reads every message queued on a port before its loop
   * turns, so parts sent as fast as they were taken held its loop for a whole round.
   */
  | { type: "partTaken"; id: number }
  | { type: "close"; id: number };

/** Parts of a stats round a worker sends before the main thread has taken them (see "partTaken"). */
export const PARTS_IN_FLIGHT = 2;

export type WorkerReply =
  | { type: "ready" }
  | { type: "event"; event: DataPlaneEvent }
  /** Part of a stats round's answer (stats-round.ts): its segments and states come before the reply's own. */
  | { type: "part"; id: number; segments: SegmentSnapshot[]; segmentsText?: string; checkpoints: StateCheckpoint[] }
  /** A commit's `segments`: the counters of the segments it took out, as they ended. */
  /** A prepare's `prepared`: the states of the stages the change creates (DataPlane.preparedStates). */
  | {
    type: "reply"; id: number; errors: SegmentError[]; segments?: SegmentSnapshot[]; instances?: InstanceUsers[]; checkpoints?: StateCheckpoint[];
    prepared?: { restored: StateCheckpoint[]; fresh: StateCheckpoint[] };
    /** A stats round's counters as JSON text, a part each (asked for with `asText`). */
    segmentsText?: string[];
    /** An open's: per segment, the listen sockets it took over with what they held (DataPlane.takeReclaimed). */
    reclaimed?: Record<string, number>;
  };
