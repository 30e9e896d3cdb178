// W^X and no-clobber audit: full remap/restore cycles (THP, memfd, shared,
// and hugetlb when root) run under `strace -f -k`, and the log is judged on
// two things only:
//
// 1. What page-primer's trampoline did (calls attributed by the stack strace
//    prints: a frame in /memfd:page-primer-trampoline): it never asks for a
//    writable and executable mapping, and every MAP_FIXED / MREMAP_FIXED /
//    munmap / mprotect it makes lies in ranges page-primer owned (the
//    regions it replaced, or a staging area it mapped itself).
// 2. What touches the executable's PT_LOAD segments, whoever does it: never
//    made W+X, and never mapped over, moved or unmapped by anything but the
//    trampoline.
//
// The runtime's own mappings are counted and printed, never failed: its JIT
// code (V8's code range, made RWX with mprotect on CPUs without protection
// keys and with pkey_mprotect on CPUs with them; JSC's RWX pool) and the
// second mapping of its builtins V8 places inside that code range (an
// "alias" segment in the outcome, not a LOAD segment).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import process from "node:process";
import type { PrimeOutcomeData } from "../../src/outcome.ts";
import {
  isRoot,
  raiseHugetlbPool,
  type RemapChildReport,
  removeLeftovers,
  runtimePath,
  RUNTIMES,
  startChild,
} from "../helpers.ts";

/** The syscalls traced, and so judged. */
const TRACED = ["mmap", "mprotect", "pkey_mprotect", "mremap", "munmap"];

/** One completed syscall from an `strace -f -k` log. */
interface Traced {
  tid: number;
  name: string;
  args: string[];
  result: string;
  frames: string[];
}

/** A parsed log, and the lines that were neither a call nor a stack frame. */
interface Parsed {
  calls: Traced[];
  unparsed: string[];
}

/** `pid +++ exited with 0 +++`, `pid --- SIGCHLD {...} ---`: not calls. */
const NOT_A_CALL = /^\d+ +(\+\+\+|---) /;

/** Parses `strace -f -k` output, joining `<unfinished ...>`/`resumed` pairs. */
function parseStrace(text: string): Parsed {
  const calls: Traced[] = [];
  const unparsed: string[] = [];
  const pending = new Map<number, { name: string; args: string }>();
  let last: Traced | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith(" > ")) {
      last?.frames.push(line.slice(3));
      continue;
    }
    last = undefined;
    if (line === "" || NOT_A_CALL.test(line)) continue;
    let m = /^(\d+) +(\w+)\((.*) <unfinished \.\.\.>$/.exec(line);
    if (m) {
      pending.set(Number(m[1]), { name: m[2], args: m[3] });
      continue;
    }
    let tid: number, name: string, args: string, result: string;
    m = /^(\d+) +<\.\.\. (\w+) resumed>(.*)\) += (.*)$/.exec(line);
    if (m) {
      tid = Number(m[1]);
      const p = pending.get(tid);
      pending.delete(tid);
      name = m[2];
      args = (p?.args ?? "") + m[3];
      result = m[4];
    } else {
      m = /^(\d+) +(\w+)\((.*)\) += (.*)$/.exec(line);
      if (!m) {
        unparsed.push(line);
        continue;
      }
      tid = Number(m[1]);
      name = m[2];
      args = m[3];
      result = m[4];
    }
    last = {
      tid,
      name,
      args: args.split(", ").map((a) => a.trim()),
      result,
      frames: [],
    };
    calls.push(last);
  }
  // A thread ended by the process's exit in the middle of a call: judged
  // on its arguments, with no result and no stack.
  for (const [tid, p] of pending) {
    calls.push({
      tid,
      name: p.name,
      args: p.args.split(", ").map((a) => a.trim()),
      result: "?",
      frames: [],
    });
  }
  return { calls, unparsed };
}

type Range = readonly [number, number];

const num = (s: string) => (s === "NULL" ? 0 : Number(s));
const inside = (owned: readonly Range[], start: number, end: number) =>
  owned.some(([s, e]) => s <= start && end <= e);
const overlaps = (ranges: readonly Range[], [start, end]: Range) =>
  ranges.some(([s, e]) => start < e && s < end);
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

