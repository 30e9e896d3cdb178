/**
 * Hot-code footprint: how many distinct 4 KiB pages of code a process
 * touches in a window of time, per object (the executable's text, V8's
 * embedded builtins mapped a second time from it, shared libraries, JIT
 * regions), set against the CPU's instruction-TLB reach, with a verdict on
 * whether 2 MiB code pages are likely to pay.
 *
 * Method: write `1` to `/proc/<pid>/clear_refs` (the kernel clears the
 * accessed bit of every page the process maps and flushes its TLB), wait,
 * then read `/proc/<pid>/smaps` and sum `Referenced:` over the executable
 * VMAs. That is the only disturbance: besides the one TLB flush per window,
 * page reclaim sees the pages as not recently used. Nothing is written to
 * the process's memory and it is never stopped.
 *
 * A page touched on a 2 MiB mapping counts 2 MiB (the accessed bit is per
 * page-table entry), so measure before remapping, on 4 KiB mappings.
 *
 * Pure parts: {@linkcode codeRanges}, {@linkcode attributeFootprint},
 * {@linkcode decodeAmdItlb}, {@linkcode decodeIntelItlb},
 * {@linkcode footprintVerdict}, {@linkcode formatFootprint}; the rest reads
 * `/proc` and runs CPUID through the trampoline.
 *
 * @module
 */

import { basename, formatBytes } from "../sys/format.ts";
import {
  inspectProcess,
  type InspectReport,
  readProcessSmaps,
} from "./inspect.ts";
import { runtimeInfo } from "../sys/ffi.ts";
import { HUGE_PAGE } from "../sys/hugetlb.ts";
import { type Libc, libc } from "../sys/libc.ts";
import type { SmapsVma } from "../sys/maps.ts";
import { type CpuidRegisters, loadTrampoline } from "../remap/trampoline.ts";

/** The page size the footprint is counted in: 4 KiB. */
export const FOOTPRINT_PAGE = 4096;

/** `open(2)` flag: write only. */
const O_WRONLY = 1;

/**
 * The verdict rule's margin: the steady footprint must exceed the iTLB's
 * 4 KiB entries this many times over, and the executable's part alone the
 * entries once, for "likely to gain".
 */
export const LIKELY_MARGIN = 2;

/** What a code VMA belongs to. */
export type CodeCategory =
  | "executable"
  | "builtins"
  | "library"
  | "jit"
  | "other";

/** An address range of code known from an object's program headers. */
export interface CodeRange {
  /** The object's path. */
  object: string;
  /** `"executable"` (its text), `"builtins"` (a further mapping of the executable), `"library"`. */
  category: "executable" | "builtins" | "library";
  /** First address. */
  start: number;
  /** One past the last address. */
  end: number;
}

/** Pages of code touched in one object during one window. */
export interface FootprintObject {
  /** The object's path, or `"[jit]"` for anonymous code, or the VMA's name. */
  name: string;
  /** What it is. */
  category: CodeCategory;
  /** Distinct 4 KiB pages touched (`Referenced:` / 4 KiB). */
  pages: number;
  /** 4 KiB pages of code mapped. */
  mappedPages: number;
  /** Part of it is on 2 MiB pages: a touched huge page counts 512 pages. */
  onHugePages: boolean;
  /**
   * Part of it maps a file (or shared memory): pages whose folio the kernel
   * marked young or referenced as a whole count too, also from other
   * processes' accesses, so the figure is an upper bound.
   */
  filePages: boolean;
}

/** Pages touched by category. */
export interface FootprintTotals {
  /** The executable's text (LOAD segment range, or its anonymous copy there). */
  executable: number;
  /** The executable's further code mappings (V8's embedded builtins). */
  builtins: number;
  /** Shared libraries' text. */
  library: number;
  /** Anonymous executable memory: JIT code. */
  jit: number;
  /** Anything else executable (vDSO, the trampoline). */
  other: number;
  /** All of it. */
  total: number;
}

/** One window of measurement. */
export interface FootprintWindow {
  /** Seconds the window lasted (measured). */
  seconds: number;
  /** Per object, largest first. */
  objects: FootprintObject[];
  /** Per category. */
  totals: FootprintTotals;
}

