// Copyright 2025 the page-primer authors. MIT license.
// Tests for src/sys/elf.ts. They use only node: modules so that they run
// unchanged under `deno test -A tests/elf_test.ts` and
// `bun test tests/elf_test.ts`. The parser is checked against binutils
// (readelf, nm) on real binaries: deno, bun, the running runtime and libc.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
} from "node:fs";
import process from "node:process";
import {
  type ByteSource,
  bytesSource,
  ElfError,
  type ElfFile,
  type ElfHeader,
  type ElfSymbol,
  EM_X86_64,
  ET_DYN,
  ET_EXEC,
  parseElf,
  parseElfHeader,
  parseNotes,
  parseProgramHeaders,
  PF_R,
  PF_W,
  PF_X,
  type ProgramHeader,
  PT_DYNAMIC,
  PT_GNU_RELRO,
  PT_GNU_STACK,
  PT_INTERP,
  PT_LOAD,
  PT_NOTE,
  PT_PHDR,
  PT_TLS,
  readBuildId,
  readProgramHeaders,
  readSectionData,
  readSectionHeaders,
  readSymbols,
  type SectionHeader,
  SHN_XINDEX,
  SHT_DYNSYM,
  SHT_NOBITS,
  SHT_NOTE,
  SHT_STRTAB,
  SHT_SYMTAB,
  SHT_SYMTAB_SHNDX,
} from "../src/sys/elf.ts";

// ---------------------------------------------------------------------------
// The binaries under test.

function pathOf(relative: string): string {
  return decodeURIComponent(new URL(relative, import.meta.url).pathname);
}

const DENO = pathOf("../node_modules/.bin/deno");
const BUN = pathOf("../node_modules/bun/bin/bun.exe");
const LIBC = "/lib/x86_64-linux-gnu/libc.so.6";

function requireFile(path: string, what: string): string {
  assert.ok(existsSync(path), `${what} not found at ${path}`);
  return path;
}

// ---------------------------------------------------------------------------
// Byte sources used by the tests.

/** A pread-based source: positional reads on an open file descriptor. */
interface FileSource extends ByteSource {
  reads: number;
  bytesRead: number;
  close(): void;
}

function fileSource(path: string): FileSource {
  const fd = openSync(path, "r");
  const source: FileSource = {
    size: fstatSync(fd).size,
    reads: 0,
    bytesRead: 0,
    read(offset: number, length: number): Uint8Array {
      assert.ok(
        offset >= 0 && length >= 0 && offset + length <= source.size,
        `out-of-range read (offset ${offset}, length ${length}) of ${path}`,
      );
      const buffer = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, buffer, done, length - done, offset + done);
        if (n === 0) throw new Error(`unexpected end of file in ${path}`);
        done += n;
      }
      source.reads++;
      source.bytesRead += length;
      return buffer;
    },
    close(): void {
      closeSync(fd);
    },
  };
  return source;
}

/**
 * An in-memory source that fails with a plain Error (not an ElfError) on any
 * out-of-range read, so that a missing bounds check in the parser makes the
 * corruption tests fail.
 */
function strictSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    read(offset: number, length: number): Uint8Array {
      if (
        !Number.isSafeInteger(offset) || !Number.isSafeInteger(length) ||
        offset < 0 || length < 0 || offset + length > bytes.length
      ) {
        throw new Error(
          `parser read out of range: offset ${offset}, length ${length}, size ${bytes.length}`,
        );
      }
      return bytes.slice(offset, offset + length);
    },
  };
}

// ---------------------------------------------------------------------------
// binutils output parsers.

function run(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, {
      encoding: "utf8",
      maxBuffer: 512 * 1024 * 1024,
      env: { ...process.env, LC_ALL: "C" },
    });
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") {
      throw new Error(
        `${command} was not found on PATH: install GNU binutils to run the ELF tests`,
      );
    }
    throw error;
  }
}

const hexNum = (s: string): number => {
  const n = Number.parseInt(s, 16);
  assert.ok(Number.isSafeInteger(n), `bad hex number ${s}`);
  return n;
};

interface ReadelfSegment {
  type: string;
  offset: number;
  vaddr: number;
  paddr: number;
  filesz: number;
  memsz: number;
  flags: string;
  align: number;
}

function readelfSegments(path: string): ReadelfSegment[] {
  const out = run("readelf", ["-Wl", path]);
  const count = /There are (\d+) program headers/.exec(out);
  assert.ok(count, `unexpected readelf -Wl output for ${path}:\n${out}`);
  const segments: ReadelfSegment[] = [];
  const re =
    /^\s+(\S+)\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) ([R ][W ][E ]) 0x([0-9a-f]+)$/;
  for (const line of out.split("\n")) {
    const m = re.exec(line);
    if (!m) continue;
    segments.push({
      type: m[1],
      offset: hexNum(m[2]),
      vaddr: hexNum(m[3]),
      paddr: hexNum(m[4]),
      filesz: hexNum(m[5]),
      memsz: hexNum(m[6]),
      flags: m[7],
      align: hexNum(m[8]),
    });
  }
  assert.equal(
    segments.length,
    Number(count[1]),
    `parsed ${segments.length} of ${
      count[1]
    } program headers from readelf -Wl ${path}`,
  );
  return segments;
}

interface ReadelfSection {
  index: number;
  name: string;
  type: string;
  addr: number;
  offset: number;
  size: number;
  entsize: number;
  flags: string;
  link: number;
  info: number;
  align: number;
}

