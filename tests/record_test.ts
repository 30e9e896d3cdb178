// src/remap/record.ts: file identity.

import { test } from "node:test";
import assert from "node:assert/strict";
import { devString } from "../src/remap/record.ts";

test("devString decodes st_dev like /proc/self/maps", () => {
  assert.equal(devString(0xfe00), "fe:00");
  assert.equal(devString(0x803), "08:03");
  assert.equal(devString((259 << 8) | 2), "103:02");
});
