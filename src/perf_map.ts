/**
 * Symbols for `perf` after a remap. Once a region of an executable's code
 * runs from an anonymous (or memfd) copy, `perf` no longer sees the file
 * behind those addresses and cannot name the functions there. Its
 * convention for code without a file is `/tmp/perf-<pid>.map`: one line
 * `START SIZE name` per symbol, addresses and sizes in hex without `0x`.
 * V8's `--perf-basic-prof` writes the same file, so it is only ever appended
 * to, never truncated.
 *
 * Only functions (`STT_FUNC`, `STT_GNU_IFUNC`) with a size are written:
 * `perf` samples instruction addresses and consults the map only for
 * executable mappings, so data symbols would never be looked up.
 *
 * The pure part ({@linkcode perfMapEntries}, {@linkcode formatPerfMap},
 * {@linkcode loadBiasOf}, {@linkcode describePerfMap}) is separate from
 * {@linkcode writePerfMap}, which reads the executable and appends to the
 * file through libc.
 *
 * @module
 */

import { ElfError, parseElf, PT_LOAD, SHT_SYMTAB } from "./elf.ts";
import { memory } from "./ffi.ts";
import { basename, formatMiB, formatPercent } from "./format.ts";
import {
  fdSource,
  O_CREAT,
  O_NOFOLLOW,
  S_IFMT,
  S_IFREG,
  SyscallError,
} from "./libc.ts";

/** `open` flag: write only (the same value on x86_64 and aarch64 Linux). */
const O_WRONLY = 0o1;
/** `open` flag: every write goes to the end of the file. */
const O_APPEND = 0o2000;

/** Symbol types that name code: `STT_FUNC` and `STT_GNU_IFUNC`. */
const CODE_TYPES: ReadonlySet<number> = new Set([2, 10]);
/** Symbol bindings in order of preference for a name at a shared address. */
const BIND_RANK: Readonly<Record<number, number>> = { 1: 0, 2: 1, 0: 2 };

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

/**
 * The libc calls {@linkcode writePerfMap} makes: the `Libc` of `libc.ts`
 * (`libc()`) is one.
 */
