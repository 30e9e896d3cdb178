// Copyright 2025 the page-primer authors. MIT license.
/**
 * `PROCMAP_QUERY` (Linux 6.11+): an `ioctl` on `/proc/self/maps` that
 * returns the VMA at (or after) an address, with its flags, file offset,
 * device, inode, name, backing page size and, when asked, the build-id of
 * the ELF file behind it. It costs one VMA lookup, where reading
 * `/proc/self/maps` formats every VMA of the process.
 *
 * The layout below is the kernel's `struct procmap_query`
 * (`include/uapi/linux/fs.h`, 104 bytes); the request number is
 * `_IOWR('f', 17, struct procmap_query)`. The first call tests the feature:
 * `ENOTTY` (or `EINVAL` from a kernel that does not know the request) means
 * "unavailable", remembered for the life of the JS realm. `/proc/self/maps`
 * is open only during a call, or a {@linkcode withProcmap} scope around
 * several.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { procmapAvailable, queryVmas } from "./procmap.ts";
 *
 * const c = libc();
 * if (procmapAvailable(c) === undefined) {
 *   const here = c.getauxval(3); // AT_PHDR: inside the main executable
 *   console.log(queryVmas(c, here, here + 1)[0]?.path);
 * }
 * ```
 *
 * @module
 */

import { addressOf, setU64, u64 } from "./ffi.ts";
import type { Libc } from "./libc.ts";
import { ProcIoctlFile } from "./proc_ioctl.ts";
import type { Vma } from "./maps.ts";

/** `_IOWR('f', 17, struct procmap_query)` with the 104-byte structure. */
export const PROCMAP_QUERY = 0xc0686611;
/** Size of `struct procmap_query` in bytes. */
export const PROCMAP_QUERY_SIZE = 104;

/** `PROCMAP_QUERY_VMA_READABLE`: in `vma_flags`, and as a query filter. */
export const PROCMAP_QUERY_VMA_READABLE = 0x01;
/** `PROCMAP_QUERY_VMA_WRITABLE`. */
export const PROCMAP_QUERY_VMA_WRITABLE = 0x02;
/** `PROCMAP_QUERY_VMA_EXECUTABLE`. */
export const PROCMAP_QUERY_VMA_EXECUTABLE = 0x04;
/** `PROCMAP_QUERY_VMA_SHARED` (`VM_MAYSHARE`, maps' `s`). */
export const PROCMAP_QUERY_VMA_SHARED = 0x08;
/** `PROCMAP_QUERY_COVERING_OR_NEXT_VMA`: the next VMA when none covers. */
export const PROCMAP_QUERY_COVERING_OR_NEXT_VMA = 0x10;
/** `PROCMAP_QUERY_FILE_BACKED_VMA`: only VMAs with a file behind them. */
export const PROCMAP_QUERY_FILE_BACKED_VMA = 0x20;

// Field offsets in struct procmap_query.
const OFF_SIZE = 0;
const OFF_QUERY_FLAGS = 8;
const OFF_QUERY_ADDR = 16;
const OFF_VMA_START = 24;
const OFF_VMA_END = 32;
const OFF_VMA_FLAGS = 40;
const OFF_VMA_PAGE_SIZE = 48;
const OFF_VMA_OFFSET = 56;
const OFF_INODE = 64;
const OFF_DEV_MAJOR = 72;
const OFF_DEV_MINOR = 76;
const OFF_NAME_SIZE = 80;
const OFF_BUILD_ID_SIZE = 84;
const OFF_NAME_ADDR = 88;
const OFF_BUILD_ID_ADDR = 96;

/** The kernel's `PATH_MAX`: the longest name the query returns. */
const NAME_MAX_BYTES = 4096;
/** Largest build-id the kernel returns (`BUILD_ID_SIZE_MAX`). */
const BUILD_ID_MAX_BYTES = 20;

/**
 * The environment variable that, when `"1"`, makes page-primer read
 * `/proc/self/maps` and `/proc/self/smaps` instead of the per-range queries
 * (to test the path of kernels without them).
 */
export const SMAPS_ENV = "PAGE_PRIMER_SMAPS";

const ENOENT = 2;
const EINVAL = 22;
const ENOTTY = 25;

/**
 * One VMA as `PROCMAP_QUERY` reports it: the fields of a maps line, plus the
 * VMA's backing page size and, when asked, the file's build-id.
 *
 * @example Usage
 * ```ts
 * import type { ProcmapVma } from "./procmap.ts";
 * const v: ProcmapVma = {
 *   start: 0x1000, end: 0x2000, perms: "r-xp", read: true, write: false,
 *   exec: true, shared: false, offset: 0, dev: "08:01", inode: 7,
 *   path: "/bin/x", pageSize: 4096,
 * };
 * console.log(v.pageSize);
 * ```
 */
