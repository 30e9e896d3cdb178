// remap() end to end: children of each runtime move their own text and
// rodata onto 2 MiB pages; this process checks /proc/<pid>/smaps, and the
// child compares every remapped byte with the executable file.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  copyFileSync,
  mkdtempSync,
  renameSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type RemapChildReport,
  ROOT,
  runtimePath,
  RUNTIMES,
  startChild,
} from "../helpers.ts";
import { hugeBytes, type SmapsVma, sumIn } from "../../src/sys/maps.ts";
import { formatBytes } from "../../src/sys/format.ts";
import type { PrimeOutcomeData, SegmentReport } from "../../src/outcome.ts";

// THP forced: on a machine with a reserved hugetlb pool, "auto" picks
// hugetlb, and these tests check the THP path.
const THP = { backend: "thp" };

const HUGE = 2 * 1024 * 1024;

type Report = RemapChildReport;

function run(
  rt: "deno" | "bun",
  steps: unknown[],
  env: Record<string, string> = {},
) {
  return startChild(rt, steps, { script: "remap_child.ts", env });
}

function loadSeg(
  out: PrimeOutcomeData,
  kind: "text" | "rodata",
): SegmentReport {
  const s = out.segments.find((s) => s.kind === kind && s.origin === "load");
  assert.ok(s, `no ${kind} segment`);
  return s;
}

function hugeIn(smaps: readonly SmapsVma[], s: { start: number; end: number }) {
  return sumIn(smaps, s.start, s.end, hugeBytes);
}

// The best any 2 MiB-aligned remap can do for a text segment whose end
// touches the next segment: everything up to the last 2 MiB boundary.
function reachable(s: { start: number; end: number }): number {
  return (Math.floor(s.end / HUGE) * HUGE - s.start) / (s.end - s.start);
}

/**
 * Checks that every remapped region is on 2 MiB pages, as the outcome and
 * smaps read here both say. Only with a warning of the remap naming it
 * ("partial: ...", from execute.ts verify()) may a region be partly on
 * 4 KiB pages (the kernel had no free 2 MiB page then: memory short or
 * fragmented), and then still at least 90% of it is huge and smaps shows
 * the same shortfall. Returns the bytes left on 4 KiB pages, per kind.
 */
function checkRegionsHuge(
  out: PrimeOutcomeData,
  smaps: readonly SmapsVma[],
): Map<string, number> {
  const short = new Map<string, number>();
  for (const r of out.remap!.regions) {
    assert.equal(r.status, "remapped");
    const seen = hugeIn(smaps, { start: r.dataStart, end: r.dataEnd });
    const what = `${r.kind}: ${r.huge} of ${r.bytes} on huge pages`;
    assert.equal(seen, r.huge, `${what}; smaps here shows ${seen}`);
    const partial = `partial: ${formatBytes(r.huge)} of ${
      formatBytes(r.bytes)
    } (${
      ((100 * r.huge) / r.bytes).toFixed(0)
    }%) of ${r.object} LOAD ${r.index} on 2 MiB pages (`;
    const warned = out.remap!.warnings.some((w) => w.startsWith(partial));
    if (r.huge === r.bytes) {
      assert.ok(!warned, `${what}, yet a warning: ${partial}`);
      continue;
    }
    assert.ok(warned, `${what}, with no "${partial}" warning`);
    assert.ok(r.huge >= 0.9 * r.bytes, what);
    console.log(`  (the kernel left part of a region on 4 KiB pages: ${what})`);
    short.set(r.kind, (short.get(r.kind) ?? 0) + r.bytes - r.huge);
  }
  return short;
}

