/**
 * page-primer: prime the memory pages of the Deno or Bun executable that is
 * running this program. Lock its ELF segments in memory (`mlock`) or
 * prefault them (`populate`) so code never waits on a major page fault, and
 * report what really happened, measured from `/proc/self/smaps`.
 *
 * Deno needs `--allow-ffi` and nothing else; Bun needs no flag.
 *
 * ```ts
 * import { prime } from "jsr:@x/page-primer";
 * const out = prime().mlock(true).run();
 * out.log();
 * ```
 *
 * @module
 */

export {
  clearShared,
  type MlockOptions,
  type ObjectSelector,
  type PopulateOptions,
  prime,
  PrimeError,
  Primer,
  type RemapOptions,
  restore,
  type ShareOptions,
} from "./src/prime.ts";
export type { Backend, HugetlbPool } from "./src/remap/backend.ts";
export type {
  Coverage,
  RegionReport,
  RemapReport,
  RestoreReport,
  ShareReport,
} from "./src/remap/report.ts";
export type { ThpStatus } from "./src/sys/thp.ts";
export type { PerfMapObject, PerfMapReport } from "./src/remap/perf_map.ts";
export type { Alignment, Gap, SkippedRegion } from "./src/remap/plan.ts";
export {
  type Durations,
  type LogOptions,
  PrimeOutcome,
  type PrimeOutcomeData,
  type SegmentAction,
  type SegmentReport,
  type StepError,
  type Totals,
} from "./src/outcome.ts";
export type { SegmentKind } from "./src/sys/segments.ts";
