/**
 * What any process's ELF objects look like in memory: per object (the main
 * executable and each shared library mapped from a file) and per LOAD
 * segment, the bytes resident, locked and on 2 MiB pages, by backing
 * (AnonHugePages, ShmemPmdMapped, FilePmdMapped, hugetlb), and whether
 * page-primer's copy sits there.
 *
 * VMAs are attributed to an object by address range, not by name: after a
 * remap a segment is an anonymous VMA (or a memfd), and Node's
 * `--use-largepages=on` leaves its text as an anonymous VMA inside the
 * executable's range. The ranges come from each object's program headers
 * (read from its file) and its load bias (from `/proc/<pid>/auxv` for the
 * main executable, else from the file-backed VMAs that remain).
 *
 * The grouping and formatting are pure ({@linkcode inspectLayout},
 * {@linkcode formatInspect}); {@linkcode inspectProcess} reads `/proc`.
 *
 * @module
 */

import {
  parseElfHeader,
  type ProgramHeader,
  PT_PHDR,
  readProgramHeaders,
} from "../sys/elf.ts";
import {
  basename,
  formatBytes,
  formatMiB,
  formatPercent,
  formatTable,
} from "../sys/format.ts";
import {
  fdSource,
  type Libc,
  S_IFMT,
  S_IFREG,
  SyscallError,
} from "../sys/libc.ts";
import { HUGE_PAGE } from "../sys/hugetlb.ts";
import { parseSmaps, type SmapsVma, sumIn } from "../sys/maps.ts";
import { NAME_PREFIX } from "../remap/plan.ts";
import { devString } from "../remap/record.ts";
import {
  aliasRanges,
  type LoadedObject,
  type LoadSegment,
  loadSegments,
  lockedBytes,
  residentBytes,
  type SegmentKind,
  segmentRanges,
} from "../sys/segments.ts";
import { copyPrefix } from "../remap/share.ts";

