// A client for rtpengine's ng control protocol: one UDP datagram per message, "<cookie> <bencoded
// dictionary>", and the reply carries the same cookie. Bencode has four kinds of value: integers
// (i42e), byte strings (4:spam), lists (l...e) and dictionaries (d...e, keys are byte strings in
// sorted order). The ng protocol only needs text strings (SDP is ASCII), so strings decode as
// UTF-8 here; integers must be safe JavaScript integers.
import { randomBytes } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";

export type BValue = number | string | BValue[] | { [key: string]: BValue };

// ---------------------------------------------------------------------------------------------
// Bencode

export function bencode(value: BValue): Buffer {
  const parts: Buffer[] = [];
  encodeInto(value, parts);
  return Buffer.concat(parts);
}

function encodeInto(value: BValue, out: Buffer[]): void {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new TypeError(`bencode: not a safe integer: ${value}`);
    out.push(Buffer.from(`i${value}e`, "latin1"));
  } else if (typeof value === "string") {
    const bytes = Buffer.from(value, "utf8");
    out.push(Buffer.from(`${bytes.length}:`, "latin1"), bytes);
  } else if (Array.isArray(value)) {
    out.push(Buffer.from("l", "latin1"));
    for (const item of value) encodeInto(item, out);
    out.push(Buffer.from("e", "latin1"));
  } else if (value !== null && typeof value === "object") {
    out.push(Buffer.from("d", "latin1"));
    // Keys sorted by their raw bytes, as the format requires.
    const keys = Object.keys(value).map((k) => Buffer.from(k, "utf8")).sort(Buffer.compare);
    for (const key of keys) {
      out.push(Buffer.from(`${key.length}:`, "latin1"), key);
      encodeInto(value[key.toString("utf8")]!, out);
    }
    out.push(Buffer.from("e", "latin1"));
  } else {
    throw new TypeError(`bencode: cannot encode ${typeof value}`);
  }
}

const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/** Decodes exactly one value spanning all of `bytes`. */
export function bdecode(bytes: Uint8Array): BValue {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [value, end] = decodeAt(buf, 0, 0);
  if (end !== buf.length) throw new SyntaxError(`bdecode: ${buf.length - end} trailing bytes at offset ${end}`);
  return value;
}

const MAX_DEPTH = 64;

function decodeAt(buf: Buffer, at: number, depth: number): [BValue, number] {
  if (depth > MAX_DEPTH) throw new SyntaxError("bdecode: nested too deeply");
  if (at >= buf.length) throw new SyntaxError(`bdecode: unexpected end at offset ${at}`);
  const c = buf[at]!;
  if (c === 0x69 /* i */) {
    const end = buf.indexOf(0x65 /* e */, at + 1);
    if (end < 0) throw new SyntaxError(`bdecode: unterminated integer at offset ${at}`);
    const text = buf.toString("latin1", at + 1, end);
    if (!/^(0|-?[1-9][0-9]*)$/.test(text)) throw new SyntaxError(`bdecode: bad integer "${text}" at offset ${at}`);
    const n = Number(text);
    if (!Number.isSafeInteger(n)) throw new SyntaxError(`bdecode: integer out of range "${text}"`);
    return [n, end + 1];
  }
  if (c >= DIGIT_0 && c <= DIGIT_9) {
    const [s, end] = stringAt(buf, at);
    return [s.toString("utf8"), end];
  }
  if (c === 0x6c /* l */) {
    const list: BValue[] = [];
    let p = at + 1;
    while (true) {
      if (p >= buf.length) throw new SyntaxError(`bdecode: unterminated list at offset ${at}`);
      if (buf[p] === 0x65) return [list, p + 1];
      const [item, next] = decodeAt(buf, p, depth + 1);
      list.push(item);
      p = next;
    }
  }
  if (c === 0x64 /* d */) {
    const dict: { [key: string]: BValue } = {};
    let p = at + 1;
    while (true) {
      if (p >= buf.length) throw new SyntaxError(`bdecode: unterminated dictionary at offset ${at}`);
      if (buf[p] === 0x65) return [dict, p + 1];
      const [key, afterKey] = stringAt(buf, p);
      const [item, next] = decodeAt(buf, afterKey, depth + 1);
      // defineProperty: a key "__proto__" is a key like any other, not the prototype
      Object.defineProperty(dict, key.toString("utf8"), { value: item, enumerable: true, writable: true, configurable: true });
      p = next;
    }
  }
  throw new SyntaxError(`bdecode: unexpected byte 0x${c.toString(16)} at offset ${at}`);
}

