// The build matrix (`npm run test:builds`): fetches older Deno and Bun
// builds from the npm registry and, in child processes of each build, runs
// remap -> work -> restore -> work, shared mode and mlock, checking from
// outside (smaps, /proc/<pid>/mem) that nothing crashed, no byte changed and
// the outcome's figures match the kernel's. Prints a markdown table; exits 1
// on any crash or mismatch. See tests/builds/README.md.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { ROOT } from "../helpers.ts";
import { ChildDied } from "./driver.ts";
import { type Build, CACHE, fetchBuild } from "./fetch.ts";
import { newTally, type Tally, Watched } from "./watch.ts";

/** A release line and the versions to try for it, best first. */
interface Line {
  runtime: "deno" | "bun";
  versions: string[];
  why: string;
}

/**
 * The builds. A later version of a line is tried only when an earlier one
 * cannot be fetched or cannot import the library.
 */
const LINES: Line[] = [
  {
    runtime: "deno",
    versions: ["2.0.6", "2.0.4", "2.0.0"],
    why: "PT_GNU_RELRO 2.41 MiB in LOAD 3",
  },
  {
    runtime: "deno",
    versions: ["2.2.15", "2.2.12"],
    why: "PT_GNU_RELRO 2.27 MiB in LOAD 3",
  },
  {
    runtime: "deno",
    versions: ["2.5.7", "2.5.6"],
    why: "PT_GNU_RELRO 2.49 MiB in LOAD 3",
  },
  {
    runtime: "bun",
    versions: ["1.2.23", "1.2.22"],
    why: "PR_SET_THP_DISABLE; non-PIE",
  },
  {
    runtime: "bun",
    versions: ["1.3.14", "1.3.0"],
    why: "PR_SET_THP_DISABLE; text LOAD starts mid-page, 16 KiB alignment",
  },
  {
    runtime: "bun",
    versions: ["1.1.45"],
    why:
      "bun:ffi crashes reading native memory: page-primer must refuse it with a reason, and the program run on",
  },
];

type Mode = "restore" | "share" | "mlock" | "remap+mlock";
const MODES: Mode[] = ["restore", "share", "mlock", "remap+mlock"];

/**
 * Options of the restore runs, taken in turn: the default (the hugetlb pool
 * when it has room, else THP), THP forced, and a 4 KiB anonymous copy.
 */
const RESTORE_OPTIONS = [{}, { backend: "thp" }, { pageSize: "4k" }];

const { values: opt } = parseArgs({
  options: {
    runs: { type: "string", default: "10" },
    "mlock-runs": { type: "string", default: "3" },
    "relro-draws": { type: "string", default: "3" },
    "max-runs": { type: "string", default: "40" },
    only: { type: "string" },
    rev: { type: "string" },
    lib: { type: "string" },
  },
});
const RUNS = Number(opt.runs);
const MLOCK_RUNS = Number(opt["mlock-runs"]);
const RELRO_DRAWS = Number(opt["relro-draws"]);
const MAX_RUNS = Math.max(RUNS, Number(opt["max-runs"]));
const MIN_BUILDS = { deno: 3, bun: 2 };

