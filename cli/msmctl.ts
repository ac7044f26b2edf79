#!/usr/bin/env node
// msmctl: the operator's command line for the MSM control plane, in kubectl's manner
// (apply -f, get, describe, delete, top). The commands live in ./msmctl/.
import { runMsmctl } from "./msmctl/main.js";
import type { Io } from "./msmctl/context.js";
import { quietOnBrokenPipe } from "./broken-pipe.js";

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

quietOnBrokenPipe(false);

runMsmctl(process.argv.slice(2), io).then((code) => {
  process.exitCode = code;
});
