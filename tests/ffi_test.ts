// src/sys/ffi.ts on the real process: the runtime, pointers and bytes.

import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { addressOf, memory, readCString, runtimeInfo } from "../src/sys/ffi.ts";

test("runtimeInfo names this runtime on linux x86_64", () => {
  const info = runtimeInfo();
  const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
  assert.equal(info.name, isBun ? "bun" : "deno");
  assert.equal(info.os, "linux");
  assert.equal(info.arch, process.arch === "x64" ? "x86_64" : process.arch);
  assert.match(info.version, /^\d+\.\d+\.\d+/);
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
