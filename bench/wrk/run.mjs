// Driver: wrk against bench/wrk/server.ts on Deno and on Bun, the server's
// code switched between 2 MiB pages (huge), an anonymous copy on 4 KiB pages
// (small) and the executable's file mapping (file), modes interleaved.
//
//   node bench/wrk/run.mjs [--quick] [--per-mode N] [...]   (see --help)
import { spawn, spawnSync } from "node:child_process";
import path from "node:path";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import {
  fmtRatio,
  machine,
  machineMarkdown,
  mdTable,
  median,
  parseArgs,
  progress,
  progressDone,
  ratioOfMedians,
  RESULTS_DIR,
  runtimePath,
  writeResults,
} from "../node/common.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MODES = ["huge", "small", "file"];

const HELP = `Usage: node bench/wrk/run.mjs [options]

Starts bench/wrk/server.ts (Deno.serve / Bun.serve on 127.0.0.1) and runs
wrk -t1 -c16 -d5s against it repeatedly. Before each wrk run the server is
told to move its own code (GET /mode/<m>):

  huge   prime().remap(true)               anonymous copy on 2 MiB pages
  small  prime().remap({ pageSize: "4k" }) the same copy on 4 KiB pages
  file   restore()                         the executable's file mapping

Order: blocks "huge small file" and "file small huge" alternate (the ABBA
pattern for three modes), so a linear drift of the machine cancels out.
Reported per runtime: requests/s per mode (median, min, max), latency
percentiles, and the ratios huge/small and huge/file (and small/file) of the
median requests/s with a paired bootstrap 95% CI (pairs: the k-th run of each
mode).

Options:
  --quick             4 runs per mode of 2 s (about 1 minute for both runtimes)
  --per-mode N        wrk runs per mode (default 10)
  --duration S        seconds per wrk run (default 5)
  --connections N     wrk -c (default 16)
  --threads N         wrk -t (default 1)
  --settle-ms N       pause after each mode switch (default 500)
  --warmup S          one unrecorded wrk run per server start (default 2)
  --runtimes a,b      deno and/or bun (default deno,bun)
  --wrk PATH          wrk binary (default: wrk on PATH)
  --bootstrap N       bootstrap resamples (default 10000)
  --seed N            bootstrap seed (default 1)
  --out-dir DIR       where to write wrk-<date>.{json,md} (default bench/results)
  --no-write          print the summary only
  --help              this text

Needs wrk (sh bench/setup.sh installs it).`;

const spec = {
  quick: { type: "boolean", default: false },
  perMode: { type: "number", default: undefined },
  duration: { type: "number", default: undefined },
  connections: { type: "number", default: 16 },
  threads: { type: "number", default: 1 },
  settleMs: { type: "number", default: 500 },
  warmup: { type: "number", default: undefined },
  runtimes: { type: "list", default: ["deno", "bun"] },
  wrk: { type: "string", default: "wrk" },
  bootstrap: { type: "number", default: 10000 },
  seed: { type: "number", default: 1 },
  outDir: { type: "string", default: RESULTS_DIR },
  noWrite: { type: "boolean", default: false },
  help: { type: "boolean", default: false },
};

let opts;
try {
  opts = parseArgs(process.argv.slice(2), spec);
} catch (e) {
  console.error(`wrk/run.mjs: ${e.message}`);
  process.exit(2);
}
if (opts.help) {
  console.log(HELP);
  process.exit(0);
}
const perMode = Math.max(1, Math.round(opts.perMode ?? (opts.quick ? 4 : 10)));
const duration = Math.max(1, Math.round(opts.duration ?? (opts.quick ? 2 : 5)));
const warmup = Math.round(opts.warmup ?? (opts.quick ? 1 : 2));
for (const r of opts.runtimes) {
  if (r !== "deno" && r !== "bun") {
    console.error(`wrk/run.mjs: unknown runtime ${r}; use deno and/or bun`);
    process.exit(2);
  }
}
if (spawnSync(opts.wrk, ["--version"]).error) {
  console.error(
    `wrk/run.mjs: ${opts.wrk} not found; run sh bench/setup.sh (as root) or apt-get install wrk`,
  );
  process.exit(1);
}

