/**
 * Whether this process can get transparent huge pages, and if not, why and
 * what to change.
 *
 * @module
 */

import { type Libc, PR_GET_THP_DISABLE } from "./libc.ts";

/**
 * The sysfs directory of the transparent huge page settings (`enabled`,
 * `defrag`, `shmem_enabled`, ...).
 *
 * @example
 * ```ts
 * import { THP_DIR } from "./thp.ts";
 * import assert from "node:assert/strict";
 * assert.equal(`${THP_DIR}/enabled`, "/sys/kernel/mm/transparent_hugepage/enabled");
 * ```
 */
export const THP_DIR = "/sys/kernel/mm/transparent_hugepage";

/** The THP situation of this process. */
export interface ThpStatus {
  /** `/sys/kernel/mm/transparent_hugepage/enabled`: `always`, `madvise`, `never` or `unavailable`. */
  enabled: string;
  /** `/sys/kernel/mm/transparent_hugepage/defrag` selection, or `unavailable`. */
  defrag: string;
  /** `PR_GET_THP_DISABLE`: THP switched off for this whole process. */
  processDisabled: boolean;
  /** Whether `MADV_COLLAPSE` exists (Linux 6.1+). */
  collapse: boolean;
  /** Whether page-primer can get huge pages here. */
  usable: boolean;
  /** When not usable: why, and what to change. When usable: a caveat, if any. */
  reason?: string;
}

/**
 * The bracketed choice of a sysfs selector: `"always [madvise] never"` →
 * `"madvise"`.
 *
 * @example
 * ```ts
 * import { selected } from "./thp.ts";
 * import assert from "node:assert/strict";
 * assert.equal(selected("always [madvise] never"), "madvise");
 * ```
 */
export function selected(text: string): string {
  const m = /\[([^\]]+)\]/.exec(text);
  return m ? m[1] : text.trim();
}

/**
 * Parses `"6.18.44-fc"` into `[6, 18]`.
 *
 * @example
 * ```ts
 * import { kernelVersion } from "./thp.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(kernelVersion("6.1.0-18-amd64"), [6, 1]);
 * ```
 */
export function kernelVersion(release: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

/**
 * Decides from the raw facts whether THP can work. Pure.
 *
 * @example
 * ```ts
 * import { thpVerdict } from "./thp.ts";
 * import assert from "node:assert/strict";
 * assert.equal(thpVerdict({ enabled: "always [madvise] never", defrag: "madvise", processDisabled: false, release: "6.18.0" }).usable, true);
 * ```
 */
export function thpVerdict(
  { enabled: enabledText, defrag: defragText, processDisabled, release }: {
    /** `enabled` of the THP sysfs directory, undefined without THP. */
    enabled: string | undefined;
    /** `defrag` of the THP sysfs directory. */
    defrag: string | undefined;
    /** `PR_SET_THP_DISABLE` is set for this process. */
    processDisabled: boolean;
    /** The kernel release (`uname -r`). */
    release: string;
  },
): ThpStatus {
  const [maj, min] = kernelVersion(release);
  const collapse = maj > 6 || (maj === 6 && min >= 1);
  const enabled = enabledText === undefined
    ? "unavailable"
    : selected(enabledText);
  const defrag = defragText === undefined
    ? "unavailable"
    : selected(defragText);
  const base = { enabled, defrag, processDisabled, collapse };
  if (enabled === "unavailable") {
    return {
      ...base,
      usable: false,
      reason:
        `this kernel has no transparent huge pages (${THP_DIR} is missing): use a kernel built with CONFIG_TRANSPARENT_HUGEPAGE`,
    };
  }
  if (processDisabled) {
    return {
      ...base,
      usable: false,
      reason:
        'THP is disabled for this whole process (PR_SET_THP_DISABLE; Bun\'s allocator set it in 2024-2026 releases, and a parent may too; it is inherited across fork and exec): neither THP nor shmem (memfd) copies get 2 MiB pages in it, the hugetlb pool does (remap({ backend: "hugetlb" })); or upgrade the runtime, or start it from a process that has not set it',
    };
  }
  if (enabled === "never") {
    return collapse
      ? {
        ...base,
        usable: true,
        reason:
          `THP is 'never' system-wide; MADV_COLLAPSE still gets huge pages. For faster fills: echo madvise > ${THP_DIR}/enabled`,
      }
      : {
        ...base,
        usable: false,
        reason:
          `THP is 'never' and this kernel (< 6.1) has no MADV_COLLAPSE: echo madvise > ${THP_DIR}/enabled`,
      };
  }
  return { ...base, usable: true };
}

/**
 * Reads the THP situation of this process.
 *
 * @example
 * ```ts ignore
 * import { libc } from "./libc.ts";
 * import { thpStatus } from "./thp.ts";
 * console.log(thpStatus(libc()));
 * ```
 */
export function thpStatus(c: Libc): ThpStatus {
  let disabled = false;
  try {
    // 1: disabled completely. 3 (1 | PR_THP_DISABLE_EXCEPT_ADVISED, Linux
    // 6.18+): disabled except for madvised memory, which remap's copies are.
    disabled = c.prctl(PR_GET_THP_DISABLE) === 1;
  } catch {
    disabled = false;
  }
  return thpVerdict({
    enabled: c.tryReadText(`${THP_DIR}/enabled`),
    defrag: c.tryReadText(`${THP_DIR}/defrag`),
    processDisabled: disabled,
    release: c.kernelRelease(),
  });
}
