/**
 * Symbols for `perf` after a remap. Once a region of an executable's code
 * runs from an anonymous (or memfd) copy, `perf` no longer sees the file
 * behind those addresses and cannot name the functions there. Its
 * convention for code without a file is `/tmp/perf-<pid>.map`: one line
 * `START SIZE name` per symbol, addresses and sizes in hex without `0x`.
 * V8's `--perf-basic-prof` writes the same file, so it is only ever appended
 * to, never truncated; and it stays after the process exits (perf reads it
 * after the process is gone), so it is written only when asked for
 * (`remap({ perfMap: true })`, `PAGE_PRIMER_PERF_MAP=1`).
 *
 * Only functions (`STT_FUNC`, `STT_GNU_IFUNC`) with a size are written:
 * `perf` samples instruction addresses and consults the map only for
 * executable mappings, so data symbols would never be looked up.
 *
 * This module decides what to name: which objects and ranges, at which
 * load bias, and whether the file on disk is the one loaded. The
 * per-symbol work is done in C, in the trampoline (`trampoline/perf_map.c`,
 * called through {@linkcode loadTrampoline}): it reads the symbol table and
 * its names from the file with `pread`, 256 KiB at a time, keeps the
 * functions inside the ranges, picks one name per address and appends the
 * lines in 256 KiB writes. Its memory (512 KiB, 56 bytes per function in
 * the ranges, the names of functions sharing an address) is mapped here on
 * huge pages and unmapped once the object is written; 200 000 functions
 * take about 30 ms on the machine measured (`bench/perf_map`). The lines of
 * a range are written once per process and map file: a range remapped again
 * after a restore is not appended again.
 *
 * The pure part ({@linkcode perfMapEntries}, {@linkcode formatPerfMap},
 * {@linkcode loadBiasOf}, {@linkcode describePerfMap}) is separate from
 * {@linkcode writePerfMap}, which reads the executable and appends to the
 * file; `perfMapEntries` chooses the same lines the C writer writes, and
 * the tests compare the two.
 *
 * @module
 */

import {
  ElfError,
  parseElf,
  PF_X,
  PT_LOAD,
  type SymbolTableLayout,
  symbolTableLayout,
} from "../sys/elf.ts";
import { memory } from "../sys/ffi.ts";
import { HUGE_PAGE } from "../sys/hugetlb.ts";
import { basename, formatMiB, formatPercent } from "../sys/format.ts";
import {
  fdSource,
  type Libc,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_CREAT,
  O_NOFOLLOW,
  PROT_READ,
  PROT_WRITE,
  S_IFMT,
  S_IFREG,
  SyscallError,
} from "../sys/libc.ts";
import {
  loadTrampoline,
  PERF_MAP_CANDIDATE_WORDS,
  type PerfMapRequest,
  type PerfMapResult,
  type PerfMapScratch,
  type Trampoline,
} from "./trampoline.ts";

/** `open` flag: write only (the same value on x86_64 and aarch64 Linux). */
const O_WRONLY = 0o1;
/** `open` flag: every write goes to the end of the file. */
const O_APPEND = 0o2000;

/** Symbol type of a function. */
const STT_FUNC = 2;
/** Symbol type of an indirect function (its resolver's code is code too). */
const STT_GNU_IFUNC = 10;
/** Symbol bindings in order of preference for a name at a shared address. */
const BIND_RANK: Readonly<Record<number, number>> = { 1: 0, 2: 1, 0: 2 };

/** `madvise` advice: back the range with transparent huge pages. */
const MADV_HUGEPAGE = 14;
/** Bytes of a (transparent) huge page on x86_64. */
/** Bytes of file the C writer reads at a time (a string table chunk and a page). */
const IO_BYTES = (1 << 18) + 4096;
/** Bytes of map lines the C writer collects before a `write`. */
const OUT_BYTES = 1 << 18;
const ENCODER = new TextEncoder();

/** The fields of an ELF symbol a perf map needs (an `ElfSymbol` fits). */
export interface PerfMapSymbol {
  /** Name. */
  name: string;
  /** `st_value`: the address before relocation. */
  value: number;
  /** `st_size` in bytes. */
  size: number;
  /** Type, the low 4 bits of `st_info` (2 is `STT_FUNC`). */
  type: number;
  /** Binding, the high 4 bits of `st_info` (1 global, 2 weak, 0 local). */
  bind: number;
}

/** A range of runtime addresses to name symbols in, `[start, end)`. */
export interface PerfMapRange {
  /** First byte (a remapped region's `dataStart`). */
  start: number;
  /** One past the last byte (its `dataEnd`). */
  end: number;
}

/** The fields of a program header {@linkcode loadBiasOf} reads (an `elf.ts` `ProgramHeader` fits). */
export interface PerfMapSegment {
  /** `p_type`; only `PT_LOAD` (1) counts. */
  type: number;
  /** `p_flags`; `PF_X` (1) tells code from data. */
  flags: number;
  /** `p_offset`. */
  offset: number;
  /** `p_vaddr`. */
  vaddr: number;
  /** `p_filesz`. */
  filesz: number;
}

/** The fields of a remapped region {@linkcode writePerfMap} reads (a `RegionReport` fits). */
export interface PerfMapRegion {
  /** Path of the object. */
  object: string;
  /** Protection; only executable (`"r-x"`) regions are named. */
  perms: string;
  /** Start of the original content in memory. */
  dataStart: number;
  /** End of the original content. */
  dataEnd: number;
  /** File offset of `dataStart`. */
  fileOffset: number;
  /** Only `"remapped"` regions are named. */
  status: string;
}

