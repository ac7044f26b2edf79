// msmctl, the operator's CLI: manifests checked locally with the field's path, the flag parser,
// the table and rate arithmetic, and every command against a real control plane (file store),
// with a proxy on the real ProxyService stream that ACKs, NACKs and reports stats; in plain text
// and with mTLS (an admin certificate works, a proxy's is refused).
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Server, type Client, type ClientDuplexStream } from "@grpc/grpc-js";
import { adminService, ProxyServiceClient, type ControlMessage, type FilterRef, type ProxyStats, type ProxyStatus, type Snapshot } from "../controlplane/api/proto.js";
import { createPki } from "../controlplane/security/pki.js";
import { channelCredentials, serverCredentials, type TlsFiles } from "../controlplane/security/tls.js";
import { startControlPlane, type ControlPlane } from "../controlplane/server/index.js";
import { runMsmctl } from "../cli/msmctl/main.js";
import type { Io } from "../cli/msmctl/context.js";
import { parseArgs } from "../cli/msmctl/flags.js";
import { age, bytes, table } from "../cli/msmctl/format.js";
import { ManifestError, parseManifests, refusalInManifestTerms, toManifest, toSegment } from "../cli/msmctl/manifest.js";
import { locateProxyRefusal } from "../cli/msmctl/apply.js";
import { incompleteReports, mergeStatsPages, parseProxyStats, segmentRates } from "../cli/msmctl/stats.js";
import { configState, describeProxy, describeSegment, failureText, newestVersions, segmentStatsLines } from "../cli/msmctl/describe.js";
import { topRows } from "../cli/msmctl/top.js";
import { PROXY_WIDE_HEADERS, proxyRows, SEGMENT_WIDE_HEADERS, segmentRows } from "../cli/msmctl/get.js";
import { outcomeLines, waitForProxies } from "../cli/msmctl/wait.js";
import type { AdminApi } from "../cli/msmctl/client.js";
import { suite } from "./lib/suite.js";
import { pageStats, STATS_MAX_PAGES, STATS_PAGE_BYTES } from "../controlplane/api/stats-pages.js";
import { validateProxyConfig, type ProxySnapshot } from "../runtime/index.js";
import { filterNameProblem, scaffoldFilter } from "../sdk/scaffold/index.js";
import { filterWasm, fixture, ROOT } from "./lib/paths.js";

const MSMCTL = join(ROOT, "dist", "cli", "msmctl.js");

const SEGMENTS_YAML = `# two cameras on one node, one on another
kind: Segment
metadata: { name: cam-1 }
spec:
  proxy: node-1
  listen: { address: 127.0.0.1, port: 5004 }
  destinations:
    - { address: 127.0.0.1, port: 6004 }
    - { address: 127.0.0.1, port: 6014, rtcpPort: 6100 }
  chain:
    - filter: validate@1.0.0
      config: { allowedPayloadTypes: [96] }
  failure: { mode: closed, maxFailures: 3 }
---
apiVersion: msm/v1
kind: Segment
metadata: { name: cam-2 }
spec:
  proxy: node-1
  listen: { address: "::1", port: 5006 }
  rtcpMux: true
  egress: { address: "::1" }
  destinations: [{ address: "::1", port: 6006 }]
---
kind: Segment
metadata: { name: cam-3 }
spec:
  proxy: node-2
  listen: { address: 127.0.0.1, port: 5008 }
  destinations: [{ address: 127.0.0.1, port: 6008 }]
  source: { address: 127.0.0.1, port: 4000, rtcpPort: 4001 }
`;

/** A segment with legs, in the proxy file's keys: SMPTE 2022-1 FEC on + 2 and + 4, a second path, a send-only repair leg. */
const LEGS_YAML = `kind: Segment
metadata: { name: fec-1 }
spec:
  proxy: node-4
  listen: { address: 127.0.0.1, port: 5604 }
  destinations: [{ address: 127.0.0.1, port: 6604 }, { address: 127.0.0.1, port: 6614 }]
  legs:
    - { name: fec-col, portOffset: 2 }
    - { name: fec-row, portOffset: 4, send: false }
    - name: path-b
      listen: { port: 5700 }
      destinations: [{ address: 127.0.0.1, port: 6700 }]
      egress: { address: 127.0.0.1 }
      redundant: true
    - name: repair
      receive: false
      destinations: [{ address: 127.0.0.1, port: 6800 }]
      egress: { address: 127.0.0.1, port: 5800 }
`;

// ---------------------------------------------------------------- local parts

const local = suite("msmctl: manifests, flags, formatting", { timeoutMs: 10_000 });

local("manifests: several documents become ApplySegmentsRequest segments", () => {
  const { manifests } = parseManifests(SEGMENTS_YAML, "cams.yaml");
  assert.equal(manifests.map((m) => m.metadata.name), ["cam-1", "cam-2", "cam-3"]);
  const s = manifests.map(toSegment);
  assert.equal(s[0], {
    name: "cam-1",
    proxy: "node-1",
    listen: { address: "127.0.0.1", port: 5004, rtcpPort: 0 },
    rtcpMux: false,
    egress: null,
    destinations: [
      { address: "127.0.0.1", port: 6004, rtcpPort: 0 },
      { address: "127.0.0.1", port: 6014, rtcpPort: 6100 },
    ],
    source: null,
    chain: [{ filter: "validate", version: "1.0.0", configJson: '{"allowedPayloadTypes":[96]}' }],
    failure: { mode: "closed", restartBackoffMs: 0, maxBackoffMs: 0, maxFailures: 3 },
    revision: 0,
    legs: [],
  });
  assert.equal(s[1]!.egress, { address: "::1", port: 0, rtcpPort: 0 });
  assert.is(s[1]!.rtcpMux, true);
  assert.equal(s[2]!.source, { address: "127.0.0.1", port: 4000, rtcpPort: 4001 });
});

local("manifests: JSON, a list, and kind: List are accepted too", () => {
  const one = JSON.parse(JSON.stringify(parseManifests(SEGMENTS_YAML, "x").manifests[0]));
  assert.is(parseManifests(JSON.stringify(one), "a.json").manifests.length, 1);
  assert.is(parseManifests(JSON.stringify([one, { ...one, metadata: { name: "b" } }]), "a.json").manifests.length, 2);
  assert.is(parseManifests(JSON.stringify({ apiVersion: "msm/v1", kind: "List", items: [one] }), "a.json").manifests.length, 1);
  assert.is(parseManifests(`---\n${SEGMENTS_YAML}\n---\n`, "x").manifests.length, 3, "empty documents are skipped");
});

local("manifests: legs, in the proxy file's keys, become Leg messages (unset port_offset absent; receive and send as written, default true)", () => {
  const legs = toSegment(parseManifests(LEGS_YAML, "fec.yaml").manifests[0]!).legs;
  const none = { address: "", port: 0, rtcpPort: 0 };
  assert.equal(legs, [
    { name: "fec-col", portOffset: 2, listen: null, receive: true, destinations: [], egress: null, send: true },
    { name: "fec-row", portOffset: 4, listen: null, receive: true, destinations: [], egress: null, send: false },
    { name: "path-b", portOffset: undefined, listen: { ...none, port: 5700 }, receive: true, destinations: [{ address: "127.0.0.1", port: 6700, rtcpPort: 0 }], egress: { ...none, address: "127.0.0.1" }, send: true, redundant: true },
    { name: "repair", portOffset: undefined, listen: null, receive: false, destinations: [{ address: "127.0.0.1", port: 6800, rtcpPort: 0 }], egress: { address: "127.0.0.1", port: 5800, rtcpPort: 0 }, send: true },
  ]);
  const back = toManifest(toSegment(parseManifests(LEGS_YAML, "fec.yaml").manifests[0]!)) as { spec: { legs: unknown } };
  assert.equal(back.spec.legs, [
    { name: "fec-col", portOffset: 2 },
    { name: "fec-row", portOffset: 4, send: false },
    { name: "path-b", listen: { port: 5700 }, destinations: [{ address: "127.0.0.1", port: 6700 }], egress: { address: "127.0.0.1" }, redundant: true },
    { name: "repair", receive: false, destinations: [{ address: "127.0.0.1", port: 6800 }], egress: { address: "127.0.0.1", port: 5800 } },
  ], "get -o yaml prints what the operator wrote");
  assert.equal(toSegment(parseManifests(SEGMENTS_YAML, "x").manifests[0]!).legs, [], "no legs: none");
});

local("-o wide: every destination and leg, the source, egress, RTCP and failure of a segment; a proxy's peer, runtime, workers, ABI, segments not running and whole refusal", () => {
  const seg = { ...toSegment(parseManifests(LEGS_YAML, "fec.yaml").manifests[0]!), revision: 3 };
  assert.equal(segmentRows([seg])[0], ["fec-1", "node-4", "127.0.0.1:5604", "127.0.0.1:6604,127.0.0.1:6614", "fec-col,fec-row,path-b +1 more", "-", "3"]);
  assert.equal(segmentRows([seg], true)[0], ["fec-1", "node-4", "127.0.0.1:5604", "127.0.0.1:6604,127.0.0.1:6614", "fec-col,fec-row,path-b,repair", "-", "-", "port+1", "closed", "-", "3"]);
  assert.is(SEGMENT_WIDE_HEADERS.length, segmentRows([seg], true)[0]!.length);
  const cam = toSegment(parseManifests(SEGMENTS_YAML, "x").manifests[2]!);
  assert.equal(segmentRows([cam], true)[0]!.slice(5, 7), ["127.0.0.1:4000", "-"], "a source with its port");
  const reason = "snapshot 7: segments[0].chain[0]: filter 'validate' refused its config: allowedPayloadTypes[0] must be 0-127";
  const p = {
    nodeId: "node-4", connected: true, peer: "127.0.0.1:51234", server: "cp-1", lastSeenMs: 1000, capabilities: ["workers=2", "runtime=bun"], abiVersions: ["1.4"],
    desiredVersion: 7, ackedVersion: 6, nackedVersion: 7, nackError: reason, nackRetryAtMs: 0, notRunning: ["cam-9"], notRunningError: "port taken", statsDropped: "", statsDroppedAtMs: 0,
  };
  const row = proxyRows([p], 1000, true)[0]!;
  assert.equal(row, ["node-4", "yes", "cp-1", "7", "6 (1 not running)", `7: ${reason.replace("snapshot 7: ", "")}`, "127.0.0.1:51234", "bun", "2", "1.4", "cam-9", "0s"]);
  assert.is(PROXY_WIDE_HEADERS.length, row.length);
  assert.ok(proxyRows([p], 1000)[0]![5]!.endsWith("…"), "the narrow table cuts the refusal");
  // a real proxy's refusal names the snapshot's field and the segment: said as describe says it
  const named = { ...p, nackError: "snapshot 7 not applied, the running config is unchanged: segments[0].chain[1].config_json: unknown key x (segment 'cam-9')" };
  assert.is(proxyRows([named], 1000, true)[0]![5], "7: segment/cam-9 spec.chain[1].config: unknown key x");
});

local("manifests: toManifest(toSegment(m)) gives back what the operator wrote", () => {
  for (const m of [...parseManifests(SEGMENTS_YAML, "x").manifests, ...parseManifests(LEGS_YAML, "x").manifests]) {
    const back = toManifest({ ...toSegment(m), revision: 7 }) as { metadata: { name: string; revision: number }; spec: unknown };
    assert.equal(back.metadata, { name: m.metadata.name, revision: 7 });
    assert.equal(toSegment(parseManifests(JSON.stringify(back), "y").manifests[0]!), toSegment(m));
  }
});

local("--wait reads a proxy's answer against the version meant for it: a store reset's old ACK is no answer, a refusal then a run is a run", async () => {
  const status = (over: Partial<ProxyStatus>): ProxyStatus => ({ nodeId: "n", connected: true, peer: "", server: "cp-0", lastSeenMs: Date.now(), capabilities: [], abiVersions: [], desiredVersion: 7, ackedVersion: 0, nackedVersion: 0, nackError: "", nackRetryAtMs: 0, notRunning: [], notRunningError: "", statsDropped: "", statsDroppedAtMs: 0, ...over });
  const api = (s: ProxyStatus) => ({ listProxies: async () => ({ proxies: [s] }) }) as unknown as AdminApi;
  const one = async (s: ProxyStatus, revision = 7) => (await waitForProxies(api(s), new Map([["n", revision]]), 300))[0]!;
  // after a reset: the proxy connected saying it runs 10 (last-good.json), then refused 7
  assert.equal([(await one(status({ ackedVersion: 10, nackedVersion: 7, nackError: "version 7 is older than the running 10" }))).result], ["refused"]);
  assert.is((await one(status({ ackedVersion: 10 }))).result, "timeout", "an ACK above what is meant for it is no answer");
  assert.is((await one(status({ ackedVersion: 7, nackedVersion: 7 }))).result, "runs", "refused once (a port held), then run");
  assert.is((await one(status({ ackedVersion: 7, desiredVersion: 8 }))).result, "timeout", "a newer version meant for it, not run yet");
  assert.is((await one(status({ ackedVersion: 8, desiredVersion: 8 }))).result, "runs");
  assert.equal(await one(status({ ackedVersion: 7, notRunning: ["cam"], notRunningError: "port taken" })), { proxy: "n", result: "partial", revision: 7, detail: "port taken", notRunning: ["cam"] });
  assert.is((await one(status({ ackedVersion: 5, desiredVersion: 5 }), 0)).result, "runs", "0: whatever it is meant to run now");
});

local("describe shows a proxy's refusal at the manifest's field: segment/NAME spec.chain[0].rootConfig, not the snapshot's root_config_json", () => {
  assert.is(
    refusalInManifestTerms("snapshot 40 applied, except the change it refused (cam runs its previous version): segments[3].chain[0].root_config_json: filter x@1 rejected its root config: unknown key y (segment 'cam'); segments[0].listen: port taken (segment 'b')"),
    "snapshot 40 applied, except the change it refused (cam runs its previous version): segment/cam spec.chain[0].rootConfig: filter x@1 rejected its root config: unknown key y; segment/b spec.listen: port taken",
  );
});

