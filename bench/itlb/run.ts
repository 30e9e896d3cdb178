/**
 * The physical limit of 2 MiB code pages on this machine: compiles
 * bench/itlb/itlb.c with gcc into a temporary directory, runs each variant
 * (calls to functions spread one per 4 KiB page over N MiB of code, on
 * 2 MiB and on 4 KiB pages; see itlb.c), and writes the paired ratios with
 * their bootstrap intervals to `<out>/itlb.json` and `<out>/itlb.md`, the
 * table also on stdout. See bench/itlb/README.md.
 *
 *   deno run -A bench/itlb/run.ts [options]
 *   bun bench/itlb/run.ts [options]
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { formatRatio } from "../ab/report.ts";
import { compare, median, type RatioSummary } from "../ab/stats.ts";

/** Identifies the JSON format. */
const ITLB_SCHEMA = "page-primer/bench-itlb/1";

/** The variants of itlb.c, in the order they run. */
const VARIANTS = ["call", "syscall", "pingpong", "shootdown"] as const;

/** What happens once per call besides the call (see itlb.c). */
type Variant = typeof VARIANTS[number];

const DESCRIPTIONS: Record<Variant, string> = {
  call: "the call only (instruction fetch from the spread code)",
  syscall: "one getppid() system call per call",
  pingpong:
    "a futex round trip per call with a second thread, which also calls a function of the spread code",
  shootdown:
    "the call only, while a second thread maps, touches and unmaps a page in a loop (TLB shootdowns)",
};

const DEFAULT_SIZES = [1, 2, 4, 8, 16, 64, 256];

const HELP = `usage: bench/itlb/run.ts [options]

Compiles bench/itlb/itlb.c (gcc), times calls to functions spread one per
4 KiB page over N MiB of code on 2 MiB and on 4 KiB pages, and writes
itlb.json and itlb.md.

  --reps N          paired repetitions per size (default 16, even)
  --sizes a,b       code sizes in MiB, fractions too: 0.25 (default ${
  DEFAULT_SIZES.join(",")
})
  --variants a,b    ${VARIANTS.join(",")} (default all)
  --out DIR         results directory (default bench/results/latest)
  --seed N          bootstrap PRNG seed (default 1)
  --resamples N     bootstrap resamples (default 10000)
  -h, --help        this text`;

/** One size of one variant, as itlb.c prints it. */
interface RawSize {
  mib: number;
  pages: number;
  calls: number;
  hugeAnonHugeKiB: number;
  smallAnonHugeKiB: number;
  hugeAnonHugeKiBAfter: number;
  smallAnonHugeKiBAfter: number;
  samples: { hugeNs: number; smallNs: number; hugeFirst: boolean }[];
}

/** One size of one variant, summarised. */
export interface SizeResult {
  /** Code spread, MiB. */
  mib: number;
  /** Functions (one per 4 KiB page). */
  pages: number;
  /** Calls per timed sample. */
  calls: number;
  /** Bytes of the 2 MiB-page region on 2 MiB pages (smaps), before and after. */
  hugeOn2M: [number, number];
  /** Bytes of the 4 KiB-page region on 2 MiB pages (must be 0), before and after. */
  smallOn2M: [number, number];
  /** Median ns per call on 2 MiB pages. */
  hugeNs: number;
  /** Median ns per call on 4 KiB pages. */
  smallNs: number;
  /** small / huge, paired per repetition, with its interval. */
  smallOverHuge: RatioSummary & { ratios: number[] };
  /** Every sample, ns per call. */
  samples: RawSize["samples"];
}

/** The whole result. */
export interface ItlbResult {
  schema: string;
  machine: { cpu: string; cpus: number; kernel: string; thp: string };
  compiler: string;
  started: string;
  seconds: number;
  options: { reps: number; sizes: number[]; seed: number; resamples: number };
  variants: { name: Variant; description: string; sizes: SizeResult[] }[];
}

function listOf<T extends string>(
  v: string | undefined,
  all: readonly T[],
  what: string,
): T[] {
  if (v === undefined) return [...all];
  const xs = v.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const x of xs) {
    if (!all.includes(x as T)) {
      throw new RangeError(
        `--${what}: unknown ${JSON.stringify(x)}; known: ${all.join(", ")}`,
      );
    }
  }
  return xs as T[];
}

function positive(v: string | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`--${what} must be a positive integer; got ${v}`);
  }
  return n;
}

/** A code spread in MiB: a positive number of whole 4 KiB pages. */
function sizeMiB(v: string): number {
  const n = Number(v);
  if (!(n > 0) || !Number.isInteger(n * 256)) {
    throw new RangeError(
      `--sizes: ${
        JSON.stringify(v)
      } is not a positive number of MiB in whole 4 KiB pages (e.g. 0.25, 1, 64)`,
    );
  }
  return n;
}

function readOr(path: string, dflt: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return dflt;
  }
}

function machine(): ItlbResult["machine"] {
  const cpuinfo = readOr("/proc/cpuinfo", "");
  return {
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1].trim() ?? "unknown",
    cpus: (cpuinfo.match(/^processor\s*:/gm) ?? []).length,
    kernel: readOr("/proc/sys/kernel/osrelease", "unknown").trim(),
    thp: readOr("/sys/kernel/mm/transparent_hugepage/enabled", "unknown")
      .trim(),
  };
}

