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
import { mainExecutable, readSmaps, readStatus } from "../sys/objects.ts";
import {
  type Alignment,
  plannedCoverage,
  type RemapPlan,
} from "../remap/plan.ts";
import {
  type Backend,
  decideRemap,
  shmemEnabled,
  shmemThpOn,
} from "../remap/backend.ts";
import { MAPS_PER_REGION } from "../remap/execute.ts";
import { type Coverage, measureCoverage } from "../remap/report.ts";
import { poolCommand, readPoolState } from "../sys/hugetlb.ts";
import {
  aliasRanges,
  type LoadedObject,
  permsOf,
  type SegmentKind,
  segmentKind,
  type SegmentRange,
  segmentRanges,
} from "../sys/segments.ts";
import { kernelVersion, type ThpStatus, thpStatus } from "../sys/thp.ts";
import {
  calibrate,
  type CalibrateOptions,
  type Calibration,
  formatCalibration,
} from "./calibrate.ts";

const THP_DIR = "/sys/kernel/mm/transparent_hugepage";
const THP_ON = `echo madvise > ${THP_DIR}/enabled`;
const SHMEM_ON = `echo advise > ${THP_DIR}/shmem_enabled`;

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
  /** `vm.max_map_count` (`null` when unreadable) and this process's current number of mappings. */
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
 * console.log(parseHugetlbMounts("hugetlbfs /dev/hugepages hugetlbfs rw,pagesize=2M 0 0\n")); // ["/dev/hugepages"]
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
 * ```ts no-eval
 * import { libc } from "../sys/libc.ts";
 * import { gatherDoctor } from "./doctor.ts";
 * console.log(gatherDoctor(libc()).facts.thp.enabled);
 * ```
 */
