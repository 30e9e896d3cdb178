/**
 * Huge-page coverage of `prime().remap(true).run()` in this process, as one
 * JSON line. Run it many times to see the spread over ASLR placements:
 *
 *   for i in $(seq 20); do deno run --allow-ffi bench/coverage.ts; done
 *
 * An argument is the JSON of the remap options, e.g. '{"backend":"hugetlb"}'.
 *
 * @module
 */
import process from "node:process";
import { prime } from "../mod.ts";

const options = process.argv[2] ? JSON.parse(process.argv[2]) : true;
const out = prime().remap(options).run();
const r = out.remap!;
console.log(JSON.stringify({
  runtime: out.runtime,
  ok: out.ok,
  backend: r.backend,
  text: r.text.huge / r.text.bytes,
  rodata: r.rodata.huge / r.rodata.bytes,
  ms: out.durations.totalMs,
}));
