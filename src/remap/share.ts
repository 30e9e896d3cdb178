/**
 * Shared copies: one file per executable build and segment layout, in an
 * owner-only directory on tmpfs, mapped by every process of the same user
 * that runs the same executable, so N processes hold one copy of the huge
 * pages instead of N.
 *
 * A copy is created atomically (exclusive temporary file, filled, then
 * hard-linked to its final name, which fails rather than replace), and
 * every copy, ours or not, is checked before it is mapped: a regular file
 * owned by this user with no group or other permission bits, one link,
 * the expected size, and bytes equal to the executable's file. The
 * directory itself must be ours, a real directory (not a link), with no
 * group or other bits, on a mount that allows execution.
 *
 * @module
 */

import {
  ERRNO,
  type FileStat,
  type Libc,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_RDWR,
  PROT_READ,
  S_IFDIR,
  S_IFMT,
  S_IFREG,
  ST_NOEXEC,
  SyscallError,
} from "../sys/libc.ts";

/** `mmap` flag: a shared mapping. */
const MAP_SHARED = 0x01;
const MADV_POPULATE_READ = 22;
const CHUNK = 8 << 20;

/** Options of `remap({ share })`. */
export interface ShareOptions {
  /**
   * The directory of the shared copies: `$XDG_RUNTIME_DIR/page-primer` when
   * that variable is set, else `/dev/shm/page-primer-<euid>`
   * ({@linkcode defaultShareDir}). It must be on tmpfs (or another file
   * system whose pages can be made huge) and allow execution.
   *
   * @default {"$XDG_RUNTIME_DIR/page-primer" or "/dev/shm/page-primer-<euid>"}
   */
  dir?: string;
}

/** The layout of one shared copy: what its bytes are. */
export interface CopyLayout {
  /** Bytes of the copy (a multiple of 2 MiB). */
  len: number;
  /** Offset in the copy where the file's bytes start; zeros before. */
  head: number;
  /** Bytes from the file; zeros after, up to `len`. */
  dataLen: number;
  /** File offset of those bytes. */
  fileOffset: number;
}

/**
 * The default directory of shared copies for user `euid`.
 *
 * @example
 * ```ts
 * import { defaultShareDir } from "./share.ts";
 * import assert from "node:assert/strict";
 * assert.equal(defaultShareDir(1000, undefined), "/dev/shm/page-primer-1000");
 * assert.equal(defaultShareDir(1000, "/run/user/1000"), "/run/user/1000/page-primer");
 * ```
 */
export function defaultShareDir(
  euid: number,
  xdgRuntimeDir: string | undefined,
): string {
  return xdgRuntimeDir && xdgRuntimeDir.startsWith("/")
    ? `${xdgRuntimeDir.replace(/\/+$/, "")}/page-primer`
    : `/dev/shm/page-primer-${euid}`;
}

/** 32-bit FNV-1a of a string, as 8 hex digits. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(text)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

/**
 * The prefix naming every copy of the executable at `path`: its base name
 * and a hash of the full path, so two installs with the same base name do
 * not evict each other's copies.
 *
 * @example
 * ```ts
 * import { copyPrefix } from "./share.ts";
 * import assert from "node:assert/strict";
 * assert.match(copyPrefix("/usr/bin/deno"), /^deno-[0-9a-f]{8}$/);
 * ```
 */
export function copyPrefix(path: string): string {
  const base = (path.split("/").pop() ?? "exe").replace(/[^A-Za-z0-9_-]/g, "_")
    .slice(0, 64);
  return `${base}-${fnv1a(path)}`;
}

/**
 * The file name of a shared copy: the executable (prefix), its build-id and
 * the layout, so an upgraded binary (another build-id) or another load
 * address modulo 2 MiB (another layout) never uses a copy that does not
 * match it.
 *
 * @example
 * ```ts
 * import { copyName } from "./share.ts";
 * import assert from "node:assert/strict";
 * const name = copyName("/usr/bin/deno", "ab12", {
 *   len: 4 << 20, head: 0x1000, dataLen: 0x3ff000, fileOffset: 0x200000,
 * });
 * assert.match(name, /^deno-[0-9a-f]{8}\.ab12\.200000\+3ff000\.1000\+400000$/);
 * ```
 */
