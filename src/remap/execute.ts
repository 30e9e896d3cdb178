/**
 * Executing a remap plan in the live, multi-threaded process. Each region is
 * replaced by an identical copy in one syscall (by the trampoline); gaps that
 * aggressive alignment grows into are reserved first with
 * `MAP_FIXED_NOREPLACE`, so no mapping made by another thread is ever
 * clobbered. Any failure before the swap leaves the region untouched.
 *
 * @module
 */

import { formatBytes } from "../sys/format.ts";
import { HUGE_PAGE, readPoolState } from "../sys/hugetlb.ts";
import {
  ERRNO,
  errnoName,
  type Libc,
  MADV_COLLAPSE,
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  MFD_CLOEXEC,
  PROT_EXEC,
  PROT_READ,
  type StepError,
  SyscallError,
} from "../sys/libc.ts";
import { maxMapHeadroom, memcgProblem } from "../sys/limits.ts";
import { hugeBytes, type SmapsVma, sumIn } from "../sys/maps.ts";
import {
  addVmaStats,
  alignedRanges,
  canMapMore,
  countVmas,
  readVmas,
  readVmaStats,
} from "../sys/vma_stats.ts";
import type { LoadedObject, SegmentRange } from "../sys/segments.ts";
import { thpStatus } from "../sys/thp.ts";
import {
  type Backend,
  BACKEND_OPS,
  type BackendOps,
  decideRemap,
  SHMEM_ENABLED,
  shmemEnabled,
} from "./backend.ts";
import { NAME_PREFIX, type PlannedRegion } from "./plan.ts";
import {
  type ActiveSwap,
  copyIdentity,
  type FileIdentity,
  openIdentified,
  SwapRecord,
} from "./record.ts";
import {
  measureCoverage,
  type RegionReport,
  type RemapOptions,
  type RemapReport,
  type ShareReport,
} from "./report.ts";
import {
  copyPrefix,
  defaultShareDir,
  evictUnused,
  openShareDir,
  sharedCopy,
  type ShareDir,
  type ShareOptions,
} from "./share.ts";
import {
  loadedTrampoline,
  loadTrampoline,
  type Trampoline,
  type TrampolineResult,
} from "./trampoline.ts";

/** Mappings a remap may add per region (stage, trims, gaps, splits). */
export const MAPS_PER_REGION = 6;

/**
 * The environment variable choosing how a copy is filled where memory
 * equals the file: `memory` (`MADV_POPULATE_READ` on the source, then a
 * copy) or `file` (pread from the page cache). Elsewhere, always memory.
 */
const FILL_ENV = "PAGE_PRIMER_FILL";

/**
 * The fill without {@linkcode FILL_ENV}. Still `file`: the fault walk of
 * tests/scenarios/fault_test.ts fails each syscall of the pread fill in
 * turn and runs its children without the variable; with `memory` here it
 * must set `PAGE_PRIMER_FILL=file`. Measured (trampoline ms, medians):
 * a fresh process's first remap, memory 27.4 / file 25.6 (Deno), 27.6 /
 * 27.1 (Bun); a remap after a restore, memory 48.0 / file 38.9 (Deno),
 * 36.1 / 31.4 (Bun): after a restore the file's pages are not mapped, so
 * the populate faults them all in.
 */
const DEFAULT_FILL: "memory" | "file" = "file";

/** The fill {@linkcode FILL_ENV} asks for; its default when unset or other. */
function fillMode(value: string | undefined): "memory" | "file" {
  return value === "memory" || value === "file" ? value : DEFAULT_FILL;
}

/** Times `MADV_COLLAPSE` is tried again after `EAGAIN`. */
const COLLAPSE_RETRIES = 3;

/**
 * Tries `MADV_COLLAPSE` again on copies where it failed with `EAGAIN`
 * (pages busy, e.g. a shared copy other processes are mapping at the same
 * moment): the copy is already in place, so this only adds huge pages.
 */
