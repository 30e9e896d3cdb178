/**
 * Executing a remap plan in the live, multi-threaded process, and undoing
 * it. Each region is replaced by an identical copy in one syscall (by the
 * trampoline); gaps that aggressive alignment grows into are reserved first
 * with `MAP_FIXED_NOREPLACE`, so no mapping made by another thread is ever
 * clobbered. Any failure before the swap leaves the region untouched.
 *
 * @module
 */

import { parseElf } from "../sys/elf.ts";
import { formatBytes } from "../sys/format.ts";
import {
  ERRNO,
  errnoName,
  fdSource,
  type Libc,
  MADV_COLLAPSE,
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  PROT_EXEC,
  PROT_READ,
  type StepError,
  SyscallError,
} from "../sys/libc.ts";
import {
  hugeBytes,
  parseMaps,
  type SmapsVma,
  sumIn,
  type Vma,
} from "../sys/maps.ts";
import { readSmaps } from "../sys/objects.ts";
import {
  type Alignment,
  forHugetlb,
  HUGE_PAGE,
  hugePagesNeeded,
  NAME_PREFIX,
  type PlannedRegion,
  planRemap,
  type RemapPlan,
  type SkippedRegion,
} from "./plan.ts";
import type { LoadedObject, SegmentRange } from "../sys/segments.ts";
import { selected, type ThpStatus, thpStatus } from "../sys/thp.ts";
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
  isTrampolinePath,
  loadedTrampoline,
  loadTrampoline,
  type Trampoline,
  TrampolineBusyError,
  type TrampolineRecord,
} from "./trampoline.ts";
import type { PerfMapReport } from "./perf_map.ts";

/** Where the 2 MiB pages come from. */
export type Backend = "thp" | "hugetlb" | "memfd";

/** The reserved hugetlb pool of 2 MiB pages. */
export interface HugetlbPool {
  /** Pages in the pool (`nr_hugepages`). */
  total: number;
  /** Pages free and not reserved by others. */
  available: number;
  /** Pages this remap needs. */
  needed: number;
  /** The command that makes the pool large enough. */
  command: string;
}

/**
 * Picks the backend: a forced one if it can work, else for `"auto"`
 * hugetlb when the free pool covers the plan, then THP, then a memfd when
 * shmem THP is on. A process with THP disabled (`PR_SET_THP_DISABLE`) gets
 * no 2 MiB pages from THP nor from shmem (the kernel checks the flag on
 * every THP and shmem fault and on `MADV_COLLAPSE`), so only the hugetlb
 * pool is offered to it. Pure.
 *
 * @example
 * ```ts
 * import { chooseBackend } from "./execute.ts";
 * const pool = { total: 0, available: 0, needed: 44, command: "" };
 * console.log(chooseBackend("auto", pool, { usable: true }).backend); // "thp"
 * ```
 */
export function chooseBackend(
  wanted: "auto" | Backend,
  pool: HugetlbPool,
  thp: { usable: boolean; reason?: string; processDisabled?: boolean },
  shmemThp = false,
): { backend: Backend } | { backend: Backend; unavailable: string } {
  const poolShort =
    `the hugetlb pool has ${pool.available} free 2 MiB page(s), the remap needs ${pool.needed}: ${pool.command}`;
  const poolFits = pool.needed > 0 && pool.available >= pool.needed;
  const onlyPool =
    `THP is disabled for this process (PR_SET_THP_DISABLE), and that keeps shmem (memfd) copies on 4 KiB pages too: only the hugetlb pool gives it 2 MiB pages, remap({ backend: "hugetlb" })${
      poolFits ? " (the pool covers the plan)" : `: ${pool.command}`
    }`;
  if (wanted === "memfd") {
    return thp.processDisabled
      ? { backend: "memfd", unavailable: `memfd backend: ${onlyPool}` }
      : { backend: "memfd" };
  }
  if (wanted === "hugetlb") {
    return poolFits
      ? { backend: "hugetlb" }
      : { backend: "hugetlb", unavailable: `hugetlb backend: ${poolShort}` };
  }
  if (wanted === "auto" && poolFits) return { backend: "hugetlb" };
  if (thp.usable) return { backend: "thp" };
  if (thp.processDisabled) {
    return {
      backend: "thp",
      unavailable: `no huge pages possible: ${onlyPool}`,
    };
  }
  if (wanted === "auto" && shmemThp) return { backend: "memfd" };
  return {
    backend: "thp",
    unavailable: wanted === "thp"
      ? `no huge pages possible: ${thp.reason}`
      : `no huge pages possible: THP: ${thp.reason}; hugetlb: ${poolShort}; memfd: shmem THP is off (echo advise > ${SHMEM_ENABLED})`,
  };
}

const SHMEM_ENABLED = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
const POOL_DIR = "/sys/kernel/mm/hugepages/hugepages-2048kB";

/** Mappings a remap may add per region (stage, trims, gaps, splits). */
export const MAPS_PER_REGION = 6;

/**
 * True when a `shmem_enabled` setting gives memfd copies 2 MiB pages.
 *
 * @example
 * ```ts
 * import { shmemThpOn } from "./execute.ts";
 * console.log(shmemThpOn("advise"), shmemThpOn("never")); // true false
 * ```
 */
export function shmemThpOn(setting: string): boolean {
  return ["always", "within_size", "advise", "force"].includes(setting);
}

/**
 * The shmem THP setting, e.g. `"never"`, `"advise"`; `"unavailable"`
 * without THP.
 *
 * @example
 * ```ts no-eval
 * import { libc } from "../sys/libc.ts";
 * import { shmemEnabled } from "./execute.ts";
 * console.log(shmemEnabled(libc()));
 * ```
 */
export function shmemEnabled(c: Libc): string {
  const text = c.tryReadText(SHMEM_ENABLED);
  return text === undefined ? "unavailable" : selected(text);
}

