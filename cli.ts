/**
 * page-primer's command line:
 *
 * - `doctor`: what this machine and runtime allow, and the 2 MiB coverage
 *   each alignment strategy would reach;
 * - `inspect`: per ELF object and segment of any process, what is
 *   resident, locked and on 2 MiB pages, and by which backing;
 * - `footprint`: the hot-code footprint of a process (distinct 4 KiB pages
 *   of code touched per window) against the CPU's instruction TLB;
 * - `bench`: the quick benchmark pass of the repository's `bench/`.
 *
 * ```sh
 * deno run --allow-ffi cli.ts doctor
 * bun cli.ts inspect --pid 1234
 * bunx page-primer doctor          # from the npm package
 * deno run --allow-ffi jsr:@x/page-primer/cli doctor
 * ```
 *
 * Deno needs `--allow-ffi` and nothing else (`bench` also `--allow-read
 * --allow-run`, to find and start `bench/quick.sh`); Bun needs no flag.
 *
 * Exit codes: 0 ok, 1 the thing checked is not as wanted or the command
 * failed, 2 bad usage.
 *
 * @module
 */

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { doctor, formatDoctor } from "./src/tools/doctor.ts";
import { ffiAvailability } from "./src/sys/ffi.ts";
import { formatFootprint, measureFootprint } from "./src/tools/footprint.ts";
import {
  formatInspect,
  InspectError,
  inspectProcess,
} from "./src/tools/inspect.ts";
import { libc } from "./src/sys/libc.ts";

/**
 * Exit status: done, and as wanted.
 *
 * @example
 * ```ts
 * import { EXIT_OK, main } from "./cli.ts";
 * import assert from "node:assert/strict";
 * const io = { out: () => {}, err: () => {}, outTty: false, errTty: false };
 * assert.equal(await main(["--help"], io), EXIT_OK);
 * ```
 */
export const EXIT_OK = 0;
/**
 * Exit status: the thing checked is not as wanted, or the command failed.
 *
 * @example
 * ```ts
 * import { EXIT_FAILED, main } from "./cli.ts";
 * import assert from "node:assert/strict";
 * const io = { out: () => {}, err: () => {}, outTty: false, errTty: false };
 * // No process has pid 2^22 + 1 (above the kernel's pid_max limit).
 * assert.equal(await main(["inspect", "--pid", "4194305"], io), EXIT_FAILED);
 * ```
 */
export const EXIT_FAILED = 1;
/**
 * Exit status: bad usage (unknown command or option, bad value).
 *
 * @example
 * ```ts
 * import { EXIT_USAGE, main } from "./cli.ts";
 * import assert from "node:assert/strict";
 * const io = { out: () => {}, err: () => {}, outTty: false, errTty: false };
 * assert.equal(await main(["doctor", "--bogus"], io), EXIT_USAGE);
 * ```
 */
export const EXIT_USAGE = 2;

const RUN = [
  "deno run --allow-ffi cli.ts",
  "bun cli.ts",
];

const EXIT_CODES = `Exit codes:
  0  ok
  1  the thing checked is not as wanted, or the command failed
  2  bad usage`;

