/**
 * Pure configuration of the zero-code entry point (`auto.ts`): turns the
 * `PAGE_PRIMER*` environment variables into a plan of builder calls, or into
 * errors that name the variable, the value and what is allowed. No syscalls
 * and no environment access here: the caller passes the variables in. This
 * module is the one place that parses them; `run()` reads `PAGE_PRIMER`
 * through {@linkcode parsePagePrimer} too.
 *
 * | variable               | values                                                    | unset   |
 * | ---------------------- | --------------------------------------------------------- | ------- |
 * | `PAGE_PRIMER`          | `on`; `off`; or a comma list of `remap`, `mlock`, `populate` | `on` |
 * | `PAGE_PRIMER_BACKEND`  | `auto`, `thp`, `hugetlb`, `memfd`                         | `auto`  |
 * | `PAGE_PRIMER_ALIGN`    | `aggressive`, `conservative`                              | `aggressive` |
 * | `PAGE_PRIMER_OBJECTS`  | `main`, `all`, or a comma list of path substrings (`libc.so`) | `main` |
 * | `PAGE_PRIMER_LOG`      | `line` (one line), `table`, `json` (one line), `none`     | `line` (to stderr) |
 * | `PAGE_PRIMER_STRICT`   | `1` (exit with code 1 on a bad value or a failed outcome) or `0` | `0` |
 * | `PAGE_PRIMER_PERF_MAP` | `1` (append to `/tmp/perf-<pid>.map`, kept after exit) or `0` | `0` |
 *
 * `on` (and unset) locks the runtime's code and read-only data in memory
 * (`mlock`) when `RLIMIT_MEMLOCK` allows it, and prefaults it (`populate`)
 * when it does not: the effect measured to pay everywhere (no major fault
 * after memory pressure). The remap onto 2 MiB pages is an opt-in
 * (`PAGE_PRIMER=remap` or `remap,mlock`): on the machines measured so far it
 * made no workload measurably faster and loopback HTTP about 3% slower;
 * `cli.ts doctor` says whether it pays on yours.
 *
 * Values are exact (trimmed, lower case): `0`, `true`, `yes`, `REMAP` and
 * the like are rejected with the value meant.
 *
 * @module
 */

import { type Alignment, ALIGNMENTS, BACKEND_CHOICES } from "./remap/plan.ts";

/**
 * An action `PAGE_PRIMER` can ask for.
 *
 * @example
 * ```ts
 * import { type AutoAction, parseAutoConfig } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * const actions: AutoAction[] = parseAutoConfig({ PAGE_PRIMER: "populate" }).actions;
 * assert.deepEqual(actions, ["populate"]);
 * ```
 */
export type AutoAction = "mlock" | "populate" | "remap";
/**
 * A `PAGE_PRIMER_BACKEND` value: a `remap({ backend })` value.
 *
 * @example
 * ```ts
 * import { AUTO_BACKENDS, type AutoBackend } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * const b: AutoBackend = "hugetlb";
 * assert.ok(AUTO_BACKENDS.includes(b));
 * ```
 */
export type AutoBackend = "auto" | "thp" | "hugetlb" | "memfd";
/**
 * A `PAGE_PRIMER_ALIGN` value: a `remap({ align })` value.
 *
 * @example
 * ```ts
 * import { AUTO_ALIGNS, type AutoAlign } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * const a: AutoAlign = "conservative";
 * assert.ok(AUTO_ALIGNS.includes(a));
 * ```
 */
export type AutoAlign = Alignment;
/**
 * A `PAGE_PRIMER_LOG` value: `"line"` one line on stderr, `"table"` the
 * whole report, `"json"` one JSON line, `"none"` nothing.
 *
 * @example
 * ```ts
 * import { type AutoLog, parseAutoConfig } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * const log: AutoLog = parseAutoConfig({ PAGE_PRIMER_LOG: "table" }).log;
 * assert.equal(log, "table");
 * ```
 */
export type AutoLog = "line" | "table" | "json" | "none";

/**
 * The environment variables the entry point reads, in the order it reports them.
 *
 * @example
 * ```ts
 * import { AUTO_VARIABLES } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * assert.equal(AUTO_VARIABLES[0], "PAGE_PRIMER");
 * ```
 */
export const AUTO_VARIABLES: readonly string[] = [
  "PAGE_PRIMER",
  "PAGE_PRIMER_BACKEND",
  "PAGE_PRIMER_ALIGN",
  "PAGE_PRIMER_OBJECTS",
  "PAGE_PRIMER_LOG",
  "PAGE_PRIMER_STRICT",
  "PAGE_PRIMER_PERF_MAP",
];