/** The CPU's instruction-TLB entries, as CPUID reports them. */
export interface ItlbInfo {
  /** `"AuthenticAMD"`, `"GenuineIntel"`... */
  vendor: string;
  /** Per level (1 first), the entries for 4 KiB and 2 MiB pages. */
  levels: ItlbLevel[];
}

/** One level of instruction TLB. */
export interface ItlbLevel {
  /** 1 or 2. */
  level: number;
  /** Whether it also holds data translations (Intel's STLB). */
  unified: boolean;
  /** Entries for 4 KiB pages. */
  entries4k: number;
  /** Entries for 2 MiB pages. */
  entries2m: number;
  /** Bytes the 4 KiB entries cover: entries × 4 KiB. */
  reach4k: number;
  /** Bytes the 2 MiB entries cover: entries × 2 MiB. */
  reach2m: number;
}

/** The plain answer: will 2 MiB code pages help this workload? */
export interface FootprintVerdict {
  /** `"likely to gain"`, `"unlikely"` or `"unknown"`. */
  verdict: "likely to gain" | "unlikely" | "unknown";
  /** The rule applied. */
  rule: string;
  /** Why, with the figures. */
  reason: string;
}

/** What {@linkcode footprint} and {@linkcode measureFootprint} return. */
export interface FootprintReport {
  /** The process. */
  pid: number;
  /** `/proc/<pid>/exe`, when readable. */
  exe?: string;
  /** The windows in order: the first is warm-up when the process just started. */
  windows: FootprintWindow[];
  /** Median per category over the windows after the first (all windows when there is one). */
  steady: FootprintTotals;
  /** The CPU's instruction TLB, or why it is unknown. */
  itlb: ItlbInfo | { unknown: string };
  /** The verdict. */
  verdict: FootprintVerdict;
  /** What makes figures upper bounds here, with what to do. */
  caveats: string[];
}

/**
 * The code ranges of an inspected process: each object's text LOAD
 * segments, and the executable's further code mappings (V8's builtins).
 * Pure.
 *
 * @example
 * ```ts
 * import { codeRanges } from "./footprint.ts";
 * import { inspectLayout } from "./inspect.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(codeRanges(inspectLayout({ pid: 1, objects: [], smaps: [], pageSize: 4096 })), []);
 * ```
 */
export function codeRanges(report: InspectReport): CodeRange[] {
  const out: CodeRange[] = [];
  for (const o of report.objects) {
    for (const s of o.segments) {
      if (s.kind !== "text") continue;
      const category = !o.main
        ? "library"
        : s.origin === "alias"
        ? "builtins"
        : "executable";
      out.push({ object: o.path, category, start: s.start, end: s.end });
    }
  }
  return out;
}

function isAnonymous(v: SmapsVma): boolean {
  return v.inode === 0 &&
    (v.path === "" || (v.path.startsWith("[anon:") && v.path !== "[vdso]"));
}

function classify(
  v: SmapsVma,
  ranges: readonly CodeRange[],
): { name: string; category: CodeCategory } {
  const r = ranges.find((r) => v.start < r.end && r.start < v.end);
  if (r) return { name: r.object, category: r.category };
  if (isAnonymous(v)) return { name: "[jit]", category: "jit" };
  return { name: v.path || "[anonymous]", category: "other" };
}

function zeroTotals(): FootprintTotals {
  return {
    executable: 0,
    builtins: 0,
    library: 0,
    jit: 0,
    other: 0,
    total: 0,
  };
}

/**
 * Sums `Referenced:` over the executable VMAs of one smaps reading, by
 * object: a VMA belongs to the code range it overlaps (so an anonymous copy
 * of the executable's text counts as the executable), else anonymous
 * executable memory is JIT code. Pure.
 *
 * @example
 * ```ts
 * import { attributeFootprint } from "./footprint.ts";
 * import { parseSmaps } from "../sys/maps.ts";
 * import assert from "node:assert/strict";
 * const smaps = parseSmaps("7f0000000000-7f0000100000 rwxp 00000000 00:00 0\nReferenced: 40 kB\n");
 * assert.equal(attributeFootprint([], smaps, 1).totals.jit, 10);
 * ```
 */
