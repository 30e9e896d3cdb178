/**
 * Does code on 2 MiB pages pay on this machine? A calibration in this very
 * process: the same small functions, one per 4 KiB page spread over N MiB,
 * are mapped twice, once on 2 MiB pages and once on 4 KiB pages, and called
 * in one fixed random order through a table, timed in paired, interleaved
 * repetitions. Two variants of what happens per call: `"call"` (nothing
 * else: pure instruction fetch, where 2 MiB pages gain once the code
 * outgrows the iTLB) and `"syscall"` (one `gettid()` system call after each
 * call: on some machines, VMs especially, code on a 2 MiB page is then
 * slower while the code is small, see `bench/itlb/README.md`). The
 * workload is `bench/itlb`'s, made short enough for `doctor`.
 *
 * The machine code comes from {@linkcode FUNCTION_CODE} (per architecture);
 * mapping and calling it is `trampoline/calibrate.c`. The 2 MiB area must be
 * entirely on 2 MiB pages and the 4 KiB one on none, in `/proc/self/smaps`,
 * before and after the measurement; otherwise the answer is "cannot
 * measure" with the reason, never a guess.
 *
 * @module
 */

import { addressOf, runtimeInfo } from "../sys/ffi.ts";
import { errnoName, type Libc } from "../sys/libc.ts";
import { hugeBytes, type SmapsVma, sumIn } from "../sys/maps.ts";
import { readSmaps } from "../sys/objects.ts";
import { HUGE_PAGE } from "../sys/hugetlb.ts";
import { thpStatus } from "../sys/thp.ts";
import {
  CALIBRATE_WORDS,
  loadTrampoline,
  type Trampoline,
} from "../remap/trampoline.ts";
import {
  PP_CAL_F_HUGE,
  PP_CAL_F_SYSCALL,
  PP_CAL_MAP,
  PP_CAL_RUN,
  PP_CAL_STEP,
  PP_CAL_UNMAP,
  PP_CALIBRATE,
} from "../sys/trampoline_abi.ts";

/** What happens per call besides the call. */
export type CalibrationVariant = "call" | "syscall";

/** The answer for one code spread (or the user's footprint). */
export type CalibrationVerdict =
  | "pays"
  | "loses"
  | "no difference measured"
  | "cannot measure";

/** Machine code of the spread functions for one architecture. */
export interface FunctionCode {
  /**
   * The bytes of a function `f(x) = x + value` in the C calling convention
   * (first argument in, return value out, both 64-bit), no more than 64
   * bytes.
   */
  encode(value: number): Uint8Array;
  /** A byte that traps when executed, to fill the rest of each page. */
  trap: number;
}

/**
 * The spread functions per architecture (`runtimeInfo().arch`). x86_64:
 * `lea rax, [rdi + imm32]; ret` (8 bytes), `int3` around. Another
 * architecture is added here with its encoding (aarch64: e.g. `movz`/`movk`
 * of the value into x1, `add x0, x0, x1`, `ret`; `brk` is 4 bytes, so the
 * fill would become a pattern).
 *
 * @example
 * ```ts
 * import { FUNCTION_CODE } from "./calibrate.ts";
 * console.log(FUNCTION_CODE.x86_64!.encode(1)); // Uint8Array [72, 141, 135, 1, 0, 0, 0, 195]
 * ```
 */
export const FUNCTION_CODE: Readonly<Record<string, FunctionCode>> = {
  x86_64: {
    encode(value) {
      const v = value | 0;
      return new Uint8Array([
        0x48,
        0x8d,
        0x87,
        v & 0xff,
        (v >> 8) & 0xff,
        (v >> 16) & 0xff,
        (v >> 24) & 0xff,
        0xc3,
      ]);
    },
    trap: 0xcc,
  },
};

/** Options of {@linkcode calibrate}. */
export interface CalibrateOptions {
  /**
   * The workload's hot-code footprint in 4 KiB pages (the steady total of
   * `cli.ts footprint`): measured too, and the verdict is given for it.
   * Above {@linkcode MAX_FOOTPRINT_PAGES} it is measured at that size.
   */
  footprintPages?: number;
  /** Code spreads to measure, MiB (default 1, 4, 16). */
  spreadsMiB?: readonly number[];
  /** Variants (default both). */
  variants?: readonly CalibrationVariant[];
  /**
   * Seconds the calibration may take, setup included (default 1.5); the
   * timed repetitions go on until then, and to at least 6 pairs each.
   */
  seconds?: number;
  /**
   * Milliseconds of CPU time per timed sample (default 0.5: many short
   * samples make tighter intervals than few long ones when other
   * processes compete for the CPU).
   */
  sampleMs?: number;
}

