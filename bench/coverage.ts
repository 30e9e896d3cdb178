/**
 * Huge-page coverage of `prime().remap(true).run()` in this process, as one
 * JSON line. Run it many times to see the spread over ASLR placements:
 *
 *   for i in $(seq 20); do deno run --allow-ffi bench/coverage.ts; done
 *
 * @module
 */
import { prime } from "../mod.ts";

const out = prime().remap(true).run();
const r = out.remap!;
console.log(JSON.stringify({
  runtime: out.runtime,
  ok: out.ok,
  text: r.text.huge / r.text.bytes,
  rodata: r.rodata.huge / r.rodata.bytes,
  ms: out.durations.totalMs,
}));
