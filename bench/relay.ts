// The baseline of the end-to-end benchmark: the plainest node:dgram relay. Every datagram that
// arrives on the listening socket is sent, unchanged, from a second socket to one destination.
// No batching, no copy, no parsing. It sends the way the proxy does (an unconnected socket with
// an address per send) and gets the same 4 MiB receive buffer, so the ratio measures what the
// proxy adds, not a socket trick either side could use.
import { createSocket, type Socket } from "node:dgram";

export interface PlainRelay {
  readonly port: number;
  /** Send and socket errors so far. */
  readonly errors: number;
  close(): Promise<void>;
}

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

export async function startPlainRelay(destinationPort: number): Promise<PlainRelay> {
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
  return {
    port: ingress.address().port,
    get errors() {
      return errors;
    },
    close: async () => {
      await Promise.all([ingress, egress].map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}
