// Shared helpers for the tests: where the runtimes are, and a child process
// that primes itself and stays alive while the test reads its
// /proc/<pid>/smaps from outside.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { parseSmaps, type SmapsVma } from "../src/maps.ts";
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
  /** Closes its stdin; resolves with its exit code and output once it exits. */
  finish(): Promise<{ code: number | null; stdout: string; stderr: string }>;
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
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => resolve(code))
  );
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      if (!done) {
        child.kill("SIGKILL");
        reject(new Error(`child did not report in 60 s; stderr: ${stderr}`));
      }
    }, 60_000);
    child.stderr!.on("data", (d) => (stderr += d));
    child.stdout!.on("data", (d) => {
      stdout += d;
      const m = /^OUTCOME (.*)$/m.exec(stdout);
      if (m && !done) {
        done = true;
        clearTimeout(timer);
        const outcome = JSON.parse(m[1]);
        const pid = typeof outcome.pid === "number" && outcome.pid > 0
          ? outcome.pid
          : child.pid!;
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
            // A remap appends the perf map of the child (perfMap defaults
            // to on): don't leave one per test child in /tmp.
            rmSync(`/tmp/perf-${pid}.map`, { force: true });
            return { code, stdout, stderr };
          },
        });
      }
    });
    exited.then((code) => {
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

/** Runs a command to completion; resolves with exit code and output. */
export function run(
  argv: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("/bin/sh", ["-c", `exec ${shellQuote(argv)}`], {
      env: { ...process.env, NO_COLOR: "1", ...options.env },
      cwd: options.cwd ?? ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
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
