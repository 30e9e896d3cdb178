/**
 * What this machine and this runtime allow page-primer to do: the kernel,
 * transparent huge pages (system-wide, for shmem and for this process), the
 * hugetlb pool, the memlock limit against what `mlock(true)` needs,
 * `CAP_IPC_LOCK`, `vm.max_map_count`, the runtime executable's LOAD layout,
 * and the huge-page coverage each alignment strategy would reach in this
 * very process, planned exactly as `remap()` plans it. Each thing missing
 * comes with the command that enables it.
 *
 * {@linkcode gatherDoctor} makes the syscalls; {@linkcode predictCoverage},
 * {@linkcode diagnose} and {@linkcode formatDoctor} are pure. On request,
 * {@linkcode doctor} also calibrates: whether code on 2 MiB pages runs
 * faster than on 4 KiB pages on this machine (`./calibrate.ts`).
 *
 * @module
 */

import { runtimeInfo } from "../sys/ffi.ts";
import { formatBytes, formatPercent, formatTable } from "../sys/format.ts";
import { type Libc, type Rlimit, RLIMIT_MEMLOCK } from "../sys/libc.ts";
import { hugeBytes, type SmapsVma, sumIn } from "../sys/maps.ts";
import { lockBudget } from "../mlock.ts";
import { readMaxMapCount } from "../sys/limits.ts";
import { mainExecutable, readSmaps, readStatus } from "../sys/objects.ts";
import {
  type Alignment,
  plannedCoverage,
  type RemapPlan,
} from "../remap/plan.ts";
import {
  type Backend,
  decideRemap,
  SHMEM_ENABLED,
  shmemEnabled,
  shmemThpOn,
} from "../remap/backend.ts";
import { MAPS_PER_REGION } from "../remap/execute.ts";
import { type Coverage, measureCoverage } from "../remap/report.ts";
import { HUGE_PAGE, poolCommand, readPoolState } from "../sys/hugetlb.ts";
import {
  aliasRanges,
  type LoadedObject,
  permsOf,
  type SegmentKind,
  segmentKind,
  type SegmentRange,
  segmentRanges,
} from "../sys/segments.ts";
import {
  kernelVersion,
  THP_DIR,
  type ThpStatus,
  thpStatus,
} from "../sys/thp.ts";
import {
  calibrate,
  type CalibrateOptions,
  type Calibration,
  formatCalibration,
} from "./calibrate.ts";

const THP_ON = `echo madvise > ${THP_DIR}/enabled`;
const SHMEM_ON = `echo advise > ${SHMEM_ENABLED}`;

/** The 2 MiB hugetlb pool and where hugetlbfs is mounted. */
export interface HugetlbFacts {
  /** Whether the kernel has a 2 MiB hugetlb pool at all. */
  supported: boolean;
  /** `nr_hugepages`. */
  total: number;
  /** `free_hugepages`. */
  free: number;
  /** `resv_hugepages`: free pages promised to existing mappings. */
  reserved: number;
  /** Free and not reserved: what a new mapping can get. */
  available: number;
  /** Mount points of hugetlbfs, from `/proc/mounts`. */
  mounts: string[];
}

/** The memlock situation. Limits are bytes; `null` means unlimited. */
export interface MemlockFacts {
  /** Soft `RLIMIT_MEMLOCK`. */
  soft: number | null;
  /** Hard `RLIMIT_MEMLOCK`. */
  hard: number | null;
  /** Bytes this process has locked already (`VmLck`). */
  vmLck: number;
  /** `CAP_IPC_LOCK` in the effective set (`/proc/self/status` CapEff bit 14): the limit does not apply. */
  capIpcLock: boolean;
  /** Bytes `prime().mlock(true)` locks: the LOAD segments plus the runtime's further mappings of its file. */
  needed: number;
  /** Of those, the LOAD segments. */
  loadBytes: number;
  /** Of those, further mappings of the executable (V8's embedded builtins in Deno). */
  aliasBytes: number;
}

/** A segment of the runtime executable, as loaded. */
export interface LayoutSegment {
  /** LOAD index (aliases follow the LOAD segments). */
  index: number;
  /** `"load"` or `"alias"` (a further mapping of the file). */
  origin: "load" | "alias";
  /** `p_vaddr`; `null` for an alias (it is not in the program headers). */
  vaddr: number | null;
  /** `p_memsz` (for an alias: its size). */
  memsz: number;
  /** `p_filesz`. */
  filesz: number;
  /** `p_offset`. */
  offset: number;
  /** Protection, e.g. `"r-x"`. */
  perms: string;
  /** `"text"`, `"rodata"` or `"data"`. */
  kind: SegmentKind;
  /** Page-aligned start address in this process. */
  start: number;
  /** Page-aligned end address. */
  end: number;
}

/** Everything the doctor reads from the system. */
export interface DoctorFacts {
  /** Runtime name and version, e.g. `"deno 2.9.6"`. */
  runtime: string;
  /** Process id. */
  pid: number;
  /** Kernel release, e.g. `"6.18.44"`. */
  kernel: string;
  /** CPU architecture. */
  arch: string;
  /** THP system-wide and for this process (`PR_GET_THP_DISABLE`). */
  thp: ThpStatus;
  /** `shmem_enabled` selection (`"never"`, `"advise"`, ...), or `"unavailable"`. */
  shmemEnabled: string;
  /** The hugetlb pool. */
  hugetlb: HugetlbFacts;
  /** Memlock limit and need. */
  memlock: MemlockFacts;
  /** `vm.max_map_count` (`null` when it cannot be read or parsed: then not checked) and this process's current number of mappings. */
  maps: { max: number | null; current: number };
  /** The runtime executable. */
  executable: {
    /** Path. */
    path: string;
    /** Load bias. */
    bias: number;
    /** Its LOAD segments, then further mappings of its file. */
    segments: LayoutSegment[];
  };
}

