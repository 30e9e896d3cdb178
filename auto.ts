/**
 * Zero-code entry point: importing this module primes the process as the
 * `PAGE_PRIMER*` environment variables say, before the program's own code
 * runs when it is preloaded.
 *
 * ```sh
 * deno run --allow-ffi --preload jsr:@x/page-primer/auto main.ts
 * bun --preload ./page-primer/auto.ts main.ts   # or in bunfig.toml: preload = ["./page-primer/auto.ts"]
 * PAGE_PRIMER=remap,mlock PAGE_PRIMER_LOG=json bun --preload ./page-primer/auto.ts main.ts
 * ```
 *
 * | variable              | values                                                   | unset        |
 * | --------------------- | -------------------------------------------------------- | ------------ |
 * | `PAGE_PRIMER`         | comma list of `mlock`, `populate`, `remap`; `on`; `off`  | `remap`      |
 * | `PAGE_PRIMER_BACKEND` | `auto`, `thp`, `hugetlb`, `memfd`                        | `auto`       |
 * | `PAGE_PRIMER_ALIGN`   | `aggressive`, `conservative`                             | `aggressive` |
 * | `PAGE_PRIMER_OBJECTS` | `main`, `all`, or a comma list of path substrings        | `main`       |
 * | `PAGE_PRIMER_LOG`     | `text` (table on stderr), `json` (one line), `none`      | `text`       |
 * | `PAGE_PRIMER_STRICT`  | `1` to exit with code 1 on a bad value or failed outcome | `0`          |
 * | `PAGE_PRIMER_PERF_MAP` | `1` appends the remapped functions to `/tmp/perf-<pid>.map` (kept after exit) | `0` |
 *
 * A preload never stops the program on its own: a value it does not accept
 * is reported on stderr (even with `PAGE_PRIMER_LOG=none`) and the program
 * runs unprimed; a priming that is not ok is reported and the program runs.
 * Only `PAGE_PRIMER_STRICT=1` turns either into exit code 1.
 * `PAGE_PRIMER=off` does nothing and prints nothing.
 *
 * Deno needs `--allow-ffi` only: the variables are read through libc
 * `getenv`, not `Deno.env`. The module is evaluated once per process, so a
 * program that also imports it gets the same {@linkcode outcome}.
 *
 * @module
 */

import process from "node:process";
import { prime, type PrimeOutcome } from "./mod.ts";
import {
  applyAutoPlan,
  AUTO_VARIABLES,
  type AutoEnv,
  type AutoPlan,
  formatAutoCalls,
  formatAutoIssues,
  parseAutoConfig,
} from "./src/auto_config.ts";
import { ffiAvailability, runtimeEnv } from "./src/sys/ffi.ts";
import { libc } from "./src/sys/libc.ts";

export type {
  AutoAction,
  AutoAlign,
  AutoBackend,
  AutoCall,
  AutoIssue,
  AutoLog,
  AutoPlan,
  AutoRemapOptions,
} from "./src/auto_config.ts";

function readEnv(): AutoEnv {
  let get: (name: string) => string | undefined = runtimeEnv;
  if (ffiAvailability() === undefined) {
    try {
      const c = libc();
      get = (name) => c.getenv(name);
    } catch {
      // No libc: the run below reports it; fall back to the runtime's env.
    }
  }
  const env: Record<string, string | undefined> = {};
  for (const name of AUTO_VARIABLES) env[name] = get(name);
  return env;
}

function say(line: string): void {
  console.error(line);
}

function primeNow(p: AutoPlan): PrimeOutcome | undefined {
  if (p.off) return undefined;
  if (p.errors.length > 0) {
    const lines = formatAutoIssues(p);
    if (p.log === "json") {
      // One line, like an outcome that is not ok.
      say(JSON.stringify({
        ok: false,
        disabled: false,
        reason: lines.map((l) => l.replace(/^page-primer: /, "")).join("; "),
        errors: p.errors,
        warnings: p.warnings,
      }));
    } else for (const line of lines) say(line);
    if (p.strict) process.exit(1);
    return undefined;
  }
  let out: PrimeOutcome;
  try {
    out = applyAutoPlan(p, prime()).run();
  } catch (e) {
    // run() does not throw outside strict mode; this guards the promise
    // that a preload never stops the program.
    say(
      `page-primer: ${formatAutoCalls(p)} threw: ${
        e instanceof Error ? e.message : String(e)
      }; the program runs unprimed`,
    );
    if (p.strict) process.exit(1);
    return undefined;
  }
  if (p.log === "json") {
    const data = out.toJSON();
    say(
      JSON.stringify({ ...data, warnings: [...p.warnings, ...data.warnings] }),
    );
  } else if (p.log === "text") {
    for (const line of formatAutoIssues(p)) say(line);
    out.log();
  }
  if (p.strict && !out.ok) {
    say(
      `page-primer: ${
        out.reason ?? "priming failed"
      }; exiting with code 1 because PAGE_PRIMER_STRICT is set`,
    );
    process.exit(1);
  }
  return out;
}

/**
 * What the environment asked for (see the module doc): the builder calls
 * made, the log format, strictness, and any value not accepted.
 *
 * @example
 * ```ts no-eval
 * import { plan } from "jsr:@x/page-primer/auto";
 * console.log(plan.actions); // e.g. ["remap"] when PAGE_PRIMER is unset
 * ```
 */
export const plan: AutoPlan = parseAutoConfig(readEnv());

/**
 * The outcome of the priming this module did when it was first evaluated;
 * `undefined` when `PAGE_PRIMER=off` or a variable had a value it does not
 * accept.
 *
 * @example
 * ```ts no-eval
 * import { outcome } from "jsr:@x/page-primer/auto";
 * console.log(outcome?.ok, outcome?.remap?.text.huge);
 * ```
 */
export const outcome: PrimeOutcome | undefined = primeNow(plan);
