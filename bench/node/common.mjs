// Helpers shared by the benchmark drivers under bench/node, bench/pressure
// and bench/wrk (all run with node): machine description, statistics
// (median, percentiles, bootstrap CI of a ratio of medians), result files and
// TTY-only progress.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The repository root (two levels above this file). */
export const ROOT = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
);

/** Where results go: bench/results/. */
export const RESULTS_DIR = path.join(ROOT, "bench", "results");

function readText(file) {
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch {
    return null;
  }
}

/** The selected value of a sysfs choice file such as "always [madvise] never". */
function selected(text) {
  if (text === null) return null;
  const m = /\[([^\]]+)\]/.exec(text);
  return m ? m[1] : text;
}

/** Path of a runtime: $DENO / $BUN, else node_modules/.bin, else PATH. */
export function runtimePath(name) {
  const env = process.env[name.toUpperCase()];
  if (env) return env;
  const local = path.join(ROOT, "node_modules", ".bin", name);
  if (fs.existsSync(local)) return local;
  return name;
}

function versionOf(cmd, args) {
  try {
    return execFileSync(cmd, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).split("\n")[0].trim();
  } catch {
    return null;
  }
}

/**
 * What the numbers were measured on: CPU model, cores, memory, kernel, THP
 * settings, runtime versions, cgroup layout.
 */
export function machine(extra = {}) {
  const cpuinfo = readText("/proc/cpuinfo") ?? "";
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? null;
  const thp = "/sys/kernel/mm/transparent_hugepage";
  const enabled = readText(`${thp}/enabled`);
  const defrag = readText(`${thp}/defrag`);
  const shmem = readText(`${thp}/shmem_enabled`);
  const khuge = readText(`${thp}/khugepaged/defrag`);
  const cgroupV1Memory = fs.existsSync("/sys/fs/cgroup/memory/memory.stat") ||
    fs.existsSync("/sys/fs/cgroup/memory/cgroup.procs");
  const cgroupV2 = fs.existsSync("/sys/fs/cgroup/cgroup.controllers");
  return {
    date: new Date().toISOString(),
    hostname: os.hostname(),
    cpuModel: model,
    cpus: os.cpus().length,
    memTotalMiB: Math.round(os.totalmem() / 2 ** 20),
    kernel: os.release(),
    thp: {
      enabled: selected(enabled),
      defrag: selected(defrag),
      enabledRaw: enabled,
      defragRaw: defrag,
      shmemEnabled: selected(shmem),
      khugepagedDefrag: khuge,
    },
    swapTotalKiB: Number(
      /^SwapTotal:\s+(\d+)/m.exec(readText("/proc/meminfo") ?? "")?.[1] ?? 0,
    ),
    cgroup: cgroupV1Memory ? "v1 memory" : cgroupV2 ? "v2" : "none found",
    user: typeof process.getuid === "function" ? process.getuid() : null,
    runtimes: {
      node: process.version,
      deno: versionOf(runtimePath("deno"), ["--version"]),
      bun: versionOf(runtimePath("bun"), ["--version"]),
    },
    ...extra,
  };
}

/** Median (mean of the two middle values for an even count). */
export function median(values) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Percentile by linear interpolation, p in [0, 100]. */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const r = (p / 100) * (s.length - 1);
  const lo = Math.floor(r);
  const hi = Math.ceil(r);
  return s[lo] + (s[hi] - s[lo]) * (r - lo);
}

/** Percentile of an already sorted array (no copy). */
export function percentileSorted(s, p) {
  if (s.length === 0) return NaN;
  const r = (p / 100) * (s.length - 1);
  const lo = Math.floor(r);
  const hi = Math.ceil(r);
  return s[lo] + (s[hi] - s[lo]) * (r - lo);
}