function readelfSections(path: string): ReadelfSection[] {
  const out = run("readelf", ["-WS", path]);
  const count = /There are (\d+) section headers/.exec(out);
  assert.ok(count, `unexpected readelf -WS output for ${path}:\n${out}`);
  const sections: ReadelfSection[] = [];
  const re =
    /^\s*\[\s*(\d+)\] (.*?)\s+(\S+)\s+([0-9a-f]{16}) ([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+)\s+([A-Za-z]*)\s+(\d+)\s+(\d+)\s+(\d+)$/;
  for (const line of out.split("\n")) {
    const m = re.exec(line);
    if (!m) continue;
    sections.push({
      index: Number(m[1]),
      name: m[2].trim(),
      type: m[3],
      addr: hexNum(m[4]),
      offset: hexNum(m[5]),
      size: hexNum(m[6]),
      entsize: hexNum(m[7]),
      flags: m[8],
      link: Number(m[9]),
      info: Number(m[10]),
      align: Number(m[11]),
    });
  }
  assert.equal(
    sections.length,
    Number(count[1]),
    `parsed ${sections.length} of ${
      count[1]
    } section headers from readelf -WS ${path}`,
  );
  return sections;
}

function readelfBuildId(path: string): string {
  const out = run("readelf", ["-n", path]);
  const m = /Build ID: ([0-9a-f]+)/.exec(out);
  assert.ok(m, `readelf -n found no build id in ${path}`);
  return m[1];
}

interface ReadelfSymbol {
  num: number;
  value: number;
  size: number;
  type: string;
  bind: string;
  ndx: string;
  name: string;
}

function readelfSymbols(
  path: string,
  table: ".symtab" | ".dynsym",
): ReadelfSymbol[] {
  const out = run("readelf", ["-Ws", path]);
  const symbols: ReadelfSymbol[] = [];
  let current = "";
  let declared = -1;
  const re =
    /^\s*(\d+): ([0-9a-f]{16})\s+(0x[0-9a-f]+|\d+) (\S+)\s+(\S+)\s+\S+\s+(\S+) ?(.*)$/;
  for (const line of out.split("\n")) {
    const header = /^Symbol table '([^']+)' contains (\d+) entr/.exec(line);
    if (header) {
      current = header[1];
      if (current === table) declared = Number(header[2]);
      continue;
    }
    if (current !== table) continue;
    const m = re.exec(line);
    if (!m) continue;
    symbols.push({
      num: Number(m[1]),
      value: hexNum(m[2]),
      size: m[3].startsWith("0x") ? hexNum(m[3].slice(2)) : Number(m[3]),
      type: m[4],
      bind: m[5],
      ndx: m[6],
      // Drop the " (41)" version index readelf appends for .dynsym.
      name: m[7].replace(/ \(\d+\)$/, ""),
    });
  }
  assert.equal(
    symbols.length,
    declared,
    `parsed ${symbols.length} of ${declared} ${table} entries from readelf -Ws ${path}`,
  );
  return symbols;
}

/** `name@value` for every defined symbol that `nm` lists. */
function nmDefined(path: string, dynamic: boolean): string[] {
  const args = ["--defined-only", "--without-symbol-versions", path];
  const out = run("nm", dynamic ? ["-D", ...args] : args);
  const result: string[] = [];
  for (const line of out.split("\n")) {
    const m = /^([0-9a-f]{16}) (\S) (\S+)$/.exec(line);
    if (m) result.push(`${m[3]}@${hexNum(m[1])}`);
  }
  assert.ok(result.length > 0, `nm listed no defined symbols in ${path}`);
  return result;
}

// ---------------------------------------------------------------------------
// Comparison helpers.

const SEGMENT_TYPES: Record<number, string> = {
  0: "NULL",
  [PT_LOAD]: "LOAD",
  [PT_DYNAMIC]: "DYNAMIC",
  [PT_INTERP]: "INTERP",
  [PT_NOTE]: "NOTE",
  [PT_PHDR]: "PHDR",
  [PT_TLS]: "TLS",
  0x6474e550: "GNU_EH_FRAME",
  [PT_GNU_STACK]: "GNU_STACK",
  [PT_GNU_RELRO]: "GNU_RELRO",
  0x6474e553: "GNU_PROPERTY",
};

const SECTION_TYPES: Record<number, string> = {
  0: "NULL",
  1: "PROGBITS",
  [SHT_SYMTAB]: "SYMTAB",
  [SHT_STRTAB]: "STRTAB",
  4: "RELA",
  5: "HASH",
  6: "DYNAMIC",
  [SHT_NOTE]: "NOTE",
  [SHT_NOBITS]: "NOBITS",
  9: "REL",
  [SHT_DYNSYM]: "DYNSYM",
  14: "INIT_ARRAY",
  15: "FINI_ARRAY",
  19: "RELR",
  0x6ffffff6: "GNU_HASH",
  0x6ffffffd: "VERDEF",
  0x6ffffffe: "VERNEED",
  0x6fffffff: "VERSYM",
};

/** readelf's section flag letters and the sh_flags bit of each. */
const SECTION_FLAG_BITS: [string, number][] = [
  ["W", 0x1],
  ["A", 0x2],
  ["X", 0x4],
  ["M", 0x10],
  ["S", 0x20],
  ["I", 0x40],
  ["L", 0x80],
  ["O", 0x100],
  ["G", 0x200],
  ["T", 0x400],
  ["C", 0x800],
  // SHF_GNU_RETAIN: readelf shows "R" for ELFOSABI_GNU files, else "o".
  ["R", 0x200000],
];

const SYMBOL_TYPES: Record<number, string> = {
  0: "NOTYPE",
  1: "OBJECT",
  2: "FUNC",
  3: "SECTION",
  4: "FILE",
  5: "COMMON",
  6: "TLS",
  10: "IFUNC",
};

const SYMBOL_BINDS: Record<number, string> = {
  0: "LOCAL",
  1: "GLOBAL",
  2: "WEAK",
  10: "UNIQUE",
};

function ndxName(shndx: number): string {
  if (shndx === 0) return "UND";
  if (shndx === 0xfff1) return "ABS";
  if (shndx === 0xfff2) return "COM";
  return String(shndx);
}

function assertSegmentsMatch(
  ours: ProgramHeader[],
  theirs: ReadelfSegment[],
  path: string,
): void {
  assert.equal(ours.length, theirs.length, `program header count of ${path}`);
  for (const [i, ph] of ours.entries()) {
    const flags = (ph.flags & PF_R ? "R" : " ") +
      (ph.flags & PF_W ? "W" : " ") + (ph.flags & PF_X ? "E" : " ");
    assert.deepEqual(
      {
        type: SEGMENT_TYPES[ph.type] ?? `0x${ph.type.toString(16)}`,
        offset: ph.offset,
        vaddr: ph.vaddr,
        paddr: ph.paddr,
        filesz: ph.filesz,
        memsz: ph.memsz,
        flags,
        align: ph.align,
      },
      theirs[i],
      `program header ${i} of ${path}`,
    );
  }
}

