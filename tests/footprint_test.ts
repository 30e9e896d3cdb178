// The hot-code footprint (src/tools/footprint.ts, cli.ts footprint): its pure
// parts on fixtures (attribution by address, TLB decoding from CPUID
// registers, the verdict), CPUID through the trampoline, and the command
// run against loaded Deno.serve and Bun.serve servers, checked against a
// clear_refs measurement made here, independently of the library.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import process from "node:process";
import {
  attributeFootprint,
  codeRanges,
  cpuVendor,
  decodeAmdItlb,
  decodeIntelItlb,
  footprint,
  footprintCaveats,
  type FootprintReport,
  type FootprintTotals,
  footprintVerdict,
  formatFootprint,
  steadyTotals,
} from "../src/tools/footprint.ts";
import { inspectLayout } from "../src/tools/inspect.ts";
import { libc } from "../src/sys/libc.ts";
import { parseSmaps } from "../src/sys/maps.ts";
import { loadTrampoline } from "../src/remap/trampoline.ts";
import { ROOT, run, runtimePath, RUNTIMES, shellQuote } from "./helpers.ts";

const FIXTURE = `${ROOT}tests/fixtures/footprint/`;
const EXE = "/usr/bin/deno";
const LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6";

function fixtureLayout() {
  const smaps = parseSmaps(
    readFileSync(FIXTURE + "remapped_smaps.txt", "utf8"),
  );
  const report = inspectLayout({
    pid: 1,
    exe: EXE,
    pageSize: 4096,
    smaps,
    objects: [
      {
        path: EXE,
        main: true,
        bias: 0x55a077000000,
        biasFrom: "auxv",
        segments: [
          {
            index: 0,
            flags: 4,
            vaddr: 0,
            memsz: 0x8bd000,
            filesz: 0x8bd000,
            offset: 0,
          },
          {
            index: 1,
            flags: 5,
            vaddr: 0x8bd000,
            memsz: 0x3cf4000,
            filesz: 0x3cf4000,
            offset: 0x8bd000,
          },
          {
            index: 2,
            flags: 6,
            vaddr: 0x45b1000,
            memsz: 0x34f000,
            filesz: 0x34f000,
            offset: 0x45b1000,
          },
        ],
      },
      {
        path: LIBC,
        main: false,
        bias: 0x7f2011713000,
        biasFrom: "maps",
        segments: [
          {
            index: 0,
            flags: 5,
            vaddr: 0x26000,
            memsz: 0x156000,
            filesz: 0x156000,
            offset: 0x26000,
          },
        ],
      },
    ],
  });
  return { smaps, report };
}

// ---------------------------------------------------------------------------
// Pure parts

test("codeRanges: the executable's text LOAD range, its builtins alias, a library's text", () => {
  const { report } = fixtureLayout();
  const ranges = codeRanges(report).map((r) => ({
    ...r,
    start: r.start.toString(16),
    end: r.end.toString(16),
  }));
  assert.deepEqual(ranges, [
    {
      object: EXE,
      category: "executable",
      start: "55a0778bd000",
      end: "55a07b5b1000",
    },
    {
      object: EXE,
      category: "builtins",
      start: "7f1ff3dc0000",
      end: "7f1ff3fe6000",
    },
    {
      object: LIBC,
      category: "library",
      start: "7f2011739000",
      end: "7f201188f000",
    },
  ]);
});

test("attributeFootprint: a remapped anonymous copy counts as the executable, anonymous r-x/rwx as JIT", () => {
  const { smaps, report } = fixtureLayout();
  const w = attributeFootprint(codeRanges(report), smaps, 2);
  // Executable: file head 40 kB + anonymous copy 900 kB + file tail 12 kB.
  assert.deepEqual(w.totals, {
    executable: 238,
    builtins: 40,
    library: 80,
    jit: 50 + 512,
    other: 1,
    total: 238 + 40 + 80 + 562 + 1,
  });
  const exe = w.objects.find((o) => o.category === "executable")!;
  assert.equal(exe.name, EXE);
  assert.equal(exe.mappedPages, (1292 + 59392 + 1732) / 4);
  assert.equal(exe.filePages, true);
  assert.equal(exe.onHugePages, false);
  const jit = w.objects.find((o) => o.category === "jit")!;
  assert.equal(jit.filePages, false);
  assert.equal(jit.onHugePages, true, "the AnonHugePages VMA is flagged");
  assert.equal(w.objects[0], jit, "largest first");
  // Without ranges everything file-backed is "other" and the copy is JIT.
  const bare = attributeFootprint([], smaps, 2).totals;
  assert.equal(bare.executable, 0);
  assert.equal(bare.other, 10 + 3 + 40 + 80 + 1);
});

