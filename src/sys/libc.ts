/**
 * The libc functions page-primer calls, with errno turned into
 * {@linkcode SyscallError}. Runtime-neutral: binding goes through
 * `ffi.ts`.
 *
 * @module
 */

import type { ByteSource } from "./elf.ts";
import {
  addressOf,
  memory,
  type NativeLibrary,
  openLibrary,
  readCString,
  runtimeInfo,
} from "./ffi.ts";

/** The libc symbol table: one definition for both runtimes. Pointers are `u64`. */
export const LIBC_SYMBOLS = {
  __errno_location: { args: [], returns: "u64" },
  strerror: { args: ["i32"], returns: "u64" },
  getpid: { args: [], returns: "i32" },
  open: { args: ["u64", "i32", "i32"], returns: "i32" },
  read: { args: ["i32", "u64", "u64"], returns: "i64" },
  pread64: { args: ["i32", "u64", "u64", "i64"], returns: "i64" },
  lseek64: { args: ["i32", "i64", "i32"], returns: "i64" },
  close: { args: ["i32"], returns: "i32" },
  readlink: { args: ["u64", "u64", "u64"], returns: "i64" },
  getenv: { args: ["u64"], returns: "u64" },
  uname: { args: ["u64"], returns: "i32" },
  sysconf: { args: ["i32"], returns: "i64" },
  getauxval: { args: ["u64"], returns: "u64" },
  dl_iterate_phdr: { args: ["u64", "u64"], returns: "i32" },
  mlock: { args: ["u64", "u64"], returns: "i32" },
  mlock2: { args: ["u64", "u64", "u32"], returns: "i32", optional: true },
  munlock: { args: ["u64", "u64"], returns: "i32" },
  madvise: { args: ["u64", "u64", "i32"], returns: "i32" },
  mprotect: { args: ["u64", "u64", "i32"], returns: "i32" },
  ioctl: { args: ["i32", "u64", "u64"], returns: "i32" },
  getrlimit: { args: ["i32", "u64"], returns: "i32" },
  setrlimit: { args: ["i32", "u64"], returns: "i32" },
  prctl: { args: ["i32", "u64", "u64", "u64", "u64"], returns: "i32" },
  mmap: { args: ["u64", "u64", "i32", "i32", "i32", "i64"], returns: "i64" },
  munmap: { args: ["u64", "u64"], returns: "i32" },
  memfd_create: { args: ["u64", "u32"], returns: "i32", optional: true },
  write: { args: ["i32", "u64", "u64"], returns: "i64" },
  ftruncate: { args: ["i32", "i64"], returns: "i32" },
  fstat: { args: ["i32", "u64"], returns: "i32", optional: true },
  openat: { args: ["i32", "u64", "i32", "i32"], returns: "i32" },
  linkat: { args: ["i32", "u64", "i32", "u64", "i32"], returns: "i32" },
  unlinkat: { args: ["i32", "u64", "i32"], returns: "i32" },
  mkdir: { args: ["u64", "u32"], returns: "i32" },
  geteuid: { args: [], returns: "u32" },
  memcmp: { args: ["u64", "u64", "u64"], returns: "i32" },
  fstatvfs: { args: ["i32", "u64"], returns: "i32" },
  pwrite64: { args: ["i32", "u64", "u64", "i64"], returns: "i64" },
  fdopendir: { args: ["i32"], returns: "u64" },
  readdir: { args: ["u64"], returns: "u64" },
  closedir: { args: ["u64"], returns: "i32" },
  dup: { args: ["i32"], returns: "i32" },
  flock: { args: ["i32", "i32"], returns: "i32" },
  __fxstat64: { args: ["i32", "i32", "u64"], returns: "i32", optional: true },
  // In libc since glibc 2.34 (libdl before): pins a loaded library.
  dlopen: { args: ["u64", "i32"], returns: "u64", optional: true },
  dlclose: { args: ["u64"], returns: "i32", optional: true },
  dlsym: { args: ["u64", "u64"], returns: "u64", optional: true },
} as const;

