// The A/B benchmark's statistics (bench/ab/stats.ts) on synthetic data whose
// answer is known: medians, paired ratios, the seedable PRNG, the bootstrap
// interval of the median ratio and the verdict drawn from it.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  bootstrapMedianCI,
  compare,
  median,
  minPairs,
  pairedRatios,
  prng,
  quantile,
  verdict,
} from "../bench/ab/stats.ts";

/** n numbers from a log-normal distribution with the given median, seeded. */
function logNormal(n: number, med: number, sigma: number, seed: number) {
  const r = prng(seed);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    // Box-Muller; 1 - r() is in (0, 1], so the log is finite.
    const z = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
    out.push(med * Math.exp(sigma * z));
  }
  return out;
}

test("median: odd and even counts, unsorted input left unchanged", () => {
  assert.equal(median([5]), 5);
  assert.equal(median([3, 1, 2]), 2);
  const xs = [10, 3, 1, 2];
  assert.equal(median(xs), 2.5);
  assert.deepEqual(xs, [10, 3, 1, 2]);
  assert.equal(median([-1, -3, -2]), -2);
});

test("median: an empty or non-finite sample is refused", () => {
  assert.throws(() => median([]), RangeError);
  assert.throws(() => median([1, NaN]), RangeError);
  assert.throws(() => median([1, Infinity]), RangeError);
});

test("quantile: linear interpolation between order statistics", () => {
  const xs = [5, 1, 4, 2, 3];
  assert.equal(quantile(xs, 0), 1);
  assert.equal(quantile(xs, 1), 5);
  assert.equal(quantile(xs, 0.5), 3);
  assert.equal(quantile(xs, 0.25), 2);
  assert.equal(quantile([1, 2], 0.5), 1.5);
  assert.ok(Math.abs(quantile([0, 10], 0.975) - 9.75) < 1e-12);
  assert.throws(() => quantile(xs, 1.5), RangeError);
  assert.throws(() => quantile([], 0.5), RangeError);
});

test("pairedRatios: element-wise a/b; length mismatch and non-positive refused", () => {
  assert.deepEqual(pairedRatios([2, 3, 10], [1, 2, 4]), [2, 1.5, 2.5]);
  assert.throws(() => pairedRatios([1, 2], [1]), /differ in length/);
  assert.throws(() => pairedRatios([1, 0], [1, 1]), /pair 1/);
  assert.throws(() => pairedRatios([1, 1], [1, -1]), /pair 1/);
  assert.throws(() => pairedRatios([], []), RangeError);
});

test("prng: same seed same sequence, different seed different, uniform in [0, 1)", () => {
  const a = prng(123);
  const b = prng(123);
  const c = prng(124);
  const sa = Array.from({ length: 20 }, a);
  assert.deepEqual(Array.from({ length: 20 }, b), sa);
  assert.notDeepEqual(Array.from({ length: 20 }, c), sa);
  const r = prng(7);
  let sum = 0;
  let min = 1;
  let max = 0;
  const bins = new Array(10).fill(0);
  const N = 100000;
  for (let i = 0; i < N; i++) {
    const x = r();
    assert.ok(x >= 0 && x < 1, `out of range: ${x}`);
    sum += x;
    min = Math.min(min, x);
    max = Math.max(max, x);
    bins[Math.floor(x * 10)]++;
  }
  assert.ok(Math.abs(sum / N - 0.5) < 0.01, `mean ${sum / N}`);
  assert.ok(min < 0.001 && max > 0.999);
  for (const n of bins) {
    assert.ok(Math.abs(n - N / 10) < N / 100, `bins ${bins}`);
  }
});

test("verdict: only an interval that excludes 1 gives a direction", () => {
  assert.equal(verdict(1.01, 1.2), "faster");
  assert.equal(verdict(0.8, 0.99), "slower");
  assert.equal(verdict(0.99, 1.01), "no difference detected");
  assert.equal(verdict(1, 1.1), "no difference detected");
  assert.equal(verdict(0.9, 1), "no difference detected");
});

test("verdict: too few pairs for the confidence level never give a direction", () => {
  assert.equal(minPairs(0.95), 6);
  assert.equal(minPairs(0.99), 8);
  assert.equal(minPairs(0.5), 2);
  assert.equal(verdict(1.01, 1.2, 5), "no difference detected");
  assert.equal(verdict(1.01, 1.2, 6), "faster");
  assert.equal(verdict(0.8, 0.9, 7, 0.99), "no difference detected");
  assert.equal(verdict(0.8, 0.9, 8, 0.99), "slower");
  const five = bootstrapMedianCI([1.05, 1.06, 1.04, 1.05, 1.07], { seed: 1 });
  assert.ok(five.lo > 1);
  assert.equal(five.verdict, "no difference detected");
  assert.equal(
    bootstrapMedianCI([1.05, 1.06, 1.04, 1.05, 1.07, 1.05], { seed: 1 })
      .verdict,
    "faster",
  );
});

test("bootstrap: all ratios 1.05 gives [1.05, 1.05], which excludes 1: faster", () => {
  const ci = bootstrapMedianCI(new Array(30).fill(1.05), { seed: 1 });
  assert.equal(ci.n, 30);
  assert.equal(ci.median, 1.05);
  assert.equal(ci.lo, 1.05);
  assert.equal(ci.hi, 1.05);
  assert.equal(ci.verdict, "faster");
  const slow = bootstrapMedianCI(new Array(30).fill(0.95), { seed: 1 });
  assert.equal(slow.verdict, "slower");
});

