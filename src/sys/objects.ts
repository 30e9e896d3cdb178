/**
 * Introspection of the running process: which ELF objects are loaded, where,
 * and what `/proc/self/smaps` says. Reads memory and `/proc` through libc,
 * so Deno needs only `--allow-ffi`.
 *
 * @module
 */

import {
  parseProgramHeaders,
  PHDR_SIZE,
  type ProgramHeader,
  PT_PHDR,
} from "./elf.ts";
import { memory } from "./ffi.ts";
import { AT_PHDR, AT_PHNUM, type Libc } from "./libc.ts";
import { listLoadedObjects, type PhdrInfo } from "./loader.ts";
import { parseMaps, parseSmaps, type SmapsVma, type Vma } from "./maps.ts";
import { procmapAvailable, queryVma, SMAPS_ENV } from "./procmap.ts";
import {
  type LoadedObject,
  type LoadSegment,
  loadSegments,
  relroOf,
} from "./segments.ts";

function readPhdrs(at: number, count: number): ProgramHeader[] {
  return parseProgramHeaders(memory(at, count * PHDR_SIZE).slice(), count);
}

/**
 * The main executable, from `getauxval(AT_PHDR/AT_PHNUM)`; the load bias is
 * `AT_PHDR - PT_PHDR.p_vaddr`.
 *
 * @example
 * ```ts ignore
 * import { libc } from "./libc.ts";
 * import { mainExecutable } from "./objects.ts";
 * console.log(mainExecutable(libc()).path);
 * ```
 */
export function mainExecutable(c: Libc): LoadedObject {
  const at = c.getauxval(AT_PHDR);
  const count = c.getauxval(AT_PHNUM);
  if (at === 0 || count === 0) {
    throw new Error(
      "getauxval(AT_PHDR) returned nothing: the kernel gave no auxiliary vector",
    );
  }
  const phdrs = readPhdrs(at, count);
  const self = phdrs.find((p) => p.type === PT_PHDR);
  let bias: number;
  if (self !== undefined) {
    bias = at - self.vaddr;
  } else {
    // No PT_PHDR: the loader's entry for the main program (name "") has it.
    const entry = listLoadedObjects(c).find((o) => o.name === "");
    if (entry === undefined) {
      throw new Error("cannot find the main executable's load bias");
    }
    bias = entry.bias;
  }
  return {
    path: c.readlink("/proc/self/exe"),
    main: true,
    bias,
    segments: loadSegments(phdrs),
    ...withRelro(phdrs),
  };
}

function withRelro(phdrs: readonly ProgramHeader[]) {
  const relro = relroOf(phdrs);
  return relro ? { relro } : {};
}

/** Options of {@linkcode loadedObjects}. */
export interface LoadedObjectsOptions {
  /**
   * This process's maps or smaps, for library paths; when absent, the VMA
   * at each library's first segment is queried (`PROCMAP_QUERY`), or maps
   * read where the kernel lacks it.
   */
  vmas?: readonly Vma[];
  /** Told about each library left out, and why. */
  onSkip?: (name: string, reason: string) => void;
  /**
   * Take a reference on every library (`dlopen(RTLD_NOLOAD)`, in
   * `LoadedObject.pin`) so none is unloaded while it is primed; a library
   * that went away meanwhile is left out. The caller releases the pins
   * with {@linkcode unpinObjects}. Default `false`.
   */
  pin?: boolean;
}

/**
 * Every loaded object: the main executable first, then each shared library
 * the loader lists (including ones loaded later through FFI), with
 * {@linkcode listLoadedObjects}: program headers are copied while the loader
 * holds its lock. A library
 * whose program headers cannot be read is left out and reported to
 * `onSkip`.
 *
 * @example
 * ```ts ignore
 * import { libc } from "./libc.ts";
 * import { loadedObjects } from "./objects.ts";
 * for (const o of loadedObjects(libc())) console.log(o.path);
 * ```
 */
export function loadedObjects(
  c: Libc,
  options: LoadedObjectsOptions = {},
): LoadedObject[] {
  const { vmas, onSkip, pin = false } = options;
  const main = mainExecutable(c);
  const out: LoadedObject[] = [main];
  const vmasAt = vmaLookup(c, vmas);
  const infos = listLoadedObjects(c).filter((i) =>
    i.name !== "" && i.bias !== main.bias && i.phdrBytes.length > 0
  );
  const pins = pin ? pinAll(c, infos, onSkip) : undefined;
  for (const info of infos) {
    const handle = pins?.get(info);
    if (pins && handle === undefined) continue;
    let segments: LoadSegment[];
    let phdrs: ProgramHeader[];
    try {
      phdrs = parseProgramHeaders(info.phdrBytes, info.phnum);
      segments = loadSegments(phdrs);
    } catch (e) {
      // E.g. its file was overwritten while mapped: one broken library
      // must not stop the others from being primed.
      if (handle !== undefined) c.unpin(handle);
      onSkip?.(
        info.name,
        `its program headers in memory are not valid (${
          e instanceof Error ? e.message : String(e)
        })`,
      );
      continue;
    }
    out.push({
      path: canonicalPath(
        segments.length > 0 ? vmasAt(info.bias + segments[0].vaddr) : [],
        { name: info.name, bias: info.bias, segments },
      ),
      main: false,
      bias: info.bias,
      segments,
      ...withRelro(phdrs),
      ...(handle !== undefined ? { pin: handle } : {}),
    });
  }
  return out;
}

