// Copyright 2025 the page-primer authors. MIT license.
/**
 * Pure parsers for the Linux `/proc/<pid>/maps` and `/proc/<pid>/smaps`
 * text formats (see `proc(5)` and the kernel's
 * `Documentation/filesystems/proc.rst`), plus small helpers to query the
 * result by address range.
 *
 * This module does no I/O: read the file yourself (e.g. with
 * `Deno.readTextFile("/proc/self/smaps")` or `Bun.file(...).text()`) and pass
 * the text in.
 *
 * ## Addresses above 2^53
 *
 * Addresses, offsets and inode numbers are plain JavaScript numbers. Values
 * with up to 13 hex digits (< 2^52) are parsed exactly digit by digit; longer
 * hex values are parsed with `BigInt` and converted with `Number`, which rounds
 * to the nearest double. VMA boundaries are page aligned (multiples of 4096),
 * and every multiple of 4096 below 2^64 has at most 52 significant bits, so
 * VMA `start`/`end` values, including the `[vsyscall]` page at
 * `ffffffffff600000`, are represented **exactly** and `end - start` is exact.
 * Nothing is flagged. Only arithmetic you do on such addresses (e.g.
 * `start + 1`) can round. Decimal inode numbers above 2^53 (possible on some
 * 64-bit file systems) are rounded to the nearest double.
 *
 * @example Usage
 * ```ts
 * import { parseSmaps, sumIn } from "@x/page-primer/maps";
 * import assert from "node:assert/strict";
 *
 * const text = [
 *   "00400000-00600000 r-xp 00000000 fe:00 42   /usr/bin/app",
 *   "Size:               2048 kB",
 *   "Rss:                1024 kB",
 *   "VmFlags: rd ex mr mw me",
 * ].join("\n");
 * const [vma] = parseSmaps(text);
 * assert.equal(vma!.path, "/usr/bin/app");
 * assert.equal(vma!.rss, 1024 * 1024);
 * assert.equal(sumIn([vma!], 0x400000, 0x500000, (v) => v.rss), 512 * 1024);
 * ```
 *
 * @module
 */

import { HUGE_PAGE } from "./hugetlb.ts";

/**
 * One virtual memory area: a line of `/proc/<pid>/maps`.
 *
 * @example Usage
 * ```ts
 * import { parseMaps, type Vma } from "@x/page-primer/maps";
 * import assert from "node:assert/strict";
 *
 * const [vma]: Vma[] = parseMaps(
 *   "7f3b00000000-7f3b00600000 r-xp 00001000 fe:01 98765  /opt/My App/lib.so",
 * );
 * assert.deepEqual(vma, {
 *   start: 0x7f3b00000000,
 *   end: 0x7f3b00600000,
 *   perms: "r-xp",
 *   read: true,
 *   write: false,
 *   exec: true,
 *   shared: false,
 *   offset: 0x1000,
 *   dev: "fe:01",
 *   inode: 98765,
 *   path: "/opt/My App/lib.so",
 * });
 * ```
 */
export interface Vma {
  /** First address of the area (inclusive). */
  start: number;
  /** First address after the area (exclusive). */
  end: number;
  /** The permission string as printed, e.g. `"r-xp"`. */
  perms: string;
  /** `perms[0] === "r"`. */
  read: boolean;
  /** `perms[1] === "w"`. */
  write: boolean;
  /** `perms[2] === "x"`. */
  exec: boolean;
  /** `perms[3] === "s"` (a shared mapping); `false` for private (`"p"`). */
  shared: boolean;
  /** Offset into the mapped file (or the `vm_pgoff`-derived value), bytes. */
  offset: number;
  /** Device as printed, `"major:minor"` in hex, e.g. `"fe:00"`. */
  dev: string;
  /** Inode number; `0` for anonymous mappings. */
  inode: number;
  /**
   * The path or pseudo-path as written by the kernel: `""` for anonymous
   * mappings; otherwise e.g. `"/usr/lib/libc.so.6"`, `"[heap]"`, `"[stack]"`,
   * `"[anon:name]"`, `"/memfd:name (deleted)"`. Spaces inside the path and a
   * trailing `" (deleted)"` are kept. (The kernel pads the column before the
   * path with spaces, so leading spaces of a file name cannot be recovered;
   * newlines in names are printed by the kernel as `\012`.)
   */
  path: string;
}

