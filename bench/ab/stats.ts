/**
 * Statistics of the in-process A/B benchmark, pure (no I/O, no clock):
 * medians, paired ratios, a percentile-bootstrap confidence interval of the
 * median paired ratio with a seedable PRNG (the same seed gives the same
 * interval), and the verdict drawn from that interval.
 *
 * Ratios are always `other / huge` (time per op in the other mode divided by
 * time per op on 2 MiB pages, same block): above 1 means the huge-page run
 * was faster.
 *
 * @module
 */

/** What the interval says about the huge-page mode against another mode. */
export type Verdict = "faster" | "slower" | "no difference detected";

/** A confidence interval of the median paired ratio. */
export interface RatioSummary {
  /** Number of pairs. */
  n: number;
  /** Median of the paired ratios. */
  median: number;
  /** Lower bound of the interval. */
  lo: number;
  /** Upper bound of the interval. */
  hi: number;
  /** Confidence level, e.g. 0.95. */
  confidence: number;
  /** Bootstrap resamples drawn. */
  resamples: number;
  /** Seed of the PRNG. */
  seed: number;
  /** `"faster"` when `lo > 1`, `"slower"` when `hi < 1` (and `n >= minPairs`), else no difference. */
  verdict: Verdict;
}

/** Options of {@linkcode bootstrapMedianCI}. */
export interface BootstrapOptions {
  /** Resamples; default 10000. */
  resamples?: number;
  /** Confidence level in (0, 1); default 0.95. */
  confidence?: number;
  /** PRNG seed (an unsigned 32-bit integer); default 1. */
  seed?: number;
}

function checkSample(xs: readonly number[], what: string): void {
  if (xs.length === 0) throw new RangeError(`${what}: empty sample`);
  for (const x of xs) {
    if (!Number.isFinite(x)) {
      throw new RangeError(`${what}: not a finite number: ${x}`);
    }
  }
}