/** What {@linkcode gatherDoctor} returns: the facts and the inputs of the prediction. */
export interface DoctorInput {
  /** The facts. */
  facts: DoctorFacts;
  /** This process's smaps, read once. */
  smaps: SmapsVma[];
  /** The objects a default `prime().remap()` selects (the main executable). */
  objects: LoadedObject[];
  /** Their ranges, as `prime()` builds them (LOAD segments and aliases). */
  ranges: SegmentRange[];
  /** The 2 MiB calibration, when one was made ({@linkcode doctor}'s `calibrate`). */
  calibration?: Calibration;
}

/** The coverage one alignment strategy would reach. */
export interface CoveragePrediction {
  /** The strategy. */
  align: Alignment;
  /** The backend `backend: "auto"` would choose. */
  backend: Backend;
  /** Why no huge pages are possible at all, when that is so. */
  unavailable?: string;
  /** Regions the plan moves. */
  regions: number;
  /** Text bytes and the bytes predicted on 2 MiB pages after the remap. */
  text: Coverage;
  /** Read-only data, likewise. */
  rodata: Coverage;
  /** Mappings the remap may need (checked against `vm.max_map_count`). */
  mapsNeeded: number;
  /** The same under the hugetlb backend, and the 2 MiB pages it needs. */
  hugetlb: { text: Coverage; rodata: Coverage; pagesNeeded: number };
}

/** How a finding affects page-primer. */
export type FindingStatus = "ok" | "note" | "advice" | "blocker";

/** One thing the doctor checked. */
export interface Finding {
  /** Short key, e.g. `"thp"`, `"shmem"`, `"hugetlb"`, `"memlock"`. */
  topic: string;
  /**
   * `"ok"`: as wanted; `"note"`: worth knowing, nothing to do here;
   * `"advice"`: an option that is off; `"blocker"`: keeps remap or mlock
   * from working.
   */
  status: FindingStatus;
  /** What was found and what it means. */
  message: string;
  /** The exact command that enables what is missing. */
  command?: string;
}

/**
 * One way to get 2 MiB pages (a remap backend), judged for the process the
 * doctor runs in.
 */
export interface HugePageRoute {
  /** The backend. */
  backend: Backend;
  /** True when it gives this process 2 MiB pages as the machine is now. */
  works: boolean;
  /** Why it does or does not. */
  why: string;
  /**
   * When it does not work yet: the command that makes it work for this
   * process. Absent when it works, and when no command can (THP disabled
   * for the process, no kernel support): such a route is not recommended.
   */
  command?: string;
}

/** The doctor's verdict. */
export interface DoctorReport {
  /** False when a finding is a blocker. */
  ok: boolean;
  /** The facts. */
  facts: DoctorFacts;
  /** Coverage of text and read-only data now (from smaps). */
  now: { text: Coverage; rodata: Coverage };
  /** Per alignment strategy. */
  predictions: CoveragePrediction[];
  /**
   * The routes to 2 MiB pages for this process: thp, memfd, hugetlb. The
   * doctor recommends exactly those that work or that a command makes
   * work ({@linkcode recommendedRoutes}).
   */
  routes: HugePageRoute[];
  /** Findings, blockers first. */
  findings: Finding[];
  /**
   * Whether code on 2 MiB pages pays on this machine (at the footprint
   * given), measured in this process; present when asked for.
   */
  calibration?: Calibration;
}

const nullIfInfinite = (n: number) => (n === Infinity ? null : n);

/**
 * Mount points of hugetlbfs in `/proc/mounts` text (octal escapes such as
 * `\040` decoded).
 *
 * @example
 * ```ts
 * import { parseHugetlbMounts } from "./doctor.ts";
 * import assert from "node:assert/strict";
 * const mounts = "hugetlbfs /dev/hugepages hugetlbfs rw,pagesize=2M 0 0\n" +
 *   "none /mnt/huge\\040pages hugetlbfs rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n";
 * assert.deepEqual(parseHugetlbMounts(mounts), ["/dev/hugepages", "/mnt/huge pages"]);
 * ```
 */
export function parseHugetlbMounts(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f.length >= 3 && f[2] === "hugetlbfs") {
      out.push(
        f[1].replace(
          /\\([0-7]{3})/g,
          (_, o: string) => String.fromCharCode(parseInt(o, 8)),
        ),
      );
    }
  }
  return out;
}

/**
 * Reads the facts of this process and machine, and the inputs of the
 * coverage prediction (smaps read once).
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { gatherDoctor } from "./doctor.ts";
 * console.log(gatherDoctor(libc()).facts.thp.enabled);
 * ```
 */
