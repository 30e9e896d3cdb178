/**
 * The `split` mode of the A/B benchmark: the huge mode's 2 MiB copy, split
 * in place into 4 KiB page-table entries over the same physical pages by
 * `madvise(MADV_COLD)` on one 4 KiB page per 2 MiB. For an anonymous
 * transparent huge page covered only in part, `MADV_COLD` splits the huge
 * page (the PMD becomes a table of 512 PTEs, the folio 512 small folios,
 * the frames stay where they are) and then marks the one page cold (moves
 * it to the inactive LRU list, which has no effect without memory
 * pressure). Nothing is copied: the bytes and the physical frames are
 * those of the `huge` mode, only the mapping granularity changes. One
 * exception, by the kernel's design (Linux 6.12+): 4 KiB pages of the huge
 * page that are entirely zero (the padding around the copied segments)
 * are mapped to the shared zero page when it is split, so Rss drops by at
 * most their size.
 *
 * Before the split, the copy is given `MADV_NOHUGEPAGE`, which changes only
 * the VMA's flags (no page moves, none is split by it): otherwise
 * khugepaged, which scans VMAs marked `MADV_HUGEPAGE`, may collapse the
 * split copy back into 2 MiB pages in the middle of a timed batch.
 *
 * The pure parts ({@linkcode splitPages}, {@linkcode pagemapFrame},
 * {@linkcode checkSplit}) are unit-tested; {@linkcode splitInPlace} does
 * the `madvise` and verifies the result from `/proc/self/smaps`,
 * `/proc/self/pagemap` (frames, when readable: root) and the bytes.
 *
 * @module
 */
import { addressOf, memory } from "../../src/sys/ffi.ts";
import { libc } from "../../src/sys/libc.ts";
import { parseSmaps, sumIn } from "../../src/sys/maps.ts";

/** `madvise` advice: deactivate the range (Linux 5.4+); splits a THP it covers in part. */
export const MADV_COLD = 20;

/** `madvise` advice: clear VM_HUGEPAGE, so khugepaged leaves the range alone. */
export const MADV_NOHUGEPAGE = 15;

/** The size of a PMD-mapped transparent huge page on x86-64 and arm64 (4 KiB granule). */
export const PMD_SIZE = 2 * 1024 * 1024;

/** The base page size this mode splits into. */
export const SMALL_PAGE = 4096;

/** An address range of the huge copy. */
export interface Range {
  /** First address (inclusive). */
  start: number;
  /** First address after the range. */
  end: number;
}

/**
 * One 4 KiB page per 2 MiB of each range: the first page of every 2 MiB
 * unit the range overlaps (clipped to the range), sorted, no duplicates.
 *
 * @example
 * ```ts
 * import { splitPages } from "./split.ts";
 * const M = 2 * 1024 * 1024;
 * console.log(splitPages([{ start: 4 * M, end: 6 * M + 8192 }]).length); // 2
 * ```
 */
