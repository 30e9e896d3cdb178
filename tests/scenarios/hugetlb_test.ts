// The hugetlb backend: with a reserved pool, text and rodata move onto
// hugetlb pages (smaps Private_Hugetlb), bytes equal the file, restore gives
// the pages back; with an empty pool it fails cleanly. Needs root to size
// /proc/sys/vm/nr_hugepages; restores the previous size afterwards.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import process from "node:process";
import {
  isRoot,
  type RemapChildReport,
  RUNTIMES,
  startChild,
} from "../helpers.ts";
import { type SmapsVma, sumIn } from "../../src/sys/maps.ts";
import type { PrimeOutcomeData } from "../../src/outcome.ts";
import { inspectProcess } from "../../src/tools/inspect.ts";
import { libc } from "../../src/sys/libc.ts";

type Pick = (v: SmapsVma) => number;

const NR = "/proc/sys/vm/nr_hugepages";
const POOL = "/sys/kernel/mm/hugepages/hugepages-2048kB/";
const SKIP = isRoot() ? false : "needs root to size the hugetlb pool";
if (SKIP) console.log(`hugetlb_test: skipped: ${SKIP}`);
const HUGE = 2 * 1024 * 1024;
// Read when the file loads: a file-level before() may not run under --filter.
const saved = SKIP ? 0 : Number(readFileSync(NR, "utf8"));

function setPool(n: number): void {
  writeFileSync(NR, String(n));
  const got = Number(readFileSync(NR, "utf8"));
  assert.equal(got, n, `could only get ${got} of ${n} hugetlb pages`);
}
const free = () => Number(readFileSync(POOL + "free_hugepages", "utf8"));

after(() => {
  if (!SKIP) writeFileSync(NR, String(saved));
});

type Report = RemapChildReport;

/** Bytes of hugetlb pages a process maps, from its smaps. */
const hugetlbHeld = (smaps: readonly SmapsVma[]) =>
  smaps.reduce((n, v) => n + v.privateHugetlb + v.sharedHugetlb, 0);

const hugetlbIn = (
  smaps: readonly SmapsVma[],
  s: { start: number; end: number },
) =>
  sumIn(
    smaps,
    s.start,
    s.end,
    (v) => v.kernelPageSize >= HUGE ? v.privateHugetlb : 0,
  );

