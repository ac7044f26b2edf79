// A worker thread for test/parked-sockets.test.ts: binds 127.0.0.1:port, takes the socket over for
// the batched-I/O addon (keepable for `owner` when `park`; with `hand`, parked by parkSocket as a
// segment that moves hands it over), says its descriptor, and ends with it open.
import { createSocket } from "node:dgram";
import { parentPort, workerData } from "node:worker_threads";
import { loadUdpAddon, socketHandle } from "../../runtime/index.js";

const { owner, port, detail, park, hand } = workerData as { owner: number; port: number; detail: string; park: boolean; hand?: boolean };
const addon = loadUdpAddon()!;
const socket = createSocket("udp4");
await new Promise<void>((resolve) => socket.bind(port, "127.0.0.1", resolve));
const handle = socketHandle(socket).fd;
const fd = park ? addon.takeSocket(handle, true, owner, `127.0.0.1|${port}`, detail) : addon.takeSocket(handle, true);
socket.close();
if (hand && !addon.parkSocket(fd)) throw new Error("parkSocket refused a keepable socket");
parentPort!.postMessage(fd);