/** The median of the paired ratios and its distribution-free interval. */
export interface RatioInterval {
  /** Median of the paired ratios time on 4 KiB pages / time on 2 MiB pages. */
  median: number;
  /** Lower end (an order statistic of the ratios). */
  lo: number;
  /** Upper end. */
  hi: number;
  /** Probability that [lo, hi] holds the true median (>= 0.95 from 6 pairs on). */
  confidence: number;
}

/** One variant at one spread. */
export interface CalibrationRow {
  /** The variant. */
  variant: CalibrationVariant;
  /** Paired repetitions (each: one sample on 2 MiB pages, one on 4 KiB). */
  pairs: number;
  /** Calls per timed sample. */
  callsPerSample: number;
  /** Median ns per call on 2 MiB pages. */
  hugeNsPerCall: number;
  /** Median ns per call on 4 KiB pages. */
  smallNsPerCall: number;
  /** 4 KiB / 2 MiB: above 1, 2 MiB pages were faster. */
  ratio: RatioInterval;
  /**
   * Of 2 MiB pages: `"faster"` when the interval lies above 1 and the
   * median at least {@linkcode MIN_EFFECT} above it, `"slower"` likewise
   * below, `"none"` otherwise.
   */
  effect: "faster" | "slower" | "none";
}

/** One code spread. */
export interface CalibrationSpread {
  /** Functions (4 KiB pages) the code is spread over. */
  pages: number;
  /** Whether this is the footprint the caller gave (possibly capped). */
  footprint: boolean;
  /** Bytes of each area (a multiple of 2 MiB). */
  areaBytes: number;
  /** Bytes of the 2 MiB-page area on 2 MiB pages in smaps (all, or no measurement). */
  hugeAreaOnHuge: number;
  /** Bytes of the 4 KiB-page area on 2 MiB pages in smaps (0, or no measurement). */
  smallAreaOnHuge: number;
  /** Per variant. */
  rows: CalibrationRow[];
  /** Any variant slower: `"loses"`; else any faster: `"pays"`. */
  verdict: Exclude<CalibrationVerdict, "cannot measure">;
}

/** What {@linkcode calibrate} found. */
export interface Calibration {
  /**
   * At the footprint given, or `"cannot measure"`; absent when measured
   * without a footprint (see each spread's verdict).
   */
  verdict?: CalibrationVerdict;
  /** With `"cannot measure"`: why. */
  reason?: string;
  /** One plain sentence. */
  summary: string;
  /** The footprint asked for, in 4 KiB pages. */
  footprintPages?: number;
  /** CPU architecture. */
  arch: string;
  /** The spreads measured, smallest first (empty when nothing was measured). */
  spreads: CalibrationSpread[];
  /** Wall-clock seconds the calibration took, setup included. */
  seconds: number;
}

/** Largest footprint measured as such, in 4 KiB pages (32 MiB). */
export const MAX_FOOTPRINT_PAGES = 8192;
/** Smallest relative difference counted as an effect (2%). */
export const MIN_EFFECT = 0.02;

const PAGE = 4096;
const LINE = 64;
const MIN_PAIRS = 6;
const MAX_PAIRS = 64;
const PROBE_CALLS = 2000;
const DEFAULT_SPREADS_MIB = [1, 4, 16] as const;
const VARIANTS: readonly CalibrationVariant[] = ["call", "syscall"];
/** `enum pp_cal_step`, by number. */
/** What each `PP_CAL_STEP_*` of `trampoline/primer.h` did, for messages. */
const STEPS: Record<number, string> = {
  [PP_CAL_STEP.PP_CAL_STEP_CHECK]: "check",
  [PP_CAL_STEP.PP_CAL_STEP_MAP]: "mmap",
  [PP_CAL_STEP.PP_CAL_STEP_TRIM]: "munmap of the alignment slack",
  [PP_CAL_STEP.PP_CAL_STEP_ADVISE]: "madvise",
  [PP_CAL_STEP.PP_CAL_STEP_PROTECT]: "mprotect read+exec",
  [PP_CAL_STEP.PP_CAL_STEP_UNMAP]: "munmap",
};

/** The calibration could not run: `reason` says why, for "cannot measure". */
export class CalibrationError extends Error {
  /**
   * @param reason What failed, in words for the user.
   * @param cause The likely cause when nothing more specific is known.
   */
  constructor(readonly reason: string, readonly likely?: string) {
    super(likely === undefined ? reason : `${reason}: ${likely}`);
    this.name = "CalibrationError";
  }
}