/**
 * Actions `PAGE_PRIMER` accepts, in the order the builder is called.
 *
 * @example
 * ```ts
 * import { AUTO_ACTIONS } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(AUTO_ACTIONS, ["remap", "mlock", "populate"]);
 * ```
 */
export const AUTO_ACTIONS: readonly AutoAction[] = [
  "remap",
  "mlock",
  "populate",
];
/**
 * Values of `PAGE_PRIMER_BACKEND`, the default first.
 *
 * @example
 * ```ts
 * import { AUTO_BACKENDS } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * assert.equal(AUTO_BACKENDS[0], "auto");
 * ```
 */
export const AUTO_BACKENDS: readonly AutoBackend[] = BACKEND_CHOICES;
/**
 * Values of `PAGE_PRIMER_ALIGN`, the default first.
 *
 * @example
 * ```ts
 * import { AUTO_ALIGNS } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * assert.equal(AUTO_ALIGNS[0], "aggressive");
 * ```
 */
export const AUTO_ALIGNS: readonly AutoAlign[] = ALIGNMENTS;
/**
 * Values of `PAGE_PRIMER_LOG`, the default first.
 *
 * @example
 * ```ts
 * import { AUTO_LOGS } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * assert.equal(AUTO_LOGS[0], "line");
 * ```
 */
export const AUTO_LOGS: readonly AutoLog[] = ["line", "table", "json", "none"];

/**
 * What `PAGE_PRIMER=on` (and unset) does: `mlock` when the lock limit allows
 * it, else this fallback, `populate` (see {@linkcode resolveDefault}).
 *
 * @example
 * ```ts
 * import { AUTO_DEFAULT_ACTIONS } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(AUTO_DEFAULT_ACTIONS, ["mlock"]);
 * ```
 */
export const AUTO_DEFAULT_ACTIONS: readonly AutoAction[] = ["mlock"];
/**
 * What `PAGE_PRIMER=on` does instead of `mlock` when it cannot lock.
 *
 * @example
 * ```ts
 * import { AUTO_DEFAULT_FALLBACK } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * assert.equal(AUTO_DEFAULT_FALLBACK, "populate");
 * ```
 */
export const AUTO_DEFAULT_FALLBACK: AutoAction = "populate";

/** Spellings people use for `off` and `on`, for the hint in a rejection. */
const MEANT: Readonly<Record<string, string>> = {
  "0": "off",
  false: "off",
  no: "off",
  none: "off",
  disable: "off",
  disabled: "off",
  "1": "on",
  true: "on",
  yes: "on",
  enable: "on",
  enabled: "on",
};

/**
 * The `remap()` options the environment can set.
 *
 * @example
 * ```ts
 * import { parseAutoConfig } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * const p = parseAutoConfig({ PAGE_PRIMER: "remap", PAGE_PRIMER_ALIGN: "conservative" });
 * assert.deepEqual(p.calls[0], { method: "remap", arg: { align: "conservative" } });
 * ```
 */
export interface AutoRemapOptions {
  /** From `PAGE_PRIMER_BACKEND`. */
  backend?: AutoBackend;
  /** From `PAGE_PRIMER_ALIGN`. */
  align?: AutoAlign;
  /** `true` from `PAGE_PRIMER_PERF_MAP=1`. */
  perfMap?: boolean;
}

/**
 * One call the entry point makes on the builder, in order.
 *
 * @example
 * ```ts
 * import { type AutoCall, parseAutoConfig } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * const calls: AutoCall[] = parseAutoConfig({ PAGE_PRIMER: "mlock" }).calls;
 * assert.deepEqual(calls, [{ method: "mlock", arg: true }]);
 * ```
 */
export type AutoCall =
  | {
    method: "remap";
    arg: true | AutoRemapOptions;
  }
  | { method: "mlock"; arg: true }
  | { method: "populate"; arg: true }
  | { method: "objects"; arg: string[] };

/**
 * A variable whose value is not accepted.
 *
 * @example
 * ```ts
 * import { parseAutoConfig } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * const [issue] = parseAutoConfig({ PAGE_PRIMER_ALIGN: "tight" }).errors;
 * assert.equal(issue!.variable, "PAGE_PRIMER_ALIGN");
 * assert.equal(issue!.value, "tight");
 * ```
 */
export interface AutoIssue {
  /** The variable, e.g. `"PAGE_PRIMER_BACKEND"`. */
  variable: string;
  /** Its value as given. */
  value: string;
  /** What is wrong and what is allowed, without the variable's name. */
  message: string;
}