/** A process could not be inspected; the message says why and what to do. */
export class InspectError extends Error {
  /**
   * Makes the error.
   *
   * @param message What failed and what to do.
   * @param options Standard error options (`cause`).
   *
   * @example
   * ```ts
   * import { InspectError } from "./inspect.ts";
   * import assert from "node:assert/strict";
   * assert.equal(new InspectError("no process 1234").name, "InspectError");
   * ```
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InspectError";
  }
}

/** Byte counts of a segment, an object or the whole process. */
export interface InspectTotals {
  /** Bytes of the range(s) (page-aligned LOAD segments). */
  bytes: number;
  /** Of those, bytes mapped at all. */
  mapped: number;
  /** Resident: `Rss` plus hugetlb pages, which `Rss` leaves out. */
  resident: number;
  /** Not evictable: resident in VMAs flagged `lo` (VM_LOCKED), plus hugetlb pages (never flagged `lo`, never evicted). */
  locked: number;
  /** On 2 MiB-or-larger pages: the sum of the four backings below. */
  huge: number;
  /** `AnonHugePages`: anonymous transparent huge pages. */
  anonHuge: number;
  /** `ShmemPmdMapped`: shmem (memfd, tmpfs) transparent huge pages. */
  shmemHuge: number;
  /** `FilePmdMapped`: page-cache huge pages of a file. */
  fileHuge: number;
  /** `Private_Hugetlb + Shared_Hugetlb` of VMAs with 2 MiB-or-larger pages. */
  hugetlb: number;
}

/** One LOAD segment (or a further mapping of the object's file) in memory. */
export interface InspectSegment extends InspectTotals {
  /** LOAD index; aliases are numbered after the LOAD segments. */
  index: number;
  /** `"load"`: a PT_LOAD segment; `"alias"`: another mapping of the file (V8's embedded builtins in Deno). */
  origin: "load" | "alias";
  /** `"text"`, `"rodata"` or `"data"`. */
  kind: SegmentKind;
  /** Protection from the program header, e.g. `"r-x"`. */
  perms: string;
  /** Page-aligned start address. */
  start: number;
  /** Page-aligned end address. */
  end: number;
  /**
   * What the VMAs of the range are, in address order, without repeats:
   * `"file"` (the object's file), `"anon"`, `"memfd"`, `"shmem"` (a file
   * on tmpfs), `"hugetlb"`, or another mapping's path.
   */
  backing: string[];
  /**
   * page-primer's copy in the range: its name in maps
   * (`page-primer:<path>`, `/memfd:<path> (deleted)`, a shared copy's
   * path), or `"page-primer (unnamed)"` for an anonymous copy the kernel
   * could not name (no `CONFIG_ANON_VMA_NAME`) in a process that has
   * page-primer's trampoline loaded.
   */
  primer?: string;
  /** Number of VMAs overlapping the range. */
  vmas: number;
}

/** One ELF object of the process. */
export interface InspectObject {
  /** Path as the kernel shows it in maps. */
  path: string;
  /** True for the main executable. */
  main: boolean;
  /** Load bias (address minus `p_vaddr`). */
  bias: number;
  /** How the bias was found. */
  biasFrom: "auxv" | "maps";
  /** Its segments. */
  segments: InspectSegment[];
  /** Sums over its LOAD segments (aliases not included). */
  totals: InspectTotals;
}

/** The inspection of one process. */
export interface InspectReport {
  /** Process id. */
  pid: number;
  /** `/proc/<pid>/exe`, when readable. */
  exe?: string;
  /** Whether page-primer's trampoline is mapped in the process. */
  primerLoaded: boolean;
  /** The ELF objects, main executable first, then by address. */
  objects: InspectObject[];
  /** Sums over every object's LOAD segments. */
  totals: InspectTotals;
  /** Sums over every VMA of the process. */
  process: InspectTotals;
  /** Mapped files that look like objects but could not be read. */
  unreadable: { path: string; reason: string }[];
}

/** An ELF object as {@linkcode inspectLayout} needs it. */
export interface ObjectLayout extends LoadedObject {
  /** How the bias was found. */
  biasFrom: "auxv" | "maps";
}

const zero = (): InspectTotals => ({
  bytes: 0,
  mapped: 0,
  resident: 0,
  locked: 0,
  huge: 0,
  anonHuge: 0,
  shmemHuge: 0,
  fileHuge: 0,
  hugetlb: 0,
});

function add(into: InspectTotals, t: InspectTotals): void {
  for (const k of Object.keys(into) as (keyof InspectTotals)[]) {
    into[k] += t[k];
  }
}

const hugetlbOf = (v: SmapsVma) =>
  v.kernelPageSize >= HUGE_PAGE ? v.privateHugetlb + v.sharedHugetlb : 0;

function measure(
  smaps: readonly SmapsVma[],
  start: number,
  end: number,
): InspectTotals {
  const s = (pick: (v: SmapsVma) => number) =>
    Math.round(sumIn(smaps, start, end, pick));
  const t: InspectTotals = {
    bytes: end - start,
    mapped: s((v) => v.size),
    resident: s(residentBytes),
    locked: s(lockedBytes),
    huge: 0,
    anonHuge: s((v) => v.anonHugePages),
    shmemHuge: s((v) => v.shmemPmdMapped),
    fileHuge: s((v) => v.filePmdMapped),
    hugetlb: s(hugetlbOf),
  };
  t.huge = t.anonHuge + t.shmemHuge + t.fileHuge + t.hugetlb;
  return t;
}

/**
 * Parses `/proc/<pid>/auxv` (pairs of little-endian 64-bit words) into a
 * map from `AT_*` key to value.
 *
 * @example
 * ```ts
 * import { parseAuxv } from "./inspect.ts";
 * import assert from "node:assert/strict";
 * const b = new Uint8Array(32);
 * new DataView(b.buffer).setBigUint64(0, 3n, true); // AT_PHDR
 * new DataView(b.buffer).setBigUint64(8, 0x400040n, true);
 * assert.equal(parseAuxv(b).get(3)?.toString(16), "400040");
 * ```
 */
export function parseAuxv(bytes: Uint8Array): Map<number, number> {
  const out = new Map<number, number>();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at + 16 <= bytes.length; at += 16) {
    const key = Number(view.getBigUint64(at, true));
    if (key === 0) break; // AT_NULL
    out.set(key, Number(view.getBigUint64(at + 8, true)));
  }
  return out;
}

/**
 * The main executable's load bias from its auxiliary vector: `AT_PHDR`
 * minus the `PT_PHDR` header's `p_vaddr`; `undefined` when either is
 * missing.
 *
 * @example
 * ```ts
 * import { biasFromAuxv } from "./inspect.ts";
 * import assert from "node:assert/strict";
 * const phdr = { type: 6, flags: 4, offset: 64, vaddr: 64, paddr: 64, filesz: 0, memsz: 0, align: 8 };
 * assert.equal(biasFromAuxv(new Map([[3, 0x5000040]]), [phdr])?.toString(16), "5000000");
 * ```
 */