local("--wait's line for a partial run: segments down are NOT running, segments whose change was refused run their previous version; the reasons said once", () => {
  const partial = (detail: string, notRunning: string[]) => outcomeLines([{ proxy: "n", result: "partial", revision: 40, detail, notRunning }], 60_000);
  assert.is(
    partial("snapshot 40 applied, except the change it refused (cam runs its previous version): segments[0].chain[0].root_config_json: unknown key x (segment 'cam')", ["cam"]),
    "proxy/n runs revision 40 except cam, whose change it refused (it runs its previous version): segments[0].chain[0].root_config_json: unknown key x (segment 'cam')\n",
  );
  assert.is(
    partial("snapshot 40 applied, except the changes it refused; new-cam NOT running (cam runs its previous version): reasons", ["cam", "new-cam"]),
    "proxy/n runs revision 40 WITHOUT segment new-cam (NOT running) and except cam, whose change it refused (it runs its previous version): reasons\n",
  );
  assert.is(
    partial("snapshot 40 applied, except these segments, which are NOT running: segments[1]: bind EADDRINUSE", ["a", "b"]),
    "proxy/n runs revision 40 WITHOUT segments a, b (NOT running): segments[1]: bind EADDRINUSE\n",
  );
});

local("a proxy's refusal is said in the file's words: file, document, spec path (the agent's snapshot index and config_json are not the operator's)", () => {
  const { manifests, origins } = parseManifests(SEGMENTS_YAML, "cams.yaml");
  const loaded = manifests.map((manifest, i) => ({ manifest, source: "cams.yaml", origin: origins[i]! }));
  const text = "snapshot 42 not applied, the running config is unchanged: segments[1].chain[0].config_json: filter validate@1.0.0 rejected its config: bitrate cap must be positive (segment 'cam-1'); " +
    "segments[0].listen.rtcp_port: port 5007 (another process holds it) (segment 'cam-3'); segments[2].listen: bind failed (segment 'elsewhere')";
  assert.is(locateProxyRefusal(text, loaded),
    "snapshot 42 not applied, the running config is unchanged: cams.yaml: document 1: spec.chain[0].config: filter validate@1.0.0 rejected its config: bitrate cap must be positive; " +
    "cams.yaml: document 3: spec.listen.rtcpPort: port 5007 (another process holds it); segments[2].listen: bind failed (segment 'elsewhere')");
});

local("--wait waits on a refusal the proxy tries again (a port held for a moment): a later try that runs is a run, one still refused when the time is up is a refusal, said once as it goes", async () => {
  const status = (over: Partial<ProxyStatus>): ProxyStatus => ({ nodeId: "n", connected: true, peer: "", server: "cp-0", lastSeenMs: Date.now(), capabilities: [], abiVersions: [], desiredVersion: 7, ackedVersion: 5, nackedVersion: 0, nackError: "", nackRetryAtMs: 0, notRunning: [], notRunningError: "", statsDropped: "", statsDroppedAtMs: 0, ...over });
  const held = status({ nackedVersion: 7, nackError: "segments[0]: port 5004 (another process holds it)", nackRetryAtMs: Date.now() + 2000 });
  // refused and retried twice, then run
  const answers = [held, held, { ...held, nackRetryAtMs: Date.now() + 4000 }, status({ ackedVersion: 7, nackedVersion: 0 })];
  let polls = 0;
  const api = { listProxies: async () => ({ proxies: [answers[Math.min(polls++, answers.length - 1)]!] }) } as unknown as AdminApi;
  const lines: string[] = [];
  const [ran] = await waitForProxies(api, new Map([["n", 7]]), 10_000, false, (l) => lines.push(l));
  assert.equal([ran!.result, ran!.revision], ["runs", 7]);
  assert.is(lines.length, 1, `said once, not at every poll: ${lines.join("")}`);
  assert.match(lines[0]!, /^proxy\/n refused revision 7 and tries again in [12] s: segments\[0\]: port 5004 \(another process holds it\)\n$/);
  // still refused when the time is up
  const still = { listProxies: async () => ({ proxies: [held] }) } as unknown as AdminApi;
  const [refused] = await waitForProxies(still, new Map([["n", 7]]), 300);
  assert.equal(refused, { proxy: "n", result: "refused", revision: 7, detail: "segments[0]: port 5004 (another process holds it) (the proxy keeps trying)" });
  // a refusal not tried again ends the wait at once
  const final = { listProxies: async () => ({ proxies: [{ ...held, nackRetryAtMs: 0 }] }) } as unknown as AdminApi;
  const started = Date.now();
  assert.is((await waitForProxies(final, new Map([["n", 7]]), 5000))[0]!.result, "refused");
  assert.ok(Date.now() - started < 4000, "it did not wait for the time-out");
  // one tried again by a proxy that reconnects meanwhile (a replica's failover): waited for, then run
  const reconnecting = [{ ...held, connected: false }, { ...held, connected: false }, status({ ackedVersion: 7 })];
  let p2 = 0;
  const back = { listProxies: async () => ({ proxies: [reconnecting[Math.min(p2++, reconnecting.length - 1)]!] }) } as unknown as AdminApi;
  assert.is((await waitForProxies(back, new Map([["n", 7]]), 5000))[0]!.result, "runs");
  // describe says it
  assert.match(configState(held), "REFUSED version 7 (the proxy tries it again); runs version 5");
});

const badCases: [string, string, RegExp][] = [
  ["a typo in a destination", SEGMENTS_YAML.replace("port: 6008 }", "prot: 6008 }"), /^f\.yaml: document 3: spec\.destinations\[0\]\.prot: unknown key$/m],
  ["the port it then lacks", SEGMENTS_YAML.replace("port: 6008 }", "prot: 6008 }"), /^f\.yaml: document 3: spec\.destinations\[0\]\.port: required$/m],
  ["a port out of range", SEGMENTS_YAML.replace("port: 5004", "port: 70000"), /^f\.yaml: document 1: spec\.listen\.port: must be at most 65535$/m],
  ["a host name for an address", SEGMENTS_YAML.replace('address: "::1", port: 5006', "address: localhost, port: 5006"), /document 2: spec\.listen\.address: must be an IPv4 or IPv6 address/],
  ["a wrong type", SEGMENTS_YAML.replace("rtcpMux: true", "rtcpMux: yes please"), /document 2: spec\.rtcpMux: must be a boolean, got string/],
  ["an unknown top-level key", SEGMENTS_YAML.replace("metadata: { name: cam-2 }", "metadata: { name: cam-2 }\nstatus: {}"), /document 2: status: unknown key/],
  ["an unknown kind", SEGMENTS_YAML.replace("kind: Segment\nmetadata: { name: cam-3 }", "kind: Stream\nmetadata: { name: cam-3 }"), /document 3: kind: unknown kind "Stream"/],
  ["no kind", "metadata: { name: a }\n", /document 1: kind: required/],
  ["a bad filter reference", SEGMENTS_YAML.replace("validate@1.0.0", "Validate@"), /document 1: spec\.chain\[0\]\.filter: must be NAME or NAME@VERSION/],
  ["a config that is not a mapping", SEGMENTS_YAML.replace("config: { allowedPayloadTypes: [96] }", "config: [96]"), /document 1: spec\.chain\[0\]\.config: must be a mapping/],
  ["a bad failure mode", SEGMENTS_YAML.replace("mode: closed", "mode: sometimes"), /document 1: spec\.failure\.mode: must be "open" or "closed"/],
  ["no destinations", SEGMENTS_YAML.replace('destinations: [{ address: "::1", port: 6006 }]', "destinations: []"), /document 2: spec\.destinations: needs at least 1 item/],
  ["no proxy", SEGMENTS_YAML.replace("  proxy: node-2\n", ""), /document 3: spec\.proxy: required/],
  ["a bad name", SEGMENTS_YAML.replace("name: cam-3", "name: 'cam 3'"), /document 3: metadata\.name: must be 1-63 letters/],
  ["a name twice", SEGMENTS_YAML.replace("name: cam-3", "name: cam-1"), /document 3: metadata\.name: segment 'cam-1' appears twice \(first in document 1\)/],
  ["broken YAML", `${SEGMENTS_YAML}---\nkind: [\n`, /document 4: not valid YAML or JSON/],
  ["a list element", JSON.stringify([{ kind: "Segment", metadata: { name: "a" }, spec: { proxy: "n", listen: { address: "127.0.0.1", port: 1 }, destinations: [{ address: "127.0.0.1", port: 2, rtpc: 3 }] } }]), /document 1: \[0\]\.spec\.destinations\[0\]\.rtpc: unknown key/],
  ["nothing at all", "# empty\n", /^f\.yaml: no segments in it$/],
  ["a typo in a leg", LEGS_YAML.replace("portOffset: 2 }", "portOfset: 2 }"), /^f\.yaml: document 1: spec\.legs\[0\]\.portOfset: unknown key; did you mean 'portOffset'\?$/m],
  ["8 legs", LEGS_YAML.replace(/  legs:\n[\s\S]*$/, `  legs:\n${Array.from({ length: 8 }, (_, k) => `    - { name: leg-${k}, portOffset: ${2 + 2 * k} }`).join("\n")}\n`), /^f\.yaml: document 1: spec\.legs: at most 7 items$/m],
  ["a bad leg name", LEGS_YAML.replace("name: fec-col", "name: 'fec col'"), /document 1: spec\.legs\[0\]\.name: must be 1-63 letters/],
  ["a leg port offset of 0", LEGS_YAML.replace("portOffset: 2", "portOffset: 0"), /document 1: spec\.legs\[0\]\.portOffset: must be at least 1/],
  ["an rtcpPort on a leg destination (legs carry no RTCP)", LEGS_YAML.replace("port: 6700 }", "port: 6700, rtcpPort: 6701 }"), /document 1: spec\.legs\[2\]\.destinations\[0\]\.rtcpPort: unknown key/],
  ["an unquoted all-digit node id (YAML reads a number)", SEGMENTS_YAML.replace("proxy: node-2", "proxy: 20231"), /^f\.yaml: document 3: spec\.proxy: must be a string, got number: YAML reads a value of digits alone as a number \(a long one loses digits\); write it in quotes$/m],
  ["an unquoted 64-digit filter reference (YAML reads a float)", SEGMENTS_YAML.replace("filter: validate@1.0.0", `filter: ${"1".repeat(64)}`), /^f\.yaml: document 1: spec\.chain\[0\]\.filter: must be a string, got number: YAML reads a value of digits alone as a number \(a long one loses digits\); write it in quotes$/m],
  ["an unquoted true for a name", SEGMENTS_YAML.replace("name: cam-3", "name: true"), /^f\.yaml: document 3: metadata\.name: must be a string, got boolean: YAML reads true and false unquoted as a boolean; write it in quotes$/m],
  ["legs that are not a list", LEGS_YAML.replace(/  legs:\n[\s\S]*$/, "  legs: { name: fec-col }\n"), /document 1: spec\.legs: must be a list/],
];

for (const [what, text, expected] of badCases) {
  local(`manifests refuse ${what}, naming the document and the field`, () => {
    try {
      parseManifests(text, "f.yaml");
      assert.unreachable("accepted");
    } catch (err) {
      if (!(err instanceof ManifestError)) throw err;
      assert.match(err.message, expected);
    }
  });
}

local("a manifest nested past 64 levels is refused before it is parsed, naming its document; msmctl exits 1, not aborted by V8", async () => {
  const deep = "[".repeat(100_000);
  for (const [text, expected] of [
    [`${deep}\n---\n${deep}`, "f.yaml: document 1: nested deeper than 64 levels of mappings and lists at line 1, column 65"],
    [`${SEGMENTS_YAML}---\nspec:\n  ${"- ".repeat(1000)}x\n`, /^f\.yaml: document 4: nested deeper than 64 levels of mappings and lists at line \d+, column 129$/],
  ] as const) {
    for (let i = 0; i < 2; i++) assert.throws(() => parseManifests(text, "f.yaml"), (err: unknown) => err instanceof ManifestError && (typeof expected === "string" ? err.message === expected : expected.test(err.message)));
  }
  const r = await spawnMsmctl(["apply", "-f", "-", "--server", "127.0.0.1:1", "--insecure"], { stdin: `${deep}\n---\n${deep}` });
  assert.is(r.code, 1, r.err);
  assert.is(r.err, "msmctl: stdin: document 1: nested deeper than 64 levels of mappings and lists at line 1, column 65\n");
});

local("a YAML bomb (aliases of aliases) is refused with a clear message, quickly", () => {
  const levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"];
  for (let i = 1; i < 9; i++) levels.push(`${"abcdefghi"[i]}: &${"abcdefghi"[i]} [${Array(9).fill(`*${"abcdefghi"[i - 1]}`).join(", ")}]`);
  try {
    parseManifests(`${levels.join("\n")}\nkind: Segment\n`, "bomb.yaml");
    assert.unreachable("accepted");
  } catch (err) {
    if (!(err instanceof ManifestError)) throw err;
    assert.match(err.message, /^bomb\.yaml: document 1: refused: its aliases \(\*name\) would expand it too far/);
  }
  // a few aliases are fine; one without its anchor is a YAML error
  const ok = parseManifests(SEGMENTS_YAML.replace("    - { address: 127.0.0.1, port: 6004 }\n    - { address: 127.0.0.1, port: 6014, rtcpPort: 6100 }", "    - &d { address: 127.0.0.1, port: 6004 }\n    - *d"), "x");
  assert.equal(ok.manifests[0]!.spec.destinations.map((d) => d.port), [6004, 6004]);
  assert.throws(() => parseManifests(SEGMENTS_YAML.replace("[{ address: 127.0.0.1, port: 6008 }]", "[*nowhere]"), "x"), /document 3: not valid YAML: .*nowhere/);
});