/**
 * One VMA of `/proc/<pid>/smaps`: the maps line plus its statistics, with all
 * sizes converted from kB to bytes.
 *
 * @example Usage
 * ```ts
 * import { parseSmaps, type SmapsVma } from "@x/page-primer/maps";
 * import assert from "node:assert/strict";
 *
 * const [vma]: SmapsVma[] = parseSmaps(
 *   "00400000-00452000 r-xp 00000000 08:01 1311   /usr/bin/app\n" +
 *     "Size:                328 kB\nRss:                 300 kB\n" +
 *     "Pss_Dirty:             0 kB\nProtectionKey:         0\n",
 * );
 * assert.equal(vma!.size, 328 * 1024);
 * assert.equal(vma!.rss, 300 * 1024);
 * assert.equal(vma!.swap, 0); // absent field
 * assert.equal(vma!.thpEligible, undefined); // absent field
 * assert.deepEqual(vma!.fields, { Size: 328 * 1024, Rss: 300 * 1024, Pss_Dirty: 0 });
 * assert.deepEqual(vma!.values, { ProtectionKey: 0 });
 * ```
 */
export interface SmapsVma extends Vma {
  /** `Size:` in bytes (equals `end - start`). */
  size: number;
  /** `Rss:` in bytes. */
  rss: number;
  /** `Pss:` in bytes. */
  pss: number;
  /** `Shared_Clean:` in bytes. */
  sharedClean: number;
  /** `Shared_Dirty:` in bytes. */
  sharedDirty: number;
  /** `Private_Clean:` in bytes. */
  privateClean: number;
  /** `Private_Dirty:` in bytes. */
  privateDirty: number;
  /** `Referenced:` in bytes. */
  referenced: number;
  /** `Anonymous:` in bytes. */
  anonymous: number;
  /** `Swap:` in bytes. */
  swap: number;
  /** `Locked:` in bytes. */
  locked: number;
  /** `AnonHugePages:` in bytes (PMD-mapped anonymous transparent huge pages). */
  anonHugePages: number;
  /** `ShmemPmdMapped:` in bytes (PMD-mapped shmem/tmpfs huge pages). */
  shmemPmdMapped: number;
  /** `FilePmdMapped:` in bytes (PMD-mapped file huge pages). */
  filePmdMapped: number;
  /** `Private_Hugetlb:` in bytes (hugetlbfs pages mapped by one process). */
  privateHugetlb: number;
  /** `Shared_Hugetlb:` in bytes (hugetlbfs pages mapped by several). */
  sharedHugetlb: number;
  /** `KernelPageSize:` in bytes (the hugetlb page size for hugetlb VMAs). */
  kernelPageSize: number;
  /** `MMUPageSize:` in bytes. */
  mmuPageSize: number;
  /** `THPeligible:` as a boolean; `undefined` when the kernel omits it. */
  thpEligible: boolean | undefined;
  /** The `VmFlags:` tokens in order, e.g. `["rd", "ex", "mr", "mw", "me"]`. */
  vmFlags: string[];
  /**
   * Every `Key: N kB` field of this VMA, keyed as printed (e.g. `"Pss_Dirty"`,
   * `"KSM"`), converted to bytes. Includes the fields that also have a named
   * property above, and any field a newer kernel adds.
   */
  fields: Record<string, number>;
  /**
   * Every unit-less numeric field of this VMA, keyed as printed, e.g.
   * `{ THPeligible: 1, ProtectionKey: 0 }`.
   */
  values: Record<string, number>;
}

/** Maximum number of characters of the offending line quoted in an error. */
const MAX_QUOTED = 120;

