/**
 * Loading and calling the C trampoline that performs the copy-and-swap.
 *
 * The shared object travels inside the package as bytes, one for x86_64 and
 * one for aarch64 (`trampoline_so.ts`): those of the running machine are
 * written into a `memfd_create` file and loaded with
 * `dlopen("/proc/self/fd/N")`, so no file on disk and no compiler is needed.
 * `PAGE_PRIMER_TRAMPOLINE=/path/to/primer.so` loads a locally built one
 * instead. The records' layout, flags and steps come from
 * `trampoline_abi.ts`, generated from `trampoline/primer.h`.
 *
 * @module
 */

import {
  addressOf,
  type BoundFunction,
  memory,
  type NativeLibrary,
  openLibrary,
  runtimeInfo,
} from "../sys/ffi.ts";
import type { Libc } from "../sys/libc.ts";
import {
  LISTER_MEMFD_NAME,
  listLoadedObjects,
  loadedFromMemfd,
  sharedObjectMemfd,
} from "../sys/loader.ts";
import {
  PP_ABI_VERSION,
  PP_CALIBRATE_WORDS,
  PP_F_4K,
  PP_F_DIFFERS_FROM_FILE,
  PP_F_FROM_FILE,
  PP_F_HUGETLB,
  PP_F_MEMFD,
  PP_F_SHARED,
  PP_OP_RESTORE,
  PP_OP_SWAP,
  PP_PERF_MAP,
  PP_PERF_MAP_WORDS,
  PP_PM_CAND_WORDS,
  PP_PM_COLLECT,
  PP_PM_RANGE_WORDS,
  PP_PM_STEP,
  PP_PM_WRITE,
  PP_PM_WRITE_SHARED,
  PP_REGION,
  PP_REGION_WORDS,
  PP_STEP,
} from "../sys/trampoline_abi.ts";

const SYMBOLS = {
  pp_abi: { args: [], returns: "u64" },
  pp_run: { args: ["u64", "u64"], returns: "u64" },
  pp_registry: { args: [], returns: "u64" },
  pp_registry_size: { args: [], returns: "u64" },
  pp_lock: { args: ["u64"], returns: "u64" },
  pp_unlock: { args: [], returns: "void" },
  pp_perf_map: { args: ["u64"], returns: "u64" },
  pp_cpuid: { args: ["u64", "u64", "u64"], returns: "u64" },
  pp_calibrate: { args: ["u64"], returns: "u64" },
} as const;

/** How long a thread waits for another that holds page-primer's lock. */
const LOCK_TIMEOUT_MS = 10_000;

/** The memfd name of the trampoline (maps: `/memfd:page-primer-trampoline`). */
const MEMFD_NAME = "page-primer-trampoline";

/** Another thread of this process held page-primer's lock too long. */
export class TrampolineBusyError extends Error {
  /**
   * @param holder The thread id holding the lock.
   */
  constructor(readonly holder: number) {
    super(
      `another thread of this process (tid ${holder}) has been remapping or restoring for ${
        LOCK_TIMEOUT_MS / 1000
      } s: nothing done here; try again when it has finished`,
    );
    this.name = "TrampolineBusyError";
  }
}

/** Operation of a record. */
export type TrampolineOp = "swap" | "restore";

