/**
 * The process-wide record of the swaps in place (kept in the trampoline), and
 * the identities checked before acting on a region again: the file that was
 * loaded, and the copy as maps showed it right after the swap.
 *
 * @module
 */

import { parseElfHeader, readBuildId } from "../sys/elf.ts";
import { fdSource, type Libc } from "../sys/libc.ts";
import type { Vma } from "../sys/maps.ts";
import type { PlannedRegion } from "./plan.ts";
import type { Trampoline } from "./trampoline.ts";

export interface FileIdentity {
  path: string;
  dev: string;
  inode: number;
  size: number;
  buildId: string | undefined;
}

export interface ActiveSwap {
  hugetlb: boolean;
  /** The shared copy's descriptor, holding its in-use lock. */
  sharedFd?: number;
  region: PlannedRegion;
  prot: number;
  file: FileIdentity;
  /** A library's reference (`dlopen` RTLD_NOLOAD), held until restored. */
  pin?: number;
  /** What maps shows for the copy: checked before anything acts on it. */
  copy?: CopyIdentity;
}

/**
 * The swaps in place in this process, by region start: one record per
 * process, kept in the trampoline, so a region remapped in a Worker is
 * seen and restored from any thread. Read and written under the
 * trampoline's lock.
 */
export class SwapRecord {
  readonly #tramp: Trampoline;
  readonly swaps: Map<number, ActiveSwap>;

  constructor(tramp: Trampoline) {
    this.#tramp = tramp;
    const text = tramp.readRecord();
    this.swaps = new Map(text === "" ? [] : JSON.parse(text));
  }

  set(start: number, swap: ActiveSwap): void {
    this.swaps.set(start, swap);
    this.#save();
  }

  /** Several swaps set, saved once. */
  setAll(entries: Iterable<readonly [number, ActiveSwap]>): void {
    for (const [start, swap] of entries) this.swaps.set(start, swap);
    this.#save();
  }

  delete(start: number): void {
    this.swaps.delete(start);
    this.#save();
  }

  #save(): void {
    this.#tramp.writeRecord(JSON.stringify([...this.swaps]));
  }
}

/**
 * How maps shows a copy right after the swap: its path and inode (an
 * anonymous copy is unnamed where the kernel cannot name VMAs), its
 * protection, and its VMAs' boundaries. Another mapping made over part of
 * it later differs in one of them: a new anonymous VMA never merges with
 * the copy (its page offset comes from where the stage was made).
 */
interface CopyIdentity {
  path: string;
  inode: number;
  perms: string;
  bounds: number[];
}

/** The identity of the copy over `[start, end)` in `vmas`. */
export function copyIdentity(
  vmas: readonly Vma[],
  start: number,
  end: number,
): CopyIdentity | undefined {
  const inside = vmas.filter((m) => m.start < end && start < m.end);
  if (inside.length === 0) return undefined;
  return {
    path: inside[0].path,
    inode: inside[0].inode,
    perms: inside[0].perms,
    bounds: inside.flatMap((m) => [m.start, m.end]),
  };
}

/**
 * Why a swapped region is no longer the copy page-primer made, or
 * `undefined` when it still is. Its data part must be mapped throughout by
 * the copy (same path, inode and protection, VMAs starting and ending only
 * where the copy's did or where an earlier restore split it) or by the
 * file, where an earlier restore got that far; the space it grew into may
 * also be a hole (released by an earlier restore), never anything else.
 */
export function notOurCopy(
  vmas: readonly Vma[],
  swap: ActiveSwap,
): string | undefined {
  const { start, end, dataStart, dataEnd } = swap.region;
  const expected = swap.copy;
  const bounds = new Set([
    ...(expected?.bounds ?? []),
    start,
    end,
    dataStart,
    dataEnd,
  ]);
  const isCopy = (v: Vma) =>
    expected === undefined ||
    (v.path === expected.path && v.inode === expected.inode &&
      v.perms === expected.perms && bounds.has(v.start) && bounds.has(v.end));
  const isFile = (v: Vma) =>
    v.path === swap.file.path && v.inode === swap.file.inode;
  let at = dataStart;
  for (const v of vmas) {
    if (v.end <= start || v.start >= end) continue;
    if (!isCopy(v) && !isFile(v)) {
      return `0x${v.start.toString(16)}-0x${v.end.toString(16)} is now ${
        v.path === "" ? "anonymous memory" : v.path
      } (${v.perms}), not page-primer's copy`;
    }
    if (v.start <= at && v.end > at) at = v.end;
  }
  return at >= dataEnd ? undefined : `0x${at.toString(16)} is no longer mapped`;
}

/**
 * Device number of `stat` as maps prints it (`"fe:00"`), glibc encoding.
 *
 * @example
 * ```ts
 * import { devString } from "./record.ts";
 * import assert from "node:assert/strict";
 * assert.equal(devString(0xfe00), "fe:00");
 * ```
 */
export function devString(dev: number): string {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major.toString(16).padStart(2, "0")}:${
    minor.toString(16).padStart(2, "0")
  }`;
}

/**
 * The build-id of the ELF file open as `fd`: its header, program headers
 * and the note they point to (section headers only when no note segment
 * has it), not a whole parse.
 */
function readBuildIdFromFd(c: Libc, fd: number, size: number) {
  try {
    const src = fdSource(c, fd, size);
    return readBuildId(src, parseElfHeader(src));
  } catch {
    return undefined;
  }
}

/**
 * Opens `path` and checks it is the file mapped with `dev`/`inode`; why
 * not, when it is not.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { openIdentified } from "./record.ts";
 * const got = openIdentified(libc(), { path: "/usr/bin/deno", dev: "fe:00", inode: 77 });
 * if (typeof got === "string") console.error(got);
 * ```
 */
export function openIdentified(
  c: Libc,
  { path, dev, inode }: { path: string; dev: string; inode: number },
): { fd: number; file: FileIdentity } | string {
  let fd: number;
  try {
    fd = c.openRead(path);
  } catch (e) {
    return `cannot open ${path}: ${e instanceof Error ? e.message : e}`;
  }
  const st = c.fstat(fd);
  if (devString(st.dev) !== dev || st.ino !== inode) {
    c.close(fd);
    return `${path} on disk is not the file that was loaded (device/inode ${
      devString(st.dev)
    }/${st.ino}, loaded ${dev}/${inode}): it was replaced, e.g. by an upgrade`;
  }
  return {
    fd,
    file: {
      path,
      dev,
      inode,
      size: st.size,
      buildId: readBuildIdFromFd(c, fd, st.size),
    },
  };
}
