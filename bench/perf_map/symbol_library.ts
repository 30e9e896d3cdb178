/**
 * Builds a shared library with many named functions, for the perf map
 * benchmark (`bench/perf_map/run.ts`) and tests/perf_map_test.ts: an
 * assembler file generated here and linked with `gcc`, so that 200 000
 * functions take seconds to build, not the minutes a C file of that size
 * would.
 *
 * Every function is a `STT_FUNC` with a size (a few bytes of padding and a
 * `ret`), most of them local like the static functions of an unstripped
 * executable; every tenth also gets a weak alias at the same address (as
 * C++ C1/C2 constructors do), which the perf map keeps one name of. The
 * names look like mangled C++ (about 45 bytes). A linker script
 * ({@linkcode LINKER_SCRIPT}) puts the code in its own segment right after
 * the read-only one in the file, so it starts in the middle of a page (its
 * `p_offset` is not a multiple of 4096; that page is also the last page of
 * the read-only segment), and 2 MiB higher in memory, with a gap between
 * the two: the layout that made the perf map take the loaded file for
 * another one.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { closeSync, openSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";

/**
 * The GNU ld script: read-only, code and data segments; each next segment
 * continues the file where the previous ended and starts at the same offset
 * within the next 2 MiB of addresses.
 */
export const LINKER_SCRIPT: string = `PHDRS {
  ro PT_LOAD FILEHDR PHDRS FLAGS(4);
  text PT_LOAD FLAGS(5);
  data PT_LOAD FLAGS(6);
  dyn PT_DYNAMIC FLAGS(6);
  stack PT_GNU_STACK FLAGS(6);
}
SECTIONS {
  . = SIZEOF_HEADERS;
  .note.gnu.build-id : { *(.note.gnu.build-id) } :ro
  .hash : { *(.hash) } :ro
  .gnu.hash : { *(.gnu.hash) } :ro
  .dynsym : { *(.dynsym) } :ro
  .dynstr : { *(.dynstr) } :ro
  .rodata : { *(.rodata .rodata.*) } :ro
  . = ALIGN(0x200000) + (. & 0x1fffff);
  .text : { *(.text .text.*) } :text
  . = ALIGN(0x200000) + (. & 0x1fffff);
  .dynamic : { *(.dynamic) } :data :dyn
  .got : { *(.got .got.plt) } :data
  .data : { *(.data .data.*) } :data
}
`;

/** Options of {@linkcode buildSymbolLibrary}. */
export interface SymbolLibraryOptions {
  /** Directory to write the library and its source into (must exist). */
  dir: string;
  /** Number of distinct functions. */
  functions: number;
  /** Bytes of padding before each function's `ret` (default 24). */
  pad?: number;
  /** When given, one more function whose name is this many bytes long. */
  longName?: number;
}

/** What {@linkcode buildSymbolLibrary} built. */
export interface SymbolLibrary {
  /** Path of the `.so`. */
  path: string;
  /** Distinct functions (addresses), `pm_entry` and the long name's included. */
  functions: number;
  /** Function symbols in `.symtab`: the functions and their aliases. */
  symbols: number;
  /** The one global function, callable through FFI: `pm_entry()` returns 7. */
  entry: string;
}

/** The name of function `i`: mangled-C++-like, unique, about 45 bytes. */
export function functionName(i: number): string {
  const ns = `module${i % 97}`;
  return `_ZN5bench${ns.length}${ns}8functionILi${i}EEEvPvm`;
}

/**
 * Writes `<dir>/symbols.s` and `<dir>/symbols.ld` and links
 * `<dir>/libsymbols.so` with `gcc`.
 *
 * @example
 * ```ts no-eval
 * import { buildSymbolLibrary } from "./symbol_library.ts";
 * const lib = buildSymbolLibrary({ dir: "/tmp/pm", functions: 200_000 });
 * console.log(lib.path, lib.symbols);
 * ```
 *
 * @param options Where and how many.
 * @returns The library's path and symbol counts.
 * @throws {RangeError} If `functions` is not a positive integer.
 */
export function buildSymbolLibrary(
  options: SymbolLibraryOptions,
): SymbolLibrary {
  const { dir, functions, pad = 24, longName } = options;
  if (!Number.isSafeInteger(functions) || functions < 1) {
    throw new RangeError(
      `buildSymbolLibrary(): functions must be a positive integer; got ${functions}`,
    );
  }
  const source = join(dir, "symbols.s");
  const script = join(dir, "symbols.ld");
  const path = join(dir, "libsymbols.so");
  // Written 10 000 functions at a time: the whole file is about 250 bytes
  // a function, and a process that built it as one string would start the
  // benchmark with a large heap.
  const fd = openSync(source, "w");
  let symbols = 1;
  try {
    writeSync(
      fd,
      [
        "\t.text",
        "\t.globl pm_entry",
        "\t.type pm_entry, @function",
        "pm_entry:",
        "\tmov $7, %eax",
        "\tret",
        "\t.size pm_entry, .-pm_entry",
        "",
      ].join("\n"),
    );
    for (let from = 0; from < functions; from += 10_000) {
      const lines: string[] = [];
      for (let i = from; i < Math.min(functions, from + 10_000); i++) {
        const name = functionName(i);
        lines.push("\t.p2align 4", `\t.type ${name}, @function`, `${name}:`);
        if (i % 10 === 0) {
          const alias = `${name}_C1`;
          lines.push(
            `\t.weak ${alias}`,
            `\t.type ${alias}, @function`,
            `${alias}:`,
          );
          symbols++;
        }
        lines.push(
          `\t.fill ${pad}, 1, 0x90`,
          "\tret",
          `\t.size ${name}, .-${name}`,
        );
        if (i % 10 === 0) lines.push(`\t.size ${name}_C1, .-${name}`);
        symbols++;
      }
      writeSync(fd, lines.join("\n") + "\n");
    }
    if (longName !== undefined) {
      const name = `pm_long_${"x".repeat(Math.max(0, longName - 8))}`;
      writeSync(
        fd,
        [
          "\t.p2align 4",
          `\t.type ${name}, @function`,
          `${name}:`,
          "\tret",
          `\t.size ${name}, .-${name}`,
          "",
        ].join("\n"),
      );
      symbols++;
    }
    writeSync(fd, '\t.section .note.GNU-stack,"",@progbits\n');
  } finally {
    closeSync(fd);
  }
  writeFileSync(script, LINKER_SCRIPT);
  execFileSync("gcc", [
    "-shared",
    "-nostdlib",
    `-Wl,-T,${script}`,
    "-o",
    path,
    source,
  ]);
  return {
    path,
    functions: functions + 1 + (longName === undefined ? 0 : 1),
    symbols,
    entry: "pm_entry",
  };
}