for (const rt of RUNTIMES) {
  test(`${rt}: remap(true) puts text and rodata on 2 MiB pages, bytes equal the file`, async () => {
    const child = await run(rt, [{ remap: THP }, "verify"]);
    try {
      const rep = child.outcome as unknown as Report;
      const out = rep.results[0].remap!;
      assert.equal(out.ok, true, out.reason);
      const smaps = child.smaps();
      const short = checkRegionsHuge(out, smaps);
      const text = loadSeg(out, "text");
      const rodata = loadSeg(out, "rodata");
      const textCov = hugeIn(smaps, text) / text.bytes;
      const roCov = hugeIn(smaps, rodata) / rodata.bytes;
      console.log(
        `${rt}: text ${(100 * textCov).toFixed(1)}% (best possible here ${
          (100 * reachable(text)).toFixed(1)
        }%), rodata ${(100 * roCov).toFixed(1)}% on 2 MiB pages, remap ${
          out.remap!.ms.toFixed(1)
        } ms`,
      );
      // Every planned byte got a huge page (but what the kernel left on
      // 4 KiB pages, warned of and checked above), and the geometry's best
      // is met.
      const textShort = (short.get("text") ?? 0) / text.bytes;
      const roShort = (short.get("rodata") ?? 0) / rodata.bytes;
      assert.ok(
        textCov + textShort >= Math.min(0.97, reachable(text)) - 0.001,
        `text ${textCov} (+ ${textShort} on 4 KiB pages, warned of)`,
      );
      assert.ok(
        roCov + roShort >= 0.95,
        `rodata ${roCov} (+ ${roShort} on 4 KiB pages, warned of)`,
      );
      for (const r of out.remap!.regions) {
        assert.equal(r.start % HUGE, 0);
        assert.equal(r.end % HUGE, 0);
      }
      // The copies are anonymous and never writable (so never W+X). The
      // runtimes' own JIT areas are rwx; they are not ours and not checked.
      for (const r of out.remap!.regions) {
        const copy = smaps.filter((v) => v.start < r.end && r.start < v.end);
        assert.ok(copy.length >= 1);
        for (const v of copy) {
          assert.equal(v.perms, r.kind === "text" ? "r-xp" : "r--p");
          assert.equal(v.inode, 0, "copy is not anonymous");
          assert.ok(
            v.start >= r.start && v.end <= r.end,
            "copy VMA sticks out",
          );
        }
      }
      const verify = rep.results[1].verify!;
      assert.equal(verify.mismatches, 0);
      assert.equal(
        verify.bytes,
        out.remap!.regions.reduce((n, r) => n + r.bytes, 0),
      );
      assert.ok(verify.bytes > 80 * 1024 * 1024);
    } finally {
      const end = await child.finish();
      assert.equal(end.code, 0, end.stderr);
      assert.match(end.stdout, /ALIVE \d+/);
    }
  });

  test(`${rt}: the copy from memory (not from the page cache) is byte-identical too`, async () => {
    const child = await run(rt, [{ remap: THP }, "verify"], {
      PAGE_PRIMER_FILL: "memory",
    });
    try {
      const rep = child.outcome as unknown as Report;
      const out = rep.results[0].remap!;
      assert.equal(out.ok, true, out.reason);
      checkRegionsHuge(out, child.smaps());
      assert.equal(rep.results[1].verify!.mismatches, 0);
      assert.ok(rep.results[1].verify!.bytes > 80 * 1024 * 1024);
    } finally {
      await child.finish();
    }
  });

  test(`${rt}: restore() puts the file-backed pages back, bytes equal the file`, async () => {
    const child = await run(rt, [{ remap: THP }, "restore", "verify"]);
    try {
      const rep = child.outcome as unknown as Report;
      const out = rep.results[0].remap!;
      assert.equal(rep.results[1].restore!.restored, out.remap!.regions.length);
      assert.deepEqual(rep.results[1].restore!.failed, []);
      assert.equal(rep.results[2].verify!.mismatches, 0);
      const smaps = child.smaps();
      const exe = out.segments[0].object;
      for (const kind of ["text", "rodata"] as const) {
        const s = loadSeg(out, kind);
        assert.equal(hugeIn(smaps, s), 0, `${kind} still on huge pages`);
        const inside = smaps.filter((v) => v.start < s.end && s.start < v.end);
        assert.ok(inside.length > 0);
        for (const v of inside) {
          assert.equal(v.path, exe, `${kind} VMA not file-backed`);
        }
      }
      // The gaps we grew into are free again: nothing maps below rodata's start.
      for (const r of out.remap!.regions) {
        const stray = smaps.filter((v) =>
          v.start < r.end && r.start < v.end && v.path !== exe
        );
        assert.deepEqual(stray.map((v) => v.start.toString(16)), []);
      }
    } finally {
      const end = await child.finish();
      assert.equal(end.code, 0, end.stderr);
    }
  });

  test(`${rt}: a second remap skips what is already on huge pages`, async () => {
    const child = await run(rt, [{ remap: THP }, { remap: THP }]);
    try {
      const rep = child.outcome as unknown as Report;
      const second = rep.results[1].remap!;
      assert.equal(second.ok, true);
      assert.equal(second.remap!.regions.length, 0);
      const done = second.remap!.skipped.filter((s) =>
        /already remapped/.test(s.reason)
      );
      assert.equal(done.length, rep.results[0].remap!.remap!.regions.length);
    } finally {
      await child.finish();
    }
  });

  test(`${rt}: conservative alignment stays inside the original mappings`, async () => {
    const child = await run(rt, [
      { remap: { ...THP, align: "conservative" } },
      "verify",
    ]);
    try {
      const rep = child.outcome as unknown as Report;
      const out = rep.results[0].remap!;
      assert.equal(out.ok, true, out.reason);
      assert.ok(out.remap!.regions.length >= 1);
      for (const r of out.remap!.regions) {
        const seg = out.segments.find((s) =>
          s.index === r.index && s.origin === "load"
        )!;
        assert.ok(
          r.start >= seg.start && r.end <= seg.end,
          `${r.kind} grew outside`,
        );
        assert.equal(r.dataStart, r.start);
        assert.equal(r.dataEnd, r.end);
      }
      assert.equal(rep.results[1].verify!.mismatches, 0);
    } finally {
      await child.finish();
    }
  });

  test(`${rt}: pageSize "4k" makes an anonymous small-page copy`, async () => {
    const child = await run(rt, [{ remap: { pageSize: "4k" } }, "verify"]);
    try {
      const rep = child.outcome as unknown as Report;
      const out = rep.results[0].remap!;
      assert.equal(out.ok, true, out.reason);
      const smaps = child.smaps();
      const text = loadSeg(out, "text");
      assert.equal(hugeIn(smaps, text), 0);
      const r = out.remap!.regions.find((r) => r.kind === "text")!;
      const copy = smaps.filter((v) => v.start >= r.start && v.end <= r.end);
      assert.ok(
        copy.length >= 1 && copy.every((v) => v.inode === 0),
        "text not an anonymous copy",
      );
      assert.ok(
        copy.every((v) => v.vmFlags.includes("nh")),
        "copy lacks MADV_NOHUGEPAGE",
      );
      assert.equal(rep.results[1].verify!.mismatches, 0);
    } finally {
      await child.finish();
    }
  });
}

