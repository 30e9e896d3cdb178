// Copyright 2025 the page-primer authors. MIT license.
/**
 * smaps-compatible statistics of the VMAs over a few address ranges, read
 * from the kernel for those ranges only: `PROCMAP_QUERY` names each VMA
 * ({@link ./procmap.ts}) and `PAGEMAP_SCAN` walks its page tables
 * ({@link ./pagemap_scan.ts}). Reading `/proc/self/smaps` walks every page
 * table of the process, so its cost grows with the heap; this does not.
 *
 * Where the kernel lacks either ioctl, when `PAGE_PRIMER_SMAPS=1` is set,
 * or when asked with `{ smaps: true }`, the same records come from one
 * smaps read, filtered to the ranges.
 *
 * The fast path fills the fields page-primer reads: `size`, `rss`,
 * `anonymous`, `swap`, `anonHugePages`, `shmemPmdMapped`, `filePmdMapped`,
 * `privateHugetlb`, `sharedHugetlb`, `kernelPageSize`, `mmuPageSize` and
 * `vmFlags` (`rd wr ex sh`, `ht` for hugetlb, `lo` when locked). `pss`, the
 * clean/dirty split and `referenced` are not measured there (0). Locked
 * state is not in either ioctl: with `locked: "auto"` (the default) a VmLck
 * of 0 in `/proc/self/status` proves no VMA of the process is locked, and
 * otherwise smaps is read (its cost is in `smapsMs`).
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { readVmaStats } from "./vma_stats.ts";
 *
 * const c = libc();
 * const at = c.getauxval(3) - (c.getauxval(3) % 4096); // in the executable
 * const stats = readVmaStats(c, [{ start: at, end: at + 4096 }]);
 * console.log(stats.source, stats.vmas[0]?.rss);
 * ```
 *
 * @module
 */

import {
  newSmapsVma,
  parseMaps,
  parseSmaps,
  type SmapsVma,
  type Vma,
} from "./maps.ts";
import { HUGE_PAGE } from "./hugetlb.ts";
import {
  type Libc,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_NONE,
  PROT_READ,
  SyscallError,
} from "./libc.ts";
import { parseStatus } from "./objects.ts";
import {
  procmapAvailable,
  type ProcmapVma,
  queryVma,
  queryVmas,
  SMAPS_ENV,
  withProcmap,
} from "./procmap.ts";
import {
  PAGE_IS_FILE,
  PAGE_IS_HUGE,
  PAGE_IS_PFNZERO,
  PAGE_IS_PRESENT,
  PAGE_IS_SWAPPED,
  pagemapScanAvailable,
  scanRuns,
  withPagemapScan,
} from "./pagemap_scan.ts";

export { SMAPS_ENV };

/** `PM_MMAP_EXCLUSIVE` in a `/proc/self/pagemap` entry (bit 56). */
const PM_MMAP_EXCLUSIVE_HIGH = 1 << (56 - 32);

/** An address range `[start, end)`. */
export interface AddressRange {
  /** First address (inclusive). */
  start: number;
  /** End (exclusive). */
  end: number;
}

/** What {@linkcode readVmaStats} can be asked. */
export interface VmaStatsOptions {
  /**
   * Read `/proc/self/smaps` instead of the per-range queries. Default: the
   * environment variable `PAGE_PRIMER_SMAPS` is `"1"`.
   */
  smaps?: boolean;
  /**
   * Locked state (`lo` in `vmFlags`, smaps `Locked:`): `true` reads smaps;
   * `"auto"` (default) reads smaps only when `/proc/self/status` shows a
   * VmLck above 0; `false` does not measure it.
   */
  locked?: boolean | "auto";
  /**
   * With `locked: "auto"`: `VmLck` of `/proc/self/status` in bytes as the
   * caller read it for this run (one read per run, not one per call);
   * read now when absent.
   */
  vmLck?: number;
}

/** The records and where they came from. */
export interface VmaStats {
  /** Each VMA overlapping a range, once, in address order, whole. */
  vmas: SmapsVma[];
  /** `"query"`: PROCMAP_QUERY + PAGEMAP_SCAN; `"smaps"`: a smaps read. */
  source: "query" | "smaps";
  /** Why smaps was read, when it was. */
  why?: string;
  /**
   * Where the locked state comes from: `"smaps"`, `"none"` (VmLck is 0: no
   * VMA of the process is locked) or `"not measured"`.
   */
  locked: "smaps" | "none" | "not measured";
  /** Time this call took, ms. */
  ms: number;
  /** Of which reading and parsing smaps, ms (0 when not read). */
  smapsMs: number;
}

