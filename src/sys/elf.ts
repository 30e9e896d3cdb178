// Copyright 2025 the page-primer authors. MIT license.
/**
 * A small, pure parser for 64-bit little-endian ELF files (x86-64 and
 * AArch64 Linux executables and shared objects).
 *
 * The parser never touches the file system: all data is read through a
 * {@linkcode ByteSource}, which can wrap a whole file in memory
 * ({@linkcode bytesSource}), a view of process memory or positional reads on
 * an open file. Every offset and size taken from the input is bounds-checked
 * before it is used, so truncated or corrupt input raises an
 * {@linkcode ElfError} that says which structure is broken.
 *
 * All 64-bit fields are returned as JavaScript numbers; a value above
 * `Number.MAX_SAFE_INTEGER` raises an {@linkcode ElfError}.
 *
 * @example Print the build id and the loadable segments of the running executable
 * ```ts
 * import { bytesSource, parseElf, PT_LOAD } from "@x/page-primer/elf";
 *
 * import assert from "node:assert/strict";
 *
 * const elf = parseElf(bytesSource(Deno.readFileSync(Deno.execPath())));
 * assert.match(elf.buildId ?? "", /^[0-9a-f]+$/);
 * const loads = elf.programHeaders.filter((ph) => ph.type === PT_LOAD);
 * assert.ok(loads.some((ph) => ph.memsz > 0));
 * ```
 *
 * @module
 */

/**
 * Error thrown for data that is not a well-formed ELF64 little-endian file.
 * The message names the structure that is broken and the offending offsets
 * and sizes.
 *
 * @example Distinguish malformed input from other errors
 * ```ts
 * import { bytesSource, ElfError, parseElfHeader } from "@x/page-primer/elf";
 * import assert from "node:assert/strict";
 *
 * try {
 *   parseElfHeader(bytesSource(new Uint8Array(8)));
 * } catch (error) {
 *   if (!(error instanceof ElfError)) throw error;
 *   assert.match(error.message, /^not an ELF file/);
 * }
 * ```
 */
export class ElfError extends Error {
  /** Always `"ElfError"`. */
  override name: string = "ElfError";

  /**
   * Creates an error with the given message.
   *
   * @param message What is wrong with the input.
   */
  constructor(message: string) {
    super(message);
  }
}

/**
 * Random-access byte source (a whole file in memory, a view of process
 * memory, or pread on a file). `read()` must return exactly `length` bytes;
 * the parser bounds-checks against {@linkcode ByteSource.size} BEFORE calling
 * `read`, so implementations never see an out-of-range request.
 *
 * @example A source backed by positional reads on an open file
 * ```ts
 * import type { ByteSource } from "@x/page-primer/elf";
 *
 * const file = Deno.openSync(Deno.execPath());
 * const source: ByteSource = {
 *   size: file.statSync().size,
 *   read(offset, length) {
 *     const buf = new Uint8Array(length);
 *     file.seekSync(offset, Deno.SeekMode.Start);
 *     for (let done = 0; done < length;) {
 *       const n = file.readSync(buf.subarray(done));
 *       if (n === null) throw new Error("unexpected end of file");
 *       done += n;
 *     }
 *     return buf;
 *   },
 * };
 * ```
 */
export interface ByteSource {
  /** Total number of readable bytes; valid offsets are `0 .. size - 1`. */
  readonly size: number;
  /**
   * Returns exactly `length` bytes starting at `offset`. The parser only
   * calls this with `offset + length <= size`.
   */
  read(offset: number, length: number): Uint8Array;
}

/**
 * Wraps bytes that are already in memory as a {@linkcode ByteSource}. The
 * returned arrays are views into `bytes`, not copies.
 *
 * @example Parse an ELF header from bytes in memory
 * ```ts
 * import { bytesSource, parseElfHeader } from "@x/page-primer/elf";
 *
 * import assert from "node:assert/strict";
 *
 * const header = parseElfHeader(bytesSource(Deno.readFileSync(Deno.execPath())));
 * assert.ok(header.entry > 0);
 * ```
 *
 * @param bytes The complete data to read from.
 * @returns A source whose size is `bytes.length`.
 */
export function bytesSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    read(offset: number, length: number): Uint8Array {
      if (
        !isCount(offset) || !isCount(length) || offset > bytes.length ||
        length > bytes.length - offset
      ) {
        throw new ElfError(
          `read of ${length} bytes at offset ${offset} is outside the data (size ${
            hex(bytes.length)
          })`,
        );
      }
      return bytes.subarray(offset, offset + length);
    },
  };
}

/**
 * Program header type of a loadable segment.
 *
 * @example Select the loadable segments
 * ```ts
 * import { type ProgramHeader, PT_LOAD } from "@x/page-primer/elf";
 *
 * const loads = (phs: ProgramHeader[]) => phs.filter((ph) => ph.type === PT_LOAD);
 * ```
 */
export const PT_LOAD: number = 1;
/**
 * Program header type of the dynamic linking information segment.
 *
 * @example Find the dynamic segment
 * ```ts
 * import { type ProgramHeader, PT_DYNAMIC } from "@x/page-primer/elf";
 *
 * const dynamic = (phs: ProgramHeader[]) => phs.find((ph) => ph.type === PT_DYNAMIC);
 * ```
 */
export const PT_DYNAMIC: number = 2;
/**
 * Program header type of the segment naming the program interpreter.
 *
 * @example Check whether an executable is dynamically linked
 * ```ts
 * import { type ProgramHeader, PT_INTERP } from "@x/page-primer/elf";
 *
 * const isDynamic = (phs: ProgramHeader[]) => phs.some((ph) => ph.type === PT_INTERP);
 * ```
 */
export const PT_INTERP: number = 3;
/**
 * Program header type of a segment holding ELF notes.
 *
 * @example Collect the note segments
 * ```ts
 * import { type ProgramHeader, PT_NOTE } from "@x/page-primer/elf";
 *
 * const notes = (phs: ProgramHeader[]) => phs.filter((ph) => ph.type === PT_NOTE);
 * ```
 */
export const PT_NOTE: number = 4;
/**
 * Program header type of the segment holding the program header table itself.
 *
 * @example Find the program header table's address in memory
 * ```ts
 * import { type ProgramHeader, PT_PHDR } from "@x/page-primer/elf";
 *
 * const phdrAddress = (phs: ProgramHeader[]) => phs.find((ph) => ph.type === PT_PHDR)?.vaddr;
 * ```
 */
export const PT_PHDR: number = 6;
/**
 * Program header type of the thread-local storage template.
 *
 * @example Size of the TLS block
 * ```ts
 * import { type ProgramHeader, PT_TLS } from "@x/page-primer/elf";
 *
 * const tlsSize = (phs: ProgramHeader[]) => phs.find((ph) => ph.type === PT_TLS)?.memsz ?? 0;
 * ```
 */
export const PT_TLS: number = 7;
/**
 * Program header type (GNU extension) of the range made read-only after
 * relocation.
 *
 * @example Find the RELRO range
 * ```ts
 * import { PT_GNU_RELRO, type ProgramHeader } from "@x/page-primer/elf";
 *
 * const relro = (phs: ProgramHeader[]) => phs.find((ph) => ph.type === PT_GNU_RELRO);
 * ```
 */
export const PT_GNU_RELRO: number = 0x6474e552;
/**
 * Program header type (GNU extension) whose flags give the stack permissions.
 *
 * @example Check for an executable stack
 * ```ts
 * import { PF_X, PT_GNU_STACK, type ProgramHeader } from "@x/page-primer/elf";
 *
 * const execStack = (phs: ProgramHeader[]) =>
 *   phs.some((ph) => ph.type === PT_GNU_STACK && (ph.flags & PF_X) !== 0);
 * ```
 */
export const PT_GNU_STACK: number = 0x6474e551;