/**
 * Thrown by {@linkcode parseMaps} and {@linkcode parseSmaps} for a line that
 * is not in the expected format. The message names the 1-based line number
 * and quotes the line (truncated to 120 characters).
 *
 * @example Usage
 * ```ts
 * import { MapsParseError, parseMaps } from "@x/page-primer/maps";
 * import assert from "node:assert/strict";
 *
 * assert.throws(
 *   () => parseMaps("00400000-00401000 r-xp 0 08:01 1 /a\nnonsense"),
 *   (e) => e instanceof MapsParseError && e.line === 2,
 * );
 * ```
 */
export class MapsParseError extends Error {
  /** Always `"MapsParseError"`. */
  override name = "MapsParseError";
  /** The 1-based line number of the offending line. */
  line: number;
  /** The offending line, cut to 120 characters (then followed by `…`). */
  text: string;

  /**
   * Constructs a new instance.
   *
   * @param line The 1-based line number.
   * @param text The full text of the line.
   * @param reason What is wrong with it.
   */
  constructor(line: number, text: string, reason: string) {
    const quoted = text.length > MAX_QUOTED
      ? text.slice(0, MAX_QUOTED) + "…"
      : text;
    super(`line ${line}: ${reason}: ${JSON.stringify(quoted)}`);
    this.line = line;
    this.text = quoted;
  }
}

const CC_SPACE = 0x20;
const CC_TAB = 0x09;
const CC_CR = 0x0d;
const CC_0 = 0x30;
const CC_9 = 0x39;
const CC_A = 0x41;
const CC_F = 0x46;
const CC_LA = 0x61;
const CC_LF = 0x66;
const CC_DASH = 0x2d;
const CC_COLON = 0x3a;

/** End position (first non-digit) of the last `scanHex`/`scanDec` call. */
let scanEnd = 0;

function hexDigit(c: number): number {
  if (c >= CC_0 && c <= CC_9) return c - CC_0;
  if (c >= CC_LA && c <= CC_LF) return c - CC_LA + 10;
  if (c >= CC_A && c <= CC_F) return c - CC_A + 10;
  return -1;
}

/**
 * Scans hex digits of `s` from `i` to at most `end`; sets `scanEnd` to the
 * first non-digit. Returns NaN when there is no digit.
 */
function scanHex(s: string, i: number, end: number): number {
  const from = i;
  let n = 0;
  for (; i < end; i++) {
    const d = hexDigit(s.charCodeAt(i));
    if (d < 0) break;
    n = n * 16 + d;
  }
  scanEnd = i;
  if (i === from) return NaN;
  // Up to 13 hex digits (52 bits) the accumulation above is exact; beyond,
  // let BigInt do a correctly rounded conversion.
  if (i - from > 13) return Number(BigInt("0x" + s.slice(from, i)));
  return n;
}

/** Like {@linkcode scanHex} for decimal digits. */
function scanDec(s: string, i: number, end: number): number {
  const from = i;
  let n = 0;
  for (; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < CC_0 || c > CC_9) break;
    n = n * 10 + (c - CC_0);
  }
  scanEnd = i;
  if (i === from) return NaN;
  if (i - from > 15) return Number(s.slice(from, i));
  return n;
}

function skipSpaces(s: string, i: number, end: number): number {
  while (i < end) {
    const c = s.charCodeAt(i);
    if (c !== CC_SPACE && c !== CC_TAB) break;
    i++;
  }
  return i;
}

function isBlank(s: string, i: number, end: number): boolean {
  return skipSpaces(s, i, end) === end;
}

/**
 * Parses the maps line `s[i, end)` into a {@linkcode Vma}; returns a reason
 * string when it is malformed.
 */