function assertSectionsMatch(
  ours: SectionHeader[],
  theirs: ReadelfSection[],
  path: string,
): void {
  assert.equal(ours.length, theirs.length, `section count of ${path}`);
  for (const [i, s] of ours.entries()) {
    const r = theirs[i];
    const what = `section ${i} (${r.name}) of ${path}`;
    assert.deepEqual(
      {
        index: i,
        name: s.name,
        type: SECTION_TYPES[s.type] ?? `0x${s.type.toString(16)}`,
        addr: s.addr,
        offset: s.offset,
        size: s.size,
        entsize: s.entsize,
        link: s.link,
        info: s.info,
        align: s.addralign,
      },
      {
        index: r.index,
        name: r.name,
        type: r.type,
        addr: r.addr,
        offset: r.offset,
        size: r.size,
        entsize: r.entsize,
        link: r.link,
        info: r.info,
        align: r.align,
      },
      what,
    );
    for (const [letter, bit] of SECTION_FLAG_BITS) {
      assert.equal(
        (s.flags & bit) !== 0,
        r.flags.includes(letter) || (letter === "R" && r.flags.includes("o")),
        `flag ${letter} of ${what}: sh_flags 0x${
          s.flags.toString(16)
        }, readelf "${r.flags}"`,
      );
    }
  }
}

function assertSymbolsMatch(
  ours: ElfSymbol[],
  theirs: ReadelfSymbol[],
  what: string,
): void {
  assert.equal(ours.length, theirs.length, `symbol count of ${what}`);
  for (const [i, s] of ours.entries()) {
    const r = theirs[i];
    assert.equal(r.num, i);
    // readelf appends the symbol version ("@GLIBC_2.2.5", "@@BUN_1.2").
    assert.ok(
      r.name === s.name || r.name.startsWith(`${s.name}@`),
      `symbol ${i} of ${what}: name ${JSON.stringify(s.name)}, readelf says ${
        JSON.stringify(r.name)
      }`,
    );
    assert.deepEqual(
      {
        value: s.value,
        size: s.size,
        type: SYMBOL_TYPES[s.type] ?? `type ${s.type}`,
        bind: SYMBOL_BINDS[s.bind] ?? `bind ${s.bind}`,
        ndx: ndxName(s.shndx),
      },
      { value: r.value, size: r.size, type: r.type, bind: r.bind, ndx: r.ndx },
      `symbol ${i} (${s.name}) of ${what}`,
    );
  }
}

function assertNmMatches(
  symbols: ElfSymbol[],
  path: string,
  dynamic: boolean,
): void {
  const ours = new Set(
    symbols.filter((s) => s.shndx !== 0).map((s) => `${s.name}@${s.value}`),
  );
  const listed = nmDefined(path, dynamic);
  const missing = listed.filter((entry) => !ours.has(entry));
  assert.deepEqual(
    missing.slice(0, 10),
    [],
    `${missing.length} of ${listed.length} symbols listed by nm are missing`,
  );
}

/**
 * Asserts that `fn` throws an ElfError (not a RangeError, TypeError or an
 * error from the byte source) whose message matches `pattern`.
 */
function assertElfError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(
      error instanceof ElfError,
      `expected an ElfError, got ${
        error instanceof Error ? `${error.name}: ${error.message}` : error
      }`,
    );
    assert.equal(error.name, "ElfError");
    assert.match(error.message, pattern);
    return true;
  });
}

// ---------------------------------------------------------------------------
// Real binaries.

describe("real binaries, compared with binutils", () => {
  const cases: { label: string; path: () => string; symtab: boolean }[] = [
    {
      label: "deno (stripped, PIE)",
      path: () => requireFile(DENO, "deno"),
      symtab: false,
    },
    {
      label: "bun (not stripped, EXEC)",
      path: () => requireFile(BUN, "bun"),
      symtab: true,
    },
  ];

  for (const { label, path: pathFn, symtab } of cases) {
    describe(label, () => {
      let path = "";
      let src: FileSource | undefined;
      let file: ElfFile;

      before(() => {
        path = pathFn();
        src = fileSource(path);
        file = parseElf(src);
      });
      after(() => src?.close());

      test("header matches readelf -h", () => {
        const out = run("readelf", ["-Wh", path]);
        const field = (name: string): string => {
          const m = new RegExp(`^\\s*${name}:\\s+(.*)$`, "m").exec(out);
          assert.ok(m, `readelf -h has no ${name}`);
          return m[1].trim();
        };
        assert.equal(file.header.machine, EM_X86_64);
        assert.equal(
          file.header.type,
          field("Type").startsWith("EXEC") ? ET_EXEC : ET_DYN,
        );
        assert.equal(file.header.entry, hexNum(field("Entry point address")));
        assert.equal(
          file.header.phoff,
          Number(field("Start of program headers").split(" ")[0]),
        );
        assert.equal(
          file.header.shoff,
          Number(field("Start of section headers").split(" ")[0]),
        );
        assert.equal(
          file.header.phnum,
          Number(field("Number of program headers")),
        );
        assert.equal(
          file.header.shnum,
          Number(field("Number of section headers")),
        );
        assert.equal(
          file.header.shstrndx,
          Number(field("Section header string table index")),
        );
        assert.equal(file.header.phentsize, 56);
        assert.equal(file.header.shentsize, 64);
      });

      test("program headers match readelf -Wl", () => {
        assertSegmentsMatch(file.programHeaders, readelfSegments(path), path);
        assert.ok(file.programHeaders.some((ph) => ph.type === PT_LOAD));
      });

      test("section headers match readelf -WS", () => {
        assertSectionsMatch(file.sections, readelfSections(path), path);
      });

      test("build id matches readelf -n", () => {
        assert.match(file.buildId ?? "", /^[0-9a-f]{40}$/);
        assert.equal(file.buildId, readelfBuildId(path));
        assert.ok(src);
        assert.equal(readBuildId(src, file.header), file.buildId);
      });

      test(".dynsym matches readelf -Ws and nm -D", () => {
        const symbols = file.symbols(".dynsym");
        assert.ok(symbols.length > 100, `only ${symbols.length} symbols`);
        assertSymbolsMatch(
          symbols,
          readelfSymbols(path, ".dynsym"),
          `${path} .dynsym`,
        );
        assertNmMatches(symbols, path, true);
      });

      test(`.symtab ${symtab ? "matches readelf -Ws and nm" : "is absent"}`, () => {
        const symbols = file.symbols(".symtab");
        if (!symtab) {
          assert.deepEqual(symbols, []);
          assert.ok(!file.sections.some((s) => s.type === SHT_SYMTAB));
          return;
        }
        assert.ok(symbols.length > 100, `only ${symbols.length} symbols`);
        assertSymbolsMatch(
          symbols,
          readelfSymbols(path, ".symtab"),
          `${path} .symtab`,
        );
        assertNmMatches(symbols, path, false);
      });

      test("the pread source reads only the headers and tables it needs", () => {
        assert.ok(src);
        file.symbols(".dynsym");
        assert.ok(src.size > 50 * 1024 * 1024, `size ${src.size}`);
        assert.ok(
          src.bytesRead < 2 * 1024 * 1024,
          `read ${src.bytesRead} bytes in ${src.reads} reads`,
        );
      });

      test("parseProgramHeaders on the raw table equals readProgramHeaders", () => {
        assert.ok(src);
        const { phoff, phnum } = file.header;
        const table = src.read(phoff, phnum * 56);
        assert.deepEqual(
          parseProgramHeaders(table, phnum),
          file.programHeaders,
        );
        assert.deepEqual(
          readProgramHeaders(src, file.header),
          file.programHeaders,
        );
        // The table may be longer than the entries asked for.
        assert.deepEqual(
          parseProgramHeaders(table, 2),
          file.programHeaders.slice(0, 2),
        );
      });
    });
  }

  test("the running runtime (process.execPath)", () => {
    const path = requireFile(process.execPath, "process.execPath");
    const src = fileSource(path);
    try {
      const file = parseElf(src);
      assert.equal(file.buildId, readelfBuildId(path));
      assertSegmentsMatch(file.programHeaders, readelfSegments(path), path);
      assertSectionsMatch(file.sections, readelfSections(path), path);
      // The runtime running this test is one of the two installed ones.
      const known = [DENO, BUN].filter((p) => existsSync(p)).map(
        readelfBuildId,
      );
      assert.ok(
        known.includes(file.buildId ?? ""),
        `${path}: build id ${file.buildId} is not that of ${DENO} or ${BUN}`,
      );
    } finally {
      src.close();
    }
  });
});