/**
 * Where {@linkcode canonicalPath} looks for the VMA at an address: the
 * caller's VMAs; else one `PROCMAP_QUERY` (the VMA there, whatever the
 * process's VMA count); else (or with `PAGE_PRIMER_SMAPS=1`)
 * `/proc/self/maps`, read once.
 */
function vmaLookup(
  c: Libc,
  vmas: readonly Vma[] | undefined,
): (at: number) => readonly Vma[] {
  if (vmas !== undefined) return () => vmas;
  if (c.getenv(SMAPS_ENV) !== "1" && procmapAvailable(c) === undefined) {
    return (at) => {
      const v = queryVma(c, at);
      return v === undefined ? [] : [v];
    };
  }
  let maps: Vma[] | undefined;
  return () => maps ??= parseMaps(c.readText("/proc/self/maps"));
}

/**
 * Pins each library, then checks it is still loaded at the address it was
 * seen at (it may have been unloaded, and another loaded there, before the
 * pin); the ones that are not are unpinned and reported.
 */
function pinAll(
  c: Libc,
  infos: readonly PhdrInfo[],
  onSkip?: (name: string, reason: string) => void,
): Map<PhdrInfo, number> {
  const pins = new Map<PhdrInfo, number>();
  for (const info of infos) {
    const handle = c.pin(info.name);
    if (handle === undefined) {
      onSkip?.(
        info.name,
        "unloaded while it was inspected (or this libc cannot pin it)",
      );
    } else pins.set(info, handle);
  }
  const now = new Set(listLoadedObjects(c).map((i) => `${i.name}\0${i.bias}`));
  for (const [info, handle] of pins) {
    if (!now.has(`${info.name}\0${info.bias}`)) {
      c.unpin(handle);
      pins.delete(info);
      onSkip?.(info.name, "unloaded or moved while it was inspected");
    }
  }
  return pins;
}

/**
 * Releases the pins {@linkcode loadedObjects} took, except those in `keep`
 * (held by remapped regions until they are restored).
 *
 * @example
 * ```ts ignore
 * import { libc } from "./libc.ts";
 * import { loadedObjects, unpinObjects } from "./objects.ts";
 * const c = libc();
 * unpinObjects(c, loadedObjects(c, { pin: true }));
 * ```
 */
export function unpinObjects(
  c: Libc,
  objects: readonly LoadedObject[],
  keep: ReadonlySet<number> = new Set(),
): void {
  for (const o of objects) {
    if (o.pin !== undefined && !keep.has(o.pin)) c.unpin(o.pin);
  }
}

/**
 * The path `/proc/self/maps` shows for an object, which is what the kernel
 * resolved (the loader's name may go through a symlink, e.g. `/lib` →
 * `/usr/lib` on merged-/usr systems). Falls back to the loader's name.
 *
 * @example
 * ```ts
 * import { canonicalPath } from "./objects.ts";
 * import assert from "node:assert/strict";
 * const loaded = { name: "/lib/libc.so.6", bias: 0, segments: [] };
 * assert.equal(canonicalPath([], loaded), "/lib/libc.so.6");
 * ```
 */
export function canonicalPath(
  maps: readonly Vma[],
  { name, bias, segments }: {
    name: string;
    bias: number;
    segments: readonly LoadSegment[];
  },
): string {
  if (segments.length === 0) return name;
  const at = bias + segments[0].vaddr;
  const v = maps.find((m) => m.start <= at && at < m.end);
  return v !== undefined && v.path !== "" ? v.path : name;
}

/**
 * Parsed `/proc/self/smaps`, read through libc.
 *
 * @example
 * ```ts ignore
 * import { libc } from "./libc.ts";
 * import { readSmaps } from "./objects.ts";
 * console.log(readSmaps(libc()).length > 0);
 * ```
 */
export function readSmaps(c: Libc): SmapsVma[] {
  return parseSmaps(c.readText("/proc/self/smaps"));
}

/** The parts of `/proc/self/status` that matter for locking. */
export interface ProcessStatus {
  /** Bytes this process has locked (`VmLck`). */
  vmLck: number;
  /** Whether the effective capability set holds CAP_IPC_LOCK. */
  capIpcLock: boolean;
  /** Number of threads. */
  threads: number;
}

/**
 * Parses `/proc/self/status` text.
 *
 * @example
 * ```ts
 * import { parseStatus } from "./objects.ts";
 * import assert from "node:assert/strict";
 * const s = parseStatus("VmLck:\t  8 kB\nCapEff:\t0000000000004000\nThreads:\t3\n");
 * assert.deepEqual([s.vmLck, s.capIpcLock, s.threads], [8192, true, 3]);
 * ```
 */
export function parseStatus(text: string): ProcessStatus {
  let vmLck = 0;
  let capIpcLock = false;
  let threads = 0;
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i < 0) continue;
    const key = line.slice(0, i);
    const value = line.slice(i + 1).trim();
    if (key === "VmLck") vmLck = parseInt(value, 10) * 1024;
    else if (key === "Threads") threads = parseInt(value, 10);
    else if (key === "CapEff") {
      capIpcLock = (BigInt("0x" + value) & (1n << 14n)) !== 0n;
    }
  }
  return { vmLck, capIpcLock, threads };
}

/**
 * This process's status, read through libc.
 *
 * @example
 * ```ts ignore
 * import { libc } from "./libc.ts";
 * import { readStatus } from "./objects.ts";
 * console.log(readStatus(libc()).threads);
 * ```
 */
export function readStatus(c: Libc): ProcessStatus {
  return parseStatus(c.readText("/proc/self/status"));
}
