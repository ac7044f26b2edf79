// docs/abi.md is enough to write a filter without the SDK: a filter written by hand in WebAssembly
// text from that page alone (test/fixtures/filters/wat/abi_wat.wat) runs in a real proxy over real
// UDP. And the page's tables of numbers say exactly what runtime/abi.ts says, so that a Rust, C or
// Zig author copying them gets the host's values.
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as abi from "../runtime/abi.js";
import { dropReasonName } from "../runtime/chain/stats.js";
import { startAdminServer } from "../runtime/index.js";
import { suite } from "./lib/suite.js";
import { ROOT, fixture } from "./lib/paths.js";
import { bindUdp, freePortPair, indexedRtp, Sink, waitFor } from "./lib/udp.js";
import { segmentStats, startProxy } from "./lib/proxy.js";
import { httpBody } from "./lib/http-get.js";

const test = suite("ABI from the page alone (WAT filter)", { timeoutMs: 30_000 });
const LO = "127.0.0.1";
/** The WAT filter's own drop reason: FilterDefinedBase + 1. */
const WAT_REASON = "filter_257";


test("the WAT filter passes the stream, drops payload type 0x7f with its own reason, and counts every packet", async () => {
  const listen = await freePortPair();
  const sink = await Sink.open();
  // a '-' in the filter's name, to see it become '_' in the metric's name
  const { proxy } = await startProxy({
    filters: { "abi-wat": { path: fixture("abi_wat") } },
    segments: [{ name: "wat", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: sink.port }], chain: [{ filter: "abi-wat" }] }],
  });
  const admin = await startAdminServer(proxy, LO, 0);
  const tx = await bindUdp();
  const n = 60;
  // every third packet has payload type 0x7f, half of them with the marker bit (second byte 0xff)
  const dropped = (i: number): boolean => i % 3 === 1;
  try {
    for (let i = 0; i < n; i++) {
      const p = indexedRtp(i, 200, 0x1234abcd, dropped(i) ? 0x7f : 96);
      if (dropped(i) && i % 2 === 0) p[1] = 0xff;
      tx.send(p, listen, LO);
    }
    const drops = n / 3;
    await waitFor(async () => (await segmentStats(proxy, "wat")).packetsIn >= n && sink.received >= n - drops, 5000, "the stream through the WAT filter");
    for (let i = 0; i < n; i++) assert.is(sink.keys.get(i) ?? 0, dropped(i) ? 0 : 1, `packet ${i}`);
    const seg = await segmentStats(proxy, "wat");
    assert.equal(seg.drops, { [WAT_REASON]: drops }, "the segment counts the drops under the filter's own code");
    assert.is(seg.dropsTotal, drops);
    const stage = seg.stages[0]!;
    assert.is(stage.state, "running");
    assert.equal(stage.drops, { [WAT_REASON]: drops });
    assert.is(stage.packetsIn, n);
    assert.is(stage.packetsOut, n - drops);
    assert.equal(stage.metrics, [{ name: "packets", kind: "counter", value: n }], "/stats shows the filter's counter");
    const body = await httpBody(admin.port, "/metrics");
    // the names docs/abi.md "Metrics" promises
    assert.match(body, /^# TYPE msm_filter_abi_wat_packets_total counter$/m);
    assert.match(body, new RegExp(`^msm_filter_abi_wat_packets_total\\{segment="wat",stage="0"\\} ${n}$`, "m"));
    assert.match(body, new RegExp(`^msm_filter_drops_total\\{segment="wat",stage="0",filter="abi-wat",reason="${WAT_REASON}"\\} ${drops}$`, "m"));
    assert.match(body, new RegExp(`^msm_segment_drops_total\\{segment="wat",reason="${WAT_REASON}"\\} ${drops}$`, "m"));
  } finally {
    tx.close();
    sink.close();
    await admin.close();
    await proxy.close();
  }
});

test("the WAT filter refuses a stage config through set_error and Status.BadConfig", async () => {
  const listen = await freePortPair();
  let refused: unknown;
  try {
    const { proxy } = await startProxy({
      filters: { "abi-wat": { path: fixture("abi_wat") } },
      segments: [{ name: "wat", listen: { address: LO, port: listen }, destinations: [{ address: LO, port: listen + 1 }], chain: [{ filter: "abi-wat", config: { threshold: 1 } }] }],
    });
    await proxy.close();
  } catch (err) {
    refused = err;
  }
  assert.instance(refused, Error, "the proxy does not start with a config the filter refused");
  assert.match((refused as Error).message, "abi_wat: a stage takes no config, give it {}");
});

// ---- the page's numbers are the code's ----

const DOC = readFileSync(join(ROOT, "docs", "abi.md"), "utf8");
/** The "Numbers" section: every row `| \`Name\` | value | ...` in it. */
const numbersSection = DOC.slice(DOC.indexOf("\n## Numbers"), DOC.indexOf("\n## ", DOC.indexOf("\n## Numbers") + 1));
const rows = new Map<string, string[]>();
for (const line of numbersSection.split("\n")) {
  const m = /^\| `([A-Za-z0-9_.]+)` \|(.*)\|$/.exec(line);
  if (m) rows.set(m[1]!, m[2]!.split("|").map((c) => c.trim()));
}

/** Every number and string runtime/abi.ts exports, enum members as Enum.Member. */
function codeNumbers(): Map<string, number | string> {
  const out = new Map<string, number | string>();
  for (const [name, value] of Object.entries(abi)) {
    if (typeof value === "number" || typeof value === "string") out.set(name, value);
    else for (const [member, v] of Object.entries(value as Record<string, unknown>)) if (typeof v === "number") out.set(`${name}.${member}`, v);
  }
  return out;
}

test("docs/abi.md \"Numbers\" lists every constant and enum value of runtime/abi.ts, with the code's value", () => {
  assert.ok(numbersSection.length > 100, "docs/abi.md has a \"## Numbers\" section");
  const code = codeNumbers();
  const wrong: string[] = [];
  for (const [name, value] of code) {
    const cells = rows.get(name);
    if (!cells) wrong.push(`${name} (${value}) is missing`);
    else if (typeof value === "string" ? cells[0] !== `\`${value}\`` : Number(cells[0]!.replace(/`/g, "")) !== value) wrong.push(`${name}: the page says ${cells[0]}, the code ${value}`);
  }
  for (const name of rows.keys()) if (!code.has(name)) wrong.push(`${name} is on the page but not in runtime/abi.ts`);
  assert.equal(wrong, [], wrong.join("\n"));
});

test("docs/abi.md names each drop reason's metric label as the host does", () => {
  const wrong: string[] = [];
  for (const [name, value] of codeNumbers()) {
    if (!name.startsWith("DropReason.")) continue;
    const label = rows.get(name)?.[1];
    if (label !== `\`${dropReasonName(value as number)}\``) wrong.push(`${name}: the page says ${label}, the host ${dropReasonName(value as number)}`);
  }
  assert.equal(wrong, [], wrong.join("\n"));
  assert.is(dropReasonName(257), WAT_REASON, "a filter's own code is filter_<code>");
});

test.run();