function parseVmaLine(s: string, i: number, end: number): Vma | string {
  const start = scanHex(s, i, end);
  if (Number.isNaN(start) || s.charCodeAt(scanEnd) !== CC_DASH) {
    return "expected a start address followed by '-'";
  }
  const vEnd = scanHex(s, scanEnd + 1, end);
  if (Number.isNaN(vEnd) || s.charCodeAt(scanEnd) !== CC_SPACE) {
    return "expected an end address followed by a space";
  }
  if (!(vEnd > start)) return "end address is not above start address";
  i = scanEnd + 1;
  if (i + 5 > end || s.charCodeAt(i + 4) !== CC_SPACE) {
    return "expected four permission characters";
  }
  const perms = s.slice(i, i + 4);
  const r = perms[0], w = perms[1], x = perms[2], p = perms[3];
  if (
    (r !== "r" && r !== "-") || (w !== "w" && w !== "-") ||
    (x !== "x" && x !== "-") || (p !== "p" && p !== "s")
  ) {
    return `invalid permissions "${perms}"`;
  }
  const offset = scanHex(s, i + 5, end);
  if (Number.isNaN(offset) || s.charCodeAt(scanEnd) !== CC_SPACE) {
    return "expected a hex offset";
  }
  i = scanEnd + 1;
  const devStart = i;
  if (Number.isNaN(scanHex(s, i, end)) || s.charCodeAt(scanEnd) !== CC_COLON) {
    return "expected a device major:minor";
  }
  if (
    Number.isNaN(scanHex(s, scanEnd + 1, end)) ||
    s.charCodeAt(scanEnd) !== CC_SPACE
  ) {
    return "expected a device major:minor";
  }
  const dev = s.slice(devStart, scanEnd);
  const inode = scanDec(s, scanEnd + 1, end);
  if (
    Number.isNaN(inode) ||
    (scanEnd < end && s.charCodeAt(scanEnd) !== CC_SPACE &&
      s.charCodeAt(scanEnd) !== CC_TAB)
  ) {
    return "expected a decimal inode";
  }
  const pathStart = skipSpaces(s, scanEnd, end);
  return {
    start,
    end: vEnd,
    perms,
    read: r === "r",
    write: w === "w",
    exec: x === "x",
    shared: p === "s",
    offset,
    dev,
    inode,
    path: s.slice(pathStart, end),
  };
}

/** Calls `fn(lineStart, lineEnd, lineNumber)` for each line; strips `\r`. */
function forEachLine(
  text: string,
  fn: (start: number, end: number, line: number) => void,
): void {
  const n = text.length;
  let pos = 0;
  let line = 0;
  while (pos < n) {
    let nl = text.indexOf("\n", pos);
    if (nl === -1) nl = n;
    line++;
    let e = nl;
    if (e > pos && text.charCodeAt(e - 1) === CC_CR) e--;
    fn(pos, e, line);
    pos = nl + 1;
  }
}

/**
 * Parses the text of `/proc/<pid>/maps` into one {@linkcode Vma} per line,
 * in file order. Empty (or all-blank) lines are skipped; `\r\n` line ends are
 * accepted.
 *
 * @param text The file contents.
 * @returns The VMAs in the order they appear.
 * @throws {MapsParseError} For a non-blank line that is not a maps line.
 *
 * @example Usage
 * ```ts
 * import { parseMaps } from "@x/page-primer/maps";
 * import assert from "node:assert/strict";
 *
 * const vmas = parseMaps(
 *   "55d0a1e00000-55d0a1e21000 rw-p 00000000 00:00 0          [heap]\n" +
 *     "7ffd4b2c0000-7ffd4b2e1000 rw-p 00000000 00:00 0      [stack]\n",
 * );
 * assert.equal(vmas.length, 2);
 * assert.equal(vmas[0]!.path, "[heap]");
 * assert.equal(vmas[0]!.end - vmas[0]!.start, 0x21000);
 * assert.equal(vmas[1]!.write, true);
 * ```
 */
export function parseMaps(text: string): Vma[] {
  const out: Vma[] = [];
  forEachLine(text, (s, e, line) => {
    if (isBlank(text, s, e)) return;
    const vma = parseVmaLine(text, s, e);
    if (typeof vma === "string") {
      throw new MapsParseError(line, text.slice(s, e), vma);
    }
    out.push(vma);
  });
  return out;
}

/**
 * A smaps record of a maps line with every figure 0, for a parser or
 * another source of the figures to fill in.
 *
 * @example
 * ```ts
 * import { newSmapsVma, parseMaps } from "./maps.ts";
 * import assert from "node:assert/strict";
 * const [v] = parseMaps("00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon\n");
 * assert.equal(newSmapsVma(v!).rss, 0);
 * ```
 */