/** Library names tried, in order, to find libc. */
export const LIBC_NAMES: readonly string[] = [
  "libc.so.6",
  "libc.musl-x86_64.so.1",
  "libc.musl-aarch64.so.1",
];

/** What `fstat` tells. */
export interface FileStat {
  /** Device. */
  dev: number;
  /** Inode. */
  ino: number;
  /** Bytes. */
  size: number;
  /** Hard links. */
  nlink: number;
  /** Type and permission bits (`st_mode`). */
  mode: number;
  /** Owner. */
  uid: number;
}

const AT_FDCWD = -100;
const RTLD_LAZY = 1;
const RTLD_NOLOAD = 4;
const RTLD_NODELETE = 0x1000;
/** `dlsym` handle: the global scope, in load order. */
const RTLD_DEFAULT = 0;

/** `getauxval` keys. */
export const AT_PHDR = 3;
/** Number of program headers of the main executable. */
export const AT_PHNUM = 5;
/** Page size. */
export const AT_PAGESZ = 6;

/** `mmap`/`mprotect` protection: no access. */
export const PROT_NONE = 0;
/** `mmap` protection: readable. */
export const PROT_READ = 1;
/** `mmap` protection: writable. */
export const PROT_WRITE = 2;
/** `mmap` protection: executable. */
export const PROT_EXEC = 4;
/** `mmap` flag: private mapping. */
export const MAP_PRIVATE = 0x02;
/** `mmap` flag: anonymous mapping. */
export const MAP_ANONYMOUS = 0x20;
/** `memfd_create` flag: the descriptor is closed on exec. */
export const MFD_CLOEXEC = 1;

/** `mmap` flag: at exactly this address, failing with EEXIST if taken (4.17+). */
export const MAP_FIXED_NOREPLACE = 0x100000;
/** `prctl`: is THP disabled for this process? */
export const PR_GET_THP_DISABLE = 42;

/** `madvise` advice. */
export const MADV_WILLNEED = 3;
/** Prefault page tables readable (Linux 5.14+). */
export const MADV_POPULATE_READ = 22;
/** Collapse the range into huge pages now (Linux 6.1+). */
export const MADV_COLLAPSE = 25;
/** `mlock2` flag: lock pages as they are faulted in. */
export const MLOCK_ONFAULT = 1;
/** `getrlimit` resource: locked-in-memory bytes. */
export const RLIMIT_MEMLOCK = 8;

const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
/** `open` flags. */
export const O_RDWR = 2;
/** Create the file. */
export const O_CREAT = 0o100;
/** With `O_CREAT`: fail if it exists. */
export const O_EXCL = 0o200;
/** Fail on a symbolic link. */
export const O_NOFOLLOW = 0o400000;
/** Fail unless a directory. */
export const O_DIRECTORY = 0o200000;
/** `statvfs` flag: the mount forbids execution. */
export const ST_NOEXEC = 8;
/** `st_mode` file type mask. */
export const S_IFMT = 0o170000;
/** `st_mode` type: a regular file. */
export const S_IFREG = 0o100000;
/** `st_mode` type: a directory. */
export const S_IFDIR = 0o040000;

/**
 * A {@linkcode ByteSource} over an open file, read with `pread`, for the ELF
 * parser.
 *
 * @example
 * ```ts ignore
 * import { fdSource, libc } from "./libc.ts";
 * import { parseElf } from "./elf.ts";
 * const c = libc();
 * const fd = c.openRead("/proc/self/exe");
 * console.log(parseElf(fdSource(c, fd, c.fileSize(fd))).buildId);
 * ```
 */
export function fdSource(
  c: { pread(fd: number, offset: number, length: number): Uint8Array },
  fd: number,
  size: number,
): ByteSource {
  return { size, read: (offset, length) => c.pread(fd, offset, length) };
}
const SEEK_END = 2;

/** A failed step: which call, which errno, and a message saying what to do. */
export interface StepError {
  /** The step that failed, e.g. `"mlock"`, `"madvise(MADV_POPULATE_READ)"`. */
  step: string;
  /** The errno name, e.g. `"ENOMEM"`. */
  code: string;
  /** The errno value. */
  errno: number;
  /** What failed and what to do about it. */
  message: string;
}

