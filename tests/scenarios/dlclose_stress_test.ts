// Libraries that go away. Workers load and unload libraries (copies of
// the RELRO fixture, 3 MiB of code and 5 MiB of relocated RELRO, under
// their own file names so every dlclose really unloads) while the main
// thread of the same process cycles prime().objects(...).remap(true)
// and restore(). No crash, no live buffer changed, the libraries keep
// working in the Workers, and restore() only ever leaves ranges alone
// (never a plain failure). Then the case from issue 11: a library is
// remapped, the program dlcloses it, and restore() gives it back
// normally (it is pinned) before it unloads. And a remapped range that
// something else mapped over is left alone by restore(), not clobbered.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  ROOT,
  run as runCommand,
  runtimePath,
  RUNTIMES,
  startChild,
} from "../helpers.ts";
import { buildRelroLibrary } from "../fixtures/relro/build.ts";
import { parseMaps } from "../../src/sys/maps.ts";

/** Child processes per runtime, each doing CYCLES remap/restore cycles. */
const RUNS = 20;
const CYCLES = 6;
/** Workers per child, and libraries each one loads and unloads in turn. */
const WORKERS = 3;
const LIBS_PER_WORKER = 2;
/** Selectors the main thread cycles through. */
const SELECTORS = ["all", "librelro", "all", "librelro_w1"];
/** A child that has not finished by then is taken as hung. */
const RUN_TIMEOUT_MS = 60_000;

const built = buildRelroLibrary();
after(() => rmSync(built.dir, { recursive: true, force: true }));

/** Copies of the fixture, one file name per library a Worker loads. */
const workerLibs = Array.from(
  { length: WORKERS },
  (_, w) =>
    Array.from({ length: LIBS_PER_WORKER }, (_, k) => {
      const path = join(built.dir, `librelro_w${w}_${k}.so`);
      copyFileSync(built.path, path);
      return path;
    }),
);

/** What tests/fixtures/stress/dlclose_child.ts prints. */
interface StressOutcome {
  cycles: number;
  remapped: number;
  libraryRegions: number;
  notOk: number;
  restored: number;
  leftAlone: number;
  leftAloneMessages: string[];
  warnings: string[];
  ms: number;
  failures: string[];
  workers: { opens: number; errors: number; firstErrors: string[] }[];
}

function stressArgv(rt: "deno" | "bun"): string[] {
  const script = `${ROOT}tests/fixtures/stress/dlclose_child.ts`;
  const config = JSON.stringify({
    libs: workerLibs,
    cycles: CYCLES,
    selectors: SELECTORS,
  });
  // Deno: the Workers' modules need read access.
  return rt === "deno"
    ? [
      runtimePath("deno"),
      "run",
      "--allow-ffi",
      `--allow-read=${ROOT}`,
      script,
      config,
    ]
    : [runtimePath("bun"), script, config];
}

