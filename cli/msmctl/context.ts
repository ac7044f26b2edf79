// What every msmctl command gets: its words and flags, where to print, the output format, and a
// connection to the control plane made from the flags and the environment when first needed.
import { readFile } from "node:fs/promises";
import type { TlsFiles } from "../../controlplane/security/tls.js";
import { CliError, connectAdmin, normalizeServer, type AdminApi } from "./client.js";
import { flag, flagSet, secondsFlag, UsageError, type ParsedArgs } from "./flags.js";
import { OUTPUT_FORMATS, type OutputFormat } from "./format.js";

export const DEFAULT_SERVER = "127.0.0.1:7400";

/** Where a command reads and writes; the entry point binds it to the process, tests to buffers. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  readStdin(): Promise<Buffer>;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly isTty: boolean;
  /** Calls `fn` on Ctrl-C (or SIGTERM); returns a function that stops listening. */
  onInterrupt(fn: () => void): () => void;
}

export interface Context {
  readonly io: Io;
  readonly args: ParsedArgs;
  /** The words after the command's name. */
  readonly words: readonly string[];
  readonly output: OutputFormat;
  /** -o name (get, apply, delete): one `kind/name` line per object, in place of the table. */
  readonly namesOnly: boolean;
  /** -o wide (get): the table with more columns, and lists in full. */
  readonly wide: boolean;
  /** The control plane, connected on first use and closed by the dispatcher. */
  api(): AdminApi;
  /** A file's text ("-" is stdin), or a CliError naming the file (unreadable, or not UTF-8). */
  readText(file: string): Promise<string>;
}

/**
 * UTF-8 text, or a CliError: bytes that are not UTF-8 would otherwise become U+FFFD and be
 * applied as such (a name, an address, a key silently changed).
 */
export function decodeUtf8(bytes: Buffer, source: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const line = bytes.subarray(0, at).toString("latin1").split("\n").length;
    throw new CliError(`${source}: not UTF-8 text (byte ${at}, line ${line}); save it as UTF-8`);
  }
}

/** Offset of the first byte that is not valid UTF-8 (a U+FFFD in the lossy decoding that the bytes do not spell). */
function firstInvalidUtf8(bytes: Buffer): number {
  const text = bytes.toString("utf8");
  for (let i = text.indexOf("\ufffd"); i >= 0; i = text.indexOf("\ufffd", i + 1)) {
    const at = Buffer.byteLength(text.slice(0, i));
    if (!(bytes[at] === 0xef && bytes[at + 1] === 0xbf && bytes[at + 2] === 0xbd)) return at;
  }
  return bytes.length;
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && /^(1|true|yes)$/i.test(v);
}

/** Server and credentials from flags, else the environment. Throws UsageError when neither says. */
export function connectOptions(args: ParsedArgs, env: Io["env"]): { server: string; tls: TlsFiles | "insecure"; timeoutMs: number } {
  const server = normalizeServer(flag(args, "server") ?? env.MSM_SERVER ?? DEFAULT_SERVER);
  const timeoutMs = secondsFlag(args, "timeout", 10, 0.1, 3600);
  const tlsFlags = ["tls-ca", "tls-cert", "tls-key"].filter((n) => flagSet(args, n));
  if (flagSet(args, "insecure")) {
    if (tlsFlags.length > 0) throw new UsageError(`--insecure and --${tlsFlags[0]} exclude each other`);
    return { server, tls: "insecure", timeoutMs };
  }
  const ca = flag(args, "tls-ca") ?? env.MSM_TLS_CA;
  const cert = flag(args, "tls-cert") ?? env.MSM_TLS_CERT;
  const key = flag(args, "tls-key") ?? env.MSM_TLS_KEY;
  if (ca === undefined && cert === undefined && key === undefined) {
    if (truthy(env.MSM_INSECURE)) return { server, tls: "insecure", timeoutMs };
    throw new UsageError("no credentials: give --tls-ca, --tls-cert and --tls-key (or MSM_TLS_CA, MSM_TLS_CERT, MSM_TLS_KEY), or --insecure for a plain-text control plane");
  }
  const missing = [
    ["--tls-ca", ca],
    ["--tls-cert", cert],
    ["--tls-key", key],
  ].filter(([, v]) => !v).map(([n]) => n);
  if (missing.length > 0) throw new UsageError(`TLS needs all three files; missing ${missing.join(", ")} (or its MSM_TLS_* variable)`);
  return { server, tls: { ca: ca!, cert: cert!, key: key! }, timeoutMs };
}

export function outputFormat(args: ParsedArgs): OutputFormat {
  const o = flag(args, "output") ?? "table";
  if (o === "name" || o === "wide") return "table"; // the table's commands print names instead (namesOnly), or more columns (wide)
  if (!(OUTPUT_FORMATS as readonly string[]).includes(o)) throw new UsageError(`-o must be one of ${[...OUTPUT_FORMATS, "wide", "name"].join(", ")}, got '${o}'`);
  return o as OutputFormat;
}

export function makeContext(io: Io, args: ParsedArgs, words: readonly string[]): Context & { close(): void } {
  let api: AdminApi | undefined;
  const output = outputFormat(args);
  return {
    io,
    args,
    words,
    output,
    namesOnly: flag(args, "output") === "name",
    wide: flag(args, "output") === "wide",
    api() {
      api ??= connectAdmin(connectOptions(args, io.env));
      return api;
    },
    async readText(file: string) {
      let bytes: Buffer;
      try {
        bytes = file === "-" ? await io.readStdin() : await readFile(file);
      } catch (err) {
        throw new CliError(`cannot read ${file === "-" ? "stdin" : file}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
      }
      return decodeUtf8(bytes, file === "-" ? "stdin" : file);
    },
    close() {
      api?.close();
    },
  };
}