export function gatherDoctor(c: Libc): DoctorInput {
  const info = runtimeInfo();
  const smaps = readSmaps(c);
  const exe = mainExecutable(c);
  const loads = segmentRanges(exe, c.pageSize());
  const aliases = aliasRanges(exe, loads, smaps);
  const pool = readPoolState(c);
  const memlock = memlockFacts(c, loads, aliases);
  const maxMap = readMaxMapCount(c);
  const facts: DoctorFacts = {
    runtime: `${info.name} ${info.version}`.trim(),
    pid: c.getpid(),
    kernel: c.kernelRelease(),
    arch: info.arch,
    thp: thpStatus(c),
    shmemEnabled: shmemEnabled(c),
    hugetlb: {
      ...pool,
      mounts: parseHugetlbMounts(c.tryReadText("/proc/mounts") ?? ""),
    },
    memlock,
    maps: { max: maxMap ?? null, current: smaps.length },
    executable: {
      path: exe.path,
      bias: exe.bias,
      segments: executableLayout({ exe, loads, aliases, smaps }),
    },
  };
  return { facts, smaps, objects: [exe], ranges: [...loads, ...aliases] };
}

function rangeBytes(ranges: readonly SegmentRange[]): number {
  return ranges.reduce((n, r) => n + r.end - r.start, 0);
}

/** The memlock limit, what is locked, and what `mlock(true)` would lock. */
function memlockFacts(
  c: Libc,
  loads: readonly SegmentRange[],
  aliases: readonly SegmentRange[],
): MemlockFacts {
  const rlimit: Rlimit = c.getrlimit(RLIMIT_MEMLOCK);
  const status = readStatus(c);
  const loadBytes = rangeBytes(loads);
  const aliasBytes = rangeBytes(aliases);
  return {
    soft: nullIfInfinite(rlimit.cur),
    hard: nullIfInfinite(rlimit.max),
    vmLck: status.vmLck,
    capIpcLock: status.capIpcLock,
    needed: loadBytes + aliasBytes,
    loadBytes,
    aliasBytes,
  };
}

/** The executable's LOAD segments as loaded, then its further mappings. */
function executableLayout(parts: {
  exe: LoadedObject;
  loads: readonly SegmentRange[];
  aliases: readonly SegmentRange[];
  smaps: readonly SmapsVma[];
}): LayoutSegment[] {
  const { exe, loads, aliases, smaps } = parts;
  const segments = exe.segments.filter((s) => s.memsz > 0).map((s) => {
    const r = loads.find((l) => l.index === s.index)!;
    return {
      index: s.index,
      origin: "load" as const,
      vaddr: s.vaddr,
      memsz: s.memsz,
      filesz: s.filesz,
      offset: s.offset,
      perms: permsOf(s.flags),
      kind: segmentKind(s.flags),
      start: r.start,
      end: r.end,
    };
  });
  const further = aliases.map((r) => ({
    index: r.index,
    origin: "alias" as const,
    vaddr: null,
    memsz: r.end - r.start,
    filesz: r.end - r.start,
    offset: smaps.find((m) => m.start === r.start)?.offset ?? 0,
    perms: r.perms,
    kind: r.kind,
    start: r.start,
    end: r.end,
  }));
  return [...segments, ...further];
}

function predicted(
  plan: RemapPlan,
  smaps: readonly SmapsVma[],
  ranges: readonly SegmentRange[],
  kind: "text" | "rodata",
): Coverage {
  // Pages outside the plan keep what they have now.
  const untouched = smaps.filter((v) =>
    !plan.regions.some((p) => v.start < p.end && p.start < v.end)
  );
  let bytes = 0;
  let huge = 0;
  for (const r of ranges) {
    if (r.kind !== kind || r.origin !== "load") continue;
    bytes += r.end - r.start;
    huge += Math.min(
      r.end - r.start,
      plannedCoverage(plan, r.start, r.end) +
        sumIn(untouched, r.start, r.end, hugeBytes),
    );
  }
  return { bytes, huge };
}

/**
 * Predicts what `prime().remap({ align }).run()` reaches in the process
 * whose smaps and ranges are given: the plan is built exactly as
 * `remap()` builds it (same eligible objects, `planRemap`, `forHugetlb`
 * and the backend `"auto"` picks), and its planned bytes are counted over
 * the LOAD ranges as `remap()` measures them. Pure.
 *
 * @example
 * ```ts
 * import { predictCoverage } from "./doctor.ts";
 * import assert from "node:assert/strict";
 * const p = predictCoverage({
 *   objects: [], ranges: [], smaps: [], align: "aggressive",
 *   thp: { usable: true }, pool: { total: 0, available: 0 }, shmemEnabled: "never",
 * });
 * assert.equal(p.backend, "thp");
 * assert.deepEqual(p.text, { bytes: 0, huge: 0 });
 * ```
 */
export function predictCoverage(input: {
  /** Selected objects (default `prime()`: the main executable). */
  objects: readonly LoadedObject[];
  /** Their ranges. */
  ranges: readonly SegmentRange[];
  /** The process's smaps. */
  smaps: readonly SmapsVma[];
  /** Strategy. */
  align: Alignment;
  /** THP verdict. */
  thp: { usable: boolean; reason?: string; processDisabled?: boolean };
  /** The hugetlb pool. */
  pool: { total: number; available: number };
  /** `shmem_enabled` selection. */
  shmemEnabled: string;
}): CoveragePrediction {
  const { ranges, smaps, align } = input;
  const choice = decideRemap({ ...input, wanted: "auto" });
  const { plan, hugetlbPlan } = choice;
  const pagesNeeded = choice.pool.needed;
  return {
    align,
    backend: choice.backend,
    ...("unavailable" in choice ? { unavailable: choice.unavailable } : {}),
    regions: plan.regions.length,
    text: predicted(plan, smaps, ranges, "text"),
    rodata: predicted(plan, smaps, ranges, "rodata"),
    mapsNeeded: plan.regions.length * MAPS_PER_REGION,
    hugetlb: {
      text: predicted(hugetlbPlan, smaps, ranges, "text"),
      rodata: predicted(hugetlbPlan, smaps, ranges, "rodata"),
      pagesNeeded,
    },
  };
}