/** One line of a perf map. */
export interface PerfMapEntry {
  /** Runtime address of the first byte. */
  start: number;
  /** Bytes. */
  size: number;
  /** Symbol name. */
  name: string;
}

/** The entries for some ranges, and how much of the ranges they name. */
export interface PerfMapPlan {
  /** The lines to write, sorted by address, one per address. */
  entries: PerfMapEntry[];
  /** Bytes of the ranges. */
  bytes: number;
  /** Bytes of the ranges inside at least one entry. */
  covered: number;
}

/**
 * The perf map entries for the functions of `symbols` that lie in `ranges`
 * once loaded with `bias` (runtime address = `st_value + bias`). Functions
 * without a size or a name are left out; a function crossing a range's edge
 * is clipped to the range; of several names at one address (aliases such as
 * C++ C1/C2 constructors) one is kept: an unversioned name over `name@VER`,
 * then global over weak over local, then the larger size, the shorter name,
 * and the first in code-point order. {@linkcode writePerfMap} chooses the
 * same way, reading the symbols from the file in chunks.
 *
 * @example Two aliases and a function partly outside the range
 * ```ts
 * import { perfMapEntries } from "./perf_map.ts";
 * import assert from "node:assert/strict";
 * const plan = perfMapEntries([
 *   { name: "f@@V1", value: 0x1000, size: 0x20, type: 2, bind: 1 },
 *   { name: "f", value: 0x1000, size: 0x20, type: 2, bind: 1 },
 *   { name: "g", value: 0x1ff0, size: 0x40, type: 2, bind: 1 },
 * ], [{ start: 0x401000, end: 0x402000 }], 0x400000);
 * assert.deepEqual(plan.entries.map((e) => e.name), ["f", "g"]);
 * assert.equal(plan.entries[1].size, 16); // clipped at the range's end
 * ```
 *
 * @param symbols Symbols of the object, e.g. from `readSymbols`.
 * @param ranges Runtime address ranges, e.g. the remapped text regions.
 * @param bias Load bias of the object in this process (0 for a non-PIE
 * executable).
 * @returns The sorted entries and the coverage of the ranges.
 * @throws {TypeError} If `symbols` or `ranges` is not an array.
 * @throws {RangeError} If `bias` or a range bound is not a safe integer, or
 * a range ends before it starts.
 */
export function perfMapEntries(
  symbols: readonly PerfMapSymbol[],
  ranges: readonly PerfMapRange[],
  bias: number,
): PerfMapPlan {
  if (!Array.isArray(symbols)) {
    throw new TypeError("perfMapEntries(): symbols must be an array");
  }
  const sorted = checkRanges("perfMapEntries", ranges, bias);
  const c = new Candidates(sorted, bias, symbols.length);
  symbols.forEach((s, i) => {
    if (s.name !== "") c.add(s.value, s.size, s.type, s.bind, i);
  });
  const order = byStart(c);
  const shared = sharing(c, order);
  const pool = new NamePool();
  for (let i = 0; i < c.n; i++) {
    if (shared[i] !== 0) {
      shared[i] = pool.add(ENCODER.encode(`${symbols[c.ref[i]].name}\0`), 0);
    }
  }
  const winners = choose({ c, order, shared, pool: pool.bytes });
  const entries = Array.from(winners, (i) => ({
    start: c.start[i],
    size: c.size[i],
    name: symbols[c.ref[i]].name.replace(/[\r\n]/g, " "),
  }));
  return { entries, bytes: bytesOf(sorted), covered: coveredBy(c, winners) };
}

function checkRanges(
  fn: string,
  ranges: readonly PerfMapRange[],
  bias: number,
): PerfMapRange[] {
  if (!Array.isArray(ranges)) {
    throw new TypeError(`${fn}(): ranges must be an array of { start, end }`);
  }
  if (!Number.isSafeInteger(bias)) {
    throw new RangeError(`${fn}(): bias must be a safe integer; got ${bias}`);
  }
  for (const r of ranges) {
    if (
      !Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end) ||
      r.end < r.start
    ) {
      throw new RangeError(
        `${fn}(): range ${r.start}..${r.end} is not a pair of safe integers with start <= end`,
      );
    }
  }
  return [...ranges].sort((a, b) => a.start - b.start);
}

function bytesOf(ranges: readonly PerfMapRange[]): number {
  return ranges.reduce((n, r) => n + r.end - r.start, 0);
}

/**
 * The entries that may be written, as columns (a few numbers each, no
 * name): the part of each function inside each range, before one per
 * address is chosen. `ref` is the index of the symbol.
 */
class Candidates {
  n = 0;
  start: Float64Array;
  size: Float64Array;
  symSize: Float64Array;
  ref: Uint32Array;
  bind: Uint8Array;
  readonly #ranges: readonly PerfMapRange[];
  readonly #bias: number;
  /** The first range's start. */
  readonly lo: number;
  readonly #hi: number;

  /**
   * @param sorted The ranges, sorted by start.
   * @param bias Runtime address minus `st_value`.
   * @param expected How many to make room for at first (they grow).
   */
  constructor(sorted: readonly PerfMapRange[], bias: number, expected = 256) {
    const room = Math.max(16, Math.min(expected, 1 << 20));
    this.start = new Float64Array(room);
    this.size = new Float64Array(room);
    this.symSize = new Float64Array(room);
    this.ref = new Uint32Array(room);
    this.bind = new Uint8Array(room);
    this.#ranges = sorted;
    this.#bias = bias;
    this.lo = sorted.length ? sorted[0].start : 0;
    this.#hi = Math.max(0, ...sorted.map((r) => r.end));
  }