/**
 * Segment flag: executable.
 *
 * @example Select the code segments
 * ```ts
 * import { PF_X, type ProgramHeader, PT_LOAD } from "@x/page-primer/elf";
 *
 * const code = (phs: ProgramHeader[]) =>
 *   phs.filter((ph) => ph.type === PT_LOAD && (ph.flags & PF_X) !== 0);
 * ```
 */
export const PF_X: number = 1;
/**
 * Segment flag: writable.
 *
 * @example Select the writable loadable segments
 * ```ts
 * import { PF_W, type ProgramHeader, PT_LOAD } from "@x/page-primer/elf";
 *
 * const data = (phs: ProgramHeader[]) =>
 *   phs.filter((ph) => ph.type === PT_LOAD && (ph.flags & PF_W) !== 0);
 * ```
 */
export const PF_W: number = 2;
/**
 * Segment flag: readable.
 *
 * @example Format segment flags like `readelf`
 * ```ts
 * import { PF_R, PF_W, PF_X } from "@x/page-primer/elf";
 *
 * const flags = (f: number) =>
 *   (f & PF_R ? "R" : " ") + (f & PF_W ? "W" : " ") + (f & PF_X ? "E" : " ");
 * ```
 */
export const PF_R: number = 4;

/**
 * ELF file type: executable at a fixed address.
 *
 * @example Check for a position-dependent executable
 * ```ts
 * import { ET_EXEC, type ElfHeader } from "@x/page-primer/elf";
 *
 * const isFixed = (header: ElfHeader) => header.type === ET_EXEC;
 * ```
 */
export const ET_EXEC: number = 2;
/**
 * ELF file type: shared object or position-independent executable.
 *
 * @example Check whether the load address is chosen at run time
 * ```ts
 * import { ET_DYN, type ElfHeader } from "@x/page-primer/elf";
 *
 * const isRelocatable = (header: ElfHeader) => header.type === ET_DYN;
 * ```
 */
export const ET_DYN: number = 3;
/**
 * Machine type: AMD x86-64.
 *
 * @example Check the architecture
 * ```ts
 * import { EM_X86_64, type ElfHeader } from "@x/page-primer/elf";
 *
 * const isX64 = (header: ElfHeader) => header.machine === EM_X86_64;
 * ```
 */
export const EM_X86_64: number = 62;
/**
 * Machine type: ARM AArch64.
 *
 * @example Check the architecture
 * ```ts
 * import { EM_AARCH64, type ElfHeader } from "@x/page-primer/elf";
 *
 * const isArm64 = (header: ElfHeader) => header.machine === EM_AARCH64;
 * ```
 */
export const EM_AARCH64: number = 183;

/**
 * Section type: full symbol table (`.symtab`).
 *
 * @example Check whether a file is stripped
 * ```ts
 * import { type SectionHeader, SHT_SYMTAB } from "@x/page-primer/elf";
 *
 * const stripped = (sections: SectionHeader[]) => !sections.some((s) => s.type === SHT_SYMTAB);
 * ```
 */
export const SHT_SYMTAB: number = 2;
/**
 * Section type: string table.
 *
 * @example List the string tables
 * ```ts
 * import { type SectionHeader, SHT_STRTAB } from "@x/page-primer/elf";
 *
 * const tables = (sections: SectionHeader[]) => sections.filter((s) => s.type === SHT_STRTAB);
 * ```
 */
export const SHT_STRTAB: number = 3;
/**
 * Section type: ELF notes.
 *
 * @example List the note sections
 * ```ts
 * import { type SectionHeader, SHT_NOTE } from "@x/page-primer/elf";
 *
 * const notes = (sections: SectionHeader[]) => sections.filter((s) => s.type === SHT_NOTE);
 * ```
 */
export const SHT_NOTE: number = 7;
/**
 * Section type: occupies no space in the file (`.bss`, `.tbss`).
 *
 * @example Total size of the zero-initialised sections
 * ```ts
 * import { type SectionHeader, SHT_NOBITS } from "@x/page-primer/elf";
 *
 * const bss = (sections: SectionHeader[]) =>
 *   sections.filter((s) => s.type === SHT_NOBITS).reduce((n, s) => n + s.size, 0);
 * ```
 */
export const SHT_NOBITS: number = 8;
/**
 * Section type: dynamic linking symbol table (`.dynsym`).
 *
 * @example Check for a dynamic symbol table
 * ```ts
 * import { type SectionHeader, SHT_DYNSYM } from "@x/page-primer/elf";
 *
 * const hasDynsym = (sections: SectionHeader[]) => sections.some((s) => s.type === SHT_DYNSYM);
 * ```
 */
export const SHT_DYNSYM: number = 11;
/**
 * Section type: extended section indices of the symbols of the symbol table
 * named by its `link`.
 *
 * @example Find the extended index table of a symbol table
 * ```ts
 * import { type SectionHeader, SHT_SYMTAB_SHNDX } from "@x/page-primer/elf";
 *
 * const shndxFor = (sections: SectionHeader[], symtab: number) =>
 *   sections.find((s) => s.type === SHT_SYMTAB_SHNDX && s.link === symtab);
 * ```
 */
export const SHT_SYMTAB_SHNDX: number = 18;

/**
 * Section index of an undefined symbol.
 *
 * @example Select the imported symbols
 * ```ts
 * import { type ElfSymbol, SHN_UNDEF } from "@x/page-primer/elf";
 *
 * const imports = (symbols: ElfSymbol[]) => symbols.filter((s) => s.shndx === SHN_UNDEF && s.name);
 * ```
 */
export const SHN_UNDEF: number = 0;
/**
 * Escape value: the real section index is stored elsewhere (section 0 for
 * `e_shstrndx`, an {@linkcode SHT_SYMTAB_SHNDX} section for symbols). The
 * functions of this module resolve it; it only remains in an
 * {@linkcode ElfSymbol.shndx} when the extended index table is missing.
 *
 * @example Detect an unresolved extended index
 * ```ts
 * import { type ElfSymbol, SHN_XINDEX } from "@x/page-primer/elf";
 *
 * const unresolved = (symbol: ElfSymbol) => symbol.shndx === SHN_XINDEX;
 * ```
 */
export const SHN_XINDEX: number = 0xffff;
/**
 * Note type of the GNU build id note (owner `"GNU"`).
 *
 * @example Find the build id note
 * ```ts
 * import { NT_GNU_BUILD_ID, parseNotes } from "@x/page-primer/elf";
 *
 * const buildIdNote = (bytes: Uint8Array) =>
 *   parseNotes(bytes).find((n) => n.name === "GNU" && n.type === NT_GNU_BUILD_ID);
 * ```
 */
export const NT_GNU_BUILD_ID: number = 3;

/**
 * The fields of the ELF file header that locate the other tables.
 *
 * The escape values for large tables are already resolved by
 * {@linkcode parseElfHeader}: `phnum` is the real program header count even
 * when `e_phnum` is `PN_XNUM`, `shnum` the real section count when `e_shnum`
 * is 0, and `shstrndx` the real index when `e_shstrndx` is
 * {@linkcode SHN_XINDEX}.
 *
 * @example Locate the program header table
 * ```ts
 * import type { ElfHeader } from "@x/page-primer/elf";
 *
 * const phdrRange = (h: ElfHeader) => [h.phoff, h.phoff + h.phnum * h.phentsize];
 * ```
 */
export interface ElfHeader {
  /** File type (`e_type`), e.g. {@linkcode ET_EXEC} or {@linkcode ET_DYN}. */
  type: number;
  /** Architecture (`e_machine`), e.g. {@linkcode EM_X86_64}. */
  machine: number;
  /** Virtual address of the entry point (`e_entry`). */
  entry: number;
  /** File offset of the program header table (`e_phoff`). */
  phoff: number;
  /** Size of one program header (`e_phentsize`), 56 when there are any. */
  phentsize: number;
  /** Number of program headers. */
  phnum: number;
  /** File offset of the section header table (`e_shoff`), 0 if none. */
  shoff: number;
  /** Size of one section header (`e_shentsize`), 64 when there are any. */
  shentsize: number;
  /** Number of section headers. */
  shnum: number;
  /** Index of the section holding the section names, 0 if none. */
  shstrndx: number;
}

