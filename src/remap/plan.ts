/**
 * Pure planning of a remap: which VMAs of the selected objects can move to
 * 2 MiB pages, and the exact 2 MiB-aligned range each one will occupy.
 *
 * Rules (see the README's "Remap" section):
 * - only read-only (`r--`) and code (`r-x`) VMAs of the object's file that
 *   lie inside its LOAD segments; writable VMAs are never copied while
 *   threads run and are listed as skipped;
 * - every remapped range starts and ends on a 2 MiB boundary, so it is all
 *   huge pages and no huge page mixes two protections;
 * - aggressive alignment grows a range outward to the 2 MiB boundary when
 *   the address space there is free (the gap is reserved before use);
 *   conservative alignment only shrinks inward.
 *
 * @module
 */

import { HUGE_PAGE } from "../sys/hugetlb.ts";
import type { SmapsVma, Vma } from "../sys/maps.ts";
import type {
  LoadedObject,
  SegmentKind,
  SegmentRange,
} from "../sys/segments.ts";

export { HUGE_PAGE };

/** How a region may be aligned to 2 MiB. */
export type Alignment = "aggressive" | "conservative";

/** Every {@linkcode Alignment}, the default first. */
export const ALIGNMENTS: readonly Alignment[] = ["aggressive", "conservative"];

/** Every value of `remap({ backend })`, the default first. */
export const BACKEND_CHOICES:
  readonly ("auto" | "thp" | "hugetlb" | "memfd")[] = [
    "auto",
    "thp",
    "hugetlb",
    "memfd",
  ];

/** A free range to reserve (MAP_FIXED_NOREPLACE) before the swap. */
export interface Gap {
  /** First byte. */
  start: number;
  /** One past the last byte. */
  end: number;
}

/** One region to move onto 2 MiB pages. */
export interface PlannedRegion {
  /** Object path. */
  object: string;
  /** LOAD index of the segment the VMA belongs to. */
  index: number;
  /** `"text"` or `"rodata"`. */
  kind: SegmentKind;
  /** Protection, e.g. `"r-x"`. */
  perms: string;
  /** The original VMA (page-aligned). */
  vmaStart: number;
  /** End of the original VMA. */
  vmaEnd: number;
  /** Remapped range start, 2 MiB aligned. */
  start: number;
  /** Remapped range end, 2 MiB aligned. */
  end: number;
  /** Part of [start, end) copied from the original mapping. */
  dataStart: number;
  /** End of the copied part. */
  dataEnd: number;
  /** File offset of `dataStart`. */
  fileOffset: number;
  /** Device of the file, as maps prints it (`"fe:00"`). */
  dev: string;
  /** Inode of the file. */
  inode: number;
  /** Free ranges that aggressive alignment grows into, to reserve first. */
  gaps: Gap[];
  /**
   * True when the bytes in memory are known to equal the file: not in a
   * writable LOAD segment, not in `PT_GNU_RELRO`, and smaps shows no
   * private (COW) or swapped page. Only then may a copy be filled from the
   * file, shared with other processes, or the file mapped back on
   * restore; otherwise the copy is made from memory and restore gives the
   * bytes back on 4 KiB pages from memory.
   */
  equalsFile: boolean;
}

/** A VMA that is not remapped, and why. */
export interface SkippedRegion {
  /** Object path. */
  object: string;
  /** LOAD index. */
  index: number;
  /** Protection. */
  perms: string;
  /** VMA start. */
  start: number;
  /** VMA end. */
  end: number;
  /** Why it stays as it is. */
  reason: string;
}

/** The plan: regions to remap and VMAs left alone. */
export interface RemapPlan {
  /** Regions to remap, by address. */
  regions: PlannedRegion[];
  /** VMAs left alone, with reasons. */
  skipped: SkippedRegion[];
}

/** What {@linkcode planRemap} plans from. */
export interface PlanInput {
  /** Objects whose segments are considered. */
  objects: readonly LoadedObject[];
  /** Their page-aligned LOAD ranges (`segmentRanges`). */
  ranges: readonly SegmentRange[];
  /** The process's VMAs, sorted by address (parsed maps or smaps). */
  vmas: readonly Vma[];
  /** Alignment strategy. */
  align: Alignment;
  /** Ranges page-primer already swapped (skipped as done); none by default. */
  ours?: readonly Gap[];
}

/** Prefix of the names page-primer gives its anonymous copies. */
export const NAME_PREFIX = "page-primer:";

const floorHuge = (n: number) => Math.floor(n / HUGE_PAGE) * HUGE_PAGE;
const ceilHuge = (n: number) => Math.ceil(n / HUGE_PAGE) * HUGE_PAGE;

function isFree(vmas: readonly Vma[], start: number, end: number): boolean {
  return !vmas.some((v) => v.start < end && start < v.end);
}