/** Input of one record. */
export interface TrampolineRecord {
  /** `"swap"`: copy to anonymous memory and move it over; `"restore"`: map the file back. */
  op: TrampolineOp;
  /** Destination, 2 MiB aligned. */
  start: number;
  /** Length, a multiple of 2 MiB. */
  len: number;
  /** Start of the part present in the original mapping. */
  dataStart: number;
  /** Its length. */
  dataLen: number;
  /** Final protection (PROT_*). */
  prot: number;
  /** Copy on 4 KiB pages instead of 2 MiB ones. */
  page4k: boolean;
  /** Fill with pread from `fd` (only when the mapping holds no private page). */
  fromFile?: boolean;
  /** Stage in the reserved hugetlb pool instead of THP. */
  hugetlb?: boolean;
  /** Stage in this memfd (shared mapping) instead of anonymous memory. */
  memfd?: number;
  /**
   * `memfd` is a shared copy, filled and verified by the caller: mapped
   * read-only and not filled.
   */
  shared?: boolean;
  /**
   * `false` when the bytes in memory differ from the file (RELRO, private
   * pages): the file is never mapped over them; a failed swap is undone
   * from the stage and `"restore"` copies memory onto 4 KiB pages (with
   * `page4k: true`). Default `true`.
   */
  equalsFile?: boolean;
  /** Name for the anonymous VMA, or `undefined`. */
  name?: string;
  /** The file's descriptor (restore, and recovery of a failed swap), or -1. */
  fd: number;
  /** File offset of `dataStart`. */
  fileOffset: number;
}

/** Output of one record. */
export interface TrampolineResult {
  /** The failed step (`""` when it succeeded). */
  step: string;
  /** errno of the failed step, 0 when it succeeded. */
  errno: number;
  /** errno of MADV_COLLAPSE, 0 when it worked or was not tried. */
  collapseErrno: number;
  /** errno of PR_SET_VMA_ANON_NAME, 0 when it worked or was not tried. */
  nameErrno: number;
  /** A failed swap was undone by mapping the file back. */
  recovered: boolean;
  /** Syscalls the record made (an injected failure counts as one). */
  calls: number;
}

let fault: { at: number; errno: number } | undefined;

/**
 * For tests only: from now on, the `at`-th syscall (1-based) of every
 * trampoline record fails with `errno` without being made; `undefined`
 * stops it. Not exported from the package.
 *
 * @example
 * ```ts
 * import { injectFault } from "./trampoline.ts";
 * injectFault({ at: 3, errno: 12 }); // the 3rd syscall of each region: ENOMEM
 * injectFault(undefined);
 * ```
 */
export function injectFault(f: { at: number; errno: number } | undefined) {
  if (
    f !== undefined &&
    (!Number.isInteger(f.at) || f.at < 1 || !Number.isInteger(f.errno) ||
      f.errno < 1 || f.errno > 4095)
  ) {
    throw new RangeError(
      `injectFault: at must be an integer >= 1 and errno 1..4095; got ${
        JSON.stringify(f)
      }`,
    );
  }
  fault = f;
}

/** How each `enum pp_step` of `trampoline/primer.h` is reported. */
const STEP_LABELS: { [K in keyof typeof PP_STEP]: string } = {
  PP_OK: "",
  PP_STEP_CHECK: "check",
  PP_STEP_STAGE: "stage mmap",
  PP_STEP_TRIM: "stage trim",
  PP_STEP_ADVISE: "madvise(MADV_HUGEPAGE)",
  PP_STEP_PROTECT: "mprotect",
  PP_STEP_SWAP: "mremap",
  PP_STEP_RESTORE: "restore mmap",
  PP_STEP_UNMAP_EXTENSION: "munmap extension",
  PP_STEP_FILL: "fill",
  PP_STEP_POPULATE: "madvise(MADV_POPULATE_WRITE)",
};

/** `PP_STEP_ADVISE` of a 4 KiB copy, which advises the other way. */
const ADVISE_4K_LABEL = "madvise(MADV_NOHUGEPAGE)";

/** Labels by value: a step number of an enum in its label, or `step N`. */
function stepLabel<E extends Record<string, number>>(
  values: E,
  labels: { [K in keyof E]: string },
  step: number,
): string {
  for (const name in values) if (values[name] === step) return labels[name];
  return `step ${step}`;
}