export function attributeFootprint(
  ranges: readonly CodeRange[],
  smaps: readonly SmapsVma[],
  seconds: number,
): FootprintWindow {
  const byName = new Map<string, FootprintObject>();
  const totals = zeroTotals();
  for (const v of smaps) {
    if (!v.exec) continue;
    const { name, category } = classify(v, ranges);
    const key = `${category}\0${name}`;
    let o = byName.get(key);
    if (o === undefined) {
      o = {
        name,
        category,
        pages: 0,
        mappedPages: 0,
        onHugePages: false,
        filePages: false,
      };
      byName.set(key, o);
    }
    const pages = Math.ceil(v.referenced / FOOTPRINT_PAGE);
    o.pages += pages;
    o.mappedPages += Math.ceil(v.size / FOOTPRINT_PAGE);
    if (
      v.anonHugePages + v.filePmdMapped + v.shmemPmdMapped > 0 ||
      v.kernelPageSize >= HUGE_PAGE
    ) o.onHugePages = true;
    if (v.inode !== 0 || v.shared) o.filePages = true;
    totals[category] += pages;
    totals.total += pages;
  }
  const objects = [...byName.values()].sort((a, b) =>
    b.pages - a.pages || a.name.localeCompare(b.name)
  );
  return { seconds, objects, totals };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : Math.round((s[m - 1]! + s[m]!) / 2);
}

/**
 * The steady state: per category, the median over the windows after the
 * first (the first holds warm-up), or the only window. Pure.
 *
 * @example
 * ```ts
 * import { steadyTotals } from "./footprint.ts";
 * import assert from "node:assert/strict";
 * const t = { executable: 1, builtins: 0, library: 0, jit: 0, other: 0, total: 1 };
 * assert.equal(steadyTotals([{ seconds: 1, objects: [], totals: t }]).total, 1);
 * ```
 */
export function steadyTotals(
  windows: readonly FootprintWindow[],
): FootprintTotals {
  if (windows.length === 0) {
    throw new RangeError("steadyTotals: no windows were measured");
  }
  const used = windows.length > 1 ? windows.slice(1) : windows;
  const out = zeroTotals();
  for (const k of Object.keys(out) as (keyof FootprintTotals)[]) {
    out[k] = median(used.map((w) => w.totals[k]));
  }
  return out;
}

function ascii(regs: readonly number[]): string {
  return regs.map((r) =>
    String.fromCharCode(r & 0xff, (r >>> 8) & 0xff, (r >>> 16) & 0xff, r >>> 24)
  ).join("");
}

/**
 * The CPU vendor string from CPUID leaf 0. Pure.
 *
 * @example
 * ```ts
 * import { cpuVendor } from "./footprint.ts";
 * import assert from "node:assert/strict";
 * assert.equal(cpuVendor([0x1c, 0x68747541, 0x444d4163, 0x69746e65]), "AuthenticAMD");
 * ```
 */
export function cpuVendor(leaf0: CpuidRegisters): string {
  return ascii([leaf0[1], leaf0[3], leaf0[2]]);
}

/** A TLB level with its reach computed from its entries. */
function level(
  { level, unified, entries4k, entries2m }: Omit<
    ItlbLevel,
    "reach4k" | "reach2m"
  >,
): ItlbLevel {
  return {
    level,
    unified,
    entries4k,
    entries2m,
    reach4k: entries4k * FOOTPRINT_PAGE,
    reach2m: entries2m * HUGE_PAGE,
  };
}

/**
 * Decodes AMD's instruction-TLB sizes: leaf 0x80000005 (L1: EAX for 2 MiB
 * pages, EBX for 4 KiB, instruction entries in bits 7:0) and 0x80000006
 * (L2: instruction entries in bits 11:0, associativity 15:12, 0 meaning
 * none). Pure.
 *
 * @example
 * ```ts
 * import { decodeAmdItlb } from "./footprint.ts";
 * import assert from "node:assert/strict";
 * const l = decodeAmdItlb([0xff48ff40, 0xff48ff40, 0, 0], [0x5c002200, 0x6c004200, 0, 0]);
 * assert.deepEqual(l.map((x) => x.entries4k), [64, 512]);
 * ```
 */