for (const rt of RUNTIMES) {
  test(
    `${rt}: remap({ backend: "hugetlb" }) with a sized pool`,
    { skip: SKIP },
    async () => {
      setPool(saved + 64);
      const poolFree = free();
      // In a hugetlb cgroup when one can be made: its usage is this child's
      // alone, while the pool's free count moves with any other user.
      const cg = hugetlbCgroup();
      const child = await startChild(rt, [
        { remap: { backend: "hugetlb" } },
        "verify",
      ], {
        script: "remap_child.ts",
        ...(typeof cg === "string"
          ? {}
          : { shellPrefix: `echo $$ > ${cg.dir}/cgroup.procs && exec` }),
      });
      const usage = () =>
        typeof cg === "string" ? undefined : Number(
          readFileSync(`${cg.dir}/hugetlb.2MB.usage_in_bytes`, "utf8"),
        );
      try {
        const rep = child.outcome as unknown as Report;
        const out = rep.results[0].remap!;
        assert.equal(out.ok, true, out.reason);
        assert.equal(out.remap!.backend, "hugetlb");
        const smaps = child.smaps();
        const text = out.segments.find((s) =>
          s.kind === "text" && s.origin === "load"
        )!;
        const cov = hugetlbIn(smaps, text) / text.bytes;
        const best = (Math.floor(text.end / HUGE) * HUGE - text.start) /
          text.bytes;
        console.log(`${rt}: text on hugetlb pages ${(100 * cov).toFixed(1)}%`);
        assert.ok(cov >= Math.min(0.97, best) - 0.001, `text ${cov}`);
        assert.ok(out.remap!.pool!.needed > 0);
        // This process holds exactly the pages the plan needed (its own
        // smaps: other processes may use the pool at the same time).
        assert.equal(
          hugetlbHeld(smaps),
          out.remap!.pool!.needed * HUGE,
          "pool pages not in use",
        );
        assert.equal(rep.results[1].verify!.mismatches, 0);
      } finally {
        await child.finish();
      }
      try {
        if (typeof cg === "string") {
          assert.equal(
            free(),
            poolFree,
            "the child's exit did not give the pages back",
          );
        } else {
          assert.equal(
            usage(),
            0,
            "the child's exit did not give the pages back",
          );
        }
      } finally {
        if (typeof cg !== "string") cg.cleanup();
      }
    },
  );

  test(
    `${rt}: restore() from hugetlb gives the pool back, bytes equal the file`,
    { skip: SKIP },
    async () => {
      setPool(saved + 64);
      const child = await startChild(rt, [
        { remap: { backend: "hugetlb" } },
        "restore",
        "verify",
      ], {
        script: "remap_child.ts",
      });
      try {
        const rep = child.outcome as unknown as Report;
        assert.equal(
          rep.results[1].restore!.restored,
          rep.results[0].remap!.remap!.regions.length,
        );
        assert.equal(rep.results[2].verify!.mismatches, 0);
        assert.equal(
          hugetlbHeld(child.smaps()),
          0,
          "restore did not give the pages back",
        );
        const out = rep.results[0].remap!;
        const text = out.segments.find((s) =>
          s.kind === "text" && s.origin === "load"
        )!;
        const inside = child.smaps().filter((v) =>
          v.start < text.end && text.start < v.end
        );
        assert.ok(
          inside.every((v) => v.path === text.object),
          "text not file-backed after restore",
        );
      } finally {
        await child.finish();
      }
    },
  );

  test(`${rt}: an empty pool fails cleanly with the command to size it`, {
    skip: SKIP,
  }, async () => {
    setPool(0);
    const child = await startChild(rt, [{ remap: { backend: "hugetlb" } }], {
      script: "remap_child.ts",
    });
    try {
      const out = (child.outcome as unknown as Report).results[0].remap!;
      assert.equal(out.ok, false);
      assert.match(
        out.reason!,
        /hugetlb pool has 0 free 2 MiB page\(s\), the remap needs \d+: sysctl -w vm\.nr_hugepages=\d+/,
      );
      const text = out.segments.find((s) =>
        s.kind === "text" && s.origin === "load"
      )!;
      const inside = child.smaps().filter((v) =>
        v.start < text.end && text.start < v.end
      );
      assert.ok(inside.every((v) => v.path === text.object), "text changed");
    } finally {
      const end = await child.finish();
      assert.equal(end.code, 0, end.stderr);
      assert.match(end.stdout, /ALIVE/);
    }
  });

  test(
    `${rt}: auto picks hugetlb when the pool covers the plan, THP when not`,
    { skip: SKIP },
    async () => {
      for (
        const [pool, want] of [[saved + 64, "hugetlb"], [0, "thp"]] as const
      ) {
        setPool(pool);
        const child = await startChild(rt, [{ remap: {} }], {
          script: "remap_child.ts",
        });
        try {
          const out = (child.outcome as unknown as Report).results[0].remap!;
          assert.equal(out.ok, true, out.reason);
          assert.equal(out.remap!.backend, want, `pool ${pool}`);
        } finally {
          await child.finish();
        }
      }
    },
  );
}

