// Pure logic on fixtures: segment ranges, selection, measuring from smaps,
// the lock budget, formatting, the outcome report and argument checking.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  aliasRanges,
  byPriority,
  measureRange,
  permsOf,
  segmentKind,
  segmentRanges,
  selectObjects,
} from "../src/sys/segments.ts";
import { parseMaps, parseSmaps } from "../src/sys/maps.ts";
import { limitMessage, lockBudget } from "../src/mlock.ts";
import { formatBytes, formatPercent, formatTable } from "../src/sys/format.ts";
import { PrimeOutcome, type SegmentReport, totalsOf } from "../src/outcome.ts";
import { parseStatus } from "../src/sys/objects.ts";
import { prime } from "../mod.ts";
import {
  forHugetlb,
  HUGE_PAGE,
  hugePagesNeeded,
  plannedCoverage,
  planRemap,
} from "../src/remap/plan.ts";
import { thpVerdict } from "../src/sys/thp.ts";
import { chooseBackend } from "../src/remap/backend.ts";
import { devString } from "../src/remap/record.ts";

const MiB = 1024 * 1024;

// deno 2.9.6's LOAD headers (readelf -Wl), loaded at the bias seen in the
// deno_smaps.txt fixture.
const DENO_LOADS = [
  {
    index: 0,
    flags: 4,
    vaddr: 0x0,
    memsz: 0x1b8dec6,
    filesz: 0x1b8dec6,
    offset: 0,
  },
  {
    index: 1,
    flags: 5,
    vaddr: 0x1e04000,
    memsz: 0x3cf3b70,
    filesz: 0x3cf3b70,
    offset: 0x1b8e000,
  },
  {
    index: 2,
    flags: 6,
    vaddr: 0x5af8b70,
    memsz: 0x271490,
    filesz: 0x270cf8,
    offset: 0x5881b70,
  },
  {
    index: 3,
    flags: 6,
    vaddr: 0x5d6a868,
    memsz: 0x67488,
    filesz: 0x38d58,
    offset: 0x5af2868,
  },
];

function denoFixture() {
  const text = readFileSync(
    new URL("./fixtures/maps/deno_smaps.txt", import.meta.url),
    "utf8",
  );
  const smaps = parseSmaps(text);
  const exe = smaps.find((v) => v.path.endsWith("/deno") && v.offset === 0)!;
  assert.ok(exe, "fixture lacks the deno executable's first VMA");
  return { smaps, bias: exe.start, path: exe.path };
}

test("segmentKind and permsOf follow p_flags", () => {
  assert.equal(segmentKind(5), "text");
  assert.equal(segmentKind(4), "rodata");
  assert.equal(segmentKind(6), "data");
  assert.equal(segmentKind(7), "data");
  assert.equal(permsOf(5), "r-x");
  assert.equal(permsOf(6), "rw-");
  assert.equal(permsOf(4), "r--");
});

test("segmentRanges page-aligns each LOAD at the load bias", () => {
  const r = segmentRanges(
    { path: "/x", main: true, bias: 0x555500000000, segments: DENO_LOADS },
    4096,
  );
  assert.equal(r.length, 4);
  assert.equal(r[1].start, 0x555500000000 + 0x1e04000);
  assert.equal(r[1].end, 0x555500000000 + 0x5af8000);
  assert.equal(r[2].start, 0x555500000000 + 0x5af8000);
  assert.equal(r[3].start, 0x555500000000 + 0x5d6a000);
  assert.equal(r[3].end, 0x555500000000 + 0x5dd2000);
  assert.deepEqual(r.map((x) => x.kind), ["rodata", "text", "data", "data"]);
  for (const x of r) {
    assert.equal(x.start % 4096, 0);
    assert.equal(x.end % 4096, 0);
  }
});

test("segmentRanges drops empty segments", () => {
  const r = segmentRanges({
    path: "/x",
    main: true,
    bias: 0,
    segments: [{
      index: 0,
      flags: 4,
      vaddr: 0x1000,
      memsz: 0,
      filesz: 0,
      offset: 0,
    }],
  }, 4096);
  assert.equal(r.length, 0);
});