/** The trampoline, loaded once per process. */
export interface Trampoline {
  /** Path it was loaded from (`/proc/<pid>/fd/N` or the override). */
  readonly path: string;
  /** Runs records in order; one result per record. */
  run(records: readonly TrampolineRecord[]): TrampolineResult[];
  /**
   * Runs `fn` holding the process-wide lock (one remap or restore at a
   * time, whichever thread or Worker asks).
   *
   * @throws {TrampolineBusyError} When another thread holds it too long.
   */
  locked<T>(fn: () => T): T;
  /** The process-wide record (text; `""` when nothing was written). */
  readRecord(): string;
  /** Replaces the process-wide record. */
  writeRecord(text: string): void;
  /** One call of the perf map writer (`trampoline/perf_map.c`). */
  perfMap(request: PerfMapRequest, scratch: PerfMapScratch): PerfMapResult;
  /**
   * Runs the CPUID instruction (`trampoline/cpuid.c`) with EAX = `leaf` and
   * ECX = `subleaf`; returns `[eax, ebx, ecx, edx]` (unsigned).
   */
  cpuid(leaf: number, subleaf: number): CpuidRegisters;
  /**
   * One request of the calibration driver (`trampoline/calibrate.c`): the
   * {@linkcode CALIBRATE_WORDS} words of `struct pp_calibrate`, read and
   * written in place. Returns 0, or 1 when it failed (words 10 and 11: the
   * step and its errno).
   */
  calibrate(request: BigUint64Array): number;
}

/**
 * Words (64 bits) of `struct pp_calibrate` (`trampoline/primer.h`).
 *
 * @example
 * ```ts
 * import { CALIBRATE_WORDS } from "./trampoline.ts";
 * const request = new BigUint64Array(CALIBRATE_WORDS);
 * ```
 */
export const CALIBRATE_WORDS: number = PP_CALIBRATE_WORDS;

/** The four registers CPUID returns: `[eax, ebx, ecx, edx]`, unsigned 32-bit. */
export type CpuidRegisters = [number, number, number, number];

/**
 * Words (64 bits) per candidate in {@linkcode PerfMapScratch}'s
 * `candidates`: `PP_PM_CAND_WORDS` of `trampoline/primer.h`.
 *
 * @example
 * ```ts
 * import { PERF_MAP_CANDIDATE_WORDS } from "./trampoline.ts";
 * const candidates = new BigUint64Array(1000 * PERF_MAP_CANDIDATE_WORDS);
 * ```
 */
export const PERF_MAP_CANDIDATE_WORDS: number = PP_PM_CAND_WORDS;

/** The operations `PP_PM_*` of `trampoline/primer.h`. */
const PERF_MAP_OPS = {
  collect: PP_PM_COLLECT,
  write: PP_PM_WRITE,
  "write shared": PP_PM_WRITE_SHARED,
} as const;

/** How each `enum pp_pm_step` of `trampoline/primer.h` is reported. */
const PERF_MAP_STEP_LABELS: { [K in keyof typeof PP_PM_STEP]: string } = {
  PP_PM_OK: "",
  PP_PM_STEP_CHECK: "check",
  PP_PM_STEP_SYMBOLS: "symbol table pread",
  PP_PM_STEP_ROOM: "room",
  PP_PM_STEP_SORT: "sort",
  PP_PM_STEP_STRINGS: "string table pread",
  PP_PM_STEP_NAME: "name",
  PP_PM_STEP_POOL: "pool",
  PP_PM_STEP_WRITE: "write",
};

/**
 * The buffers the perf map writer (`trampoline/perf_map.c`) works in: it
 * allocates nothing. The same buffers go to `"collect"` and then `"write"`
 * for one symbol table: the candidates and their order stay in them.
 */
export interface PerfMapScratch {
  /** Ranges, 3 words each: start, end, and one the writer fills. */
  ranges: BigUint64Array;
  /** Reads of the file: at least 64 KiB, a multiple of 8 bytes. */
  io: Uint8Array;
  /** Lines before they are written: at least 4 KiB. */
  out: Uint8Array;
  /** {@linkcode PERF_MAP_CANDIDATE_WORDS} words per candidate. */
  candidates: BigUint64Array;
  /** One word per candidate: the candidates by address. */
  order: BigUint64Array;
  /** One word per candidate: sorting, then the candidates by name. */
  orderTmp: BigUint64Array;
  /** The names of candidates sharing an address (`"write"`); may be empty. */
  pool: Uint8Array;
}