/**
 * Which backends give this process 2 MiB pages, and the command that makes
 * each work when one can. THP disabled for the process
 * (`PR_SET_THP_DISABLE`) rules out THP and shmem alike: the kernel checks
 * the flag on every anonymous and shmem huge fault and on `MADV_COLLAPSE`
 * (measured: no PMD mapping even on a `huge=always` tmpfs); the hugetlb
 * pool does not depend on it. Pure.
 *
 * @example
 * ```ts
 * import { hugePageRoutes } from "./doctor.ts";
 * import { thpVerdict } from "../sys/thp.ts";
 * import assert from "node:assert/strict";
 * const routes = hugePageRoutes({
 *   thp: thpVerdict({ enabled: "always [madvise] never", defrag: "madvise", processDisabled: true, release: "6.18.0" }),
 *   shmemEnabled: "advise",
 *   pool: { supported: true, total: 0, available: 0 },
 * }, 44);
 * assert.deepEqual(routes.map((r) => r.works), [false, false, false]);
 * assert.equal(routes[2].command, "sysctl -w vm.nr_hugepages=44");
 * ```
 *
 * @param facts THP, `shmem_enabled` and the pool.
 * @param pagesNeeded The 2 MiB pages the hugetlb plan needs.
 */
export function hugePageRoutes(
  facts: {
    thp: ThpStatus;
    shmemEnabled: string;
    pool: { supported: boolean; total: number; available: number };
  },
  pagesNeeded: number,
): HugePageRoute[] {
  return [
    thpRoute(facts.thp),
    memfdRoute(facts.thp, facts.shmemEnabled),
    hugetlbRoute(facts.pool, pagesNeeded),
  ];
}

const PROCESS_THP_DISABLED =
  "THP is disabled for this process (PR_SET_THP_DISABLE): the kernel maps neither anonymous nor shmem memory of it on 2 MiB pages";

/** The THP backend: usable as {@linkcode thpStatus} judged it. */
function thpRoute(thp: ThpStatus): HugePageRoute {
  if (thp.usable) {
    return {
      backend: "thp",
      works: true,
      why: thp.reason ?? `THP enabled=${thp.enabled}`,
    };
  }
  return {
    backend: "thp",
    works: false,
    why: thp.processDisabled
      ? PROCESS_THP_DISABLED
      : thp.reason ?? "THP unusable",
    ...(!thp.processDisabled && thp.enabled === "never"
      ? { command: THP_ON }
      : {}),
  };
}

/** The memfd backend: shmem THP at fault time, or `MADV_COLLAPSE`. */
function memfdRoute(thp: ThpStatus, shmem: string): HugePageRoute {
  const backend = "memfd";
  if (thp.processDisabled) {
    return { backend, works: false, why: PROCESS_THP_DISABLED };
  }
  if (thp.enabled === "unavailable" || shmem === "unavailable") {
    return {
      backend,
      works: false,
      why: "this kernel has no shmem transparent huge pages",
    };
  }
  if (shmemThpOn(shmem)) {
    return {
      backend,
      works: true,
      why: `shmem_enabled=${shmem}: memfd copies get 2 MiB pages at fault time`,
    };
  }
  if (shmem !== "deny" && thp.collapse) {
    return {
      backend,
      works: true,
      why:
        `shmem_enabled=${shmem}: memfd copies get 2 MiB pages through MADV_COLLAPSE`,
    };
  }
  return {
    backend,
    works: false,
    why: `shmem_enabled=${shmem}${
      shmem === "deny"
        ? " forbids shmem huge pages, MADV_COLLAPSE too"
        : " and no MADV_COLLAPSE (Linux < 6.1)"
    }`,
    command: SHMEM_ON,
  };
}

/** The hugetlb backend: enough pages available in the pool. */
function hugetlbRoute(
  pool: { supported: boolean; total: number; available: number },
  pagesNeeded: number,
): HugePageRoute {
  if (!pool.supported) {
    return {
      backend: "hugetlb",
      works: false,
      why: "no 2 MiB hugetlb pool in this kernel (CONFIG_HUGETLBFS)",
    };
  }
  const why =
    `the pool has ${pool.available} page(s) available, the remap needs ${pagesNeeded}`;
  if (pagesNeeded > 0 && pool.available >= pagesNeeded) {
    return { backend: "hugetlb", works: true, why };
  }
  return {
    backend: "hugetlb",
    works: false,
    why,
    command: poolCommand(pool, pagesNeeded),
  };
}

/**
 * The backends a doctor report recommends: those that give the process
 * 2 MiB pages now or after their command.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { doctor, recommendedRoutes } from "./doctor.ts";
 * console.log(recommendedRoutes(doctor(libc()))); // e.g. ["thp", "memfd"]
 * ```
 */
export function recommendedRoutes(
  report: { routes: HugePageRoute[] },
): Backend[] {
  return report.routes.filter((r) => r.works || r.command !== undefined).map((
    r,
  ) => r.backend);
}

function limitText(n: number | null): string {
  return n === null ? "unlimited" : formatBytes(n);
}