/** The 2 MiB hugetlb pool as sysfs shows it. */
export interface PoolState {
  /** False when the kernel has no 2 MiB hugetlb pool. */
  supported: boolean;
  /** `nr_hugepages`. */
  total: number;
  /** `free_hugepages`. */
  free: number;
  /** `resv_hugepages` (promised to mappings, not yet faulted). */
  reserved: number;
  /** Free and not reserved: what a new mapping can get. */
  available: number;
}

/**
 * Reads the 2 MiB hugetlb pool.
 *
 * @example
 * ```ts no-eval
 * import { libc } from "../sys/libc.ts";
 * import { readPoolState } from "./execute.ts";
 * console.log(readPoolState(libc()).available);
 * ```
 */
export function readPoolState(c: Libc): PoolState {
  const num = (f: string) => {
    const t = c.tryReadText(`${POOL_DIR}/${f}`);
    return t === undefined ? undefined : parseInt(t, 10) || 0;
  };
  const total = num("nr_hugepages");
  const free = num("free_hugepages") ?? 0;
  const reserved = num("resv_hugepages") ?? 0;
  return {
    supported: total !== undefined,
    total: total ?? 0,
    free,
    reserved,
    available: Math.max(0, free - reserved),
  };
}

/**
 * The command that grows a pool of `total` pages, `available` of them
 * free, to cover `needed` pages. Pure.
 *
 * @example
 * ```ts
 * import { poolCommand } from "./execute.ts";
 * console.log(poolCommand({ total: 10, available: 4 }, 44)); // "sysctl -w vm.nr_hugepages=50"
 * ```
 */
export function poolCommand(
  pool: { total: number; available: number },
  needed: number,
): string {
  return `sysctl -w vm.nr_hugepages=${
    pool.total + Math.max(0, needed - pool.available)
  }`;
}

/** The inputs of {@linkcode decideRemap}. */
export interface DecideInput {
  /** The selected objects. */
  objects: readonly LoadedObject[];
  /** Their segment ranges. */
  ranges: readonly SegmentRange[];
  /** The process's smaps. */
  smaps: readonly SmapsVma[];
  /** Alignment strategy. */
  align: Alignment;
  /** Ranges page-primer already remapped (left alone). */
  ours?: readonly { start: number; end: number }[];
  /** The hugetlb pool. */
  pool: { total: number; available: number };
  /** The THP verdict. */
  thp: { usable: boolean; reason?: string; processDisabled?: boolean };
  /** The `shmem_enabled` selection. */
  shmemEnabled: string;
}

/** What {@linkcode decideRemap} decided; `B` is the backends it can pick. */
export interface RemapDecision<B extends string = Backend | "small"> {
  /** The plan on THP (or memfd, or 4 KiB) alignment rules. */
  thpPlan: RemapPlan;
  /** The same plan for hugetlb (2 MiB-aligned regions only). */
  hugetlbPlan: RemapPlan;
  /** The pool, with the pages the hugetlb plan needs. */
  pool: HugetlbPool;
  /** The backend, `"small"` for a 4 KiB copy. */
  backend: B;
  /** When no huge pages are possible: why, and what to change. */
  unavailable?: string;
  /** The plan to execute: empty when unavailable. */
  plan: RemapPlan;
}

/**
 * Plans a remap and picks its backend, as `remap()` does and `doctor`
 * predicts: only objects backed by a file (not the vDSO, not the
 * trampoline, not a file deleted since it was loaded) are planned. Pure.
 *
 * @example
 * ```ts
 * import { decideRemap } from "./execute.ts";
 * const d = decideRemap({
 *   objects: [], ranges: [], smaps: [], align: "aggressive", wanted: "auto",
 *   pool: { total: 0, available: 0 }, thp: { usable: true }, shmemEnabled: "never",
 * });
 * console.log(d.backend, d.plan.regions.length); // "thp" 0
 * ```
 */
export function decideRemap(
  input: DecideInput & { wanted: "auto" | Backend },
): RemapDecision<Backend>;
export function decideRemap(
  input: DecideInput & { wanted: "auto" | Backend | "small" },
): RemapDecision;
export function decideRemap(
  input: DecideInput & { wanted: "auto" | Backend | "small" },
): RemapDecision {
  const eligible = input.objects.filter((o) =>
    o.path.startsWith("/") && !o.path.endsWith(" (deleted)") &&
    !isTrampolinePath(o.path)
  );
  const thpPlan = planRemap(
    eligible,
    input.ranges,
    input.smaps,
    input.align,
    input.ours ?? [],
  );
  const hugetlbPlan = forHugetlb(thpPlan);
  const needed = hugePagesNeeded(hugetlbPlan);
  const pool: HugetlbPool = {
    total: input.pool.total,
    available: input.pool.available,
    needed,
    command: poolCommand(input.pool, needed),
  };
  if (input.wanted === "small") {
    return { thpPlan, hugetlbPlan, pool, backend: "small", plan: thpPlan };
  }
  const choice = chooseBackend(
    input.wanted,
    pool,
    input.thp,
    shmemThpOn(input.shmemEnabled),
  );
  if ("unavailable" in choice) {
    return {
      thpPlan,
      hugetlbPlan,
      pool,
      backend: choice.backend,
      unavailable: choice.unavailable,
      plan: { regions: [], skipped: thpPlan.skipped },
    };
  }
  return {
    thpPlan,
    hugetlbPlan,
    pool,
    backend: choice.backend,
    plan: choice.backend === "hugetlb" ? hugetlbPlan : thpPlan,
  };
}

