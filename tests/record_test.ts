// src/remap/record.ts: file identity (device, inode, size, build-id).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { devString, openIdentified } from "../src/remap/record.ts";
import { bytesSource, parseElf } from "../src/sys/elf.ts";
import { libc } from "../src/sys/libc.ts";
import { parseMaps } from "../src/sys/maps.ts";

test("devString decodes st_dev like /proc/self/maps", () => {
  assert.equal(devString(0xfe00), "fe:00");
  assert.equal(devString(0x803), "08:03");
  assert.equal(devString((259 << 8) | 2), "103:02");
});

test("openIdentified: the running executable, its identity and build-id", () => {
  const c = libc();
  const path = c.readlink("/proc/self/exe");
  const text = parseMaps(c.readText("/proc/self/maps")).find((v) =>
    v.path === path
  )!;
  const got = openIdentified(c, { path, dev: text.dev, inode: text.inode });
  assert.ok(typeof got !== "string", String(got));
  try {
    const bytes = new Uint8Array(readFileSync(path));
    assert.equal(got.file.size, bytes.length);
    assert.equal(got.file.buildId, parseElf(bytesSource(bytes)).buildId);
    assert.match(got.file.buildId ?? "", /^[0-9a-f]{16,}$/);
  } finally {
    c.close(got.fd);
  }
  const other = openIdentified(c, {
    path,
    dev: text.dev,
    inode: text.inode + 1,
  });
  assert.match(String(other), /is not the file that was loaded/);
});
