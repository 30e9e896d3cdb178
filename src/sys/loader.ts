/**
 * The dynamic loader's list of loaded objects, read without running
 * JavaScript under the loader's lock, and the shipped shared object (the
 * trampoline) that does the reading.
 *
 * `dl_iterate_phdr` holds the loader's write lock while its callback runs.
 * A JavaScript callback there may make the runtime start a thread, and
 * `pthread_create` waits for the loader's TLS lock, which another thread's
 * `dlopen` holds while it waits for the write lock: both wait forever. So the
 * callback is native (`pp_list_objects` of `trampoline/objects.c`): it copies
 * each object's bias, name and program headers into a buffer that is read
 * here after the lock is released. The shared object is loaded for the
 * listing from its own memfd and closed again, so nothing stays loaded.
 *
 * @module
 */

import { PHDR_SIZE } from "./elf.ts";
import {
  addressOf,
  type BoundFunction,
  callback,
  memory,
  openLibrary,
  readCString,
  runtimeInfo,
} from "./ffi.ts";
import { type Libc, MFD_CLOEXEC, SyscallError } from "./libc.ts";
import { PP_OBJECT, PP_OBJECT_WORDS } from "./trampoline_abi.ts";
import { TRAMPOLINE_SO_BASE64 } from "./trampoline_so.ts";

/** One loaded object as the loader reports it. */
export interface PhdrInfo {
  /** Load bias (`dlpi_addr`). */
  bias: number;
  /** Name as the loader knows it; `""` for the main executable. */
  name: string;
  /** Address of its program header table in memory. */
  phdr: number;
  /** Number of program headers. */
  phnum: number;
  /**
   * The program header table, copied while the loader held its lock (a
   * library may be unloaded as soon as `dl_iterate_phdr` returns).
   */
  phdrBytes: Uint8Array;
}

/**
 * The machines page-primer ships its shared object for, as
 * `runtimeInfo().arch` names them.
 *
 * @example
 * ```ts
 * import { TRAMPOLINE_ARCHES } from "./loader.ts";
 * console.log(TRAMPOLINE_ARCHES.includes("aarch64")); // true
 * ```
 */
export const TRAMPOLINE_ARCHES: readonly string[] = Object.keys(
  TRAMPOLINE_SO_BASE64,
);

/**
 * The memfd name the object lister is loaded from (maps:
 * `/memfd:page-primer-lister`); never a region to remap.
 *
 * @example
 * ```ts
 * import { LISTER_MEMFD_NAME } from "./loader.ts";
 * console.log(LISTER_MEMFD_NAME); // "page-primer-lister"
 * ```
 */
export const LISTER_MEMFD_NAME = "page-primer-lister";

/** The lister's one function. */
const LISTER_SYMBOLS = {
  pp_list_objects: { args: ["u64", "u64", "u64"], returns: "u64" },
} as const;

/**
 * Bytes first offered to the lister (Deno's and Bun's lists take 4-6 KiB);
 * it says when it needs more.
 */
const LIST_FIRST_BYTES = 16 * 1024;

/** Times the list is asked for again when objects were loaded meanwhile. */
const LIST_TRIES = 8;

function decodeBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * The shipped shared object for this machine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shippedSharedObject } from "./loader.ts";
 * const so = shippedSharedObject();
 * assert.deepEqual([...so.subarray(1, 4)], [0x45, 0x4c, 0x46]); // "ELF"
 * ```
 *
 * @throws {Error} On a machine page-primer ships no shared object for.
 */
export function shippedSharedObject(): Uint8Array {
  return shipped ??= decodeBase64(shippedBase64());
}

/** The decoded bytes, once per realm (decoding takes 0.1-0.2 ms). */
let shipped: Uint8Array | undefined;

function shippedBase64(): string {
  const arch = runtimeInfo().arch;
  const b64 = (TRAMPOLINE_SO_BASE64 as Record<string, string | undefined>)[
    arch
  ];
  if (b64 === undefined) {
    throw new Error(
      `page-primer ships its trampoline for ${
        TRAMPOLINE_ARCHES.join(" and ")
      } only, this machine is ${arch}: set PAGE_PRIMER_TRAMPOLINE to one built for it`,
    );
  }
  return b64;
}

/**
 * The shipped shared object in a new memfd named `name`: its descriptor, and
 * the path to load it by (`/proc/<pid>/fd/N`, a name other processes such
 * as gdb can open too).
 *
 * @example
 * ```ts ignore
 * import { libc } from "./libc.ts";
 * import { sharedObjectMemfd } from "./loader.ts";
 * const c = libc();
 * const { fd, path } = sharedObjectMemfd(c, "page-primer-example");
 * console.log(path);
 * c.close(fd);
 * ```
 *
 * @throws {Error} When this libc has no `memfd_create`.
 * @throws {import("./libc.ts").SyscallError} When `memfd_create` or `write` fails.
 */
export function sharedObjectMemfd(
  c: Libc,
  name: string,
): { fd: number; path: string } {
  if (!c.has("memfd_create")) {
    throw new Error(
      "this libc has no memfd_create (glibc < 2.27?): set PAGE_PRIMER_TRAMPOLINE to a built primer.so",
    );
  }
  const bytes = shippedSharedObject();
  const fd = c.memfdCreate(name, MFD_CLOEXEC);
  try {
    c.writeAll(fd, bytes);
  } catch (e) {
    c.close(fd);
    throw e;
  }
  return { fd, path: `/proc/${c.getpid()}/fd/${fd}` };
}

/**
 * Every object the loader has loaded, in its order: the main program first
 * (name `""`), then each shared library, with its program headers copied
 * while the loader held its lock (listers, this one's and other threads',
 * left out by their name).
 *
 * The copying is done by native code, so no JavaScript runs while the
 * loader's lock is held (see the module doc). Only where the shipped object
 * cannot be loaded (another machine, no `memfd_create`, a sandbox) is a
 * JavaScript callback used; that one can hang when another thread calls
 * `dlopen` at the same moment.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { libc } from "./libc.ts";
 * import { listLoadedObjects } from "./loader.ts";
 * const objects = listLoadedObjects(libc());
 * assert.equal(objects[0].name, "");
 * assert.ok(objects.some((o) => o.name.includes("libc.so")));
 * ```
 */
