// The start of a script run with `node --input-type=module -e SCRIPT .../batched-io.js` inside a
// test's network namespace: the batched-I/O addon, a node:dgram receiver on 127.0.0.1 that keeps
// the lengths of what arrives (`rx`, `lengths`), and an attached send-only socket (`addon`, `tx`,
// `port`, its outcome in `result`) whose peer 0 is the receiver. The test appends what it sends.
export const ADDON_CHILD_PRELUDE = `
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
const { loadAddon, socketHandle } = await import(process.argv[1]);
const addon = loadAddon();
const rx = createSocket("udp4");
const lengths = [];
rx.on("message", (m) => lengths.push(m.length));
await new Promise((r) => rx.bind(0, "127.0.0.1", r));
const tx = createSocket("udp4");
await new Promise((r) => tx.bind(0, "127.0.0.1", r));
const result = new Int32Array(7);
const arena = addon.createArena(new Uint8Array(64), new Int32Array(11), 64, result);
const port = addon.attach(socketHandle(tx).fd, arena, null);
`;