export function decodeAmdItlb(
  l1: CpuidRegisters,
  l2: CpuidRegisters | undefined,
): ItlbLevel[] {
  const out = [
    level({
      level: 1,
      unified: false,
      entries4k: l1[1] & 0xff,
      entries2m: l1[0] & 0xff,
    }),
  ];
  if (l2 !== undefined) {
    const entries = (r: number) => ((r >>> 12) & 0xf) === 0 ? 0 : r & 0xfff;
    const e4k = entries(l2[1]);
    const e2m = entries(l2[0]);
    if (e4k + e2m > 0) {
      out.push(
        level({ level: 2, unified: false, entries4k: e4k, entries2m: e2m }),
      );
    }
  }
  return out.filter((l) => l.entries4k + l.entries2m > 0);
}

/**
 * Decodes Intel's leaf 0x18 (deterministic address translation
 * parameters), one register set per subleaf: the instruction (type 2) and
 * unified (type 3) TLBs, entries = ways (EBX 31:16) × sets (ECX), for the
 * page sizes EBX bits 0 (4 KiB) and 1 (2 MiB) say. Pure.
 *
 * @example
 * ```ts
 * import { decodeIntelItlb } from "./footprint.ts";
 * import assert from "node:assert/strict";
 * // subleaf 0 (max subleaf 1, no TLB), subleaf 1: L1 instruction TLB, 8 ways × 16 sets, 4 KiB
 * const l = decodeIntelItlb([[1, 0, 0, 0], [0, 0x00080001, 16, 0x22]]);
 * assert.equal(l[0].entries4k, 128);
 * ```
 */
export function decodeIntelItlb(subleaves: CpuidRegisters[]): ItlbLevel[] {
  const byLevel = new Map<number, ItlbLevel>();
  for (const [, ebx, ecx, edx] of subleaves) {
    const type = edx & 0x1f;
    if (type !== 2 && type !== 3) continue;
    const n = (edx >>> 5) & 0x7;
    const entries = ((ebx >>> 16) & 0xffff) * ecx;
    const l = byLevel.get(n) ??
      level({ level: n, unified: type === 3, entries4k: 0, entries2m: 0 });
    const e4k = l.entries4k + (ebx & 1 ? entries : 0);
    const e2m = l.entries2m + (ebx & 2 ? entries : 0);
    byLevel.set(
      n,
      level({
        level: n,
        unified: l.unified || type === 3,
        entries4k: e4k,
        entries2m: e2m,
      }),
    );
  }
  return [...byLevel.values()].sort((a, b) => a.level - b.level);
}

/**
 * Reads the instruction TLB through CPUID (x86 only), or says why not.
 *
 * @example
 * ```ts ignore
 * import { readItlb } from "./footprint.ts";
 * import { libc } from "../sys/libc.ts";
 * console.log(readItlb(libc()));
 * ```
 */
export function readItlb(c: Libc): ItlbInfo | { unknown: string } {
  const arch = runtimeInfo().arch;
  if (arch !== "x86_64") {
    return { unknown: `CPUID is read on x86_64 only (this is ${arch})` };
  }
  let cpuid: (leaf: number, sub: number) => CpuidRegisters;
  try {
    const t = loadTrampoline(c);
    cpuid = (leaf, sub) => t.cpuid(leaf, sub);
  } catch (e) {
    return {
      unknown: `the trampoline (for CPUID) could not be loaded: ${
        e instanceof Error ? e.message : e
      }`,
    };
  }
  const leaf0 = cpuid(0, 0);
  const vendor = cpuVendor(leaf0);
  let levels: ItlbLevel[] = [];
  if (vendor === "AuthenticAMD" || vendor === "HygonGenuine") {
    const ext = cpuid(0x80000000, 0)[0] >>> 0;
    if (ext >= 0x80000005) {
      levels = decodeAmdItlb(
        cpuid(0x80000005, 0),
        ext >= 0x80000006 ? cpuid(0x80000006, 0) : undefined,
      );
    }
  } else if (vendor === "GenuineIntel" && leaf0[0] >= 0x18) {
    const first = cpuid(0x18, 0);
    const subs = [first];
    for (let i = 1; i <= Math.min(first[0], 64); i++) subs.push(cpuid(0x18, i));
    levels = decodeIntelItlb(subs);
  }
  if (levels.length === 0) {
    return {
      unknown: `CPUID on this ${vendor} CPU lists no instruction TLB sizes`,
    };
  }
  return { vendor, levels };
}