export function newSmapsVma(v: Vma): SmapsVma {
  return {
    start: v.start,
    end: v.end,
    perms: v.perms,
    read: v.read,
    write: v.write,
    exec: v.exec,
    shared: v.shared,
    offset: v.offset,
    dev: v.dev,
    inode: v.inode,
    path: v.path,
    size: 0,
    rss: 0,
    pss: 0,
    sharedClean: 0,
    sharedDirty: 0,
    privateClean: 0,
    privateDirty: 0,
    referenced: 0,
    anonymous: 0,
    swap: 0,
    locked: 0,
    anonHugePages: 0,
    shmemPmdMapped: 0,
    filePmdMapped: 0,
    privateHugetlb: 0,
    sharedHugetlb: 0,
    kernelPageSize: 0,
    mmuPageSize: 0,
    thpEligible: undefined,
    vmFlags: [],
    fields: {},
    values: {},
  };
}

/**
 * Stores a `Key: N kB` field (already in bytes) into `v.fields` and, for the
 * well-known keys, into its named property. Known keys are stored under
 * constant property names, which is much faster than a computed key built
 * from a fresh substring (the engine need not look the string up).
 *
 * Longer than ~80 lines on purpose: one flat `switch` with one case per
 * smaps key is the fast path of the smaps parser (a table of setters would
 * cost a closure call per field, on ~20 fields per VMA and thousands of
 * VMAs per read).
 */
function storeKb(v: SmapsVma, key: string, bytes: number): void {
  const f = v.fields;
  switch (key) {
    case "Size":
      f["Size"] = v.size = bytes;
      break;
    case "Rss":
      f["Rss"] = v.rss = bytes;
      break;
    case "Pss":
      f["Pss"] = v.pss = bytes;
      break;
    case "Shared_Clean":
      f["Shared_Clean"] = v.sharedClean = bytes;
      break;
    case "Shared_Dirty":
      f["Shared_Dirty"] = v.sharedDirty = bytes;
      break;
    case "Private_Clean":
      f["Private_Clean"] = v.privateClean = bytes;
      break;
    case "Private_Dirty":
      f["Private_Dirty"] = v.privateDirty = bytes;
      break;
    case "Referenced":
      f["Referenced"] = v.referenced = bytes;
      break;
    case "Anonymous":
      f["Anonymous"] = v.anonymous = bytes;
      break;
    case "Swap":
      f["Swap"] = v.swap = bytes;
      break;
    case "Locked":
      f["Locked"] = v.locked = bytes;
      break;
    case "AnonHugePages":
      f["AnonHugePages"] = v.anonHugePages = bytes;
      break;
    case "ShmemPmdMapped":
      f["ShmemPmdMapped"] = v.shmemPmdMapped = bytes;
      break;
    case "FilePmdMapped":
      f["FilePmdMapped"] = v.filePmdMapped = bytes;
      break;
    case "Private_Hugetlb":
      f["Private_Hugetlb"] = v.privateHugetlb = bytes;
      break;
    case "Shared_Hugetlb":
      f["Shared_Hugetlb"] = v.sharedHugetlb = bytes;
      break;
    case "KernelPageSize":
      f["KernelPageSize"] = v.kernelPageSize = bytes;
      break;
    case "MMUPageSize":
      f["MMUPageSize"] = v.mmuPageSize = bytes;
      break;
    case "Pss_Dirty":
      f["Pss_Dirty"] = bytes;
      break;
    case "Pss_Anon":
      f["Pss_Anon"] = bytes;
      break;
    case "Pss_File":
      f["Pss_File"] = bytes;
      break;
    case "Pss_Shmem":
      f["Pss_Shmem"] = bytes;
      break;
    case "KSM":
      f["KSM"] = bytes;
      break;
    case "LazyFree":
      f["LazyFree"] = bytes;
      break;
    case "SwapPss":
      f["SwapPss"] = bytes;
      break;
    default:
      f[key] = bytes;
  }
}

