// Shared helpers for the tests: where the runtimes are, and a child process
// that primes itself and stays alive while the test reads its
// /proc/<pid>/smaps from outside.
import { type ChildProcess, spawn } from "node:child_process";
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { parseSmaps, type SmapsVma } from "../src/sys/maps.ts";
import type { PrimeOutcomeData } from "../src/outcome.ts";

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));

/** Absolute path of a runtime binary installed from npm. */
export function runtimePath(name: "deno" | "bun"): string {
  const p = name === "deno"
    ? `${ROOT}node_modules/deno/deno`
    : `${ROOT}node_modules/bun/bin/bun.exe`;
  if (!existsSync(p)) {
    throw new Error(
      `${p} is missing: run \`npm test\` (it installs deno and bun)`,
    );
  }
  return realpathSync(p);
}

/** Both runtimes, for tests that run on each. */
export const RUNTIMES: readonly ("deno" | "bun")[] = ["deno", "bun"];

/**
 * Quotes argv into one shell command line. Children are always started
 * through `/bin/sh -c <line>`: Deno's node:child_process rewrites the
 * arguments of any spawn whose argv holds its own executable followed by
 * `run` (it inserts `-A`), which would defeat the permission tests.
 */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
}

/** The executable `name` on PATH, or `undefined`. */
export function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir === "") continue;
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** True when this process runs as root. */
export function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/** Command line that runs `script` under a runtime with the least permissions. */
export function runtimeCommand(
  runtime: "deno" | "bun",
  script: string,
  args: string[] = [],
): string[] {
  return runtime === "deno"
    ? [runtimePath("deno"), "run", "--allow-ffi", script, ...args]
    : [runtimePath("bun"), script, ...args];
}

/** What tests/fixtures/remap_child.ts prints after its steps. */
export interface RemapChildReport {
  pid: number;
  results: {
    remap?: PrimeOutcomeData;
    restore?: { restored: number; failed: unknown[] };
    verify?: { bytes: number; mismatches: number };
    occupyGap?: { at: number; textStart: number } | string;
  }[];
  marker?: number[];
}

/** A running child that primed itself. */
export interface Child {
  pid: number;
  outcome: PrimeOutcomeData & Record<string, unknown>;
  /** Its /proc/<pid>/smaps, parsed, read by this (parent) process. */
  smaps(): SmapsVma[];
  /** Writes a line to its stdin and resolves with the next stdout line starting with `prefix`. */
  ask(line: string, prefix: string): Promise<string>;
  /** Closes its stdin; resolves with its exit code and output once it exited and its output is read to the end. */
  finish(): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Perf maps of children that were started and not finished. */
const unfinished = new Set<{ path: string }>();
let exitHookSet = false;

/** At this process's exit, removes the perf maps of unfinished children. */
function removeUnfinishedAtExit(): void {
  if (exitHookSet) return;
  exitHookSet = true;
  const removeAll = () => {
    for (const m of unfinished) rmSync(m.path, { force: true });
    unfinished.clear();
  };
  // `bun test` emits the process's exit; `deno test` only the unload event.
  process.on("exit", removeAll);
  globalThis.addEventListener?.("unload", removeAll);
}

/**
 * How long a child's stdout and stderr may stay open after it exited (held
 * by a process it started) before {@linkcode closed} stops reading them.
 */
const OUTPUT_GRACE_MS = 10_000;

/**
 * Resolves with a child's exit code and signal once it has exited and its
 * stdout and stderr are read to their end (its "close" event). Its "exit"
 * event may come before the last chunks of output are delivered (Deno's
 * node:child_process does so), and output read then can be cut short. If
 * a process it started still holds the pipes {@linkcode OUTPUT_GRACE_MS}
 * after it exited, they are closed and `late` says so (else it is "").
 *
 * @example
 * ```ts no-eval
 * import { spawn } from "node:child_process";
 * import { closed } from "./helpers.ts";
 * const child = spawn("echo", ["hi"], { stdio: ["ignore", "pipe", "pipe"] });
 * let out = "";
 * child.stdout!.on("data", (d) => (out += d));
 * const { code } = await closed(child);
 * console.log(code, JSON.stringify(out)); // 0 "hi\n"
 * ```
 */
export function closed(
  child: ChildProcess,
): Promise<{ code: number | null; signal: string | null; late: string }> {
  return new Promise((resolve) => {
    let grace: ReturnType<typeof setTimeout> | undefined;
    child.on("close", (code, signal) => {
      clearTimeout(grace);
      resolve({ code, signal, late: "" });
    });
    child.on("exit", (code, signal) => {
      grace = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        resolve({
          code,
          signal,
          late: `\n(output still open ${OUTPUT_GRACE_MS} ms after exit: ` +
            "a process it started holds it; read no further)",
        });
      }, OUTPUT_GRACE_MS);
    });
  });
}

