// Builds the two addons of runtime/native with one node-gyp rebuild at install: msm_udp, batched
// I/O (docs/batched-io.md), and msm_crypto, host crypto for filters (docs/host-crypto.md).
// A machine that cannot build them (no compiler, no Node headers, not Linux) still installs: the
// proxy then sends and receives through node:dgram and filters use their own wasm crypto, both
// slower, and this script says so loudly, for each addon that is missing.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dir = join(root, "runtime", "native");

const ADDONS = [
  {
    file: "msm_udp.node",
    what: "batched-I/O addon",
    without: "The proxy will run, but with node:dgram I/O (one system call per packet, 2.3x the CPU per\npacket in bench/).",
  },
  {
    file: "msm_crypto.node",
    what: "host-crypto addon",
    without: "Filters will run, but with their own WebAssembly AES and HMAC-SHA1 (several times slower,\nand their AES is not constant-time).",
  },
];

function loud(addons, reason) {
  const bar = "=".repeat(78);
  for (const addon of addons) {
    console.warn(`\n${bar}\nmsm: the ${addon.what} (${addon.file}) was NOT built: ${reason}\n${addon.without} To build it: install python3, make and a C compiler,\nthen run \`node scripts/build-native.mjs\`.\n${bar}\n`);
  }
}

if (process.platform !== "linux") {
  loud(ADDONS, `they use Linux system calls and libraries; this is ${process.platform}`);
  process.exit(0);
}
// npm tells its lifecycle scripts where its own node-gyp is; outside npm, look beside npm
const gyp = process.env.npm_config_node_gyp
  ?? [join(dirname(process.execPath), "..", "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js")].find(existsSync);
if (!gyp) {
  loud(ADDONS, "node-gyp not found (run this through npm, which brings its own)");
  process.exit(0);
}
// Node's own headers where its installation has them (npm passes its nodedir setting itself):
// node-gyp would otherwise download them, and CI reaches no site but the npm registry
const prefix = dirname(dirname(process.execPath));
const headers = !process.env.npm_config_nodedir && existsSync(join(prefix, "include", "node", "node_api.h")) ? [`--nodedir=${prefix}`] : [];
// make -k: one addon that fails to compile does not stop the other from building
const run = spawnSync(process.execPath, [gyp, "rebuild", "--directory", dir, ...headers], {
  stdio: ["ignore", "pipe", "pipe"],
  encoding: "utf8",
  env: { ...process.env, MAKEFLAGS: `${process.env.MAKEFLAGS ?? ""} -k`.trim() },
});
const release = join(dir, "build", "Release");
const missing = ADDONS.filter((addon) => !existsSync(join(release, addon.file)));
if (run.status !== 0 || missing.length > 0) process.stderr.write(run.stdout + run.stderr);
loud(missing, `node-gyp failed (exit ${run.status ?? run.signal}), its output is above`);
for (const addon of ADDONS.filter((a) => !missing.includes(a))) {
  console.log(`msm: ${addon.what} built (runtime/native/build/Release/${addon.file})`);
}