function forcedBySetting(
  c: Libc,
  options: VmaStatsOptions,
): string | undefined {
  if (options.smaps === true) return "smaps asked for";
  if (options.smaps === undefined && c.getenv(SMAPS_ENV) === "1") {
    return `${SMAPS_ENV}=1`;
  }
  return undefined;
}

/**
 * Why the per-range path cannot be used here, or `undefined` when it can
 * (both ioctls work and nothing forces smaps).
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { fastPathUnavailable } from "./vma_stats.ts";
 * console.log(fastPathUnavailable(libc()) ?? "per-range queries");
 * ```
 */
export function fastPathUnavailable(
  c: Libc,
  options: VmaStatsOptions = {},
): string | undefined {
  return forcedBySetting(c, options) ?? procmapAvailable(c) ??
    pagemapScanAvailable(c);
}

function overlapsAny(v: Vma, ranges: readonly AddressRange[]): boolean {
  return ranges.some((r) =>
    r.start < r.end && v.start < r.end && r.start < v.end
  );
}

function checkRanges(ranges: readonly AddressRange[]): void {
  for (const r of ranges) {
    if (!(r.start <= r.end)) {
      throw new RangeError(
        `readVmaStats(): range [${r.start}, ${r.end}) has start above end`,
      );
    }
  }
}

/** The smaps records overlapping the ranges, from one smaps read. */
function fromSmaps(c: Libc, ranges: readonly AddressRange[]): SmapsVma[] {
  return parseSmaps(c.readText("/proc/self/smaps")).filter((v) =>
    overlapsAny(v, ranges)
  );
}

/** tmpfs-backed (shmem) file VMAs: memfd, POSIX and SysV shared memory. */
function isShmem(v: Vma): boolean {
  return v.path.startsWith("/memfd:") || v.path.startsWith("/dev/shm/") ||
    v.path.startsWith("/SYSV") ||
    (v.shared && v.inode !== 0 && v.path.startsWith("/dev/zero"));
}

function record(v: ProcmapVma, hugetlb: boolean): SmapsVma {
  const vmFlags = [
    ...(v.read ? ["rd"] : []),
    ...(v.write ? ["wr"] : []),
    ...(v.exec ? ["ex"] : []),
    ...(v.shared ? ["sh"] : []),
    ...(hugetlb ? ["ht"] : []),
  ];
  return {
    ...newSmapsVma(v),
    size: v.end - v.start,
    kernelPageSize: v.pageSize,
    mmuPageSize: v.pageSize,
    vmFlags,
  };
}

/** Whether the hugetlb page at `addr` is mapped by this process only. */
function hugetlbExclusive(
  c: Libc,
  pagemapFd: number,
  addr: number,
): boolean {
  const entry = c.pread(pagemapFd, (addr / c.pageSize()) * 8, 8);
  if (entry.length < 8) return true;
  const high = new DataView(entry.buffer, entry.byteOffset).getUint32(4, true);
  return (high & PM_MMAP_EXCLUSIVE_HIGH) !== 0;
}

/** Fills a record's residency from PAGEMAP_SCAN over the whole VMA. */
function measure(
  c: Libc,
  out: SmapsVma,
  hugetlb: boolean,
  pagemap: () => number,
): void {
  const shmem = isShmem(out);
  for (const r of scanRuns(c, out.start, out.end)) {
    const n = r.end - r.start;
    const k = r.categories;
    if (k & PAGE_IS_SWAPPED) out.swap += n;
    if (!(k & PAGE_IS_PRESENT) || (k & PAGE_IS_PFNZERO)) continue;
    if (hugetlb) {
      // smaps leaves hugetlb pages out of Rss and splits them by sharing.
      const step = out.kernelPageSize;
      for (let a = r.start; a < r.end; a += step) {
        if (hugetlbExclusive(c, pagemap(), a)) out.privateHugetlb += step;
        else out.sharedHugetlb += step;
      }
      continue;
    }
    out.rss += n;
    if (!(k & PAGE_IS_FILE)) out.anonymous += n;
    if (!(k & PAGE_IS_HUGE)) continue;
    if (!(k & PAGE_IS_FILE)) out.anonHugePages += n;
    else if (shmem) out.shmemPmdMapped += n;
    else out.filePmdMapped += n;
  }
  const f = out.fields;
  f["Size"] = out.size;
  f["KernelPageSize"] = out.kernelPageSize;
  f["MMUPageSize"] = out.mmuPageSize;
  f["Rss"] = out.rss;
  f["Anonymous"] = out.anonymous;
  f["AnonHugePages"] = out.anonHugePages;
  f["ShmemPmdMapped"] = out.shmemPmdMapped;
  f["FilePmdMapped"] = out.filePmdMapped;
  f["Shared_Hugetlb"] = out.sharedHugetlb;
  f["Private_Hugetlb"] = out.privateHugetlb;
  f["Swap"] = out.swap;
}