/** A small seeded PRNG (mulberry32), so bootstrap CIs are reproducible. */
export function rng(seed) {
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
 * Ratio of medians median(a) / median(b) with a percentile bootstrap 95% CI.
 * `paired`: a[i] and b[i] come from the same repetition (interleaved), so a
 * resample draws repetitions, keeping each pair together; otherwise a and b
 * are resampled independently.
 */
export function ratioOfMedians(
  a,
  b,
  { paired = true, iterations = 10000, seed = 1 } = {},
) {
  const ratio = median(a) / median(b);
  const n = a.length;
  const m = b.length;
  if (n < 2 || m < 2 || (paired && n !== m)) {
    return { ratio, lo: NaN, hi: NaN, n, iterations: 0, paired };
  }
  const rand = rng(seed);
  const ra = new Array(n);
  const rb = new Array(m);
  const out = new Float64Array(iterations);
  for (let k = 0; k < iterations; k++) {
    for (let i = 0; i < n; i++) {
      const j = Math.floor(rand() * n);
      ra[i] = a[j];
      if (paired) rb[i] = b[j];
    }
    if (!paired) {
      for (let i = 0; i < m; i++) rb[i] = b[Math.floor(rand() * m)];
    }
    out[k] = median(ra) / median(rb);
  }
  out.sort();
  return {
    ratio,
    lo: percentileSorted(out, 2.5),
    hi: percentileSorted(out, 97.5),
    n,
    iterations,
    paired,
  };
}

/** "1.023 [0.998, 1.051]" */
export function fmtRatio(r, digits = 3) {
  if (!Number.isFinite(r.ratio)) return "n/a";
  const ci = Number.isFinite(r.lo)
    ? ` [${r.lo.toFixed(digits)}, ${r.hi.toFixed(digits)}]`
    : "";
  return `${r.ratio.toFixed(digits)}${ci}`;
}

/** Today as YYYY-MM-DD (local time). */
export function today() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/**
 * Writes bench/results/<name>-<YYYY-MM-DD>.json and .md; returns the paths.
 * `dir` overrides the directory.
 */
export function writeResults(name, data, markdown, dir = RESULTS_DIR) {
  fs.mkdirSync(dir, { recursive: true });
  const base = path.join(dir, `${name}-${today()}`);
  fs.writeFileSync(`${base}.json`, JSON.stringify(data, null, 2) + "\n");
  fs.writeFileSync(
    `${base}.md`,
    markdown.endsWith("\n") ? markdown : markdown + "\n",
  );
  return { json: `${base}.json`, md: `${base}.md` };
}

/** Markdown lines describing the machine. */
export function machineMarkdown(m) {
  return [
    `- machine: ${
      m.cpuModel ?? "?"
    }, ${m.cpus} CPUs, ${m.memTotalMiB} MiB, swap ${m.swapTotalKiB} KiB`,
    `- kernel ${m.kernel}; THP enabled=${m.thp.enabled}, defrag=${m.thp.defrag}`,
    `- node ${m.runtimes.node}, ${m.runtimes.deno ?? "deno ?"}, bun ${
      m.runtimes.bun ?? "?"
    }`,
    `- date ${m.date}`,
  ];
}

/** A Markdown table from a header row and rows. */
export function mdTable(header, rows) {
  const line = (cells) => `| ${cells.join(" | ")} |`;
  return [
    line(header),
    line(header.map(() => "---")),
    ...rows.map(line),
  ];
}

const tty = process.stderr.isTTY === true;

/** One progress line on stderr, only when stderr is a terminal. */
export function progress(msg) {
  if (!tty) return;
  const cols = process.stderr.columns || 100;
  process.stderr.write(`\r\x1b[2K${msg.slice(0, cols - 1)}`);
}

/** Ends the progress line (TTY only). */
export function progressDone() {
  if (tty) process.stderr.write("\r\x1b[2K");
}

/** Parses --flag value / --flag=value / --bool arguments against a spec. */
export function parseArgs(argv, spec) {
  const out = {};
  for (const [k, v] of Object.entries(spec)) out[k] = v.default;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) {
      throw new Error(`unexpected argument ${arg} (try --help)`);
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const key = name.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    const s = spec[key];
    if (!s) throw new Error(`unknown option --${name} (try --help)`);
    if (s.type === "boolean") {
      out[key] = eq < 0 ? true : !/^(0|false|no)$/i.test(arg.slice(eq + 1));
      continue;
    }
    const raw = eq < 0 ? argv[++i] : arg.slice(eq + 1);
    if (raw === undefined) throw new Error(`--${name} needs a value`);
    if (s.type === "number") {
      const n = Number(raw);
      if (!Number.isFinite(n) || n < 0) {
        throw new Error(`--${name} needs a non-negative number; got ${raw}`);
      }
      out[key] = n;
    } else if (s.type === "list") {
      out[key] = raw.split(",").map((x) => x.trim()).filter(Boolean);
    } else {
      out[key] = raw;
    }
  }
  return out;
}