  add(value: number, size: number, type: number, bind: number, ref: number) {
    if (size <= 0 || (type !== STT_FUNC && type !== STT_GNU_IFUNC)) return;
    const lo = value + this.#bias;
    const hi = lo + size;
    if (hi <= this.lo || lo >= this.#hi) return;
    const ranges = this.#ranges;
    for (let r = 0; r < ranges.length; r++) {
      const { start: rs, end: re } = ranges[r];
      if (rs >= hi) break;
      if (re <= lo) continue;
      const start = lo > rs ? lo : rs;
      if (this.n === this.start.length) this.#grow();
      const i = this.n++;
      this.start[i] = start;
      this.size[i] = (hi < re ? hi : re) - start;
      this.symSize[i] = size;
      this.ref[i] = ref;
      this.bind[i] = bind;
    }
  }

  #grow() {
    const grow = <T extends Float64Array | Uint32Array | Uint8Array>(
      a: T,
    ): T => {
      const b = new (a.constructor as new (n: number) => T)(2 * a.length);
      b.set(a);
      return b;
    };
    this.start = grow(this.start);
    this.size = grow(this.size);
    this.symSize = grow(this.symSize);
    this.ref = grow(this.ref);
    this.bind = grow(this.bind);
  }
}

/** The candidates by start, equal starts in the order they were added. */
function byStart(c: Candidates): Uint32Array {
  const all = new Uint32Array(c.n);
  for (let i = 0; i < c.n; i++) all[i] = i;
  return all.sort((a, b) => c.start[a] - c.start[b] || a - b);
}

/**
 * Per candidate, 1 when it shares its start with another (0 when alone),
 * to be replaced with its name's place + 1 in a {@linkcode NamePool}.
 */
function sharing(c: Candidates, order: Uint32Array): Uint32Array {
  const marks = new Uint32Array(c.n);
  const { start } = c;
  for (let j = 1; j < order.length; j++) {
    if (start[order[j]] === start[order[j - 1]]) {
      marks[order[j]] = 1;
      marks[order[j - 1]] = 1;
    }
  }
  return marks;
}

/** The candidates in start order, and the names of those sharing a start. */
interface Ranking {
  /** The candidates. */
  c: Candidates;
  /** Their indices by start. */
  order: Uint32Array;
  /**
   * `shared[i]`: the place + 1 of the name of candidate `i` in `pool` (0
   * for one alone at its start).
   */
  shared: Uint32Array;
  /** The NUL-terminated names ({@linkcode NamePool}'s bytes). */
  pool: Uint8Array;
}

/**
 * One candidate per start, in start order: the only one, or the best named
 * of those sharing it (by {@linkcode better}).
 */
function choose(r: Ranking): Uint32Array {
  const { c: { start }, order } = r;
  const out = new Uint32Array(order.length);
  let w = 0;
  for (let j = 0; j < order.length;) {
    const i = order[j];
    let k = j + 1;
    while (k < order.length && start[order[k]] === start[i]) k++;
    if (k === j + 1) {
      out[w++] = i;
    } else {
      const best = bestOf(r, j, k);
      if (best >= 0) out[w++] = best;
    }
    j = k;
  }
  return out.subarray(0, w);
}

/** The best named of `order[from..to)` (one start), or -1 when none has a name. */
function bestOf(r: Ranking, from: number, to: number): number {
  let best = -1;
  for (let m = from; m < to; m++) {
    const i = r.order[m];
    if (r.pool[r.shared[i] - 1] === 0) continue;
    if (best < 0 || better(r, i, best)) best = i;
  }
  return best;
}

/** Bytes inside at least one of `winners` (in start order). */
function coveredBy(c: Candidates, winners: Uint32Array): number {
  let covered = 0;
  let reach = -Infinity;
  for (const i of winners) {
    const end = c.start[i] + c.size[i];
    if (end <= reach) continue;
    covered += end - Math.max(c.start[i], reach);
    reach = end;
  }
  return covered;
}

/**
 * Whether candidate `i`'s name is preferred to candidate `j`'s (both
 * sharing a start): an unversioned name over `name@VER`, then global over
 * weak over local, then the larger size, the shorter name, the first in
 * byte (UTF-8: code point) order.
 */
function better(r: Ranking, i: number, j: number): boolean {
  const { c, pool } = r;
  const a = r.shared[i] - 1;
  const b = r.shared[j] - 1;
  const va = versioned(pool, a);
  if (va !== versioned(pool, b)) return !va;
  const ra = BIND_RANK[c.bind[i]] ?? 3;
  const rb = BIND_RANK[c.bind[j]] ?? 3;
  if (ra !== rb) return ra < rb;
  const sizeA = c.symSize[i];
  const sizeB = c.symSize[j];
  if (sizeA !== sizeB) return sizeA > sizeB;
  const la = pool.indexOf(0, a) - a;
  const lb = pool.indexOf(0, b) - b;
  if (la !== lb) return la < lb;
  for (let k = 0; k < la; k++) {
    if (pool[a + k] !== pool[b + k]) return pool[a + k] < pool[b + k];
  }
  return false;
}

