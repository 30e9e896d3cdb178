/**
 * Pure configuration of the zero-code entry point (`auto.ts`): turns the
 * `PAGE_PRIMER*` environment variables into a plan of builder calls, or into
 * errors that name the variable, the value and what is allowed. No syscalls
 * and no environment access here: the caller passes the variables in.
 *
 * | variable               | values                                                        | unset              |
 * | ---------------------- | ------------------------------------------------------------- | ------------------ |
 * | `PAGE_PRIMER`          | comma list of `mlock`, `populate`, `remap`; `on`; `off`       | `remap`            |
 * | `PAGE_PRIMER_BACKEND`  | `auto`, `thp`, `hugetlb`, `memfd`                             | `auto`             |
 * | `PAGE_PRIMER_ALIGN`    | `aggressive`, `conservative`                                  | `aggressive`       |
 * | `PAGE_PRIMER_OBJECTS`  | `main`, `all`, or a comma list of path substrings (`libc.so`) | `main`             |
 * | `PAGE_PRIMER_LOG`      | `text`, `json`, `none`                                        | `text` (to stderr) |
 * | `PAGE_PRIMER_STRICT`   | `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`               | `0`                |
 * | `PAGE_PRIMER_PERF_MAP` | `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`               | `0`                |
 *
 * `PAGE_PRIMER_PERF_MAP=1` makes the remap write `/tmp/perf-<pid>.map`
 * (`remap({ perfMap: true })`), which stays after the process exits.
 *
 * `PAGE_PRIMER=off` (or `0`, `false`, `no`, `none`) turns page-primer off,
 * the same values `run()` itself honours.
 *
 * @module
 */

import { type Alignment, ALIGNMENTS, BACKEND_CHOICES } from "./remap/plan.ts";
import type { Backend } from "./remap/execute.ts";

/** An action `PAGE_PRIMER` can ask for. */
export type AutoAction = "mlock" | "populate" | "remap";
/** A `PAGE_PRIMER_BACKEND` value: a `remap({ backend })` value. */
export type AutoBackend = "auto" | Backend;
/** A `PAGE_PRIMER_ALIGN` value: a `remap({ align })` value. */
export type AutoAlign = Alignment;
/** A `PAGE_PRIMER_LOG` value. */
export type AutoLog = "text" | "json" | "none";

/** The environment variables the entry point reads, in the order it reports them. */
export const AUTO_VARIABLES: readonly string[] = [
  "PAGE_PRIMER",
  "PAGE_PRIMER_BACKEND",
  "PAGE_PRIMER_ALIGN",
  "PAGE_PRIMER_OBJECTS",
  "PAGE_PRIMER_LOG",
  "PAGE_PRIMER_STRICT",
  "PAGE_PRIMER_PERF_MAP",
];

/** Actions `PAGE_PRIMER` accepts, in the order the builder is called. */
export const AUTO_ACTIONS: readonly AutoAction[] = [
  "remap",
  "mlock",
  "populate",
];
/** Values of `PAGE_PRIMER_BACKEND`. */
export const AUTO_BACKENDS: readonly AutoBackend[] = BACKEND_CHOICES;
/** Values of `PAGE_PRIMER_ALIGN`. */
export const AUTO_ALIGNS: readonly AutoAlign[] = ALIGNMENTS;
/** Values of `PAGE_PRIMER_LOG`. */
export const AUTO_LOGS: readonly AutoLog[] = ["text", "json", "none"];

/**
 * What an unset (or empty) `PAGE_PRIMER` means: remap only. It needs no
 * privilege and no `RLIMIT_MEMLOCK` change (a remap of Deno or Bun works as
 * any user where THP is `madvise` or `always`), and the copies are
 * anonymous memory, which the kernel reclaims only by swapping. `mlock`
 * pins about 100 MiB, more than the 8 MiB lock limit most users have, so as
 * a default it would fail on most machines: ask for it with
 * `PAGE_PRIMER=remap,mlock`.
 */
export const AUTO_DEFAULT_ACTIONS: readonly AutoAction[] = ["remap"];

const OFF = /^(off|0|false|no|none)$/i;
const ON = /^(on|1|true|yes)$/i;

/** The `remap()` options the environment can set. */
export interface AutoRemapOptions {
  /** From `PAGE_PRIMER_BACKEND`. */
  backend?: AutoBackend;
  /** From `PAGE_PRIMER_ALIGN`. */
  align?: AutoAlign;
  /** `true` from `PAGE_PRIMER_PERF_MAP=1`. */
  perfMap?: boolean;
}

