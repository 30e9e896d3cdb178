/**
 * The demo: primes the runtime this script runs in (Deno or Bun) and prints
 * what happened, measured from /proc/self/smaps.
 *
 *   deno run --allow-ffi examples/demo.ts [--json] [--no-remap] [--small-pages]
 *                                         [--no-mlock] [--on-fault] [--populate]
 *   bun examples/demo.ts [same options]
 *
 * By default it remaps the runtime's code and read-only data onto 2 MiB
 * pages and locks it in memory: prime().remap(true).mlock(true).run().
 *
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { prime } from "../mod.ts";

const USAGE =
  "usage: demo.ts [--json] [--no-remap] [--small-pages] [--no-mlock] [--on-fault] [--populate]";

function options() {
  try {
    return parseArgs({
      args: process.argv.slice(2),
      options: {
        json: { type: "boolean", default: false },
        "no-remap": { type: "boolean", default: false },
        "small-pages": { type: "boolean", default: false },
        "no-mlock": { type: "boolean", default: false },
        populate: { type: "boolean", default: false },
        "on-fault": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }).values;
  } catch (e) {
    // A bad option: one line and exit code 2, not a stack trace.
    console.error(`demo.ts: ${e instanceof Error ? e.message : e}; ${USAGE}`);
    process.exit(2);
  }
}

const values = options();

if (values.help) {
  console.log(
    USAGE + "\n" +
      "  Remaps the running runtime's code onto 2 MiB pages, locks it in memory\n" +
      "  (mlock), and prints the outcome read back from /proc/self/smaps.\n" +
      "  --small-pages: remap onto a 4 KiB anonymous copy instead (A/B).",
  );
  process.exit(0);
}

const mlock = values["no-mlock"] ? false : { onFault: values["on-fault"] };
const remap = values["no-remap"]
  ? false
  : { pageSize: values["small-pages"] ? "4k" as const : "2m" as const };
const out = prime().remap(remap).mlock(mlock).populate(values.populate).run();
out.log({ format: values.json ? "json" : "text" });
process.exitCode = out.ok ? 0 : 1;
