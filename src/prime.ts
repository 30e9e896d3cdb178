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
import { explainFailure, type Libc, libc, SyscallError } from "./sys/libc.ts";
import { basename } from "./sys/format.ts";
import { lockRanges, type MlockOptions } from "./mlock.ts";
import {
  loadedObjects,
  mainExecutable,
  readSmaps,
  readStatus,
  unpinObjects,
} from "./sys/objects.ts";
import {
  PrimeOutcome,
  type PrimeOutcomeData,
  type SegmentAction,
  type SegmentReport,
  type StepError,
  totalsOf,
} from "./outcome.ts";
import type { SmapsVma } from "./sys/maps.ts";
import { PerfMapError, writePerfMap } from "./remap/perf_map.ts";
import { populateRanges } from "./populate.ts";
import { ALIGNMENTS, BACKEND_CHOICES } from "./remap/plan.ts";
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

/** Options of {@linkcode Primer.populate}. Reserved for future use; no keys yet. */
export type PopulateOptions = Record<never, never>;

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

function describe(v: unknown): string {
  if (typeof v === "string") return `string ${JSON.stringify(v)}`;
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return `${typeof v} ${String(v)}`;
}

function checkKeys(
  method: string,
  value: Record<string, unknown>,
  allowed: readonly string[],
): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new TypeError(
        `${method}(): unknown option "${key}"; accepted: ${
          allowed.length ? allowed.join(", ") : "none"
        }`,
      );
    }
  }
}