// smaps leaves hugetlb pages out of Rss, and the kernel never flags a
// hugetlb VMA `lo` although its pages cannot be evicted: the outcome must
// count them as resident and locked all the same, as Private_Hugetlb shows.
for (const rt of RUNTIMES) {
  test(
    `${rt}: hugetlb + mlock(true): resident and locked count the hugetlb pages smaps shows`,
    { skip: SKIP },
    async () => {
      setPool(saved + 64);
      const child = await startChild(rt, {
        prime: { remap: { backend: "hugetlb" }, mlock: true },
      }, { script: "route_child.ts" }).catch((e) => {
        setPool(saved);
        throw e;
      });
      try {
        const out = (child.outcome as unknown as { outcome: PrimeOutcomeData })
          .outcome;
        assert.equal(out.ok, true, out.reason);
        assert.equal(out.remap!.backend, "hugetlb");
        const smaps = child.smaps();
        const sum = (s: { start: number; end: number }, pick: Pick) =>
          sumIn(smaps, s.start, s.end, pick);
        for (const s of out.segments) {
          const hugetlb = sum(s, (v) => v.privateHugetlb + v.sharedHugetlb);
          const rss = sum(s, (v) => v.rss);
          const lockedRss = sum(s, (v) => v.vmFlags.includes("lo") ? v.rss : 0);
          const where = `${s.kind} seg ${s.index}`;
          if (s.kind !== "data" && s.origin === "load") {
            assert.ok(hugetlb > 0, `${where}: no hugetlb pages in smaps`);
          }
          // Every page is locked, so nothing moved since the child measured.
          assert.ok(
            Math.abs(s.resident - (rss + hugetlb)) < 4096,
            `${where}: resident ${s.resident}, smaps Rss ${rss} + Private_Hugetlb ${hugetlb}`,
          );
          assert.ok(
            Math.abs(s.locked - (lockedRss + hugetlb)) < 4096,
            `${where}: locked ${s.locked}, smaps lo Rss ${lockedRss} + Private_Hugetlb ${hugetlb}`,
          );
          assert.ok(s.locked >= s.bytes - 4096, `${where}: not all locked`);
        }
        const t = out.totals;
        console.log(
          `${rt}: hugetlb + mlock: resident ${
            (100 * t.resident / t.bytes).toFixed(1)
          }%, locked ${(100 * t.locked / t.bytes).toFixed(1)}% of ${
            (t.bytes / 2 ** 20).toFixed(1)
          } MiB; copies resident ${
            (out.remap!.copyResident / 2 ** 20).toFixed(1)
          } MiB`,
        );
        assert.ok(t.locked >= t.bytes - 4096 * t.segments);
        assert.ok(t.resident >= t.bytes - 4096 * t.segments);
        // `inspect` of the same process from here says the same.
        const seen = inspectProcess(libc(), child.pid).objects.find((o) =>
          o.main
        )!;
        for (const s of seen.segments.filter((x) => x.kind !== "data")) {
          const where = `inspect: ${s.kind} seg ${s.index}`;
          assert.ok(s.hugetlb > 0 || s.origin === "alias", where);
          assert.ok(s.resident >= s.bytes - 4096, `${where}: resident`);
          assert.ok(s.locked >= s.bytes - 4096, `${where}: locked`);
        }
      } finally {
        const end = await child.finish();
        setPool(saved);
        assert.equal(end.code, 0, end.stderr);
      }
    },
  );
}

// A hugetlb cgroup limit is charged when a page is first touched, not at
// mmap: without the populate step the fill would die of SIGBUS. Here the
// pool covers the plan but the cgroup allows 16 pages, so the plan runs out
// in the middle: what fits is remapped, the rest fails cleanly.
/**
 * Removes a cgroup directory; a child that has just exited may still hold
 * it for a moment (EBUSY), so a few tries 50 ms apart.
 */
function removeCgroup(dir: string): void {
  for (let i = 0;; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      if (i >= 20 || (e as { code?: string }).code !== "EBUSY") throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }
}

/**
 * A hugetlb cgroup; with `limitPages`, one that allows that many 2 MiB
 * pages, and a pool of 64 more pages than found (`cleanup` puts both back).
 */
function hugetlbCgroup(
  limitPages?: number,
): { dir: string; cleanup: () => void } | string {
  const mounts = readFileSync("/proc/mounts", "utf8").split("\n");
  const existing = mounts.map((l) => l.split(" ")).find((f) =>
    f[2] === "cgroup" && f[3]?.split(",").includes("hugetlb")
  );
  let root = existing?.[1];
  let mounted = false;
  if (root === undefined) {
    root = `/tmp/page-primer-hugetlb-cg-${process.pid}`;
    mkdirSync(root, { recursive: true });
    const r = spawnSync("mount", [
      "-t",
      "cgroup",
      "-o",
      "hugetlb",
      "none",
      root,
    ]);
    if (r.status !== 0) {
      rmdirSync(root);
      return `cannot mount the hugetlb cgroup controller: ${r.stderr}`;
    }
    mounted = true;
  }
  const dir = `${root}/page-primer-test-${process.pid}`;
  mkdirSync(dir);
  if (limitPages !== undefined) {
    setPool(saved + 64);
    writeFileSync(
      `${dir}/hugetlb.2MB.limit_in_bytes`,
      String(limitPages * HUGE),
    );
  }
  return {
    dir,
    cleanup: () => {
      if (limitPages !== undefined) setPool(saved);
      try {
        removeCgroup(dir);
      } finally {
        // Unmounted even when the group could not be removed, so a failed
        // test leaves no mount behind.
        if (mounted) {
          spawnSync("umount", [root!]);
          rmdirSync(root!);
        }
      }
    },
  };
}