function retryCollapse(c: Libc, results: RegionReport[]): void {
  const busy = `MADV_COLLAPSE: ${errnoName(ERRNO.EAGAIN)}`;
  for (const r of results) {
    const at = r.notes.indexOf(busy);
    if (r.status !== "remapped" || at < 0) continue;
    for (let i = 1; i <= COLLAPSE_RETRIES; i++) {
      try {
        c.madvise(r.start, r.end - r.start, MADV_COLLAPSE);
        r.notes[at] = `${busy}, then collapsed on retry ${i}`;
        break;
      } catch (e) {
        if (!(e instanceof SyscallError)) throw e;
        if (e.errno !== ERRNO.EAGAIN || i === COLLAPSE_RETRIES) {
          r.notes[at] = `${busy}, and ${errnoName(e.errno)} on retry ${i}`;
          break;
        }
      }
    }
  }
}

/** A hugetlb stage failed for want of pages (pool taken meanwhile). */
function poolRanShort(res: { step: string; errno: number }): boolean {
  return (res.step === "stage mmap" ||
    res.step === "madvise(MADV_POPULATE_WRITE)") &&
    (res.errno === ERRNO.ENOMEM || res.errno === ERRNO.EFAULT);
}

/**
 * Unmaps the gap reservations of a region that was not swapped. With
 * `check`, only those maps still shows as our reservation (anonymous,
 * no access, exactly there): a failed mremap may have unmapped them, and
 * the space may be someone else's by now.
 */
function releaseGaps(
  c: Libc,
  held: readonly { start: number; end: number }[],
  check: boolean,
): void {
  const maps = check ? readVmas(c, held) : [];
  for (const g of held) {
    const ours = !check ||
      maps.some((v) =>
        v.start <= g.start && g.end <= v.end && v.perms.startsWith("---") &&
        v.path === "" && v.inode === 0
      );
    if (ours) c.munmap(g.start, g.end - g.start);
  }
}

function protOf(perms: string): number {
  return (perms[0] === "r" ? PROT_READ : 0) |
    (perms[2] === "x" ? PROT_EXEC : 0);
}

function reserve(c: Libc, start: number, end: number): boolean {
  let got: number;
  try {
    got = c.mmap(
      start,
      end - start,
      0,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
    );
  } catch {
    return false; // EEXIST: someone mapped it meanwhile
  }
  if (got !== start) {
    // A kernel older than 4.17 treats the address as a hint.
    c.munmap(got, end - start);
    return false;
  }
  return true;
}

/**
 * Moves the read-only and code VMAs of `objects` onto 2 MiB pages (or a
 * 4 KiB anonymous copy), one region at a time, and measures the result.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { mainExecutable } from "../sys/objects.ts";
 * import { segmentRanges } from "../sys/segments.ts";
 * import { remapObjects } from "./execute.ts";
 * const c = libc();
 * const exe = mainExecutable(c);
 * const report = remapObjects(c, {
 *   objects: [exe],
 *   ranges: segmentRanges(exe, 4096),
 *   options: {},
 * });
 * console.log(report.text);
 * ```
 */
export function remapObjects(
  c: Libc,
  request: Omit<RemapInput, "t0">,
): RemapReport & { after: SmapsVma[] } {
  const input = { ...request, t0: performance.now() };
  // Before the first remap of the process, nothing is recorded: plan and
  // check without a trampoline, load it only when there is work (loading
  // needs mappings and a memfd, which the checks may show are not there).
  // Looking for it lists the loaded objects, which needs memory and
  // mappings too: when that fails, the checks run without the record, and
  // the lookup is made again (and its error reported) only if there is work.
  let tramp: Trampoline | undefined;
  try {
    tramp = loadedTrampoline(c);
  } catch {
    tramp = undefined;
  }
  return tramp === undefined
    ? remapLocked(c, undefined, input)
    : tramp.locked(() => remapLocked(c, tramp, input));
}

/** What {@linkcode remapObjects} is asked, and when it started. */
export interface RemapInput {
  /** The objects whose code and read-only data may move. */
  objects: readonly LoadedObject[];
  /** Their page-aligned LOAD ranges (`segmentRanges`). */
  ranges: readonly SegmentRange[];
  /** The checked options of `remap()`. */
  options: RemapOptions;
  /**
   * The VMA statistics of `alignedRanges(ranges)` as read just before, when
   * the caller has them: only what lies outside those ranges is read again.
   */
  before?: readonly SmapsVma[];
  /**
   * `VmLck` of `/proc/self/status` as the caller read it for this run (the
   * VMA statistics' locked-state check), read once per statistics read when
   * absent.
   */
  vmLck?: number;
  /** `performance.now()` at the start, for the report's `ms`. */
  t0: number;
}