/**
 * The verdict from the steady footprint and the instruction TLB. Rule: the
 * largest level's 4 KiB entries are the iTLB's capacity; "likely to gain"
 * when the whole steady code footprint exceeds {@linkcode LIKELY_MARGIN} ×
 * that many pages and the executable's own pages (what page-primer moves
 * to 2 MiB pages: text and builtins) exceed it once; "unlikely" otherwise;
 * "unknown" without TLB sizes, or when "likely" rests on an upper bound
 * (`upperBound`: the executable's pages were counted by folio). Pure.
 *
 * @example
 * ```ts
 * import { footprintVerdict } from "./footprint.ts";
 * import assert from "node:assert/strict";
 * const steady = { executable: 240, builtins: 20, library: 30, jit: 60, other: 0, total: 350 };
 * assert.equal(footprintVerdict(steady, { unknown: "not x86" }).verdict, "unknown");
 * ```
 */
export function footprintVerdict(
  steady: FootprintTotals,
  itlb: ItlbInfo | { unknown: string },
  upperBound = false,
): FootprintVerdict {
  const rule =
    `likely to gain when the steady code footprint exceeds ${LIKELY_MARGIN}x the largest iTLB level's 4 KiB entries and the executable's own pages (text + builtins) exceed them once; unlikely otherwise`;
  if ("unknown" in itlb) {
    return {
      verdict: "unknown",
      rule,
      reason: `the instruction TLB's size is unknown: ${itlb.unknown}`,
    };
  }
  const last = itlb.levels.reduce((a, b) => b.entries4k > a.entries4k ? b : a);
  const cap = last.entries4k;
  const own = steady.executable + steady.builtins;
  const likely = steady.total > LIKELY_MARGIN * cap && own > cap;
  const figures = `steady footprint ${steady.total} pages (${
    formatBytes(steady.total * FOOTPRINT_PAGE)
  }; executable ${own}) against ${cap} L${last.level} iTLB entries for 4 KiB pages (reach ${
    formatBytes(last.reach4k)
  })`;
  if (likely && upperBound) {
    return {
      verdict: "unknown",
      rule,
      reason:
        `${figures}, but the executable's figure is an upper bound (its file pages are counted by folio, see the caveats): measure on a 4 KiB copy`,
    };
  }
  return {
    verdict: likely ? "likely to gain" : "unlikely",
    rule,
    reason: likely
      ? `${figures}: the hot code does not fit the iTLB on 4 KiB pages`
      : `${figures}: the hot code (nearly) fits the iTLB on 4 KiB pages`,
  };
}

/**
 * What makes the figures upper bounds. `Referenced:` counts a page when its
 * page-table entry is young or when its folio is marked young or
 * referenced; DAMON's physical-address monitoring (and page reclaim) moves
 * the accessed bits of every process mapping a folio onto the folio, so on
 * a file mapped in large folios a window counts whole folios, touched by
 * any process. Private anonymous code (page-primer's copy, JIT) is
 * counted page by page. Pure.
 *
 * @example
 * ```ts
 * import { footprintCaveats } from "./footprint.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(footprintCaveats([], false), []);
 * ```
 *
 * @param windows The windows measured.
 * @param damon Whether a DAMON monitor (kdamond) is running.
 */
export function footprintCaveats(
  windows: readonly FootprintWindow[],
  damon: boolean,
): string[] {
  const out: string[] = [];
  const objects = windows.flatMap((w) => w.objects);
  if (damon && objects.some((o) => o.filePages && o.pages > 0)) {
    out.push(
      'DAMON is running (kdamond): it moves accessed bits from page tables onto whole folios, so file-backed code (the executable\'s file mapping, its builtins, libraries) counts every page of a touched large folio, touched by any process: those figures are upper bounds. For an exact count of the executable, measure a process that ran remap({ pageSize: "4k" }) (a private copy on 4 KiB pages)',
    );
  }
  if (objects.some((o) => o.onHugePages && o.pages > 0)) {
    out.push(
      "some code is on 2 MiB pages, where one touched page counts 512: measure before remapping",
    );
  }
  return out;
}