const HELP: Record<string, string> = {
  "": `page-primer: what this machine allows, and what a process's code runs on.

Usage:
  ${RUN[0]} <command> [options]
  ${RUN[1]} <command> [options]

Commands:
  doctor    kernel, THP, hugetlb pool, memlock limit, map count; the runtime's
            LOAD layout and the 2 MiB coverage each remap strategy would reach
  inspect   per ELF object and segment of a process: size, resident, locked,
            on 2 MiB pages and by which backing; page-primer's copies
  footprint distinct 4 KiB pages of code a process touches per window, by
            object, against the CPU's instruction TLB: will 2 MiB pages pay?
  bench     the quick benchmark pass (bench/quick.sh of the repository)

Permissions: Deno needs --allow-ffi and nothing else (bench also
--allow-read --allow-run, to find and start bench/quick.sh); Bun needs none.

Options:
  -h, --help  this help; "<command> --help" for a command's
  --debug     on a failure, print the stack trace too (any command)

${EXIT_CODES}`,
  doctor: `page-primer doctor: what this machine and this runtime allow.

Usage:
  ${RUN[0]} doctor [--json] [--footprint-pages N] [--no-calibrate]
  ${RUN[1]} doctor [--json] [--footprint-pages N] [--no-calibrate]

Reads the kernel version, THP enabled/defrag/shmem_enabled, PR_GET_THP_DISABLE,
the 2 MiB hugetlb pool and hugetlbfs mounts, RLIMIT_MEMLOCK against what
mlock(true) needs, CAP_IPC_LOCK, vm.max_map_count, the runtime executable's
LOAD segments, and predicts from this process's smaps the share of text and
read-only data that remap({ align }) puts on 2 MiB pages, for "aggressive" and
"conservative", as remap plans it. Each thing that is off comes with the
command that enables it. Deno needs --allow-ffi.

Then, in about 1.5 s, it calibrates: the same small functions, one per 4 KiB
page spread over 1, 4 and 16 MiB (and over the footprint given), mapped once
on 2 MiB and once on 4 KiB pages in this process and called in a fixed random
order, with nothing else ("call") and with one system call per call
("syscall"), in paired, interleaved repetitions timed in thread CPU time. It
says whether 2 MiB code pages pay on this machine: "pays", "loses", "no
difference measured", or "cannot measure" and why (THP disabled...).

Options:
  --json               print one JSON object instead of text
  --footprint-pages N  the workload's hot-code footprint in 4 KiB pages (the
                       steady total of "footprint"): the calibration's verdict
                       is given for it
  --no-calibrate       skip the calibration
  -h, --help           this help

Exit codes:
  0  nothing keeps remap or mlock from working (advice may still be listed)
  1  something does (a "blocker" finding), or the facts could not be read
  2  bad usage`,
  inspect: `page-primer inspect: what a process's ELF objects run on.

Usage:
  ${RUN[0]} inspect [--pid N] [--json] [--all] [--watch [--interval MS]]
  ${RUN[1]} inspect [--pid N] [--json] [--all] [--watch [--interval MS]]

For the main executable and each shared library mapped from a file, and for
each of its LOAD segments: size, resident (Rss), locked (Rss of VMAs flagged
"lo"), bytes on 2 MiB pages by backing (AnonHugePages, ShmemPmdMapped,
FilePmdMapped, hugetlb), what maps it (file, anon, memfd...) and page-primer's
copy when there is one; then totals. VMAs belong to an object by address: a
remapped segment (anonymous or memfd) and Node's --use-largepages text are
counted in the executable's range. Reading another process needs the same
user id (and ptrace access) or root.

Options:
  --pid N         the process (default: this one)
  --json          print one JSON object (with --watch: one per line)
  --all           list every object (default: the main executable and objects
                  with huge, locked or remapped pages; --json always has all)
  --watch         print again every interval until Ctrl-C (the screen is
                  cleared on a terminal); stops when the process exits
  --interval MS   milliseconds between refreshes (default 2000, minimum 100)
  -h, --help      this help

Exit codes:
  0  the process was read (with --watch: stopped by Ctrl-C)
  1  it could not be read (no such process, permission denied) or it exited
  2  bad usage`,
  footprint:
    `page-primer footprint: how much code a process runs, against the iTLB.

Usage:
  ${RUN[0]} footprint [--pid N] [--seconds S] [--windows K] [--json]
  ${RUN[1]} footprint [--pid N] [--seconds S] [--windows K] [--json]

For K windows of S seconds: writes 1 to /proc/<pid>/clear_refs, waits, then
sums "Referenced:" of /proc/<pid>/smaps over the executable VMAs: distinct
4 KiB pages of code touched, per object: the executable's text (its LOAD
range, also when remapped to an anonymous copy), V8's builtins mapped again
from it, each shared library, and JIT code (anonymous executable memory).
The first window shows warm-up; the median of the others is the steady
state. Run it while the process does its usual work (e.g. under load).

The instruction TLB's entries for 4 KiB and 2 MiB pages come from CPUID
(x86_64: AMD leaves 0x80000005/0x80000006, Intel leaf 0x18). Verdict:
"likely to gain" when the steady footprint exceeds 2x the largest level's
4 KiB entries and the executable's own pages exceed them once; "unlikely"
otherwise; "unknown" when the TLB cannot be read.

The only disturbance: the process's referenced bits are cleared (page
reclaim sees its pages as not recently used) and its TLB is flushed, once
per window. A page touched on a 2 MiB mapping counts 512: measure before
remapping. Needs the same user id as the process, or root. Deno needs
--allow-ffi, and nothing else.

Options:
  --pid N        the process (default: this one, which is idle)
  --seconds S    seconds per window (default 3; decimals allowed)
  --windows K    number of windows (default 3)
  --json         print one JSON object
  -h, --help     this help

Exit codes:
  0  measured
  1  the process could not be read or its referenced bits not cleared
  2  bad usage`,
  bench: `page-primer bench: the quick benchmark pass.

Usage:
  ${RUN[0]} bench [-- args for bench/ab/run.ts]
  ${RUN[1]} bench [-- args for bench/ab/run.ts]

Runs "sh bench/quick.sh" of the repository next to cli.ts (about 15 s per
runtime; writes bench/results/quick/). It needs a clone of the repository
with deno and bun installed by "npm run bench" or scripts/setup.sh; from a
package without bench/ it says how to get it. Deno needs --allow-read
--allow-run besides --allow-ffi.

Options:
  -h, --help  this help

Exit codes:
  0  the benchmark pass ran
  1  bench/ is missing, or bench/quick.sh failed (its exit code is passed on)
  2  bad usage`,
};

