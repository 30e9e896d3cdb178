// The memfd backend: a copy in a memfd named after the executable, so maps
// shows /memfd:<path> (deleted); bytes equal the file; restore works; auto
// picks it when THP is off for the process but shmem THP is on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { selected } from "../../src/sys/thp.ts";
import { readFileSync, writeFileSync } from "node:fs";
import {
  isRoot,
  type RemapChildReport,
  RUNTIMES,
  startChild,
} from "../helpers.ts";

const SHMEM = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
const ROOT_SKIP = isRoot() ? false : "needs root to change shmem_enabled";
// Read when the file loads, and put back by each test that changes it (a
// file-level before()/after() does not run under every --filter).
const saved = ROOT_SKIP ? "" : selected(readFileSync(SHMEM, "utf8"));

type Report = RemapChildReport;

for (const rt of RUNTIMES) {
  test(`${rt}: backend "memfd" copies into /memfd:<path>, bytes equal, restore works`, async () => {
    const child = await startChild(rt, [
      { remap: { backend: "memfd" } },
      "verify",
    ], {
      script: "remap_child.ts",
    });
    try {
      const rep = child.outcome as unknown as Report;
      const out = rep.results[0].remap!;
      assert.equal(out.ok, true, out.reason);
      assert.equal(out.remap!.backend, "memfd");
      assert.equal(rep.results[1].verify!.mismatches, 0);
      const exe = out.segments[0].object;
      const smaps = child.smaps();
      for (const r of out.remap!.regions) {
        const copy = smaps.filter((v) => v.start < r.end && r.start < v.end);
        assert.ok(copy.length >= 1);
        for (const v of copy) {
          assert.equal(v.path, `/memfd:${exe} (deleted)`);
          assert.ok(v.shared && !v.write, `${v.perms}`);
        }
        // Huge or not, the figure is the kernel's: ShmemPmdMapped in smaps.
        const pmd = copy.reduce((n, v) => n + v.shmemPmdMapped, 0);
        const expected = pmd * r.bytes / (r.end - r.start); // pro rata: data part
        assert.ok(
          Math.abs(expected - r.huge) <= 4096,
          `reported ${r.huge}, smaps ${expected}`,
        );
      }
      const res = JSON.parse(await child.ask("restore", "RESTORE "));
      assert.equal(res.restored, out.remap!.regions.length);
      const text = out.segments.find((s) =>
        s.kind === "text" && s.origin === "load"
      )!;
      const now = child.smaps().filter((v) =>
        v.start < text.end && text.start < v.end
      );
      assert.ok(
        now.every((v) => v.path === exe),
        "text not file-backed after restore",
      );
    } finally {
      const end = await child.finish();
      assert.equal(end.code, 0, end.stderr);
    }
  });

  test(
    `${rt}: auto never picks memfd when THP is off for the process, even with shmem THP on (shmem gets no huge pages then)`,
    { skip: ROOT_SKIP },
    async () => {
      writeFileSync(SHMEM, "advise");
      const child = await startChild(rt, [
        { thpDisable: true },
        { remap: {} },
        "verify",
      ], {
        script: "remap_child.ts",
      });
      try {
        const rep = child.outcome as unknown as Report;
        const out = rep.results[1].remap!;
        // Whatever pool this machine has: the hugetlb pool when it covers
        // the plan, else nothing, with the command that sizes the pool.
        assert.notEqual(out.remap!.backend, "memfd");
        if (out.ok) {
          assert.equal(out.remap!.backend, "hugetlb");
        } else {
          assert.match(out.reason ?? "", /nr_hugepages/);
          assert.equal(out.remap!.regions.length, 0);
        }
        assert.equal(rep.results[2].verify!.mismatches, 0);
      } finally {
        await child.finish();
        writeFileSync(SHMEM, saved);
      }
    },
  );
}
