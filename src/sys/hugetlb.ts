/**
 * The 2 MiB page size, the 2 MiB hugetlb pool as sysfs shows it, and the
 * command that grows it.
 *
 * @module
 */

import type { Libc } from "./libc.ts";

/**
 * Size of the huge pages page-primer uses: 2 MiB, the PMD size with 4 KiB
 * base pages on x86_64 and aarch64 (transparent huge pages and the default
 * hugetlb pool alike). The one definition in TypeScript; the trampoline's C
 * has its own (`HUGE_SIZE`).
 *
 * @example
 * ```ts
 * import { HUGE_PAGE } from "./hugetlb.ts";
 * import assert from "node:assert/strict";
 * assert.equal(HUGE_PAGE, 2 * 1024 * 1024);
 * ```
 */
export const HUGE_PAGE: number = 2 * 1024 * 1024;

const POOL_DIR = "/sys/kernel/mm/hugepages/hugepages-2048kB";

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
 * ```ts ignore
 * import { libc } from "./libc.ts";
 * import { readPoolState } from "./hugetlb.ts";
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
 * import { poolCommand } from "./hugetlb.ts";
 * import assert from "node:assert/strict";
 * assert.equal(poolCommand({ total: 10, available: 4 }, 44), "sysctl -w vm.nr_hugepages=50");
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