/**
 * One entry of the program header table (`Elf64_Phdr`).
 *
 * @example Describe a segment
 * ```ts
 * import type { ProgramHeader } from "@x/page-primer/elf";
 *
 * const describe = (ph: ProgramHeader) =>
 *   `0x${ph.vaddr.toString(16)}..0x${(ph.vaddr + ph.memsz).toString(16)}`;
 * ```
 */
export interface ProgramHeader {
  /** Segment type (`p_type`), e.g. {@linkcode PT_LOAD}. */
  type: number;
  /** Permissions (`p_flags`), a combination of {@linkcode PF_R}, {@linkcode PF_W}, {@linkcode PF_X}. */
  flags: number;
  /** File offset of the segment's data. */
  offset: number;
  /** Virtual address of the segment (before relocation for `ET_DYN`). */
  vaddr: number;
  /** Physical address; usually equal to `vaddr`. */
  paddr: number;
  /** Number of bytes of the segment in the file. */
  filesz: number;
  /** Number of bytes of the segment in memory (`>= filesz`). */
  memsz: number;
  /** Alignment of the segment. */
  align: number;
}

/**
 * One entry of the section header table (`Elf64_Shdr`), with its name
 * resolved.
 *
 * @example Find a section by name
 * ```ts
 * import type { SectionHeader } from "@x/page-primer/elf";
 *
 * const text = (sections: SectionHeader[]) => sections.find((s) => s.name === ".text");
 * ```
 */
export interface SectionHeader {
  /** Section name from the section header string table; `""` if unnamed. */
  name: string;
  /** Section type (`sh_type`), e.g. {@linkcode SHT_DYNSYM}. */
  type: number;
  /** Section flags (`sh_flags`). */
  flags: number;
  /** Virtual address of the section in memory, 0 if not allocated. */
  addr: number;
  /** File offset of the section's data. */
  offset: number;
  /** Size of the section in bytes (in memory for {@linkcode SHT_NOBITS}). */
  size: number;
  /** Type-dependent index of a related section (`sh_link`). */
  link: number;
  /** Type-dependent extra information (`sh_info`). */
  info: number;
  /** Alignment of the section. */
  addralign: number;
  /** Size of one entry for sections holding a table, else 0. */
  entsize: number;
}

/**
 * One entry of a symbol table (`Elf64_Sym`), with its name resolved.
 *
 * @example Select the defined functions
 * ```ts
 * import type { ElfSymbol } from "@x/page-primer/elf";
 *
 * const STT_FUNC = 2;
 * const functions = (symbols: ElfSymbol[]) =>
 *   symbols.filter((s) => s.type === STT_FUNC && s.shndx !== 0);
 * ```
 */
export interface ElfSymbol {
  /** Symbol name, without any version suffix. */
  name: string;
  /** Symbol value, usually its virtual address. */
  value: number;
  /** Size of the object or function in bytes. */
  size: number;
  /** Symbol type: the low 4 bits of `st_info` (e.g. 2 for `STT_FUNC`). */
  type: number;
  /** Symbol binding: the high 4 bits of `st_info` (e.g. 1 for `STB_GLOBAL`). */
  bind: number;
  /** Index of the section the symbol is defined in, 0 if undefined. */
  shndx: number;
}

/**
 * One ELF note as returned by {@linkcode parseNotes}.
 *
 * @example Format a note
 * ```ts
 * import type { ElfNote } from "@x/page-primer/elf";
 *
 * const describe = (note: ElfNote) => `${note.name} type ${note.type}, ${note.desc.length} bytes`;
 * ```
 */
export interface ElfNote {
  /** Owner name without the terminating NUL, e.g. `"GNU"`. */
  name: string;
  /** Note type, e.g. {@linkcode NT_GNU_BUILD_ID}. */
  type: number;
  /** Descriptor bytes (a view into the input). */
  desc: Uint8Array;
}

/**
 * A parsed ELF file, as returned by {@linkcode parseElf}.
 *
 * @example Look up a dynamic symbol
 * ```ts
 * import type { ElfFile } from "@x/page-primer/elf";
 *
 * const address = (elf: ElfFile, name: string) =>
 *   elf.symbols(".dynsym").find((s) => s.name === name)?.value;
 * ```
 */
export interface ElfFile {
  /** The file header. */
  header: ElfHeader;
  /** The program header table; empty if there is none. */
  programHeaders: ProgramHeader[];
  /** The section header table; empty if there is none. */
  sections: SectionHeader[];
  /** Lowercase hex of the GNU build id, or `undefined` if there is none. */
  buildId: string | undefined;
  /**
   * Reads (on first use) the given symbol table; `[]` if it is absent.
   *
   * @param table `".symtab"` for the full table, `".dynsym"` for the dynamic one.
   * @returns The symbols in table order, including the null symbol at index 0.
   */
  symbols(table: ".symtab" | ".dynsym"): ElfSymbol[];
}

const EHDR_SIZE = 64;
/** Bytes of one ELF64 program header. */
export const PHDR_SIZE = 56;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;
const PN_XNUM = 0xffff;
const NOTE_HEADER_SIZE = 12;

/**
 * Parses and validates the ELF file header: the magic number, `ELFCLASS64`,
 * `ELFDATA2LSB`, `EV_CURRENT`, and the entry sizes of the program header
 * (56) and section header (64) tables when they are present. The escape
 * values for more than 0xfeff sections or 0xfffe program headers are
 * resolved through section header 0.
 *
 * @example Read the entry point of the running executable
 * ```ts
 * import { bytesSource, parseElfHeader } from "@x/page-primer/elf";
 *
 * import assert from "node:assert/strict";
 *
 * const header = parseElfHeader(bytesSource(Deno.readFileSync(Deno.execPath())));
 * assert.ok(header.entry > 0 && header.phnum > 0);
 * ```
 *
 * @param src The ELF file.
 * @returns The header fields.
 * @throws {ElfError} If the data is not a valid ELF64 little-endian file header.
 */
export function parseElfHeader(src: ByteSource): ElfHeader {
  const size = checkSourceSize(src);
  if (size >= 4) {
    const magic = readChecked(src, 0, 4, "ELF magic");
    if (
      magic[0] !== 0x7f || magic[1] !== 0x45 || magic[2] !== 0x4c ||
      magic[3] !== 0x46
    ) {
      throw new ElfError(
        `not an ELF file: bad magic ${hexBytes(magic)} (expected 7f 45 4c 46)`,
      );
    }
  }
  const bytes = readChecked(src, 0, EHDR_SIZE, "ELF header");
  const view = viewOf(bytes);
  const elfClass = bytes[4];
  if (elfClass !== 2) {
    throw new ElfError(
      elfClass === 1
        ? "ELF class is ELFCLASS32; only ELFCLASS64 files are supported"
        : `invalid ELF class ${elfClass} (expected 2, ELFCLASS64)`,
    );
  }
  const data = bytes[5];
  if (data !== 1) {
    throw new ElfError(
      data === 2
        ? "ELF data encoding is ELFDATA2MSB (big-endian); only ELFDATA2LSB files are supported"
        : `invalid ELF data encoding ${data} (expected 1, ELFDATA2LSB)`,
    );
  }
  if (bytes[6] !== 1) {
    throw new ElfError(
      `unsupported ELF identification version ${
        bytes[6]
      } (expected 1, EV_CURRENT)`,
    );
  }
  const version = view.getUint32(20, true);
  if (version !== 1) {
    throw new ElfError(
      `unsupported ELF version ${version} in e_version (expected 1, EV_CURRENT)`,
    );
  }
  const header: ElfHeader = {
    type: view.getUint16(16, true),
    machine: view.getUint16(18, true),
    entry: u64(view, 24, "ELF header e_entry"),
    phoff: u64(view, 32, "ELF header e_phoff"),
    phentsize: view.getUint16(54, true),
    phnum: view.getUint16(56, true),
    shoff: u64(view, 40, "ELF header e_shoff"),
    shentsize: view.getUint16(58, true),
    shnum: view.getUint16(60, true),
    shstrndx: view.getUint16(62, true),
  };
  const resolved = resolveExtendedNumbering(src, header);
  if (resolved.phnum > 0 && resolved.phentsize !== PHDR_SIZE) {
    throw new ElfError(
      `ELF header e_phentsize is ${resolved.phentsize} (expected ${PHDR_SIZE} for ELF64 program headers)`,
    );
  }
  if (resolved.shnum > 0 && resolved.shentsize !== SHDR_SIZE) {
    throw new ElfError(
      `ELF header e_shentsize is ${resolved.shentsize} (expected ${SHDR_SIZE} for ELF64 section headers)`,
    );
  }
  return resolved;
}

