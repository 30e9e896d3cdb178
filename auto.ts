/**
 * Zero-code entry point: importing this module primes the process as the
 * `PAGE_PRIMER*` environment variables say, before the program's own code
 * runs when it is preloaded, and prints one line on stderr.
 *
 * ```sh
 * deno run --allow-ffi --preload jsr:@x/page-primer/auto main.ts
 * bun --preload page-primer/auto main.ts   # or in bunfig.toml: preload = ["page-primer/auto"]
 * PAGE_PRIMER=remap,mlock PAGE_PRIMER_LOG=table bun --preload page-primer/auto main.ts
 * ```
 *
 * | variable               | values                                                            | unset        |
 * | ---------------------- | ----------------------------------------------------------------- | ------------ |
 * | `PAGE_PRIMER`          | `on`; `off`; or a comma list of `remap`, `mlock`, `populate`      | `on`         |
 * | `PAGE_PRIMER_BACKEND`  | `auto`, `thp`, `hugetlb`, `memfd`                                 | `auto`       |
 * | `PAGE_PRIMER_ALIGN`    | `aggressive`, `conservative`                                      | `aggressive` |
 * | `PAGE_PRIMER_OBJECTS`  | `main`, `all`, or a comma list of path substrings                 | `main`       |
 * | `PAGE_PRIMER_LOG`      | `line` (one line), `table` (the report), `json` (one line), `none` | `line`      |
 * | `PAGE_PRIMER_STRICT`   | `1` exits with code 1 on a bad value or an outcome not ok; `0`    | `0`          |
 * | `PAGE_PRIMER_PERF_MAP` | `1` appends the remapped functions to `/tmp/perf-<pid>.map`; `0`  | `0`          |
 *
 * `on` locks the runtime's code and read-only data in memory (`mlock`)
 * where `RLIMIT_MEMLOCK` allows it and prefaults it (`populate`) where it
 * does not. The remap onto 2 MiB pages is opt-in (`PAGE_PRIMER=remap`, or
 * `remap,mlock`): it has not made a measured workload faster yet, and made
 * loopback HTTP about 3% slower; `cli.ts doctor` says whether it pays here.
 *
 * A preload never stops the program on its own: a value it does not accept
 * is reported on stderr in one line (even with `PAGE_PRIMER_LOG=none`) and
 * the program runs unprimed; a priming that is not ok is reported and the
 * program runs. Only `PAGE_PRIMER_STRICT=1` turns either into exit code 1.
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
import { type Inspected, runChosen } from "./src/prime.ts";
import {
  applyAutoPlan,
  AUTO_VARIABLES,
  type AutoEnv,
  type AutoPlan,
  formatAutoCalls,
  formatAutoErrors,
  parseAutoConfig,
  resolveDefault,
} from "./src/auto_config.ts";
import { ffiAvailability, runtimeEnv } from "./src/sys/ffi.ts";
import { libc, RLIMIT_MEMLOCK } from "./src/sys/libc.ts";
import { lockBudget } from "./src/mlock.ts";

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
export type { PrimeOutcome } from "./mod.ts";

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

/**
 * The default (`on`) made concrete from what the run's inspection saw:
 * `mlock` when the selected objects fit the lock limit (raised to the hard
 * limit if need be) or CAP_IPC_LOCK, else `populate`, with the reason.
 */
function concrete(
  p: AutoPlan,
  seen: Inspected,
): { plan: AutoPlan; note?: string } {
  try {
    const needed = seen.bytes - seen.locked;
    const rlimit = libc().getrlimit(RLIMIT_MEMLOCK);
    const b = lockBudget({
      needed,
      alreadyLocked: seen.status.vmLck,
      rlimit,
      capIpcLock: seen.status.capIpcLock,
    });
    if (b.fits) return { plan: resolveDefault(p, true) };
    const limit = rlimit.max === Infinity
      ? "unlimited"
      : `${(rlimit.max / 2 ** 20).toFixed(1)} MiB`;
    return {
      plan: resolveDefault(p, false),
      note: `not locked: mlock needs ${
        (needed / 2 ** 20).toFixed(1)
      } MiB, the hard RLIMIT_MEMLOCK is ${limit} (ulimit -l unlimited, or LimitMEMLOCK=infinity, to lock)`,
    };
  } catch {
    // The run goes on with the default as it is and meets the problem.
    return { plan: p };
  }
}

