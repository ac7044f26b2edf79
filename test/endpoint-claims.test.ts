// Which binds clash, looked up without comparing every pair. A fleet gives each camera its own
// address (a multicast group, an alias) on one port: 2,000 segments at 239.x.y.z:5004. The
// proxy's config check, its change planning and the control plane's apply check all ask "does this
// bind clash with one taken?" once per bind; a scan of every bind on the same port made each apply
// of 2,000 such segments compare 2 million pairs (seconds of the proxy's main thread, its control
// plane connection dropped for unanswered keepalives). Work is counted here, not timed: each
// endpoint's `address` is read through a counting getter.
import * as assert from "uvu/assert";
import { EndpointClaims, EndpointIndex, endpointsClash, type Endpoint } from "../runtime/config/endpoints.js";
import { suite } from "./lib/suite.js";

const test = suite("endpoint claims");

/** Endpoints whose `address` reads are counted in `reads.n`. */
function counted(list: readonly Endpoint[], reads: { n: number }): Endpoint[] {
  return list.map((e) => ({
    port: e.port,
    get address() {
      reads.n++;
      return e.address;
    },
  }));
}

const groups = (n: number, port = 5004): Endpoint[] =>
  Array.from({ length: n }, (_, i) => ({ address: `239.1.${i >> 8}.${i & 255}`, port }));

test("2,000 segments on one port, each its own address: every bind is claimed with a few reads of it, not one per earlier bind", () => {
  const n = 2000;
  const reads = { n: 0 };
  const claims = new EndpointClaims<number>();
  counted(groups(n), reads).forEach((e, i) => assert.is(claims.claim(e, i), undefined, `bind ${i} clashes with nothing`));
  assert.ok(reads.n <= 4 * n, `${reads.n} reads of an address for ${n} claims: the claims compared pairs (quadratic)`);
});

test("an index of 2,000 binds on one port answers each lookup with a few reads", () => {
  const n = 2000;
  const reads = { n: 0 };
  const held = new EndpointIndex<number>();
  groups(n).forEach((e, i) => held.add(e, i));
  const probes = counted(groups(n, 5004).map((e) => ({ ...e, address: e.address.replace("239.1.", "239.2.") })), reads);
  for (const p of probes) assert.is(held.clashing(p), undefined);
  assert.ok(reads.n <= 4 * n, `${reads.n} reads for ${n} lookups`);
  assert.is(held.clashing({ address: "239.1.3.7", port: 5004 }), 3 * 256 + 7, "the bind at that address and port");
});

test("the rules stay endpointsClash's: wildcards, IPv6 spellings, families apart, port 0 never clashes, the first owner is named", () => {
  const claims = new EndpointClaims<string>();
  assert.is(claims.claim({ address: "10.0.0.1", port: 5004 }, "a"), undefined);
  assert.is(claims.claim({ address: "10.0.0.2", port: 5004 }, "b"), undefined, "another address, same port");
  assert.is(claims.claim({ address: "10.0.0.1", port: 5004 }, "c"), "a", "the same address and port");
  assert.is(claims.claim({ address: "0.0.0.0", port: 5004 }, "d"), "a", "the wildcard takes every address: the first claim is named");
  assert.is(claims.claim({ address: "::", port: 5004 }, "e"), undefined, "IPv6 sockets are v6-only: the families do not clash");
  assert.is(claims.claim({ address: "::1", port: 5004 }, "f"), "e", "an IPv6 address under the IPv6 wildcard");
  assert.is(claims.claim({ address: "0.0.0.0", port: 6000 }, "g"), undefined);
  assert.is(claims.claim({ address: "10.9.9.9", port: 6000 }, "h"), "g", "an address under an earlier wildcard");
  assert.is(claims.claim({ address: "fd00::1", port: 7000 }, "i"), undefined);
  assert.is(claims.claim({ address: "FD00:0:0:0:0:0:0:1", port: 7000 }, "j"), "i", "two spellings of one IPv6 address");
  assert.is(claims.claim({ address: "fe80::1%eth0", port: 7000 }, "k"), undefined, "a link-local address with its zone");
  assert.is(claims.claim({ address: "fe80::1%eth0", port: 7000 }, "l"), "k");
  assert.is(claims.claim({ address: "10.0.0.1", port: 0 }, "m"), undefined, "port 0: the kernel picks a free one");
  assert.is(claims.claim({ address: "10.0.0.1", port: 0 }, "n"), undefined);

  // an index holds every bind it is given, clashing or not: a lookup finds a clash with any of them
  const held = new EndpointIndex<string>();
  held.add({ address: "10.0.0.1", port: 5004 }, "x");
  held.add({ address: "0.0.0.0", port: 5004 }, "y");
  assert.is(held.clashing({ address: "10.0.0.2", port: 5004 }), "y", "clashes with the wildcard added after 10.0.0.1");
  assert.is(held.clashing({ address: "::", port: 5004 }), undefined);

  // the same answers as endpointsClash, pair by pair, over a mix of binds
  const mix: Endpoint[] = ["10.0.0.1", "10.0.0.2", "0.0.0.0", "::", "::1", "0:0:0:0:0:0:0:1", "fe80::1%eth0", "239.1.1.1"].flatMap((address) => [5004, 5005, 0].map((port) => ({ address, port })));
  for (const a of mix) {
    for (const b of mix) {
      const one = new EndpointIndex<string>();
      one.add(a, "a");
      assert.is(one.clashing(b) === "a", endpointsClash(a, b), `${a.address}:${a.port} against ${b.address}:${b.port}`);
    }
  }
});

test.run();