export function biasFromAuxv(
  auxv: ReadonlyMap<number, number>,
  phdrs: readonly ProgramHeader[],
): number | undefined {
  const at = auxv.get(3); // AT_PHDR
  const self = phdrs.find((p) => p.type === PT_PHDR);
  if (at === undefined || at === 0 || self === undefined) return undefined;
  return at - self.vaddr;
}

/** True for a VMA that is page-primer's (named) copy of `path`. */
function primerName(v: SmapsVma, path: string): string | undefined {
  if (v.path === `[anon:${NAME_PREFIX}${path}]`) return v.path.slice(6, -1);
  if (v.path === `/memfd:${path} (deleted)` || v.path === `/memfd:${path}`) {
    return v.path;
  }
  const name = basename(v.path);
  if (v.path.includes("/page-primer") && name.startsWith(copyPrefix(path))) {
    return v.path;
  }
  return undefined;
}

/**
 * The load bias of a shared object from the VMAs of its file that remain:
 * each VMA maps file offset `offset` at `start`, so it implies a bias; the
 * bias under which the most VMAs of the file (and of page-primer's named
 * copies of it) sit where the program headers put them wins, ties going to
 * the lowest address. A second mapping of the file elsewhere (V8 maps
 * Deno's embedded builtins again) implies another bias but loses the vote.
 *
 * @example
 * ```ts
 * import { biasFromVmas } from "./inspect.ts";
 * import { parseSmaps } from "../sys/maps.ts";
 * import assert from "node:assert/strict";
 * const vmas = parseSmaps("7f0000001000-7f0000003000 r-xp 00001000 08:01 7 /lib/x.so\n");
 * const seg = { index: 0, flags: 5, vaddr: 0x1000, memsz: 0x2000, filesz: 0x2000, offset: 0x1000 };
 * const bias = biasFromVmas({ path: "/lib/x.so", segments: [seg] }, vmas, 4096);
 * assert.equal(bias?.toString(16), "7f0000000000");
 * ```
 */
export function biasFromVmas(
  { path, segments }: { path: string; segments: readonly LoadSegment[] },
  vmas: readonly SmapsVma[],
  pageSize: number,
): number | undefined {
  const pageDown = (n: number) => Math.floor(n / pageSize) * pageSize;
  const own = vmas.filter((v) => v.path === path);
  const copies = vmas.filter((v) => primerName(v, path) !== undefined);
  const segOf = (offset: number) =>
    segments.find((s) =>
      s.filesz > 0 && pageDown(s.offset) <= offset &&
      offset < s.offset + s.filesz
    );
  const implied = (v: SmapsVma): number | undefined => {
    const s = segOf(v.offset);
    return s === undefined ? undefined : v.start - s.vaddr -
      (v.offset - s.offset);
  };
  const overlaps = (b: number, v: SmapsVma) =>
    segments.some((s) =>
      v.start < b + s.vaddr + s.memsz && b + pageDown(s.vaddr) < v.end
    );
  let best: number | undefined;
  let bestScore = -1;
  for (const v of own) {
    const b = implied(v);
    if (b === undefined || b === best) continue;
    const score = own.filter((w) => implied(w) === b).length +
      copies.filter((w) => overlaps(b, w)).length;
    if (score > bestScore) {
      best = b;
      bestScore = score;
    }
  }
  return best;
}

/**
 * What a VMA in an object's range is, and whether it is page-primer's copy.
 *
 * @example
 * ```ts
 * import { vmaBacking } from "./inspect.ts";
 * import { parseSmaps } from "../sys/maps.ts";
 * import assert from "node:assert/strict";
 * const [v] = parseSmaps("1000-2000 r-xp 00000000 00:01 9 /memfd:/usr/bin/deno (deleted)\n");
 * assert.deepEqual(vmaBacking(v, "/usr/bin/deno", true), { backing: "memfd", primer: "/memfd:/usr/bin/deno (deleted)" });
 * ```
 *
 * @param v The VMA.
 * @param path The object's path.
 * @param primerLoaded Whether page-primer's trampoline is mapped in the process.
 */