function checkFlag<T extends object>(
  method: string,
  value: unknown,
  allowed: readonly string[],
  usage: string,
): false | T {
  if (value === true) return {} as T;
  if (value === false) return false;
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    checkKeys(method, value as Record<string, unknown>, allowed);
    return value as T;
  }
  throw new TypeError(`${method}() accepts ${usage}; got ${describe(value)}`);
}

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
   */
  mlock(enable: boolean | MlockOptions): this {
    const v = checkFlag<MlockOptions>(
      "mlock",
      enable,
      ["onFault"],
      "true, false or { onFault?: boolean }",
    );
    if (v && v.onFault !== undefined && typeof v.onFault !== "boolean") {
      throw new TypeError(
        `mlock(): onFault must be a boolean; got ${describe(v.onFault)}`,
      );
    }
    this.#mlock = v === false ? false : { ...v };
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
   */
  populate(enable: boolean | PopulateOptions): this {
    const v = checkFlag<PopulateOptions>(
      "populate",
      enable,
      [],
      "true or false",
    );
    this.#populate = v;
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
   */
  remap(enable: boolean | RemapOptions): this {
    const v = checkFlag<RemapOptions>(
      "remap",
      enable,
      ["align", "pageSize", "backend", "share", "perfMap"],
      'true, false or { align?: "aggressive" | "conservative", pageSize?: "2m" | "4k", backend?: "auto" | "thp" | "hugetlb" | "memfd", share?: boolean | { dir?: string }, perfMap?: boolean }',
    );
    if (v && v.perfMap !== undefined && typeof v.perfMap !== "boolean") {
      throw new TypeError(
        `remap(): perfMap must be true or false; got ${describe(v.perfMap)}`,
      );
    }
    if (v && v.share !== undefined && typeof v.share !== "boolean") {
      const sh = v.share as unknown;
      if (typeof sh !== "object" || sh === null || Array.isArray(sh)) {
        throw new TypeError(
          `remap(): share must be true, false or { dir?: string }; got ${
            describe(sh)
          }`,
        );
      }
      checkKeys("remap", sh as Record<string, unknown>, ["dir"]);
      const dir = (sh as { dir?: unknown }).dir;
      if (
        dir !== undefined && (typeof dir !== "string" || !dir.startsWith("/"))
      ) {
        throw new TypeError(
          `remap(): share.dir must be an absolute path; got ${describe(dir)}`,
        );
      }
    }
    if (
      v && v.share &&
      (v.pageSize === "4k" ||
        (v.backend !== undefined && v.backend !== "auto" &&
          v.backend !== "memfd"))
    ) {
      throw new TypeError(
        `remap(): share uses shmem copies (the memfd backend) on 2 MiB pages; it cannot be combined with ${
          v.pageSize === "4k" ? 'pageSize: "4k"' : `backend: "${v.backend}"`
        }`,
      );
    }
    if (v && v.backend !== undefined && !BACKEND_CHOICES.includes(v.backend)) {
      throw new RangeError(
        `remap(): backend must be "auto", "thp", "hugetlb" or "memfd"; got ${
          describe(v.backend)
        }`,
      );
    }
    if (v && v.align !== undefined && !ALIGNMENTS.includes(v.align)) {
      throw new RangeError(
        `remap(): align must be "aggressive" or "conservative"; got ${
          describe(v.align)
        }`,
      );
    }
    if (
      v && v.pageSize !== undefined && v.pageSize !== "2m" &&
      v.pageSize !== "4k"
    ) {
      throw new RangeError(
        `remap(): pageSize must be "2m" or "4k"; got ${describe(v.pageSize)}`,
      );
    }
    this.#remap = v === false ? false : { ...v };
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
   */
  objects(...selectors: ObjectSelector[]): this {
    if (selectors.length === 0) {
      throw new RangeError(
        'objects() needs at least one selector: "main", "all", a path substring, a RegExp or a predicate',
      );
    }
    for (const s of selectors) {
      const ok = typeof s === "string" ? s.length > 0 : s instanceof RegExp ||
        typeof s === "function";
      if (!ok) {
        throw new TypeError(
          `objects() accepts "main", "all", a non-empty path substring, a RegExp or a predicate; got ${
            describe(s)
          }`,
        );
      }
    }
    this.#objects = [...selectors];
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
   */
  strict(enable: boolean): this {
    if (typeof enable !== "boolean") {
      throw new TypeError(
        `strict() accepts true or false; got ${describe(enable)}`,
      );
    }
    this.#strict = enable;
    return this;
  }

  /**
   * Runs the actions and measures the result from `/proc/self/smaps`.
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
    const requested = this.#requested();
    const base: PrimeOutcomeData = {
      ok: false,
      disabled: false,
      runtime: `${info.name} ${info.version}`.trim(),
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
    const stop = (reason: string, ok = false, disabled = false) => {
      base.durations.totalMs = performance.now() - t0;
      return new PrimeOutcome({ ...base, ok, reason, disabled });
    };
    if (info.os !== "linux") {
      return stop(`page-primer works on Linux only; this is ${info.os}`);
    }
    if (!SUPPORTED_ARCH.includes(info.arch)) {
      return stop(
        `unsupported CPU architecture ${info.arch}; page-primer supports ${
          SUPPORTED_ARCH.join(" and ")
        }`,
      );
    }
    const envOff = (v: string | undefined) =>
      v !== undefined && /^(off|0|false|no|none)$/i.test(v.trim());
    const why = ffiAvailability();
    if (why !== undefined) {
      if (envOff(runtimeEnv("PAGE_PRIMER"))) {
        return stop(
          "PAGE_PRIMER=off in the environment: nothing done",
          true,
          true,
        );
      }
      return stop(why);
    }
    let c: Libc;
    try {
      c = libc();
    } catch (e) {
      return stop(e instanceof Error ? e.message : String(e));
    }
    base.pid = c.getpid();
    try {
      base.kernel = c.kernelRelease();
    } catch {
      // uname cannot fail in practice; leave it empty if it does.
    }
    if (envOff(c.getenv("PAGE_PRIMER"))) {
      return stop(
        "PAGE_PRIMER=off in the environment: nothing done",
        true,
        true,
      );
    }
    try {
      return this.#prime(c, base, t0);
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

  #primeObjects(
    c: Libc,
    base: PrimeOutcomeData,
    t0: number,
    objects: readonly LoadedObject[],
  ): PrimeOutcome {
    const pageSize = c.pageSize();
    const before = readSmaps(c);
    const selected = selectObjects(objects, this.#objects);
    const unmatched = selected.length === 0
      ? `no loaded object matched objects(${
        this.#objects.map((o) =>
          typeof o === "string"
            ? JSON.stringify(o)
            : typeof o === "function"
            ? "a function"
            : String(o)
        ).join(", ")
      }) among the ${objects.length} loaded: ${
        objects.slice(0, 12).map((o) => basename(o.path)).join(", ")
      }${objects.length > 12 ? ", ..." : ""}`
      : undefined;
    if (unmatched && base.requested.length === 0) base.warnings.push(unmatched);
    const ranges: SegmentRange[] = selected.flatMap((o) => {
      const loads = segmentRanges(o, pageSize);
      return [...loads, ...aliasRanges(o, loads, before)];
    });
    const errors = new Map<SegmentRange, StepError>();
    const partlyUnmapped = new Set<SegmentRange>();
    for (const r of ranges) {
      if (measureRange(before, r.start, r.end).mapped < r.end - r.start) {
        partlyUnmapped.add(r);
      }
    }
    const usable = byPriority(ranges.filter((r) => !partlyUnmapped.has(r)));
    for (const r of partlyUnmapped) {
      if (base.requested.length > 0) {
        errors.set(r, {
          step: "inspect",
          code: "ENOMEM",
          errno: 12,
          message:
            "part of this segment's range is not mapped (unmapped or replaced by someone else); left untouched",
        });
      }
    }

    let remap: RemapReport | undefined;
    let afterRemap: SmapsVma[] | undefined;
    let remapMs = 0;
    let perfMapMs = 0;
    if (this.#remap) {
      const done = remapObjects(c, selected, ranges, this.#remap, before);
      const { after: _after, ...report } = done;
      remap = report;
      remapMs = remap.ms;
      afterRemap = done.after;
      if (
        this.#remap.perfMap === true &&
        remap.regions.some((r) => r.status === "remapped")
      ) {
        const t = performance.now();
        try {
          remap.perfMap = writePerfMap(c, remap);
          remap.warnings.push(...remap.perfMap.warnings);
        } catch (e) {
          if (!(e instanceof PerfMapError)) throw e;
          remap.warnings.push(e.message);
        } finally {
          perfMapMs = performance.now() - t;
        }
      }
    }
    let mlockMs = 0;
    if (this.#mlock) {
      const t = performance.now();
      // A remapped copy is locked whole: locking only the segment's part
      // would split its VMA inside a huge page and break that page up.
      const copies = (remap?.regions ?? []).filter((r) =>
        r.status === "remapped"
      );
      const lockTargets = usable.map((r) => {
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
      const run = lockRanges(c, lockTargets, this.#mlock, readStatus(c));
      mlockMs = performance.now() - t;
      base.warnings.push(...run.warnings);
      run.results.forEach((res, i) => {
        if (res.error) errors.set(usable[i], res.error);
      });
    }
    let populateMs = 0;
    if (this.#populate) {
      const t = performance.now();
      const todo = usable.filter((r) => !errors.has(r));
      const run = populateRanges(c, todo, pageSize);
      populateMs = performance.now() - t;
      base.warnings.push(...run.warnings);
      run.results.forEach((res, i) => {
        if (res.error) errors.set(todo[i], res.error);
      });
    }

    const after = base.requested.length === 0
      ? before
      : afterRemap !== undefined && !this.#mlock && !this.#populate
      ? afterRemap
      : readSmaps(c);
    const segments: SegmentReport[] = ranges.map((r) => {
      const m0 = measureRange(before, r.start, r.end);
      const m = measureRange(after, r.start, r.end);
      const error = errors.get(r);
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
        actions: base.requested,
        status: error ? "failed" : base.requested.length ? "ok" : "inspected",
      };
      if (error) report.error = error;
      return report;
    });
    const totals = totalsOf(segments);
    const totalMs = performance.now() - t0;
    const reasons: string[] = [];
    if (unmatched && base.requested.length > 0) {
      reasons.push(`${unmatched}: nothing was done`);
    }
    const short = remap && selected.length > 0
      ? remapShortfall(remap, selected, onCopies(ranges, after))
      : undefined;
    if (short !== undefined) reasons.push(short);
    if (totals.failed) {
      reasons.push(`${totals.failed} of ${totals.segments} segment(s) failed`);
    }
    if (remap) {
      const bad = remap.regions.filter((r) => r.status === "failed").length;
      if (bad) {
        reasons.push(
          `${bad} of ${remap.regions.length} remap region(s) failed`,
        );
      }
      if (remap.unavailable !== undefined) {
        reasons.push(`remap got no huge pages: ${remap.unavailable}`);
      }
    }
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
 * prime().remap(true).run();
 * console.log(restore().restored);
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
 * ```ts no-eval
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