/**
 * Parse a bare program header table (e.g. the in-memory one found through
 * getauxval(AT_PHDR)), `count` entries of 56 bytes.
 *
 * @example Parse a table of one PT_LOAD entry
 * ```ts
 * import { parseProgramHeaders, PF_R, PT_LOAD } from "@x/page-primer/elf";
 *
 * const bytes = new Uint8Array(56);
 * const view = new DataView(bytes.buffer);
 * view.setUint32(0, PT_LOAD, true);
 * view.setUint32(4, PF_R, true);
 * view.setBigUint64(40, 0x1000n, true); // p_memsz
 * const [load] = parseProgramHeaders(bytes, 1);
 * if (load.type !== PT_LOAD || load.memsz !== 0x1000) throw new Error("unexpected");
 * ```
 *
 * @param bytes The table; may be longer than `count` entries.
 * @param count The number of entries to parse.
 * @returns The program headers in table order.
 * @throws {ElfError} If `bytes` holds fewer than `count` entries or a field
 * is above `Number.MAX_SAFE_INTEGER`.
 */
export function parseProgramHeaders(
  bytes: Uint8Array,
  count: number,
): ProgramHeader[] {
  if (!isCount(count)) {
    throw new ElfError(
      `invalid program header count ${count} (expected a non-negative integer)`,
    );
  }
  if (count > Math.floor(bytes.length / PHDR_SIZE)) {
    throw new ElfError(
      `program header table (${count} entries of ${PHDR_SIZE} bytes) is larger than the data (size ${
        hex(bytes.length)
      })`,
    );
  }
  const view = viewOf(bytes);
  const result: ProgramHeader[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * PHDR_SIZE;
    const what = `program header ${i}`;
    result.push({
      type: view.getUint32(at, true),
      flags: view.getUint32(at + 4, true),
      offset: u64(view, at + 8, `${what} p_offset`),
      vaddr: u64(view, at + 16, `${what} p_vaddr`),
      paddr: u64(view, at + 24, `${what} p_paddr`),
      filesz: u64(view, at + 32, `${what} p_filesz`),
      memsz: u64(view, at + 40, `${what} p_memsz`),
      align: u64(view, at + 48, `${what} p_align`),
    });
  }
  return result;
}

/**
 * Reads the program header table located by `header`.
 *
 * @example List the segments of the running executable
 * ```ts
 * import { bytesSource, parseElfHeader, readProgramHeaders } from "@x/page-primer/elf";
 *
 * const src = bytesSource(Deno.readFileSync(Deno.execPath()));
 * import assert from "node:assert/strict";
 * const headers = readProgramHeaders(src, parseElfHeader(src));
 * assert.ok(headers.length > 0 && headers.every((ph) => ph.memsz >= ph.filesz));
 * ```
 *
 * @param src The ELF file.
 * @param header Its header, from {@linkcode parseElfHeader}.
 * @returns The program headers in table order; empty if there are none.
 * @throws {ElfError} If the table extends past the end of `src` or an entry
 * is invalid.
 */
export function readProgramHeaders(
  src: ByteSource,
  header: ElfHeader,
): ProgramHeader[] {
  const { phoff, phnum, phentsize } = resolveExtendedNumbering(src, header);
  if (phnum === 0) return [];
  if (phentsize !== PHDR_SIZE) {
    throw new ElfError(
      `program header entry size is ${phentsize} (expected ${PHDR_SIZE})`,
    );
  }
  const bytes = readTable(src, phoff, phnum, PHDR_SIZE, "program header table");
  return parseProgramHeaders(bytes, phnum);
}

/**
 * Reads the section header table located by `header` and resolves the
 * section names through the section header string table (`e_shstrndx`).
 * Extended numbering (`e_shnum == 0` and `e_shstrndx == SHN_XINDEX` with the
 * real values in section header 0) is handled.
 *
 * @example Print the sections of the running executable
 * ```ts
 * import { bytesSource, parseElfHeader, readSectionHeaders } from "@x/page-primer/elf";
 *
 * const src = bytesSource(Deno.readFileSync(Deno.execPath()));
 * import assert from "node:assert/strict";
 * const names = readSectionHeaders(src, parseElfHeader(src)).map((s) => s.name);
 * assert.ok(names.includes(".text"));
 * ```
 *
 * @param src The ELF file.
 * @param header Its header, from {@linkcode parseElfHeader}.
 * @returns The section headers in table order (index 0 is the null
 * section); an empty array when the file has no section header table.
 * @throws {ElfError} If the table or the string table extends past the end
 * of `src`, the string table index is out of range, or a name is not a
 * NUL-terminated string inside the string table.
 */
export function readSectionHeaders(
  src: ByteSource,
  header: ElfHeader,
): SectionHeader[] {
  const { shoff, shnum, shentsize, shstrndx } = resolveExtendedNumbering(
    src,
    header,
  );
  if (shnum === 0) return [];
  if (shentsize !== SHDR_SIZE) {
    throw new ElfError(
      `section header entry size is ${shentsize} (expected ${SHDR_SIZE})`,
    );
  }
  const bytes = readTable(src, shoff, shnum, SHDR_SIZE, "section header table");
  const view = viewOf(bytes);
  const nameOffsets: number[] = [];
  const sections: SectionHeader[] = [];
  for (let i = 0; i < shnum; i++) {
    const at = i * SHDR_SIZE;
    const what = `section header ${i}`;
    nameOffsets.push(view.getUint32(at, true));
    sections.push({
      name: "",
      type: view.getUint32(at + 4, true),
      flags: u64(view, at + 8, `${what} sh_flags`),
      addr: u64(view, at + 16, `${what} sh_addr`),
      offset: u64(view, at + 24, `${what} sh_offset`),
      size: u64(view, at + 32, `${what} sh_size`),
      link: view.getUint32(at + 40, true),
      info: view.getUint32(at + 44, true),
      addralign: u64(view, at + 48, `${what} sh_addralign`),
      entsize: u64(view, at + 56, `${what} sh_entsize`),
    });
  }
  if (shstrndx === SHN_UNDEF) return sections;
  if (shstrndx >= shnum) {
    throw new ElfError(
      `section header string table index ${shstrndx} is out of range (${shnum} sections)`,
    );
  }
  const strtab = sections[shstrndx];
  const tableName = `section header string table (section ${shstrndx})`;
  if (strtab.type === SHT_NOBITS) {
    throw new ElfError(`${tableName} has type SHT_NOBITS and no data`);
  }
  const strings = readChecked(src, strtab.offset, strtab.size, tableName);
  for (let i = 0; i < shnum; i++) {
    sections[i].name = readString(
      strings,
      nameOffsets[i],
      tableName,
      `name of section ${i}`,
    );
  }
  return sections;
}

/**
 * Returns the file contents of a section, bounds-checked. A
 * {@linkcode SHT_NOBITS} section has no contents and yields an empty array.
 *
 * @example Read the program interpreter path
 * ```ts
 * import { bytesSource, parseElf, readSectionData } from "@x/page-primer/elf";
 *
 * const src = bytesSource(Deno.readFileSync(Deno.execPath()));
 * const interp = parseElf(src).sections.find((s) => s.name === ".interp");
 * import assert from "node:assert/strict";
 * if (interp) {
 *   const path = new TextDecoder().decode(readSectionData(src, interp));
 *   assert.match(path, /^\/.*ld-linux/);
 * }
 * ```
 *
 * @param src The ELF file.
 * @param section A section header of that file.
 * @returns The `section.size` bytes at `section.offset`.
 * @throws {ElfError} If the section extends past the end of `src`.
 */
