// A token bucket over the host's microsecond clock: how a stage's generated packets and its
// timer firings are bounded, so that a runaway filter (a timer at 0 delay that emits a full
// output area every time) cannot starve the other segments of its worker.
export class TokenBucket {
  private tokens: number;
  private lastUs = -1;

  constructor(readonly perSecond: number, readonly burst: number) {
    this.tokens = burst;
  }

  /** Takes one token at time `nowUs`; false when the budget is spent. */
  take(nowUs: number): boolean {
    if (this.lastUs >= 0 && nowUs > this.lastUs) this.tokens = Math.min(this.burst, this.tokens + ((nowUs - this.lastUs) * this.perSecond) / 1e6);
    if (nowUs > this.lastUs) this.lastUs = nowUs;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Microseconds from `nowUs` until a token is there (0 if one is). */
  waitUs(nowUs: number): number {
    const have = this.lastUs >= 0 && nowUs > this.lastUs ? Math.min(this.burst, this.tokens + ((nowUs - this.lastUs) * this.perSecond) / 1e6) : this.tokens;
    return have >= 1 ? 0 : Math.ceil(((1 - have) * 1e6) / this.perSecond);
  }
}

/** A stage's two budgets for its limits: a tenth of a second's burst (at least 2,048 packets, 8 firings). */
export function stageBudgets(limits: { readonly generatedPerSecond: number; readonly timerFiresPerSecond: number }): { generated: TokenBucket; timerFires: TokenBucket } {
  return {
    generated: new TokenBucket(limits.generatedPerSecond, Math.max(2048, limits.generatedPerSecond / 10)),
    timerFires: new TokenBucket(limits.timerFiresPerSecond, Math.max(8, limits.timerFiresPerSecond / 10)),
  };
}