/**
 * What each finding reads: the gathered input, and what is derived from it
 * once (the prediction per strategy, the routes to 2 MiB pages).
 */
interface DiagnoseContext {
  /** What {@linkcode gatherDoctor} returned. */
  input: DoctorInput;
  /** `input.facts`. */
  facts: DoctorFacts;
  /** Per strategy, `"aggressive"` first (what `remap(true)` does). */
  predictions: CoveragePrediction[];
  /** {@linkcode hugePageRoutes} by backend. */
  routes: { thp: HugePageRoute; memfd: HugePageRoute; hugetlb: HugePageRoute };
}

/** One check of the doctor: zero or more findings. Pure. */
type FindingCheck = (x: DiagnoseContext) => Finding[];

/** `{ command }` when there is one, else nothing (no `command` key). */
function commandOf(command: string | undefined): { command?: string } {
  return command === undefined ? {} : { command };
}

/** `MADV_COLLAPSE` and `MADV_POPULATE_READ` in this kernel. */
function kernelFinding({ facts }: DiagnoseContext): Finding[] {
  const [maj, min] = kernelVersion(facts.kernel);
  const atLeast = (a: number, b: number) => maj > a || (maj === a && min >= b);
  return [{
    topic: "kernel",
    status: atLeast(6, 1) ? "ok" : "advice",
    message: `Linux ${facts.kernel}: MADV_COLLAPSE (6.1+) ${
      atLeast(6, 1) ? "available" : "missing"
    }, MADV_POPULATE_READ (5.14+) ${
      atLeast(5, 14)
        ? "available"
        : "missing (populate falls back to a read per page)"
    }`,
  }];
}

/** THP system-wide (`enabled`). */
function thpFinding({ facts: { thp } }: DiagnoseContext): Finding[] {
  if (thp.enabled === "unavailable") {
    return [{
      topic: "thp",
      status: "advice",
      message:
        "no transparent huge pages in this kernel (CONFIG_TRANSPARENT_HUGEPAGE): only the hugetlb backend can give 2 MiB pages",
    }];
  }
  if (thp.enabled === "never") {
    return [{
      topic: "thp",
      status: "advice",
      message: `THP enabled=never: ${
        thp.collapse
          ? "remap still gets huge pages through MADV_COLLAPSE, more slowly"
          : "this kernel has no MADV_COLLAPSE, so the THP backend gets no huge pages"
      }`,
      command: THP_ON,
    }];
  }
  if (thp.processDisabled) {
    return [{
      topic: "thp",
      status: "note",
      message:
        `THP enabled=${thp.enabled} system-wide, but disabled for this process (see thp-process)`,
    }];
  }
  return [{
    topic: "thp",
    status: "ok",
    message:
      `THP enabled=${thp.enabled}: remap's copies ask for huge pages with MADV_HUGEPAGE${
        thp.enabled === "madvise" ? " (only madvised memory gets them)" : ""
      }`,
  }];
}

/** THP `defrag`: whether a madvised fault compacts; not when THP is off for the process. */
function defragFinding({ facts: { thp } }: DiagnoseContext): Finding[] {
  if (thp.defrag === "unavailable" || thp.processDisabled) return [];
  const good = ["always", "madvise", "defer+madvise"].includes(thp.defrag);
  return [{
    topic: "thp-defrag",
    status: good ? "ok" : "advice",
    message: `THP defrag=${thp.defrag}: ${
      good
        ? "a madvised fault compacts memory to find a huge page"
        : "a madvised fault does not wait for compaction, so copies may land on 4 KiB pages when memory is fragmented"
    }`,
    ...commandOf(good ? undefined : `echo madvise > ${THP_DIR}/defrag`),
  }];
}

/** THP for this process (`PR_GET_THP_DISABLE`); when off, the hugetlb pool is the way. */
function thpProcessFinding({ facts, routes }: DiagnoseContext): Finding[] {
  if (!facts.thp.processDisabled) {
    return [{
      topic: "thp-process",
      status: "ok",
      message: "PR_GET_THP_DISABLE = 0: THP is allowed for this process",
    }];
  }
  const hugetlb = routes.hugetlb;
  return [{
    topic: "thp-process",
    status: "advice",
    message:
      `PR_GET_THP_DISABLE = 1: THP is off for this whole process (set by the runtime or a parent; inherited across fork and exec), and so are 2 MiB shmem mappings: the thp and memfd backends and share: true get 4 KiB pages here. Only the hugetlb pool gives this process 2 MiB pages${
        hugetlb.works
          ? " (it covers the remap)"
          : hugetlb.command
          ? ""
          : `, and ${hugetlb.why}`
      }; or start the process from a parent that has not set PR_SET_THP_DISABLE`,
    ...commandOf(hugetlb.command),
  }];
}

/** shmem THP (`shmem_enabled`), for the memfd backend and `share: true`. */
function shmemFinding({ facts, routes }: DiagnoseContext): Finding[] {
  const shmem = facts.shmemEnabled;
  if (facts.thp.processDisabled) {
    return [{
      topic: "shmem",
      status: "note",
      message:
        `shmem THP shmem_enabled=${shmem}: does not apply to this process (THP is disabled for it, see thp-process)`,
    }];
  }
  if (shmemThpOn(shmem)) {
    return [{
      topic: "shmem",
      status: "ok",
      message:
        `shmem THP shmem_enabled=${shmem}: the memfd backend and share: true get 2 MiB pages at fault time`,
    }];
  }
  return [{
    topic: "shmem",
    status: "advice",
    message:
      `shmem THP shmem_enabled=${shmem}: the memfd backend and share: true ${
        routes.memfd.works
          ? "get 2 MiB pages only through MADV_COLLAPSE"
          : `get no 2 MiB pages (${routes.memfd.why})`
      }, and backend "auto" does not fall back to a memfd when THP is unusable`,
    command: SHMEM_ON,
  }];
}