export function readSectionData(
  src: ByteSource,
  section: SectionHeader,
): Uint8Array {
  if (section.type === SHT_NOBITS) return new Uint8Array(0);
  return readChecked(
    src,
    section.offset,
    section.size,
    `section ${sectionLabel(section)}`,
  );
}

/**
 * Reads a symbol table and resolves the symbol names through its string
 * table (the section named by the table's `sh_link`). Extended section
 * indices ({@linkcode SHN_XINDEX}) are resolved through the matching
 * {@linkcode SHT_SYMTAB_SHNDX} section when there is one.
 *
 * @example Find `malloc` in the C library
 * ```ts
 * import { bytesSource, parseElfHeader, readSectionHeaders, readSymbols } from "@x/page-primer/elf";
 *
 * const src = bytesSource(Deno.readFileSync("/lib/x86_64-linux-gnu/libc.so.6"));
 * const sections = readSectionHeaders(src, parseElfHeader(src));
 * const malloc = readSymbols(src, sections, ".dynsym").find((s) => s.name === "malloc");
 * import assert from "node:assert/strict";
 * assert.ok((malloc?.value ?? 0) > 0);
 * ```
 *
 * @param src The ELF file.
 * @param sections Its section headers, from {@linkcode readSectionHeaders}.
 * @param table `".symtab"` (section type {@linkcode SHT_SYMTAB}) or
 * `".dynsym"` (section type {@linkcode SHT_DYNSYM}).
 * @returns The symbols in table order, including the null symbol at index
 * 0; `[]` when the file has no such table.
 * @throws {ElfError} If the table or its string table is malformed or out of
 * bounds.
 */
export function readSymbols(
  src: ByteSource,
  sections: SectionHeader[],
  table: ".symtab" | ".dynsym",
): ElfSymbol[] {
  const layout = symbolTableLayout(src, sections, table);
  if (layout === undefined) return [];
  const { count, label } = layout;
  const strLabel = layout.strings.label;
  const bytes = readTable(src, layout.offset, count, SYM_SIZE, label);
  const strings = readChecked(
    src,
    layout.strings.offset,
    layout.strings.size,
    strLabel,
  );
  const xindex = layout.xindex === undefined ? undefined : viewOf(
    readTable(src, layout.xindex.offset, count, 4, layout.xindex.label),
  );
  const view = viewOf(bytes);
  const symbols: ElfSymbol[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * SYM_SIZE;
    const info = bytes[at + 4];
    let shndx = view.getUint16(at + 6, true);
    if (shndx === SHN_XINDEX && xindex !== undefined) {
      shndx = xindex.getUint32(i * 4, true);
    }
    symbols.push({
      name: readString(
        strings,
        view.getUint32(at, true),
        strLabel,
        `name of symbol ${i} of ${label}`,
      ),
      value: u64(view, at + 8, `symbol ${i} of ${label}: st_value`),
      size: u64(view, at + 16, `symbol ${i} of ${label}: st_size`),
      type: info & 0xf,
      bind: info >> 4,
      shndx,
    });
  }
  return symbols;
}

/**
 * Where a symbol table and its strings are in the file, every bound checked:
 * what {@linkcode symbolChunks} and {@linkcode visitStrings} read from.
 *
 * @example Count the symbols of a file without reading them
 * ```ts
 * import { bytesSource, parseElf, symbolTableLayout } from "@x/page-primer/elf";
 *
 * const src = bytesSource(Deno.readFileSync(Deno.execPath()));
 * const layout = symbolTableLayout(src, parseElf(src).sections, ".dynsym");
 * import assert from "node:assert/strict";
 * assert.ok((layout?.count ?? 0) > 0 && (layout?.strings.size ?? 0) > 0);
 * ```
 */
export interface SymbolTableLayout {
  /** Which table. */
  table: ".symtab" | ".dynsym";
  /** Index of its section. */
  index: number;
  /** What messages call it, e.g. `"symbol table .symtab (section 35)"`. */
  label: string;
  /** File offset of its first entry. */
  offset: number;
  /** Entries, the null symbol at index 0 included. */
  count: number;
  /** Its string table (the section its `sh_link` names). */
  strings: StringTableLayout;
  /** Its extended section index table ({@linkcode SHT_SYMTAB_SHNDX}), if any. */
  xindex?: { offset: number; label: string };
}

/**
 * Where a string table is in the file.
 *
 * @example The section header string table of a file
 * ```ts
 * import { bytesSource, parseElf, type StringTableLayout } from "@x/page-primer/elf";
 *
 * const src = bytesSource(Deno.readFileSync(Deno.execPath()));
 * const elf = parseElf(src);
 * const s = elf.sections[elf.header.shstrndx];
 * const names: StringTableLayout = { offset: s.offset, size: s.size, label: "section names" };
 * ```
 */
export interface StringTableLayout {
  /** File offset of its first byte. */
  offset: number;
  /** Bytes. */
  size: number;
  /** What messages call it, e.g. `"string table .strtab (section 36)"`. */
  label: string;
}

/**
 * Finds a symbol table and checks it without reading it: its entry size,
 * its string table link, and that it, its string table and its extended
 * section index table lie inside `src`. {@linkcode readSymbols} reads the
 * whole table at once; {@linkcode symbolChunks} reads it a chunk at a time.
 *
 * @example
 * ```ts
 * import { bytesSource, parseElf, symbolTableLayout } from "@x/page-primer/elf";
 *
 * const src = bytesSource(Deno.readFileSync(Deno.execPath()));
 * const elf = parseElf(src);
 * import assert from "node:assert/strict";
 * // A stripped executable has no .symtab: undefined, not an error.
 * const layout = symbolTableLayout(src, elf.sections, ".symtab");
 * assert.ok(layout === undefined || layout.count > 0);
 * ```
 *
 * @param src The ELF file.
 * @param sections Its section headers, from {@linkcode readSectionHeaders}.
 * @param table `".symtab"` or `".dynsym"`.
 * @returns The layout, or `undefined` when the file has no such table.
 * @throws {ElfError} If the table, its string table or its extended index
 * table is malformed or out of bounds.
 */
export function symbolTableLayout(
  src: ByteSource,
  sections: SectionHeader[],
  table: ".symtab" | ".dynsym",
): SymbolTableLayout | undefined {
  const wanted = table === ".symtab" ? SHT_SYMTAB : SHT_DYNSYM;
  const index = sections.findIndex((s) => s.type === wanted);
  if (index < 0) return undefined;
  const symtab = sections[index];
  const label = `symbol table ${sectionLabel(symtab, index)}`;
  if (symtab.entsize !== SYM_SIZE) {
    throw new ElfError(
      `${label} has entry size ${symtab.entsize} (expected ${SYM_SIZE})`,
    );
  }
  if (symtab.size % SYM_SIZE !== 0) {
    throw new ElfError(
      `${label} size ${
        hex(symtab.size)
      } is not a multiple of the entry size ${SYM_SIZE}`,
    );
  }
  const count = symtab.size / SYM_SIZE;
  if (symtab.link === SHN_UNDEF || symtab.link >= sections.length) {
    throw new ElfError(
      `${label} has string table link (sh_link) ${symtab.link}, out of range (${sections.length} sections)`,
    );
  }
  const strtab = sections[symtab.link];
  const strLabel = `string table ${sectionLabel(strtab, symtab.link)}`;
  if (strtab.type !== SHT_STRTAB) {
    throw new ElfError(
      `${label} links (sh_link) to ${strLabel}, which has type ${strtab.type} instead of SHT_STRTAB`,
    );
  }
  checkTable(src, symtab.offset, count, SYM_SIZE, label);
  checkRange(src, strtab.offset, strtab.size, strLabel);
  const layout: SymbolTableLayout = {
    table,
    index,
    label,
    offset: symtab.offset,
    count,
    strings: { offset: strtab.offset, size: strtab.size, label: strLabel },
  };
  const x = sections.findIndex((s) =>
    s.type === SHT_SYMTAB_SHNDX && s.link === index
  );
  if (x >= 0) {
    const section = sections[x];
    const what = `extended section index table ${
      sectionLabel(section, x)
    } of ${label}`;
    if (Math.floor(section.size / 4) < count) {
      throw new ElfError(
        `${what} has ${
          Math.floor(section.size / 4)
        } entries, fewer than the ${count} symbols`,
      );
    }
    checkTable(src, section.offset, count, 4, what);
    layout.xindex = { offset: section.offset, label: what };
  }
  return layout;
}