test("deno: a mapping in the gap aggressive alignment wants survives the remap", async () => {
  // Deno is PIE with free space below its text; bun's text has rodata below.
  const child = await run("deno", [
    { occupyGap: true },
    { remap: THP },
    "verify",
  ]);
  try {
    const rep = child.outcome as unknown as Report;
    const gap = rep.results[0].occupyGap as { at: number; textStart: number };
    assert.equal(typeof gap, "object", String(rep.results[0].occupyGap));
    const out = rep.results[1].remap!;
    assert.equal(out.ok, true, out.reason);
    assert.deepEqual(rep.marker, [0x70, 0x70, 0x2d, 0x6f, 0x6b, 0x21]);
    const text = out.remap!.regions.find((r) => r.kind === "text")!;
    assert.ok(
      text.start >= gap.textStart,
      "the text region grew over the occupied gap",
    );
    const smaps = child.smaps();
    const page = smaps.find((v) => v.start <= gap.at && gap.at < v.end);
    assert.ok(page, "the gap mapping is gone");
    assert.equal(page.perms, "rw-p");
    assert.equal(rep.results[2].verify!.mismatches, 0);
  } finally {
    await child.finish();
  }
});

test("deno: another thread racing to map into the gap is never clobbered", async () => {
  // Deno loads a Worker's module only with read permission for it.
  const child = await startChild("deno", [{ raceGap: 20 }], {
    script: "remap_child.ts",
    denoFlags: [`--allow-read=${ROOT}tests/fixtures,${ROOT}src`],
  });
  try {
    const rep = child.outcome as unknown as {
      results: {
        raceGap: {
          want: number;
          textStart: number;
          cycles: {
            ok: boolean;
            regionStart: number;
            got: number;
            marker?: number[];
            mismatches: number;
          }[];
        };
      }[];
    };
    const race = rep.results[0].raceGap;
    let sawWorker = false;
    for (const [i, cyc] of race.cycles.entries()) {
      assert.equal(cyc.ok, true, `cycle ${i}`);
      assert.equal(cyc.mismatches, 0, `cycle ${i}: bytes differ from the file`);
      if (cyc.got) {
        sawWorker = true;
        // Once the worker holds the page, the text never grows over it and
        // the worker's marker survives every later remap.
        assert.deepEqual(
          cyc.marker,
          [0x70, 0x70, 0x2d, 0x6f, 0x6b, 0x21],
          `cycle ${i}`,
        );
        assert.ok(
          cyc.regionStart >= race.textStart,
          `cycle ${i}: text grew over the worker's page`,
        );
      }
    }
    assert.ok(
      sawWorker,
      "the worker never got the page (after a restore the gap is free)",
    );
    const page = child.smaps().find((v) =>
      v.start <= race.want && race.want < v.end
    );
    assert.ok(page && page.perms === "rw-p", "the worker's page is gone");
  } finally {
    const end = await child.finish();
    assert.equal(end.code, 0, end.stderr);
  }
});