/** Summarises one size; throws when the page sizes were not as intended. */
function summarise(
  raw: RawSize,
  boot: { seed: number; resamples: number },
): SizeResult {
  const mapped = Math.ceil(raw.pages / 512) * 2 * 1024 * 1024;
  const hugeOn2M: [number, number] = [
    raw.hugeAnonHugeKiB * 1024,
    raw.hugeAnonHugeKiBAfter * 1024,
  ];
  const smallOn2M: [number, number] = [
    raw.smallAnonHugeKiB * 1024,
    raw.smallAnonHugeKiBAfter * 1024,
  ];
  if (hugeOn2M.some((b) => b < mapped)) {
    throw new Error(
      `${raw.mib} MiB: the 2 MiB-page region had only ${hugeOn2M} of ${mapped} bytes on 2 MiB pages (THP off or memory fragmented?); see bench/itlb/README.md`,
    );
  }
  if (smallOn2M.some((b) => b !== 0)) {
    throw new Error(
      `${raw.mib} MiB: the 4 KiB-page region had ${smallOn2M} bytes on 2 MiB pages`,
    );
  }
  const huge = raw.samples.map((s) => s.hugeNs);
  const small = raw.samples.map((s) => s.smallNs);
  return {
    mib: raw.mib,
    pages: raw.pages,
    calls: raw.calls,
    hugeOn2M,
    smallOn2M,
    hugeNs: median(huge),
    smallNs: median(small),
    smallOverHuge: compare(small, huge, { ...boot, confidence: 0.95 }),
    samples: raw.samples,
  };
}

function ns(v: number): string {
  return v >= 1000 ? v.toFixed(0) : v >= 100 ? v.toFixed(1) : v.toFixed(2);
}

/** The Markdown table of a result. */
function renderItlb(r: ItlbResult): string {
  const m = r.machine;
  const lines = [
    `# Code on 2 MiB vs 4 KiB pages: ns per call, ${r.started.slice(0, 10)}`,
    "",
    `- machine: ${m.cpu}, ${m.cpus} CPUs, Linux ${m.kernel}, THP ${m.thp}; ${r.compiler}`,
    `- ${r.options.reps} paired repetitions per size (huge and small alternate first); median ns per call; small/huge = median paired ratio [95% percentile-bootstrap interval] (above 1: 2 MiB pages faster)`,
    "",
    "| variant | code spread | 2 MiB pages ns/call | 4 KiB pages ns/call | small/huge [95% CI] | verdict |",
    "| --- | ---: | ---: | ---: | --- | --- |",
  ];
  for (const v of r.variants) {
    for (const s of v.sizes) {
      lines.push(
        `| ${v.name} | ${s.mib} MiB | ${ns(s.hugeNs)} | ${ns(s.smallNs)} | ${
          formatRatio(s.smallOverHuge)
        } | ${s.smallOverHuge.verdict} |`,
      );
    }
  }
  lines.push(
    "",
    ...r.variants.map((v) => `- ${v.name}: ${v.description}`),
    "",
  );
  return lines.join("\n");
}

function main(): void {
  const { values: v } = parseArgs({
    args: process.argv.slice(2),
    options: {
      reps: { type: "string" },
      sizes: { type: "string" },
      variants: { type: "string" },
      out: { type: "string" },
      seed: { type: "string" },
      resamples: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (v.help) {
    console.log(HELP);
    return;
  }
  let reps = positive(v.reps, 16, "reps");
  if (reps < 2) reps = 2;
  if (reps % 2) reps++;
  const sizes = v.sizes === undefined
    ? DEFAULT_SIZES
    : v.sizes.split(",").map((s) => sizeMiB(s.trim()));
  const variants = listOf(v.variants, VARIANTS, "variants");
  const boot = {
    seed: positive(v.seed, 1, "seed"),
    resamples: positive(v.resamples, 10000, "resamples"),
  };
  const out = resolve(
    v.out ?? fileURLToPath(new URL("../results/latest", import.meta.url)),
  );
  const started = new Date();
  const dir = mkdtempSync(join(tmpdir(), "page-primer-itlb-"));
  const result: ItlbResult = {
    schema: ITLB_SCHEMA,
    machine: machine(),
    compiler: "",
    started: started.toISOString(),
    seconds: 0,
    options: { reps, sizes, ...boot },
    variants: [],
  };
  try {
    const exe = join(dir, "itlb");
    const src = fileURLToPath(new URL("./itlb.c", import.meta.url));
    try {
      execFileSync("gcc", ["-O2", "-pthread", "-o", exe, src], {
        stdio: ["ignore", "ignore", "inherit"],
      });
      result.compiler = execFileSync("gcc", ["--version"], {
        encoding: "utf8",
      }).split("\n")[0];
    } catch (e) {
      throw new Error(
        `compiling itlb.c with gcc failed (install gcc): ${
          (e as Error).message
        }`,
      );
    }
    for (const name of variants) {
      process.stderr.write(`itlb: ${name} over ${sizes.join(", ")} MiB…\n`);
      const text = execFileSync(
        exe,
        [name, String(reps), ...sizes.map(String)],
        {
          encoding: "utf8",
          maxBuffer: 64 << 20,
          stdio: ["ignore", "pipe", "inherit"],
        },
      );
      const raw = JSON.parse(text) as { sizes: RawSize[] };
      result.variants.push({
        name,
        description: DESCRIPTIONS[name],
        sizes: raw.sizes.map((s) => summarise(s, boot)),
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  result.seconds = (Date.now() - started.getTime()) / 1000;
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "itlb.json"), JSON.stringify(result, null, 1) + "\n");
  const md = renderItlb(result);
  writeFileSync(join(out, "itlb.md"), md);
  console.log(md);
  console.log(`wrote ${join(out, "itlb.json")}\nwrote ${join(out, "itlb.md")}`);
}

if (import.meta.main) {
  try {
    main();
  } catch (e) {
    console.error(`bench/itlb: ${(e as Error).message}`);
    process.exit(1);
  }
}
