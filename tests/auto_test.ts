// The zero-code entry point: src/auto_config.ts parses the environment
// (pure, tested on values), and auto.ts, preloaded into real deno and bun
// processes, primes them before the program runs. Whether it did is read
// from outside in /proc/<pid>/smaps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import {
  applyAutoPlan,
  type AutoBuilder,
  type AutoEnv,
  formatAutoCalls,
  formatAutoErrors,
  parseAutoConfig,
  parsePagePrimer,
  resolveDefault,
} from "../src/auto_config.ts";
import { prime } from "../mod.ts";
import { isRoot, lockedIn, ROOT, runtimePath, RUNTIMES } from "./helpers.ts";
import {
  fileText,
  jsonLines,
  smapsOf,
  startProc,
  textHugeShare,
} from "./fixtures/example_process.ts";

const MiB = 1024 * 1024;
const AUTO = `${ROOT}auto.ts`;
const MAIN = `${ROOT}tests/fixtures/auto_main.ts`;

// ---------------------------------------------------------------------------
// Parsing (pure)

test("unset, empty or on PAGE_PRIMER: the default, mlock (populate where it cannot lock), one line", () => {
  for (
    const env of [{}, { PAGE_PRIMER: "" }, { PAGE_PRIMER: "  " }, {
      PAGE_PRIMER: " on ",
    }]
  ) {
    const p = parseAutoConfig(env);
    assert.deepEqual(p, {
      off: false,
      defaulted: true,
      actions: ["mlock"],
      calls: [{ method: "mlock", arg: true }],
      log: "line",
      strict: false,
      errors: [],
      warnings: [],
    });
    assert.deepEqual(resolveDefault(p, true), p);
    const fallback = resolveDefault(p, false);
    assert.deepEqual(fallback.actions, ["populate"]);
    assert.deepEqual(fallback.calls, [{ method: "populate", arg: true }]);
  }
  // Explicit actions are never changed by the lock limit.
  const m = parseAutoConfig({ PAGE_PRIMER: "mlock" });
  assert.deepEqual(resolveDefault(m, false), m);
  // The remap is an opt-in: the default never includes it.
  assert.ok(!parseAutoConfig({}).actions.includes("remap"));
});

test("PAGE_PRIMER=off turns everything off, other variables unread", () => {
  const p = parseAutoConfig({
    PAGE_PRIMER: " off ",
    PAGE_PRIMER_BACKEND: "bogus",
    PAGE_PRIMER_OBJECTS: ",",
  });
  assert.equal(p.off, true);
  assert.deepEqual(p.calls, []);
  assert.deepEqual(p.errors, []);
  assert.equal(parsePagePrimer("off").off, true);
});

test("one spelling per value: 0, false, no, none, 1, true, yes, OFF, REMAP are rejected with the value meant", () => {
  const cases: [string, string][] = [
    ["0", "off"],
    ["false", "off"],
    ["no", "off"],
    ["None", "off"],
    ["1", "on"],
    ["true", "on"],
    ["yes", "on"],
    ["OFF", "off"],
    ["REMAP", "remap"],
    ["Mlock,remap", "mlock"],
  ];
  for (const [v, meant] of cases) {
    const sw = parsePagePrimer(v);
    assert.equal(sw.off, false, v);
    assert.deepEqual(sw.actions, [], v);
    assert.match(sw.error!.message, new RegExp(`did you mean "${meant}"`), v);
    const p = parseAutoConfig({ PAGE_PRIMER: v });
    assert.deepEqual(p.calls, [], v);
    assert.equal(p.errors[0]!.variable, "PAGE_PRIMER");
  }
});

test("action lists: any order, spaces, repeats and trailing commas; calls in builder order", () => {
  const cases: [string, string[]][] = [
    ["mlock,remap", ["remap", "mlock"]],
    [" remap , mlock ,", ["remap", "mlock"]],
    ["populate", ["populate"]],
    ["populate,mlock,remap,remap", ["remap", "mlock", "populate"]],
  ];
  for (const [v, want] of cases) {
    const p = parseAutoConfig({ PAGE_PRIMER: v });
    assert.deepEqual(p.errors, [], v);
    assert.equal(p.defaulted, false);
    assert.deepEqual(p.actions, want, v);
    assert.deepEqual(p.calls.map((c) => c.method), want, v);
  }
});