export interface PerfMapLibc {
  /** `getpid()`. */
  getpid(): number;
  /** `geteuid()`. */
  geteuid(): number;
  /** `open(path, O_RDONLY|O_CLOEXEC)`. */
  openRead(path: string): number;
  /** `open(path, flags|O_CLOEXEC, mode)`. */
  open(path: string, flags: number, mode?: number): number;
  /** `close(fd)`. */
  close(fd: number): void;
  /** Size of the open file. */
  fileSize(fd: number): number;
  /** `pread` of `length` bytes at `offset`. */
  pread(fd: number, offset: number, length: number): Uint8Array;
  /** `fstat(fd)`: file type and permission bits, and owner. */
  fstat(fd: number): { mode: number; uid: number };
  /** Writes all of `bytes`. */
  writeAll(fd: number, bytes: Uint8Array): void;
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
 * and the first in code-point order.
 *
 * @example Two aliases and a function partly outside the range
 * ```ts
 * import { perfMapEntries } from "./perf_map.ts";
 * const plan = perfMapEntries([
 *   { name: "f@@V1", value: 0x1000, size: 0x20, type: 2, bind: 1 },
 *   { name: "f", value: 0x1000, size: 0x20, type: 2, bind: 1 },
 *   { name: "g", value: 0x1ff0, size: 0x40, type: 2, bind: 1 },
 * ], [{ start: 0x401000, end: 0x402000 }], 0x400000);
 * console.log(plan.entries.map((e) => e.name)); // ["f", "g"]
 * console.log(plan.entries[1].size); // 16: clipped at the range's end
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
  if (!Array.isArray(ranges)) {
    throw new TypeError(
      "perfMapEntries(): ranges must be an array of { start, end }",
    );
  }
  if (!Number.isSafeInteger(bias)) {
    throw new RangeError(
      `perfMapEntries(): bias must be a safe integer; got ${bias}`,
    );
  }
  for (const r of ranges) {
    if (
      !Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end) ||
      r.end < r.start
    ) {
      throw new RangeError(
        `perfMapEntries(): range ${r.start}..${r.end} is not a pair of safe integers with start <= end`,
      );
    }
  }
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  const best = new Map<number, { entry: PerfMapEntry; rank: Rank }>();
  for (const s of symbols) {
    if (!CODE_TYPES.has(s.type) || s.size <= 0 || s.name === "") continue;
    const lo = s.value + bias;
    const hi = lo + s.size;
    for (const r of sorted) {
      if (r.start >= hi) break;
      if (r.end <= lo) continue;
      const start = Math.max(lo, r.start);
      const entry = {
        start,
        size: Math.min(hi, r.end) - start,
        name: s.name.replace(/[\r\n]/g, " "),
      };
      const rank = rankOf(s);
      const had = best.get(start);
      if (had === undefined || better(rank, had.rank)) {
        best.set(start, { entry, rank });
      }
    }
  }
  const entries = [...best.values()].map((b) => b.entry).sort((a, b) =>
    a.start - b.start
  );
  let bytes = 0;
  for (const r of sorted) bytes += r.end - r.start;
  // Union of the entries: overlapping symbols are counted once.
  let covered = 0;
  let reach = -Infinity;
  for (const e of entries) {
    const end = e.start + e.size;
    if (end <= reach) continue;
    covered += end - Math.max(e.start, reach);
    reach = end;
  }
  return { entries, bytes, covered };
}

interface Rank {
  versioned: boolean;
  bind: number;
  size: number;
  name: string;
}

function rankOf(s: PerfMapSymbol): Rank {
  return {
    versioned: s.name.includes("@"),
    bind: BIND_RANK[s.bind] ?? 3,
    size: s.size,
    name: s.name,
  };
}

function better(a: Rank, b: Rank): boolean {
  if (a.versioned !== b.versioned) return !a.versioned;
  if (a.bind !== b.bind) return a.bind < b.bind;
  if (a.size !== b.size) return a.size > b.size;
  if (a.name.length !== b.name.length) return a.name.length < b.name.length;
  return a.name < b.name;
}

/**
 * The perf map lines of `entries`: `START SIZE name`, hex without `0x`, each
 * ending in a newline (`""` for no entries).
 *
 * @example
 * ```ts
 * import { formatPerfMap } from "./perf_map.ts";
 * console.log(formatPerfMap([{ start: 0x401000, size: 0x20, name: "f" }])); // "401000 20 f\n"
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
 * which the LOAD segment containing that offset places at
 * `p_vaddr + (fileOffset - p_offset)`.
 *
 * @example A PIE loaded at 0x55d000000000
 * ```ts
 * import { loadBiasOf } from "./perf_map.ts";
 * const text = {
 *   type: 1, flags: 5, offset: 0x2000, vaddr: 0x3000, paddr: 0x3000,
 *   filesz: 0x8000, memsz: 0x8000, align: 0x1000,
 * };
 * const bias = loadBiasOf([text], { dataStart: 0x55d000004000, fileOffset: 0x3000 });
 * console.log(bias?.toString(16)); // "55cfffffe000"
 * ```
 *
 * @param programHeaders The object's program headers.
 * @param region Where a part of the file is in memory.
 * @returns The bias, or `undefined` when no LOAD segment holds `fileOffset`.
 */
export function loadBiasOf(
  programHeaders: readonly PerfMapSegment[],
  region: { dataStart: number; fileOffset: number },
): number | undefined {
  const ph = programHeaders.find((p) =>
    p.type === PT_LOAD && p.offset <= region.fileOffset &&
    region.fileOffset < p.offset + p.filesz
  );
  if (ph === undefined) return undefined;
  return region.dataStart - (ph.vaddr + region.fileOffset - ph.offset);
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
  /** Bytes of remapped code of this object. */
  bytes: number;
  /** Of those, bytes inside a written symbol. */
  covered: number;
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
  /** Bytes of remapped code. */
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
 * ```ts no-eval
 * import { libc } from "./libc.ts";
 * import { PerfMapError, writePerfMap } from "./perf_map.ts";
 * import { prime } from "../mod.ts";
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
 * Appends to `/tmp/perf-<pid>.map` the functions of every object whose code
 * `report` moved to an anonymous or memfd copy, so `perf report` names them
 * again. Symbols come from the object's `.symtab`, or its `.dynsym` when it
 * is stripped. The file is opened `O_WRONLY|O_APPEND|O_CREAT|O_NOFOLLOW`
 * (mode 0644) and written in one `write`; it is refused when it is not a
 * regular file owned by this process's user (perf would ignore it anyway).
 * Nothing is created when there is nothing to write. An object whose file
 * cannot be read, or no longer matches the code in memory, is skipped with
 * a note.
 *
 * @example
 * ```ts no-eval
 * import { libc } from "./libc.ts";
 * import { describePerfMap, writePerfMap } from "./perf_map.ts";
 * import { prime } from "../mod.ts";
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
  c: PerfMapLibc,
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
  const byObject = new Map<string, typeof code>();
  for (const r of code) {
    byObject.set(r.object, [...(byObject.get(r.object) ?? []), r]);
  }
  const objects: PerfMapObject[] = [];
  let text = "";
  for (const [object, regions] of byObject) {
    const ranges = regions.map((r) => ({ start: r.dataStart, end: r.dataEnd }));
    const bytes = ranges.reduce((n, r) => n + r.end - r.start, 0);
    const done = objectEntries(c, object, regions, ranges);
    if (typeof done === "string") {
      objects.push({
        object,
        source: "none",
        stripped: false,
        bias: 0,
        symbols: 0,
        bytes,
        covered: 0,
        note: done,
      });
      continue;
    }
    text += formatPerfMap(done.plan.entries);
    objects.push({
      object,
      source: done.source,
      stripped: done.stripped,
      bias: done.bias,
      symbols: done.plan.entries.length,
      bytes,
      covered: done.plan.covered,
      ...(done.note !== undefined ? { note: done.note } : {}),
    });
  }
  if (text !== "") appendPrivate(c, path, text);
  const warnings: string[] = [];
  if (report.backend === "memfd" && objects.length > 0) {
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
 * console.log(describePerfMap({
 *   path: "/tmp/perf-7.map", symbols: 215, bytes: 64 << 20, covered: 1 << 20, ms: 2, warnings: [],
 *   objects: [{ object: "/usr/bin/deno", source: ".dynsym", stripped: true, bias: 0,
 *     symbols: 215, bytes: 64 << 20, covered: 1 << 20 }],
 * }));
 * // perf map /tmp/perf-7.map: deno 215 symbols from .dynsym (stripped: exported functions only), 1.0 of 64.0 MiB of remapped code named (1.6%); 2.0 ms
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

function objectEntries(
  c: PerfMapLibc,
  object: string,
  regions: readonly {
    dataStart: number;
    dataEnd: number;
    fileOffset: number;
  }[],
  ranges: readonly PerfMapRange[],
):
  | {
    plan: PerfMapPlan;
    source: ".symtab" | ".dynsym";
    stripped: boolean;
    bias: number;
    note?: string;
  }
  | string {
  let fd: number;
  try {
    fd = c.openRead(object);
  } catch (e) {
    return `cannot open it: ${e instanceof Error ? e.message : e}`;
  }
  try {
    const size = c.fileSize(fd);
    const elf = parseElf(fdSource(c, fd, size));
    const bias = loadBiasOf(elf.programHeaders, regions[0]);
    if (bias === undefined) {
      return `no LOAD segment holds file offset 0x${
        regions[0].fileOffset.toString(16)
      }: the file on disk is not the one loaded`;
    }
    for (const r of regions) {
      if (loadBiasOf(elf.programHeaders, r) !== bias) {
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
    const stripped = !elf.sections.some((s) => s.type === SHT_SYMTAB);
    let source: ".symtab" | ".dynsym" = stripped ? ".dynsym" : ".symtab";
    let plan = perfMapEntries(elf.symbols(source), ranges, bias);
    let note: string | undefined;
    if (!stripped && plan.entries.length === 0) {
      // A .symtab without functions (only section symbols): try .dynsym.
      const dyn = perfMapEntries(elf.symbols(".dynsym"), ranges, bias);
      if (dyn.entries.length > 0) {
        plan = dyn;
        source = ".dynsym";
        note = ".symtab names no function in the remapped code";
      }
    }
    return {
      plan,
      source,
      stripped,
      bias,
      ...(note !== undefined ? { note } : {}),
    };
  } catch (e) {
    if (e instanceof ElfError || e instanceof SyscallError) {
      return `cannot read its symbols: ${e.message}`;
    }
    throw e;
  } finally {
    c.close(fd);
  }
}

function appendPrivate(c: PerfMapLibc, path: string, text: string): void {
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
    c.writeAll(fd, new TextEncoder().encode(text));
  } catch (e) {
    if (e instanceof SyscallError) {
      throw new PerfMapError(
        `cannot append perf symbols to ${path}: ${e.message}; check the free space of its file system`,
        { cause: e },
      );
    }
    throw e;
  } finally {
    c.close(fd);
  }
}