/** A remap's report with the smaps read it was measured from. */
type Measured = RemapReport & { after: SmapsVma[] };

/** Shared mode while a run uses it: the directory and what was done. */
interface ShareRun {
  dir: ShareDir;
  report: ShareReport;
  /** Objects a copy was created for this run, with their build-id. */
  createdFor: Map<string, string>;
}

/** The state of one run, passed to each step. */
interface RunContext {
  c: Libc;
  tramp: Trampoline;
  record: SwapRecord;
  input: RemapInput;
  backend: Backend | "4k";
  ops: BackendOps;
  mainPath: string | undefined;
  warnings: string[];
  results: RegionReport[];
  /** Each object's file, opened and identified once per run. */
  files: Map<string, { fd: number; file: FileIdentity } | string>;
  share: ShareRun | undefined;
  /** The shmem THP setting as the plan read it (for the memfd warning). */
  shmem: string;
  /** How a copy is filled where memory equals the file ({@linkcode FILL_ENV}). */
  fill: "memory" | "file";
  /** The errnos of `PR_SET_VMA_ANON_NAME` warned of in this run. */
  namingWarned: Set<number>;
}

/**
 * {@linkcode remapObjects} under the trampoline's lock, or, with no
 * trampoline loaded yet, up to the point where it is needed: then it is
 * loaded and the remap starts over under its lock (another thread may have
 * remapped meanwhile).
 */
function remapLocked(
  c: Libc,
  tramp: Trampoline | undefined,
  input: RemapInput,
): Measured {
  const record = tramp === undefined ? undefined : new SwapRecord(tramp);
  const pre = preflight(c, record, input);
  if (pre.stop !== undefined) {
    pre.warnings.push(pre.stop);
    return pre.report([], pre.maps);
  }
  // Never remapped here and nothing to remap: no trampoline needed.
  if (tramp === undefined && pre.plan.regions.length === 0) {
    return pre.report([], pre.maps);
  }
  if (tramp === undefined || record === undefined) {
    const loaded = loadTrampoline(c);
    return loaded.locked(() => remapLocked(c, loaded, input));
  }
  const ctx: RunContext = {
    c,
    tramp,
    record,
    input,
    backend: pre.backend,
    shmem: pre.shmem,
    ops: BACKEND_OPS[pre.backend],
    mainPath: input.objects.find((o) => o.main)?.path,
    warnings: pre.warnings,
    results: [],
    files: new Map(),
    share: pre.shareWanted ? openShare(c, pre) : undefined,
    fill: fillMode(c.getenv(FILL_ENV)),
    namingWarned: new Set(),
  };
  try {
    for (const region of pre.plan.regions) swapRegion(ctx, region);
  } finally {
    closeFiles(ctx);
    if (ctx.share) finishShare(ctx, ctx.share);
  }
  if (!ctx.ops.page4k) retryCollapse(c, ctx.results);
  const smaps = verify(ctx);
  return pre.report(ctx.results, smaps);
}

/** What {@linkcode preflight} found: the plan, or why nothing can be done. */
interface Preflight {
  backend: Backend | "4k";
  /** The shmem THP setting as read for the plan. */
  shmem: string;
  plan: { regions: readonly PlannedRegion[] };
  warnings: string[];
  maps: SmapsVma[];
  /** Why nothing is remapped (a warning), or undefined to go on. */
  stop?: string;
  /** The share options, when shared mode was asked for. */
  shareWanted?: ShareOptions;
  /** Set by {@linkcode openShare}, read by the report. */
  shareReport?: ShareReport;
  report: (regions: RegionReport[], smaps: SmapsVma[]) => Measured;
}

/**
 * Plans the remap and picks its backend, then checks what the kernel lets
 * this process have (map count, memory cgroup) before anything is made.
 */
