// What the build matrix reads from OUTSIDE a child process: the ELF program
// headers of its executable (parsed here, not by the library), its load
// bias (from /proc/<pid>/auxv), its VMAs (/proc/<pid>/smaps) and the bytes
// of its read-only LOAD ranges (/proc/<pid>/mem).
import {
  closeSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeSync,
} from "node:fs";
import {
  hugeBytes,
  parseMaps,
  parseSmaps,
  type SmapsVma,
} from "../../src/sys/maps.ts";

const PAGE = 4096;
const TWO_MIB = 2 * 1024 * 1024;
const PT_LOAD = 1;
const PT_PHDR = 6;
const PT_GNU_RELRO = 0x6474e552;
const PF_X = 1;
const PF_W = 2;
const PF_R = 4;
const AT_PHDR = 3;

/** One program header of the executable, as the file holds it. */
export interface Phdr {
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
}

/** An address range `[start, end)` in the child. */
export interface Range {
  start: number;
  end: number;
}

/** The executable of a child, placed in its address space. */
export interface Layout {
  exe: string;
  inode: number;
  bias: number;
  /** Page-aligned ranges of the PF_X LOAD segments. */
  text: Range[];
  /** Page-aligned ranges of the read-only (PF_R only) LOAD segments. */
  rodata: Range[];
  /** The PT_GNU_RELRO range (start page-aligned down, end down, as ld.so seals it). */
  relro?: Range;
  /** Every readable LOAD range, page-aligned. */
  loads: Range[];
}

