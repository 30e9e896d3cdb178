/**
 * The builder: `prime().mlock(true).populate(true).run()`.
 *
 * @module
 */

import {
  ffiAvailability,
  FfiUnavailableError,
  runtimeEnv,
  runtimeInfo,
} from "./sys/ffi.ts";
import {
  ERRNO,
  explainFailure,
  type Libc,
  libc,
  type StepError,
  SyscallError,
} from "./sys/libc.ts";
import { formatAutoIssue, parsePagePrimer } from "./auto_config.ts";
import { basename } from "./sys/format.ts";
import { lockRanges, type MlockOptions } from "./mlock.ts";
import {
  alignedRanges,
  readFileVmas,
  readVmaStats,
  withVmaQueries,
} from "./sys/vma_stats.ts";
import {
  loadedObjects,
  mainExecutable,
  type ProcessStatus,
  readStatus,
  unpinObjects,
} from "./sys/objects.ts";
import {
  PrimeOutcome,
  type PrimeOutcomeData,
  type SegmentAction,
  type SegmentReport,
  totalsOf,
} from "./outcome.ts";
import type { SmapsVma } from "./sys/maps.ts";
import { PerfMapError, writePerfMap } from "./remap/perf_map.ts";
import { type PopulateOptions, populateRanges } from "./populate.ts";
import {
  checkMlockOptions,
  checkObjectSelectors,
  checkPopulateOptions,
  checkRemapOptions,
  checkStrict,
} from "./options.ts";
import { clearSharedCopies, type ShareOptions } from "./remap/share.ts";
import { remapObjects } from "./remap/execute.ts";
import {
  emptyRestoreReport,
  type RemapOptions,
  type RemapReport,
  type RestoreReport,
} from "./remap/report.ts";
import { restoreRemapped } from "./remap/restore.ts";
import {
  aliasRanges,
  byPriority,
  type LoadedObject,
  measureRange,
  type ObjectSelector,
  type SegmentRange,
  segmentRanges,
  selectObjects,
} from "./sys/segments.ts";

export type { MlockOptions } from "./mlock.ts";
export type { RemapOptions } from "./remap/report.ts";
export type { ShareOptions } from "./remap/share.ts";
export type { ObjectSelector } from "./sys/segments.ts";

export type { PopulateOptions } from "./populate.ts";

/** A domain failure of `run()` in strict mode: the outcome says what went wrong. */
export class PrimeError extends Error {
  /** The outcome that failed. */
  readonly outcome: PrimeOutcome;
  /**
   * Makes the error; `run()` throws it in strict mode.
   *
   * @param message What failed and what to do.
   * @param outcome The outcome of the run.
   */
  constructor(message: string, outcome: PrimeOutcome) {
    super(message);
    this.name = "PrimeError";
    this.outcome = outcome;
  }
}

const SUPPORTED_ARCH = ["x86_64", "aarch64"];

/**
 * Builds and runs a priming of the running executable's pages. Each method
 * returns the builder; `run()` does the work synchronously.
 *
 * @example
 * ```ts
 * import { prime } from "../mod.ts";
 * const out = prime().mlock(true).populate(true).run();
 * out.log();
 * ```
 */
export class Primer {
  #mlock: false | MlockOptions = false;
  #populate: false | PopulateOptions = false;
  #remap: false | RemapOptions = false;
  #objects: ObjectSelector[] = ["main"];
  #strict = false;

  /**
   * Locks the selected objects' LOAD segments in memory: `true` populates
   * and locks now; `{ onFault: true }` locks pages as they are touched.
   *
   * @example
   * ```ts
   * import { prime } from "../mod.ts";
   * prime().mlock({ onFault: true }).run().log();
   * ```
   *
   * @param enable `true`, `false` or {@linkcode MlockOptions}. Default (not
   * called): `false`, nothing is locked.
   * @returns This builder.
   * @throws {TypeError} Not a boolean or `{ onFault?: boolean }`.
   */
  mlock(enable: boolean | MlockOptions): this {
    this.#mlock = checkMlockOptions(enable);
    return this;
  }

