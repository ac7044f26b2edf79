// The open-files check per worker process (Bun): what each worker holds while a change is prepared.
// These parts are internal to the runtime, so this file imports them where they live.
import * as assert from "uvu/assert";
import { validateProxyConfig, type SegmentConfig } from "../runtime/index.js";
import { socketsPerWorkerDuringChange } from "../runtime/dataplane/descriptor-budget.js";
import { suite } from "./lib/suite.js";

const test = suite("descriptor budget per worker");

/** Segments of 4 sockets each (RTP and RTCP, in and out), pinned to the workers given. */
function segments(pins: Record<string, number>): SegmentConfig[] {
  let port = 20000;
  return validateProxyConfig({
    workers: 2,
    segments: Object.entries(pins).map(([name, worker]) => ({
      name, worker, listen: { address: "127.0.0.1", port: (port += 2) }, destinations: [{ address: "127.0.0.1", port: 30000 + port }], chain: [],
    })),
  }).segments;
}

test("a segment moved to another worker counts on both while the change is prepared: on its old one it still runs, on the new one it binds", () => {
  const running = segments({ a: 0, b: 0, c: 1 });
  const next = segments({ a: 1, b: 0, c: 1 });
  const peaks = socketsPerWorkerDuringChange(running, next, 2, (s) => s.worker!);
  // before the fix a moved segment counted only on its old worker (it was not new by name), so a
  // move past the new worker's limit passed the check and failed after the commit, NOT running
  assert.equal(peaks, [{ sockets: 8, segments: 2 }, { sockets: 8, segments: 2 }]);
});

test("new and removed segments: a removed one holds its sockets until the commit, a new one binds at the prepare", () => {
  const running = segments({ a: 0 });
  const next = segments({ b: 0, c: 1 });
  assert.equal(socketsPerWorkerDuringChange(running, next, 2, (s) => s.worker!), [{ sockets: 8, segments: 2 }, { sockets: 4, segments: 1 }]);
});

test.run();