test("attributeFootprint on a captured Deno smaps: non-executable VMAs are never counted", () => {
  const smaps = parseSmaps(
    readFileSync(`${ROOT}tests/fixtures/maps/deno_smaps.txt`, "utf8"),
  );
  const w = attributeFootprint([], smaps, 1);
  const exec = smaps.filter((v) => v.exec).reduce(
    (n, v) => n + v.referenced / 4096,
    0,
  );
  assert.equal(w.totals.total, exec);
  assert.ok(
    w.totals.total < smaps.reduce((n, v) => n + v.referenced, 0) / 4096,
  );
});

const totals = (
  executable: number,
  jit = 0,
  builtins = 0,
): FootprintTotals => ({
  executable,
  builtins,
  library: 0,
  jit,
  other: 0,
  total: executable + builtins + jit,
});

test("steadyTotals: the median of the windows after the first", () => {
  const w = [900, 200, 240, 260].map((n) => ({
    seconds: 1,
    objects: [],
    totals: totals(n),
  }));
  assert.equal(steadyTotals(w).executable, 240);
  assert.equal(steadyTotals(w.slice(0, 3)).executable, 220);
  assert.equal(steadyTotals(w.slice(0, 1)).executable, 900);
  assert.throws(() => steadyTotals([]), RangeError);
});

// This machine's registers would make the test depend on the CPU: these
// are an AMD Zen part's (64 + 512 entries) and a made-up Intel leaf 0x18.
test("decodeAmdItlb and decodeIntelItlb: entries and reach per page size", () => {
  assert.equal(
    cpuVendor([0x1c, 0x68747541, 0x444d4163, 0x69746e65]),
    "AuthenticAMD",
  );
  const amd = decodeAmdItlb(
    [0xff48ff40, 0xff48ff40, 0x20080140, 0x20080140],
    [0x5c002200, 0x6c004200, 0x04006140, 0x0a009140],
  );
  assert.deepEqual(amd, [
    {
      level: 1,
      unified: false,
      entries4k: 64,
      entries2m: 64,
      reach4k: 64 * 4096,
      reach2m: 64 << 21,
    },
    {
      level: 2,
      unified: false,
      entries4k: 512,
      entries2m: 512,
      reach4k: 512 * 4096,
      reach2m: 512 << 21,
    },
  ]);
  // An L2 with associativity 0 has no entries.
  assert.equal(
    decodeAmdItlb([0, 0x00000040, 0, 0], [0x00000200, 0x200, 0, 0]).length,
    1,
  );
  const intel = decodeIntelItlb([
    [3, 0, 0, 0],
    [0, (8 << 16) | 0x3, 32, 0x22], // L1 instruction, 4K+2M, 8 ways x 32 sets
    [0, (8 << 16) | 0x3, 256, 0x43], // L2 unified (STLB), 8 ways x 256 sets
    [0, (4 << 16) | 0x1, 16, 0x24], // L1 load-only data TLB: ignored
  ]);
  assert.deepEqual(
    intel.map((l) => [l.level, l.unified, l.entries4k, l.entries2m]),
    [
      [1, false, 256, 256],
      [2, true, 2048, 2048],
    ],
  );
});

