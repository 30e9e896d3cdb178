/**
 * What the kernel lets this process have: room under the memory cgroup's
 * limit and under `vm.max_map_count`, checked before a remap makes anything.
 *
 * @module
 */

import { formatBytes } from "./format.ts";
import type { Libc } from "./libc.ts";

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
 * import { memcgProblem } from "./limits.ts";
 * import assert from "node:assert/strict";
 * const files: Record<string, string> = {
 *   "/sys/fs/cgroup/app/memory.max": "209715200\n",
 *   "/sys/fs/cgroup/app/memory.current": "157286400\n",
 * };
 * assert.match(
 *   memcgProblem("0::/app\n", (f) => files[f], 92 << 20)!,
 *   /^the memory cgroup \/sys\/fs\/cgroup\/app allows 50\.0 MiB more/,
 * );
 * assert.equal(memcgProblem("0::/app\n", (f) => files[f], 1 << 20), undefined);
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
    const limit = Number(limitText);
    // The usage only where there is a limit: a level without one is not
    // read further (one read, not two, per level).
    const limited = limitText !== undefined && limitText !== "max" &&
      Number.isFinite(limit) && limit < 2 ** 52;
    const usageText = limited
      ? read(`${dir}/${v2 ? "memory.current" : "memory.usage_in_bytes"}`)
        ?.trim()
      : undefined;
    const usage = Number(usageText);
    if (limited && usageText !== undefined && Number.isFinite(usage)) {
      const room = limit - usage;
      if (room < need + MEMCG_MARGIN) {
        return `the memory cgroup ${dir} allows ${
          formatBytes(Math.max(0, room))
        } more (limit ${formatBytes(limit)}, in use ${
          formatBytes(usage)
        }); the remap may charge it ${formatBytes(need)} plus ${
          formatBytes(MEMCG_MARGIN)
        } of room, and a charge over the limit ends in the OOM killer: nothing remapped; raise ${
          v2 ? "memory.max" : "memory.limit_in_bytes"
        }, or use backend "hugetlb" (its pages are not charged to the memory controller, only the page cache a fill from the file reads in) or share: true`;
      }
    }
    if (dir === root) break;
    dir = dir.slice(0, dir.lastIndexOf("/"));
  }
  return undefined;
}

/**
 * `vm.max_map_count`, or `undefined` when it cannot be read or parsed.
 *
 * Unknown means "not checked", never 0: the kernel always has the setting
 * (it is only hidden, e.g. /proc/sys not mounted in a sandbox), and reading
 * it as 0 would stop every remap and make doctor report a blocker for a
 * limit no one can see. The remap then proceeds and, if the limit is really
 * reached, the kernel's ENOMEM on the failing mmap names the step.
 *
 * @example
 * ```ts ignore
 * import { libc } from "./libc.ts";
 * import { readMaxMapCount } from "./limits.ts";
 * console.log(readMaxMapCount(libc())); // 65530 by default
 * ```
 */
export function readMaxMapCount(c: Libc): number | undefined {
  const max = parseInt(c.tryReadText("/proc/sys/vm/max_map_count") ?? "", 10);
  return Number.isNaN(max) ? undefined : max;
}

/**
 * Mappings this process may still make under `vm.max_map_count`, with
 * `current` in use; `Infinity` when the limit is unknown (see
 * {@linkcode readMaxMapCount}).
 *
 * @example
 * ```ts ignore
 * import { libc } from "./libc.ts";
 * import { maxMapHeadroom } from "./limits.ts";
 * console.log(maxMapHeadroom(libc(), 900));
 * ```
 */
export function maxMapHeadroom(c: Libc, current: number): number {
  const max = readMaxMapCount(c);
  return max === undefined ? Infinity : max - current;
}