/** The program headers of an ELF64 little-endian file. */
export function readPhdrs(path: string): Phdr[] {
  const fd = openSync(path, "r");
  try {
    const eh = Buffer.alloc(64);
    readSync(fd, eh, 0, 64, 0);
    if (eh.readUInt32BE(0) !== 0x7f454c46 || eh[4] !== 2 || eh[5] !== 1) {
      throw new Error(`${path} is not a 64-bit little-endian ELF file`);
    }
    const phoff = Number(eh.readBigUInt64LE(0x20));
    const size = eh.readUInt16LE(0x36);
    const count = eh.readUInt16LE(0x38);
    const ph = Buffer.alloc(size * count);
    readSync(fd, ph, 0, ph.length, phoff);
    const out: Phdr[] = [];
    for (let i = 0; i < count; i++) {
      const at = i * size;
      out.push({
        type: ph.readUInt32LE(at),
        flags: ph.readUInt32LE(at + 4),
        offset: Number(ph.readBigUInt64LE(at + 8)),
        vaddr: Number(ph.readBigUInt64LE(at + 16)),
        filesz: Number(ph.readBigUInt64LE(at + 32)),
        memsz: Number(ph.readBigUInt64LE(at + 40)),
      });
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

function auxv(pid: number, key: number): number | undefined {
  const b = readFileSync(`/proc/${pid}/auxv`);
  for (let at = 0; at + 16 <= b.length; at += 16) {
    if (Number(b.readBigUInt64LE(at)) === key) {
      return Number(b.readBigUInt64LE(at + 8));
    }
  }
  return undefined;
}

const down = (a: number, to = PAGE) => Math.floor(a / to) * to;
const up = (a: number, to = PAGE) => Math.ceil(a / to) * to;

/** Where the child's executable lies, from its file and its auxv. */
export function layoutOf(pid: number, exe: string): Layout {
  const phdrs = readPhdrs(exe);
  const loads = phdrs.filter((p) => p.type === PT_LOAD && p.memsz > 0);
  const atPhdr = auxv(pid, AT_PHDR);
  if (atPhdr === undefined) throw new Error(`no AT_PHDR in /proc/${pid}/auxv`);
  const phdrSeg = phdrs.find((p) => p.type === PT_PHDR);
  const first = loads[0];
  // AT_PHDR is where the program headers are in memory; their unrelocated
  // address comes from PT_PHDR, or from the LOAD that holds e_phoff.
  const phoffVaddr = phdrSeg?.vaddr ??
    first.vaddr + (readPhoff(exe) - first.offset);
  const bias = atPhdr - phoffVaddr;
  const range = (p: Phdr) => ({
    start: down(bias + p.vaddr),
    end: up(bias + p.vaddr + p.memsz),
  });
  const relro = phdrs.find((p) => p.type === PT_GNU_RELRO && p.memsz > 0);
  return {
    exe,
    inode: statSync(exe).ino,
    bias,
    text: loads.filter((p) => p.flags & PF_X).map(range),
    rodata: loads.filter((p) => !(p.flags & (PF_X | PF_W))).map(range),
    relro: relro && {
      start: down(bias + relro.vaddr),
      end: down(bias + relro.vaddr + relro.memsz),
    },
    loads: loads.filter((p) => p.flags & PF_R).map(range),
  };
}

function readPhoff(exe: string): number {
  const fd = openSync(exe, "r");
  try {
    const b = Buffer.alloc(8);
    readSync(fd, b, 0, 8, 0x20);
    return Number(b.readBigUInt64LE(0));
  } finally {
    closeSync(fd);
  }
}

/** True when a whole 2 MiB-aligned page fits inside the RELRO range. */
export function relroHolds2M(layout: Layout): boolean {
  const r = layout.relro;
  return r !== undefined && up(r.start, TWO_MIB) + TWO_MIB <= r.end;
}

/** The child's VMAs with their smaps figures. */
export function smapsOf(pid: number): SmapsVma[] {
  return parseSmaps(readFileSync(`/proc/${pid}/smaps`, "utf8"));
}

/**
 * The ranges to watch: every part of a readable LOAD range that is mapped
 * readable and not writable now (text, read-only data, and RELRO once ld.so
 * sealed it). Read before the child primes anything.
 */
export function primedRanges(pid: number, layout: Layout): Range[] {
  const vmas = parseMaps(readFileSync(`/proc/${pid}/maps`, "utf8"));
  const out: Range[] = [];
  for (const v of vmas) {
    if (!v.read || v.write) continue;
    for (const l of layout.loads) {
      const start = Math.max(v.start, l.start);
      const end = Math.min(v.end, l.end);
      if (start >= end) continue;
      const prev = out[out.length - 1];
      if (prev && prev.end === start) prev.end = end;
      else out.push({ start, end });
    }
  }
  return out;
}

/** Bytes of the ranges, read through /proc/<pid>/mem. */
export function readRanges(pid: number, ranges: readonly Range[]): Buffer[] {
  const fd = openSync(`/proc/${pid}/mem`, "r");
  try {
    return ranges.map((r) => {
      const b = Buffer.alloc(r.end - r.start);
      readAll(fd, b, r.start);
      return b;
    });
  } finally {
    closeSync(fd);
  }
}

function readAll(fd: number, b: Buffer, at: number): void {
  let done = 0;
  while (done < b.length) {
    const n = readSync(fd, b, done, b.length - done, at + done);
    if (n <= 0) {
      throw new Error(`/proc/mem read at 0x${(at + done).toString(16)} ended`);
    }
    done += n;
  }
}

/** How the ranges now compare with `before`. */
export interface Comparison {
  bytes: number;
  differing: number;
  /** Ranges that could not be read at all (bytes counted as differing). */
  unreadable: number;
  /** First differing address, hex, when any. */
  first?: string;
}

/** Compares the child's bytes now with `before`, 1 MiB at a time. */
export function compareRanges(
  pid: number,
  ranges: readonly Range[],
  before: readonly Buffer[],
): Comparison {
  const out: Comparison = { bytes: 0, differing: 0, unreadable: 0 };
  const fd = openSync(`/proc/${pid}/mem`, "r");
  const chunk = Buffer.alloc(1 << 20);
  try {
    ranges.forEach((r, i) => {
      for (let at = r.start; at < r.end; at += chunk.length) {
        const n = Math.min(chunk.length, r.end - at);
        const was = before[i].subarray(at - r.start, at - r.start + n);
        const now = chunk.subarray(0, n);
        out.bytes += n;
        try {
          readAll(fd, now, at);
        } catch {
          out.unreadable++;
          out.differing += n;
          out.first ??= at.toString(16);
          continue;
        }
        if (now.equals(was)) continue;
        for (let k = 0; k < n; k++) {
          if (now[k] !== was[k]) {
            out.differing++;
            out.first ??= (at + k).toString(16);
          }
        }
      }
    });
  } finally {
    closeSync(fd);
  }
  return out;
}

/**
 * Bounds of a per-VMA quantity over ranges: a VMA inside a range counts in
 * full; one that straddles its edge counts between what cannot lie outside
 * the overlap and the overlap itself (smaps gives totals per VMA only).
 */
export function boundsIn(
  vmas: readonly SmapsVma[],
  ranges: readonly Range[],
  pick: (v: SmapsVma) => number,
): { low: number; high: number } {
  let low = 0;
  let high = 0;
  for (const r of ranges) {
    for (const v of vmas) {
      const overlap = Math.min(v.end, r.end) - Math.max(v.start, r.start);
      if (overlap <= 0) continue;
      const q = pick(v);
      const outside = v.end - v.start - overlap;
      low += Math.max(0, q - outside);
      high += Math.min(q, overlap);
    }
  }
  return { low, high };
}

/** Bytes of the ranges on 2 MiB pages, as bounds from smaps. */
export function hugeIn(
  vmas: readonly SmapsVma[],
  ranges: readonly Range[],
): { low: number; high: number } {
  return boundsIn(vmas, ranges, hugeBytes);
}

/** True for a hugetlb VMA (its pages are never evicted, and never flagged `lo`). */
function isHugetlb(v: SmapsVma): boolean {
  return v.kernelPageSize >= TWO_MIB || v.privateHugetlb + v.sharedHugetlb > 0;
}

/**
 * Bytes of the ranges that cannot be evicted: `Rss` of VMAs flagged `lo`
 * (VM_LOCKED) plus hugetlb pages (smaps leaves those out of `Rss`), and how
 * many VMAs in the ranges are neither locked nor hugetlb.
 */
export function lockedIn(
  vmas: readonly SmapsVma[],
  ranges: readonly Range[],
): { low: number; high: number; unlocked: number } {
  const b = boundsIn(
    vmas,
    ranges,
    (v) =>
      (v.vmFlags.includes("lo") ? v.rss : 0) + v.privateHugetlb +
      v.sharedHugetlb,
  );
  let unlocked = 0;
  for (const r of ranges) {
    for (const v of vmas) {
      if (
        v.start < r.end && v.end > r.start && !v.vmFlags.includes("lo") &&
        !isHugetlb(v)
      ) {
        unlocked++;
      }
    }
  }
  return { ...b, unlocked };
}

/**
 * Flips one byte of the child through /proc/<pid>/mem (which writes through
 * read-only mappings): the control that shows the byte check sees a change.
 * Returns the byte it replaced; write it back with {@linkcode writeByte}.
 */
export function flipByte(pid: number, at: number): number {
  const [was] = readRanges(pid, [{ start: at, end: at + 1 }])[0];
  writeByte(pid, at, was ^ 0xff);
  return was;
}

/** Writes one byte of the child through /proc/<pid>/mem. */
export function writeByte(pid: number, at: number, value: number): void {
  const fd = openSync(`/proc/${pid}/mem`, "r+");
  try {
    if (writeSync(fd, Buffer.from([value]), 0, 1, at) !== 1) {
      throw new Error(
        `could not write /proc/${pid}/mem at 0x${at.toString(16)}`,
      );
    }
  } finally {
    closeSync(fd);
  }
}

/** True when some part of `r` is no longer mapped from the executable's file. */
export function movedOffFile(
  vmas: readonly SmapsVma[],
  r: Range,
  layout: Layout,
): boolean {
  return vmas.some((v) =>
    v.start < r.end && v.end > r.start &&
    (v.inode !== layout.inode || v.path !== layout.exe)
  );
}

/** `THP_enabled` from /proc/<pid>/status: false under PR_SET_THP_DISABLE. */
export function thpEnabled(pid: number): boolean | undefined {
  const m = /^THP_enabled:\s*(\d)/m.exec(
    readFileSync(`/proc/${pid}/status`, "utf8"),
  );
  return m ? m[1] === "1" : undefined;
}

/** Sum of range lengths. */
export function lengthOf(ranges: readonly Range[]): number {
  return ranges.reduce((n, r) => n + r.end - r.start, 0);
}
