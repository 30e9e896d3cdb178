/**
 * Pure planning: which loaded objects are selected, the page-aligned
 * address range of each of their `PT_LOAD` segments, and what smaps says
 * about each range. No syscalls here, so all of it is tested on fixtures.
 *
 * @module
 */

import {
  PF_R,
  PF_W,
  PF_X,
  type ProgramHeader,
  PT_GNU_RELRO,
  PT_LOAD,
} from "./elf.ts";
import { hugeBytes, type SmapsVma, sumIn, type Vma } from "./maps.ts";

/** One `PT_LOAD` program header of a loaded object (addresses unrelocated). */
export interface LoadSegment {
  /** Index among the object's LOAD segments, from 0. */
  index: number;
  /** `p_flags`: PF_R | PF_W | PF_X. */
  flags: number;
  /** `p_vaddr`. */
  vaddr: number;
  /** `p_memsz`. */
  memsz: number;
  /** `p_filesz`. */
  filesz: number;
  /** `p_offset`. */
  offset: number;
}

/**
 * The `PT_LOAD` entries of a program header table, numbered in order.
 *
 * @example
 * ```ts
 * import { loadSegments } from "./segments.ts";
 * import assert from "node:assert/strict";
 * assert.equal(loadSegments([]).length, 0);
 * ```
 */
export function loadSegments(
  phdrs: readonly ProgramHeader[],
): LoadSegment[] {
  return phdrs.filter((p) => p.type === PT_LOAD).map((p, index) => ({
    index,
    flags: p.flags,
    vaddr: p.vaddr,
    memsz: p.memsz,
    filesz: p.filesz,
    offset: p.offset,
  }));
}

/** A loaded ELF object: the main executable or a shared library. */
export interface LoadedObject {
  /** Path of the file it was loaded from (the loader's name for virtual objects such as the vDSO). */
  path: string;
  /** True for the main executable (the runtime itself). */
  main: boolean;
  /** Load bias: runtime address minus `p_vaddr`. */
  bias: number;
  /** Its LOAD segments. */
  segments: LoadSegment[];
  /**
   * `PT_GNU_RELRO` (unrelocated `p_vaddr` and `p_memsz`), when it has one:
   * data the dynamic linker relocated and then made read-only, so its bytes
   * in memory differ from the file.
   */
  relro?: { vaddr: number; memsz: number };
  /**
   * A library's handle from `dlopen(RTLD_NOLOAD)`, held so it is not
   * unloaded while it is primed (see `loadedObjects({ pin: true })`).
   */
  pin?: number;
}

/**
 * The `PT_GNU_RELRO` entry of a program header table, if any.
 *
 * @example
 * ```ts
 * import { relroOf } from "./segments.ts";
 * import assert from "node:assert/strict";
 * assert.equal(relroOf([]), undefined);
 * ```
 */
export function relroOf(
  phdrs: readonly ProgramHeader[],
): { vaddr: number; memsz: number } | undefined {
  const p = phdrs.find((h) => h.type === PT_GNU_RELRO);
  return p && p.memsz > 0 ? { vaddr: p.vaddr, memsz: p.memsz } : undefined;
}

/** What a segment holds, from its flags: code, read-only data, or writable data. */
export type SegmentKind = "text" | "rodata" | "data";

/** A LOAD segment placed in memory: the page-aligned range an action applies to. */
export interface SegmentRange {
  /** Path of the object. */
  object: string;
  /** Whether the object is the main executable. */
  main: boolean;
  /** LOAD index within the object. */
  index: number;
  /** What the segment holds. */
  kind: SegmentKind;
  /** Protection as `"r-x"`, `"r--"`, `"rw-"`. */
  perms: string;
  /** First byte, rounded down to the page size. */
  start: number;
  /** One past the last byte, rounded up to the page size. */
  end: number;
  /**
   * `"load"`: a PT_LOAD segment. `"alias"`: a second, read-only mapping of
   * the same file made by the runtime itself (V8 maps its embedded builtins
   * a second time near its code range); it is code the runtime executes.
   */
  origin: "load" | "alias";
}

/** Selects loaded objects: `"main"`, `"all"`, a path substring, a RegExp or a predicate. */
export type ObjectSelector =
  | "main"
  | "all"
  | string
  | RegExp
  | ((object: { path: string; main: boolean }) => boolean);

