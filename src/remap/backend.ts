/**
 * Where the 2 MiB pages come from: the backends (THP, hugetlb, memfd, and
 * the 4 KiB copy), how one is picked for a plan, and what each does
 * differently (one table of operations per backend).
 *
 * @module
 */

import { poolCommand } from "../sys/hugetlb.ts";
import type { Libc } from "../sys/libc.ts";
import type { SmapsVma } from "../sys/maps.ts";
import type { LoadedObject, SegmentRange } from "../sys/segments.ts";
import { selected, THP_DIR } from "../sys/thp.ts";
import {
  type Alignment,
  forHugetlb,
  hugePagesNeeded,
  planRemap,
  type RemapPlan,
} from "./plan.ts";
import { isTrampolinePath } from "./trampoline.ts";

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
 * What a backend does differently, one row per backend (as the kernel's mm
 * selftests keep a table of operations per memory type): the code that
 * executes a remap asks the row, never compares the backend's name.
 */
export interface BackendOps {
  /** The copy is staged on pages of the reserved hugetlb pool. */
  hugetlb: boolean;
  /** The copy lives in a memfd (shmem) rather than anonymous memory. */
  memfd: boolean;
  /**
   * The copy is on 4 KiB pages (`remap({ pageSize: "4k" })`): no collapse,
   * and no huge-page figure is expected. The trampoline's record flag for it
   * is `PP_F_4K` (the swap record's `page4k`).
   */
  page4k: boolean;
  /** The memory cgroup is charged for the copy (hugetlb pages are not). */
  chargesMemcg: boolean;
  /** The copy is named with `PR_SET_VMA_ANON_NAME` (a memfd is named by `memfd_create`). */
  named: boolean;
}

/**
 * The operations of each backend, `"4k"` being the 4 KiB copy
 * (`remap({ pageSize: "4k" })`).
 *
 * @example
 * ```ts
 * import { BACKEND_OPS } from "./backend.ts";
 * import assert from "node:assert/strict";
 * assert.equal(BACKEND_OPS.hugetlb.chargesMemcg, false);
 * ```
 */
export const BACKEND_OPS: Readonly<Record<Backend | "4k", BackendOps>> = {
  thp: {
    hugetlb: false,
    memfd: false,
    page4k: false,
    chargesMemcg: true,
    named: true,
  },
  hugetlb: {
    hugetlb: true,
    memfd: false,
    page4k: false,
    chargesMemcg: false,
    named: true,
  },
  memfd: {
    hugetlb: false,
    memfd: true,
    page4k: false,
    chargesMemcg: true,
    named: false,
  },
  "4k": {
    hugetlb: false,
    memfd: false,
    page4k: true,
    chargesMemcg: true,
    named: true,
  },
};

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
 * import { chooseBackend } from "./backend.ts";
 * import assert from "node:assert/strict";
 * const pool = { total: 0, available: 0, needed: 44, command: "" };
 * assert.equal(chooseBackend("auto", pool, { usable: true }).backend, "thp");
 * ```
 */
export function chooseBackend(
  wanted: "auto" | Backend,
  pool: HugetlbPool,
  thp: {
    usable: boolean;
    reason?: string;
    processDisabled?: boolean;
    /** Shmem THP is on (`shmemThpOn`): memfd copies get 2 MiB pages. */
    shmemThp?: boolean;
  },
): { backend: Backend } | { backend: Backend; unavailable: string } {
  const shmemThp = thp.shmemThp ?? false;
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

/** The sysfs setting of transparent huge pages for shmem (memfd copies). */
export const SHMEM_ENABLED = `${THP_DIR}/shmem_enabled`;

/**
 * True when a `shmem_enabled` setting gives memfd copies 2 MiB pages.
 *
 * @example
 * ```ts
 * import { shmemThpOn } from "./backend.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual([shmemThpOn("advise"), shmemThpOn("never")], [true, false]);
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
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { shmemEnabled } from "./backend.ts";
 * console.log(shmemEnabled(libc()));
 * ```
 */
export function shmemEnabled(c: Libc): string {
  const text = c.tryReadText(SHMEM_ENABLED);
  return text === undefined ? "unavailable" : selected(text);
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
export interface RemapDecision<B extends string = Backend | "4k"> {
  /** The plan on THP (or memfd, or 4 KiB) alignment rules. */
  thpPlan: RemapPlan;
  /** The same plan for hugetlb (2 MiB-aligned regions only). */
  hugetlbPlan: RemapPlan;
  /** The pool, with the pages the hugetlb plan needs. */
  pool: HugetlbPool;
  /** The backend, `"4k"` for a 4 KiB copy. */
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
 * import { decideRemap } from "./backend.ts";
 * import assert from "node:assert/strict";
 * const d = decideRemap({
 *   objects: [], ranges: [], smaps: [], align: "aggressive", wanted: "auto",
 *   pool: { total: 0, available: 0 }, thp: { usable: true }, shmemEnabled: "never",
 * });
 * assert.deepEqual([d.backend, d.plan.regions.length], ["thp", 0]);
 * ```
 */
export function decideRemap(
  input: DecideInput & { wanted: "auto" | Backend },
): RemapDecision<Backend>;

export function decideRemap(
  input: DecideInput & { wanted: "auto" | Backend | "4k" },
): RemapDecision;

export function decideRemap(
  input: DecideInput & { wanted: "auto" | Backend | "4k" },
): RemapDecision {
  const eligible = input.objects.filter((o) =>
    o.path.startsWith("/") && !o.path.endsWith(" (deleted)") &&
    !isTrampolinePath(o.path)
  );
  const thpPlan = planRemap({
    objects: eligible,
    ranges: input.ranges,
    vmas: input.smaps,
    align: input.align,
    ours: input.ours ?? [],
  });
  const hugetlbPlan = forHugetlb(thpPlan);
  const needed = hugePagesNeeded(hugetlbPlan);
  const pool: HugetlbPool = {
    total: input.pool.total,
    available: input.pool.available,
    needed,
    command: poolCommand(input.pool, needed),
  };
  if (input.wanted === "4k") {
    return { thpPlan, hugetlbPlan, pool, backend: "4k", plan: thpPlan };
  }
  const choice = chooseBackend(input.wanted, pool, {
    ...input.thp,
    shmemThp: shmemThpOn(input.shmemEnabled),
  });
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
