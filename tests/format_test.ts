// src/sys/format.ts: bytes, percentages and tables.

import { test } from "node:test";
import assert from "node:assert/strict";
import { formatBytes, formatPercent, formatTable } from "../src/sys/format.ts";
import { MiB } from "./fixtures/deno_layout.ts";

test("formatBytes, formatPercent, formatTable", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(2048), "2 KiB");
  assert.equal(formatBytes(61 * MiB), "61.0 MiB");
  assert.equal(formatPercent(1, 0), "-");
  assert.equal(formatPercent(99, 100), "99.0%");
  const t = formatTable(["a", "n"], [["x", "1"], ["yy", "100"]], [
    "left",
    "right",
  ]);
  assert.equal(t, "a     n\n--  ---\nx     1\nyy  100");
});
