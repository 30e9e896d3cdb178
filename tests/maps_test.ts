// Copyright 2025 the page-primer authors. MIT license.
// Runs unchanged under `deno test -A tests/maps_test.ts` and
// `bun test tests/maps_test.ts`: only node:test / node:assert / node:fs /
// node:process are used.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, realpathSync } from "node:fs";
import process from "node:process";
import {
  hugeBytes,
  MapsParseError,
  parseMaps,
  parseSmaps,
  type SmapsVma,
  sumIn,
  type Vma,
  vmasIn,
} from "../src/sys/maps.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

function fixture(name: string): string {
  return readFileSync(
    new URL(`./fixtures/maps/${name}`, import.meta.url),
    "utf8",
  );
}

/** The non-empty lines of `text`. */
function lines(text: string): string[] {
  return text.split("\n").filter((l) => l !== "");
}

/** The maps-line part of a VMA (drops the smaps statistics). */
function base(v: Vma): Vma {
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
  };
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}

/**
 * Independent (regex-based, slow) reading of a maps line, used as the oracle
 * for the fast parser.
 */
function oracleLine(line: string): Vma {
  const m = line.match(
    /^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])([x-])([ps]) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+) *(.*)$/,
  );
  assert.ok(m, `oracle cannot read ${line}`);
  return {
    start: Number(BigInt("0x" + m[1])),
    end: Number(BigInt("0x" + m[2])),
    perms: m[3]! + m[4] + m[5] + m[6],
    read: m[3] === "r",
    write: m[4] === "w",
    exec: m[5] === "x",
    shared: m[6] === "s",
    offset: Number(BigInt("0x" + m[7])),
    dev: m[8]!,
    inode: Number(m[9]),
    path: m[10]!,
  };
}

/** Oracle for smaps: per VMA, its maps line, its `N kB` fields and flags. */
function oracleSmaps(text: string) {
  const out: {
    vma: Vma;
    kb: Record<string, number>;
    unitless: Record<string, number>;
    flags: string[];
  }[] = [];
  for (const line of lines(text)) {
    const f = line.match(/^(\w+):\s+(\d+) kB$/);
    const u = line.match(/^(\w+):\s+(\d+)$/);
    const cur = out[out.length - 1];
    if (f) cur!.kb[f[1]!] = Number(f[2]) * 1024;
    else if (u) cur!.unitless[u[1]!] = Number(u[2]);
    else if (line.startsWith("VmFlags:")) {
      cur!.flags = line.slice(8).trim().split(/\s+/);
    } else {
      out.push({ vma: oracleLine(line), kb: {}, unitless: {}, flags: [] });
    }
  }
  return out;
}

const NAMED: [keyof SmapsVma, string][] = [
  ["size", "Size"],
  ["rss", "Rss"],
  ["pss", "Pss"],
  ["sharedClean", "Shared_Clean"],
  ["sharedDirty", "Shared_Dirty"],
  ["privateClean", "Private_Clean"],
  ["privateDirty", "Private_Dirty"],
  ["referenced", "Referenced"],
  ["anonymous", "Anonymous"],
  ["swap", "Swap"],
  ["locked", "Locked"],
  ["anonHugePages", "AnonHugePages"],
  ["shmemPmdMapped", "ShmemPmdMapped"],
  ["filePmdMapped", "FilePmdMapped"],
  ["privateHugetlb", "Private_Hugetlb"],
  ["sharedHugetlb", "Shared_Hugetlb"],
  ["kernelPageSize", "KernelPageSize"],
  ["mmuPageSize", "MMUPageSize"],
];

