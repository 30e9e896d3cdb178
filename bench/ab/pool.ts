/**
 * Pools the paired ratios of several runs of bench/ab/run.ts (JSON files
 * of one runtime, or of several: grouped by runtime) into one median and
 * bootstrap interval per workload and comparison, and prints a Markdown
 * table. Each run's ratios are paired within that run, so pooling keeps
 * the pairing; the runs themselves are listed with their own medians.
 *
 *   deno run --allow-read bench/ab/pool.ts FILE.json...
 *   bun bench/ab/pool.ts FILE.json...
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import {
  type AbResult,
  comparisonKey,
  formatRatio,
  formatRatioValue,
  modesOf,
  type OtherMode,
  SCHEMA,
} from "./report.ts";
import { bootstrapMedianCI } from "./stats.ts";

/** One pooled comparison. */
interface Pooled {
  runtime: string;
  workload: string;
  mode: OtherMode;
  runs: number[];
  ratios: number[];
}

function pool(results: readonly AbResult[]): Pooled[] {
  const out: Pooled[] = [];
  for (const r of results) {
    for (const w of r.workloads) {
      for (const m of modesOf(r)) {
        if (m === "huge") continue;
        const c = w[comparisonKey(m)];
        if (!c) continue;
        let p = out.find((x) =>
          x.runtime === r.runtime.name && x.workload === w.name && x.mode === m
        );
        if (!p) {
          p = {
            runtime: r.runtime.name,
            workload: w.name,
            mode: m,
            runs: [],
            ratios: [],
          };
          out.push(p);
        }
        p.runs.push(c.median);
        p.ratios.push(...c.ratios);
      }
    }
  }
  return out;
}

function main(): void {
  const files = process.argv.slice(2);
  if (files.length === 0 || files.includes("-h") || files.includes("--help")) {
    console.log(
      "usage: bench/ab/pool.ts FILE.json...\nPools the paired ratios of several A/B runs per runtime, workload and comparison.",
    );
    return;
  }
  const results = files.map((f) => {
    const r = JSON.parse(readFileSync(f, "utf8")) as AbResult;
    if (r.schema !== SCHEMA) {
      throw new Error(`${f}: not an A/B result (schema ${r.schema})`);
    }
    return r;
  });
  const lines = [
    "| runtime | workload | ratio | runs' medians | pooled median [95% CI] | pairs | verdict |",
    "| --- | --- | --- | --- | --- | ---: | --- |",
  ];
  for (const p of pool(results)) {
    const ci = bootstrapMedianCI(p.ratios, { seed: 1, resamples: 10000 });
    lines.push(
      `| ${p.runtime} | ${p.workload} | ${p.mode}/huge | ${
        p.runs.map(formatRatioValue).join(", ")
      } | ${formatRatio(ci)} | ${ci.n} | ${ci.verdict} |`,
    );
  }
  console.log(lines.join("\n"));
}

if (import.meta.main) {
  try {
    main();
  } catch (e) {
    console.error(`bench/ab/pool: ${(e as Error).message}`);
    process.exit(1);
  }
}
