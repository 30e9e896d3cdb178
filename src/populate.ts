/**
 * Prefaulting segments without pinning them: `MADV_POPULATE_READ` on Linux
 * 5.14+, else `MADV_WILLNEED` and a read of one byte per page.
 *
 * @module
 */

import { formatBytes } from "./sys/format.ts";
import { memory } from "./sys/ffi.ts";
import {
  type Libc,
  MADV_POPULATE_READ,
  MADV_WILLNEED,
  SyscallError,
} from "./sys/libc.ts";
import type { LockRange } from "./mlock.ts";
import type { StepError } from "./sys/libc.ts";

/**
 * Options of `Primer.populate`. Reserved for future use; no keys yet, so
 * nothing has a default (`populate(true)` is `populate({})`).
 *
 * @example
 * ```ts
 * import type { PopulateOptions } from "./populate.ts";
 * const none: PopulateOptions = {};
 * ```
 */
export type PopulateOptions = Record<never, never>;

/** How a range was populated. */
export type PopulateMethod = "populate-read" | "willneed-touch";

/** Result of populating one range; `error` is absent on success. */
export interface PopulateResult {
  /** Milliseconds spent. */
  ms: number;
  /** The method used. */
  method: PopulateMethod;
  /** The failure, if any. */
  error?: StepError;
}

/** Options of {@linkcode populateRanges}. */
export interface PopulateRangesOptions {
  /** The system page size (the fallback reads one byte per page). */
  pageSize: number;
  /** Skip `MADV_POPULATE_READ` and use the fallback (tests use this). */
  forceFallback?: boolean;
}

function touch(start: number, end: number, pageSize: number): number {
  const view = memory(start, end - start);
  let sum = 0;
  for (let i = 0; i < view.length; i += pageSize) sum += view[i];
  return sum;
}

/**
 * Prefaults each range. The first `EINVAL` from `MADV_POPULATE_READ` (a
 * kernel older than 5.14) switches the rest to the fallback.
 *
 * @example
 * ```ts ignore
 * import { libc } from "./sys/libc.ts";
 * import { populateRanges } from "./populate.ts";
 * populateRanges(libc(), [{ start: 0x1000, end: 0x2000 }], { pageSize: 4096 });
 * ```
 */
export function populateRanges(
  c: Libc,
  ranges: readonly LockRange[],
  options: PopulateRangesOptions,
): { results: PopulateResult[]; warnings: string[] } {
  const { pageSize } = options;
  const warnings: string[] = [];
  let fallback = options.forceFallback === true;
  const results: PopulateResult[] = [];
  for (const r of ranges) {
    const len = r.end - r.start;
    const t0 = performance.now();
    if (!fallback) {
      try {
        c.madvise(r.start, len, MADV_POPULATE_READ);
        results.push({ ms: performance.now() - t0, method: "populate-read" });
        continue;
      } catch (e) {
        if (!(e instanceof SyscallError)) throw e;
        if (e.code !== "EINVAL") {
          results.push({
            ms: performance.now() - t0,
            method: "populate-read",
            error: {
              step: "madvise(MADV_POPULATE_READ)",
              code: e.code,
              errno: e.errno,
              message: `prefaulting ${formatBytes(len)} failed: ${e.message}`,
            },
          });
          continue;
        }
        fallback = true;
        warnings.push(
          "MADV_POPULATE_READ is not supported (Linux < 5.14): used MADV_WILLNEED and read one byte per page",
        );
      }
    }
    try {
      c.madvise(r.start, len, MADV_WILLNEED);
    } catch (e) {
      if (!(e instanceof SyscallError)) throw e;
      // WILLNEED is only a hint; the touch below does the work.
    }
    touch(r.start, r.end, pageSize);
    results.push({ ms: performance.now() - t0, method: "willneed-touch" });
  }
  return { results, warnings };
}
