// The 2 MiB calibration (src/tools/calibrate.ts, trampoline/calibrate.c):
// it runs and returns a well-formed result; the code it times is really on
// 2 MiB pages in one area and on 4 KiB pages in the other, from the
// kernel's view; the calls really run the spread code; and without THP
// (PR_SET_THP_DISABLE) it says "cannot measure" and why. No test asserts
// which page size is faster: that is the machine's, and belongs to benches.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ROOT, run, runtimeCommand, RUNTIMES } from "./helpers.ts";
import { libc } from "../src/sys/libc.ts";
import { memory, runtimeInfo } from "../src/sys/ffi.ts";
import { parseSmaps, type SmapsVma } from "../src/sys/maps.ts";
import { thpStatus } from "../src/sys/thp.ts";
import { loadTrampoline } from "../src/remap/trampoline.ts";
import {
  calibrate,
  type Calibration,
  CalibrationError,
  type CodeArea,
  expectedSum,
  FUNCTION_CODE,
  mapCode,
  medianInterval,
  runCode,
  spreadCode,
  unmapCode,
} from "../src/tools/calibrate.ts";

const HUGE = 2 * 1024 * 1024;
const c = libc();
const code = FUNCTION_CODE[runtimeInfo().arch];
const thp = thpStatus(c);
const NO_CODE = code === undefined
  ? `no calibration code for ${runtimeInfo().arch}`
  : false;
const NO_THP = NO_CODE || (thp.usable ? false : `THP unusable: ${thp.reason}`);
for (const why of new Set([NO_CODE, NO_THP])) {
  if (why) console.log(`calibrate_test: some tests skipped: ${why}`);
}

/** This process's VMAs overlapping an area, read from smaps here. */
function vmasOf(area: CodeArea): SmapsVma[] {
  const smaps = parseSmaps(readFileSync("/proc/self/smaps", "utf8"));
  return smaps.filter((v) =>
    v.start < area.start + area.len && area.start < v.end
  );
}

test("medianInterval: median and the order statistics around it", () => {
  const xs = [5, 1, 4, 2, 3, 6, 8, 7, 9, 10];
  const r = medianInterval(xs);
  assert.equal(r.median, 5.5);
  // n = 10: P(X <= 1) = 11/1024 <= 2.5% < P(X <= 2): [x(2), x(9)].
  assert.deepEqual([r.lo, r.hi], [2, 9]);
  assert.ok(Math.abs(r.confidence - (1 - 2 * 11 / 1024)) < 1e-12);
  assert.throws(() => medianInterval([]), RangeError);
});

test("calibrate: a well-formed result, whatever the machine", () => {
  const cal: Calibration = calibrate(c, {
    spreadsMiB: [1, 2],
    footprintPages: 300,
    seconds: 0.2,
    sampleMs: 2,
  });
  console.log(cal.summary);
  assert.equal(cal.footprintPages, 300);
  assert.ok(cal.seconds > 0 && cal.seconds < 10, `${cal.seconds} s`);
  assert.ok(cal.summary.length > 0);
  if (cal.verdict === "cannot measure") {
    assert.ok(cal.reason && cal.reason.length > 0);
    assert.deepEqual(cal.spreads, []);
    assert.match(cal.summary, /^cannot measure: /);
    assert.ok(NO_THP || cal.reason, "THP looked usable: the reason says why");
    return;
  }
  assert.ok(
    ["pays", "loses", "no difference measured"].includes(cal.verdict!),
  );
  assert.deepEqual(cal.spreads.map((s) => [s.pages, s.footprint]), [
    [256, false],
    [300, true],
    [512, false],
  ]);
  for (const s of cal.spreads) {
    assert.equal(s.areaBytes % HUGE, 0);
    assert.ok(s.areaBytes >= s.pages * 4096);
    assert.equal(s.hugeAreaOnHuge, s.areaBytes);
    assert.equal(s.smallAreaOnHuge, 0);
    assert.deepEqual(s.rows.map((r) => r.variant), ["call", "syscall"]);
    for (const r of s.rows) {
      assert.ok(r.pairs >= 6, `${r.pairs} pairs`);
      assert.ok(r.callsPerSample >= s.pages);
      assert.ok(r.hugeNsPerCall > 0 && r.smallNsPerCall > 0);
      assert.ok(r.ratio.lo <= r.ratio.median && r.ratio.median <= r.ratio.hi);
      assert.ok(r.ratio.confidence >= 0.95);
      assert.ok(["faster", "slower", "none"].includes(r.effect));
    }
    assert.ok(["pays", "loses", "no difference measured"].includes(s.verdict));
  }
  assert.equal(cal.verdict, cal.spreads[1].verdict);
  assert.match(cal.summary, /at a hot-code footprint of 300 pages/);
});