test("measureRange on the deno fixture matches the smaps lines", () => {
  const { smaps, bias } = denoFixture();
  const [, text] = segmentRanges(
    { path: "/x", main: true, bias, segments: DENO_LOADS },
    4096,
  );
  const m = measureRange(smaps, text.start, text.end);
  const vma = smaps.find((v) => v.start === text.start)!;
  assert.ok(vma, "no VMA starts at the text segment");
  assert.equal(vma.perms, "r-xp");
  assert.equal(m.mapped, text.end - text.start);
  assert.equal(m.resident, vma.rss);
  assert.equal(m.locked, vma.vmFlags.includes("lo") ? vma.rss : 0);
  assert.equal(m.lockedPss, vma.locked);
});

test("aliasRanges finds V8's second mapping of deno's text, nothing inside LOADs", () => {
  const { smaps, bias, path } = denoFixture();
  const obj = { path, main: true, bias, segments: DENO_LOADS };
  const loads = segmentRanges(obj, 4096);
  const aliases = aliasRanges(obj, loads, smaps);
  assert.equal(aliases.length, 1, JSON.stringify(aliases));
  assert.equal(aliases[0].start, 0x7f1ff3dc0000);
  assert.equal(aliases[0].end, 0x7f1ff3fe6000);
  assert.equal(aliases[0].kind, "text");
  assert.equal(aliases[0].origin, "alias");
  assert.equal(aliases[0].index, 4);
  // Another object's path matches nothing.
  assert.equal(aliasRanges({ ...obj, path: "/nope" }, loads, smaps).length, 0);
});

test("measureRange counts only VM_LOCKED VMAs as locked, by Rss", () => {
  const base = parseSmaps(
    "1000-3000 r-xp 00000000 08:01 1 /bin/x\nSize: 8 kB\nRss: 8 kB\nLocked: 4 kB\nVmFlags: rd ex lo\n" +
      "3000-5000 r--p 00000000 08:01 1 /bin/x\nSize: 8 kB\nRss: 4 kB\nLocked: 0 kB\nVmFlags: rd\n",
  );
  const m = measureRange(base, 0x1000, 0x5000);
  assert.equal(m.mapped, 16384);
  assert.equal(m.resident, 12288);
  assert.equal(m.locked, 8192); // Rss of the "lo" VMA, not its PSS-like Locked
  assert.equal(m.lockedPss, 4096);
});

test("selectObjects: main, all, substring, RegExp, predicate", () => {
  const objs = [
    { path: "/usr/bin/deno", main: true },
    { path: "/lib/x86_64-linux-gnu/libc.so.6", main: false },
    { path: "/lib/x86_64-linux-gnu/libm.so.6", main: false },
  ];
  assert.deepEqual(selectObjects(objs, ["main"]).map((o) => o.path), [
    "/usr/bin/deno",
  ]);
  assert.equal(selectObjects(objs, ["all"]).length, 3);
  assert.deepEqual(selectObjects(objs, ["libc"]).map((o) => o.path), [
    objs[1].path,
  ]);
  assert.equal(selectObjects(objs, [/lib[cm]\.so/g]).length, 2);
  assert.equal(
    selectObjects(objs, [/lib[cm]\.so/g]).length,
    2,
    "a global RegExp must not keep state",
  );
  assert.equal(selectObjects(objs, [(o) => !o.main]).length, 2);
  assert.equal(selectObjects(objs, ["nothing-like-this"]).length, 0);
});

test("byPriority puts text first, then rodata, then data", () => {
  const r = byPriority([
    { kind: "data" as const, start: 1 },
    { kind: "text" as const, start: 3 },
    { kind: "rodata" as const, start: 0 },
    { kind: "text" as const, start: 2 },
  ]);
  assert.deepEqual(r.map((x) => `${x.kind}${x.start}`), [
    "text2",
    "text3",
    "rodata0",
    "data1",
  ]);
});