export function splitPages(ranges: readonly Range[]): number[] {
  const out = new Set<number>();
  for (const r of ranges) {
    if (
      !Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end) ||
      r.start % SMALL_PAGE !== 0 || r.end % SMALL_PAGE !== 0 ||
      r.start > r.end
    ) {
      throw new RangeError(
        `splitPages: range [${r.start}, ${r.end}) is not a page-aligned range`,
      );
    }
    for (
      let unit = r.start - r.start % PMD_SIZE;
      unit < r.end;
      unit += PMD_SIZE
    ) {
      out.add(Math.max(unit, r.start));
    }
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * The page frame number in one 8-byte `/proc/<pid>/pagemap` entry (bits
 * 0-54), or `undefined` when the page is not present or the frame is hidden
 * (reads as 0 without CAP_SYS_ADMIN).
 *
 * @example
 * ```ts
 * import { pagemapFrame } from "./split.ts";
 * const e = new Uint8Array(8);
 * new DataView(e.buffer).setBigUint64(0, (1n << 63n) | 0x1234n, true);
 * console.log(pagemapFrame(e)); // 4660
 * ```
 */
export function pagemapFrame(entry: Uint8Array): number | undefined {
  if (entry.length !== 8) {
    throw new RangeError(
      `pagemapFrame: an entry is 8 bytes; got ${entry.length}`,
    );
  }
  const v = new DataView(entry.buffer, entry.byteOffset, 8).getBigUint64(
    0,
    true,
  );
  const present = (v >> 63n) & 1n;
  const pfn = v & ((1n << 55n) - 1n);
  return present === 1n && pfn !== 0n ? Number(pfn) : undefined;
}

/** The state of the huge copy before or after a split, as read from the kernel. */
export interface CopyState {
  /** `AnonHugePages` over the copy's ranges, bytes. */
  anonHuge: number;
  /** `Rss` over the copy's ranges, bytes. */
  rss: number;
  /** Bytes of the copy in 4 KiB pages that are entirely zero. */
  zeroBytes: number;
  /** Frame of each split page, `undefined` where unreadable. */
  frames: (number | undefined)[];
  /** A copy of the bytes of each split page. */
  bytes: Uint8Array[];
}

/** What a split did, as verified. */
export interface SplitCheck {
  /** Pages given `MADV_COLD` (one per 2 MiB). */
  pages: number;
  /** AnonHugePages before, bytes. */
  anonHugeBefore: number;
  /** AnonHugePages after (must be 0), bytes. */
  anonHugeAfter: number;
  /** Rss before, bytes. */
  rssBefore: number;
  /** Rss after, bytes: equal, or less by at most `zeroBytes`. */
  rssAfter: number;
  /** Bytes of the copy in entirely zero 4 KiB pages before the split. */
  zeroBytes: number;
  /** Pages whose frame could be read before and after and matched. */
  framesChecked: number;
  /** Pages whose bytes were compared (all). */
  bytesChecked: number;
}

/**
 * Compares the states before and after the split; returns the check, or
 * throws an `Error` naming what differs (huge pages left, Rss grown or
 * dropped by more than the zero-filled pages, a frame of a page that is
 * not all zero moved, bytes changed).
 *
 * @example
 * ```ts
 * import { checkSplit } from "./split.ts";
 * const b = new Uint8Array([1]);
 * const c = checkSplit(
 *   { anonHuge: 4194304, rss: 4194304, zeroBytes: 0, frames: [7], bytes: [b] },
 *   { anonHuge: 0, rss: 4194304, zeroBytes: 0, frames: [7], bytes: [b] },
 * );
 * console.log(c.framesChecked); // 1
 * ```
 */
export function checkSplit(before: CopyState, after: CopyState): SplitCheck {
  const n = before.bytes.length;
  if (
    after.bytes.length !== n || before.frames.length !== n ||
    after.frames.length !== n
  ) {
    throw new RangeError("checkSplit: states of different page counts");
  }
  if (before.anonHuge === 0) {
    throw new Error(
      "split: the copy had no 2 MiB pages before MADV_COLD (AnonHugePages 0); the huge mode is not THP",
    );
  }
  if (after.anonHuge !== 0) {
    throw new Error(
      `split: ${after.anonHuge} bytes still on 2 MiB pages after MADV_COLD (before: ${before.anonHuge}); the kernel did not split them (it does not split a partly covered THP on MADV_COLD before Linux 5.4, and skips a huge page with extra references, e.g. pinned)`,
    );
  }
  const drop = before.rss - after.rss;
  if (drop < 0 || drop > before.zeroBytes) {
    throw new Error(
      `split: Rss of the copy changed from ${before.rss} to ${after.rss} bytes (${before.zeroBytes} bytes were in zero-filled pages); pages were added or dropped, not split in place`,
    );
  }
  let frames = 0;
  for (let i = 0; i < n; i++) {
    const a = before.frames[i], b = after.frames[i];
    const zero = before.bytes[i].every((v) => v === 0);
    if (a !== undefined && b !== undefined && !zero) {
      if (a !== b) {
        throw new Error(
          `split: page ${i} moved from frame ${a} to ${b}; not the same physical memory`,
        );
      }
      frames++;
    }
    const x = before.bytes[i], y = after.bytes[i];
    if (x.length !== y.length || x.some((v, k) => v !== y[k])) {
      throw new Error(`split: the bytes of page ${i} changed`);
    }
  }
  return {
    pages: n,
    anonHugeBefore: before.anonHuge,
    anonHugeAfter: after.anonHuge,
    rssBefore: before.rss,
    rssAfter: after.rss,
    zeroBytes: before.zeroBytes,
    framesChecked: frames,
    bytesChecked: n,
  };
}

/**
 * `AnonHugePages` and `Rss` summed over `ranges`, from /proc/self/smaps.
 *
 * @example
 * ```ts
 * import { copyUsage } from "./split.ts";
 * console.log(copyUsage([]).rss); // 0
 * ```
 */
export function copyUsage(
  ranges: readonly Range[],
): { anonHuge: number; rss: number } {
  const vmas = parseSmaps(libc().readText("/proc/self/smaps"));
  let anonHuge = 0, rss = 0;
  for (const r of ranges) {
    anonHuge += sumIn(vmas, r.start, r.end, (v) => v.anonHugePages);
    rss += sumIn(vmas, r.start, r.end, (v) => v.rss);
  }
  return { anonHuge: Math.round(anonHuge), rss: Math.round(rss) };
}

/** A page of zeros, kept for `memcmp`. */
const ZERO_PAGE = new Uint8Array(SMALL_PAGE);

/** Bytes of the resident copy at `ranges` in 4 KiB pages that are all zero. */
function zeroBytes(ranges: readonly Range[]): number {
  const c = libc();
  const zero = addressOf(ZERO_PAGE);
  let n = 0;
  for (const r of ranges) {
    for (let p = r.start; p < r.end; p += SMALL_PAGE) {
      if (c.memEqual(p, zero, SMALL_PAGE)) n += SMALL_PAGE;
    }
  }
  return n;
}

function readState(
  ranges: readonly Range[],
  pages: number[],
  countZero: boolean,
): CopyState {
  const c = libc();
  const frames: (number | undefined)[] = [];
  let fd = -1;
  try {
    fd = c.openRead("/proc/self/pagemap");
  } catch {
    // no pagemap: frames stay unchecked
  }
  try {
    for (const p of pages) {
      frames.push(
        fd < 0 ? undefined : pagemapFrame(c.pread(fd, (p / SMALL_PAGE) * 8, 8)),
      );
    }
  } finally {
    if (fd >= 0) c.close(fd);
  }
  const bytes = pages.map((p) => memory(p, SMALL_PAGE).slice());
  return {
    ...copyUsage(ranges),
    zeroBytes: countZero ? zeroBytes(ranges) : 0,
    frames,
    bytes,
  };
}

/**
 * Splits the huge copy at `ranges` in place (`MADV_NOHUGEPAGE` on the
 * ranges, then `MADV_COLD` on one 4 KiB page per 2 MiB) and verifies it: no 2 MiB pages left, the same Rss, the same
 * frames (when pagemap shows them) and the same bytes. Throws an `Error`
 * saying what failed.
 *
 * @example
 * ```ts ignore
 * import { prime } from "../../mod.ts";
 * import { splitInPlace } from "./split.ts";
 * const rm = prime().remap(true).run().remap!;
 * console.log(splitInPlace(rm.regions).anonHugeAfter); // 0
 * ```
 */
export function splitInPlace(ranges: readonly Range[]): SplitCheck {
  const pages = splitPages(ranges);
  const before = readState(ranges, pages, true);
  const c = libc();
  for (const r of ranges) c.madvise(r.start, r.end - r.start, MADV_NOHUGEPAGE);
  for (const p of pages) c.madvise(p, SMALL_PAGE, MADV_COLD);
  // The kernel skips a huge page it cannot split right now (a transient
  // extra reference, e.g. under load); advising it again retries the split.
  for (let i = 0; i < SPLIT_RETRIES && copyUsage(ranges).anonHuge > 0; i++) {
    for (const p of pages) c.madvise(p, SMALL_PAGE, MADV_COLD);
  }
  return checkSplit(before, readState(ranges, pages, false));
}

/** How many more times the split is advised when huge pages are left. */
const SPLIT_RETRIES = 5;