/**
 * Runs the plan; the default is made concrete on the run's own
 * inspection (one inspection, not a `prime().run()` first).
 */
function runPlan(parsed: AutoPlan): {
  out: PrimeOutcome;
  plan: AutoPlan;
  note?: string;
} {
  if (!parsed.defaulted || parsed.errors.length > 0) {
    return { out: applyAutoPlan(parsed, prime()).run(), plan: parsed };
  }
  let chosen: { plan: AutoPlan; note?: string } = { plan: parsed };
  const objects = parsed.calls.filter((c) => c.method === "objects");
  const builder = applyAutoPlan({ ...parsed, calls: objects }, prime());
  const out = runChosen(builder, (seen) => {
    chosen = concrete(parsed, seen);
    applyAutoPlan(chosen.plan, builder);
  });
  return { out, ...chosen };
}

function report(p: AutoPlan, out: PrimeOutcome, note?: string): void {
  if (p.log === "json") {
    const data = out.toJSON();
    say(
      JSON.stringify({
        ...data,
        warnings: [...p.warnings, ...(note ? [note] : []), ...data.warnings],
      }),
    );
  } else if (p.log === "table") {
    for (const w of p.warnings) say(`page-primer: ${w}`);
    if (note) say(`page-primer: ${note}`);
    out.log();
  } else if (p.log === "line") {
    const extra = [...(note ? [note] : []), ...p.warnings];
    say(
      out.summary() + (extra.length ? `; ${extra.join("; ")}` : "") +
        (out.ok ? "" : " (PAGE_PRIMER_LOG=table for the report)"),
    );
  }
}

function configErrors(p: AutoPlan): undefined {
  const line = formatAutoErrors(p)!;
  if (p.log === "json") {
    say(JSON.stringify({
      ok: false,
      disabled: false,
      reason: line.replace(/^page-primer: /, ""),
      errors: p.errors,
      warnings: p.warnings,
    }));
  } else say(line);
  if (p.strict) process.exit(1);
  return undefined;
}

function noFfi(p: AutoPlan, why: string): undefined {
  if (p.log !== "none") {
    say(
      `page-primer: ${why}; ${
        p.strict
          ? "exiting with code 1 because PAGE_PRIMER_STRICT=1"
          : "the program runs unprimed"
      }`,
    );
  }
  if (p.strict) process.exit(1);
  return undefined;
}

function primeNow(parsed: AutoPlan): PrimeOutcome | undefined {
  if (parsed.off) return undefined;
  if (parsed.errors.length > 0) return configErrors(parsed);
  const why = ffiAvailability();
  if (why !== undefined) return noFfi(parsed, why);
  let p = parsed;
  let note: string | undefined;
  let out: PrimeOutcome;
  try {
    ({ out, plan: p, note } = runPlan(parsed));
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
  report(p, out, note);
  if (p.strict && !out.ok) {
    say(
      `page-primer: ${
        out.reason ?? "priming failed"
      }; exiting with code 1 because PAGE_PRIMER_STRICT=1`,
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
 * console.log(plan.actions); // ["mlock"] when PAGE_PRIMER is unset
 * ```
 */
export const plan: AutoPlan = parseAutoConfig(readEnv());

/**
 * The outcome of the priming this module did when it was first evaluated;
 * `undefined` when `PAGE_PRIMER=off`, when a variable had a value it does
 * not accept, or when Deno runs without `--allow-ffi`.
 *
 * @example
 * ```ts no-eval
 * import { outcome } from "jsr:@x/page-primer/auto";
 * console.log(outcome?.ok, outcome?.totals.locked);
 * ```
 */
export const outcome: PrimeOutcome | undefined = primeNow(plan);