/** Whether the NUL-terminated name at `pool[at]` has a version (`@`). */
function versioned(pool: Uint8Array, at: number): boolean {
  for (let k = at; pool[k] !== 0; k++) if (pool[k] === 0x40) return true;
  return false;
}

/**
 * The names of the candidates that share their start with another,
 * NUL-terminated, one after another: only they are compared.
 */
class NamePool {
  bytes: Uint8Array = new Uint8Array(1 << 12);
  #length = 0;

  /** Copies the NUL-terminated name at `src[from]`; returns its place + 1. */
  add(src: Uint8Array, from: number): number {
    const end = src.indexOf(0, from) + 1;
    const at = this.#length;
    if (at + end - from > this.bytes.length) {
      const grown = new Uint8Array(2 * (at + end - from));
      grown.set(this.bytes.subarray(0, at));
      this.bytes = grown;
    }
    this.bytes.set(src.subarray(from, end), at);
    this.#length = at + end - from;
    return at + 1;
  }
}

/**
 * The perf map lines of `entries`: `START SIZE name`, hex without `0x`, each
 * ending in a newline (`""` for no entries).
 *
 * @example
 * ```ts
 * import { formatPerfMap } from "./perf_map.ts";
 * import assert from "node:assert/strict";
 * assert.equal(formatPerfMap([{ start: 0x401000, size: 0x20, name: "f" }]), "401000 20 f\n");
 * ```
 *
 * @param entries The entries, as {@linkcode perfMapEntries} returns them.
 * @returns The text to append to the map.
 */
export function formatPerfMap(entries: readonly PerfMapEntry[]): string {
  let out = "";
  for (const e of entries) {
    out += `${e.start.toString(16)} ${e.size.toString(16)} ${e.name}\n`;
  }
  return out;
}

/**
 * The load bias of an object, from one of its regions in memory: the
 * runtime address `dataStart` holds the byte at `fileOffset` of the file,
 * which the LOAD segment mapping that offset places at
 * `p_vaddr + (fileOffset - p_offset)`.
 *
 * The kernel maps a segment from the page holding its first byte: one whose
 * `p_offset` is not a multiple of the page size (`0x2064400`) is mapped
 * from the start of that page (`0x2064000`), so a region may start up to a
 * page before `p_offset`. That page may also end the previous segment,
 * mapped a second time at another address: of the segments that map
 * `fileOffset`, the one whose `PF_X` matches the region's `perms` is taken.
 *
 * @example A PIE loaded at 0x55d000000000
 * ```ts
 * import { loadBiasOf } from "./perf_map.ts";
 * import assert from "node:assert/strict";
 * const text = {
 *   type: 1, flags: 5, offset: 0x2000, vaddr: 0x3000, paddr: 0x3000,
 *   filesz: 0x8000, memsz: 0x8000, align: 0x1000,
 * };
 * const bias = loadBiasOf([text], { dataStart: 0x55d000004000, fileOffset: 0x3000 });
 * assert.equal(bias?.toString(16), "55d000000000");
 * ```
 *
 * @example A code segment that starts in the middle of a page
 * ```ts
 * import { loadBiasOf } from "./perf_map.ts";
 * import assert from "node:assert/strict";
 * const ro = { type: 1, flags: 4, offset: 0, vaddr: 0, filesz: 0x2064380 };
 * const text = { type: 1, flags: 5, offset: 0x2064400, vaddr: 0x2264400, filesz: 0x100000 };
 * // The code's mapping starts at its page: file offset 0x2064000.
 * const bias = loadBiasOf([ro, text], {
 *   dataStart: 0x7f0002264000, fileOffset: 0x2064000, perms: "r-x",
 * });
 * assert.equal(bias?.toString(16), "7f0000000000");
 * ```
 *
 * @param programHeaders The object's program headers.
 * @param region Where a part of the file is in memory, and its protection
 * (`"r-x"`); without `perms` every segment mapping the offset counts.
 * @param pageSize The page size the kernel mapped the object with.
 * @returns The bias, or `undefined` when no LOAD segment maps `fileOffset`,
 * or several do with different biases.
 * @throws {RangeError} If `pageSize` is not a power of two.
 */
export function loadBiasOf(
  programHeaders: readonly PerfMapSegment[],
  region: { dataStart: number; fileOffset: number; perms?: string },
  pageSize = 4096,
): number | undefined {
  if (
    !Number.isSafeInteger(pageSize) || pageSize < 1 ||
    (pageSize & (pageSize - 1)) !== 0
  ) {
    throw new RangeError(
      `loadBiasOf(): pageSize must be a power of two; got ${pageSize}`,
    );
  }
  const code = region.perms === undefined ? undefined : region.perms[2] === "x";
  const biases = new Set<number>();
  for (const p of programHeaders) {
    if (p.type !== PT_LOAD || p.filesz <= 0) continue;
    if (code !== undefined && ((p.flags & PF_X) !== 0) !== code) continue;
    const from = p.offset - p.offset % pageSize;
    if (region.fileOffset < from || region.fileOffset >= p.offset + p.filesz) {
      continue;
    }
    biases.add(region.dataStart - (p.vaddr + region.fileOffset - p.offset));
  }
  return biases.size === 1 ? [...biases][0] : undefined;
}