function preflight(
  c: Libc,
  record: SwapRecord | undefined,
  input: RemapInput,
): Preflight {
  const { objects, ranges, options, before, vmLck, t0 } = input;
  const align = options.align ?? "aggressive";
  const pageSize = options.pageSize ?? "2m";
  const page4k = pageSize === "4k";
  const thp = thpStatus(c);
  const shmem = shmemEnabled(c);
  // The VMAs where the ranges and this process's copies are, not all.
  const where = alignedRanges([
    ...ranges,
    ...[...(record?.swaps.values() ?? [])].map((a) => a.region),
  ]);
  const maps: SmapsVma[] = before
    ? addVmaStats(c, before, where, { known: alignedRanges(ranges), vmLck })
    : readVmaStats(c, where, { vmLck }).vmas;
  const shareWanted = options.share && !page4k
    ? options.share === true ? {} : options.share
    : undefined;
  const choice = decideRemap({
    objects,
    ranges,
    smaps: maps,
    align,
    ours: [...(record?.swaps.values() ?? [])].map((a) => a.region),
    wanted: page4k ? "4k" : shareWanted ? "memfd" : options.backend ?? "auto",
    pool: readPoolState(c),
    thp,
    shmemEnabled: shmem,
  });
  const { pool, plan, backend } = choice;
  const pre: Preflight = {
    backend,
    shmem,
    plan,
    warnings: [],
    maps,
    ...(shareWanted ? { shareWanted } : {}),
    report: (regions, smaps) => ({
      after: smaps,
      align,
      pageSize,
      backend,
      pool,
      ...(choice.unavailable !== undefined
        ? { unavailable: choice.unavailable }
        : {}),
      ...(pre.shareReport ? { share: pre.shareReport } : {}),
      thp,
      regions,
      skipped: plan.skipped,
      text: measureCoverage(smaps, ranges, "text"),
      rodata: measureCoverage(smaps, ranges, "rodata"),
      copyResident: copyResident(record, smaps),
      ms: performance.now() - t0,
      warnings: pre.warnings,
    }),
  };
  // Nothing changed on the early returns: the smaps read is current.
  if (choice.unavailable !== undefined) {
    return { ...pre, stop: choice.unavailable };
  }
  if (backend === "thp" && thp.reason) pre.warnings.push(thp.reason);
  pre.stop = limitProblem(c, {
    regions: plan.regions,
    ops: BACKEND_OPS[backend],
    wanted: options.backend,
    vmas: maps,
    shared: shareWanted !== undefined,
  });
  return pre;
}

/**
 * Why the plan would exceed `vm.max_map_count` or the memory cgroup's
 * limit, or `undefined`; a shared copy charges nothing here.
 */
function limitProblem(
  c: Libc,
  { shared, ...charge }: Parameters<typeof memcgCharge>[0] & {
    shared: boolean;
  },
): string | undefined {
  const charged = shared ? 0 : memcgCharge(charge);
  return mapCountProblem(c, charge.regions.length) ??
    (charged > 0
      ? memcgProblem(
        c.tryReadText("/proc/self/cgroup") ?? "",
        (f) => c.tryReadText(f),
        charged,
      )
      : undefined);
}

/**
 * Bytes a remap may charge to the memory cgroup: the copies themselves, but
 * for hugetlb pages (not charged) only the page cache a fill from the file
 * reads in, the part of each region not resident now; with `backend:
 * "auto"` a region the pool runs short for goes to THP, so all of it counts
 * then.
 */
function memcgCharge({ regions, ops, wanted, vmas }: {
  regions: readonly PlannedRegion[];
  ops: BackendOps;
  wanted: RemapOptions["backend"];
  vmas: readonly SmapsVma[];
}): number {
  const fallback = ops.hugetlb && (wanted ?? "auto") === "auto";
  return regions.reduce((n, r) => {
    if (ops.chargesMemcg || fallback) return n + (r.end - r.start);
    if (!r.equalsFile) return n;
    const resident = sumIn(vmas, r.dataStart, r.dataEnd, (v) => v.rss);
    return n + Math.max(0, r.dataEnd - r.dataStart - resident);
  }, 0);
}

/** Resident bytes of this process's copies (smaps Rss, hugetlb included). */
function copyResident(
  record: SwapRecord | undefined,
  smaps: readonly SmapsVma[],
): number {
  return [...(record?.swaps.values() ?? [])].reduce(
    (n, a) =>
      n + sumIn(
        smaps,
        a.region.start,
        a.region.end,
        (v) => v.rss + v.privateHugetlb + v.sharedHugetlb,
      ),
    0,
  );
}