/** One call the entry point makes on the builder, in order. */
export type AutoCall =
  | {
    method: "remap";
    arg: true | AutoRemapOptions;
  }
  | { method: "mlock"; arg: true }
  | { method: "populate"; arg: true }
  | { method: "objects"; arg: string[] };

/** A variable whose value is not accepted. */
export interface AutoIssue {
  /** The variable, e.g. `"PAGE_PRIMER_BACKEND"`. */
  variable: string;
  /** Its value as given. */
  value: string;
  /** What is wrong and what is allowed, without the variable's name. */
  message: string;
}

/** What the environment asks for. */
export interface AutoPlan {
  /** True when `PAGE_PRIMER` turns page-primer off: nothing is to be done. */
  off: boolean;
  /** True when `PAGE_PRIMER` was unset or empty, so the default actions apply. */
  defaulted: boolean;
  /** The actions, in builder order. */
  actions: AutoAction[];
  /** Builder calls to make, in order; empty when off or when there are errors. */
  calls: AutoCall[];
  /** Where the report goes (`"text"` when `PAGE_PRIMER_LOG` is invalid). */
  log: AutoLog;
  /** `PAGE_PRIMER_STRICT`: config errors and a failed outcome exit with code 1. */
  strict: boolean;
  /** Values not accepted. When any, the program is to run unprimed. */
  errors: AutoIssue[];
  /** Settings that are valid but have no effect. */
  warnings: string[];
}

/** Environment variables by name; unset ones are missing or `undefined`. */
export type AutoEnv = Readonly<Record<string, string | undefined>>;

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j];
      row[j] = Math.min(
        row[j] + 1,
        row[j - 1] + 1,
        diag + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diag = up;
    }
  }
  return row[b.length];
}

function suggest(value: string, allowed: readonly string[]): string {
  let best: string | undefined;
  let bestD = 3;
  for (const a of allowed) {
    const d = distance(value, a);
    if (d < bestD) {
      best = a;
      bestD = d;
    }
  }
  return best === undefined ? "" : ` (did you mean "${best}"?)`;
}

function oneOf<T extends string>(
  variable: string,
  raw: string | undefined,
  allowed: readonly T[],
  errors: AutoIssue[],
): T | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const v = raw.trim().toLowerCase();
  if ((allowed as readonly string[]).includes(v)) return v as T;
  errors.push({
    variable,
    value: raw,
    message: `"${raw}" is not valid${suggest(v, allowed)}; allowed: ${
      allowed.join(", ")
    }`,
  });
  return undefined;
}

/**
 * A switch: true for `1`/`true`/`yes`/`on`, false for `0`/`false`/`no`/
 * `off` or unset; anything else is an issue (and false).
 */
function onOff(
  variable: string,
  raw: string | undefined,
  errors: AutoIssue[],
): boolean {
  if (raw === undefined || raw.trim() === "") return false;
  if (ON.test(raw.trim())) return true;
  if (!OFF.test(raw.trim())) {
    errors.push({
      variable,
      value: raw,
      message: `"${raw}" is not valid; allowed: 1, true, yes, on (${
        SWITCH_ON[variable]
      }) or 0, false, no, off`,
    });
  }
  return false;
}

/** What a switch does when on, for its error message. */
const SWITCH_ON: Readonly<Record<string, string>> = {
  PAGE_PRIMER_STRICT: "strict",
  PAGE_PRIMER_PERF_MAP: "write /tmp/perf-<pid>.map",
};

function parseActions(
  raw: string,
  errors: AutoIssue[],
): AutoAction[] | undefined {
  const items = raw.split(",").map((s) => s.trim().toLowerCase()).filter((
    s,
  ) => s !== "");
  const allowed = `a comma list of ${
    AUTO_ACTIONS.join(", ")
  }; or on (the default, ${AUTO_DEFAULT_ACTIONS.join(",")}); or off`;
  if (items.length === 0) {
    errors.push({
      variable: "PAGE_PRIMER",
      value: raw,
      message: `"${raw}" names no action; allowed: ${allowed}`,
    });
    return undefined;
  }
  const bad = items.filter((s) => !(AUTO_ACTIONS as string[]).includes(s));
  if (bad.length > 0) {
    const what = bad.map((b) =>
      `"${b}"${suggest(b, [...AUTO_ACTIONS, "on", "off"])}`
    ).join(", ");
    const inList = items.length > 1 &&
      bad.some((b) => OFF.test(b) || ON.test(b));
    errors.push({
      variable: "PAGE_PRIMER",
      value: raw,
      message: `unknown action${bad.length > 1 ? "s" : ""} ${what}${
        inList ? " (on and off stand alone, not in a list)" : ""
      }; allowed: ${allowed}`,
    });
    return undefined;
  }
  return AUTO_ACTIONS.filter((a) => items.includes(a));
}