/** Options of `remap`. */
export interface RemapOptions {
  /** `"aggressive"` (default): grow into free neighbouring space; `"conservative"`: inward only. */
  align?: Alignment;
  /** `"2m"` (default): huge pages; `"4k"`: an anonymous copy on small pages (for A/B benchmarks). */
  pageSize?: "2m" | "4k";
  /**
   * `"auto"` (default): the reserved hugetlb pool when its free pages cover
   * the plan, else transparent huge pages; `"thp"` or `"hugetlb"` force one.
   */
  backend?: "auto" | Backend;
  /**
   * Share one copy among the processes of this user running the same
   * executable (same build-id and load address modulo 2 MiB): the copy is a
   * file in an owner-only tmpfs directory, checked before it is mapped.
   * Implies the memfd (shmem) backend. `true` or `{ dir }`.
   */
  share?: boolean | ShareOptions;
  /**
   * `true`: after the remap, append the functions of the remapped code to
   * `/tmp/perf-<pid>.map` so `perf` can name them (timed in
   * `durations.perfMapMs`). The file stays after the process exits; delete
   * it when done. Each range is written once per process, however often it
   * is remapped. Default `false` (preload: `PAGE_PRIMER_PERF_MAP=1`).
   */
  perfMap?: boolean;
}

/** What shared mode did. */
export interface ShareReport {
  /** The directory of the copies. */
  dir: string;
  /** Copies this process created. */
  created: number;
  /** Copies made by an earlier process and mapped here after checking. */
  reused: number;
  /** Why copies were not used (those regions got private copies). */
  rejected: string[];
  /** Copies of older builds deleted. */
  evicted: string[];
}

/** What happened to one planned region. */
export interface RegionReport {
  /** Object path. */
  object: string;
  /** LOAD index. */
  index: number;
  /** `"text"` or `"rodata"`. */
  kind: string;
  /** Protection. */
  perms: string;
  /** Remapped range start (2 MiB aligned). */
  start: number;
  /** Remapped range end. */
  end: number;
  /** Start of the original content within the range. */
  dataStart: number;
  /** End of the original content. */
  dataEnd: number;
  /** File offset of `dataStart`. */
  fileOffset: number;
  /** Bytes of original content moved (`dataEnd - dataStart`). */
  bytes: number;
  /**
   * False when the bytes in memory differ from the file (relocated RELRO
   * data, private pages): copied from memory, never shared, and restored
   * on 4 KiB pages from memory instead of the file.
   */
  equalsFile: boolean;
  /** Bytes of the range on 2 MiB pages afterwards, from smaps. */
  huge: number;
  /** `"remapped"` or `"failed"`. */
  status: "remapped" | "failed";
  /** The failure. */
  error?: StepError;
  /** Milliseconds of the trampoline call. */
  ms: number;
  /** Things worth knowing (collapse or naming refused, a gap taken meanwhile). */
  notes: string[];
  /** The shared copy mapped here, in shared mode. */
  shared?: string;
}

/** Bytes of a kind of segment and how many of them are on 2 MiB pages. */
export interface Coverage {
  /** Bytes of the LOAD segments of that kind. */
  bytes: number;
  /** Of those, bytes on 2 MiB pages (smaps). */
  huge: number;
}

/** The remap part of an outcome. */
export interface RemapReport {
  /** Options used. */
  align: Alignment;
  /** Page size of the copies. */
  pageSize: "2m" | "4k";
  /** Where the pages came from (`"small"` for a 4 KiB copy). */
  backend: Backend | "small";
  /** The hugetlb pool as found. */
  pool?: HugetlbPool;
  /** When no huge pages were possible: why, and what to change. */
  unavailable?: string;
  /** Shared mode, when asked for. */
  share?: ShareReport;
  /** THP situation. */
  thp: ThpStatus;
  /** Per planned region. */
  regions: RegionReport[];
  /** VMAs not remapped, and why. */
  skipped: SkippedRegion[];
  /** Text coverage over the selected objects' code segments. */
  text: Coverage;
  /** Read-only data coverage. */
  rodata: Coverage;
  /** Resident bytes of page-primer's copies after the run (smaps Rss). */
  copyResident: number;
  /** Milliseconds of the whole remap step. */
  ms: number;
  /** Warnings. */
  warnings: string[];
  /** What was appended to `/tmp/perf-<pid>.map`, when `perfMap: true` and code moved. */
  perfMap?: PerfMapReport;
}

/** What `restore()` did. */
export interface RestoreReport {
  /** Regions given back on 4 KiB pages (on the file, or `copied`). */
  restored: number;
  /**
   * Of those, regions whose bytes differ from the file (relocated RELRO
   * data, private pages): given back on 4 KiB anonymous pages copied from
   * memory, never the file's bytes.
   */
  copied: number;
  /** Bytes given back. */
  bytes: number;
  /** Why nothing could be done at all (e.g. another thread held the lock). */
  reason?: string;
  /** Regions that could not be restored, with why. */
  failed: { start: number; end: number; object: string; message: string }[];
  /** Milliseconds. */
  ms: number;
}

interface FileIdentity {
  path: string;
  dev: string;
  inode: number;
  size: number;
  buildId: string | undefined;
}

interface ActiveSwap {
  hugetlb: boolean;
  /** The shared copy's descriptor, holding its in-use lock. */
  sharedFd?: number;
  region: PlannedRegion;
  prot: number;
  file: FileIdentity;
  /** A library's reference (`dlopen` RTLD_NOLOAD), held until restored. */
  pin?: number;
  /** What maps shows for the copy: checked before anything acts on it. */
  copy?: CopyIdentity;
}

/**
 * The swaps in place in this process, by region start: one record per
 * process, kept in the trampoline, so a region remapped in a Worker is
 * seen and restored from any thread. Read and written under the
 * trampoline's lock.
 */
class SwapRecord {
  readonly #tramp: Trampoline;
  readonly swaps: Map<number, ActiveSwap>;

  constructor(tramp: Trampoline) {
    this.#tramp = tramp;
    const text = tramp.readRecord();
    this.swaps = new Map(text === "" ? [] : JSON.parse(text));
  }

  set(start: number, swap: ActiveSwap): void {
    this.swaps.set(start, swap);
    this.#save();
  }

  delete(start: number): void {
    this.swaps.delete(start);
    this.#save();
  }