/** The hugetlb pool against the pages the remap needs. */
function hugetlbFinding(x: DiagnoseContext): Finding[] {
  const pool = x.facts.hugetlb;
  const need = x.predictions[0].hugetlb.pagesNeeded;
  const { thp, memfd, hugetlb } = x.routes;
  if (!pool.supported) {
    return [{
      topic: "hugetlb",
      status: "note",
      message:
        "no 2 MiB hugetlb pool in this kernel (CONFIG_HUGETLBFS): the hugetlb backend is not possible",
    }];
  }
  if (hugetlb.works) {
    return [{
      topic: "hugetlb",
      status: "ok",
      message:
        `hugetlb pool: ${pool.total} page(s), ${pool.available} available, the remap needs ${need}: backend "auto" uses it (guaranteed pages)`,
    }];
  }
  return [{
    topic: "hugetlb",
    status: "advice",
    message: `${
      pool.total === 0
        ? "no hugetlb pool (vm.nr_hugepages = 0)"
        : `hugetlb pool: ${pool.total} page(s), ${pool.available} available`
    }: the hugetlb backend (guaranteed 2 MiB pages, reserved up front) needs ${need} page(s) (${
      formatBytes(need * HUGE_PAGE)
    }) for this runtime${
      thp.works || memfd.works
        ? ""
        : "; it is the only route to 2 MiB pages for this process"
    }`,
    ...commandOf(hugetlb.command),
  }];
}

/** Where hugetlbfs is mounted (page-primer does not need it). */
function hugetlbfsFinding({ facts }: DiagnoseContext): Finding[] {
  const mounts = facts.hugetlb.mounts;
  return [{
    topic: "hugetlbfs",
    status: "note",
    message: mounts.length
      ? `hugetlbfs mounted at ${mounts.join(", ")}`
      : "hugetlbfs is not mounted; page-primer does not need it (it maps the pool with MAP_HUGETLB). For programs that do: mount -t hugetlbfs none /dev/hugepages",
  }];
}

/** The memlock limits and what `mlock(true)` needs, in words. */
function memlockLimits(m: MemlockFacts): string {
  return `RLIMIT_MEMLOCK ${limitText(m.soft)} soft, ${
    limitText(m.hard)
  } hard; mlock(true) needs ${formatBytes(m.needed)} (LOAD segments ${
    formatBytes(m.loadBytes)
  }${m.aliasBytes ? ` + further mappings ${formatBytes(m.aliasBytes)}` : ""})`;
}

/** Whether `mlock(true)` can lock it all: the soft limit, the hard limit page-primer raises it to, or `CAP_IPC_LOCK`. */
function memlockFinding({ facts }: DiagnoseContext): Finding[] {
  const m = facts.memlock;
  const limits = memlockLimits(m);
  const ulimit = `ulimit -l ${Math.ceil((m.needed + m.vmLck) / 1024)}`;
  if ((m.soft ?? Infinity) >= m.needed + m.vmLck) {
    return [{
      topic: "memlock",
      status: "ok",
      message: `${limits}: fits; CAP_IPC_LOCK ${m.capIpcLock ? "yes" : "no"}`,
    }];
  }
  if (m.capIpcLock) {
    return [{
      topic: "memlock",
      status: "note",
      message:
        `${limits}: the limit is below the need, but this process has CAP_IPC_LOCK (CapEff bit 14), so it does not apply. A process without it needs the limit raised before it starts`,
      command: ulimit,
    }];
  }
  const budget = lockBudget({
    needed: m.needed,
    alreadyLocked: m.vmLck,
    rlimit: { cur: m.soft ?? Infinity, max: m.hard ?? Infinity },
    capIpcLock: m.capIpcLock,
  });
  if (budget.fits) {
    return [{
      topic: "memlock",
      status: "ok",
      message:
        `${limits}: the soft limit is below the need; page-primer raises it to the hard limit itself. CAP_IPC_LOCK no`,
    }];
  }
  return [{
    topic: "memlock",
    status: "blocker",
    message:
      `${limits}: mlock(true) cannot lock it all (no CAP_IPC_LOCK). Raise the limit before the process starts (a shell needs privilege to raise the hard limit), or LimitMEMLOCK=infinity in a systemd unit, --ulimit memlock=-1 for docker, or setcap cap_ipc_lock+ep on the executable`,
    command: ulimit,
  }];
}

/** `vm.max_map_count` against the mappings a remap adds; nothing when it is unknown. */
function maxMapCountFinding(
  { facts, predictions }: DiagnoseContext,
): Finding[] {
  const { max, current } = facts.maps;
  if (max === null) return [];
  const mapsNeed = Math.max(...predictions.map((p) => p.mapsNeeded));
  const short = max - current < mapsNeed;
  return [{
    topic: "max-map-count",
    status: short ? "blocker" : "ok",
    message:
      `vm.max_map_count ${max}, ${current} mappings in use, a remap needs up to ${mapsNeed} more`,
    ...commandOf(
      short
        ? `sysctl -w vm.max_map_count=${current + mapsNeed + 1024}`
        : undefined,
    ),
  }];
}