  /**
   * Prefaults the selected segments without pinning them
   * (`MADV_POPULATE_READ`).
   *
   * @example
   * ```ts
   * import { prime } from "../mod.ts";
   * prime().populate(true).run().log();
   * ```
   *
   * @param enable `true` or `false`. Default (not called): `false`.
   * @returns This builder.
   * @throws {TypeError} Not a boolean.
   */
  populate(enable: boolean | PopulateOptions): this {
    this.#populate = checkPopulateOptions(enable);
    return this;
  }

  /**
   * Moves the selected objects' code and read-only data onto 2 MiB pages
   * while the process's threads keep running: each region is replaced by an
   * identical copy in one syscall. Options: `align` (`"aggressive"`,
   * default, or `"conservative"`), `pageSize` (`"2m"`, default, or `"4k"`
   * for an A/B copy on small pages). Writable segments are never copied.
   *
   * @example
   * ```ts
   * import { prime } from "../mod.ts";
   * const out = prime().remap(true).run();
   * out.log();
   * ```
   *
   * @param enable `true`, `false` or {@linkcode RemapOptions} (each option's
   * default is documented there). Default (not called): `false`.
   * @returns This builder.
   * @throws {TypeError} Wrong type, unknown key, or `share` with a backend
   * other than memfd.
   * @throws {RangeError} `align`, `pageSize` or `backend` outside its values.
   */
  remap(enable: boolean | RemapOptions): this {
    this.#remap = checkRemapOptions(enable);
    return this;
  }

  /**
   * Chooses the loaded objects to act on (default `"main"`, the runtime's
   * executable). Several selectors are alternatives: `"all"`, a path
   * substring, a RegExp, or a predicate on `{ path, main }`.
   *
   * @example
   * ```ts
   * import { prime } from "../mod.ts";
   * prime().objects("main", "libc.so").mlock(true).run().log();
   * ```
   *
   * @param selectors One or more selectors. Default (not called): `"main"`.
   * @returns This builder.
   * @throws {RangeError} No selector.
   * @throws {TypeError} A selector that is not a non-empty string, a RegExp
   * or a function.
   */
  objects(...selectors: ObjectSelector[]): this {
    this.#objects = checkObjectSelectors(selectors);
    return this;
  }

  /**
   * With `true`, `run()` throws {@linkcode PrimeError} when the outcome is
   * not ok, instead of returning it.
   *
   * @example
   * ```ts
   * import { prime } from "../mod.ts";
   * try {
   *   prime().strict(true).mlock(true).run();
   * } catch (e) {
   *   console.error(e);
   * }
   * ```
   *
   * @param enable `true` or `false`. Default (not called): `false`.
   * @returns This builder.
   * @throws {TypeError} Not a boolean.
   */
  strict(enable: boolean): this {
    this.#strict = checkStrict(enable);
    return this;
  }

  /**
   * Runs the actions and measures the result from the kernel (per-range VMA
   * statistics: `PROCMAP_QUERY` and `PAGEMAP_SCAN`, or smaps where those are
   * missing or memory is locked).
   * Environment problems (not Linux, no `--allow-ffi`, no libc) never throw
   * unless strict: the outcome has `ok: false` and the reason.
   *
   * @example
   * ```ts
   * import { prime } from "../mod.ts";
   * const out = prime().mlock(true).run();
   * if (!out.ok) out.log();
   * ```
   */
  run(): PrimeOutcome {
    const out = this.#run();
    if (this.#strict && !out.ok) {
      const failed = out.segments.filter((s) => s.error);
      const details = failed.map((s) =>
        `${s.object} LOAD ${s.index} (${s.kind}): ${s.error!.message}`
      );
      throw new PrimeError(
        `page-primer: ${[out.reason ?? "run failed", ...details].join("\n  ")}`,
        out,
      );
    }
    return out;
  }