test("calibrate refuses bad options with a RangeError", () => {
  assert.throws(() => calibrate(c, { footprintPages: 0 }), RangeError);
  assert.throws(() => calibrate(c, { footprintPages: 1.5 }), RangeError);
  assert.throws(() => calibrate(c, { spreadsMiB: [0] }), RangeError);
  assert.throws(() => calibrate(c, { seconds: -1 }), RangeError);
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => calibrate(c, { variants: ["jump" as any] }),
    RangeError,
  );
});

test(
  "the 2 MiB area is on 2 MiB pages in smaps, the 4 KiB one is not; both read+exec, never writable",
  {
    skip: NO_THP,
  },
  (t) => {
    const tr = loadTrampoline(c);
    const spread = spreadCode(600, code!); // 2.3 MiB: two 2 MiB pages
    const huge = mapCode(tr, spread, true);
    const small = mapCode(tr, spread, false);
    try {
      assert.equal(huge.len, 2 * HUGE);
      assert.equal(huge.start % HUGE, 0);
      const hv = vmasOf(huge);
      const sv = vmasOf(small);
      const onHuge = hv.reduce((n, v) => n + v.anonHugePages, 0);
      if (onHuge !== huge.len && huge.collapseErrno !== 0) {
        t.skip(
          `no free 2 MiB pages now (MADV_COLLAPSE errno ${huge.collapseErrno})`,
        );
        return;
      }
      assert.equal(onHuge, huge.len, "the 2 MiB area is all AnonHugePages");
      assert.equal(sv.reduce((n, v) => n + v.anonHugePages, 0), 0);
      assert.equal(sv.reduce((n, v) => n + v.size, 0), small.len);
      for (const v of [...hv, ...sv]) {
        assert.equal(v.perms.slice(0, 3), "r-x", v.perms);
      }
      // The bytes mapped are the image, in both.
      for (const a of [huge, small]) {
        const mem = memory(a.start, spread.image.length);
        assert.ok(Buffer.from(mem).equals(Buffer.from(spread.image)));
      }
    } finally {
      unmapCode(tr, huge);
      unmapCode(tr, small);
    }
    assert.deepEqual(vmasOf(huge), []);
    assert.deepEqual(vmasOf(small), []);
  },
);

test(
  "the driver's calls run the spread code: the returned sum is the sum of the functions called",
  {
    skip: NO_CODE,
  },
  () => {
    const tr = loadTrampoline(c);
    const spread = spreadCode(700, code!);
    // Independent of spreadCode's prefix sums: page p returns x + p + 1.
    const byHand = (calls: number) => {
      let x = 0;
      for (let k = 0; k < calls; k++) {
        x += Math.floor(spread.table[k % spread.table.length]! / 4096) + 1;
      }
      return x;
    };
    const areas = [mapCode(tr, spread, false)];
    if (!NO_THP) areas.push(mapCode(tr, spread, true));
    try {
      for (const area of areas) {
        for (const variant of ["call", "syscall"] as const) {
          for (const calls of [1, 699, 700, 3 * 700 + 17]) {
            const r = runCode(tr, area, spread, calls, variant);
            assert.equal(r.value, byHand(calls), `${variant}, ${calls} calls`);
            assert.equal(r.value, expectedSum(spread, calls));
            assert.ok(r.cpuNs >= 0);
          }
        }
      }
      // A table entry outside the area is refused before any call.
      const bad = { ...spread, table: new Uint32Array([areas[0].len]) };
      assert.throws(
        () => runCode(tr, areas[0], bad, 1, "call"),
        (e: unknown) =>
          e instanceof CalibrationError && /check failed with EINVAL/.test(
            e.message,
          ),
      );
    } finally {
      for (const a of areas) unmapCode(tr, a);
    }
  },
);

for (const rt of RUNTIMES) {
  test(`${rt}: with THP disabled for the process (PR_SET_THP_DISABLE), the calibration says "cannot measure" and why`, async () => {
    const res = await run(
      runtimeCommand(rt, `${ROOT}tests/fixtures/calibrate_child.ts`, [
        JSON.stringify({
          thpDisable: 1,
          options: { footprintPages: 512, seconds: 0.2 },
        }),
      ]),
      { timeoutMs: 120_000 },
    );
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^THP_DISABLE 1$/m);
    const cal = JSON.parse(
      /^CALIBRATION (.*)$/m.exec(res.stdout)![1],
    ) as Calibration;
    console.log(`${rt}, THP disabled: ${cal.summary}`);
    assert.equal(cal.verdict, "cannot measure");
    assert.deepEqual(cal.spreads, []);
    assert.equal(cal.footprintPages, 512);
    if (code !== undefined) {
      assert.match(cal.reason!, /PR_SET_THP_DISABLE/);
      // And the kernel agrees: code mapped as for 2 MiB pages got none.
      const probe = JSON.parse(/^PROBE (.*)$/m.exec(res.stdout)![1]) as {
        len: number;
        onHuge: number;
      };
      assert.equal(probe.onHuge, 0);
    }
  });
}