test("lockBudget: CAP_IPC_LOCK ignores the limit; soft raised up to hard", () => {
  assert.equal(
    lockBudget(100 * MiB, 0, { cur: 8 * MiB, max: 8 * MiB }, true).fits,
    true,
  );
  const short = lockBudget(100 * MiB, 0, { cur: 8 * MiB, max: 8 * MiB }, false);
  assert.equal(short.fits, false);
  assert.equal(short.raiseTo, undefined);
  const raise = lockBudget(
    100 * MiB,
    MiB,
    { cur: 8 * MiB, max: Infinity },
    false,
  );
  assert.equal(raise.fits, true);
  assert.equal(raise.raiseTo, 101 * MiB);
  const partial = lockBudget(
    100 * MiB,
    0,
    { cur: 8 * MiB, max: 64 * MiB },
    false,
  );
  assert.equal(partial.fits, false);
  assert.equal(partial.raiseTo, 64 * MiB);
  assert.equal(
    lockBudget(MiB, 0, { cur: 8 * MiB, max: 8 * MiB }, false).raiseTo,
    undefined,
  );
});

test("limitMessage names the limit, the need and every remedy", () => {
  const m = limitMessage(91.4 * MiB, 8 * MiB, 8 * MiB);
  assert.match(m, /RLIMIT_MEMLOCK is 8\.0 MiB \(hard limit 8\.0 MiB\)/);
  assert.match(m, /needs 91\.4 MiB/);
  assert.match(m, /ulimit -l 93594/);
  assert.match(m, /LimitMEMLOCK=infinity/);
  assert.match(m, /CAP_IPC_LOCK/);
  assert.match(limitMessage(MiB, Infinity, Infinity), /unlimited/);
});

test("parseStatus reads VmLck, CapEff bit 14 and Threads", () => {
  const s = parseStatus(
    "Name:\tdeno\nThreads:\t6\nVmLck:\t    1024 kB\nCapEff:\t000001ffffffffff\n",
  );
  assert.deepEqual(s, { vmLck: 1024 * 1024, capIpcLock: true, threads: 6 });
  assert.equal(parseStatus("CapEff:\t000001ffffffbfff\n").capIpcLock, false);
});

test("formatBytes, formatPercent, formatTable", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(2048), "2 KiB");
  assert.equal(formatBytes(61 * MiB), "61.0 MiB");
  assert.equal(formatPercent(1, 0), "-");
  assert.equal(formatPercent(99, 100), "99.0%");
  const t = formatTable(["a", "n"], [["x", "1"], ["yy", "100"]], [
    "left",
    "right",
  ]);
  assert.equal(t, "a     n\n--  ---\nx     1\nyy  100");
});

function report(over: Partial<SegmentReport>): SegmentReport {
  return {
    object: "/usr/bin/deno",
    index: 1,
    kind: "text",
    origin: "load",
    perms: "r-x",
    start: 0x1000,
    end: 0x1000 + 61 * MiB,
    bytes: 61 * MiB,
    mapped: 61 * MiB,
    residentBefore: 13 * MiB,
    resident: 61 * MiB,
    locked: 61 * MiB,
    lockedPss: 61 * MiB,
    huge: 0,
    actions: ["mlock"],
    status: "ok",
    ...over,
  };
}