function parseObjects(
  raw: string | undefined,
  errors: AutoIssue[],
): string[] | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const items = raw.split(",").map((s) => s.trim());
  if (items.some((s) => s === "")) {
    errors.push({
      variable: "PAGE_PRIMER_OBJECTS",
      value: raw,
      message:
        `"${raw}" has an empty item; allowed: main, all, or a comma list of path substrings (e.g. main,libc.so)`,
    });
    return undefined;
  }
  return [...new Set(items)];
}

/**
 * Reads the `PAGE_PRIMER*` variables (see the module doc) into a plan.
 * Never throws for a bad value: each one becomes an {@linkcode AutoIssue}
 * and the plan has no calls. Values are trimmed; keywords are
 * case-insensitive, path substrings are not.
 *
 * @example
 * ```ts
 * import { parseAutoConfig } from "./auto_config.ts";
 * const plan = parseAutoConfig({
 *   PAGE_PRIMER: "mlock,remap",
 *   PAGE_PRIMER_BACKEND: "thp",
 * });
 * console.log(plan.calls);
 * // [{ method: "remap", arg: { backend: "thp" } }, { method: "mlock", arg: true }]
 * ```
 *
 * @param env The variables, e.g. `{ PAGE_PRIMER: "remap" }`.
 * @returns The plan: calls to make, or errors.
 */
export function parseAutoConfig(env: AutoEnv): AutoPlan {
  if (typeof env !== "object" || env === null || Array.isArray(env)) {
    throw new TypeError(
      `parseAutoConfig() needs an object of environment variables; got ${
        env === null ? "null" : Array.isArray(env) ? "an array" : typeof env
      }`,
    );
  }
  for (const name of AUTO_VARIABLES) {
    const v = env[name];
    if (v !== undefined && typeof v !== "string") {
      throw new TypeError(
        `parseAutoConfig(): ${name} must be a string or undefined; got ${typeof v}`,
      );
    }
  }
  const errors: AutoIssue[] = [];
  const warnings: string[] = [];
  const log =
    oneOf("PAGE_PRIMER_LOG", env.PAGE_PRIMER_LOG, AUTO_LOGS, errors) ??
      "text";
  const strict = onOff("PAGE_PRIMER_STRICT", env.PAGE_PRIMER_STRICT, errors);
  const raw = env.PAGE_PRIMER;
  const defaulted = raw === undefined || raw.trim() === "";
  if (!defaulted && OFF.test(raw.trim())) {
    // Off means off: nothing else is read or reported.
    return {
      off: true,
      defaulted: false,
      actions: [],
      calls: [],
      log,
      strict,
      errors: [],
      warnings: [],
    };
  }
  const actions = defaulted || ON.test(raw.trim())
    ? [...AUTO_DEFAULT_ACTIONS]
    : parseActions(raw, errors);
  const backend = oneOf(
    "PAGE_PRIMER_BACKEND",
    env.PAGE_PRIMER_BACKEND,
    AUTO_BACKENDS,
    errors,
  );
  const align = oneOf(
    "PAGE_PRIMER_ALIGN",
    env.PAGE_PRIMER_ALIGN,
    AUTO_ALIGNS,
    errors,
  );
  const objects = parseObjects(env.PAGE_PRIMER_OBJECTS, errors);
  const perfMap = onOff(
    "PAGE_PRIMER_PERF_MAP",
    env.PAGE_PRIMER_PERF_MAP,
    errors,
  );
  if (actions && !actions.includes("remap")) {
    for (
      const [name, v] of [
        ["PAGE_PRIMER_BACKEND", backend],
        ["PAGE_PRIMER_ALIGN", align],
        [
          "PAGE_PRIMER_PERF_MAP",
          perfMap ? env.PAGE_PRIMER_PERF_MAP : undefined,
        ],
      ] as const
    ) {
      if (v !== undefined) {
        warnings.push(
          `${name}=${v} has no effect: PAGE_PRIMER (${raw}) does not include remap`,
        );
      }
    }
  }
  const calls: AutoCall[] = [];
  if (errors.length === 0 && actions) {
    for (const a of actions) {
      if (a === "remap") {
        const opts: AutoRemapOptions = {};
        if (backend !== undefined) opts.backend = backend;
        if (align !== undefined) opts.align = align;
        if (perfMap) opts.perfMap = true;
        calls.push({
          method: "remap",
          arg: Object.keys(opts).length ? opts : true,
        });
      } else {
        calls.push({ method: a, arg: true });
      }
    }
    if (objects) calls.push({ method: "objects", arg: objects });
  }
  return {
    off: false,
    defaulted,
    actions: errors.length === 0 && actions ? actions : [],
    calls,
    log,
    strict,
    errors,
    warnings,
  };
}

