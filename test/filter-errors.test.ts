// Errors that teach: each mistake a filter author makes gets a message that names its cause and
// the fix, asserted on real filter modules (test/fixtures/filters/assembly/teach.ts and friends).
import * as assert from "uvu/assert";
import { FilterHarness, FilterConfigError, FilterFailure, FilterLoadError, LogLevel } from "../sdk/harness/index.js";
import { ApplyError, compileFilterModule, FilterInstance, Proxy, validateProxyConfig, type FilterHostServices } from "../runtime/index.js";
import { readFile } from "node:fs/promises";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "./lib/suite.js";
import { rejects } from "./lib/expect.js";
import { compileFilterSource } from "./lib/compile-source.js";
import { fixture } from "./lib/paths.js";
import { bindUdp, freePortPair, indexedRtp, Sink, waitFor } from "./lib/udp.js";

const test = suite("filter errors");

function rtp(firstPayloadByte: number): Uint8Array {
  const b = new Uint8Array(100);
  b[0] = 0x80;
  b[1] = 96;
  b[12] = firstPayloadByte;
  return b;
}

test("out of memory: the trap names the memory cap and the instance's usage, not a bare 'unreachable'", async () => {
  const near = await FilterHarness.load(fixture("teach"), { maxMemoryPages: 16 });
  await rejects(
    Promise.resolve().then(() => near.createContext({ allocateKiB: 4096, chunkKiB: 32 })),
    FilterFailure,
    // V8 says "unreachable", JavaScriptCore (Bun) "Unreachable code should not be executed"
    /failed in msm_context_create: (unreachable|Unreachable code should not be executed.*) \(most likely out of memory: the instance uses 16 of its 16 pages of 64 KiB \(1 MiB of 1 MiB\); raise the filter's maxMemoryPages/,
  );
  // one allocation larger than what the cap leaves, with memory far from it: the numbers still say why
  const far = await FilterHarness.load(fixture("teach"), { maxMemoryPages: 64 });
  await rejects(
    Promise.resolve().then(() => far.createContext({ allocateKiB: 8192, chunkKiB: 8192 })),
    FilterFailure,
    /nreachable.* \(an unreachable\(\) in the filter, or an allocation larger than the [\d.]+ MiB its memory cap leaves: the instance uses \d+ of its 64 pages of 64 KiB \([\d.]+ KiB of 4 MiB\)\)/,
  );
});

test("an entry file without the SDK's exports: the missing re-export is named as the likely cause", async () => {
  await rejects(
    FilterHarness.load(fixture("no_reexport")),
    FilterLoadError,
    /ABI mismatch: module has no msm_abi_version_X_Y export, host implements 1\.9 \(and no msm_\* export at all: the likely cause is that the filter's entry file does not re-export the SDK's exports; add `export \* from "<path to sdk>\/assembly\/exports";` to it\)/,
  );
});

test("Math.random() (an env.seed import): the error points to the SDK's randomU32()", async () => {
  await rejects(
    FilterHarness.load(fixture("math_random")),
    FilterLoadError,
    /imports env\.seed, which the host does not provide: Math\.random\(\) needs it; use the SDK's randomU32\(\) \(or randomBytes\(\)\) instead/,
  );
});

test("a filter that never calls register(): the load error says so once, without a made-up location", async () => {
  const source = `
    import { Filter } from "../../../sdk/assembly";
    export * from "../../../sdk/assembly/exports";
    class Forgotten extends Filter {}
    const f = new Forgotten(); // register(f) forgotten
  `;
  await rejects(
    FilterHarness.load(await compileFilterSource(source, "forgotten"), { name: "forgotten" }),
    FilterLoadError,
    /^filter 'forgotten': failed in msm_required_features: abort: no filter registered: call register\(new YourFilter\(\)\) at top level$/,
  );
});

test("register() called twice: the load fails, saying to register one filter once", async () => {
  const source = `
    import { Filter, Packet, register } from "../../../sdk/assembly";
    export * from "../../../sdk/assembly/exports";
    class A extends Filter { onPacket(p: Packet): void { p.drop(257); } }
    class B extends Filter { onPacket(p: Packet): void { p.drop(258); } }
    register(new A());
    register(new B());
  `;
  await rejects(
    FilterHarness.load(await compileFilterSource(source, "twice"), { name: "twice" }),
    FilterLoadError,
    /^filter 'twice': failed in _initialize: abort: register\(\) was called twice: a module serves one filter; call register\(new YourFilter\(\)\) once, at top level$/,
  );
});

/** Emits a copy of each packet with the dest and leg its bytes 12 and 13 name, three ways; writes what each said at bytes 14-16. */
const EMITTER = `
  import { Filter, Output, Packet, RtcpWriter, register } from "../../../sdk/assembly";
  export * from "../../../sdk/assembly/exports";
  const writer = new RtcpWriter();
  class Emitter extends Filter {
    onPacket(p: Packet): void {
      const dest = <i32>load<u8>(p.ptr + 12);
      const leg = <i32>load<u8>(p.ptr + 13);
      store<u8>(p.ptr + 14, Output.emit(p.context, p.ptr, p.length, 0, dest, leg) ? 1 : 0);
      memory.copy(Output.reserve(), p.ptr, <usize>p.length);
      store<u8>(p.ptr + 15, Output.commit(p.context, p.length, 0, dest, leg) ? 1 : 0);
      writer.beginOutput();
      writer.receiverReport(1);
      writer.sdes(1, "me@example");
      store<u8>(p.ptr + 16, <u8>writer.emit(p.context, 0, dest, leg));
    }
  }
  register(new Emitter());
`;

test("Output.emit, Output.commit and RtcpWriter.emit refuse a dest of 2-15 and a leg past 7; the first refusal is logged", async () => {
  const h = await FilterHarness.load(await compileFilterSource(EMITTER, "emitter"), { name: "emitter" });
  const ctx = h.createContext({});
  const said = (dest: number, leg: number): { results: number[]; outputs: number } => {
    const bytes = rtp(dest);
    bytes[13] = leg;
    const r = h.runBatch([{ ctx, bytes }]);
    const b = r.packets[0]!.bytes;
    return { results: [b[14]!, b[15]!, b[16]!], outputs: r.outputs.length };
  };
  for (const [dest, leg] of [[0, 0], [1, 0], [16, 0], [255, 0], [0, 7]]) {
    assert.equal(said(dest!, leg!), { results: [1, 1, 0], outputs: 3 }, `dest ${dest}, leg ${leg}`);
  }
  assert.equal(h.logs, []);
  for (const [dest, leg] of [[5, 0], [2, 0], [15, 0], [0, 8], [16, 255]]) {
    assert.equal(said(dest!, leg!), { results: [0, 0, 10 /* RtcpWriteError.BadTarget */], outputs: 0 }, `dest ${dest}, leg ${leg}`);
  }
  assert.equal(h.logs, [{
    level: LogLevel.Error,
    message: "Output.emit refused dest 5 on leg 0: a dest is Dest.Forward (0), Dest.Reverse (1) or Dest.DestinationIndexBase (16) + k (2-15 are invalid), a leg 0 to 7; nothing was sent (said once)",
  }]);
  assert.equal(h.hostDrops, [], "the host saw none of them");
});

const TIMED = `
  import { Config, Filter, Status, defineCounter, metricAdd, register, timerCancel, timerSet } from "../../../sdk/assembly";
  export * from "../../../sdk/assembly/exports";
  let fired: i32 = -1;
  class Timed extends Filter {
    configureRoot(cfg: Config): Status {
      fired = defineCounter("fired");
      return cfg.finish();
    }
    createContext(ctx: u32, cfg: Config): Status {
      const timer = <i32>cfg.getInt("timer", 0, -1000, 1000);
      const delay = cfg.getInt("delayUs", 1000);
      const status = cfg.finish();
      if (status != Status.Ok) return status;
      if (!cfg.getBool("cancelOnly", false)) timerSet(ctx, timer, delay);
      if (cfg.getBool("cancelToo", false)) timerCancel(ctx, timer);
      return Status.Ok;
    }
    onTimer(ctx: u32, timer: i32): void {
      metricAdd(fired, ctx);
    }
  }
  register(new Timed());
`;

test("timerSet and timerCancel refused by the host (a timer id past 7, a negative delay) say so once in the log: the timer silently never fired", async () => {
  const h = await FilterHarness.load(await compileFilterSource(TIMED, "timed"), { name: "timed" });
  const good = h.createContext({ timer: 7 });
  assert.equal(h.timers().map((t) => t.timer), [7]);
  assert.equal(h.logs, []);
  const past = h.createContext({ timer: 8 });
  assert.equal(h.timers().map((t) => t.ctx), [good], "timer 8 is not armed");
  assert.equal(h.logs, [{
    level: LogLevel.Error,
    message: `timerSet(ctx ${past}, timer 8, 1000 us) refused (BadArgument): a timer id is 0 to 7 (MAX_TIMERS_PER_CONTEXT - 1), a delay 0 us or more, on a context the filter has; the timer is not armed (said once)`,
  }]);
  h.createContext({ timer: 1, delayUs: -5 });
  h.createContext({ timer: 9, cancelToo: true });
  assert.is(h.logs.length, 1, "said once");
  h.advanceTime(1000);
  assert.is(h.metric("fired", good), 1, "a valid timer still fires");
  assert.is(h.metric("fired", past), 0);
  const cancel = await FilterHarness.load(await compileFilterSource(TIMED, "timed"), { name: "timed" });
  cancel.createContext({ timer: -1, cancelOnly: true, cancelToo: true });
  assert.equal(cancel.logs.map((l) => l.message), [
    "timerCancel(ctx 1, timer -1) refused (BadArgument): a timer id is 0 to 7 (MAX_TIMERS_PER_CONTEXT - 1), on a context the filter has (said once)",
  ]);
});

test("a metric definition the host refuses (a '-' in the name, _total on a gauge, a label the proxy sets) is logged with the rule it broke: the metric was silently missing from /metrics", async () => {
  const source = `
    import { Config, Filter, Packet, Status, defineCounter, defineGauge, defineLabelledCounter, metricAdd, register } from "../../../sdk/assembly";
    export * from "../../../sdk/assembly/exports";
    let dashed: i32 = -1;
    class Defines extends Filter {
      configureRoot(cfg: Config): Status {
        dashed = defineCounter("bytes-passed");
        defineGauge("queue_total");
        defineLabelledCounter("by_segment", "segment");
        defineCounter("fine");
        defineCounter("fine"); // the same again is the same id: no refusal
        return cfg.finish();
      }
      onPacket(p: Packet): void { metricAdd(dashed, p.context); }
    }
    register(new Defines());
  `;
  const h = await FilterHarness.load(await compileFilterSource(source, "defines"), { name: "defines" });
  assert.equal(h.metricNames(), ["fine"]);
  assert.equal(h.logs.map((l) => [l.level, l.message]), [
    [LogLevel.Error, "metric 'bytes-passed' was not defined (BadArgument): a metric's name is a lower-case letter, then up to 63 lower-case letters, digits and '_' (no '-'); its updates are lost"],
    [LogLevel.Error, "metric 'queue_total' was not defined (BadArgument): a name ending in _total is a counter's; its updates are lost"],
    [LogLevel.Error, "metric 'by_segment' was not defined (BadArgument): its label 'segment' is one the proxy sets (segment, stage, filter, le, instance, job); its updates are lost"],
  ]);
});

test("a refusal without setError: the message says the filter gave no reason, and the status's name", async () => {
  try {
    await FilterHarness.load(fixture("teach"), { rootConfig: { silentRefusal: true } });
    assert.unreachable("accepted");
  } catch (err) {
    assert.instance(err, FilterConfigError);
    const e = err as FilterConfigError;
    assert.is(e.message, "filter 'teach' rejected its root config: the filter gave no reason (status BadConfig, returned without calling setError)");
    assert.is(e.reason, "", "the filter's own reason stays empty");
    assert.is(e.status, 1);
  }
});

test("the runtime's own refusal of a root config says 'root config' (the harness and msm proxy --check pass it on as it is)", async () => {
  const module = await compileFilterModule("teach", await readFile(fixture("teach")));
  const services: FilterHostServices = { log: () => {}, timerSet: () => {}, timerCancel: () => {} };
  const err = await FilterInstance.create(module, { silentRefusal: true }, services).then(() => undefined, (e: unknown) => e);
  assert.instance(err, FilterConfigError);
  assert.is((err as Error).message, "filter 'teach' rejected its root config: the filter gave no reason (status BadConfig, returned without calling setError)");
  assert.is((err as FilterConfigError).what, "root config");
});

test("a metric defined in createContext refuses the context, naming the metric and where to define it", async () => {
  const h = await FilterHarness.load(fixture("teach"));
  const refusal = h.refusal({ lateMetric: true });
  assert.is(refusal.status, 5, "NotAllowed");
  assert.match(refusal.reason, /^metric 'per_context_packets' is defined in createContext \(msm_context_create\), after the filter was configured, so it does not exist and its updates are lost: define every metric in configureRoot \(msm_configure_root\)/);
  assert.is(h.instance.contexts.size, 0, "the refused context is gone");
  assert.ok(h.createContext({}) > 0, "the instance still serves other contexts");
});

test("a metric defined while handling packets is logged as an error, once per name; the packet still passes", async () => {
  const h = await FilterHarness.load(fixture("teach"));
  const ctx = h.createContext({});
  for (let i = 0; i < 3; i++) assert.is(h.runBatch([{ ctx, bytes: rtp(0x4d), sourcePort: 5004 }]).packets[0]!.verdict, "pass");
  const errors = h.logs.filter((l) => l.level === LogLevel.Error);
  assert.is(errors.length, 1, "logged once");
  assert.match(errors[0]!.message, /^metric 'late_packets' is defined in onPacket\/onBatch \(msm_on_batch\), after the filter was configured, so it does not exist and its updates are lost: define every metric in configureRoot/);
});

test("a config refused at proxy start-up says the proxy did not start, not that a running config is unchanged", async () => {
  const port = await freePortPair();
  const config = validateProxyConfig({
    workers: 1,
    filters: { teach: { path: fixture("teach") } },
    segments: [{ name: "cam", listen: { address: "127.0.0.1", port }, destinations: [{ address: "127.0.0.1", port: port + 1 }], chain: [{ filter: "teach", config: { lateMetric: true } }] }],
  });
  try {
    const proxy = await Proxy.start(config);
    await proxy.close();
    assert.unreachable("started");
  } catch (err) {
    assert.instance(err, ApplyError);
    const e = err as ApplyError;
    assert.ok(e.starting && !e.committed, "nothing runs");
    assert.match(e.message, /^the proxy did not start: its config could not be applied \(nothing was running yet, and nothing runs now\):\n {2}segment 'cam': .*metric 'per_context_packets' is defined in createContext/, e.message);
    assert.not.match(e.message, /running config is unchanged/);
  }
});

test("a module path naming a pipe that does not end, on a reload: refused at 16 MiB, the running chain untouched (the workers read it whole, and the reload waited for its end)", async () => {
  const port = await freePortPair();
  const sink = await Sink.open();
  const dir = mkdtempSync(join(tmpdir(), "msm-module-"));
  const fifo = join(dir, "piped.wasm");
  execFileSync("mkfifo", [fifo]);
  const segment = (filter: string) => ({ name: "cam", listen: { address: "127.0.0.1", port }, destinations: [{ address: "127.0.0.1", port: sink.port }], chain: [{ filter }] });
  const proxy = await Proxy.start(validateProxyConfig({ workers: 1, filters: { counter: { path: fixture("counter") } }, segments: [segment("counter")] }));
  // 40 MB, then the pipe stays open
  const writer = spawn("sh", ["-c", `{ head -c 40000000 /dev/zero; exec sleep 30; } > '${fifo}'`], { stdio: "ignore" });
  const tx = await bindUdp();
  try {
    const outcome = await Promise.race([
      proxy.apply(validateProxyConfig({ workers: 1, filters: { piped: { path: fifo } }, segments: [segment("piped")] })).then(() => "applied", (err: Error) => err),
      new Promise<string>((r) => setTimeout(() => r("still applying after 8 s"), 8000)),
    ]);
    assert.instance(outcome, ApplyError, String(outcome));
    assert.match((outcome as ApplyError).message, /piped\.wasm holds more than the 16 MiB a module may have \(read no further\)/);
    tx.send(indexedRtp(0), port, "127.0.0.1");
    await waitFor(() => sink.received >= 1, 5000, "the stream through the chain that ran before");
  } finally {
    writer.kill();
    tx.close();
    sink.close();
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a module path naming a FIFO nothing writes to, on a reload: refused once it stays quiet 10 s, the running chain untouched (the open waited for a writer for good, holding the reload)", async () => {
  const port = await freePortPair();
  const sink = await Sink.open();
  const dir = mkdtempSync(join(tmpdir(), "msm-module-"));
  const fifo = join(dir, "nobody.wasm");
  execFileSync("mkfifo", [fifo]);
  const segment = (filter: string) => ({ name: "cam", listen: { address: "127.0.0.1", port }, destinations: [{ address: "127.0.0.1", port: sink.port }], chain: [{ filter }] });
  const proxy = await Proxy.start(validateProxyConfig({ workers: 1, filters: { counter: { path: fixture("counter") } }, segments: [segment("counter")] }));
  const tx = await bindUdp();
  try {
    const t0 = performance.now();
    const outcome = await Promise.race([
      proxy.apply(validateProxyConfig({ workers: 1, filters: { nobody: { path: fifo } }, segments: [segment("nobody")] })).then(() => "applied", (err: Error) => err),
      new Promise<string>((r) => setTimeout(() => r("still applying after 30 s"), 30_000)),
    ]);
    assert.instance(outcome, ApplyError, String(outcome));
    assert.match((outcome as ApplyError).message, /cannot read .*nobody\.wasm: a pipe \(FIFO\) that nothing was written to for 10 s/);
    assert.ok(performance.now() - t0 >= 9_000, "the quiet time was waited");
    tx.send(indexedRtp(0), port, "127.0.0.1");
    await waitFor(() => sink.received >= 1, 5000, "the stream through the chain that ran before");
    assert.is(proxy.currentConfig.segments[0]!.chain[0]!.filter, "counter");
  } finally {
    tx.close();
    sink.close();
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