test("PrimeOutcome: totals, table, errors, JSON", () => {
  const segs = [
    report({}),
    report({
      index: 0,
      kind: "rodata",
      perms: "r--",
      bytes: 27 * MiB,
      resident: 12 * MiB,
      locked: 0,
      status: "failed",
      error: { step: "mlock", code: "ENOMEM", errno: 12, message: "too much" },
    }),
  ];
  const totals = totalsOf(segs);
  assert.equal(totals.failed, 1);
  assert.equal(totals.bytes, 88 * MiB);
  assert.equal(totals.locked, 61 * MiB);
  const out = new PrimeOutcome({
    ok: false,
    reason: "1 of 2 segment(s) failed",
    disabled: false,
    runtime: "deno 2.9.6",
    pid: 42,
    kernel: "6.18",
    requested: ["mlock"],
    segments: segs,
    totals,
    durations: {
      inspectMs: 1,
      mlockMs: 2,
      populateMs: 0,
      remapMs: 0,
      perfMapMs: 0,
      totalMs: 3,
    },
    warnings: ["w1"],
  });
  const text = out.format();
  assert.match(text, /deno 2\.9\.6, pid 42, Linux 6\.18: mlock NOT OK/);
  assert.match(
    text,
    /deno\s+1\s+r-x\s+text\s+61\.0\s+13\.0\s+61\.0\s+61\.0\s+0\.0\s+mlock/,
  );
  assert.match(text, /FAILED mlock: ENOMEM/);
  assert.match(text, /error: deno seg 0: too much/);
  assert.match(text, /warning: w1/);
  let logged = "";
  out.log({ format: "json", write: (t) => (logged = t) });
  const back = JSON.parse(logged);
  assert.equal(back.ok, false);
  assert.equal(back.segments[1].error.code, "ENOMEM");
  assert.equal(back.totals.bytes, 88 * MiB);
});

test("bad arguments throw TypeError/RangeError naming what is accepted", () => {
  // deno-lint-ignore no-explicit-any
  const p = prime() as any;
  assert.throws(() => p.mlock("yes"), {
    name: "TypeError",
    message:
      /mlock\(\) accepts true, false or \{ onFault\?: boolean \}; got string "yes"/,
  });
  assert.throws(() => p.mlock({ onfault: true }), {
    name: "TypeError",
    message: /unknown option "onfault"; accepted: onFault/,
  });
  assert.throws(() => p.mlock({ onFault: 1 }), {
    name: "TypeError",
    message: /onFault must be a boolean/,
  });
  assert.throws(() => p.populate(1), {
    name: "TypeError",
    message: /populate\(\) accepts true or false/,
  });
  assert.throws(() => p.populate({ x: 1 }), {
    name: "TypeError",
    message: /unknown option "x"/,
  });
  assert.throws(() => p.objects(), { name: "RangeError" });
  assert.throws(() => p.objects(42), {
    name: "TypeError",
    message: /got number 42/,
  });
  assert.throws(() => p.objects(""), { name: "TypeError" });
  assert.throws(() => p.strict("true"), { name: "TypeError" });
  // Valid calls chain.
  assert.equal(
    p.mlock(false).populate(true).objects("main", /libc/).strict(false),
    p,
  );
});

// --- remap planning -------------------------------------------------------

function denoPlan(align: "aggressive" | "conservative") {
  const { smaps, bias, path } = denoFixture();
  const obj = { path, main: true, bias, segments: DENO_LOADS };
  const ranges = segmentRanges(obj, 4096);
  return { plan: planRemap([obj], ranges, smaps, align), ranges, smaps };
}

test("planRemap (deno fixture, aggressive): rodata and text, 2 MiB aligned, gaps free", () => {
  const { plan, ranges, smaps } = denoPlan("aggressive");
  assert.deepEqual(plan.regions.map((r) => r.kind), ["rodata", "text"]);
  for (const r of plan.regions) {
    assert.equal(r.start % HUGE_PAGE, 0);
    assert.equal(r.end % HUGE_PAGE, 0);
    assert.ok(r.dataStart >= r.start && r.dataEnd <= r.end);
    for (const g of r.gaps) {
      assert.ok(
        !smaps.some((v) => v.start < g.end && g.start < v.end),
        "gap is not free",
      );
    }
  }
  const [ro, text] = plan.regions;
  // rodata grows down to its 2 MiB boundary and up into the gap before text.
  assert.equal(ro.dataStart, ranges[0].start);
  assert.equal(ro.dataEnd, ranges[0].end);
  // text grows down into the gap, but ends at the last boundary before data.
  assert.equal(text.dataStart, ranges[1].start);
  assert.equal(text.end, Math.floor(ranges[1].end / HUGE_PAGE) * HUGE_PAGE);
  assert.equal(text.fileOffset, 0x1b8e000);
  assert.ok(ro.end <= text.start, "rodata and text share a huge page");
  // Everything writable is skipped with the reason.
  const writable = plan.skipped.filter((s) => /writable/.test(s.reason));
  assert.ok(writable.length >= 2);
  assert.ok(writable.every((s) => s.perms[1] === "w"));
  const cov = plannedCoverage(plan, ranges[1].start, ranges[1].end) /
    (ranges[1].end - ranges[1].start);
  assert.ok(cov > 0.96, `planned text coverage ${cov}`);
});

