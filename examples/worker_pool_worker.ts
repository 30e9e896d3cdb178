/**
 * The worker of examples/worker_pool.ts. It first inspects the process it
 * runs in (`prime().run()` with no action, from this worker's own thread)
 * and reports how much of the executable's code is on 2 MiB pages; then it
 * counts primes in the ranges it is sent.
 *
 * Messages in: `{ lo, hi }` (count primes in [lo, hi)). Messages out:
 * `{ ready: true, textBytes, textHuge }` once, then `{ lo, hi, count }`
 * per range.
 *
 * @module
 */
import { prime } from "../mod.ts";

/** Counts primes in [lo, hi) with a segmented sieve. */
function countPrimes(lo: number, hi: number): number {
  const from = Math.max(lo, 2);
  if (hi <= from) return 0;
  const root = Math.floor(Math.sqrt(hi - 1));
  const small = new Uint8Array(root + 1);
  const base: number[] = [];
  for (let i = 2; i <= root; i++) {
    if (small[i]) continue;
    base.push(i);
    for (let j = i * i; j <= root; j += i) small[j] = 1;
  }
  const composite = new Uint8Array(hi - from);
  for (const p of base) {
    let start = Math.max(p * p, Math.ceil(from / p) * p);
    for (; start < hi; start += p) composite[start - from] = 1;
  }
  let n = 0;
  for (let i = 0; i < composite.length; i++) if (!composite[i]) n++;
  return n;
}

const scope = globalThis as unknown as {
  postMessage(message: unknown): void;
  onmessage: ((e: MessageEvent) => void) | null;
};

const seen = prime().run();
const text = seen.segments.filter((s) =>
  s.kind === "text" && s.origin === "load"
);
scope.postMessage({
  ready: true,
  ok: seen.ok,
  reason: seen.reason,
  textBytes: text.reduce((n, s) => n + s.bytes, 0),
  textHuge: text.reduce((n, s) => n + s.huge, 0),
});

scope.onmessage = (e: MessageEvent) => {
  const { lo, hi } = e.data as { lo: number; hi: number };
  scope.postMessage({ lo, hi, count: countPrimes(lo, hi) });
};
