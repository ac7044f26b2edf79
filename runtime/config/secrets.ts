// Secrets by reference. Anywhere in a filter's root config or a chain stage's config, an object
// of exactly one key, {"$file": PATH} or {"$env": NAME}, stands for the contents of that file
// (one trailing newline trimmed) or that environment variable of the proxy process. The proxy
// reads them when it applies a config, so that the config file, the control plane and
// last-good.json hold only the reference, never the key (a Kubernetes Secret mounted as a file,
// for example). The filter sees the value, as if it had been written inline. The config's
// `secrets` may narrow where they come from: files under some directories, some variables; a
// control plane's author, unlike a proxy file's, is not the node's operator.
import { constants } from "node:fs";
import { open, realpath } from "node:fs/promises";
import { isAbsolute, resolve, sep } from "node:path";

/** The parts of a proxy config that carry filter configs (ProxyConfig has them; proxy-config.ts calls in here). */
interface WithFilterConfigs {
  readonly filters: Readonly<Record<string, { readonly config: Record<string, unknown> }>>;
  readonly segments: readonly { readonly chain: readonly { readonly config: Record<string, unknown> }[] }[];
  readonly secrets?: SecretsPolicy;
}

/** Where references may point (ProxyConfig.secrets); a list absent: anywhere. */
export interface SecretsPolicy {
  readonly files?: readonly string[];
  readonly env?: readonly string[];
}

/** The bytes a $file secret may hold: a key, a token, a certificate chain fit many times over. */
export const MAX_SECRET_FILE_BYTES = 64 << 10;

/** Why a secret file is refused without an errno (not a regular file, too big). */
class SecretFileProblem extends Error {}

/**
 * The text of a secret file, held to MAX_SECRET_FILE_BYTES and to regular files: a reference to
 * /dev/zero or /dev/urandom would otherwise be read until the process ran out of memory, and one
 * to a FIFO would block a thread of the pool (and the apply) until something wrote to it. Opened
 * non-blocking so that a FIFO's open returns at once; a file that grows while read is cut at the
 * limit and refused.
 */
async function readSecretFile(path: string): Promise<string> {
  const file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = await file.stat();
    if (!stat.isFile()) {
      const kind = stat.isDirectory() ? "a directory" : stat.isFIFO() ? "a FIFO" : stat.isCharacterDevice() ? "a character device" : stat.isBlockDevice() ? "a block device" : stat.isSocket() ? "a socket" : "not a file";
      throw new SecretFileProblem(`it is ${kind}, not a regular file`);
    }
    const tooBig = (bytes: string): SecretFileProblem => new SecretFileProblem(`it holds ${bytes} bytes, more than the ${MAX_SECRET_FILE_BYTES >> 10} KiB a secret may hold`);
    if (stat.size > MAX_SECRET_FILE_BYTES) throw tooBig(String(stat.size));
    // /proc files say size 0: read up to one byte past the limit whatever the size said
    const buf = Buffer.alloc(MAX_SECRET_FILE_BYTES + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await file.read(buf, filled, buf.length - filled, null);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled > MAX_SECRET_FILE_BYTES) throw tooBig(`more than ${MAX_SECRET_FILE_BYTES}`);
    }
    return buf.toString("utf8", 0, filled);
  } finally {
    await file.close();
  }
}

type Reference = { kind: "$file" | "$env"; target: string };

/** The reference an object stands for, undefined if it is no reference, or a problem text. */
function referenceIn(value: unknown): Reference | string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const keys = Object.keys(value);
  const ref = keys.find((k) => k === "$file" || k === "$env");
  if (!ref) return undefined;
  const target = (value as Record<string, unknown>)[ref];
  if (keys.length !== 1) return `a ${ref} reference stands alone in its object (found ${keys.join(", ")})`;
  if (typeof target !== "string" || target === "") return `${ref} takes a non-empty string`;
  return { kind: ref as Reference["kind"], target };
}

/** Calls `visit` for every reference in `value` (depth first), with its path below `at`. */
function walk(value: unknown, at: string, visit: (ref: Reference | string, at: string, replace: (v: unknown) => void) => void): void {
  if (typeof value !== "object" || value === null) return;
  for (const [key, child] of Object.entries(value)) {
    const path = Array.isArray(value) ? `${at}[${key}]` : `${at}.${key}`;
    const ref = referenceIn(child);
    if (ref !== undefined) visit(ref, path, (v) => ((value as Record<string, unknown>)[key] = v));
    else walk(child, path, visit);
  }
}

