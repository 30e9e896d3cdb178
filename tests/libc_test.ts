// src/sys/libc.ts on the real process: syscalls against what the runtime sees.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, realpathSync } from "node:fs";
import process from "node:process";
import { libc, RLIMIT_MEMLOCK, SyscallError } from "../src/sys/libc.ts";
import { parseMaps } from "../src/sys/maps.ts";

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

test("libc: readChunks hands a file over in chunks of at most its buffer, together the whole file", () => {
  const c = libc();
  const path = new URL(import.meta.url).pathname;
  const chunks: Uint8Array[] = [];
  c.readChunks(path, (b) => chunks.push(b.slice()), 97);
  assert.ok(chunks.length > 10);
  assert.ok(chunks.every((b) => b.length > 0 && b.length <= 97));
  assert.ok(Buffer.concat(chunks).equals(readFileSync(path)));
  assert.throws(
    () => c.readChunks("/nonexistent/page-primer", () => {}),
    (e) => e instanceof SyscallError && e.code === "ENOENT",
  );
});
