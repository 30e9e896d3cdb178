// Collects the per-run files that bench/pressure/run.sh leaves in its work
// directory (run-N.meta, .client, .hog, .server) into
// bench/results/pressure-<date>.json and a Markdown summary.
//
//   node bench/pressure/report.mjs --work DIR [--out-dir DIR] [--settings JSON]
import fs from "node:fs";
import path from "node:path";
import process from "node:process";
import {
  machine,
  machineMarkdown,
  mdTable,
  median,
  parseArgs,
  RESULTS_DIR,
  writeResults,
} from "../node/common.mjs";

let o;
try {
  o = parseArgs(process.argv.slice(2), {
    work: { type: "string", default: "" },
    outDir: { type: "string", default: RESULTS_DIR },
    settings: { type: "string", default: "{}" },
    help: { type: "boolean", default: false },
  });
} catch (e) {
  console.error(`report.mjs: ${e.message}`);
  process.exit(2);
}
if (o.help || !o.work) {
  console.log(
    "Usage: node bench/pressure/report.mjs --work DIR [--out-dir DIR] [--settings JSON]\n(run.sh calls it)",
  );
  process.exit(o.help ? 0 : 2);
}

function readJson(file, lineNo = -1) {
  try {
    const lines = fs.readFileSync(file, "utf8").trim().split("\n");
    return JSON.parse(lineNo < 0 ? lines[lines.length - 1] : lines[lineNo]);
  } catch {
    return null;
  }
}

const metas = fs.readdirSync(o.work)
  .filter((f) => /^run-\d+\.meta$/.test(f))
  .map((f) => Number(/\d+/.exec(f)[0]))
  .sort((a, b) => a - b);
const runs = metas.map((i) => {
  const base = path.join(o.work, `run-${i}`);
  const meta = readJson(`${base}.meta`);
  const server = readJson(`${base}.server`, 0);
  const client = readJson(`${base}.client`);
  const hog = readJson(`${base}.hog`);
  let hogErr = "";
  try {
    hogErr = fs.readFileSync(`${base}.hog.err`, "utf8").trim().slice(0, 500);
  } catch { /* none */ }
  return {
    ...meta,
    majflt: meta.majfltAfter - meta.majfltBefore,
    cgroupPgmajfault: meta.cgroupPgmajfaultAfter - meta.cgroupPgmajfaultBefore,
    mlockOutcome: server?.mlock ?? null,
    client,
    hog,
    hogStderr: hogErr || undefined,
  };
});

const settings = JSON.parse(o.settings);
const m = machine({ benchmark: "pressure" });
const groups = new Map();
for (const r of runs) {
  const key = `${r.runtime} mlock=${r.mlock}`;
  if (!groups.has(key)) groups.set(key, []);
  groups.get(key).push(r);
}
const summary = [...groups.entries()].map(([key, rs]) => ({
  config: key,
  runtime: rs[0].runtime,
  mlock: rs[0].mlock,
  runs: rs.length,
  requestsMedian: median(rs.map((r) => r.client?.requests ?? NaN)),
  rpsMedian: median(rs.map((r) => r.client?.rps ?? NaN)),
  p50MsMedian: median(rs.map((r) => r.client?.latencyMs.p50 ?? NaN)),
  p99MsMedian: median(rs.map((r) => r.client?.latencyMs.p99 ?? NaN)),
  maxMsMax: Math.max(...rs.map((r) => r.client?.latencyMs.max ?? NaN)),
  majfltMedian: median(rs.map((r) => r.majflt)),
  cgroupPgmajfaultMedian: median(rs.map((r) => r.cgroupPgmajfault)),
  rssFileMiBBeforeMedian: median(rs.map((r) => r.rssFileKbBefore / 1024)),
  rssFileMiBAfterMedian: median(rs.map((r) => r.rssFileKbAfter / 1024)),
  lockedMiB: median(rs.map((r) => (r.vmLckKb ?? 0) / 1024)),
  hogPeakMiBMedian: median(rs.map((r) => r.hog?.peakMiB ?? NaN)),
  hogBursts: median(rs.map((r) => r.hog?.bursts ?? NaN)),
  oomKills: rs.reduce((n, r) => n + (r.oomKill ?? 0), 0),
  errors: rs.reduce((n, r) => n + (r.client?.errors ?? 0), 0),
  mlockOk: rs.every((r) => r.mlock === "off" || r.mlockOutcome?.ok === true),
}));