/** What was written for one object. */
export interface PerfMapObject {
  /** Path of the object. */
  object: string;
  /** The symbol table the names came from; `"none"` when it has neither. */
  source: ".symtab" | ".dynsym" | "none";
  /**
   * True when the file has no `.symtab` (a stripped executable such as
   * Deno's): only the functions it exports are named.
   */
  stripped: boolean;
  /** Load bias used (runtime address minus `st_value`). */
  bias: number;
  /** Lines written. */
  symbols: number;
  /** Bytes of remapped code of this object whose lines were due this time. */
  bytes: number;
  /** Of those, bytes inside a written symbol. */
  covered: number;
  /**
   * Regions not written again: this process already wrote their lines to
   * this map (the same range remapped again after a restore).
   */
  repeated?: number;
  /** Why nothing or less was written for it, when that is the case. */
  note?: string;
}

/** What {@linkcode writePerfMap} did. */
export interface PerfMapReport {
  /** The map file. */
  path: string;
  /** Per object with remapped code. */
  objects: PerfMapObject[];
  /** Lines written in all. */
  symbols: number;
  /** Bytes of remapped code whose lines were due. */
  bytes: number;
  /** Of those, bytes inside a written symbol. */
  covered: number;
  /** Milliseconds, reading the symbols included. */
  ms: number;
  /** Things worth knowing, e.g. that perf will not read the map for memfd copies. */
  warnings: string[];
}

/** Options of {@linkcode writePerfMap}. */
export interface PerfMapOptions {
  /** The file to append to; default `/tmp/perf-<pid>.map`, where `perf` looks. */
  path?: string;
}

/**
 * The perf map could not be written (the file is not ours, or open or
 * write failed). The message says what to do.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { PerfMapError, writePerfMap } from "./perf_map.ts";
 * import { prime } from "../../mod.ts";
 * const out = prime().remap(true).run();
 * try {
 *   writePerfMap(libc(), out.remap!);
 * } catch (e) {
 *   if (!(e instanceof PerfMapError)) throw e;
 *   console.error(e.message);
 * }
 * ```
 */
export class PerfMapError extends Error {
  /** Always `"PerfMapError"`. */
  override name: string = "PerfMapError";