  #save(): void {
    this.#tramp.writeRecord(JSON.stringify([...this.swaps]));
  }
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
  const maps = check ? parseMaps(c.readText("/proc/self/maps")) : [];
  for (const g of held) {
    const ours = !check ||
      maps.some((v) =>
        v.start <= g.start && g.end <= v.end && v.perms.startsWith("---") &&
        v.path === "" && v.inode === 0
      );
    if (ours) c.munmap(g.start, g.end - g.start);
  }
}

/**
 * How maps shows a copy right after the swap: its path and inode (an
 * anonymous copy is unnamed where the kernel cannot name VMAs), its
 * protection, and its VMAs' boundaries. Another mapping made over part of
 * it later differs in one of them: a new anonymous VMA never merges with
 * the copy (its page offset comes from where the stage was made).
 */
interface CopyIdentity {
  path: string;
  inode: number;
  perms: string;
  bounds: number[];
}

/** The identity of the copy over `[start, end)` in `vmas`. */
function copyIdentity(
  vmas: readonly Vma[],
  start: number,
  end: number,
): CopyIdentity | undefined {
  const inside = vmas.filter((m) => m.start < end && start < m.end);
  if (inside.length === 0) return undefined;
  return {
    path: inside[0].path,
    inode: inside[0].inode,
    perms: inside[0].perms,
    bounds: inside.flatMap((m) => [m.start, m.end]),
  };
}

/**
 * Why a swapped region is no longer the copy page-primer made, or
 * `undefined` when it still is. Its data part must be mapped throughout by
 * the copy (same path, inode and protection, VMAs starting and ending only
 * where the copy's did or where an earlier restore split it) or by the
 * file, where an earlier restore got that far; the space it grew into may
 * also be a hole (released by an earlier restore), never anything else.
 */
function notOurCopy(
  vmas: readonly Vma[],
  swap: ActiveSwap,
): string | undefined {
  const { start, end, dataStart, dataEnd } = swap.region;
  const expected = swap.copy;
  const bounds = new Set([
    ...(expected?.bounds ?? []),
    start,
    end,
    dataStart,
    dataEnd,
  ]);
  const isCopy = (v: Vma) =>
    expected === undefined ||
    (v.path === expected.path && v.inode === expected.inode &&
      v.perms === expected.perms && bounds.has(v.start) && bounds.has(v.end));
  const isFile = (v: Vma) =>
    v.path === swap.file.path && v.inode === swap.file.inode;
  let at = dataStart;
  for (const v of vmas) {
    if (v.end <= start || v.start >= end) continue;
    if (!isCopy(v) && !isFile(v)) {
      return `0x${v.start.toString(16)}-0x${v.end.toString(16)} is now ${
        v.path === "" ? "anonymous memory" : v.path
      } (${v.perms}), not page-primer's copy`;
    }
    if (v.start <= at && v.end > at) at = v.end;
  }
  return at >= dataEnd ? undefined : `0x${at.toString(16)} is no longer mapped`;
}

function protOf(perms: string): number {
  return (perms[0] === "r" ? PROT_READ : 0) |
    (perms[2] === "x" ? PROT_EXEC : 0);
}

/**
 * Device number of `stat` as maps prints it (`"fe:00"`), glibc encoding.
 *
 * @example
 * ```ts
 * import { devString } from "./execute.ts";
 * console.log(devString(0xfe00)); // "fe:00"
 * ```
 */
