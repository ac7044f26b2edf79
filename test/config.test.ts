// A bad proxy config names the field; each rule of the schema as a table.
import * as assert from "uvu/assert";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { HOST_FAMILIES, HOST_FILTER_FAMILIES, parseProxyConfig, readConfigText } from "../runtime/config/proxy-config.js";
import { ConfigError, legMulticast, parseErrorText, validateNodeSettings, validateProxyConfig, type ProxyConfigInput } from "../runtime/index.js";
import { readBounded } from "../runtime/bounded-read.js";
import { ROOT } from "./lib/paths.js";
import { suite } from "./lib/suite.js";

const test = suite("proxy config");

const seg = (over: Record<string, unknown> = {}) => ({
  name: "s1", listen: { address: "127.0.0.1", port: 5004 }, destinations: [{ address: "127.0.0.1", port: 6004 }], ...over,
});
const base = (over: Record<string, unknown> = {}): unknown => ({ filters: { v: { path: "v.wasm" } }, segments: [seg()], ...over });

const cases: [string, unknown, RegExp][] = [
  ["unknown top-level key", base({ wrokers: 2 }), /\(top level\): unknown key 'wrokers'; did you mean 'workers'\?/],
  ["a chain stage written as a bare name: the stage's keys are named", base({ segments: [seg({ chain: ["validate"] })] }), /^config: segments\[0\]\.chain\[0\]: Invalid input: expected object, received string \(an object with the keys filter, [a-z, ]+\)$/],
  ["a misspelt key: one line, naming the key meant", base({ segments: [seg({ listen: { adress: "127.0.0.1", port: 5004 } })] }), /^config: segments\[0\]\.listen: unknown key 'adress'; did you mean 'address'\?$/],
  ["a missing key", base({ segments: [seg({ listen: { port: 5004 } })] }), /segments\[0\]\.listen\.address: required \(string\)/],
  ["a value of the wrong type is not 'required'", base({ segments: [seg({ listen: { address: "127.0.0.1", port: "5004" } })] }), /segments\[0\]\.listen\.port: Invalid input: expected number, received string/],
  ["a group sent to with loopback on, where the segment listens", base({ segments: [seg({ listen: { address: "239.1.1.1", port: 5004 }, rtcpMux: true, multicast: { loopback: true }, destinations: [{ address: "239.1.1.1", port: 5004 }] })] }), /^config: segments\[0\]\.destinations\[0\]: 239\.1\.1\.1:5004 is this segment's own listen: every packet would come back to it; did you mean another port\?$/],
  ["port out of range", base({ segments: [seg({ listen: { address: "127.0.0.1", port: 70000 } })] }), /segments\[0\]\.listen\.port:/],
  ["not an IP address", base({ segments: [seg({ destinations: [{ address: "example.com", port: 1 }] })] }), /segments\[0\]\.destinations\[0\]\.address: must be an IPv4 or IPv6 address/],
  ["no destinations", base({ segments: [seg({ destinations: [] })] }), /segments\[0\]\.destinations:/],
  ["unknown filter in a chain", base({ segments: [seg({ chain: [{ filter: "nope" }] })] }), /segments\[0\]\.chain\[0\]\.filter: unknown filter 'nope'/],
  ["a chain naming a property every object has", base({ segments: [seg({ chain: [{ filter: "toString" }, { filter: "constructor" }] })] }), /^config: \n  segments\[0\]\.chain\[0\]\.filter: unknown filter 'toString' \(not under filters:\)\n  segments\[0\]\.chain\[1\]\.filter: unknown filter 'constructor'/],
  ["a filter entry named __proto__ (it vanished, copied into the filters record)", JSON.parse('{"filters": {"__proto__": {"path": "x.wasm"}}}'), /^config: filters\.__proto__: no key of a config may be named __proto__$/],
  ["a stage config key __proto__", base({ segments: [seg({ chain: [{ filter: "v", config: JSON.parse('{"__proto__": {"mode": "x"}}') }] })] }), /^config: segments\[0\]\.chain\[0\]\.config\.__proto__: no key of a config may be named __proto__$/],
  ["a filter twice in a chain", base({ segments: [seg({ chain: [{ filter: "v" }, { filter: "v" }] })] }), /segments\[0\]\.chain\[1\]\.filter: 'v' appears twice/],
  ["two segments on one port", base({ segments: [seg(), seg({ name: "s2" })] }), /segments\[1\]\.listen\.port: port already used by segments\[0\]\.listen\.port/],
  ["RTCP port collides", base({ segments: [seg(), seg({ name: "s2", listen: { address: "127.0.0.1", port: 5005 } })] }), /segments\[1\]\.listen\.port: port already used by segments\[0\]\.listen\.port \(RTCP/],
  ["the wildcard takes the port on every address", base({ segments: [seg({ listen: { address: "0.0.0.0", port: 5004 } }), seg({ name: "s2" })] }), /segments\[1\]\.listen\.port: port already used by segments\[0\]\.listen\.port/],
  ["two spellings of one IPv6 address", base({ segments: [seg({ listen: { address: "::1", port: 5004 } }), seg({ name: "s2", listen: { address: "0:0:0:0:0:0:0:1", port: 5004 } })] }), /segments\[1\]\.listen\.port: port already used/],
  ["IPv6 wildcard against an IPv6 egress", base({ segments: [seg({ listen: { address: "::", port: 5004 } }), seg({ name: "s2", listen: { address: "::1", port: 7000 }, egress: { address: "::1", port: 5004 } })] }), /segments\[1\]\.egress\.port: port already used by segments\[0\]\.listen\.port/],
  ["an IPv6 destination of an IPv4 segment", base({ segments: [seg({ destinations: [{ address: "::1", port: 6004 }] })] }), /segments\[0\]\.destinations\[0\]\.address: IPv6, but the segment sends from IPv4 \(listen\.address\)/],
  ["an IPv4 source of an IPv6 segment", base({ segments: [seg({ listen: { address: "::1", port: 5004 }, destinations: [{ address: "::1", port: 6004 }], source: { address: "127.0.0.1" } })] }), /segments\[0\]\.source\.address: IPv4, but the segment listens on IPv6/],
  ["a source port without an address", base({ segments: [seg({ source: { port: 5000 } })] }), /segments\[0\]\.source: port and rtcpPort need an address/],
  ["duplicate names", base({ segments: [seg(), seg({ listen: { address: "127.0.0.1", port: 7000 } })] }), /segments\[1\]\.name: duplicate segment name 's1'/],
  ["bad failure mode", base({ segments: [seg({ failure: { mode: "sideways" } })] }), /segments\[0\]\.failure\.mode:/],
  ["worker out of range", base({ workers: 2, segments: [seg({ worker: 2 })] }), /segments\[0\]\.worker: 2 but there are only 2 workers/],
  ["bad digest", base({ filters: { v: { path: "v.wasm", sha256: "xyz" } } }), /filters\.v\.sha256: must be 64 hex digits/],
  ["an unquoted all-digit digest (YAML reads a float)", base({ filters: { v: { path: "v.wasm", sha256: Number("1".repeat(64)) } } }), /filters\.v\.sha256: Invalid input: expected string, received number: YAML reads a value of digits alone as a number \(a long one, such as a digest, loses digits\); write it in quotes/],
  ["a receiving leg that says nowhere to listen", base({ segments: [seg({ legs: [{ name: "b", destinations: [{ address: "127.0.0.1", port: 7000 }] }] })] }), /segments\[0\]\.legs\[0\]: a receiving leg needs listen or portOffset/],
  ["a sending leg that says nowhere to send", base({ segments: [seg({ legs: [{ name: "b", listen: { port: 7000 } }] })] }), /segments\[0\]\.legs\[0\]: a sending leg needs destinations or portOffset/],
  ["two legs of one name", base({ segments: [seg({ legs: [{ name: "fec", portOffset: 2 }, { name: "fec", portOffset: 4 }] })] }), /segments\[0\]\.legs\[1\]\.name: duplicate leg name 'fec'/],
  ["eight legs", base({ segments: [seg({ legs: Array.from({ length: 8 }, (_, k) => ({ name: `l${k}`, portOffset: 2 + 2 * k })) })] }), /segments\[0\]\.legs: .*7/],
  ["an egress port with no port + 1 for RTCP", base({ segments: [seg({ egress: { address: "127.0.0.1", port: 65535 } })] }), /^config: segments\[0\]\.egress\.port: RTCP needs port \+ 1; use rtcpMux or a lower port$/],
  ["a destination with no port + 1 for its RTCP", base({ segments: [seg({ destinations: [{ address: "127.0.0.1", port: 65535 }] })] }), /^config: segments\[0\]\.destinations\[0\]\.port: its RTCP would go to port \+ 1, past 65535; give its rtcpPort, use rtcpMux, or a lower port$/],
  ["a leg past port 65535", base({ segments: [seg({ listen: { address: "127.0.0.1", port: 65532 }, rtcpMux: true, legs: [{ name: "row", portOffset: 4, send: false }] })] }), /segments\[0\]\.legs\[0\]\.portOffset: listen\.port \+ 4 is past 65535/],
  ["a leg's port clashes with another segment", base({ segments: [seg({ legs: [{ name: "col", portOffset: 2, send: false }] }), seg({ name: "s2", listen: { address: "127.0.0.1", port: 5006 } })] }), /segments\[1\]\.listen\.port: port already used by segments\[0\]\.legs\[0\] \(col\) listen/],
  ["a leg clashes with its own segment's RTCP", base({ segments: [seg({ legs: [{ name: "col", portOffset: 1, send: false }] })] }), /segments\[0\]\.legs\[0\] \(col\) listen: port already used by segments\[0\]\.listen\.port \(RTCP/],
  ["an IPv6 leg destination of an IPv4 segment", base({ segments: [seg({ legs: [{ name: "b", receive: false, destinations: [{ address: "::1", port: 7000 }] }] })] }), /segments\[0\]\.legs\[0\]\.destinations\[0\]\.address: IPv6, but leg 'b' sends from IPv4/],
  ["a leg named media", base({ segments: [seg({ legs: [{ name: "media", portOffset: 2 }] })] }), /segments\[0\]\.legs\[0\]\.name: 'media' is leg 0's name/],
  ["a leg that does nothing", base({ segments: [seg({ legs: [{ name: "x", portOffset: 2, receive: false, send: false }] })] }), /segments\[0\]\.legs\[0\]: a leg that neither receives nor sends/],
  ["a destination of 0.0.0.0", base({ segments: [seg({ destinations: [{ address: "0.0.0.0", port: 43000 }] })] }), /segments\[0\]\.destinations\[0\]\.address: 0\.0\.0\.0 is no host to send to/],
  ["a leg's destination of ::", base({ segments: [seg({ listen: { address: "::1", port: 5000 }, destinations: [{ address: "::1", port: 6000 }], legs: [{ name: "b", receive: false, destinations: [{ address: "0:0::0", port: 7000 }] }] })] }), /segments\[0\]\.legs\[0\]\.destinations\[0\]\.address: 0:0::0 is no host to send to/],
  ["a destination of ::ffff:0.0.0.0", base({ segments: [seg({ listen: { address: "::1", port: 5000 }, destinations: [{ address: "::ffff:0.0.0.0", port: 6000 }] })] }), /segments\[0\]\.destinations\[0\]\.address: ::ffff:0\.0\.0\.0 is no host to send to/],
  ["an IPv4-mapped destination of an IPv6 segment (its IPv6-only sockets never reach it)", base({ segments: [seg({ listen: { address: "::1", port: 5000 }, destinations: [{ address: "::ffff:127.0.0.1", port: 6000 }] })] }), /^config: segments\[0\]\.destinations\[0\]\.address: an IPv4 address written as IPv6 \(IPv4-mapped, ::ffff:a\.b\.c\.d\): the segment's IPv6 sockets are IPv6-only and never reach it; write the IPv4 address$/],
  ["an IPv4-mapped listen address, in hex", base({ segments: [seg({ listen: { address: "::FFFF:7f00:1", port: 5000 }, destinations: [{ address: "::1", port: 6000 }] })] }), /^config: segments\[0\]\.listen\.address: an IPv4 address written as IPv6/],
  ["a link-local destination whose zone is no interface of this host (a typo: sent by the routing table instead)", base({ segments: [seg({ listen: { address: "::1", port: 5000 }, destinations: [{ address: "fe80::2%nosuchif0", port: 6000 }] })] }), /^config: segments\[0\]\.destinations\[0\]\.address: zone 'nosuchif0' names no interface of this host \(fe80::2%nosuchif0\): its packets would leave by the routing table, not on that link$/],
  ["a source whose zone is no interface", base({ segments: [seg({ listen: { address: "::1", port: 5000 }, destinations: [{ address: "fe80::2%lo", port: 6000 }], source: { address: "fe80::9%eht0" } })] }), /^config: segments\[0\]\.source\.address: zone 'eht0' names no interface/],
  ["an IPv4-mapped leg source", base({ segments: [seg({ listen: { address: "::1", port: 5000 }, destinations: [{ address: "::1", port: 6000 }], legs: [{ name: "b", portOffset: 2, send: false, source: { address: "::ffff:10.0.0.1" } }] })] }), /^config: segments\[0\]\.legs\[0\]\.source\.address: an IPv4 address written as IPv6/],
  ["a destination twice", base({ segments: [seg({ listen: { address: "::1", port: 5000 }, destinations: [{ address: "::1", port: 6000 }, { address: "0::1", port: 6000 }] })] }), /segments\[0\]\.destinations\[1\]: the same as segments\[0\]\.destinations\[0\] \(0::1:6000\); each packet would go there twice/],
  ["a leg sending where leg 0 sends, from the same address (a 2022-7 copy to the same port)", base({ segments: [seg({ legs: [{ name: "path-b", receive: false, destinations: [{ address: "127.0.0.1", port: 6004 }] }] })] }), /^config: segments\[0\]\.legs\[0\]\.destinations\[0\]: the same as segments\[0\]\.destinations\[0\] \(127\.0\.0\.1:6004\), sent from the same address: its receiver would get leg 'path-b''s packets and leg 0's on one port/m],
  ["a leg sending to leg 0's RTCP port", base({ segments: [seg({ legs: [{ name: "fec", receive: false, destinations: [{ address: "127.0.0.1", port: 6005 }] }] })] }), /^config: segments\[0\]\.legs\[0\]\.destinations\[0\]: the same as segments\[0\]\.destinations\[0\] \(RTCP, port 6005\)/m],
  ["two legs of one portOffset send to the same ports", base({ segments: [seg({ legs: [{ name: "col", portOffset: 2, receive: false }, { name: "row", portOffset: 2, receive: false }] })] }), /^config: segments\[0\]\.destinations\[0\] \(leg 'row', port \+ 2\): the same as segments\[0\]\.destinations\[0\] \(leg 'col', port \+ 2\) \(127\.0\.0\.1:6006\), sent from the same address/m],
  ["a redundant leg that receives nothing", base({ segments: [seg({ legs: [{ name: "x", portOffset: 2, receive: false, redundant: true }] })] }), /segments\[0\]\.legs\[0\]\.redundant: a leg.s packets count in the stream.s ingress as they arrive, and this one has receive: false/],
  ["a leg on the RTCP port", base({ segments: [seg({ legs: [{ name: "x", portOffset: 1, receive: false }] })] }), /segments\[0\]\.legs\[0\]\.portOffset: port \+ 1 is RTCP's/],
  ["bad filter name", base({ filters: { "Bad Name": { path: "x.wasm" } } }), /filters\.Bad Name: filter names are lower-case/],
  ["filter names that read the same in /metrics", base({ filters: { "a-b": { path: "x.wasm" }, a_b: { path: "y.wasm" } } }), /filters\.a_b: its metrics would share the names msm_filter_a_b_\* with filters\.a-b's/],
  ["a metricsName another filter's metrics have", base({ filters: { fec: { path: "x.wasm" }, "fec-2": { path: "y.wasm", metricsName: "fec" } } }), /filters\.fec-2\.metricsName: its metrics would share the names msm_filter_fec_\* with filters\.fec's/],
  ["a metricsName like a host metric family", base({ filters: { v: { path: "x.wasm", metricsName: "drops" } } }), /filters\.v\.metricsName: its metrics could take the name of the host's msm_filter_drops_total/],
  ["a filter named like a host metric family", base({ filters: { drops: { path: "x.wasm" } } }), /filters\.drops: its metrics could take the name of the host's msm_filter_drops_total/],
  ["a filter named like the start of a host metric family", base({ filters: { memory_max: { path: "x.wasm" } } }), /filters\.memory_max: .*msm_filter_memory_max_bytes/],
  // multicast (docs/proxy.md "Multicast")
  ["a unicast address given as the group to join", base({ segments: [seg({ listen: { address: "10.0.0.5", port: 5004, interface: "10.0.0.1" } })] }), /segments\[0\]\.listen\.interface: only a multicast group is joined, and listen\.address 10\.0\.0\.5 is not one/],
  ["an IPv4 group joined on a name, not an address", base({ segments: [seg({ listen: { address: "239.1.1.1", port: 5004, interface: "eth0" } })] }), /segments\[0\]\.listen\.interface: 'eth0': an IPv4 group is joined .* from a local IPv4 address/],
  ["an IPv6 group joined on an address, not a name", base({ segments: [seg({ listen: { address: "ff15::1", port: 5004, interface: "fd00::1" }, destinations: [{ address: "::1", port: 6004 }] })] }), /segments\[0\]\.listen\.interface: 'fd00::1': an IPv6 group is joined .* by its name/],
  ["a source-specific sender of the other family", base({ segments: [seg({ listen: { address: "239.1.1.1", port: 5004 }, source: { address: "fd00::1" } })] }), /segments\[0\]\.source\.address: IPv6, but the segment listens on IPv4/],
  ["a group as the sender", base({ segments: [seg({ listen: { address: "239.1.1.1", port: 5004 }, source: { address: "239.1.1.2" } })] }), /segments\[0\]\.source\.address: 239\.1\.1\.2 is a multicast group; a sender's address is unicast/],
  ["a group as the egress address", base({ segments: [seg({ egress: { address: "239.1.1.1" }, destinations: [{ address: "239.1.1.1", port: 6004 }] })] }), /segments\[0\]\.egress\.address: 239\.1\.1\.1 is a multicast group/],
  ["a multicast interface of the wrong family", base({ segments: [seg({ destinations: [{ address: "239.1.1.1", port: 6004 }], multicast: { interface: "veth0" } })] }), /segments\[0\]\.multicast\.interface: 'veth0': an IPv4 group .*\(the segment sends from IPv4\)/],
  ["a TTL past 255", base({ segments: [seg({ multicast: { ttl: 256 } })] }), /segments\[0\]\.multicast\.ttl:/],
  ["an unknown multicast key", base({ segments: [seg({ multicast: { hops: 3 } })] }), /segments\[0\]\.multicast: unknown key 'hops'$/m],
  ["a leg joining on a unicast address", base({ segments: [seg({ legs: [{ name: "b", listen: { port: 7000, interface: "127.0.0.1" }, send: false }] })] }), /segments\[0\]\.legs\[0\]\.listen\.interface: only a multicast group is joined, and the leg listens on 127\.0\.0\.1/],
  ["a leg's source-specific sender of the other family", base({ segments: [seg({ legs: [{ name: "b", listen: { address: "239.1.1.1", port: 7000 }, source: { address: "::1" }, send: false }] })] }), /segments\[0\]\.legs\[0\]\.source\.address: IPv6, but the leg listens on IPv4/],
  // (a leg with its own egress address sends from that address's interface: only an unspecified one inherits the segment's)
  ["a leg sending from the other family than the multicast interface", base({ segments: [seg({ multicast: { interface: "127.0.0.1" }, legs: [{ name: "b", receive: false, egress: { address: "::" }, destinations: [{ address: "ff15::1", port: 7000 }] }] })] }), /segments\[0\]\.legs\[0\]\.egress\.address: IPv6, but multicast\.interface names an IPv4 interface .*; give the leg its own multicast\.interface$/m],
  // a leg's own multicast (docs/proxy.md "A leg's path"): the segment's keys and checks, named under the leg
  ["an unknown key in a leg's multicast", base({ segments: [seg({ legs: [{ name: "b", receive: false, destinations: [{ address: "239.1.1.2", port: 7000 }], multicast: { hops: 3 } }] })] }), /segments\[0\]\.legs\[0\]\.multicast: unknown key 'hops'$/m],
  ["a leg's TTL past 255", base({ segments: [seg({ legs: [{ name: "b", receive: false, destinations: [{ address: "239.1.1.2", port: 7000 }], multicast: { ttl: 256 } }] })] }), /segments\[0\]\.legs\[0\]\.multicast\.ttl:/],
  ["a leg's multicast interface of the wrong family", base({ segments: [seg({ legs: [{ name: "b", receive: false, destinations: [{ address: "239.1.1.2", port: 7000 }], multicast: { interface: "veth1" } }] })] }), /segments\[0\]\.legs\[0\]\.multicast\.interface: 'veth1': an IPv4 group .*\(the leg sends from IPv4\)/],
  ["a leg's IPv6 multicast given an address", base({ segments: [seg({ legs: [{ name: "b", receive: false, egress: { address: "::1" }, destinations: [{ address: "ff15::1", port: 7000 }], multicast: { interface: "fd00::1" } }] })] }), /segments\[0\]\.legs\[0\]\.multicast\.interface: 'fd00::1': an IPv6 group .*\(the leg sends from IPv6\)/],
  ["multicast on a leg that does not send", base({ segments: [seg({ legs: [{ name: "b", listen: { address: "239.1.1.2", port: 7000 }, send: false, multicast: { interface: "127.0.0.1" } }] })] }), /segments\[0\]\.legs\[0\]\.multicast: the leg does not send \(send: false\).*joined on listen\.interface$/m],
  // forwarding loops: packets that would come back into the proxy's own sockets
  ["a destination that is the segment's own listen port", base({ segments: [seg({ destinations: [{ address: "127.0.0.1", port: 5004 }] })] }), /segments\[0\]\.destinations\[0\]: 127\.0\.0\.1:5004 is this segment's own listen: every packet would come back to it/],
  ["a muxed destination that is the segment's own listen", base({ segments: [seg({ rtcpMux: true, destinations: [{ address: "127.0.0.1", port: 5004 }] })] }), /segments\[0\]\.destinations\[0\]: 127\.0\.0\.1:5004 is this segment's own listen: every packet would come back to it/],
  ["a destination's rtcpPort that is the segment's own RTCP port", base({ segments: [seg({ destinations: [{ address: "127.0.0.1", port: 6004, rtcpPort: 5005 }] })] }), /segments\[0\]\.destinations\[0\] \(RTCP, port 5005\): 127\.0\.0\.1:5005 is this segment's own listen \(RTCP, port \+ 1\)/],
  ["one of several destinations is the segment's own listen", base({ segments: [seg({ destinations: [{ address: "127.0.0.1", port: 6004 }, { address: "127.0.0.1", port: 5004 }] })] }), /segments\[0\]\.destinations\[1\]: 127\.0\.0\.1:5004 is this segment's own listen/],
  ["a loopback destination on a wildcard listen's port", base({ segments: [seg({ listen: { address: "0.0.0.0", port: 5004 }, destinations: [{ address: "127.0.0.2", port: 5004 }] })] }), /segments\[0\]\.destinations\[0\]: 127\.0\.0\.2:5004 is this segment's own listen/],
  ["a leg sending into its own segment's listen", base({ segments: [seg({ rtcpMux: true, legs: [{ name: "fec", receive: false, destinations: [{ address: "127.0.0.1", port: 5004 }] }] })] }), /segments\[0\]\.legs\[0\]\.destinations\[0\]: 127\.0\.0\.1:5004 is this segment's own listen/],
  ["two segments sending to each other", base({ segments: [
    seg({ rtcpMux: true, destinations: [{ address: "127.0.0.1", port: 7000 }] }),
    seg({ name: "s2", rtcpMux: true, listen: { address: "127.0.0.1", port: 7000 }, destinations: [{ address: "127.0.0.1", port: 5004 }] }),
  ] }), /segments\[1\]\.destinations\[0\]: 127\.0\.0\.1:5004 is segments\[0\]\.listen \('s1'\), which closes a loop: s1 -> s2 -> s1/],
  // the destination limit
  ["100,000 destinations", base({ segments: [seg({ destinations: Array.from({ length: 100_000 }, (_, k) => ({ address: "10.1.0.1", port: 1024 + (k % 60_000) })) })] }), /segments\[0\]\.destinations: 100000 destinations, at most 4096 per segment/],
  ["a leg with 4,097 destinations", base({ segments: [seg({ legs: [{ name: "b", receive: false, destinations: Array.from({ length: 4097 }, (_, k) => ({ address: "10.1.0.1", port: 1024 + k })) }] })] }), /segments\[0\]\.legs\[0\]\.destinations: 4097 destinations, at most 4096 per segment/],
];

for (const [label, input, pattern] of cases) {
  test(`refused: ${label}`, () => {
    assert.throws(() => validateProxyConfig(input), (err: unknown) => err instanceof ConfigError && pattern.test((err as Error).message));
  });
}

test("legs that send where another leg sends: taken from another egress address (a second network), and FEC legs on their own ports", () => {
  // path B leaves from its own address: a receiver on both networks, or policy routing, tells them apart
  validateProxyConfig(base({ segments: [seg({ egress: { address: "127.0.0.1" }, legs: [{ name: "path-b", receive: false, egress: { address: "127.0.0.2" }, destinations: [{ address: "127.0.0.1", port: 6004 }] }] })] }));
  validateProxyConfig(base({ segments: [seg({ legs: [{ name: "col", portOffset: 2, receive: false }, { name: "row", portOffset: 4, receive: false }] })] }));
  // one group on two networks: path B sends to it on its own interface
  validateProxyConfig(base({ segments: [seg({ destinations: [{ address: "239.10.1.1", port: 6200 }], multicast: { interface: "127.0.0.1" }, legs: [{ name: "path-b", receive: false, destinations: [{ address: "239.10.1.1", port: 6200 }], multicast: { interface: "127.0.0.3" } }] })] }));
  assert.throws(() => validateProxyConfig(base({ segments: [seg({ destinations: [{ address: "239.10.1.1", port: 6200 }], legs: [{ name: "path-b", receive: false, destinations: [{ address: "239.10.1.1", port: 6200 }] }] })] })),
    /segments\[0\]\.legs\[0\]\.destinations\[0\]: the same as segments\[0\]\.destinations\[0\] \(239\.10\.1\.1:6200\)/, "the same group on the same interface");
  // an address said two ways is one address
  assert.throws(() => validateProxyConfig(base({ segments: [seg({ listen: { address: "::1", port: 5000 }, destinations: [{ address: "::1", port: 6000 }], legs: [{ name: "b", receive: false, destinations: [{ address: "0::1", port: 6000 }] }] })] })),
    /segments\[0\]\.legs\[0\]\.destinations\[0\]: the same as segments\[0\]\.destinations\[0\] \(0::1:6000\)/);
});

test("a chain of segments on one proxy is no loop, nor a destination on another address or a multicast group", () => {
  // RTCP sent to port + 1 of a destination one below the listen lands on the media socket: it
  // goes out once, as media, to that destination, and stops there
  validateProxyConfig(base({ segments: [seg({ destinations: [{ address: "127.0.0.1", port: 5003 }] })] }));
  validateProxyConfig(base({ segments: [
    seg({ rtcpMux: true, destinations: [{ address: "127.0.0.1", port: 7000 }] }),
    seg({ name: "s2", rtcpMux: true, listen: { address: "127.0.0.1", port: 7000 }, destinations: [{ address: "127.0.0.1", port: 8000 }] }),
    seg({ name: "s3", rtcpMux: true, listen: { address: "127.0.0.2", port: 9000 }, destinations: [{ address: "127.0.0.3", port: 9000 }] }),
    seg({ name: "s4", rtcpMux: true, listen: { address: "239.1.1.1", port: 9100 }, destinations: [{ address: "239.1.1.1", port: 9100 }] }),
  ] }));
  // a control plane validating for a proxy elsewhere knows only loopback as the proxy's own
  const here = Object.values(networkInterfaces()).flat().find((a) => a && a.family === "IPv4" && !a.internal)?.address;
  if (here) {
    const wild = base({ segments: [seg({ listen: { address: "0.0.0.0", port: 5004 }, destinations: [{ address: here, port: 5004 }] })] });
    assert.throws(() => validateProxyConfig(wild), /is this segment's own listen/, "on the proxy's host: its own address");
    validateProxyConfig(wild, "/", "request", "unknown");
  }
  // 10,000 segments in a line (each to the next): checked without exhausting the stack
  const line = Array.from({ length: 10_000 }, (_, k) => seg({ name: `s${k}`, rtcpMux: true, listen: { address: "127.0.0.1", port: 20_000 + k }, destinations: [{ address: "127.0.0.1", port: 20_001 + k }] }));
  validateProxyConfig(base({ segments: line }));
  line[9_999] = seg({ name: "s9999", rtcpMux: true, listen: { address: "127.0.0.1", port: 29_999 }, destinations: [{ address: "127.0.0.1", port: 20_000 }] });
  assert.throws(() => validateProxyConfig(base({ segments: line })), (err: unknown) => /segments\[9999\]\.destinations\[0\]: .* closes a loop: s0 -> s1 -> .* -> s9999 -> s0/.test((err as Error).message));
});

test("the filter-name check knows every msm_filter_* family the exporter writes", () => {
  const source = readFileSync(join(ROOT, "runtime", "admin", "prometheus.ts"), "utf8");
  // family(...): a family per segment; whole(...): one of the proxy or its filter instances
  const written = [...source.matchAll(/(?:family|whole)\("msm_filter_([a-z_]+)"/g)].map((m) => m[1]!).sort();
  assert.ok(written.length >= 10, written.join());
  assert.equal([...HOST_FILTER_FAMILIES].sort(), written);
  // and every family /metrics has, which metrics.exclude checks its names against
  const all = [...source.matchAll(/(?:family|whole)\("(msm_[a-z_]+)"/g)].map((m) => m[1]!).sort();
  assert.equal([...HOST_FAMILIES].sort(), all);
});

test("IPv4 in, IPv6 out: the destinations follow the egress address's family", () => {
  const c = validateProxyConfig(base({ segments: [seg({ egress: { address: "::1" }, destinations: [{ address: "::1", port: 6004 }] })] }));
  assert.is(c.segments[0]!.destinations[0]!.address, "::1");
});

test("one port on different addresses, or on both families, is no clash", () => {
  const c = validateProxyConfig(base({ segments: [
    seg(), seg({ name: "s2", listen: { address: "127.0.0.2", port: 5004 } }), seg({ name: "s3", listen: { address: "::", port: 5004 }, destinations: [{ address: "::1", port: 6004 }] }),
  ] }));
  assert.is(c.segments.length, 3);
});

test("a leg's multicast (ST 2022-7 path B): its own keys, else the segment's TTL and loopback, and the interface of its own egress address, not the segment's", () => {
  const group = (address: string) => [{ address, port: 6200 }];
  const c = validateProxyConfig(base({ segments: [seg({
    egress: { address: "10.91.1.1" }, destinations: group("239.10.1.1"), multicast: { ttl: 2, interface: "10.91.1.1", loopback: true },
    legs: [
      { name: "path-b", receive: false, egress: { address: "10.91.2.1" }, destinations: group("239.10.2.1") },
      { name: "path-c", receive: false, egress: { address: "10.91.3.1" }, destinations: group("239.10.3.1"), multicast: { ttl: 5, interface: "10.91.9.1", loopback: false } },
      { name: "fec", portOffset: 2, receive: false },
      { name: "any", receive: false, egress: { address: "0.0.0.0" }, destinations: group("239.10.4.1"), multicast: { ttl: 7 } },
      { name: "v6", receive: false, egress: { address: "fd00::2" }, destinations: group("ff15::2") },
    ],
  })] }));
  const s = c.segments[0]!;
  assert.equal(s.legs[0]!.multicast, undefined); // nothing filled in: unset keys are the segment's
  assert.equal(legMulticast(s, 0), { ttl: 2, loopback: true, interface: "10.91.2.1", ofEgress: true, field: "legs[0].egress.address" });
  assert.equal(legMulticast(s, 1), { ttl: 5, loopback: false, interface: "10.91.9.1", ofEgress: false, field: "legs[1].multicast.interface" });
  assert.equal(legMulticast(s, 2), { ttl: 2, loopback: true, interface: "10.91.1.1", ofEgress: false, field: "multicast.interface" });
  assert.equal(legMulticast(s, 3), { ttl: 7, loopback: true, interface: "10.91.1.1", ofEgress: false, field: "multicast.interface" });
  // IPv6: the interface that has fd00::2, looked up by name when the socket is made
  assert.equal(legMulticast(s, 4), { ttl: 2, loopback: true, interface: "fd00::2", ofEgress: true, field: "legs[4].egress.address" });
});

test("multicast: groups in and out, joined on an interface, source-specific; the defaults (TTL 16, loopback off)", () => {
  const c = validateProxyConfig(base({ segments: [
    seg({ listen: { address: "239.1.1.1", port: 5004, interface: "10.0.0.2" }, source: { address: "10.0.0.1" }, destinations: [{ address: "239.2.2.2", port: 6004 }] }),
    seg({ name: "s2", listen: { address: "ff15::1", port: 5004, interface: "%veth0" }, destinations: [{ address: "ff15::2", port: 6004 }], multicast: { ttl: 0, interface: "veth1", loopback: true } }),
    // the same port on another group is no clash: each socket is bound to its group
    seg({ name: "s3", listen: { address: "239.1.1.3", port: 5004 } }),
  ] }));
  assert.equal(c.segments[0]!.multicast, { ttl: 16, loopback: false });
  assert.equal(c.segments[1]!.multicast, { ttl: 0, interface: "veth1", loopback: true });
});

test("a file that does not parse: the error says where, and quotes none of it (an SRTP key near a typo stays out of logs)", () => {
  const key = "inline:NBttrpkAZYjerWFkL3HnHvZMDD7fSECRETSECRET";
  const yaml = `segments:\n  - name: a\n    chain: [{ filter: srtp, config: { direction: protect, key: "${key}" } }]\nsegments: []\n`;
  const json = `{"segments": [{"name": "a", "chain": [{"filter": "srtp", "config": {"key": "${key}"}}]}]} x`;
  const badToken = `{"segments": [{"chain": [{"config": {"key": ${key}, "b": true }}]}]}`; // the key unquoted: the error is at its first letter
  const messages = ([[yaml, "p.yaml"], [json, "p.json"], [badToken, "p.json"]] as const).map(([text, file]) => {
    try {
      parseProxyConfig(text, file);
    } catch (err) {
      return (err as Error).message;
    }
    return "parsed";
  });
  assert.match(messages[0]!, /^p\.yaml: not valid YAML: Map keys must be unique at line 4, column 1$/);
  assert.match(messages[1]!, /^p\.json: not valid JSON: Unexpected non-whitespace character after JSON at position \d+/);
  assert.match(messages[2]!, /^p\.json: not valid JSON: Unexpected token/);
  for (const m of messages) assert.not.match(m, /SECRET|NBttrp|inline:/, m);
  // the forms of the parsers' own messages: V8's (whole and cut) and Bun's
  assert.is(parseErrorText(new SyntaxError(`Unexpected token 'i', "{"key": inline:WVN"... is not valid JSON`)), "Unexpected token 'i'");
  assert.is(parseErrorText(new SyntaxError(`Unexpected token ' ', ...", "b": tru }" is not valid JSON`)), "Unexpected token ' '");
  assert.is(parseErrorText(new SyntaxError(`JSON Parse error: Unexpected identifier "inline"`)), "JSON Parse error: Unexpected identifier");
  assert.is(parseErrorText(new SyntaxError("Expected ',' or ']' after array element in JSON at position 68")), "Expected ',' or ']' after array element in JSON at position 68");
});

/** A proxy config (JSON text) whose deepest mapping is `levels` deep, in a filter's config. */
function nestedConfig(levels: number): string {
  let config: unknown = 1;
  for (let i = 3; i < levels; i++) config = { a: config }; // the top level, filters and filters.v are 3
  return JSON.stringify(base({ filters: { v: { path: "v.wasm", config } } }));
}

/** parseProxyConfig's error message ("parsed" if it took the text). */
function parseMessage(text: string, file: string): string {
  try {
    parseProxyConfig(text, file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.message;
  }
  return "parsed";
}

test("a key __proto__ in a YAML or JSON file is refused, naming where (copied into a record it vanished, or showed through as every key's)", () => {
  const yaml = "filters:\n  __proto__: { path: x.wasm }\nsegments: []\n";
  assert.is(parseMessage(yaml, "p.yaml"), "p.yaml: filters.__proto__: no key of a config may be named __proto__");
  const json = '{"segments": [{"name": "s", "listen": {"address": "127.0.0.1", "port": 5004}, "destinations": [{"address": "127.0.0.1", "port": 6004}], "clockRates": {"__proto__": {"96": 48000}}}]}';
  assert.is(parseMessage(json, "p.json"), "p.json: segments[0].clockRates.__proto__: no key of a config may be named __proto__");
});

test("nesting past 64 levels is refused before any parser runs, in YAML and JSON: a process that reads such a file twice lives on (the yaml library's stack overflow used to abort V8)", () => {
  const deepFlow = "[".repeat(100_000);
  const deepBlock = "- ".repeat(100_000) + "x";
  for (let i = 0; i < 2; i++) {
    assert.is(parseMessage(deepFlow, "d.yaml"), "d.yaml: nested deeper than 64 levels of mappings and lists at line 1, column 65");
    assert.is(parseMessage(deepBlock, "d.yaml"), "d.yaml: nested deeper than 64 levels of mappings and lists at line 1, column 129");
  }
  // JSON.parse copes, but the secret-reference walk after it overflowed (a RangeError, no ConfigError)
  const deepStage = JSON.stringify(base({ segments: [seg({ chain: [{ filter: "v", config: { zz: "DEEP" } }] })] })).replace('"DEEP"', `${"[".repeat(5000)}1${"]".repeat(5000)}`);
  assert.match(parseMessage(deepStage, "d.json"), /^d\.json: nested deeper than 64 levels of mappings and lists at line 1, column \d+$/);
  for (const file of ["n.json", "n.yaml"]) {
    assert.is(parseMessage(nestedConfig(64), file), "parsed", file);
    assert.match(parseMessage(nestedConfig(65), file), /nested deeper than 64 levels/, file);
  }
});

test("a text past 16 MiB is refused before parsing", () => {
  const big = `${" ".repeat(16 << 20)}{}`;
  for (const file of ["big.json", "big.yaml"]) assert.is(parseMessage(big, file), `${file}: ${(16 << 20) + 2} bytes, more than the 16 MiB a config or manifest may hold`);
});

test("a FIFO behind a path no longer holds the open: nothing written to it, or a writer that goes quiet, ends the read with why; a writer that comes late and sends in parts is read whole", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-fifo-"));
  const fifo = join(dir, "proxy.yaml");
  execFileSync("mkfifo", [fifo]);
  const writers: ReturnType<typeof spawn>[] = [];
  const outcome = (p: Promise<Buffer | null>): Promise<string> => p.then((b) => `read: ${JSON.stringify(b?.toString())}`, (err: Error) => err.message);
  try {
    // before, the open itself waited for a writer, for good (and held a thread of libuv's pool)
    let t0 = performance.now();
    assert.is(await outcome(readBounded(fifo, 1024, 300)), "a pipe (FIFO) that nothing was written to for 0.3 s");
    assert.ok(performance.now() - t0 < 5000, "given up after the quiet time");
    // a writer that opens it and sends nothing, holding it open
    writers.push(spawn("sh", ["-c", `exec sleep 30 > '${fifo}'`], { stdio: "ignore" }));
    t0 = performance.now();
    assert.is(await outcome(readBounded(fifo, 1024, 300)), "a pipe whose writer sent nothing for 0.3 s and did not close it");
    assert.ok(performance.now() - t0 < 5000);
    writers.pop()!.kill();
    // a writer that comes 200 ms after the read began, sends in two parts and closes
    writers.push(spawn("sh", ["-c", `sleep 0.2; { printf 'workers: '; sleep 0.2; printf '2\\n'; } > '${fifo}'`], { stdio: "ignore" }));
    assert.is(await outcome(readBounded(fifo, 1024, 3000)), `read: ${JSON.stringify("workers: 2\n")}`);
    // and a regular file, as before
    const plain = join(dir, "plain.yaml");
    writeFileSync(plain, "workers: 1\n");
    assert.is(await outcome(readBounded(plain, 1024, 300)), `read: ${JSON.stringify("workers: 1\n")}`);
  } finally {
    for (const w of writers) w.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an anonymous pipe (--config <(...)) is read to its end at once: only a FIFO in a directory may not have its writer yet (an empty one waited the whole quiet time); one closed with nothing in it (read before: a reload) is an error, not an empty config", () => {
  const module = new URL("../runtime/bounded-read.js", import.meta.url).href;
  // bash gives the child /dev/fd/3, the read end of a pipe whose writer may be done already
  const read = (content: string): string => execFileSync("bash", ["-c", `exec "$0" --input-type=module -e "$1" /dev/fd/3 3< <(printf '%s' "$2")`, process.execPath,
    // read twice, as a start and then a reload do
    `const { readBounded } = await import(${JSON.stringify(module)}); const once = () => readBounded(process.argv[1], 1024, 60000).then((b) => JSON.stringify(b.toString()), (e) => e.message); process.stdout.write(\`\${await once()} | \${await once()}\`);`,
    content], { encoding: "utf8", timeout: 30_000 });
  const closedEmpty = "a pipe that was closed with nothing in it (a process substitution, <(...), holds its text once: it was read before, or nothing was written to it)";
  assert.is(read(""), `${closedEmpty} | ${closedEmpty}`, "empty: refused at once, not waited on");
  assert.is(read("workers: 2\n"), `${JSON.stringify("workers: 2\n")} | ${closedEmpty}`, "read whole, then (a reload) refused: not an empty config");
});

test("a config file past 16 MiB is not read whole (read on a reload, a pipe behind it or a file of gigabytes took the running proxy's memory, or its reloads for good)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "msm-config-"));
  const fifo = join(dir, "piped.yaml");
  execFileSync("mkfifo", [fifo]);
  // 40 MB, then the pipe stays open: read whole, the read waited for an end that comes when the writer goes
  const writer = spawn("sh", ["-c", `{ head -c 40000000 /dev/zero; exec sleep 30; } > '${fifo}'`], { stdio: "ignore" });
  const limit = /: more than the 16 MiB a config or manifest may hold \(read no further\)$/;
  try {
    const t0 = Date.now();
    const outcome = await Promise.race([
      readConfigText(fifo).then(() => "read", (err: Error) => err.message),
      new Promise<string>((r) => setTimeout(() => r("still reading after 8 s"), 8000)),
    ]);
    assert.match(outcome, limit);
    assert.ok(Date.now() - t0 < 8000);
    const big = join(dir, "big.yaml");
    writeFileSync(big, "");
    truncateSync(big, 1 << 30); // sparse: 1 GiB of zeros on no disk
    await readConfigText(big).then(() => assert.unreachable("read"), (err: Error) => assert.match(err.message, limit));
    const small = join(dir, "small.yaml");
    writeFileSync(small, "workers: 2\n");
    assert.is(await readConfigText(small), "workers: 2\n");
  } finally {
    writer.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a JSON key twice in one object is refused as YAML refuses it (JSON.parse kept the last), naming the key and where, not the values", () => {
  const key = "inline:NBttrpkAZYjerWFkL3HnHvZMDD7fSECRETSECRET";
  const cases: [string, string][] = [
    ['{"workers": 1, "workers": 2}', "key 'workers' appears twice at the top level"],
    [`{"segments": [{"name": "a"}, {"name": "b", "chain": [{"filter": "v", "config": {"key": "${key}", "key": "${key}"}}]}]}`, "key 'key' appears twice in segments[1].chain[0].config"],
    ['{"w\\u006frkers": 1, "workers": 2}', "key 'workers' appears twice at the top level"], // one key, spelt with an escape
  ];
  for (const [text, message] of cases) {
    const m = parseMessage(text, "p.json");
    assert.is(m, `p.json: ${message}`);
    assert.not.match(m, /SECRET/);
  }
  // strings that look like keys, quotes and backslashes inside strings, equal keys in sibling objects: no duplicate
  const fine = '{"segments": [], "filters": {"a": {"path": "x\\"y.wasm", "config": {"k": "\\\\", "m": "\\"k\\": 1, \\"k\\"", "n": [{"k": 1}, {"k": 2}]}}, "b": {"path": "b.wasm", "config": {"k": 1}}}}';
  assert.is(parseMessage(fine, "p.json"), "parsed");
  // broken JSON: the parser's own error comes first
  assert.match(parseMessage('{"a": 1, "a": 2', "p.json"), /^p\.json: not valid JSON: /);
});

test("one address and port twice, with other SSRC or payload type rewrites: taken (a receiver that tells them apart)", () => {
  const config = validateProxyConfig(base({ segments: [seg({ destinations: [{ address: "127.0.0.1", port: 6000, ssrc: 1 }, { address: "127.0.0.1", port: 6000, ssrc: 2 }] })] }));
  assert.is(config.segments[0]!.destinations.length, 2);
});

test("a destination list repeating itself is said in a few lines, with the count of the rest", () => {
  const destinations = Array.from({ length: 100 }, () => ({ address: "127.0.0.1", port: 9 }));
  let issues: readonly string[] = [];
  try {
    validateProxyConfig(base({ segments: [seg({ destinations })] }));
  } catch (err) {
    issues = (err as ConfigError).issues;
  }
  assert.is(issues.length, 6, issues.join("\n"));
  assert.is(issues[5], "segments[0].destinations: 94 more destinations the same as an earlier one");
});

test("4,096 destinations are taken", () => {
  const c = validateProxyConfig(base({ segments: [seg({ destinations: Array.from({ length: 4096 }, (_, k) => ({ address: "10.1.0.1", port: 1024 + k })) })] }));
  assert.is(c.segments[0]!.destinations.length, 4096);
});

test("defaults are filled in and relative filter paths resolve against the config's folder", () => {
  const c = validateProxyConfig(base() as ProxyConfigInput, "/etc/msm");
  assert.is(c.workers, 1);
  assert.is(c.watchdog.stuckMs, 500);
  assert.is(c.filters.v!.path, "/etc/msm/v.wasm");
  assert.equal(c.segments[0]!.failure, { mode: "closed", restartBackoffMs: 100, maxBackoffMs: 5000, maxFailures: 5 });
  assert.is(c.segments[0]!.rtcpMux, false);
});

test("stateFile: relative to the config's folder; refused with stateCheckpointMs 0 (it would keep only the start's states); not a node setting", () => {
  assert.is(validateProxyConfig(base({ stateFile: "state/stages.json" }), "/etc/msm").stateFile, "/etc/msm/state/stages.json");
  assert.is(validateProxyConfig(base()).stateFile, undefined);
  assert.throws(() => validateProxyConfig(base({ stateFile: "s.json", stateCheckpointMs: 0 })), /stateCheckpointMs: 0 takes no checkpoints, so stateFile would keep only the states of the start/);
  assert.throws(() => validateNodeSettings({ stateFile: "/var/lib/x.json" }), /stateFile: not a node's setting: a node run by the control plane saves its stages' state in --state-dir \(stage-state\.json\)/);
  // a node's every config has the agent's stateFile: 0 was taken, then every snapshot refused for it
  assert.throws(() => validateNodeSettings({ stateCheckpointMs: 0 }), /stateCheckpointMs: 0 takes no checkpoints, but a node run by the control plane saves its stages' state/);
  assert.is(validateNodeSettings({ stateCheckpointMs: 250 }).stateCheckpointMs, 250);
});

test("every problem is reported, not only the first", () => {
  try {
    validateProxyConfig(base({ segments: [seg({ listen: { address: "x", port: 0 } })] }));
    assert.unreachable();
  } catch (err) {
    assert.instance(err, ConfigError);
    assert.ok((err as ConfigError).issues.length >= 2, (err as Error).message);
  }
});

test.run();

test("type errors and the rules between fields come in one list: a segment that does not parse is left out of the rules, the others are judged", () => {
  const seg = (name: string, port: number, extra: Record<string, unknown> = {}) => ({ name, listen: { address: "127.0.0.1", port }, destinations: [{ address: "127.0.0.1", port: 9000 }], chain: [{ filter: "v" }], ...extra });
  const input = {
    filters: { v: { path: "v.wasm" }, broken: { path: 5 } },
    segments: [seg("a", 5004), seg("b", 5006, { rtcpMux: "yes" }), seg("c", 5004), seg("d", 5010, { chain: [{ filter: "nope" }] })],
  };
  let issues: readonly string[] = [];
  assert.throws(() => validateProxyConfig(input), (err: unknown) => err instanceof ConfigError && (issues = err.issues).length > 0);
  assert.ok(issues.some((m) => m.startsWith("segments[1].rtcpMux: ")), issues.join("\n"));
  assert.ok(issues.some((m) => m.startsWith("filters.broken.path: ")), issues.join("\n"));
  assert.ok(issues.some((m) => /^segments\[2\]\.listen\.port: port already used by segments\[0\]/.test(m)), issues.join("\n"));
  assert.ok(issues.some((m) => m.startsWith("segments[3].chain[0].filter: unknown filter 'nope'")), issues.join("\n"));
  assert.not.ok(issues.some((m) => m.startsWith("segments[1].") && !m.startsWith("segments[1].rtcpMux")), "the segment that does not parse is judged by its types only");
  // filters that do not parse as a whole: no chain's filter is called unknown for it
  let only: readonly string[] = [];
  assert.throws(() => validateProxyConfig({ filters: 5, segments: [seg("a", 5004)] }), (err: unknown) => err instanceof ConfigError && (only = err.issues).length > 0);
  assert.equal(only.filter((m) => m.includes("unknown filter")), [], only.join("\n"));
});