local("input that is not UTF-8 is refused, naming where (a file and stdin), before anything is sent", async () => {
  const file = join(tmpdir(), `msmctl-latin1-${process.pid}.yaml`);
  writeFileSync(file, Buffer.concat([Buffer.from("kind: Segment\nmetadata: { name: \"caf"), Buffer.from([0xe9]), Buffer.from('" }\n')]));
  try {
    const env = { MSM_SERVER: "127.0.0.1:1", MSM_INSECURE: "1" }; // never reached
    let r = await msmctl(["apply", "-f", file], { env });
    assert.is(r.code, 1);
    assert.is(r.err, `msmctl: ${file}: not UTF-8 text (byte 36, line 2); save it as UTF-8\n`);
    r = await msmctl(["apply", "-f", "-"], { env, stdin: readFileSync(file) });
    assert.is(r.err, "msmctl: stdin: not UTF-8 text (byte 36, line 2); save it as UTF-8\n");
    // U+FFFD written as UTF-8 is text like any other
    r = await msmctl(["apply", "-f", "-", "--dry-run"], { env, stdin: Buffer.from("kind: Segment\nmetadata: { name: \"caf\ufffd\" }\n") });
    assert.match(r.err, /metadata\.name: must be 1-63 letters/);
  } finally {
    rmSync(file, { force: true });
  }
});

local("flags: kubectl forms, anywhere among the words", () => {
  const a = parseArgs(["-ojson", "get", "--server=h:1", "segments", "-f", "-", "--insecure", "cam-1", "--", "--x"]);
  assert.equal(a.words, ["get", "segments", "cam-1", "--x"]);
  assert.equal(a.flags.get("output"), ["json"]);
  assert.equal(a.flags.get("server"), ["h:1"]);
  assert.equal(a.flags.get("filename"), ["-"]);
  assert.equal(a.flags.get("insecure"), [""]);
  assert.equal(parseArgs(["apply", "-f", "a", "--filename=b"]).flags.get("filename"), ["a", "b"]);
  for (const [args, message] of [
    [["--nope"], /unknown flag --nope/],
    [["-f"], /-f needs a value/],
    [["--insecure=1"], /--insecure takes no value/],
    [["-o", "json", "-o", "yaml"], /--output given twice/],
  ] as [string[], RegExp][]) {
    assert.throws(() => parseArgs(args), message);
  }
});

local("formatting: aligned tables, ages, sizes", () => {
  assert.is(table(["NAME", "X"], [["a", "1"], ["long-name", "22"]]), "NAME        X\na           1\nlong-name   22\n");
  const now = 1_000_000_000;
  assert.equal([age(now - 5000, now), age(now - 600_000, now), age(now - 3 * 3600_000, now), age(now - 5 * 86_400_000, now), age(0, now)], ["5s", "10m", "3h", "5d", "-"]);
  assert.equal([bytes(512), bytes(41_062), bytes(3 << 20)], ["512B", "40.1KiB", "3.0MiB"]);
});

local("rates: from two snapshots by the proxies' own clock; a counter reset counts from zero", () => {
  const snap = (atMs: number, packetsIn: number, bytesIn: number, dropsTotal: number) => ({
    nodeId: "n",
    atMs,
    page: 0,
    pages: 1,
    statsJson: JSON.stringify({ workers: 1, segments: [{ name: "s", packetsIn, packetsOut: packetsIn * 2, bytesIn, bytesOut: bytesIn * 2, dropsTotal, drops: {}, stages: [] }] }),
  });
  const [r] = segmentRates(parseProxyStats(snap(1000, 100, 10_000, 0)), parseProxyStats(snap(3000, 1100, 110_000, 20)));
  assert.equal(r, { proxy: "n", segment: "s", packetsInPerSec: 500, packetsOutPerSec: 1000, dropsPerSec: 10, bytesInPerSec: 50_000, bytesOutPerSec: 100_000 });
  const [reset] = segmentRates(parseProxyStats(snap(1000, 5000, 0, 0)), parseProxyStats(snap(2000, 300, 0, 0)));
  assert.is(reset!.packetsInPerSec, 300);
  const [first] = segmentRates(undefined, parseProxyStats(snap(1000, 1, 1, 1)));
  assert.is(first!.packetsInPerSec, undefined);
  assert.match(parseProxyStats({ nodeId: "n", atMs: 1, statsJson: "{", page: 0, pages: 1 }).error ?? "", /unreadable stats/);
});

local("describe shows each stage's own filter metrics: counted ones (a labelled one per series, a histogram's count and mean), then how many are at 0; none from a proxy that reports none", () => {
  const metrics = [
    { name: "packets_passed", kind: "counter", value: 179 },
    { name: "hold_store_full", kind: "counter", value: 0 },
    { name: "sources", kind: "gauge", value: 2 },
    { name: "rtt_us", kind: "histogram", histogram: { buckets: [0, 3], count: 3, sum: 100 } },
    { name: "jitter_us", kind: "histogram", histogram: { buckets: [0, 0], count: 0, sum: 0 } },
    { name: "drops_by_ssrc", kind: "counter", label: "ssrc", series: [{ labelValue: "4660", value: 5 }, { labelValue: "other", value: 1 }] },
    { name: "late_by_ssrc", kind: "counter", label: "ssrc", series: [] },
  ];
  const stats = (stage: object) => parseProxyStats({ nodeId: "n", atMs: 1, page: 0, pages: 1, statsJson: JSON.stringify({ segments: [{ name: "s", stages: [{ filter: "validate", state: "running", ...stage }] }] }) });
  const lines = segmentStatsLines(stats({ metrics }).segments[0]!);
  assert.match(lines, /^stage 0 validate \(running\): .*\n  metrics: packets_passed 179; sources 2; rtt_us count 3, mean 33\.33; drops_by_ssrc\{ssrc=4660\} 5; drops_by_ssrc\{ssrc=other\} 1; 3 more at 0$/m);
  assert.match(segmentStatsLines(stats({ metrics: metrics.slice(1, 2) }).segments[0]!), /^  metrics: all 1 at 0$/m);
  assert.equal(stats({ metrics }).segments[0]!.stages[0]!.metrics[5], { name: "drops_by_ssrc", kind: "counter", label: "ssrc", series: [{ labelValue: "4660", value: 5 }, { labelValue: "other", value: 1 }] });
  assert.not.match(segmentStatsLines(stats({}).segments[0]!), /metrics/);
});

local("top's rates are over the time between the proxy's two reports by its clock, not between their arrivals at the control plane (which a busy host spreads by hundreds of ms)", () => {
  // a steady 100 packets/s, reported every 2 s to the millisecond; the second report reached the
  // control plane 1.34 s after the first (the first was held up), the third 2.6 s after the second
  const page = (arrivedMs: number, takenMs: number | undefined, packets: number): ProxyStats => ({
    nodeId: "n", atMs: arrivedMs, page: 0, pages: 1,
    statsJson: JSON.stringify({ ...(takenMs === undefined ? {} : { atMs: takenMs }), segments: [{ name: "cam", packetsIn: packets, packetsOut: packets, bytesIn: packets * 200, bytesOut: packets * 200, dropsTotal: 0 }] }),
  } as unknown as ProxyStats);
  const [a, b, c] = [page(10_300, 10_000, 1000), page(11_640, 12_000, 1200), page(14_240, 14_000, 1400)].map(parseProxyStats);
  const [ab] = segmentRates(a, b!);
  const [bc] = segmentRates(b, c!);
  assert.equal([ab!.packetsInPerSec, ab!.bytesOutPerSec, bc!.packetsInPerSec], [100, 20_000, 100]);
  // a proxy that does not say when it took its report: by the arrivals, as before
  const [old] = segmentRates(parseProxyStats(page(10_000, undefined, 1000)), parseProxyStats(page(12_500, undefined, 1200)));
  assert.is(old!.packetsInPerSec, 80);
});

local("a merge's duplicates (a filter's discards, ABI 1.6) are their own line in describe, under the filter's name, and no drops in top", () => {
  // what a 2022-7 operator saw as "dropped 18042: filter_256 18042" and DROPS/S 1.82k on a healthy merge
  const snap = (atMs: number, discarded: number) => ({
    nodeId: "n", atMs, page: 0, pages: 1,
    statsJson: JSON.stringify({ workers: 1, segments: [{
      name: "cam1-receive", packetsIn: discarded * 2, packetsOut: discarded, bytesIn: 0, bytesOut: 0, dropsTotal: 3, drops: { stale: 3 },
      discardsTotal: discarded, discards: { duplicate: discarded },
      stages: [{ filter: "replicate", state: "running", packetsIn: discarded * 2, packetsOut: discarded, drops: { stale: 3 }, discards: { duplicate: discarded }, failures: 0, nsPerPacket: 100 }],
    }] }),
  });
  const now = parseProxyStats(snap(11_000, 18042));
  const lines = segmentStatsLines(now.segments[0]!);
  assert.match(lines, /^dropped 3: stale 3$/m);
  assert.match(lines, /^discarded 18042 \(the filters' normal work, not drops\): duplicate 18042$/m);
  assert.match(lines, /^stage 0 replicate \(running\): in 36084, out 18042, dropped 3 \(stale 3\), discarded 18042 \(duplicate 18042\), failures 0/m);
  const [rates] = segmentRates(parseProxyStats(snap(1000, 0)), now);
  assert.is(rates!.dropsPerSec, 0, "discards are no drops per second");
  assert.is(topRows([rates!])[0]![4], "0");
  // a proxy older than ABI 1.6 sends no discards: no line, and nothing breaks
  const old = parseProxyStats({ ...snap(1, 0), statsJson: JSON.stringify({ segments: [{ name: "s", dropsTotal: 1, drops: { filter_256: 1 }, stages: [{ filter: "replicate", drops: { filter_256: 1 } }] }] }) });
  assert.not.match(segmentStatsLines(old.segments[0]!), /discarded/);
});

local("stats pages: a large report in pages of at most 256 KiB, merged back whole; beyond 32 pages the rest is left out and said so; a segment too big for a page is named", () => {
  const report = (n: number, extra: object[] = []) => ({ workers: 2, workerMode: "thread", watchdogRestarts: 3, segments: [...extra, ...Array.from({ length: n }, (_, i) => fakeSegment(`s${i}`, i))] }) as unknown as ProxySnapshot;
  const asStats = (pages: string[], atMs = 1000): ProxyStats[] => pages.map((statsJson, page) => ({ nodeId: "n", atMs, statsJson, page, pages: pages.length }));
  const pages = pageStats(report(2000));
  assert.ok(pages.length > 1 && pages.length < STATS_MAX_PAGES, `${pages.length} pages`);
  for (const p of pages) assert.ok(Buffer.byteLength(p) <= STATS_PAGE_BYTES, `a page of ${Buffer.byteLength(p)} bytes`);
  const [whole] = mergeStatsPages(asStats(pages));
  assert.equal([whole!.segments.length, whole!.segments[1999]!.name, whole!.segments[1999]!.packetsIn, whole!.watchdogRestarts, whole!.note], [2000, "s1999", 1999, 3, undefined]);
  const [partial] = mergeStatsPages(asStats(pages).slice(1));
  assert.match(partial!.note!, `${pages.length - 1} of ${pages.length} pages of its report were read`);

  const huge = pageStats(report(20_000));
  assert.is(huge.length, STATS_MAX_PAGES);
  const [cut] = mergeStatsPages(asStats(huge));
  assert.ok(cut!.segments.length < 20_000);
  assert.match(cut!.note!, `the proxy reported ${cut!.segments.length} of its 20000 segments (a report holds at most ${STATS_MAX_PAGES} pages of 256 KiB)`);

  const fat = { ...fakeSegment("fat", 1), drops: Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`reason_${i}`, i])) };
  const [withFat] = mergeStatsPages(asStats(pageStats(report(2, [fat]))));
  assert.equal(withFat!.segments.map((x) => x.name), ["fat", "s0", "s1"]);
  assert.match(withFat!.segments[0]!.note!, /^counters left out: its counters are \d+ bytes, more than the 256 KiB a stats page holds$/);
  // per segment, the newest: a page left over from an older, longer report repeats a segment
  const older = asStats(pageStats(report(3)), 500).map((p) => ({ ...p, page: 1, pages: 2 }));
  const [newest] = mergeStatsPages([...asStats(pageStats(report(3)), 900), ...older]);
  assert.equal(newest!.segments.map((x) => [x.name, x.atMs]), [["s0", 900], ["s1", 900], ["s2", 900]]);
  // pages read while a report was written mix two reports (told apart by their time): such a proxy is read again
  assert.equal(incompleteReports([...asStats(pages, 1000), ...asStats(pageStats(report(3)), 1000).map((p) => ({ ...p, nodeId: "m" }))]), []);
  const mixed = [...asStats(pages, 1000).slice(0, 2), ...asStats(pages, 2000).slice(2)];
  assert.equal(incompleteReports(mixed), ["n"]);
  assert.match(mergeStatsPages(mixed)[0]!.note!, "its pages were read while it stored a newer report: some segments may be missing");
  // the pages of a second read complete a report: whole again, each segment from its newest page
  const reread = [...mixed, ...asStats(pages, 2000).slice(0, 2)];
  assert.equal(incompleteReports(reread), []);
  const [whole2] = mergeStatsPages(reread);
  assert.equal([whole2!.segments.length, whole2!.note, whole2!.segments.every((x) => x.atMs === 2000)], [2000, undefined, true]);
});

