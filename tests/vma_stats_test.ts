// The per-range statistics (PROCMAP_QUERY + PAGEMAP_SCAN) equal a smaps
// read of the same process, for the executable's VMAs before and after a
// remap on every backend, on both runtimes; with PAGE_PRIMER_SMAPS=1 the
// records come from smaps. Each child compares in itself
// (tests/fixtures/vma_stats_child.ts): fast, smaps, fast again, so pages
// faulting in meanwhile bracket the smaps figure.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import process from "node:process";
import {
  isRoot,
  raiseHugetlbPool,
  ROOT,
  run,
  runtimeCommand,
  RUNTIMES,
} from "./helpers.ts";
import { libc } from "../src/sys/libc.ts";
import { parseMaps } from "../src/sys/maps.ts";
import {
  addVmaStats,
  alignedRanges,
  canMapMore,
  countVmas,
  fastPathUnavailable,
  readFileVmas,
  readVmas,
  readVmaStats,
  withVmaQueries,
} from "../src/sys/vma_stats.ts";

const UNAVAILABLE = fastPathUnavailable(libc(), { smaps: false }) ?? false;
if (UNAVAILABLE) {
  console.log(`vma_stats_test: fast path skipped: ${UNAVAILABLE}`);
}
/** Slack beyond the bracket: a few pages faulted between the reads. */
const SLACK = 16 * 4096;
/** 2 MiB pages for the hugetlb backend: text and rodata of either runtime. */
const POOL_PAGES = 128;

interface Side {
  rows: Record<string, unknown>[];
  source: string;
}
interface Report {
  unavailable: string | null;
  outcome?: { ok: boolean; backend?: string; remapped?: number };
  before: Side;
  after: Side;
  defaultSource: string;
  defaultWhy: string | null;
}

