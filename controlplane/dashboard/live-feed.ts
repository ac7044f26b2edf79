// Live updates for the dashboard page as Server-Sent Events: while anyone listens, the state is
// loaded once per interval and the same frame is written to every client. Bounded: at most
// `maxClients` at once (more get 503), and a client whose unsent data grows past `maxBufferedBytes`
// (it reads slower than we write) is dropped rather than let the server's memory grow.
import type { IncomingMessage, ServerResponse } from "node:http";

export interface LiveFeedLimits {
  intervalMs: number;
  maxClients: number;
  maxBufferedBytes: number;
}

export class LiveFeed {
  private readonly clients = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | undefined;
  private loading = false;
  private lastFrame: string | undefined;
  private closed = false;
  dropped = 0;
  refused = 0;

  constructor(
    /** The frame's data: JSON text, one line. Throws when the state cannot be had (sent as a `failure` event). */
    private readonly load: () => Promise<string>,
    private readonly limits: LiveFeedLimits,
    private readonly log: (message: string) => void,
  ) {}

  get size(): number {
    return this.clients.size;
  }

  /** Serves one SSE request: registered, or refused with 503 when the feed is full or closed. */
  serve(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>): void {
    if (this.closed || this.clients.size >= this.limits.maxClients) {
      this.refused++;
      res.writeHead(503, { ...headers, "content-type": "text/plain; charset=utf-8", "retry-after": "10" });
      res.end(`too many live-update clients (at most ${this.limits.maxClients}); try again later\n`);
      return;
    }
    res.writeHead(200, { ...headers, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no" });
    // the browser reconnects by itself after this long when the stream breaks
    res.write(`retry: ${Math.max(1000, 2 * this.limits.intervalMs)}\n\n`);
    res.socket?.setNoDelay(true);
    this.clients.add(res);
    const forget = (): void => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.stop();
    };
    req.on("close", forget);
    res.on("close", forget);
    if (this.lastFrame !== undefined) this.send(res, this.lastFrame);
    this.start();
    if (this.lastFrame === undefined) void this.tick();
  }

  private start(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => void this.tick(), this.limits.intervalMs);
  }

  private stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    // a frame kept while nobody listened would be stale for the next client
    this.lastFrame = undefined;
  }

  private async tick(): Promise<void> {
    if (this.loading || this.clients.size === 0) return; // a slow store: skip a beat rather than pile up loads
    this.loading = true;
    let frame: string;
    try {
      frame = `event: state\ndata: ${await this.load()}\n\n`;
    } catch (err) {
      frame = `event: failure\ndata: ${JSON.stringify({ error: (err as Error).message })}\n\n`;
    } finally {
      this.loading = false;
    }
    if (this.clients.size === 0) return;
    this.lastFrame = frame;
    for (const res of this.clients) this.send(res, frame);
  }

  private send(res: ServerResponse, frame: string): void {
    if (res.writableLength > this.limits.maxBufferedBytes) {
      this.dropped++;
      this.log(`dashboard: dropped a live-update client that reads too slowly (${res.writableLength} bytes unsent; ${res.req.socket.remoteAddress ?? "?"})`);
      this.clients.delete(res);
      res.destroy();
      return;
    }
    res.write(frame);
  }

  /** Ends every client's stream and stops loading. Safe to call twice. */
  close(): void {
    this.closed = true;
    this.stop();
    for (const res of this.clients) res.end();
    this.clients.clear();
  }
}
