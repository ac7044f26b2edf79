// The baseline of the end-to-end benchmark: the plainest node:dgram relay. Every datagram that
// arrives on the listening socket is sent, unchanged, from a second socket to one destination.
// No batching, no copy, no parsing. It sends the way the proxy does (an unconnected socket with
// an address per send) and asks for the same 4 MiB receive buffer, so the ratio measures what
// the proxy adds, not a socket trick either side could use.
//
// Run as its own process, under Node or Bun (the same file): `node dist/bench/relay.js DEST_PORT`
// prints its listening port on stdout, then relays until stdin closes or a signal arrives.
import { createSocket, type Socket } from "node:dgram";

const RECEIVE_BUFFER = 4 << 20;

function bind(sock: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(0, "127.0.0.1", () => {
      sock.off("error", reject);
      try {
        sock.setRecvBufferSize(RECEIVE_BUFFER);
      } catch {
        // capped by net.core.rmem_max
      }
      resolve();
    });
  });
}

async function main(): Promise<void> {
  const destinationPort = Number(process.argv[2]);
  if (!Number.isInteger(destinationPort) || destinationPort < 1 || destinationPort > 65535) {
    process.stderr.write("usage: relay.js DEST_PORT\n");
    process.exit(2);
  }
  const ingress = createSocket("udp4");
  const egress = createSocket("udp4");
  await bind(ingress);
  await bind(egress);
  let errors = 0;
  const onSent = (err: Error | null): void => {
    if (err) errors++;
  };
  ingress.on("message", (msg) => egress.send(msg, destinationPort, "127.0.0.1", onSent));
  ingress.on("error", () => errors++);
  egress.on("error", () => errors++);
  const stop = (): void => {
    if (errors > 0) process.stderr.write(`relay: ${errors} send or socket errors\n`);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.resume();
  process.stdout.write(`${ingress.address().port}\n`);
}

void main();