/** One call of the perf map writer. */
export interface PerfMapRequest {
  /**
   * `"collect"`: the functions of the symbol table inside the ranges,
   * sorted by address; `"write"`: their lines appended to `mapFd`;
   * `"write shared"`, after `"write"` failed at step `"pool"` (the lines of
   * the functions alone at their address were written) and the pool was
   * made as large as it asked: the lines of the addresses several share.
   */
  op: "collect" | "write" | "write shared";
  /** The object's file, read with `pread`. */
  fd: number;
  /** File offset of the symbol table. */
  symbolOffset: number;
  /** Its entries. */
  symbolCount: number;
  /** File offset of its string table. */
  stringOffset: number;
  /** Bytes of the string table. */
  stringSize: number;
  /** Runtime address minus `st_value` (may be negative). */
  bias: number;
  /** `"write"`: the map, opened `O_APPEND`. */
  mapFd?: number;
  /** `"write"`: the candidates `"collect"` found. */
  count?: number;
}

/** What a call of the perf map writer did. */
export interface PerfMapResult {
  /** The failed step (`""` when it succeeded). */
  step: string;
  /** Its errno, 0 when it succeeded. */
  errno: number;
  /** Step `"name"`: the offset of the bad name. */
  at: number;
  /** Step `"room"`: candidates to make room for; `"pool"`: bytes of pool. */
  need: number;
  /** Candidates found. */
  count: number;
  /** Of them, sharing their address with another. */
  shared: number;
  /** Lines written. */
  symbols: number;
  /** Bytes of the ranges inside a written line. */
  covered: number;
  /** Bytes appended to the map. */
  written: number;
}

let loaded: Trampoline | undefined;

function bind(lib: NativeLibrary<typeof SYMBOLS>, path: string): Trampoline {
  const abi = lib.symbols.pp_abi!();
  if (abi !== PP_ABI_VERSION) {
    lib.close();
    throw new Error(
      `the trampoline at ${path} speaks ABI ${abi}, this page-primer needs ${PP_ABI_VERSION}: rebuild it (npm run build:trampoline)`,
    );
  }
  const { pp_run, pp_perf_map, pp_cpuid, pp_calibrate } = lib.symbols;
  const area = Number(lib.symbols.pp_registry!());
  const areaSize = Number(lib.symbols.pp_registry_size!());
  let depth = 0;
  return {
    path,
    locked(fn) {
      if (depth === 0) {
        const holder = Number(lib.symbols.pp_lock!(LOCK_TIMEOUT_MS));
        if (holder !== 0) throw new TrampolineBusyError(holder);
      }
      depth++;
      try {
        return fn();
      } finally {
        if (--depth === 0) lib.symbols.pp_unlock!();
      }
    },
    readRecord: () => readRegistry(area),
    writeRecord: (text) => writeRegistry(area, areaSize, text),
    cpuid: (leaf, subleaf) => callCpuid(pp_cpuid!, leaf, subleaf),
    calibrate(request) {
      if (request.length !== CALIBRATE_WORDS) {
        throw new RangeError(
          `calibrate: the request must have ${CALIBRATE_WORDS} words; got ${request.length}`,
        );
      }
      return Number(pp_calibrate!(addressOf(request)));
    },
    perfMap: (request, scratch) => callPerfMap(pp_perf_map!, request, scratch),
    run: (records) => runRecords(pp_run!, records),
  };
}

/** The text in the process-wide registry (length word, then UTF-8). */
function readRegistry(area: number): string {
  const len = Number(
    new DataView(memory(area, 8).slice().buffer).getBigUint64(0, true),
  );
  return len === 0
    ? ""
    : new TextDecoder().decode(memory(area + 8, len).slice());
}