function stringAt(buf: Buffer, at: number): [Buffer, number] {
  const colon = buf.indexOf(0x3a /* : */, at);
  if (colon < 0) throw new SyntaxError(`bdecode: string length without ':' at offset ${at}`);
  const text = buf.toString("latin1", at, colon);
  if (!/^(0|[1-9][0-9]*)$/.test(text)) throw new SyntaxError(`bdecode: bad string length "${text}" at offset ${at}`);
  const length = Number(text);
  const start = colon + 1;
  if (start + length > buf.length) throw new SyntaxError(`bdecode: string at offset ${at} runs past the end`);
  return [buf.subarray(start, start + length), start + length];
}

// ---------------------------------------------------------------------------------------------
// The ng client

export type NgDict = { [key: string]: BValue };

export class NgError extends Error {}

/**
 * One UDP socket talking to one rtpengine ng listener. Requests are retransmitted with the same
 * cookie until a reply arrives (rtpengine caches replies by cookie, so a retransmitted offer is
 * not processed twice) or the time runs out.
 */
export class NgClient {
  private readonly pending = new Map<string, (reply: NgDict) => void>();
  private closed = false;

  private constructor(private readonly socket: Socket, readonly port: number, readonly host: string) {
    socket.on("message", (msg) => {
      const space = msg.indexOf(0x20);
      if (space <= 0) return;
      const cookie = msg.toString("latin1", 0, space);
      const resolve = this.pending.get(cookie);
      if (!resolve) return;
      let reply: BValue;
      try {
        reply = bdecode(msg.subarray(space + 1));
      } catch (e) {
        reply = { result: "error", "error-reason": `undecodable reply: ${(e as Error).message}` };
      }
      if (typeof reply !== "object" || Array.isArray(reply)) reply = { result: "error", "error-reason": "reply is not a dictionary" };
      this.pending.delete(cookie);
      resolve(reply);
    });
    socket.on("error", () => {
      // A send to a listener that is not up yet reports ECONNREFUSED on some kernels; the retry
      // loop covers it.
    });
  }

  static async open(port: number, host = "127.0.0.1"): Promise<NgClient> {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, "127.0.0.1", () => {
        socket.off("error", reject);
        resolve();
      });
    });
    return new NgClient(socket, port, host);
  }

  /**
   * Sends `message` and resolves with the reply dictionary, whatever its "result" (see `call` for
   * one that throws on errors). Rejects if no reply arrives within `timeoutMs`.
   */
  async request(message: NgDict, timeoutMs = 2000, retransmitMs = 200): Promise<NgDict> {
    if (this.closed) throw new NgError("ng client is closed");
    const cookie = randomBytes(8).toString("hex");
    const datagram = Buffer.concat([Buffer.from(`${cookie} `, "latin1"), bencode(message)]);
    let timer: NodeJS.Timeout | undefined;
    let resend: NodeJS.Timeout | undefined;
    try {
      return await new Promise<NgDict>((resolve, reject) => {
        this.pending.set(cookie, resolve);
        const send = (): void => this.socket.send(datagram, this.port, this.host);
        send();
        resend = setInterval(send, retransmitMs);
        timer = setTimeout(
          () => reject(new NgError(`no ng reply from ${this.host}:${this.port} to "${String(message.command)}" within ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
    } finally {
      clearTimeout(timer);
      clearInterval(resend);
      this.pending.delete(cookie);
    }
  }

  /** Like `request`, but a reply whose result is not "ok" (or "pong" for ping) throws. */
  async call(message: NgDict, timeoutMs = 2000): Promise<NgDict> {
    const reply = await this.request(message, timeoutMs, Math.min(200, Math.max(10, timeoutMs / 4)));
    const result = reply.result;
    if (result !== "ok" && !(message.command === "ping" && result === "pong")) {
      const reason = reply["error-reason"] ?? reply.warning ?? JSON.stringify(reply);
      throw new NgError(`ng "${String(message.command)}" failed: ${String(result)}: ${String(reason)}`);
    }
    return reply;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
  }
}
