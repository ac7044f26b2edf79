// The harness judges what a filter leaves in its descriptors as the proxy does: every misuse of
// test/fixtures/filters/assembly/hostile.ts goes through FilterHarness and through the proxy's
// own chain (ChainRunner and FilterPool, without sockets), and both count the same drops under
// the same reasons and let the same output packets out. The harness also says what was wrong,
// as the host's log line does, and that line has a budget of its own.
import * as assert from "uvu/assert";
import { ChainRunner } from "../runtime/chain/chain-runner.js";
import { DEFAULT_FAILURE_POLICY, FilterPool, type ChainStage } from "../runtime/chain/filter-pool.js";
import { PacketList } from "../runtime/chain/packet-list.js";
import { SegmentStats } from "../runtime/chain/stats.js";
import { LogLimiter } from "../runtime/filter-host/log-limiter.js";
import { Dest, DropReason, LogLevel, PacketFlag } from "../runtime/abi.js";
import { FilterHarness, type BatchResult } from "../sdk/harness/index.js";
import { suite } from "./lib/suite.js";
import { fixture } from "./lib/paths.js";
import { indexedRtp } from "./lib/udp.js";

const test = suite("harness judges as the proxy", { timeoutMs: 120_000 });

/** The hostile fixture's commands (see its header). */
const Cmd = { drop: 0xc1, verdict: 0xc2, move: 0xc3, emit: 0xc5, emitOther: 0xc6, emitBroken: 0xc7, setLeg: 0xcd } as const;

function command(cmd: number, a = 0, b = 0): Uint8Array {
  const p = Buffer.from(indexedRtp(1, 64));
  p[12] = cmd;
  p.writeUInt32BE(a >>> 0, 16);
  p.writeUInt32BE(b >>> 0, 20);
  return p;
}

/** What became of one packet and the packets the filter made: drops by reason label, what went on, what the host logged. */
interface Ledger {
  drops: Record<string, number>;
  passed: number;
  held: number;
  outputs: number;
  logs: string[];
}

/** The packet through the proxy's chain, as stage 0 of a segment whose instance also serves a second context. */
async function throughProxy(packet: Uint8Array): Promise<Ledger> {
  const logs: string[] = [];
  const pool = new FilterPool({ log: (_filter, _level, message) => logs.push(message), timerSet: () => {}, timerCancel: () => {}, timerCancelAll: () => {} });
  try {
    const slot = await pool.acquire({ name: "hostile", path: fixture("hostile") });
    const stage: ChainStage = pool.attach(slot, 1, {}, DEFAULT_FAILURE_POLICY, "seg");
    pool.attach(slot, 2, {}, DEFAULT_FAILURE_POLICY, "other");
    const runner = new ChainRunner();
    runner.setClock(1_000_000, Date.now() * 1000);
    const input = new PacketList(1);
    input.push(packet, 0, packet.length, 0, Dest.Forward, 5004, 0, 1_000_000);
    // what left the chain, the packet itself apart from outputs (the stage counts a refused output generated too)
    let passed = 0;
    let outputs = 0;
    runner.run([stage], 0, input, new SegmentStats(), (list) => {
      for (let i = 0; i < list.count; i++) if ((list.flags[i]! & PacketFlag.Generated) !== 0) outputs++; else passed++;
    });
    const s = stage.stats;
    return { drops: s.drops.toJSON(), passed, held: s.held, outputs, logs };
  } finally {
    pool.close();
  }
}

/** The same through the harness: the packet's result, plus the refused outputs as the drops they are. */
async function throughHarness(packet: Uint8Array): Promise<{ ledger: Ledger; result: BatchResult; h: FilterHarness }> {
  const h = await FilterHarness.load(fixture("hostile"));
  const ctx = h.createContext({});
  h.createContext({});
  const result = h.runBatch([{ ctx, bytes: packet, sourcePort: 5004 }]);
  const drops: Record<string, number> = {};
  const count = (name: string): void => {
    drops[name] = (drops[name] ?? 0) + 1;
  };
  for (const p of result.packets) if (p.verdict === "drop") count(p.reasonName);
  for (const d of h.hostDrops) if (d.kind === "output") count(d.reasonName);
  const ledger = {
    drops,
    passed: result.packets.filter((p) => p.verdict === "pass").length,
    held: result.packets.filter((p) => p.verdict === "hold").length,
    outputs: result.outputs.length,
    logs: h.logs.map((l) => l.message),
  };
  return { ledger, result, h };
}

