// Parser speed: `deno bench bench/parse_bench.ts` (Deno) or
// `bun bench/parse_bench.ts` (prints a median over 30 runs).
import { readFileSync } from "node:fs";
import { parseSmaps } from "../src/sys/maps.ts";

const one = readFileSync(
  new URL("../tests/fixtures/maps/deno_smaps.txt", import.meta.url),
  "utf8",
);
const big = one.repeat(Math.ceil(2_000_000 / one.length));

const g = globalThis as {
  Deno?: { bench?: (n: string, f: () => void) => void };
};
if (g.Deno?.bench) {
  g.Deno.bench("parseSmaps 2 MB", () => {
    parseSmaps(big);
  });
} else {
  const times: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    parseSmaps(big);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  console.log(
    `parseSmaps 2 MB: median ${times[15].toFixed(2)} ms over 30 runs`,
  );
}