/**
 * Linux errno values by name: the generic table (`asm-generic/errno-base.h`
 * and `errno.h`) that x86_64 and aarch64 use, 1 to 133. 41 and 58 are
 * unused; `EWOULDBLOCK` and `EDEADLOCK` are the aliases of `EAGAIN` and
 * `EDEADLK`.
 *
 * @example
 * ```ts
 * import { ERRNO } from "./libc.ts";
 * import assert from "node:assert/strict";
 * assert.equal(ERRNO.EROFS, 30);
 * ```
 */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  ENOEXEC: 8,
  EBADF: 9,
  ECHILD: 10,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  ENOTBLK: 15,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  ETXTBSY: 26,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EMLINK: 31,
  EPIPE: 32,
  EDOM: 33,
  ERANGE: 34,
  EDEADLK: 35,
  ENAMETOOLONG: 36,
  ENOLCK: 37,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENOMSG: 42,
  EIDRM: 43,
  ECHRNG: 44,
  EL2NSYNC: 45,
  EL3HLT: 46,
  EL3RST: 47,
  ELNRNG: 48,
  EUNATCH: 49,
  ENOCSI: 50,
  EL2HLT: 51,
  EBADE: 52,
  EBADR: 53,
  EXFULL: 54,
  ENOANO: 55,
  EBADRQC: 56,
  EBADSLT: 57,
  EBFONT: 59,
  ENOSTR: 60,
  ENODATA: 61,
  ETIME: 62,
  ENOSR: 63,
  ENONET: 64,
  ENOPKG: 65,
  EREMOTE: 66,
  ENOLINK: 67,
  EADV: 68,
  ESRMNT: 69,
  ECOMM: 70,
  EPROTO: 71,
  EMULTIHOP: 72,
  EDOTDOT: 73,
  EBADMSG: 74,
  EOVERFLOW: 75,
  ENOTUNIQ: 76,
  EBADFD: 77,
  EREMCHG: 78,
  ELIBACC: 79,
  ELIBBAD: 80,
  ELIBSCN: 81,
  ELIBMAX: 82,
  ELIBEXEC: 83,
  EILSEQ: 84,
  ERESTART: 85,
  ESTRPIPE: 86,
  EUSERS: 87,
  ENOTSOCK: 88,
  EDESTADDRREQ: 89,
  EMSGSIZE: 90,
  EPROTOTYPE: 91,
  ENOPROTOOPT: 92,
  EPROTONOSUPPORT: 93,
  ESOCKTNOSUPPORT: 94,
  EOPNOTSUPP: 95,
  EPFNOSUPPORT: 96,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ENETRESET: 102,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  ENOBUFS: 105,
  EISCONN: 106,
  ENOTCONN: 107,
  ESHUTDOWN: 108,
  ETOOMANYREFS: 109,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTDOWN: 112,
  EHOSTUNREACH: 113,
  EALREADY: 114,
  EINPROGRESS: 115,
  ESTALE: 116,
  EUCLEAN: 117,
  ENOTNAM: 118,
  ENAVAIL: 119,
  EISNAM: 120,
  EREMOTEIO: 121,
  EDQUOT: 122,
  ENOMEDIUM: 123,
  EMEDIUMTYPE: 124,
  ECANCELED: 125,
  ENOKEY: 126,
  EKEYEXPIRED: 127,
  EKEYREVOKED: 128,
  EKEYREJECTED: 129,
  EOWNERDEAD: 130,
  ENOTRECOVERABLE: 131,
  ERFKILL: 132,
  EHWPOISON: 133,
} as const;

const ERRNO_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(ERRNO).map(([name, n]) => [n, name]),
);

/**
 * The symbolic name of an errno value (`"ENOMEM"`), or `"E<n>"` when unknown.
 *
 * @example
 * ```ts
 * import { errnoName } from "./libc.ts";
 * import assert from "node:assert/strict";
 * assert.equal(errnoName(12), "ENOMEM");
 * ```
 */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}

/** The errnos of a call the system does not let this process make. */
const REFUSED: ReadonlySet<number> = new Set([
  ERRNO.EPERM,
  ERRNO.EACCES,
  ERRNO.ENOSYS,
]);

