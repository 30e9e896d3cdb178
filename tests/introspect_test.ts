// The syscall side on the live process: libc through FFI, errno, memory
// views, the main executable found through getauxval, other objects through
// dl_iterate_phdr, /proc read through libc.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, realpathSync } from "node:fs";
import process from "node:process";
import { addressOf, memory, readCString, runtimeInfo } from "../src/sys/ffi.ts";
import { libc, RLIMIT_MEMLOCK, SyscallError } from "../src/sys/libc.ts";
import {
  loadedObjects,
  mainExecutable,
  readSmaps,
  readStatus,
} from "../src/sys/objects.ts";
import { bytesSource, parseElf, PT_LOAD } from "../src/sys/elf.ts";
import { parseMaps } from "../src/sys/maps.ts";
import { segmentRanges } from "../src/sys/segments.ts";

test("runtimeInfo names this runtime on linux x86_64", () => {
  const info = runtimeInfo();
  const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
  assert.equal(info.name, isBun ? "bun" : "deno");
  assert.equal(info.os, "linux");
  assert.equal(info.arch, process.arch === "x64" ? "x86_64" : process.arch);
  assert.match(info.version, /^\d+\.\d+\.\d+/);
});

test("libc: getpid, getenv and pageSize agree with the runtime", () => {
  const c = libc();
  assert.equal(c.getpid(), process.pid);
  assert.equal(c.getenv("HOME"), process.env.HOME);
  assert.equal(c.getenv("PAGE_PRIMER_SURELY_UNSET_VARIABLE"), undefined);
  assert.equal(c.pageSize(), 4096);
  assert.match(c.kernelRelease(), /^\d+\.\d+/);
});

test("libc: errno becomes a SyscallError with the errno name", () => {
  const c = libc();
  assert.throws(() => c.openRead("/nonexistent/page-primer"), (e: unknown) => {
    assert.ok(e instanceof SyscallError);
    assert.equal(e.code, "ENOENT");
    assert.equal(e.errno, 2);
    assert.match(
      e.message,
      /open\(\/nonexistent\/page-primer\) failed: ENOENT/,
    );
    return true;
  });
  // mlock on an unmapped page: ENOMEM.
  assert.throws(() => c.mlock(0x1000, 4096), {
    name: "SyscallError",
    code: "ENOMEM",
  });
});

test("libc: readFile of /proc/self/maps matches node:fs for the stable VMAs", () => {
  const c = libc();
  const ours = parseMaps(c.readText("/proc/self/maps"));
  const theirs = parseMaps(readFileSync("/proc/self/maps", "utf8"));
  const exe = realpathSync(process.execPath);
  const pick = (v: { path: string }[]) =>
    JSON.stringify(v.filter((x) => x.path === exe));
  assert.ok(ours.some((v) => v.path === exe && v.exec));
  assert.equal(pick(ours), pick(theirs));
});

test("libc: getrlimit/setrlimit round-trip the soft memlock limit", () => {
  const c = libc();
  const before = c.getrlimit(RLIMIT_MEMLOCK);
  assert.ok(before.cur <= before.max);
  const lower = Math.min(before.cur, 4 * 1024 * 1024);
  c.setrlimit(RLIMIT_MEMLOCK, { cur: lower, max: before.max });
  try {
    assert.equal(c.getrlimit(RLIMIT_MEMLOCK).cur, lower);
    const line = readFileSync("/proc/self/limits", "utf8").split("\n")
      .find((l) => l.startsWith("Max locked memory"))!;
    assert.equal(Number(line.trim().split(/\s+/)[3]), lower);
  } finally {
    c.setrlimit(RLIMIT_MEMLOCK, before);
  }
  assert.deepEqual(c.getrlimit(RLIMIT_MEMLOCK), before);
});

test("ffi: addressOf, memory and readCString see the same bytes", () => {
  const buf = new TextEncoder().encode("page-primer\0tail");
  const at = addressOf(buf);
  assert.deepEqual([...memory(at, buf.length)], [...buf]);
  assert.equal(readCString(at), "page-primer");
  assert.equal(readCString(at, 4), "page");
  memory(at, 1)[0] = 0x50; // the view is live
  assert.equal(buf[0], 0x50);
  assert.throws(() => memory(0, 1), RangeError);
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
