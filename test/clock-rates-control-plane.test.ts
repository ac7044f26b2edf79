// A segment's clockRates (docs/streams.md) through the control plane: an msmctl manifest, the
// gRPC wire (proto map field), the server's check and stored record, and the agent's conversion
// into the proxy's config, where the per-stream stats read them.
import * as assert from "uvu/assert";
import { planSnapshot } from "../controlplane/agent/snapshot-config.js";
import { adminService, type Segment } from "../controlplane/api/proto.js";
import { parseManifests, toManifest, toSegment } from "../cli/msmctl/manifest.js";
import { planApply } from "../controlplane/server/segments.js";
import { DesiredState } from "../controlplane/server/state.js";
import { validateProxyConfig } from "../runtime/index.js";
import { suite } from "./lib/suite.js";

const test = suite("clockRates through the control plane");

const MANIFEST = `kind: Segment
metadata: { name: mic }
spec:
  proxy: node-1
  listen: { address: 10.0.0.2, port: 5004 }
  destinations: [{ address: 10.0.1.2, port: 6004 }]
  clockRates: { "111": 48000, "96": 90000 }
`;

test("a manifest's clockRates cross the wire, are stored, listed and reach the proxy's config", () => {
  const segment = toSegment(parseManifests(MANIFEST, "mic.yaml").manifests[0]!);
  assert.equal(segment.clockRates, { "111": 48000, "96": 90000 });
  // the wire: ApplySegments' request encodes and decodes the map
  const method = adminService.ApplySegments!;
  const decoded = method.requestDeserialize(method.requestSerialize({ segments: [segment], dryRun: false })) as { segments: Segment[] };
  assert.equal(decoded.segments[0]!.clockRates, { "111": 48000, "96": 90000 });
  // the listing takes the same keys back
  assert.equal(toSegment(parseManifests(JSON.stringify(toManifest({ ...decoded.segments[0]!, revision: 2 })), "listing").manifests[0]!).clockRates, segment.clockRates);

  const plan = planApply(decoded.segments, new DesiredState());
  const stored = JSON.parse((plan.ops[0] as { value: string }).value) as Segment;
  assert.equal(stored.clockRates, { "111": 48000, "96": 90000 });
  const { config } = planSnapshot({ version: 1, segments: [{ ...stored, revision: 1 }], filters: [] }, "/tmp", 1);
  assert.equal(validateProxyConfig(config).segments[0]!.clockRates, { "111": 48000, "96": 90000 });
});

test("none given: nothing stored (a record from before clockRates compares equal); a bad one is refused naming the field", () => {
  const plain = toSegment(parseManifests(MANIFEST.replace(/  clockRates.*\n/, ""), "mic.yaml").manifests[0]!);
  const stored = JSON.parse((planApply([plain], new DesiredState()).ops[0] as { value: string }).value) as Record<string, unknown>;
  assert.not.ok("clockRates" in stored);
  assert.throws(() => parseManifests(MANIFEST.replace('"111": 48000', '"200": 48000'), "mic.yaml"), /spec\.clockRates\.200: '200' is not a payload type \(0-127\)/);
  assert.throws(() => planApply([{ ...plain, clockRates: { "111": 12 } }], new DesiredState()), /segments\[0\]\.clock_rates\.111: .*1000/);
});

test.run();