local("stats pages: a filter instance every segment shares, and a long notRunning list, still fit a page; each page lists the instance with its own segments as users", () => {
  // regression: pages were packed as if the fields besides segments took 1 KiB, but `instances` names every user (300 segments: 10.8 KB)
  const n = 3000;
  const segments = Array.from({ length: n }, (_, i) => fakeSegment(`camera-with-a-long-name-${i}`, i));
  const shared = { id: 0, worker: 0, filter: "validate", memoryBytes: 65536, memoryMaxBytes: 1 << 24, users: segments.map((_, i) => ({ segment: `camera-with-a-long-name-${i}`, stage: 0 })) };
  const notRunning = Array.from({ length: n }, (_, i) => ({ segment: `gone-${i}`, reason: `port ${10_000 + i} is taken by another program on this host` }));
  const pages = pageStats({ workers: 1, segments, instances: [shared], notRunning } as unknown as ProxySnapshot);
  for (const p of pages) assert.ok(Buffer.byteLength(p) <= STATS_PAGE_BYTES, `a page of ${Buffer.byteLength(p)} bytes`);
  const parsed = pages.map((p) => JSON.parse(p) as { segments: { name: string }[]; instances: typeof shared[]; notRunning: unknown[]; notRunningTotal?: number; truncated?: unknown });
  assert.ok(pages.length > 1 && parsed.every((p) => p.truncated === undefined), `${pages.length} pages, none cut`);
  assert.equal(parsed.flatMap((p) => p.segments.map((s) => s.name)), shared.users.map((u) => u.segment), "every segment, once, in order");
  for (const p of parsed) assert.equal(p.instances.map((i) => i.users.map((u) => u.segment)), [p.segments.map((s) => s.name)], "the page's own segments");
  assert.equal([parsed[0]!.notRunningTotal, parsed[0]!.notRunning.length < n], [n, true], "notRunning cut, and says how long it was");
});

local("describe names the version a stage without one runs: the registry's newest (the highest, not the last pushed)", () => {
  const yaml = SEGMENTS_YAML.split("---")[0]!.replace("filter: validate@1.0.0", "filter: validate");
  const seg = toSegment(parseManifests(yaml, "f.yaml").manifests[0]!);
  const ref = (version: string, pushedAtMs: number, sha: string) => ({ name: "validate", version, sha256: sha.repeat(64), size: 1, pushedAtMs }) as unknown as FilterRef;
  const newest = newestVersions([ref("1.2.0", 2000, "b"), ref("1.10.0", 1000, "a")]);
  assert.match(describeSegment(seg, undefined, undefined, 5000, newest), /^Chain:\s+1\. validate \(newest: 1\.10\.0, sha256 aaaaaaaaaaaa\)  /m);
  assert.match(describeSegment(seg, undefined, undefined, 5000, new Map()), /^Chain:\s+1\. validate \(newest, none pushed\)  /m);
});

local("describe shows a segment's failure policy as the proxy runs it: each unset field with the proxy's default (closed, not open)", () => {
  const seg = (failure: unknown) => ({ failure }) as unknown as Parameters<typeof failureText>[0];
  assert.is(failureText(seg(undefined)), "mode closed (default), restart backoff 100 ms (default), max backoff 5000 ms (default), give up after 5 (default) failures");
  assert.is(failureText(seg({ mode: "", restartBackoffMs: 0, maxBackoffMs: 0, maxFailures: 1 })), "mode closed (default), restart backoff 100 ms (default), max backoff 5000 ms (default), give up after 1 failures");
  assert.is(failureText(seg({ mode: "open", restartBackoffMs: 250, maxBackoffMs: 0, maxFailures: 0 })), "mode open, restart backoff 250 ms, max backoff 5000 ms (default), give up after 5 (default) failures");
});

local("a version that runs without some segments is shown as such, not as refused nor as whole", () => {
  const p: ProxyStatus = {
    nodeId: "n", connected: true, peer: "", desiredVersion: 7, ackedVersion: 7, nackedVersion: 0, nackError: "", nackRetryAtMs: 0, lastSeenMs: 1,
    capabilities: [], abiVersions: [], server: "cp", notRunning: ["cam-2"], notRunningError: "snapshot 7 applied, except these segments, which are NOT running: segments[1]: bind EADDRINUSE", statsDropped: "", statsDroppedAtMs: 0,
  };
  assert.is(configState(p), "runs the newest config (version 7), except 1 segment(s) that do NOT run: cam-2");
  assert.is(proxyRows([p], 1)[0]![4], "7 (1 not running)");
  const text = describeProxy(p, [], undefined, 1);
  assert.match(text, /NOT running:\s+cam-2: snapshot 7 applied, except these segments, which are NOT running: segments\[1\]: bind EADDRINUSE/);
  assert.is(configState({ ...p, notRunning: [] }), "runs the newest config (version 7)");
});

local("describe segment: where each leg receives and sends, ports worked out; per-leg counters when the proxy reports them", () => {
  const seg = { ...toSegment(parseManifests(LEGS_YAML, "x").manifests[0]!), revision: 3 };
  const leg = (name: string, packetsIn: number, packetsOut: number) => ({ name, packetsIn, packetsOut });
  const report = (legs: object[] | undefined) => parseProxyStats({ nodeId: "node-4", atMs: Date.now(), page: 0, pages: 1, statsJson: JSON.stringify({ segments: [{ ...fakeSegment("fec-1", 10), ...(legs ? { legs } : {}) }] }) });
  let text = describeSegment(seg, undefined, report([leg("media", 10, 20), leg("fec-col", 2, 4), leg("fec-row", 2, 0), leg("path-b", 0, 0), leg("repair", 0, 3)]));
  assert.match(text, /^Legs:\s+fec-col: receives on 127\.0\.0\.1:5606 \(listen port \+ 2\); sends to 127\.0\.0\.1:6606, 127\.0\.0\.1:6616 \(destination ports \+ 2\)$/m);
  assert.match(text, /^\s+fec-row: receives on 127\.0\.0\.1:5608 \(listen port \+ 4\); sends nothing$/m);
  assert.match(text, /^\s+path-b: receives on 127\.0\.0\.1:5700; sends to 127\.0\.0\.1:6700 from 127\.0\.0\.1, any port \(a redundant path of the media: counted in its streams' ingress\)$/m);
  assert.match(text, /^\s+repair: receives nothing; sends to 127\.0\.0\.1:6800 from 127\.0\.0\.1:5800$/m);
  assert.match(text, /^\s+per leg: media in 10, out 20; fec-col in 2, out 4; fec-row in 2, out 0; path-b in 0, out 0; repair in 0, out 3$/m);
  text = describeSegment(seg, undefined, report(undefined));
  assert.not.match(text, /per leg/, "a proxy older than legs reports none");
  assert.not.match(text, /GSO/, "a proxy older than GSO's counter: its packets are its messages");
  const joined = parseProxyStats({ nodeId: "node-4", atMs: Date.now(), page: 0, pages: 1, statsJson: JSON.stringify({ segments: [{ ...fakeSegment("fec-1", 64), messagesOut: 2 }] }) });
  assert.match(describeSegment(seg, undefined, joined), /, out 64 \([^)]* in 2 UDP GSO messages\);/, "the packets out and the kernel messages they took");
  text = describeSegment({ ...toSegment(parseManifests(SEGMENTS_YAML, "x").manifests[0]!), revision: 1 }, undefined, undefined);
  assert.match(text, /^Legs:\s+none \(media only\)$/m);
});

local("msmctl filter push, msm filter new and the proxy's config take the same filter names, and the first two refuse one in the same words", async () => {
  const names = ["my_filter", "my-filter", "a".repeat(63), "a".repeat(64), "My-filter", "1filter", "_filter", "my filter", "drops", "packets-in"];
  const scratch = mkdtempSync(join(tmpdir(), "msmctl-names-"));
  try {
    for (const name of names) {
      const problem = filterNameProblem(name);
      const proxyTakes = (() => {
        try {
          validateProxyConfig({ filters: { [name]: { path: "registry" } } }, "/", "request");
          return true;
        } catch {
          return false;
        }
      })();
      assert.is(problem === undefined, proxyTakes, `${name}: ${problem ?? "taken"}, and the proxy ${proxyTakes ? "takes" : "refuses"} it`);
      const push = await msmctl(["filter", "push", `${name}@1.0.0`, join(scratch, "missing.wasm")]);
      if (problem === undefined) {
        assert.match(push.err, /cannot read .*missing\.wasm: no such file/, `${name}: the name passed, the file is next`);
        continue;
      }
      assert.is(push.code, 2, name);
      assert.is(push.err.split("\n")[0], `msmctl: ${problem}`, name);
      const made = await scaffoldFilter(name, join(scratch, "project")).then(() => "made", (err: Error) => err.message);
      assert.is(made, problem, name);
    }
    assert.is(filterNameProblem("my_filter"), undefined, "'_' is taken, as by the proxy");
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});

local.run();

// ---------------------------------------------------------------- against the control plane

interface Ran {
  code: number;
  out: string;
  err: string;
}

/** msmctl in this process, with its own environment (the caller's MSM_* never leak in). */
async function msmctl(args: string[], options: { env?: Record<string, string>; stdin?: string | Buffer } = {}): Promise<Ran> {
  let out = "";
  let err = "";
  const io: Io = {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    readStdin: async () => Buffer.from(options.stdin ?? ""),
    env: options.env ?? {},
    isTty: false,
    onInterrupt: () => () => {},
  };
  const code = await runMsmctl(args, io);
  return { code, out, err };
}

/**
 * The built binary, as an operator runs it. Ctrl-C (SIGINT) once its output satisfies
 * `interruptWhen`, or after `interruptAfterMs` at the latest.
 */
function spawnMsmctl(
  args: string[],
  options: { env?: Record<string, string>; stdin?: string; interruptAfterMs?: number; interruptWhen?: (out: string) => boolean } = {},
): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MSMCTL, ...args], { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"], env: { PATH: process.env.PATH ?? "", ...options.env } });
    let out = "";
    let err = "";
    let interrupted = false;
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (!interrupted && options.interruptWhen?.(out)) {
        interrupted = true;
        child.kill("SIGINT");
      }
    });
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.stdin.end(options.stdin ?? "");
    const timer = options.interruptAfterMs ? setTimeout(() => child.kill("SIGINT"), options.interruptAfterMs) : undefined;
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out, err });
    });
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type Outgoing = { register: { nodeId: string; capabilities: string[]; abiVersions: string[]; runningVersion: number } } | { ack: { version: number } } | { nack: { version: number; error: string } } | { stats: { statsJson: string; page: number; pages: number } };

/**
 * A proxy as the control plane sees one, over the real ProxyService: it registers, answers every
 * snapshot (a NACK for a validate config with a payload type above 127, as the filter would), and
 * reports, in pages as the agent does, counters that grow at 500 packets/s per segment of the
 * snapshot it runs. `options` replace its refusal or its report (a hostile or a huge proxy).
 */
class TestProxy {
  private readonly client: Client & { Connect(): ClientDuplexStream<Outgoing, ControlMessage> };
  private readonly call: ClientDuplexStream<Outgoing, ControlMessage>;
  private readonly timer: NodeJS.Timeout;
  private readonly t0 = Date.now();
  running: Snapshot | undefined;
  answered = 0;

  constructor(
    port: number,
    readonly nodeId: string,
    tls: TlsFiles | "insecure",
    private readonly options: { refuse?: (s: Snapshot) => string | undefined; report?: (packets: number) => object; intervalMs?: number } = {},
  ) {
    this.client = new ProxyServiceClient(`127.0.0.1:${port}`, channelCredentials(tls), tls === "insecure" ? {} : { "grpc.ssl_target_name_override": "msm-control-plane" }) as never;
    this.call = this.client.Connect();
    this.call.on("error", () => {});
    this.call.on("data", (msg: ControlMessage) => msg.kind === "snapshot" && this.onSnapshot(msg.snapshot));
    this.call.write({ register: { nodeId, capabilities: ["workers=1", "runtime=test"], abiVersions: ["1.0"], runningVersion: 0 } });
    const send = (): void => {
      const pages = pageStats(this.stats() as ProxySnapshot);
      pages.forEach((statsJson, page) => this.call.write({ stats: { statsJson, page, pages: pages.length } }));
    };
    send();
    this.timer = setInterval(send, options.intervalMs ?? 50);
  }

  private onSnapshot(snapshot: Snapshot): void {
    const bad = snapshot.segments.findIndex((s) => s.chain.some((st) => /"allowedPayloadTypes":\[[^\]]*\b(1[3-9]\d|[2-9]\d\d)\b/.test(st.configJson)));
    const refusal = this.options.refuse
      ? this.options.refuse(snapshot)
      : bad >= 0 ? `snapshot ${snapshot.version} not applied, the running config is unchanged: segments[${bad}].chain[0].config_json: validate refused its config: allowedPayloadTypes[0]: must be a payload type from 0 to 127, got 200` : undefined;
    if (refusal !== undefined) {
      this.call.write({ nack: { version: snapshot.version, error: refusal } });
    } else {
      this.running = snapshot;
      this.call.write({ ack: { version: snapshot.version } });
    }
    this.answered++;
  }

  private stats(): unknown {
    const n = Math.floor((500 * (Date.now() - this.t0)) / 1000);
    if (this.options.report) return this.options.report(n);
    return {
      workers: 1,
      workerMode: "thread",
      watchdogRestarts: 0,
      segments: (this.running?.segments ?? []).map((s) => fakeSegment(s.name, n, s.destinations.length, s.chain.map((st) => st.filter))),
    };
  }

  close(): void {
    clearInterval(this.timer);
    this.call.end();
    this.client.close();
  }
}

/** A segment's counters as a proxy reports them (a ProxySnapshot segment), after `n` packets. */
function fakeSegment(name: string, n: number, destinations = 1, filters = ["validate"]): object {
  return {
    name,
    worker: 0,
    ports: { listen: 5004, listenRtcp: 5005, egress: 40000, egressRtcp: 40001 },
    packetsIn: n,
    bytesIn: n * 1200,
    packetsOut: n * destinations,
    bytesOut: n * 1200 * destinations,
    rtcpIn: 0,
    upstreamIn: 0,
    dropsTotal: Math.floor(n / 100),
    drops: { bad_version: Math.floor(n / 100) },
    stages: filters.map((filter) => ({
      filter, digest: "ab".repeat(32), state: "running", packetsIn: n, bytesIn: n * 1200, packetsOut: n, bytesOut: n * 1200, generated: 0, held: 0, bypassed: 0,
      drops: {}, failures: 0, busyNs: n * 220, calls: n, nsPerPacket: 220,
      metrics: [{ name: "packets", kind: "counter", value: n }, { name: "rtt_us", kind: "histogram", histogram: { buckets: [1, 2, 3, 4, 5, 6, 7, 8], count: 36, sum: 900 } }],
    })),
  };
}

