// The harness's watchdog thread (watchdog.ts): when one call into a filter has not returned
// within its limit, it writes which call to stderr and ends the process.
import { writeSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { B_ACTIVE, B_ARG, B_CTX, B_HARNESS, B_KIND, B_LIMIT, B_SEQ, CallKind } from "./watchdog.js";

const beacon = workerData as Int32Array;
const filters = new Map<number, string>();
parentPort!.on("message", (m: { id: number; filter: string }) => filters.set(m.id, m.filter));

function describe(kind: number, ctx: number, arg: number): string {
  switch (kind) {
    case CallKind.CreateContext: return `createContext (context ${ctx})`;
    case CallKind.DestroyContext: return `destroyContext (context ${ctx})`;
    case CallKind.OnPacket: return `onPacket (msm_on_batch: ${arg} packet${arg === 1 ? "" : "s"}, the first of context ${ctx})`;
    case CallKind.OnTimer: return `onTimer (context ${ctx}, timer ${arg})`;
    case CallKind.DrainContext: return `drainContext (context ${ctx})`;
    case CallKind.ExportState: return `exportState (context ${ctx})`;
    case CallKind.ImportState: return `importState (context ${ctx})`;
    case CallKind.Load: return "load (_initialize, msm_configure_root)";
    default: return `call ${kind}`;
  }
}

let seenSeq = -1;
let since = 0;
setInterval(() => {
  const now = performance.now(); // monotonic: a wall-clock step must not look like a stuck call
  const seq = Atomics.load(beacon, B_SEQ);
  if (Atomics.load(beacon, B_ACTIVE) === 0 || seq !== seenSeq) {
    seenSeq = seq;
    since = now;
    return;
  }
  const limit = beacon[B_LIMIT]!;
  if (now - since < limit) return;
  const filter = filters.get(beacon[B_HARNESS]!) ?? "?";
  writeSync(2,
    `\nFilterHarness watchdog: filter '${filter}' did not return within ${limit} ms in ${describe(beacon[B_KIND]!, beacon[B_CTX]!, beacon[B_ARG]!)}: ` +
      `an endless loop? Ending the test process (nothing can interrupt the filter on its thread), as the proxy's watchdog restarts ` +
      `a worker stuck in a filter (watchdog.stuckMs). A call that is slow on purpose needs a larger FilterHarness.load(..., { timeoutMs }).\n`);
  process.kill(process.pid, "SIGKILL");
}, 20);