/** True for a stack frame in page-primer's trampoline. */
const isTrampolineFrame = (f: string) =>
  f.includes("page-primer-trampoline") || /\/primer\.so\(/.test(f);

/** What the audit is told about the traced process. */
interface Layout {
  /** The executable's PT_LOAD segments (page-aligned). */
  load: readonly Range[];
  /** The runtime's further mappings of its executable (V8's builtins). */
  alias: readonly Range[];
  /** The regions page-primer replaced. */
  regions: readonly Range[];
}

/** The judgement of a log, and the counts printed beside it. */
interface Audit {
  /** W^X or no-clobber broken, one line per call. */
  violations: string[];
  /** Calls made by the trampoline. */
  ours: number;
  /** Of those, mremap calls (the swaps and the restores that move pages). */
  swaps: number;
  /** Where the trampoline's MAP_FIXED / MREMAP_FIXED calls landed. */
  oursLanded: Range[];
  /** Calls by others on the LOAD segments (e.g. the runtime's mprotect). */
  othersOnLoad: number;
  /** W+X mappings the runtime made away from the LOAD segments (its JIT). */
  runtimeWx: Range[];
  /** Calls by others on the builtins alias. */
  aliasCalls: number;
}

/** The protection a call asks for, or "" when it asks for none. */
function protOf(c: Traced): string {
  return ["mmap", "mprotect", "pkey_mprotect"].includes(c.name)
    ? c.args[2] ?? ""
    : "";
}

/** True for mmap flags that replace whatever is mapped at the address. */
const isFixed = (flags = "") => /MAP_FIXED(?!_NOREPLACE)/.test(flags);

/** The ranges a call changes: its target, and for mremap its source too. */
function rangesOf(c: Traced): Range[] {
  const len = num(c.args[1]);
  if (c.name === "mmap") {
    // Where it landed: the result (the address is only a hint without
    // MAP_FIXED, and NULL means anywhere). A failed call changed nothing,
    // unless MAP_FIXED had the kernel unmap the target first.
    const landed = /^0x[0-9a-f]+$/.exec(c.result.split(" ")[0]);
    if (landed) return [[Number(landed[0]), Number(landed[0]) + len]];
    return isFixed(c.args[3]) ? [[num(c.args[0]), num(c.args[0]) + len]] : [];
  }
  if (c.name === "mremap") {
    const newLen = num(c.args[2]);
    const src: Range = [num(c.args[0]), num(c.args[0]) + len];
    const dest = c.args[3]?.includes("MREMAP_FIXED")
      ? num(c.args[4])
      : /^0x/.test(c.result)
      ? Number(c.result.split(" ")[0])
      : undefined;
    return dest === undefined ? [src] : [src, [dest, dest + newLen]];
  }
  return [[num(c.args[0]), num(c.args[0]) + len]];
}

/** True for a call that replaces, moves or unmaps what is at its target. */
function clobbers(c: Traced): boolean {
  if (c.name === "mmap") return isFixed(c.args[3]);
  return c.name === "mremap" || c.name === "munmap";
}

/** Judges a parsed log against the layout. Pure. */
function audit(calls: readonly Traced[], layout: Layout): Audit {
  const owned: Range[] = [...layout.regions];
  const a: Audit = {
    violations: [],
    ours: 0,
    swaps: 0,
    oursLanded: [],
    othersOnLoad: 0,
    runtimeWx: [],
    aliasCalls: 0,
  };
  for (const c of calls) {
    if (!TRACED.includes(c.name)) continue;
    const mine = c.frames.some(isTrampolineFrame);
    const prot = protOf(c);
    const wx = prot.includes("PROT_WRITE") && prot.includes("PROT_EXEC");
    const ranges = rangesOf(c);
    const onLoad = ranges.some((r) => overlaps(layout.load, r));
    const what = `${c.name}(${c.args.join(", ")}) = ${c.result}`;
    if (mine) {
      a.ours++;
      if (wx) a.violations.push(`W+X by the trampoline: ${what}`);
      judgeOurs(c, ranges, owned, a, what);
    } else if (onLoad) {
      a.othersOnLoad++;
      if (wx) a.violations.push(`W+X on the executable's LOAD: ${what}`);
      if (clobbers(c)) {
        a.violations.push(
          `the executable's LOAD replaced or unmapped, not by the trampoline: ${what}`,
        );
      }
    } else {
      if (wx && ranges.length > 0) a.runtimeWx.push(ranges[0]);
      if (ranges.some((r) => overlaps(layout.alias, r))) a.aliasCalls++;
    }
  }
  return a;
}

/** No-clobber for one of the trampoline's calls; records its staging areas. */
function judgeOurs(
  c: Traced,
  ranges: readonly Range[],
  owned: Range[],
  a: Audit,
  what: string,
): void {
  if (ranges.length === 0) return; // a failed mmap: nothing happened
  const len = num(c.args[1]);
  const [start, end] = ranges.at(-1)!;
  if (c.name === "mmap") {
    if (isFixed(c.args[3])) {
      a.oursLanded.push([start, end]);
      if (!inside(owned, start, end)) {
        a.violations.push(`MAP_FIXED outside owned ranges: ${what}`);
      }
    } else if (num(c.args[0]) === 0 && /^0x/.test(c.result)) {
      owned.push([start, start + len]); // a staging area of our own
    }
  } else if (c.name === "mremap") {
    a.swaps++;
    if (c.args[3]?.includes("MREMAP_FIXED")) {
      a.oursLanded.push([start, end]);
      if (!inside(owned, start, end)) {
        a.violations.push(`MREMAP_FIXED outside owned ranges: ${what}`);
      }
    }
  } else if (!inside(owned, start, end)) {
    a.violations.push(`${c.name} outside owned ranges: ${what}`);
  }
}

/** One line of figures for the test output. */
function summary(rt: string, p: Parsed, a: Audit, layout: Layout): string {
  const holdingAlias =
    a.runtimeWx.filter((r) =>
      layout.alias.some(([s, e]) => r[0] <= s && e <= r[1])
    ).length;
  return [
    `${rt}: ${p.calls.length} calls traced (${p.unparsed.length} lines not understood)`,
    `W^X or no-clobber violations: ${a.violations.length}`,
    `the trampoline: ${a.ours} calls, ${a.swaps} mremap`,
    `others on the ${layout.load.length} LOAD segments: ${a.othersOnLoad} call(s)`,
    `the runtime's own (counted, not judged): ${a.runtimeWx.length} W+X mapping(s) of ${
      mib(a.runtimeWx.reduce((n, [s, e]) => n + e - s, 0))
    } (JIT), ${holdingAlias} of them holding its builtins alias (${layout.alias.length} range(s), ${
      mib(layout.alias.reduce((n, [s, e]) => n + e - s, 0))
    }, ${a.aliasCalls} call(s) on it)`,
  ].join("; ");
}

// --- the parser and the judgement, on made-up and on recorded logs ----------

test("parseStrace joins unfinished and resumed calls, keeps their stacks, and reports what it did not understand", () => {
  const log = [
    "10 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>",
    "11 munmap(0x1000, 4096)               = 0",
    "9999  mprotect(0x1000, 4096, PROT_READ) = 0", // strace pads short pids
    " > /lib/libc.so.6(munmap+0x1) [0x1]",
    "10 <... mmap resumed>)                  = 0x7f0000000000",
    " > /memfd:page-primer-trampoline (deleted)() [0x164b]",
    "10 --- SIGCHLD {si_signo=SIGCHLD} ---",
    "12 +++ exited with 0 +++",
    "garbage",
    "13 munmap(0x1000, 4096 <unfinished ...>",
  ].join("\n");
  const { calls, unparsed } = parseStrace(log);
  assert.equal(calls.length, 4);
  assert.equal(calls[1].tid, 9999);
  assert.deepEqual(calls[2].args, [
    "NULL",
    "4096",
    "PROT_READ",
    "MAP_PRIVATE|MAP_ANONYMOUS",
    "-1",
    "0",
  ]);
  assert.equal(calls[2].result, "0x7f0000000000");
  assert.equal(calls[2].frames.length, 1);
  assert.deepEqual(unparsed, ["garbage"]);
  // Never resumed (its thread ended with the process): judged on its
  // arguments.
  assert.deepEqual(calls[3], {
    tid: 13,
    name: "munmap",
    args: ["0x1000", "4096"],
    result: "?",
    frames: [],
  });
});

test("audit judges the trampoline and the LOAD segments, and only counts the runtime's JIT and alias", () => {
  const t = (line: string, mine = true) => ({
    ...parseStrace(line).calls[0],
    frames: [mine ? "/memfd:page-primer-trampoline (deleted)() [0x1]" : "/x"],
  });
  const layout: Layout = {
    load: [[0x400000, 0x800000]],
    alias: [[0x1ffe0000, 0x20000000]],
    regions: [[0x400000, 0x800000]],
  };
  const ok = audit(
    [
      t("1 mmap(NULL, 8388608, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000"),
      t("1 munmap(0x7f0000000000, 2097152) = 0"),
      t("1 mprotect(0x7f0000200000, 4194304, PROT_READ|PROT_EXEC) = 0"),
      t("1 mremap(0x7f0000200000, 4194304, 4194304, MREMAP_MAYMOVE|MREMAP_FIXED, 0x400000) = 0x400000"),
      t("1 mmap(0x400000, 4194304, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED, 3, 0) = 0x400000"),
      // The runtime: its JIT code range made RWX around the builtins alias
      // (without and with protection keys), JSC's RWX pool, a RELRO-style
      // mprotect on its own LOAD segment, a failed NOREPLACE probe there.
      t(
        "2 mprotect(0x10000000, 268435456, PROT_READ|PROT_WRITE|PROT_EXEC) = 0",
        false,
      ),
      t(
        "2 pkey_mprotect(0x30000000, 4096, PROT_READ|PROT_WRITE|PROT_EXEC, 1) = 0",
        false,
      ),
      t(
        "2 mmap(NULL, 8192, PROT_READ|PROT_WRITE|PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7e0000000000",
        false,
      ),
      t(
        "2 mmap(0x1ffe0000, 131072, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED, 19, 0x1000) = 0x1ffe0000",
        false,
      ),
      t("2 mprotect(0x7ff000, 4096, PROT_READ) = 0", false),
      t(
        "2 mmap(0x7ff000, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE, -1, 0) = -1 EEXIST (File exists)",
        false,
      ),
      // A failed RWX mmap anywhere: nothing was mapped, not even at 0.
      t(
        "2 mmap(NULL, 4294967296, PROT_READ|PROT_WRITE|PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = -1 ENOMEM (Cannot allocate memory)",
        false,
      ),
    ],
    layout,
  );
  assert.deepEqual(ok.violations, []);
  assert.equal(ok.ours, 5);
  assert.equal(ok.swaps, 1);
  assert.deepEqual(ok.oursLanded, [[0x400000, 0x800000], [
    0x400000,
    0x800000,
  ]]);
  assert.equal(ok.othersOnLoad, 1);
  assert.equal(ok.runtimeWx.length, 3);
  assert.equal(ok.aliasCalls, 2); // the RWX range around it, its mapping

  const bad = audit(
    [
      t("1 mprotect(0x400000, 4096, PROT_READ|PROT_WRITE|PROT_EXEC) = 0"),
      t("1 mmap(0x900000, 4096, PROT_READ, MAP_PRIVATE|MAP_FIXED, 3, 0) = 0x900000"),
      t("1 mremap(0x7f0000200000, 4096, 4096, MREMAP_MAYMOVE|MREMAP_FIXED, 0xa00000) = 0xa00000"),
      t("1 munmap(0x1ffe0000, 4096) = 0"), // the alias is not ours either
      t(
        "2 mprotect(0x400000, 4096, PROT_READ|PROT_WRITE|PROT_EXEC) = 0",
        false,
      ),
      t(
        "2 pkey_mprotect(0x3ff000, 8192, PROT_READ|PROT_WRITE|PROT_EXEC, 1) = 0",
        false,
      ),
      t(
        "2 mmap(0x401000, 4096, PROT_READ, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, -1, 0) = 0x401000",
        false,
      ),
      t("2 munmap(0x7ff000, 8192) = 0", false),
      t(
        "2 mremap(0x7e0000000000, 4096, 4096, MREMAP_MAYMOVE|MREMAP_FIXED, 0x402000) = 0x402000",
        false,
      ),
      // Failed, but MAP_FIXED may have unmapped the target first.
      t(
        "2 mmap(0x403000, 4096, PROT_READ, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, -1, 0) = -1 ENOMEM (Cannot allocate memory)",
        false,
      ),
    ],
    layout,
  );
  assert.equal(bad.violations.length, 10, bad.violations.join("\n"));
});

// A log recorded on an AMD EPYC without protection keys: Deno's V8 reserves
// its 512 MiB code range, makes it RWX with mprotect (pkey_alloc failed) and
// maps its builtins a second time at the top of it; then three remap/restore
// cycles (THP, memfd, shared). Every call of the trampoline, every call on the
// LOAD segments, the alias and the code range is kept; the rest is left out.
const RECORDED = new URL("../fixtures/audit/", import.meta.url);
const recorded = {
  log: readFileSync(new URL("deno_no_pku.strace", RECORDED), "utf8"),
  layout: JSON.parse(
    readFileSync(new URL("deno_no_pku.json", RECORDED), "utf8"),
  ) as Layout & { note: string },
};

test("audit on a recorded Deno log: V8's RWX code range around its builtins alias is counted, not failed", () => {
  const p = parseStrace(recorded.log);
  assert.deepEqual(p.unparsed, []);
  const a = audit(p.calls, recorded.layout);
  console.log(summary("recorded deno", p, a, recorded.layout));
  assert.deepEqual(a.violations, []);
  assert.equal(a.swaps, 6); // 3 remaps x (rodata, text)
  assert.equal(a.runtimeWx.length, 1);
  assert.equal(a.runtimeWx[0][1] - a.runtimeWx[0][0], 512 * 2 ** 20);
  assert.ok(a.aliasCalls >= 1);
  assert.ok(a.othersOnLoad >= 1);
  // Counting the alias among the executable's ranges, as this test once
  // did, fails: on the RWX mprotect the issue reported, and on V8 mapping
  // its builtins there.
  const old = audit(p.calls, {
    ...recorded.layout,
    load: [...recorded.layout.load, ...recorded.layout.alias],
  });
  assert.deepEqual(
    old.violations.map((v) => v.replace(/\(.*/, "")),
    [
      "W+X on the executable's LOAD: mprotect", // the 512 MiB code range
      "the executable's LOAD replaced or unmapped, not by the trampoline: mmap",
    ],
  );
});

test("audit on the recorded log fails when the same RWX mprotect lands on a LOAD segment or the trampoline strays", () => {
  const text = recorded.layout.load[1];
  const hex = (n: number) => "0x" + n.toString(16);
  const onLoad = recorded.log.replace(
    /mprotect\(0x[0-9a-f]+, 536870912, /,
    `mprotect(${hex(text[0])}, 536870912, `,
  );
  assert.notEqual(onLoad, recorded.log);
  const a = audit(parseStrace(onLoad).calls, recorded.layout);
  assert.equal(a.violations.length, 1, a.violations.join("\n"));
  // The trampoline's first swap aimed at a LOAD segment it never owned.
  const notOurs = recorded.layout.load.find((r) =>
    !overlaps(recorded.layout.regions, r)
  )!;
  const stray = recorded.log.replace(
    /(MREMAP_FIXED, )0x[0-9a-f]+/,
    `$1${hex(notOurs[0])}`,
  );
  assert.notEqual(stray, recorded.log);
  const b = audit(parseStrace(stray).calls, recorded.layout);
  assert.equal(b.violations.length, 1, b.violations.join("\n"));
  assert.match(b.violations[0], /^MREMAP_FIXED outside owned ranges/);
});

// --- the real thing --------------------------------------------------------

const straceProblem = (() => {
  const r = spawnSync("strace", ["-f", "-k", "-e", "trace=none", "true"]);
  return r.status === 0
    ? false
    : `strace cannot run or attach here (${
      r.error?.message ?? String(r.stderr).trim()
    }): install the Debian package strace; in a container it needs ptrace`;
})();
if (straceProblem) console.log(`audit_test: skipped: ${straceProblem}`);

// Copies and logs are named after this process; a run that was killed left
// them behind: remove those of processes that are gone.
const SHARE_PREFIX = "/dev/shm/page-primer-audit-";
const LOG_PREFIX = "/tmp/page-primer-audit-";
removeLeftovers(SHARE_PREFIX);
removeLeftovers(LOG_PREFIX);

/** The layout the audit needs, from the outcomes of the child's remaps. */
function layoutOf(
  rep: RemapChildReport,
  exe: string,
): Layout & { remapped: number } {
  const load = new Map<number, Range>();
  const alias = new Map<number, Range>();
  const regions: Range[] = [];
  for (const r of rep.results) {
    const o: PrimeOutcomeData | undefined = r.remap;
    if (!o) continue;
    for (const s of o.segments.filter((s) => s.object === exe)) {
      (s.origin === "load" ? load : alias).set(s.start, [s.start, s.end]);
    }
    for (const g of o.remap?.regions ?? []) {
      if (g.status === "remapped") regions.push([g.start, g.end]);
    }
  }
  return {
    load: [...load.values()],
    alias: [...alias.values()],
    regions,
    remapped: regions.length,
  };
}

for (const rt of RUNTIMES) {
  test(
    `${rt}: under strace, page-primer never makes a W+X mapping nor touches a mapping it does not own, and nothing makes the executable W+X`,
    { skip: straceProblem },
    async () => {
      const log = `${LOG_PREFIX}${process.pid}-${rt}.log`;
      const shareDir = `${SHARE_PREFIX}${process.pid}-${rt}`;
      let pool: { restore(): void } | undefined;
      try {
        const steps: unknown[] = [
          { remap: { backend: "thp" } },
          "restore",
          { remap: { backend: "memfd" } },
          "restore",
          { remap: { share: { dir: shareDir } } },
          "restore",
        ];
        if (isRoot()) {
          const raised = raiseHugetlbPool(64);
          pool = raised;
          if (raised.got >= 64) {
            steps.push({ remap: { backend: "hugetlb" } }, "restore");
          } else {
            console.log(
              `audit: hugetlb path skipped: the pool grew by ${raised.got} of 64 pages`,
            );
          }
        } else {
          console.log(
            "audit: hugetlb path skipped: sizing the pool needs root",
          );
        }
        const child = await startChild(rt, steps, {
          script: "remap_child.ts",
          shellPrefix: `exec strace -f -k -e trace=${TRACED} -o ${log}`,
          // The trampoline from its memfd, whatever this environment says:
          // the calls are attributed by that name.
          env: { PAGE_PRIMER_TRAMPOLINE: "" },
        });
        let rep: RemapChildReport;
        try {
          rep = child.outcome as unknown as RemapChildReport;
        } finally {
          await child.finish();
        }
        const layout = layoutOf(rep, runtimePath(rt));
        rep.results.forEach((r, i) => {
          if (!r.remap) return;
          const regions = r.remap.remap?.regions ?? [];
          console.log(
            `${rt}: ${
              JSON.stringify(steps[i])
            }: ok ${r.remap.ok}, backend ${r.remap.remap?.backend}, ${
              regions.filter((g) => g.status === "remapped").length
            } of ${regions.length} region(s) remapped${
              r.remap.reason ? ` (${r.remap.reason})` : ""
            }`,
          );
        });
        assert.ok(
          layout.remapped > 0,
          "no region was remapped: the audit has nothing of page-primer's to judge",
        );
        assert.ok(layout.load.length > 0, "the outcome names no LOAD segment");
        const parsed = parseStrace(readFileSync(log, "utf8"));
        const result = audit(parsed.calls, layout);
        console.log(summary(rt, parsed, result, layout));
        // Every line of the log was understood: no call escaped the audit.
        assert.deepEqual(parsed.unparsed, []);
        assert.deepEqual(result.violations, []);
        // The attribution and the addresses work: every region remapped was
        // swapped by the trampoline, at an address the outcome names.
        for (const [s, e] of layout.regions) {
          assert.ok(
            result.oursLanded.some(([a, b]) => s <= a && b <= e),
            `no call of the trampoline landed in the region ${s.toString(16)}-${
              e.toString(16)
            }`,
          );
        }
      } finally {
        pool?.restore();
        rmSync(log, { force: true });
        rmSync(shareDir, { recursive: true, force: true });
      }
    },
  );
}