/**
 * Where output goes; tests pass their own.
 *
 * @example
 * ```ts
 * import { type Io, main } from "./cli.ts";
 * import assert from "node:assert/strict";
 * let text = "";
 * const io: Io = { out: (t) => (text += t), err: () => {}, outTty: false, errTty: false };
 * await main(["help", "inspect"], io);
 * assert.match(text, /^page-primer inspect:/);
 * ```
 */
export interface Io {
  /** Standard output. */
  out: (text: string) => void;
  /** Standard error. */
  err: (text: string) => void;
  /** Whether standard output is a terminal. */
  outTty: boolean;
  /** Whether standard error is a terminal. */
  errTty: boolean;
}

/** True for the error of a write to a pipe whose reader is gone (`| head`). */
function isEpipe(e: unknown): boolean {
  return (e as { code?: unknown } | null)?.code === "EPIPE";
}

/**
 * Writes to a standard stream. When the reader went away (`cli.ts inspect
 * --watch | head`), the command has nothing left to do: it stops at once
 * with exit code 0 and no message, as `yes | head` does.
 */
function writeTo(stream: NodeJS.WriteStream, text: string): void {
  try {
    stream.write(text);
  } catch (e) {
    if (isEpipe(e)) process.exit(EXIT_OK);
    throw e;
  }
}

function onStreamError(e: Error): void {
  if (isEpipe(e)) process.exit(EXIT_OK);
  process.exit(EXIT_FAILED);
}

const processIo = (): Io => {
  // A write to a closed pipe can also fail later, as an 'error' event.
  for (const s of [process.stdout, process.stderr]) {
    if (!s.listeners("error").includes(onStreamError)) {
      s.on("error", onStreamError);
    }
  }
  return {
    out: (t) => writeTo(process.stdout, t),
    err: (t) => writeTo(process.stderr, t),
    outTty: process.stdout.isTTY === true,
    errTty: process.stderr.isTTY === true,
  };
};

class UsageError extends Error {}

interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

function parse(
  command: string,
  args: string[],
  options: Record<string, { type: "boolean" | "string"; short?: string }>,
  positionals = false,
): Parsed {
  try {
    const r = parseArgs({
      args,
      options: { help: { type: "boolean", short: "h" }, ...options },
      allowPositionals: positionals,
      strict: true,
    });
    return {
      values: r.values as Parsed["values"],
      positionals: r.positionals,
    };
  } catch (e) {
    throw new UsageError(
      `${command}: ${
        e instanceof Error ? e.message : e
      }; see "${command} --help"`,
    );
  }
}

function progressTo(io: Io): (message: string) => void {
  if (!io.errTty) return () => {};
  return (m) => io.err(`\r\x1b[2K${m ? `page-primer: ${m}` : ""}`);
}