test("planRemap (conservative) stays inside each VMA", () => {
  const { plan, ranges } = denoPlan("conservative");
  for (const r of plan.regions) {
    assert.equal(r.gaps.length, 0);
    assert.ok(r.start >= r.vmaStart && r.end <= r.vmaEnd);
    assert.equal(r.dataStart, r.start);
  }
  const text = plan.regions.find((r) => r.kind === "text")!;
  assert.equal(text.start, Math.ceil(ranges[1].start / HUGE_PAGE) * HUGE_PAGE);
});

test("planRemap: a mapping in the gap stops the growth; ranges already ours are skipped", () => {
  const { smaps, bias, path } = denoFixture();
  const obj = { path, main: true, bias, segments: DENO_LOADS };
  const ranges = segmentRanges(obj, 4096);
  const textStart = ranges[1].start;
  const blocker = parseMaps(
    `${(textStart - 4096).toString(16)}-${
      textStart.toString(16)
    } rw-p 00000000 00:00 0\n`,
  )[0];
  const vmas = [...smaps, blocker].sort((a, b) => a.start - b.start);
  const plan = planRemap([obj], ranges, vmas, "aggressive");
  const text = plan.regions.find((r) => r.kind === "text")!;
  assert.equal(text.start, Math.ceil(textStart / HUGE_PAGE) * HUGE_PAGE);
  const again = planRemap([obj], ranges, smaps, "aggressive", plan.regions);
  assert.equal(again.regions.length, 0);
  assert.equal(
    again.skipped.filter((s) => /already remapped/.test(s.reason)).length,
    2,
  );
});

test("planRemap (bun fixture): non-PIE text cannot grow into rodata", () => {
  const text = readFileSync(
    new URL("./fixtures/maps/bun_smaps.txt", import.meta.url),
    "utf8",
  );
  const smaps = parseSmaps(text);
  const exe = smaps.find((v) => v.path.endsWith("bun.exe") && v.offset === 0)!;
  const obj = {
    path: exe.path,
    main: true,
    bias: 0,
    segments: [
      {
        index: 0,
        flags: 4,
        vaddr: 0x200000,
        memsz: 0x1838764,
        filesz: 0x1838764,
        offset: 0,
      },
      {
        index: 1,
        flags: 5,
        vaddr: 0x1a40d00,
        memsz: 0x4e08f90,
        filesz: 0x4e08f90,
        offset: 0x1838d00,
      },
      {
        index: 2,
        flags: 6,
        vaddr: 0x684ac90,
        memsz: 0x1d6848,
        filesz: 0x1d248,
        offset: 0x6641c90,
      },
    ],
  };
  const ranges = segmentRanges(obj, 4096);
  const plan = planRemap([obj], ranges, smaps, "aggressive");
  const t = plan.regions.find((r) => r.kind === "text")!;
  assert.equal(t.start, 0x1c00000);
  assert.equal(t.gaps.length, 0);
  const ro = plan.regions.find((r) => r.kind === "rodata")!;
  assert.equal(ro.start, 0x200000);
  assert.equal(ro.end, 0x1a00000);
  const cov = plannedCoverage(plan, ranges[1].start, ranges[1].end) /
    (ranges[1].end - ranges[1].start);
  assert.ok(cov >= 0.97, `bun text ${cov}`);
});