for (const runtime of ["deno", "bun"]) {
  const mapsText = fixture(`${runtime}_maps.txt`);
  const smapsText = fixture(`${runtime}_smaps.txt`);

  test(`parseMaps(${runtime}_maps.txt) has one VMA per line, matching an oracle`, () => {
    const vmas = parseMaps(mapsText);
    const ls = lines(mapsText);
    assert.ok(ls.length > 40, "fixture too small");
    assert.equal(vmas.length, ls.length);
    for (let i = 0; i < ls.length; i++) {
      const v = vmas[i]!;
      assert.deepEqual(v, oracleLine(ls[i]!), ls[i]);
      assert.ok(v.end > v.start, ls[i]);
      // Re-print the fixed columns exactly as the kernel does.
      assert.ok(
        ls[i]!.startsWith(
          `${hex8(v.start)}-${hex8(v.end)} ${v.perms} ${
            hex8(v.offset)
          } ${v.dev} ${v.inode} `,
        ),
        ls[i],
      );
      assert.ok(ls[i]!.trimEnd().endsWith(v.path), ls[i]);
    }
    for (const name of ["[heap]", "[stack]", "[vdso]", "[vsyscall]"]) {
      assert.equal(vmas.filter((v) => v.path === name).length, 1, name);
    }
  });

  test(`parseSmaps(${runtime}_smaps.txt) matches ${runtime}_maps.txt and an oracle`, () => {
    const smaps = parseSmaps(smapsText);
    const maps = parseMaps(mapsText);
    assert.equal(smaps.length, lines(mapsText).length);
    assert.deepEqual(smaps.map(base), maps);
    const oracle = oracleSmaps(smapsText);
    assert.equal(smaps.length, oracle.length);
    for (let i = 0; i < smaps.length; i++) {
      const v = smaps[i]!, o = oracle[i]!;
      assert.equal(v.size, v.end - v.start, v.path);
      assert.ok(v.size > 0);
      assert.deepEqual(v.fields, o.kb);
      assert.deepEqual(v.values, o.unitless);
      assert.deepEqual(v.vmFlags, o.flags);
      assert.ok(v.vmFlags.length > 0);
      for (const [prop, key] of NAMED) {
        assert.equal(v[prop], o.kb[key], `${key} of ${hex8(v.start)}`);
      }
      assert.equal(v.thpEligible, o.unitless["THPeligible"] === 1);
      assert.equal(v.kernelPageSize, 4 * KiB);
    }
  });
}

test("deno fixture: executable VMAs found by path with the right perms and values", () => {
  const exe = "/work/main/node_modules/deno/deno";
  const vmas = parseSmaps(fixture("deno_smaps.txt")).filter((v) =>
    v.path === exe
  );
  assert.deepEqual(vmas.map((v) => v.perms), [
    "r--p",
    "r-xp",
    "rw-p",
    "rw-p",
    "r--p",
    "rw-p",
    "r--p",
    "rw-p",
    "r-xp",
  ]);
  assert.ok(vmas.every((v) => v.inode === 5308491 && v.dev === "fe:00"));
  const text = vmas[1]!;
  assert.equal(text.start, 0x55a0778bd000);
  assert.equal(text.end, 0x55a07b5b1000);
  assert.equal(text.offset, 0x01b8e000);
  assert.equal(text.read && text.exec && !text.write && !text.shared, true);
  assert.equal(text.size, 62416 * KiB);
  assert.equal(text.rss, 13428 * KiB);
  assert.equal(text.pss, 13428 * KiB);
  assert.equal(text.privateClean, 13428 * KiB);
  assert.equal(text.referenced, 13428 * KiB);
  assert.equal(text.privateDirty, 0);
  assert.equal(text.fields["Pss_Dirty"], 0);
  assert.equal(text.thpEligible, false);
  assert.equal(text.values["ProtectionKey"], 0);
  assert.deepEqual(text.vmFlags, ["rd", "ex", "mr", "mw", "me"]);
  assert.equal(hugeBytes(text), 0);
});

test("bun fixture: executable VMAs found by path with the right perms and values", () => {
  const exe = "/work/main/node_modules/bun/bin/bun.exe";
  const vmas = parseSmaps(fixture("bun_smaps.txt")).filter((v) =>
    v.path === exe
  );
  assert.deepEqual(vmas.map((v) => v.perms), [
    "r--p",
    "r-xp",
    "rw-p",
    "r--p",
    "rw-p",
  ]);
  const text = vmas[1]!;
  assert.equal(text.start, 0x01a40000);
  assert.equal(text.end, 0x0684a000);
  assert.equal(text.offset, 0x01838000);
  assert.equal(text.inode, 5308500);
  assert.equal(text.size, 79912 * KiB);
  assert.equal(text.rss, 15712 * KiB);
  assert.equal(text.pss, 15710 * KiB);
  assert.equal(text.sharedClean, 4 * KiB);
  assert.equal(text.privateClean, 15708 * KiB);
  const heap = parseSmaps(fixture("bun_smaps.txt")).find((v) =>
    v.path === "[heap]"
  );
  assert.equal(heap?.start, 0x25e4e000);
  assert.equal(heap?.size, 132 * KiB);
});