  /**
   * Makes the error.
   *
   * @param message What failed and what to do.
   * @param options The underlying error, as `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * The ranges whose lines this process wrote, per map file: `map`, object,
 * `dataStart-dataEnd`. A range remapped again (after a restore) is not
 * written again.
 */
const WRITTEN = new Set<string>();

function writtenKey(path: string, r: PerfMapRegion): string {
  return `${path}\n${r.object}\n${r.dataStart}-${r.dataEnd}`;
}

/**
 * Appends to `/tmp/perf-<pid>.map` the functions of every object whose code
 * `report` moved to an anonymous or memfd copy, so `perf report` names them
 * again. Symbols come from the object's `.symtab`, or its `.dynsym` when it
 * is stripped, read by the trampoline's C writer a chunk at a time; the
 * lines are written a chunk at a time: those of functions alone at their
 * address in the order of the names in the string table, then one per
 * address shared by aliases, by address (perf does not need them sorted).
 * The file is opened `O_WRONLY|O_APPEND|O_CREAT|O_NOFOLLOW` (mode 0644)
 * before the first line; it is refused when it is not a regular
 * file owned by this process's user (perf would ignore it anyway). Nothing
 * is created when there is nothing to write. An object whose file cannot
 * be read, or no longer matches the code in memory, is skipped with a note.
 * A range whose lines this process already wrote to the same file is not
 * written again (`repeated`). The file stays after the process exits.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { describePerfMap, writePerfMap } from "./perf_map.ts";
 * import { prime } from "../../mod.ts";
 * const out = prime().remap(true).run();
 * console.log(describePerfMap(writePerfMap(libc(), out.remap!)));
 * ```
 *
 * @param c The libc binding.
 * @param report The remap report (`outcome.remap`).
 * @param options Where to write.
 * @returns What was written, per object.
 * @throws {TypeError} If `report` has no `regions` array or `options.path`
 * is not an absolute path.
 * @throws {PerfMapError} If the map file cannot be opened or written.
 */
export function writePerfMap(
  c: Libc,
  report: {
    readonly regions: readonly PerfMapRegion[];
    readonly backend?: string;
  },
  options: PerfMapOptions = {},
): PerfMapReport {
  const t0 = performance.now();
  if (!report || !Array.isArray(report.regions)) {
    throw new TypeError(
      "writePerfMap(): report must be a remap report with a regions array (outcome.remap)",
    );
  }
  if (
    options.path !== undefined &&
    (typeof options.path !== "string" || !options.path.startsWith("/"))
  ) {
    throw new TypeError(
      `writePerfMap(): path must be an absolute path; got ${
        JSON.stringify(options.path)
      }`,
    );
  }
  const path = options.path ?? `/tmp/perf-${c.getpid()}.map`;
  const code = report.regions.filter((r) =>
    r.status === "remapped" && r.perms[2] === "x" && r.dataEnd > r.dataStart
  );
  const byObject = new Map<string, PerfMapRegion[]>();
  for (const r of code) {
    byObject.set(r.object, [...(byObject.get(r.object) ?? []), r]);
  }
  const objects: PerfMapObject[] = [];
  const out = new MapFile(c, path);
  let t: Trampoline | undefined;
  try {
    for (const [object, regions] of byObject) {
      const fresh = regions.filter((r) => !WRITTEN.has(writtenKey(path, r)));
      const repeated = regions.length - fresh.length;
      const o = fresh.length === 0
        ? nothing(object, 0, `already written to ${path} by this process`)
        : writeObject({ c, t: t ??= trampoline(c), out }, object, fresh);
      if (repeated > 0) o.repeated = repeated;
      objects.push(o);
      if (o.source !== "none") {
        for (const r of fresh) WRITTEN.add(writtenKey(path, r));
      }
    }
  } finally {
    out.close();
  }
  const warnings: string[] = [];
  if (report.backend === "memfd" && objects.some((o) => o.symbols > 0)) {
    warnings.push(
      'the copies are memfd (or shared) files: perf (6.1 tested) sees them as deleted files, not anonymous memory, and does not read the perf map for them; profile with remap({ backend: "thp" }) or "hugetlb"',
    );
  }
  const sum = (f: (o: PerfMapObject) => number) =>
    objects.reduce((n, o) => n + f(o), 0);
  return {
    path,
    objects,
    symbols: sum((o) => o.symbols),
    bytes: sum((o) => o.bytes),
    covered: sum((o) => o.covered),
    ms: performance.now() - t0,
    warnings,
  };
}

/**
 * One line about a {@linkcode PerfMapReport}, for a log.
 *
 * @example
 * ```ts
 * import { describePerfMap } from "./perf_map.ts";
 * import assert from "node:assert/strict";
 * const line = describePerfMap({
 *   path: "/tmp/perf-7.map", symbols: 215, bytes: 64 << 20, covered: 1 << 20, ms: 2, warnings: [],
 *   objects: [{ object: "/usr/bin/deno", source: ".dynsym", stripped: true, bias: 0,
 *     symbols: 215, bytes: 64 << 20, covered: 1 << 20 }],
 * });
 * assert.equal(
 *   line,
 *   "perf map /tmp/perf-7.map: deno 215 symbols from .dynsym (stripped: exported functions only), 1.0 of 64.0 MiB of remapped code named (1.6%); 2.0 ms",
 * );
 * ```
 *
 * @param r What {@linkcode writePerfMap} returned.
 * @returns The line, without a newline.
 */
export function describePerfMap(r: PerfMapReport): string {
  const parts = r.objects.map((o) =>
    o.source === "none"
      ? `${basename(o.object)} nothing (${o.note})`
      : `${basename(o.object)} ${o.symbols} symbols from ${o.source}${
        o.stripped ? " (stripped: exported functions only)" : ""
      }${
        o.repeated
          ? `; ${o.repeated} region(s) already written by this process`
          : ""
      }`
  );
  return `perf map ${r.path}: ${
    parts.length ? parts.join("; ") : "no remapped code"
  }, ${formatMiB(r.covered)} of ${
    formatMiB(r.bytes)
  } MiB of remapped code named (${formatPercent(r.covered, r.bytes)}); ${
    r.ms.toFixed(1)
  } ms`;
}

// ---------------------------------------------------------------------------
// Syscall helpers.

/** Bytes compared between memory and the file, per region. */
const CHECK_BYTES = 4096;

function nothing(object: string, bytes: number, note: string): PerfMapObject {
  return {
    object,
    source: "none",
    stripped: false,
    bias: 0,
    symbols: 0,
    bytes,
    covered: 0,
    note,
  };
}

/** Writes the lines of one object's `regions`; a note instead when it cannot. */
function writeObject(
  { c, t, out }: { c: Libc; t: Trampoline; out: MapFile },
  object: string,
  regions: readonly PerfMapRegion[],
): PerfMapObject {
  const ranges = regions.map((r) => ({ start: r.dataStart, end: r.dataEnd }))
    .sort((a, b) => a.start - b.start);
  const bytes = bytesOf(ranges);
  let fd: number;
  try {
    fd = c.openRead(object);
  } catch (e) {
    return nothing(
      object,
      bytes,
      `cannot open it: ${e instanceof Error ? e.message : e}`,
    );
  }
  try {
    const src = fdSource(c, fd, c.fileSize(fd));
    const elf = parseElf(src);
    const bias = checkLoaded(
      c,
      { fd, programHeaders: elf.programHeaders },
      regions,
    );
    if (typeof bias === "string") return nothing(object, bytes, bias);
    const symtab = symbolTableLayout(src, elf.sections, ".symtab");
    const dynsym = symbolTableLayout(src, elf.sections, ".dynsym");
    if (symtab === undefined && dynsym === undefined) {
      return nothing(object, bytes, "it has neither .symtab nor .dynsym");
    }
    const w = new NativeWriter(c, t, fd, ranges, bias);
    try {
      return {
        object,
        stripped: symtab === undefined,
        bias,
        bytes,
        ...writeTables(w, out, { symtab, dynsym }),
      };
    } finally {
      w.release();
    }
  } catch (e) {
    if (e instanceof ElfError || e instanceof SyscallError) {
      return nothing(object, bytes, `cannot read its symbols: ${e.message}`);
    }
    throw e;
  } finally {
    c.close(fd);
  }
}

/**
 * The lines of `.symtab`'s functions in the ranges, or of `.dynsym`'s when
 * `.symtab` has none there (it may hold only section symbols).
 */
function writeTables(
  w: NativeWriter,
  out: MapFile,
  { symtab, dynsym }: {
    symtab: SymbolTableLayout | undefined;
    dynsym: SymbolTableLayout | undefined;
  },
): Pick<PerfMapObject, "source" | "symbols" | "covered" | "note"> {
  let layout = (symtab ?? dynsym)!;
  let note: string | undefined;
  if (
    w.collect(layout) === 0 && symtab !== undefined && dynsym !== undefined &&
    w.collect(dynsym) > 0
  ) {
    layout = dynsym;
    note = ".symtab names no function in the remapped code";
  }
  const { symbols, covered } = w.write(layout, out);
  return {
    source: layout.table,
    symbols,
    covered,
    ...(note !== undefined ? { note } : {}),
  };
}

/**
 * The load bias of `regions`, after checking that the file is the one in
 * memory (its LOAD segments map each region's offset at one bias, and the
 * first bytes of each region equal the file's); else why not.
 */
function checkLoaded(
  c: Libc,
  { fd, programHeaders }: {
    fd: number;
    programHeaders: readonly PerfMapSegment[];
  },
  regions: readonly PerfMapRegion[],
): number | string {
  const pageSize = c.pageSize();
  const bias = loadBiasOf(programHeaders, regions[0], pageSize);
  if (bias === undefined) {
    return `no executable LOAD segment maps file offset 0x${
      regions[0].fileOffset.toString(16)
    }: the file on disk is not the one loaded`;
  }
  for (const r of regions) {
    if (loadBiasOf(programHeaders, r, pageSize) !== bias) {
      return `its regions disagree on the load bias: the file on disk is not the one loaded`;
    }
    const n = Math.min(CHECK_BYTES, r.dataEnd - r.dataStart);
    const file = c.pread(fd, r.fileOffset, n);
    const mem = memory(r.dataStart, n);
    if (file.length !== n || file.some((b, i) => b !== mem[i])) {
      return `the code at 0x${
        r.dataStart.toString(16)
      } differs from the file: it was replaced on disk since it was loaded`;
    }
  }
  return bias;
}

/**
 * Anonymous memory for the C writer, mapped here and unmapped by
 * {@linkcode release}: on transparent huge pages where the kernel gives
 * them (a page fault per 2 MiB instead of per 4 KiB: 12 MiB of candidates
 * fault in about 1.5 ms instead of 7.5 ms on the machine measured), and
 * given back as soon as the object is written, not at a later garbage
 * collection.
 */
class Mapping {
  readonly #c: Libc;
  readonly address: number;
  readonly length: number;