for (const rt of RUNTIMES) {
  test(
    `${rt}: a hugetlb cgroup limit hit mid-plan fails cleanly at populate, no SIGBUS, bytes intact`,
    { skip: SKIP },
    async (t) => {
      const cg = hugetlbCgroup(16);
      if (typeof cg === "string") {
        t.skip(cg);
        return;
      }
      try {
        const child = await startChild(rt, [
          { remap: { backend: "hugetlb" } },
          "verify",
        ], {
          script: "remap_child.ts",
          shellPrefix: `echo $$ > ${cg.dir}/cgroup.procs && exec`,
          // The copy from memory is the path a missing populate step would
          // turn into a SIGBUS (pread would get EFAULT): measured.
          env: { PAGE_PRIMER_FILL: "memory" },
        });
        let end;
        try {
          const rep = child.outcome as unknown as Report;
          const out = rep.results[0].remap!;
          const regions = out.remap!.regions;
          const failed = regions.filter((r) => r.status === "failed");
          console.log(
            `${rt}: cgroup limit 16 pages: ${
              regions.length - failed.length
            } region(s) remapped, ${failed.length} failed at ${
              failed.map((f) => `${f.error!.step} ${f.error!.code}`).join(", ")
            }`,
          );
          assert.ok(failed.length >= 1, "the limit did not bite");
          for (const f of failed) {
            assert.equal(f.error!.step, "madvise(MADV_POPULATE_WRITE)");
            assert.match(f.error!.message, /nothing was changed/);
            // Still on the file.
            const inside = child.smaps().filter((v) =>
              v.start < f.dataEnd && f.dataStart < v.end
            );
            assert.ok(inside.every((v) => v.path === f.object), f.object);
          }
          assert.equal(rep.results[1].verify!.mismatches, 0);
          const used = Number(
            readFileSync(`${cg.dir}/hugetlb.2MB.usage_in_bytes`, "utf8"),
          );
          assert.ok(used <= 16 * HUGE);
        } finally {
          end = await child.finish();
        }
        assert.equal(end.code, 0, end.stderr);
        assert.match(end.stdout, /ALIVE/);
        // Charged to this cgroup only: nothing is left once the child is gone.
        assert.equal(
          Number(readFileSync(`${cg.dir}/hugetlb.2MB.usage_in_bytes`, "utf8")),
          0,
          "pages not given back after exit",
        );
      } finally {
        cg.cleanup();
      }
    },
  );
}

// The same limit with backend "auto": the pool looked big enough when the
// backend was chosen, so the plan starts on hugetlb; the region that runs
// out falls back to THP instead of failing (as when another process or
// Worker takes the pool meanwhile).
for (const rt of RUNTIMES) {
  test(
    `${rt}: auto falls back to THP for a region the hugetlb pool cannot give pages to`,
    { skip: SKIP },
    async (t) => {
      const cg = hugetlbCgroup(16);
      if (typeof cg === "string") {
        t.skip(cg);
        return;
      }
      try {
        const child = await startChild(rt, [{ remap: {} }, "verify"], {
          script: "remap_child.ts",
          shellPrefix: `echo $$ > ${cg.dir}/cgroup.procs && exec`,
        });
        let end;
        try {
          const rep = child.outcome as unknown as Report;
          const out = rep.results[0].remap!;
          const regions = out.remap!.regions;
          assert.equal(out.remap!.backend, "hugetlb");
          const fell = regions.filter((r) =>
            r.notes.some((n) => n.startsWith("the hugetlb pool ran short"))
          );
          console.log(
            `${rt}: cgroup limit 16 pages, auto: ${fell.length} of ${regions.length} region(s) went to THP`,
          );
          assert.ok(fell.length >= 1, JSON.stringify(regions));
          assert.ok(regions.every((r) => r.status === "remapped"));
          for (const f of fell) {
            const inside = child.smaps().filter((v) =>
              v.start < f.dataEnd && f.dataStart < v.end
            );
            assert.ok(inside.every((v) => v.privateHugetlb === 0));
            assert.ok(
              inside.reduce((n, v) => n + v.anonHugePages, 0) > 0,
              "the fallback copy is not on THP",
            );
          }
          assert.equal(rep.results[1].verify!.mismatches, 0);
        } finally {
          end = await child.finish();
        }
        assert.equal(end.code, 0, end.stderr);
      } finally {
        cg.cleanup();
      }
    },
  );
}