export function vmaBacking(
  v: SmapsVma,
  path: string,
  primerLoaded: boolean,
): { backing: string; primer?: string } {
  if (v.path === path) return { backing: "file" };
  const named = primerName(v, path);
  if (named !== undefined) {
    return {
      backing: named.startsWith("/memfd:")
        ? "memfd"
        : named.startsWith(NAME_PREFIX)
        ? "anon"
        : "shmem",
      primer: named,
    };
  }
  const hugetlb = v.path === "/anon_hugepage (deleted)" ||
    v.path === "/anon_hugepage" || hugetlbOf(v) > 0;
  const backing = hugetlb ? "hugetlb" : v.path === "" ? "anon" : v.path;
  // An unnamed private copy of code or read-only data, in a process that
  // has page-primer's trampoline loaded, is page-primer's (writable
  // segments are never copied; bss is writable anonymous memory).
  if (primerLoaded && (v.path === "" || hugetlb) && !v.write) {
    return { backing, primer: "page-primer (unnamed)" };
  }
  return { backing };
}

/**
 * Whether a process has page-primer's trampoline mapped (its memfd, or a
 * local build named `primer.so`).
 *
 * @example
 * ```ts
 * import { hasTrampoline } from "./inspect.ts";
 * import assert from "node:assert/strict";
 * assert.equal(hasTrampoline([]), false);
 * ```
 */
export function hasTrampoline(vmas: readonly { path: string }[]): boolean {
  return vmas.some((v) =>
    v.path.includes("page-primer-trampoline") || v.path.endsWith("/primer.so")
  );
}

/**
 * Groups a process's smaps by ELF object and segment. Pure.
 *
 * @example
 * ```ts
 * import { inspectLayout } from "./inspect.ts";
 * import assert from "node:assert/strict";
 * const r = inspectLayout({ pid: 1, objects: [], smaps: [], pageSize: 4096 });
 * assert.deepEqual([r.objects.length, r.totals.bytes], [0, 0]);
 * ```
 */
export function inspectLayout(input: {
  /** Process id. */
  pid: number;
  /** `/proc/<pid>/exe`. */
  exe?: string;
  /** The objects with their program headers and biases. */
  objects: readonly ObjectLayout[];
  /** The process's smaps. */
  smaps: readonly SmapsVma[];
  /** Page size. */
  pageSize: number;
  /** Files that could not be read. */
  unreadable?: { path: string; reason: string }[];
}): InspectReport {
  const { smaps, pageSize } = input;
  const primerLoaded = hasTrampoline(smaps);
  const objects: InspectObject[] = [];
  const totals = zero();
  for (const o of input.objects) {
    const loads = segmentRanges(o, pageSize);
    const aliases = aliasRanges(o, loads, smaps);
    const segments: InspectSegment[] = [...loads, ...aliases].map((r) => {
      const inRange = smaps.filter((v) => v.start < r.end && r.start < v.end);
      const backing: string[] = [];
      let primer: string | undefined;
      for (const v of inRange) {
        const b = vmaBacking(v, o.path, primerLoaded);
        if (!backing.includes(b.backing)) backing.push(b.backing);
        primer ??= b.primer;
      }
      const m = measure(smaps, r.start, r.end);
      if (m.mapped < m.bytes) backing.push("unmapped");
      return {
        index: r.index,
        origin: r.origin,
        kind: r.kind,
        perms: r.perms,
        start: r.start,
        end: r.end,
        ...m,
        backing,
        ...(primer !== undefined ? { primer } : {}),
        vmas: inRange.length,
      };
    });
    const t = zero();
    for (const s of segments) if (s.origin === "load") add(t, s);
    add(totals, t);
    objects.push({
      path: o.path,
      main: o.main,
      bias: o.bias,
      biasFrom: o.biasFrom,
      segments,
      totals: t,
    });
  }
  const whole = zero();
  for (const v of smaps) add(whole, measure([v], v.start, v.end));
  return {
    pid: input.pid,
    ...(input.exe !== undefined ? { exe: input.exe } : {}),
    primerLoaded,
    objects,
    totals,
    process: whole,
    unreadable: input.unreadable ?? [],
  };
}

function via(t: InspectTotals): string {
  const parts: string[] = [];
  if (t.anonHuge) parts.push("AnonHugePages");
  if (t.shmemHuge) parts.push("ShmemPmdMapped");
  if (t.fileHuge) parts.push("FilePmdMapped");
  if (t.hugetlb) parts.push("hugetlb");
  return parts.join("+");
}

