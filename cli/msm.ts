#!/usr/bin/env node
// msm: the proxy's command line. `msm proxy` runs a proxy (from a file or a control plane),
// `msm control-plane` a control-plane replica, `msm demo` a validate chain on a live stream,
// `msm filter new` starts a filter project.
import { runDemo } from "./demo.js";
import { runProxy } from "./proxy-command.js";
import { runControlPlane } from "./control-plane-command.js";
import { scaffoldCommand } from "./filter-command.js";
import { UsageError } from "./usage.js";

const USAGE = `msm: Media Streaming Mesh data plane

Usage:
  msm proxy --config FILE [--admin HOST:PORT] [--check]
                                               run a proxy; SIGHUP or a file change reloads;
                                               --check: check the file as a start would, start nothing
  msm proxy --control-plane HOST:PORT[,...] --node-id ID --state-dir DIR
      (--tls-ca F --tls-cert F --tls-key F | --insecure) [--config NODE-FILE] [--workers N] [--admin HOST:PORT]
                                               run a proxy managed by the control plane
  msm demo [--seconds N] [--rate PPS] [--bad-percent P]
                                               a proxy with a validate chain, a generated stream
                                               with malformed packets, a sink, live counters
  msm control-plane --listen HOST:PORT --store file:DIR|etcd:URL[,URL...] [--name NAME]
      [--trust-domain TD] (--tls-ca F --tls-cert F --tls-key F | --insecure)
      [--bad-loss FRACTION] [--bad-jitter-ms MS]
                                               run a control-plane replica (gRPC: admin + proxies)
  msm filter new NAME DIR                      scaffold a standalone filter project in DIR
  msm help                                     this text

Docs: README.md, docs/abi.md (filter ABI), docs/sdk.md (AssemblyScript SDK), docs/proxy.md (config),
      docs/control-plane.md (control plane and msmctl)`;

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command !== undefined && (args.includes("--help") || args.includes("-h"))) {
    console.log(USAGE); // every command's flags are on the one page
    return 0;
  }
  switch (command) {
    case "proxy":
      return runProxy(args);
    case "demo":
      return runDemo(args);
    case "control-plane":
      return runControlPlane(args);
    case "filter":
      return scaffoldCommand(args);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return 0;
    default:
      console.error(`msm: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`msm: ${err.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else {
      console.error(`msm: ${(err as Error).message ?? err}`);
      process.exitCode = 1;
    }
  },
);
