// src/remap/plan.ts: planning the remap on recorded smaps of Deno and Bun.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { segmentRanges } from "../src/sys/segments.ts";
import { parseMaps, parseSmaps } from "../src/sys/maps.ts";
import {
  forHugetlb,
  HUGE_PAGE,
  hugePagesNeeded,
  plannedCoverage,
  planRemap,
} from "../src/remap/plan.ts";
import { DENO_LOADS, denoFixture } from "./fixtures/deno_layout.ts";

function denoPlan(align: "aggressive" | "conservative") {
  const { smaps, bias, path } = denoFixture();
  const obj = { path, main: true, bias, segments: DENO_LOADS };
  const ranges = segmentRanges(obj, 4096);
  return {
    plan: planRemap({ objects: [obj], ranges, vmas: smaps, align }),
    ranges,
    smaps,
  };
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
  const plan = planRemap({
    objects: [obj],
    ranges,
    vmas,
    align: "aggressive",
  });
  const text = plan.regions.find((r) => r.kind === "text")!;
  assert.equal(text.start, Math.ceil(textStart / HUGE_PAGE) * HUGE_PAGE);
  const again = planRemap({
    objects: [obj],
    ranges,
    vmas: smaps,
    align: "aggressive",
    ours: plan.regions,
  });
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
  const plan = planRemap({
    objects: [obj],
    ranges,
    vmas: smaps,
    align: "aggressive",
  });
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

test("forHugetlb: no growth below a segment that starts at file offset 0", () => {
  const { smaps, bias, path } = denoFixture();
  const obj = { path, main: true, bias, segments: DENO_LOADS };
  const plan = planRemap({
    objects: [obj],
    ranges: segmentRanges(obj, 4096),
    vmas: smaps,
    align: "aggressive",
  });
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