/** The functions of one spread: code image and call order. */
export interface SpreadCode {
  /** Functions, one per 4 KiB page. */
  pages: number;
  /** The bytes to map: page p holds `f(x) = x + p + 1` at a random cache line, traps around. */
  image: Uint8Array;
  /** Offsets of the functions from the area's start, in call order (a random permutation). */
  table: Uint32Array;
  /** Sum of the values `table[0..k)` return with x = 0, k = 0..pages. */
  prefix: Float64Array;
}

/** A small fixed-seed PRNG (mulberry32): the same layout every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * Builds the code of a spread: one function per 4 KiB page, page p
 * returning x + p + 1, at a random cache line of its page (so the
 * functions do not all share cache sets), called in a random order.
 *
 * @example
 * ```ts
 * import { FUNCTION_CODE, spreadCode } from "./calibrate.ts";
 * const s = spreadCode(4, FUNCTION_CODE.x86_64!);
 * console.log(s.image.length, s.table.length, s.prefix[4]); // 16384 4 10
 * ```
 *
 * @param pages Functions (4 KiB pages), at least 1.
 * @param code The architecture's function code.
 * @param seed PRNG seed of the layout and order.
 */
export function spreadCode(
  pages: number,
  code: FunctionCode,
  seed = 1,
): SpreadCode {
  if (!Number.isInteger(pages) || pages < 1 || pages > 1 << 20) {
    throw new RangeError(
      `spreadCode: pages must be an integer 1..${1 << 20}; got ${pages}`,
    );
  }
  const rand = prng(seed);
  const image = new Uint8Array(pages * PAGE).fill(code.trap);
  const offsets = new Uint32Array(pages);
  for (let p = 0; p < pages; p++) {
    const body = code.encode(p + 1);
    const lines = Math.floor((PAGE - body.length) / LINE) + 1;
    offsets[p] = p * PAGE + Math.floor(rand() * lines) * LINE;
    image.set(body, offsets[p]);
  }
  const table = offsets.slice();
  for (let i = pages - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const swap = table[i]!;
    table[i] = table[j]!;
    table[j] = swap;
  }
  const prefix = new Float64Array(pages + 1);
  for (let k = 0; k < pages; k++) {
    prefix[k + 1] = prefix[k]! + Math.floor(table[k]! / PAGE) + 1;
  }
  return { pages, image, table, prefix };
}

/**
 * What `calls` calls through a spread's table return at the end, from
 * x = 0: every call adds its function's value.
 *
 * @example
 * ```ts
 * import { expectedSum, FUNCTION_CODE, spreadCode } from "./calibrate.ts";
 * const s = spreadCode(4, FUNCTION_CODE.x86_64!);
 * console.log(expectedSum(s, 9)); // 2 * 10 + the first function's value
 * ```
 */
export function expectedSum(spread: SpreadCode, calls: number): number {
  const n = spread.pages;
  return Math.floor(calls / n) * spread.prefix[n]! +
    spread.prefix[calls % n]!;
}

/** An area of code mapped by {@linkcode mapCode}. */
export interface CodeArea {
  /** Start, 2 MiB aligned. */
  start: number;
  /** Bytes, a multiple of 2 MiB. */
  len: number;
  /** Asked for 2 MiB pages. */
  huge: boolean;
  /** errno of `MADV_COLLAPSE` (2 MiB area), 0 when it worked. */
  collapseErrno: number;
}

/** A `struct pp_calibrate` with the given fields set (the others 0). */
function request(
  fields: Partial<Record<keyof typeof PP_CALIBRATE, bigint>>,
): BigUint64Array {
  const w = new BigUint64Array(CALIBRATE_WORDS);
  for (const [name, v] of Object.entries(fields)) {
    w[PP_CALIBRATE[name as keyof typeof PP_CALIBRATE]] = v;
  }
  return w;
}

function failure(w: BigUint64Array, what: string): CalibrationError {
  const step = Number(w[PP_CALIBRATE.step]);
  const errno = Number(w[PP_CALIBRATE.err]);
  return new CalibrationError(
    `${what}: ${STEPS[step] ?? `step ${step}`} failed with ${errnoName(errno)}`,
  );
}