test("[vsyscall] above 2^53 is parsed exactly", () => {
  for (const runtime of ["deno", "bun"]) {
    const vs = parseMaps(fixture(`${runtime}_maps.txt`)).find((v) =>
      v.path === "[vsyscall]"
    );
    assert.ok(vs);
    assert.ok(vs.start > Number.MAX_SAFE_INTEGER);
    assert.equal(BigInt(vs.start), 0xffffffffff600000n);
    assert.equal(BigInt(vs.end), 0xffffffffff601000n);
    assert.equal(vs.end - vs.start, 4096);
    assert.equal(vs.perms, "--xp");
    assert.equal(vs.exec && !vs.read && !vs.write, true);
  }
  // A non-page-aligned value above 2^53 is rounded to the nearest double.
  const [v] = parseMaps(
    "fffffffffffff000-ffffffffffffffff r--p 00000000 00:00 0",
  );
  assert.equal(BigInt(v!.start), 0xfffffffffffff000n);
  // Long hex values are rounded once, correctly: naive digit-by-digit
  // accumulation would give 2^57 here instead of 2^57 + 32.
  const [w] = parseMaps("00400000-00401000 r--p 200000000000011 00:00 0");
  assert.equal(w!.offset, Number(0x200000000000011n));
  assert.equal(w!.offset, 2 ** 57 + 32);
  assert.equal(v!.end, 2 ** 64);
});

test("smaps_huge.txt: hand-made edge cases", () => {
  const vmas = parseSmaps(fixture("smaps_huge.txt"));
  assert.equal(vmas.length, 7);
  for (const v of vmas) assert.equal(v.size, v.end - v.start, v.path);
  const [thp, hugetlb, tlb64k, spaced, memfd, named, old] = vmas as [
    SmapsVma,
    SmapsVma,
    SmapsVma,
    SmapsVma,
    SmapsVma,
    SmapsVma,
    SmapsVma,
  ];

  assert.equal(thp.path, "");
  assert.equal(thp.inode, 0);
  assert.equal(thp.anonHugePages, 2 * MiB);
  assert.equal(thp.rss, 3 * MiB);
  assert.equal(thp.thpEligible, true);
  assert.ok(thp.vmFlags.includes("hg"));
  assert.equal(hugeBytes(thp), 2 * MiB);

  assert.equal(hugetlb.path, "/anon_hugepage (deleted)");
  assert.equal(hugetlb.kernelPageSize, 2 * MiB);
  assert.equal(hugetlb.mmuPageSize, 2 * MiB);
  assert.equal(hugetlb.privateHugetlb, 6 * MiB);
  assert.equal(hugetlb.sharedHugetlb, 2 * MiB);
  assert.equal(hugetlb.rss, 0);
  assert.equal(hugetlb.thpEligible, false);
  assert.equal(hugeBytes(hugetlb), 8 * MiB);

  assert.equal(tlb64k.kernelPageSize, 64 * KiB);
  assert.equal(tlb64k.privateHugetlb, 128 * KiB);
  assert.equal(tlb64k.shared, true);
  assert.equal(hugeBytes(tlb64k), 0);

  assert.equal(spaced.path, "/opt/My App/lib/libfoo bar.so");
  assert.equal(spaced.perms, "r-xp");
  assert.equal(spaced.offset, 0x1000);
  assert.equal(spaced.dev, "fe:01");
  assert.equal(spaced.inode, 98765);
  assert.equal(spaced.filePmdMapped, 2 * MiB);
  assert.equal(spaced.pss, 1280 * KiB);
  assert.equal(hugeBytes(spaced), 2 * MiB);

  assert.equal(memfd.path, "/memfd:page-primer (deleted)");
  assert.equal(memfd.perms, "rw-s");
  assert.equal(memfd.shared && memfd.write && memfd.read, true);
  assert.equal(memfd.shmemPmdMapped, 2 * MiB);
  assert.equal(memfd.locked, 2 * MiB);
  assert.deepEqual(memfd.vmFlags, [
    "rd",
    "wr",
    "sh",
    "mr",
    "mw",
    "me",
    "ms",
    "lo",
    "sd",
  ]);
  assert.equal(hugeBytes(memfd), 2 * MiB);

  assert.equal(named.path, "[anon:page-primer:/x]");
  assert.equal(named.inode, 0);
  assert.equal(named.swap, 8 * KiB);
  assert.equal(named.fields["SwapPss"], 8 * KiB);
  assert.equal(named.anonymous, 12 * KiB);

  // Old kernel: no THPeligible / FilePmdMapped / ShmemPmdMapped / Pss_Dirty.
  assert.equal(old.start, 0x400000);
  assert.equal(old.path, "/usr/bin/old app");
  assert.equal(old.thpEligible, undefined);
  assert.equal(old.filePmdMapped, 0);
  assert.equal(old.shmemPmdMapped, 0);
  assert.equal("FilePmdMapped" in old.fields, false);
  assert.equal("Pss_Dirty" in old.fields, false);
  assert.deepEqual(old.values, {});
  assert.equal(old.rss, 300 * KiB);
  assert.equal(old.kernelPageSize, 4 * KiB);
  assert.deepEqual(old.vmFlags, ["rd", "ex", "mr", "mw", "me", "dw"]);
});