test("thpVerdict: process-wide disable, never with and without MADV_COLLAPSE", () => {
  assert.equal(
    thpVerdict("always [madvise] never", "[madvise]", false, "6.18.1").usable,
    true,
  );
  const off = thpVerdict("always [madvise] never", "[madvise]", true, "6.18.1");
  assert.equal(off.usable, false);
  assert.match(off.reason!, /PR_SET_THP_DISABLE/);
  const never61 = thpVerdict(
    "always madvise [never]",
    "[madvise]",
    false,
    "6.1.0",
  );
  assert.equal(never61.usable, true);
  assert.match(never61.reason!, /MADV_COLLAPSE/);
  const never515 = thpVerdict(
    "always madvise [never]",
    "[madvise]",
    false,
    "5.15.0",
  );
  assert.equal(never515.usable, false);
  assert.match(
    never515.reason!,
    /echo madvise > \/sys\/kernel\/mm\/transparent_hugepage\/enabled/,
  );
  assert.equal(thpVerdict(undefined, undefined, false, "6.18.1").usable, false);
});

test("devString decodes st_dev like /proc/self/maps", () => {
  assert.equal(devString(0xfe00), "fe:00");
  assert.equal(devString(0x803), "08:03");
  assert.equal(devString((259 << 8) | 2), "103:02");
});

test("chooseBackend: forced, auto with and without a pool, nothing possible", () => {
  const pool = (available: number, needed = 44) => ({
    total: available,
    available,
    needed,
    command: `sysctl -w vm.nr_hugepages=${needed}`,
  });
  const thpOk = { usable: true };
  const thpOff = {
    usable: false,
    reason: "THP is disabled for this whole process",
  };
  assert.deepEqual(chooseBackend("auto", pool(44), thpOk), {
    backend: "hugetlb",
  });
  assert.deepEqual(chooseBackend("auto", pool(43), thpOk), { backend: "thp" });
  assert.deepEqual(chooseBackend("thp", pool(100), thpOk), { backend: "thp" });
  const forced = chooseBackend("hugetlb", pool(0), thpOk);
  assert.match(
    (forced as { unavailable: string }).unavailable,
    /hugetlb pool has 0 free 2 MiB page\(s\), the remap needs 44: sysctl -w vm\.nr_hugepages=44/,
  );
  const none = chooseBackend("auto", pool(0), thpOff);
  assert.match(
    (none as { unavailable: string }).unavailable,
    /THP: THP is disabled.*hugetlb: the hugetlb pool/,
  );
  assert.equal(
    "unavailable" in chooseBackend("auto", pool(0, 0), thpOk),
    false,
  );
});

test("forHugetlb: no growth below a segment that starts at file offset 0", () => {
  const { smaps, bias, path } = denoFixture();
  const obj = { path, main: true, bias, segments: DENO_LOADS };
  const plan = planRemap([obj], segmentRanges(obj, 4096), smaps, "aggressive");
  const h = forHugetlb(plan);
  for (const r of h.regions) {
    assert.ok(
      r.fileOffset - (r.dataStart - r.start) >= 0,
      `${r.kind} would map before the file`,
    );
    assert.equal(r.start % HUGE_PAGE, 0);
  }
  // rodata starts at file offset 0 and the fixture's bias is not 2 MiB aligned.
  const ro = h.regions.find((r) => r.kind === "rodata")!;
  assert.equal(ro.start, Math.ceil(bias / HUGE_PAGE) * HUGE_PAGE);
  assert.equal(
    hugePagesNeeded(h),
    h.regions.reduce((n, r) => n + (r.end - r.start) / HUGE_PAGE, 0),
  );
  // text keeps its growth into the gap: the file has bytes below it.
  const text = h.regions.find((r) => r.kind === "text")!;
  assert.equal(text.start, plan.regions.find((r) => r.kind === "text")!.start);
});
