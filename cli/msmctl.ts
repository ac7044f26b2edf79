#!/usr/bin/env node
// msmctl: the operator's command line for the MSM control plane, in kubectl's manner
// (apply -f, get, describe, delete, top). The commands live in ./msmctl/.
import { runMsmctl } from "./msmctl/main.js";
import type { Io } from "./msmctl/context.js";

const io: Io = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  },
  env: process.env,
  isTty: process.stdout.isTTY === true,
  onInterrupt(fn) {
    process.on("SIGINT", fn);
    process.on("SIGTERM", fn);
    return () => {
      process.off("SIGINT", fn);
      process.off("SIGTERM", fn);
    };
  },
};

// a reader that went away (`msmctl top | head`): nothing more to say, and no stack trace about it
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw err;
  });
}

runMsmctl(process.argv.slice(2), io).then((code) => {
  process.exitCode = code;
});
