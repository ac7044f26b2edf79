// The AssemblyScript examples of docs/sdk.md, taken from its text: every one compiles with the
// SDK's flags (in memory: nothing is written into the checkout), every filter among them loads
// and takes a context, and the examples of the labelled counter and of the RTCP writer do what
// the text says they do. So the guide cannot drift from the SDK.
import * as assert from "uvu/assert";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { FilterHarness, PacketFlag, buildRtp } from "../sdk/harness/index.js";
import { suite } from "./lib/suite.js";
import { ROOT } from "./lib/paths.js";
import { decodeRtcp } from "./lib/rtcp-decode.js";
import { compileFilterSource } from "./lib/compile-source.js";

const test = suite("sdk docs examples", { timeoutMs: 240_000 });


/** The ```ts blocks of docs/sdk.md and docs/sdk-contexts.md written in AssemblyScript (they import the SDK's assembly). */
async function examples(): Promise<string[]> {
  const doc = (await Promise.all(["sdk.md", "sdk-contexts.md"].map((f) => readFile(join(ROOT, "docs", f), "utf8")))).join("\n");
  return [...doc.matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m) => m[1]!).filter((b) => b.includes('from "../../../sdk/assembly'));
}


test("the scaffold's commented nameDropReason example, uncommented, compiles and names the filter's own codes", async () => {
  const template = await readFile(join(ROOT, "sdk", "scaffold", "template", "assembly", "index.ts"), "utf8");
  const example = /^(\s*)\/\/\s+(nameDropReason\(.*;)/gm;
  assert.is([...template.matchAll(example)].length, 2, "the template shows nameDropReason, for a drop and a discard");
  const source = template
    .replace(example, "$1$2")
    .replaceAll("../node_modules/msm/sdk/assembly/", "../../../sdk/assembly/")
    .replace("defineCounter, metricAdd, register,", "defineCounter, metricAdd, register, nameDropReason, DropClass,")
    // the payload type refusal under the example's first code, to see its name at work
    .replace("pkt.drop(DropReason.PayloadTypeNotAllowed)", "pkt.drop(DropReason.FilterDefinedBase)");
  const h = await FilterHarness.load(await compileFilterSource(source, "scaffoldexample"), { name: "scaffold-example" });
  const ctx = h.createContext({ payloadTypes: [96] });
  const { reasonName, discard } = h.run({ ctx, bytes: buildRtp({ seq: 1, payloadType: 97 }) });
  assert.equal({ reasonName, discard }, { reasonName: "too_late", discard: false });
});

const built = new Map<string, Uint8Array>();

test("every AssemblyScript example compiles; every filter among them loads and takes a context", async () => {
  const blocks = await examples();
  assert.ok(blocks.length >= 7, `${blocks.length} examples`);
  for (const source of blocks) {
    const wasm = await compileFilterSource(source, "docexample");
    const name = /register\(new (\w+)\(/.exec(source)?.[1];
    if (!source.includes("register(")) continue; // a helper, not a filter
    assert.ok(name, "a filter example names its class");
    built.set(name!, wasm);
    const h = await FilterHarness.load(wasm, { name: name!.toLowerCase() });
    assert.ok(h.createContext({}) > 0, name);
  }
  assert.ok(built.has("SsrcCounter") && built.has("Reporter") && built.has("GapCount"), `the labelled-metric, RTCP and context-factory examples are there: ${[...built.keys()].join(", ")}`);
});

test("\"Metrics with a label\": packets counted per SSRC", async () => {
  const h = await FilterHarness.load(built.get("SsrcCounter")!, { name: "ssrc-counter" });
  const ctx = h.createContext();
  h.runBatch([0x1111, 0x2222, 0x1111].map((ssrc, i) => ({ ctx, bytes: buildRtp({ seq: i, ssrc }) })));
  assert.equal(h.metricSeries("packets_by_ssrc", ctx), new Map([["4369", 2], ["8738", 1]]));
});

test("\"Writing RTCP\": every second an RR about the stream heard and the SDES CNAME, upstream", async () => {
  const h = await FilterHarness.load(built.get("Reporter")!, { name: "reporter" });
  const ctx = h.createContext();
  assert.equal(h.advanceTime(1_000_000), [], "nothing heard, nothing reported");
  h.run({ ctx, bytes: buildRtp({ seq: 4242, ssrc: 0xcafe }) });
  const out = h.advanceTime(1_000_000);
  assert.is(out.length, 1);
  assert.is(out[0]!.flags, PacketFlag.Rtcp | PacketFlag.Upstream);
  const me = (0x4d534d00 | ctx) >>> 0;
  assert.equal(decodeRtcp(out[0]!.bytes), [
    { type: "RR", ssrc: me, blocks: [{ ssrc: 0xcafe, fractionLost: 0, cumulativeLost: 0, highestSeq: 4242, jitter: 0, lastSr: 0, delaySinceLastSr: 0 }] },
    { type: "SDES", chunks: [{ ssrc: me, items: [{ type: 1, text: "reporter@msm.example" }] }] },
  ]);
});

test("sdk-contexts.md's GapCount: gaps counted, too-large dropped, a bad maxSize refused by name, the last sequence number carried across a swap", async () => {
  const h = await FilterHarness.load(built.get("GapCount")!, { name: "gapcount" });
  const ctx = h.createContext({ maxSize: 200 });
  h.runBatch([1, 2, 5, 6].map((seq) => ({ ctx, bytes: buildRtp({ seq, ssrc: 7 }) })));
  assert.is(h.metric("sequence_gaps", ctx), 1, "2 -> 5 is one gap");
  assert.is(h.run({ ctx, bytes: buildRtp({ seq: 7, ssrc: 7, payloadSize: 300 }) }).reasonName, "too_large");
  assert.match(h.refusal({ maxSize: 5 }).reason, /maxSize/);
  const swapped = await h.swap();
  assert.equal(swapped.carried, [ctx]);
  // the dropped 7 did not move the last sequence number (6): 9 is a gap only to an instance that knew 6
  h.run({ ctx, bytes: buildRtp({ seq: 9, ssrc: 7 }) });
  assert.is(h.metric("sequence_gaps", ctx), 2, "6 -> 9 after the swap: the new instance took the old one's last sequence number");
});

test("\"RTP\"'s stripExtension: the extension goes, the header and payload stay, a packet without one is untouched", async () => {
  const helper = (await examples()).find((b) => b.includes("export function stripExtension"));
  assert.ok(helper, "docs/sdk.md shows stripExtension");
  const source = `${helper!.replace('import { Packet, RtpPacket } from "../../../sdk/assembly";', 'import { Filter, Packet, RtpPacket, register } from "../../../sdk/assembly";')}
export * from "../../../sdk/assembly/exports";
class Strip extends Filter { onPacket(p: Packet): void { stripExtension(p); } }
register(new Strip());
`;
  const h = await FilterHarness.load(await compileFilterSource(source, "docstrip"), { name: "strip" });
  const ctx = h.createContext();
  const bare = buildRtp({ seq: 5, csrcs: [0xabc], payloadSize: 3, payloadByte: 9 });
  const withExt = buildRtp({ seq: 5, csrcs: [0xabc], payloadSize: 3, payloadByte: 9, extensions: [[1, new Uint8Array([0xaa, 0xbb])], [3, new Uint8Array(5)]] });
  assert.is(withExt.length, bare.length + 4 + 12, "two elements take 12 bytes after the extension's 4-byte header");
  assert.equal([...h.run({ ctx, bytes: withExt }).bytes], [...bare]);
  assert.equal([...h.run({ ctx, bytes: bare }).bytes], [...bare]);
});

test.run();