for (const rt of RUNTIMES) {
  test(
    `${rt}: ${WORKERS} Workers dlopen/dlclose libraries while the main thread remaps and restores .objects(${
      SELECTORS.join("|")
    }), ${RUNS} runs`,
    { timeout: RUNS * RUN_TIMEOUT_MS },
    async () => {
      const t0 = performance.now();
      const problems: string[] = [];
      const sum = {
        runs: 0,
        crashes: 0,
        cycles: 0,
        remapped: 0,
        libraryRegions: 0,
        leftAlone: 0,
        opens: 0,
      };
      for (let run = 0; run < RUNS; run++) {
        const r = await runCommand(stressArgv(rt), {
          timeoutMs: RUN_TIMEOUT_MS,
        });
        sum.runs++;
        const m = /^OUTCOME (.*)$/m.exec(r.stdout);
        if (r.code !== 0 || m === null) {
          sum.crashes++;
          problems.push(
            `run ${run}: exit ${r.code} signal ${r.signal}: ${
              r.stderr.slice(-1500)
            }`,
          );
          continue;
        }
        const out = JSON.parse(m[1]) as StressOutcome;
        sum.cycles += out.cycles;
        sum.remapped += out.remapped;
        sum.libraryRegions += out.libraryRegions;
        sum.leftAlone += out.leftAlone;
        if (out.leftAlone > 0) {
          console.log(`${rt} run ${run} left alone: ${out.leftAloneMessages}`);
        }
        for (const f of out.failures) problems.push(`run ${run}: ${f}`);
        out.workers.forEach((w, n) => {
          sum.opens += w.opens;
          if (w.errors > 0 || w.opens === 0) {
            problems.push(
              `run ${run} worker ${n}: ${w.opens} loads, ${w.errors} wrong: ${
                w.firstErrors.join("; ")
              }`,
            );
          }
        });
        if (out.cycles !== CYCLES) {
          problems.push(`run ${run}: ${out.cycles} of ${CYCLES} cycles`);
        }
      }
      const seconds = (performance.now() - t0) / 1000;
      console.log(
        `${rt}: ${sum.runs} runs, ${sum.crashes} crashes, ${sum.cycles} cycles, ${sum.remapped} regions remapped (${sum.libraryRegions} of the Workers' libraries), ${sum.leftAlone} left alone by restore, ${sum.opens} dlopen/dlclose in Workers, ${
          seconds.toFixed(1)
        } s`,
      );
      assert.deepEqual(problems, []);
      assert.equal(sum.crashes, 0);
      assert.ok(
        sum.libraryRegions > 0,
        "no region of a Worker's library was ever remapped: the stress did not reach its case",
      );
    },
  );

  test(`${rt}: restore() leaves alone a remapped range something else mapped over, and maps nothing over it`, async () => {
    const lib = join(built.dir, `librelro_cover_${rt}.so`);
    copyFileSync(built.path, lib);
    const child = await startChild(rt, { lib }, {
      script: "stress/unload_child.ts",
    });
    try {
      const ask = async (line: string) =>
        JSON.parse(await child.ask(line, "DONE "));
      const remap = await ask("remap");
      assert.equal(remap.ok, true, remap.reason);
      const regions = remap.regions.filter((r: { object: string }) =>
        r.object === lib
      );
      await ask("fill");
      const cover = await ask("cover");
      assert.equal(cover.error, undefined, cover.error);

      const back = await ask("restore");
      assert.equal(back.failed.length, 1, JSON.stringify(back));
      assert.equal(back.failed[0].start, cover.at, JSON.stringify(back));
      assert.match(back.failed[0].message, /left alone/);
      assert.equal(back.restored, regions.length - 1, JSON.stringify(back));
      assert.deepEqual(back.changed, [], "live buffers changed");
      assert.deepEqual(
        await ask("covered"),
        { intact: true },
        "restore() wrote over memory that was no longer its copy",
      );
      const at = parseMaps(readFileSync(`/proc/${child.pid}/maps`, "utf8"))
        .find((v) => v.start <= cover.at && cover.at < v.end);
      assert.ok(
        at && at.path !== lib,
        `${lib} mapped at 0x${cover.at.toString(16)}`,
      );
      assert.equal(at.perms, "rw-p", "the program's mapping was replaced");
      // Forgotten: a second restore has nothing to do.
      const again = await ask("restore");
      assert.equal(again.restored, 0, JSON.stringify(again));
      assert.deepEqual(again.failed, [], JSON.stringify(again));
      const done = await child.finish();
      assert.equal(done.code, 0, done.stderr);
    } finally {
      await child.finish().catch(() => {});
    }
  });

  test(`${rt}: a remapped library that the program dlcloses stays loaded until restore(), which gives it back and lets it go`, async () => {
    const lib = join(built.dir, `librelro_unload_${rt}.so`);
    copyFileSync(built.path, lib);
    const child = await startChild(rt, { lib }, {
      script: "stress/unload_child.ts",
    });
    try {
      const ask = async (line: string) =>
        JSON.parse(await child.ask(line, "DONE "));
      const mapped = () =>
        parseMaps(readFileSync(`/proc/${child.pid}/maps`, "utf8"))
          .filter((v) => v.path === lib);
      assert.ok(mapped().length > 0, "the library is loaded");

      const remap = await ask("remap");
      assert.equal(remap.ok, true, remap.reason);
      const regions = remap.regions.filter((r: { object: string }) =>
        r.object === lib
      );
      assert.ok(regions.length > 0, JSON.stringify(remap));
      for (const r of regions) assert.equal(r.status, "remapped", r.error);
      await ask("fill");

      await ask("close");
      assert.ok(
        mapped().length > 0,
        "dlclose unloaded a library page-primer had remapped: it is not pinned",
      );
      // Allocations after the dlclose, where the library would have been.
      await ask("fill");

      const back = await ask("restore");
      assert.deepEqual(back.failed, [], JSON.stringify(back));
      assert.equal(back.restored, regions.length, JSON.stringify(back));
      assert.deepEqual(back.changed, [], "live buffers changed");
      assert.deepEqual(
        mapped(),
        [],
        "the library is still mapped after restore() released its pins",
      );
      // Memory now where the library was: nothing of page-primer's left
      // to act on, and a later cycle does not touch it.
      await ask("fill");
      const all = await ask("all");
      assert.deepEqual(all.restore.failed, [], JSON.stringify(all.restore));
      assert.equal(
        all.regions.filter((r: { object: string }) => r.object === lib).length,
        0,
      );
      assert.deepEqual(all.changed, [], "live buffers changed");
      const done = await child.finish();
      assert.equal(done.code, 0, done.stderr);
    } finally {
      await child.finish().catch(() => {});
    }
  });
}