/** What `remap(true)` would reach, or why it reaches nothing. */
function remapFinding({ predictions: [p] }: DiagnoseContext): Finding[] {
  if (p.unavailable !== undefined) {
    return [{
      topic: "remap",
      status: "blocker",
      message: `remap gets no 2 MiB pages: ${p.unavailable}`,
    }];
  }
  return [{
    topic: "remap",
    status: "ok",
    message: `remap(true) would use the ${p.backend} backend and put ${
      formatPercent(p.text.huge, p.text.bytes)
    } of the text and ${
      formatPercent(p.rodata.huge, p.rodata.bytes)
    } of the read-only data on 2 MiB pages`,
  }];
}

/** The calibration's verdict, when one was made. */
function calibrationFinding({ input }: DiagnoseContext): Finding[] {
  const cal = input.calibration;
  if (cal === undefined) return [];
  return [{
    topic: "calibration",
    status: cal.verdict === "pays"
      ? "ok"
      : cal.verdict === "loses"
      ? "advice"
      : "note",
    message: cal.verdict === "loses"
      ? `${cal.summary}. A remap is likely to slow such a workload on this machine: leave it off (the preload's default, PAGE_PRIMER=on, locks without remapping), or measure the workload itself`
      : cal.verdict === "pays"
      ? `${cal.summary}. To remap at start: PAGE_PRIMER=remap with the preload, or prime().remap(true) in code`
      : cal.summary,
  }];
}

/** The doctor's checks, in the order their findings are listed within a status. */
const FINDINGS: readonly FindingCheck[] = [
  kernelFinding,
  thpFinding,
  defragFinding,
  thpProcessFinding,
  shmemFinding,
  hugetlbFinding,
  hugetlbfsFinding,
  memlockFinding,
  maxMapCountFinding,
  remapFinding,
  calibrationFinding,
];

const STATUS_RANK: Record<FindingStatus, number> = {
  blocker: 0,
  advice: 1,
  note: 2,
  ok: 3,
};

/** Blockers first, then advice, notes, ok; in check order within each. */
function byStatus(findings: readonly Finding[]): Finding[] {
  return findings.map((f, i) => ({ f, i })).sort((a, b) =>
    STATUS_RANK[a.f.status] - STATUS_RANK[b.f.status] || a.i - b.i
  ).map((x) => x.f);
}

/**
 * Turns the facts and predictions into findings: what is as wanted, what
 * is off, and the command that enables it. Each finding comes from one
 * check of a table (`FINDINGS`); blockers first. Pure.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { diagnose, gatherDoctor } from "./doctor.ts";
 * const report = diagnose(gatherDoctor(libc()));
 * console.log(report.ok, report.findings.map((f) => f.topic));
 * ```
 */
export function diagnose(input: DoctorInput): DoctorReport {
  const { facts, smaps, ranges } = input;
  const predictions = (["aggressive", "conservative"] as const).map((align) =>
    predictCoverage({
      objects: input.objects,
      ranges,
      smaps,
      align,
      thp: facts.thp,
      pool: facts.hugetlb,
      shmemEnabled: facts.shmemEnabled,
    })
  );
  const routes = hugePageRoutes(
    { thp: facts.thp, shmemEnabled: facts.shmemEnabled, pool: facts.hugetlb },
    predictions[0].hugetlb.pagesNeeded,
  );
  const [thp, memfd, hugetlb] = routes;
  const context = {
    input,
    facts,
    predictions,
    routes: { thp, memfd, hugetlb },
  };
  const findings = FINDINGS.flatMap((check) => check(context));
  return {
    ok: !findings.some((f) => f.status === "blocker"),
    facts,
    now: {
      text: measureCoverage(smaps, ranges, "text"),
      rodata: measureCoverage(smaps, ranges, "rodata"),
    },
    predictions,
    routes,
    findings: byStatus(findings),
    ...(input.calibration !== undefined
      ? { calibration: input.calibration }
      : {}),
  };
}

/** Options of {@linkcode doctor}. */
export interface DoctorOptions {
  /**
   * Also measure whether 2 MiB code pages pay on this machine
   * (`calibrate()` of `./calibrate.ts`, about 1.5 s): `true` or its
   * options (e.g. `{ footprintPages }`). Default: no.
   */
  calibrate?: boolean | CalibrateOptions;
}

/**
 * Gathers and diagnoses in one call; with `calibrate`, measures 2 MiB
 * against 4 KiB code pages too.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { doctor, formatDoctor } from "./doctor.ts";
 * console.log(formatDoctor(doctor(libc())));
 * const withCalibration = doctor(libc(), { calibrate: { footprintPages: 800 } });
 * console.log(withCalibration.calibration?.verdict); // e.g. "loses"
 * ```
 */
export function doctor(c: Libc, options: DoctorOptions = {}): DoctorReport {
  const input = gatherDoctor(c);
  const o = options.calibrate;
  if (o === undefined || o === false) return diagnose(input);
  const calibration = calibrate(c, o === true ? {} : o);
  return diagnose({ ...input, calibration });
}

function cov(c: Coverage): string {
  return `${(c.huge / 2 ** 20).toFixed(1)} of ${
    (c.bytes / 2 ** 20).toFixed(1)
  } MiB (${formatPercent(c.huge, c.bytes)})`;
}

/**
 * Renders a doctor report as text: facts, the executable's layout, the
 * predicted coverage per strategy, then the findings with their commands.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { doctor, formatDoctor } from "./doctor.ts";
 * console.log(formatDoctor(doctor(libc())));
 * ```
 */