/**
 * What the environment asks for.
 *
 * @example
 * ```ts
 * import { parseAutoConfig } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * const plan = parseAutoConfig({ PAGE_PRIMER: "off" });
 * assert.equal(plan.off, true);
 * assert.deepEqual(plan.calls, []);
 * ```
 */
export interface AutoPlan {
  /** True when `PAGE_PRIMER` turns page-primer off: nothing is to be done. */
  off: boolean;
  /**
   * True when `PAGE_PRIMER` was unset, empty or `on`: the default, `mlock`,
   * which {@linkcode resolveDefault} turns into `populate` where the lock
   * limit does not allow it.
   */
  defaulted: boolean;
  /** The actions, in builder order. */
  actions: AutoAction[];
  /** Builder calls to make, in order; empty when off or when there are errors. */
  calls: AutoCall[];
  /** Where the report goes (`"line"` when `PAGE_PRIMER_LOG` is invalid). */
  log: AutoLog;
  /** `PAGE_PRIMER_STRICT`: config errors and a failed outcome exit with code 1. */
  strict: boolean;
  /** Values not accepted. When any, the program is to run unprimed. */
  errors: AutoIssue[];
  /** Settings that are valid but have no effect. */
  warnings: string[];
}

/**
 * Environment variables by name; unset ones are missing or `undefined`.
 *
 * @example
 * ```ts
 * import { type AutoEnv, parseAutoConfig } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * const env: AutoEnv = { PAGE_PRIMER: "populate", PAGE_PRIMER_LOG: undefined };
 * assert.equal(parseAutoConfig(env).log, "line");
 * ```
 */
export type AutoEnv = Readonly<Record<string, string | undefined>>;

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j]!;
      row[j] = Math.min(
        row[j]! + 1,
        row[j - 1]! + 1,
        diag + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diag = up;
    }
  }
  return row[b.length]!;
}