/** Writes the registry's text and its length word. */
function writeRegistry(area: number, areaSize: number, text: string): void {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length + 8 > areaSize) {
    throw new RangeError(
      `page-primer's record of remapped regions is full (${bytes.length} bytes)`,
    );
  }
  memory(area + 8, bytes.length).set(bytes);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(bytes.length), true);
  memory(area, 8).set(len);
}

/** `pp_cpuid`, with its arguments checked. */
function callCpuid(
  fn: BoundFunction,
  leaf: number,
  subleaf: number,
): CpuidRegisters {
  if (
    !Number.isInteger(leaf) || leaf < 0 || leaf > 0xffffffff ||
    !Number.isInteger(subleaf) || subleaf < 0 || subleaf > 0xffffffff
  ) {
    throw new RangeError(
      `cpuid: leaf and subleaf must be integers 0..0xffffffff; got ${leaf}, ${subleaf}`,
    );
  }
  const out = new Uint32Array(4);
  if (fn(leaf, subleaf, addressOf(out)) !== 0) {
    throw new Error(
      `cpuid: there is no CPUID instruction on ${runtimeInfo().arch}; ask for it on x86_64 only`,
    );
  }
  return [out[0]!, out[1]!, out[2]!, out[3]!];
}

/** `pp_perf_map` on a request, and what it reported. */
function callPerfMap(
  fn: BoundFunction,
  request: PerfMapRequest,
  scratch: PerfMapScratch,
): PerfMapResult {
  const words = perfMapWords(request, scratch);
  fn(addressOf(words));
  const at = (i: number) => Number(words[i]);
  return {
    step: stepLabel(PP_PM_STEP, PERF_MAP_STEP_LABELS, at(PP_PERF_MAP.step)),
    errno: at(PP_PERF_MAP.err),
    at: at(PP_PERF_MAP.at),
    need: at(PP_PERF_MAP.need),
    count: at(PP_PERF_MAP.count),
    shared: at(PP_PERF_MAP.shared),
    symbols: at(PP_PERF_MAP.symbols),
    covered: at(PP_PERF_MAP.covered),
    written: at(PP_PERF_MAP.written),
  };
}

/** `pp_run` on the records (their names kept alive over the call), and each one's result. */
function runRecords(
  fn: BoundFunction,
  records: readonly TrampolineRecord[],
): TrampolineResult[] {
  if (records.length === 0) return [];
  const words = new BigUint64Array(records.length * PP_REGION_WORDS);
  const keep: Uint8Array[] = [];
  records.forEach((r, i) => {
    let name = 0n;
    if (r.name !== undefined) {
      const b = new TextEncoder().encode(r.name + "\0");
      keep.push(b);
      name = BigInt(addressOf(b));
    }
    regionWords(words.subarray(i * PP_REGION_WORDS), r, name);
  });
  fn(addressOf(words), records.length);
  keep.length = 0;
  return records.map((_, i) => {
    const w = words.subarray(i * PP_REGION_WORDS);
    return {
      step: records[i].page4k &&
          w[PP_REGION.step] === BigInt(PP_STEP.PP_STEP_ADVISE)
        ? ADVISE_4K_LABEL
        : stepLabel(PP_STEP, STEP_LABELS, Number(w[PP_REGION.step])),
      errno: Number(w[PP_REGION.err]),
      collapseErrno: Number(w[PP_REGION.collapseErr]),
      nameErrno: Number(w[PP_REGION.nameErr]),
      recovered: w[PP_REGION.recovered] === 1n,
      calls: Number(w[PP_REGION.calls]),
    };
  });
}

