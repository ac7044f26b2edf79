// Builds the batched-I/O addon (runtime/native, docs/batched-io.md) with node-gyp at install.
// A machine that cannot build it (no compiler, no Node headers, not Linux) still installs: the
// proxy then sends and receives through node:dgram, slower, and this script says so loudly.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dir = join(root, "runtime", "native");

function loud(reason) {
  const bar = "=".repeat(78);
  console.warn(`\n${bar}\nmsm: the batched-I/O addon was NOT built: ${reason}\nThe proxy will run, but with node:dgram I/O (one system call per packet, 2.3x the CPU per\npacket in bench/). To build it: install python3, make and a C compiler, then run\n\`node scripts/build-native.mjs\`.\n${bar}\n`);
}

if (process.platform !== "linux") {
  loud(`recvmmsg/sendmmsg are Linux system calls; this is ${process.platform}`);
  process.exit(0);
}
// npm tells its lifecycle scripts where its own node-gyp is; outside npm, look beside npm
const gyp = process.env.npm_config_node_gyp
  ?? [join(dirname(process.execPath), "..", "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js")].find(existsSync);
if (!gyp) {
  loud("node-gyp not found (run this through npm, which brings its own)");
  process.exit(0);
}
// Node's own headers where its installation has them (npm passes its nodedir setting itself):
// node-gyp would otherwise download them, and CI reaches no site but the npm registry
const prefix = dirname(dirname(process.execPath));
const headers = !process.env.npm_config_nodedir && existsSync(join(prefix, "include", "node", "node_api.h")) ? [`--nodedir=${prefix}`] : [];
const run = spawnSync(process.execPath, [gyp, "rebuild", "--directory", dir, ...headers], { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
if (run.status !== 0) {
  process.stderr.write(run.stdout + run.stderr);
  loud(`node-gyp failed (exit ${run.status ?? run.signal}), its output is above`);
  process.exit(0);
}
console.log("msm: batched-I/O addon built (runtime/native/build/Release/msm_udp.node)");
