// A remap in 2 MiB mode whose copies all ended up on 4 KiB pages gains
// nothing and is not ok. Made to happen for real with the memfd backend and
// shmem_enabled=deny (which MADV_COLLAPSE obeys too); judged in the child's
// smaps (ShmemPmdMapped). The control, shmem_enabled=advise, is ok with
// huge pages. Needs root to write shmem_enabled; restores it afterwards.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import {
  isRoot,
  type RemapChildReport,
  RUNTIMES,
  startChild,
} from "../helpers.ts";
import { sumIn } from "../../src/sys/maps.ts";

const SHMEM = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
const SKIP = isRoot() ? false : "needs root to write shmem_enabled";
if (SKIP) console.log(`no_huge_pages_test: skipped: ${SKIP}`);
// Read when the file loads, and put back by each test that changes it (a
// file-level before()/after() does not run under every --filter).
const saved = SKIP ? "" : /\[([^\]]+)\]/.exec(readFileSync(SHMEM, "utf8"))![1];

for (const rt of RUNTIMES) {
  for (const setting of ["deny", "advise"] as const) {
    test(
      `${rt}: memfd backend with shmem_enabled=${setting}: ok exactly when smaps shows the copies on 2 MiB pages`,
      { skip: SKIP },
      async () => {
        writeFileSync(SHMEM, setting);
        const child = await startChild(rt, [
          { remap: { backend: "memfd" } },
          "verify",
        ], { script: "remap_child.ts" });
        try {
          const rep = child.outcome as unknown as RemapChildReport;
          const out = rep.results[0].remap!;
          const moved = out.remap!.regions.filter((r) =>
            r.status === "remapped"
          );
          const smaps = child.smaps();
          const huge = moved.reduce(
            (n, r) =>
              n + sumIn(smaps, r.dataStart, r.dataEnd, (v) => v.shmemPmdMapped),
            0,
          );
          console.log(
            `${rt}, shmem_enabled=${setting}: ${moved.length} region(s) remapped, ${
              (huge / 2 ** 20).toFixed(1)
            } MiB ShmemPmdMapped; ok=${out.ok}${
              out.reason ? `, reason: ${out.reason}` : ""
            }`,
          );
          assert.ok(moved.length > 0, "nothing was remapped");
          assert.equal(rep.results[1].verify!.mismatches, 0);
          assert.equal(out.ok, huge > 0, out.reason);
          assert.equal(out.ok, setting === "advise", out.reason);
          if (!out.ok) {
            assert.match(
              out.reason!,
              /^no 2 MiB pages were obtained: the \d+ region\(s\) of \S+ remapped with the memfd backend are on 4 KiB pages.*cli\.ts doctor.*restore\(\)/,
            );
            assert.match(out.remap!.warnings.join("\n"), /deny/);
            // What the reason offers: restore() gives the copies back.
            const res = JSON.parse(await child.ask("restore", "RESTORE "));
            assert.equal(res.restored, moved.length);
            const text = out.segments.find((s) =>
              s.kind === "text" && s.origin === "load"
            )!;
            assert.ok(
              child.smaps().filter((v) =>
                v.start < text.end && text.start < v.end
              ).every((v) => v.path === text.object),
              "text not back on its file",
            );
          }
        } finally {
          const end = await child.finish();
          writeFileSync(SHMEM, saved);
          assert.equal(end.code, 0, end.stderr);
          assert.match(end.stdout, /ALIVE \d+/);
        }
      },
    );
  }
}