export function gatherDoctor(c: Libc): DoctorInput {
  const info = runtimeInfo();
  const pageSize = c.pageSize();
  const smaps = readSmaps(c);
  const exe = mainExecutable(c);
  const loads = segmentRanges(exe, pageSize);
  const aliases = aliasRanges(exe, loads, smaps);
  const ranges = [...loads, ...aliases];
  const pool = readPoolState(c);
  const rlimit: Rlimit = c.getrlimit(RLIMIT_MEMLOCK);
  const status = readStatus(c);
  const maxMapText = c.tryReadText("/proc/sys/vm/max_map_count");
  const maxMap = maxMapText === undefined
    ? undefined
    : parseInt(maxMapText, 10) || 0;
  const size = (r: SegmentRange) => r.end - r.start;
  const loadBytes = loads.reduce((n, r) => n + size(r), 0);
  const aliasBytes = aliases.reduce((n, r) => n + size(r), 0);
  const layout: LayoutSegment[] = [
    ...exe.segments.filter((s) => s.memsz > 0).map((s) => {
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
    }),
    ...aliases.map((r) => {
      const v = smaps.find((m) => m.start === r.start);
      return {
        index: r.index,
        origin: "alias" as const,
        vaddr: null,
        memsz: size(r),
        filesz: size(r),
        offset: v?.offset ?? 0,
        perms: r.perms,
        kind: r.kind,
        start: r.start,
        end: r.end,
      };
    }),
  ];
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
    memlock: {
      soft: nullIfInfinite(rlimit.cur),
      hard: nullIfInfinite(rlimit.max),
      vmLck: status.vmLck,
      capIpcLock: status.capIpcLock,
      needed: loadBytes + aliasBytes,
      loadBytes,
      aliasBytes,
    },
    maps: { max: maxMap ?? null, current: smaps.length },
    executable: { path: exe.path, bias: exe.bias, segments: layout },
  };
  return { facts, smaps, objects: [exe], ranges };
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
 * const p = predictCoverage({
 *   objects: [], ranges: [], smaps: [], align: "aggressive",
 *   thp: { usable: true }, pool: { total: 0, available: 0 }, shmemEnabled: "never",
 * });
 * console.log(p.backend, p.text); // "thp" { bytes: 0, huge: 0 }
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
 * const routes = hugePageRoutes({
 *   thp: thpVerdict("always [madvise] never", "madvise", true, "6.18.0"),
 *   shmemEnabled: "advise",
 *   pool: { supported: true, total: 0, available: 0 },
 * }, 44);
 * console.log(routes.map((r) => r.works)); // [false, false, false]
 * console.log(routes[2].command); // "sysctl -w vm.nr_hugepages=44"
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
  const { thp, shmemEnabled: shmem, pool } = facts;
  const disabled =
    "THP is disabled for this process (PR_SET_THP_DISABLE): the kernel maps neither anonymous nor shmem memory of it on 2 MiB pages";
  const thpRoute: HugePageRoute = thp.usable
    ? {
      backend: "thp",
      works: true,
      why: thp.reason ?? `THP enabled=${thp.enabled}`,
    }
    : {
      backend: "thp",
      works: false,
      why: thp.processDisabled ? disabled : thp.reason ?? "THP unusable",
      ...(!thp.processDisabled && thp.enabled === "never"
        ? { command: THP_ON }
        : {}),
    };
  let memfd: HugePageRoute;
  if (thp.processDisabled) {
    memfd = { backend: "memfd", works: false, why: disabled };
  } else if (thp.enabled === "unavailable" || shmem === "unavailable") {
    memfd = {
      backend: "memfd",
      works: false,
      why: "this kernel has no shmem transparent huge pages",
    };
  } else if (shmemThpOn(shmem)) {
    memfd = {
      backend: "memfd",
      works: true,
      why: `shmem_enabled=${shmem}: memfd copies get 2 MiB pages at fault time`,
    };
  } else if (shmem !== "deny" && thp.collapse) {
    memfd = {
      backend: "memfd",
      works: true,
      why:
        `shmem_enabled=${shmem}: memfd copies get 2 MiB pages through MADV_COLLAPSE`,
    };
  } else {
    memfd = {
      backend: "memfd",
      works: false,
      why: `shmem_enabled=${shmem}${
        shmem === "deny"
          ? " forbids shmem huge pages, MADV_COLLAPSE too"
          : " and no MADV_COLLAPSE (Linux < 6.1)"
      }`,
      command: SHMEM_ON,
    };
  }
  let hugetlb: HugePageRoute;
  if (!pool.supported) {
    hugetlb = {
      backend: "hugetlb",
      works: false,
      why: "no 2 MiB hugetlb pool in this kernel (CONFIG_HUGETLBFS)",
    };
  } else if (pagesNeeded > 0 && pool.available >= pagesNeeded) {
    hugetlb = {
      backend: "hugetlb",
      works: true,
      why:
        `the pool has ${pool.available} page(s) available, the remap needs ${pagesNeeded}`,
    };
  } else {
    hugetlb = {
      backend: "hugetlb",
      works: false,
      why:
        `the pool has ${pool.available} page(s) available, the remap needs ${pagesNeeded}`,
      command: poolCommand(pool, pagesNeeded),
    };
  }
  return [thpRoute, memfd, hugetlb];
}