test("parseMaps keeps paths as written and handles blank lines and CRLF", () => {
  const vmas = parseMaps(
    "\n00400000-00401000 r-xp 00000000 08:01 12 \t /a b/c  d (deleted)\r\n" +
      "   \n" +
      "00401000-00402000 rw-p 00001000 103:02 18446744073709 [anon:x y]\r\n" +
      "00402000-00403000 ---s 00000000 00:00 0\n",
  );
  assert.equal(vmas.length, 3);
  assert.equal(vmas[0]!.path, "/a b/c  d (deleted)");
  assert.equal(vmas[1]!.path, "[anon:x y]");
  assert.equal(vmas[1]!.dev, "103:02");
  assert.equal(vmas[1]!.inode, 18446744073709);
  assert.equal(vmas[1]!.offset, 0x1000);
  assert.equal(vmas[2]!.path, "");
  assert.equal(vmas[2]!.perms, "---s");
  assert.equal(vmas[2]!.shared, true);
  assert.equal(vmas[2]!.read || vmas[2]!.write || vmas[2]!.exec, false);
  assert.deepEqual(parseMaps(""), []);
  assert.deepEqual(parseSmaps("\n\n"), []);
});

test("parseSmaps accepts CRLF line ends and blank lines", () => {
  const text = fixture("smaps_huge.txt");
  const crlf = parseSmaps("\r\n" + text.replaceAll("\n", "\r\n\r\n"));
  assert.deepEqual(crlf, parseSmaps(text));
  assert.equal(crlf[3]!.path, "/opt/My App/lib/libfoo bar.so");
  assert.deepEqual(crlf[0]!.vmFlags, [
    "rd",
    "wr",
    "mr",
    "mw",
    "me",
    "ac",
    "hg",
  ]);
});

test("parseSmaps tolerates unknown fields and keeps them raw", () => {
  const [v] = parseSmaps(
    "1000-2000 rw-p 00000000 00:00 0\n" +
      "Size: 4 kB\nFuture_Thing:   12 kB\nFutureCount:  7\n" +
      "FutureText: something else\nTHPeligible: 1\nVmFlags:\n",
  );
  assert.equal(v!.fields["Future_Thing"], 12 * KiB);
  assert.equal(v!.values["FutureCount"], 7);
  assert.equal("FutureText" in v!.fields, false);
  assert.equal(v!.thpEligible, true);
  assert.deepEqual(v!.vmFlags, []);
  assert.equal(v!.rss, 0);
});

function assertParseError(
  fn: () => unknown,
  line: number,
  snippet: string,
): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MapsParseError, String(e));
    assert.ok(e instanceof Error);
    assert.equal(e.name, "MapsParseError");
    assert.equal(e.line, line);
    assert.match(e.message, new RegExp(`^line ${line}: `));
    assert.ok(e.message.includes(snippet), e.message);
    return true;
  });
}