/**
 * A run of consecutive symbols of a table, decoded into columns: symbol
 * `first + i` has name offset `name[i]`, value `value[i]`, and so on, for
 * `i < count`. The arrays are reused: a chunk is valid until the iterator
 * yields the next one.
 *
 * @example Sum the sizes of the functions in a chunk
 * ```ts
 * import type { SymbolChunk } from "@x/page-primer/elf";
 *
 * const STT_FUNC = 2;
 * const code = (c: SymbolChunk) => {
 *   let n = 0;
 *   for (let i = 0; i < c.count; i++) if (c.type[i] === STT_FUNC) n += c.size[i];
 *   return n;
 * };
 * ```
 */
export interface SymbolChunk {
  /** Index in the table of the chunk's first symbol. */
  first: number;
  /** Symbols in the chunk; the columns may be longer. */
  count: number;
  /** `st_name`: offset of the name in the string table (0: no name). */
  name: Uint32Array;
  /** `st_value`. */
  value: Float64Array;
  /** `st_size`. */
  size: Float64Array;
  /** Type, the low 4 bits of `st_info`. */
  type: Uint8Array;
  /** Binding, the high 4 bits of `st_info`. */
  bind: Uint8Array;
  /** Section index, extended indices resolved as in {@linkcode readSymbols}. */
  shndx: Uint32Array;
}

/**
 * Reads a symbol table `chunkSymbols` entries at a time (24 bytes each), so
 * that memory stays bounded whatever the size of the table; names are left
 * as offsets, to be read with {@linkcode visitStrings}. The values are those
 * {@linkcode readSymbols} gives, in the same order.
 *
 * @example Count the functions of a file, 4096 symbols at a time
 * ```ts
 * import { bytesSource, parseElf, symbolChunks, symbolTableLayout } from "@x/page-primer/elf";
 *
 * const src = bytesSource(Deno.readFileSync(Deno.execPath()));
 * const layout = symbolTableLayout(src, parseElf(src).sections, ".dynsym");
 * let functions = 0;
 * if (layout) {
 *   for (const c of symbolChunks(src, layout)) {
 *     for (let i = 0; i < c.count; i++) if (c.type[i] === 2) functions++;
 *   }
 * }
 * import assert from "node:assert/strict";
 * assert.ok(functions > 0);
 * ```
 *
 * @param src The ELF file.
 * @param layout The table, from {@linkcode symbolTableLayout}.
 * @param chunkSymbols Symbols per chunk (default 4096, 96 KiB of table).
 * @returns The chunks, in table order.
 * @throws {RangeError} If `chunkSymbols` is not a positive integer.
 * @throws {ElfError} If a value does not fit a safe integer, or the source
 * returns fewer bytes than asked.
 */
export function* symbolChunks(
  src: ByteSource,
  layout: SymbolTableLayout,
  chunkSymbols = 4096,
): Generator<SymbolChunk> {
  if (!Number.isSafeInteger(chunkSymbols) || chunkSymbols < 1) {
    throw new RangeError(
      `symbolChunks(): chunkSymbols must be a positive integer; got ${chunkSymbols}`,
    );
  }
  const n = Math.min(chunkSymbols, layout.count);
  const chunk: SymbolChunk = {
    first: 0,
    count: 0,
    name: new Uint32Array(n),
    value: new Float64Array(n),
    size: new Float64Array(n),
    type: new Uint8Array(n),
    bind: new Uint8Array(n),
    shndx: new Uint32Array(n),
  };
  const { label } = layout;
  for (let first = 0; first < layout.count; first += n) {
    const count = Math.min(n, layout.count - first);
    const view = viewOf(
      readChecked(
        src,
        layout.offset + first * SYM_SIZE,
        count * SYM_SIZE,
        label,
      ),
    );
    const xindex = layout.xindex === undefined ? undefined : viewOf(
      readChecked(
        src,
        layout.xindex.offset + first * 4,
        count * 4,
        layout.xindex.label,
      ),
    );
    decodeSymbols(view, xindex, chunk, count, first, label);
    chunk.first = first;
    chunk.count = count;
    yield chunk;
  }
}

/**
 * Reads the strings at `offsets` of a string table and hands each to
 * `visit` as raw bytes: the string starts at `bytes[start]` and ends at the
 * first 0 after it, which is inside `bytes` (so `visit` can copy it and
 * find its end in one loop; `bytes.indexOf(0, start)` finds it too).
 * `bytes` is valid only during the call.
 *
 * The table is read `chunkBytes` at a time (plus a little, so that the
 * strings starting in a chunk end in it; more for a longer string), at
 * offsets that are multiples of `chunkBytes`: memory stays bounded whatever
 * the size of the table, and each chunk is read once when the offsets that
 * fall in it come one after another (sorted, or grouped by
 * `Math.floor(offset / chunkBytes)`).
 *
 * @example Read the names of the first symbols of a table
 * ```ts
 * import { bytesSource, parseElf, symbolChunks, symbolTableLayout, visitStrings } from "@x/page-primer/elf";
 *
 * const src = bytesSource(Deno.readFileSync(Deno.execPath()));
 * const layout = symbolTableLayout(src, parseElf(src).sections, ".dynsym")!;
 * const first = symbolChunks(src, layout, 8).next().value!;
 * const offsets = first.name.subarray(0, first.count);
 * const names: string[] = [];
 * visitStrings(src, layout.strings, offsets, (_, bytes, start) =>
 *   names.push(new TextDecoder().decode(bytes.subarray(start, bytes.indexOf(0, start)))));
 * import assert from "node:assert/strict";
 * assert.equal(names.length, first.count);
 * ```
 *
 * @param src The ELF file.
 * @param strings The string table, e.g. a {@linkcode SymbolTableLayout}'s.
 * @param offsets Offsets into the table.
 * @param visit Called once per offset, in order, with its index in `offsets`.
 * @param chunkBytes Bytes read at a time (default 256 KiB).
 * @throws {RangeError} If `chunkBytes` is not a positive integer.
 * @throws {ElfError} If an offset is outside the table or its string has no
 * terminating NUL inside it.
 */
export function visitStrings(
  src: ByteSource,
  strings: StringTableLayout,
  offsets: ArrayLike<number>,
  visit: (k: number, bytes: Uint8Array, start: number) => void,
  chunkBytes = 1 << 18,
): void {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) {
    throw new RangeError(
      `visitStrings(): chunkBytes must be a positive integer; got ${chunkBytes}`,
    );
  }
  const { size, label } = strings;
  let buf: Uint8Array = EMPTY_STRING;
  let at = 0; // table offset of buf[0]
  let whole = 0; // bytes of buf up to its last NUL: the strings it holds whole
  for (let k = 0; k < offsets.length; k++) {
    const offset = offsets[k];
    if (offset >= at && offset < at + whole) {
      visit(k, buf, offset - at);
      continue;
    }
    if (offset === 0 && size === 0) {
      visit(k, EMPTY_STRING, 0);
      continue;
    }
    if (!(offset >= 0 && offset < size)) {
      throw new ElfError(
        `string at offset ${hex(offset)} is outside the ${label} (size ${
          hex(size)
        })`,
      );
    }
    // The chunk holding `offset`, and a page more for the strings that
    // start in it; from `offset` itself, twice as much each time, for a
    // string longer than that.
    at = offset - offset % chunkBytes;
    for (let length = chunkBytes + STRING_SLACK;; length *= 2) {
      buf = readChecked(
        src,
        strings.offset + at,
        Math.min(length, size - at),
        label,
      );
      whole = buf.lastIndexOf(0) + 1;
      if (offset < at + whole) break;
      if (at + buf.length >= size) {
        throw new ElfError(
          `string at offset ${
            hex(offset)
          } runs off the end of the ${label} (size ${
            hex(size)
          }) without a terminating NUL`,
        );
      }
      at = offset;
    }
    visit(k, buf, offset - at);
  }
}

