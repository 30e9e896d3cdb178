// src/sys/segments.ts: segment kinds, ranges, measuring and selecting, on
// the recorded smaps of a Deno process (tests/fixtures/maps/).

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  aliasRanges,
  byPriority,
  measureRange,
  permsOf,
  segmentKind,
  segmentRanges,
  selectObjects,
} from "../src/sys/segments.ts";
import { parseSmaps } from "../src/sys/maps.ts";
import { DENO_LOADS, denoFixture } from "./fixtures/deno_layout.ts";

test("segmentKind and permsOf follow p_flags", () => {
  assert.equal(segmentKind(5), "text");
  assert.equal(segmentKind(4), "rodata");
  assert.equal(segmentKind(6), "data");
  assert.equal(segmentKind(7), "data");
  assert.equal(permsOf(5), "r-x");
  assert.equal(permsOf(6), "rw-");
  assert.equal(permsOf(4), "r--");
});

test("segmentRanges page-aligns each LOAD at the load bias", () => {
  const r = segmentRanges(
    { path: "/x", main: true, bias: 0x555500000000, segments: DENO_LOADS },
    4096,
  );
  assert.equal(r.length, 4);
  assert.equal(r[1].start, 0x555500000000 + 0x1e04000);
  assert.equal(r[1].end, 0x555500000000 + 0x5af8000);
  assert.equal(r[2].start, 0x555500000000 + 0x5af8000);
  assert.equal(r[3].start, 0x555500000000 + 0x5d6a000);
  assert.equal(r[3].end, 0x555500000000 + 0x5dd2000);
  assert.deepEqual(r.map((x) => x.kind), ["rodata", "text", "data", "data"]);
  for (const x of r) {
    assert.equal(x.start % 4096, 0);
    assert.equal(x.end % 4096, 0);
  }
});

test("segmentRanges drops empty segments", () => {
  const r = segmentRanges({
    path: "/x",
    main: true,
    bias: 0,
    segments: [{
      index: 0,
      flags: 4,
      vaddr: 0x1000,
      memsz: 0,
      filesz: 0,
      offset: 0,
    }],
  }, 4096);
  assert.equal(r.length, 0);
});

test("measureRange on the deno fixture matches the smaps lines", () => {
  const { smaps, bias } = denoFixture();
  const [, text] = segmentRanges(
    { path: "/x", main: true, bias, segments: DENO_LOADS },
    4096,
  );
  const m = measureRange(smaps, text.start, text.end);
  const vma = smaps.find((v) => v.start === text.start)!;
  assert.ok(vma, "no VMA starts at the text segment");
  assert.equal(vma.perms, "r-xp");
  assert.equal(m.mapped, text.end - text.start);
  assert.equal(m.resident, vma.rss);
  assert.equal(m.locked, vma.vmFlags.includes("lo") ? vma.rss : 0);
  assert.equal(m.lockedPss, vma.locked);
});

test("aliasRanges finds V8's second mapping of deno's text, nothing inside LOADs", () => {
  const { smaps, bias, path } = denoFixture();
  const obj = { path, main: true, bias, segments: DENO_LOADS };
  const loads = segmentRanges(obj, 4096);
  const aliases = aliasRanges(obj, loads, smaps);
  assert.equal(aliases.length, 1, JSON.stringify(aliases));
  assert.equal(aliases[0].start, 0x7f1ff3dc0000);
  assert.equal(aliases[0].end, 0x7f1ff3fe6000);
  assert.equal(aliases[0].kind, "text");
  assert.equal(aliases[0].origin, "alias");
  assert.equal(aliases[0].index, 4);
  // Another object's path matches nothing.
  assert.equal(aliasRanges({ ...obj, path: "/nope" }, loads, smaps).length, 0);
});

test("measureRange counts only VM_LOCKED VMAs as locked, by Rss", () => {
  const base = parseSmaps(
    "1000-3000 r-xp 00000000 08:01 1 /bin/x\nSize: 8 kB\nRss: 8 kB\nLocked: 4 kB\nVmFlags: rd ex lo\n" +
      "3000-5000 r--p 00000000 08:01 1 /bin/x\nSize: 8 kB\nRss: 4 kB\nLocked: 0 kB\nVmFlags: rd\n",
  );
  const m = measureRange(base, 0x1000, 0x5000);
  assert.equal(m.mapped, 16384);
  assert.equal(m.resident, 12288);
  assert.equal(m.locked, 8192); // Rss of the "lo" VMA, not its PSS-like Locked
  assert.equal(m.lockedPss, 4096);
});

test("selectObjects: main, all, substring, RegExp, predicate", () => {
  const objs = [
    { path: "/usr/bin/deno", main: true },
    { path: "/lib/x86_64-linux-gnu/libc.so.6", main: false },
    { path: "/lib/x86_64-linux-gnu/libm.so.6", main: false },
  ];
  assert.deepEqual(selectObjects(objs, ["main"]).map((o) => o.path), [
    "/usr/bin/deno",
  ]);
  assert.equal(selectObjects(objs, ["all"]).length, 3);
  assert.deepEqual(selectObjects(objs, ["libc"]).map((o) => o.path), [
    objs[1].path,
  ]);
  assert.equal(selectObjects(objs, [/lib[cm]\.so/g]).length, 2);
  assert.equal(
    selectObjects(objs, [/lib[cm]\.so/g]).length,
    2,
    "a global RegExp must not keep state",
  );
  assert.equal(selectObjects(objs, [(o) => !o.main]).length, 2);
  assert.equal(selectObjects(objs, ["nothing-like-this"]).length, 0);
});

test("byPriority puts text first, then rodata, then data", () => {
  const r = byPriority([
    { kind: "data" as const, start: 1 },
    { kind: "text" as const, start: 3 },
    { kind: "rodata" as const, start: 0 },
    { kind: "text" as const, start: 2 },
  ]);
  assert.deepEqual(r.map((x) => `${x.kind}${x.start}`), [
    "text2",
    "text3",
    "rodata0",
    "data1",
  ]);
});
