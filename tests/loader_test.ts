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
  // Native only: a fallback to the JavaScript callback would throw here.
  const objects = listLoadedObjects(libc(), { fallback: false });
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
  // The listing leaves the lister out (listers load under
  // /proc/<pid>/task/<pid>/fd/N).
  assert.deepEqual(
    objects.filter((o) => o.name.includes("/task/")).map((o) => o.name),
    [],
  );
});

test("listLoadedObjects: with Workers listing at the same time, no listing names a lister, and none fails", async () => {
  const c = libc();
  const workers = [0, 1, 2].map(() =>
    new Worker(new URL("./fixtures/lister_worker.ts", import.meta.url), {
      type: "module",
    })
  );
  const done = workers.map((w) =>
    new Promise<number>((resolve, reject) => {
      w.onerror = (e) => reject(e);
      w.onmessage = (m) => {
        if (typeof m.data === "number") resolve(m.data);
      };
    })
  );
  try {
    const seen: string[] = [];
    for (let i = 0; i < 300; i++) {
      for (const o of listLoadedObjects(c, { fallback: false })) {
        if (o.name.startsWith(`/proc/${c.getpid()}/task/`)) seen.push(o.name);
      }
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    for (const w of workers) w.postMessage("stop");
    const listings = await Promise.all(done);
    assert.deepEqual(seen, [], "another thread's lister was listed");
    assert.ok(
      listings.every((n) => n > 0),
      `listings per Worker: ${listings.join(", ")}`,
    );
  } finally {
    for (const w of workers) w.terminate();
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
