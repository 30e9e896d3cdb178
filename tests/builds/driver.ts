// One child of the build matrix: tests/builds/child.ts under a given build,
// driven one stdin command at a time. Any way the child can die (a signal,
// a non-zero exit, silence past the timeout) rejects the pending command
// with a ChildDied error that says how.
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import process from "node:process";
import { ROOT, shellQuote } from "../helpers.ts";
import type { Build } from "./fetch.ts";

/** The child exited, was killed or stopped answering. */
export class ChildDied extends Error {
  /** E.g. `"SIGSEGV"`, `"exit 1"`, `"timeout"`. */
  readonly how: string;
  /**
   * Makes the error.
   *
   * @param how How the child ended.
   * @param during The command it was running.
   * @param stderr The end of its stderr.
   */
  constructor(how: string, during: string, stderr: string) {
    super(`${how} during ${during}; stderr: ${stderr.slice(-400).trim()}`);
    this.name = "ChildDied";
    this.how = how;
  }
}

/** How long a command may take before the child counts as hung. */
const COMMAND_TIMEOUT_MS = 90_000;
/** How long it may take to exit after `exit`. */
const EXIT_TIMEOUT_MS = 30_000;

/** A running child. */
export interface Driven {
  pid: number;
  /** Sends a command; resolves with the text after `DONE <cmd> `. */
  send(cmd: string): Promise<string>;
  /** Sends `exit` and waits; rejects with ChildDied unless it exits 0. */
  exit(): Promise<void>;
  /** Kills it if still running (after a failed check). */
  kill(): void;
}

/** The command line that runs the child fixture under `build`. */
export function childCommand(build: Build): string[] {
  const script = `${ROOT}tests/builds/child.ts`;
  return build.runtime === "deno"
    ? [build.exe, "run", "--allow-all", script]
    : [build.exe, script];
}

/** Starts the child and waits for its READY line. */
export function startDriven(build: Build, libPath: string): Promise<Driven> {
  const child = spawn(
    "/bin/sh",
    ["-c", `exec ${shellQuote(childCommand(build))}`],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        NO_COLOR: "1",
        DENO_NO_UPDATE_CHECK: "1",
        PAGE_PRIMER_LIB: libPath,
      },
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  let stderr = "";
  let buffered = "";
  let ended: { how: string } | undefined;
  let waiter:
    | {
      prefix: string;
      during: string;
      ok: (s: string) => void;
      ko: (e: Error) => void;
    }
    | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settle = (f: () => void) => {
    clearTimeout(timer);
    waiter = undefined;
    f();
  };
  child.stderr!.on("data", (d) => (stderr += d));
  child.stdout!.on("data", (d) => {
    buffered += d;
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const w = waiter;
      if (!w) continue;
      if (line.startsWith(w.prefix)) {
        settle(() => w.ok(line.slice(w.prefix.length)));
      } else if (line.startsWith(`FAIL ${w.during} `)) {
        const msg = line.slice(`FAIL ${w.during} `.length);
        settle(() => w.ko(new Error(`${w.during} threw: ${msg}`)));
      }
    }
  });
  const exited = new Promise<string>((resolve) =>
    // "close", not "exit": a DONE line or stderr still in flight at exit
    // is read before the child counts as ended.
    child.on("close", (code, signal) => {
      ended = { how: signal ?? (code === 0 ? "exit 0" : `exit ${code}`) };
      const w = waiter;
      if (w) settle(() => w.ko(new ChildDied(ended!.how, w.during, stderr)));
      resolve(ended.how);
    })
  );
  const expect = (prefix: string, during: string, line?: string) =>
    new Promise<string>((ok, ko) => {
      if (ended) return ko(new ChildDied(ended.how, during, stderr));
      waiter = { prefix, during, ok, ko };
      timer = setTimeout(() => {
        child.kill("SIGKILL");
        const w = waiter;
        if (w) settle(() => w.ko(new ChildDied("timeout", during, stderr)));
      }, COMMAND_TIMEOUT_MS);
      if (line !== undefined) child.stdin!.write(line + "\n");
    });
  return expect("READY ", "start").then((ready) => {
    const pid = JSON.parse(ready).pid as number;
    return {
      pid,
      send: (cmd: string) => {
        const name = cmd.split(" ", 1)[0];
        return expect(`DONE ${name} `, name, cmd);
      },
      exit: async () => {
        if (!ended) child.stdin!.write("exit\n");
        let late = false;
        const timer = setTimeout(() => {
          late = true;
          child.kill("SIGKILL");
        }, EXIT_TIMEOUT_MS);
        const status = await exited;
        const how = late ? "timeout" : status;
        clearTimeout(timer);
        rmSync(`/tmp/perf-${pid}.map`, { force: true });
        if (how !== "exit 0") throw new ChildDied(how, "exit", stderr);
      },
      kill: () => {
        if (!ended) child.kill("SIGKILL");
        rmSync(`/tmp/perf-${pid}.map`, { force: true });
      },
    };
  });
}