/** Median of an already sorted array (no checks). */
function sortedMedian(s: ArrayLike<number>): number {
  const n = s.length;
  const h = n >> 1;
  return n % 2 === 1 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/**
 * Median; the mean of the two middle values for an even count.
 *
 * @example
 * ```ts
 * import { median } from "./stats.ts";
 * console.log(median([3, 1, 2, 10])); // 2.5
 * ```
 */
export function median(xs: readonly number[]): number {
  checkSample(xs, "median");
  return sortedMedian(Float64Array.from(xs).sort());
}

/**
 * Quantile `p` in [0, 1] by linear interpolation between order statistics
 * (Hyndman-Fan type 7, the default of R and NumPy).
 *
 * @example
 * ```ts
 * import { quantile } from "./stats.ts";
 * console.log(quantile([1, 2, 3, 4, 5], 0.25)); // 2
 * ```
 */
export function quantile(
  xs: readonly number[] | Float64Array,
  p: number,
): number {
  if (!(p >= 0 && p <= 1)) {
    throw new RangeError(`quantile: p=${p} not in [0, 1]`);
  }
  const arr = Array.from(xs);
  checkSample(arr, "quantile");
  const s = Float64Array.from(arr).sort();
  return sortedQuantile(s, p);
}

function sortedQuantile(s: Float64Array, p: number): number {
  const h = (s.length - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  return s[lo] + (h - lo) * (s[hi] - s[lo]);
}

/**
 * Paired ratios `a[i] / b[i]`. Both samples must have the same length and
 * hold positive finite numbers (times).
 *
 * @example
 * ```ts
 * import { pairedRatios } from "./stats.ts";
 * console.log(pairedRatios([2, 3], [1, 2])); // [2, 1.5]
 * ```
 */
export function pairedRatios(
  a: readonly number[],
  b: readonly number[],
): number[] {
  if (a.length !== b.length) {
    throw new RangeError(
      `pairedRatios: samples differ in length (${a.length} and ${b.length})`,
    );
  }
  checkSample(a, "pairedRatios");
  checkSample(b, "pairedRatios");
  return a.map((x, i) => {
    if (!(x > 0) || !(b[i] > 0)) {
      throw new RangeError(
        `pairedRatios: pair ${i} is not positive (${x}, ${b[i]})`,
      );
    }
    return x / b[i];
  });
}

/**
 * A small seedable PRNG (mulberry32): returns a function giving uniform
 * numbers in [0, 1). The same seed always gives the same sequence.
 *
 * @example
 * ```ts
 * import { prng } from "./stats.ts";
 * const r = prng(42);
 * console.log(r() === prng(42)()); // true
 * ```
 */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The fewest pairs that can support a verdict at `confidence`: with n pairs
 * all on the same side of 1, a sign test cannot reject "median 1" unless
 * `2 * 0.5^n <= 1 - confidence` (6 pairs at 95%). Below that the percentile
 * bootstrap interval of a median is an artefact of the few values it can
 * pick from, so no verdict is drawn.
 *
 * @example
 * ```ts
 * import { minPairs } from "./stats.ts";
 * console.log(minPairs(0.95)); // 6
 * ```
 */
export function minPairs(confidence: number): number {
  return Math.ceil(Math.log2(2 / (1 - confidence)) - 1e-9);
}

/**
 * The verdict on the huge-page mode from an interval of `other / huge`
 * ratios: `"faster"` only when the whole interval is above 1, `"slower"`
 * only when it is below 1, otherwise `"no difference detected"`. With `n`
 * pairs fewer than {@linkcode minPairs}, always no difference.
 *
 * @example
 * ```ts
 * import { verdict } from "./stats.ts";
 * console.log(verdict(1.01, 1.04)); // "faster"
 * console.log(verdict(0.99, 1.04)); // "no difference detected"
 * ```
 */
export function verdict(
  lo: number,
  hi: number,
  n = Infinity,
  confidence = 0.95,
): Verdict {
  if (n < minPairs(confidence)) return "no difference detected";
  if (lo > 1) return "faster";
  if (hi < 1) return "slower";
  return "no difference detected";
}

/**
 * Percentile bootstrap confidence interval of the median of `xs`: draw
 * `resamples` samples of the same size with replacement, take each one's
 * median, and return the `(1 - confidence) / 2` and `(1 + confidence) / 2`
 * quantiles of those medians, plus the verdict of that interval against 1.
 *
 * @example
 * ```ts
 * import { bootstrapMedianCI } from "./stats.ts";
 * const ci = bootstrapMedianCI([1.04, 1.05, 1.06, 1.05], { seed: 7 });
 * console.log(ci.lo > 1, ci.verdict); // true "faster"
 * ```
 */
export function bootstrapMedianCI(
  xs: readonly number[],
  options: BootstrapOptions = {},
): RatioSummary {
  checkSample(xs, "bootstrapMedianCI");
  const resamples = options.resamples ?? 10000;
  const confidence = options.confidence ?? 0.95;
  const seed = options.seed ?? 1;
  if (!Number.isInteger(resamples) || resamples < 1) {
    throw new RangeError(
      `bootstrapMedianCI: resamples must be a positive integer; got ${resamples}`,
    );
  }
  if (!(confidence > 0 && confidence < 1)) {
    throw new RangeError(
      `bootstrapMedianCI: confidence must be in (0, 1); got ${confidence}`,
    );
  }
  const n = xs.length;
  const rand = prng(seed);
  const sample = new Float64Array(n);
  const medians = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < n; i++) sample[i] = xs[Math.floor(rand() * n)];
    sample.sort();
    medians[r] = sortedMedian(sample);
  }
  medians.sort();
  const alpha = (1 - confidence) / 2;
  const lo = sortedQuantile(medians, alpha);
  const hi = sortedQuantile(medians, 1 - alpha);
  return {
    n,
    median: median(xs),
    lo,
    hi,
    confidence,
    resamples,
    seed: seed >>> 0,
    verdict: verdict(lo, hi, n, confidence),
  };
}

/**
 * Compares two paired samples of times: ratios `other[i] / huge[i]`, their
 * median and its bootstrap interval, and the verdict on `huge`.
 *
 * @example
 * ```ts
 * import { compare } from "./stats.ts";
 * const c = compare([105, 106, 104], [100, 100, 100], { seed: 1 });
 * console.log(c.verdict); // "faster"
 * ```
 */
export function compare(
  other: readonly number[],
  huge: readonly number[],
  options: BootstrapOptions = {},
): RatioSummary & { ratios: number[] } {
  const ratios = pairedRatios(other, huge);
  return { ...bootstrapMedianCI(ratios, options), ratios };
}
