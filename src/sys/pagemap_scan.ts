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
 * call means "unavailable", remembered for the life of the process.
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
 * import { pagemapScanAvailable, residency } from "./pagemap_scan.ts";
 *
 * const c = libc();
 * if (pagemapScanAvailable(c) === undefined) {
 *   const at = c.getauxval(3) - (c.getauxval(3) % 4096);
 *   console.log(residency(c, at, at + 4096).present); // 4096
 * }
 * ```
 *
 * @module
 */

import { addressOf, setU64, u64 } from "./ffi.ts";
import type { Libc } from "./libc.ts";

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

/**
 * Bytes of a range in each state. A page may count in several (a present
 * file page on a huge page counts in `present`, `file` and `huge`). The zero
 * page is left out of `present`, as smaps leaves it out of `Rss`.
 *
 * @example Usage
 * ```ts
 * import type { Residency } from "./pagemap_scan.ts";
 * const r: Residency = { present: 8192, huge: 0, file: 8192, anon: 0, swapped: 0, zero: 0 };
 * console.log(r.present - r.file); // anonymous bytes
 * ```
 */
export interface Residency {
  /** Mapped pages other than the zero page. */
  present: number;
  /** Present pages on a huge page (PMD-mapped THP, or hugetlb). */
  huge: number;
  /** Present pages that are not anonymous (page cache, shmem, hugetlbfs). */
  file: number;
  /** Present anonymous pages. */
  anon: number;
  /** Swapped-out pages. */
  swapped: number;
  /** Pages mapping the shared zero page. */
  zero: number;
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

let session: Session | undefined;
let unavailable: string | undefined;

const ALL = PAGE_IS_FILE | PAGE_IS_PRESENT | PAGE_IS_SWAPPED |
  PAGE_IS_PFNZERO | PAGE_IS_HUGE;

function open(c: Libc): Session | string {
  if (session !== undefined) return session;
  if (unavailable !== undefined) return unavailable;
  let fd = -1;
  try {
    fd = c.openRead("/proc/self/pagemap");
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
    // The feature test: scan the page of the argument itself.
    const page = c.pageSize();
    const at = s.argAt - (s.argAt % page);
    const r = rawScan(s, at, at + page, PAGE_IS_PRESENT);
    if (r < 0) {
      const e = c.errno();
      c.close(fd);
      unavailable = e === ENOTTY || e === EINVAL
        ? "PAGEMAP_SCAN is not supported by this kernel (Linux 6.7+ has it)"
        : `PAGEMAP_SCAN failed with errno ${e}`;
      return unavailable;
    }
    session = s;
    return s;
  } catch (e) {
    if (fd >= 0) c.close(fd);
    unavailable = `PAGEMAP_SCAN cannot be used: ${(e as Error).message}`;
    return unavailable;
  }
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
  const s = open(c);
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
  const s = open(c);
  if (typeof s === "string") throw new Error(s);
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

/**
 * Adds the bytes of `runs` to a {@linkcode Residency}; pass a fresh one
 * (all zeros) to total one range.
 *
 * @example Usage
 * ```ts
 * import { PAGE_IS_FILE, PAGE_IS_PRESENT, tally } from "./pagemap_scan.ts";
 * const r = tally([{ start: 0, end: 8192, categories: PAGE_IS_PRESENT | PAGE_IS_FILE }]);
 * console.log(r.file); // 8192
 * ```
 */
export function tally(
  runs: readonly PageRun[],
  into: Residency = {
    present: 0,
    huge: 0,
    file: 0,
    anon: 0,
    swapped: 0,
    zero: 0,
  },
): Residency {
  for (const r of runs) {
    const n = r.end - r.start;
    const k = r.categories;
    if (k & PAGE_IS_SWAPPED) into.swapped += n;
    if (!(k & PAGE_IS_PRESENT)) continue;
    if (k & PAGE_IS_PFNZERO) {
      into.zero += n;
      continue;
    }
    into.present += n;
    if (k & PAGE_IS_HUGE) into.huge += n;
    if (k & PAGE_IS_FILE) into.file += n;
    else into.anon += n;
  }
  return into;
}

/**
 * Bytes of `[start, end)` present, on huge pages, file-backed, anonymous,
 * swapped and on the zero page: one page-table walk of this range only.
 *
 * @throws {RangeError} For unaligned or reversed bounds.
 * @throws {Error} When `PAGEMAP_SCAN` is unavailable or fails.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { pagemapScanAvailable, residency } from "./pagemap_scan.ts";
 * const c = libc();
 * if (pagemapScanAvailable(c) === undefined) {
 *   const at = c.getauxval(3) - (c.getauxval(3) % 4096);
 *   console.log(residency(c, at, at + 4096).file); // 4096
 * }
 * ```
 */
export function residency(c: Libc, start: number, end: number): Residency {
  return tally(scanRuns(c, start, end));
}