/** The `PP_F_*` flags of a record. */
function regionFlags(r: TrampolineRecord): number {
  return (r.page4k ? PP_F_4K : 0) | (r.fromFile ? PP_F_FROM_FILE : 0) |
    (r.hugetlb ? PP_F_HUGETLB : 0) | (r.memfd !== undefined ? PP_F_MEMFD : 0) |
    (r.shared ? PP_F_SHARED : 0) |
    (r.equalsFile === false ? PP_F_DIFFERS_FROM_FILE : 0);
}

/** Writes the input words of `struct pp_region` for `r` into `w`. */
function regionWords(w: BigUint64Array, r: TrampolineRecord, name: bigint) {
  w[PP_REGION.op] = BigInt(r.op === "swap" ? PP_OP_SWAP : PP_OP_RESTORE);
  w[PP_REGION.start] = BigInt(r.start);
  w[PP_REGION.len] = BigInt(r.len);
  w[PP_REGION.dataStart] = BigInt(r.dataStart);
  w[PP_REGION.dataLen] = BigInt(r.dataLen);
  w[PP_REGION.prot] = BigInt(r.prot);
  w[PP_REGION.flags] = BigInt(regionFlags(r));
  w[PP_REGION.name] = name;
  w[PP_REGION.fd] = BigInt.asUintN(64, BigInt(r.fd));
  w[PP_REGION.fileOff] = BigInt(r.fileOffset);
  w[PP_REGION.stageFd] = BigInt(r.memfd ?? 0);
  w[PP_REGION.faultAt] = BigInt(fault?.at ?? 0);
  w[PP_REGION.faultErrno] = BigInt(fault?.errno ?? 0);
}

/** `struct pp_perf_map` for a request and its buffers. */
function perfMapWords(
  r: PerfMapRequest,
  s: PerfMapScratch,
): BigUint64Array {
  const cap = Math.min(
    Math.floor(s.candidates.length / PERF_MAP_CANDIDATE_WORDS),
    s.order.length,
    s.orderTmp.length,
  );
  const address = (v: ArrayBufferView) =>
    v.byteLength === 0 ? 0n : BigInt(addressOf(v));
  const w = new BigUint64Array(PP_PERF_MAP_WORDS);
  const f = PP_PERF_MAP;
  w[f.op] = BigInt(PERF_MAP_OPS[r.op] ?? 0); // 0: refused at the check
  w[f.fileFd] = BigInt(r.fd);
  w[f.symOff] = BigInt(r.symbolOffset);
  w[f.symCount] = BigInt(r.symbolCount);
  w[f.strOff] = BigInt(r.stringOffset);
  w[f.strSize] = BigInt(r.stringSize);
  w[f.bias] = BigInt.asUintN(64, BigInt(r.bias));
  w[f.ranges] = address(s.ranges);
  w[f.rangeCount] = BigInt(Math.floor(s.ranges.length / PP_PM_RANGE_WORDS));
  w[f.io] = address(s.io);
  w[f.ioLen] = BigInt(s.io.byteLength);
  w[f.out] = address(s.out);
  w[f.outLen] = BigInt(s.out.byteLength);
  w[f.cand] = address(s.candidates);
  w[f.order] = address(s.order);
  w[f.orderTmp] = address(s.orderTmp);
  w[f.candCap] = BigInt(cap);
  w[f.pool] = address(s.pool);
  w[f.poolLen] = BigInt(s.pool.byteLength);
  w[f.mapFd] = BigInt.asUintN(64, BigInt(r.mapFd ?? -1));
  w[f.count] = BigInt(r.count ?? 0);
  return w;
}

/**
 * Loads the trampoline once per process: a Worker finds the one another
 * thread loaded (same library, same record). From `PAGE_PRIMER_TRAMPOLINE`
 * when set, else from the bytes shipped in the package through a memfd,
 * loaded as `/proc/<pid>/fd/N` (a name a debugger in another process can
 * open too; the descriptor stays open for that).
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { loadTrampoline } from "./trampoline.ts";
 * console.log(loadTrampoline(libc()).path);
 * ```
 */