test("malformed input throws MapsParseError with the line number", () => {
  const good = "00400000-00401000 r-xp 00000000 08:01 12 /bin/x\n";
  assertParseError(
    () => parseMaps(good + good + "not a maps line\n"),
    3,
    "not a maps line",
  );
  assertParseError(
    () => parseMaps("00400000 r-xp 00000000 08:01 12 /x"),
    1,
    "00400000 r-xp",
  );
  assertParseError(
    () => parseMaps("00400000-00401000 rwxq 00000000 08:01 12"),
    1,
    "rwxq",
  );
  assertParseError(
    () => parseMaps("00400000-00401000 r-x 00000000 08:01 12"),
    1,
    "r-x ",
  );
  assertParseError(
    () => parseMaps("00401000-00400000 r-xp 00000000 08:01 12"),
    1,
    "00401000-00400000",
  );
  assertParseError(
    () => parseMaps("00400000-00401000 r-xp 0000zz00 08:01 12"),
    1,
    "0000zz00",
  );
  assertParseError(
    () => parseMaps("00400000-00401000 r-xp 00000000 0801 12"),
    1,
    "0801",
  );
  assertParseError(
    () => parseMaps("00400000-00401000 r-xp 00000000 08:01 /x"),
    1,
    "08:01 /x",
  );
  assertParseError(
    () => parseMaps("00400000-00401000 r-xp 00000000 08:01 12x"),
    1,
    "12x",
  );
  assertParseError(() => parseMaps(good + "Size: 4 kB\n"), 2, "Size: 4 kB");

  assertParseError(() => parseSmaps("Size: 4 kB\n" + good), 1, "Size: 4 kB");
  assertParseError(() => parseSmaps(good + "Rss: x kB\n"), 2, "Rss: x kB");
  assertParseError(() => parseSmaps(good + "Rss: 4 MB\n"), 2, "Rss: 4 MB");
  assertParseError(
    () => parseSmaps(good + "Rss: 4 kB\nhello world\n"),
    3,
    "hello world",
  );
  assertParseError(
    () => parseSmaps(good + "THPeligible: yes\n"),
    2,
    "THPeligible",
  );

  // The quoted line is truncated to about 120 characters.
  const long = "x".repeat(5000);
  assert.throws(() => parseMaps(long), (e: unknown) => {
    assert.ok(e instanceof MapsParseError);
    assert.ok(e.message.length < 200, `${e.message.length}`);
    assert.equal(e.text.length, 121);
    return true;
  });
});

// ---------------------------------------------------------------- live ---

test("live: /proc/self/maps and /proc/self/smaps of this runtime", () => {
  const mapsText = readFileSync("/proc/self/maps", "utf8");
  const smapsText = readFileSync("/proc/self/smaps", "utf8");
  const maps = parseMaps(mapsText);
  const smaps = parseSmaps(smapsText);
  assert.equal(maps.length, lines(mapsText).length);
  assert.ok(smaps.length > 10);
  // Other threads may map/unmap anonymous memory between the two reads, so
  // the counts need not match; the executable's own VMAs are stable.
  const exe = realpathSync(process.execPath);
  const exeMaps = maps.filter((v) => v.path === exe);
  const exeSmaps = smaps.filter((v) => v.path === exe);
  assert.ok(exeMaps.length >= 2, `no VMAs for ${exe}`);
  assert.deepEqual(exeSmaps.map(base), exeMaps);
  const text = exeMaps.find((v) => v.perms === "r-xp");
  assert.ok(text, `no r-xp VMA for ${exe}`);
  const inode = exeMaps[0]!.inode;
  assert.ok(inode > 0);
  assert.ok(exeMaps.every((v) => v.inode === inode));
  for (const v of smaps) {
    assert.equal(v.size, v.end - v.start, `${hex8(v.start)} ${v.path}`);
    assert.ok(v.kernelPageSize >= 4 * KiB);
    assert.ok(v.rss <= v.size || v.kernelPageSize > 4 * KiB);
    assert.ok(v.vmFlags.length > 0);
  }
  // The function we are running sits in some mapping; the stack of this
  // thread too ([stack] is the main thread's stack).
  assert.equal(smaps.filter((v) => v.path === "[stack]").length, 1);
  const heapish = smaps.filter((v) => v.path === "[heap]" || v.path === "");
  assert.ok(heapish.length > 0);
});

// ------------------------------------------------------------- helpers ---

function vma(
  start: number,
  end: number,
  stats: Partial<SmapsVma> = {},
): SmapsVma {
  const [v] = parseSmaps(
    `${hex8(start)}-${hex8(end)} rw-p 00000000 00:00 0\nSize: ${
      (end - start) / 1024
    } kB\nKernelPageSize: 4 kB\n`,
  );
  return { ...v!, ...stats };
}

test("vmasIn returns overlapping VMAs sorted, excluding mere neighbours", () => {
  const a = vma(0x1000, 0x3000);
  const b = vma(0x3000, 0x4000);
  const c = vma(0x8000, 0x9000);
  const d = vma(0x5000, 0x6000);
  const all = [c, b, a, d];
  assert.deepEqual(vmasIn(all, 0, 0x10000), [a, b, d, c]);
  assert.deepEqual(vmasIn(all, 0x2fff, 0x3001), [a, b]);
  assert.deepEqual(vmasIn(all, 0x3000, 0x4000), [b]); // a ends at 0x3000
  assert.deepEqual(vmasIn(all, 0x4000, 0x5000), []); // gap; d starts at end
  assert.deepEqual(vmasIn(all, 0x5800, 0x5801), [d]); // inside one VMA
  assert.deepEqual(vmasIn(all, 0x5800, 0x5800), []); // empty range
  assert.deepEqual(all, [c, b, a, d], "input must not be reordered");
  assert.throws(() => vmasIn(all, 2, 1), RangeError);
  assert.throws(() => vmasIn(all, NaN, 1), RangeError);
  // Works for plain maps VMAs too.
  const plain = parseMaps(
    "00002000-00003000 r--p 00000000 00:00 0\n00001000-00002000 r--p 00000000 00:00 0",
  );
  assert.deepEqual(vmasIn(plain, 0, 0x3000).map((v) => v.start), [
    0x1000,
    0x2000,
  ]);
});