/** Whether the executable's steady figure is an upper bound (see {@linkcode footprintCaveats}). */
function executableUpperBound(
  windows: readonly FootprintWindow[],
  damon: boolean,
): boolean {
  return windows.some((w) =>
    w.objects.some((o) =>
      (o.category === "executable" || o.category === "builtins") &&
      o.pages > 0 && (o.onHugePages || (damon && o.filePages))
    )
  );
}

const DAMON_KDAMONDS = "/sys/kernel/mm/damon/admin/kdamonds";

/**
 * Whether a DAMON monitor runs (a kdamond of the sysfs interface is `on`).
 *
 * @example
 * ```ts ignore
 * import { damonRunning } from "./footprint.ts";
 * import { libc } from "../sys/libc.ts";
 * console.log(damonRunning(libc()));
 * ```
 */
export function damonRunning(c: Libc): boolean {
  const n = Number(c.tryReadText(`${DAMON_KDAMONDS}/nr_kdamonds`)?.trim());
  if (!(n > 0)) return false;
  for (let i = 0; i < Math.min(n, 64); i++) {
    if (c.tryReadText(`${DAMON_KDAMONDS}/${i}/state`)?.trim() === "on") {
      return true;
    }
  }
  return false;
}

/** Options of {@linkcode measureFootprint} and {@linkcode footprint}. */
export interface FootprintOptions {
  /** Seconds per window (default 3, more than 0). */
  seconds?: number;
  /** Number of windows (default 3, at least 1). */
  windows?: number;
  /** Called before each step (for a progress line). */
  onProgress?: (message: string) => void;
}

function checkOptions(
  o: FootprintOptions,
): { seconds: number; windows: number } {
  const seconds = o.seconds ?? 3;
  const windows = o.windows ?? 3;
  if (typeof seconds !== "number" || !(seconds > 0) || seconds > 3600) {
    throw new RangeError(
      `footprint: seconds must be a number in (0, 3600]; got ${seconds}`,
    );
  }
  if (!Number.isInteger(windows) || windows < 1 || windows > 1000) {
    throw new RangeError(
      `footprint: windows must be an integer 1..1000; got ${windows}`,
    );
  }
  return { seconds, windows };
}

/**
 * Clears the referenced bits of process `pid`'s pages (writes `1` to
 * `/proc/<pid>/clear_refs`).
 *
 * @example
 * ```ts ignore
 * import { clearRefs } from "./footprint.ts";
 * import { libc } from "../sys/libc.ts";
 * const c = libc();
 * clearRefs(c, c.getpid());
 * ```
 */
