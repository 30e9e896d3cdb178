// Driver: the same JS workloads in many short processes of node, node
// --use-largepages=on, deno and bun (unprimed and primed with
// prime().remap(true)), interleaved; medians per variant and, per pair, the
// ratio of medians with a bootstrap 95% CI over the repetitions.
//
//   node bench/node/run.mjs [--quick] [--reps N] [...]   (see --help)
import { spawnSync } from "node:child_process";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import {
  fmtRatio,
  machine,
  machineMarkdown,
  mdTable,
  median,
  parseArgs,
  progress,
  progressDone,
  ratioOfMedians,
  RESULTS_DIR,
  runtimePath,
  writeResults,
} from "./common.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));

const HELP = `Usage: node bench/node/run.mjs [options]

Runs bench/node/workloads.mjs (JSON, URL, TextEncoder/Decoder, RegExp,
sha256 via node:crypto, gzip via node:zlib) in fresh processes, interleaved:

  node             node workloads.mjs
  node-largepages  node --use-largepages=on workloads.mjs
  deno             PAGE_PRIMER=off deno run -A primed.ts
  deno-primed      deno run -A primed.ts        (prime().remap(true) first)
  bun              PAGE_PRIMER=off bun primed.ts
  bun-primed       bun primed.ts

Each process times every workload after its own warm-up and reports the
median time per op over its windows. The set is repeated --reps times, in a
rotated order each repetition. Reported: median per variant and workload,
and for node-largepages/node, deno-primed/deno, bun-primed/bun the ratio of
medians (< 1: faster) with a paired bootstrap 95% CI over repetitions, plus
the share of each executable's code on 2 MiB pages (read by each child from
its own /proc/self/smaps).

Options:
  --quick             5 repetitions, short windows (about 1 minute)
  --reps N            repetitions of the interleaved set (default 10)
  --warmup-ms N       warm-up per workload in each process (default 150)
  --window-ms N       length of one timing window (default 100)
  --windows N         windows per workload; their median is reported (default 5)
  --variants a,b      subset of variants (default: all six)
  --only a,b          subset of workloads (json-parse, json-stringify, url,
                      text-codec, regexp, sha256, gzip)
  --bootstrap N       bootstrap resamples (default 10000)
  --seed N            bootstrap seed (default 1)
  --out-dir DIR       where to write node-workloads-<date>.{json,md}
                      (default bench/results)
  --no-write          print the summary only
  --help              this text

Runtimes: $DENO / $BUN, else node_modules/.bin/{deno,bun}; node is the one
running this driver (process.execPath).`;

const spec = {
  quick: { type: "boolean", default: false },
  reps: { type: "number", default: undefined },
  warmupMs: { type: "number", default: undefined },
  windowMs: { type: "number", default: undefined },
  windows: { type: "number", default: undefined },
  variants: { type: "list", default: undefined },
  only: { type: "list", default: [] },
  bootstrap: { type: "number", default: 10000 },
  seed: { type: "number", default: 1 },
  outDir: { type: "string", default: RESULTS_DIR },
  noWrite: { type: "boolean", default: false },
  help: { type: "boolean", default: false },
};

let opts;
try {
  opts = parseArgs(process.argv.slice(2), spec);
} catch (e) {
  console.error(`run.mjs: ${e.message}`);
  process.exit(2);
}
if (opts.help) {
  console.log(HELP);
  process.exit(0);
}
const reps = Math.max(1, Math.round(opts.reps ?? (opts.quick ? 5 : 10)));
const settings = {
  BENCH_WARMUP_MS: String(opts.warmupMs ?? (opts.quick ? 60 : 150)),
  BENCH_WINDOW_MS: String(opts.windowMs ?? (opts.quick ? 40 : 100)),
  BENCH_WINDOWS: String(Math.round(opts.windows ?? (opts.quick ? 3 : 5))),
  BENCH_ONLY: opts.only.join(","),
};

const node = process.execPath;
const deno = runtimePath("deno");
const bun = runtimePath("bun");
const workloads = path.join(HERE, "workloads.mjs");
const primed = path.join(HERE, "primed.ts");
const OFF = { PAGE_PRIMER: "off" };

const ALL = [
  { id: "node", cmd: [node, workloads], env: {} },
  {
    id: "node-largepages",
    cmd: [node, "--use-largepages=on", workloads],
    env: {},
    base: "node",
    huge: true,
  },
  { id: "deno", cmd: [deno, "run", "-A", primed], env: OFF },
  {
    id: "deno-primed",
    cmd: [deno, "run", "-A", primed],
    env: {},
    base: "deno",
    huge: true,
    primed: true,
  },
  { id: "bun", cmd: [bun, primed], env: OFF },
  {
    id: "bun-primed",
    cmd: [bun, primed],
    env: {},
    base: "bun",
    huge: true,
    primed: true,
  },
];
const variants = opts.variants
  ? ALL.filter((v) => opts.variants.includes(v.id))
  : ALL;
if (variants.length === 0) {
  console.error(
    `run.mjs: no variant matches ${opts.variants}; known: ${
      ALL.map((v) => v.id).join(", ")
    }`,
  );
  process.exit(2);
}