test("sumIn counts whole VMAs fully and partial overlaps pro rata", () => {
  const a = vma(0x1000, 0x5000, { rss: 16 * KiB }); // 4 pages
  const b = vma(0x5000, 0x6000, { rss: 4 * KiB });
  const c = vma(0x10000, 0x20000, { rss: 40 * KiB });
  const all = [c, a, b];
  const rss = (v: SmapsVma) => v.rss;
  assert.equal(sumIn(all, 0, 0x100000, rss), 60 * KiB);
  assert.equal(sumIn(all, 0x1000, 0x6000, rss), 20 * KiB);
  // Half of a (2 of 4 pages) plus all of b.
  assert.equal(sumIn(all, 0x3000, 0x6000, rss), 8 * KiB + 4 * KiB);
  // A quarter of a only.
  assert.equal(sumIn(all, 0x4000, 0x5000, rss), 4 * KiB);
  // A range inside one VMA: 1/16 of c, 1/4 of a.
  assert.equal(sumIn(all, 0x12000, 0x13000, rss), 40 * KiB / 16);
  assert.equal(sumIn(all, 0x1800, 0x2800, rss), 4 * KiB);
  // Fractional results are not rounded.
  assert.equal(sumIn([a], 0x1000, 0x1001, rss), 1);
  assert.equal(sumIn([b], 0x5000, 0x5001, (v) => v.rss + 1), 4097 / 4096);
  assert.equal(sumIn(all, 0x6000, 0x10000, rss), 0);
  assert.equal(sumIn(all, 0x3000, 0x3000, rss), 0);
  assert.throws(() => sumIn(all, 3, 2, rss), RangeError);
  // pick is called with each overlapping VMA, once.
  const seen: SmapsVma[] = [];
  sumIn(all, 0x4000, 0x11000, (v) => (seen.push(v), 0));
  assert.deepEqual(new Set(seen), new Set([a, b, c]));
  assert.equal(seen.length, 3);
});

test("hugeBytes counts THP always and hugetlb only on >= 2 MiB pages", () => {
  assert.equal(hugeBytes(vma(0, 0x400000)), 0);
  assert.equal(
    hugeBytes(vma(0, 0x400000, {
      anonHugePages: 2 * MiB,
      shmemPmdMapped: 4 * MiB,
      filePmdMapped: 8 * MiB,
    })),
    14 * MiB,
  );
  const tlb = { privateHugetlb: 4 * MiB, sharedHugetlb: 2 * MiB };
  assert.equal(
    hugeBytes(vma(0, 0x800000, { ...tlb, kernelPageSize: 2 * MiB })),
    6 * MiB,
  );
  assert.equal(
    hugeBytes(vma(0, 0x800000, { ...tlb, kernelPageSize: 1024 * MiB })),
    6 * MiB,
  );
  assert.equal(
    hugeBytes(vma(0, 0x800000, { ...tlb, kernelPageSize: 64 * KiB })),
    0,
  );
  assert.equal(
    hugeBytes(
      vma(0, 0x800000, {
        ...tlb,
        anonHugePages: MiB,
        kernelPageSize: 2 * MiB - 4096,
      }),
    ),
    MiB,
  );
  // With sumIn: half of a VMA holding 4 MiB of THP.
  const v = vma(0x40000000, 0x40800000, { anonHugePages: 4 * MiB });
  assert.equal(sumIn([v], 0x40400000, 0x40800000, hugeBytes), 2 * MiB);
});

test("parsing 2 MB of smaps yields every VMA", () => {
  // Speed is measured in bench/parse_bench.ts, not here.
  const one = fixture("deno_smaps.txt");
  const copies = Math.ceil(2_000_000 / one.length);
  const vmas = parseSmaps(one.repeat(copies));
  assert.equal(vmas.length, parseSmaps(one).length * copies);
});
