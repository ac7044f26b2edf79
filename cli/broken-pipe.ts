// A reader that went away (`msmctl top | head`, `msm demo | head`): nothing more to say, and no
// stack trace about it. A command that serves (a proxy, a control plane) goes on without its logs.
export function quietOnBrokenPipe(keepServing: boolean): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE") throw err;
      if (!keepServing) process.exit(process.exitCode ?? 0);
    });
  }
}