/** Runs one child; returns its report or { error }. */
function runChild(v, extraEnv = {}) {
  const t0 = performance.now();
  const env = { ...process.env, ...settings, ...v.env, ...extraEnv };
  if (!v.env.PAGE_PRIMER) delete env.PAGE_PRIMER;
  const r = spawnSync(v.cmd[0], v.cmd.slice(1), {
    env,
    encoding: "utf8",
    timeout: 300_000,
    maxBuffer: 16 << 20,
  });
  const wallMs = performance.now() - t0;
  const stderr = (r.stderr ?? "").trim();
  if (r.error || r.status !== 0) {
    return {
      error: `${v.id}: ${r.error?.message ?? `exit ${r.status ?? r.signal}`}: ${
        stderr.slice(0, 2000)
      }`,
    };
  }
  const line = r.stdout.trim().split("\n").pop();
  let rep;
  try {
    rep = JSON.parse(line);
  } catch {
    return { error: `${v.id}: no JSON on stdout: ${r.stdout.slice(0, 500)}` };
  }
  rep.wallMs = wallMs;
  if (stderr) rep.stderr = stderr.slice(0, 2000);
  return rep;
}

const problems = [];
function check(v, rep) {
  if (rep.error) return rep.error;
  if (v.primed) {
    if (!rep.primer?.ok || rep.primer.disabled) {
      return `${v.id}: prime().remap(true) not ok: ${rep.primer?.reason}`;
    }
  } else if (v.env.PAGE_PRIMER && rep.primer && !rep.primer.disabled) {
    return `${v.id}: expected PAGE_PRIMER=off to disable the remap`;
  }
  if (v.huge && !(rep.coverage?.textHuge > 0)) {
    const msg = `${v.id}: no code on 2 MiB pages (${
      rep.coverage?.error ?? "textHuge 0"
    })${rep.stderr ? `; stderr: ${rep.stderr}` : ""}`;
    if (!problems.includes(msg)) problems.push(msg);
  }
  return null;
}

const m = machine({ benchmark: "node-workloads" });
const tStart = performance.now();

// A discarded round first: fills Deno's module cache and the page cache.
for (const v of variants) {
  progress(`warm-up round: ${v.id}`);
  const rep = runChild(v, {
    BENCH_WARMUP_MS: "5",
    BENCH_WINDOW_MS: "5",
    BENCH_WINDOWS: "1",
  });
  const err = check(v, rep);
  if (err) {
    progressDone();
    console.error(`run.mjs: ${err}`);
    process.exit(1);
  }
}

const runs = []; // { rep, order, variant, report }
for (let r = 0; r < reps; r++) {
  // Rotate the order each repetition and reverse every other one, so no
  // variant always runs first or right after the same neighbour.
  const rot = variants.map((_, i) => variants[(i + r) % variants.length]);
  const order = r % 2 ? rot.reverse() : rot;
  for (let k = 0; k < order.length; k++) {
    const v = order[k];
    progress(
      `rep ${r + 1}/${reps}  ${v.id} (${k + 1}/${order.length})  elapsed ${
        ((performance.now() - tStart) / 1000).toFixed(0)
      } s`,
    );
    const rep = runChild(v);
    const err = check(v, rep);
    if (err) {
      progressDone();
      console.error(`run.mjs: ${err}`);
      process.exit(1);
    }
    runs.push({ rep: r, position: k, variant: v.id, report: rep });
  }
}
progressDone();

// Aggregation ---------------------------------------------------------------

const workloadNames = Object.keys(runs[0].report.workloads);
const series = {}; // variant -> workload -> [ns per op by rep]
for (const v of variants) {
  series[v.id] = {};
  for (const w of [...workloadNames, "geomean"]) {
    series[v.id][w] = new Array(reps).fill(NaN);
  }
}
for (const run of runs) {
  const s = series[run.variant];
  let logSum = 0;
  for (const w of workloadNames) {
    const ns = run.report.workloads[w].nsPerOp;
    s[w][run.rep] = ns;
    logSum += Math.log(ns);
  }
  s.geomean[run.rep] = Math.exp(logSum / workloadNames.length);
}

const medians = {};
for (const v of variants) {
  medians[v.id] = {};
  for (const [w, a] of Object.entries(series[v.id])) {
    medians[v.id][w] = median(a);
  }
}

const pairs = [];
for (const v of variants) {
  if (!v.base || !series[v.base]) continue;
  const byWorkload = {};
  for (const w of [...workloadNames, "geomean"]) {
    byWorkload[w] = ratioOfMedians(series[v.id][w], series[v.base][w], {
      paired: true,
      iterations: opts.bootstrap,
      seed: opts.seed,
    });
  }
  pairs.push({ variant: v.id, base: v.base, ratios: byWorkload });
}