/** The builder methods a plan calls (a `Primer` has them all). */
export interface AutoBuilder {
  /** See `Primer.remap`. */
  remap(enable: true | AutoRemapOptions): unknown;
  /** See `Primer.mlock`. */
  mlock(enable: true): unknown;
  /** See `Primer.populate`. */
  populate(enable: true): unknown;
  /** See `Primer.objects`. */
  objects(...selectors: string[]): unknown;
}

/**
 * Makes the plan's calls on a builder, in order, and returns the builder.
 *
 * @example
 * ```ts
 * import { applyAutoPlan, parseAutoConfig } from "./auto_config.ts";
 * import { prime } from "../mod.ts";
 * const p = applyAutoPlan(parseAutoConfig({ PAGE_PRIMER: "populate" }), prime());
 * // p.run() would prefault the executable now
 * ```
 *
 * @param plan A plan from {@linkcode parseAutoConfig}.
 * @param builder A builder, usually `prime()`.
 * @returns The same builder.
 */
export function applyAutoPlan<T extends AutoBuilder>(
  plan: AutoPlan,
  builder: T,
): T {
  for (const c of plan.calls) {
    if (c.method === "remap") builder.remap(c.arg);
    else if (c.method === "mlock") builder.mlock(c.arg);
    else if (c.method === "populate") builder.populate(c.arg);
    else builder.objects(...c.arg);
  }
  return builder;
}

/**
 * The plan as the equivalent code, for messages and docs.
 *
 * @example
 * ```ts
 * import { formatAutoCalls, parseAutoConfig } from "./auto_config.ts";
 * console.log(formatAutoCalls(parseAutoConfig({ PAGE_PRIMER: "remap,mlock" })));
 * // prime().remap(true).mlock(true).run()
 * ```
 *
 * @param plan A plan from {@linkcode parseAutoConfig}.
 * @returns One line of TypeScript.
 */
export function formatAutoCalls(plan: AutoPlan): string {
  const args = (c: AutoCall) =>
    c.method === "objects"
      ? c.arg.map((s) => JSON.stringify(s)).join(", ")
      : c.arg === true
      ? "true"
      : `{ ${
        Object.entries(c.arg).map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
          .join(", ")
      } }`;
  return `prime()${
    plan.calls.map((c) => `.${c.method}(${args(c)})`).join("")
  }.run()`;
}

/**
 * The plan's errors and warnings as lines for stderr, each starting with
 * `page-primer:`; errors say whether the program goes on unprimed or exits.
 *
 * @example
 * ```ts
 * import { formatAutoIssues, parseAutoConfig } from "./auto_config.ts";
 * const plan = parseAutoConfig({ PAGE_PRIMER_BACKEND: "huge" });
 * for (const line of formatAutoIssues(plan)) console.error(line);
 * // page-primer: PAGE_PRIMER_BACKEND="huge" is not valid; allowed: auto, thp, hugetlb, memfd
 * // page-primer: the program runs unprimed (PAGE_PRIMER_STRICT=1 would make this exit with code 1)
 * ```
 *
 * @param plan A plan from {@linkcode parseAutoConfig}.
 * @returns Lines, none when the plan has neither errors nor warnings.
 */
export function formatAutoIssues(plan: AutoPlan): string[] {
  const lines = plan.errors.map((e) =>
    `page-primer: ${e.variable}=${
      e.message.startsWith(`"${e.value}"`)
        ? e.message
        : `"${e.value}": ${e.message}`
    }`
  );
  if (plan.errors.length > 0) {
    lines.push(
      plan.strict
        ? "page-primer: exiting with code 1 because PAGE_PRIMER_STRICT is set"
        : "page-primer: the program runs unprimed (PAGE_PRIMER_STRICT=1 would make this exit with code 1)",
    );
  }
  for (const w of plan.warnings) lines.push(`page-primer: ${w}`);
  return lines;
}