/** Stores a unit-less `Key: N` field into `v.values` (see `storeKb`). */
function storeUnitless(v: SmapsVma, key: string, value: number): void {
  const f = v.values;
  switch (key) {
    case "THPeligible":
      f["THPeligible"] = value;
      v.thpEligible = value !== 0;
      break;
    case "ProtectionKey":
      f["ProtectionKey"] = value;
      break;
    default:
      f[key] = value;
  }
}

/** Fields whose value must be numeric; a non-numeric value is an error. */
const NUMERIC_KEYS = new Set([
  "Size",
  "Rss",
  "Pss",
  "Shared_Clean",
  "Shared_Dirty",
  "Private_Clean",
  "Private_Dirty",
  "Referenced",
  "Anonymous",
  "Swap",
  "Locked",
  "AnonHugePages",
  "ShmemPmdMapped",
  "FilePmdMapped",
  "Private_Hugetlb",
  "Shared_Hugetlb",
  "KernelPageSize",
  "MMUPageSize",
  "THPeligible",
]);

/**
 * Parses the text of `/proc/<pid>/smaps` (or `smaps_rollup`) into one
 * {@linkcode SmapsVma} per VMA, in file order.
 *
 * Each VMA starts with a maps line (see {@linkcode parseMaps}) followed by
 * `Key: value` lines:
 *
 * - `Key: N kB` is converted to bytes and stored in
 *   {@linkcode SmapsVma.fields}; the well-known keys also fill their named
 *   property (e.g. `Private_Dirty` → `privateDirty`).
 * - `Key: N` (unit-less, e.g. `THPeligible`, `ProtectionKey`) is stored in
 *   {@linkcode SmapsVma.values}; `THPeligible` also sets `thpEligible`.
 * - `VmFlags: a b c` fills {@linkcode SmapsVma.vmFlags}.
 *
 * Fields absent on older kernels stay `0` (`thpEligible` stays `undefined`).
 * Lines of unknown keys with a value that is neither `N kB` nor `N` are
 * ignored, so that a future kernel adding such a field does not break
 * parsing. Empty lines are skipped.
 *
 * @param text The file contents.
 * @returns The VMAs in the order they appear.
 * @throws {MapsParseError} For a line that is neither a maps line nor a
 * `Key: value` line, a field line before the first maps line, or a well-known
 * field with a non-numeric value.
 *
 * @example Usage
 * ```ts
 * import { parseSmaps } from "@x/page-primer/maps";
 * import assert from "node:assert/strict";
 *
 * const [vma] = parseSmaps(`\
 * 7f3a00000000-7f3a00400000 rw-p 00000000 00:00 0
 * Size:               4096 kB
 * KernelPageSize:        4 kB
 * Rss:                4096 kB
 * AnonHugePages:      2048 kB
 * THPeligible:           1
 * VmFlags: rd wr mr mw me ac hg
 * `);
 * assert.equal(vma!.path, "");
 * assert.equal(vma!.size, 4 * 1024 * 1024);
 * assert.equal(vma!.anonHugePages, 2 * 1024 * 1024);
 * assert.equal(vma!.fields["Rss"], 4 * 1024 * 1024);
 * assert.equal(vma!.thpEligible, true);
 * assert.deepEqual(vma!.vmFlags, ["rd", "wr", "mr", "mw", "me", "ac", "hg"]);
 * ```
 */