/** What page-primer needs a call for, when the system refuses it. */
const NEEDED_FOR: Readonly<Record<string, string>> = {
  memfd_create:
    "page-primer loads its trampoline from a memfd (and the memfd backend and share: true stage their copies in one): allow memfd_create for this process, or set PAGE_PRIMER_TRAMPOLINE to the path of a built primer.so",
};

/**
 * Explains a failed call that stopped a run: a call the system refuses
 * (`EPERM`, `EACCES` or `ENOSYS` from a seccomp filter or a security
 * module) is named as such, with what page-primer needs it for and what to
 * do; other failures keep their message.
 *
 * @example
 * ```ts
 * import { explainFailure, SyscallError } from "./libc.ts";
 * import assert from "node:assert/strict";
 * const e = new SyscallError("memfd_create", 1, "Operation not permitted");
 * assert.match(explainFailure(e), /^memfd_create was refused \(EPERM\): /);
 * ```
 */
export function explainFailure(e: SyscallError): string {
  if (!REFUSED.has(e.errno)) return e.message;
  return `${e.call} was refused (${e.code}): the system does not let this process make that call (a seccomp filter such as a container's seccomp profile, systemd's SystemCallFilter= or a sandbox, or a security module); ${
    NEEDED_FOR[e.call] ?? `allow ${e.call} for this process`
  }`;
}

/** A libc call failed; carries the call, errno and its name. */
export class SyscallError extends Error {
  /** The libc function that failed, e.g. `"mlock"`. */
  readonly call: string;
  /** The errno value. */
  readonly errno: number;
  /** The errno name, e.g. `"ENOMEM"`. */
  readonly code: string;
  /**
   * Makes the error from the call and its errno.
   *
   * @param call The libc function that failed.
   * @param errno The errno it left.
   * @param detail The system's description of the errno.
   */
  constructor(call: string, errno: number, detail: string) {
    super(`${call} failed: ${errnoName(errno)} (${detail})`);
    this.name = "SyscallError";
    this.call = call;
    this.errno = errno;
    this.code = errnoName(errno);
  }
}

/** `getrlimit` result; `Infinity` stands for `RLIM_INFINITY`. */
export interface Rlimit {
  /** Soft limit in bytes. */
  cur: number;
  /** Hard limit in bytes. */
  max: number;
}