/** The VMAs over the ranges from PROCMAP_QUERY, each once, by address. */
function queryRanges(c: Libc, ranges: readonly AddressRange[]): ProcmapVma[] {
  const seen = new Map<number, ProcmapVma>();
  withProcmap(c, () => {
    for (const r of ranges) {
      if (r.start === r.end) continue;
      for (const v of queryVmas(c, r.start, r.end)) seen.set(v.start, v);
    }
  });
  return [...seen.values()].sort((a, b) => a.start - b.start);
}

/**
 * Runs `fn` with `/proc/self/maps` and `/proc/self/pagemap` each opened
 * once for all the per-range queries it makes (a run of page-primer), and
 * closed when it returns or throws; scopes nest. Outside a scope, each
 * statistics read opens and closes them itself.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { readVmaStats, withVmaQueries } from "./vma_stats.ts";
 * const c = libc();
 * const at = c.getauxval(3) - (c.getauxval(3) % 4096);
 * const [a, b] = withVmaQueries(c, () => [
 *   readVmaStats(c, [{ start: at, end: at + 4096 }]),
 *   readVmaStats(c, [{ start: at, end: at + 4096 }]),
 * ]);
 * console.log(a.vmas.length === b.vmas.length); // true
 * ```
 */
export function withVmaQueries<T>(c: Libc, fn: () => T): T {
  return withProcmap(c, () => withPagemapScan(c, fn));
}

function fromQueries(c: Libc, ranges: readonly AddressRange[]): SmapsVma[] {
  const base = c.pageSize();
  let pagemapFd = -1;
  const pagemap = () =>
    pagemapFd >= 0 ? pagemapFd : (pagemapFd = c.openRead("/proc/self/pagemap"));
  try {
    return queryRanges(c, ranges).map((v) => {
      const hugetlb = v.pageSize > base;
      const out = record(v, hugetlb);
      measure(c, out, hugetlb, pagemap);
      return out;
    });
  } finally {
    if (pagemapFd >= 0) c.close(pagemapFd);
  }
}

/**
 * smaps-compatible records of the VMAs overlapping any of `ranges`, read for
 * those ranges only where the kernel allows (see the module doc), otherwise
 * from smaps filtered to them. Each VMA is whole (its statistics cover all
 * of it, as smaps' do), so `sumIn` over the records gives what it gives
 * over a full smaps read.
 *
 * @param c libc.
 * @param ranges The address ranges of interest; empty ones are ignored.
 * @param options Force smaps, and how to measure locked state.
 * @throws {RangeError} For a range with `start > end`.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { hugeBytes, sumIn } from "./maps.ts";
 * import { readVmaStats } from "./vma_stats.ts";
 *
 * const c = libc();
 * const at = c.getauxval(3) - (c.getauxval(3) % 4096);
 * const { vmas } = readVmaStats(c, [{ start: at, end: at + 4096 }]);
 * console.log(sumIn(vmas, at, at + 4096, hugeBytes));
 * ```
 */
export function readVmaStats(
  c: Libc,
  ranges: readonly AddressRange[],
  options: VmaStatsOptions = {},
): VmaStats {
  checkRanges(ranges);
  const t0 = performance.now();
  const why = fastPathUnavailable(c, options);
  const lockedWanted = options.locked ?? "auto";
  let lockedWhy: string | undefined;
  if (why === undefined && lockedWanted === true) {
    lockedWhy = "locked state asked for";
  } else if (why === undefined && lockedWanted === "auto") {
    const vmLck = options.vmLck ??
      parseStatus(c.readText("/proc/self/status")).vmLck;
    if (vmLck > 0) {
      lockedWhy = `VmLck is ${vmLck} bytes: locked state asked for`;
    }
  }
  const smapsWhy = why ?? lockedWhy;
  if (smapsWhy !== undefined) {
    const vmas = fromSmaps(c, ranges);
    const ms = performance.now() - t0;
    return {
      vmas,
      source: "smaps",
      why: smapsWhy,
      locked: "smaps",
      ms,
      smapsMs: ms,
    };
  }
  const vmas = withVmaQueries(c, () => fromQueries(c, ranges));
  return {
    vmas,
    source: "query",
    locked: lockedWanted === "auto" ? "none" : "not measured",
    ms: performance.now() - t0,
    smapsMs: 0,
  };
}

