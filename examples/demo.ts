/**
 * The demo: primes the runtime this script runs in (Deno or Bun) and prints
 * what happened, measured from /proc/self/smaps.
 *
 *   deno run --allow-ffi examples/demo.ts [--json] [--no-mlock] [--populate] [--on-fault]
 *   bun examples/demo.ts [same options]
 *
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { prime } from "../mod.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    json: { type: "boolean", default: false },
    "no-mlock": { type: "boolean", default: false },
    populate: { type: "boolean", default: false },
    "on-fault": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (values.help) {
  console.log(
    "usage: demo.ts [--json] [--no-mlock] [--populate] [--on-fault]\n" +
      "  Locks (mlock) the running runtime's executable in memory and prints\n" +
      "  the per-segment outcome read back from /proc/self/smaps.",
  );
  process.exit(0);
}

const mlock = values["no-mlock"] ? false : { onFault: values["on-fault"] };
const out = prime().mlock(mlock).populate(values.populate).run();
out.log({ format: values.json ? "json" : "text" });
process.exitCode = out.ok ? 0 : 1;
