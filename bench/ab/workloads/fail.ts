/**
 * The one way a workload of the A/B benchmark reports a wrong result.
 *
 * @module
 */

/**
 * Throws: workload `workload` computed a wrong result, described by `what`.
 *
 * @example
 * ```ts
 * import { fail } from "./fail.ts";
 * const got = 2 + 2;
 * if (got !== 4) fail("arith", `2 + 2 = ${got}`);
 * ```
 */
export function fail(workload: string, what: string): never {
  throw new Error(`workload ${workload}: wrong result: ${what}`);
}
