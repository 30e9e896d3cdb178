// THP disabled for the process (PR_SET_THP_DISABLE, as some Bun 1.2/1.3
// builds set it): which routes to 2 MiB pages still work is judged from
// outside, in the child's smaps, by probing each one the way its backend
// maps memory (AnonHugePages, ShmemPmdMapped, Private_Hugetlb); the
// doctor must recommend exactly those, and remap() with each backend must
// be ok exactly when its copies are on 2 MiB pages. With a hugetlb pool
// when root (nr_hugepages is restored afterwards).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { isRoot, RUNTIMES, startChild } from "../helpers.ts";
import { type SmapsVma, sumIn } from "../../src/sys/maps.ts";
import type { HugePageRoute } from "../../src/tools/doctor.ts";
import type { PrimeOutcomeData } from "../../src/outcome.ts";

const NR = "/proc/sys/vm/nr_hugepages";
const HUGE = 2 * 1024 * 1024;
const POOL_SKIP = isRoot() ? false : "needs root to size the hugetlb pool";
if (POOL_SKIP) {
  console.log(
    `thp_disabled_test: the hugetlb route is not probed: ${POOL_SKIP}`,
  );
}
/**
 * Runs a test with the pool grown by enough pages for a remap of either
 * runtime (when root), and puts the pool back when the test ends.
 */
function pooled<A extends unknown[]>(
  fn: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args) => {
    if (POOL_SKIP) return await fn(...args);
    const saved = readFileSync(NR, "utf8").trim();
    writeFileSync(NR, String(Number(saved) + 64));
    try {
      await fn(...args);
    } finally {
      writeFileSync(NR, saved);
    }
  };
}

type Backend = "thp" | "memfd" | "hugetlb";
const BACKENDS: readonly Backend[] = ["thp", "memfd", "hugetlb"];

interface RouteReport {
  pid: number;
  thp?: { set: true | string; get: number };
  doctor?: {
    routes: HugePageRoute[];
    recommended: Backend[];
    backend: Backend;
    unavailable?: string;
  };
  probes?: Record<Backend, { at: number } | { error: string }>;
  outcome?: PrimeOutcomeData;
}

/** Bytes on 2 MiB pages in [start, end), whatever the backing. */
const hugeIn = (smaps: readonly SmapsVma[], start: number, end: number) =>
  sumIn(
    smaps,
    start,
    end,
    (v) =>
      v.anonHugePages + v.shmemPmdMapped +
      (v.kernelPageSize >= HUGE ? v.privateHugetlb + v.sharedHugetlb : 0),
  );

const MODES = [
  { mode: undefined, label: "THP allowed (control)" },
  { mode: 1, label: "PR_SET_THP_DISABLE" },
  {
    mode: 3,
    label: "PR_SET_THP_DISABLE with PR_THP_DISABLE_EXCEPT_ADVISED (6.18+)",
  },
] as const;

for (const rt of RUNTIMES) {
  for (const { mode, label } of MODES) {
    test(
      `${rt}: ${label}: the doctor recommends exactly the routes that give 2 MiB pages (probed in smaps)`,
      pooled(async (t) => {
        const child = await startChild(rt, {
          ...(mode !== undefined ? { thpDisable: mode } : {}),
          doctor: true,
          probes: true,
        }, { script: "route_child.ts" });
        try {
          const rep = child.outcome as unknown as RouteReport;
          if (rep.thp && rep.thp.set !== true) {
            t.skip(`this kernel refuses the mode: ${rep.thp.set}`);
            return;
          }
          const smaps = child.smaps();
          const works = new Map<Backend, boolean>();
          for (const b of BACKENDS) {
            const p = rep.probes![b];
            works.set(b, "at" in p && hugeIn(smaps, p.at, p.at + HUGE) > 0);
          }
          const doc = rep.doctor!;
          console.log(
            `${rt}, ${label}: probed ${
              BACKENDS.map((b) => `${b} ${works.get(b) ? "huge" : "4 KiB"}`)
                .join(", ")
            }; doctor recommends ${doc.recommended.join(", ") || "nothing"}`,
          );
          const judged = BACKENDS.filter((b) =>
            POOL_SKIP ? b !== "hugetlb" : true
          );
          for (const b of judged) {
            const route = doc.routes.find((r) => r.backend === b)!;
            assert.equal(
              route.works,
              works.get(b),
              `${b}: ${route.why}; probe: ${JSON.stringify(rep.probes![b])}`,
            );
          }
          assert.deepEqual(
            doc.recommended.filter((b) => judged.includes(b)),
            judged.filter((b) => works.get(b)),
          );
          if (mode === 1) {
            // Nothing but the pool, and no command that would not help.
            for (const b of ["thp", "memfd"] as const) {
              const route = doc.routes.find((r) => r.backend === b)!;
              assert.equal(route.command, undefined, b);
            }
            assert.ok(doc.recommended.includes("hugetlb"));
            if (!POOL_SKIP) assert.equal(doc.backend, "hugetlb");
            else assert.match(doc.unavailable!, /hugetlb/);
          }
        } finally {
          const end = await child.finish();
          assert.equal(end.code, 0, end.stderr);
        }
      }),
    );
  }

  test(
    `${rt}: PR_SET_THP_DISABLE: remap() with each backend is ok exactly when smaps shows its copies on 2 MiB pages, and recommends only the hugetlb pool`,
    pooled(async () => {
      const wanted = POOL_SKIP
        ? ["thp", "memfd", "auto"] as const
        : ["thp", "memfd", "hugetlb", "auto"] as const;
      for (const backend of wanted) {
        const child = await startChild(rt, {
          thpDisable: 1,
          prime: { remap: { backend } },
        }, { script: "route_child.ts" });
        try {
          const out = (child.outcome as unknown as RouteReport).outcome!;
          const smaps = child.smaps();
          const moved = out.remap!.regions.filter((r) =>
            r.status === "remapped"
          );
          const huge = moved.reduce(
            (n, r) => n + hugeIn(smaps, r.dataStart, r.dataEnd),
            0,
          );
          console.log(
            `${rt}, THP disabled, backend ${backend}: ok=${out.ok}, ${moved.length} region(s), ${
              (huge / 2 ** 20).toFixed(1)
            } MiB on 2 MiB pages in smaps${
              out.reason ? `; reason: ${out.reason}` : ""
            }`,
          );
          assert.equal(out.ok, huge > 0, out.reason);
          if (backend === "thp" || backend === "memfd") {
            // Refused before anything is copied.
            assert.equal(out.ok, false);
            assert.equal(moved.length, 0);
          } else {
            assert.equal(out.ok, !POOL_SKIP, out.reason);
          }
          if (!out.ok) {
            assert.match(out.reason!, /PR_SET_THP_DISABLE/);
            assert.match(out.reason!, /backend: "hugetlb"/);
            assert.doesNotMatch(
              out.reason!,
              /shmem_enabled|echo (advise|madvise)/,
            );
            for (const w of out.warnings.concat(out.remap!.warnings)) {
              assert.doesNotMatch(w, /shmem_enabled|echo (advise|madvise)/);
            }
          } else {
            assert.equal(out.remap!.backend, "hugetlb");
          }
        } finally {
          const end = await child.finish();
          assert.equal(end.code, 0, end.stderr);
          assert.match(end.stdout, /ALIVE \d+/);
        }
      }
    }),
  );
}
