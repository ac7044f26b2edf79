// A data-plane worker for test/stats-round.test.ts whose open step first waits a few turns of its
// loop, as a real one does while a segment the change took out still has sends in flight
// (dataplane.ts closeWhenSent), or a multicast join or a reclaim is under way: what comes in
// meanwhile (a stats round) runs between those turns.
import { setImmediate as nextTurn } from "node:timers/promises";
import { DataPlane } from "../../runtime/dataplane/dataplane.js";

const open = DataPlane.prototype.open;
DataPlane.prototype.open = async function (this: DataPlane) {
  for (let i = 0; i < 5; i++) await nextTurn();
  return open.call(this);
};
await import("../../runtime/dataplane/worker-entry.js");
