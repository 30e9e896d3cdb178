/**
 * Argument checking of the {@linkcode Primer} builder's methods: one function
 * per option group. Each returns the checked value (a copy of an options
 * object, `false` when the action is off) or throws a `TypeError` (wrong type
 * or unknown key) or `RangeError` (a value outside the accepted ones) whose
 * message names the method and what it accepts.
 *
 * @module
 */

import type { MlockOptions } from "./mlock.ts";
import type { PopulateOptions } from "./populate.ts";
import { ALIGNMENTS, BACKEND_CHOICES } from "./remap/plan.ts";
import type { RemapOptions } from "./remap/report.ts";
import type { ObjectSelector } from "./sys/segments.ts";

/**
 * How a value is named in an error message: its type and, for scalars, the
 * value itself.
 *
 * @example
 * ```ts
 * import { describe } from "./options.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(describe("4m"), 'string "4m"');
 * assert.deepEqual(describe([1]), "an array");
 * ```
 *
 * @param v Any value.
 * @returns A short description such as `string "x"`, `number 3` or `null`.
 */
export function describe(v: unknown): string {
  if (typeof v === "string") return `string ${JSON.stringify(v)}`;
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return `${typeof v} ${String(v)}`;
}

function checkKeys(
  method: string,
  value: Record<string, unknown>,
  allowed: readonly string[],
): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new TypeError(
        `${method}(): unknown option "${key}"; accepted: ${
          allowed.length ? allowed.join(", ") : "none"
        }`,
      );
    }
  }
}

/** `true` → `{}`, `false` → `false`, a plain object with known keys → itself. */
function checkFlag<T extends object>(
  value: unknown,
  { method, allowed, usage }: {
    method: string;
    allowed: readonly string[];
    usage: string;
  },
): false | T {
  if (value === true) return {} as T;
  if (value === false) return false;
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    checkKeys(method, value as Record<string, unknown>, allowed);
    return value as T;
  }
  throw new TypeError(`${method}() accepts ${usage}; got ${describe(value)}`);
}

/**
 * Checks the argument of `mlock()`.
 *
 * @example
 * ```ts
 * import { checkMlockOptions } from "./options.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(checkMlockOptions(true), {});
 * assert.deepEqual(checkMlockOptions({ onFault: true }), { onFault: true });
 * assert.throws(() => checkMlockOptions({ onFault: 1 }), TypeError);
 * ```
 *
 * @param enable What the caller passed.
 * @returns `false` (off) or a copy of the options.
 * @throws {TypeError} Not a boolean or `{ onFault?: boolean }`.
 */
export function checkMlockOptions(enable: unknown): false | MlockOptions {
  const v = checkFlag<MlockOptions>(enable, {
    method: "mlock",
    allowed: ["onFault"],
    usage: "true, false or { onFault?: boolean }",
  });
  if (v && v.onFault !== undefined && typeof v.onFault !== "boolean") {
    throw new TypeError(
      `mlock(): onFault must be a boolean; got ${describe(v.onFault)}`,
    );
  }
  return v === false ? false : { ...v };
}

/**
 * Checks the argument of `populate()`.
 *
 * @example
 * ```ts
 * import { checkPopulateOptions } from "./options.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(checkPopulateOptions(false), false);
 * assert.throws(() => checkPopulateOptions({ x: 1 }), TypeError);
 * ```
 *
 * @param enable What the caller passed.
 * @returns `false` (off) or the (empty) options.
 * @throws {TypeError} Not a boolean or an empty object.
 */
export function checkPopulateOptions(enable: unknown): false | PopulateOptions {
  return checkFlag<PopulateOptions>(enable, {
    method: "populate",
    allowed: [],
    usage: "true or false",
  });
}

const REMAP_USAGE =
  'true, false or { align?: "aggressive" | "conservative", pageSize?: "2m" | "4k", backend?: "auto" | "thp" | "hugetlb" | "memfd", share?: boolean | { dir?: string }, perfMap?: boolean }';

/**
 * Checks the argument of `remap()`.
 *
 * @example
 * ```ts
 * import { checkRemapOptions } from "./options.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(checkRemapOptions({ pageSize: "4k" }), { pageSize: "4k" });
 * assert.throws(() => checkRemapOptions({ pageSize: "1g" }), RangeError);
 * assert.throws(
 *   () => checkRemapOptions({ share: true, backend: "thp" }),
 *   TypeError,
 * );
 * ```
 *
 * @param enable What the caller passed.
 * @returns `false` (off) or a copy of the options.
 * @throws {TypeError} Wrong type, unknown key, or `share` with a backend
 * other than memfd.
 * @throws {RangeError} `align`, `pageSize` or `backend` outside its values.
 */