/** Every config the filters get, with the field path that names it in messages. */
function filterConfigs(config: WithFilterConfigs): { config: Record<string, unknown>; at: string }[] {
  const out = Object.entries(config.filters).map(([name, f]) => ({ config: f.config, at: `filters.${name}.config` }));
  config.segments.forEach((seg, i) => seg.chain.forEach((st, j) => out.push({ config: st.config, at: `segments[${i}].chain[${j}].config` })));
  return out;
}

/** Whether a variable's name matches a secrets.env entry: the name, or a prefix ending in '*'. */
function envAllowed(name: string, allowed: readonly string[]): boolean {
  return allowed.some((a) => (a.endsWith("*") ? name.startsWith(a.slice(0, -1)) : name === a));
}

/** The secrets.files directories as the kernel resolves them (a symlinked mount too); one that does not exist allows nothing. */
async function allowedDirectories(files: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const dir of files) {
    try {
      out.push(await realpath(dir));
    } catch {
      // nothing under it can be read
    }
  }
  return out;
}

/**
 * Refuses a secret file outside the allowed directories, judged by the path the kernel resolves
 * (symlinks and '..' followed: a Kubernetes Secret's ..data links stay inside its mount, a link
 * to /etc/shadow does not).
 */
async function fileAllowed(path: string, listed: readonly string[], dirs: Promise<string[]>): Promise<void> {
  const real = await realpath(path);
  if ((await dirs).some((d) => real === d || real.startsWith(d.endsWith(sep) ? d : d + sep))) return;
  throw new SecretFileProblem(`it is not under a directory secrets.files allows (${listed.join(", ") || "none"})`);
}

/** Checks every reference's form and makes relative $file paths absolute (against baseDir). Returns problems. */
export function checkSecretReferences(config: WithFilterConfigs, baseDir: string): string[] {
  const problems: string[] = [];
  for (const { config: c, at } of filterConfigs(config)) {
    walk(c, at, (ref, path, replace) => {
      if (typeof ref === "string") problems.push(`${path}: ${ref}`);
      else if (ref.kind === "$file" && !isAbsolute(ref.target)) replace({ $file: resolve(baseDir, ref.target) });
    });
  }
  return problems;
}

/**
 * A copy of `config` with every reference replaced by what it names, or the problems (naming the
 * field and the file or variable, never a value). The original is left as it is.
 */
export async function resolveSecrets<C extends WithFilterConfigs>(config: C): Promise<{ config: C; problems: string[] }> {
  const copy = structuredClone(config);
  const problems: string[] = [];
  const reads: Promise<void>[] = [];
  const policy = config.secrets ?? {};
  const dirs = policy.files === undefined ? undefined : allowedDirectories(policy.files);
  for (const { config: c, at } of filterConfigs(copy)) {
    walk(c, at, (ref, path, replace) => {
      if (typeof ref === "string") {
        problems.push(`${path}: ${ref}`);
      } else if (ref.kind === "$env") {
        const value = process.env[ref.target];
        if (policy.env !== undefined && !envAllowed(ref.target, policy.env)) {
          problems.push(`${path}: environment variable ${ref.target} is not one secrets.env allows (${policy.env.join(", ") || "none"})`);
        } else if (value === undefined) problems.push(`${path}: environment variable ${ref.target} is not set`);
        else replace(value);
      } else {
        reads.push(
          (dirs === undefined ? Promise.resolve() : fileAllowed(ref.target, policy.files!, dirs)).then(() => readSecretFile(ref.target)).then(
            (text) => replace(text.endsWith("\n") ? text.slice(0, text.endsWith("\r\n") ? -2 : -1) : text),
            (err: NodeJS.ErrnoException) => void problems.push(`${path}: cannot read secret file ${ref.target}: ${err instanceof SecretFileProblem ? err.message : (err.code ?? err.message)}`),
          ),
        );
      }
    });
  }
  await Promise.all(reads);
  return { config: copy, problems };
}
