// Copyright 2025 the page-primer authors. MIT license.
/**
 * `PAGEMAP_SCAN` (Linux 6.7+): an `ioctl` on `/proc/self/pagemap` that walks
 * the page tables of one address range only and returns runs of pages with
 * the same categories (present, swapped, file-backed, huge, zero page).
 * `/proc/self/smaps` walks every page table of the process instead.
 *
 * The layouts are the kernel's `struct pm_scan_arg` (96 bytes) and
 * `struct page_region` (24 bytes) of `include/uapi/linux/fs.h`; the request
 * is `_IOWR('f', 16, struct pm_scan_arg)`. `ENOTTY`/`EINVAL` on the first
 * call means "unavailable", remembered for the life of the JS realm.
 * `/proc/self/pagemap` is open only during a call, or a
 * {@linkcode withPagemapScan} scope around several.
 *
 * What the categories mean (as the kernel sets them): `PAGE_IS_PRESENT` a
 * mapped page; `PAGE_IS_SWAPPED` a swap entry; `PAGE_IS_FILE` a page that is
 * not anonymous (page cache or shmem); `PAGE_IS_HUGE` a PMD-mapped
 * transparent huge page or a hugetlb page; `PAGE_IS_PFNZERO` the shared
 * zero page (which smaps leaves out of `Rss`).
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { pagemapScanAvailable, scanRuns } from "./pagemap_scan.ts";
 *
 * const c = libc();
 * if (pagemapScanAvailable(c) === undefined) {
 *   const at = c.getauxval(3) - (c.getauxval(3) % 4096);
 *   console.log(scanRuns(c, at, at + 4096)[0]?.end === at + 4096); // true
 * }
 * ```
 *
 * @module
 */

import { addressOf, setU64, u64 } from "./ffi.ts";
import type { Libc } from "./libc.ts";
import { ProcIoctlFile } from "./proc_ioctl.ts";

/** `_IOWR('f', 16, struct pm_scan_arg)` with the 96-byte structure. */
export const PAGEMAP_SCAN = 0xc0606610;
/** Size of `struct pm_scan_arg` in bytes. */
export const PM_SCAN_ARG_SIZE = 96;
/** Size of `struct page_region` in bytes. */
export const PAGE_REGION_SIZE = 24;

/** `PAGE_IS_FILE`: not an anonymous page (page cache or shmem). */
export const PAGE_IS_FILE = 1 << 2;
/** `PAGE_IS_PRESENT`: mapped in the page table. */
export const PAGE_IS_PRESENT = 1 << 3;
/** `PAGE_IS_SWAPPED`: a swap entry. */
export const PAGE_IS_SWAPPED = 1 << 4;
/** `PAGE_IS_PFNZERO`: the shared zero page. */
export const PAGE_IS_PFNZERO = 1 << 5;
/** `PAGE_IS_HUGE`: a PMD-mapped THP or a hugetlb page. */
export const PAGE_IS_HUGE = 1 << 6;

// Field offsets in struct pm_scan_arg.
const OFF_SIZE = 0;
const OFF_START = 16;
const OFF_END = 24;
const OFF_WALK_END = 32;
const OFF_VEC = 40;
const OFF_VEC_LEN = 48;
const OFF_CATEGORY_ANYOF = 80;
const OFF_RETURN_MASK = 88;

/** Runs returned per ioctl; a longer answer takes more calls. */
const VEC_LEN = 512;

const EINVAL = 22;
const ENOTTY = 25;

/**
 * A run of pages with the same categories, as `struct page_region` says.
 *
 * @example Usage
 * ```ts
 * import { PAGE_IS_PRESENT, type PageRun } from "./pagemap_scan.ts";
 * const r: PageRun = { start: 0x1000, end: 0x3000, categories: PAGE_IS_PRESENT };
 * console.log(r.end - r.start);
 * ```
 */
export interface PageRun {
  /** First address of the run. */
  start: number;
  /** First address after the run. */
  end: number;
  /** `PAGE_IS_*` bits of every page of the run. */
  categories: number;
}

interface Session {
  fd: number;
  ioctl: (fd: number, request: number, arg: number) => number;
  arg: Uint8Array;
  argAt: number;
  view: DataView;
  vec: DataView;
  vecAt: number;
}

const ALL = PAGE_IS_FILE | PAGE_IS_PRESENT | PAGE_IS_SWAPPED |
  PAGE_IS_PFNZERO | PAGE_IS_HUGE;

/** The file, its buffers and feature test, once per JS realm (each Worker has its own). */
const file = new ProcIoctlFile<Session>({
  path: "/proc/self/pagemap",
  feature: "PAGEMAP_SCAN",
  setup: newSession,
});

/**
 * The buffers on the first open descriptor, and the feature test: the
 * session, or why the kernel does not support it.
 */
