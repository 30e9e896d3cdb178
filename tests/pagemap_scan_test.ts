// PAGEMAP_SCAN in this process: anonymous pages touched and not, the zero
// page, a file's pages, and agreement with smaps for a whole VMA.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  libc,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
} from "../src/sys/libc.ts";
import { memory } from "../src/sys/ffi.ts";
import { parseMaps, parseSmaps } from "../src/sys/maps.ts";
import {
  PAGE_IS_FILE,
  PAGE_IS_HUGE,
  PAGE_IS_PFNZERO,
  PAGE_IS_PRESENT,
  PAGE_IS_SWAPPED,
  PAGEMAP_SCAN,
  pagemapScanAvailable,
  PM_SCAN_ARG_SIZE,
  scanRuns,
  withPagemapScan,
} from "../src/sys/pagemap_scan.ts";

const c = libc();
const SKIP = pagemapScanAvailable(c) ?? false;
if (SKIP) console.log(`pagemap_scan_test: skipped: ${SKIP}`);
const PAGE = c.pageSize();
/** MADV_NOHUGEPAGE: keeps the test's mapping on 4 KiB pages. */
const MADV_NOHUGEPAGE = 15;

/** Bytes of `[start, end)` in each state, from one scan. */
function residency(start: number, end: number) {
  const r = { present: 0, huge: 0, file: 0, anon: 0, swapped: 0, zero: 0 };
  for (const x of scanRuns(c, start, end)) {
    const n = x.end - x.start;
    const k = x.categories;
    if (k & PAGE_IS_SWAPPED) r.swapped += n;
    if (!(k & PAGE_IS_PRESENT)) continue;
    if (k & PAGE_IS_PFNZERO) {
      r.zero += n;
      continue;
    }
    r.present += n;
    if (k & PAGE_IS_HUGE) r.huge += n;
    if (k & PAGE_IS_FILE) r.file += n;
    else r.anon += n;
  }
  return r;
}

/** Descriptors open in this process. */
function openFds(): number {
  const fd = c.openRead("/proc/self/fd");
  try {
    return c.listDir(fd).length - 1;
  } finally {
    c.close(fd);
  }
}

test("PAGEMAP_SCAN is _IOWR('f', 16, 96 bytes)", () => {
  assert.equal(PAGEMAP_SCAN >>> 30, 3);
  assert.equal((PAGEMAP_SCAN >>> 16) & 0x3fff, PM_SCAN_ARG_SIZE);
  assert.equal((PAGEMAP_SCAN >>> 8) & 0xff, "f".charCodeAt(0));
  assert.equal(PAGEMAP_SCAN & 0xff, 16);
});

test("anonymous pages: written, read-only touched (zero page), untouched", {
  skip: SKIP,
}, () => {
  const len = 16 * PAGE;
  const at = c.mmap(
    0,
    len,
    PROT_READ | PROT_WRITE,
    MAP_PRIVATE | MAP_ANONYMOUS,
  );
  try {
    c.madvise(at, len, MADV_NOHUGEPAGE);
    const m = memory(at, len);
    for (const i of [0, 1, 2, 7]) m[i * PAGE] = 1; // 4 pages written
    let sum = 0;
    for (const i of [9, 10]) sum += m[i * PAGE]; // 2 pages read: zero page
    assert.equal(sum, 0);
    const r = residency(at, at + len);
    assert.equal(r.present, 4 * PAGE);
    assert.equal(r.anon, 4 * PAGE);
    assert.equal(r.file, 0);
    assert.equal(r.huge, 0);
    assert.equal(r.zero, 2 * PAGE);
    const runs = scanRuns(c, at, at + len);
    assert.deepEqual(
      runs.map((x) => [(x.start - at) / PAGE, (x.end - at) / PAGE]),
      [[0, 3], [7, 8], [9, 11]],
    );
    // A smaller range sees only its part.
    assert.equal(residency(at + PAGE, at + 2 * PAGE).present, PAGE);
  } finally {
    c.munmap(at, len);
  }
  assert.throws(() => scanRuns(c, 1, PAGE), RangeError);
  assert.throws(() => scanRuns(c, 2 * PAGE, PAGE), RangeError);
});

test("the executable's VMAs: file pages, and the same totals as smaps", {
  skip: SKIP,
}, () => {
  const exe = c.readlink("/proc/self/exe");
  const text = parseMaps(c.readText("/proc/self/maps")).filter((v) =>
    v.path === exe && !v.write
  );
  assert.ok(text.length > 0);
  for (const v of text) {
    // Pages fault in while the test runs: smaps' figure lies between two
    // scans taken around it.
    const a = residency(v.start, v.end);
    const s = parseSmaps(c.readText("/proc/self/smaps")).find((x) =>
      x.start === v.start
    )!;
    const b = residency(v.start, v.end);
    assert.equal(a.anon + a.file, a.present);
    for (
      const [k, smaps] of [
        ["present", s.rss],
        ["anon", s.anonymous],
        ["huge", s.anonHugePages + s.filePmdMapped + s.shmemPmdMapped],
        ["swapped", s.swap],
      ] as const
    ) {
      const lo = Math.min(a[k], b[k]);
      const hi = Math.max(a[k], b[k]);
      assert.ok(
        lo <= smaps && smaps <= hi,
        `${v.perms} ${
          v.start.toString(16)
        } ${k}: smaps ${smaps}, scans ${lo}..${hi}`,
      );
    }
  }
});

test("no descriptor stays open after a scan or a scope", { skip: SKIP }, () => {
  const at = c.getauxval(3) - (c.getauxval(3) % PAGE);
  const before = openFds();
  scanRuns(c, at, at + PAGE);
  assert.equal(openFds(), before);
  let inside = 0;
  assert.throws(() =>
    withPagemapScan(c, () => {
      withPagemapScan(c, () => scanRuns(c, at, at + PAGE));
      scanRuns(c, at, at + PAGE);
      inside = openFds();
      throw new Error("out");
    })
  );
  assert.equal(inside, before + 1);
  assert.equal(openFds(), before);
});
