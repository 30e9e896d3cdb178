// Fault injection: every syscall of the trampoline's plans (swap and
// restore; THP, memfd, shared and hugetlb paths) is made to fail in turn
// with errno 131. Each time: the process lives, every planned range still
// equals the file, the outcome names the failed step and errno (or notes a
// best-effort call that failed), and a later run() succeeds.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import process from "node:process";
import {
  isRoot,
  raiseHugetlbPool,
  removeLeftovers,
  RUNTIMES,
  startChild,
} from "../helpers.ts";

interface Walk {
  swaps: {
    at: number;
    regions: number;
    failed: { step: string; errno: number; message: string }[];
    noted: boolean;
    mismatches: number;
    ok: boolean;
  }[];
  restores: {
    at: number;
    failed: string[];
    restored: number;
    mismatches: number;
    againFailed: number;
    finalMismatches: number;
  }[];
  final: {
    ok: boolean;
    remapped: number;
    regions: number;
    huge: number;
    mismatches: number;
  };
}

const ROOT_SKIP = isRoot() ? false : "needs root to size the hugetlb pool";
const SHARE_PREFIX = "/dev/shm/page-primer-fault-test-";
const shareDir = `${SHARE_PREFIX}${process.pid}`;
// Copies of a killed run (its pid is gone) take RAM until removed.
removeLeftovers(SHARE_PREFIX);

const PATHS: {
  name: string;
  options: Record<string, unknown>;
  steps: string[];
  /** The final run's copies are on 2 MiB pages (all but the 4 KiB copy). */
  huge?: false;
  skip?: string | false;
  /** Sets up what the path needs; returns what puts it back. */
  setup?: () => () => void;
}[] = [
  {
    name: "THP",
    options: { backend: "thp" },
    steps: [
      "stage mmap",
      "madvise(MADV_HUGEPAGE)",
      "madvise(MADV_POPULATE_WRITE)",
      "fill",
      "mprotect",
      "mremap",
    ],
  },
  {
    name: "4k",
    options: { pageSize: "4k" },
    huge: false,
    steps: [
      "stage mmap",
      "madvise(MADV_NOHUGEPAGE)",
      "madvise(MADV_POPULATE_WRITE)",
      "fill",
      "mprotect",
      "mremap",
    ],
  },
  {
    name: "memfd",
    options: { backend: "memfd" },
    steps: ["stage mmap", "madvise(MADV_POPULATE_WRITE)", "fill", "mremap"],
  },
  {
    name: "shared",
    options: { share: { dir: shareDir } },
    steps: ["stage mmap", "mprotect", "mremap"],
  },
  {
    name: "hugetlb",
    options: { backend: "hugetlb" },
    steps: ["stage mmap", "madvise(MADV_POPULATE_WRITE)", "fill", "mremap"],
    skip: ROOT_SKIP,
    setup: () => raiseHugetlbPool(64).restore,
  },
];

for (const rt of RUNTIMES) {
  for (const path of PATHS) {
    test(
      `${rt}: ${path.name}: a failure at every syscall of swap and restore leaves the code intact`,
      { skip: path.skip ?? false },
      async () => {
        const undo = path.setup?.();
        const child = await startChild(rt, path.options, {
          script: "fault_child.ts",
        }).catch((e) => {
          undo?.();
          rmSync(shareDir, { recursive: true, force: true });
          throw e;
        });
        let end;
        try {
          const w = child.outcome as unknown as Walk;
          const faulted = w.swaps.slice(0, -1);
          const past = w.swaps.at(-1)!;
          assert.ok(faulted.length >= path.steps.length, JSON.stringify(w));
          for (const s of faulted) {
            const where = `${path.name} at=${s.at}`;
            assert.equal(s.mismatches, 0, `${where}: bytes differ`);
            // Reported: a failed step with the injected errno, or a note.
            assert.ok(s.failed.length > 0 || s.noted, `${where}: silent`);
            for (const f of s.failed) {
              assert.equal(f.errno, 131, where);
              assert.match(
                f.message,
                /nothing was changed|the file was mapped back, the code is intact/,
                where,
              );
            }
          }
          const seen = new Set(
            faulted.flatMap((s) => s.failed.map((f) => f.step)),
          );
          for (const step of path.steps) {
            assert.ok(seen.has(step), `${step} never failed: ${[...seen]}`);
          }
          assert.deepEqual(past.failed, []);
          // Restore: a failure keeps the copy, which equals the file; the
          // next restore succeeds.
          assert.ok(w.restores.length >= 2);
          for (const r of w.restores) {
            assert.equal(r.mismatches, 0, `restore at=${r.at}`);
            assert.equal(r.againFailed, 0, `restore at=${r.at}`);
            assert.equal(r.finalMismatches, 0, `restore at=${r.at}`);
          }
          for (const r of w.restores.slice(0, -1)) {
            assert.ok(r.failed.length > 0, `restore at=${r.at}: silent`);
          }
          assert.deepEqual(w.restores.at(-1)!.failed, []);
          // And a run after all that works.
          assert.equal(w.final.ok, true);
          assert.equal(w.final.remapped, w.final.regions);
          if (path.huge === false) assert.equal(w.final.huge, 0);
          else assert.ok(w.final.huge > 0);
          assert.equal(w.final.mismatches, 0);
          console.log(
            `${rt} ${path.name}: ${faulted.length} syscalls failed in turn (${
              [...seen].join(", ")
            }), ${w.restores.length - 1} in restore (${
              w.restores.slice(0, -1).map((r) =>
                r.failed[0].split(" failed")[0]
              )
                .join(", ")
            }); all intact`,
          );
        } finally {
          end = await child.finish();
          undo?.();
          rmSync(shareDir, { recursive: true, force: true });
        }
        assert.equal(end.code, 0, end.stderr);
        assert.match(end.stdout, /ALIVE \d+/);
      },
    );
  }
}