function git(args: string[]): string {
  const r = spawnSync("git", args, { cwd: ROOT, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

/** The mod.ts to test, and a description of which code that is. */
function library(): { path: string; what: string } {
  if (opt.lib) return { path: `${opt.lib}/mod.ts`, what: opt.lib };
  if (opt.rev) {
    const hash = git(["rev-parse", opt.rev]);
    const dir = `${CACHE}/lib-${hash.slice(0, 12)}`;
    if (!existsSync(`${dir}/mod.ts`)) {
      mkdirSync(dir, { recursive: true });
      const r = spawnSync(
        "sh",
        ["-c", `git archive ${hash} mod.ts src deno.json | tar -x -C '${dir}'`],
        { cwd: ROOT, encoding: "utf8" },
      );
      if (r.status !== 0) throw new Error(`git archive failed: ${r.stderr}`);
    }
    return { path: `${dir}/mod.ts`, what: `commit ${hash.slice(0, 12)}` };
  }
  const head = git(["rev-parse", "--short=12", "HEAD"]);
  const dirty = git(["status", "--porcelain", "--", "mod.ts", "src"]) !== "";
  return {
    path: `${ROOT}mod.ts`,
    what: `working tree at ${head}${dirty ? " + uncommitted changes" : ""}`,
  };
}

const say = (s: string) => console.error(s);
const mib = (n: number) => (n / 1048576).toFixed(1);

/** Runs `steps` on each child in turn; a child that died skips the rest. */
async function drive(children: Watched[], steps: string[], t: Tally) {
  for (const step of steps) {
    for (const c of children) await c.step(step, t);
  }
  for (const c of children) await c.exit(t);
}

/** One run of a mode: one child (two sharing a directory in share mode). */
async function runOnce(
  build: Build,
  lib: string,
  mode: Mode,
  n: number,
  t: Tally,
): Promise<void> {
  const options = RESTORE_OPTIONS[(n - 1) % RESTORE_OPTIONS.length];
  const label = `${build.runtime} ${build.version} ${mode} #${n}` +
    (mode === "restore" ? ` ${JSON.stringify(options)}` : "");
  const children: Watched[] = [];
  let dir: string | undefined;
  try {
    if (mode === "mlock") {
      children.push(await Watched.start(build, lib, t, label));
      await drive(children, ["mlock", "work"], t);
      return;
    }
    let remap = `remap ${JSON.stringify({ ...options, perfMap: false })}`;
    if (mode === "remap+mlock") remap = `remapmlock {"perfMap":false}`;
    const count = mode === "share" ? 2 : 1;
    if (mode === "share") {
      dir = mkdtempSync("/dev/shm/page-primer-builds-");
      remap = `remap ${JSON.stringify({ perfMap: false, share: { dir } })}`;
    }
    for (let i = 0; i < count; i++) {
      const name = count > 1 ? `${label}${"ab"[i]}` : label;
      children.push(await Watched.start(build, lib, t, name));
    }
    await drive(children, [remap, "work", "restore", "work"], t);
  } catch (e) {
    if (e instanceof ChildDied) t.crashes.push(`${label}: ${e.message}`);
    else t.mismatches.push(`${label}: ${String(e)}`);
  } finally {
    for (const c of children) c.d.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs of a mode: RUNS, and more until RELRO_DRAWS draws put a 2 MiB page in RELRO. */
async function runMode(
  build: Build,
  lib: string,
  mode: Mode,
  hasBigRelro: boolean,
): Promise<{ tally: Tally; runs: number }> {
  const t = newTally();
  const repeated = mode === "restore" || mode === "share";
  const want = repeated ? RUNS : MLOCK_RUNS;
  let runs = 0;
  while (
    runs < want ||
    (repeated && hasBigRelro && t.relroDraws < RELRO_DRAWS && runs < MAX_RUNS)
  ) {
    runs++;
    const before = { c: t.crashes.length, m: t.mismatches.length };
    await runOnce(build, lib, mode, runs, t);
    const bad = t.crashes.slice(before.c).concat(
      t.mismatches.slice(before.m),
    );
    const cov = t.coverage.length
      ? `text ${t.coverage.at(-1)!.toFixed(1)}%`
      : "";
    say(
      `  ${build.runtime} ${build.version} ${mode} #${runs}: ` +
        (bad.length ? `FAILED\n    ${bad.join("\n    ")}` : `ok ${cov}`),
    );
  }
  return { tally: t, runs };
}

/** A row of the table. */
interface Row {
  build: string;
  mode: string;
  runs: number;
  tally?: Tally;
  note?: string;
}

function range(xs: number[], digits = 1, unit = "%"): string {
  if (xs.length === 0) return "-";
  const lo = Math.min(...xs).toFixed(digits);
  const hi = Math.max(...xs).toFixed(digits);
  return (lo === hi ? lo : `${lo}–${hi}`) + unit;
}

function notesOf(mode: string, t: Tally, bigRelro: boolean): string {
  const n: string[] = [];
  n.push(`outcome ok ${t.outcomesOk}/${t.outcomes}`);
  if (bigRelro && mode !== "mlock") {
    n.push(
      `2 MiB page in RELRO ${t.relroDraws}/${t.processes}, ` +
        `RELRO moved ${t.relroPrimed}`,
    );
  }
  const backends = Object.entries(t.backends).map(([b, k]) => `${b} ${k}`);
  if (backends.length) n.push(`backend ${backends.join(", ")}`);
  if (t.thpOff) n.push(`THP disabled ${t.thpOff}/${t.processes}`);
  if (mode === "share") {
    n.push(`copies created ${t.created}, reused ${t.reused}`);
  }
  if (t.locked.length) {
    n.push(`locked ${range(t.locked.map((b) => b / 1048576), 1, " MiB")}`);
  }
  if (t.restoreFailed) n.push(`restore failed ${t.restoreFailed} region(s)`);
  if (t.mismatches.length) n.push(`${t.mismatches.length} mismatch(es)`);
  return n.join("; ");
}

const WHAT: Record<Mode, string> = {
  restore: "remap (default, thp, 4k in turn) → work → restore → work",
  share: "remap({share:{dir}}), 2 processes per dir → work → restore → work",
  mlock: "mlock → work",
  "remap+mlock": "remap + mlock → work → restore → work",
};

function table(rows: Row[]): string {
  const out = [
    "| build | what ran | runs (processes) | crashes | bytes checked | text on 2 MiB pages | notes |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const r of rows) {
    const t = r.tally;
    if (!t) {
      out.push(`| ${r.build} | ${r.mode} | - | - | - | - | ${r.note} |`);
      continue;
    }
    out.push(
      `| ${r.build} | ${WHAT[r.mode as Mode]} | ${r.runs} (${t.processes}) | ` +
        `${t.crashes.length} | ${mib(t.bytes)} MiB | ` +
        `${range(t.coverage)} | ${r.note} |`,
    );
  }
  return out.join("\n");
}

/** Starts a child and lets it work once: can this build run the library? */
async function probe(build: Build, lib: string): Promise<string | undefined> {
  const t = newTally();
  try {
    const w = await Watched.start(build, lib, t, "probe");
    try {
      w.control();
    } catch (e) {
      w.d.kill();
      return `crashed: harness broken: ${e}`;
    }
    await w.exit(t);
  } catch (e) {
    return e instanceof ChildDied && e.how.startsWith("exit")
      ? e.message.replace(/\s+/g, " ").slice(0, 300)
      : `crashed: ${String(e).slice(0, 300)}`;
  }
  const bad = t.crashes.concat(t.mismatches);
  return bad.length ? bad.join("; ").slice(0, 300) : undefined;
}

async function main(): Promise<number> {
  const started = Date.now();
  const lib = library();
  say(`build matrix: library = ${lib.what}`);
  say(`builds cached in ${CACHE}`);
  const rows: Row[] = [];
  const usable = { deno: 0, bun: 0 };
  let failed = false;
  const lines = LINES.filter((l) => !opt.only || opt.only.includes(l.runtime));
  for (const line of lines) {
    let done = false;
    for (const version of line.versions) {
      const name = `${line.runtime} ${version}`;
      let build: Build;
      try {
        build = fetchBuild(line.runtime, version);
      } catch (e) {
        rows.push({
          build: name,
          mode: "-",
          runs: 0,
          note: `not fetched: ${e}`,
        });
        say(`${name}: not fetched: ${e}`);
        continue;
      }
      say(`${name}: ${build.cached ? "cached" : "fetched"} (${line.why})`);
      const why = await probe(build, lib.path);
      if (why) {
        rows.push({
          build: name,
          mode: "-",
          runs: 1,
          note: `cannot run the library: ${why}`,
        });
        say(`${name}: cannot run the library: ${why}`);
        if (why.startsWith("crashed")) failed = true;
        continue;
      }
      const bigRelro = line.why.includes("RELRO");
      for (const mode of MODES) {
        const t0 = Date.now();
        const { tally, runs } = await runMode(build, lib.path, mode, bigRelro);
        const note = notesOf(mode, tally, bigRelro);
        rows.push({ build: name, mode, runs, tally, note });
        if (tally.crashes.length || tally.mismatches.length) failed = true;
        say(
          `${name} ${mode}: ${runs} runs, ${tally.crashes.length} crashes, ` +
            `${tally.mismatches.length} mismatches, ` +
            `${((Date.now() - t0) / 1000).toFixed(0)} s; ${note}`,
        );
      }
      usable[line.runtime]++;
      done = true;
      break;
    }
    if (!done) {
      say(`no usable build of the ${line.runtime} line ${line.versions[0]}`);
    }
  }
  for (const rt of ["deno", "bun"] as const) {
    if (!opt.only && usable[rt] < MIN_BUILDS[rt]) {
      say(`only ${usable[rt]} ${rt} build(s) ran; ${MIN_BUILDS[rt]} needed`);
      failed = true;
    }
  }
  const secs = ((Date.now() - started) / 1000).toFixed(0);
  console.log(
    `Build matrix: ${lib.what}, ${
      new Date().toISOString().slice(0, 10)
    }, ${secs} s\n`,
  );
  console.log(table(rows));
  for (const r of rows) {
    for (
      const s of [...(r.tally?.crashes ?? []), ...(r.tally?.mismatches ?? [])]
    ) {
      console.log(`\n- ${s}`);
    }
  }
  say(failed ? "build matrix: FAILED" : "build matrix: passed");
  return failed ? 1 : 0;
}

process.exit(await main());