function suggest(value: string, allowed: readonly string[]): string {
  const lower = value.toLowerCase();
  const meant = MEANT[lower];
  if (meant !== undefined && allowed.includes(meant)) {
    return ` (did you mean "${meant}"?)`;
  }
  if (lower !== value && allowed.includes(lower)) {
    return ` (did you mean "${lower}"? values are lower case)`;
  }
  let best: string | undefined;
  let bestD = 3;
  for (const a of allowed) {
    const d = distance(lower, a);
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
  const v = raw.trim();
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

/** What a switch does when `1`, for its error message. */
const SWITCH_ON: Readonly<Record<string, string>> = {
  PAGE_PRIMER_STRICT: "exit with code 1 on a bad value or a failed outcome",
  PAGE_PRIMER_PERF_MAP: "append to /tmp/perf-<pid>.map",
};

/** A switch: `1` true, `0` or unset false; anything else is an issue (and false). */
function onOff(
  variable: string,
  raw: string | undefined,
  errors: AutoIssue[],
): boolean {
  if (raw === undefined || raw.trim() === "") return false;
  const v = raw.trim();
  if (v === "1") return true;
  if (v !== "0") {
    const meant = MEANT[v.toLowerCase()];
    errors.push({
      variable,
      value: raw,
      message: `"${raw}" is not valid${
        meant === undefined
          ? ""
          : ` (did you mean "${meant === "on" ? 1 : 0}"?)`
      }; allowed: 1 (${SWITCH_ON[variable]}) or 0`,
    });
  }
  return false;
}

/**
 * `PAGE_PRIMER` read by {@linkcode parsePagePrimer}.
 *
 * @example
 * ```ts
 * import { parsePagePrimer } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * assert.equal(parsePagePrimer(undefined).defaulted, true);
 * ```
 */
export interface PagePrimerSwitch {
  /** True for `off`: nothing is to be done. */
  off: boolean;
  /** True for unset, empty or `on`: the default actions. */
  defaulted: boolean;
  /** The actions asked for (the default ones when `defaulted`); `[]` when off or invalid. */
  actions: AutoAction[];
  /** Set when the value is not accepted. */
  error?: AutoIssue;
}

/**
 * Reads a `PAGE_PRIMER` value: `on` (or unset or empty), `off`, or a comma
 * list of actions. The one parser of this variable, for the preload and for
 * `run()` (which does nothing for `off` and refuses a value not accepted).
 *
 * @example
 * ```ts
 * import { parsePagePrimer } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * assert.equal(parsePagePrimer("off").off, true);
 * assert.deepEqual(parsePagePrimer("mlock,remap").actions, ["remap", "mlock"]);
 * assert.match(parsePagePrimer("remap,bogus").error!.message, /"bogus"/);
 * ```
 *
 * @param raw The value, `undefined` when unset.
 * @returns What it asks for, or the error.
 */
export function parsePagePrimer(raw: string | undefined): PagePrimerSwitch {
  const v = raw?.trim() ?? "";
  if (v === "off") return { off: true, defaulted: false, actions: [] };
  if (v === "" || v === "on") {
    return { off: false, defaulted: true, actions: [...AUTO_DEFAULT_ACTIONS] };
  }
  const items = v.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const allowed = `on (the default: ${
    AUTO_DEFAULT_ACTIONS.join(",")
  }, or ${AUTO_DEFAULT_FALLBACK} where the lock limit is too low), off, or a comma list of ${
    AUTO_ACTIONS.join(", ")
  }`;
  const fail = (message: string): PagePrimerSwitch => ({
    off: false,
    defaulted: false,
    actions: [],
    error: { variable: "PAGE_PRIMER", value: raw ?? "", message },
  });
  if (items.length === 0) {
    return fail(`"${raw}" names no action; allowed: ${allowed}`);
  }
  const bad = items.filter((s) => !(AUTO_ACTIONS as string[]).includes(s));
  if (bad.length > 0) {
    const what = bad.map((b) =>
      `"${b}"${suggest(b, [...AUTO_ACTIONS, "on", "off"])}`
    ).join(", ");
    const inList = items.length > 1 &&
      bad.some((b) => b === "on" || b === "off");
    return fail(
      `unknown action${bad.length > 1 ? "s" : ""} ${what}${
        inList ? " (on and off stand alone, not in a list)" : ""
      }; allowed: ${allowed}`,
    );
  }
  return {
    off: false,
    defaulted: false,
    actions: AUTO_ACTIONS.filter((a) => items.includes(a)),
  };
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

function checkEnv(env: AutoEnv): void {
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
}

/** The remap variables set while the actions do not include remap. */
function remapOnlyWarnings(
  env: AutoEnv,
  set: { backend?: string; align?: string; perfMap: boolean },
): string[] {
  const what = env.PAGE_PRIMER === undefined || env.PAGE_PRIMER.trim() === ""
    ? "PAGE_PRIMER (unset, so on)"
    : `PAGE_PRIMER=${env.PAGE_PRIMER.trim()}`;
  const out: string[] = [];
  for (
    const [name, v] of [
      ["PAGE_PRIMER_BACKEND", set.backend],
      ["PAGE_PRIMER_ALIGN", set.align],
      ["PAGE_PRIMER_PERF_MAP", set.perfMap ? "1" : undefined],
    ] as const
  ) {
    if (v !== undefined) {
      out.push(
        `${name}=${v} has no effect: ${what} does not include remap`,
      );
    }
  }
  return out;
}

function callsOf(
  actions: readonly AutoAction[],
  remap: AutoRemapOptions,
  objects: string[] | undefined,
): AutoCall[] {
  const calls: AutoCall[] = [];
  for (const a of actions) {
    if (a === "remap") {
      calls.push({
        method: "remap",
        arg: Object.keys(remap).length ? { ...remap } : true,
      });
    } else {
      calls.push({ method: a, arg: true });
    }
  }
  if (objects) calls.push({ method: "objects", arg: objects });
  return calls;
}

/**
 * Reads the `PAGE_PRIMER*` variables (see the module doc) into a plan.
 * Never throws for a bad value: each one becomes an {@linkcode AutoIssue}
 * and the plan has no calls. Values are trimmed and exact; path substrings
 * keep their case.
 *
 * @example
 * ```ts
 * import { parseAutoConfig } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * const plan = parseAutoConfig({
 *   PAGE_PRIMER: "mlock,remap",
 *   PAGE_PRIMER_BACKEND: "thp",
 * });
 * assert.deepEqual(plan.calls, [
 *   { method: "remap", arg: { backend: "thp" } },
 *   { method: "mlock", arg: true },
 * ]);
 * ```
 *
 * @param env The variables, e.g. `{ PAGE_PRIMER: "remap" }`.
 * @returns The plan: calls to make, or errors.
 */
export function parseAutoConfig(env: AutoEnv): AutoPlan {
  checkEnv(env);
  const errors: AutoIssue[] = [];
  const log =
    oneOf("PAGE_PRIMER_LOG", env.PAGE_PRIMER_LOG, AUTO_LOGS, errors) ??
      AUTO_LOGS[0]!;
  const strict = onOff("PAGE_PRIMER_STRICT", env.PAGE_PRIMER_STRICT, errors);
  const sw = parsePagePrimer(env.PAGE_PRIMER);
  if (sw.off) {
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
  if (sw.error) errors.push(sw.error);
  const remap: AutoRemapOptions = {};
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
  if (backend !== undefined) remap.backend = backend;
  if (align !== undefined) remap.align = align;
  if (perfMap) remap.perfMap = true;
  const warnings = sw.error || sw.actions.includes("remap")
    ? []
    : remapOnlyWarnings(env, { backend, align, perfMap });
  const ok = errors.length === 0;
  return {
    off: false,
    defaulted: sw.defaulted,
    actions: ok ? sw.actions : [],
    calls: ok ? callsOf(sw.actions, remap, objects) : [],
    log,
    strict,
    errors,
    warnings,
  };
}

/**
 * The default plan (`PAGE_PRIMER` unset or `on`) made concrete: as it is
 * when the lock fits, else with `mlock` replaced by `populate`. Other plans
 * are returned unchanged.
 *
 * @example
 * ```ts
 * import { parseAutoConfig, resolveDefault } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * const plan = resolveDefault(parseAutoConfig({}), false);
 * assert.deepEqual(plan.actions, ["populate"]);
 * ```
 *
 * @param plan A plan from {@linkcode parseAutoConfig}.
 * @param lockFits Whether `mlock` of the selected objects fits the lock
 *   limit (after raising the soft limit to the hard one), or CAP_IPC_LOCK.
 * @returns The plan to apply.
 */
export function resolveDefault(plan: AutoPlan, lockFits: boolean): AutoPlan {
  if (!plan.defaulted || lockFits || plan.errors.length > 0) return plan;
  const swap = (a: AutoAction) => a === "mlock" ? AUTO_DEFAULT_FALLBACK : a;
  return {
    ...plan,
    actions: plan.actions.map(swap),
    calls: plan.calls.map((c): AutoCall =>
      c.method === "mlock" ? { method: AUTO_DEFAULT_FALLBACK, arg: true } : c
    ),
  };
}

/**
 * The builder methods a plan calls (a `Primer` has them all).
 *
 * @example
 * ```ts
 * import { type AutoBuilder } from "./auto_config.ts";
 * import { prime } from "../mod.ts";
 * const builder: AutoBuilder = prime();
 * ```
 */
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
 * import assert from "node:assert/strict";
 * assert.equal(
 *   formatAutoCalls(parseAutoConfig({ PAGE_PRIMER: "remap,mlock" })),
 *   "prime().remap(true).mlock(true).run()",
 * );
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
 * One value not accepted, as said in messages: the variable, the value, what
 * is wrong and what is allowed. `run()` says it too, for `PAGE_PRIMER`.
 *
 * @example
 * ```ts
 * import { formatAutoIssue, parsePagePrimer } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * assert.match(
 *   formatAutoIssue(parsePagePrimer("remap,bogus").error!),
 *   /^PAGE_PRIMER="remap,bogus": unknown action "bogus"; allowed: on /,
 * );
 * ```
 *
 * @param issue An issue from a plan or from {@linkcode parsePagePrimer}.
 * @returns One line, without the `page-primer:` prefix.
 */
export function formatAutoIssue(issue: AutoIssue): string {
  return `${issue.variable}=${
    issue.message.startsWith(`"${issue.value}"`)
      ? issue.message
      : `"${issue.value}": ${issue.message}`
  }`;
}

/**
 * The plan's errors as one line for stderr, starting with `page-primer:`
 * and saying whether the program goes on unprimed or exits; `undefined`
 * when there is none.
 *
 * @example
 * ```ts
 * import { formatAutoErrors, parseAutoConfig } from "./auto_config.ts";
 * import assert from "node:assert/strict";
 * const line = formatAutoErrors(parseAutoConfig({ PAGE_PRIMER_BACKEND: "huge" }));
 * assert.match(line!, /^page-primer: PAGE_PRIMER_BACKEND="huge" is not valid/);
 * assert.match(line!, /the program runs unprimed/);
 * ```
 *
 * @param plan A plan from {@linkcode parseAutoConfig}.
 * @returns One line, or `undefined`.
 */
export function formatAutoErrors(plan: AutoPlan): string | undefined {
  if (plan.errors.length === 0) return undefined;
  const what = plan.errors.map(formatAutoIssue).join("; ");
  return `page-primer: ${what}; ${
    plan.strict
      ? "exiting with code 1 because PAGE_PRIMER_STRICT=1"
      : "the program runs unprimed (PAGE_PRIMER_STRICT=1 exits instead)"
  }`;
}