for (const rt of RUNTIMES) {
  test(`${rt}: with THP disabled for the process, remap says why and changes nothing`, async () => {
    const child = await run(rt, [{ thpDisable: true }, { remap: THP }]);
    try {
      const rep = child.outcome as unknown as Report;
      const out = rep.results[1].remap!;
      assert.equal(out.ok, false);
      assert.match(out.reason!, /PR_SET_THP_DISABLE/);
      assert.equal(out.remap!.regions.length, 0);
      const text = loadSeg(out, "text");
      const smaps = child.smaps();
      assert.ok(
        smaps.filter((v) => v.start < text.end && text.start < v.end)
          .every((v) => v.path === text.object),
        "text is not file-backed any more",
      );
    } finally {
      const end = await child.finish();
      assert.equal(end.code, 0, end.stderr);
    }
  });
}

for (const rt of RUNTIMES) {
  test(`${rt}: restore() refuses when the executable on disk was replaced`, async () => {
    // Run a private copy of the runtime, then replace that file (as an
    // upgrade would: a new inode under the same path).
    const dir = mkdtempSync(join(tmpdir(), "pp-restore-"));
    const exe = join(dir, rt);
    copyFileSync(runtimePath(rt), exe);
    chmodSync(exe, 0o755);
    try {
      const child = await startChild(rt, [{ remap: THP }], {
        script: "remap_child.ts",
        exe,
      });
      try {
        const out = (child.outcome as unknown as Report).results[0].remap!;
        assert.equal(out.ok, true, out.reason);
        copyFileSync(exe, exe + ".new");
        renameSync(exe + ".new", exe);
        const res = JSON.parse(await child.ask("restore", "RESTORE "));
        assert.equal(res.restored, 0);
        assert.equal(res.failed.length, out.remap!.regions.length);
        assert.match(
          res.failed[0].message,
          /not the file that was loaded.*kept the in-memory copy/,
        );
        // The copies stay in place: the process keeps running on them.
        const smaps = child.smaps();
        assert.ok(hugeIn(smaps, loadSeg(out, "text")) > 0);
      } finally {
        const end = await child.finish();
        assert.equal(end.code, 0, end.stderr);
        assert.match(end.stdout, /ALIVE \d+/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