const problems = [];
for (const r of runs) {
  if (r.mlock !== "off" && !r.mlockOutcome?.ok) {
    problems.push(
      `run ${r.idx} (${r.runtime}): mlock not ok: ${r.mlockOutcome?.reason}`,
    );
  }
  if (!r.hog) {
    problems.push(
      `run ${r.idx} (${r.runtime} mlock=${r.mlock}): the hog printed no statistics (exit ${r.hogExit}${
        r.hogAliveAtEnd ? "" : ", dead before the end: OOM-killed?"
      }) ${r.hogStderr ?? ""}`,
    );
  }
  if (r.oomKill) {
    problems.push(
      `run ${r.idx} (${r.runtime} mlock=${r.mlock}): ${r.oomKill} OOM kill(s) in the cgroup`,
    );
  }
  if (!r.serverAliveAtEnd) {
    problems.push(
      `run ${r.idx} (${r.runtime}): the server died during the run`,
    );
  }
  if (r.client?.errors) {
    problems.push(`run ${r.idx}: ${r.client.errors} failed requests`);
  }
}

const result = {
  benchmark: "pressure",
  machine: m,
  settings,
  summary,
  problems,
  runs,
};

const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
const md = [
  "# Memory pressure: latency and major faults with and without mlock",
  "",
  ...machineMarkdown(m),
  `- cgroup ${settings.cgroup} (${settings.cgroupParent}/page-primer-pressure-*), limit ${settings.limitMiB} MiB; hog leaves ${settings.reserveMiB} MiB for file pages, bursts of ${settings.holdMs} ms every ${
    settings.holdMs + settings.pauseMs
  } ms`,
  `- per run: ${settings.warmupS} s warm-up, then ${settings.durationS} s of closed-loop load (${settings.concurrency} connections) from outside the cgroup; ${settings.rounds} round(s)${
    settings.quick ? " (--quick)" : ""
  }; page cache of the runtime binary evicted before each run${
    settings.dropCaches ? ", plus drop_caches" : ""
  }`,
  "",
  ...mdTable(
    [
      "config",
      "runs",
      "requests",
      "req/s",
      "p50 ms",
      "p99 ms",
      "max ms",
      "server majflt",
      "cgroup majflt",
      "server RssFile MiB before → under pressure",
      "locked MiB",
      "hog peak MiB",
    ],
    summary.map((s) => [
      s.config,
      String(s.runs),
      f(s.requestsMedian, 0),
      f(s.rpsMedian, 0),
      f(s.p50MsMedian, 2),
      f(s.p99MsMedian, 2),
      f(s.maxMsMax, 1),
      f(s.majfltMedian, 0),
      f(s.cgroupPgmajfaultMedian, 0),
      `${f(s.rssFileMiBBeforeMedian)} → ${f(s.rssFileMiBAfterMedian)}`,
      f(s.lockedMiB),
      f(s.hogPeakMiBMedian, 0),
    ]),
  ),
  "",
  "Medians over runs (max: the largest of all runs). majflt: server's /proc/<pid>/stat field 12, after − before the loaded period; cgroup majflt: memory.stat pgmajfault of the whole cgroup (server + hog).",
  "",
  ...(problems.length
    ? ["## Problems", "", ...problems.map((p) => `- ${p}`), ""]
    : []),
];
const markdown = md.join("\n");
const files = writeResults("pressure", result, markdown, o.outDir);
console.log(markdown);
console.log(`\nwrote ${files.json}\nwrote ${files.md}`);