/**
 * Maps a spread's code read+exec (`trampoline/calibrate.c`): on 2 MiB pages
 * (`MADV_HUGEPAGE`, then `MADV_COLLAPSE`) or on 4 KiB pages
 * (`MADV_NOHUGEPAGE`). Whether the kernel really gave 2 MiB pages is for
 * the caller to check in smaps ({@linkcode areaOnHuge}).
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { loadTrampoline } from "../remap/trampoline.ts";
 * import { FUNCTION_CODE, mapCode, spreadCode, unmapCode } from "./calibrate.ts";
 * const t = loadTrampoline(libc());
 * const area = mapCode(t, spreadCode(256, FUNCTION_CODE.x86_64!), true);
 * unmapCode(t, area);
 * ```
 *
 * @throws {CalibrationError} When a step fails (the area is unmapped).
 */
export function mapCode(
  t: Trampoline,
  spread: SpreadCode,
  huge: boolean,
): CodeArea {
  const { image } = spread;
  const len = Math.ceil(image.length / HUGE_PAGE) * HUGE_PAGE;
  const w = request({
    op: BigInt(PP_CAL_MAP),
    flags: huge ? BigInt(PP_CAL_F_HUGE) : 0n,
    len: BigInt(len),
    image: BigInt(addressOf(image)),
    imageLen: BigInt(image.length),
  });
  if (t.calibrate(w) !== 0) {
    throw failure(w, `mapping ${len >> 20} MiB of code`);
  }
  return {
    start: Number(w[PP_CALIBRATE.start]),
    len,
    huge,
    collapseErrno: Number(w[PP_CALIBRATE.collapseErr]),
  };
}

/** What one run of calls returned. */
export interface RunResult {
  /** The last x: {@linkcode expectedSum} when the code ran as built. */
  value: number;
  /** This thread's CPU time over the calls, ns; 0 when it could not be read. */
  cpuNs: number;
}

/**
 * Makes `calls` calls x = f(x) through the spread's table from x = 0,
 * each followed by a `gettid()` system call in the `"syscall"` variant.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { loadTrampoline } from "../remap/trampoline.ts";
 * import { expectedSum, FUNCTION_CODE, mapCode, runCode, spreadCode } from "./calibrate.ts";
 * const t = loadTrampoline(libc());
 * const s = spreadCode(256, FUNCTION_CODE.x86_64!);
 * const area = mapCode(t, s, false);
 * console.log(runCode(t, area, s, 1000, "call").value === expectedSum(s, 1000)); // true
 * ```
 */
export function runCode(
  t: Trampoline,
  area: CodeArea,
  spread: SpreadCode,
  calls: number,
  variant: CalibrationVariant,
): RunResult {
  if (!Number.isInteger(calls) || calls < 1) {
    throw new RangeError(
      `runCode: calls must be an integer >= 1; got ${calls}`,
    );
  }
  const w = request({
    op: BigInt(PP_CAL_RUN),
    flags: variant === "syscall" ? BigInt(PP_CAL_F_SYSCALL) : 0n,
    start: BigInt(area.start),
    len: BigInt(area.len),
    table: BigInt(addressOf(spread.table)),
    tableLen: BigInt(spread.table.length),
    calls: BigInt(calls),
  });
  if (t.calibrate(w) !== 0) throw failure(w, "calling the code");
  return {
    value: Number(w[PP_CALIBRATE.x]),
    cpuNs: Number(w[PP_CALIBRATE.cpuNs]),
  };
}

/**
 * Unmaps an area {@linkcode mapCode} returned.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { loadTrampoline } from "../remap/trampoline.ts";
 * import { FUNCTION_CODE, mapCode, spreadCode, unmapCode } from "./calibrate.ts";
 * const t = loadTrampoline(libc());
 * unmapCode(t, mapCode(t, spreadCode(1, FUNCTION_CODE.x86_64!), false));
 * ```
 */
export function unmapCode(t: Trampoline, area: CodeArea): void {
  const w = request({
    op: BigInt(PP_CAL_UNMAP),
    start: BigInt(area.start),
    len: BigInt(area.len),
  });
  if (t.calibrate(w) !== 0) throw failure(w, "unmapping the code");
}

/**
 * Bytes of an area on 2 MiB pages, from smaps.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { readSmaps } from "../sys/objects.ts";
 * import { loadTrampoline } from "../remap/trampoline.ts";
 * import { areaOnHuge, FUNCTION_CODE, mapCode, spreadCode } from "./calibrate.ts";
 * const area = mapCode(loadTrampoline(libc()), spreadCode(256, FUNCTION_CODE.x86_64!), true);
 * console.log(areaOnHuge(readSmaps(libc()), area) === area.len); // true where THP works
 * ```
 */
export function areaOnHuge(smaps: readonly SmapsVma[], area: CodeArea): number {
  return sumIn(smaps, area.start, area.start + area.len, hugeBytes);
}

/**
 * P(X <= j) for X ~ Binomial(n, 1/2).
 */