// ---------------------------------------------------------------------------
// libc, and corrupted copies of it built in memory.

describe("libc", () => {
  let original: Uint8Array;
  let file: ElfFile;
  let dynsymIndex: number;
  let dynstrIndex: number;

  /** A copy of libc with `mutate` applied. */
  const patched = (
    mutate: (bytes: Uint8Array, view: DataView) => void,
  ): Uint8Array => {
    const bytes = original.slice();
    mutate(bytes, new DataView(bytes.buffer));
    return bytes;
  };
  /** File offset of field `at` of section header `index`. */
  const shdr = (index: number, at: number): number =>
    file.header.shoff + index * 64 + at;
  /** Regex text for the labels the parser uses in its messages. */
  const dynsymLabel = (): string =>
    `symbol table \\.dynsym \\(section ${dynsymIndex}\\)`;
  const dynstrLabel = (): string =>
    `string table \\.dynstr \\(section ${dynstrIndex}\\)`;
  const setU64 = (view: DataView, at: number, value: number | bigint): void =>
    view.setBigUint64(at, BigInt(value), true);

  before(() => {
    original = new Uint8Array(readFileSync(requireFile(LIBC, "libc")));
    file = parseElf(strictSource(original));
    dynsymIndex = file.sections.findIndex((s) => s.type === SHT_DYNSYM);
    assert.ok(dynsymIndex > 0, "libc has no .dynsym");
    dynstrIndex = file.sections[dynsymIndex].link;
  });

  describe("parses like binutils", () => {
    test("header", () => {
      assert.equal(file.header.type, ET_DYN);
      assert.equal(file.header.machine, EM_X86_64);
      assert.equal(file.header.phoff, 64);
      assert.equal(file.sections.length, file.header.shnum);
      assert.equal(file.sections[file.header.shstrndx].name, ".shstrtab");
    });

    test("program headers match readelf -Wl", () => {
      assertSegmentsMatch(file.programHeaders, readelfSegments(LIBC), LIBC);
    });

    test("section headers match readelf -WS", () => {
      assertSectionsMatch(file.sections, readelfSections(LIBC), LIBC);
    });

    test("build id matches readelf -n, also through the section fallback", () => {
      const expected = readelfBuildId(LIBC);
      assert.equal(file.buildId, expected);
      const src = bytesSource(original);
      // Without PT_NOTE segments the SHT_NOTE sections are searched.
      const noNotes = file.programHeaders.filter((ph) => ph.type !== PT_NOTE);
      assert.ok(noNotes.length < file.programHeaders.length);
      assert.equal(readBuildId(src, file.header, noNotes), expected);
      // Without either there is no build id.
      const noNoteSections = patched((_bytes, view) => {
        for (const [i, s] of file.sections.entries()) {
          if (s.type === SHT_NOTE) view.setUint32(shdr(i, 4), 1, true);
        }
      });
      assert.equal(
        readBuildId(bytesSource(noNoteSections), file.header, noNotes),
        undefined,
      );
    });

    test(".dynsym matches readelf -Ws and nm -D", () => {
      const symbols = file.symbols(".dynsym");
      assertSymbolsMatch(
        symbols,
        readelfSymbols(LIBC, ".dynsym"),
        `${LIBC} .dynsym`,
      );
      assertNmMatches(symbols, LIBC, true);
      const malloc = symbols.find((s) => s.name === "malloc");
      assert.ok(malloc, "malloc not found");
      assert.equal(malloc.type, 2); // STT_FUNC
      assert.notEqual(malloc.shndx, 0);
      assert.equal(file.sections[malloc.shndx].name, ".text");
      assert.equal(file.symbols(".dynsym"), symbols, "cached");
    });

    test("readSymbols and readSectionData work on their own", () => {
      const src = bytesSource(original);
      const sections = readSectionHeaders(src, parseElfHeader(src));
      assert.deepEqual(sections, file.sections);
      assert.deepEqual(
        readSymbols(src, sections, ".dynsym"),
        file.symbols(".dynsym"),
      );
      assert.deepEqual(readSymbols(src, sections, ".symtab"), []);
      assert.deepEqual(readSymbols(src, [], ".dynsym"), []);
      const interp = sections.find((s) => s.name === ".interp");
      assert.ok(interp);
      assert.equal(
        new TextDecoder().decode(readSectionData(src, interp)),
        "/lib64/ld-linux-x86-64.so.2\0",
      );
      const bss = sections.find((s) => s.name === ".bss");
      assert.ok(bss && bss.type === SHT_NOBITS && bss.size > 0);
      assert.equal(readSectionData(src, bss).length, 0);
    });
  });

  describe("extended numbering", () => {
    test("e_shnum == 0, e_shstrndx == SHN_XINDEX, e_phnum == PN_XNUM", () => {
      const { shnum, shstrndx, phnum } = file.header;
      const bytes = patched((_bytes, view) => {
        view.setUint16(56, 0xffff, true); // e_phnum = PN_XNUM
        view.setUint16(60, 0, true); // e_shnum
        view.setUint16(62, SHN_XINDEX, true); // e_shstrndx
        setU64(view, shdr(0, 32), shnum); // section 0 sh_size
        view.setUint32(shdr(0, 40), shstrndx, true); // section 0 sh_link
        view.setUint32(shdr(0, 44), phnum, true); // section 0 sh_info
      });
      const src = strictSource(bytes);
      const header = parseElfHeader(src);
      assert.deepEqual(header, file.header);
      const sections = readSectionHeaders(src, header);
      assert.deepEqual(sections.slice(1), file.sections.slice(1));
      assert.deepEqual(
        {
          size: sections[0].size,
          link: sections[0].link,
          info: sections[0].info,
        },
        { size: shnum, link: shstrndx, info: phnum },
      );
      // A header with the raw escape values is resolved too.
      const raw: ElfHeader = {
        ...header,
        phnum: 0xffff,
        shnum: 0,
        shstrndx: SHN_XINDEX,
      };
      assert.deepEqual(readSectionHeaders(src, raw), sections);
      assert.deepEqual(readProgramHeaders(src, raw), file.programHeaders);
      assert.equal(parseElf(src).buildId, file.buildId);
    });

    test("symbols with SHN_XINDEX are resolved through SHT_SYMTAB_SHNDX", () => {
      const symbols = file.symbols(".dynsym");
      const k = symbols.findIndex((s) => s.name === "malloc");
      assert.ok(k > 0);
      // Append an extended index table and repurpose a section header for it.
      const tableOffset = Math.ceil(original.length / 8) * 8;
      const bytes = new Uint8Array(tableOffset + symbols.length * 4);
      bytes.set(original);
      const view = new DataView(bytes.buffer);
      const reused = file.sections.findIndex((s) =>
        s.name === ".gnu_debuglink"
      );
      assert.ok(reused > 0);
      view.setUint32(shdr(reused, 4), SHT_SYMTAB_SHNDX, true);
      setU64(view, shdr(reused, 24), tableOffset);
      setU64(view, shdr(reused, 32), symbols.length * 4);
      view.setUint32(shdr(reused, 40), dynsymIndex, true);
      const symbolAt = file.sections[dynsymIndex].offset + k * 24;
      view.setUint16(symbolAt + 6, SHN_XINDEX, true);
      view.setUint32(tableOffset + k * 4, symbols[k].shndx, true);

      const resolved = parseElf(strictSource(bytes)).symbols(".dynsym");
      assert.deepEqual(resolved, symbols);
      // Without the extended table the escape value stays visible.
      view.setUint32(shdr(reused, 4), 1, true);
      const unresolved = parseElf(strictSource(bytes)).symbols(".dynsym");
      assert.equal(unresolved[k].shndx, SHN_XINDEX);
      // A table too small for the symbols is an error.
      view.setUint32(shdr(reused, 4), SHT_SYMTAB_SHNDX, true);
      setU64(view, shdr(reused, 32), 8);
      assertElfError(
        () => parseElf(strictSource(bytes)).symbols(".dynsym"),
        /extended section index table \.gnu_debuglink \(section \d+\) of symbol table \.dynsym \(section \d+\) has 2 entries, fewer than the \d+ symbols/,
      );
    });
  });

  describe("corrupt copies throw ElfError", () => {
    test("the pristine copy parses through the strict source", () => {
      // Guards the tests below: their failures come from the corruption.
      const again = parseElf(strictSource(original.slice()));
      assert.equal(again.buildId, file.buildId);
      assert.deepEqual(again.sections, file.sections);
      assert.ok(again.symbols(".dynsym").length > 1000);
    });

    test("truncated inside the ELF header", () => {
      for (const cut of [0, 2, 16, 40, 63]) {
        assertElfError(
          () => parseElf(strictSource(original.slice(0, cut))),
          new RegExp(
            `^ELF header \\(offset 0x0, 0x40 bytes\\) extends past the end of the data \\(size 0x${
              cut.toString(16)
            }\\)$`,
          ),
        );
      }
    });

    test("truncated inside the program header table", () => {
      const { phoff, phnum } = file.header;
      for (const cut of [64, phoff + 56 * 3 + 20, phoff + phnum * 56 - 1]) {
        const src = strictSource(original.slice(0, cut));
        assert.doesNotThrow(() => parseElfHeader(src));
        assertElfError(
          () => parseElf(src),
          new RegExp(
            `^program header table \\(offset 0x40, ${phnum} entries of 56 bytes\\) extends past the end of the data \\(size 0x${
              cut.toString(16)
            }\\)$`,
          ),
        );
      }
    });

    test("truncated inside the section header table", () => {
      const { shoff, shnum } = file.header;
      assert.equal(shoff + shnum * 64, original.length, "table at the end");
      for (const cut of [shoff + 10, shoff + 64 * 5 + 7, original.length - 1]) {
        const src = strictSource(original.slice(0, cut));
        const header = parseElfHeader(src);
        assert.equal(readProgramHeaders(src, header).length, header.phnum);
        assertElfError(
          () => parseElf(src),
          new RegExp(
            `^section header table \\(offset 0x${
              shoff.toString(16)
            }, ${shnum} entries of 64 bytes\\) extends past the end of the data \\(size 0x${
              cut.toString(16)
            }\\)$`,
          ),
        );
      }
    });

    test("bad magic", () => {
      assertElfError(
        () => parseElf(strictSource(patched((b) => (b[0] = 0x7e)))),
        /^not an ELF file: bad magic 7e 45 4c 46 \(expected 7f 45 4c 46\)$/,
      );
      assertElfError(
        () => parseElf(strictSource(new TextEncoder().encode("#!/bin/sh\n"))),
        /^not an ELF file: bad magic 23 21 2f 62/,
      );
    });

    test("wrong class, data encoding or version", () => {
      assertElfError(
        () => parseElfHeader(strictSource(patched((b) => (b[4] = 1)))),
        /ELFCLASS32; only ELFCLASS64/,
      );
      assertElfError(
        () => parseElfHeader(strictSource(patched((b) => (b[4] = 7)))),
        /invalid ELF class 7/,
      );
      assertElfError(
        () => parseElfHeader(strictSource(patched((b) => (b[5] = 2)))),
        /ELFDATA2MSB \(big-endian\)/,
      );
      assertElfError(
        () => parseElfHeader(strictSource(patched((b) => (b[6] = 0)))),
        /identification version 0/,
      );
      assertElfError(
        () =>
          parseElfHeader(
            strictSource(patched((_b, v) => v.setUint32(20, 2, true))),
          ),
        /ELF version 2 in e_version/,
      );
    });

    test("wrong table entry sizes", () => {
      assertElfError(
        () =>
          parseElfHeader(
            strictSource(patched((_b, v) => v.setUint16(54, 32, true))),
          ),
        /e_phentsize is 32 \(expected 56/,
      );
      assertElfError(
        () =>
          parseElfHeader(
            strictSource(patched((_b, v) => v.setUint16(58, 40, true))),
          ),
        /e_shentsize is 40 \(expected 64/,
      );
    });

    test("program header table out of range (e_phoff)", () => {
      const size = original.length;
      const phnum = file.header.phnum;
      for (
        const phoff of [size - 100, size, size + 1, Number.MAX_SAFE_INTEGER]
      ) {
        assertElfError(
          () =>
            parseElf(strictSource(patched((_b, v) => setU64(v, 32, phoff)))),
          new RegExp(
            `^program header table \\(offset 0x${
              phoff.toString(16)
            }, ${phnum} entries of 56 bytes\\) extends past the end of the data \\(size 0x${
              size.toString(16)
            }\\)$`,
          ),
        );
      }
      assertElfError(
        () =>
          parseElf(strictSource(patched((_b, v) => setU64(v, 32, 1n << 63n)))),
        /^ELF header e_phoff is 0x8000000000000000, above Number\.MAX_SAFE_INTEGER$/,
      );
    });

    test("64-bit field above Number.MAX_SAFE_INTEGER", () => {
      const at = 64 + 2 * 56 + 40; // p_memsz of program header 2
      assertElfError(
        () =>
          parseElf(strictSource(patched((_b, v) => setU64(v, at, 2n ** 53n)))),
        /^program header 2 p_memsz is 0x20000000000000, above Number\.MAX_SAFE_INTEGER$/,
      );
      // 2^53 - 1 is still accepted.
      const ok = parseElf(
        strictSource(
          patched((_b, v) => setU64(v, at, Number.MAX_SAFE_INTEGER)),
        ),
      );
      assert.equal(ok.programHeaders[2].memsz, Number.MAX_SAFE_INTEGER);
    });

    test("section header string table index out of range", () => {
      const shnum = file.header.shnum;
      for (const index of [shnum, 200, 0xfeff]) {
        const src = strictSource(
          patched((_b, v) => v.setUint16(62, index, true)),
        );
        assert.equal(parseElfHeader(src).shstrndx, index);
        assertElfError(
          () => parseElf(src),
          new RegExp(
            `^section header string table index ${index} is out of range \\(${shnum} sections\\)$`,
          ),
        );
      }
      // Index 0 means "no names", which is valid.
      const unnamed = parseElf(
        strictSource(patched((_b, v) => v.setUint16(62, 0, true))),
      );
      assert.ok(unnamed.sections.every((s) => s.name === ""));
      assert.equal(
        unnamed.symbols(".dynsym").length,
        file.symbols(".dynsym").length,
      );
    });

    test("section name offset outside the section header string table", () => {
      const shstrndx = file.header.shstrndx;
      const strtab = file.sections[shstrndx];
      assertElfError(
        () =>
          parseElf(
            strictSource(
              patched((_b, v) =>
                v.setUint32(shdr(5, 0), strtab.size + 16, true)
              ),
            ),
          ),
        new RegExp(
          `^name of section 5: offset 0x${
            (strtab.size + 16).toString(16)
          } is outside the section header string table \\(section ${shstrndx}\\) \\(size 0x${
            strtab.size.toString(16)
          }\\)$`,
        ),
      );
    });

    test("section header string table cut so a name runs off its end", () => {
      const shstrndx = file.header.shstrndx;
      // The name stored last in .shstrtab, and its offset.
      const view = new DataView(original.buffer);
      let last = 0;
      for (let i = 1; i < file.header.shnum; i++) {
        const offset = view.getUint32(shdr(i, 0), true);
        if (offset > view.getUint32(shdr(last, 0), true)) last = i;
      }
      const nameOffset = view.getUint32(shdr(last, 0), true);
      assert.ok(file.sections[last].name.length > 3);
      const bytes = patched((_b, v) =>
        setU64(v, shdr(shstrndx, 32), nameOffset + 3)
      );
      assertElfError(
        () => parseElf(strictSource(bytes)),
        new RegExp(
          `^name of section ${last}: string at offset 0x${
            nameOffset.toString(16)
          } runs off the end of the section header string table \\(section ${shstrndx}\\) \\(size 0x${
            (nameOffset + 3).toString(16)
          }\\) without a terminating NUL$`,
        ),
      );
      // The string table itself running past the end of the data.
      const moved = patched((_b, v) =>
        setU64(v, shdr(shstrndx, 24), original.length - 10)
      );
      assertElfError(
        () => parseElf(strictSource(moved)),
        new RegExp(
          `^section header string table \\(section ${shstrndx}\\) \\(offset 0x${
            (original.length - 10).toString(16)
          }, 0x${
            file.sections[shstrndx].size.toString(16)
          } bytes\\) extends past the end of the data \\(size 0x${
            original.length.toString(16)
          }\\)$`,
        ),
      );
    });

    test("symbol string table overflow", () => {
      const dynstr = file.sections[dynstrIndex];
      // Shrink .dynstr: names beyond its new end are out of range or unterminated.
      const shrunk = patched((_b, v) =>
        setU64(v, shdr(dynstrIndex, 32), Math.floor(dynstr.size / 2))
      );
      const elf = parseElf(strictSource(shrunk));
      assertElfError(
        () => elf.symbols(".dynsym"),
        new RegExp(
          `^name of symbol \\d+ of ${dynsymLabel()}: (offset 0x[0-9a-f]+ is outside|string at offset 0x[0-9a-f]+ runs off the end of) the ${dynstrLabel()} \\(size 0x${
            Math.floor(dynstr.size / 2).toString(16)
          }\\)`,
        ),
      );
      // Cut exactly one byte into the last name: unterminated string.
      const bytes = patched(() => {});
      const view = new DataView(bytes.buffer);
      const dynsym = file.sections[dynsymIndex];
      let maxName = 0;
      for (let i = 0; i < dynsym.size / 24; i++) {
        maxName = Math.max(
          maxName,
          view.getUint32(dynsym.offset + i * 24, true),
        );
      }
      setU64(view, shdr(dynstrIndex, 32), maxName + 1);
      assertElfError(
        () => parseElf(strictSource(bytes)).symbols(".dynsym"),
        new RegExp(
          `string at offset 0x${
            maxName.toString(16)
          } runs off the end of the ${dynstrLabel()} \\(size 0x${
            (maxName + 1).toString(16)
          }\\) without a terminating NUL$`,
        ),
      );
      // .dynstr placed past the end of the data.
      const moved = patched((_b, v) =>
        setU64(v, shdr(dynstrIndex, 24), original.length - 100)
      );
      assertElfError(
        () => parseElf(strictSource(moved)).symbols(".dynsym"),
        new RegExp(
          `^${dynstrLabel()} \\(offset 0x${
            (original.length - 100).toString(16)
          }, 0x${
            dynstr.size.toString(16)
          } bytes\\) extends past the end of the data`,
        ),
      );
    });

    test("symbol table with sh_link out of range or not a string table", () => {
      for (const link of [file.header.shnum, 999, 0]) {
        const elf = parseElf(
          strictSource(
            patched((_b, v) => v.setUint32(shdr(dynsymIndex, 40), link, true)),
          ),
        );
        assertElfError(
          () => elf.symbols(".dynsym"),
          new RegExp(
            `^${dynsymLabel()} has string table link \\(sh_link\\) ${link}, out of range \\(${file.header.shnum} sections\\)$`,
          ),
        );
      }
      const elf = parseElf(
        strictSource(
          patched((_b, v) => v.setUint32(shdr(dynsymIndex, 40), 1, true)),
        ),
      );
      assertElfError(
        () => elf.symbols(".dynsym"),
        /links \(sh_link\) to string table \.note\.gnu\.property \(section 1\), which has type 7 instead of SHT_STRTAB$/,
      );
    });

    test("symbol table size, entry size and range", () => {
      const dynsym = file.sections[dynsymIndex];
      const cases: [(v: DataView) => void, RegExp][] = [
        [
          (v) => setU64(v, shdr(dynsymIndex, 32), dynsym.size - 5),
          new RegExp(
            `^${dynsymLabel()} size 0x[0-9a-f]+ is not a multiple of the entry size 24$`,
          ),
        ],
        [
          (v) => setU64(v, shdr(dynsymIndex, 56), 16),
          new RegExp(`^${dynsymLabel()} has entry size 16 \\(expected 24\\)$`),
        ],
        [
          // An absurd count: 2^40 entries.
          (v) => setU64(v, shdr(dynsymIndex, 32), 24 * 2 ** 40),
          new RegExp(
            `^${dynsymLabel()} \\(offset 0x${dynsym.offset.toString(16)}, ${
              2 ** 40
            } entries of 24 bytes\\) extends past the end of the data`,
          ),
        ],
        [
          (v) => setU64(v, shdr(dynsymIndex, 24), original.length - 24),
          new RegExp(
            `^${dynsymLabel()} \\(offset 0x[0-9a-f]+, ${
              dynsym.size / 24
            } entries of 24 bytes\\) extends past the end of the data`,
          ),
        ],
      ];
      for (const [mutate, pattern] of cases) {
        const elf = parseElf(strictSource(patched((_b, v) => mutate(v))));
        assertElfError(() => elf.symbols(".dynsym"), pattern);
      }
    });

    test("note with descsz past its segment end", () => {
      const index = file.programHeaders.findIndex((ph) =>
        ph.type === PT_NOTE &&
        parseNotes(original.subarray(ph.offset, ph.offset + ph.filesz)).some(
          (n) => n.type === 3,
        )
      );
      assert.ok(index >= 0, "no PT_NOTE segment with a build id");
      const segment = file.programHeaders[index];
      const bytes = patched((_b, v) =>
        v.setUint32(segment.offset + 4, 0x100, true)
      );
      const pattern = new RegExp(
        `^PT_NOTE segment \\(program header ${index}\\): note descriptor at offset 0x10 \\(descsz 0x100\\) extends past the end of the note data \\(size 0x${
          segment.filesz.toString(16)
        }\\)$`,
      );
      assertElfError(() => parseElf(strictSource(bytes)), pattern);
      const src = strictSource(bytes);
      assertElfError(() => readBuildId(src, parseElfHeader(src)), pattern);
      // namesz past the end.
      const badName = patched((_b, v) =>
        v.setUint32(segment.offset, 0x1000, true)
      );
      assertElfError(
        () => parseElf(strictSource(badName)),
        /note name at offset 0xc \(namesz 0x1000\) extends past the end of the note data/,
      );
      // The segment itself past the end of the data.
      const at = 64 + index * 56 + 32; // p_filesz
      const tooLong = patched((_b, v) => setU64(v, at, original.length));
      assertElfError(
        () => parseElf(strictSource(tooLong)),
        new RegExp(
          `^PT_NOTE segment \\(program header ${index}\\) \\(offset 0x${
            segment.offset.toString(16)
          }, 0x${
            original.length.toString(16)
          } bytes\\) extends past the end of the data`,
        ),
      );
    });

    test("a byte source that breaks its contract", () => {
      const short: ByteSource = {
        size: original.length,
        read: (offset, length) => original.slice(offset, offset + length - 1),
      };
      assertElfError(
        () => parseElf(short),
        /^byte source returned 3 bytes for ELF magic \(offset 0x0, 0x4 bytes\)$/,
      );
      assertElfError(
        () => parseElf({ size: -1, read: () => new Uint8Array(0) }),
        /invalid byte source size -1/,
      );
    });
  });
});

// ---------------------------------------------------------------------------
// Small inputs.

describe("parseNotes", () => {
  const note = (
    name: string,
    type: number,
    desc: number[],
    align: 4 | 8,
  ): number[] => {
    const nameBytes = [...new TextEncoder().encode(name), 0];
    const pad = (a: number[]) => [
      ...a,
      ...new Array((align - (a.length % align)) % align).fill(0),
    ];
    const u32 = (
      n: number,
    ) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24];
    // The descriptor and the next note start at multiples of `align` from
    // the start of the note (the 12-byte header counts).
    return [
      ...pad([
        ...u32(nameBytes.length),
        ...u32(desc.length),
        ...u32(type),
        ...nameBytes,
      ]),
      ...pad(desc),
    ];
  };

  test("splits 4-byte aligned notes", () => {
    const bytes = new Uint8Array([
      ...note("GNU", 3, [0xab, 0xcd, 0xef], 4),
      ...note("stapsdt", 3, [1, 2, 3, 4, 5], 4),
      ...note("", 9, [], 4),
    ]);
    const notes = parseNotes(bytes);
    assert.deepEqual(
      notes.map((n) => ({ name: n.name, type: n.type, desc: [...n.desc] })),
      [
        { name: "GNU", type: 3, desc: [0xab, 0xcd, 0xef] },
        { name: "stapsdt", type: 3, desc: [1, 2, 3, 4, 5] },
        { name: "", type: 9, desc: [] },
      ],
    );
  });

  test("8-byte alignment", () => {
    const bytes = new Uint8Array([
      ...note("GNU", 5, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 8),
      ...note("Go", 4, [7], 8),
    ]);
    const notes = parseNotes(bytes, 8);
    assert.deepEqual(
      notes.map((n) => ({ name: n.name, type: n.type, desc: [...n.desc] })),
      [
        { name: "GNU", type: 5, desc: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] },
        { name: "Go", type: 4, desc: [7] },
      ],
    );
    // "Go\0" ends at 32 + 15; its descriptor starts at the next multiple of 8.
    assert.equal(bytes.length, 56);
    assert.equal(notes[1].desc.byteOffset, 48);
    assert.equal(notes[0].desc.byteOffset, 16);
  });

  test("bounds", () => {
    const good = note("GNU", 3, [1, 2, 3, 4], 4);
    assert.equal(parseNotes(new Uint8Array(good)).length, 1);
    assert.deepEqual(parseNotes(new Uint8Array(0)), []);
    assertElfError(
      () => parseNotes(new Uint8Array([...good, 1, 2, 3])),
      /^note header at offset 0x14 \(12 bytes\) extends past the end of the note data \(size 0x17\)$/,
    );
    assertElfError(
      () => parseNotes(new Uint8Array(good.slice(0, 18))),
      /^note descriptor at offset 0x10 \(descsz 0x4\) extends past the end of the note data \(size 0x12\)$/,
    );
    const hugeDesc = good.slice();
    hugeDesc.splice(4, 4, 0xff, 0xff, 0xff, 0xff);
    assertElfError(
      () => parseNotes(new Uint8Array(hugeDesc)),
      /descsz 0xffffffff\) extends past the end/,
    );
    assertElfError(
      () => parseNotes(new Uint8Array(good), 2 as 4),
      /invalid note alignment 2/,
    );
  });
});

