// Thread-safety stress: while 4 workers run hot runtime code (JSON, RegExp,
// URL, TextEncoder/Decoder, SHA-256, gzip) with checked results, the main
// thread of the same process does 200 cycles of remap → restore → 4 KiB
// copy → restore. Zero crashes, zero failed cycles, zero wrong results.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ROOT, run, runtimePath } from "../helpers.ts";

const CYCLES = 200;
// The stress takes minutes: each test runner stresses its own runtime, so
// `deno test` covers Deno and `bun test` covers Bun.
const SELF = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined"
  ? "bun" as const
  : "deno" as const;

for (const rt of [SELF]) {
  test(`${rt}: ${CYCLES} remap/restore cycles under 4 busy workers`, {
    timeout: 900_000,
  }, async () => {
    const script = `${ROOT}tests/fixtures/stress_child.ts`;
    const argv = rt === "deno"
      ? [
        runtimePath("deno"),
        "run",
        "--allow-ffi",
        `--allow-read=${ROOT}tests/fixtures`,
        script,
        String(CYCLES),
      ]
      : [runtimePath("bun"), script, String(CYCLES)];
    const r = await run(argv);
    assert.equal(
      r.code,
      0,
      `child crashed or failed (code ${r.code}): ${r.stderr.slice(-2000)}`,
    );
    const m = /^OUTCOME (.*)\n/m.exec(r.stdout);
    assert.ok(m, `no outcome: ${r.stdout.slice(-500)} ${r.stderr.slice(-500)}`);
    const out = JSON.parse(m[1]);
    console.log(
      `${rt}: ${out.cycles} cycles in ${
        (out.ms / 1000).toFixed(1)
      } s; worker checks ${
        out.workers.map((w: { checks: number }) => w.checks).join("/")
      }`,
    );
    assert.deepEqual(out.failures, []);
    assert.equal(out.cycles, CYCLES);
    assert.ok(out.huge > 0, "no cycle got huge pages");
    for (const w of out.workers) {
      assert.equal(w.errors, 0, `wrong results: ${w.firstErrors.join(", ")}`);
    }
    // Every worker kept running code while the cycles went on.
    for (const n of out.midway) {
      assert.ok(n > 0, "a worker made no progress during the cycles");
    }
  });
}