/**
 * The backends a doctor report recommends: those that give the process
 * 2 MiB pages now or after their command.
 *
 * @example
 * ```ts no-eval
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
 * Turns the facts and predictions into findings: what is as wanted, what
 * is off, and the command that enables it. Pure.
 *
 * @example
 * ```ts no-eval
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
  const findings: Finding[] = [];
  const add = (
    topic: string,
    status: FindingStatus,
    message: string,
    command?: string,
  ) =>
    findings.push({
      topic,
      status,
      message,
      ...(command !== undefined ? { command } : {}),
    });
  const thp = facts.thp;
  const routes = hugePageRoutes(
    { thp, shmemEnabled: facts.shmemEnabled, pool: facts.hugetlb },
    predictions[0].hugetlb.pagesNeeded,
  );
  const [thpRoute, memfdRoute, hugetlbRoute] = routes;
  const [maj, min] = kernelVersion(facts.kernel);
  const atLeast = (a: number, b: number) => maj > a || (maj === a && min >= b);
  add(
    "kernel",
    atLeast(6, 1) ? "ok" : "advice",
    `Linux ${facts.kernel}: MADV_COLLAPSE (6.1+) ${
      atLeast(6, 1) ? "available" : "missing"
    }, MADV_POPULATE_READ (5.14+) ${
      atLeast(5, 14)
        ? "available"
        : "missing (populate falls back to a read per page)"
    }`,
  );
  if (thp.enabled === "unavailable") {
    add(
      "thp",
      "advice",
      "no transparent huge pages in this kernel (CONFIG_TRANSPARENT_HUGEPAGE): only the hugetlb backend can give 2 MiB pages",
    );
  } else if (thp.enabled === "never") {
    add(
      "thp",
      "advice",
      `THP enabled=never: ${
        thp.collapse
          ? "remap still gets huge pages through MADV_COLLAPSE, more slowly"
          : "this kernel has no MADV_COLLAPSE, so the THP backend gets no huge pages"
      }`,
      THP_ON,
    );
  } else if (thp.processDisabled) {
    add(
      "thp",
      "note",
      `THP enabled=${thp.enabled} system-wide, but disabled for this process (see thp-process)`,
    );
  } else {
    add(
      "thp",
      "ok",
      `THP enabled=${thp.enabled}: remap's copies ask for huge pages with MADV_HUGEPAGE${
        thp.enabled === "madvise" ? " (only madvised memory gets them)" : ""
      }`,
    );
  }
  if (thp.defrag !== "unavailable" && !thp.processDisabled) {
    const good = ["always", "madvise", "defer+madvise"].includes(thp.defrag);
    add(
      "thp-defrag",
      good ? "ok" : "advice",
      `THP defrag=${thp.defrag}: ${
        good
          ? "a madvised fault compacts memory to find a huge page"
          : "a madvised fault does not wait for compaction, so copies may land on 4 KiB pages when memory is fragmented"
      }`,
      good ? undefined : `echo madvise > ${THP_DIR}/defrag`,
    );
  }
  add(
    "thp-process",
    thp.processDisabled ? "advice" : "ok",
    thp.processDisabled
      ? `PR_GET_THP_DISABLE = 1: THP is off for this whole process (set by the runtime or a parent; inherited across fork and exec), and so are 2 MiB shmem mappings: the thp and memfd backends and share: true get 4 KiB pages here. Only the hugetlb pool gives this process 2 MiB pages${
        hugetlbRoute.works
          ? " (it covers the remap)"
          : hugetlbRoute.command
          ? ""
          : `, and ${hugetlbRoute.why}`
      }; or start the process from a parent that has not set PR_SET_THP_DISABLE`
      : "PR_GET_THP_DISABLE = 0: THP is allowed for this process",
    thp.processDisabled ? hugetlbRoute.command : undefined,
  );
  const shmemOn = shmemThpOn(facts.shmemEnabled);
  if (thp.processDisabled) {
    add(
      "shmem",
      "note",
      `shmem THP shmem_enabled=${facts.shmemEnabled}: does not apply to this process (THP is disabled for it, see thp-process)`,
    );
  } else {
    add(
      "shmem",
      shmemOn ? "ok" : "advice",
      shmemOn
        ? `shmem THP shmem_enabled=${facts.shmemEnabled}: the memfd backend and share: true get 2 MiB pages at fault time`
        : `shmem THP shmem_enabled=${facts.shmemEnabled}: the memfd backend and share: true ${
          memfdRoute.works
            ? "get 2 MiB pages only through MADV_COLLAPSE"
            : `get no 2 MiB pages (${memfdRoute.why})`
        }, and backend "auto" does not fall back to a memfd when THP is unusable`,
      shmemOn ? undefined : SHMEM_ON,
    );
  }
  const pool = facts.hugetlb;
  const need = predictions[0].hugetlb.pagesNeeded;
  if (!pool.supported) {
    add(
      "hugetlb",
      "note",
      "no 2 MiB hugetlb pool in this kernel (CONFIG_HUGETLBFS): the hugetlb backend is not possible",
    );
  } else if (hugetlbRoute.works) {
    add(
      "hugetlb",
      "ok",
      `hugetlb pool: ${pool.total} page(s), ${pool.available} available, the remap needs ${need}: backend "auto" uses it (guaranteed pages)`,
    );
  } else {
    add(
      "hugetlb",
      "advice",
      `${
        pool.total === 0
          ? "no hugetlb pool (vm.nr_hugepages = 0)"
          : `hugetlb pool: ${pool.total} page(s), ${pool.available} available`
      }: the hugetlb backend (guaranteed 2 MiB pages, reserved up front) needs ${need} page(s) (${
        formatBytes(need * 2 * 1024 * 1024)
      }) for this runtime${
        thpRoute.works || memfdRoute.works
          ? ""
          : "; it is the only route to 2 MiB pages for this process"
      }`,
      hugetlbRoute.command,
    );
  }
  add(
    "hugetlbfs",
    "note",
    pool.mounts.length
      ? `hugetlbfs mounted at ${pool.mounts.join(", ")}`
      : "hugetlbfs is not mounted; page-primer does not need it (it maps the pool with MAP_HUGETLB). For programs that do: mount -t hugetlbfs none /dev/hugepages",
  );
  const m = facts.memlock;
  const budget = lockBudget(m.needed, m.vmLck, {
    cur: m.soft ?? Infinity,
    max: m.hard ?? Infinity,
  }, m.capIpcLock);
  const kib = Math.ceil((m.needed + m.vmLck) / 1024);
  const limits = `RLIMIT_MEMLOCK ${limitText(m.soft)} soft, ${
    limitText(m.hard)
  } hard; mlock(true) needs ${formatBytes(m.needed)} (LOAD segments ${
    formatBytes(m.loadBytes)
  }${m.aliasBytes ? ` + further mappings ${formatBytes(m.aliasBytes)}` : ""})`;
  const ulimit = `ulimit -l ${kib}`;
  if ((m.soft ?? Infinity) >= m.needed + m.vmLck) {
    add(
      "memlock",
      "ok",
      `${limits}: fits; CAP_IPC_LOCK ${m.capIpcLock ? "yes" : "no"}`,
    );
  } else if (m.capIpcLock) {
    add(
      "memlock",
      "note",
      `${limits}: the limit is below the need, but this process has CAP_IPC_LOCK (CapEff bit 14), so it does not apply. A process without it needs the limit raised before it starts`,
      ulimit,
    );
  } else if (budget.fits) {
    add(
      "memlock",
      "ok",
      `${limits}: the soft limit is below the need; page-primer raises it to the hard limit itself. CAP_IPC_LOCK no`,
    );
  } else {
    add(
      "memlock",
      "blocker",
      `${limits}: mlock(true) cannot lock it all (no CAP_IPC_LOCK). Raise the limit before the process starts (a shell needs privilege to raise the hard limit), or LimitMEMLOCK=infinity in a systemd unit, --ulimit memlock=-1 for docker, or setcap cap_ipc_lock+ep on the executable`,
      ulimit,
    );
  }
  const mapsNeed = Math.max(...predictions.map((p) => p.mapsNeeded));
  if (facts.maps.max !== null) {
    const headroom = facts.maps.max - facts.maps.current;
    add(
      "max-map-count",
      headroom < mapsNeed ? "blocker" : "ok",
      `vm.max_map_count ${facts.maps.max}, ${facts.maps.current} mappings in use, a remap needs up to ${mapsNeed} more`,
      headroom < mapsNeed
        ? `sysctl -w vm.max_map_count=${facts.maps.current + mapsNeed + 1024}`
        : undefined,
    );
  }
  const p = predictions[0];
  if (p.unavailable !== undefined) {
    add("remap", "blocker", `remap gets no 2 MiB pages: ${p.unavailable}`);
  } else {
    add(
      "remap",
      "ok",
      `remap(true) would use the ${p.backend} backend and put ${
        formatPercent(p.text.huge, p.text.bytes)
      } of the text and ${
        formatPercent(p.rodata.huge, p.rodata.bytes)
      } of the read-only data on 2 MiB pages`,
    );
  }
  if (input.calibration !== undefined) {
    const cal = input.calibration;
    add(
      "calibration",
      cal.verdict === "pays"
        ? "ok"
        : cal.verdict === "loses"
        ? "advice"
        : "note",
      cal.verdict === "loses"
        ? `${cal.summary}. A remap is likely to slow such a workload on this machine: leave it off, or measure the workload itself`
        : cal.summary,
    );
  }
  const rank: Record<FindingStatus, number> = {
    blocker: 0,
    advice: 1,
    note: 2,
    ok: 3,
  };
  const ordered = findings.map((f, i) => ({ f, i })).sort((a, b) =>
    rank[a.f.status] - rank[b.f.status] || a.i - b.i
  ).map((x) => x.f);
  return {
    ok: !findings.some((f) => f.status === "blocker"),
    facts,
    now: {
      text: measureCoverage(smaps, ranges, "text"),
      rodata: measureCoverage(smaps, ranges, "rodata"),
    },
    predictions,
    routes,
    findings: ordered,
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
 * ```ts no-eval
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
 * ```ts no-eval
 * import { libc } from "../sys/libc.ts";
 * import { doctor, formatDoctor } from "./doctor.ts";
 * console.log(formatDoctor(doctor(libc())));
 * ```
 */