test("footprintVerdict: likely, unlikely, unknown, and an upper bound never says likely", () => {
  const itlb = {
    vendor: "AuthenticAMD",
    levels: decodeAmdItlb([0x40, 0x40, 0, 0], [0x1200, 0x1200, 0, 0]),
  };
  assert.equal(footprintVerdict(totals(240, 60), itlb).verdict, "unlikely");
  assert.equal(
    footprintVerdict(totals(1100, 100), itlb).verdict,
    "likely to gain",
  );
  // Twice the entries overall, but the executable's part fits: unlikely.
  assert.equal(footprintVerdict(totals(300, 900), itlb).verdict, "unlikely");
  const bound = footprintVerdict(totals(1100, 100), itlb, true);
  assert.equal(bound.verdict, "unknown");
  assert.match(bound.reason, /upper bound/);
  assert.equal(footprintVerdict(totals(240), itlb, true).verdict, "unlikely");
  const unknown = footprintVerdict(totals(5000), { unknown: "not x86" });
  assert.equal(unknown.verdict, "unknown");
  assert.match(unknown.reason, /not x86/);
  assert.match(footprintVerdict(totals(1), itlb).rule, /2x/);
});

test("footprintCaveats and formatFootprint name the upper bounds and the one disturbance", () => {
  const { smaps, report } = fixtureLayout();
  const w = attributeFootprint(codeRanges(report), smaps, 2);
  assert.deepEqual(footprintCaveats([w], false).length, 1, "2 MiB pages");
  const both = footprintCaveats([w], true);
  assert.equal(both.length, 2);
  assert.match(both[0]!, /DAMON/);
  const r: FootprintReport = {
    pid: 7,
    exe: EXE,
    windows: [w, w],
    steady: steadyTotals([w, w]),
    itlb: { unknown: "test" },
    verdict: footprintVerdict(steadyTotals([w, w]), { unknown: "test" }),
    caveats: both,
  };
  const text = formatFootprint(r);
  assert.match(text, /window 1 \(2 s, warm-up\): 921 pages/);
  assert.match(text, /instruction TLB: unknown \(test\)/);
  assert.match(text, /verdict: unknown/);
  assert.match(text, /referenced bits were cleared/);
});

// ---------------------------------------------------------------------------
// CPUID through the trampoline

test("the trampoline's pp_cpuid returns the CPU's vendor string (leaf 0)", () => {
  const t = loadTrampoline(libc());
  const leaf0 = t.cpuid(0, 0);
  assert.equal(leaf0.length, 4);
  assert.ok(leaf0[0] >= 1, "the highest standard leaf is at least 1");
  assert.match(cpuVendor(leaf0), /^[\x20-\x7e]{12}$/);
  assert.throws(() => t.cpuid(-1, 0), RangeError);
});

test("footprint() of this process: windows of the running event loop, the executable's text among them", async () => {
  let n = 0;
  const work = setInterval(() => {
    for (let i = 0; i < 2000; i++) n += JSON.stringify({ i }).length;
  }, 5);
  try {
    const r = await footprint({ seconds: 0.3, windows: 2 });
    assert.equal(r.pid, libc().getpid());
    assert.equal(r.windows.length, 2);
    assert.ok(r.windows.every((w) => w.seconds >= 0.29), "each window waited");
    assert.ok(r.steady.executable > 0, "the runtime ran some of its text");
    assert.ok(
      ["likely to gain", "unlikely", "unknown"].includes(r.verdict.verdict),
    );
    assert.ok(n > 0);
  } finally {
    clearInterval(work);
  }
  await assert.rejects(footprint({ seconds: 0 }), RangeError);
  await assert.rejects(footprint({ windows: 1.5 }), RangeError);
});

// ---------------------------------------------------------------------------
// Real servers under load, against an independent measurement

const WINDOW_S = 2;
const ROUNDS = 5;

interface Server {
  pid: number;
  port: number;
  stop(): void;
}

