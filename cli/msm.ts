#!/usr/bin/env node
// msm: the proxy's command line. `msm proxy` runs a proxy (from a file or a control plane),
// `msm control-plane` a control-plane replica, `msm demo` a validate chain on a live stream,
// `msm filter new` starts a filter project.
import { runDemo } from "./demo.js";
import { PROXY_USAGE, runProxy } from "./proxy-command.js";
import { CONTROL_PLANE_USAGE, runControlPlane } from "./control-plane-command.js";
import { scaffoldCommand } from "./filter-command.js";
import { UsageError } from "./usage.js";
import { versionLine } from "./version.js";
import { quietOnBrokenPipe } from "./broken-pipe.js";

const USAGE = `msm: Media Streaming Mesh data plane

Usage:
  msm proxy --config FILE [--admin HOST:PORT] [--check]
                                               run a proxy; SIGHUP or a file change reloads;
                                               --check: check the file as a start would, start nothing
  msm proxy --control-plane HOST:PORT|unix:PATH[,...] --node-id ID --state-dir DIR
      (--tls-ca F --tls-cert F --tls-key F | --insecure) [--config NODE-FILE] [--workers N]
      [--gso auto|off] [--admin HOST:PORT] [--check]
                                               run a proxy managed by the control plane
  msm demo [--seconds N] [--rate PPS] [--bad-percent P]
                                               a proxy with a validate chain, a generated stream
                                               with malformed packets, a sink, live counters
  msm control-plane --listen HOST:PORT --store file:DIR|etcd:URL[,URL...] [--name NAME]
      [--trust-domain TD] (--tls-ca F --tls-cert F --tls-key F | --insecure)
      [--bad-loss FRACTION] [--bad-jitter-ms MS] [--dashboard HOST:PORT]
                                               run a control-plane replica (gRPC: admin + proxies)
  msm filter new NAME DIR                      scaffold a standalone filter project in DIR
  msm version                                  the version and the filter ABI it hosts
  msm help                                     this text

Docs: README.md, docs/abi.md (filter ABI), docs/sdk.md (AssemblyScript SDK), docs/proxy.md (config),
      docs/control-plane.md (control plane and msmctl)`;

/** A command's own usage, where it has one longer than its line in USAGE. */
const COMMAND_USAGE: Record<string, string | undefined> = { proxy: PROXY_USAGE, "control-plane": CONTROL_PLANE_USAGE };

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  // a misspelt command is said, also with --help or after help (exit 2), not answered with the usage as if it were one
  const known = (c: string): boolean => ["proxy", "demo", "control-plane", "filter", "version", "help"].includes(c);
  if (command !== undefined && (args.includes("--help") || args.includes("-h")) && known(command)) {
    console.log(COMMAND_USAGE[command] ?? USAGE);
    return 0;
  }
  if (command === "help" && args[0] !== undefined) {
    if (!known(args[0])) throw new UsageError(`no help for '${args[0]}': not a command (proxy, demo, control-plane, filter, version)`);
    console.log(COMMAND_USAGE[args[0]] ?? USAGE);
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
    case "version":
    case "--version":
      console.log(versionLine("msm"));
      return 0;
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

quietOnBrokenPipe(["proxy", "control-plane"].includes(process.argv[2] ?? ""));

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      // the message first and alone; a command's usage when it gave one, else where to look
      const usage = /(^|\n)usage: /.test(err.message) ? "" : "\n(msm help: every command and flag)";
      console.error(`msm: ${err.message}${usage}`);
      process.exitCode = 2;
    } else {
      console.error(`msm: ${(err as Error).message ?? err}`);
      process.exitCode = 1;
    }
  },
);