/** Why `vm.max_map_count` leaves no room for the plan, or undefined. */
function mapCountProblem(c: Libc, regions: number): string | undefined {
  const needed = regions * MAPS_PER_REGION;
  // Counting the VMAs costs more the more there are: count only when
  // making `needed` mappings fails.
  if (canMapMore(c, needed)) return undefined;
  const current = countVmas(c);
  const headroom = maxMapHeadroom(c, current);
  if (headroom >= needed) return undefined;
  return `vm.max_map_count leaves room for ${headroom} more mappings, a remap needs up to ${needed}: nothing remapped; raise it with sysctl -w vm.max_map_count=${
    current + needed + 1024
  }`;
}

/**
 * Opens the shared copies' directory; when it cannot be used, shared mode
 * is off for this run and every region gets a private copy.
 */
function openShare(c: Libc, pre: Preflight): ShareRun | undefined {
  const path = pre.shareWanted?.dir ??
    defaultShareDir(c.geteuid(), c.getenv("XDG_RUNTIME_DIR"));
  const dir = openShareDir(c, path);
  const report: ShareReport = {
    dir: path,
    created: 0,
    reused: 0,
    rejected: [],
    evicted: [],
  };
  pre.shareReport = report;
  if (typeof dir !== "string") return { dir, report, createdFor: new Map() };
  report.rejected.push(dir);
  pre.warnings.push(`shared mode off: ${dir}; each region gets a private copy`);
  return undefined;
}

/** A region being swapped and the notes gathered on it. */
interface RegionTask {
  /** The region (with its gaps as reserved, once they are). */
  region: PlannedRegion;
  /** Things worth knowing, for its report row. */
  notes: string[];
}

/** The report row of a region, before it is measured. */
function regionRow({ region, notes }: RegionTask) {
  return {
    object: region.object,
    index: region.index,
    kind: region.kind,
    perms: region.perms,
    notes,
    start: region.start,
    end: region.end,
    dataStart: region.dataStart,
    dataEnd: region.dataEnd,
    fileOffset: region.fileOffset,
    bytes: region.dataEnd - region.dataStart,
    equalsFile: region.equalsFile,
    huge: 0,
  };
}

/** Records a region that failed before anything was changed. */
function failedBefore(
  ctx: RunContext,
  task: RegionTask,
  error: StepError,
): void {
  ctx.results.push({
    ...regionRow(task),
    status: "failed",
    error,
    ms: 0,
  });
}

/**
 * One region: its file identified, its gaps reserved, its copy's memory
 * (shared copy or memfd) made, then the swap, then the record. Each step's
 * failure leaves the region on its original pages and goes on to the next.
 */
function swapRegion(ctx: RunContext, region: PlannedRegion): void {
  const notes: string[] = [];
  const opened = openedFile(ctx, region);
  if (typeof opened === "string") {
    failedBefore(ctx, { region, notes }, {
      step: "open",
      code: "ESTALE",
      errno: ERRNO.ESTALE,
      message: `${opened}; left on its original pages`,
    });
    return;
  }
  const planned = reserveGaps(ctx.c, region, notes);
  if (planned === undefined) {
    failedBefore(ctx, { region, notes }, {
      step: "reserve",
      code: "EEXIST",
      errno: ERRNO.EEXIST,
      message: "no whole 2 MiB page left after a neighbour appeared",
    });
    return;
  }
  const task = { region: planned, notes };
  const memory = copyMemory(ctx, task, opened);
  if (typeof memory === "object" && "error" in memory) {
    for (const g of planned.gaps) ctx.c.munmap(g.start, g.end - g.start);
    failedBefore(ctx, { region, notes }, memory.error);
    return;
  }
  const swap = runSwap(ctx, task, { opened, memory });
  if (swap.res.errno !== 0) {
    // Drop our reservations; after a failed mremap, only those still
    // ours (it may have unmapped them before failing).
    releaseGaps(ctx.c, planned.gaps, swap.res.step === "mremap");
    ctx.results.push(swapFailure(task, swap));
    return;
  }
  // A library stays loaded while its code runs from our copy.
  const pin = region.object === ctx.mainPath
    ? undefined
    : ctx.c.pin(region.object);
  ctx.record.set(planned.start, {
    hugetlb: swap.onHugetlb,
    ...(memory?.shared !== undefined ? { sharedFd: memory.fd } : {}),
    region: planned,
    prot: protOf(region.perms),
    file: opened.file,
    ...(pin !== undefined ? { pin } : {}),
  });
  ctx.results.push({
    ...regionRow(task),
    status: "remapped",
    ms: swap.ms,
    ...(memory?.shared !== undefined ? { shared: memory.shared } : {}),
  });
}

