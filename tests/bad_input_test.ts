// Bad input: wrong option types and values throw TypeError/RangeError
// naming what is accepted; restore() without a remap, run() twice, objects()
// matching nothing, a loaded library corrupted on disk, and /proc hidden
// from the process each give a documented outcome, never a crash.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { prime } from "../mod.ts";
import {
  isRoot,
  ROOT,
  runtimeCommand,
  RUNTIMES,
  shellQuote,
  startChild,
} from "./helpers.ts";

test("remap() options: wrong types and values are refused with what is accepted", () => {
  // deno-lint-ignore no-explicit-any
  const p = prime() as any;
  const cases: [unknown, string, RegExp][] = [
    ["yes", "TypeError", /remap\(\) accepts true, false or \{ align\?/],
    [
      { align: "wide" },
      "RangeError",
      /align must be "aggressive" or "conservative"; got string "wide"/,
    ],
    [
      { pageSize: "1g" },
      "RangeError",
      /pageSize must be "2m" or "4k"; got string "1g"/,
    ],
    [
      { backend: "tmpfs" },
      "RangeError",
      /backend must be "auto", "thp", "hugetlb" or "memfd"/,
    ],
    [{ backend: 1 }, "RangeError", /got number 1/],
    [{ alignment: "aggressive" }, "TypeError", /unknown option "alignment"/],
    [{ perfMap: "no" }, "TypeError", /perfMap must be true or false/],
    [
      { share: 1 },
      "TypeError",
      /share must be true, false or \{ dir\?: string \}/,
    ],
    [null, "TypeError", /got null/],
    [[], "TypeError", /got/],
  ];
  for (const [arg, name, message] of cases) {
    assert.throws(() => p.remap(arg), { name, message }, JSON.stringify(arg));
  }
  // A refused call leaves the builder as it was.
  assert.equal(p.remap(false), p);
});

for (const rt of RUNTIMES) {
  test(`${rt}: restore() first, run() twice, objects() matching nothing, a corrupt loaded ELF: outcomes, no crash`, async () => {
    const child = await startChild(rt, "/usr/lib/x86_64-linux-gnu/libz.so.1", {
      script: "bad_input_child.ts",
      denoFlags: ["--allow-read", "--allow-write=/tmp"],
    });
    const end = await child.finish();
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stdout, /ALIVE 42/);
    // deno-lint-ignore no-explicit-any
    const o = child.outcome as any;
    assert.deepEqual(o.restoreFirst, {
      restored: 0,
      bytes: 0,
      failed: [],
      ms: o.restoreFirst.ms,
    });
    // The second run finds everything remapped already and does nothing.
    assert.equal(o.twice.first.ok, true);
    assert.ok(o.twice.first.regions.length >= 2);
    assert.equal(o.twice.second.ok, true, o.twice.second.reason);
    assert.deepEqual(o.twice.second.regions, []);
    // Nothing selected: ok, with a warning that says so.
    assert.equal(o.nothing.segments, 0);
    assert.ok(
      o.nothing.warnings.some((w: string) =>
        /no loaded object matched/.test(w)
      ),
    );
    // The corrupt library is skipped with a warning; the executable is
    // primed all the same.
    assert.equal(o.corrupt.threw, undefined, o.corrupt.threw);
    assert.equal(o.corrupt.ok, true, o.corrupt.reason);
    assert.ok(
      o.corrupt.warnings.some((w: string) =>
        /skipped \/tmp\/page-primer-corrupt-\d+\.so: its program headers/.test(
          w,
        )
      ),
      o.corrupt.warnings.join("\n"),
    );
    assert.ok(o.corrupt.regions.includes("remapped"));
    assert.ok(o.corrupt.text);
    console.log(
      `${rt}: corrupt library on disk: ok=${o.corrupt.ok}${
        o.corrupt.reason ? `, reason: ${o.corrupt.reason}` : ""
      }; ${o.corrupt.segments} segment(s), warnings: ${
        o.corrupt.warnings.join("; ") || "none"
      }`,
    );
  });
}

// /proc hidden by a tmpfs in a private mount namespace.
const canUnshare = isRoot() &&
  spawnSync("unshare", ["--mount", "--propagation", "private", "true"])
      .status === 0;
for (const rt of RUNTIMES) {
  test(
    `${rt}: with /proc unreadable, run() returns ok: false with the reason`,
    {
      skip: canUnshare ? false : "needs root and unshare to hide /proc",
    },
    (t) => {
      const cmd = runtimeCommand(rt, `${ROOT}tests/fixtures/noproc_child.ts`);
      const r = spawnSync("unshare", [
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        `mount -t tmpfs none /proc && exec ${shellQuote(cmd)} < /dev/null`,
      ], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
      const m = /^OUTCOME (.*)$/m.exec(r.stdout);
      if (!m && rt === "bun" && r.status !== 0) {
        t.skip(
          `bun itself does not start without /proc (exit ${
            r.status ?? r.signal
          })`,
        );
        return;
      }
      assert.ok(m, `no outcome: ${r.stdout} ${r.stderr}`);
      const out = JSON.parse(m[1]);
      assert.equal(out.ok, false);
      assert.match(out.reason, /\/proc\/self/);
      assert.match(out.reason, /nothing was changed/);
    },
  );
}
