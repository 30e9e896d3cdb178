// PROCMAP_QUERY against /proc/self/maps in this process: the same VMAs with
// the same fields, the build-id the ELF file's note holds, and the request
// number encoding the structure's size.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { libc } from "../src/sys/libc.ts";
import { parseMaps, type Vma } from "../src/sys/maps.ts";
import {
  PROCMAP_QUERY,
  PROCMAP_QUERY_SIZE,
  procmapAvailable,
  queryVma,
  queryVmas,
} from "../src/sys/procmap.ts";
import { bytesSource, parseElfHeader, readBuildId } from "../src/sys/elf.ts";

const c = libc();
const SKIP = procmapAvailable(c) ?? false;
if (SKIP) console.log(`procmap_test: skipped: ${SKIP}`);

test("PROCMAP_QUERY is _IOWR('f', 17, 104 bytes)", () => {
  assert.equal(PROCMAP_QUERY >>> 30, 3); // read and write
  assert.equal((PROCMAP_QUERY >>> 16) & 0x3fff, PROCMAP_QUERY_SIZE);
  assert.equal((PROCMAP_QUERY >>> 8) & 0xff, "f".charCodeAt(0));
  assert.equal(PROCMAP_QUERY & 0xff, 17);
  assert.equal(PROCMAP_QUERY_SIZE, 104);
});

test("file-backed VMAs equal /proc/self/maps, field by field", {
  skip: SKIP,
}, () => {
  // File mappings rarely change while a test runs; read both twice and
  // compare the pair that agrees with itself.
  for (let attempt = 0;; attempt++) {
    const maps = parseMaps(c.readText("/proc/self/maps"))
      .filter((v) => v.inode !== 0);
    const got = queryVmas(c, 0, 2 ** 64, { fileBacked: true })
      .map(({ pageSize: _p, buildId: _b, ...v }) => v);
    const again = parseMaps(c.readText("/proc/self/maps"))
      .filter((v) => v.inode !== 0);
    if (JSON.stringify(maps) !== JSON.stringify(again) && attempt < 5) {
      continue;
    }
    assert.ok(maps.length > 0);
    assert.deepEqual(got, maps);
    return;
  }
});

/**
 * The start of the first VMA of `maps` above `addr` when none holds `addr`,
 * else `undefined`.
 */
function nextStart(maps: readonly Vma[], addr: number): number | undefined {
  if (maps.some((v) => v.start <= addr && addr < v.end)) return undefined;
  return maps.find((v) => v.start > addr)?.start;
}

test("the VMA at an address, the next one, and none past the end", {
  skip: SKIP,
}, () => {
  const exe = c.readlink("/proc/self/exe");
  const first = parseMaps(c.readText("/proc/self/maps"))
    .find((v) => v.path === exe)!;
  const at = queryVma(c, first.start + 1)!;
  assert.equal(at.start, first.start);
  assert.equal(at.path, exe);
  assert.equal(at.pageSize, c.pageSize());
  // Other threads of the runtime may map memory into the gap meanwhile:
  // read the maps again after the queries, and retry (a few times) when
  // the gap did not stay as it was.
  for (let attempt = 0;; attempt++) {
    const maps = parseMaps(c.readText("/proc/self/maps"));
    const i = maps.findIndex((v, j) => j > 0 && maps[j - 1].end < v.start);
    assert.ok(i > 0, "no gap between this process's VMAs");
    const hole = maps[i - 1].end;
    const inHole = queryVma(c, hole);
    const next = queryVma(c, hole, { next: true })?.start;
    const again = parseMaps(c.readText("/proc/self/maps"));
    if (nextStart(again, hole) !== maps[i].start && attempt < 5) continue;
    assert.equal(inHole, undefined);
    assert.equal(next, maps[i].start);
    break;
  }
  assert.equal(queryVma(c, 2 ** 53 - 4096, { next: true }), undefined);
  assert.throws(() => queryVma(c, -1), RangeError);
  assert.throws(() => queryVmas(c, 2, 1), RangeError);
});

test("build-id of the executable equals its ELF note", { skip: SKIP }, () => {
  const exe = c.readlink("/proc/self/exe");
  const src = bytesSource(new Uint8Array(readFileSync(exe)));
  const expected = readBuildId(src, parseElfHeader(src));
  const text = parseMaps(c.readText("/proc/self/maps")).find((v) =>
    v.path === exe && v.exec
  )!;
  const got = queryVma(c, text.start, { buildId: true })!;
  assert.equal(got.buildId, expected);
  assert.equal(queryVma(c, text.start)!.buildId, undefined);
});