/** True when a VMA is one of page-primer's (named) copies. */
function isOurs(v: Vma): boolean {
  return v.path.startsWith(`[anon:${NAME_PREFIX}`);
}

/**
 * Plans a remap of the selected objects' read-only and code VMAs.
 *
 * @example
 * ```ts
 * import { planRemap } from "./plan.ts";
 * import assert from "node:assert/strict";
 * const plan = planRemap({ objects: [], ranges: [], vmas: [], align: "aggressive" });
 * assert.equal(plan.regions.length, 0);
 * ```
 *
 * @param input What to plan from.
 */
export function planRemap(
  { objects, ranges, vmas, align, ours = [] }: PlanInput,
): RemapPlan {
  const regions: PlannedRegion[] = [];
  const skipped: SkippedRegion[] = [];
  const byPath = new Map(objects.map((o) => [o.path, o]));
  for (const range of ranges) {
    const object = byPath.get(range.object);
    if (range.origin !== "load" || object === undefined) continue;
    const ctx = { object, range, vmas, align, ours, regions };
    for (const run of vmaRuns(vmasInRange(vmas, range, ours))) {
      const planned = planRun(run, ctx);
      if (typeof planned !== "string") {
        regions.push(planned);
        continue;
      }
      skipped.push({
        object: range.object,
        index: range.index,
        perms: run[0].perms.slice(0, 3),
        start: run[0].start,
        end: run[run.length - 1].end,
        reason: planned,
      });
    }
  }
  regions.sort((a, b) => a.start - b.start);
  // A region grown into a gap must not share a 2 MiB page with another.
  for (let i = 1; i < regions.length; i++) {
    if (regions[i].start < regions[i - 1].end) {
      throw new Error(
        `internal error: planned regions overlap at 0x${
          regions[i].start.toString(16)
        }`,
      );
    }
  }
  return { regions, skipped };
}

/**
 * The VMAs inside a LOAD range. A copy of ours may stick out: it grew into
 * the neighbouring gap.
 */
function vmasInRange(
  vmas: readonly Vma[],
  r: SegmentRange,
  ours: readonly Gap[],
): Vma[] {
  return vmas.filter((v) =>
    (v.start >= r.start && v.end <= r.end) ||
    (v.start < r.end && r.start < v.end &&
      ours.some((o) => o.start <= v.start && v.end <= o.end))
  );
}

/**
 * VMAs grouped into runs: contiguous in memory and in the file, with the
 * same protection and path (the kernel splits one mapping into several
 * VMAs, e.g. where part of it was madvised).
 */