export function listLoadedObjects(
  c: Libc,
  options: ListOptions = {},
): PhdrInfo[] {
  const { fallback = true } = options;
  const iterate = c.symbolAddress("dl_iterate_phdr");
  let lister;
  try {
    lister = iterate === 0 ? undefined : openLister(c);
  } catch (e) {
    if (!fallback || !isLasting(e)) throw e;
  }
  if (lister === undefined) {
    if (!fallback) {
      throw new Error(
        "this libc has no dlsym or dl_iterate_phdr: cannot list the loaded objects natively",
      );
    }
    return listWithCallback(c);
  }
  try {
    const listers = listerPrefix(c);
    return listNative(iterate, lister.list).filter((o) =>
      !o.name.startsWith(listers)
    );
  } finally {
    lister.close();
  }
}

/**
 * Options of {@linkcode listLoadedObjects}.
 *
 * @example
 * ```ts
 * import { libc } from "./libc.ts";
 * import { listLoadedObjects } from "./loader.ts";
 * // Native or nothing: throws rather than use a JavaScript callback.
 * console.log(listLoadedObjects(libc(), { fallback: false }).length > 0); // true
 * ```
 */
export interface ListOptions {
  /**
   * Where the native lister cannot be loaded (another machine, no
   * `memfd_create`, refused by a sandbox or by the loader), list through a
   * JavaScript callback instead of throwing. A `memfd_create` or `write`
   * that fails for want of descriptors or memory is thrown either way:
   * trying again later mends that, and the callback could hang.
   *
   * @default {true}
   */
  fallback?: boolean;
}

/** Errors of loading the lister that trying again will not mend. */
const LASTING_ERRNOS: readonly string[] = ["EPERM", "EACCES", "ENOSYS"];

/**
 * True when the lister cannot be loaded in this process for good, so the
 * JavaScript callback is the only way to list.
 */
function isLasting(e: unknown): boolean {
  if (e instanceof SyscallError) return LASTING_ERRNOS.includes(e.code);
  // No shipped object for this machine, no memfd_create in this libc, or
  // the loader refused the object (noexec, a seccomp policy on PROT_EXEC).
  return true;
}

/**
 * The start of the names listers are loaded under,
 * `/proc/<pid>/task/<pid>/fd/`: the process's descriptors, under a name the
 * trampoline (`/proc/<pid>/fd/N`) and other code do not use, so a lister is
 * told apart by its name alone, even one another thread unloads meanwhile.
 */
function listerPrefix(c: Libc): string {
  const pid = c.getpid();
  return `/proc/${pid}/task/${pid}/fd/`;
}

/**
 * True when the object the loader knows as `name` was loaded from a memfd
 * named `memfdName` whose descriptor is still open (`/proc/<pid>/fd/N`
 * naming `/memfd:<memfdName>`); false for a file, or a closed descriptor.
 *
 * @example
 * ```ts ignore
 * import { libc } from "./libc.ts";
 * import { LISTER_MEMFD_NAME, loadedFromMemfd } from "./loader.ts";
 * console.log(loadedFromMemfd(libc(), "/usr/lib/libc.so.6", LISTER_MEMFD_NAME)); // false
 * ```
 */
