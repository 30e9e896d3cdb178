// The cost of priming, per runtime: time of mlock, populate and remap in
// fresh processes (the demo, --json), the copies' resident memory, and the
// remap against its floor (bench/remap_floor.ts, same process). Writes
// bench/results/cost-<date>.{json,md}.
//
//   node bench/cost.mjs [--runs N]      (root: mlock needs CAP_IPC_LOCK or a large RLIMIT_MEMLOCK)
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "10" },
    help: { type: "boolean" },
  },
});
if (values.help) {
  console.log("usage: node bench/cost.mjs [--runs N]");
  process.exit(0);
}
const root = new URL("..", import.meta.url).pathname;
const runs = Number(values.runs);
const bins = {
  deno: [`${root}node_modules/.bin/deno`, "run", "--allow-ffi"],
  bun: [`${root}node_modules/.bin/bun`],
};
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

function demoJson(rt, args) {
  const [cmd, ...pre] = bins[rt];
  const r = execFileSync("sh", [
    "-c",
    `exec "$@" 2>&1 >/dev/null`,
    "sh",
    cmd,
    ...pre,
    `${root}examples/demo.ts`,
    "--json",
    ...args,
  ]);
  return JSON.parse(String(r).trim().split("\n").pop());
}

const machine = {
  cpu: (readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/) ??
    [])[1],
  kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
  thp: readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8")
    .trim(),
};
const result = { date: new Date().toISOString(), machine, runs, runtimes: {} };
for (const rt of ["deno", "bun"]) {
  const mlock = [], populate = [], remap = [], copy = [], textCov = [];
  for (let i = 0; i < runs; i++) {
    mlock.push(demoJson(rt, ["--no-remap"]).durations.mlockMs);
    populate.push(
      demoJson(rt, ["--no-remap", "--no-mlock", "--populate"]).durations
        .populateMs,
    );
    const r = demoJson(rt, ["--no-mlock"]);
    remap.push(r.durations.totalMs);
    copy.push(r.remap.copyResident);
    textCov.push(r.remap.text.huge / r.remap.text.bytes);
  }
  const [cmd, ...pre] = bins[rt];
  // The floor bench also reads the executable's size (node:fs): Deno needs
  // --allow-read for it, the demo only --allow-ffi.
  const floorFlags = rt === "deno" ? ["--allow-read"] : [];
  const floor = JSON.parse(
    String(
      execFileSync(cmd, [
        ...pre,
        ...floorFlags,
        `${root}bench/remap_floor.ts`,
        "31",
        "--json",
      ]),
    ).trim(),
  );
  delete floor.pairedRatios;
  result.runtimes[rt] = {
    mlockMs: median(mlock),
    populateMs: median(populate),
    firstRemapRunMs: median(remap),
    copyResidentBytes: median(copy),
    textCoverage: median(textCov),
    floor,
    raw: { mlock, populate, remap, copy, textCov },
  };
  console.error(`${rt}: done`);
}
const day = result.date.slice(0, 10);
mkdirSync(`${root}bench/results`, { recursive: true });
writeFileSync(
  `${root}bench/results/cost-${day}.json`,
  JSON.stringify(result, null, 2) + "\n",
);
const f = (n) => n.toFixed(1);
const md = [
  `# Cost of priming, ${day}`,
  "",
  `Machine: ${machine.cpu}, Linux ${machine.kernel}, THP \`${machine.thp}\`. Medians of ${runs} fresh processes (first three rows) and of 31 rounds in one process (floor rows).`,
  "",
  "| | deno | bun |",
  "| --- | ---: | ---: |",
  ...[
    ["`mlock(true)`, ms (whole executable)", (r) => f(r.mlockMs)],
    ["`populate(true)`, ms", (r) => f(r.populateMs)],
    [
      "first `remap(true).run()` in a fresh process, ms",
      (r) => f(r.firstRemapRunMs),
    ],
    ["copies resident, MiB", (r) => f(r.copyResidentBytes / 2 ** 20)],
    ["text on 2 MiB pages", (r) => `${f(100 * r.textCoverage)}%`],
    ["steady-state `remap(true).run()`, ms", (r) => f(r.floor.remapMedianMs)],
    [
      "floor: THP alloc + memcpy of the same bytes, ms",
      (r) => f(r.floor.floorMedianMs),
    ],
    [
      "file floor: the same from the file's page cache, ms",
      (r) => f(r.floor.fileFloorMedianMs),
    ],
    [
      "ratio run / floor, run / file floor (paired, 95% interval)",
      (r) =>
        [r.floor.ratio, r.floor.fileRatio].map((x) =>
          `${x.median.toFixed(2)} [${x.lo.toFixed(2)}, ${x.hi.toFixed(2)}]`
        ).join(", "),
    ],
    [
      "of the run: trampoline copy-and-swap, ms",
      (r) => f(r.floor.trampolineMedianMs),
    ],
  ].map(([label, get]) =>
    `| ${label} | ${get(result.runtimes.deno)} | ${get(result.runtimes.bun)} |`
  ),
  "",
].join("\n");
writeFileSync(`${root}bench/results/cost-${day}.md`, md);
console.log(md);