export function devString(dev: number): string {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major.toString(16).padStart(2, "0")}:${
    minor.toString(16).padStart(2, "0")
  }`;
}

function readBuildIdFromFd(c: Libc, fd: number, size: number) {
  try {
    return parseElf(fdSource(c, fd, size)).buildId;
  } catch {
    return undefined;
  }
}

/** Opens `path` and checks it is the file mapped with `dev`/`inode`. */
function openIdentified(
  c: Libc,
  path: string,
  dev: string,
  inode: number,
): { fd: number; file: FileIdentity } | string {
  let fd: number;
  try {
    fd = c.openRead(path);
  } catch (e) {
    return `cannot open ${path}: ${e instanceof Error ? e.message : e}`;
  }
  const st = c.fstat(fd);
  if (devString(st.dev) !== dev || st.ino !== inode) {
    c.close(fd);
    return `${path} on disk is not the file that was loaded (device/inode ${
      devString(st.dev)
    }/${st.ino}, loaded ${dev}/${inode}): it was replaced, e.g. by an upgrade`;
  }
  return {
    fd,
    file: {
      path,
      dev,
      inode,
      size: st.size,
      buildId: readBuildIdFromFd(c, fd, st.size),
    },
  };
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

/** Room left for the runtime's own allocations besides the copies. */
const MEMCG_MARGIN = 16 * 1024 * 1024;

/**
 * Why the memory cgroup of this process (or one above it) cannot take
 * copies of `need` bytes, or `undefined`. The kernel's answer to a charge
 * over the limit is the OOM killer, so this is checked before anything is
 * made. Reads cgroup v1 (`memory.limit_in_bytes`, `memory.usage_in_bytes`)
 * and v2 (`memory.max`, `memory.current`) through `read`. Pure.
 *
 * @example
 * ```ts
 * import { memcgProblem } from "./execute.ts";
 * const files: Record<string, string> = {
 *   "/sys/fs/cgroup/app/memory.max": "209715200\n",
 *   "/sys/fs/cgroup/app/memory.current": "157286400\n",
 * };
 * console.log(memcgProblem("0::/app\n", (f) => files[f], 92 << 20));
 * ```
 */
export function memcgProblem(
  procCgroup: string,
  read: (path: string) => string | undefined,
  need: number,
): string | undefined {
  let base: string | undefined;
  let v2 = false;
  for (const line of procCgroup.split("\n")) {
    const [, controllers, path] = line.split(":");
    if (path === undefined) continue;
    if (controllers.split(",").includes("memory")) {
      base = `/sys/fs/cgroup/memory${path === "/" ? "" : path}`;
      v2 = false;
      break;
    }
    if (line.startsWith("0::")) {
      base = `/sys/fs/cgroup${path === "/" ? "" : path}`;
      v2 = true;
    }
  }
  if (base === undefined) return undefined;
  const root = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory";
  for (let dir = base; dir.length >= root.length;) {
    const limitText = read(
      `${dir}/${v2 ? "memory.max" : "memory.limit_in_bytes"}`,
    )?.trim();
    const usageText = read(
      `${dir}/${v2 ? "memory.current" : "memory.usage_in_bytes"}`,
    )?.trim();
    const limit = Number(limitText);
    const usage = Number(usageText);
    if (
      limitText !== undefined && limitText !== "max" &&
      usageText !== undefined &&
      Number.isFinite(limit) && Number.isFinite(usage) && limit < 2 ** 52
    ) {
      const room = limit - usage;
      if (room < need + MEMCG_MARGIN) {
        return `the memory cgroup ${dir} allows ${
          formatBytes(Math.max(0, room))
        } more (limit ${formatBytes(limit)}, in use ${
          formatBytes(usage)
        }); the copies need ${formatBytes(need)} plus ${
          formatBytes(MEMCG_MARGIN)
        } of room, and a charge over the limit ends in the OOM killer: nothing remapped; raise ${
          v2 ? "memory.max" : "memory.limit_in_bytes"
        }, or use backend "hugetlb" (not charged to the memory controller) or share: true`;
      }
    }
    if (dir === root) break;
    dir = dir.slice(0, dir.lastIndexOf("/"));
  }
  return undefined;
}

function maxMapHeadroom(c: Libc, current: number): number {
  const max = parseInt(c.tryReadText("/proc/sys/vm/max_map_count") ?? "", 10);
  return Number.isNaN(max) ? Infinity : max - current;
}

/**
 * Bytes of the LOAD ranges of `kind` and how many of them are on 2 MiB pages
 * in `smaps` (`min(size, huge)` per range): the coverage figures a remap
 * reports, and `doctor` shows as "now".
 *
 * @example
 * ```ts
 * import { measureCoverage } from "./execute.ts";
 * console.log(measureCoverage([], [], "text")); // { bytes: 0, huge: 0 }
 * ```
 */
export function measureCoverage(
  smaps: readonly SmapsVma[],
  ranges: readonly SegmentRange[],
  kind: "text" | "rodata",
): Coverage {
  let bytes = 0;
  let huge = 0;
  for (const r of ranges) {
    if (r.kind !== kind || r.origin !== "load") continue;
    bytes += r.end - r.start;
    huge += Math.min(r.end - r.start, sumIn(smaps, r.start, r.end, hugeBytes));
  }
  return { bytes, huge };
}

/**
 * Moves the read-only and code VMAs of `objects` onto 2 MiB pages (or a
 * 4 KiB anonymous copy), one region at a time, and measures the result.
 *
 * @example
 * ```ts no-eval
 * import { libc } from "../sys/libc.ts";
 * import { mainExecutable } from "../sys/objects.ts";
 * import { segmentRanges } from "../sys/segments.ts";
 * import { remapObjects } from "./execute.ts";
 * const c = libc();
 * const exe = mainExecutable(c);
 * const report = remapObjects(c, [exe], segmentRanges(exe, 4096), {});
 * console.log(report.text);
 * ```
 */
export function remapObjects(
  c: Libc,
  objects: readonly LoadedObject[],
  ranges: readonly SegmentRange[],
  options: RemapOptions,
  before?: readonly SmapsVma[],
): RemapReport & { after: SmapsVma[] } {
  const input = { objects, ranges, options, before, t0: performance.now() };
  // Before the first remap of the process, nothing is recorded: plan and
  // check without a trampoline, load it only when there is work (loading
  // needs mappings and a memfd, which the checks may show are not there).
  const tramp = loadedTrampoline(c);
  return tramp === undefined
    ? remapLocked(c, undefined, input)
    : tramp.locked(() => remapLocked(c, tramp, input));
}

/** What {@linkcode remapLocked} works on. */
interface RemapInput {
  objects: readonly LoadedObject[];
  ranges: readonly SegmentRange[];
  options: RemapOptions;
  before?: readonly SmapsVma[];
  t0: number;
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
): RemapReport & { after: SmapsVma[] } {
  const record = tramp === undefined ? undefined : new SwapRecord(tramp);
  const { objects, ranges, options, before, t0 } = input;
  const mainPath = objects.find((o) => o.main)?.path;
  const align = options.align ?? "aggressive";
  const pageSize = options.pageSize ?? "2m";
  const small = pageSize === "4k";
  const thp = thpStatus(c);
  const warnings: string[] = [];
  const maps: SmapsVma[] = before ? [...before] : readSmaps(c);
  const share = options.share && !small
    ? options.share === true ? {} : options.share
    : undefined;
  const shmem = shmemEnabled(c);
  const choice = decideRemap({
    objects,
    ranges,
    smaps: maps,
    align,
    ours: [...(record?.swaps.values() ?? [])].map((a) => a.region),
    wanted: small ? "small" : share ? "memfd" : options.backend ?? "auto",
    pool: readPoolState(c),
    thp,
    shmemEnabled: shmem,
  });
  const { pool, plan } = choice;
  const backend = choice.backend;
  let shareReport: ShareReport | undefined;
  const report = (
    regions: RegionReport[],
    skipped: SkippedRegion[],
    smaps: SmapsVma[],
  ): RemapReport & { after: SmapsVma[] } => ({
    after: smaps,
    align,
    pageSize,
    backend,
    pool,
    ...(choice.unavailable !== undefined
      ? { unavailable: choice.unavailable }
      : {}),
    ...(shareReport ? { share: shareReport } : {}),
    thp,
    regions,
    skipped,
    text: measureCoverage(smaps, ranges, "text"),
    rodata: measureCoverage(smaps, ranges, "rodata"),
    copyResident: [...(record?.swaps.values() ?? [])].reduce(
      (n, a) =>
        n + sumIn(
          smaps,
          a.region.start,
          a.region.end,
          (v) => v.rss + v.privateHugetlb + v.sharedHugetlb,
        ),
      0,
    ),
    ms: performance.now() - t0,
    warnings,
  });
  // Nothing changed on the early returns below: the smaps read is current.
  if (choice.unavailable !== undefined) {
    warnings.push(choice.unavailable);
    return report([], plan.skipped, maps);
  }
  if (backend === "thp" && thp.reason) warnings.push(thp.reason);

  const headroom = maxMapHeadroom(c, maps.length);
  const needed = plan.regions.length * MAPS_PER_REGION;
  if (headroom < needed) {
    warnings.push(
      `vm.max_map_count leaves room for ${headroom} more mappings, a remap needs up to ${needed}: nothing remapped; raise it with sysctl -w vm.max_map_count=${
        maps.length + needed + 1024
      }`,
    );
    return report([], plan.skipped, maps);
  }
  if (backend !== "hugetlb" && !share) {
    const need = plan.regions.reduce((n, r) => n + (r.end - r.start), 0);
    const problem = memcgProblem(
      c.tryReadText("/proc/self/cgroup") ?? "",
      (f) => c.tryReadText(f),
      need,
    );
    if (problem !== undefined) {
      warnings.push(problem);
      return report([], plan.skipped, maps);
    }
  }
  if (tramp === undefined || record === undefined) {
    const loaded = loadTrampoline(c);
    return loaded.locked(() => remapLocked(c, loaded, input));
  }
  let shareDir: ShareDir | undefined;
  if (share) {
    const path = share.dir ??
      defaultShareDir(c.geteuid(), c.getenv("XDG_RUNTIME_DIR"));
    const dir = openShareDir(c, path);
    shareReport = {
      dir: path,
      created: 0,
      reused: 0,
      rejected: [],
      evicted: [],
    };
    if (typeof dir === "string") {
      shareReport.rejected.push(dir);
      warnings.push(`shared mode off: ${dir}; each region gets a private copy`);
    } else {
      shareDir = dir;
    }
  }
  const fillMode = c.getenv("PAGE_PRIMER_FILL") ?? "auto";
  let namingWarned = false;
  const createdFor = new Map<string, string>();
  const files = new Map<string, { fd: number; file: FileIdentity } | string>();
  const results: RegionReport[] = [];
  try {
    for (const region of plan.regions) {
      const notes: string[] = [];
      const base = {
        object: region.object,
        index: region.index,
        kind: region.kind,
        perms: region.perms,
        notes,
      };
      // The report row for a range of this region.
      const row = (start: number, end: number, p: PlannedRegion) => ({
        ...base,
        start,
        end,
        dataStart: p.dataStart,
        dataEnd: p.dataEnd,
        fileOffset: p.fileOffset,
        bytes: p.dataEnd - p.dataStart,
        equalsFile: p.equalsFile,
        huge: 0,
      });
      const failed = (
        step: string,
        code: string,
        errno: number,
        message: string,
      ) =>
        results.push({
          ...row(region.start, region.end, region),
          status: "failed",
          error: { step, code, errno, message },
          ms: 0,
        });
      const key = `${region.object}\0${region.dev}\0${region.inode}`;
      if (!files.has(key)) {
        files.set(
          key,
          openIdentified(c, region.object, region.dev, region.inode),
        );
      }
      const opened = files.get(key)!;
      if (typeof opened === "string") {
        failed("open", "ESTALE", 116, `${opened}; left on its original pages`);
        continue;
      }
      // Reserve the gaps; a gap taken meanwhile shrinks the region instead.
      const held: { start: number; end: number }[] = [];
      let start = region.start;
      let end = region.end;
      for (const g of region.gaps) {
        if (reserve(c, g.start, g.end)) {
          held.push(g);
        } else {
          notes.push(
            `the free space at 0x${
              g.start.toString(16)
            } was taken by another mapping meanwhile; left it alone`,
          );
          if (g.start < region.dataStart) start += HUGE_PAGE;
          else end -= HUGE_PAGE;
        }
      }
      const dataStart = Math.max(start, region.vmaStart);
      const dataEnd = Math.min(end, region.vmaEnd);
      if (end - start < HUGE_PAGE) {
        for (const g of held) c.munmap(g.start, g.end - g.start);
        failed(
          "reserve",
          "EEXIST",
          17,
          "no whole 2 MiB page left after a neighbour appeared",
        );
        continue;
      }
      const planned: PlannedRegion = {
        ...region,
        start,
        end,
        dataStart,
        dataEnd,
        fileOffset: region.fileOffset + (dataStart - region.dataStart),
        gaps: held,
      };
      const prot = protOf(region.perms);
      // Where memory equals the file (plan.ts: not RELRO, no private page)
      // fill from the page cache with pread, without faulting the source
      // in. PAGE_PRIMER_FILL=memory forces the copy from memory (tests).
      const fromFile = fillMode !== "memory" && region.equalsFile;
      let memfd: number | undefined;
      let shared: string | undefined;
      if (shareDir && shareReport && !region.equalsFile) {
        notes.push(
          "not shared: its bytes in memory differ from the file (relocated data, RELRO, or private pages); a private copy made from memory",
        );
      } else if (shareDir && shareReport) {
        const layout = {
          len: end - start,
          head: dataStart - start,
          dataLen: dataEnd - dataStart,
          fileOffset: planned.fileOffset,
        };
        const got = opened.file.buildId === undefined
          ? `${region.object} has no build-id: a copy could not be told from a stale one`
          : sharedCopy(
            c,
            shareDir,
            region.object,
            opened.file.buildId,
            opened.fd,
            layout,
          );
        if (typeof got === "string") {
          shareReport.rejected.push(got);
          warnings.push(
            `shared copy not used: ${got}; this region gets a private copy`,
          );
        } else {
          memfd = got.fd;
          shared = got.path;
          if (got.created) {
            shareReport.created++;
            if (opened.file.buildId) {
              createdFor.set(region.object, opened.file.buildId);
            }
          } else shareReport.reused++;
          notes.push(
            `shared copy ${got.path} (${got.created ? "created" : "reused"})`,
          );
        }
      }
      if (backend === "memfd" && memfd === undefined) {
        try {
          memfd = c.memfdCreate(region.object.slice(-249), 1 /* MFD_CLOEXEC */);
          c.ftruncate(memfd, end - start);
        } catch (e) {
          if (memfd !== undefined) c.close(memfd);
          for (const g of held) c.munmap(g.start, g.end - g.start);
          const err = e instanceof SyscallError ? e : undefined;
          failed(
            "memfd",
            err?.code ?? "EIO",
            err?.errno ?? 5,
            `${e}; nothing was changed`,
          );
          continue;
        }
      }
      const t = performance.now();
      const swapWith = (hugetlb: boolean) =>
        tramp.run([{
          op: "swap",
          start,
          len: end - start,
          dataStart,
          dataLen: dataEnd - dataStart,
          prot,
          small,
          hugetlb,
          memfd,
          shared: shared !== undefined,
          fromFile,
          equalsFile: region.equalsFile,
          // A memfd is named by memfd_create (maps: /memfd:<path>).
          name: backend === "memfd"
            ? undefined
            : `${NAME_PREFIX}${region.object}`,
          fd: opened.fd,
          fileOffset: planned.fileOffset,
        }])[0];
      let res = swapWith(backend === "hugetlb");
      let onHugetlb = backend === "hugetlb";
      if (
        onHugetlb && (options.backend ?? "auto") === "auto" &&
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
      if (memfd !== undefined && (shared === undefined || res.errno !== 0)) {
        c.close(memfd);
      }
      if (res.collapseErrno && !small) {
        notes.push(`MADV_COLLAPSE: ${errnoName(res.collapseErrno)}`);
      }
      if (res.nameErrno && !namingWarned) {
        namingWarned = true;
        warnings.push(
          `PR_SET_VMA_ANON_NAME: ${
            errnoName(res.nameErrno)
          } (kernel without CONFIG_ANON_VMA_NAME): the copies show as unnamed anonymous mappings in /proc/self/maps`,
        );
      }
      if (res.errno !== 0) {
        // Drop our reservations; after a failed mremap, only those still
        // ours (it may have unmapped them before failing).
        releaseGaps(c, held, res.step === "mremap");
        results.push({
          ...row(start, end, planned),
          status: "failed",
          error: {
            step: res.step,
            code: errnoName(res.errno),
            errno: res.errno,
            message:
              `${res.step} failed with ${errnoName(res.errno)} for ${
                formatBytes(end - start)
              } at 0x${start.toString(16)}` +
              (res.step === "mremap"
                ? res.recovered
                  ? region.equalsFile
                    ? "; the file was mapped back, the code is intact"
                    : "; the bytes were copied back from the copy, intact"
                  : "; the region could not be verified intact"
                : "; nothing was changed"),
          },
          ms,
        });
        continue;
      }
      // A library stays loaded while its code runs from our copy.
      const pin = region.object === mainPath ? undefined : c.pin(region.object);
      record.set(start, {
        hugetlb: onHugetlb,
        ...(shared !== undefined ? { sharedFd: memfd } : {}),
        region: planned,
        prot,
        file: opened.file,
        ...(pin !== undefined ? { pin } : {}),
      });
      results.push({
        ...row(start, end, planned),
        status: "remapped",
        ms,
        ...(shared !== undefined ? { shared } : {}),
      });
    }
  } finally {
    for (const f of files.values()) if (typeof f !== "string") c.close(f.fd);
    if (shareDir && shareReport) {
      // Copies this run made: delete the unused ones of the same executable
      // (older builds, layouts of exited processes). Ours are locked.
      for (const [object, buildId] of createdFor) {
        const { evicted, inUse } = evictUnused(c, shareDir, object, buildId);
        shareReport.evicted.push(...evicted);
        const mine = results.filter((r) =>
          r.shared?.includes(copyPrefix(object))
        ).length;
        if (inUse > mine) {
          warnings.push(
            `${object} is loaded at another address modulo 2 MiB than ${
              inUse - mine
            } shared cop${
              inUse - mine === 1 ? "y" : "ies"
            } other processes use (a position-independent executable under ASLR): this process made its own; processes started with \`setarch -R\` (no ASLR) load at one address and share one copy`,
          );
        }
      }
      c.close(shareDir.fd);
    }
  }
  if (!small) retryCollapse(c, results);
  const smaps = readSmaps(c);
  for (const r of results) {
    if (r.status === "remapped") {
      const swap = record.swaps.get(r.start)!;
      const a = swap.region;
      r.huge = sumIn(smaps, a.dataStart, a.dataEnd, hugeBytes);
      record.set(r.start, {
        ...swap,
        copy: copyIdentity(smaps, a.start, a.end),
      });
      if (!small && r.huge > 0 && r.huge < r.bytes) {
        warnings.push(
          `partial: ${formatBytes(r.huge)} of ${formatBytes(r.bytes)} (${
            ((100 * r.huge) / r.bytes).toFixed(0)
          }%) of ${r.object} LOAD ${r.index} on 2 MiB pages (${
            r.notes.join("; ") || "the kernel gave 4 KiB pages for the rest"
          })`,
        );
      }
    }
  }
  const moved = results.filter((r) => r.status === "remapped");
  if (
    backend === "memfd" && moved.length > 0 && moved.every((r) => r.huge === 0)
  ) {
    warnings.push(
      `memfd backend: the copies got 4 KiB pages (shmem THP is '${shmem}' and MADV_COLLAPSE did not help); for 2 MiB pages: echo advise > ${SHMEM_ENABLED}`,
    );
  }
  return report(results, plan.skipped, smaps);
}

