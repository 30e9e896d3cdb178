/**
 * The primed wrapper of `workloads.mjs`: remaps the runtime's code onto 2 MiB
 * pages with `prime().remap(true).run()`, checks the outcome, then runs the
 * same workloads (imported afterwards, so the remap comes first).
 *
 *   deno run -A bench/node/primed.ts
 *   bun bench/node/primed.ts
 *
 * With `PAGE_PRIMER=off` in the environment the remap is a no-op: that is how
 * `run.mjs` runs the unprimed Deno and Bun, with the same module graph and
 * the same flags. page-primer itself needs only `--allow-ffi`; `-A` is for
 * `workloads.mjs`, which reads BENCH_* settings and its own
 * `/proc/self/smaps` (Deno asks for all permissions to read `/proc/self`).
 *
 * @module
 */
import process from "node:process";
import { prime } from "../../mod.ts";

const out = prime().remap(true).run();
if (!out.ok) {
  console.error(`page-primer remap failed: ${out.reason ?? ""}`);
  out.log();
  process.exit(3);
}
(globalThis as { __pagePrimerBench?: unknown }).__pagePrimerBench = {
  ok: out.ok,
  disabled: out.disabled,
  reason: out.reason ?? null,
  remapMs: out.durations.remapMs,
  totalMs: out.durations.totalMs,
  text: out.remap
    ? { bytes: out.remap.text.bytes, huge: out.remap.text.huge }
    : null,
  rodata: out.remap
    ? { bytes: out.remap.rodata.bytes, huge: out.remap.rodata.huge }
    : null,
};
await import("./workloads.mjs");
