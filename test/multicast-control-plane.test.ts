// Multicast fields and the destination limit through the control plane: an msmctl manifest, the
// server's apply check (the proxy's own rules, field paths in the request's terms), the stored
// record, and the agent's conversion of a snapshot into the proxy's config.
import * as assert from "uvu/assert";
import { planSnapshot } from "../controlplane/agent/snapshot-config.js";
import { proxyService, type Segment } from "../controlplane/api/proto.js";
import { describeSegment } from "../cli/msmctl/describe.js";
import { ManifestError, parseManifests, toManifest, toSegment } from "../cli/msmctl/manifest.js";
import { planApply } from "../controlplane/server/segments.js";
import { DesiredState } from "../controlplane/server/state.js";
import { legMulticast, validateProxyConfig } from "../runtime/index.js";
import { suite } from "./lib/suite.js";

const test = suite("multicast through the control plane");

const MANIFEST = `kind: Segment
metadata: { name: cam-mc }
spec:
  proxy: node-1
  listen: { address: 239.1.1.1, port: 5004, interface: 10.0.0.2 }
  source: { address: 10.0.0.1, port: 5004 }
  destinations: [{ address: 239.2.2.2, port: 6004 }]
  multicast: { ttl: 4, interface: 10.0.1.1 }
  legs:
    - { name: fec-col, listen: { address: 239.1.1.3, port: 5006, interface: 10.0.0.2 }, send: false }
`;

function refusedWith(work: () => unknown, pattern: RegExp, label = ""): void {
  try {
    work();
  } catch (err) {
    assert.match((err as Error).message, pattern, label);
    return;
  }
  assert.unreachable(`${label}: not refused: expected ${pattern}`);
}

test("a manifest's multicast keys reach the request, the stored record, the listing and the proxy's config unchanged", () => {
  const { manifests } = parseManifests(MANIFEST, "cam.yaml");
  const segment = toSegment(manifests[0]!);
  assert.equal(segment.listen, { address: "239.1.1.1", port: 5004, rtcpPort: 0, interface: "10.0.0.2" });
  assert.equal(segment.multicast, { ttl: 4, interface: "10.0.1.1", loopback: false });
  // the listing as msmctl prints it takes the same keys back
  const again = toSegment(parseManifests(JSON.stringify(toManifest({ ...segment, revision: 3 })), "listing").manifests[0]!);
  assert.equal(again, segment);

  const plan = planApply([segment], new DesiredState());
  const stored = JSON.parse((plan.ops[0] as { value: string }).value) as Segment;
  assert.equal(stored.listen, segment.listen);
  assert.equal(stored.multicast, segment.multicast);

  const { config } = planSnapshot({ version: 1, segments: [{ ...stored, revision: 1 }], filters: [] }, "/tmp", 1);
  const seg = validateProxyConfig(config).segments[0]!;
  assert.equal(seg.listen, { address: "239.1.1.1", port: 5004, interface: "10.0.0.2" });
  assert.equal(seg.multicast, { ttl: 4, interface: "10.0.1.1", loopback: false });
  assert.equal(seg.legs[0]!.listen, { address: "239.1.1.3", port: 5006, interface: "10.0.0.2" });
});

test("the defaults are stored as no multicast at all: a segment stored before multicast existed is unchanged when applied again", () => {
  const { manifests } = parseManifests(MANIFEST.replace("  multicast: { ttl: 4, interface: 10.0.1.1 }\n", "  multicast: { ttl: 16 }\n"), "cam.yaml");
  const stored = JSON.parse((planApply([toSegment(manifests[0]!)], new DesiredState()).ops[0] as { value: string }).value) as Record<string, unknown>;
  assert.not.ok("multicast" in stored);
});

const PATH_B = `kind: Segment
metadata: { name: cam-2022-7 }
spec:
  proxy: node-1
  listen: { address: 10.0.0.2, port: 5004 }
  egress: { address: 10.91.1.1 }
  destinations: [{ address: 239.10.1.1, port: 6200 }]
  multicast: { ttl: 2, interface: 10.91.1.1 }
  legs:
    - { name: path-b, receive: false, egress: { address: 10.91.2.1 }, destinations: [{ address: 239.10.2.1, port: 6200 }], multicast: { ttl: 3, loopback: false } }
    - { name: path-c, receive: false, destinations: [{ address: 239.10.3.1, port: 6200 }], multicast: { interface: 10.91.3.1 } }
    - { name: fec, portOffset: 2, receive: false }
`;