export function loadTrampoline(c: Libc): Trampoline {
  if (loaded !== undefined) return loaded;
  const override = c.getenv("PAGE_PRIMER_TRAMPOLINE");
  if (override) return loaded = keep(c, override);
  // One another thread loaded needs no copy of ours (and no memfd or
  // mappings); when looking fails, loading ours looks again.
  try {
    const first = firstLoaded(c);
    if (first !== undefined) return loaded = first;
  } catch {
    // looked for again below
  }
  // Load ours, then take the first in the loader's list, which only grows:
  // one another thread loaded meanwhile (ours is then closed again), else
  // ours. Threads doing this at the same moment all take the same one.
  const own = sharedObjectMemfd(c, MEMFD_NAME);
  let lib;
  try {
    lib = openLibrary([own.path], SYMBOLS);
  } catch (e) {
    c.close(own.fd);
    throw e;
  }
  let winner: Trampoline;
  try {
    winner = firstLoaded(c) ?? keep(c, own.path);
  } catch (e) {
    lib.close();
    c.close(own.fd);
    throw e;
  }
  lib.close();
  if (winner.path !== own.path) c.close(own.fd);
  return loaded = winner;
}

/**
 * Binds `path` and keeps it loaded for the life of the process
 * (RTLD_NODELETE): Deno unloads what a Worker opened when the Worker ends,
 * and the record of remapped regions must outlive it.
 */
function keep(c: Libc, path: string): Trampoline {
  const t = bind(openLibrary([path], SYMBOLS), path);
  c.keepLoaded(path);
  return t;
}

/**
 * The first trampoline of this ABI in the loader's list (load order),
 * whichever thread loaded it, or `undefined`.
 */
function firstLoaded(c: Libc): Trampoline | undefined {
  // glibc before 2.34 has dlopen in libdl only: no pin, as before.
  const canPin = c.has("dlopen") && c.has("dlclose");
  for (const path of trampolinesLoaded(c)) {
    // Still loaded under that name? The listing is a moment old: the
    // object may be gone and its descriptor's number reused by a memfd
    // another thread is still writing, which must not be loaded.
    const pin = canPin ? c.pin(path) : undefined;
    if (canPin && pin === undefined) continue;
    try {
      return keep(c, path);
    } catch {
      // Another page-primer version's trampoline: not ours to use.
    } finally {
      if (pin !== undefined) c.unpin(pin);
    }
  }
  return undefined;
}

/**
 * The trampoline if this process has loaded it (in any thread), without
 * loading it: `undefined` means nothing was ever remapped here.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { loadedTrampoline } from "./trampoline.ts";
 * console.log(loadedTrampoline(libc()) === undefined);
 * ```
 */
export function loadedTrampoline(c: Libc): Trampoline | undefined {
  if (loaded !== undefined) return loaded;
  const override = c.getenv("PAGE_PRIMER_TRAMPOLINE");
  if (override) {
    return listLoadedObjects(c).some((o) => o.name === override)
      ? loadTrampoline(c)
      : undefined;
  }
  return loaded = firstLoaded(c);
}

/** Paths of the trampolines loaded in this process, in load order. */
function trampolinesLoaded(c: Libc): string[] {
  return listLoadedObjects(c).map((o) => o.name).filter((name) =>
    loadedFromMemfd(c, name, MEMFD_NAME)
  );
}

/**
 * True when `path` names the trampoline itself (never remap it).
 *
 * @example
 * ```ts
 * import { isTrampolinePath } from "./trampoline.ts";
 * console.log(isTrampolinePath("/memfd:page-primer-trampoline (deleted)")); // true
 * ```
 */
export function isTrampolinePath(path: string): boolean {
  return path.includes(MEMFD_NAME) || path.includes(LISTER_MEMFD_NAME) ||
    /^\/proc\/(self|\d+)\/(task\/\d+\/)?fd\//.test(path) ||
    (loaded !== undefined && path === loaded.path);
}