const server = path.join(HERE, "server.ts");
const lua = path.join(HERE, "report.lua");
const PATH = "/api/items/42?q=hello%20world&page=3&sort=price";

function commandFor(runtime) {
  return runtime === "deno"
    ? [runtimePath("deno"), "run", "--allow-ffi", "--allow-net", server]
    : [runtimePath("bun"), server];
}

/** Starts the server; resolves with { child, port } once it listens. */
function startServer(runtime) {
  const [cmd, ...args] = commandFor(runtime);
  const child = spawn(cmd, [...args, "--port", "0"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr.on("data", (d) => (err += d).length > 20000 && (err = ""));
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${runtime} server did not start in 30 s: ${err}`));
    }, 30_000);
    child.stdout.on("data", (d) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        const ready = JSON.parse(out.slice(0, nl));
        resolve({ child, port: ready.listening, pid: ready.pid });
      } catch {
        reject(new Error(`${runtime} server said: ${out}`));
      }
    });
    child.on("exit", (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${runtime} server exited (${code ?? sig}): ${err}`));
    });
  });
}

async function setMode(port, mode) {
  const res = await fetch(`http://127.0.0.1:${port}/mode/${mode}`);
  const body = await res.json();
  if (!res.ok || !body.ok) {
    throw new Error(`switch to ${mode} failed: ${JSON.stringify(body)}`);
  }
  return body;
}

function runWrk(port, seconds) {
  const r = spawnSync(opts.wrk, [
    `-t${opts.threads}`,
    `-c${opts.connections}`,
    `-d${seconds}s`,
    "-s",
    lua,
    `http://127.0.0.1:${port}${PATH}`,
  ], { encoding: "utf8", timeout: (seconds + 30) * 1000 });
  if (r.error || r.status !== 0) {
    throw new Error(`wrk failed: ${r.error?.message ?? r.stderr}`);
  }
  const line = r.stdout.split("\n").find((l) => l.startsWith("WRKJSON "));
  if (!line) throw new Error(`no WRKJSON line in wrk output: ${r.stdout}`);
  return JSON.parse(line.slice("WRKJSON ".length));
}

/** huge small file | file small huge | huge small file | ... */
function schedule(n) {
  const order = [];
  for (let b = 0; b < n; b++) {
    order.push(...(b % 2 ? [...MODES].reverse() : MODES));
  }
  return order;
}

const m = machine({ benchmark: "wrk" });
const tStart = performance.now();
const elapsed = () => ((performance.now() - tStart) / 1000).toFixed(0);
const perRuntime = {};