/**
 * Starts tests/fixtures/child.ts under `runtime` with `cfg`, optionally
 * wrapped by a shell prefix (e.g. `ulimit -l 1024; exec setpriv ...`).
 */
export function startChild(
  runtime: "deno" | "bun",
  cfg: unknown,
  options: {
    shellPrefix?: string;
    env?: Record<string, string>;
    script?: string;
    /** Extra deno flags, e.g. `--allow-read=...` for a Worker's module. */
    denoFlags?: string[];
    /** Run this copy of the runtime's executable instead. */
    exe?: string;
  } = {},
): Promise<Child> {
  const script = options.script ?? "child.ts";
  const cmd = runtimeCommand(runtime, `${ROOT}tests/fixtures/${script}`, [
    JSON.stringify(cfg),
  ]);
  if (options.exe) cmd[0] = options.exe;
  if (runtime === "deno" && options.denoFlags) {
    cmd.splice(3, 0, ...options.denoFlags);
  }
  const quoted = shellQuote(cmd);
  const line = options.shellPrefix
    ? `${options.shellPrefix} ${quoted}`
    : `exec ${quoted}`;
  const child = spawn("/bin/sh", ["-c", line], {
    env: { ...process.env, NO_COLOR: "1", ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  // Until finish() ran, the child's perf map is removed when this process
  // exits, or as soon as the child dies without reporting (a test that
  // failed before finish(), a crash, a timeout).
  const perfMap = { path: `/tmp/perf-${child.pid}.map` };
  unfinished.add(perfMap);
  removeUnfinishedAtExit();
  const exited = closed(child).then((end) => {
    if (end.late) stderr += end.late;
    return end.code;
  });
  return new Promise((resolve, reject) => {
    let done = false;
    let reported = false;
    const timer = setTimeout(() => {
      if (!done) {
        child.kill("SIGKILL");
        reject(new Error(`child did not report in 60 s; stderr: ${stderr}`));
      }
    }, 60_000);
    child.stderr!.on("data", (d) => (stderr += d));
    child.stdout!.on("data", (d) => {
      stdout += d;
      // A whole line only: a chunk may end inside it.
      const m = /^OUTCOME (.*)\n/m.exec(stdout);
      if (m && !done) {
        done = true;
        reported = true;
        clearTimeout(timer);
        const outcome = JSON.parse(m[1]);
        const pid = typeof outcome.pid === "number" && outcome.pid > 0
          ? outcome.pid
          : child.pid!;
        perfMap.path = `/tmp/perf-${pid}.map`;
        resolve({
          pid,
          outcome,
          smaps: () => parseSmaps(readFileSync(`/proc/${pid}/smaps`, "utf8")),
          ask: (text: string, prefix: string) =>
            new Promise<string>((res) => {
              const seen = stdout.length;
              const look = () => {
                const rest = stdout.slice(seen);
                const at = rest.indexOf(prefix);
                const nl = at < 0 ? -1 : rest.indexOf("\n", at);
                if (nl >= 0) {
                  child.stdout!.off("data", look);
                  res(rest.slice(at + prefix.length, nl));
                }
              };
              child.stdout!.on("data", look);
              child.stdin!.write(text + "\n");
            }),
          finish: async () => {
            child.stdin!.end();
            const code = await exited;
            // A remap may append the child's perf map: don't leave one per
            // test child in /tmp.
            rmSync(`/tmp/perf-${pid}.map`, { force: true });
            unfinished.delete(perfMap);
            return { code, stdout, stderr };
          },
        });
      }
    });
    exited.then((code) => {
      if (!reported) {
        rmSync(perfMap.path, { force: true });
        unfinished.delete(perfMap);
      }
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(
          new Error(
            `child exited (${code}) before reporting; stderr: ${stderr}`,
          ),
        );
      }
    });
  });
}

/** The processes whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** What {@linkcode run} saw. */
export interface RunResult {
  code: number | null;
  /** The signal that ended it, or `null`. */
  signal: string | null;
  stdout: string;
  stderr: string;
  /** It was killed at `timeoutMs`. */
  timedOut: boolean;
  /** Milliseconds it ran. */
  ms: number;
}

/**
 * Runs a command to completion; resolves with exit code and output. With
 * `timeoutMs`, kills it and the processes it started (a debugger leaves its
 * inferior stopped when killed) once that time has passed.
 */
export function run(
  argv: string[],
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } =
    {},
): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn("/bin/sh", ["-c", `exec ${shellQuote(argv)}`], {
      env: { ...process.env, NO_COLOR: "1", ...options.env },
      cwd: options.cwd ?? ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const timer = options.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
        timedOut = true;
        stderr += `\n(killed after ${options.timeoutMs} ms)`;
        for (const pid of childrenOf(child.pid!)) process.kill(pid, "SIGKILL");
        child.kill("SIGKILL");
      }, options.timeoutMs);
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    closed(child).then(({ code, signal, late }) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout,
        stderr: stderr + late,
        timedOut,
        ms: performance.now() - t0,
      });
    });
  });
}