export function loadedFromMemfd(
  c: Libc,
  name: string,
  memfdName: string,
): boolean {
  if (!name.startsWith(`/proc/${c.getpid()}/fd/`)) return false;
  try {
    return c.readlink(name).startsWith(`/memfd:${memfdName}`);
  } catch {
    return false; // its descriptor was closed
  }
}

/** The shipped object loaded from its own memfd, for one listing. */
function openLister(
  c: Libc,
): { path: string; list: BoundFunction; close(): void } {
  const { fd } = sharedObjectMemfd(c, LISTER_MEMFD_NAME);
  const path = `${listerPrefix(c)}${fd}`;
  let lib;
  try {
    lib = openLibrary([path], LISTER_SYMBOLS);
  } catch (e) {
    c.close(fd);
    throw e;
  }
  return {
    path,
    list: lib.symbols.pp_list_objects!,
    // Unloaded before its descriptor closes: while it is loaded, its name
    // names it.
    close: () => {
      lib.close();
      c.close(fd);
    },
  };
}

/** Asks the lister until the list fits the buffer, then reads it. */
function listNative(
  iterate: number,
  list: BoundFunction,
): PhdrInfo[] {
  let size = LIST_FIRST_BYTES;
  for (let i = 0; i < LIST_TRIES; i++) {
    const buf = new Uint8Array(size);
    const used = list(iterate, addressOf(buf), size);
    if (used === 0) {
      throw new Error(
        "dl_iterate_phdr gave a smaller dl_phdr_info than glibc's: cannot list the loaded objects",
      );
    }
    if (used <= size) return parseObjectList(buf.subarray(0, used));
    size = used + LIST_FIRST_BYTES;
  }
  throw new Error(
    `the list of loaded objects kept growing over ${LIST_TRIES} tries: libraries are being loaded in a loop; try again later`,
  );
}

/**
 * Reads the records `pp_list_objects` wrote (`struct pp_object`, the name
 * padded to 8 bytes, the program headers).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseObjectList } from "./loader.ts";
 * const buf = new Uint8Array(32 + 8);
 * const w = new DataView(buf.buffer);
 * w.setBigUint64(0, 0x1000n, true); // bias
 * w.setBigUint64(24, 3n, true); // name_len
 * buf.set([0x61, 0x62, 0x63], 32); // "abc"
 * assert.deepEqual(parseObjectList(buf), [
 *   { bias: 0x1000, name: "abc", phdr: 0, phnum: 0, phdrBytes: new Uint8Array(0) },
 * ]);
 * ```
 *
 * @throws {RangeError} When a record runs past the end of `bytes`.
 */
export function parseObjectList(bytes: Uint8Array): PhdrInfo[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const word = (at: number, field: keyof typeof PP_OBJECT) =>
    Number(view.getBigUint64(at + PP_OBJECT[field] * 8, true));
  const out: PhdrInfo[] = [];
  let at = 0;
  while (at < bytes.length) {
    const nameLen = word(at, "nameLen");
    const phnum = word(at, "phnum");
    const nameAt = at + PP_OBJECT_WORDS * 8;
    const phdrAt = nameAt + Math.ceil(nameLen / 8) * 8;
    const end = phdrAt + phnum * PHDR_SIZE;
    if (end > bytes.length) {
      throw new RangeError(
        `loaded object record at byte ${at} ends at ${end}, past the list's ${bytes.length} bytes`,
      );
    }
    out.push({
      bias: word(at, "bias"),
      name: new TextDecoder().decode(bytes.subarray(nameAt, nameAt + nameLen)),
      phdr: word(at, "phdr"),
      phnum,
      phdrBytes: bytes.slice(phdrAt, end),
    });
    at = end;
  }
  return out;
}

/**
 * The list through a JavaScript callback: only where the native lister
 * cannot be loaded (see {@linkcode listLoadedObjects}).
 */
function listWithCallback(c: Libc): PhdrInfo[] {
  const out: PhdrInfo[] = [];
  const cb = callback(
    { args: ["u64", "u64", "u64"], returns: "i32" },
    (info: number) => {
      const v = memory(info, 26);
      const dv = new DataView(v.buffer, v.byteOffset, 26);
      const bias = Number(dv.getBigUint64(0, true));
      const namePtr = Number(dv.getBigUint64(8, true));
      const phdr = Number(dv.getBigUint64(16, true));
      const phnum = dv.getUint16(24, true);
      const phdrBytes = phdr === 0 || phnum === 0
        ? new Uint8Array(0)
        : memory(phdr, phnum * PHDR_SIZE).slice();
      out.push({ bias, name: readCString(namePtr), phdr, phnum, phdrBytes });
      return 0;
    },
  );
  try {
    c.dlIteratePhdr(cb.address, 0);
  } finally {
    cb.close();
  }
  return out;
}