export function copyName(
  path: string,
  buildId: string,
  layout: CopyLayout,
): string {
  const h = (n: number) => n.toString(16);
  return `${copyPrefix(path)}.${buildId}.${h(layout.fileOffset)}+${
    h(layout.dataLen)
  }.${h(layout.head)}+${h(layout.len)}`;
}

/**
 * Why a directory of shared copies must not be used, or `undefined` when it
 * may. Pure.
 *
 * @example
 * ```ts
 * import { dirProblem } from "./share.ts";
 * import assert from "node:assert/strict";
 * const st = { dev: 0, ino: 0, size: 0, nlink: 2, mode: 0o40700, uid: 0 };
 * assert.equal(dirProblem(st, 0, 0), undefined);
 * assert.match(dirProblem({ ...st, mode: 0o40777 }, 0, 0)!, /mode is 777/);
 * ```
 */
export function dirProblem(
  st: FileStat,
  euid: number,
  mountFlags: number,
): string | undefined {
  if ((st.mode & S_IFMT) !== S_IFDIR) return "it is not a directory";
  if (st.uid !== euid) {
    return `it is owned by uid ${st.uid}, not by this user (uid ${euid})`;
  }
  if (st.mode & 0o077) {
    return `its mode is ${
      (st.mode & 0o777).toString(8)
    }: other users could place copies there (chmod 700 it)`;
  }
  if (mountFlags & ST_NOEXEC) {
    return "its file system is mounted noexec: code cannot run from it (choose share.dir on a tmpfs without noexec)";
  }
  return undefined;
}

/**
 * Why a shared copy must not be mapped, or `undefined` when its metadata is
 * acceptable (its bytes are compared separately). Pure.
 *
 * @example
 * ```ts
 * import { copyProblem } from "./share.ts";
 * import assert from "node:assert/strict";
 * const st = { dev: 0, ino: 0, size: 4 << 20, nlink: 1, mode: 0o100600, uid: 0 };
 * assert.equal(copyProblem(st, 0, 4 << 20), undefined);
 * assert.match(copyProblem({ ...st, uid: 65534 }, 0, 4 << 20)!, /^owned by uid 65534,/);
 * ```
 */
export function copyProblem(
  st: FileStat,
  euid: number,
  len: number,
): string | undefined {
  if ((st.mode & S_IFMT) !== S_IFREG) return "it is not a regular file";
  if (st.uid !== euid) {
    return `owned by uid ${st.uid}, not by this user (uid ${euid}): another user could have written it`;
  }
  if (st.mode & 0o077) {
    return `mode ${
      (st.mode & 0o777).toString(8)
    }: group or others could have written it`;
  }
  if (st.nlink !== 1) {
    return `it has ${st.nlink} links: it may be written through another name`;
  }
  if (st.size !== len) return `it has ${st.size} bytes, not ${len}`;
  return undefined;
}

/** A directory of shared copies, checked and open. */
export interface ShareDir {
  /** Its path. */
  path: string;
  /** An open descriptor, `O_DIRECTORY|O_NOFOLLOW`: names resolve through it. */
  fd: number;
}

/**
 * Creates (mode 0700) or opens the directory of shared copies and checks it;
 * returns why it must not be used instead.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { openShareDir } from "./share.ts";
 * console.log(openShareDir(libc(), "/dev/shm/page-primer-0"));
 * ```
 */
export function openShareDir(c: Libc, path: string): ShareDir | string {
  if (!path.startsWith("/")) {
    throw new TypeError(
      `remap(): share.dir must be an absolute path; got "${path}"`,
    );
  }
  let fd: number;
  try {
    c.mkdir(path, 0o700);
    fd = c.open(path, O_DIRECTORY | O_NOFOLLOW);
  } catch (e) {
    return `cannot use ${path}: ${e instanceof Error ? e.message : e}`;
  }
  const problem = dirProblem(c.fstat(fd), c.geteuid(), c.mountFlags(fd));
  if (problem !== undefined) {
    c.close(fd);
    return `${path} is not used for shared copies: ${problem}`;
  }
  return { path, fd };
}