/** The region's file, opened and checked against what was loaded, once per run. */
function openedFile(
  ctx: RunContext,
  region: PlannedRegion,
): { fd: number; file: FileIdentity } | string {
  const key = `${region.object}\0${region.dev}\0${region.inode}`;
  let opened = ctx.files.get(key);
  if (opened === undefined) {
    opened = openIdentified(ctx.c, {
      path: region.object,
      dev: region.dev,
      inode: region.inode,
    });
    ctx.files.set(key, opened);
  }
  return opened;
}

/**
 * Reserves the free space the region grows into; a gap taken meanwhile
 * shrinks the region instead. The region as it will be swapped, with the
 * gaps held, or undefined (nothing held) when no whole 2 MiB page is left.
 */
function reserveGaps(
  c: Libc,
  region: PlannedRegion,
  notes: string[],
): PlannedRegion | undefined {
  const held: { start: number; end: number }[] = [];
  let start = region.start;
  let end = region.end;
  for (const g of region.gaps) {
    if (reserve(c, g.start, g.end)) {
      held.push(g);
      continue;
    }
    notes.push(
      `the free space at 0x${
        g.start.toString(16)
      } was taken by another mapping meanwhile; left it alone`,
    );
    if (g.start < region.dataStart) start += HUGE_PAGE;
    else end -= HUGE_PAGE;
  }
  if (end - start < HUGE_PAGE) {
    for (const g of held) c.munmap(g.start, g.end - g.start);
    return undefined;
  }
  const dataStart = Math.max(start, region.vmaStart);
  return {
    ...region,
    start,
    end,
    dataStart,
    dataEnd: Math.min(end, region.vmaEnd),
    fileOffset: region.fileOffset + (dataStart - region.dataStart),
    gaps: held,
  };
}

/** The memory a copy is made in when it is not anonymous. */
interface CopyMemory {
  /** The memfd or the shared copy's descriptor. */
  fd: number;
  /** The shared copy's path, in shared mode. */
  shared?: string;
}

/**
 * The copy's memory for backends that need a file: the shared copy (shared
 * mode, where memory equals the file) or a fresh memfd. Undefined for
 * anonymous copies; `{ error }` when the memfd cannot be made.
 */
function copyMemory(
  ctx: RunContext,
  task: RegionTask,
  opened: { fd: number; file: FileIdentity },
): CopyMemory | { error: StepError } | undefined {
  const { region } = task;
  const shared = ctx.share
    ? sharedMemory(ctx, task, { share: ctx.share, opened })
    : undefined;
  if (shared !== undefined || !ctx.ops.memfd) return shared;
  let fd: number | undefined;
  try {
    fd = ctx.c.memfdCreate(region.object.slice(-249), MFD_CLOEXEC);
    ctx.c.ftruncate(fd, region.end - region.start);
    return { fd };
  } catch (e) {
    if (fd !== undefined) ctx.c.close(fd);
    const err = e instanceof SyscallError ? e : undefined;
    return {
      error: {
        step: "memfd",
        code: err?.code ?? "EIO",
        errno: err?.errno ?? ERRNO.EIO,
        message: `${e}; nothing was changed`,
      },
    };
  }
}

/**
 * The shared copy of a region, made or reused; undefined (a private copy)
 * where its bytes differ from the file or the copy cannot be used.
 */