function shortPrimer(name: string, path: string): string {
  return name.replace(path, basename(path));
}

/**
 * Options of {@linkcode formatInspect}.
 */
export interface FormatInspectOptions {
  /** List every object (default); `false`: only those with a segment on 2 MiB pages, locked, or remapped, plus the main executable. */
  all?: boolean;
}

/**
 * Renders an inspection as a plain-text table (sizes in MiB).
 *
 * @example
 * ```ts
 * import { formatInspect, inspectLayout } from "./inspect.ts";
 * import assert from "node:assert/strict";
 * const text = formatInspect(
 *   inspectLayout({ pid: 1, objects: [], smaps: [], pageSize: 4096 }),
 * );
 * assert.match(text, /^pid 1: 0 ELF object\(s\)\nobject +seg +perm +kind +start +MiB/);
 * ```
 */
export function formatInspect(
  report: InspectReport,
  options: FormatInspectOptions = {},
): string {
  const shown = report.objects.filter((o) =>
    options.all !== false || o.main || o.totals.huge > 0 ||
    o.totals.locked > 0 || o.segments.some((s) => s.primer !== undefined)
  );
  const rows = tableRows(report, shown);
  const table = formatTable(
    INSPECT_COLUMNS.map((c) => c.header),
    rows.map((r) => INSPECT_COLUMNS.map((c) => c.cell(r))),
    INSPECT_COLUMNS.map((c) => c.align),
  );
  const lines = [
    `pid ${report.pid}${
      report.exe ? ` (${report.exe})` : ""
    }: ${report.objects.length} ELF object(s)${
      shown.length < report.objects.length
        ? `, ${
          report.objects.length - shown.length
        } without huge, locked or remapped pages not shown (--all)`
        : ""
    }`,
    table,
  ];
  if (
    report.objects.some((o) => o.segments.some((s) => s.origin === "alias"))
  ) {
    lines.push(
      "  * a further mapping of the object's file made by the runtime (V8's embedded builtins), not a LOAD segment",
    );
  }
  const main = report.objects.find((o) => o.main);
  if (main) lines.push(...mainCoverageLines(main));
  lines.push(...processLines(report));
  return lines.join("\n");
}

/** One row of the inspect table: a segment, an object's total, or the total. */
interface InspectRow {
  object: string;
  seg: string;
  perm: string;
  kind: string;
  start: string;
  totals: InspectTotals;
  mapping: string;
}

/** A column of the inspect table: its header, alignment and cell. */
interface InspectColumn {
  header: string;
  align: "left" | "right";
  cell: (row: InspectRow) => string;
}

/** The columns of {@linkcode formatInspect}'s table, in order. */
const INSPECT_COLUMNS: readonly InspectColumn[] = [
  { header: "object", align: "left", cell: (r) => r.object },
  { header: "seg", align: "right", cell: (r) => r.seg },
  { header: "perm", align: "left", cell: (r) => r.perm },
  { header: "kind", align: "left", cell: (r) => r.kind },
  { header: "start", align: "right", cell: (r) => r.start },
  { header: "MiB", align: "right", cell: (r) => formatMiB(r.totals.bytes) },
  { header: "rss", align: "right", cell: (r) => formatMiB(r.totals.resident) },
  { header: "locked", align: "right", cell: (r) => formatMiB(r.totals.locked) },
  { header: "huge", align: "right", cell: (r) => formatMiB(r.totals.huge) },
  { header: "via", align: "left", cell: (r) => via(r.totals) },
  { header: "mapping", align: "left", cell: (r) => r.mapping },
];

/** The rows of the shown objects' segments, their totals, and the total. */
function tableRows(
  report: InspectReport,
  shown: readonly InspectObject[],
): InspectRow[] {
  const rows: InspectRow[] = [];
  const sum = (object: string, totals: InspectTotals): InspectRow => ({
    object,
    seg: "",
    perm: "",
    kind: "",
    start: "",
    totals,
    mapping: "",
  });
  for (const o of shown) {
    const name = basename(o.path);
    for (const s of o.segments) {
      rows.push({
        object: name,
        seg: `${s.index}${s.origin === "alias" ? "*" : ""}`,
        perm: s.perms,
        kind: s.kind,
        start: `0x${s.start.toString(16)}`,
        totals: s,
        mapping: s.primer !== undefined
          ? shortPrimer(s.primer, o.path) +
            (s.backing.includes("file") ? "+file" : "")
          : s.backing.join("+"),
      });
    }
    if (o.segments.length > 1) rows.push(sum(`${name} total`, o.totals));
  }
  rows.push(sum(`total (${report.objects.length} objects)`, report.totals));
  return rows;
}