export function parseSmaps(text: string): SmapsVma[] {
  const out: SmapsVma[] = [];
  let cur: SmapsVma | undefined;
  const n = text.length;
  let pos = 0;
  let line = 0;
  while (pos < n) {
    let nl = text.indexOf("\n", pos);
    if (nl === -1) nl = n;
    line++;
    const s = pos;
    let e = nl;
    pos = nl + 1;
    if (e > s && text.charCodeAt(e - 1) === CC_CR) e--;
    if (isBlank(text, s, e)) continue;
    // A field line has its ':' before the first space ("Size:", "VmFlags:");
    // a maps line has its first ':' in the device column, after spaces.
    const colon = text.indexOf(":", s);
    const space = text.indexOf(" ", s);
    const isField = colon !== -1 && colon < e &&
      (space === -1 || space >= e || colon < space);
    if (!isField) {
      const vma = parseVmaLine(text, s, e);
      if (typeof vma === "string") {
        throw new MapsParseError(line, text.slice(s, e), vma);
      }
      cur = newSmapsVma(vma);
      out.push(cur);
      continue;
    }
    if (cur === undefined) {
      throw new MapsParseError(
        line,
        text.slice(s, e),
        "field line before the first maps line",
      );
    }
    const key = text.slice(s, colon);
    if (key === "VmFlags") {
      parseFlags(text, colon + 1, e, cur.vmFlags);
      continue;
    }
    const value = scanDec(text, skipSpaces(text, colon + 1, e), e);
    let i = scanEnd;
    let kb = false;
    if (!Number.isNaN(value)) {
      i = skipSpaces(text, i, e);
      if (
        i + 2 <= e && text.charCodeAt(i) === 0x6b /* k */ &&
        text.charCodeAt(i + 1) === 0x42 /* B */
      ) {
        kb = true;
        i = skipSpaces(text, i + 2, e);
      }
    }
    if (Number.isNaN(value) || i !== e) {
      if (NUMERIC_KEYS.has(key)) {
        throw new MapsParseError(
          line,
          text.slice(s, e),
          `expected a number for ${key}`,
        );
      }
      continue; // Unknown non-numeric field: ignored for forward compatibility.
    }
    if (kb) {
      storeKb(cur, key, value * 1024);
    } else {
      storeUnitless(cur, key, value);
    }
  }
  return out;
}

/**
 * Appends the whitespace-separated tokens of `s[i, e)` to `flags`. Four
 * positional parameters on purpose, like the other scanners here: it runs
 * once per VMA in the smaps parser's hot loop, where an options object
 * would be an allocation per call.
 */
function parseFlags(s: string, i: number, e: number, flags: string[]): void {
  while (true) {
    i = skipSpaces(s, i, e);
    if (i >= e) return;
    let j = i;
    while (j < e) {
      const c = s.charCodeAt(j);
      if (c === CC_SPACE || c === CC_TAB) break;
      j++;
    }
    flags.push(s.slice(i, j));
    i = j;
  }
}

/**
 * Bytes of this VMA that are mapped with pages of 2 MiB or larger:
 * `anonHugePages + shmemPmdMapped + filePmdMapped`, plus
 * `privateHugetlb + sharedHugetlb` when `kernelPageSize >= 2 MiB`.
 *
 * Kernel semantics behind this choice:
 *
 * - `AnonHugePages`, `ShmemPmdMapped` and `FilePmdMapped` count only
 *   transparent huge pages mapped by a PMD entry, which is 2 MiB on x86-64 and
 *   arm64 with 4 KiB base pages (larger with bigger base pages). Smaller
 *   "mTHP" folios mapped by PTEs are not in these fields and are not
 *   counted.
 * - `Private_Hugetlb`/`Shared_Hugetlb` count hugetlbfs pages, and for a
 *   hugetlb VMA `KernelPageSize` is its huge page size. That size can be
 *   smaller than 2 MiB (e.g. 64 KiB contiguous-PTE pages on arm64), so hugetlb
 *   bytes count only when `kernelPageSize >= 2 MiB`. (Hugetlb pages are not
 *   included in `Rss`.)
 *
 * @param vma A VMA from {@linkcode parseSmaps}.
 * @returns The number of bytes on pages of at least 2 MiB.
 *
 * @example Usage
 * ```ts
 * import { hugeBytes, parseSmaps } from "@x/page-primer/maps";
 * import assert from "node:assert/strict";
 *
 * const [vma] = parseSmaps(
 *   "7f0000000000-7f0000400000 rw-p 00000000 00:0f 77 /anon_hugepage (deleted)\n" +
 *     "KernelPageSize:     2048 kB\nPrivate_Hugetlb:    4096 kB\n",
 * );
 * assert.equal(hugeBytes(vma!), 4 * 1024 * 1024);
 * ```
 */