for (const runtime of opts.runtimes) {
  const srv = await startServer(runtime);
  const runs = [];
  try {
    progress(`${runtime}: warm-up ${warmup} s`);
    if (warmup > 0) runWrk(srv.port, warmup);
    const order = schedule(perMode);
    const seen = { huge: 0, small: 0, file: 0 };
    for (let i = 0; i < order.length; i++) {
      const mode = order[i];
      progress(
        `${runtime}: run ${
          i + 1
        }/${order.length} mode ${mode}  elapsed ${elapsed()} s`,
      );
      const sw = await setMode(srv.port, mode);
      await sleep(opts.settleMs);
      const w = runWrk(srv.port, duration);
      runs.push({
        index: i,
        mode,
        k: seen[mode]++,
        rps: w.rps,
        requests: w.requests,
        errors: w.errors,
        latencyUs: w.latency_us,
        switchMs: sw.ms,
        textHuge: sw.text?.huge ?? null,
        textBytes: sw.text?.bytes ?? null,
      });
    }
  } finally {
    srv.child.kill("SIGTERM");
  }
  const byMode = {};
  for (const mode of MODES) {
    const rs = runs.filter((r) => r.mode === mode).sort((a, b) => a.k - b.k);
    const rps = rs.map((r) => r.rps);
    byMode[mode] = {
      n: rs.length,
      rps,
      rpsMedian: median(rps),
      rpsMin: Math.min(...rps),
      rpsMax: Math.max(...rps),
      p50UsMedian: median(rs.map((r) => r.latencyUs.p50)),
      p99UsMedian: median(rs.map((r) => r.latencyUs.p99)),
      maxUsMax: Math.max(...rs.map((r) => r.latencyUs.max)),
      errors: rs.reduce(
        (n, r) => n + Object.values(r.errors).reduce((a, b) => a + b, 0),
        0,
      ),
      textHugeFraction: median(
        rs.map((r) => r.textBytes ? r.textHuge / r.textBytes : NaN),
      ),
      switchMsMedian: median(rs.map((r) => r.switchMs)),
    };
  }
  const ci = (a, b) =>
    ratioOfMedians(byMode[a].rps, byMode[b].rps, {
      paired: true,
      iterations: opts.bootstrap,
      seed: opts.seed,
    });
  perRuntime[runtime] = {
    command: commandFor(runtime).map((c) =>
      path.relative(process.cwd(), c) || c
    )
      .join(" "),
    byMode,
    ratios: {
      "huge/small": ci("huge", "small"),
      "huge/file": ci("huge", "file"),
      "small/file": ci("small", "file"),
    },
    runs,
  };
}
progressDone();

const result = {
  benchmark: "wrk",
  machine: m,
  settings: {
    quick: opts.quick,
    perMode,
    duration,
    connections: opts.connections,
    threads: opts.threads,
    settleMs: opts.settleMs,
    warmup,
    path: PATH,
    order: "blocks huge,small,file / file,small,huge alternating",
    bootstrap: opts.bootstrap,
    seed: opts.seed,
    wrk: spawnSync(opts.wrk, ["--version"], { encoding: "utf8" }).stdout
      .split("\n")[0],
  },
  runtimes: perRuntime,
  elapsedS: (performance.now() - tStart) / 1000,
};

const pct = (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : "n/a");
const md = [
  "# wrk on loopback: code on 2 MiB pages vs 4 KiB copy vs file mapping",
  "",
  ...machineMarkdown(m),
  `- ${result.settings.wrk}: \`wrk -t${opts.threads} -c${opts.connections} -d${duration}s\`, ${perMode} runs per mode, blocks huge,small,file / file,small,huge alternating, ${opts.settleMs} ms pause after each switch${
    opts.quick ? " (--quick)" : ""
  }`,
  `- took ${result.elapsedS.toFixed(0)} s`,
  "",
];
for (const [runtime, r] of Object.entries(perRuntime)) {
  md.push(
    `## ${runtime}`,
    "",
    ...mdTable(
      [
        "mode",
        "req/s median",
        "min",
        "max",
        "p50 µs",
        "p99 µs",
        "max µs",
        "errors",
        "text on 2 MiB",
        "switch ms",
      ],
      MODES.map((mode) => {
        const b = r.byMode[mode];
        return [
          mode,
          b.rpsMedian.toFixed(0),
          b.rpsMin.toFixed(0),
          b.rpsMax.toFixed(0),
          String(b.p50UsMedian),
          String(b.p99UsMedian),
          String(b.maxUsMax),
          String(b.errors),
          pct(b.textHugeFraction),
          b.switchMsMedian.toFixed(0),
        ];
      }),
    ),
    "",
  );
  md.push(
    ...mdTable(
      ["ratio of median req/s", "value [bootstrap 95% CI]"],
      Object.entries(r.ratios).map(([k, v]) => [k, fmtRatio(v)]),
    ),
    "",
  );
}
const markdown = md.join("\n");
if (!opts.noWrite) {
  const files = writeResults("wrk", result, markdown, opts.outDir);
  console.log(markdown);
  console.log(`\nwrote ${files.json}\nwrote ${files.md}`);
} else {
  console.log(markdown);
}