/** The copy to share: of which executable, open how, with which layout. */
export interface CopyRequest {
  /** The executable's path. */
  path: string;
  /** Its build-id (hex). */
  buildId: string;
  /** The executable, open for reading. */
  exeFd: number;
  /** Where the executable's bytes are in the copy. */
  layout: CopyLayout;
}

/**
 * True when the copy open as `fd` holds zeros, then the file's bytes of the
 * layout, then zeros; compared with `memcmp` on read-only mappings.
 */
function sameBytes(
  c: Libc,
  fd: number,
  { exeFd, layout }: CopyRequest,
): boolean {
  const { len, head, dataLen, fileOffset } = layout;
  const tail = len - head - dataLen;
  const copy = c.mmap(0, len, PROT_READ, MAP_SHARED, fd, 0);
  let exe = 0;
  let zero = 0;
  const zeroLen = Math.max(head, tail, 4096);
  try {
    exe = c.mmap(0, dataLen, PROT_READ, MAP_PRIVATE, exeFd, fileOffset);
    zero = c.mmap(0, zeroLen, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
    for (const [at, n] of [[copy, len], [exe, dataLen]]) {
      try {
        c.madvise(at, n, MADV_POPULATE_READ); // faster than faulting
      } catch { /* best effort (Linux < 5.14) */ }
    }
    return c.memEqual(copy, zero, head) &&
      c.memEqual(copy + head, exe, dataLen) &&
      c.memEqual(copy + head + dataLen, zero, tail);
  } finally {
    c.munmap(copy, len);
    if (exe) c.munmap(exe, dataLen);
    if (zero) c.munmap(zero, zeroLen);
  }
}

/**
 * Writes a new copy under a temporary name and links it to `name`; false
 * when another process linked its copy first.
 */
function create(
  c: Libc,
  dir: ShareDir,
  { name, exeFd, layout }: CopyRequest & { name: string },
): boolean {
  const tmp = `.${name}.${c.getpid()}.tmp`;
  const fd = c.openAt(
    dir.fd,
    tmp,
    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW,
    0o600,
  );
  try {
    c.tryLock(fd, true); // in use while it is filled
    c.ftruncate(fd, layout.len);
    for (let done = 0; done < layout.dataLen; done += CHUNK) {
      const n = Math.min(CHUNK, layout.dataLen - done);
      const bytes = c.pread(exeFd, layout.fileOffset + done, n);
      if (bytes.length !== n) {
        throw new SyscallError(
          "pread",
          ERRNO.EIO,
          "the executable is shorter than its program headers say",
        );
      }
      c.pwriteAll(fd, bytes, layout.head + done);
    }
    c.close(fd);
    try {
      c.linkAt(dir.fd, tmp, name);
      return true;
    } catch (e) {
      // Another process made it meanwhile: theirs is checked like any other.
      if (!(e instanceof SyscallError) || e.errno !== ERRNO.EEXIST) throw e;
      return false;
    }
  } catch (e) {
    try {
      c.close(fd);
    } catch { /* closed already */ }
    throw e;
  } finally {
    try {
      c.unlinkAt(dir.fd, tmp);
    } catch { /* gone */ }
  }
}

/**
 * Deletes the copies (and leftover temporary files) of the executable
 * `path` that no process uses: every user of a copy holds a shared `flock`
 * on it, so an exclusive one succeeds only on an unused file. Returns the
 * names deleted and how many copies of the same build are in use (by
 * other processes, or by this one through the descriptors `sharedCopy`
 * returned).
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { evictUnused, openShareDir } from "./share.ts";
 * const dir = openShareDir(libc(), "/dev/shm/page-primer-0");
 * if (typeof dir !== "string") {
 *   const of = { path: "/usr/bin/deno", buildId: "ab12" };
 *   console.log(evictUnused(libc(), dir, of));
 * }
 * ```
 */
export function evictUnused(
  c: Libc,
  dir: ShareDir,
  { path, buildId }: { path: string; buildId: string },
): { evicted: string[]; inUse: number } {
  const prefix = copyPrefix(path) + ".";
  const evicted: string[] = [];
  let inUse = 0;
  for (const name of c.listDir(dir.fd)) {
    const bare = name.startsWith(".") ? name.slice(1) : name;
    if (!bare.startsWith(prefix)) continue;
    let fd: number;
    try {
      fd = c.openAt(dir.fd, name, O_NOFOLLOW);
    } catch {
      continue; // removed meanwhile
    }
    try {
      if (c.tryLock(fd, true)) {
        c.unlinkAt(dir.fd, name);
        evicted.push(name);
      } else if (name.startsWith(`${prefix}${buildId}.`)) {
        inUse++;
      }
    } catch {
      /* removed meanwhile */
    } finally {
      c.close(fd);
    }
  }
  return { evicted, inUse };
}

/** A shared copy ready to be mapped. */
export interface SharedCopy {
  /** An `O_RDONLY` descriptor of the checked copy. */
  fd: number;
  /** Its path. */
  path: string;
  /** True when this process created it. */
  created: boolean;
}

/**
 * Opens the shared copy of `request.layout` of the executable
 * `request.path` (build `buildId`, open as `exeFd`), creating it when missing, and checks it
 * (owner, mode, links, size, bytes). Returns why it must not be used
 * instead; the caller then makes a private copy. The returned descriptor
 * holds a shared `flock` that marks the copy in use: keep it open while
 * the copy is mapped.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { openShareDir, sharedCopy } from "./share.ts";
 * const c = libc();
 * const dir = openShareDir(c, "/dev/shm/page-primer-0");
 * if (typeof dir !== "string") {
 *   const exe = c.openRead("/proc/self/exe");
 *   const layout = { len: 2 << 20, head: 0, dataLen: 4096, fileOffset: 0 };
 *   const request = { path: "/proc/self/exe", buildId: "00", exeFd: exe, layout };
 *   console.log(sharedCopy(c, dir, request));
 * }
 * ```
 */
export function sharedCopy(
  c: Libc,
  dir: ShareDir,
  request: CopyRequest,
): SharedCopy | string {
  const name = copyName(request.path, request.buildId, request.layout);
  const full = `${dir.path}/${name}`;
  const openCopy = () => c.openAt(dir.fd, name, O_NOFOLLOW);
  let fd: number;
  let created = false;
  try {
    try {
      fd = openCopy();
    } catch (e) {
      if (!(e instanceof SyscallError) || e.errno !== ERRNO.ENOENT) throw e;
      // Counted as created only when our link won: with processes
      // starting at once, one copy is made and the others reuse it.
      created = create(c, dir, { ...request, name });
      fd = openCopy();
    }
  } catch (e) {
    return `${full}: ${e instanceof Error ? e.message : e}`;
  }
  const problem = copyProblem(c.fstat(fd), c.geteuid(), request.layout.len) ??
    (sameBytes(c, fd, request)
      ? undefined
      : "its bytes differ from the executable's (tampered with or corrupt)");
  if (problem !== undefined) {
    c.close(fd);
    return `${full} rejected: ${problem}; delete it (rm ${full}) to let page-primer recreate it`;
  }
  // Held while mapped (until exit or restore): marks the copy in use.
  c.tryLock(fd, false);
  return { fd, path: full, created };
}

/**
 * Deletes the shared copies in `options.dir` (default directory when
 * omitted); processes mapping them keep their pages until they exit or
 * restore. Returns the names deleted.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { clearSharedCopies } from "./share.ts";
 * console.log(clearSharedCopies(libc()));
 * ```
 */
export function clearSharedCopies(
  c: Libc,
  options: ShareOptions = {},
): string[] {
  const path = options.dir ??
    defaultShareDir(c.geteuid(), c.getenv("XDG_RUNTIME_DIR"));
  let fd: number;
  try {
    fd = c.open(path, O_DIRECTORY | O_NOFOLLOW);
  } catch (e) {
    if (e instanceof SyscallError && e.errno === ERRNO.ENOENT) return [];
    throw e;
  }
  try {
    const removed: string[] = [];
    for (const name of c.listDir(fd)) {
      c.unlinkAt(fd, name);
      removed.push(name);
    }
    return removed;
  } finally {
    c.close(fd);
  }
}
