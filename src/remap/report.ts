/**
 * The options and report types of a remap and a restore, and the coverage
 * figures read back from smaps.
 *
 * @module
 */

import type { StepError } from "../sys/libc.ts";
import { hugeBytes, type SmapsVma, sumIn } from "../sys/maps.ts";
import type { SegmentRange } from "../sys/segments.ts";
import type { ThpStatus } from "../sys/thp.ts";
import type { Backend, HugetlbPool } from "./backend.ts";
import type { PerfMapReport } from "./perf_map.ts";
import type { Alignment, SkippedRegion } from "./plan.ts";
import type { ShareOptions } from "./share.ts";

/** Options of `remap`. */
export interface RemapOptions {
  /**
   * `"aggressive"`: grow into free neighbouring space; `"conservative"`:
   * inward only.
   *
   * @default {"aggressive"}
   */
  align?: Alignment;
  /**
   * `"2m"`: huge pages; `"4k"`: an anonymous copy on small pages (for A/B
   * benchmarks).
   *
   * @default {"2m"}
   */
  pageSize?: "2m" | "4k";
  /**
   * `"auto"`: the reserved hugetlb pool when its free pages cover the plan,
   * else transparent huge pages, else a memfd when shmem THP is on;
   * `"thp"`, `"hugetlb"` or `"memfd"` force one.
   *
   * @default {"auto"}
   */
  backend?: "auto" | Backend;
  /**
   * Share one copy among the processes of this user running the same
   * executable (same build-id and load address modulo 2 MiB): the copy is a
   * file in an owner-only tmpfs directory, checked before it is mapped.
   * Implies the memfd (shmem) backend. `true` or `{ dir }`.
   *
   * @default {false}
   */
  share?: boolean | ShareOptions;
  /**
   * `true`: after the remap, append the functions of the remapped code to
   * `/tmp/perf-<pid>.map` so `perf` can name them (timed in
   * `durations.perfMapMs`). The file stays after the process exits; delete
   * it when done. Each range is written once per process, however often it
   * is remapped. Preload: `PAGE_PRIMER_PERF_MAP=1`.
   *
   * @default {false}
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
  /** Where the pages came from (`"4k"` for a 4 KiB copy, `pageSize: "4k"`). */
  backend: Backend | "4k";
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

/**
 * A report of a restore that did nothing.
 *
 * @example
 * ```ts
 * import { emptyRestoreReport } from "./report.ts";
 * import assert from "node:assert/strict";
 * assert.equal(emptyRestoreReport().restored, 0);
 * ```
 */
export function emptyRestoreReport(): RestoreReport {
  return { restored: 0, copied: 0, bytes: 0, failed: [], ms: 0 };
}

/**
 * Bytes of the LOAD ranges of `kind` and how many of them are on 2 MiB pages
 * in `smaps` (`min(size, huge)` per range): the coverage figures a remap
 * reports, and `doctor` shows as "now".
 *
 * @example
 * ```ts
 * import { measureCoverage } from "./report.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(measureCoverage([], [], "text"), { bytes: 0, huge: 0 });
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