function sharedMemory(
  ctx: RunContext,
  { region, notes }: RegionTask,
  { share, opened }: {
    share: ShareRun;
    opened: { fd: number; file: FileIdentity };
  },
): CopyMemory | undefined {
  if (!region.equalsFile) {
    notes.push(
      "not shared: its bytes in memory differ from the file (relocated data, RELRO, or private pages); a private copy made from memory",
    );
    return undefined;
  }
  const buildId = opened.file.buildId;
  const got = buildId === undefined
    ? `${region.object} has no build-id: a copy could not be told from a stale one`
    : sharedCopy(ctx.c, share.dir, {
      path: region.object,
      buildId,
      exeFd: opened.fd,
      layout: {
        len: region.end - region.start,
        head: region.dataStart - region.start,
        dataLen: region.dataEnd - region.dataStart,
        fileOffset: region.fileOffset,
      },
    });
  if (typeof got === "string") {
    share.report.rejected.push(got);
    ctx.warnings.push(
      `shared copy not used: ${got}; this region gets a private copy`,
    );
    return undefined;
  }
  if (got.created) {
    share.report.created++;
    if (buildId) share.createdFor.set(region.object, buildId);
  } else share.report.reused++;
  notes.push(`shared copy ${got.path} (${got.created ? "created" : "reused"})`);
  return { fd: got.fd, shared: got.path };
}

/**
 * The swap by the trampoline, on the backend's pages; with `backend:
 * "auto"`, a hugetlb pool taken meanwhile sends the region to THP.
 */
function runSwap(
  ctx: RunContext,
  { region, notes }: RegionTask,
  { opened, memory }: { opened: { fd: number }; memory?: CopyMemory },
): { res: TrampolineResult; ms: number; onHugetlb: boolean } {
  const t = performance.now();
  const swapWith = (hugetlb: boolean) =>
    ctx.tramp.run([{
      op: "swap",
      start: region.start,
      len: region.end - region.start,
      dataStart: region.dataStart,
      dataLen: region.dataEnd - region.dataStart,
      prot: protOf(region.perms),
      page4k: ctx.ops.page4k,
      hugetlb,
      memfd: memory?.fd,
      shared: memory?.shared !== undefined,
      // pread only where memory equals the file (plan.ts: not RELRO, no
      // private page); else, or with PAGE_PRIMER_FILL=memory, MADV_
      // POPULATE_READ on the source and a copy.
      fromFile: ctx.fill === "file" && region.equalsFile,
      equalsFile: region.equalsFile,
      // A memfd is named by memfd_create (maps: /memfd:<path>).
      name: ctx.ops.named ? `${NAME_PREFIX}${region.object}` : undefined,
      fd: opened.fd,
      fileOffset: region.fileOffset,
    }])[0];
  let onHugetlb = ctx.ops.hugetlb;
  let res = swapWith(onHugetlb);
  if (
    onHugetlb && (ctx.input.options.backend ?? "auto") === "auto" &&
    poolRanShort(res)
  ) {
    // Another process (or an earlier region) took the pool: THP.
    notes.push(
      `the hugetlb pool ran short (${res.step}: ${
        errnoName(res.errno)
      }): this region went to transparent huge pages instead`,
    );
    res = swapWith(false);
    onHugetlb = false;
  }
  const ms = performance.now() - t;
  // The mapping keeps the memfd; a shared copy's descriptor stays open
  // while it is mapped, holding its in-use lock.
  if (
    memory !== undefined && (memory.shared === undefined || res.errno !== 0)
  ) {
    ctx.c.close(memory.fd);
  }
  swapNotes(ctx, res, notes);
  return { res, ms, onHugetlb };
}

/** What the trampoline could not do besides the swap (collapse, naming). */
function swapNotes(
  ctx: RunContext,
  res: TrampolineResult,
  notes: string[],
): void {
  if (res.collapseErrno && !ctx.ops.page4k) {
    notes.push(`MADV_COLLAPSE: ${errnoName(res.collapseErrno)}`);
  }
  // Once per run and errno: a kernel without the feature fails every region
  // the same way.
  if (res.nameErrno && !ctx.namingWarned.has(res.nameErrno)) {
    ctx.namingWarned.add(res.nameErrno);
    const why = res.nameErrno === ERRNO.EINVAL
      ? " (kernel without CONFIG_ANON_VMA_NAME)"
      : "";
    ctx.warnings.push(
      `PR_SET_VMA_ANON_NAME: ${
        errnoName(res.nameErrno)
      }${why}: the copies show as unnamed anonymous mappings in /proc/self/maps`,
    );
  }
}