const live = suite("msmctl against the control plane", { timeoutMs: 30_000 });
const dir = mkdtempSync(join(tmpdir(), "msmctl-"));
let cp: ControlPlane;
let proxy: TestProxy;
let env: Record<string, string>;
const TIMING = { statsIntervalMs: 50, heartbeatMs: 500 };

live.before(async () => {
  cp = await startControlPlane({ listen: "127.0.0.1:0", store: `file:${join(dir, "store")}`, tls: "insecure", name: "cp-0", timing: TIMING, log: () => {} });
  env = { MSM_SERVER: `127.0.0.1:${cp.port}`, MSM_INSECURE: "1" };
  proxy = new TestProxy(cp.port, "node-1", "insecure");
});

live.after(async () => {
  proxy?.close();
  await cp?.close();
  rmSync(dir, { recursive: true, force: true });
});

live("filter push: into the registry; again is unchanged; a bad module is refused; get filters lists it", async () => {
  const wasm = filterWasm("validate");
  let r = await msmctl(["filter", "push", "validate@1.0.0", wasm], { env });
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^filter\/validate@1\.0\.0 pushed \(sha256 [0-9a-f]{12}, [\d.]+KiB\)\n$/, r.out);
  r = await msmctl(["filter", "push", "validate@1.0.0", wasm], { env });
  assert.match(r.out, /^filter\/validate@1\.0\.0 unchanged, already present/, r.out);
  r = await msmctl(["filter", "push", "validate@1.0.0", fixture("counter")], { env });
  assert.is(r.code, 1);
  assert.match(r.err, /^msmctl: already exists: filter validate@1\.0\.0 already exists with another module/, r.err);
  const junk = join(dir, "junk.wasm");
  writeFileSync(junk, Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0xff, 0xff]));
  r = await msmctl(["filter", "push", "junk@1", junk], { env });
  assert.is(r.code, 1);
  assert.match(r.err, /^msmctl: refused: wasm: /, r.err);
  r = await msmctl(["filter", "push", "validate@1.0.0", join(ROOT, "package.json")], { env });
  assert.is(r.code, 1);
  assert.match(r.err, /is not a WebAssembly module/);
  r = await msmctl(["filter", "push", "validate", wasm], { env });
  assert.is(r.code, 2);
  assert.match(r.err, /has no version/);
  r = await msmctl(["get", "filters"], { env });
  assert.match(r.out, /^NAME\s+VERSION\s+SHA256\s+SIZE\s+AGE\nvalidate\s+1\.0\.0\s+[0-9a-f]{12}\s+[\d.]+KiB\s+\d+s\n$/, r.out);
});

live("filter push says which segments it moves: those naming the filter without a version, when the pushed one is the newest (the highest version)", async () => {
  const manifest = join(dir, "unpinned.yaml");
  writeFileSync(manifest, "kind: Segment\nmetadata: { name: cam-unpinned }\nspec:\n  proxy: node-2\n  listen: { address: 127.0.0.1, port: 5090 }\n  destinations: [{ address: 127.0.0.1, port: 6090 }]\n  chain: [{ filter: counter }]\n");
  let r = await msmctl(["filter", "push", "counter@1.0.0", fixture("counter")], { env });
  assert.is(r.code, 0, r.err);
  r = await msmctl(["apply", "-f", manifest], { env });
  assert.is(r.code, 0, r.err);
  r = await msmctl(["filter", "push", "counter@1.1.0", fixture("misbehave")], { env });
  assert.match(r.out, /\n1 segment\(s\) run counter without a version and move to 1\.1\.0 now: cam-unpinned \(name counter@VERSION in a stage to hold it\)\n$/, r.out);
  r = await msmctl(["filter", "push", "counter@0.9.0", fixture("delay")], { env });
  assert.match(r.out, /\nthe newest stays counter@1\.1\.0: the 1 segment\(s\) that run counter without a version do not move\n$/, r.out);
  r = await msmctl(["delete", "segment", "cam-unpinned"], { env });
  assert.is(r.code, 0, r.err);
});

live("apply -f DIR reads the directory's .yaml, .yml and .json files in name order, as kubectl does; one with none is refused; version", async () => {
  const folder = join(dir, "segments.d");
  mkdirSync(join(folder, "nested"), { recursive: true });
  const docs = SEGMENTS_YAML.split("\n---\n");
  writeFileSync(join(folder, "b.yml"), docs[1]!);
  writeFileSync(join(folder, "a.yaml"), docs[0]!);
  writeFileSync(join(folder, "c.yaml"), docs[2]!);
  writeFileSync(join(folder, "notes.txt"), "not a manifest");
  writeFileSync(join(folder, "nested", "d.yaml"), "not read: kubectl reads subdirectories only with -R");
  const r = await msmctl(["apply", "-f", folder, "--dry-run"], { env });
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^segment\/cam-1 \w+ \(dry run\)\nsegment\/cam-2 \w+ \(dry run\)\nsegment\/cam-3 \w+ \(dry run\)\n$/, r.out);
  const empty = join(dir, "empty.d");
  mkdirSync(empty, { recursive: true });
  const e = await msmctl(["apply", "-f", empty], { env });
  assert.is(e.code, 1);
  assert.is(e.err, `msmctl: ${empty}: a directory without .yaml, .yml or .json files\n`);
  // -o name: kind/name lines, as kubectl prints them for scripts
  const named = await msmctl(["apply", "-f", folder, "--dry-run", "-o", "name"], { env });
  assert.is(named.out, "segment/cam-1\nsegment/cam-2\nsegment/cam-3\n", named.err);
  const got = await msmctl(["get", "filters", "-o", "name"], { env });
  assert.match(got.out, /^(filter\/[a-z0-9-]+@[\w.-]+\n)+$/, got.out);
  const refused = await msmctl(["describe", "segments", "-o", "name"], { env });
  assert.is(refused.code, 2);
  assert.match(refused.err, "-o name applies to get, apply and delete");
  // -o wide: get's tables with more columns; the whole digest of a filter
  const wide = await msmctl(["get", "filters", "-o", "wide"], { env });
  assert.is(wide.code, 0, wide.err);
  assert.match(wide.out, /^NAME\s+VERSION\s+SHA256\s+SIZE\s+AGE\n(\S+\s+\S+\s+[0-9a-f]{64}\s.*\n)+$/, wide.out);
  const notGet = await msmctl(["top", "--once", "-o", "wide"], { env });
  assert.is(notGet.code, 2);
  assert.match(notGet.err, "-o wide applies to get");
  const v = await msmctl(["version"], { env });
  assert.match(v.out, /^msmctl \d+\.\d+\.\d+ \(filter ABI 1\.\d+, (Node\.js|Bun) [\d.]+\)\n$/);
});

live("apply -f: several documents, then unchanged, --dry-run, configured", async () => {
  const file = join(dir, "cams.yaml");
  writeFileSync(file, SEGMENTS_YAML);
  let r = await msmctl(["apply", "-f", file], { env });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, "segment/cam-1 created\nsegment/cam-2 created\nsegment/cam-3 created\n");
  // stored is not accepted: a filter checks its config on the proxy only (the server runs no filters)
  const revision = JSON.parse((await msmctl(["get", "segment", "cam-1", "-o", "json"], { env })).out).metadata.revision;
  assert.is(r.err, `msmctl: note: stored as revision ${revision}; proxies node-1, node-2 have not accepted it yet, and a filter may still refuse its config there: 'msmctl get proxies' shows ACKED ${revision} or NACKED\n` +
    // node-1 has connected, node-2 never has: a typo in spec.proxy is stored all the same and runs nowhere
    "msmctl: warning: proxy node-2 has never connected to this control plane (it knows node-1): its segments run nowhere until a proxy with that node id connects; a typo in spec.proxy?\n");
  r = await msmctl(["apply", "-f", file], { env });
  assert.is(r.out, "segment/cam-1 unchanged\nsegment/cam-2 unchanged\nsegment/cam-3 unchanged\n");
  assert.is(r.err, "", "nothing changed: nothing to accept");
  writeFileSync(file, SEGMENTS_YAML.replace("port: 6008", "port: 6010"));
  r = await msmctl(["apply", "-f", file, "--dry-run"], { env });
  assert.is(r.out, "segment/cam-1 unchanged (dry run)\nsegment/cam-2 unchanged (dry run)\nsegment/cam-3 configured (dry run)\n");
  assert.is(r.err, "msmctl: note: a dry run checks what the control plane can; each filter checks its own config only on its proxy, when the change is applied\n" +
    "msmctl: warning: proxy node-2 has never connected to this control plane (it knows node-1): its segments run nowhere until a proxy with that node id connects; a typo in spec.proxy?\n");
  r = await msmctl(["get", "segment", "cam-3", "-o", "json"], { env });
  assert.is(JSON.parse(r.out).spec.destinations[0].port, 6008, "a dry run changes nothing");
  r = await msmctl(["apply", "-f", file], { env });
  assert.is(r.out, "segment/cam-1 unchanged\nsegment/cam-2 unchanged\nsegment/cam-3 configured\n");
  assert.match(r.err, /^msmctl: note: stored as revision \d+; proxy node-2 has not accepted it yet/);
  r = await msmctl(["get", "segment", "cam-3", "-o", "json"], { env });
  assert.is(JSON.parse(r.out).spec.destinations[0].port, 6010);
});