/**
 * Classifies a segment by its `p_flags`.
 *
 * @example
 * ```ts
 * import { segmentKind } from "./segments.ts";
 * import assert from "node:assert/strict";
 * assert.equal(segmentKind(5), "text"); // PF_R | PF_X
 * ```
 */
export function segmentKind(flags: number): SegmentKind {
  if (flags & PF_W) return "data";
  if (flags & PF_X) return "text";
  return "rodata";
}

/**
 * Formats `p_flags` like `/proc/self/maps` does, without the sharing letter.
 *
 * @example
 * ```ts
 * import { permsOf } from "./segments.ts";
 * import assert from "node:assert/strict";
 * assert.equal(permsOf(6), "rw-");
 * ```
 */
export function permsOf(flags: number): string {
  return (flags & PF_R ? "r" : "-") + (flags & PF_W ? "w" : "-") +
    (flags & PF_X ? "x" : "-");
}

/**
 * The page-aligned in-memory ranges of an object's LOAD segments.
 *
 * @example
 * ```ts
 * import { segmentRanges } from "./segments.ts";
 * import assert from "node:assert/strict";
 * const r = segmentRanges({
 *   path: "/bin/x", main: true, bias: 0x1000,
 *   segments: [{ index: 0, flags: 5, vaddr: 0x10, memsz: 0x20, filesz: 0x20, offset: 0x10 }],
 * }, 4096);
 * assert.deepEqual([r[0].start, r[0].end], [0x1000, 0x2000]);
 * ```
 */
export function segmentRanges(
  object: LoadedObject,
  pageSize: number,
): SegmentRange[] {
  return object.segments.filter((s) => s.memsz > 0).map((s) => {
    const lo = object.bias + s.vaddr;
    const hi = lo + s.memsz;
    return {
      object: object.path,
      main: object.main,
      index: s.index,
      kind: segmentKind(s.flags),
      perms: permsOf(s.flags),
      start: Math.floor(lo / pageSize) * pageSize,
      end: Math.ceil(hi / pageSize) * pageSize,
      origin: "load" as const,
    };
  });
}

/**
 * Further read-only mappings of the object's file outside its LOAD ranges,
 * e.g. the copy of V8's embedded builtins that Deno maps from its own
 * executable. Adjacent VMAs with the same protection are merged; writable
 * ones are left out.
 *
 * @example
 * ```ts
 * import { aliasRanges, segmentRanges } from "./segments.ts";
 * import assert from "node:assert/strict";
 * const obj = { path: "/bin/x", main: true, bias: 0, segments: [] };
 * assert.equal(aliasRanges(obj, segmentRanges(obj, 4096), []).length, 0);
 * ```
 */
export function aliasRanges(
  object: LoadedObject,
  loads: readonly SegmentRange[],
  vmas: readonly Vma[],
): SegmentRange[] {
  const out: SegmentRange[] = [];
  let next = object.segments.length;
  for (const v of vmas) {
    if (v.path !== object.path || v.write) continue;
    if (loads.some((r) => v.start < r.end && r.start < v.end)) continue;
    const perms = (v.read ? "r" : "-") + "-" + (v.exec ? "x" : "-");
    const last = out[out.length - 1];
    if (last && last.end === v.start && last.perms === perms) {
      last.end = v.end;
      continue;
    }
    out.push({
      object: object.path,
      main: object.main,
      index: next++,
      kind: v.exec ? "text" : "rodata",
      perms,
      start: v.start,
      end: v.end,
      origin: "alias",
    });
  }
  return out;
}

function matches(
  sel: ObjectSelector,
  o: { path: string; main: boolean },
): boolean {
  if (sel === "main") return o.main;
  if (sel === "all") return true;
  if (typeof sel === "string") return o.path.includes(sel);
  if (sel instanceof RegExp) {
    sel.lastIndex = 0;
    return sel.test(o.path);
  }
  return sel({ path: o.path, main: o.main });
}

/**
 * Keeps the objects any selector matches (all selectors are alternatives).
 *
 * @example
 * ```ts
 * import { selectObjects } from "./segments.ts";
 * import assert from "node:assert/strict";
 * const objs = [{ path: "/bin/deno", main: true, bias: 0, segments: [] }];
 * assert.equal(selectObjects(objs, ["main"]).length, 1);
 * ```
 */
