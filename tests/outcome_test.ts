// src/outcome.ts: totals, the table, errors and JSON of an outcome.

import { test } from "node:test";
import assert from "node:assert/strict";
import { PrimeOutcome, type SegmentReport, totalsOf } from "../src/outcome.ts";
import { MiB } from "./fixtures/deno_layout.ts";

function report(over: Partial<SegmentReport>): SegmentReport {
  return {
    object: "/usr/bin/deno",
    index: 1,
    kind: "text",
    origin: "load",
    perms: "r-x",
    start: 0x1000,
    end: 0x1000 + 61 * MiB,
    bytes: 61 * MiB,
    mapped: 61 * MiB,
    residentBefore: 13 * MiB,
    resident: 61 * MiB,
    locked: 61 * MiB,
    lockedPss: 61 * MiB,
    huge: 0,
    actions: ["mlock"],
    status: "ok",
    ...over,
  };
}

test("PrimeOutcome: totals, table, errors, JSON", () => {
  const segs = [
    report({}),
    report({
      index: 0,
      kind: "rodata",
      perms: "r--",
      bytes: 27 * MiB,
      resident: 12 * MiB,
      locked: 0,
      status: "failed",
      error: { step: "mlock", code: "ENOMEM", errno: 12, message: "too much" },
    }),
  ];
  const totals = totalsOf(segs);
  assert.equal(totals.failed, 1);
  assert.equal(totals.bytes, 88 * MiB);
  assert.equal(totals.locked, 61 * MiB);
  const out = new PrimeOutcome({
    ok: false,
    reason: "1 of 2 segment(s) failed",
    disabled: false,
    runtime: "deno 2.9.6",
    pid: 42,
    kernel: "6.18",
    requested: ["mlock"],
    segments: segs,
    totals,
    durations: {
      inspectMs: 1,
      mlockMs: 2,
      populateMs: 0,
      remapMs: 0,
      perfMapMs: 0,
      totalMs: 3,
    },
    warnings: ["w1"],
  });
  const text = out.format();
  assert.match(text, /deno 2\.9\.6, pid 42, Linux 6\.18: mlock NOT OK/);
  assert.match(
    text,
    /deno\s+1\s+r-x\s+text\s+61\.0\s+13\.0\s+61\.0\s+61\.0\s+0\.0\s+mlock/,
  );
  assert.match(text, /FAILED mlock: ENOMEM/);
  assert.match(text, /error: deno seg 0: too much/);
  assert.match(text, /warning: w1/);
  let logged = "";
  out.log({ format: "json", write: (t) => (logged = t) });
  const back = JSON.parse(logged);
  assert.equal(back.ok, false);
  assert.equal(back.segments[1].error.code, "ENOMEM");
  assert.equal(back.totals.bytes, 88 * MiB);
});
