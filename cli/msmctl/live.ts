// The loop of msmctl's live views (top segments, top streams): a frame every interval until Ctrl-C.
import type { Context } from "./context.js";

/** Runs `frame` (one screen, or one JSON line), waits `intervalMs`, and again, until the operator interrupts. */
export async function untilInterrupted(ctx: Context, intervalMs: number, frame: () => Promise<void>): Promise<void> {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake = (): void => {};
  const off = ctx.io.onInterrupt(() => {
    stopped = true;
    off();
    clearTimeout(timer);
    wake();
  });
  while (!stopped) {
    await frame();
    if (stopped) break;
    await new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, intervalMs);
    });
  }
}

/** One screen of a live view: redrawn in place on a terminal, appended after a blank line elsewhere. */
export function drawScreen(ctx: Context, head: string, body: string): void {
  ctx.io.out(ctx.io.isTty ? `\x1b[H\x1b[2J${head}${body}` : `${head}${body}\n`);
}