test("bootstrap: symmetric noise around 1 gives an interval containing 1", () => {
  // 1 ± 0.01·k for k = 1..15: median exactly 1.
  const xs: number[] = [];
  for (let k = 1; k <= 15; k++) xs.push(1 + 0.01 * k, 1 - 0.01 * k);
  const ci = bootstrapMedianCI(xs, { seed: 99 });
  assert.ok(Math.abs(ci.median - 1) < 1e-12);
  assert.ok(ci.lo < 1 && ci.hi > 1, `[${ci.lo}, ${ci.hi}]`);
  assert.ok(ci.lo > 0.9 && ci.hi < 1.1, `[${ci.lo}, ${ci.hi}] too wide`);
  assert.equal(ci.verdict, "no difference detected");
});

test("bootstrap: a 5% shift with 1% noise is detected, in both directions", () => {
  const up = logNormal(30, 1.05, 0.01, 3);
  const ci = bootstrapMedianCI(up, { seed: 5 });
  assert.ok(ci.lo > 1.03 && ci.hi < 1.07, `[${ci.lo}, ${ci.hi}]`);
  assert.equal(ci.verdict, "faster");
  const down = logNormal(30, 1 / 1.05, 0.01, 4);
  assert.equal(bootstrapMedianCI(down, { seed: 5 }).verdict, "slower");
});

test("bootstrap: the interval holds the sample median and lo <= hi", () => {
  for (let seed = 1; seed <= 20; seed++) {
    const xs = logNormal(15 + seed, 1, 0.1, seed);
    const ci = bootstrapMedianCI(xs, { seed, resamples: 2000 });
    assert.ok(ci.lo <= ci.median && ci.median <= ci.hi, JSON.stringify(ci));
    assert.ok(ci.lo >= Math.min(...xs) && ci.hi <= Math.max(...xs));
  }
});

test("bootstrap: the same seed gives the same interval; another seed a close one", () => {
  const xs = logNormal(30, 1.02, 0.05, 11);
  const a = bootstrapMedianCI(xs, { seed: 42 });
  const b = bootstrapMedianCI(xs, { seed: 42 });
  assert.deepEqual(a, b);
  const c = bootstrapMedianCI(xs, { seed: 43 });
  assert.equal(c.median, a.median);
  assert.ok(Math.abs(c.lo - a.lo) < 0.01 && Math.abs(c.hi - a.hi) < 0.01);
});

test("bootstrap: more noise or more confidence widens the interval", () => {
  const quiet = bootstrapMedianCI(logNormal(30, 1, 0.01, 8), { seed: 1 });
  const noisy = bootstrapMedianCI(logNormal(30, 1, 0.1, 8), { seed: 1 });
  assert.ok(noisy.hi - noisy.lo > 5 * (quiet.hi - quiet.lo));
  const xs = logNormal(30, 1, 0.05, 9);
  const c50 = bootstrapMedianCI(xs, { seed: 1, confidence: 0.5 });
  const c99 = bootstrapMedianCI(xs, { seed: 1, confidence: 0.99 });
  assert.ok(c99.lo < c50.lo && c99.hi > c50.hi);
});

test("bootstrap: the 95% interval covers the true median about 95% of the time", () => {
  // 300 synthetic experiments of 31 log-normal ratios with a known median.
  const truth = 1.02;
  let covered = 0;
  let falseAlarms = 0;
  const trials = 300;
  for (let t = 0; t < trials; t++) {
    const xs = logNormal(31, truth, 0.05, 1000 + t);
    const ci = bootstrapMedianCI(xs, { seed: t, resamples: 1000 });
    if (ci.lo <= truth && truth <= ci.hi) covered++;
    // Same noise around 1: a verdict other than "no difference" is a false alarm.
    const null1 = xs.map((x) => x / truth);
    if (
      bootstrapMedianCI(null1, { seed: t, resamples: 1000 }).verdict !==
        "no difference detected"
    ) {
      falseAlarms++;
    }
  }
  const rate = covered / trials;
  assert.ok(rate > 0.88 && rate < 0.995, `coverage ${rate}`);
  assert.ok(
    falseAlarms / trials < 0.12,
    `false alarms ${falseAlarms}/${trials}`,
  );
});

test("bootstrap: bad options and samples are refused", () => {
  assert.throws(() => bootstrapMedianCI([]), RangeError);
  assert.throws(() => bootstrapMedianCI([1, NaN]), RangeError);
  assert.throws(() => bootstrapMedianCI([1], { resamples: 0 }), RangeError);
  assert.throws(() => bootstrapMedianCI([1], { resamples: 1.5 }), RangeError);
  assert.throws(() => bootstrapMedianCI([1], { confidence: 1 }), RangeError);
  assert.throws(() => bootstrapMedianCI([1], { confidence: 0 }), RangeError);
});

test("compare: ratios other/huge with interval and verdict", () => {
  const huge = [100, 200, 100, 50, 80, 120];
  const small = [110, 220, 110, 55, 88, 132];
  const c = compare(small, huge, { seed: 3 });
  assert.equal(c.ratios.length, 6);
  for (const r of c.ratios) assert.ok(Math.abs(r - 1.1) < 1e-12, `${r}`);
  assert.ok(Math.abs(c.median - 1.1) < 1e-12);
  assert.equal(c.verdict, "faster");
  assert.equal(compare(huge, small, { seed: 3 }).verdict, "slower");
  assert.equal(compare(huge, huge).verdict, "no difference detected");
});
