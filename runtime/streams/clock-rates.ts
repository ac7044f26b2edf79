// The RTP clock rate of a payload type: the segment's `clockRates` first, then the static payload
// types of RFC 3551 (section 6, tables 4 and 5), else 90000 (video's, the common case) as an assumption
// the stats say they made.

/** RFC 3551 section 6: static payload type -> clock rate (Hz). */
const STATIC_RATES: ReadonlyMap<number, number> = new Map([
  [0, 8000], [3, 8000], [4, 8000], [5, 8000], [6, 16000], [7, 8000], [8, 8000], [9, 8000],
  [10, 44100], [11, 44100], [12, 8000], [13, 8000], [14, 90000], [15, 8000], [16, 11025],
  [17, 22050], [18, 8000], [25, 90000], [26, 90000], [28, 90000], [31, 90000], [32, 90000],
  [33, 90000], [34, 90000],
]);

export const ASSUMED_CLOCK_RATE = 90000;

export const enum ClockFrom {
  Config = 0,
  PayloadType = 1,
  Assumed = 2,
}

export const CLOCK_FROM_NAMES = ["config", "payload-type", "assumed"] as const;

/** Clock rate and where it came from, packed as rate * 4 + ClockFrom (no object per lookup). */
export function clockRateOf(payloadType: number, configured: ReadonlyMap<number, number> | null): number {
  const own = configured?.get(payloadType);
  if (own !== undefined) return own * 4 + ClockFrom.Config;
  const known = STATIC_RATES.get(payloadType);
  if (known !== undefined) return known * 4 + ClockFrom.PayloadType;
  return ASSUMED_CLOCK_RATE * 4 + ClockFrom.Assumed;
}
