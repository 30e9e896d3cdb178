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
  readdirSync,
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

/** The variants of itlb.c, in the order they run when all are asked for. */
const VARIANTS = [
  "call",
  "syscall",
  "pingpong",
  "shootdown",
  "vdso",
  "sysread",
  "cpuid",
  "sysonly",
  "pages",
  "syspages",
  "vdsopages",
  "readpages",
  "cpuidpages",
  "splitpages",
  "syssplitpages",
  "spread8",
  "sysspread8",
  "hop",
  "syshop",
  "data",
  "datasys",
  "datapacked",
  "datapages",
  "datasyspages",
  "datahop",
  "datasyshop",
] as const;

/** What one iteration does (see itlb.c). */
type Variant = typeof VARIANTS[number];

/** The variants run when `--variants` is not given. */
const DEFAULT_VARIANTS: readonly Variant[] = [
  "call",
  "syscall",
  "pingpong",
  "shootdown",
];

/** Variants whose size is in 2 MiB steps: one item per 2 MiB. */
const PER_2M: readonly Variant[] = ["hop", "syshop", "datahop", "datasyshop"];

const DESCRIPTIONS: Record<Variant, string> = {
  call: "the call only (instruction fetch from the spread code)",
  syscall: "one getppid() system call per call",
  pingpong:
    "a futex round trip per call with a second thread, which also calls a function of the spread code",
  shootdown:
    "the call only, while a second thread maps, touches and unmaps a page in a loop (TLB shootdowns)",
  vdso:
    "one clock_gettime() through the vDSO per call (user code only, no kernel entry)",
  sysread:
    "one read() of 4 KiB from /dev/zero per call (a system call that does work)",
  cpuid:
    "one CPUID instruction per call (in a VM: an exit to the hypervisor, no guest kernel entry; x86-64)",
  sysonly:
    "no call: getppid() system calls in a loop that is itself code on the region's first page (x86-64)",
  pages:
    "per iteration, one call into every function of the spread (N distinct 4 KiB pages, within one 2 MiB page up to 2 MiB)",
  syspages:
    "pages, then one getppid(): N distinct 4 KiB pages of code between two kernel entries",
  vdsopages: "pages, then one clock_gettime() through the vDSO",
  readpages: "pages, then one read() of 4 KiB from /dev/zero",
  cpuidpages: "pages, then one CPUID (VM exit, no guest kernel entry; x86-64)",
  splitpages:
    "pages, with the 4 KiB-page region made of 2 MiB pages split in place (the same physical memory, 4 KiB entries)",
  syssplitpages:
    "syspages, with the 4 KiB-page region made of 2 MiB pages split in place",
  spread8:
    "pages, with the N functions dealt round-robin over 8 different 2 MiB pages",
  sysspread8:
    "spread8, then one getppid(): N distinct 4 KiB pages on 8 different 2 MiB pages between two kernel entries",
  hop:
    "per iteration, one call into each of K = spread/2 functions, one per 2 MiB of the spread",
  syshop:
    "hop, then one getppid(): K distinct 2 MiB pages of code between two kernel entries",
  data:
    "one load per iteration, chasing pointers placed one per 4 KiB page in a random order (data instead of code)",
  datasys: "data, then one getppid()",
  datapacked:
    "data with the same number of pointers packed 128 bytes apart (32 per 4 KiB page)",
  datapages:
    "per iteration, one load from every 4 KiB page of the spread (N loads)",
  datasyspages:
    "datapages, then one getppid(): N distinct 4 KiB pages of data between two kernel entries",
  datahop: "per iteration, K = spread/2 loads, one pointer per 2 MiB",
  datasyshop:
    "datahop, then one getppid(): K distinct 2 MiB pages of data between two kernel entries",
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
  --variants a,b    which variants, or "all" (default ${
  DEFAULT_VARIANTS.join(",")
});
                    all: ${VARIANTS.join(",")}
  --sample-ms N     length of one timed sample, ms (default 20)
  --out DIR         results directory (default bench/results/latest)
  --seed N          bootstrap PRNG seed (default 1)
  --resamples N     bootstrap resamples (default 10000)
  -h, --help        this text`;

/** One size of one variant, as itlb.c prints it. */
interface RawSize {
  mib: number;
  pages: number;
  calls: number;
  /** Bytes mapped per region (absent in output of older itlb.c). */
  mappedBytes?: number;
  /** Split variants: AnonHugePages (kB) of the 4 KiB region before the split. */
  smallSplitFromKiB?: number;
  /** Split variants: whether page 0 kept its frame (null: pagemap unreadable). */
  smallSplitSameFrame?: boolean | null;
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
  /** Median of the paired differences, ns per call: 2 MiB minus 4 KiB. */
  hugeMinusSmallNs: number;
  /** Fastest sample per mode, ns per call: 2 MiB, 4 KiB (robust to load). */
  fastestNs: [number, number];
  /** small / huge, paired per repetition, with its interval. */
  smallOverHuge: RatioSummary & { ratios: number[] };
  /** Split variants: the 4 KiB-page region's bytes on 2 MiB pages before the
   * split, and whether its first page kept its physical frame. */
  split?: { fromBytes: number; sameFrame: boolean | null };
  /** Every sample, ns per call. */
  samples: RawSize["samples"];
}

/** The machine, with what bears on TLBs and kernel entries. */
export interface Machine {
  cpu: string;
  cpus: number;
  kernel: string;
  thp: string;
  /** `cpu family`, `model`, `stepping` and `microcode` of /proc/cpuinfo. */
  cpuId: string;
  /** `TLB size` of /proc/cpuinfo (AMD), or "unknown". */
  tlb: string;
  /** Whether the CPU flags include `hypervisor` (running in a VM). */
  hypervisor: boolean;
  /** Which of the flags in {@linkcode FLAGS_OF_INTEREST} are present. */
  flags: string[];
  /** /sys/devices/system/cpu/vulnerabilities: file name to its text. */
  vulnerabilities: Record<string, string>;
  /** The kernel command line's `mitigations=` and related options. */
  cmdline: string[];
}

/** CPU flags that bear on TLBs, page walks and kernel entry costs. */
const FLAGS_OF_INTEREST = [
  "hypervisor",
  "pge",
  "pse",
  "pdpe1gb",
  "pcid",
  "invpcid",
  "invlpgb",
  "svm",
  "npt",
  "vmx",
  "ept",
  "smep",
  "smap",
  "la57",
  "ibrs",
  "ibpb",
  "stibp",
  "ibrs_enhanced",
  "auto_ibrs",
  "pti",
] as const;

/** The whole result. */
export interface ItlbResult {
  schema: string;
  machine: Machine;
  compiler: string;
  started: string;
  seconds: number;
  options: {
    reps: number;
    sizes: number[];
    seed: number;
    resamples: number;
    sampleMs: number;
  };
  variants: { name: Variant; description: string; sizes: SizeResult[] }[];
}

/** One variant to run and its code spreads, MiB. */
interface Plan {
  name: Variant;
  sizes: number[];
}

/**
 * Parses `--variants`: names separated by commas, each optionally with its
 * own sizes after `@` separated by `/` (`syspages@0.0625/1`), or `all`.
 */
function plans(v: string | undefined, sizes: number[]): Plan[] {
  if (v === undefined) return DEFAULT_VARIANTS.map((name) => ({ name, sizes }));
  if (v.trim() === "all") return VARIANTS.map((name) => ({ name, sizes }));
  const out: Plan[] = [];
  for (const item of v.split(",").map((s) => s.trim()).filter((s) => s)) {
    const [name, own] = item.split("@");
    if (!(VARIANTS as readonly string[]).includes(name)) {
      throw new RangeError(
        `--variants: unknown ${JSON.stringify(name)}; known: ${
          VARIANTS.join(", ")
        }`,
      );
    }
    out.push({
      name: name as Variant,
      sizes: own === undefined
        ? sizes
        : own.split("/").map((s) => sizeMiB(s.trim())),
    });
  }
  return out;
}

/** The sizes a variant can run: one item per 2 MiB needs at least 2 MiB. */
function usableSizes(p: Plan): number[] {
  return PER_2M.includes(p.name) ? p.sizes.filter((s) => s >= 2) : p.sizes;
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

function cpuinfoField(cpuinfo: string, name: string): string | undefined {
  return new RegExp(`^${name}\\s*:\\s*(.*)$`, "m").exec(cpuinfo)?.[1].trim();
}

function vulnerabilities(): Record<string, string> {
  const dir = "/sys/devices/system/cpu/vulnerabilities";
  const out: Record<string, string> = {};
  try {
    for (const name of readdirSync(dir).sort()) {
      out[name] = readOr(join(dir, name), "").trim();
    }
  } catch {
    // no sysfs: leave empty
  }
  return out;
}

function machine(): Machine {
  const cpuinfo = readOr("/proc/cpuinfo", "");
  const flags = new Set((cpuinfoField(cpuinfo, "flags") ?? "").split(/\s+/));
  const id = ["cpu family", "model", "stepping", "microcode"]
    .map((f) => `${f} ${cpuinfoField(cpuinfo, f) ?? "?"}`).join(", ");
  const cmdline = readOr("/proc/cmdline", "").split(/\s+/).filter((w) =>
    /^(mitigations|nopti|pti|spectre|retbleed|spec_rstack|srso|nospec|transparent_hugepage|nested)/
      .test(w)
  );
  return {
    cpu: cpuinfoField(cpuinfo, "model name") ?? "unknown",
    cpus: (cpuinfo.match(/^processor\s*:/gm) ?? []).length,
    kernel: readOr("/proc/sys/kernel/osrelease", "unknown").trim(),
    thp: readOr("/sys/kernel/mm/transparent_hugepage/enabled", "unknown")
      .trim(),
    cpuId: id,
    tlb: cpuinfoField(cpuinfo, "TLB size") ?? "unknown",
    hypervisor: flags.has("hypervisor"),
    flags: FLAGS_OF_INTEREST.filter((f) => flags.has(f)),
    vulnerabilities: vulnerabilities(),
    cmdline,
  };
}

/** Summarises one size; throws when the page sizes were not as intended. */
function summarise(
  raw: RawSize,
  boot: { seed: number; resamples: number },
): SizeResult {
  const mapped = raw.mappedBytes ??
    Math.ceil(raw.pages / 512) * 2 * 1024 * 1024;
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
  if (raw.smallSplitFromKiB !== undefined) {
    if (raw.smallSplitFromKiB * 1024 < mapped) {
      throw new Error(
        `${raw.mib} MiB: the region to split had only ${
          raw.smallSplitFromKiB * 1024
        } of ${mapped} bytes on 2 MiB pages before the split`,
      );
    }
  }
  const huge = raw.samples.map((s) => s.hugeNs);
  const small = raw.samples.map((s) => s.smallNs);
  const split = raw.smallSplitFromKiB === undefined ? {} : {
    split: {
      fromBytes: raw.smallSplitFromKiB * 1024,
      sameFrame: raw.smallSplitSameFrame ?? null,
    },
  };
  return {
    mib: raw.mib,
    pages: raw.pages,
    calls: raw.calls,
    hugeOn2M,
    smallOn2M,
    hugeNs: median(huge),
    smallNs: median(small),
    hugeMinusSmallNs: median(huge.map((h, i) => h - small[i])),
    fastestNs: [Math.min(...huge), Math.min(...small)],
    ...split,
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
    `- ${m.cpuId}; TLB ${m.tlb}; ${
      m.hypervisor ? "in a VM (hypervisor flag)" : "no hypervisor flag"
    }; flags: ${m.flags.join(" ")}`,
    `- vulnerabilities: ${
      Object.entries(m.vulnerabilities)
        .filter(([, t]) => t !== "Not affected")
        .map(([k, t]) => `${k}: ${t}`).join("; ") || "none reported"
    }${m.cmdline.length ? `; cmdline: ${m.cmdline.join(" ")}` : ""}`,
    `- ${r.options.reps} paired repetitions per size (huge and small alternate first), samples of ${r.options.sampleMs} ms; median ns per call (per iteration, for the variants that do more than one call); 2M-4K = median paired difference; fastest = fastest sample of each mode (2 MiB / 4 KiB), which load on the machine cannot make faster; small/huge = median paired ratio [95% percentile-bootstrap interval] (above 1: 2 MiB pages faster)`,
    "",
    "| variant | code spread | 2 MiB pages ns/call | 4 KiB pages ns/call | 2M-4K ns | fastest ns | small/huge [95% CI] | verdict |",
    "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
  ];
  for (const v of r.variants) {
    for (const s of v.sizes) {
      lines.push(
        `| ${v.name} | ${s.mib} MiB | ${ns(s.hugeNs)} | ${ns(s.smallNs)} | ${
          s.hugeMinusSmallNs.toFixed(1)
        } | ${ns(s.fastestNs[0])} / ${ns(s.fastestNs[1])} | ${
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
      "sample-ms": { type: "string" },
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
  const todo = plans(v.variants, sizes);
  const sampleMs = positive(v["sample-ms"], 20, "sample-ms");
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
    options: { reps, sizes, ...boot, sampleMs },
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
    for (const p of todo) {
      const use = usableSizes(p);
      if (use.length === 0) {
        process.stderr.write(
          `itlb: ${p.name} skipped: it needs sizes of at least 2 MiB\n`,
        );
        continue;
      }
      process.stderr.write(`itlb: ${p.name} over ${use.join(", ")} MiB…\n`);
      const text = execFileSync(
        exe,
        [p.name, String(reps), ...use.map(String)],
        {
          encoding: "utf8",
          maxBuffer: 64 << 20,
          stdio: ["ignore", "pipe", "inherit"],
          env: { ...process.env, ITLB_SAMPLE_MS: String(sampleMs) },
        },
      );
      const raw = JSON.parse(text) as { sizes: RawSize[] };
      result.variants.push({
        name: p.name,
        description: DESCRIPTIONS[p.name],
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