/**
 * Splits a block of ELF notes (the contents of a `PT_NOTE` segment or an
 * `SHT_NOTE` section). Each note is a 12-byte header (`namesz`, `descsz`,
 * `type`) followed by the name; the descriptor starts at the next multiple
 * of `align` bytes from the start of the note, and so does the next note
 * after the descriptor.
 *
 * @example Parse a GNU build id note
 * ```ts
 * import { NT_GNU_BUILD_ID, parseNotes } from "@x/page-primer/elf";
 *
 * const bytes = new Uint8Array([
 *   4, 0, 0, 0, // namesz
 *   4, 0, 0, 0, // descsz
 *   3, 0, 0, 0, // type: NT_GNU_BUILD_ID
 *   0x47, 0x4e, 0x55, 0, // "GNU\0"
 *   0xde, 0xad, 0xbe, 0xef, // descriptor
 * ]);
 * const [note] = parseNotes(bytes);
 * if (note.name !== "GNU" || note.type !== NT_GNU_BUILD_ID) throw new Error("unexpected");
 * ```
 *
 * @param bytes The note data.
 * @param align The padding of names and descriptors: 4 (the usual) or 8
 * (segments with `p_align == 8`, such as `.note.gnu.property`).
 * @returns The notes in order; `desc` are views into `bytes`.
 * @throws {ElfError} If a note header, name or descriptor extends past the
 * end of `bytes`.
 */
export function parseNotes(bytes: Uint8Array, align: 4 | 8 = 4): ElfNote[] {
  if (align !== 4 && align !== 8) {
    throw new ElfError(`invalid note alignment ${align} (expected 4 or 8)`);
  }
  const view = viewOf(bytes);
  const notes: ElfNote[] = [];
  const end = bytes.length;
  let pos = 0;
  while (pos < end) {
    if (end - pos < NOTE_HEADER_SIZE) {
      throw new ElfError(
        `note header at offset ${
          hex(pos)
        } (${NOTE_HEADER_SIZE} bytes) extends past the end of the note data (size ${
          hex(end)
        })`,
      );
    }
    const namesz = view.getUint32(pos, true);
    const descsz = view.getUint32(pos + 4, true);
    const type = view.getUint32(pos + 8, true);
    const nameAt = pos + NOTE_HEADER_SIZE;
    if (namesz > end - nameAt) {
      throw new ElfError(
        `note name at offset ${hex(nameAt)} (namesz ${
          hex(namesz)
        }) extends past the end of the note data (size ${hex(end)})`,
      );
    }
    const descAt = Math.min(
      end,
      pos + alignUp(NOTE_HEADER_SIZE + namesz, align),
    );
    if (descsz > end - descAt) {
      throw new ElfError(
        `note descriptor at offset ${hex(descAt)} (descsz ${
          hex(descsz)
        }) extends past the end of the note data (size ${hex(end)})`,
      );
    }
    let nameEnd = nameAt + namesz;
    while (nameEnd > nameAt && bytes[nameEnd - 1] === 0) nameEnd--;
    notes.push({
      name: decodeText(bytes.subarray(nameAt, nameEnd)),
      type,
      desc: bytes.subarray(descAt, descAt + descsz),
    });
    pos = Math.min(end, descAt + alignUp(descsz, align));
  }
  return notes;
}

/**
 * Finds the GNU build id: the descriptor of the `NT_GNU_BUILD_ID` note (type
 * 3, owner `"GNU"`). The notes are looked up through the `PT_NOTE` segments;
 * if none holds a build id, the `SHT_NOTE` sections are searched instead.
 *
 * @example Print the build id of the running executable
 * ```ts
 * import { bytesSource, parseElfHeader, readBuildId } from "@x/page-primer/elf";
 *
 * const src = bytesSource(Deno.readFileSync(Deno.execPath()));
 * import assert from "node:assert/strict";
 * assert.match(readBuildId(src, parseElfHeader(src)) ?? "", /^[0-9a-f]{16,}$/);
 * ```
 *
 * @param src The ELF file.
 * @param header Its header, from {@linkcode parseElfHeader}.
 * @param programHeaders Its program headers, if already read.
 * @returns The build id as lowercase hex, or `undefined` if there is none.
 * @throws {ElfError} If a note segment or section is malformed or out of
 * bounds.
 */
export function readBuildId(
  src: ByteSource,
  header: ElfHeader,
  programHeaders?: ProgramHeader[],
): string | undefined {
  return findBuildId(
    src,
    programHeaders ?? readProgramHeaders(src, header),
    () => readSectionHeaders(src, header),
  );
}

/**
 * Parses an ELF file: its header, program headers, section headers and build
 * id. The symbol tables are read on demand by {@linkcode ElfFile.symbols}.
 *
 * @example Inspect the running executable
 * ```ts
 * import { bytesSource, parseElf } from "@x/page-primer/elf";
 *
 * const elf = parseElf(bytesSource(Deno.readFileSync(Deno.execPath())));
 * import assert from "node:assert/strict";
 * assert.ok(elf.sections.length > 0 && elf.symbols(".dynsym").length > 0);
 * ```
 *
 * @param src The ELF file.
 * @returns The parsed file.
 * @throws {ElfError} If any of the parsed structures is malformed or out of
 * bounds.
 */
export function parseElf(src: ByteSource): ElfFile {
  const header = parseElfHeader(src);
  const programHeaders = readProgramHeaders(src, header);
  const sections = readSectionHeaders(src, header);
  const buildId = findBuildId(src, programHeaders, () => sections);
  const cache = new Map<string, ElfSymbol[]>();
  return {
    header,
    programHeaders,
    sections,
    buildId,
    symbols(table: ".symtab" | ".dynsym"): ElfSymbol[] {
      let symbols = cache.get(table);
      if (symbols === undefined) {
        symbols = readSymbols(src, sections, table);
        cache.set(table, symbols);
      }
      return symbols;
    },
  };
}

// ---------------------------------------------------------------------------
// Internal helpers.

function findBuildId(
  src: ByteSource,
  programHeaders: ProgramHeader[],
  sections: () => SectionHeader[],
): string | undefined {
  for (const [i, ph] of programHeaders.entries()) {
    if (ph.type !== PT_NOTE) continue;
    const bytes = readChecked(
      src,
      ph.offset,
      ph.filesz,
      `PT_NOTE segment (program header ${i})`,
    );
    const id = buildIdIn(
      bytes,
      ph.align,
      `PT_NOTE segment (program header ${i})`,
    );
    if (id !== undefined) return id;
  }
  for (const [i, section] of sections().entries()) {
    if (section.type !== SHT_NOTE) continue;
    const label = `note section ${sectionLabel(section, i)}`;
    const bytes = readChecked(src, section.offset, section.size, label);
    const id = buildIdIn(bytes, section.addralign, label);
    if (id !== undefined) return id;
  }
  return undefined;
}