test("backend and align become remap options; objects keep their case", () => {
  const p = parseAutoConfig({
    PAGE_PRIMER: "remap,mlock",
    PAGE_PRIMER_BACKEND: " thp ",
    PAGE_PRIMER_ALIGN: "conservative",
    PAGE_PRIMER_OBJECTS: "main, libFoo.so ,main",
  });
  assert.deepEqual(p.calls, [
    { method: "remap", arg: { backend: "thp", align: "conservative" } },
    { method: "mlock", arg: true },
    { method: "objects", arg: ["main", "libFoo.so"] },
  ]);
  assert.equal(
    formatAutoCalls(p),
    'prime().remap({ backend: "thp", align: "conservative" }).mlock(true).objects("main", "libFoo.so").run()',
  );
  assert.deepEqual(
    parseAutoConfig({ PAGE_PRIMER_OBJECTS: "all" }).calls.at(-1),
    { method: "objects", arg: ["all"] },
  );
  for (const b of ["auto", "thp", "hugetlb", "memfd"]) {
    assert.deepEqual(
      parseAutoConfig({ PAGE_PRIMER: "remap", PAGE_PRIMER_BACKEND: b })
        .calls[0],
      { method: "remap", arg: { backend: b } },
    );
  }
});

test("PAGE_PRIMER_PERF_MAP=1 turns the perf map on as a remap option; 0 or unset leaves it off", () => {
  const p1 = parseAutoConfig({
    PAGE_PRIMER: "remap",
    PAGE_PRIMER_PERF_MAP: " 1 ",
  });
  assert.deepEqual(p1.errors, []);
  assert.deepEqual(p1.calls, [{ method: "remap", arg: { perfMap: true } }]);
  for (const v of ["0", "", undefined]) {
    assert.deepEqual(
      parseAutoConfig({ PAGE_PRIMER: "remap", PAGE_PRIMER_PERF_MAP: v }).calls,
      [{ method: "remap", arg: true }],
      String(v),
    );
  }
  const p = parseAutoConfig({
    PAGE_PRIMER: "remap,mlock",
    PAGE_PRIMER_BACKEND: "thp",
    PAGE_PRIMER_PERF_MAP: "1",
  });
  assert.deepEqual(p.calls[0], {
    method: "remap",
    arg: { backend: "thp", perfMap: true },
  });
  assert.equal(
    formatAutoCalls(p),
    'prime().remap({ backend: "thp", perfMap: true }).mlock(true).run()',
  );
});

test("log and strict values", () => {
  for (const l of ["line", "table", "json", "none"]) {
    assert.equal(parseAutoConfig({ PAGE_PRIMER_LOG: l }).log, l);
  }
  assert.equal(parseAutoConfig({}).log, "line");
  assert.equal(parseAutoConfig({ PAGE_PRIMER_STRICT: "1" }).strict, true);
  for (const s of ["0", "", undefined]) {
    assert.equal(parseAutoConfig({ PAGE_PRIMER_STRICT: s }).strict, false);
  }
});