/**
 * A report of a restore that did nothing.
 *
 * @example
 * ```ts
 * import { emptyRestoreReport } from "./execute.ts";
 * console.log(emptyRestoreReport().restored); // 0
 * ```
 */
export function emptyRestoreReport(): RestoreReport {
  return { restored: 0, copied: 0, bytes: 0, failed: [], ms: 0 };
}

/**
 * The trampoline record that gives a swapped region back: the file `fd`
 * mapped over it, or, where its bytes differ from the file, a copy from
 * memory onto 4 KiB pages (the file is not used).
 */
function restoreRecord(swap: ActiveSwap, fd: number): TrampolineRecord {
  const r = swap.region;
  const byCopy = !r.equalsFile;
  return {
    op: "restore",
    start: r.start,
    len: r.end - r.start,
    dataStart: r.dataStart,
    dataLen: r.dataEnd - r.dataStart,
    prot: swap.prot,
    small: byCopy,
    hugetlb: !byCopy && swap.hugetlb,
    equalsFile: r.equalsFile,
    fd: byCopy ? -1 : fd,
    fileOffset: r.fileOffset,
  };
}

/**
 * Gives a region whose bytes differ from the file back on 4 KiB anonymous
 * pages, copied from the copy in one swap (never the file's bytes); the
 * space it grew into is released. The error message, or `undefined`.
 */