const none = { passed: 0, held: 0, outputs: 0 };
/** The host's lines about the case: one per drop for a broken descriptor or a forged reason. */
const logged = (ledger: Omit<Ledger, "logs">): number => (ledger.drops.host_bad_descriptor ?? 0) + (ledger.drops.host_bad_reason ?? 0);
const CASES: [string, Uint8Array, Omit<Ledger, "logs">][] = [
  ["drop with a host reason (201)", command(Cmd.drop, DropReason.HostBadDescriptor), { ...none, drops: { host_bad_reason: 1 } }],
  ["drop with a shared code the ABI does not name (100)", command(Cmd.drop, 100), { ...none, drops: { host_bad_reason: 1 } }],
  ["drop past the filter's codes (356)", command(Cmd.drop, 356), { ...none, drops: { host_bad_reason: 1 } }],
  ["drop with its own code (300)", command(Cmd.drop, 300), { ...none, drops: { filter_300: 1 } }],
  ["drop with a shared code (33)", command(Cmd.drop, DropReason.PayloadTypeNotAllowed), { ...none, drops: { payload_type_not_allowed: 1 } }],
  ["verdict byte 9", command(Cmd.verdict, 9), { ...none, drops: { host_bad_descriptor: 1 } }],
  ["verdict byte 2 (Hold)", command(Cmd.verdict, 2), { ...none, drops: {}, held: 1 }],
  ["offset moved before the slot", command(Cmd.move, -200), { ...none, drops: { host_bad_descriptor: 1 } }],
  ["length grown past the slot", command(Cmd.move, 0, 4000), { ...none, drops: { host_bad_descriptor: 1 } }],
  ["leg 9 written into the descriptor", command(Cmd.setLeg, 256 + 9), { ...none, drops: { host_bad_descriptor: 1 } }],
  ["an output with dest 5", command(Cmd.emit, 5), { ...none, passed: 1, drops: { host_bad_descriptor: 1 } }],
  ["an output to destination 0 (dest 16)", command(Cmd.emit, Dest.DestinationIndexBase), { ...none, passed: 1, outputs: 1, drops: {} }],
  ["an output on leg 9", command(Cmd.emit, 0, 9), { ...none, passed: 1, drops: { host_bad_descriptor: 1 } }],
  ["an output in the next output slot", command(Cmd.emitBroken, 1), { ...none, passed: 1, drops: { host_bad_descriptor: 1 } }],
  ["an output past its slot's end", command(Cmd.emitBroken, 2), { ...none, passed: 1, drops: { host_bad_descriptor: 1 } }],
  ["an output pointing into the batch", command(Cmd.emitBroken, 3), { ...none, passed: 1, drops: { host_bad_descriptor: 1 } }],
  ["an output naming another context", command(Cmd.emitOther), { ...none, passed: 1, drops: { host_bad_descriptor: 1 } }],
];

test("each broken descriptor and forged reason: the harness counts what the proxy's chain counts", async () => {
  for (const [what, packet, expected] of CASES) {
    const proxy = await throughProxy(packet);
    assert.equal({ ...proxy, logs: [] }, { ...expected, logs: [] }, `the proxy: ${what}`);
    assert.is(proxy.logs.length, logged(proxy), `the proxy logs each: ${what}`);
    const { ledger } = await throughHarness(packet);
    assert.equal(ledger, proxy, `the harness, as the proxy: ${what}`);
  }
});

test("the harness says what was wrong: the packet's problem, every host drop, and the host's log line", async () => {
  const forged = await throughHarness(command(Cmd.drop, DropReason.HostBadDescriptor));
  const p = forged.result.packets[0]!;
  assert.equal([p.verdict, p.reason, p.reasonName], ["drop", DropReason.HostBadReason, "host_bad_reason"]);
  const why = "the host dropped packet 0 of the batch as host_bad_reason: drop reason 201 is the host's own (DropReason.HostBadDescriptor); "
    + "a filter drops with a shared DropReason below 200 or with its own code, 256 to 319";
  assert.is(p.problem, why);
  assert.equal(forged.h.logs, [{ level: LogLevel.Warn, message: why }], "logged as the proxy logs it");
  assert.equal(forged.h.hostDrops, [{ call: "onPacket", kind: "packet", index: 0, ctx: 1, reason: DropReason.HostBadReason, reasonName: "host_bad_reason", problem: why }]);

  const verdict = await throughHarness(command(Cmd.verdict, 9));
  assert.match(verdict.result.packets[0]!.problem, /as host_bad_descriptor: verdict 9 is none of Pass \(0\), Drop \(1\) and Hold \(2\)$/);
  const moved = await throughHarness(command(Cmd.move, 0, 4000));
  assert.match(moved.result.packets[0]!.problem, /as host_bad_descriptor: its descriptor \(offset 0x[0-9a-f]+, length 4000\) leaves its slot \[0x[0-9a-f]+, 0x[0-9a-f]+\); Packet\.resize keeps a packet inside it$/);
  assert.is(moved.result.packets[0]!.bytes.length, 0, "no bytes from outside the slot");

  const other = await throughHarness(command(Cmd.emitOther));
  assert.equal(other.result.outputs, []);
  assert.equal(other.h.hostDrops.map((d) => [d.call, d.kind, d.index, d.problem]), [
    ["onPacket", "output", 0, "the host dropped output packet 0 as host_bad_descriptor: it names context 2, not 1, the context of the call that made it"],
  ]);
  const dest = await throughHarness(command(Cmd.emit, 5));
  assert.match(dest.h.hostDrops[0]!.problem, /output packet 0 as host_bad_descriptor: dest 5 is none of Dest\.Forward \(0\), Dest\.Reverse \(1\) and Dest\.DestinationIndexBase \(16\) \+ k$/);
  assert.equal(dest.h.logs.map((l) => l.message), [dest.h.hostDrops[0]!.problem]);
});

test("the host's lines about dropped packets have a budget of their own: 10 a second, the rest counted", () => {
  let now = 5_000;
  const lines: string[] = [];
  const limiter = new LogLimiter((_level, message) => lines.push(message), 10, "lines about dropped packets", () => now);
  let admitted = 0;
  for (let i = 0; i < 25; i++) if (limiter.admit()) admitted++;
  assert.is(admitted, 10);
  now += 999;
  assert.not.ok(limiter.admit(), "still the same second");
  now += 1;
  assert.ok(limiter.admit(), "a new second");
  assert.equal(lines, ["16 lines about dropped packets suppressed (limit 10/s)"]);
});

test.run();