  #requested(): SegmentAction[] {
    const r: SegmentAction[] = [];
    if (this.#remap) {
      r.push(this.#remap.pageSize === "4k" ? "remap-4k" : "remap");
    }
    if (this.#mlock) r.push(this.#mlock.onFault ? "mlock-onfault" : "mlock");
    if (this.#populate) r.push("populate");
    return r;
  }

  #run(): PrimeOutcome {
    const t0 = performance.now();
    const info = runtimeInfo();
    const base = initialData(
      `${info.name} ${info.version}`.trim(),
      this.#requested(),
    );
    const stop = (reason: string, ok = false, disabled = false) => {
      base.durations.totalMs = performance.now() - t0;
      return new PrimeOutcome({ ...base, ok, reason, disabled });
    };
    const unsupported = platformProblem(info.os, info.arch);
    if (unsupported !== undefined) return stop(unsupported);
    const conn = connect(base);
    if (!("c" in conn)) return stop(conn.reason, conn.disabled, conn.disabled);
    try {
      // /proc/self/maps and pagemap opened once for the run's queries.
      return withVmaQueries(conn.c, () => this.#prime(conn.c, base, t0));
    } catch (e) {
      return stop(
        e instanceof SyscallError
          ? `${explainFailure(e)}; nothing was changed after it`
          : `unexpected failure while inspecting the process: ${
            e instanceof Error ? e.message : String(e)
          }; nothing was changed after it`,
      );
    }
  }

  #prime(c: Libc, base: PrimeOutcomeData, t0: number): PrimeOutcome {
    // Libraries are pinned (dlopen RTLD_NOLOAD) before smaps is read, so
    // none is unloaded, and its range reused, while it is being primed.
    const onlyMain = this.#objects.length === 1 && this.#objects[0] === "main";
    const objects: LoadedObject[] = onlyMain
      ? [mainExecutable(c)]
      : loadedObjects(c, {
        pin: true,
        onSkip: (name, why) =>
          base.warnings.push(
            `skipped ${name}: ${why}; the other objects are primed`,
          ),
      });
    try {
      return this.#primeObjects(c, base, t0, objects);
    } finally {
      unpinObjects(c, objects);
    }
  }

  /** The steps in order: inspect, remap (+ perf map), mlock, populate, measure. */
  #primeObjects(
    c: Libc,
    base: PrimeOutcomeData,
    t0: number,
    objects: readonly LoadedObject[],
  ): PrimeOutcome {
    const found = inspect(c, objects, this.#objects);
    const choose = choosers.get(this);
    if (choose !== undefined) {
      choose(seenOf(found));
      base.requested = this.#requested();
    }
    if (base.requested.length > 0) failUnmapped(found);
    if (found.unmatched && base.requested.length === 0) {
      base.warnings.push(found.unmatched);
    }
    const remapped = this.#remap ? remapStep(c, found, this.#remap) : undefined;
    const remap = remapped?.report;
    const locked = this.#mlock
      ? mlockStep(c, found, { options: this.#mlock, remap })
      : undefined;
    const populated = this.#populate ? populateStep(c, found) : undefined;
    base.warnings.push(
      ...locked?.warnings ?? [],
      ...populated?.warnings ?? [],
    );
    const after = base.requested.length === 0
      ? found.before
      : remapped !== undefined && !this.#mlock && !this.#populate
      ? remapped.after
      // VmLck read again: this run's mlock, or another thread's, may have
      // changed it since inspect.
      : readVmaStats(c, alignedRanges(found.ranges)).vmas;
    const segments = segmentReports(found, after, base.requested);
    const totals = totalsOf(segments);
    const reasons = failureReasons({ found, after, remap, totals, base });
    const mlockMs = locked?.ms ?? 0;
    const populateMs = populated?.ms ?? 0;
    const remapMs = remap?.ms ?? 0;
    const perfMapMs = remapped?.perfMapMs ?? 0;
    const totalMs = performance.now() - t0;
    const data: PrimeOutcomeData = {
      ...base,
      ok: reasons.length === 0,
      segments,
      totals,
      durations: {
        inspectMs: totalMs - mlockMs - populateMs - remapMs - perfMapMs,
        mlockMs,
        populateMs,
        remapMs,
        perfMapMs,
        totalMs,
      },
      warnings: base.warnings,
    };
    if (reasons.length) data.reason = reasons.join("; ");
    if (remap) data.remap = remap;
    return new PrimeOutcome(data, () => restoreRemapped(c));
  }
}

/** The outcome's data before anything ran: nothing done, zero durations. */
function initialData(
  runtime: string,
  requested: SegmentAction[],
): PrimeOutcomeData {
  return {
    ok: false,
    disabled: false,
    runtime,
    pid: 0,
    kernel: "",
    requested,
    segments: [],
    totals: totalsOf([]),
    durations: {
      inspectMs: 0,
      mlockMs: 0,
      populateMs: 0,
      remapMs: 0,
      perfMapMs: 0,
      totalMs: 0,
    },
    warnings: [],
  };
}

/** Why this OS or CPU cannot be primed, or undefined when it can. */
function platformProblem(os: string, arch: string): string | undefined {
  if (os !== "linux") {
    return `page-primer works on Linux only; this is ${os}`;
  }
  if (!SUPPORTED_ARCH.includes(arch)) {
    return `unsupported CPU architecture ${arch}; page-primer supports ${
      SUPPORTED_ARCH.join(" and ")
    }`;
  }
  return undefined;
}

const OFF_REASON = "PAGE_PRIMER=off in the environment: nothing done";

/**
 * What `PAGE_PRIMER` makes of this run, read by the preload's parser (the
 * one parser of the variable): off, a value not accepted (the run does
 * nothing and says which value), or go on.
 */
function pagePrimerStop(
  raw: string | undefined,
): { reason: string; disabled: boolean } | undefined {
  const sw = parsePagePrimer(raw);
  if (sw.off) return { reason: OFF_REASON, disabled: true };
  if (sw.error) {
    return {
      reason: `${formatAutoIssue(sw.error)}; nothing done`,
      disabled: false,
    };
  }
  return undefined;
}

/**
 * libc, with the pid and kernel release written into `base`; or why the run
 * stops before it starts (`disabled` when `PAGE_PRIMER=off`). The variable is
 * read through the runtime when native code is unavailable, else from the
 * process's environment (which a preload may have changed).
 */
function connect(
  base: PrimeOutcomeData,
): { c: Libc } | { reason: string; disabled: boolean } {
  const why = ffiAvailability();
  if (why !== undefined) {
    return pagePrimerStop(runtimeEnv("PAGE_PRIMER")) ??
      { reason: why, disabled: false };
  }
  let c: Libc;
  try {
    c = libc();
  } catch (e) {
    return {
      reason: e instanceof Error ? e.message : String(e),
      disabled: false,
    };
  }
  base.pid = c.getpid();
  try {
    base.kernel = c.kernelRelease();
  } catch {
    // uname cannot fail in practice; leave it empty if it does.
  }
  return pagePrimerStop(c.getenv("PAGE_PRIMER")) ?? { c };
}

/** What the inspect step found: the ranges to act on and the failures so far. */
interface Inspection {
  /** The system page size. */
  pageSize: number;
  /**
   * The VMA statistics (smaps fields) of `alignedRanges(ranges)` before any
   * action.
   */
  before: SmapsVma[];
  /** `/proc/self/status` as read once at the start of the run. */
  status: ProcessStatus;
  /** The objects the selectors matched. */
  selected: LoadedObject[];
  /** Why no loaded object matched the selectors, when none did. */
  unmatched?: string;
  /** LOAD segments and their aliases in the selected objects. */
  ranges: SegmentRange[];
  /** The fully mapped ranges, by priority: the ones mlock and populate act on. */
  usable: SegmentRange[];
  /** The ranges not wholly mapped: left untouched. */
  partlyUnmapped: Set<SegmentRange>;
  /** Each failed range's failure; the steps add theirs. */
  errors: Map<SegmentRange, StepError>;
}

/**
 * Selects the objects and their ranges, reads their VMA statistics, sets
 * the partly unmapped aside.
 */
function inspect(
  c: Libc,
  objects: readonly LoadedObject[],
  selectors: readonly ObjectSelector[],
): Inspection {
  const pageSize = c.pageSize();
  const selected = selectObjects(objects, selectors);
  const unmatched = selected.length === 0
    ? unmatchedMessage(objects, selectors)
    : undefined;
  const files = readFileVmas(c);
  const ranges: SegmentRange[] = selected.flatMap((o) => {
    const loads = segmentRanges(o, pageSize);
    return [...loads, ...aliasRanges(o, loads, files)];
  });
  // Only the VMAs where the ranges are (and the 2 MiB pages around them,
  // where a remap plan looks), not the whole process.
  const status = readStatus(c);
  const before = readVmaStats(c, alignedRanges(ranges), {
    vmLck: status.vmLck,
  }).vmas;
  const errors = new Map<SegmentRange, StepError>();
  const partlyUnmapped = new Set<SegmentRange>();
  for (const r of ranges) {
    if (measureRange(before, r.start, r.end).mapped < r.end - r.start) {
      partlyUnmapped.add(r);
    }
  }
  const usable = byPriority(ranges.filter((r) => !partlyUnmapped.has(r)));
  return {
    pageSize,
    before,
    status,
    selected,
    unmatched,
    ranges,
    usable,
    partlyUnmapped,
    errors,
  };
}

/** With actions asked for, each partly unmapped range fails (left untouched). */
function failUnmapped(found: Inspection): void {
  for (const r of found.partlyUnmapped) {
    found.errors.set(r, {
      step: "inspect",
      code: "ENOMEM",
      errno: ERRNO.ENOMEM,
      message:
        "part of this segment's range is not mapped (unmapped or replaced by someone else); left untouched",
    });
  }
}

/** No loaded object matched `objects(...)`: which selectors, which objects. */
function unmatchedMessage(
  objects: readonly LoadedObject[],
  selectors: readonly ObjectSelector[],
): string {
  return `no loaded object matched objects(${
    selectors.map((o) =>
      typeof o === "string"
        ? JSON.stringify(o)
        : typeof o === "function"
        ? "a function"
        : String(o)
    ).join(", ")
  }) among the ${objects.length} loaded: ${
    objects.slice(0, 12).map((o) => basename(o.path)).join(", ")
  }${objects.length > 12 ? ", ..." : ""}`;
}

/** The remap step, then the perf map of what it remapped when asked. */
function remapStep(
  c: Libc,
  found: Inspection,
  options: RemapOptions,
): { report: RemapReport; after: SmapsVma[]; perfMapMs: number } {
  const done = remapObjects(c, {
    objects: found.selected,
    ranges: found.ranges,
    options,
    before: found.before,
    vmLck: found.status.vmLck,
  });
  const { after, ...report } = done;
  let perfMapMs = 0;
  if (
    options.perfMap === true &&
    report.regions.some((r) => r.status === "remapped")
  ) {
    perfMapMs = perfMapStep(c, report);
  }
  return { report, after, perfMapMs };
}

/** Writes the perf map of the remapped code; its failure is a warning. */
function perfMapStep(c: Libc, remap: RemapReport): number {
  const t = performance.now();
  try {
    remap.perfMap = writePerfMap(c, remap);
    remap.warnings.push(...remap.perfMap.warnings);
  } catch (e) {
    if (!(e instanceof PerfMapError)) throw e;
    remap.warnings.push(e.message);
  }
  return performance.now() - t;
}

/** Time and warnings of an mlock or populate step; failures go into `errors`. */
interface StepRun {
  ms: number;
  warnings: string[];
}

/** Locks the usable ranges (each remapped copy whole). */
function mlockStep(
  c: Libc,
  found: Inspection,
  { options, remap }: { options: MlockOptions; remap?: RemapReport },
): StepRun {
  const t = performance.now();
  // A remapped copy is locked whole: locking only the segment's part
  // would split its VMA inside a huge page and break that page up.
  const copies = (remap?.regions ?? []).filter((r) => r.status === "remapped");
  const lockTargets = found.usable.map((r) => {
    let start = r.start;
    let end = r.end;
    for (const k of copies) {
      if (k.start < end && start < k.end) {
        start = Math.min(start, k.start);
        end = Math.max(end, k.end);
      }
    }
    return { start, end };
  });
  // A remap may have replaced locked pages with unlocked copies since the
  // status was read.
  const status = remap ? readStatus(c) : found.status;
  const run = lockRanges(c, lockTargets, { ...options, status });
  const ms = performance.now() - t;
  run.results.forEach((res, i) => {
    if (res.error) found.errors.set(found.usable[i], res.error);
  });
  return { ms, warnings: run.warnings };
}

/** Prefaults the usable ranges that have not failed. */
function populateStep(c: Libc, found: Inspection): StepRun {
  const t = performance.now();
  const todo = found.usable.filter((r) => !found.errors.has(r));
  const run = populateRanges(c, todo, { pageSize: found.pageSize });
  const ms = performance.now() - t;
  run.results.forEach((res, i) => {
    if (res.error) found.errors.set(todo[i], res.error);
  });
  return { ms, warnings: run.warnings };
}

/** One report per range, measured before and after from smaps. */
function segmentReports(
  found: Inspection,
  after: readonly SmapsVma[],
  requested: SegmentAction[],
): SegmentReport[] {
  return found.ranges.map((r) => {
    const m0 = measureRange(found.before, r.start, r.end);
    const m = measureRange(after, r.start, r.end);
    const error = found.errors.get(r);
    const report: SegmentReport = {
      object: r.object,
      index: r.index,
      kind: r.kind,
      origin: r.origin,
      perms: r.perms,
      start: r.start,
      end: r.end,
      bytes: r.end - r.start,
      mapped: m.mapped,
      residentBefore: m0.resident,
      resident: m.resident,
      locked: m.locked,
      lockedPss: m.lockedPss,
      huge: m.huge,
      actions: requested,
      status: error ? "failed" : requested.length ? "ok" : "inspected",
    };
    if (error) report.error = error;
    return report;
  });
}

/** Why the run is not ok (empty when it is). */
function failureReasons(
  { found, after, remap, totals, base }: {
    found: Inspection;
    after: readonly SmapsVma[];
    remap?: RemapReport;
    totals: PrimeOutcomeData["totals"];
    base: PrimeOutcomeData;
  },
): string[] {
  const reasons: string[] = [];
  if (found.unmatched && base.requested.length > 0) {
    reasons.push(`${found.unmatched}: nothing was done`);
  }
  const short = remap && found.selected.length > 0
    ? remapShortfall(remap, found.selected, onCopies(found.ranges, after))
    : undefined;
  if (short !== undefined) reasons.push(short);
  if (totals.failed) {
    reasons.push(`${totals.failed} of ${totals.segments} segment(s) failed`);
  }
  if (remap) {
    const bad = remap.regions.filter((r) => r.status === "failed").length;
    if (bad) {
      reasons.push(`${bad} of ${remap.regions.length} remap region(s) failed`);
    }
    if (remap.unavailable !== undefined) {
      reasons.push(`remap got no huge pages: ${remap.unavailable}`);
    }
  }
  return reasons;
}

/** Some code or read-only range is mapped from elsewhere than its file. */
function onCopies(
  ranges: readonly SegmentRange[],
  smaps: readonly SmapsVma[],
): boolean {
  return ranges.some((r) =>
    r.kind !== "data" && r.origin === "load" &&
    smaps.some((v) => v.start < r.end && r.start < v.end && v.path !== r.object)
  );
}

/**
 * Why a remap that ran gained nothing: no region qualified (and none was
 * remapped before), or, in 2 MiB mode, every copy is on 4 KiB pages.
 */
function remapShortfall(
  r: RemapReport,
  objects: readonly LoadedObject[],
  remappedBefore: boolean,
): string | undefined {
  if (r.unavailable !== undefined) return undefined;
  const names = objects.map((o) => basename(o.path)).join(", ");
  if (r.regions.length === 0) {
    if (remappedBefore) return undefined;
    const ro = r.skipped.filter((k) => !k.perms.includes("w"));
    const skipped = ro.reduce((n, k) => n + k.end - k.start, 0);
    if (skipped < r.text.bytes + r.rodata.bytes && r.warnings.length) {
      return `nothing was remapped: ${r.warnings.join("; ")}`;
    }
    const why = [...new Set(ro.map((k) => k.reason))].join("; ");
    return `nothing was remapped: no code or read-only part of ${names} qualifies (${
      why || "no such segment"
    })`;
  }
  const moved = r.regions.filter((x) => x.status === "remapped");
  if (r.pageSize === "4k" || moved.length === 0) return undefined;
  if (moved.some((x) => x.huge > 0)) return undefined;
  return `no 2 MiB pages were obtained: the ${moved.length} region(s) of ${names} remapped with the ${r.backend} backend are on 4 KiB pages, which gains nothing over the file's pages; \`cli.ts doctor\` names the routes that give this process 2 MiB pages (the hugetlb pool, remap({ backend: "hugetlb" }), does whenever it is large enough), and restore() gives the copies back`;
}

/** What {@linkcode runChosen}'s chooser sees of the inspection. */
export interface Inspected {
  /** Bytes of the selected objects' ranges (`totals.bytes` of the outcome). */
  bytes: number;
  /** Of which locked now (`totals.locked`). */
  locked: number;
  /** `/proc/self/status` as the run read it. */
  status: ProcessStatus;
}

/** Choosers of the runs under way in {@linkcode runChosen}. */
const choosers = new WeakMap<Primer, (seen: Inspected) => void>();

function seenOf(found: Inspection): Inspected {
  let locked = 0;
  for (const r of found.ranges) {
    locked += measureRange(found.before, r.start, r.end).locked;
  }
  return {
    bytes: found.ranges.reduce((n, r) => n + r.end - r.start, 0),
    locked,
    status: found.status,
  };
}

/**
 * Runs `primer` with its actions chosen by `choose` once its objects are
 * inspected, on that inspection: a decision that depends on what is
 * selected (the preload's default: mlock when it fits the lock limit)
 * without a `prime().run()` first, which would inspect the process twice.
 * `choose` calls the builder's methods (`objects` is already applied).
 * Internal: not exported by mod.ts.
 *
 * @example
 * ```ts
 * import { prime, runChosen } from "./prime.ts";
 * import assert from "node:assert/strict";
 * const out = runChosen(prime(), (seen) => {
 *   assert.ok(seen.bytes > 0);
 * });
 * assert.deepEqual(out.requested, []);
 * ```
 */
export function runChosen(
  primer: Primer,
  choose: (seen: Inspected) => void,
): PrimeOutcome {
  choosers.set(primer, choose);
  try {
    return primer.run();
  } finally {
    choosers.delete(primer);
  }
}

/**
 * Starts a priming of the running runtime's executable. Nothing is enabled
 * by default: `prime().run()` only inspects.
 *
 * @example
 * ```ts
 * import { prime } from "../mod.ts";
 * const out = prime().mlock(true).run();
 * out.log();
 * ```
 */
export function prime(): Primer {
  return new Primer();
}

/**
 * Puts every region this process remapped back on the executable's file
 * pages (the same as `out.restore()` on the outcome that remapped them).
 * Never throws for the environment: when native code cannot be reached
 * (Deno without `--allow-ffi`, Bun with its JIT off), nothing can have been
 * remapped, and the empty report's `reason` says why.
 *
 * @example
 * ```ts
 * import { prime, restore } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const out = prime().remap(true).run();
 * const back = restore();
 * // Every region the run remapped is back on the file (none without FFI).
 * assert.equal(back.restored, out.remap?.regions.filter((r) => r.status === "remapped").length ?? 0);
 * ```
 */
export function restore(): RestoreReport & { reason?: string } {
  const c = libcOrReason();
  if (typeof c === "string") {
    return {
      ...emptyRestoreReport(),
      reason: `${c}; nothing to restore: no remap can have run here`,
    };
  }
  return restoreRemapped(c);
}

/** libc, or why native code cannot be reached (never throws for that). */
function libcOrReason(): Libc | string {
  const why = ffiAvailability();
  if (why !== undefined) return why;
  try {
    return libc();
  } catch (e) {
    if (e instanceof FfiUnavailableError) return e.message;
    throw e;
  }
}

/**
 * Deletes the shared copies made by `remap({ share: true })` in
 * `options.dir` (default: `$XDG_RUNTIME_DIR/page-primer`, else
 * `/dev/shm/page-primer-<euid>`) and returns their names. Processes that map
 * a copy keep its pages until they exit or restore; the memory is freed
 * then. Never throws for the environment: when native code cannot be
 * reached or the directory cannot be read, the list is empty (or holds what
 * was deleted before the failure) and its `reason` says why.
 *
 * @example
 * ```ts ignore
 * import { clearShared } from "../mod.ts";
 * console.log(clearShared().length, "shared copies deleted");
 * ```
 */
export function clearShared(
  options: ShareOptions = {},
): string[] & { reason?: string } {
  const c = libcOrReason();
  if (typeof c === "string") {
    return Object.assign([], { reason: `${c}; no shared copy deleted` });
  }
  try {
    return clearSharedCopies(c, options);
  } catch (e) {
    if (!(e instanceof SyscallError)) throw e;
    return Object.assign([], {
      reason:
        `${e.message}: the shared copies could not be listed or deleted; check the directory's owner and permissions`,
    });
  }
}