export function hugeBytes(vma: SmapsVma): number {
  let n = vma.anonHugePages + vma.shmemPmdMapped + vma.filePmdMapped;
  if (vma.kernelPageSize >= HUGE_PAGE) {
    n += vma.privateHugetlb + vma.sharedHugetlb;
  }
  return n;
}

function checkRange(start: number, end: number): void {
  if (!(start <= end)) {
    throw new RangeError(
      `Invalid range [${start}, ${end}): start must be <= end`,
    );
  }
}

/**
 * The VMAs overlapping the half-open address range `[start, end)`, sorted by
 * `start` (then `end`). The input is not modified and need not be sorted. An
 * empty range (`start === end`) overlaps nothing.
 *
 * @typeParam T The VMA type ({@linkcode Vma} or {@linkcode SmapsVma}).
 * @param vmas The VMAs to search.
 * @param start First address of the range (inclusive).
 * @param end End of the range (exclusive).
 * @returns A new array of the overlapping VMAs.
 * @throws {RangeError} If `start > end` or either is NaN.
 *
 * @example Usage
 * ```ts
 * import { parseMaps, vmasIn } from "@x/page-primer/maps";
 * import assert from "node:assert/strict";
 *
 * const vmas = parseMaps(
 *   "3000-4000 r--p 00000000 00:00 0\n1000-2000 r--p 00000000 00:00 0\n",
 * );
 * assert.deepEqual(vmasIn(vmas, 0x1800, 0x3001).map((v) => v.start), [
 *   0x1000,
 *   0x3000,
 * ]);
 * ```
 */
export function vmasIn<T extends Vma>(
  vmas: readonly T[],
  start: number,
  end: number,
): T[] {
  checkRange(start, end);
  if (start === end) return [];
  const out = vmas.filter((v) => v.start < end && v.end > start);
  out.sort((a, b) => a.start - b.start || a.end - b.end);
  return out;
}

/**
 * Sums a per-VMA byte quantity over the address range `[start, end)`.
 *
 * A VMA entirely inside the range contributes `pick(vma)`. A VMA that only
 * partly overlaps contributes `pick(vma) * overlap / (vma.end - vma.start)`:
 * this pro-rata share is an **approximation**, as smaps only reports totals
 * per VMA and the counted pages may sit anywhere in it. The result can
 * therefore be fractional; round it if you need whole bytes.
 *
 * @param vmas The VMAs, e.g. from {@linkcode parseSmaps}, in any order.
 * @param start First address of the range (inclusive).
 * @param end End of the range (exclusive).
 * @param pick Selects the quantity, e.g. `(v) => v.rss` or `hugeBytes`.
 * @returns The (possibly fractional) sum in the unit `pick` returns.
 * @throws {RangeError} If `start > end` or either is NaN.
 *
 * @example Usage
 * ```ts
 * import { parseSmaps, sumIn } from "@x/page-primer/maps";
 * import assert from "node:assert/strict";
 *
 * const vmas = parseSmaps(
 *   "1000-3000 rw-p 00000000 00:00 0\nRss: 8 kB\n" +
 *     "3000-4000 rw-p 00000000 00:00 0\nRss: 4 kB\n",
 * );
 * // All of the second VMA and half of the first one.
 * assert.equal(sumIn(vmas, 0x2000, 0x4000, (v) => v.rss), 8192);
 * ```
 */
export function sumIn(
  vmas: readonly SmapsVma[],
  start: number,
  end: number,
  pick: (v: SmapsVma) => number,
): number {
  checkRange(start, end);
  let total = 0;
  if (start === end) return total;
  for (const v of vmas) {
    if (!(v.start < end && v.end > start)) continue;
    const len = v.end - v.start;
    const lo = v.start > start ? v.start : start;
    const hi = v.end < end ? v.end : end;
    const q = pick(v);
    total += hi - lo >= len || len <= 0 ? q : (q * (hi - lo)) / len;
  }
  return total;
}