/**
 * Every file-backed VMA of the process (the maps fields only), in address
 * order. Where the kernel has `PROCMAP_QUERY`: the names of
 * `/proc/self/map_files` (one per file-backed VMA; the kernel lists them
 * without formatting the others), then one query per VMA. Stepping
 * through the VMAs with `PROCMAP_QUERY_FILE_BACKED_VMA` instead costs a
 * lookup per anonymous VMA passed over, which dominates with thousands of
 * them. Otherwise `/proc/self/maps`, filtered.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { readFileVmas } from "./vma_stats.ts";
 * console.log(readFileVmas(libc()).some((v) => v.exec));
 * ```
 */
export function readFileVmas(
  c: Libc,
  options: Pick<VmaStatsOptions, "smaps"> = {},
): Vma[] {
  if (fastPathUnavailable(c, options) !== undefined) {
    return parseMaps(c.readText("/proc/self/maps")).filter((v) =>
      v.inode !== 0
    );
  }
  const starts = mapFilesStarts(c);
  const found = starts === undefined
    ? queryVmas(c, 0, 2 ** 64, { fileBacked: true })
    : withProcmap(c, () =>
      starts.flatMap((at) => {
        const v = queryVma(c, at);
        return v === undefined || v.inode === 0 ? [] : [v];
      }));
  const seen = new Map<number, Vma>();
  for (const { pageSize: _p, buildId: _b, ...v } of found) seen.set(v.start, v);
  return [...seen.values()].sort((a, b) => a.start - b.start);
}

/**
 * The VMAs overlapping any of `ranges` (the maps fields only), each once,
 * in address order: one `PROCMAP_QUERY` per VMA where the kernel has it,
 * else `/proc/self/maps`, filtered (also when `PAGE_PRIMER_SMAPS=1` or
 * `{ smaps: true }`).
 *
 * @throws {RangeError} For a range with `start > end`.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { readVmas } from "./vma_stats.ts";
 * const c = libc();
 * const at = c.getauxval(3) - (c.getauxval(3) % 4096);
 * console.log(readVmas(c, [{ start: at, end: at + 1 }])[0]?.exec !== undefined);
 * ```
 */
export function readVmas(
  c: Libc,
  ranges: readonly AddressRange[],
  options: Pick<VmaStatsOptions, "smaps"> = {},
): Vma[] {
  checkRanges(ranges);
  if (forcedBySetting(c, options) ?? procmapAvailable(c)) {
    return parseMaps(c.readText("/proc/self/maps")).filter((v) =>
      overlapsAny(v, ranges)
    );
  }
  const seen = new Map<number, Vma>();
  for (const { pageSize: _p, buildId: _b, ...v } of queryRanges(c, ranges)) {
    seen.set(v.start, v);
  }
  return [...seen.values()];
}

/** Start addresses of the file-backed VMAs, from `/proc/self/map_files`. */
function mapFilesStarts(c: Libc): number[] | undefined {
  let fd: number;
  try {
    fd = c.openRead("/proc/self/map_files");
  } catch {
    return undefined;
  }
  try {
    return c.listDir(fd).map((n) => parseInt(n, 16)).filter((n) =>
      Number.isSafeInteger(n)
    ).sort((a, b) => a - b);
  } catch {
    return undefined;
  } finally {
    c.close(fd);
  }
}

/** `r` lies within VMAs of `sorted` that follow one another without a gap. */
function coveredBy(sorted: readonly SmapsVma[], r: AddressRange): boolean {
  let at = r.start;
  for (const v of sorted) {
    if (v.end <= at) continue;
    if (v.start > at) return false;
    at = v.end;
    if (at >= r.end) return true;
  }
  return false;
}