function startServer(rt: "deno" | "bun", mode: "file" | "4k"): Promise<Server> {
  const script = `${FIXTURE}server.ts`;
  const argv = rt === "deno"
    ? [
      runtimePath("deno"),
      "run",
      "--allow-net=127.0.0.1",
      "--allow-ffi",
      "--allow-read",
      "--allow-env",
      script,
      mode,
    ]
    : [runtimePath("bun"), script, mode];
  const child = spawn("/bin/sh", ["-c", `exec ${shellQuote(argv)}`], {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${rt} server did not start: ${err}`)),
      20000,
    );
    // "close", not "exit": the stderr read so far is then all of it.
    child.on("close", (code) => {
      clearTimeout(timer);
      reject(new Error(`${rt} server exited (${code}): ${err}`));
    });
    child.stdout!.on("data", (d) => {
      out += d;
      // A whole line: a chunk may end inside the port number.
      const m = /LISTENING (\d+)\n/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.removeAllListeners("close");
      resolve({
        pid: child.pid!,
        port: Number(m[1]),
        stop: () => {
          child.stdin!.end();
          child.kill();
        },
      });
    });
  });
}

function findWrk(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir && existsSync(`${dir}/wrk`)) return `${dir}/wrk`;
  }
  return undefined;
}

/** Loads the server for `seconds`: wrk when installed, else a fetch loop here. */
function load(port: number, seconds: number): { done: Promise<void> } {
  const url = `http://127.0.0.1:${port}/items/1`;
  const wrk = findWrk();
  if (wrk) {
    const p = spawn(wrk, ["-t2", "-c16", `-d${seconds}s`, url], {
      stdio: "ignore",
    });
    return { done: new Promise((r) => p.on("exit", () => r())) };
  }
  const until = Date.now() + seconds * 1000;
  const worker = async () => {
    while (Date.now() < until) await (await fetch(url)).text();
  };
  return {
    done: Promise.all(Array.from({ length: 8 }, worker)).then(() => {}),
  };
}

/** The address of the executable's program headers (`AT_PHDR` of /proc/<pid>/auxv). */
function phdrAddress(pid: number): number {
  const b = readFileSync(`/proc/${pid}/auxv`);
  const words = new BigUint64Array(b.buffer, b.byteOffset, b.length >> 3);
  for (let i = 0; i + 1 < words.length; i += 2) {
    if (words[i] === 3n) return Number(words[i + 1]);
  }
  throw new Error(`no AT_PHDR in /proc/${pid}/auxv`);
}

/**
 * Independently of src/: pages of the executable's text referenced in a
 * window. The image starts at the page of its program headers (AT_PHDR)
 * and ends with the last VMA mapping the executable file near it; its text
 * is every executable VMA in there (a remapped copy is anonymous but lies
 * there). V8's builtins, mapped from the file far away, are not in it.
 */
async function independentWindow(
  pid: number,
  seconds: number,
): Promise<number> {
  writeFileSync(`/proc/${pid}/clear_refs`, "1");
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const exe = readlinkSync(`/proc/${pid}/exe`);
  const vmas: {
    start: number;
    end: number;
    perms: string;
    path: string;
    referenced: number;
  }[] = [];
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const h = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (h) {
      vmas.push({
        start: parseInt(h[1]!, 16),
        end: parseInt(h[2]!, 16),
        perms: h[3]!,
        path: h[4]!,
        referenced: 0,
      });
      continue;
    }
    const r = /^Referenced:\s+(\d+) kB/.exec(line);
    if (r) vmas[vmas.length - 1]!.referenced = Number(r[1]) * 1024;
  }
  const lo = Math.floor(phdrAddress(pid) / 4096) * 4096;
  const near = vmas.filter((v) =>
    v.path === exe && v.start >= lo && v.start - lo < 2 ** 32
  );
  const hi = Math.max(...near.map((v) => v.end));
  return vmas.filter((v) => v.perms[2] === "x" && v.end > lo && v.start < hi)
    .reduce((n, v) => n + v.referenced / 4096, 0);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function cliArgv(pid: number): string[] {
  const args = [
    "footprint",
    "--pid",
    String(pid),
    "--seconds",
    String(WINDOW_S),
    "--windows",
    "1",
    "--json",
  ];
  return process.versions.bun
    ? [runtimePath("bun"), `${ROOT}cli.ts`, ...args]
    : [
      runtimePath("deno"),
      "run",
      "--allow-ffi",
      "--allow-read",
      "--allow-env",
      `${ROOT}cli.ts`,
      ...args,
    ];
}

for (const rt of RUNTIMES) {
  test(`cli.ts footprint (${rt}): --help, bad usage exits 2, a missing process exits 1`, async () => {
    const cmd = (args: string[]) =>
      rt === "bun" ? [runtimePath("bun"), `${ROOT}cli.ts`, ...args] : [
        runtimePath("deno"),
        "run",
        "--allow-ffi",
        "--allow-read",
        "--allow-env",
        `${ROOT}cli.ts`,
        ...args,
      ];
    const h = await run(cmd(["footprint", "--help"]));
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /^page-primer footprint:/);
    assert.match(h.stdout, /clear_refs/);
    assert.match(h.stdout, /Exit codes:\n {2}0 .*\n {2}1 .*\n {2}2 +bad usage/);
    const top = await run(cmd(["--help"]));
    assert.match(top.stdout, /\n {2}footprint /);
    for (
      const args of [
        ["--seconds", "0"],
        ["--seconds", "x"],
        ["--windows", "0"],
        ["--pid", "abc"],
        ["--bogus"],
      ]
    ) {
      const r = await run(cmd(["footprint", ...args]));
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /^page-primer footprint: /);
      assert.equal(r.stdout, "");
    }
    const gone = await run(
      cmd([
        "footprint",
        "--pid",
        "4194304",
        "--seconds",
        "0.1",
        "--windows",
        "1",
      ]),
    );
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no process with pid 4194304/);
  });

  for (const mode of ["file", "4k"] as const) {
    const what = mode === "4k" ? "text on a 4 KiB copy" : "text on the file";
    test(`cli.ts footprint of a loaded ${rt} server (${what}) agrees with an independent clear_refs measurement within 30%`, async (t) => {
      const server = await startServer(rt, mode);
      try {
        try {
          writeFileSync(`/proc/${server.pid}/clear_refs`, "1");
        } catch (e) {
          t.skip(`cannot write /proc/${server.pid}/clear_refs: ${e}`);
          console.log(`skipped: cannot write clear_refs of the server: ${e}`);
          return;
        }
        // Rounds alternate one window of the command with one window
        // measured here, so both see the same state of the kernel (which
        // may move accessed bits onto whole folios of the file, see the
        // DAMON caveat, and change its mind while the test runs).
        const loading = load(server.port, 2 + ROUNDS * (2 * WINDOW_S + 2));
        await new Promise((r) => setTimeout(r, 2000)); // warm-up
        const reports: FootprintReport[] = [];
        const own: number[] = [];
        for (let i = 0; i < ROUNDS; i++) {
          const res = await run(cliArgv(server.pid));
          assert.equal(res.code, 0, res.stderr);
          reports.push(JSON.parse(res.stdout) as FootprintReport);
          own.push(await independentWindow(server.pid, WINDOW_S));
        }
        await loading.done;
        const theirs = reports.map((r) => r.steady.executable);
        const cli = median(theirs);
        const ind = median(own);
        // Paired: a one-off event (a GC, the kernel splitting or merging
        // folios) spoils one round, not the median of the rounds' ratios.
        const ratio = median(theirs.map((n, i) => n / Math.max(own[i]!, 1)));
        console.log(
          `${rt} server (${what}): footprint executable ${
            theirs.join("/")
          } pages (median ${cli}); independent ${
            own.join("/")
          } (median ${ind}); median ratio ${ratio.toFixed(3)}; verdicts ${
            reports.map((r) => r.verdict.verdict).join("/")
          }`,
        );
        assert.ok(reports.every((r) => r.windows.length === 1));
        assert.ok(ind > 0, "the loaded server touched some of its text");
        assert.ok(
          Math.abs(ratio - 1) <= 0.3,
          `footprint ${theirs} pages vs independent ${own}: the median ratio ${ratio} is more than 30% from 1`,
        );
        if (mode === "4k") {
          assert.ok(
            reports.every((r) =>
              r.windows[0]!.objects.some((o) =>
                o.category === "executable" && o.pages > 0
              )
            ),
            "the anonymous copy is attributed to the executable",
          );
        }
      } finally {
        server.stop();
      }
    });
  }
}