function restoreByCopy(
  tramp: Trampoline,
  swap: ActiveSwap,
): string | undefined {
  const [res] = tramp.run([restoreRecord(swap, -1)]);
  if (res.errno === 0) return undefined;
  return `${res.step} failed with ${errnoName(res.errno)}` +
    (res.step === "munmap extension"
      ? "; the bytes are on 4 KiB pages again, the space it grew into is still mapped"
      : res.step === "mremap" && res.recovered
      ? "; the bytes were copied back, intact; kept as it was"
      : "; kept the in-memory copy");
}

/**
 * Puts every region this process remapped back on its file, each in one
 * `mmap(MAP_FIXED|MAP_PRIVATE)` of the executable at the segment's file
 * offset. Refuses a region whose file on disk is no longer the one loaded
 * (device, inode, size or build-id differ).
 *
 * @example
 * ```ts no-eval
 * import { libc } from "../sys/libc.ts";
 * import { restoreRemapped } from "./execute.ts";
 * console.log(restoreRemapped(libc()).restored);
 * ```
 */
export function restoreRemapped(c: Libc): RestoreReport {
  const t0 = performance.now();
  // No trampoline in this process: nothing was ever remapped here.
  const tramp = loadedTrampoline(c);
  let out = emptyRestoreReport();
  try {
    if (tramp) {
      out = tramp.locked(() => restoreLocked(c, tramp, new SwapRecord(tramp)));
    }
  } catch (e) {
    if (!(e instanceof TrampolineBusyError)) throw e;
    out.reason = e.message;
  }
  out.ms = performance.now() - t0;
  return out;
}

