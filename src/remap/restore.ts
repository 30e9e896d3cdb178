/**
 * Giving remapped regions back: on their file where memory equals it, else
 * on 4 KiB pages copied from memory, never over a mapping that is no longer
 * page-primer's copy.
 *
 * @module
 */

import { errnoName, type Libc, SyscallError } from "../sys/libc.ts";
import { readVmas } from "../sys/vma_stats.ts";
import {
  type ActiveSwap,
  notOurCopy,
  openIdentified,
  SwapRecord,
} from "./record.ts";
import { emptyRestoreReport, type RestoreReport } from "./report.ts";
import {
  loadedTrampoline,
  type Trampoline,
  TrampolineBusyError,
  type TrampolineRecord,
} from "./trampoline.ts";

/**
 * The trampoline record that gives a swapped region back: the file `fd`
 * mapped over it, or, where its bytes differ from the file, a copy from
 * memory onto 4 KiB pages (the file is not used).
 */
function restoreRecord(swap: ActiveSwap, fd: number): TrampolineRecord {
  const r = swap.region;
  const byCopy = !r.equalsFile;
  return {
    op: "restore",
    start: r.start,
    len: r.end - r.start,
    dataStart: r.dataStart,
    dataLen: r.dataEnd - r.dataStart,
    prot: swap.prot,
    page4k: byCopy,
    hugetlb: !byCopy && swap.hugetlb,
    equalsFile: r.equalsFile,
    fd: byCopy ? -1 : fd,
    fileOffset: r.fileOffset,
  };
}

/**
 * Gives a region whose bytes differ from the file back on 4 KiB anonymous
 * pages, copied from the copy in one swap (never the file's bytes); the
 * space it grew into is released. The error message, or `undefined`.
 */
function restoreByCopy(
  tramp: Trampoline,
  swap: ActiveSwap,
): string | undefined {
  const [res] = tramp.run([restoreRecord(swap, -1)]);
  if (res.errno === 0) return undefined;
  return `${res.step} failed with ${errnoName(res.errno)}` +
    (res.step === "munmap extension"
      ? "; the bytes are on 4 KiB pages again, the space it grew into is still mapped"
      : res.step === "mremap" && res.recovered
      ? "; the bytes were copied back, intact; kept as it was"
      : "; kept the in-memory copy");
}

/**
 * Puts every region this process remapped back on its file, each in one
 * `mmap(MAP_FIXED|MAP_PRIVATE)` of the executable at the segment's file
 * offset. Refuses a region whose file on disk is no longer the one loaded
 * (device, inode, size or build-id differ).
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { restoreRemapped } from "./restore.ts";
 * console.log(restoreRemapped(libc()).restored);
 * ```
 */
export function restoreRemapped(c: Libc): RestoreReport {
  const t0 = performance.now();
  // No trampoline in this process: nothing was ever remapped here.
  const tramp = loadedTrampoline(c);
  let out = emptyRestoreReport();
  try {
    if (tramp) {
      out = tramp.locked(() => restoreLocked(c, tramp, new SwapRecord(tramp)));
    }
  } catch (e) {
    if (!(e instanceof TrampolineBusyError)) throw e;
    out.reason = e.message;
  }
  out.ms = performance.now() - t0;
  return out;
}

/** Lets go of a swap: its shared copy's lock and its library's pin. */
function release(c: Libc, record: SwapRecord, start: number): void {
  const swap = record.swaps.get(start)!;
  record.delete(start);
  if (swap.sharedFd !== undefined) c.close(swap.sharedFd);
  if (swap.pin !== undefined) c.unpin(swap.pin);
}

/** {@linkcode restoreRemapped} under the trampoline's lock. */
function restoreLocked(
  c: Libc,
  tramp: Trampoline,
  record: SwapRecord,
): RestoreReport {
  const out = emptyRestoreReport();
  if (record.swaps.size === 0) return out;
  // Checked right before acting: a range that is no longer our copy (its
  // library unloaded, someone mapped over it) is left alone.
  const maps = readVmas(c, [...record.swaps.values()].map((s) => s.region));
  for (const [start, swap] of [...record.swaps.entries()]) {
    const r = swap.region;
    const gone = notOurCopy(maps, swap);
    const error = gone !== undefined
      ? `${gone}: left alone, and forgotten`
      : r.equalsFile
      ? restoreFromFile(c, tramp, swap)
      : restoreByCopy(tramp, swap);
    if (error !== undefined) {
      out.failed.push({
        start: r.start,
        end: r.end,
        object: r.object,
        message: error,
      });
      if (gone !== undefined) release(c, record, start);
      continue;
    }
    release(c, record, start);
    out.restored++;
    if (!r.equalsFile) out.copied++;
    out.bytes += r.dataEnd - r.dataStart;
  }
  return out;
}

/**
 * Maps the executable back over a swapped region whose bytes equal the
 * file, once the file is checked to be the one loaded. The error message,
 * or `undefined`.
 */
function restoreFromFile(
  c: Libc,
  tramp: Trampoline,
  swap: ActiveSwap,
): string | undefined {
  const opened = openIdentified(c, swap.file);
  if (typeof opened === "string") return `${opened}; kept the in-memory copy`;
  try {
    if (
      opened.file.size !== swap.file.size ||
      opened.file.buildId !== swap.file.buildId
    ) {
      return `${swap.file.path} changed since it was loaded (size or build-id differ); kept the in-memory copy`;
    }
    const [res] = tramp.run([restoreRecord(swap, opened.fd)]);
    if (res.errno === 0) return undefined;
    // After "munmap extension" the code is on the file again, but the
    // space the remap grew into is still mapped: keep the region, so the
    // next restore() maps the file again (no change) and retries.
    return `${res.step} failed with ${errnoName(res.errno)}` +
      (res.step === "munmap extension"
        ? "; the code is back on the file, the space it grew into is still mapped: restore() again to release it"
        : "; kept the in-memory copy");
  } catch (e) {
    if (!(e instanceof SyscallError)) throw e;
    return e.message;
  } finally {
    c.close(opened.fd);
  }
}