/** How much of the main executable's text and rodata is on 2 MiB pages. */
function mainCoverageLines(main: InspectObject): string[] {
  const lines: string[] = [];
  for (const kind of ["text", "rodata"] as const) {
    const segs = main.segments.filter((s) =>
      s.kind === kind && s.origin === "load"
    );
    const bytes = segs.reduce((n, s) => n + s.bytes, 0);
    const huge = segs.reduce((n, s) => n + Math.min(s.bytes, s.huge), 0);
    if (bytes > 0) {
      lines.push(
        `  ${basename(main.path)} ${kind} on 2 MiB pages: ${
          formatBytes(huge)
        } of ${formatBytes(bytes)} (${formatPercent(huge, bytes)})`,
      );
    }
  }
  return lines;
}

/** The whole process's figures, the trampoline, and what was not inspected. */
function processLines(report: InspectReport): string[] {
  const p = report.process;
  const lines = [
    `  whole process: ${formatBytes(p.resident)} resident, ${
      formatBytes(p.locked)
    } locked, ${formatBytes(p.huge)} on 2 MiB pages (AnonHugePages ${
      formatBytes(p.anonHuge)
    }, ShmemPmdMapped ${formatBytes(p.shmemHuge)}, FilePmdMapped ${
      formatBytes(p.fileHuge)
    }, hugetlb ${formatBytes(p.hugetlb)})`,
  ];
  if (report.primerLoaded) {
    lines.push("  page-primer's trampoline is loaded in this process");
  }
  for (const u of report.unreadable) {
    lines.push(`  not inspected: ${u.path}: ${u.reason}`);
  }
  return lines;
}

/** Options of {@linkcode inspectProcess}. */
export interface InspectOptions {
  /** Called before each slow step (for a progress line). */
  onProgress?: (message: string) => void;
  /**
   * Program headers already read, by `dev:inode` (for `--watch`, so files
   * are read once).
   */
  cache?: Map<string, ProgramHeader[] | string>;
}

/** Paths that are never opened: devices and pseudo-files. */
function skipPath(path: string): boolean {
  return !path.startsWith("/") || path.startsWith("/memfd:") ||
    path.startsWith("/dev/") || path.startsWith("/proc/") ||
    path.startsWith("/sys/") || path.startsWith("/anon_hugepage") ||
    path.startsWith("/SYSV");
}

function accessHint(pid: number): string {
  return `reading another process's memory map needs the same user id as process ${pid} (and ptrace access, see /proc/sys/kernel/yama/ptrace_scope) or root`;
}

/**
 * Reads `/proc/<pid>/smaps`, or throws an {@linkcode InspectError} that
 * says why it cannot be read.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { readProcessSmaps } from "./inspect.ts";
 * console.log(readProcessSmaps(libc(), 1).length);
 * ```
 */
export function readProcessSmaps(c: Libc, pid: number): SmapsVma[] {
  const file = `/proc/${pid}/smaps`;
  let text: string;
  try {
    text = c.readText(file);
  } catch (e) {
    if (
      e instanceof SyscallError && (e.code === "ENOENT" || e.code === "ESRCH")
    ) {
      throw new InspectError(
        `no process with pid ${pid} (${file} does not exist): check the pid, e.g. with \`pgrep -a deno\``,
        { cause: e },
      );
    }
    if (
      e instanceof SyscallError && (e.code === "EACCES" || e.code === "EPERM")
    ) {
      throw new InspectError(
        `cannot read ${file} (${e.code}): ${
          accessHint(pid)
        }; run as that user or with sudo`,
        { cause: e },
      );
    }
    throw new InspectError(
      `cannot read ${file}: ${e instanceof Error ? e.message : e}`,
      { cause: e },
    );
  }
  if (text.length === 0) {
    throw new InspectError(
      `${file} is empty: process ${pid} is a kernel thread or a zombie (it has no memory map)`,
    );
  }
  return parseSmaps(text);
}

