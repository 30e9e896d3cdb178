// RELRO: data the dynamic linker relocated and then sealed read-only
// differs from the file. A library built here (tests/fixtures/relro/) has
// 5 MiB of it, so whole 2 MiB pages of it qualify for a remap wherever
// ASLR puts it. For each mode (THP, 4 KiB copy, shared, hugetlb when root)
// on both runtimes: remap, then restore; after each step, read from
// outside through /proc/<pid>/mem, every byte of the table and of the
// library's code equals what it was before, and its pointers still work.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  isRoot,
  raiseHugetlbPool,
  readMem,
  RUNTIMES,
  startChild,
} from "../helpers.ts";
import { buildRelroLibrary } from "../fixtures/relro/build.ts";
import { parseMaps } from "../../src/sys/maps.ts";

const built = buildRelroLibrary();
after(() => rmSync(built.dir, { recursive: true, force: true }));

/** The library's mapped ranges (every VMA of its file), from maps. */
function libraryRanges(pid: number, path: string) {
  return parseMaps(readFileSync(`/proc/${pid}/maps`, "utf8"))
    .filter((v) => v.path === path && !v.write)
    .map((v) => ({ start: v.start, end: v.end }));
}

/** Bytes that differ between two equally long arrays. */
function countDiffering(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

interface Mode {
  name: string;
  options: Record<string, unknown>;
  root?: boolean;
}

const MODES: Mode[] = [
  { name: "THP", options: { backend: "thp" } },
  { name: "4 KiB copy", options: { pageSize: "4k" } },
  { name: "shared", options: { share: true } },
  { name: "hugetlb", options: { backend: "hugetlb" }, root: true },
];

for (const runtime of RUNTIMES) {
  for (const mode of MODES) {
    test(`${runtime}: RELRO library, ${mode.name}: remap and restore keep every byte as memory had it`, async (t) => {
      if (mode.root && !isRoot()) {
        t.skip("needs root to reserve a hugetlb pool");
        return;
      }
      const shareDir = mkdtempSync(join(tmpdir(), "page-primer-relro-share-"));
      const options = mode.options.share
        ? { ...mode.options, share: { dir: join(shareDir, "copies") } }
        : mode.options;
      const pool = mode.root ? raiseHugetlbPool(16) : undefined;
      const child = await startChild(runtime, { lib: built.path }, {
        script: "relro_child.ts",
      }).catch((e) => {
        rmSync(shareDir, { recursive: true, force: true });
        pool?.restore();
        throw e;
      });
      try {
        const info = child.outcome as unknown as {
          table: number;
          tableBytes: number;
          good: number;
          entries: number;
        };
        assert.equal(info.good, info.entries, "the fixture works at all");
        const table = { start: info.table, end: info.table + info.tableBytes };
        const ranges = [table, ...libraryRanges(child.pid, built.path)];
        const before = ranges.map((r) => readMem(child.pid, r.start, r.end));
        // The premise: the table in memory is not the file's bytes.
        const at = parseMaps(readFileSync(`/proc/${child.pid}/maps`, "utf8"))
          .find((v) => v.start <= table.start && table.start < v.end)!;
        const offset = at.offset + (table.start - at.start);
        const fromFile = readFileSync(built.path).subarray(
          offset,
          offset + 4096,
        );
        assert.ok(
          countDiffering(fromFile, before[0].subarray(0, 4096)) > 0,
          "the relocated table differs from the file",
        );

        const ask = async (line: string) =>
          JSON.parse(await child.ask(line, "DONE "));
        const same = (step: string) => {
          ranges.forEach((r, i) => {
            const now = readMem(child.pid, r.start, r.end);
            assert.equal(
              countDiffering(before[i], now),
              0,
              `${step}: bytes of 0x${r.start.toString(16)}-0x${
                r.end.toString(16)
              } changed`,
            );
          });
        };

        const out = await ask(`remap ${JSON.stringify(options)}`);
        const regions = out.remap.regions as {
          start: number;
          end: number;
          dataStart: number;
          dataEnd: number;
          equalsFile: boolean;
          status: string;
          kind: string;
          notes: string[];
        }[];
        const relro = regions.filter((r) =>
          r.dataStart < table.end && table.start < r.dataEnd
        );
        assert.ok(
          relro.length > 0,
          `a region of the relocated table was planned: ${
            JSON.stringify(out.remap.skipped)
          }`,
        );
        for (const r of relro) {
          assert.equal(r.equalsFile, false, "RELRO is never taken as the file");
          assert.equal(r.status, "remapped", JSON.stringify(r));
          if (mode.options.share) {
            assert.ok(
              r.notes.some((n) => n.startsWith("not shared")),
              JSON.stringify(r.notes),
            );
          }
        }
        same("after remap");
        assert.deepEqual(await ask("check"), {
          good: info.entries,
          entries: info.entries,
          code: 42,
        });

        const back = await ask("restore");
        assert.deepEqual(back.failed, [], JSON.stringify(back));
        assert.equal(back.copied, relro.length, JSON.stringify(back));
        same("after restore");
        assert.deepEqual(await ask("check"), {
          good: info.entries,
          entries: info.entries,
          code: 42,
        });
        // Restored RELRO pages are anonymous memory, never the file again.
        const maps = parseMaps(readFileSync(`/proc/${child.pid}/maps`, "utf8"));
        for (const r of relro) {
          for (const v of maps) {
            if (v.start < r.dataEnd && r.dataStart < v.end) {
              assert.notEqual(v.path, built.path, "file mapped over RELRO");
            }
          }
        }
        const done = await child.finish();
        assert.equal(done.code, 0, done.stderr);
      } finally {
        await child.finish().catch(() => {});
        rmSync(shareDir, { recursive: true, force: true });
        pool?.restore();
      }
    });
  }
}