test("a leg's own multicast (ST 2022-7 path B): only the keys written, through the manifest, the listing, the wire, the stored record and the proxy's config", () => {
  const segment = toSegment(parseManifests(PATH_B, "cam.yaml").manifests[0]!);
  assert.equal(segment.legs.map((l) => l.multicast ?? null), [{ ttl: 3, interface: "", loopback: false }, { ttl: undefined, interface: "10.91.3.1", loopback: undefined }, null]);
  const listing = toManifest({ ...segment, revision: 3 });
  assert.equal((listing.spec as { legs: { multicast?: unknown }[] }).legs.map((l) => l.multicast ?? null), [{ ttl: 3, loopback: false }, { interface: "10.91.3.1" }, null]);
  assert.equal(toSegment(parseManifests(JSON.stringify(listing), "listing").manifests[0]!), segment);
  // msmctl describe says where each leg's multicast leaves
  const described = describeSegment(segment, undefined, undefined);
  assert.match(described, /path-b: .*; multicast out: TTL 3, from the interface of 10\.91\.2\.1 \(its egress\), loopback off$/m);
  assert.match(described, /path-c: .*; multicast out: TTL 2, from 10\.91\.3\.1, loopback off$/m);

  // loopback false written is kept apart from loopback unset (the segment's) on the wire: proto3 optional
  const wire = proxyService.Connect!;
  const sent = { snapshot: { version: 1, segments: [{ ...segment, revision: 1 }], filters: [] } };
  const received = wire.responseDeserialize(wire.responseSerialize(sent)) as { snapshot: { segments: Segment[] } };
  const legs = received.snapshot.segments[0]!.legs;
  assert.equal([legs[0]!.multicast!.ttl, legs[0]!.multicast!.interface, legs[0]!.multicast!.loopback], [3, "", false]);
  assert.equal([legs[1]!.multicast!.ttl, legs[1]!.multicast!.interface, legs[1]!.multicast!.loopback], [undefined, "10.91.3.1", undefined]);
  assert.is(legs[2]!.multicast, null);

  const stored = JSON.parse((planApply([segment], new DesiredState()).ops[0] as { value: string }).value) as Segment;
  assert.equal(stored.legs.map((l) => l.multicast ?? null), [{ interface: "", ttl: 3, loopback: false }, { interface: "10.91.3.1" }, null]);
  const { config } = planSnapshot({ version: 1, segments: [{ ...received.snapshot.segments[0]!, revision: 1 }], filters: [] }, "/tmp", 1);
  const seg = validateProxyConfig(config).segments[0]!;
  assert.equal(seg.legs.map((l) => l.multicast ?? null), [{ ttl: 3, loopback: false }, { interface: "10.91.3.1" }, null]);
  assert.equal(legMulticast(seg, 0), { ttl: 3, loopback: false, interface: "10.91.2.1", ofEgress: true, field: "legs[0].egress.address" });
});

test("a leg's multicast refused with the field named: msmctl before sending, the server for any client", () => {
  refusedWith(() => parseManifests(PATH_B.replace("multicast: { ttl: 3, loopback: false }", "multicast: { ttl: 300 }"), "b.yaml"), /b\.yaml: document 1: spec\.legs\[0\]\.multicast\.ttl: /);
  refusedWith(() => parseManifests(PATH_B.replace("multicast: { ttl: 3, loopback: false }", "multicast: { hops: 3 }"), "b.yaml"), /spec\.legs\[0\]\.multicast\.hops: unknown key/);
  const segment = toSegment(parseManifests(PATH_B, "cam.yaml").manifests[0]!);
  const receiveOnly = { ...segment, legs: [{ ...segment.legs[0]!, receive: true, send: false, listen: { address: "239.10.9.1", port: 5010, rtcpPort: 0 } }] };
  refusedWith(() => planApply([receiveOnly], new DesiredState()), /segments\[0\]\.legs\[0\]\.multicast: the leg does not send \(send: false\)/);
  const named = { ...segment, legs: [{ ...segment.legs[0]!, multicast: { ttl: 3, interface: "eth1", loopback: false } }] };
  refusedWith(() => planApply([named], new DesiredState()), /segments\[0\]\.legs\[0\]\.multicast\.interface: 'eth1': an IPv4 group/);
});

test("refused with the field named: 100,000 destinations (msmctl, before sending; the server, for any client), an interface where nothing is joined, a unicast group", () => {
  const many = Array.from({ length: 100_000 }, (_, k) => ({ address: "10.1.0.1", port: 1024 + (k % 60_000), rtcpPort: 0 }));
  const text = MANIFEST.replace("destinations: [{ address: 239.2.2.2, port: 6004 }]", `destinations: ${JSON.stringify(many.map(({ address, port }) => ({ address, port })))}`);
  refusedWith(() => parseManifests(text, "big.yaml"), /big\.yaml: document 1: spec\.destinations: 100000 destinations, at most 4096 per segment/);
  assert.throws(() => parseManifests(text, "big.yaml"), (e: unknown) => e instanceof ManifestError);

  const segment = toSegment(parseManifests(MANIFEST, "cam.yaml").manifests[0]!);
  const server: [string, Segment, RegExp][] = [
    ["100,000 destinations", { ...segment, destinations: many }, /^segments\[0\]\.destinations: 100000 destinations, at most 4096 per segment/m],
    ["an interface on a destination", { ...segment, destinations: [{ address: "239.2.2.2", port: 6004, rtcpPort: 0, interface: "10.0.1.1" }] }, /segments\[0\]\.destinations\[0\]\.interface: only a listen endpoint joins a multicast group/],
    ["a unicast address as the group", { ...segment, listen: { address: "10.0.0.2", port: 5004, rtcpPort: 0, interface: "10.0.0.2" } }, /segments\[0\]\.listen\.interface: only a multicast group is joined, and listen\.address 10\.0\.0\.2 is not one/],
    ["a multicast sender", { ...segment, source: { address: "239.9.9.9", port: 5004, rtcpPort: 0 } }, /segments\[0\]\.source\.address: 239\.9\.9\.9 is a multicast group/],
  ];
  for (const [label, seg, pattern] of server) refusedWith(() => planApply([seg], new DesiredState()), pattern, label);
});

test.run();