export function formatDoctor(report: DoctorReport): string {
  const f = report.facts;
  const pool = f.hugetlb;
  const m = f.memlock;
  const facts = formatTable(["fact", "value"], [
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
  const layout = formatTable(
    ["seg", "perm", "kind", "vaddr", "offset", "MiB", "at"],
    f.executable.segments.map((s) => [
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
  const pred = formatTable(
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
  const lines = [
    `page-primer doctor: ${f.runtime}, pid ${f.pid}, Linux ${f.kernel}`,
    "",
    facts,
    "",
    `runtime executable ${f.executable.path} (load bias 0x${
      f.executable.bias.toString(16)
    }):`,
    layout,
  ];
  if (f.executable.segments.some((s) => s.origin === "alias")) {
    lines.push(
      "* a further mapping of the executable made by the runtime (V8's embedded builtins), not a LOAD segment",
    );
  }
  lines.push(
    "",
    `remap({ align }) in this ${f.runtime} process, as planned (now: text ${
      cov(report.now.text)
    }, rodata ${cov(report.now.rodata)}):`,
    pred,
    "",
    "routes to 2 MiB pages for this process:",
    ...report.routes.map((r) =>
      `  ${r.backend.padEnd(7)} ${
        r.works ? "works" : r.command !== undefined ? "after a command" : "no"
      }: ${r.why}${r.command !== undefined ? `; $ ${r.command}` : ""}`
    ),
    "",
  );
  if (report.calibration !== undefined) {
    lines.push(
      "2 MiB against 4 KiB code pages, measured in this process:",
      ...formatCalibration(report.calibration).split("\n").map((l) =>
        `  ${l}`.trimEnd()
      ),
      "",
    );
  }
  lines.push("findings:");
  for (const x of report.findings) {
    lines.push(`  ${x.status.padEnd(7)} ${x.message}`);
    if (x.command !== undefined) lines.push(`          $ ${x.command}`);
  }
  lines.push(
    "",
    report.ok
      ? "verdict: ok: remap and mlock can work here"
      : `verdict: not ok: ${
        report.findings.filter((x) => x.status === "blocker").map((x) =>
          x.topic
        ).join(", ")
      } (see above)`,
  );
  return lines.join("\n");
}
