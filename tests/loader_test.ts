// src/sys/loader.ts: the loaded objects as the loader lists them, copied by
// native code, and the lister leaving nothing behind.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
} from "node:fs";
import { memory } from "../src/sys/ffi.ts";
import { libc } from "../src/sys/libc.ts";
import {
  LISTER_MEMFD_NAME,
  listLoadedObjects,
  parseObjectList,
} from "../src/sys/loader.ts";
import { parseMaps } from "../src/sys/maps.ts";

/** Descriptors of this process that name the lister's memfd. */
function listerDescriptors(): string[] {
  return readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).includes(LISTER_MEMFD_NAME);
    } catch {
      return false; // closed meanwhile (readdir's own descriptor)
    }
  });
}

test("listLoadedObjects: every library of maps, at its address, with the program headers in memory", () => {
  const objects = listLoadedObjects(libc());
  assert.equal(objects[0].name, "", "the main program comes first");
  const maps = parseMaps(readFileSync("/proc/self/maps", "utf8"));
  // Libraries from files; not the ones loaded from a memfd by descriptor
  // (another test's trampoline), whose descriptor may be closed by now.
  const files = objects.filter((o) =>
    o.name.startsWith("/") && !o.name.startsWith("/proc/")
  );
  assert.ok(files.length >= 2, objects.map((o) => o.name).join(", "));
  for (const o of files) {
    // Another test may have loaded a library and deleted its file since.
    const real = existsSync(o.name) ? realpathSync(o.name) : o.name;
    const paths = [real, `${real} (deleted)`];
    assert.ok(
      maps.some((v) => paths.includes(v.path) && v.start >= o.bias),
      `${o.name} (bias 0x${o.bias.toString(16)}) is not in maps`,
    );
    assert.ok(o.phnum > 0, `${o.name}: no program headers`);
    assert.deepEqual(
      o.phdrBytes,
      memory(o.phdr, o.phdrBytes.length).slice(),
      `${o.name}: the copied program headers differ from memory`,
    );
  }
});

test("listLoadedObjects: the lister is unloaded and its descriptor closed afterwards", () => {
  const before = listerDescriptors();
  const objects = listLoadedObjects(libc());
  assert.ok(objects.length > 0);
  assert.deepEqual(listerDescriptors(), before);
  const maps = readFileSync("/proc/self/maps", "utf8");
  assert.ok(
    !maps.includes(LISTER_MEMFD_NAME),
    "the lister is still mapped after the listing",
  );
  // The listing leaves the lister out: every object it names by a
  // descriptor is something else, still open.
  for (const o of objects.filter((o) => o.name.startsWith("/proc/"))) {
    assert.ok(
      !readlinkSync(o.name).includes(LISTER_MEMFD_NAME),
      `${o.name} is the lister`,
    );
  }
});

test("parseObjectList: reads names padded to 8 bytes and the program headers; a cut record is a RangeError", () => {
  const record = (bias: number, name: string, phnum: number) => {
    const nameBytes = new TextEncoder().encode(name);
    const padded = Math.ceil(nameBytes.length / 8) * 8;
    const out = new Uint8Array(32 + padded + phnum * 56);
    const w = new DataView(out.buffer);
    w.setBigUint64(0, BigInt(bias), true);
    w.setBigUint64(8, 0x4000n, true);
    w.setBigUint64(16, BigInt(phnum), true);
    w.setBigUint64(24, BigInt(nameBytes.length), true);
    out.set(nameBytes, 32);
    out.fill(0xab, 32 + padded);
    return out;
  };
  const a = record(0x1000, "", 2);
  const b = record(0x7f0000, "/lib/libx.so.1", 1);
  const both = new Uint8Array(a.length + b.length);
  both.set(a);
  both.set(b, a.length);
  const list = parseObjectList(both);
  assert.deepEqual(list.map((o) => [o.bias, o.name, o.phnum]), [
    [0x1000, "", 2],
    [0x7f0000, "/lib/libx.so.1", 1],
  ]);
  assert.equal(list[1].phdrBytes.length, 56);
  assert.ok(list[1].phdrBytes.every((x) => x === 0xab));
  assert.throws(
    () => parseObjectList(both.subarray(0, both.length - 8)),
    RangeError,
  );
});