function runDoctor(args: string[], io: Io): number {
  const { values } = parse("doctor", args, {
    json: { type: "boolean" },
    "footprint-pages": { type: "string" },
    "no-calibrate": { type: "boolean" },
  });
  if (values.help) {
    io.out(HELP.doctor + "\n");
    return EXIT_OK;
  }
  const footprint = values["footprint-pages"];
  if (footprint !== undefined && values["no-calibrate"]) {
    throw new UsageError(
      `doctor: --footprint-pages is for the calibration, which --no-calibrate skips`,
    );
  }
  const footprintPages = typeof footprint === "string"
    ? positiveInt("--footprint-pages", footprint, 1, "doctor")
    : undefined;
  const why = ffiAvailability();
  if (why) {
    io.err(`page-primer doctor: ${why}\n`);
    return EXIT_FAILED;
  }
  const progress = progressTo(io);
  progress(
    values["no-calibrate"]
      ? "reading /proc/self/smaps and /sys/kernel/mm"
      : "reading /proc/self/smaps and /sys/kernel/mm; calibrating 2 MiB against 4 KiB code pages (about 1.5 s)",
  );
  const report = doctor(libc(), {
    calibrate: values["no-calibrate"] ? false : { footprintPages },
  });
  progress("");
  io.out(
    (values.json ? JSON.stringify(report, null, 2) : formatDoctor(report)) +
      "\n",
  );
  return report.ok ? EXIT_OK : EXIT_FAILED;
}

function positiveInt(
  name: string,
  text: string,
  min = 1,
  command = "inspect",
): number {
  if (!/^\d+$/.test(text) || Number(text) < min) {
    throw new UsageError(
      `${command}: ${name} must be an integer >= ${min}; got "${text}"`,
    );
  }
  return Number(text);
}

async function runInspect(args: string[], io: Io): Promise<number> {
  const { values } = parse("inspect", args, {
    pid: { type: "string" },
    json: { type: "boolean" },
    all: { type: "boolean" },
    watch: { type: "boolean" },
    interval: { type: "string" },
  });
  if (values.help) {
    io.out(HELP.inspect + "\n");
    return EXIT_OK;
  }
  if (values.interval !== undefined && !values.watch) {
    throw new UsageError(
      'inspect: --interval needs --watch; see "inspect --help"',
    );
  }
  const pidArg = typeof values.pid === "string"
    ? positiveInt("--pid", values.pid)
    : undefined;
  const interval = typeof values.interval === "string"
    ? positiveInt("--interval", values.interval, 100)
    : 2000;
  const why = ffiAvailability();
  if (why) {
    io.err(`page-primer inspect: ${why}\n`);
    return EXIT_FAILED;
  }
  const c = libc();
  const pid = pidArg ?? c.getpid();
  const cache = new Map();
  const progress = progressTo(io);
  const once = (): number => {
    let report;
    try {
      report = inspectProcess(c, pid, { onProgress: progress, cache });
    } catch (e) {
      progress("");
      if (!(e instanceof InspectError)) throw e;
      io.err(`page-primer inspect: ${e.message}\n`);
      return EXIT_FAILED;
    }
    if (values.json) {
      io.out(JSON.stringify(report, null, values.watch ? 0 : 2) + "\n");
    } else {
      const text = formatInspect(report, { all: values.all === true });
      if (values.watch && io.outTty) {
        io.out(
          `\x1b[H\x1b[2J${new Date().toISOString()}  (Ctrl-C stops)\n${text}\n`,
        );
      } else if (values.watch) {
        io.out(`${new Date().toISOString()}\n${text}\n\n`);
      } else {
        io.out(text + "\n");
      }
    }
    return EXIT_OK;
  };
  const first = once();
  if (!values.watch || first !== EXIT_OK) return first;
  return await new Promise<number>((resolve) => {
    const timer = setInterval(() => {
      const code = once();
      if (code !== EXIT_OK) stop(code);
    }, interval);
    const onSigint = () => stop(EXIT_OK);
    const stop = (code: number) => {
      clearInterval(timer);
      process.off("SIGINT", onSigint);
      resolve(code);
    };
    process.on("SIGINT", onSigint);
  });
}