function binomialCdf(n: number, j: number): number {
  let p = 2 ** -n;
  let sum = 0;
  for (let i = 0; i <= j; i++) {
    sum += p;
    p = p * (n - i) / (i + 1);
  }
  return sum;
}

/**
 * The median of `xs` and the distribution-free interval between two order
 * statistics that holds the true median with probability >= 95% (from 6
 * values on; with fewer, the whole range and its lower confidence). Pure.
 *
 * @example
 * ```ts
 * import { medianInterval } from "./calibrate.ts";
 * const r = medianInterval([1.01, 1.03, 0.99, 1.02, 1.05, 1.0, 1.04, 1.02]);
 * console.log(r.median, r.lo, r.hi); // 1.02 0.99 1.05
 * ```
 */
export function medianInterval(xs: readonly number[]): RatioInterval {
  if (xs.length === 0) {
    throw new RangeError("medianInterval: no values");
  }
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const median = n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  // The largest k (1-based) with P(X < k) <= 2.5%: [s(k), s(n+1-k)].
  let k = 1;
  while (k < n / 2 && binomialCdf(n, k) <= 0.025) k++;
  return {
    median,
    lo: s[k - 1]!,
    hi: s[n - k]!,
    confidence: 1 - 2 * binomialCdf(n, k - 1),
  };
}

/**
 * The effect of 2 MiB pages from a ratio 4 KiB / 2 MiB. Pure.
 *
 * @example
 * ```ts
 * import { ratioEffect } from "./calibrate.ts";
 * console.log(ratioEffect({ median: 0.94, lo: 0.93, hi: 0.95, confidence: 0.98 })); // "slower"
 * ```
 */
export function ratioEffect(r: RatioInterval): CalibrationRow["effect"] {
  if (r.lo > 1 && r.median >= 1 + MIN_EFFECT) return "faster";
  if (r.hi < 1 && r.median <= 1 - MIN_EFFECT) return "slower";
  return "none";
}

/**
 * The verdict of a spread from its rows: a loss in any variant loses (the
 * conservative reading: real code enters the kernel); otherwise a gain in
 * any pays. Pure.
 *
 * @example
 * ```ts
 * import { spreadVerdict } from "./calibrate.ts";
 * console.log(spreadVerdict([{ effect: "faster" }, { effect: "none" }])); // "pays"
 * ```
 */
export function spreadVerdict(
  rows: readonly Pick<CalibrationRow, "effect">[],
): CalibrationSpread["verdict"] {
  if (rows.some((r) => r.effect === "slower")) return "loses";
  if (rows.some((r) => r.effect === "faster")) return "pays";
  return "no difference measured";
}

/** One area pair and its variants, as measured. */
interface Setup {
  pages: number;
  footprint: boolean;
  spread: SpreadCode;
  huge: CodeArea;
  small: CodeArea;
  variants: {
    variant: CalibrationVariant;
    calls: number;
    huge: number[];
    small: number[];
  }[];
}

function checkOptions(o: CalibrateOptions): void {
  const fp = o.footprintPages;
  if (fp !== undefined && (!Number.isInteger(fp) || fp < 1)) {
    throw new RangeError(
      `calibrate: footprintPages must be an integer >= 1; got ${fp}`,
    );
  }
  for (const m of o.spreadsMiB ?? []) {
    if (!(m > 0 && m <= 256 && Number.isInteger(m * 256))) {
      throw new RangeError(
        `calibrate: spreadsMiB must be whole 4 KiB pages of up to 256 MiB; got ${m}`,
      );
    }
  }
  for (const v of o.variants ?? []) {
    if (!VARIANTS.includes(v)) {
      throw new RangeError(
        `calibrate: unknown variant "${v}"; variants: ${VARIANTS.join(", ")}`,
      );
    }
  }
  if (o.seconds !== undefined && !(o.seconds > 0 && o.seconds <= 60)) {
    throw new RangeError(
      `calibrate: seconds must be in (0, 60]; got ${o.seconds}`,
    );
  }
  if (o.sampleMs !== undefined && !(o.sampleMs >= 0.1 && o.sampleMs <= 1000)) {
    throw new RangeError(
      `calibrate: sampleMs must be in [0.1, 1000]; got ${o.sampleMs}`,
    );
  }
}

