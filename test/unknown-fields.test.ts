// controlplane/api/unknown-fields.ts: the fields a snapshot holds that this build's msm.proto does
// not define, found on the wire (the agent refuses such a snapshot: test/agent.test.ts).
import * as assert from "uvu/assert";
import protobuf from "protobufjs";
import { join } from "node:path";
import { unknownFields } from "../controlplane/api/unknown-fields.js";
import { ROOT } from "./lib/paths.js";
import { suite } from "./lib/suite.js";

const test = suite("unknown protobuf fields");
const root = protobuf.loadSync(join(ROOT, "controlplane", "proto", "msm.proto"));
const Snapshot = root.lookupType("msm.v1.Snapshot");

const segment = {
  name: "cam", proxy: "n1", listen: { address: "127.0.0.1", port: 5004 }, rtcpMux: true,
  destinations: [{ address: "127.0.0.1", port: 6000 }, { address: "127.0.0.2", port: 6000, ssrc: 7 }],
  chain: [{ filter: "validate", configJson: "{}" }, { filter: "srtp", version: "1" }],
  legs: [{ name: "fec", portOffset: 2, destinations: [{ address: "127.0.0.1", port: 7000 }] }],
  clockRates: { 96: 90000, 111: 48000 },
};

test("a snapshot of every kind of field this build defines (nested, repeated, a map, a oneof) has none unknown", () => {
  const bytes = Snapshot.encode(Snapshot.fromObject({ version: 9, segments: [segment, segment], filters: [{ name: "validate", version: "1", sha256: "ab", size: 10 }] })).finish();
  assert.equal(unknownFields(Snapshot, bytes), []);
  const Control = root.lookupType("msm.v1.ControlMessage");
  assert.equal(unknownFields(Control, Control.encode(Control.fromObject({ snapshot: { version: 1, segments: [segment] } })).finish()), []);
});

test("fields a newer .proto added are found where they are, by path, in each element of a repeated field", () => {
  const newer = protobuf.loadSync(join(ROOT, "controlplane", "proto", "msm.proto"));
  newer.lookupType("msm.v1.Segment").add(new protobuf.Field("futureSetting", 900, "uint32"));
  newer.lookupType("msm.v1.Endpoint").add(new protobuf.Field("futureEndpointKey", 901, "string"));
  newer.lookupType("msm.v1.Snapshot").add(new protobuf.Field("futureTop", 902, "bool"));
  const NewerSnapshot = newer.lookupType("msm.v1.Snapshot");
  const future = { ...segment, futureSetting: 1, destinations: [segment.destinations[0], { ...segment.destinations[1], futureEndpointKey: "x" }] };
  const bytes = NewerSnapshot.encode(NewerSnapshot.fromObject({ version: 2, segments: [segment, future], futureTop: true })).finish();
  assert.equal(unknownFields(Snapshot, bytes).sort(), [
    "(top level): field 902 of msm.v1.Snapshot",
    "segments[1].destinations[1]: field 901 of msm.v1.Endpoint",
    "segments[1]: field 900 of msm.v1.Segment",
  ]);
  // what this build's decoder makes of the same bytes: the known fields, the new ones gone
  const decoded = Snapshot.toObject(Snapshot.decode(bytes)) as { segments: { name: string }[] };
  assert.equal(decoded.segments.map((s) => s.name), ["cam", "cam"]);
});

test("bytes that are not a message give none (the decoder that read them first refuses them)", () => {
  assert.equal(unknownFields(Snapshot, Uint8Array.from([0x12, 0xff, 0xff])), []);
});

test.run();
