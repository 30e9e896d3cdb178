// Resource faults: vm.max_map_count nearly exhausted, RLIMIT_AS too low for
// the staging copy, and a memory cgroup limit below the copy size. Each ends
// with a clean, explained outcome, the code equal to the file, and the
// process running. (The hugetlb pool and a hugetlb cgroup limit:
// tests/scenarios/hugetlb_test.ts; THP disabled for the process: tests/scenarios/remap_test.ts.)
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  readFileSync,
  rmdirSync,
  writeFileSync,
} from "node:fs";
import process from "node:process";
import type { PrimeOutcomeData } from "../../mod.ts";
import { memcgProblem } from "../../src/sys/limits.ts";
import {
  isRoot,
  type RemapChildReport,
  RUNTIMES,
  startChild,
} from "../helpers.ts";

const MiB = 1024 * 1024;

function textIsFile(
  out: PrimeOutcomeData,
  smaps: { start: number; end: number; path: string }[],
) {
  const text = out.segments.find((s) =>
    s.kind === "text" && s.origin === "load"
  )!;
  return smaps.filter((v) => v.start < text.end && text.start < v.end)
    .every((v) => v.path === text.object);
}

for (const rt of RUNTIMES) {
  test(
    `${rt}: with vm.max_map_count nearly exhausted, remap changes nothing and names the sysctl`,
    {
      // Measured: with 5 mappings left, V8's own threads fail an mmap and
      // the process aborts before page-primer runs (the pure check is tested
      // below).
      skip: rt === "deno"
        ? "deno's V8 threads abort when the process runs out of mappings"
        : false,
    },
    async () => {
      const child = await startChild(rt, [
        { fillMaps: 5, then: {} },
        "verify",
      ], {
        script: "remap_child.ts",
      });
      try {
        const rep = child.outcome as unknown as RemapChildReport;
        const out = rep.results[0].remap!;
        assert.deepEqual(out.remap!.regions, []);
        assert.ok(
          out.remap!.warnings.some((w) =>
            /vm\.max_map_count leaves room for -?\d+ more mappings, a remap needs up to \d+: nothing remapped; raise it with sysctl -w vm\.max_map_count=\d+/
              .test(w)
          ),
          out.remap!.warnings.join("\n"),
        );
        assert.ok(textIsFile(out, child.smaps()));
        assert.equal(rep.results[1].verify!.mismatches, 0);
      } finally {
        const end = await child.finish();
        assert.match(end.stdout, /ALIVE \d+/);
      }
    },
  );

  test(`${rt}: with RLIMIT_AS too low for the staging copy, the region fails cleanly`, async () => {
    // 40 MiB more address space: rodata's copy (~30 MiB) fits, text's
    // (~64-80 MiB with the alignment slack) does not.
    const child = await startChild(rt, [
      { limitAs: 40 * MiB },
      { remap: {} },
      "verify",
    ], {
      script: "remap_child.ts",
    });
    try {
      const rep = child.outcome as unknown as RemapChildReport;
      const out = rep.results[1].remap!;
      const failed = out.remap!.regions.filter((r) => r.status === "failed");
      console.log(
        `${rt}: RLIMIT_AS +40 MiB: ${
          failed.map((f) => `${f.kind} ${f.error!.step} ${f.error!.code}`).join(
            ", ",
          )
        }`,
      );
      assert.ok(failed.length >= 1, "the limit did not bite");
      for (const f of failed) {
        assert.equal(f.error!.code, "ENOMEM");
        assert.match(f.error!.message, /nothing was changed/);
      }
      assert.ok(textIsFile(out, child.smaps()));
      assert.equal(rep.results[2].verify!.mismatches, 0);
    } finally {
      const end = await child.finish();
      assert.match(end.stdout, /ALIVE \d+/);
    }
  });
}

// A memory cgroup (v1 here) whose limit leaves less than a copy.
const MEMCG = "/sys/fs/cgroup/memory";
const memcgSkip = !isRoot()
  ? "needs root to make a memory cgroup"
  : !existsSync(`${MEMCG}/memory.limit_in_bytes`)
  ? `no cgroup v1 memory controller at ${MEMCG}`
  : false;
if (memcgSkip) {
  console.log(`resource_test: memory cgroup case skipped: ${memcgSkip}`);
}

for (const rt of RUNTIMES) {
  test(
    `${rt}: a memory cgroup limit below the copy size: nothing remapped, the reason given, no OOM kill`,
    {
      skip: memcgSkip,
    },
    async () => {
      const dir = `${MEMCG}/page-primer-test-${process.pid}-${rt}`;
      mkdirSync(dir);
      try {
        const child = await startChild(rt, [], {
          script: "remap_child.ts",
          shellPrefix: `echo $$ > ${dir}/cgroup.procs && exec`,
        });
        let end;
        try {
          const usage = Number(
            readFileSync(`${dir}/memory.usage_in_bytes`, "utf8"),
          );
          writeFileSync(
            `${dir}/memory.limit_in_bytes`,
            String(usage + 48 * MiB),
          );
          const got = JSON.parse(await child.ask("remap {}", "REMAP "));
          const out = got.remap as PrimeOutcomeData;
          const warning = out.remap!.warnings.find((w) =>
            /the memory cgroup .* allows .* more .*the remap may charge it .*nothing remapped/
              .test(w)
          );
          console.log(`${rt}: memory cgroup at usage + 48 MiB: ${warning}`);
          assert.ok(warning, out.remap!.warnings.join("\n"));
          assert.deepEqual(out.remap!.regions, []);
          assert.equal(got.verify.mismatches, 0);
          writeFileSync(`${dir}/memory.limit_in_bytes`, "-1");
        } finally {
          end = await child.finish();
        }
        assert.equal(end.code, 0, end.stderr);
        assert.match(end.stdout, /ALIVE \d+/);
        const oom = readFileSync(`${dir}/memory.oom_control`, "utf8");
        assert.match(oom, /oom_kill 0/);
      } finally {
        rmdirSync(dir);
      }
    },
  );
}

test("memcgProblem reads v1 and v2, walks up to the tightest ancestor", () => {
  const v1: Record<string, string> = {
    "/sys/fs/cgroup/memory/a/b/memory.limit_in_bytes": "9223372036854771712",
    "/sys/fs/cgroup/memory/a/b/memory.usage_in_bytes": String(100 * MiB),
    "/sys/fs/cgroup/memory/a/memory.limit_in_bytes": String(200 * MiB),
    "/sys/fs/cgroup/memory/a/memory.usage_in_bytes": String(150 * MiB),
  };
  const cg = "4:memory:/a/b\n1:cpu:/\n";
  assert.match(
    memcgProblem(cg, (f) => v1[f], 92 * MiB)!,
    /memory cgroup \/sys\/fs\/cgroup\/memory\/a allows 50\.0 MiB more/,
  );
  assert.equal(memcgProblem(cg, (f) => v1[f], 30 * MiB), undefined);
  const v2: Record<string, string> = {
    "/sys/fs/cgroup/svc/memory.max": "max",
    "/sys/fs/cgroup/svc/memory.current": "1",
  };
  assert.equal(memcgProblem("0::/svc\n", (f) => v2[f], 92 * MiB), undefined);
  v2["/sys/fs/cgroup/svc/memory.max"] = String(64 * MiB);
  assert.match(
    memcgProblem("0::/svc\n", (f) => v2[f], 92 * MiB)!,
    /raise memory\.max/,
  );
  assert.equal(memcgProblem("", () => undefined, 92 * MiB), undefined);
});