function newSession(c: Libc, fd: number): Session | string {
  // From an ArrayBuffer: Bun moves a small typed array made without one
  // when its `.buffer` is first read, changing its address.
  const argBuf = new ArrayBuffer(PM_SCAN_ARG_SIZE);
  const vecBuf = new ArrayBuffer(VEC_LEN * PAGE_REGION_SIZE);
  const arg = new Uint8Array(argBuf);
  const s: Session = {
    fd,
    ioctl: (fd, request, arg) => c.ioctl(fd, request, arg),
    arg,
    argAt: addressOf(arg),
    view: new DataView(argBuf),
    vec: new DataView(vecBuf),
    vecAt: addressOf(new Uint8Array(vecBuf)),
  };
  // The feature test, once per realm: scan the page of the argument.
  const page = c.pageSize();
  const at = s.argAt - (s.argAt % page);
  const r = rawScan(s, at, at + page, PAGE_IS_PRESENT);
  if (r < 0) {
    const e = c.errno();
    return e === ENOTTY || e === EINVAL
      ? "PAGEMAP_SCAN is not supported by this kernel (Linux 6.7+ has it)"
      : `PAGEMAP_SCAN failed with errno ${e}`;
  }
  return s;
}

/**
 * Runs `fn` with `/proc/self/pagemap` opened once for all the scans it
 * makes, and closed when it returns or throws (scopes nest; the outermost
 * closes). Outside a scope each {@linkcode scanRuns} opens and closes it
 * itself. No descriptor outlives the call, so a Worker that ends leaves
 * none open.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { pagemapScanAvailable, scanRuns, withPagemapScan } from "./pagemap_scan.ts";
 * const c = libc();
 * if (pagemapScanAvailable(c) === undefined) {
 *   const at = c.getauxval(3) - (c.getauxval(3) % 4096);
 *   withPagemapScan(c, () => [scanRuns(c, at, at + 4096), scanRuns(c, at, at + 8192)]);
 * }
 * ```
 */
export function withPagemapScan<T>(c: Libc, fn: () => T): T {
  return file.within(c, fn);
}

/** One ioctl over `[start, end)`: the number of runs written, or -1. */
function rawScan(s: Session, start: number, end: number, anyOf: number) {
  const v = s.view;
  s.arg.fill(0);
  setU64(v, OFF_SIZE, PM_SCAN_ARG_SIZE);
  setU64(v, OFF_START, start);
  setU64(v, OFF_END, end);
  setU64(v, OFF_VEC, s.vecAt);
  setU64(v, OFF_VEC_LEN, VEC_LEN);
  setU64(v, OFF_CATEGORY_ANYOF, anyOf);
  setU64(v, OFF_RETURN_MASK, ALL);
  return s.ioctl(s.fd, PAGEMAP_SCAN, s.argAt);
}

/**
 * Why `PAGEMAP_SCAN` cannot be used in this process, or `undefined` when it
 * can. The first call tests the kernel (one ioctl); the answer is kept.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { pagemapScanAvailable } from "./pagemap_scan.ts";
 * console.log(pagemapScanAvailable(libc()) ?? "PAGEMAP_SCAN works");
 * ```
 */
export function pagemapScanAvailable(c: Libc): string | undefined {
  if (file.tested) return undefined;
  const s = file.open(c);
  file.release(c);
  return typeof s === "string" ? s : undefined;
}

/**
 * The runs of pages in `[start, end)` that are present or swapped (pages
 * never touched, and holes between VMAs, are not listed), in address order.
 * Both ends must be page aligned.
 *
 * @throws {RangeError} For unaligned or reversed bounds.
 * @throws {Error} When `PAGEMAP_SCAN` is unavailable or fails.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { pagemapScanAvailable, scanRuns } from "./pagemap_scan.ts";
 * const c = libc();
 * if (pagemapScanAvailable(c) === undefined) {
 *   const at = c.getauxval(3) - (c.getauxval(3) % 4096);
 *   console.log(scanRuns(c, at, at + 4096).length); // 1
 * }
 * ```
 */
export function scanRuns(c: Libc, start: number, end: number): PageRun[] {
  const page = c.pageSize();
  if (start % page !== 0 || end % page !== 0 || !(start <= end)) {
    throw new RangeError(
      `scanRuns(): [0x${start.toString(16)}, 0x${
        end.toString(16)
      }) must be page aligned with start <= end`,
    );
  }
  const s = file.open(c);
  if (typeof s === "string") throw new Error(s);
  try {
    return scanOpen(c, s, start, end);
  } finally {
    file.release(c);
  }
}

function scanOpen(
  c: Libc,
  s: Session,
  start: number,
  end: number,
): PageRun[] {
  const out: PageRun[] = [];
  let at = start;
  while (at < end) {
    const n = rawScan(s, at, end, PAGE_IS_PRESENT | PAGE_IS_SWAPPED);
    if (n < 0) {
      throw new Error(
        `PAGEMAP_SCAN over [0x${at.toString(16)}, 0x${
          end.toString(16)
        }) failed with errno ${c.errno()}`,
      );
    }
    for (let i = 0; i < n; i++) {
      const o = i * PAGE_REGION_SIZE;
      out.push({
        start: u64(s.vec, o),
        end: u64(s.vec, o + 8),
        categories: u64(s.vec, o + 16),
      });
    }
    const walkEnd = u64(s.view, OFF_WALK_END);
    if (walkEnd <= at) break; // no progress: stop rather than spin
    at = walkEnd;
  }
  return out;
}