function readPhdrs(
  c: Libc,
  pid: number,
  v: SmapsVma,
): ProgramHeader[] | string {
  const path = v.path.endsWith(" (deleted)")
    ? v.path.slice(0, -" (deleted)".length)
    : v.path;
  const candidates = [
    ...(v.path === path ? [path] : []),
    `/proc/${pid}/root${path}`,
    `/proc/${pid}/map_files/${v.start.toString(16)}-${v.end.toString(16)}`,
  ];
  let lastError = "";
  for (const file of candidates) {
    let fd: number;
    try {
      fd = c.openRead(file);
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
      continue;
    }
    try {
      const st = c.fstat(fd);
      if ((st.mode & S_IFMT) !== S_IFREG) return "not a regular file";
      if (devString(st.dev) !== v.dev || st.ino !== v.inode) {
        lastError = `${file} is not the file mapped (device/inode ${
          devString(st.dev)
        }/${st.ino}, mapped ${v.dev}/${v.inode}): replaced since it was loaded`;
        continue;
      }
      const size = st.size;
      const head = c.pread(fd, 0, Math.min(4, size));
      if (
        head.length < 4 || head[0] !== 0x7f || head[1] !== 0x45 ||
        head[2] !== 0x4c || head[3] !== 0x46
      ) {
        return "not an ELF file";
      }
      const src = fdSource(c, fd, size);
      return readProgramHeaders(src, parseElfHeader(src));
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
    } finally {
      c.close(fd);
    }
  }
  return lastError;
}

/**
 * Inspects process `pid`: reads its smaps, auxv and the program headers of
 * every ELF file it maps, and groups the VMAs by object and segment.
 * Throws {@linkcode InspectError} when the process cannot be read.
 *
 * @example
 * ```ts ignore
 * import { libc } from "../sys/libc.ts";
 * import { formatInspect, inspectProcess } from "./inspect.ts";
 * const c = libc();
 * console.log(formatInspect(inspectProcess(c, c.getpid())));
 * ```
 */
export function inspectProcess(
  c: Libc,
  pid: number,
  options: InspectOptions = {},
): InspectReport {
  const progress = options.onProgress ?? (() => {});
  const cache = options.cache ?? new Map<string, ProgramHeader[] | string>();
  progress(`reading /proc/${pid}/smaps`);
  const smaps = readProcessSmaps(c, pid);
  let exe: string | undefined;
  try {
    exe = c.readlink(`/proc/${pid}/exe`);
  } catch {
    exe = undefined;
  }
  let auxv = new Map<number, number>();
  try {
    auxv = parseAuxv(c.readFile(`/proc/${pid}/auxv`));
  } catch {
    // Not readable: the main executable's bias comes from maps instead.
  }
  const pageSize = c.pageSize();
  const firsts = new Map<string, SmapsVma>();
  for (const v of smaps) {
    if (!skipPath(v.path) && v.inode !== 0 && !firsts.has(v.path)) {
      firsts.set(v.path, v);
    }
  }
  const objects: ObjectLayout[] = [];
  const unreadable: { path: string; reason: string }[] = [];
  let i = 0;
  for (const [path, v] of firsts) {
    progress(`reading program headers ${++i}/${firsts.size}: ${path}`);
    const key = `${v.dev}:${v.inode}`;
    let phdrs = cache.get(key);
    if (phdrs === undefined) {
      phdrs = readPhdrs(c, pid, v);
      cache.set(key, phdrs);
    }
    if (typeof phdrs === "string") {
      if (phdrs !== "not an ELF file" && phdrs !== "not a regular file") {
        unreadable.push({ path, reason: phdrs });
      }
      continue;
    }
    const segments = loadSegments(phdrs);
    if (segments.length === 0) continue;
    const main = path === exe;
    const fromAuxv = main ? biasFromAuxv(auxv, phdrs) : undefined;
    const bias = fromAuxv ??
      biasFromVmas({ path, segments }, smaps, pageSize);
    if (bias === undefined) {
      unreadable.push({
        path,
        reason: "its mappings do not match its program headers",
      });
      continue;
    }
    objects.push({
      path,
      main,
      bias,
      biasFrom: fromAuxv !== undefined ? "auxv" : "maps",
      segments,
    });
  }
  const at = (o: ObjectLayout) => o.bias + (o.segments[0]?.vaddr ?? 0);
  objects.sort((a, b) => Number(b.main) - Number(a.main) || at(a) - at(b));
  progress("");
  return inspectLayout({ pid, exe, objects, smaps, pageSize, unreadable });
}