function vmaRuns(inside: readonly Vma[]): Vma[][] {
  const runs: Vma[][] = [];
  let run: Vma[] = [];
  for (const v of inside) {
    const prev = run[run.length - 1];
    const joins = prev !== undefined && prev.end === v.start &&
      prev.perms === v.perms && prev.path === v.path &&
      (v.path === "" || v.offset === prev.offset + (prev.end - prev.start));
    if (!joins && run.length > 0) {
      runs.push(run);
      run = [];
    }
    run.push(v);
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/** What planning a run of VMAs needs to know besides the run. */
interface RunContext {
  /** The object the range belongs to. */
  object: LoadedObject;
  /** The LOAD range the run lies in. */
  range: SegmentRange;
  /** All VMAs of the process (to find free space). */
  vmas: readonly Vma[];
  /** Alignment strategy. */
  align: Alignment;
  /** Ranges page-primer already swapped. */
  ours: readonly Gap[];
  /** Regions planned so far (a gap one of them grows into is taken). */
  regions: readonly PlannedRegion[];
}

/** The region a run of VMAs becomes, or why it is skipped. */
function planRun(run: readonly Vma[], ctx: RunContext): PlannedRegion | string {
  const first = run[0];
  const last = run[run.length - 1];
  const problem = runProblem(first, last, ctx);
  if (problem !== undefined) return problem;
  const vs = first.start;
  const ve = last.end;
  const { start, end, gaps } = alignedRange(vs, ve, ctx);
  if (end - start < HUGE_PAGE) {
    return "no whole 2 MiB page fits (too small or its neighbours leave no room)";
  }
  const dataStart = Math.max(start, vs);
  const r = ctx.range;
  return {
    object: r.object,
    index: r.index,
    kind: first.exec ? "text" : "rodata",
    perms: first.perms.slice(0, 3),
    vmaStart: vs,
    vmaEnd: ve,
    start,
    end,
    dataStart,
    dataEnd: Math.min(end, ve),
    fileOffset: first.offset + (dataStart - vs),
    dev: first.dev,
    inode: first.inode,
    gaps,
    equalsFile: r.kind !== "data" &&
      !overlapsRelro(ctx.object, vs, ve) && run.every(hasNoPrivatePage),
  };
}

/** Why a run (from `first` to `last`) may not be copied, or undefined. */
function runProblem(
  first: Vma,
  last: Vma,
  ctx: RunContext,
): string | undefined {
  if (first.write) {
    return "writable: a store by another thread between copy and swap would be lost";
  }
  if (
    isOurs(first) ||
    ctx.ours.some((o) => o.start < last.end && first.start < o.end)
  ) {
    return "already remapped by page-primer";
  }
  if (first.path !== ctx.range.object) {
    return "not mapped from the object's file (replaced by someone else)";
  }
  if (first.shared) return "a shared mapping";
  return undefined;
}

/**
 * The 2 MiB-aligned range for `[vs, ve)`: inward, or with aggressive
 * alignment grown outward into free space no planned region has taken (the
 * gaps to reserve).
 */
function alignedRange(
  vs: number,
  ve: number,
  ctx: RunContext,
): { start: number; end: number; gaps: Gap[] } {
  let start = ceilHuge(vs);
  let end = floorHuge(ve);
  const gaps: Gap[] = [];
  if (ctx.align === "aggressive") {
    const { vmas, regions } = ctx;
    const lo = floorHuge(vs);
    if (lo < vs && isFree(vmas, lo, vs) && !claimed(regions, lo, vs)) {
      start = lo;
      gaps.push({ start: lo, end: vs });
    }
    const hi = ceilHuge(ve);
    if (hi > ve && isFree(vmas, ve, hi) && !claimed(regions, ve, hi)) {
      end = hi;
      gaps.push({ start: ve, end: hi });
    }
  }
  return { start, end, gaps };
}

/** The object's `PT_GNU_RELRO` range in memory overlaps `[start, end)`. */
function overlapsRelro(
  object: LoadedObject,
  start: number,
  end: number,
): boolean {
  if (object.relro === undefined) return false;
  const lo = object.bias + object.relro.vaddr;
  return lo < end && start < lo + object.relro.memsz;
}

/**
 * smaps shows neither a private (COW) nor a swapped page. A VMA without
 * smaps fields (maps only) proves nothing, so it counts as differing.
 */
function hasNoPrivatePage(v: Vma | SmapsVma): boolean {
  return "anonymous" in v && v.anonymous === 0 && v.swap === 0;
}

function claimed(
  regions: readonly PlannedRegion[],
  start: number,
  end: number,
) {
  return regions.some((r) => r.start < end && start < r.end);
}

/**
 * Bytes of `[start, end)` that a plan moves onto 2 MiB pages (the part of
 * each region that holds original bytes).
 *
 * @example
 * ```ts
 * import { plannedCoverage } from "./plan.ts";
 * import assert from "node:assert/strict";
 * assert.equal(plannedCoverage({ regions: [], skipped: [] }, 0, 4096), 0);
 * ```
 */
export function plannedCoverage(
  plan: RemapPlan,
  start: number,
  end: number,
): number {
  let n = 0;
  for (const r of plan.regions) {
    n += Math.max(0, Math.min(end, r.dataEnd) - Math.max(start, r.dataStart));
  }
  return n;
}

/**
 * Adapts a plan to the hugetlb backend. A hugetlb copy is restored by
 * mapping the file over the whole 2 MiB-aligned region, so a region may
 * only grow below its data where the file has bytes there too (the file
 * offset stays non-negative); otherwise it starts at the next boundary.
 *
 * @example
 * ```ts
 * import { forHugetlb } from "./plan.ts";
 * import assert from "node:assert/strict";
 * assert.equal(forHugetlb({ regions: [], skipped: [] }).regions.length, 0);
 * ```
 */
export function forHugetlb(plan: RemapPlan): RemapPlan {
  const regions: PlannedRegion[] = [];
  const skipped = [...plan.skipped];
  for (const r of plan.regions) {
    if (r.fileOffset - (r.dataStart - r.start) >= 0) {
      regions.push(r);
      continue;
    }
    const start = r.start + HUGE_PAGE;
    if (r.end - start < HUGE_PAGE) {
      skipped.push({
        object: r.object,
        index: r.index,
        perms: r.perms,
        start: r.vmaStart,
        end: r.vmaEnd,
        reason:
          "no whole 2 MiB page fits for hugetlb (the file has no bytes below it)",
      });
      continue;
    }
    regions.push({
      ...r,
      start,
      dataStart: start,
      fileOffset: r.fileOffset + (start - r.dataStart),
      gaps: r.gaps.filter((g) => g.start >= r.dataEnd),
    });
  }
  return { regions, skipped };
}

/**
 * Number of 2 MiB pages a plan needs.
 *
 * @example
 * ```ts
 * import { hugePagesNeeded } from "./plan.ts";
 * import assert from "node:assert/strict";
 * assert.equal(hugePagesNeeded({ regions: [], skipped: [] }), 0);
 * ```
 */
export function hugePagesNeeded(plan: RemapPlan): number {
  return plan.regions.reduce((n, r) => n + (r.end - r.start) / HUGE_PAGE, 0);
}