async function runFootprint(args: string[], io: Io): Promise<number> {
  const { values } = parse("footprint", args, {
    pid: { type: "string" },
    seconds: { type: "string" },
    windows: { type: "string" },
    json: { type: "boolean" },
  });
  if (values.help) {
    io.out(HELP.footprint + "\n");
    return EXIT_OK;
  }
  const pidArg = typeof values.pid === "string"
    ? positiveInt("--pid", values.pid, 1, "footprint")
    : undefined;
  const windows = typeof values.windows === "string"
    ? positiveInt("--windows", values.windows, 1, "footprint")
    : undefined;
  let seconds: number | undefined;
  if (typeof values.seconds === "string") {
    seconds = Number(values.seconds);
    if (!/^\d+(\.\d+)?$/.test(values.seconds) || !(seconds > 0)) {
      throw new UsageError(
        `footprint: --seconds must be a number > 0; got "${values.seconds}"`,
      );
    }
  }
  const why = ffiAvailability();
  if (why) {
    io.err(`page-primer footprint: ${why}\n`);
    return EXIT_FAILED;
  }
  const c = libc();
  const pid = pidArg ?? c.getpid();
  const progress = progressTo(io);
  let report;
  try {
    report = await measureFootprint(c, pid, {
      seconds,
      windows,
      onProgress: progress,
    });
  } catch (e) {
    progress("");
    io.err(
      `page-primer footprint: ${e instanceof Error ? e.message : e}\n`,
    );
    return EXIT_FAILED;
  }
  io.out(
    (values.json ? JSON.stringify(report, null, 2) : formatFootprint(report)) +
      "\n",
  );
  return EXIT_OK;
}

async function runBench(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse("bench", args, {}, true);
  if (values.help) {
    io.out(HELP.bench + "\n");
    return EXIT_OK;
  }
  const here = new URL(".", import.meta.url);
  const script = here.protocol === "file:"
    ? fileURLToPath(new URL("bench/quick.sh", here))
    : undefined;
  if (script === undefined || !existsSync(script)) {
    io.err(
      `page-primer bench: no bench/ directory next to cli.ts (${here.href}): the benchmarks are not part of the package. Clone the page-primer repository and run "npm run bench" in it (it installs deno and bun from npm, then runs bench/quick.sh)\n`,
    );
    return EXIT_FAILED;
  }
  const root = fileURLToPath(here);
  return await new Promise<number>((resolve) => {
    let child;
    try {
      child = spawn("sh", [script, ...positionals], {
        cwd: root,
        stdio: "inherit",
      });
    } catch (e) {
      io.err(
        `page-primer bench: cannot start sh ${script}: ${
          e instanceof Error ? e.message : e
        } (deno: run cli.ts with --allow-read --allow-run)\n`,
      );
      resolve(EXIT_FAILED);
      return;
    }
    child.on("error", (e) => {
      io.err(`page-primer bench: cannot start sh ${script}: ${e.message}\n`);
      resolve(EXIT_FAILED);
    });
    child.on("exit", (code, signal) => {
      if (code === null) {
        io.err(`page-primer bench: bench/quick.sh killed by ${signal}\n`);
      }
      resolve(code ?? EXIT_FAILED);
    });
  });
}

const COMMANDS: Record<
  string,
  (args: string[], io: Io) => number | Promise<number>
> = {
  doctor: runDoctor,
  inspect: runInspect,
  footprint: runFootprint,
  bench: runBench,
};

/**
 * Runs the command line `args` (without the runtime and script) and
 * returns the exit status.
 *
 * @example
 * ```ts no-eval
 * import { main } from "./cli.ts";
 * const code = await main(["doctor", "--json"]);
 * console.log(code); // 0 when nothing blocks remap or mlock
 * ```
 */
export async function main(
  args: string[],
  io: Io = processIo(),
): Promise<number> {
  const debug = args.includes("--debug");
  const [command, ...rest] = args.filter((a) => a !== "--debug");
  try {
    if (command === undefined) {
      io.err(HELP[""] + "\n");
      return EXIT_USAGE;
    }
    if (command === "-h" || command === "--help" || command === "help") {
      const topic = command === "help" ? rest[0] ?? "" : "";
      if (!(topic in HELP)) {
        throw new UsageError(
          `unknown command "${topic}"; commands: doctor, inspect, footprint, bench`,
        );
      }
      io.out(HELP[topic] + "\n");
      return EXIT_OK;
    }
    const run = COMMANDS[command];
    if (run === undefined) {
      throw new UsageError(
        `unknown command "${command}"; commands: doctor, inspect, footprint, bench (see --help)`,
      );
    }
    return await run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      const own = /^(doctor|inspect|footprint|bench): /.test(e.message);
      io.err(`page-primer${own ? " " : ": "}${e.message}\n`);
      return EXIT_USAGE;
    }
    io.err(
      `page-primer ${command}: failed: ${
        e instanceof Error ? (debug && e.stack) || e.message : e
      }${debug ? "" : " (--debug prints the stack trace)"}\n`,
    );
    return EXIT_FAILED;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