describe("parseProgramHeaders and bytesSource", () => {
  test("parseProgramHeaders decodes every field", () => {
    const bytes = new Uint8Array(56 * 2);
    const view = new DataView(bytes.buffer);
    const fields = [0x1000, 0x401000, 0x401001, 0x2345, 0x3456, 0x200000];
    view.setUint32(56, PT_LOAD, true);
    view.setUint32(60, PF_R | PF_X, true);
    fields.forEach((value, i) =>
      view.setBigUint64(56 + 8 + i * 8, BigInt(value), true)
    );
    const [first, second] = parseProgramHeaders(bytes, 2);
    assert.deepEqual(first, {
      type: 0,
      flags: 0,
      offset: 0,
      vaddr: 0,
      paddr: 0,
      filesz: 0,
      memsz: 0,
      align: 0,
    });
    assert.deepEqual(second, {
      type: PT_LOAD,
      flags: PF_R | PF_X,
      offset: 0x1000,
      vaddr: 0x401000,
      paddr: 0x401001,
      filesz: 0x2345,
      memsz: 0x3456,
      align: 0x200000,
    });
    // A view into a larger buffer is honoured.
    const shifted = new Uint8Array(8 + bytes.length);
    shifted.set(bytes, 8);
    assert.deepEqual(parseProgramHeaders(shifted.subarray(8), 2), [
      first,
      second,
    ]);
  });

  test("parseProgramHeaders rejects short data and bad counts", () => {
    assertElfError(
      () => parseProgramHeaders(new Uint8Array(56 * 3 - 1), 3),
      /^program header table \(3 entries of 56 bytes\) is larger than the data \(size 0xa7\)$/,
    );
    assertElfError(
      () => parseProgramHeaders(new Uint8Array(56), -1),
      /invalid program header count -1/,
    );
    assertElfError(
      () => parseProgramHeaders(new Uint8Array(56), 0.5),
      /invalid program header count 0\.5/,
    );
    assert.deepEqual(parseProgramHeaders(new Uint8Array(0), 0), []);
  });

  test("bytesSource returns views and rejects out-of-range reads", () => {
    const data = new Uint8Array([1, 2, 3, 4, 5]);
    const src = bytesSource(data);
    assert.equal(src.size, 5);
    const view = src.read(1, 3);
    assert.deepEqual([...view], [2, 3, 4]);
    assert.equal(view.buffer, data.buffer);
    assert.equal(src.read(5, 0).length, 0);
    assertElfError(() => src.read(3, 3), /outside the data \(size 0x5\)/);
    assertElfError(() => src.read(-1, 1), /outside the data/);
  });

  test("ElfError", () => {
    const error = new ElfError("broken");
    assert.ok(error instanceof Error);
    assert.equal(error.name, "ElfError");
    assert.equal(error.message, "broken");
  });
});
