/**
 * The `medley` workload: one op of each of several other workloads in turn,
 * as a server that does many different things does, so that the code run
 * within a few milliseconds spans ICU, the Wasm compiler, SQLite, zlib,
 * the crypto library, the RegExp engine, the URL parser and more: a larger
 * hot-code footprint than any one workload. Each part checks its own
 * result, as it does alone.
 *
 * @module
 */
import type { Workload, WorkloadRun } from "../workloads.ts";

/**
 * A workload whose op is one op of each of `parts`, in order.
 *
 * @example
 * ```ts
 * import { medleyOf } from "./medley.ts";
 * const w = medleyOf([{
 *   name: "noop",
 *   description: "nothing",
 *   setup: () => ({ run() {}, close() {} }),
 * }]);
 * const run = await w.setup();
 * await run.run(1);
 * await run.close();
 * ```
 */
export function medleyOf(parts: readonly Workload[]): Workload {
  if (parts.length === 0) throw new RangeError("medleyOf: no parts given");
  return {
    name: "medley",
    description: `one op each of ${parts.map((p) => p.name).join(", ")}`,
    async setup() {
      const runs: WorkloadRun[] = [];
      try {
        for (const p of parts) runs.push(await p.setup());
      } catch (e) {
        for (const r of runs) await r.close();
        throw e;
      }
      return {
        async run(ops) {
          for (let o = 0; o < ops; o++) {
            for (const r of runs) {
              const v = r.run(1);
              if (v !== undefined) await v;
            }
          }
        },
        async close() {
          for (const r of runs) await r.close();
        },
      };
    },
  };
}
