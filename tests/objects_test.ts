// src/sys/objects.ts: the loaded objects and /proc/self/status.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, realpathSync } from "node:fs";
import process from "node:process";
import { memory } from "../src/sys/ffi.ts";
import { libc } from "../src/sys/libc.ts";
import {
  loadedObjects,
  mainExecutable,
  parseStatus,
  readSmaps,
  readStatus,
} from "../src/sys/objects.ts";
import { bytesSource, parseElf, PT_LOAD } from "../src/sys/elf.ts";
import { parseMaps } from "../src/sys/maps.ts";
import { segmentRanges } from "../src/sys/segments.ts";

test("parseStatus reads VmLck, CapEff bit 14 and Threads", () => {
  const s = parseStatus(
    "Name:\tdeno\nThreads:\t6\nVmLck:\t    1024 kB\nCapEff:\t000001ffffffffff\n",
  );
  assert.deepEqual(s, { vmLck: 1024 * 1024, capIpcLock: true, threads: 6 });
  assert.equal(parseStatus("CapEff:\t000001ffffffbfff\n").capIpcLock, false);
});

test("mainExecutable: path, bias and LOAD segments equal the file's", () => {
  const c = libc();
  const main = mainExecutable(c);
  assert.equal(main.path, realpathSync(process.execPath));
  const file = parseElf(bytesSource(readFileSync(main.path)));
  const loads = file.programHeaders.filter((p) => p.type === PT_LOAD);
  assert.equal(main.segments.length, loads.length);
  main.segments.forEach((s, i) => {
    assert.equal(s.vaddr, loads[i].vaddr);
    assert.equal(s.memsz, loads[i].memsz);
    assert.equal(s.offset, loads[i].offset);
    assert.equal(s.flags, loads[i].flags);
  });
  // The text segment's first page, read from memory, equals the file's.
  const text = main.segments.find((s) => s.flags === 5)!;
  const pageOff = text.vaddr % 4096;
  const inMem = memory(main.bias + text.vaddr - pageOff, 4096);
  const inFile = readFileSync(main.path).subarray(
    text.offset - pageOff,
    text.offset - pageOff + 4096,
  );
  assert.deepEqual(Buffer.from(inMem).equals(Buffer.from(inFile)), true);
  // Every range is mapped from the executable at the expected file offset.
  const smaps = readSmaps(c);
  for (const r of segmentRanges(main, 4096).filter((r) => r.kind !== "data")) {
    const v = smaps.find((v) => v.start <= r.start && r.start < v.end)!;
    assert.ok(v, `nothing mapped at ${r.start.toString(16)}`);
    assert.equal(v.path, main.path);
    assert.equal(v.perms.slice(0, 3), r.perms);
  }
});

test("loadedObjects: dl_iterate_phdr lists the shared libraries in maps", () => {
  const objs = loadedObjects(libc());
  assert.equal(objs[0].main, true);
  assert.equal(objs.filter((o) => o.main).length, 1);
  const libcObj = objs.find((o) => /\/libc\.so\.6$/.test(o.path));
  assert.ok(libcObj, objs.map((o) => o.path).join(", "));
  const maps = parseMaps(readFileSync("/proc/self/maps", "utf8"));
  const real = realpathSync(libcObj.path);
  const first = maps.find((v) => v.path === real && v.offset === 0);
  assert.ok(first, `libc ${real} not in maps`);
  assert.equal(first.start, libcObj.bias + libcObj.segments[0].vaddr);
});

test("readStatus: thread count and VmLck from /proc/self/status", () => {
  const s = readStatus(libc());
  assert.ok(s.threads >= 1);
  const text = readFileSync("/proc/self/status", "utf8");
  const lck = Number(/VmLck:\s+(\d+) kB/.exec(text)![1]) * 1024;
  assert.equal(s.vmLck, lck);
});

test("loadedObjects: library paths from one query each equal those from maps", () => {
  const c = libc();
  for (let attempt = 0;; attempt++) {
    const maps = parseMaps(readFileSync("/proc/self/maps", "utf8"));
    const fromMaps = loadedObjects(c, { vmas: maps }).map((o) => o.path);
    const queried = loadedObjects(c).map((o) => o.path);
    const again = loadedObjects(c, {
      vmas: parseMaps(readFileSync("/proc/self/maps", "utf8")),
    }).map((o) => o.path);
    // A library loaded or unloaded meanwhile by the runtime: read again.
    if (JSON.stringify(fromMaps) !== JSON.stringify(again) && attempt < 5) {
      continue;
    }
    assert.deepEqual(queried, fromMaps);
    assert.ok(queried.length > 1);
    break;
  }
});
