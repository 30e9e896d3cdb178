// One process of the shared-mode benchmark: remaps its executable with the
// options in argv[2], prints "READY <json>" and waits for stdin to close.
import process from "node:process";
import { prime } from "../../mod.ts";

const options = JSON.parse(process.argv[2] ?? "{}");
const out = prime().remap(options).run();
const r = out.remap;
console.log(
  "READY " + JSON.stringify({
    ok: out.ok,
    reason: out.reason,
    backend: r?.backend,
    share: r?.share,
    regions: r?.regions.map((x) => ({ start: x.start, end: x.end })),
    text: r?.text,
  }),
);
process.stdin.on("data", () => {});
process.stdin.on("end", () => process.exit(0));