/** Why THP cannot give this process 2 MiB pages, or undefined. */
function thpBlocker(c: Libc): string | undefined {
  const thp = thpStatus(c);
  if (thp.usable) return undefined;
  if (thp.processDisabled) {
    return "THP is disabled for this process (PR_SET_THP_DISABLE), so no code can be put on 2 MiB pages to compare";
  }
  if (thp.enabled === "unavailable") {
    return "this kernel has no transparent huge pages (CONFIG_TRANSPARENT_HUGEPAGE)";
  }
  return `THP enabled=${thp.enabled} and no MADV_COLLAPSE (Linux < 6.1)`;
}

function sizes(o: CalibrateOptions): { pages: number; footprint: boolean }[] {
  const pages = new Set(
    (o.spreadsMiB ?? DEFAULT_SPREADS_MIB).map((m) => Math.round(m * 256)),
  );
  const out = [...pages].map((p) => ({ pages: p, footprint: false }));
  if (o.footprintPages !== undefined) {
    const fp = Math.min(o.footprintPages, MAX_FOOTPRINT_PAGES);
    const same = out.find((s) => s.pages === fp);
    if (same) same.footprint = true;
    else out.push({ pages: fp, footprint: true });
  }
  return out.sort((a, b) => a.pages - b.pages);
}

/**
 * Maps both areas of every spread, each added to `areas` as soon as it is
 * mapped (the caller unmaps them all, whatever happens).
 */
function setUp(
  t: Trampoline,
  code: FunctionCode,
  o: CalibrateOptions,
  areas: CodeArea[],
): Setup[] {
  const wanted = sizes(o);
  const all = spreadCode(Math.max(...wanted.map((s) => s.pages)), code);
  return wanted.map(({ pages, footprint }) => {
    const spread = pages === all.pages ? all : {
      pages,
      image: all.image.subarray(0, pages * PAGE),
      ...orderOf(all, pages),
    };
    const huge = mapCode(t, spread, true);
    areas.push(huge);
    const small = mapCode(t, spread, false);
    areas.push(small);
    return {
      pages,
      footprint,
      spread,
      huge,
      small,
      variants: (o.variants ?? VARIANTS).map((variant) => ({
        variant,
        calls: 0,
        huge: [],
        small: [],
      })),
    };
  });
}

/** The first `pages` functions of a larger spread, in its order. */
function orderOf(
  all: SpreadCode,
  pages: number,
): { table: Uint32Array; prefix: Float64Array } {
  const table = all.table.filter((off) => off < pages * PAGE);
  const prefix = new Float64Array(pages + 1);
  for (let k = 0; k < pages; k++) {
    prefix[k + 1] = prefix[k]! + Math.floor(table[k]! / PAGE) + 1;
  }
  return { table, prefix };
}

/** Checks in smaps: every 2 MiB area entirely huge, no 4 KiB area huge; returns what smaps showed. */
function verifyPages(
  c: Libc,
  setups: readonly Setup[],
  when: string,
): { hugeOnHuge: number; smallOnHuge: number }[] {
  const smaps = readSmaps(c);
  return setups.map((s) => {
    const onHuge = areaOnHuge(smaps, s.huge);
    if (onHuge !== s.huge.len) {
      throw new CalibrationError(
        `smaps showed ${(onHuge / 2 ** 20).toFixed(0)} of ${
          s.huge.len >> 20
        } MiB of the 2 MiB-page code on 2 MiB pages ${when} (MADV_COLLAPSE: ${
          s.huge.collapseErrno ? errnoName(s.huge.collapseErrno) : "ok"
        })`,
        "the kernel found no free 2 MiB pages (memory short or fragmented)",
      );
    }
    const small = areaOnHuge(smaps, s.small);
    if (small !== 0) {
      throw new CalibrationError(
        `smaps showed ${
          (small / 2 ** 20).toFixed(0)
        } MiB of the 4 KiB-page code on 2 MiB pages ${when}, despite MADV_NOHUGEPAGE`,
      );
    }
    return { hugeOnHuge: onHuge, smallOnHuge: small };
  });
}

/**
 * One timed run, in ms of this thread's CPU time (time spent waiting for a
 * CPU does not count; wall time where the clock cannot be read); checks
 * that the code returned what it should.
 */
function timed(
  t: Trampoline,
  area: CodeArea,
  spread: SpreadCode,
  calls: number,
  variant: CalibrationVariant,
): number {
  const t0 = performance.now();
  const r = runCode(t, area, spread, calls, variant);
  const ms = performance.now() - t0;
  const want = expectedSum(spread, calls);
  if (r.value !== want) {
    throw new CalibrationError(
      `the spread code returned ${r.value} after ${calls} calls, not ${want}: it did not run as built`,
    );
  }
  return r.cpuNs > 0 ? r.cpuNs / 1e6 : ms;
}