/** The report row of a failed swap, saying whether the code is intact. */
function swapFailure(
  task: RegionTask,
  { res, ms }: { res: TrampolineResult; ms: number },
): RegionReport {
  const { start, end, equalsFile } = task.region;
  const after = res.step !== "mremap"
    ? "; nothing was changed"
    : !res.recovered
    ? "; the region could not be verified intact"
    : equalsFile
    ? "; the file was mapped back, the code is intact"
    : "; the bytes were copied back from the copy, intact";
  return {
    ...regionRow(task),
    status: "failed",
    error: {
      step: res.step,
      code: errnoName(res.errno),
      errno: res.errno,
      message: `${res.step} failed with ${errnoName(res.errno)} for ${
        formatBytes(end - start)
      } at 0x${start.toString(16)}${after}`,
    },
    ms,
  };
}

/** Closes the files opened for this run (the mappings keep their own). */
function closeFiles(ctx: RunContext): void {
  for (const f of ctx.files.values()) {
    if (typeof f !== "string") ctx.c.close(f.fd);
  }
}

/**
 * After a shared run: deletes the unused copies of the executables a copy
 * was created for (older builds, layouts of exited processes; ours are
 * locked), and says when other processes use copies at another address.
 */
function finishShare(ctx: RunContext, share: ShareRun): void {
  for (const [object, buildId] of share.createdFor) {
    const { evicted, inUse } = evictUnused(ctx.c, share.dir, {
      path: object,
      buildId,
    });
    share.report.evicted.push(...evicted);
    const mine = ctx.results.filter((r) =>
      r.shared?.includes(copyPrefix(object))
    ).length;
    if (inUse > mine) {
      ctx.warnings.push(
        `${object} is loaded at another address modulo 2 MiB than ${
          inUse - mine
        } shared cop${
          inUse - mine === 1 ? "y" : "ies"
        } other processes use (a position-independent executable under ASLR): this process made its own; processes started with \`setarch -R\` (no ASLR) load at one address and share one copy`,
      );
    }
  }
  ctx.c.close(share.dir.fd);
}

/**
 * Reads the VMAs of the ranges and copies once after the swaps: each
 * copy's bytes on 2 MiB pages and its identity as maps shows it (checked
 * before a restore acts on it), with a warning for a partial copy and for
 * memfd copies left on 4 KiB.
 */
function verify(ctx: RunContext): SmapsVma[] {
  const smaps = readVmaStats(
    ctx.c,
    alignedRanges([
      ...ctx.input.ranges,
      ...[...ctx.record.swaps.values()].map((a) => a.region),
    ]),
    // VmLck read again (not the preflight's): another thread may have
    // locked memory during the swaps.
  ).vmas;
  const identified: [number, ActiveSwap][] = [];
  for (const r of ctx.results) {
    if (r.status !== "remapped") continue;
    const swap = ctx.record.swaps.get(r.start)!;
    const a = swap.region;
    r.huge = sumIn(smaps, a.dataStart, a.dataEnd, hugeBytes);
    identified.push([r.start, {
      ...swap,
      copy: copyIdentity(smaps, a.start, a.end),
    }]);
    if (!ctx.ops.page4k && r.huge > 0 && r.huge < r.bytes) {
      ctx.warnings.push(
        `partial: ${formatBytes(r.huge)} of ${formatBytes(r.bytes)} (${
          ((100 * r.huge) / r.bytes).toFixed(0)
        }%) of ${r.object} LOAD ${r.index} on 2 MiB pages (${
          r.notes.join("; ") || "the kernel gave 4 KiB pages for the rest"
        })`,
      );
    }
  }
  if (identified.length > 0) ctx.record.setAll(identified);
  const moved = ctx.results.filter((r) => r.status === "remapped");
  if (ctx.ops.memfd && moved.length > 0 && moved.every((r) => r.huge === 0)) {
    ctx.warnings.push(
      `memfd backend: the copies got 4 KiB pages (shmem THP is '${ctx.shmem}' and MADV_COLLAPSE did not help); for 2 MiB pages: echo advise > ${SHMEM_ENABLED}`,
    );
  }
  return smaps;
}