/** Lets go of a swap: its shared copy's lock and its library's pin. */
function release(c: Libc, record: SwapRecord, start: number): void {
  const swap = record.swaps.get(start)!;
  record.delete(start);
  if (swap.sharedFd !== undefined) c.close(swap.sharedFd);
  if (swap.pin !== undefined) c.unpin(swap.pin);
}

/** {@linkcode restoreRemapped} under the trampoline's lock. */
function restoreLocked(
  c: Libc,
  tramp: Trampoline,
  record: SwapRecord,
): RestoreReport {
  const out = emptyRestoreReport();
  if (record.swaps.size === 0) return out;
  // Checked right before acting: a range that is no longer our copy (its
  // library unloaded, someone mapped over it) is left alone.
  const maps = parseMaps(c.readText("/proc/self/maps"));
  for (const [start, swap] of [...record.swaps.entries()]) {
    const r = swap.region;
    const fail = (message: string) =>
      out.failed.push({
        start: r.start,
        end: r.end,
        object: r.object,
        message,
      });
    const gone = notOurCopy(maps, swap);
    if (gone !== undefined) {
      fail(`${gone}: left alone, and forgotten`);
      release(c, record, start);
      continue;
    }
    if (!r.equalsFile) {
      const error = restoreByCopy(tramp, swap);
      if (error !== undefined) {
        fail(error);
        continue;
      }
      release(c, record, start);
      out.restored++;
      out.copied++;
      out.bytes += r.dataEnd - r.dataStart;
      continue;
    }
    const opened = openIdentified(
      c,
      swap.file.path,
      swap.file.dev,
      swap.file.inode,
    );
    if (typeof opened === "string") {
      fail(`${opened}; kept the in-memory copy`);
      continue;
    }
    try {
      if (
        opened.file.size !== swap.file.size ||
        opened.file.buildId !== swap.file.buildId
      ) {
        fail(
          `${swap.file.path} changed since it was loaded (size or build-id differ); kept the in-memory copy`,
        );
        continue;
      }
      const [res] = tramp.run([restoreRecord(swap, opened.fd)]);
      if (res.errno !== 0) {
        // After "munmap extension" the code is on the file again, but the
        // space the remap grew into is still mapped: keep the region, so
        // the next restore() maps the file again (no change) and retries.
        fail(
          `${res.step} failed with ${errnoName(res.errno)}` +
            (res.step === "munmap extension"
              ? "; the code is back on the file, the space it grew into is still mapped: restore() again to release it"
              : "; kept the in-memory copy"),
        );
        continue;
      }
      release(c, record, start);
      out.restored++;
      out.bytes += r.dataEnd - r.dataStart;
    } catch (e) {
      if (!(e instanceof SyscallError)) throw e;
      fail(e.message);
    } finally {
      c.close(opened.fd);
    }
  }
  return out;
}
