// The run's progress bar on stderr: a weighted plan of phases (each with an estimated duration),
// the fraction of the current phase when the phase knows it (e2e counts its trials), otherwise
// the time spent against the estimate. On a terminal it redraws one line under the log lines;
// elsewhere (CI logs, pipes) it prints a line at each tenth.
export interface Phase {
  readonly name: string;
  /** Estimated seconds: the bar's weights. */
  readonly estimateS: number;
}

const WIDTH = 30;

export class ProgressBar {
  private index = -1;
  private phaseStarted = 0;
  private known: number | null = null;
  private readonly started = performance.now();
  private readonly total: number;
  private lastTenth = -1;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly phases: readonly Phase[], private readonly tty = process.stderr.isTTY === true) {
    this.total = phases.reduce((s, p) => s + p.estimateS, 0);
    if (this.tty) this.timer = setInterval(() => this.draw(), 500).unref();
  }

  /** Starts the named phase (phases not run are skipped over). */
  begin(name: string): void {
    const i = this.phases.findIndex((p) => p.name === name);
    if (i < 0) throw new Error(`progress: no phase ${name}`);
    this.index = i;
    this.phaseStarted = performance.now();
    this.known = null;
    this.draw();
  }

  /** The current phase's own account of how far it is, 0..1. */
  advance(fraction: number): void {
    this.known = Math.max(0, Math.min(1, fraction));
    this.draw();
  }

  /** Prints a log line above the bar. */
  log(line: string): void {
    if (this.tty) process.stderr.write(`\r\x1b[K${line}\n${this.render()}`);
    else process.stderr.write(`${line}\n`);
  }

  finish(): void {
    clearInterval(this.timer);
    if (this.tty) process.stderr.write(`\r\x1b[K`);
  }

  /** The fraction shown so far: the bar never moves back when a phase's own count replaces the clock's guess. */
  private shown = 0;

  private fraction(): number {
    this.shown = Math.max(this.shown, this.estimate());
    return this.shown;
  }

  private estimate(): number {
    if (this.index < 0) return 0;
    const done = this.phases.slice(0, this.index).reduce((s, p) => s + p.estimateS, 0);
    const phase = this.phases[this.index]!;
    const inPhase = this.known ?? Math.min(0.95, (performance.now() - this.phaseStarted) / 1000 / Math.max(1, phase.estimateS));
    return this.total === 0 ? 0 : (done + inPhase * phase.estimateS) / this.total;
  }

  private render(): string {
    const f = this.fraction();
    const filled = Math.round(f * WIDTH);
    const elapsed = (performance.now() - this.started) / 1000;
    const eta = f > 0.02 ? Math.max(0, elapsed / f - elapsed) : null;
    const phase = this.phases[this.index]?.name ?? "starting";
    return `[${"#".repeat(filled)}${".".repeat(WIDTH - filled)}] ${(f * 100).toFixed(0).padStart(3)}% ${phase}, ${clock(elapsed)} elapsed${eta === null ? "" : `, about ${clock(eta)} left`}`;
  }

  private draw(): void {
    if (this.tty) {
      process.stderr.write(`\r\x1b[K${this.render()}`);
      return;
    }
    const tenth = Math.floor(this.fraction() * 10);
    if (tenth > this.lastTenth) {
      this.lastTenth = tenth;
      process.stderr.write(`${this.render()}\n`);
    }
  }
}

function clock(seconds: number): string {
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}