export function checkRemapOptions(enable: unknown): false | RemapOptions {
  const v = checkFlag<RemapOptions>(enable, {
    method: "remap",
    allowed: ["align", "pageSize", "backend", "share", "perfMap"],
    usage: REMAP_USAGE,
  });
  if (v === false) return false;
  if (v.perfMap !== undefined && typeof v.perfMap !== "boolean") {
    throw new TypeError(
      `remap(): perfMap must be true or false; got ${describe(v.perfMap)}`,
    );
  }
  if (v.share !== undefined && typeof v.share !== "boolean") {
    checkShareOptions(v.share);
  }
  checkShareBackend(v);
  checkRemapChoices(v);
  return { ...v };
}

/** `remap({ share })` when `share` is not a boolean. */
function checkShareOptions(sh: unknown): void {
  if (typeof sh !== "object" || sh === null || Array.isArray(sh)) {
    throw new TypeError(
      `remap(): share must be true, false or { dir?: string }; got ${
        describe(sh)
      }`,
    );
  }
  checkKeys("remap", sh as Record<string, unknown>, ["dir"]);
  const dir = (sh as { dir?: unknown }).dir;
  if (
    dir !== undefined && (typeof dir !== "string" || !dir.startsWith("/"))
  ) {
    throw new TypeError(
      `remap(): share.dir must be an absolute path; got ${describe(dir)}`,
    );
  }
}

/** `share` needs the memfd backend on 2 MiB pages. */
function checkShareBackend(v: RemapOptions): void {
  if (
    v.share &&
    (v.pageSize === "4k" ||
      (v.backend !== undefined && v.backend !== "auto" &&
        v.backend !== "memfd"))
  ) {
    throw new TypeError(
      `remap(): share uses shmem copies (the memfd backend) on 2 MiB pages; it cannot be combined with ${
        v.pageSize === "4k" ? 'pageSize: "4k"' : `backend: "${v.backend}"`
      }`,
    );
  }
}

/** `backend`, `align` and `pageSize` among their accepted values. */
function checkRemapChoices(v: RemapOptions): void {
  if (v.backend !== undefined && !BACKEND_CHOICES.includes(v.backend)) {
    throw new RangeError(
      `remap(): backend must be "auto", "thp", "hugetlb" or "memfd"; got ${
        describe(v.backend)
      }`,
    );
  }
  if (v.align !== undefined && !ALIGNMENTS.includes(v.align)) {
    throw new RangeError(
      `remap(): align must be "aggressive" or "conservative"; got ${
        describe(v.align)
      }`,
    );
  }
  if (
    v.pageSize !== undefined && v.pageSize !== "2m" && v.pageSize !== "4k"
  ) {
    throw new RangeError(
      `remap(): pageSize must be "2m" or "4k"; got ${describe(v.pageSize)}`,
    );
  }
}

/**
 * Checks the arguments of `objects()`.
 *
 * @example
 * ```ts
 * import { checkObjectSelectors } from "./options.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(checkObjectSelectors(["main", /libc/]), ["main", /libc/]);
 * assert.throws(() => checkObjectSelectors([]), RangeError);
 * assert.throws(() => checkObjectSelectors([""]), TypeError);
 * ```
 *
 * @param selectors What the caller passed.
 * @returns A copy of the selectors.
 * @throws {RangeError} No selector.
 * @throws {TypeError} A selector that is not a non-empty string, a RegExp or
 * a function.
 */
export function checkObjectSelectors(
  selectors: readonly unknown[],
): ObjectSelector[] {
  if (selectors.length === 0) {
    throw new RangeError(
      'objects() needs at least one selector: "main", "all", a path substring, a RegExp or a predicate',
    );
  }
  for (const s of selectors) {
    const ok = typeof s === "string" ? s.length > 0 : s instanceof RegExp ||
      typeof s === "function";
    if (!ok) {
      throw new TypeError(
        `objects() accepts "main", "all", a non-empty path substring, a RegExp or a predicate; got ${
          describe(s)
        }`,
      );
    }
  }
  return [...selectors] as ObjectSelector[];
}

/**
 * Checks the argument of `strict()`.
 *
 * @example
 * ```ts
 * import { checkStrict } from "./options.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(checkStrict(true), true);
 * assert.throws(() => checkStrict("yes"), TypeError);
 * ```
 *
 * @param enable What the caller passed.
 * @returns The boolean.
 * @throws {TypeError} Not a boolean.
 */
export function checkStrict(enable: unknown): boolean {
  if (typeof enable !== "boolean") {
    throw new TypeError(
      `strict() accepts true or false; got ${describe(enable)}`,
    );
  }
  return enable;
}