/** Calls per sample for about `sampleMs`, at least one pass over the table. */
function sizeSamples(t: Trampoline, setups: Setup[], sampleMs: number): void {
  for (const s of setups) {
    for (const v of s.variants) {
      const probe = Math.max(PROBE_CALLS, s.pages);
      timed(t, s.small, s.spread, probe, v.variant); // warm
      const ms = Math.max(timed(t, s.small, s.spread, probe, v.variant), 1e-3);
      v.calls = Math.min(
        2 ** 31,
        Math.max(s.pages, Math.round(probe * sampleMs / ms)),
      );
    }
  }
}

/** One warm-up, then one timed sample per mode, the order alternating. */
function measurePair(t: Trampoline, s: Setup, v: Setup["variants"][number]) {
  const modes = v.huge.length % 2 === 0
    ? [true, false] as const
    : [false, true] as const;
  for (const huge of modes) {
    const area = huge ? s.huge : s.small;
    const warm = Math.max(1, Math.min(s.pages, Math.floor(v.calls / 4)));
    timed(t, area, s.spread, warm, v.variant);
    const ms = timed(t, area, s.spread, v.calls, v.variant);
    (huge ? v.huge : v.small).push(ms);
  }
}

function median(xs: readonly number[]): number {
  return medianInterval(xs).median;
}

function rowOf(v: Setup["variants"][number]): CalibrationRow {
  const ratio = medianInterval(v.small.map((s, i) => s / v.huge[i]!));
  return {
    variant: v.variant,
    pairs: v.huge.length,
    callsPerSample: v.calls,
    hugeNsPerCall: median(v.huge) * 1e6 / v.calls,
    smallNsPerCall: median(v.small) * 1e6 / v.calls,
    ratio,
    effect: ratioEffect(ratio),
  };
}

function mib(pages: number): string {
  const m = pages / 256;
  return `${Number.isInteger(m) ? m : m.toFixed(2)} MiB`;
}

function ratioText(r: CalibrationRow): string {
  return `${r.variant} ${r.ratio.median.toFixed(3)} [${
    r.ratio.lo.toFixed(3)
  }, ${r.ratio.hi.toFixed(3)}]`;
}

function summaryOf(cal: Omit<Calibration, "summary">): string {
  if (cal.verdict === "cannot measure") {
    return `cannot measure: ${cal.reason}`;
  }
  const fp = cal.spreads.find((s) => s.footprint);
  if (fp !== undefined) {
    const capped = cal.footprintPages! > fp.pages
      ? ` (measured at ${mib(fp.pages)}, the largest spread calibrated)`
      : "";
    return `2 MiB code pages: ${fp.verdict} on this machine at a hot-code footprint of ${cal.footprintPages} pages (${
      mib(cal.footprintPages!)
    })${capped}; time on 4 KiB / 2 MiB pages: ${
      fp.rows.map(ratioText).join(", ")
    }`;
  }
  return `2 MiB code pages on this machine, by hot-code spread: ${
    cal.spreads.map((s) => `${mib(s.pages)} ${s.verdict}`).join(", ")
  }; give the workload's footprint (cli.ts footprint, then doctor --footprint-pages N) for its verdict`;
}

function finish(
  partial: Omit<Calibration, "summary" | "seconds">,
  t0: number,
): Calibration {
  const cal = { ...partial, seconds: (performance.now() - t0) / 1000 };
  return { ...cal, summary: summaryOf(cal) };
}

function cannot(
  reason: string,
  base: { arch: string; footprintPages?: number },
  t0: number,
): Calibration {
  return finish(
    { verdict: "cannot measure", reason, ...base, spreads: [] },
    t0,
  );
}

/** The timed repetitions, round robin over every spread and variant. */
function measureAll(t: Trampoline, setups: Setup[], end: number): void {
  for (let pair = 0; pair < MAX_PAIRS; pair++) {
    if (pair >= MIN_PAIRS && performance.now() >= end) break;
    for (const s of setups) {
      for (const v of s.variants) measurePair(t, s, v);
    }
  }
}

/**
 * Measures in this process whether code on 2 MiB pages runs faster than on
 * 4 KiB pages, at a few code spreads and at the workload's footprint when
 * given, and says so: `"pays"`, `"loses"`, `"no difference measured"` or
 * `"cannot measure"` (with the reason: THP unavailable, no free huge pages,
 * no function code for this architecture...). Never throws for the
 * machine's sake; a bad option is a `RangeError`. Takes about `seconds`
 * (1.5 s; longer when the CPUs are busy, as it needs at least 6 pairs per
 * measurement), and maps two copies of each spread (2 x (2 + 4 + 16) MiB
 * and the footprint's, at most 2 x 32 MiB), all unmapped before it returns.
 * A VM's neighbours and other threads of the process add noise, which the
 * paired, interleaved repetitions and the interval absorb as well as they
 * can: read a verdict as this machine's, at this moment.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { calibrate } from "./calibrate.ts";
 * const cal = calibrate(libc(), { footprintPages: 800 });
 * console.log(cal.verdict, cal.summary); // e.g. "loses", "2 MiB code pages: loses on this machine at ..."
 * ```
 */