const coverage = {};
for (const v of variants) {
  const reports = runs.filter((r) => r.variant === v.id).map((r) => r.report);
  const frac = reports.map((r) => r.coverage?.fraction ?? NaN);
  const lib = reports.map((r) =>
    r.primer?.text ? r.primer.text.huge / r.primer.text.bytes : NaN
  ).filter(Number.isFinite);
  coverage[v.id] = {
    exe: reports[0].coverage?.exe,
    textBytes: median(reports.map((r) => r.coverage?.textBytes ?? NaN)),
    textHugeMedian: median(reports.map((r) => r.coverage?.textHuge ?? NaN)),
    fractionMedian: median(frac),
    fractionMin: Math.min(...frac),
    fractionMax: Math.max(...frac),
    otherExecBytes: reports[0].coverage?.otherExecBytes ?? 0,
    libraryTextFractionMedian: lib.length ? median(lib) : null,
    remapMsMedian: v.primed
      ? median(reports.map((r) => r.primer?.remapMs ?? NaN))
      : null,
    wallMsMedian: median(reports.map((r) => r.wallMs)),
  };
}

const result = {
  benchmark: "node-workloads",
  machine: m,
  settings: {
    reps,
    quick: opts.quick,
    warmupMs: Number(settings.BENCH_WARMUP_MS),
    windowMs: Number(settings.BENCH_WINDOW_MS),
    windows: Number(settings.BENCH_WINDOWS),
    bootstrap: opts.bootstrap,
    seed: opts.seed,
    variants: Object.fromEntries(
      variants.map((v) => [v.id, {
        cmd: v.cmd.map((c) => path.relative(process.cwd(), c) || c).join(" "),
        env: v.env,
      }]),
    ),
  },
  workloads: Object.fromEntries(
    workloadNames.map((w) => [w, runs[0].report.workloads[w].unit]),
  ),
  medianNsPerOp: medians,
  pairs,
  coverage,
  problems,
  elapsedS: (performance.now() - tStart) / 1000,
  runs: runs.map((r) => ({
    rep: r.rep,
    position: r.position,
    variant: r.variant,
    pid: r.report.pid,
    wallMs: r.report.wallMs,
    nsPerOp: Object.fromEntries(
      workloadNames.map((w) => [w, r.report.workloads[w].nsPerOp]),
    ),
    coverage: r.report.coverage,
    primer: r.report.primer,
    stderr: r.report.stderr,
  })),
};

// Summary -------------------------------------------------------------------

const us = (ns) => (ns / 1000).toFixed(ns < 100_000 ? 1 : 0);
const pct = (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : "n/a");
const md = [
  `# JS workloads: node / node --use-largepages / deno / bun, primed or not`,
  "",
  ...machineMarkdown(m),
  `- ${reps} repetitions of the interleaved set (rotated order); per process: warm-up ${settings.BENCH_WARMUP_MS} ms, then median of ${settings.BENCH_WINDOWS} windows of ${settings.BENCH_WINDOW_MS} ms per workload${
    opts.quick ? " (--quick)" : ""
  }`,
  `- took ${result.elapsedS.toFixed(0)} s`,
  "",
  "## Median time per op (µs)",
  "",
  ...mdTable(
    ["workload", ...variants.map((v) => v.id)],
    [...workloadNames, "geomean"].map((w) => [
      w,
      ...variants.map((v) => us(medians[v.id][w])),
    ]),
  ),
  "",
  "## Ratio of medians (primed or largepages / plain; < 1 is faster), paired bootstrap 95% CI",
  "",
  ...mdTable(
    ["workload", ...pairs.map((p) => `${p.variant} / ${p.base}`)],
    [...workloadNames, "geomean"].map((w) => [
      w,
      ...pairs.map((p) => fmtRatio(p.ratios[w])),
    ]),
  ),
  "",
  "## Executable code on 2 MiB pages (each child's /proc/self/smaps)",
  "",
  ...mdTable(
    [
      "variant",
      "r-x MiB",
      "on 2 MiB pages (median)",
      "min",
      "max",
      "page-primer's own text figure",
      "remap ms",
      "process wall ms",
    ],
    variants.map((v) => {
      const c = coverage[v.id];
      return [
        v.id,
        (c.textBytes / 2 ** 20).toFixed(1),
        pct(c.fractionMedian),
        pct(c.fractionMin),
        pct(c.fractionMax),
        c.libraryTextFractionMedian === null
          ? "-"
          : pct(c.libraryTextFractionMedian),
        c.remapMsMedian === null ? "-" : c.remapMsMedian.toFixed(0),
        c.wallMsMedian.toFixed(0),
      ];
    }),
  ),
  "",
  ...(coverage.deno?.otherExecBytes
    ? [
      `Deno also maps ${
        (coverage.deno.otherExecBytes / 2 ** 20).toFixed(1)
      } MiB of its file a second time, executable, outside its image (V8's embedded builtins); that mapping is not counted above and stays on 4 KiB pages.`,
      "",
    ]
    : []),
  ...(problems.length
    ? ["## Problems", "", ...problems.map((p) => `- ${p}`), ""]
    : []),
];
const markdown = md.join("\n");
if (!opts.noWrite) {
  const files = writeResults("node-workloads", result, markdown, opts.outDir);
  console.log(markdown);
  console.log(`\nwrote ${files.json}\nwrote ${files.md}`);
} else {
  console.log(markdown);
}
