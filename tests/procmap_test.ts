// PROCMAP_QUERY against /proc/self/maps in this process: the same VMAs with
// the same fields, the build-id the ELF file's note holds, and the request
// number encoding the structure's size.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { libc } from "../src/sys/libc.ts";
import { parseMaps } from "../src/sys/maps.ts";
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

test("the VMA at an address, the next one, and none past the end", {
  skip: SKIP,
}, () => {
  const exe = c.readlink("/proc/self/exe");
  const vmas = parseMaps(c.readText("/proc/self/maps"));
  const first = vmas.find((v) => v.path === exe)!;
  const at = queryVma(c, first.start + 1)!;
  assert.equal(at.start, first.start);
  assert.equal(at.path, exe);
  assert.equal(at.pageSize, c.pageSize());
  const gap = vmas.findIndex((v, i) => i > 0 && vmas[i - 1].end < v.start);
  if (gap > 0) {
    const hole = vmas[gap - 1].end;
    assert.equal(queryVma(c, hole), undefined);
    assert.equal(queryVma(c, hole, { next: true })?.start, vmas[gap].start);
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