/** The parts of `ranges` outside every range of `known`. */
function outside(
  ranges: readonly AddressRange[],
  known: readonly AddressRange[],
): AddressRange[] {
  let parts = ranges.filter((r) => r.start < r.end);
  for (const k of known) {
    parts = parts.flatMap((r) =>
      k.end <= r.start || r.end <= k.start ? [r] : [
        ...(r.start < k.start ? [{ start: r.start, end: k.start }] : []),
        ...(k.end < r.end ? [{ start: k.end, end: r.end }] : []),
      ]
    );
  }
  return parts;
}

/**
 * {@linkcode readVmaStats} of the ranges not yet covered by `vmas`, added
 * to them: `vmas` plus the VMAs over the rest of `ranges`, once each, in
 * address order. A range counts as covered when VMAs of `vmas` map all of
 * it without a gap, or, for the parts inside `known` (the ranges `vmas`
 * was read for), always: a hole there was read as a hole.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { addVmaStats } from "./vma_stats.ts";
 * const c = libc();
 * const at = c.getauxval(3) - (c.getauxval(3) % 4096);
 * console.log(addVmaStats(c, [], [{ start: at, end: at + 4096 }]).length); // 1
 * ```
 */
export function addVmaStats(
  c: Libc,
  vmas: readonly SmapsVma[],
  ranges: readonly AddressRange[],
  options: VmaStatsOptions & { known?: readonly AddressRange[] } = {},
): SmapsVma[] {
  const { known = [], ...read } = options;
  const sorted = [...vmas].sort((a, b) => a.start - b.start);
  const missing = outside(ranges, known).filter((r) => !coveredBy(sorted, r));
  if (missing.length === 0) return [...vmas];
  const seen = new Map(vmas.map((v) => [v.start, v]));
  for (const v of readVmaStats(c, missing, read).vmas) {
    if (!seen.has(v.start)) seen.set(v.start, v);
  }
  return [...seen.values()].sort((a, b) => a.start - b.start);
}

/**
 * The ranges widened to 2 MiB boundaries: where a remap plan looks (a
 * region grows to the 2 MiB pages around its segments), merged where they
 * overlap, in address order.
 *
 * @example Usage
 * ```ts
 * import { alignedRanges } from "./vma_stats.ts";
 * console.log(alignedRanges([{ start: 0x201000, end: 0x202000 }]));
 * // [{ start: 0x200000, end: 0x400000 }]
 * ```
 */
export function alignedRanges(
  ranges: readonly AddressRange[],
): AddressRange[] {
  const out: AddressRange[] = [];
  const sorted = ranges.filter((r) => r.start < r.end).map((r) => ({
    start: Math.floor(r.start / HUGE_PAGE) * HUGE_PAGE,
    end: Math.ceil(r.end / HUGE_PAGE) * HUGE_PAGE,
  })).sort((a, b) => a.start - b.start);
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else out.push(r);
  }
  return out;
}

/**
 * Whether this process can make `room` more mappings under
 * `vm.max_map_count`, tested by making them: one reservation split into
 * `room` VMAs by alternating its protection, then unmapped. This costs
 * `room / 2` system calls, where counting the VMAs costs a read of
 * `/proc/self/maps`, which grows with their number.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { canMapMore } from "./vma_stats.ts";
 * console.log(canMapMore(libc(), 12)); // true
 * ```
 */
export function canMapMore(c: Libc, room: number): boolean {
  if (room <= 1) return true;
  const page = c.pageSize();
  let at: number;
  try {
    at = c.mmap(0, room * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
  } catch {
    return false;
  }
  try {
    // Every other page without access: `room` VMAs that cannot merge.
    for (let i = 1; i < room; i += 2) {
      c.mprotect(at + i * page, page, PROT_NONE);
    }
    return true;
  } catch (e) {
    if (e instanceof SyscallError) return false; // ENOMEM: the limit
    throw e;
  } finally {
    c.munmap(at, room * page);
  }
}

/**
 * The number of VMAs of this process: the lines of `/proc/self/maps`
 * (counted through one 64 KiB buffer, not parsed: this is asked when the
 * process may be out of mappings, and a buffer for all of it, 5 MiB at
 * 65,530 VMAs, may then not be allocated).
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { countVmas } from "./vma_stats.ts";
 * console.log(countVmas(libc()) > 10);
 * ```
 */
export function countVmas(c: Libc): number {
  let n = 0;
  c.readChunks("/proc/self/maps", (bytes) => {
    for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x0a) n++;
  });
  return n;
}