live("apply -f - reads stdin (the built binary); the examples in docs/control-plane.md pass a dry run (the 2022-7 receive side's too)", async () => {
  const one = SEGMENTS_YAML.split("---")[0]!.replace("cam-1", "cam-stdin").replace("port: 5004", "port: 5104");
  let r = await spawnMsmctl(["apply", "-f", "-"], { env, stdin: one });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, "segment/cam-stdin created\n");
  const doc = readFileSync(join(ROOT, "docs", "control-plane.md"), "utf8");
  const example = /```yaml\n(# cams\.yaml\n[\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(example, "docs/control-plane.md has the cams.yaml example");
  r = await msmctl(["apply", "-f", "-", "--dry-run"], { env, stdin: example });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, "segment/cam-1 configured (dry run)\nsegment/cam-2 configured (dry run)\n");
  const fec = /```yaml\n(# fec\.yaml\n[\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(fec, "docs/control-plane.md has the fec.yaml example");
  r = await msmctl(["apply", "-f", "-", "--dry-run"], { env, stdin: fec });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, "segment/cam-fec created (dry run)\n");
  // the 2022-7 receive side: sources by address only (any port), a stage's rootConfig and limits
  const receive = /```yaml\n(# st2022-7-receive\.yaml\n[\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(receive, "docs/control-plane.md has the st2022-7-receive.yaml example");
  r = await msmctl(["filter", "push", "replicate@1.0.0", filterWasm("replicate")], { env });
  assert.is(r.code, 0, r.err);
  r = await msmctl(["apply", "-f", "-", "--dry-run"], { env, stdin: receive });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, "segment/cam1-receive created (dry run)\n");
});

live("a bad file is refused locally with its path, and nothing is applied", async () => {
  const file = join(dir, "bad.yaml");
  writeFileSync(file, `${SEGMENTS_YAML.replace("cam-1", "cam-9").replace("port: 5004", "port: 5204").replace("port: 6006 }", "prot: 6006 }")}`);
  const r = await spawnMsmctl(["apply", "-f", file], { env });
  assert.is(r.code, 1);
  assert.ok(r.err.includes(`msmctl: ${file}: document 2: spec.destinations[0].prot: unknown key\n`), r.err);
  assert.is((await msmctl(["get", "segment", "cam-9"], { env })).code, 1, "the valid document was not applied either");
});

live("what only the server can refuse is reported in the file's terms, and nothing is applied", async () => {
  const file = join(dir, "clash.yaml");
  const clash = SEGMENTS_YAML.split("---")[0]!.replace("cam-1", "cam-4");
  const unknown = SEGMENTS_YAML.split("---")[1]!.replace("cam-2", "cam-5").replace("port: 5006", "port: 5306").replace('destinations: [{ address: "::1", port: 6006 }]', 'destinations: [{ address: "::1", port: 6006 }]\n  chain: [{ filter: validate@9.9 }]');
  const neverPushed = unknown.replace("cam-5", "cam-6").replace("port: 5306", "port: 5406").replace("validate@9.9", "srtp");
  writeFileSync(file, `${clash}---${unknown}---${neverPushed}`);
  const r = await msmctl(["apply", "-f", file], { env });
  assert.is(r.code, 1);
  assert.match(r.err, /^msmctl: the control plane at 127\.0\.0\.1:\d+ refused the segments; nothing was applied:$/m);
  assert.match(r.err, new RegExp(`^msmctl: ${file.replace(/[.]/g, "\\.")}: document 1: spec\\.listen\\.port: .*cam-1`, "m"));
  // cam-4's RTCP port (listen port + 1) clashes too: that line is in the file's words as well
  assert.match(r.err, new RegExp(`^msmctl: ${file.replace(/[.]/g, "\\.")}: document 1: spec\\.listen\\.port \\(RTCP, port \\+ 1\\): port already used by .*cam-1`, "m"), r.err);
  for (const line of r.err.trimEnd().split("\n").slice(1)) assert.ok(line.startsWith(`msmctl: ${file}: document `), `a refusal line not located in the file: ${line}`);
  assert.match(r.err, new RegExp(`^msmctl: ${file.replace(/[.]/g, "\\.")}: document 2: spec\\.chain\\[0\\]\\.filter: unknown filter 'validate@9\\.9' \\(pushed versions: 1\\.0\\.0\\)$`, "m"));
  assert.ok(r.err.includes(`msmctl: ${file}: document 3: spec.chain[0].filter: unknown filter 'srtp' (push it first: msmctl filter push srtp@VERSION FILE.wasm)\n`), r.err);
  assert.is((await msmctl(["get", "segment", "cam-5"], { env })).code, 1);
});

live("get segments: an aligned table; -o json and -o yaml give whole objects that apply again unchanged", async () => {
  let r = await msmctl(["get", "segments"], { env });
  assert.is(r.code, 0, r.err);
  const lines = r.out.trimEnd().split("\n");
  assert.match(lines[0]!, /^NAME\s+PROXY\s+LISTEN\s+DESTINATIONS\s+LEGS\s+CHAIN\s+REVISION$/);
  assert.equal(lines.slice(1).map((l) => l.split(/\s+/)[0]), ["cam-1", "cam-2", "cam-3", "cam-stdin"]);
  const col = lines[0]!.indexOf("LISTEN");
  const cam1 = lines.find((l) => l.startsWith("cam-1 "))!;
  assert.is(cam1.indexOf("127.0.0.1:5004"), col, "columns line up");
  assert.match(cam1, /^cam-1\s+node-1\s+127\.0\.0\.1:5004\s+127\.0\.0\.1:6004,127\.0\.0\.1:6014\s+-\s+validate@1\.0\.0\s+\d+$/);
  assert.match(lines.find((l) => l.startsWith("cam-2 "))!, /\[::1\]:5006\s+\[::1\]:6006\s+-\s+-\s+\d+$/);

  r = await msmctl(["get", "segments", "cam-1", "-o", "json"], { env });
  const obj = JSON.parse(r.out);
  assert.is(obj.kind, "Segment");
  assert.equal(obj.spec.chain, [{ filter: "validate@1.0.0", config: { allowedPayloadTypes: [96] } }]);
  assert.equal(obj.spec.failure, { mode: "closed", maxFailures: 3 });
  assert.ok(obj.metadata.revision > 0);

  r = await msmctl(["get", "segments", "-o", "yaml"], { env });
  assert.match(r.out, /^kind: List$/m);
  const again = join(dir, "again.yaml");
  writeFileSync(again, r.out);
  r = await msmctl(["apply", "-f", again], { env });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, "segment/cam-1 unchanged\nsegment/cam-2 unchanged\nsegment/cam-3 unchanged\nsegment/cam-stdin unchanged\n");

  r = await msmctl(["get", "segment/nope"], { env });
  assert.is(r.code, 1);
  assert.match(r.err, /segment "nope" not found/);
  assert.is(r.out, "", "nothing found: nothing printed");
  // some found: printed, and the missing one is the error (exit 1), as kubectl does
  r = await msmctl(["get", "segments", "cam-1", "nope"], { env });
  assert.is(r.code, 1);
  assert.match(r.out, /^NAME\s.*\ncam-1\s/);
  assert.match(r.err, /segment "nope" not found/);
  r = await msmctl(["get", "segments", "cam-1", "nope", "-o", "json"], { env });
  assert.is(r.code, 1);
  assert.equal(JSON.parse(r.out).items.map((x: { metadata: { name: string } }) => x.metadata.name), ["cam-1"]);
  r = await msmctl(["get", "segments", "--proxy", "node-2"], { env });
  assert.equal(r.out.trimEnd().split("\n").slice(1).map((l) => l.split(/\s+/)[0]), ["cam-3"]);
});

live("legs: apply, get (a LEGS column), describe (each leg's ports), -o yaml applied again unchanged; rules across legs refused by the server in the file's terms, nothing applied", async () => {
  const file = join(dir, "fec.yaml");
  writeFileSync(file, LEGS_YAML);
  let r = await msmctl(["apply", "-f", file], { env });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, "segment/fec-1 created\n");
  r = await msmctl(["get", "segments", "--proxy", "node-4"], { env });
  assert.match(r.out, /^fec-1\s+node-4\s+127\.0\.0\.1:5604\s+127\.0\.0\.1:6604,127\.0\.0\.1:6614\s+fec-col,fec-row,path-b \+1 more\s+-\s+\d+$/m, r.out);
  r = await msmctl(["describe", "segment", "fec-1"], { env });
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^Legs:\s+fec-col: receives on 127\.0\.0\.1:5606 \(listen port \+ 2\); sends to 127\.0\.0\.1:6606, 127\.0\.0\.1:6616 \(destination ports \+ 2\)$/m, r.out);
  assert.match(r.out, /^\s+repair: receives nothing; sends to 127\.0\.0\.1:6800 from 127\.0\.0\.1:5800$/m);
  r = await msmctl(["get", "segment", "fec-1", "-o", "yaml"], { env });
  const again = join(dir, "fec-again.yaml");
  writeFileSync(again, r.out);
  r = await msmctl(["apply", "-f", again], { env });
  assert.is(r.out, "segment/fec-1 unchanged\n", r.err);

  // a leg name twice, a receiving leg with neither listen nor portOffset: the proxy's rules, on the server
  writeFileSync(file, LEGS_YAML.replace("name: fec-row", "name: fec-col").replace("      receive: false\n", ""));
  r = await msmctl(["apply", "-f", file], { env });
  assert.is(r.code, 1);
  const where = `msmctl: ${file.replace(/[.]/g, "\\.")}: document 1: `;
  assert.match(r.err, new RegExp(`^${where}spec\\.legs\\[1\\]\\.name: duplicate leg name 'fec-col'$`, "m"), r.err);
  assert.match(r.err, new RegExp(`^${where}spec\\.legs\\[3\\]: a receiving leg needs listen or portOffset \\(or receive: false\\)$`, "m"), r.err);
  // and 8 legs, refused before anything is sent
  writeFileSync(file, LEGS_YAML.replace(/  legs:\n[\s\S]*$/, `  legs:\n${Array.from({ length: 8 }, (_, k) => `    - { name: leg-${k}, portOffset: ${2 + 2 * k} }`).join("\n")}\n`));
  r = await msmctl(["apply", "-f", file], { env });
  assert.is(r.code, 1);
  assert.match(r.err, new RegExp(`^${where}spec\\.legs: at most 7 items$`, "m"), r.err);
  const stored = JSON.parse((await msmctl(["get", "segment", "fec-1", "-o", "json"], { env })).out);
  assert.equal(stored.spec.legs.map((l: { name: string }) => l.name), ["fec-col", "fec-row", "path-b", "repair"], "nothing changed");
  assert.is((await msmctl(["delete", "segment", "fec-1"], { env })).code, 0);
});

live("secrets: apply warns about a key given inline; get and describe hide it unless --show-secrets; the hidden output applied back is refused in the file's terms", async () => {
  const file = join(dir, "keys.yaml");
  const manifest = `kind: Segment
metadata: { name: cam-key }
spec:
  proxy: node-3
  listen: { address: 127.0.0.1, port: 5404 }
  destinations: [{ address: 127.0.0.1, port: 6404 }]
  chain:
    - filter: validate@1.0.0
      config: { key: c2VjcmV0, reverseKey: { $file: /etc/msm/cam.key }, authToken: { $env: CAM_TOKEN } }
`;
  writeFileSync(file, manifest);
  let r = await msmctl(["apply", "-f", file], { env });
  assert.is(r.code, 0, r.err);
  assert.is(r.err.split("\n").filter((l) => l.includes(`warning: ${file}`)).join("\n"), `msmctl: warning: ${file}: document 1: spec.chain[0].config.key: a secret given inline is kept by the control plane; prefer { $file: /path/on/the/proxy } or { $env: NAME }, which the proxy reads (docs/control-plane.md, "Keys")`, "one warning: references are not secrets");

  r = await msmctl(["get", "segment", "cam-key", "-o", "yaml"], { env });
  assert.is(r.code, 0, r.err);
  assert.not.match(r.out, "c2VjcmV0");
  assert.match(r.out, /key: <redacted>/);
  assert.match(r.out, /\$file: \/etc\/msm\/cam\.key/, "a reference is shown: it is a path, not a key");
  assert.match(r.err, /secret-looking config values are shown as <redacted>; --show-secrets prints them/);
  const hidden = join(dir, "hidden.yaml");
  writeFileSync(hidden, r.out);
  for (const args of [["describe", "segment", "cam-key"], ["describe", "segment", "cam-key", "-o", "json"], ["describe", "proxy", "node-3", "-o", "yaml"], ["get", "segments", "-o", "json"]]) {
    const d = await msmctl(args, { env });
    assert.is(d.code, 0, d.err);
    assert.not.match(d.out, "c2VjcmV0", args.join(" "));
  }
  r = await msmctl(["get", "segment", "cam-key", "-o", "json", "--show-secrets"], { env });
  assert.is(JSON.parse(r.out).spec.chain[0].config.key, "c2VjcmV0");
  assert.is(r.err, "");
  r = await msmctl(["describe", "segment", "cam-key", "--show-secrets"], { env });
  assert.match(r.out, "c2VjcmV0");

  // the hidden output applied back would replace the key with the placeholder: refused
  r = await msmctl(["apply", "-f", hidden], { env });
  assert.is(r.code, 1);
  assert.match(r.err, new RegExp(`^msmctl: ${hidden.replace(/[.]/g, "\\.")}: document 1: spec\\.chain\\[0\\]\\.config: 'key' is the placeholder <redacted>`, "m"));
  r = await msmctl(["get", "segment", "cam-key", "-o", "json", "--show-secrets"], { env });
  assert.is(JSON.parse(r.out).spec.chain[0].config.key, "c2VjcmV0", "the key is still there");
  assert.is((await msmctl(["delete", "segment", "cam-key"], { env })).code, 0);
});

live("get proxies and describe: a proxy's refusal, truncated in the table and whole in describe, and its stats", async () => {
  const file = join(dir, "refused.yaml");
  writeFileSync(file, SEGMENTS_YAML.split("---")[0]!.replace("[96]", "[200]"));
  const answered = proxy.answered;
  let r = await msmctl(["apply", "-f", file], { env });
  assert.is(r.out, "segment/cam-1 configured\n", r.err);
  await until("the proxy's NACK", async () => {
    if (proxy.answered <= answered) return undefined;
    const p = JSON.parse((await msmctl(["get", "proxies", "node-1", "-o", "json"], { env })).out);
    return p.nackedVersion === p.desiredVersion ? p : undefined;
  });
  await until("stats stored", async () => ((await msmctl(["describe", "proxy", "node-1"], { env })).out.includes("cam-1   ") ? true : undefined));

  r = await msmctl(["get", "proxies"], { env });
  assert.is(r.code, 0, r.err);
  const lines = r.out.trimEnd().split("\n");
  assert.match(lines[0]!, /^NODE\s+CONNECTED\s+SERVER\s+DESIRED\s+ACKED\s+NACKED\s+LAST-SEEN$/);
  assert.match(lines[1]!, /^node-1\s+yes\s+cp-0\s+(\d+)\s+\d+\s+\1: segments\[0\]\.chain\[0\]\.config_json: v[a-z]*…\s+\d+s$/, r.out);
  assert.match(lines[2]!, /^node-2\s+no\s+-\s+\d+\s+0\s+-\s+-$/, r.out);

  r = await msmctl(["describe", "proxy", "node-1"], { env });
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^Connected:\s+yes, to cp-0 from 127\.0\.0\.1:\d+$/m);
  assert.match(r.out, /^Config:\s+REFUSED version \d+; runs version \d+$/m);
  assert.match(r.out, /^Last refusal:\s+version (\d+): snapshot \1 not applied, the running config is unchanged: segments\[0\]\.chain\[0\]\.config_json: validate refused its config: allowedPayloadTypes\[0\]: must be a payload type from 0 to 127, got 200$/m);
  assert.match(r.out, /^Capabilities:\s+workers=1, runtime=test$/m);
  assert.match(r.out, /^Segments \(3\):\n\s+NAME\s+LISTEN\s+DESTINATIONS\s+LEGS\s+CHAIN\s+REVISION\n\s+cam-1\s+127\.0\.0\.1:5004\s/m);
  assert.match(r.out, /^\s+SEGMENT\s+PACKETS-IN\s+PACKETS-OUT\s+BYTES-IN\s+BYTES-OUT\s+DROPS\s+DROP-REASONS\s+STAGES$/m);
  assert.match(r.out, /^\s+cam-1\s+\d+\s+\d+\s+\S+\s+\S+\s+\d+\s+(bad_version \d+|-)\s+validate$/m);

  r = await msmctl(["describe", "segment", "cam-1"], { env });
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^Name:\s+cam-1$/m);
  assert.match(r.out, /^Listen:\s+127\.0\.0\.1:5004 \(RTCP 5005\)$/m);
  assert.match(r.out, /^\s+127\.0\.0\.1:6014 \(RTCP 6100\)$/m);
  assert.match(r.out, /^Chain:\s+1\. validate@1\.0\.0  \{"allowedPayloadTypes":\[200\]\}$/m);
  assert.match(r.out, /^Failure:\s+mode closed, .*give up after 3 failures$/m);
  assert.match(r.out, /^Proxy status:\s+connected; REFUSED version \d+/m);
  assert.match(r.out, /^Last refusal:\s+version \d+: snapshot \d+ not applied, .*: segments\[0\]\.chain\[0\]\.config_json: validate refused/m);
  assert.match(r.out, /^Stats:\s+reported \d+s ago/m);
  assert.match(r.out, /^\s+stage 0 validate \(running\): in \d+, out \d+, dropped 0, failures 0, 220 ns\/packet$/m);
  // the filter's own metrics, as the proxy reported them
  assert.match(r.out, /^\s+stage 0 validate \(running\): .*\n\s+metrics: (packets [1-9]\d*; )?rtt_us count 36, mean 25(; 1 more at 0)?$/m);

  r = await msmctl(["describe", "segment", "cam-3"], { env });
  assert.match(r.out, /^Proxy status:\s+never connected; version \d+ waits for it to connect; it has run nothing from the control plane$/m, r.out);
  assert.match(r.out, /^Stats:\s+none reported$/m);
  // as kubectl: no name describes each, several each in turn, -o json a list of them
  r = await msmctl(["describe", "segments"], { env });
  assert.is(r.code, 0, r.err);
  const described = [...r.out.matchAll(/^Name:\s+(\S+)$/gm)].map((m) => m[1]!);
  assert.equal(described, [...described].sort(), "in name order");
  assert.ok(["cam-1", "cam-2", "cam-3"].every((n) => described.includes(n)), described.join());
  r = await msmctl(["describe", "segment", "cam-3", "cam-1", "-o", "json"], { env });
  assert.equal(JSON.parse(r.out).items.map((x: { segment: { metadata: { name: string } } }) => x.segment.metadata.name), ["cam-3", "cam-1"]);
  r = await msmctl(["describe", "proxies"], { env });
  assert.match(r.out, /^Node:\s+node-1$/m);

  writeFileSync(file, SEGMENTS_YAML.split("---")[0]!);
  r = await msmctl(["apply", "-f", file], { env });
  assert.is(r.out, "segment/cam-1 configured\n");
  await until("the proxy's ACK", async () => {
    const p = JSON.parse((await msmctl(["get", "proxies", "node-1", "-o", "json"], { env })).out);
    return p.ackedVersion === p.desiredVersion ? p : undefined;
  });
  r = await msmctl(["describe", "proxy", "node-1"], { env });
  assert.match(r.out, /^Config:\s+runs the newest config \(version \d+\)$/m);
  // the ACK of the newer version superseded the refusal: not shown as if the proxy were unhealthy
  assert.match(r.out, /^Versions:\s+desired (\d+), acked \1, nacked -$/m);
  assert.not.match(r.out, /Last refusal/);
  r = await msmctl(["get", "proxies", "node-1"], { env });
  assert.match(r.out.split("\n")[1]!, /^node-1\s+yes\s+cp-0\s+(\d+)\s+\1\s+-\s+\d+s$/, r.out);
  r = await msmctl(["describe", "proxy", "node-9"], { env });
  assert.is(r.code, 1);
  assert.match(r.err, /proxy "node-9" not found/);
});

live("top --once: packets, drops and bytes per second from two stats reports", async () => {
  const r = await msmctl(["top", "--once", "--interval", "0.5"], { env });
  assert.is(r.code, 0, r.err);
  const lines = r.out.trimEnd().split("\n");
  assert.match(lines[0]!, /^PROXY\s+SEGMENT\s+PKTS-IN\/S\s+PKTS-OUT\/S\s+DROPS\/S\s+BYTES-IN\/S\s+BYTES-OUT\/S$/);
  assert.equal(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 2).join(" ")), ["node-1 cam-1", "node-1 cam-2", "node-1 cam-stdin"]);
  const cam1 = lines.find((l) => /^node-1\s+cam-1\s/.test(l))!.split(/\s+/);
  const value = (cell: string): number => Number(cell.replace(/k$/, "")) * (cell.endsWith("k") ? 1000 : 1);
  const near = (got: number, want: number, what: string): void => assert.ok(Math.abs(got - want) <= want * 0.15, `${what}: ${cam1.join(" ")}`);
  near(value(cam1[2]!), 500, "in ~500/s");
  near(value(cam1[3]!), 1000, "out ~1000/s (two destinations)");
  assert.ok(Math.abs(value(cam1[4]!) - 5) <= 2.5, `drops ~5/s (1 in 100, counted in whole packets): ${cam1.join(" ")}`);
  assert.match(cam1[5]!, /^(5\d\d|6[0-7]\d)KiB$/, "1200-byte packets: ~586 KiB/s");
  const json = await msmctl(["top", "--once", "--interval", "0.2", "--proxy", "node-1", "-o", "json"], { env });
  const rates = JSON.parse(json.out).segments as { segment: string; packetsInPerSec: number }[];
  assert.ok(rates.every((x) => x.packetsInPerSec > 300 && x.packetsInPerSec < 700), json.out);
});

live("top, live: redraws until Ctrl-C, then exits 0 (the built binary)", async () => {
  // Ctrl-C after the third redraw (a busy machine starts the binary slowly: no fixed time)
  const redraws = (out: string): number => (out.match(/^PROXY\s+SEGMENT/gm) ?? []).length;
  const r = await spawnMsmctl(["top", "--interval", "0.2"], { env, interruptWhen: (out) => redraws(out) >= 3, interruptAfterMs: 20_000 });
  assert.is(r.code, 0, r.err);
  assert.ok(redraws(r.out) >= 3, r.out);
  assert.match(r.out, /^node-1\s+cam-1\s+\d+/m);
});

live("one proxy's large report does not break top or describe, for it or the others (paged); a proxy's text is printed escaped", async () => {
  const big = new TestProxy(cp.port, "node-big", "insecure", {
    intervalMs: 1000,
    report: (n) => ({ workers: 1, workerMode: "thread", watchdogRestarts: 0, segments: Array.from({ length: 7000 }, (_, i) => fakeSegment(`big-${i}`, n)) }), // ~4.5 MB: more than a 4 MiB gRPC answer
  });
  const evil = new TestProxy(cp.port, "node-evil", "insecure", {
    refuse: (snap) => `\x1b[2J\x1b[31msnapshot ${snap.version} FAKE\x1b[0m\nmsmctl: all good\u202e`,
    report: (n) => ({ workers: 1, workerMode: "thread", watchdogRestarts: 0, segments: [fakeSegment("cam\x1b]0;owned\x07\u202e", n)] }),
  });
  try {
    const file = join(dir, "evil.yaml");
    writeFileSync(file, "kind: Segment\nmetadata: { name: cam-evil }\nspec:\n  proxy: node-evil\n  listen: { address: 127.0.0.1, port: 5504 }\n  destinations: [{ address: 127.0.0.1, port: 6504 }]\n");
    assert.is((await msmctl(["apply", "-f", file], { env })).code, 0);
    await until("node-evil's refusal", async () => {
      const p = JSON.parse((await msmctl(["get", "proxies", "node-evil", "-o", "json"], { env })).out);
      return p.nackedVersion > 0 && p.nackedVersion === p.desiredVersion ? p : undefined;
    });
    // all its pages stored (the file store writes each with fsync: this takes a few seconds)
    await until("node-big's whole report stored", async () => {
      const out = (await msmctl(["describe", "proxy", "node-big"], { env })).out;
      return /^\s+big-6999\s/m.test(out) && !out.includes("pages of its report were read") ? true : undefined;
    }, 25_000);

    const r = await msmctl(["top", "--once", "--interval", "0.2"], { env });
    assert.is(r.code, 0, r.err);
    assert.match(r.out, /^node-1\s+cam-1\s+\d/m, "the other proxies' rates are there");
    assert.is(r.out.match(/^node-big\s+big-\d+\s/gm)?.length, 7000, "every segment of the large report");
    assert.match(r.out, /^node-evil\s+cam\\x1b\]0;owned\\x07\\u\{202e\}\s/m, "a segment name from a proxy, escaped");

    for (const args of [["get", "proxies"], ["describe", "proxy", "node-evil"], ["get", "proxies", "-o", "json"], ["get", "proxies", "-o", "yaml"], ["top", "--once", "--interval", "0.2", "--proxy", "node-evil"]]) {
      const out = (await msmctl(args, { env })).out;
      assert.not.ok(/[\x1b\x07\u202e]/.test(out), `${args.join(" ")} printed a raw control character:\n${JSON.stringify(out)}`);
    }
    const described = (await msmctl(["describe", "proxy", "node-evil"], { env })).out;
    assert.match(described, /^Last refusal:\s+version \d+: \\x1b\[2J\\x1b\[31msnapshot \d+ FAKE\\x1b\[0m$/m);
    assert.match(described, /^\s+msmctl: all good\\u\{202e\}$/m, "its second line indented under the label, not a line of its own");
    const json = JSON.parse((await msmctl(["get", "proxies", "node-evil", "-o", "json"], { env })).out);
    assert.match(json.nackError, "\x1b[2J", "the JSON still holds the exact text");
    assert.match((await msmctl(["describe", "proxy", "node-big"], { env })).out, /Stats, reported/);
  } finally {
    big.close();
    evil.close();
    await msmctl(["delete", "segment", "cam-evil"], { env });
  }
});

live("delete: by name and by file, all or none; --ignore-not-found", async () => {
  let r = await msmctl(["delete", "segment", "cam-stdin", "cam-nope"], { env });
  assert.is(r.code, 1);
  assert.match(r.err, /^msmctl: segment "cam-nope" not found; nothing was deleted \(--ignore-not-found deletes those that exist\)$/m);
  r = await msmctl(["delete", "segment", "cam-stdin", "cam-nope", "--ignore-not-found"], { env });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, "segment/cam-stdin deleted\n");
  r = await msmctl(["delete", "-f", join(dir, "cams.yaml")], { env });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, "segment/cam-1 deleted\nsegment/cam-2 deleted\nsegment/cam-3 deleted\n");
  r = await msmctl(["get", "segments"], { env });
  assert.is(r.out, "");
  assert.is(r.err, "No segments found.\n");
});

live("delete proxy: refused while it is connected or segments name it; then forgotten, with its stats, all or none", async () => {
  const file = join(dir, "gone.yaml");
  writeFileSync(file, "kind: Segment\nmetadata: { name: cam-gone }\nspec:\n  proxy: node-gone\n  listen: { address: 127.0.0.1, port: 7204 }\n  destinations: [{ address: 127.0.0.1, port: 7304 }]\n");
  const listed = async (): Promise<boolean> => (JSON.parse((await msmctl(["get", "proxies", "-o", "json"], { env })).out) as { items: { nodeId: string }[] }).items.some((p) => p.nodeId === "node-gone");
  let gone: TestProxy | undefined = new TestProxy(cp.port, "node-gone", "insecure");
  try {
    assert.is((await msmctl(["apply", "-f", file], { env })).code, 0);
    await until("node-gone's stats stored", async () => ((await msmctl(["describe", "proxy", "node-gone"], { env })).out.includes("LAST-SEEN") || (await listed()) ? true : undefined));
    let r = await msmctl(["delete", "proxy", "node-gone"], { env });
    assert.is(r.code, 1);
    assert.match(r.err, /proxy "node-gone" is connected \(to cp-0 from .+\): stop it first, or it registers again; nothing was deleted/);
    gone.close();
    gone = undefined;
    await until("node-gone disconnected", async () => (JSON.parse((await msmctl(["get", "proxies", "node-gone", "-o", "json"], { env })).out) as { connected: boolean }).connected ? undefined : true);
    r = await msmctl(["delete", "proxy", "node-gone"], { env });
    assert.is(r.code, 1);
    assert.match(r.err, /segments name proxy "node-gone" \(cam-gone\): delete them or move them to another proxy first; nothing was deleted/);
    assert.is((await msmctl(["delete", "segment", "cam-gone"], { env })).code, 0);
    assert.ok(await listed(), "still listed: gone, but not forgotten");
    r = await msmctl(["delete", "proxies", "node-gone", "node-nope"], { env });
    assert.is(r.code, 1);
    assert.match(r.err, /proxy "node-nope" not found; nothing was deleted/);
    assert.ok(await listed(), "all or none");
    r = await msmctl(["delete", "proxy/node-gone", "proxy/node-nope", "--ignore-not-found"], { env });
    assert.is(r.code, 0, r.err);
    assert.is(r.out, "proxy/node-gone deleted\n");
    assert.not.ok(await listed(), "forgotten");
    assert.is((await msmctl(["get", "proxies", "node-1", "-o", "json"], { env })).code, 0, "the others stay");
    r = await msmctl(["describe", "proxy", "node-gone"], { env });
    assert.is(r.code, 1, "its stats are gone too");
    assert.is((await msmctl(["delete", "proxy", "node-1", "--wait"], { env })).code, 2, "--wait is for segments");
  } finally {
    gone?.close();
    await msmctl(["delete", "segment", "cam-gone", "--ignore-not-found"], { env });
  }
});

live("errors: a refused connection names the server; usage errors exit 2", async () => {
  let r = await spawnMsmctl(["get", "segments", "--server", "127.0.0.1:1", "--insecure"]);
  assert.is(r.code, 1);
  assert.match(r.err, /^msmctl: cannot connect to the control plane at 127\.0\.0\.1:1: connection refused/);
  r = await spawnMsmctl(["get", "segments"]);
  assert.is(r.code, 2);
  assert.match(r.err, /no credentials: give --tls-ca, --tls-cert and --tls-key .* or --insecure/);
  for (const [args, message] of [
    [["frobnicate"], /unknown command 'frobnicate'/],
    [["get"], /get needs a resource type/],
    [["get", "pods"], /unknown resource type 'pods'/],
    [["apply"], /apply needs -f FILE/],
    [["get", "segments", "--dry-run"], /--dry-run does not apply to 'get'/],
    [["get", "segments", "-o", "xml"], /-o must be one of table, json, yaml/],
    [["describe", "stream"], /one name/],
    [["delete", "segment"], /at least one NAME/],
    [["top", "proxies"], /unknown resource type 'proxies'/],
    [["get", "segments", "--insecure", "--tls-ca", "x"], /--insecure and --tls-ca exclude each other/],
    [["get", "segments", "--server", "a:b:c"], /--server must be HOST:PORT/],
    [["get", "segments", "--bogus"], /^msmctl: unknown flag --bogus\nSee 'msmctl help get'\.\n$/],
    [["get", "segments", "--outptu", "json"], /^msmctl: unknown flag --outptu; did you mean --output\?\nSee 'msmctl help get'\.\n$/],
    [["--bogus", "describe", "proxy", "x"], /^msmctl: unknown flag --bogus\nSee 'msmctl help describe'\.\n$/],
    [["get", "filters", "--proxy", "node-1"], /^msmctl: --proxy applies to get segments and get streams\nSee 'msmctl help get'\.\n$/],
    [["get", "proxies", "--bad"], /^msmctl: --bad applies to get streams\nSee 'msmctl help get'\.\n$/],
  ] as [string[], RegExp][]) {
    r = await msmctl(args, { env });
    assert.is(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, message);
  }
});

live("version: -o json and -o yaml print its fields; a flag of another command or an output it does not have is refused (exit 2), not ignored", async () => {
  let r = await spawnMsmctl(["version"]);
  assert.equal([r.code, r.err], [0, ""]);
  assert.match(r.out, /^msmctl \S+ \(filter ABI \d+\.\d+, (Node\.js|Bun) \S+\)\n$/);
  r = await spawnMsmctl(["version", "-o", "json"]);
  assert.equal([r.code, r.err], [0, ""]);
  const v = JSON.parse(r.out) as { client: string; version: string; filterAbi: string; runtime: { name: string; version: string } };
  assert.is(v.client, "msmctl");
  assert.is(`msmctl ${v.version} (filter ABI ${v.filterAbi}, ${v.runtime.name === "bun" ? "Bun" : "Node.js"} ${v.runtime.version})\n`, (await spawnMsmctl(["version"])).out);
  r = await spawnMsmctl(["version", "-o", "yaml"]);
  assert.equal([r.code, r.err], [0, ""]);
  assert.match(r.out, /^client: msmctl\nversion: /);
  for (const [args, message] of [
    [["version", "-o", "xml"], /^msmctl: -o must be one of table, json, yaml, wide, name, got 'xml'\n/],
    [["version", "-o", "name"], /^msmctl: -o name applies to get, apply and delete\n/],
    [["version", "--dry-run"], /^msmctl: --dry-run does not apply to 'version'\n/],
  ] as [string[], RegExp][]) {
    r = await spawnMsmctl(args);
    assert.equal([r.code, r.out], [2, ""], `${args.join(" ")}: ${r.out}`);
    assert.match(r.err, message);
  }
});

live("help: a command's usage; a misspelt command is said (exit 2), also with --help, not answered with the whole usage and exit 0", async () => {
  let r = await spawnMsmctl(["help", "apply"]);
  assert.equal([r.code, r.err], [0, ""]);
  assert.match(r.out, /^Usage:\n  msmctl apply -f FILE/);
  r = await spawnMsmctl(["apply", "--help"]);
  assert.equal([r.code, r.err], [0, ""]);
  assert.match(r.out, /^Usage:\n  msmctl apply -f FILE/);
  r = await spawnMsmctl(["help"]);
  assert.equal([r.code, r.err], [0, ""]);
  assert.match(r.out, /^msmctl: operate a Media Streaming Mesh control plane\n/);
  r = await spawnMsmctl(["help", "aply"]);
  assert.equal([r.code, r.out], [2, ""]);
  assert.match(r.err, /^msmctl: no help for 'aply': not a command \(apply, get, describe, delete, filter, top, dashboard, version\)\nSee 'msmctl help'\.\n$/);
  r = await spawnMsmctl(["aply", "--help"]);
  assert.equal([r.code, r.out], [2, ""]);
  assert.match(r.err, /^msmctl: unknown command 'aply'\n/);
});

// last of this suite: it leaves the control plane knowing a proxy node-9 (get proxies lists it)
live("apply --wait / delete --wait: until each proxy concerned runs the change; a refusal, a segment's old proxy, a proxy that never answers; exit 1 unless all run it", async () => {
  const file = join(dir, "wait.yaml");
  const doc = (name: string, proxy: string, port: number, payloadType = 96): string =>
    `kind: Segment\nmetadata: { name: ${name} }\nspec:\n  proxy: ${proxy}\n  listen: { address: 127.0.0.1, port: ${port} }\n  destinations: [{ address: 127.0.0.1, port: ${port + 1000} }]\n  chain: [{ filter: validate@1.0.0, config: { allowedPayloadTypes: [${payloadType}] } }]\n`;
  writeFileSync(file, doc("wait-1", "node-1", 5300));
  let r = await msmctl(["apply", "-f", file, "--wait"], { env });
  assert.is(r.code, 0, r.out + r.err);
  let revision = JSON.parse((await msmctl(["get", "segment", "wait-1", "-o", "json"], { env })).out).metadata.revision;
  assert.is(r.out, `segment/wait-1 created\nproxy/node-1 runs revision ${revision}\n`);
  assert.is(r.err, "", "no 'not accepted yet' note: it was");
  // nothing changed: its proxy still has to run what it is meant to
  r = await msmctl(["apply", "-f", file, "--wait"], { env });
  assert.equal([r.code, r.out], [0, `segment/wait-1 unchanged\nproxy/node-1 runs revision ${revision}\n`]);
  // the proxy refuses it (a filter's config): exit 1 with its reason
  writeFileSync(file, doc("wait-1", "node-1", 5300, 200));
  r = await msmctl(["apply", "-f", file, "--wait", "-o", "json"], { env });
  assert.is(r.code, 1, r.out + r.err);
  const refused = JSON.parse(r.out) as { revision: number; proxies: { proxy: string; result: string; detail: string }[] };
  assert.equal(refused.proxies.map((p) => [p.proxy, p.result]), [["node-1", "refused"]]);
  assert.match(refused.proxies[0]!.detail, "validate refused its config: allowedPayloadTypes[0]");
  // a dry run of the same file changes nothing there: the real apply would meet that refusal, so it fails too, saying it
  r = await msmctl(["apply", "-f", file, "--dry-run"], { env });
  assert.is(r.code, 1, r.out + r.err);
  assert.match(r.out, /^segment\/wait-1 unchanged \(dry run\)\nproxy\/node-1 REFUSED revision \d+: snapshot \d+ not applied, .*validate refused its config: allowedPayloadTypes\[0\]/);
  assert.match(r.err, /^msmctl: this apply changes nothing on proxy node-1, so a real apply meets what it answers now: refused/);
  r = await msmctl(["apply", "-f", file, "--dry-run", "-o", "json"], { env });
  assert.is(r.code, 1, r.out + r.err);
  assert.equal((JSON.parse(r.out) as typeof refused).proxies.map((p) => [p.proxy, p.result]), [["node-1", "refused"]]);
  // a dry run of the fix changes the proxy's segments: what it answers now says nothing of it
  writeFileSync(file, doc("wait-1", "node-1", 5300));
  r = await msmctl(["apply", "-f", file, "--dry-run"], { env });
  assert.equal([r.code, r.out], [0, "segment/wait-1 configured (dry run)\n"], r.err);
  // moved to a proxy that never connected: the old one answers (it drops the segment), the new one times out
  writeFileSync(file, doc("wait-1", "node-9", 5300));
  r = await msmctl(["apply", "-f", file, "--wait", "--wait-timeout", "1"], { env });
  assert.is(r.code, 1, r.out + r.err);
  revision = JSON.parse((await msmctl(["get", "segment", "wait-1", "-o", "json"], { env })).out).metadata.revision;
  assert.is(r.out, `segment/wait-1 configured\nproxy/node-1 runs revision ${revision}\nproxy/node-9 did not answer revision ${revision} within 1 s: it never connected to the control plane\n`);
  // the same apply again (a pipeline's retry): unchanged, but still not running anywhere
  r = await msmctl(["apply", "-f", file, "--wait", "--wait-timeout", "1"], { env });
  assert.is(r.code, 1, r.out + r.err);
  assert.is(r.out, `segment/wait-1 unchanged\nproxy/node-9 did not answer revision ${revision} within 1 s: it never connected to the control plane\n`);
  // delete: the proxy that ran it
  writeFileSync(file, doc("wait-2", "node-1", 5310));
  assert.is((await msmctl(["apply", "-f", file], { env })).code, 0);
  r = await msmctl(["delete", "segment", "wait-2", "wait-1", "--wait", "--wait-timeout", "2"], { env });
  assert.is(r.code, 0, r.out + r.err);
  assert.match(r.out, /^segment\/wait-2 deleted\nsegment\/wait-1 deleted\nproxy\/node-1 runs revision \d+\nproxy\/node-9: it never connected: nothing to remove\n$/);
  // usage
  r = await msmctl(["apply", "-f", file, "--wait", "--dry-run"], { env });
  assert.is(r.code, 2);
  assert.match(r.err, /^msmctl: --wait and --dry-run exclude each other: a dry run changes nothing to wait for\n/);
  r = await msmctl(["apply", "-f", file, "--wait-timeout", "5"], { env });
  assert.is(r.code, 2);
  assert.match(r.err, "--wait-timeout goes with --wait");
});

live.run();

// ---------------------------------------------------------------- mTLS

const tlsSuite = suite("msmctl with mTLS", { timeoutMs: 30_000 });
const tlsDir = mkdtempSync(join(tmpdir(), "msmctl-tls-"));
let tlsCp: ControlPlane;
let adminCert: TlsFiles;
let proxyCert: TlsFiles;
let foreignCert: TlsFiles;

tlsSuite.before(async () => {
  const pki = createPki(tlsDir);
  const serverCert = pki.issue("cp", "spiffe://msm.test/control-plane/cp-0");
  adminCert = pki.issue("alice", "spiffe://msm.test/admin/alice");
  proxyCert = pki.issue("node-1", "spiffe://msm.test/proxy/node-1");
  foreignCert = pki.issue("mallory", "spiffe://elsewhere.test/admin/mallory");
  tlsCp = await startControlPlane({ listen: "127.0.0.1:0", store: `file:${join(tlsDir, "store")}`, tls: serverCert, trustDomain: "msm.test", name: "cp-0", timing: TIMING, log: () => {} });
});

tlsSuite.after(async () => {
  await tlsCp?.close();
  rmSync(tlsDir, { recursive: true, force: true });
});

const tlsFlags = (files: TlsFiles): string[] => ["--tls-ca", files.ca, "--tls-cert", files.cert, "--tls-key", files.key];

tlsSuite("an admin certificate works (flags, and the MSM_TLS_* variables); no warning about the IP address", async () => {
  const server = `127.0.0.1:${tlsCp.port}`;
  let r = await msmctl(["filter", "push", "validate@1.0.0", filterWasm("validate"), "--server", server, ...tlsFlags(adminCert)]);
  assert.is(r.code, 0, r.err);
  r = await spawnMsmctl(["get", "filters", "-o", "json"], { env: { MSM_SERVER: server, MSM_TLS_CA: adminCert.ca, MSM_TLS_CERT: adminCert.cert, MSM_TLS_KEY: adminCert.key } });
  assert.is(r.code, 0, r.err);
  assert.is(r.err, "");
  assert.equal(JSON.parse(r.out).items.map((f: FilterRef) => `${f.name}@${f.version}`), ["validate@1.0.0"]);
});

tlsSuite("a proxy certificate is refused: PERMISSION_DENIED as a clear message", async () => {
  const r = await spawnMsmctl(["get", "segments", "--server", `127.0.0.1:${tlsCp.port}`, ...tlsFlags(proxyCert)]);
  assert.is(r.code, 1);
  assert.match(r.err, /^msmctl: permission denied by the control plane at 127\.0\.0\.1:\d+: spiffe:\/\/msm\.test\/proxy\/node-1 may not call \/msm\.v1\.AdminService\/ListSegments: it needs the 'admin' role\n$/, r.err);
});

tlsSuite("another trust domain, plain text against TLS, a missing key file: each says what is wrong", async () => {
  const server = `127.0.0.1:${tlsCp.port}`;
  // msmctl expects a control plane of its own certificate's trust domain
  let r = await msmctl(["get", "segments", "--server", server, ...tlsFlags(foreignCert)]);
  assert.is(r.code, 1);
  assert.match(r.err, /^msmctl: refusing the server at 127\.0\.0\.1:\d+: the server is not a control plane: its certificate has spiffe:\/\/msm\.test\/control-plane\/cp-0, not spiffe:\/\/elsewhere\.test\/control-plane\/<name>/, r.err);
  r = await msmctl(["get", "segments", "--server", server, "--insecure", "--timeout", "5"]);
  assert.is(r.code, 1);
  assert.is(r.err, `msmctl: cannot talk to the control plane at ${server}: the server speaks TLS: drop --insecure and give --tls-ca, --tls-cert and --tls-key (or MSM_TLS_*)\n`);
  // and the reverse: TLS files given to a plain-text control plane, one clean line
  const plain = await startControlPlane({ listen: "127.0.0.1:0", store: `file:${join(tlsDir, "plain-store")}`, tls: "insecure", log: () => {} });
  try {
    r = await msmctl(["get", "segments", "--server", `127.0.0.1:${plain.port}`, ...tlsFlags(adminCert)]);
    assert.is(r.code, 1);
    assert.is(r.err, `msmctl: cannot talk to the control plane at 127.0.0.1:${plain.port}: the server is plain text (started --insecure): give msmctl --insecure (or MSM_INSECURE=1) instead of --tls-ca, --tls-cert and --tls-key, or start the control plane with TLS\n`);
  } finally {
    await plain.close();
  }
  r = await msmctl(["get", "segments", "--server", server, "--tls-ca", adminCert.ca, "--tls-cert", adminCert.cert, "--tls-key", join(tlsDir, "nope.key")]);
  assert.is(r.code, 1);
  assert.match(r.err, /cannot read the TLS files: .*nope\.key/);
});

tlsSuite("a server whose certificate is a proxy's is refused before anything is sent to it (it could harvest keys)", async () => {
  const rogue = new Server();
  let calls = 0;
  const answer = (_call: unknown, cb: (err: null, res: object) => void): void => {
    calls++;
    cb(null, {});
  };
  rogue.addService(adminService, Object.fromEntries(Object.keys(adminService).map((m) => [m, answer])));
  const port = await new Promise<number>((resolve, reject) => rogue.bindAsync("127.0.0.1:0", serverCredentials(proxyCert), (err, p) => (err ? reject(err) : resolve(p))));
  try {
    const file = join(tlsDir, "secret.yaml");
    writeFileSync(file, SEGMENTS_YAML);
    const r = await msmctl(["apply", "-f", file, "--server", `127.0.0.1:${port}`, ...tlsFlags(adminCert)]);
    assert.is(r.code, 1);
    assert.match(r.err, /^msmctl: refusing the server at 127\.0\.0\.1:\d+: the server is not a control plane: its certificate has spiffe:\/\/msm\.test\/proxy\/node-1, not spiffe:\/\/msm\.test\/control-plane\/<name> \(is --server right\?\)\n$/, r.err);
    assert.is(calls, 0, "the request never reached it");
  } finally {
    rogue.forceShutdown();
  }
});

tlsSuite.run();
