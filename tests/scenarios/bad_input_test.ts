// Bad input: wrong option types and values throw TypeError/RangeError
// naming what is accepted; restore() without a remap, run() twice, objects()
// matching nothing, a loaded library corrupted on disk, and /proc hidden
// from the process each give a documented outcome, never a crash.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import process from "node:process";
import { prime } from "../../mod.ts";
import { emptyRestoreReport } from "../../src/remap/report.ts";
import { ERRNO, errnoName } from "../../src/sys/libc.ts";
import type { SmapsVma } from "../../src/sys/maps.ts";
import { SANDBOX_SKIP, withSandbox } from "../fixtures/sandbox.ts";
import {
  isRoot,
  ROOT,
  run,
  runtimeCommand,
  runtimePath,
  RUNTIMES,
  shellQuote,
  startChild,
} from "../helpers.ts";

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
    const poolFree = Number(
      readFileSync(
        "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
        "utf8",
      ),
    );
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
      ...emptyRestoreReport(),
      ms: o.restoreFirst.ms,
    });
    // The second run finds everything remapped already and does nothing.
    assert.equal(o.twice.first.ok, true);
    assert.ok(o.twice.first.regions.length >= 2);
    assert.equal(o.twice.second.ok, true, o.twice.second.reason);
    if (poolFree === 0) {
      assert.deepEqual(o.twice.second.regions, []);
    } else {
      // With a hugetlb pool the first run takes the pool, whose plan cannot
      // grow a region below its file's start; the second finds that part
      // and takes it with THP. Nothing may fail either way.
      assert.ok(
        o.twice.second.regions.every((s: string) => s === "remapped"),
        o.twice.second.regions.join(", "),
      );
    }
    // Nothing selected with actions asked: not ok, and the reason says so.
    assert.equal(o.nothing.segments, 0);
    assert.equal(o.nothing.ok, false);
    assert.match(
      o.nothing.reason,
      /^no loaded object matched objects\("no-such-object"\) among the \d+ loaded: .+: nothing was done/,
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

// Runs that find nothing to do say so: not ok when an action was asked.
for (const rt of RUNTIMES) {
  test(`${rt}: objects() matching nothing, and a library with nothing that qualifies: not ok, the reason says nothing was remapped and why`, async () => {
    const child = await startChild(rt, {}, { script: "outcomes_child.ts" });
    try {
      // deno-lint-ignore no-explicit-any
      const o = child.outcome as any;
      // Inspecting only: nothing asked, so ok, with the warning.
      assert.equal(o.inspectNothing.ok, true);
      assert.ok(
        o.inspectNothing.warnings.some((w: string) =>
          /^no loaded object matched objects\("no-such-object"\)/.test(w)
        ),
        o.inspectNothing.warnings.join("\n"),
      );
      assert.equal(o.remapNothing.ok, false);
      assert.match(
        o.remapNothing.reason,
        /no loaded object matched objects\(\/no-such-object\/\) among the \d+ loaded: .*libc\.so\.6.*: nothing was done/,
      );
      assert.match(o.remapNothing.text, /NOT OK\n\s+reason: no loaded object/);
      const smaps = child.smaps();
      for (const k of ["libc", "libc4k"] as const) {
        const r = o[k];
        console.log(`${rt}: .objects("libc.so") ${k}: ${r.reason}`);
        assert.equal(r.ok, false, k);
        assert.equal(r.regions, 0);
        assert.match(
          r.reason,
          /^nothing was remapped: no code or read-only part of libc\.so\.6 qualifies \(.*no whole 2 MiB page fits/,
        );
        assert.match(r.text, /NOT OK\n\s+reason: nothing was remapped/);
        // Seen from outside: libc is still mapped from its file.
        for (const seg of r.segments) {
          const inside = smaps.filter((v: SmapsVma) =>
            v.start < seg.end && seg.start < v.end && v.inode !== 0
          );
          assert.ok(inside.every((v: SmapsVma) => v.path === seg.object));
        }
      }
    } finally {
      const end = await child.finish();
      assert.equal(end.code, 0, end.stderr);
      assert.match(end.stdout, /ALIVE 42/);
    }
  });
}

// Native code out of reach: deno without --allow-ffi, bun with its JIT off
// (bun:ffi compiles every binding). run() says why; restore() and
// clearShared() return empty results with the reason, never throw.
for (const rt of RUNTIMES) {
  test(
    `${rt}: ${
      rt === "deno" ? "without --allow-ffi" : "BUN_JSC_useJIT=0"
    }: run() names the cause, restore() and clearShared() report instead of throwing`,
    async () => {
      const script = `${ROOT}tests/fixtures/noffi_child.ts`;
      const r = rt === "deno"
        ? await run([runtimePath("deno"), "run", script])
        : await run([runtimePath("bun"), script], {
          env: { BUN_JSC_useJIT: "0" },
        });
      assert.equal(r.code, 0, r.stderr);
      const m = /^OUTCOME (.*)$/m.exec(r.stdout);
      assert.ok(m, r.stdout + r.stderr);
      const o = JSON.parse(m[1]);
      const cause = rt === "deno"
        ? /FFI is not permitted: run deno with --allow-ffi/
        : /bun:ffi needs the JIT compiler, and it is off in this process \(BUN_JSC_useJIT=0\).*unset BUN_JSC_useJIT/;
      console.log(`${rt}: run() reason: ${o.run.reason}`);
      assert.equal(o.run.threw, undefined, o.run.threw);
      assert.equal(o.run.ok, false);
      assert.match(o.run.reason, cause);
      assert.doesNotMatch(o.run.reason, /musl|cannot load any of/);
      assert.equal(o.restore.threw, undefined, o.restore.threw);
      assert.deepEqual(
        { ...o.restore, reason: undefined },
        { ...emptyRestoreReport(), reason: undefined },
      );
      assert.match(o.restore.reason, cause);
      assert.equal(o.clearShared.threw, undefined, o.clearShared.threw);
      assert.deepEqual(o.clearShared.names, []);
      assert.match(o.clearShared.reason, cause);
    },
  );
}

// A system call refused by seccomp (a container profile, SystemCallFilter=):
// the reason names the call and what to do; another errno keeps its name.
for (const rt of RUNTIMES) {
  for (
    const [errno, expect] of [
      [
        ERRNO.EPERM,
        /^memfd_create was refused \(EPERM\): the system does not let this process make that call \(a seccomp filter.*\); page-primer loads its trampoline from a memfd.*allow memfd_create for this process, or set PAGE_PRIMER_TRAMPOLINE/,
      ],
      [ERRNO.EROFS, /^memfd_create failed: EROFS \(/],
    ] as const
  ) {
    test(
      `${rt}: memfd_create refused by seccomp with ${
        errnoName(errno)
      }: the reason names the call, the process is intact`,
      { skip: SANDBOX_SKIP },
      () =>
        withSandbox(async (sandbox) => {
          const child = await startChild(rt, [{ remap: {} }, "verify"], {
            script: "remap_child.ts",
            shellPrefix: `exec '${sandbox}' --deny memfd_create=${errno} --`,
          });
          try {
            // deno-lint-ignore no-explicit-any
            const out = (child.outcome as any).results[0].remap;
            console.log(
              `${rt}, memfd_create -> ${errnoName(errno)}: ${out.reason}`,
            );
            assert.equal(out.ok, false);
            assert.match(out.reason, expect);
            assert.doesNotMatch(out.reason, /unexpected failure|E\d+\b/);
            assert.match(out.reason, /nothing was changed/);
            // Seen from outside: the executable's code is still its file's,
            // and no copy of page-primer's exists.
            const exe = readlinkSync(`/proc/${child.pid}/exe`);
            const smaps = child.smaps();
            assert.ok(smaps.some((v) => v.path === exe && v.exec), exe);
            assert.deepEqual(
              smaps.filter((v) => /^\[anon:page-primer|^\/memfd:/.test(v.path))
                .map((v) => v.path),
              [],
            );
          } finally {
            const end = await child.finish();
            assert.equal(end.code, 0, end.stderr);
            assert.match(end.stdout, /ALIVE \d+/);
          }
        }),
    );
  }
}

// mremap refused by seccomp: every region fails at the swap, the file is
// mapped back, and the reservations of the free space aggressive alignment
// grew into (PROT_NONE, anonymous) are released, not left beside the code.
for (const rt of RUNTIMES) {
  test(
    `${rt}: mremap refused by seccomp: code intact, no gap reservation left behind`,
    { skip: SANDBOX_SKIP },
    () =>
      withSandbox(async (sandbox) => {
        const child = await startChild(rt, [
          { remap: { backend: "thp" } },
          "verify",
        ], {
          script: "remap_child.ts",
          shellPrefix: `exec '${sandbox}' --deny mremap=${ERRNO.EPERM} --`,
        });
        try {
          // deno-lint-ignore no-explicit-any
          const rep = child.outcome as any;
          const regions = rep.results[0].remap.remap.regions as {
            start: number;
            end: number;
            dataStart: number;
            dataEnd: number;
            status: string;
            error?: { step: string; message: string };
          }[];
          assert.ok(regions.length > 0);
          const grown = regions.filter((r) =>
            r.start < r.dataStart || r.dataEnd < r.end
          );
          console.log(
            `${rt}, mremap -> EPERM: ${regions.length} region(s) failed at the swap, ${grown.length} had grown into free space`,
          );
          for (const r of regions) {
            assert.equal(r.status, "failed");
            assert.equal(r.error!.step, "mremap");
            assert.match(r.error!.message, /the code is intact/);
          }
          assert.equal(rep.results[1].verify.mismatches, 0);
          const leftovers = child.smaps().filter((v) =>
            v.perms.startsWith("---") && v.path === "" &&
            grown.some((r) =>
              (v.start < r.dataStart && r.start < v.end) ||
              (v.start < r.end && r.dataEnd < v.end)
            )
          );
          assert.deepEqual(
            leftovers.map((v) =>
              `${v.start.toString(16)}-${v.end.toString(16)}`
            ),
            [],
          );
        } finally {
          const end = await child.finish();
          assert.equal(end.code, 0, end.stderr);
        }
      }),
  );
}

// errno names: the whole generic Linux table, checked against the kernel's
// own headers when they are installed.
test("errnoName: every Linux errno 1..133 by its name, as asm-generic/errno*.h define it", (t) => {
  const dir = "/usr/include/asm-generic";
  let text = "";
  try {
    text = readFileSync(`${dir}/errno-base.h`, "utf8") +
      readFileSync(`${dir}/errno.h`, "utf8");
  } catch {
    t.skip(`${dir}/errno*.h not installed (linux-libc-dev)`);
    return;
  }
  const defined = new Map<string, number>();
  for (const m of text.matchAll(/^#define\s+(E[A-Z0-9]+)\s+(\d+)\b/gm)) {
    defined.set(m[1], Number(m[2]));
  }
  assert.ok(defined.size >= 130, `only ${defined.size} errnos in the headers`);
  const table = ERRNO as Readonly<Record<string, number>>;
  for (const [name, n] of defined) {
    assert.equal(table[name], n, name);
    assert.equal(errnoName(n), name);
  }
  assert.deepEqual(
    Object.keys(table).filter((k) => !defined.has(k)),
    [],
    "names in the table the headers do not define",
  );
  assert.equal(errnoName(30), "EROFS");
  assert.equal(errnoName(131), "ENOTRECOVERABLE");
  assert.equal(errnoName(41), "E41"); // unused in Linux
});
