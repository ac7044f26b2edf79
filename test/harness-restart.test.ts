// A filter author tests what a restart after a failure does to their state, as the proxy does it:
// checkpoint() takes each context's state (the proxy's every-second checkpoint), the filter traps,
// restart(checkpoint) brings a new instance that creates every context again and imports its
// checkpoint with StateOrigin.Checkpoint. Before, a FilterFailure ended the harness for good, and
// importState could only feed a blob back into the instance that made it.
import * as assert from "uvu/assert";
import { FilterFailure, FilterHarness, buildRtp } from "../sdk/harness/index.js";
import { suite } from "./lib/suite.js";
import { compileFilterSource } from "./lib/compile-source.js";

const test = suite("harness restart from a checkpoint", { timeoutMs: 120_000 });

// Counts packets per context in its state; traps on payload type 127; tells, over each passed
// packet's first payload byte, how many it has counted and how its last import came (StateOrigin).
const SOURCE = `
  import { Config, ContextMap, Filter, Packet, RtpPacket, Status, StateReader, StateWriter, defineCounter, metricAdd, register, stateOrigin } from "../../../sdk/assembly";
  export * from "../../../sdk/assembly/exports";
  class Seen { n: u32 = 0; origin: u8 = 0; }
  let packets: i32 = -1;
  class Counting extends Filter {
    private seen: ContextMap<Seen> = new ContextMap<Seen>();
    configureRoot(cfg: Config): Status { packets = defineCounter("packets"); return cfg.finish(); }
    createContext(ctx: u32, cfg: Config): Status { this.seen.set(ctx, new Seen()); return cfg.finish(); }
    destroyContext(ctx: u32): void { this.seen.delete(ctx); }
    onPacket(p: Packet): void {
      if (RtpPacket.payloadType(p.ptr) == 127) unreachable();
      const s = this.seen.get(p.context)!;
      s.n++;
      metricAdd(packets, p.context);
      store<u8>(p.ptr + 12, <u8>s.n);
      store<u8>(p.ptr + 13, s.origin);
    }
    exportState(ctx: u32, out: StateWriter): Status { out.u32(this.seen.get(ctx)!.n); return Status.Ok; }
    importState(ctx: u32, blob: StateReader): Status {
      const n = blob.u32();
      if (blob.overflow) return Status.BadState;
      const s = this.seen.get(ctx)!;
      s.n = n;
      s.origin = <u8>stateOrigin();
      return Status.Ok;
    }
  }
  register(new Counting());
`;

test("after a trap, restart(checkpoint) restores each context's state as of the checkpoint, marked Checkpoint; counters go on", async () => {
  const h = await FilterHarness.load(await compileFilterSource(SOURCE, "counting"), { name: "counting" });
  const a = h.createContext();
  const b = h.createContext();
  const seenBy = (ctx: number, seq: number): [number, number] => {
    const r = h.run({ ctx, bytes: buildRtp({ seq }) });
    return [r.bytes[12]!, r.bytes[13]!];
  };
  for (let i = 0; i < 3; i++) seenBy(a, i);
  seenBy(b, 0);
  const checkpoint = h.checkpoint();
  assert.equal([...checkpoint.keys()], [a, b]);
  seenBy(a, 3); // after the checkpoint: lost by the restart, as in the proxy
  const trap = (() => {
    try {
      h.run({ ctx: a, bytes: buildRtp({ seq: 4, payloadType: 127 }) });
    } catch (err) {
      return err;
    }
  })();
  assert.instance(trap, FilterFailure);
  assert.throws(() => seenBy(a, 5), (err: Error) => err instanceof FilterFailure, "a failed instance is called no more");
  const restored = await h.restart(checkpoint);
  assert.equal(restored, { carried: [a, b], fresh: [] });
  assert.equal(seenBy(a, 5), [4, 2 /* StateOrigin.Checkpoint */], "3 at the checkpoint, then this one");
  assert.equal(seenBy(b, 1), [2, 2]);
  assert.is(h.metric("packets", a), 5, "the host's counter kept all 4 the failed instance counted (the checkpoint had 3), then 1");
  // a context without a checkpoint starts fresh, and says so
  const c = h.createContext();
  const again = await h.restart(new Map([[a, checkpoint.get(a)!]]));
  assert.equal(again, { carried: [a], fresh: [{ ctx: b, reason: "no checkpoint of it" }, { ctx: c, reason: "no checkpoint of it" }] });
  assert.equal(seenBy(c, 0), [1, 0]);
  await h.restart(new Map([[99, new Uint8Array(4)]])).then(() => assert.unreachable("a context the filter does not have"), (err: Error) => assert.match(err.message, /context 99 is not one of the filter's/));
});

test.run();
