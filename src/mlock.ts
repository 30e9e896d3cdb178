/**
 * Locking segments in memory with `mlock` / `mlock2(MLOCK_ONFAULT)`,
 * within `RLIMIT_MEMLOCK`.
 *
 * @module
 */

import { formatBytes } from "./sys/format.ts";
import {
  type Libc,
  MLOCK_ONFAULT,
  type Rlimit,
  RLIMIT_MEMLOCK,
  SyscallError,
} from "./sys/libc.ts";
import type { StepError } from "./sys/libc.ts";

/** What the lock budget allows, computed before any call. */
export interface LockBudget {
  /** Bytes the requested ranges need. */
  needed: number;
  /** Bytes already locked by this process (`VmLck`). */
  alreadyLocked: number;
  /** The soft limit to set first, when raising it (up to the hard limit) helps. */
  raiseTo?: number;
  /** True when the limit does not apply (CAP_IPC_LOCK) or is large enough. */
  fits: boolean;
  /** The soft limit that will be in force. */
  limit: number;
}

/**
 * Decides whether the soft `RLIMIT_MEMLOCK` must be raised for `needed`
 * more bytes. Pure.
 *
 * @example
 * ```ts
 * import { lockBudget } from "./mlock.ts";
 * import assert from "node:assert/strict";
 * const b = lockBudget({ needed: 64 << 20, alreadyLocked: 0, rlimit: { cur: 8 << 20, max: Infinity }, capIpcLock: false });
 * assert.deepEqual([b.raiseTo === 64 << 20, b.fits], [true, true]);
 * ```
 */
export function lockBudget(
  { needed, alreadyLocked, rlimit, capIpcLock }: {
    /** Bytes to lock. */
    needed: number;
    /** Bytes the process has locked already (`VmLck`). */
    alreadyLocked: number;
    /** `RLIMIT_MEMLOCK`. */
    rlimit: Rlimit;
    /** The process has `CAP_IPC_LOCK`, so the limit does not apply. */
    capIpcLock: boolean;
  },
): LockBudget {
  const want = needed + alreadyLocked;
  if (capIpcLock || rlimit.cur >= want) {
    return { needed, alreadyLocked, fits: true, limit: rlimit.cur };
  }
  if (rlimit.max > rlimit.cur) {
    const raiseTo = Math.min(rlimit.max, want);
    return {
      needed,
      alreadyLocked,
      raiseTo,
      fits: raiseTo >= want,
      limit: raiseTo,
    };
  }
  return { needed, alreadyLocked, fits: false, limit: rlimit.cur };
}

/**
 * The message for a segment that the memlock limit kept from being locked:
 * the limit, the bytes needed, and how to raise the limit.
 *
 * @example
 * ```ts
 * import { limitMessage } from "./mlock.ts";
 * import assert from "node:assert/strict";
 * assert.match(
 *   limitMessage(80 << 20, 8 << 20, 8 << 20),
 *   /^RLIMIT_MEMLOCK is 8\.0 MiB .* needs 80\.0 MiB .*`ulimit -l 81920`/,
 * );
 * ```
 */
export function limitMessage(
  needed: number,
  limit: number,
  hard: number,
): string {
  const lim = limit === Infinity ? "unlimited" : formatBytes(limit);
  const hardText = hard === Infinity ? "unlimited" : formatBytes(hard);
  const kib = Math.ceil(needed / 1024);
  return `RLIMIT_MEMLOCK is ${lim} (hard limit ${hardText}) but locking needs ${
    formatBytes(needed)
  } in all; raise it before starting the process: \`ulimit -l ${kib}\` (or \`ulimit -l unlimited\`) in the shell, \`LimitMEMLOCK=infinity\` in the systemd unit, \`--ulimit memlock=-1\` for docker, or grant CAP_IPC_LOCK`;
}

/** A range to lock. */
export interface LockRange {
  /** Page-aligned start. */
  start: number;
  /** Page-aligned end. */
  end: number;
}

/** Options of `mlock`. */
export interface MlockOptions {
  /**
   * Use `mlock2(MLOCK_ONFAULT)`: lock pages as they are touched instead of
   * populating now.
   *
   * @default {false}
   */
  onFault?: boolean;
}

/** Result of locking one range; `error` is absent on success. */
export interface LockResult {
  /** Milliseconds spent in the call. */
  ms: number;
  /** The failure, if any. */
  error?: StepError;
}

/** Result of {@linkcode lockRanges}. */
export interface LockRun {
  /** Per range, in the order given. */
  results: LockResult[];
  /** Notes for the outcome (limit raised, and so on). */
  warnings: string[];
}

/**
 * Locks each range; one failing does not stop the others. Raises the soft
 * memlock limit up to the hard limit first when that helps.
 *
 * @example
 * ```ts ignore
 * import { libc } from "./sys/libc.ts";
 * import { lockRanges } from "./mlock.ts";
 * lockRanges(libc(), [{ start: 0x1000, end: 0x2000 }], {
 *   status: { vmLck: 0, capIpcLock: true },
 * });
 * ```
 */
export function lockRanges(
  c: Libc,
  ranges: readonly LockRange[],
  { onFault = false, status }: MlockOptions & {
    /** This process's locked bytes and whether it has `CAP_IPC_LOCK` (`readStatus`). */
    status: { vmLck: number; capIpcLock: boolean };
  },
): LockRun {
  const warnings: string[] = [];
  const needed = ranges.reduce((n, r) => n + (r.end - r.start), 0);
  const rlimit = c.getrlimit(RLIMIT_MEMLOCK);
  const budget = lockBudget({
    needed,
    alreadyLocked: status.vmLck,
    rlimit,
    capIpcLock: status.capIpcLock,
  });
  let limit = rlimit.cur;
  if (budget.raiseTo !== undefined) {
    try {
      c.setrlimit(RLIMIT_MEMLOCK, { cur: budget.raiseTo, max: rlimit.max });
      limit = budget.raiseTo;
      warnings.push(
        `raised the soft RLIMIT_MEMLOCK from ${formatBytes(rlimit.cur)} to ${
          formatBytes(budget.raiseTo)
        }`,
      );
    } catch (e) {
      warnings.push(`could not raise RLIMIT_MEMLOCK: ${String(e)}`);
    }
  }
  const results: LockResult[] = [];
  for (const r of ranges) {
    const len = r.end - r.start;
    const t0 = performance.now();
    try {
      if (onFault) c.mlock2(r.start, len, MLOCK_ONFAULT);
      else c.mlock(r.start, len);
      results.push({ ms: performance.now() - t0 });
    } catch (e) {
      const ms = performance.now() - t0;
      if (!(e instanceof SyscallError)) throw e;
      const limited = !status.capIpcLock &&
        (e.code === "ENOMEM" || e.code === "EPERM" || e.code === "EAGAIN") &&
        !budget.fits;
      const step = onFault ? "mlock2" : "mlock";
      results.push({
        ms,
        error: {
          step,
          code: e.code,
          errno: e.errno,
          message: limited
            ? `${step} of ${formatBytes(len)} refused (${e.code}): ${
              limitMessage(needed + status.vmLck, limit, rlimit.max)
            }`
            : `${step} of ${formatBytes(len)} failed: ${e.message}`,
        },
      });
    }
  }
  return { results, warnings };
}