test("every bad value is one issue naming the variable, the value and what is allowed; nothing is called", () => {
  const cases: [AutoEnv, string, RegExp][] = [
    [
      { PAGE_PRIMER: "mlcok,remap" },
      "PAGE_PRIMER",
      /"mlcok" \(did you mean "mlock"\?\).*remap, mlock, populate$/,
    ],
    [{ PAGE_PRIMER: "," }, "PAGE_PRIMER", /names no action/],
    [{ PAGE_PRIMER: "remap,off" }, "PAGE_PRIMER", /on and off stand alone/],
    [
      { PAGE_PRIMER_BACKEND: "hugepages" },
      "PAGE_PRIMER_BACKEND",
      /"hugepages" is not valid.*allowed: auto, thp, hugetlb, memfd$/,
    ],
    [
      { PAGE_PRIMER_ALIGN: "x" },
      "PAGE_PRIMER_ALIGN",
      /allowed: aggressive, conservative$/,
    ],
    [
      { PAGE_PRIMER_OBJECTS: "a,,b" },
      "PAGE_PRIMER_OBJECTS",
      /empty item.*main, all, or a comma list of path substrings/,
    ],
    [
      { PAGE_PRIMER_LOG: "text" },
      "PAGE_PRIMER_LOG",
      /allowed: line, table, json, none$/,
    ],
    [
      { PAGE_PRIMER_LOG: "JSON" },
      "PAGE_PRIMER_LOG",
      /did you mean "json"\? values are lower case/,
    ],
    [
      { PAGE_PRIMER_STRICT: "yes" },
      "PAGE_PRIMER_STRICT",
      /"yes" is not valid \(did you mean "1"\?\); allowed: 1 \(exit with code 1/,
    ],
    [
      { PAGE_PRIMER_PERF_MAP: "perf" },
      "PAGE_PRIMER_PERF_MAP",
      /"perf" is not valid; allowed: 1 \(append to \/tmp\/perf-<pid>\.map\) or 0$/,
    ],
  ];
  for (const [env, variable, re] of cases) {
    const p = parseAutoConfig(env);
    assert.equal(p.errors.length, 1, JSON.stringify(env));
    assert.equal(p.errors[0]!.variable, variable);
    assert.equal(p.errors[0]!.value, Object.values(env)[0]);
    assert.match(p.errors[0]!.message, re);
    assert.deepEqual(p.calls, []);
    assert.deepEqual(p.actions, []);
  }
  // A bad log value falls back to the default, so the error is seen.
  assert.equal(parseAutoConfig({ PAGE_PRIMER_LOG: "yaml" }).log, "line");
  // Several bad values are all reported.
  const many = parseAutoConfig({
    PAGE_PRIMER: "lock",
    PAGE_PRIMER_BACKEND: "x",
    PAGE_PRIMER_ALIGN: "y",
  });
  assert.deepEqual(many.errors.map((e) => e.variable).sort(), [
    "PAGE_PRIMER",
    "PAGE_PRIMER_ALIGN",
    "PAGE_PRIMER_BACKEND",
  ]);
});

test("backend, align or perf map without remap is a warning, not an error", () => {
  const p = parseAutoConfig({
    PAGE_PRIMER: "mlock",
    PAGE_PRIMER_BACKEND: "thp",
    PAGE_PRIMER_ALIGN: "conservative",
    PAGE_PRIMER_PERF_MAP: "1",
  });
  assert.deepEqual(p.errors, []);
  assert.deepEqual(p.calls, [{ method: "mlock", arg: true }]);
  assert.equal(p.warnings.length, 3);
  assert.match(p.warnings[0]!, /PAGE_PRIMER_BACKEND=thp has no effect/);
  assert.match(p.warnings[2]!, /PAGE_PRIMER_PERF_MAP=1 has no effect/);
  assert.equal(formatAutoErrors(p), undefined);
  assert.match(
    parseAutoConfig({ PAGE_PRIMER_BACKEND: "thp" }).warnings[0]!,
    /PAGE_PRIMER \(unset, so on\) does not include remap/,
  );
});

test("formatAutoErrors: all errors in one line, then whether the program runs or exits", () => {
  const p = parseAutoConfig({ PAGE_PRIMER_BACKEND: "huge" });
  assert.equal(
    formatAutoErrors(p),
    'page-primer: PAGE_PRIMER_BACKEND="huge" is not valid; allowed: auto, thp, hugetlb, memfd; the program runs unprimed (PAGE_PRIMER_STRICT=1 exits instead)',
  );
  const s = parseAutoConfig({
    PAGE_PRIMER: "x",
    PAGE_PRIMER_ALIGN: "y",
    PAGE_PRIMER_STRICT: "1",
  });
  const line = formatAutoErrors(s)!;
  assert.doesNotMatch(line, /\n/);
  assert.match(line, /^page-primer: PAGE_PRIMER="x": unknown action "x"/);
  assert.match(line, /PAGE_PRIMER_ALIGN="y" is not valid/);
  assert.match(line, /; exiting with code 1 because PAGE_PRIMER_STRICT=1$/);
  assert.equal(formatAutoErrors(parseAutoConfig({})), undefined);
});

test("parseAutoConfig rejects what is not an environment with TypeError", () => {
  for (const bad of [null, "PAGE_PRIMER=remap", ["remap"], 3]) {
    assert.throws(
      () => parseAutoConfig(bad as unknown as AutoEnv),
      (e) => e instanceof TypeError && /needs an object/.test(e.message),
    );
  }
  assert.throws(
    () => parseAutoConfig({ PAGE_PRIMER: 1 } as unknown as AutoEnv),
    (e) =>
      e instanceof TypeError && /PAGE_PRIMER must be a string/.test(e.message),
  );
});

test("applyAutoPlan makes the calls in order, and the real builder accepts every plan", () => {
  const seen: unknown[][] = [];
  const rec: AutoBuilder = {
    remap: (a) => seen.push(["remap", a]),
    mlock: (a) => seen.push(["mlock", a]),
    populate: (a) => seen.push(["populate", a]),
    objects: (...a) => seen.push(["objects", ...a]),
  };
  applyAutoPlan(
    parseAutoConfig({
      PAGE_PRIMER: "populate,remap",
      PAGE_PRIMER_ALIGN: "aggressive",
      PAGE_PRIMER_OBJECTS: "main,libc.so",
    }),
    rec,
  );
  assert.deepEqual(seen, [
    ["remap", { align: "aggressive" }],
    ["populate", true],
    ["objects", "main", "libc.so"],
  ]);
  // The builder validates its arguments (TypeError/RangeError): every
  // combination a plan can hold must pass.
  for (
    const actions of ["remap", "mlock", "populate", "remap,mlock,populate"]
  ) {
    for (const backend of ["", "auto", "thp", "hugetlb", "memfd"]) {
      for (const align of ["", "aggressive", "conservative"]) {
        for (const perfMap of ["", "1"]) {
          const p = parseAutoConfig({
            PAGE_PRIMER: actions,
            PAGE_PRIMER_BACKEND: backend,
            PAGE_PRIMER_ALIGN: align,
            PAGE_PRIMER_OBJECTS: "all",
            PAGE_PRIMER_PERF_MAP: perfMap,
          });
          assert.doesNotThrow(
            () => applyAutoPlan(p, prime()),
            formatAutoCalls(p),
          );
        }
      }
    }
  }
});

// ---------------------------------------------------------------------------
// auto.ts preloaded into real processes

function preloaded(
  rt: "deno" | "bun",
  script: string,
  denoFlags: string[] = ["--allow-ffi"],
): string[] {
  return rt === "deno"
    ? [runtimePath("deno"), "run", ...denoFlags, "--preload", AUTO, script]
    : [runtimePath("bun"), "--preload", AUTO, script];
}

// Lower RLIMIT_MEMLOCK to 1 MiB and, as root, drop CAP_IPC_LOCK (which
// ignores the limit): a lock of the ~100 MiB executable must fail.
const LOW_MEMLOCK = isRoot()
  ? "ulimit -l 1024; exec setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock --"
  : "ulimit -l 1024; exec";
// The same with the hard limit at 1 MiB too (the soft limit cannot be raised).
const LOW_MEMLOCK_HARD = isRoot()
  ? "ulimit -S -l 1024; ulimit -H -l 1024; exec setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock --"
  : "ulimit -S -l 1024; ulimit -H -l 1024; exec";

async function finish(p: ReturnType<typeof startProc>) {
  p.closeStdin();
  const code = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

for (const rt of RUNTIMES) {
  test(`${rt}: preloaded with PAGE_PRIMER=remap, the program runs on 2 MiB-page text (smaps from outside)`, async () => {
    const p = startProc(preloaded(rt, MAIN), {
      env: { PAGE_PRIMER: "remap", PAGE_PRIMER_LOG: "json" },
    });
    try {
      const pid = Number((await p.waitFor(/^MAIN (\d+)$/m))[1]);
      const lines = jsonLines(p.stderr());
      assert.equal(lines.length, 1, p.stderr());
      const out = lines[0];
      assert.equal(out.ok, true, out.reason);
      assert.equal(out.pid, pid);
      assert.deepEqual(out.requested, ["remap"]);
      const t = textHugeShare(pid, out);
      console.log(
        `${rt}: preload remap: text ${(t.huge / MiB).toFixed(1)} of ${
          (t.bytes / MiB).toFixed(1)
        } MiB on 2 MiB pages (${(100 * t.share).toFixed(1)}%)`,
      );
      assert.ok(t.share >= 0.9, `text on 2 MiB pages: ${t.share}`);
      // What stays on the file: the last partial 2 MiB of text and, in
      // Deno, V8's 2 MiB second mapping of its builtins. Unprimed: > 50 MiB.
      assert.ok(fileText(pid).bytes < 8 * MiB, "text still file-backed");
    } finally {
      const end = await finish(p);
      assert.equal(end.code, 0, end.stderr);
      assert.match(end.stdout, /^ALIVE \d+$/m);
    }
  });

  test(`${rt}: preloaded with no PAGE_PRIMER*: mlock (or populate where the limit is too low), no remap, one line on stderr`, async () => {
    const p = startProc(preloaded(rt, MAIN), {
      env: {
        PAGE_PRIMER: undefined,
        PAGE_PRIMER_LOG: undefined,
        PAGE_PRIMER_STRICT: undefined,
      },
    });
    try {
      const pid = Number((await p.waitFor(/^MAIN (\d+)$/m))[1]);
      const lines = p.stderr().trimEnd().split("\n");
      assert.equal(lines.length, 1, p.stderr());
      const m = /^page-primer: (mlock|populate) ok, /.exec(lines[0]!);
      assert.ok(m, lines[0]);
      // The remap is opt-in: the text stays on the file, on 4 KiB pages.
      const ft = fileText(pid);
      assert.ok(ft.bytes > 50 * MiB, `file-backed text ${ft.bytes}`);
      assert.equal(ft.huge, 0);
      const exe = smapsOf(pid).filter((v) =>
        v.perms === "r-xp" && v.inode !== 0 && v.size > 20 * MiB
      );
      assert.equal(exe.length, 1);
      if (m![1] === "mlock") {
        assert.match(lines[0]!, /locked \d/);
        assert.ok(exe[0]!.vmFlags.includes("lo"), "text not locked");
      } else {
        assert.match(lines[0]!, /not locked: mlock needs/);
        assert.ok(exe[0]!.rss >= 0.99 * exe[0]!.size, "text not resident");
      }
      assert.equal(existsSync(`/tmp/perf-${pid}.map`), false);
    } finally {
      const end = await finish(p);
      assert.equal(end.code, 0, end.stderr);
    }
  });

  test(`${rt}: no PAGE_PRIMER and a lock limit too low: populate, and the line says why not mlock`, async () => {
    const p = startProc(preloaded(rt, MAIN), {
      env: { PAGE_PRIMER: undefined, PAGE_PRIMER_LOG: undefined },
      shellPrefix: LOW_MEMLOCK_HARD,
    });
    try {
      const pid = Number((await p.waitFor(/^MAIN (\d+)$/m))[1]);
      const lines = p.stderr().trimEnd().split("\n");
      assert.equal(lines.length, 1, p.stderr());
      assert.match(
        lines[0]!,
        /^page-primer: populate ok, resident .*; not locked: mlock needs [\d.]+ MiB, the hard RLIMIT_MEMLOCK is 1\.0 MiB/,
      );
      assert.equal(
        smapsOf(pid).filter((v) => v.vmFlags.includes("lo")).length,
        0,
      );
    } finally {
      const end = await finish(p);
      assert.equal(end.code, 0, end.stderr);
    }
  });

  test(`${rt}: PAGE_PRIMER_LOG=table prints the report as a table`, async () => {
    const p = startProc(preloaded(rt, MAIN), {
      env: { PAGE_PRIMER: "populate", PAGE_PRIMER_LOG: "table" },
    });
    const end = await finish(p);
    assert.equal(end.code, 0, end.stderr);
    assert.match(
      end.stderr,
      new RegExp(`^page-primer: ${rt} [^,]+, pid \\d+, .*: populate ok$`, "m"),
    );
    assert.match(end.stderr, /^ {2}object +seg +perm +kind/m);
    assert.match(end.stderr, /^ {2}time: /m);
  });

  test(`${rt}: PAGE_PRIMER_PERF_MAP=1 writes /tmp/perf-<pid>.map, timed apart`, async () => {
    const p = startProc(preloaded(rt, MAIN), {
      env: {
        PAGE_PRIMER: "remap",
        PAGE_PRIMER_LOG: "json",
        PAGE_PRIMER_PERF_MAP: "1",
      },
    });
    const map = () => `/tmp/perf-${p.pid}.map`;
    try {
      const pid = Number((await p.waitFor(/^MAIN (\d+)$/m))[1]);
      assert.equal(pid, p.pid);
      const [out] = jsonLines(p.stderr());
      assert.equal(out.ok, true, out.reason);
      const r = out.remap!.perfMap!;
      assert.ok(r.symbols > 0, JSON.stringify(r));
      assert.equal(r.path, map());
      const lines = readFileSync(map(), "utf8").trimEnd().split("\n");
      assert.equal(lines.length, r.symbols);
      assert.ok(
        out.durations.perfMapMs! >= r.ms,
        JSON.stringify(out.durations),
      );
    } finally {
      const end = await finish(p);
      assert.equal(end.code, 0, end.stderr);
      // startProc removes the map when the program has exited.
      assert.equal(existsSync(map()), false);
    }
  });

  test(`${rt}: PAGE_PRIMER=off: nothing done, nothing printed`, async () => {
    const p = startProc(preloaded(rt, MAIN), { env: { PAGE_PRIMER: "off" } });
    try {
      const pid = Number((await p.waitFor(/^MAIN (\d+)$/m))[1]);
      const ft = fileText(pid);
      assert.ok(ft.bytes > 50 * MiB, `file-backed text ${ft.bytes}`);
      assert.equal(ft.huge, 0);
      assert.equal(
        smapsOf(pid).filter((v) => v.vmFlags.includes("lo")).length,
        0,
      );
    } finally {
      const end = await finish(p);
      assert.equal(end.code, 0, end.stderr);
      assert.equal(end.stderr, "");
    }
  });

  test(`${rt}: a bad value is reported in one line with the allowed values and the program runs unprimed`, async () => {
    const p = startProc(preloaded(rt, MAIN), {
      env: { PAGE_PRIMER: "remap", PAGE_PRIMER_BACKEND: "hugepages" },
    });
    try {
      const pid = Number((await p.waitFor(/^MAIN (\d+)$/m))[1]);
      assert.ok(fileText(pid).bytes > 50 * MiB, "text was remapped anyway");
    } finally {
      const end = await finish(p);
      assert.equal(end.code, 0);
      assert.equal(
        end.stderr,
        'page-primer: PAGE_PRIMER_BACKEND="hugepages" is not valid; allowed: auto, thp, hugetlb, memfd; the program runs unprimed (PAGE_PRIMER_STRICT=1 exits instead)\n',
      );
      assert.match(end.stdout, /^ALIVE \d+$/m);
    }
  });

  test(`${rt}: PAGE_PRIMER_STRICT=1 turns a bad value into exit code 1 before the program runs`, async () => {
    const p = startProc(preloaded(rt, MAIN), {
      env: { PAGE_PRIMER: "remap,lock", PAGE_PRIMER_STRICT: "1" },
    });
    const end = await finish(p);
    assert.equal(end.code, 1);
    assert.doesNotMatch(end.stdout, /MAIN/);
    assert.match(end.stderr, /PAGE_PRIMER="remap,lock": unknown action "lock"/);
    assert.match(end.stderr, /exiting with code 1 because PAGE_PRIMER_STRICT/);
  });

  test(`${rt}: PAGE_PRIMER_LOG=json with a bad value: one JSON line`, async () => {
    const p = startProc(preloaded(rt, MAIN), {
      env: { PAGE_PRIMER_LOG: "json", PAGE_PRIMER_OBJECTS: "a,,b" },
    });
    const end = await finish(p);
    assert.equal(end.code, 0);
    const lines = end.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, end.stderr);
    const j = JSON.parse(lines[0]);
    assert.equal(j.ok, false);
    assert.equal(j.errors[0].variable, "PAGE_PRIMER_OBJECTS");
    assert.match(j.reason, /runs unprimed/);
  });

  test(`${rt}: PAGE_PRIMER_LOG=none prints nothing; populate still prefaults the text (Rss from outside)`, async () => {
    const p = startProc(preloaded(rt, MAIN), {
      env: { PAGE_PRIMER: "populate", PAGE_PRIMER_LOG: "none" },
    });
    try {
      const pid = Number((await p.waitFor(/^MAIN (\d+)$/m))[1]);
      const exe = smapsOf(pid).filter((v) =>
        v.perms === "r-xp" && v.inode !== 0 && v.size > 20 * MiB
      );
      assert.equal(exe.length, 1);
      assert.ok(
        exe[0].rss >= 0.99 * exe[0].size,
        `${exe[0].rss} of ${exe[0].size}`,
      );
    } finally {
      const end = await finish(p);
      assert.equal(end.code, 0);
      assert.equal(end.stderr, "");
    }
  });

  test(`${rt}: a failed mlock (RLIMIT_MEMLOCK 1 MiB) is reported and the program runs; strict exits 1`, async () => {
    const p = startProc(preloaded(rt, MAIN), {
      env: { PAGE_PRIMER: "mlock", PAGE_PRIMER_LOG: "json" },
      shellPrefix: LOW_MEMLOCK,
    });
    const end = await finish(p);
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stdout, /^MAIN \d+$/m);
    const [out] = jsonLines(end.stderr);
    assert.equal(out.ok, false);
    assert.match(
      out.segments.find((s) => s.kind === "text")!.error!.message,
      /RLIMIT_MEMLOCK/,
    );

    const s = startProc(preloaded(rt, MAIN), {
      env: { PAGE_PRIMER: "mlock", PAGE_PRIMER_STRICT: "1" },
      shellPrefix: LOW_MEMLOCK,
    });
    const send = await finish(s);
    assert.equal(send.code, 1);
    assert.doesNotMatch(send.stdout, /MAIN/);
    assert.match(send.stderr, /: mlock NOT OK/);
    assert.match(send.stderr, /exiting with code 1 because PAGE_PRIMER_STRICT/);
  });

  test(
    `${rt}: PAGE_PRIMER=mlock locks the executable's text (VmFlags lo, from outside)`,
    {
      skip: isRoot()
        ? false
        : "needs root: the lock exceeds a user's RLIMIT_MEMLOCK",
    },
    async () => {
      const p = startProc(preloaded(rt, MAIN), {
        env: { PAGE_PRIMER: "mlock", PAGE_PRIMER_LOG: "json" },
      });
      try {
        const pid = Number((await p.waitFor(/^MAIN (\d+)$/m))[1]);
        const [out] = jsonLines(p.stderr());
        assert.equal(out.ok, true, out.reason);
        const text = out.segments.find((s) =>
          s.kind === "text" && s.origin === "load"
        )!;
        const l = lockedIn(smapsOf(pid), text.start, text.end);
        assert.equal(l.unflagged, 0);
        assert.ok(l.lockedRss >= 0.99 * (text.end - text.start));
      } finally {
        const end = await finish(p);
        assert.equal(end.code, 0, end.stderr);
      }
    },
  );

  test(`${rt}: PAGE_PRIMER_OBJECTS selects libraries too`, async () => {
    const p = startProc(preloaded(rt, MAIN), {
      env: {
        PAGE_PRIMER: "populate",
        PAGE_PRIMER_LOG: "json",
        PAGE_PRIMER_OBJECTS: "main,libc.so",
      },
    });
    const end = await finish(p);
    assert.equal(end.code, 0, end.stderr);
    const [out] = jsonLines(end.stderr);
    assert.equal(out.ok, true, out.reason);
    const objects = new Set(out.segments.map((s) => s.object));
    assert.equal(objects.size, 2, [...objects].join(", "));
    assert.ok([...objects].some((o) => /\/libc\.so/.test(o)));
  });

  test(`${rt}: preloaded and imported, auto.ts runs once and the program gets its outcome`, async () => {
    const script = `${ROOT}tests/fixtures/auto_import.ts`;
    const p = startProc(preloaded(rt, script), {
      env: { PAGE_PRIMER: "populate", PAGE_PRIMER_LOG: "json" },
    });
    const end = await finish(p);
    assert.equal(end.code, 0, end.stderr);
    const lines = jsonLines(end.stderr);
    assert.equal(lines.length, 1, "auto.ts was evaluated twice");
    const got = JSON.parse(/^AUTO (.*)$/m.exec(end.stdout)![1]);
    assert.deepEqual(got.calls, [{ method: "populate", arg: true }]);
    assert.equal(got.outcome.pid, got.pid);
    assert.equal(got.outcome.totalMs, lines[0].durations.totalMs);
  });
}