export function formatDoctor(report: DoctorReport): string {
  const f = report.facts;
  return [
    `page-primer doctor: ${f.runtime}, pid ${f.pid}, Linux ${f.kernel}`,
    "",
    factsTable(f),
    "",
    ...layoutSection(f),
    "",
    ...predictionSection(report),
    "",
    ...routesSection(report.routes),
    "",
    ...calibrationSection(report.calibration),
    ...findingsSection(report.findings),
    "",
    verdictLine(report),
  ].join("\n");
}

/** The facts, one row each. */
function factsTable(f: DoctorFacts): string {
  const pool = f.hugetlb;
  const m = f.memlock;
  return formatTable(["fact", "value"], [
    ["kernel", `${f.kernel} ${f.arch}`],
    ["THP enabled", f.thp.enabled],
    ["THP defrag", f.thp.defrag],
    [
      "THP for this process",
      f.thp.processDisabled
        ? "disabled (PR_GET_THP_DISABLE = 1)"
        : "allowed (PR_GET_THP_DISABLE = 0)",
    ],
    ["shmem THP (shmem_enabled)", f.shmemEnabled],
    [
      "hugetlb 2 MiB pool",
      pool.supported
        ? `${pool.total} total, ${pool.free} free, ${pool.reserved} reserved (vm.nr_hugepages = ${pool.total})`
        : "not supported",
    ],
    [
      "hugetlbfs mounted",
      pool.mounts.length ? pool.mounts.join(", ") : "no",
    ],
    [
      "RLIMIT_MEMLOCK",
      `${limitText(m.soft)} soft, ${limitText(m.hard)} hard; ${
        formatBytes(m.vmLck)
      } locked now`,
    ],
    ["mlock(true) needs", formatBytes(m.needed)],
    ["CAP_IPC_LOCK", m.capIpcLock ? "yes" : "no"],
    [
      "vm.max_map_count",
      `${f.maps.max ?? "unreadable"} (${f.maps.current} in use)`,
    ],
  ]);
}

/** The runtime executable's segments, and a footnote when it has further mappings. */
function layoutSection(f: DoctorFacts): string[] {
  const segments = f.executable.segments;
  const table = formatTable(
    ["seg", "perm", "kind", "vaddr", "offset", "MiB", "at"],
    segments.map((s) => [
      `${s.index}${s.origin === "alias" ? "*" : ""}`,
      s.perms,
      s.kind,
      s.vaddr === null ? "-" : `0x${s.vaddr.toString(16)}`,
      `0x${s.offset.toString(16)}`,
      (s.memsz / 2 ** 20).toFixed(1),
      `0x${s.start.toString(16)}`,
    ]),
    ["right", "left", "left", "right", "right", "right", "right"],
  );
  return [
    `runtime executable ${f.executable.path} (load bias 0x${
      f.executable.bias.toString(16)
    }):`,
    table,
    ...(segments.some((s) => s.origin === "alias")
      ? [
        "* a further mapping of the executable made by the runtime (V8's embedded builtins), not a LOAD segment",
      ]
      : []),
  ];
}

/** Coverage now, and as planned per strategy. */
function predictionSection(report: DoctorReport): string[] {
  const table = formatTable(
    [
      "align",
      "backend",
      "regions",
      "text on 2 MiB pages",
      "rodata on 2 MiB pages",
      "hugetlb pages",
    ],
    report.predictions.map((p) => [
      p.align,
      p.unavailable !== undefined ? "none" : p.backend,
      String(p.regions),
      cov(p.text),
      cov(p.rodata),
      String(p.hugetlb.pagesNeeded),
    ]),
    ["left", "left", "right", "right", "right", "right"],
  );
  return [
    `remap({ align }) in this ${report.facts.runtime} process, as planned (now: text ${
      cov(report.now.text)
    }, rodata ${cov(report.now.rodata)}):`,
    table,
  ];
}

/** One line per route to 2 MiB pages. */
function routesSection(routes: readonly HugePageRoute[]): string[] {
  return [
    "routes to 2 MiB pages for this process:",
    ...routes.map((r) =>
      `  ${r.backend.padEnd(7)} ${
        r.works ? "works" : r.command !== undefined ? "after a command" : "no"
      }: ${r.why}${r.command !== undefined ? `; $ ${r.command}` : ""}`
    ),
  ];
}

/** The calibration, indented, then a blank line; nothing when none was made. */
function calibrationSection(calibration: Calibration | undefined): string[] {
  if (calibration === undefined) return [];
  return [
    "2 MiB against 4 KiB code pages, measured in this process:",
    ...formatCalibration(calibration).split("\n").map((l) =>
      `  ${l}`.trimEnd()
    ),
    "",
  ];
}

/** Each finding with its command below it. */
function findingsSection(findings: readonly Finding[]): string[] {
  return [
    "findings:",
    ...findings.flatMap((x) => [
      `  ${x.status.padEnd(7)} ${x.message}`,
      ...(x.command !== undefined ? [`          $ ${x.command}`] : []),
    ]),
  ];
}

function verdictLine(report: DoctorReport): string {
  if (report.ok) return "verdict: ok: remap and mlock can work here";
  const blockers = report.findings.filter((x) => x.status === "blocker");
  return `verdict: not ok: ${
    blockers.map((x) => x.topic).join(", ")
  } (see above)`;
}