export function selectObjects<T extends { path: string; main: boolean }>(
  objects: readonly T[],
  selectors: readonly ObjectSelector[],
): T[] {
  return objects.filter((o) => selectors.some((s) => matches(s, o)));
}

/**
 * Resident bytes of a VMA: `Rss` plus its hugetlb pages
 * (`Private_Hugetlb + Shared_Hugetlb`), which smaps leaves out of `Rss`.
 *
 * @example
 * ```ts
 * import { parseSmaps } from "./maps.ts";
 * import { residentBytes } from "./segments.ts";
 * import assert from "node:assert/strict";
 * const [v] = parseSmaps(
 *   "200000-600000 r-xp 00000000 00:0f 1 /anon_hugepage (deleted)\n" +
 *     "Rss: 0 kB\nPrivate_Hugetlb: 4096 kB\n",
 * );
 * assert.equal(residentBytes(v), 4194304);
 * ```
 */
export function residentBytes(v: SmapsVma): number {
  return v.rss + v.privateHugetlb + v.sharedHugetlb;
}

/**
 * Bytes of a VMA that cannot be evicted: its `Rss` when it is flagged `lo`
 * (VM_LOCKED), plus its hugetlb pages. hugetlb pages are never swapped or
 * reclaimed, and the kernel never sets `lo` on a hugetlb VMA (`mlock`
 * succeeds on one and leaves its flags alone).
 *
 * @example
 * ```ts
 * import { parseSmaps } from "./maps.ts";
 * import { lockedBytes } from "./segments.ts";
 * import assert from "node:assert/strict";
 * const [v] = parseSmaps(
 *   "1000-3000 r-xp 00000000 08:01 2 /bin/x\nRss: 8 kB\nVmFlags: rd ex lo\n",
 * );
 * assert.equal(lockedBytes(v), 8192);
 * ```
 */
export function lockedBytes(v: SmapsVma): number {
  return (v.vmFlags.includes("lo") ? v.rss : 0) + v.privateHugetlb +
    v.sharedHugetlb;
}

/** What smaps says about one segment's range. All values in bytes. */
export interface SegmentMeasure {
  /** Bytes of the range that are mapped at all. */
  mapped: number;
  /** Resident bytes: `Rss` plus hugetlb pages ({@linkcode residentBytes}). */
  resident: number;
  /**
   * Bytes that cannot be evicted ({@linkcode lockedBytes}): resident bytes
   * in VMAs flagged `lo` (VM_LOCKED), plus hugetlb pages. Unlike smaps'
   * `Locked:` field this is not divided among the processes that share a
   * page.
   */
  locked: number;
  /** smaps `Locked:` (proportional to sharing, like `Pss`; 0 for hugetlb). */
  lockedPss: number;
  /** Bytes on 2 MiB-or-larger pages. */
  huge: number;
}

/**
 * Measures a range from parsed smaps.
 *
 * @example
 * ```ts
 * import { measureRange } from "./segments.ts";
 * import assert from "node:assert/strict";
 * assert.equal(measureRange([], 0x1000, 0x2000).mapped, 0);
 * ```
 */
export function measureRange(
  smaps: readonly SmapsVma[],
  start: number,
  end: number,
): SegmentMeasure {
  return {
    mapped: sumIn(smaps, start, end, (v) => v.size),
    resident: sumIn(smaps, start, end, residentBytes),
    locked: sumIn(smaps, start, end, lockedBytes),
    lockedPss: sumIn(smaps, start, end, (v) => v.locked),
    huge: sumIn(smaps, start, end, hugeBytes),
  };
}

/**
 * Orders ranges so the most valuable are locked first when the budget is
 * short: text, then read-only data, then writable data; by address within.
 *
 * @example
 * ```ts
 * import { byPriority } from "./segments.ts";
 * import assert from "node:assert/strict";
 * assert.equal(byPriority([]).length, 0);
 * ```
 */
export function byPriority<T extends { kind: SegmentKind; start: number }>(
  ranges: readonly T[],
): T[] {
  const rank: Record<SegmentKind, number> = { text: 0, rodata: 1, data: 2 };
  return [...ranges].sort((a, b) =>
    rank[a.kind] - rank[b.kind] || a.start - b.start
  );
}