async function child(
  rt: "deno" | "bun",
  remap: unknown,
  env: Record<string, string> = {},
): Promise<Report> {
  const argv = runtimeCommand(rt, `${ROOT}tests/fixtures/vma_stats_child.ts`, [
    remap === undefined ? "none" : JSON.stringify(remap),
  ]);
  // The comparison needs the fast path also when the suite runs with
  // PAGE_PRIMER_SMAPS=1 (the smaps fallback forced for every test).
  const r = await run(argv, {
    env: { PAGE_PRIMER_SMAPS: "", ...env },
    timeoutMs: 120_000,
  });
  const line = /^VMA_STATS (.*)$/m.exec(r.stdout);
  assert.ok(line, `no report (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(line[1]);
}

/** Every field equal, numbers within the bracket of the two fast reads. */
function assertSame(side: Side, label: string): void {
  assert.ok(side.rows.length > 0, `${label}: no VMA over the executable`);
  for (const row of side.rows) {
    const where = `${label} ${(row.start as number).toString(16)} ${row.path}`;
    for (const [k, v] of Object.entries(row)) {
      if (!Array.isArray(v)) continue;
      const [a, s, b] = v;
      if (typeof s !== "number") {
        assert.ok(a === s && s === b, `${where} ${k}: ${JSON.stringify(v)}`);
        continue;
      }
      assert.ok(
        typeof a === "number" && typeof b === "number" &&
          Math.min(a, b) - SLACK <= s && s <= Math.max(a, b) + SLACK,
        `${where} ${k}: fast ${a}, smaps ${s}, fast ${b}`,
      );
    }
  }
}

const BACKENDS: [string, () => unknown, boolean | string][] = [
  ["no remap", () => undefined, false],
  ["thp", () => ({ backend: "thp" }), false],
  ["4k copy", () => ({ pageSize: "4k" }), false],
  ["memfd", () => ({ backend: "memfd" }), false],
  [
    "hugetlb",
    () => ({ backend: "hugetlb" }),
    isRoot() ? false : "needs root to size the hugetlb pool",
  ],
  ["shared", () => ({ share: { dir: shareDir() } }), false],
];

let shares = 0;
const madeShares: string[] = [];
function shareDir(): string {
  const d = `/tmp/page-primer-vma-stats-${process.pid}-${shares++}`;
  madeShares.push(d);
  return d;
}

for (const rt of RUNTIMES) {
  for (const [name, options, skip] of BACKENDS) {
    test(`${rt}: fast path equals smaps, ${name}`, {
      skip: UNAVAILABLE || skip,
    }, async () => {
      const pool = name === "hugetlb"
        ? raiseHugetlbPool(POOL_PAGES)
        : undefined;
      try {
        const r = await child(rt, options());
        assert.equal(r.before.source, "query");
        assert.equal(r.after.source, "query");
        assertSame(r.before, "before");
        assertSame(r.after, "after");
        if (r.outcome) {
          assert.ok((r.outcome.remapped ?? 0) > 0, JSON.stringify(r.outcome));
        }
        if (name === "hugetlb" && r.outcome?.backend === "hugetlb") {
          const held = r.after.rows.reduce(
            (n, row) => n + (row.privateHugetlb as number[])[1],
            0,
          );
          assert.ok(held > 0, "hugetlb copies hold no Private_Hugetlb");
        }
      } finally {
        pool?.restore();
        for (const d of madeShares.splice(0)) {
          rmSync(d, { recursive: true, force: true });
        }
      }
    });
  }
  test(`${rt}: PAGE_PRIMER_SMAPS=1 forces the smaps path`, async () => {
    const r = await child(rt, { backend: "thp" }, { PAGE_PRIMER_SMAPS: "1" });
    assert.equal(r.defaultSource, "smaps");
    assert.match(r.defaultWhy ?? "", /PAGE_PRIMER_SMAPS=1/);
    assert.equal(r.outcome?.ok, true);
  });
}

test("alignedRanges widens to 2 MiB and merges", () => {
  const M = 2 * 1024 * 1024;
  assert.deepEqual(
    alignedRanges([
      { start: 5 * M + 4096, end: 5 * M + 8192 },
      { start: M + 1, end: 2 * M },
      { start: 2 * M, end: 3 * M - 1 },
      { start: 9 * M, end: 9 * M },
    ]),
    [{ start: M, end: 3 * M }, { start: 5 * M, end: 6 * M }],
  );
});

test("addVmaStats reads only what its records do not cover; canMapMore; countVmas", () => {
  const c = libc();
  const exe = c.readlink("/proc/self/exe");
  const ranges = parseMaps(c.readText("/proc/self/maps"))
    .filter((v) => v.path === exe)
    .map((v) => ({ start: v.start, end: v.end }));
  const vmas = readVmaStats(c, ranges).vmas;
  assert.equal(vmas.length, ranges.length);
  assert.deepEqual(
    addVmaStats(c, vmas, ranges).map((v) => v.start),
    vmas.map((v) => v.start),
  );
  const more = addVmaStats(c, vmas.slice(1), ranges);
  assert.deepEqual(more.map((v) => v.start), vmas.map((v) => v.start));
  // Inside `known` (the ranges the records were read for), nothing is
  // read again, even where the records leave a hole.
  assert.deepEqual(
    addVmaStats(c, vmas.slice(1), ranges, { known: ranges }).map((v) =>
      v.start
    ),
    vmas.slice(1).map((v) => v.start),
  );
  const [first] = ranges;
  assert.deepEqual(
    addVmaStats(c, vmas.slice(1), ranges, {
      known: [{ start: first.start + 4096, end: first.end }],
    }).map((v) => v.start),
    vmas.map((v) => v.start),
  );
  assert.equal(canMapMore(c, 12), true);
  const n = countVmas(c);
  const maps = parseMaps(c.readText("/proc/self/maps")).length;
  assert.ok(Math.abs(n - maps) < 16, `${n} lines, ${maps} VMAs`);
});

test("readFileVmas equals the file-backed VMAs of /proc/self/maps, on both paths", () => {
  const c = libc();
  for (const smaps of [false, true]) {
    for (let attempt = 0;; attempt++) {
      const maps = parseMaps(c.readText("/proc/self/maps"))
        .filter((v) => v.inode !== 0);
      const got = readFileVmas(c, { smaps });
      const again = parseMaps(c.readText("/proc/self/maps"))
        .filter((v) => v.inode !== 0);
      if (JSON.stringify(maps) !== JSON.stringify(again) && attempt < 5) {
        continue;
      }
      assert.ok(maps.length > 0);
      assert.deepEqual(got, maps);
      break;
    }
  }
});

test("readVmas equals /proc/self/maps over the ranges, on both paths", () => {
  const c = libc();
  const exe = c.readlink("/proc/self/exe");
  for (const smaps of [false, true]) {
    for (let attempt = 0;; attempt++) {
      const maps = parseMaps(c.readText("/proc/self/maps"));
      const mine = maps.filter((v) => v.path === exe);
      // The executable's 2 MiB-aligned span: its VMAs, holes, neighbours.
      const ranges = alignedRanges(mine);
      const want = maps.filter((v) =>
        ranges.some((r) => v.start < r.end && r.start < v.end)
      );
      const got = readVmas(c, ranges, { smaps });
      const again = parseMaps(c.readText("/proc/self/maps"));
      if (JSON.stringify(maps) !== JSON.stringify(again) && attempt < 5) {
        continue;
      }
      assert.ok(want.length >= mine.length);
      assert.deepEqual(got, want);
      break;
    }
  }
  assert.throws(() => readVmas(c, [{ start: 2, end: 1 }]), RangeError);
});

test("no descriptor stays open after the per-range reads, in or out of a scope", () => {
  const c = libc();
  // Only descriptors of /proc/<pid>/maps and /proc/<pid>/pagemap: the
  // runtime's own threads open and close others meanwhile.
  const fds = () => {
    const fd = c.openRead("/proc/self/fd");
    try {
      return c.listDir(fd).filter((n) => {
        try {
          return /^\/proc\/(self|\d+)\/(maps|pagemap)$/.test(
            c.readlink(`/proc/self/fd/${n}`),
          );
        } catch {
          return false; // closed meanwhile
        }
      }).length;
    } finally {
      c.close(fd);
    }
  };
  const at = c.getauxval(3) - (c.getauxval(3) % 4096);
  const ranges = [{ start: at, end: at + 4096 }];
  const before = fds();
  readVmaStats(c, ranges);
  readVmas(c, ranges);
  readFileVmas(c);
  assert.equal(fds(), before);
  let inside = -1;
  assert.throws(() =>
    withVmaQueries(c, () => {
      readVmaStats(c, ranges);
      readVmas(c, ranges);
      inside = fds();
      throw new Error("out");
    })
  );
  assert.equal(fds(), before);
  // Both descriptors were held through the scope (none on the smaps path,
  // which also serves the statistics when this process has locked memory).
  if (fastPathUnavailable(c) === undefined) {
    assert.ok(inside >= before + 1, `${inside} open in the scope`);
    if (readVmaStats(c, ranges).source === "query") {
      assert.equal(inside, before + 2);
    }
  }
});