  constructor(c: Libc, bytes: number) {
    this.#c = c;
    // Whole huge pages: the kernel aligns such a mapping to them.
    this.length = bytes >= HUGE_PAGE
      ? Math.ceil(bytes / HUGE_PAGE) * HUGE_PAGE
      : Math.max(1, bytes);
    this.address = c.mmap(
      0,
      this.length,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS,
    );
    try {
      c.madvise(this.address, this.length, MADV_HUGEPAGE);
    } catch {
      // No transparent huge pages in this kernel: 4 KiB pages, slower.
    }
  }

  /** `length` bytes at `offset` (a multiple of 8). */
  bytes(offset: number, length: number): Uint8Array {
    return memory(this.address + offset, length);
  }

  /** `count` 64-bit words at `offset` (a multiple of 8). */
  words(offset: number, count: number): BigUint64Array {
    const b = this.bytes(offset, 8 * count);
    return new BigUint64Array(b.buffer, b.byteOffset, count);
  }

  release() {
    this.#c.munmap(this.address, this.length);
  }
}

/**
 * One object's symbol tables through the C writer (`trampoline/perf_map.c`),
 * in memory mapped here: `collect` finds the functions of a table in the
 * ranges, `write` appends their lines. Room is made and the call repeated
 * when the C side says how much more it needs (a function crossing several
 * ranges, more names shared by aliases than guessed). {@linkcode release}
 * unmaps the memory; the buffers must not be used after it.
 */
class NativeWriter {
  readonly #c: Libc;
  readonly #t: Trampoline;
  readonly #fd: number;
  readonly #bias: number;
  readonly #scratch: PerfMapScratch;
  #buffers: Mapping | undefined;
  #pool: Mapping | undefined;
  #count = 0;
  #shared = 0;

  constructor(
    c: Libc,
    t: Trampoline,
    fd: number,
    sorted: readonly PerfMapRange[],
    bias: number,
  ) {
    this.#c = c;
    this.#t = t;
    this.#fd = fd;
    this.#bias = bias;
    const ranges = new BigUint64Array(3 * sorted.length);
    sorted.forEach((r, i) => {
      ranges[3 * i] = BigInt(r.start);
      ranges[3 * i + 1] = BigInt(r.end);
    });
    const none = new BigUint64Array(0);
    this.#scratch = {
      ranges,
      io: new Uint8Array(0),
      out: new Uint8Array(0),
      candidates: none,
      order: none,
      orderTmp: none,
      pool: new Uint8Array(0),
    };
  }

  /** Finds the functions of `layout` in the ranges; returns how many. */
  collect(layout: SymbolTableLayout): number {
    // Room for every symbol at first: in a remapped executable most are
    // functions in the remapped code. Untouched room costs no memory.
    this.#room(Math.max(1, layout.count));
    let r = this.#call("collect", layout);
    if (r.step === "room") {
      this.#room(r.need);
      r = this.#call("collect", layout);
    }
    this.#check(r, layout);
    this.#count = r.count;
    this.#shared = r.shared;
    return r.count;
  }