function cstr(s: string): Uint8Array {
  const b = new TextEncoder().encode(s);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

function u64ToNumber(lo: number, hi: number): number {
  if (hi === 0xffffffff && lo === 0xffffffff) return Infinity;
  return hi * 2 ** 32 + lo;
}

/**
 * Thin wrappers over libc. Every failing call throws {@linkcode SyscallError}.
 * Get the process-wide instance with {@linkcode libc}.
 */
export class Libc {
  /** The underlying library. */
  readonly lib: NativeLibrary<typeof LIBC_SYMBOLS>;
  #errno: Int32Array | undefined;

  /**
   * Wraps an opened libc; use {@linkcode libc} instead.
   *
   * @param lib An opened libc.
   */
  constructor(lib: NativeLibrary<typeof LIBC_SYMBOLS>) {
    this.lib = lib;
  }

  #fn(name: keyof typeof LIBC_SYMBOLS) {
    const f = this.lib.symbols[name];
    if (f === undefined) {
      throw new SyscallError(name, ERRNO.ENOSYS, "not provided by this libc");
    }
    return f;
  }

  /** The calling thread's errno. */
  errno(): number {
    if (this.#errno === undefined) {
      const at = this.#fn("__errno_location")();
      const m = memory(at, 4);
      this.#errno = new Int32Array(m.buffer, m.byteOffset, 1);
    }
    return this.#errno[0];
  }

  #fail(call: string): never {
    const e = this.errno();
    let detail = "";
    try {
      detail = readCString(this.#fn("strerror")(e), 256);
    } catch {
      detail = "unknown error";
    }
    throw new SyscallError(call, e, detail);
  }

  #check(call: string, r: number): number {
    if (r < 0) this.#fail(call);
    return r;
  }

  /** True when the optional function `name` exists in this libc. */
  has(name: keyof typeof LIBC_SYMBOLS): boolean {
    return this.lib.symbols[name] !== undefined;
  }

  /** `getpid()`. */
  getpid(): number {
    return this.#fn("getpid")();
  }

  /** `getauxval(key)`; 0 when absent. */
  getauxval(key: number): number {
    return this.#fn("getauxval")(key);
  }

  /** `sysconf(_SC_PAGESIZE)`. */
  pageSize(): number {
    return this.#check("sysconf", this.#fn("sysconf")(30));
  }

  /** `getenv(name)`: no runtime permission involved. */
  getenv(name: string): string | undefined {
    const b = cstr(name);
    const p = this.#fn("getenv")(addressOf(b));
    return p === 0 ? undefined : readCString(p, 1 << 16);
  }

  /** `uname()`: the kernel release, e.g. `"6.18.44"`. */
  kernelRelease(): string {
    const buf = new Uint8Array(65 * 6);
    this.#check("uname", this.#fn("uname")(addressOf(buf)));
    const rel = buf.subarray(65 * 2, 65 * 3);
    const end = rel.indexOf(0);
    return new TextDecoder().decode(rel.subarray(0, end < 0 ? 65 : end));
  }

  /** `open(path, O_RDONLY|O_CLOEXEC)`. */
  openRead(path: string): number {
    const b = cstr(path);
    return this.#check(
      `open(${path})`,
      this.#fn("open")(addressOf(b), O_RDONLY | O_CLOEXEC, 0),
    );
  }

  /** `close(fd)`. */
  close(fd: number): void {
    this.#check("close", this.#fn("close")(fd));
  }

  /** File size through `lseek(fd, 0, SEEK_END)`. */
  fileSize(fd: number): number {
    return this.#check("lseek", this.#fn("lseek64")(fd, 0, SEEK_END));
  }

  /** `pread` exactly `length` bytes at `offset` (fewer only at end of file). */
  pread(fd: number, offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    if (length === 0) return out;
    let done = 0;
    const at = addressOf(out);
    while (done < length) {
      const r = this.#fn("pread64")(
        fd,
        at + done,
        length - done,
        offset + done,
      );
      if (r < 0) {
        if (this.errno() === ERRNO.EINTR) continue;
        this.#fail("pread");
      }
      if (r === 0) break;
      done += r;
    }
    return done === length ? out : out.slice(0, done);
  }

  /**
   * Reads a whole file with `open`/`read`, e.g. `/proc/self/smaps`. Works in
   * Deno with only `--allow-ffi`.
   */
  readFile(path: string): Uint8Array {
    const fd = this.openRead(path);
    try {
      let buf = new Uint8Array(1 << 16);
      let len = 0;
      for (;;) {
        if (len === buf.length) {
          const bigger = new Uint8Array(buf.length * 2);
          bigger.set(buf);
          buf = bigger;
        }
        const r = this.#fn("read")(fd, addressOf(buf) + len, buf.length - len);
        if (r < 0) {
          if (this.errno() === ERRNO.EINTR) continue;
          this.#fail(`read(${path})`);
        }
        if (r === 0) break;
        len += r;
      }
      return buf.slice(0, len);
    } finally {
      this.#fn("close")(fd);
    }
  }

  /**
   * Reads a file through one buffer of `chunkBytes`, handing each chunk
   * read to `onChunk` (a view of the buffer, valid until it returns): for
   * files too large to hold, such as `/proc/self/maps` at
   * `vm.max_map_count`, where a growing buffer could not be allocated.
   */
  readChunks(
    path: string,
    onChunk: (bytes: Uint8Array) => void,
    chunkBytes = 1 << 16,
  ): void {
    const fd = this.openRead(path);
    try {
      const buf = new Uint8Array(chunkBytes);
      for (;;) {
        const r = this.#fn("read")(fd, addressOf(buf), buf.length);
        if (r < 0) {
          if (this.errno() === ERRNO.EINTR) continue;
          this.#fail(`read(${path})`);
        }
        if (r === 0) break;
        onChunk(buf.subarray(0, r));
      }
    } finally {
      this.#fn("close")(fd);
    }
  }

  /** {@linkcode Libc.readFile} decoded as UTF-8. */
  readText(path: string): string {
    return new TextDecoder().decode(this.readFile(path));
  }

  /** {@linkcode Libc.readText}, or `undefined` when the file cannot be read. */
  tryReadText(path: string): string | undefined {
    try {
      return this.readText(path);
    } catch {
      return undefined;
    }
  }

  /** `readlink(path)`. */
  readlink(path: string): string {
    const p = cstr(path);
    const buf = new Uint8Array(4096);
    const n = this.#check(
      `readlink(${path})`,
      this.#fn("readlink")(addressOf(p), addressOf(buf), buf.length),
    );
    return new TextDecoder().decode(buf.subarray(0, n));
  }

  /** `mlock(addr, len)`. */
  mlock(addr: number, len: number): void {
    this.#check("mlock", this.#fn("mlock")(addr, len));
  }

  /** `mlock2(addr, len, flags)`; throws ENOSYS when this libc lacks it. */
  mlock2(addr: number, len: number, flags: number): void {
    this.#check("mlock2", this.#fn("mlock2")(addr, len, flags));
  }

  /** `munlock(addr, len)`. */
  munlock(addr: number, len: number): void {
    this.#check("munlock", this.#fn("munlock")(addr, len));
  }

  /** `madvise(addr, len, advice)`. */
  madvise(addr: number, len: number, advice: number): void {
    this.#check("madvise", this.#fn("madvise")(addr, len, advice));
  }

  /** `mprotect(addr, len, prot)`. */
  mprotect(addr: number, len: number, prot: number): void {
    this.#check("mprotect", this.#fn("mprotect")(addr, len, prot));
  }

  /**
   * `ioctl(fd, request, arg)` with a pointer argument; returns what the
   * kernel returned (negative: see {@linkcode Libc.errno}), for callers
   * that test a feature and read the errno themselves.
   */
  ioctl(fd: number, request: number, arg: number): number {
    return this.#fn("ioctl")(fd, request, arg);
  }

  /** `mmap(...)`; returns the address. */
  mmap(
    addr: number,
    len: number,
    prot: number,
    flags: number,
    fd = -1,
    offset = 0,
  ): number {
    const r = this.#fn("mmap")(addr, len, prot, flags, fd, offset);
    if (r === -1) this.#fail("mmap");
    return r;
  }

  /** `munmap(addr, len)`. */
  munmap(addr: number, len: number): void {
    this.#check("munmap", this.#fn("munmap")(addr, len));
  }

  /** `memfd_create(name, flags)`. */
  memfdCreate(name: string, flags: number): number {
    const b = cstr(name);
    return this.#check(
      "memfd_create",
      this.#fn("memfd_create")(addressOf(b), flags),
    );
  }

  /** `ftruncate(fd, length)`. */
  ftruncate(fd: number, length: number): void {
    this.#check("ftruncate", this.#fn("ftruncate")(fd, length));
  }

  /** Writes all of `bytes` to `fd`. */
  writeAll(fd: number, bytes: Uint8Array): void {
    let done = 0;
    const at = addressOf(bytes);
    while (done < bytes.length) {
      const r = this.#fn("write")(fd, at + done, bytes.length - done);
      if (r < 0) {
        if (this.errno() === ERRNO.EINTR) continue;
        this.#fail("write");
      }
      done += r;
    }
  }

  /**
   * `fstat(fd)`: device, inode, size, and type/permission bits, owner and
   * link count (x86_64 and aarch64 `struct stat`).
   */
  fstat(fd: number): FileStat {
    const buf = new BigUint64Array(18);
    const at = addressOf(buf);
    if (this.has("fstat")) {
      this.#check("fstat", this.#fn("fstat")(fd, at));
    } else {
      this.#check("fstat", this.#fn("__fxstat64")(1, fd, at));
    }
    const words = new Uint32Array(buf.buffer, 0, 8);
    const aarch64 = runtimeInfo().arch === "aarch64";
    return {
      dev: Number(buf[0]),
      ino: Number(buf[1]),
      size: Number(buf[6]),
      // x86_64: nlink u64 @16, mode u32 @24, uid u32 @28;
      // aarch64 (generic): mode u32 @16, nlink u32 @20, uid u32 @24.
      nlink: aarch64 ? words[5] : Number(buf[2]),
      mode: aarch64 ? words[4] : words[6],
      uid: aarch64 ? words[6] : words[7],
    };
  }

  /** `openat(dirfd, name, flags, mode)`; `O_CLOEXEC` is always added. */
  openAt(dirfd: number, name: string, flags: number, mode = 0): number {
    return this.#check(
      `open(${name})`,
      this.#fn("openat")(dirfd, addressOf(cstr(name)), flags | O_CLOEXEC, mode),
    );
  }

  /** `open(path, flags, mode)`; `O_CLOEXEC` is always added. */
  open(path: string, flags: number, mode = 0): number {
    return this.openAt(AT_FDCWD, path, flags, mode);
  }

  /** `linkat(dirfd, from, dirfd, to, 0)`: fails with `EEXIST` rather than replace. */
  linkAt(dirfd: number, from: string, to: string): void {
    this.#check(
      `link(${to})`,
      this.#fn("linkat")(
        dirfd,
        addressOf(cstr(from)),
        dirfd,
        addressOf(cstr(to)),
        0,
      ),
    );
  }

  /** `unlinkat(dirfd, name, 0)`. */
  unlinkAt(dirfd: number, name: string): void {
    this.#check(
      `unlink(${name})`,
      this.#fn("unlinkat")(dirfd, addressOf(cstr(name)), 0),
    );
  }

  /** `mkdir(path, mode)`; false when it exists already. */
  mkdir(path: string, mode: number): boolean {
    if (this.#fn("mkdir")(addressOf(cstr(path)), mode) === 0) return true;
    if (this.errno() === ERRNO.EEXIST) return false;
    this.#fail(`mkdir(${path})`);
  }

  /**
   * `flock(fd, op)` without blocking: true when the lock was taken, false
   * when another open file holds a conflicting one. `exclusive` false
   * takes a shared lock.
   */
  tryLock(fd: number, exclusive: boolean): boolean {
    const op = (exclusive ? 2 : 1) | 4; // LOCK_EX or LOCK_SH, LOCK_NB
    if (this.#fn("flock")(fd, op) === 0) return true;
    if (this.errno() === ERRNO.EAGAIN) return false; // EWOULDBLOCK
    this.#fail("flock");
  }

  /** `geteuid()`. */
  geteuid(): number {
    return this.#fn("geteuid")();
  }

  /** True when `len` bytes at `a` and `b` are equal (`memcmp`). */
  memEqual(a: number, b: number, len: number): boolean {
    return len === 0 || this.#fn("memcmp")(a, b, len) === 0;
  }

  /** The mount flags (`ST_*`) of the file system holding `fd` (`fstatvfs`). */
  mountFlags(fd: number): number {
    const buf = new BigUint64Array(14);
    this.#check("fstatvfs", this.#fn("fstatvfs")(fd, addressOf(buf)));
    return Number(buf[9]);
  }

  /** Writes all of `bytes` at `offset` of `fd` (`pwrite`). */
  pwriteAll(fd: number, bytes: Uint8Array, offset: number): void {
    let done = 0;
    const at = addressOf(bytes);
    while (done < bytes.length) {
      const r = this.#fn("pwrite64")(
        fd,
        at + done,
        bytes.length - done,
        offset + done,
      );
      if (r < 0) {
        if (this.errno() === ERRNO.EINTR) continue;
        this.#fail("pwrite");
      }
      done += r;
    }
  }

  /** The names in the directory open as `dirfd` (not `.` and `..`). */
  listDir(dirfd: number): string[] {
    const dir = this.#fn("fdopendir")(
      this.#check("dup", this.#fn("dup")(dirfd)),
    );
    if (dir === 0) this.#fail("fdopendir");
    const names: string[] = [];
    try {
      for (;;) {
        const ent = this.#fn("readdir")(dir);
        if (ent === 0) break;
        const name = readCString(ent + 19, 256); // struct dirent64 d_name
        if (name !== "." && name !== "..") names.push(name);
      }
    } finally {
      this.#fn("closedir")(dir);
    }
    return names;
  }

  /** `prctl(option, a2, a3, a4, a5)`; returns the result. */
  prctl(option: number, a2 = 0, a3 = 0, a4 = 0, a5 = 0): number {
    return this.#check("prctl", this.#fn("prctl")(option, a2, a3, a4, a5));
  }

  /** `getrlimit(resource)`. */
  getrlimit(resource: number): Rlimit {
    const buf = new Uint32Array(4);
    this.#check("getrlimit", this.#fn("getrlimit")(resource, addressOf(buf)));
    return {
      cur: u64ToNumber(buf[0], buf[1]),
      max: u64ToNumber(buf[2], buf[3]),
    };
  }

  /** `setrlimit(resource, limit)`; `Infinity` means `RLIM_INFINITY`. */
  setrlimit(resource: number, limit: Rlimit): void {
    const buf = new Uint32Array(4);
    const put = (i: number, v: number) => {
      if (v === Infinity) {
        buf[i] = 0xffffffff;
        buf[i + 1] = 0xffffffff;
      } else {
        buf[i] = v % 2 ** 32;
        buf[i + 1] = Math.floor(v / 2 ** 32);
      }
    };
    put(0, limit.cur);
    put(2, limit.max);
    this.#check("setrlimit", this.#fn("setrlimit")(resource, addressOf(buf)));
  }

  /**
   * Takes a reference on the already loaded library `name`
   * (`dlopen(name, RTLD_LAZY | RTLD_NOLOAD)`), so it cannot be unloaded
   * until {@linkcode Libc.unpin}; `undefined` when it is not loaded (any
   * more) or this libc cannot tell.
   */
  pin(name: string): number | undefined {
    if (!this.has("dlopen") || !this.has("dlclose")) return undefined;
    const b = cstr(name);
    const handle = Number(
      this.#fn("dlopen")(addressOf(b), RTLD_LAZY | RTLD_NOLOAD),
    );
    return handle === 0 ? undefined : handle;
  }

  /**
   * Makes the already loaded library `name` stay loaded until the process
   * exits, whoever closes it (`dlopen(RTLD_NOLOAD | RTLD_NODELETE)`); false
   * when it is not loaded or this libc cannot.
   */
  keepLoaded(name: string): boolean {
    if (!this.has("dlopen")) return false;
    const b = cstr(name);
    return Number(
      this.#fn("dlopen")(addressOf(b), RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE),
    ) !== 0;
  }

  /** Drops a reference taken by {@linkcode Libc.pin}. */
  unpin(handle: number): void {
    this.#fn("dlclose")(handle);
  }

  /**
   * The address of `name` in the process's global scope
   * (`dlsym(RTLD_DEFAULT, name)`), or 0 when it is not there or this libc
   * cannot look.
   */
  symbolAddress(name: string): number {
    if (!this.has("dlsym")) return 0;
    const b = cstr(name);
    return Number(this.#fn("dlsym")(RTLD_DEFAULT, addressOf(b)));
  }

  /**
   * `dl_iterate_phdr(callback, data)`. The loader holds its write lock while
   * `callback` runs: a JavaScript callback can deadlock with another
   * thread's `dlopen` (see `src/sys/loader.ts`, which lists objects without
   * one).
   */
  dlIteratePhdr(callback: number, data: number): number {
    return this.#fn("dl_iterate_phdr")(callback, data);
  }
}

let instance: Libc | undefined;

/**
 * The process-wide libc binding, opened on first use.
 *
 * @example
 * ```ts ignore
 * import { libc } from "./libc.ts";
 * console.log(libc().getpid());
 * ```
 *
 * @throws {import("./ffi.ts").FfiUnavailableError} When FFI is not permitted or libc cannot be found.
 */
export function libc(): Libc {
  if (instance === undefined) {
    instance = new Libc(openLibrary(LIBC_NAMES, LIBC_SYMBOLS));
  }
  return instance;
}