export function calibrate(
  c: Libc,
  options: CalibrateOptions = {},
): Calibration {
  checkOptions(options);
  const t0 = performance.now();
  const arch = runtimeInfo().arch;
  const base = {
    arch,
    ...(options.footprintPages !== undefined
      ? { footprintPages: options.footprintPages }
      : {}),
  };
  const code = FUNCTION_CODE[arch];
  if (code === undefined) {
    return cannot(`no calibration code for ${arch} yet`, base, t0);
  }
  // Not a shortcut: the areas are mapped and checked in smaps even then,
  // and the kernel's view decides; this only names the likely cause.
  const blocker = thpBlocker(c);
  let t: Trampoline;
  try {
    t = loadTrampoline(c);
  } catch (e) {
    return cannot(
      `the trampoline could not be loaded: ${
        e instanceof Error ? e.message : e
      }`,
      base,
      t0,
    );
  }
  const areas: CodeArea[] = [];
  try {
    const setups = setUp(t, code, options, areas);
    verifyPages(c, setups, "before the measurement");
    sizeSamples(t, setups, options.sampleMs ?? 0.5);
    measureAll(t, setups, t0 + (options.seconds ?? 1.5) * 1000);
    const seen = verifyPages(c, setups, "after the measurement");
    const spreads = setups.map((s, i): CalibrationSpread => {
      const rows = s.variants.map(rowOf);
      return {
        pages: s.pages,
        footprint: s.footprint,
        areaBytes: s.huge.len,
        hugeAreaOnHuge: seen[i]!.hugeOnHuge,
        smallAreaOnHuge: seen[i]!.smallOnHuge,
        rows,
        verdict: spreadVerdict(rows),
      };
    });
    const fp = spreads.find((s) => s.footprint);
    return finish({
      ...(fp ? { verdict: fp.verdict } : {}),
      ...base,
      spreads,
    }, t0);
  } catch (e) {
    if (!(e instanceof CalibrationError)) throw e;
    return cannot(
      blocker === undefined ? e.message : `${blocker}: ${e.reason}`,
      base,
      t0,
    );
  } finally {
    for (const a of areas) {
      try {
        unmapCode(t, a);
      } catch {
        // Only a bad request fails, and these are the areas mapCode made.
      }
    }
  }
}

/**
 * Renders a calibration as text: the verdict, then per spread and variant
 * ns per call on each page size and the ratio with its interval.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { calibrate, formatCalibration } from "./calibrate.ts";
 * console.log(formatCalibration(calibrate(libc())));
 * ```
 */
export function formatCalibration(cal: Calibration): string {
  const lines = [cal.summary];
  if (cal.spreads.length === 0) return lines.join("\n");
  lines.push(
    `  spread     variant   2 MiB ns/call  4 KiB ns/call  4 KiB / 2 MiB [interval]   pairs  2 MiB pages`,
  );
  for (const s of cal.spreads) {
    for (const r of s.rows) {
      lines.push(
        `  ${`${mib(s.pages)}${s.footprint ? "*" : ""}`.padEnd(10)} ${
          r.variant.padEnd(8)
        } ${r.hugeNsPerCall.toFixed(1).padStart(14)} ${
          r.smallNsPerCall.toFixed(1).padStart(14)
        }  ${
          `${r.ratio.median.toFixed(3)} [${r.ratio.lo.toFixed(3)}, ${
            r.ratio.hi.toFixed(3)
          }]`.padEnd(25)
        } ${String(r.pairs).padStart(6)}  ${
          r.effect === "none" ? "no difference" : r.effect
        }`,
      );
    }
  }
  lines.push(
    `  (${
      cal.seconds.toFixed(1)
    } s; ratio above 1: faster on 2 MiB pages; intervals >= ${
      Math.floor(
        Math.min(
          ...cal.spreads.flatMap((s) => s.rows.map((r) => r.ratio.confidence)),
        ) * 100,
      )
    }%${cal.spreads.some((s) => s.footprint) ? "; * the footprint" : ""})`,
  );
  return lines.join("\n");
}