export function clearRefs(c: Libc, pid: number): void {
  const file = `/proc/${pid}/clear_refs`;
  let fd: number;
  try {
    fd = c.open(file, O_WRONLY);
  } catch (e) {
    throw new Error(
      `cannot open ${file} for writing (${
        e instanceof Error ? e.message : e
      }): it needs the same user id as process ${pid} or root`,
      { cause: e },
    );
  }
  try {
    c.writeAll(fd, new TextEncoder().encode("1"));
  } finally {
    c.close(fd);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Measures process `pid`'s hot-code footprint: `windows` windows of
 * `seconds` each (clear_refs, wait, read smaps), attributed per object,
 * with the iTLB and the verdict. Reading another process needs its user id
 * or root; the only disturbance is the cleared referenced bits (and one TLB
 * flush per window).
 *
 * @example
 * ```ts ignore
 * import { measureFootprint } from "./footprint.ts";
 * import { libc } from "../sys/libc.ts";
 * const r = await measureFootprint(libc(), 1234, { seconds: 2, windows: 3 });
 * console.log(r.steady.total, r.verdict.verdict);
 * ```
 */
export async function measureFootprint(
  c: Libc,
  pid: number,
  options: FootprintOptions = {},
): Promise<FootprintReport> {
  const { seconds, windows } = checkOptions(options);
  const progress = options.onProgress ?? (() => {});
  const layout = inspectProcess(c, pid, { onProgress: progress });
  const ranges = codeRanges(layout);
  const itlb = readItlb(c);
  const out: FootprintWindow[] = [];
  for (let i = 0; i < windows; i++) {
    progress(`window ${i + 1}/${windows}: ${seconds} s`);
    clearRefs(c, pid);
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const smaps = readProcessSmaps(c, pid);
    const took = (performance.now() - t0) / 1000;
    out.push(attributeFootprint(ranges, smaps, Math.round(took * 100) / 100));
  }
  progress("");
  const steady = steadyTotals(out);
  const damon = damonRunning(c);
  return {
    pid,
    ...(layout.exe !== undefined ? { exe: layout.exe } : {}),
    windows: out,
    steady,
    itlb,
    verdict: footprintVerdict(
      steady,
      itlb,
      executableUpperBound(out.slice(out.length > 1 ? 1 : 0), damon),
    ),
    caveats: footprintCaveats(out, damon),
  };
}

/**
 * The hot-code footprint of this process while it keeps running (the
 * windows are timers: the event loop runs the workload meanwhile).
 *
 * @example
 * ```ts ignore
 * import { footprint } from "./footprint.ts";
 * const r = await footprint({ seconds: 1, windows: 2 });
 * console.log(r.steady.executable, r.verdict.verdict);
 * ```
 *
 * @param options Seconds per window, number of windows.
 * @param c The libc binding (default: this process's).
 */
export async function footprint(
  options: FootprintOptions = {},
  c: Libc = libc(),
): Promise<FootprintReport> {
  return await measureFootprint(c, c.getpid(), options);
}

function mib(pages: number): string {
  return formatBytes(pages * FOOTPRINT_PAGE);
}

/**
 * Renders a footprint report as text.
 *
 * @example
 * ```ts
 * import { formatFootprint } from "./footprint.ts";
 * import assert from "node:assert/strict";
 * const t = { executable: 1, builtins: 0, library: 0, jit: 0, other: 0, total: 1 };
 * const text = formatFootprint({
 *   pid: 1, windows: [{ seconds: 1, objects: [], totals: t }], steady: t,
 *   itlb: { unknown: "not x86" },
 *   verdict: { verdict: "unknown", rule: "", reason: "" }, caveats: [],
 * });
 * assert.match(text, /^pid 1: distinct 4 KiB pages of code touched per window\n/);
 * ```
 */
export function formatFootprint(r: FootprintReport): string {
  const lines = [
    `pid ${r.pid}${
      r.exe ? ` (${r.exe})` : ""
    }: distinct 4 KiB pages of code touched per window`,
  ];
  r.windows.forEach((w, i) => {
    const t = w.totals;
    lines.push(
      `  window ${i + 1} (${w.seconds} s${
        i === 0 && r.windows.length > 1 ? ", warm-up" : ""
      }): ${t.total} pages (${
        mib(t.total)
      }): executable ${t.executable}, builtins ${t.builtins}, libraries ${t.library}, JIT ${t.jit}, other ${t.other}`,
    );
    for (const o of w.objects.filter((o) => o.pages > 0).slice(0, 8)) {
      lines.push(
        `    ${String(o.pages).padStart(7)}  of ${
          String(o.mappedPages).padStart(7)
        }  ${o.category.padEnd(10)} ${
          o.name.startsWith("/") ? basename(o.name) : o.name
        }${o.onHugePages ? " (on 2 MiB pages: a touched one counts 512)" : ""}${
          o.filePages ? " (file)" : ""
        }`,
      );
    }
  });
  const s = r.steady;
  lines.push(
    `  steady state (median${
      r.windows.length > 1 ? " of windows 2.." + r.windows.length : ""
    }): ${s.total} pages (${
      mib(s.total)
    }), executable ${s.executable}, builtins ${s.builtins}`,
  );
  if ("unknown" in r.itlb) {
    lines.push(`  instruction TLB: unknown (${r.itlb.unknown})`);
  } else {
    for (const l of r.itlb.levels) {
      lines.push(
        `  ${r.itlb.vendor} L${l.level} ${
          l.unified ? "unified" : "instruction"
        } TLB: ${l.entries4k} entries for 4 KiB pages (reach ${
          formatBytes(l.reach4k)
        }), ${l.entries2m} for 2 MiB pages (reach ${formatBytes(l.reach2m)})`,
      );
    }
  }
  for (const c of r.caveats) lines.push(`  caveat: ${c}`);
  lines.push(`  verdict: ${r.verdict.verdict}: ${r.verdict.reason}`);
  lines.push(`  rule: ${r.verdict.rule}`);
  lines.push(
    "  (the only disturbance: the process's referenced bits were cleared, and its TLB flushed, once per window)",
  );
  return lines.join("\n");
}