test("deno without --allow-ffi: the program runs, and one line names the flag", async () => {
  for (const env of [{ PAGE_PRIMER: "remap" }, { PAGE_PRIMER: "off" }, {}]) {
    const p = startProc(preloaded("deno", MAIN, []), { env });
    const end = await finish(p);
    assert.equal(end.code, 0);
    assert.match(end.stdout, /^MAIN \d+$/m);
    // PAGE_PRIMER cannot be read without FFI (libc getenv) or --allow-env.
    assert.equal(
      end.stderr,
      "page-primer: FFI is not permitted: run deno with --allow-ffi (page-primer needs no other permission); the program runs unprimed\n",
    );
  }
});

test("deno without --allow-ffi but with env access: PAGE_PRIMER=off is silent, strict exits 1", async () => {
  const off = await finish(
    startProc(preloaded("deno", MAIN, ["--allow-env"]), {
      env: { PAGE_PRIMER: "off" },
    }),
  );
  assert.equal(off.code, 0);
  assert.equal(off.stderr, "");
  const p = startProc(
    preloaded("deno", MAIN, ["--allow-env=PAGE_PRIMER,PAGE_PRIMER_STRICT"]),
    { env: { PAGE_PRIMER: "remap", PAGE_PRIMER_STRICT: "1" } },
  );
  const end = await finish(p);
  assert.equal(end.code, 1);
  assert.doesNotMatch(end.stdout, /MAIN/);
  assert.match(end.stderr, /--allow-ffi.*exiting with code 1/);
});

test("deno with --allow-ffi alone reads every switch: off is silent, a bad value under strict exits 1 naming it", async () => {
  const off = await finish(
    startProc(preloaded("deno", MAIN), { env: { PAGE_PRIMER: "off" } }),
  );
  assert.equal(off.code, 0);
  assert.equal(off.stderr, "");
  assert.match(off.stdout, /^ALIVE \d+$/m);
  const bad = await finish(
    startProc(preloaded("deno", MAIN), {
      env: { PAGE_PRIMER: "remap,bogus", PAGE_PRIMER_STRICT: "1" },
    }),
  );
  assert.equal(bad.code, 1);
  assert.doesNotMatch(bad.stdout, /MAIN/);
  assert.equal(bad.stderr.trimEnd().split("\n").length, 1, bad.stderr);
  assert.match(bad.stderr, /unknown action "bogus"/);
  const json = await finish(
    startProc(preloaded("deno", MAIN), {
      env: { PAGE_PRIMER: "populate", PAGE_PRIMER_LOG: "json" },
    }),
  );
  assert.equal(json.code, 0, json.stderr);
  assert.equal(jsonLines(json.stderr)[0]!.ok, true);
});