export interface ProcmapVma extends Vma {
  /** `vma_page_size`: 4096, or the hugetlb page size of a hugetlb VMA. */
  pageSize: number;
  /** The ELF build-id as lowercase hex, when asked and the file has one. */
  buildId?: string;
}

/** What {@linkcode queryVmas} can be asked. */
export interface QueryOptions {
  /** Also return each file's build-id (the kernel reads the ELF notes). */
  buildId?: boolean;
  /** Only VMAs with a file behind them (anonymous ones are skipped by the kernel). */
  fileBacked?: boolean;
}

interface Session {
  fd: number;
  ioctl: (fd: number, request: number, arg: number) => number;
  arg: Uint8Array;
  argAt: number;
  view: DataView;
  name: Uint8Array;
  nameAt: number;
  buildId: Uint8Array;
  buildIdAt: number;
}

const decoder = new TextDecoder();

/** The file, its buffers and feature test, once per JS realm (each Worker has its own). */
const file = new ProcIoctlFile<Session>({
  path: "/proc/self/maps",
  feature: "PROCMAP_QUERY",
  setup: newSession,
});

/**
 * The buffers on the first open descriptor, and the feature test: the
 * session, or why the kernel does not support it.
 */
function newSession(c: Libc, fd: number): Session | string {
  // Buffers made from an ArrayBuffer: Bun moves a small typed array made
  // without one when its `.buffer` is first read, changing its address.
  const arg = new Uint8Array(new ArrayBuffer(PROCMAP_QUERY_SIZE));
  const name = new Uint8Array(new ArrayBuffer(NAME_MAX_BYTES));
  const buildId = new Uint8Array(new ArrayBuffer(BUILD_ID_MAX_BYTES));
  const s: Session = {
    fd,
    ioctl: (fd, request, arg) => c.ioctl(fd, request, arg),
    arg,
    argAt: addressOf(arg),
    view: new DataView(arg.buffer),
    name,
    nameAt: addressOf(name),
    buildId,
    buildIdAt: addressOf(buildId),
  };
  // The feature test, once per realm: the VMA of the query buffer itself
  // must exist.
  const r = rawQuery(c, s, s.argAt, 0, false);
  if (typeof r === "number" && r !== ENOENT) {
    return r === ENOTTY || r === EINVAL
      ? "PROCMAP_QUERY is not supported by this kernel (Linux 6.11+ has it)"
      : `PROCMAP_QUERY failed with errno ${r}`;
  }
  return s;
}

/**
 * Runs `fn` with `/proc/self/maps` opened once for all the queries it
 * makes, and closed when it returns or throws (scopes nest; the outermost
 * closes). Outside a scope each query function opens and closes it
 * itself. No descriptor outlives the call, so a Worker that ends leaves
 * none open.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { procmapAvailable, queryVma, withProcmap } from "./procmap.ts";
 * const c = libc();
 * if (procmapAvailable(c) === undefined) {
 *   const here = c.getauxval(3);
 *   withProcmap(c, () => [queryVma(c, here), queryVma(c, here, { next: true })]);
 * }
 * ```
 */
export function withProcmap<T>(c: Libc, fn: () => T): T {
  return file.within(c, fn);
}

