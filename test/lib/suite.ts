// uvu with the two guards it lacks: every test has a timeout (uvu has none, and a hung test would
// hang CI), and a suite that was declared but never run fails the file instead of passing silently.
import { suite as uvuSuite, type Context } from "uvu";

const declared = new Set<string>();
const ran = new Set<string>();

process.on("exit", () => {
  const forgotten = [...declared].filter((name) => !ran.has(name));
  if (forgotten.length > 0) {
    console.error(`suites declared but never run: ${forgotten.join(", ")}`);
    process.exitCode = 1;
  }
});

type TestFn = (context: Context) => unknown;

export interface Suite {
  (title: string, fn: TestFn, options?: { timeoutMs?: number }): void;
  before(fn: TestFn): void;
  after(fn: TestFn): void;
  run(): void;
}

async function withTimeout(work: unknown, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    await Promise.race([Promise.resolve(work), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function suite(name: string, defaults: { timeoutMs?: number } = {}): Suite {
  const inner = uvuSuite(name);
  declared.add(name);
  const wrapped = ((title: string, fn: TestFn, options: { timeoutMs?: number } = {}) => {
    const ms = options.timeoutMs ?? defaults.timeoutMs ?? 30_000;
    inner(title, (context) => withTimeout(fn(context), ms, `${name} > ${title}`));
  }) as Suite;
  wrapped.before = (fn) => inner.before((context) => withTimeout(fn(context), 60_000, `${name} before`));
  wrapped.after = (fn) => inner.after((context) => withTimeout(fn(context), 60_000, `${name} after`));
  wrapped.run = () => {
    ran.add(name);
    inner.run();
  };
  return wrapped;
}