function buildIdIn(
  bytes: Uint8Array,
  align: number,
  what: string,
): string | undefined {
  let notes: ElfNote[];
  try {
    notes = parseNotes(bytes, align === 8 ? 8 : 4);
  } catch (error) {
    if (error instanceof ElfError) {
      throw new ElfError(`${what}: ${error.message}`);
    }
    throw error;
  }
  const note = notes.find((n) =>
    n.type === NT_GNU_BUILD_ID && n.name === "GNU"
  );
  if (note === undefined) return undefined;
  return Array.from(note.desc, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Applies the escapes for large tables: `e_phnum == PN_XNUM` (count in
 * section 0's sh_info), `e_shnum == 0` with a section header table (count in
 * section 0's sh_size) and `e_shstrndx == SHN_XINDEX` (index in section 0's
 * sh_link). Returns `header` itself when there is nothing to resolve.
 */
function resolveExtendedNumbering(
  src: ByteSource,
  header: ElfHeader,
): ElfHeader {
  const needsSection0 = header.shoff !== 0 &&
    (header.phnum === PN_XNUM || header.shnum === 0 ||
      header.shstrndx === SHN_XINDEX);
  if (!needsSection0) return header;
  if (header.shentsize !== SHDR_SIZE) {
    throw new ElfError(
      `section header entry size is ${header.shentsize} (expected ${SHDR_SIZE})`,
    );
  }
  const view = viewOf(
    readChecked(
      src,
      header.shoff,
      SHDR_SIZE,
      "section header 0 (needed for extended numbering)",
    ),
  );
  const resolved = { ...header };
  if (header.phnum === PN_XNUM) resolved.phnum = view.getUint32(44, true);
  if (header.shnum === 0) {
    resolved.shnum = u64(view, 32, "section header 0 sh_size (section count)");
  }
  if (header.shstrndx === SHN_XINDEX) {
    resolved.shstrndx = view.getUint32(40, true);
  }
  return resolved;
}

/** Reads `count` entries of `entsize` bytes at `offset`, bounds-checked. */
function readTable(
  src: ByteSource,
  offset: number,
  count: number,
  entsize: number,
  what: string,
): Uint8Array {
  checkTable(src, offset, count, entsize, what);
  return readChecked(src, offset, count * entsize, what);
}

/**
 * Decodes `count` symbols of `view` into `chunk`'s columns (a plain
 * function: V8 optimizes a loop inside a generator poorly). Reads the
 * entries as 32-bit words when the data is 4-byte aligned (what `pread`
 * returns is) and this machine is little-endian, with a `DataView`
 * otherwise.
 */
function decodeSymbols(
  view: DataView,
  xindex: DataView | undefined,
  chunk: SymbolChunk,
  count: number,
  first: number,
  label: string,
): void {
  const words = LITTLE_ENDIAN_HOST && view.byteOffset % 4 === 0
    ? new Uint32Array(view.buffer, view.byteOffset, count * 6)
    : undefined;
  for (let i = 0; i < count; i++) {
    let name, info, valueLow, valueHigh, sizeLow, sizeHigh;
    if (words !== undefined) {
      const w = i * 6;
      name = words[w];
      info = words[w + 1];
      valueLow = words[w + 2];
      valueHigh = words[w + 3];
      sizeLow = words[w + 4];
      sizeHigh = words[w + 5];
    } else {
      const at = i * SYM_SIZE;
      name = view.getUint32(at, true);
      info = view.getUint32(at + 4, true);
      valueLow = view.getUint32(at + 8, true);
      valueHigh = view.getUint32(at + 12, true);
      sizeLow = view.getUint32(at + 16, true);
      sizeHigh = view.getUint32(at + 20, true);
    }
    // st_info, st_other and st_shndx, little-endian in one word.
    let shndx = info >>> 16;
    if (shndx === SHN_XINDEX && xindex !== undefined) {
      shndx = xindex.getUint32(i * 4, true);
    }
    chunk.name[i] = name;
    chunk.type[i] = info & 0xf;
    chunk.bind[i] = (info >> 4) & 0xf;
    chunk.shndx[i] = shndx;
    if (valueHigh > 0x1fffff || sizeHigh > 0x1fffff) {
      // u64() for its message.
      const what = `symbol ${first + i} of ${label}`;
      u64(view, i * SYM_SIZE + 8, `${what}: st_value`);
      u64(view, i * SYM_SIZE + 16, `${what}: st_size`);
    }
    chunk.value[i] = valueHigh * 0x1_0000_0000 + valueLow;
    chunk.size[i] = sizeHigh * 0x1_0000_0000 + sizeLow;
  }
}

/** Checks that `count` entries of `entsize` bytes at `offset` lie inside `src`. */
function checkTable(
  src: ByteSource,
  offset: number,
  count: number,
  entsize: number,
  what: string,
): void {
  const size = checkSourceSize(src);
  if (offset > size || count > Math.floor((size - offset) / entsize)) {
    throw new ElfError(
      `${what} (offset ${
        hex(offset)
      }, ${count} entries of ${entsize} bytes) extends past the end of the data (size ${
        hex(size)
      })`,
    );
  }
}

/** Checks that `length` bytes at `offset` lie inside `src`. */
function checkRange(
  src: ByteSource,
  offset: number,
  length: number,
  what: string,
): void {
  const size = checkSourceSize(src);
  if (!isCount(offset) || !isCount(length)) {
    throw new ElfError(
      `${what} has an invalid offset ${offset} or size ${length}`,
    );
  }
  if (offset > size || length > size - offset) {
    throw new ElfError(
      `${what} (offset ${hex(offset)}, ${
        hex(length)
      } bytes) extends past the end of the data (size ${hex(size)})`,
    );
  }
}

/** Reads `length` bytes at `offset` after checking they lie inside `src`. */
function readChecked(
  src: ByteSource,
  offset: number,
  length: number,
  what: string,
): Uint8Array {
  checkRange(src, offset, length, what);
  const bytes = src.read(offset, length);
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new ElfError(
      `byte source returned ${
        bytes instanceof Uint8Array ? bytes.length : "no"
      } bytes for ${what} (offset ${hex(offset)}, ${hex(length)} bytes)`,
    );
  }
  return bytes;
}

function checkSourceSize(src: ByteSource): number {
  const size = src.size;
  if (!isCount(size)) {
    throw new ElfError(
      `invalid byte source size ${size} (expected a non-negative safe integer)`,
    );
  }
  return size;
}

/**
 * Reads the NUL-terminated string at `offset` of a string table, never
 * looking past the table's end.
 */
function readString(
  table: Uint8Array,
  offset: number,
  tableName: string,
  what: string,
): string {
  if (offset === 0 && table.length === 0) return "";
  if (offset >= table.length) {
    throw new ElfError(
      `${what}: offset ${hex(offset)} is outside the ${tableName} (size ${
        hex(table.length)
      })`,
    );
  }
  const end = table.indexOf(0, offset);
  if (end < 0) {
    throw new ElfError(
      `${what}: string at offset ${
        hex(offset)
      } runs off the end of the ${tableName} (size ${
        hex(table.length)
      }) without a terminating NUL`,
    );
  }
  return decodeText(table.subarray(offset, end));
}

/** Reads a little-endian u64 as a number, rejecting unsafe integers. */
function u64(view: DataView, at: number, what: string): number {
  const low = view.getUint32(at, true);
  const high = view.getUint32(at + 4, true);
  if (high > 0x1fffff) {
    throw new ElfError(
      `${what} is 0x${high.toString(16)}${
        low.toString(16).padStart(8, "0")
      }, above Number.MAX_SAFE_INTEGER`,
    );
  }
  return high * 0x1_0000_0000 + low;
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function isCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function hexBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

function sectionLabel(section: SectionHeader, index?: number): string {
  const name = section.name === "" ? "" : `${section.name} `;
  return index === undefined
    ? name.trimEnd() || "(unnamed)"
    : `${name}(section ${index})`;
}

const decoder = new TextDecoder();

/** Whether typed arrays here are little-endian, as the ELF files read are. */
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The empty string, NUL-terminated. */
const EMPTY_STRING = new Uint8Array(1);
/** Bytes {@linkcode visitStrings} reads past a chunk for the strings that start in it. */
const STRING_SLACK = 4096;

function decodeText(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}