/** One ioctl; the VMA, or the errno when the kernel said no. */
function rawQuery(
  c: Libc,
  s: Session,
  addr: number,
  flags: number,
  buildId: boolean,
): ProcmapVma | number {
  const v = s.view;
  s.arg.fill(0);
  setU64(v, OFF_SIZE, PROCMAP_QUERY_SIZE);
  setU64(v, OFF_QUERY_FLAGS, flags);
  setU64(v, OFF_QUERY_ADDR, addr);
  v.setUint32(OFF_NAME_SIZE, NAME_MAX_BYTES, true);
  setU64(v, OFF_NAME_ADDR, s.nameAt);
  if (buildId) {
    v.setUint32(OFF_BUILD_ID_SIZE, BUILD_ID_MAX_BYTES, true);
    setU64(v, OFF_BUILD_ID_ADDR, s.buildIdAt);
  }
  if (s.ioctl(s.fd, PROCMAP_QUERY, s.argAt) !== 0) return c.errno();
  return decode(s, buildId);
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

function decode(s: Session, buildId: boolean): ProcmapVma {
  const v = s.view;
  const flags = u64(v, OFF_VMA_FLAGS);
  const read = (flags & PROCMAP_QUERY_VMA_READABLE) !== 0;
  const write = (flags & PROCMAP_QUERY_VMA_WRITABLE) !== 0;
  const exec = (flags & PROCMAP_QUERY_VMA_EXECUTABLE) !== 0;
  const shared = (flags & PROCMAP_QUERY_VMA_SHARED) !== 0;
  // vma_name_size counts the terminating NUL; 0 when the VMA has no name.
  const nameLen = v.getUint32(OFF_NAME_SIZE, true);
  const out: ProcmapVma = {
    start: u64(v, OFF_VMA_START),
    end: u64(v, OFF_VMA_END),
    perms: (read ? "r" : "-") + (write ? "w" : "-") + (exec ? "x" : "-") +
      (shared ? "s" : "p"),
    read,
    write,
    exec,
    shared,
    offset: u64(v, OFF_VMA_OFFSET),
    dev: hex2(v.getUint32(OFF_DEV_MAJOR, true)) + ":" +
      hex2(v.getUint32(OFF_DEV_MINOR, true)),
    inode: u64(v, OFF_INODE),
    path: nameLen > 1 ? decoder.decode(s.name.subarray(0, nameLen - 1)) : "",
    pageSize: u64(v, OFF_VMA_PAGE_SIZE),
  };
  const idLen = buildId ? v.getUint32(OFF_BUILD_ID_SIZE, true) : 0;
  if (idLen > 0) {
    out.buildId = [...s.buildId.subarray(0, idLen)].map(hex2).join("");
  }
  return out;
}

/**
 * Why `PROCMAP_QUERY` cannot be used in this process, or `undefined` when it
 * can. The first call tests the kernel (one ioctl); the answer is kept.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { procmapAvailable } from "./procmap.ts";
 * console.log(procmapAvailable(libc()) ?? "PROCMAP_QUERY works");
 * ```
 */
export function procmapAvailable(c: Libc): string | undefined {
  if (file.tested) return undefined;
  const s = file.open(c);
  file.release(c);
  return typeof s === "string" ? s : undefined;
}

/**
 * The VMA covering `addr`, or with `next`, the first one at or after it;
 * `undefined` when there is none.
 *
 * @throws {Error} When `PROCMAP_QUERY` is unavailable
 * ({@linkcode procmapAvailable} says why) or the kernel fails the query.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { procmapAvailable, queryVma } from "./procmap.ts";
 * const c = libc();
 * if (procmapAvailable(c) === undefined) {
 *   console.log(queryVma(c, c.getauxval(3))?.perms);
 * }
 * ```
 */
export function queryVma(
  c: Libc,
  addr: number,
  options: QueryOptions & { next?: boolean } = {},
): ProcmapVma | undefined {
  if (!Number.isSafeInteger(addr) || addr < 0) {
    throw new RangeError(`queryVma(): bad address ${addr}`);
  }
  const s = file.open(c);
  if (typeof s === "string") throw new Error(s);
  const flags = (options.next ? PROCMAP_QUERY_COVERING_OR_NEXT_VMA : 0) |
    (options.fileBacked ? PROCMAP_QUERY_FILE_BACKED_VMA : 0);
  let r: ProcmapVma | number;
  try {
    r = rawQuery(c, s, addr, flags, options.buildId === true);
  } finally {
    file.release(c);
  }
  if (r === ENOENT) return undefined;
  if (typeof r === "number") {
    throw new Error(
      `PROCMAP_QUERY at 0x${addr.toString(16)} failed with errno ${r}`,
    );
  }
  return r;
}

/**
 * The VMAs overlapping `[start, end)`, in address order, one ioctl each
 * (plus one that finds nothing more). With `fileBacked`, anonymous VMAs are
 * skipped by the kernel, so walking the whole address space
 * (`queryVmas(c, 0, 2 ** 64)`) costs one call per file-backed VMA.
 *
 * @throws {RangeError} If `start > end`.
 * @throws {Error} When `PROCMAP_QUERY` is unavailable or fails.
 *
 * @example Usage
 * ```ts
 * import { libc } from "./libc.ts";
 * import { procmapAvailable, queryVmas } from "./procmap.ts";
 * const c = libc();
 * if (procmapAvailable(c) === undefined) {
 *   const files = queryVmas(c, 0, 2 ** 64, { fileBacked: true });
 *   console.log(files.length > 0);
 * }
 * ```
 */
export function queryVmas(
  c: Libc,
  start: number,
  end: number,
  options: QueryOptions = {},
): ProcmapVma[] {
  if (!(start <= end)) {
    throw new RangeError(`queryVmas(): start ${start} is above end ${end}`);
  }
  return withProcmap(c, () => {
    const out: ProcmapVma[] = [];
    let at = start;
    while (at < end) {
      const v = queryVma(c, at, { ...options, next: true });
      if (v === undefined || v.start >= end) break;
      out.push(v);
      at = v.end;
    }
    return out;
  });
}