/**
 * Independent of the library's own accounting: bytes of [start, end) that
 * are resident in VM_LOCKED VMAs, and how many of the VMAs lack the flag.
 */
export function lockedIn(
  smaps: readonly SmapsVma[],
  start: number,
  end: number,
  flag = "lo",
): { lockedRss: number; rss: number; size: number; unflagged: number } {
  let lockedRss = 0;
  let rss = 0;
  let size = 0;
  let unflagged = 0;
  for (const v of smaps) {
    if (v.end <= start || v.start >= end) continue;
    if (v.start < start || v.end > end) {
      throw new Error(
        `VMA ${v.start.toString(16)}-${
          v.end.toString(16)
        } straddles the segment ${start.toString(16)}-${end.toString(16)}`,
      );
    }
    size += v.size;
    rss += v.rss;
    if (v.vmFlags.includes(flag)) lockedRss += v.rss;
    else unflagged++;
  }
  return { lockedRss, rss, size, unflagged };
}

/**
 * Removes what an earlier test run that was killed left behind: the files
 * and directories in `dirname(prefix)` named `<prefix><pid>…` whose process
 * `<pid>` is gone and which this user owns. Returns the paths removed.
 *
 * @example
 * ```ts
 * import { removeLeftovers } from "./helpers.ts";
 * console.log(removeLeftovers("/dev/shm/page-primer-audit-")); // [] when none
 * ```
 */
export function removeLeftovers(prefix: string): string[] {
  const dir = dirname(prefix);
  const base = basename(prefix);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(base)) continue;
    const pid = /^(\d+)(?!\d)/.exec(name.slice(base.length))?.[1];
    if (pid === undefined || existsSync(`/proc/${pid}`)) continue;
    const path = `${dir}/${name}`;
    try {
      if (lstatSync(path).uid !== process.getuid?.()) continue;
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      // Gone meanwhile, or not ours to remove.
    }
  }
  return removed;
}

/** The size of the 2 MiB hugetlb pool. */
const NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages";

/**
 * Grows the hugetlb pool by `pages` (root only). `got` is how many pages it
 * really grew by: the kernel gives fewer when memory is short or
 * fragmented, and none without hugetlb or permission. `restore()` takes
 * those pages back out, whatever the size is by then: test processes that
 * run at the same time and each wrote back the size it had found could
 * leave the pool grown by the other's pages. Call it in a `finally`.
 *
 * @example
 * ```ts no-eval
 * import { raiseHugetlbPool } from "./helpers.ts";
 * const pool = raiseHugetlbPool(64);
 * try {
 *   console.log(`${pool.got} more 2 MiB pages`);
 * } finally {
 *   pool.restore();
 * }
 * ```
 */
export function raiseHugetlbPool(
  pages: number,
): { got: number; restore(): void } {
  const size = () => Number(readFileSync(NR_HUGEPAGES, "utf8"));
  let got: number;
  try {
    const before = size();
    writeFileSync(NR_HUGEPAGES, String(before + pages));
    got = size() - before;
  } catch {
    return { got: 0, restore: () => {} };
  }
  return {
    got,
    restore: () =>
      writeFileSync(NR_HUGEPAGES, String(Math.max(0, size() - got))),
  };
}

/**
 * Reads [start, end) of another process's memory through /proc/<pid>/mem.
 *
 * @example
 * ```ts no-eval
 * import { readMem } from "./helpers.ts";
 * console.log(readMem(1234, 0x400000, 0x401000).length); // 4096
 * ```
 */
export function readMem(pid: number, start: number, end: number): Uint8Array {
  const out = new Uint8Array(end - start);
  const fd = openSync(`/proc/${pid}/mem`, "r");
  try {
    for (let done = 0; done < out.length;) {
      const n = readSync(fd, out, done, out.length - done, start + done);
      if (n <= 0) throw new Error(`short read of /proc/${pid}/mem`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}