  /**
   * Appends the lines of what {@linkcode collect} found last (nothing, and
   * the map is not opened, when it found nothing).
   */
  write(
    layout: SymbolTableLayout,
    out: MapFile,
  ): { symbols: number; covered: number } {
    if (this.#count === 0) return { symbols: 0, covered: 0 };
    // The aliases' names, at twice the table's mean name length.
    const mean = Math.ceil(layout.strings.size / Math.max(1, layout.count));
    this.#poolRoom(this.#shared * 2 * (mean + 1));
    const mapFd = out.fd();
    let r = this.#call("write", layout, mapFd);
    let symbols = r.symbols;
    if (r.step === "pool") {
      // The lone functions' lines are out; the shared addresses' next.
      this.#poolRoom(r.need);
      r = this.#call("write shared", layout, mapFd);
      symbols += r.symbols;
    }
    if (r.step === "write") {
      throw new PerfMapError(
        `cannot append perf symbols to ${out.path}: ${
          new SyscallError("write", r.errno, "appending to the map").message
        }; check the free space of its file system`,
      );
    }
    this.#check(r, layout);
    return { symbols, covered: r.covered };
  }

  /** Unmaps the buffers. */
  release() {
    this.#buffers?.release();
    this.#pool?.release();
    this.#buffers = this.#pool = undefined;
  }

  /** io, out and room for `candidates` in one mapping. */
  #room(candidates: number) {
    const s = this.#scratch;
    if (this.#buffers !== undefined && s.order.length >= candidates) return;
    this.#buffers?.release();
    this.#buffers = undefined;
    const words = (PERF_MAP_CANDIDATE_WORDS + 2) * candidates;
    const m = new Mapping(this.#c, IO_BYTES + OUT_BYTES + 8 * words);
    this.#buffers = m;
    let at = 0;
    const take = (bytes: number) => (at += bytes) - bytes;
    s.io = m.bytes(take(IO_BYTES), IO_BYTES);
    s.out = m.bytes(take(OUT_BYTES), OUT_BYTES);
    const n = PERF_MAP_CANDIDATE_WORDS * candidates;
    s.candidates = m.words(take(8 * n), n);
    s.order = m.words(take(8 * candidates), candidates);
    s.orderTmp = m.words(take(8 * candidates), candidates);
  }

  #poolRoom(bytes: number) {
    this.#pool?.release();
    this.#pool = undefined;
    this.#scratch.pool = new Uint8Array(0);
    if (bytes === 0) return;
    this.#pool = new Mapping(this.#c, bytes);
    this.#scratch.pool = this.#pool.bytes(0, bytes);
  }

  #call(
    op: PerfMapRequest["op"],
    layout: SymbolTableLayout,
    mapFd = -1,
  ): PerfMapResult {
    return this.#t.perfMap({
      op,
      fd: this.#fd,
      symbolOffset: layout.offset,
      symbolCount: layout.count,
      stringOffset: layout.strings.offset,
      stringSize: layout.strings.size,
      bias: this.#bias,
      mapFd,
      count: this.#count,
    }, this.#scratch);
  }

  /** Throws what a failed step means for the symbols of this file. */
  #check(r: PerfMapResult, layout: SymbolTableLayout) {
    switch (r.step) {
      case "":
        return;
      case "symbol table pread":
      case "string table pread":
        throw new SyscallError(
          "pread",
          r.errno,
          `reading the ${
            r.step === "symbol table pread"
              ? layout.label
              : layout.strings.label
          }`,
        );
      case "name":
        throw new ElfError(
          `a symbol name at offset 0x${
            r.at.toString(16)
          } is outside the ${layout.strings.label} or has no terminating NUL`,
        );
      case "sort":
        throw new ElfError(
          `${r.count} functions over these ranges are too many to sort by address`,
        );
      default:
        throw new Error(
          `the trampoline's perf map writer failed at step "${r.step}" (errno ${r.errno}): a page-primer bug, please report it`,
        );
    }
  }
}

/** The map file, opened to append on first use. */
class MapFile {
  readonly #c: Libc;
  readonly path: string;
  #fd = -1;

  constructor(c: Libc, path: string) {
    this.#c = c;
    this.path = path;
  }

  /** The descriptor, opening the file the first time. */
  fd(): number {
    if (this.#fd < 0) this.#fd = openPrivate(this.#c, this.path);
    return this.#fd;
  }

  close() {
    if (this.#fd >= 0) this.#c.close(this.#fd);
    this.#fd = -1;
  }
}

/** The trampoline, which holds the C writer. */
function trampoline(c: Libc): Trampoline {
  try {
    return loadTrampoline(c);
  } catch (e) {
    throw new PerfMapError(
      `cannot load page-primer's trampoline, which writes the perf map: ${
        e instanceof Error ? e.message : e
      }`,
      { cause: e },
    );
  }
}

/** Opens the map to append, refusing one that is not this user's regular file. */
function openPrivate(c: Libc, path: string): number {
  let fd: number;
  try {
    fd = c.open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0o644);
  } catch (e) {
    throw new PerfMapError(
      `cannot open ${path} to append perf symbols: ${
        e instanceof Error ? e.message : e
      }; check that its directory is writable, or turn the perf map off`,
      { cause: e },
    );
  }
  try {
    const st = c.fstat(fd);
    if ((st.mode & S_IFMT) !== S_IFREG || st.uid !== c.geteuid()) {
      throw new PerfMapError(
        `${path} is ${
          (st.mode & S_IFMT) !== S_IFREG
            ? "not a regular file"
            : `owned by uid ${st.uid}, not by this process's user (uid ${c.geteuid()})`
        }: perf would not trust it, so no symbols were written; remove it and run again`,
      );
    }
  } catch (e) {
    c.close(fd);
    throw e;
  }
  return fd;
}
