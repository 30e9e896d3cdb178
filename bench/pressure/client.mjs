// Closed-loop HTTP client for bench/pressure/run.sh (run with node, outside
// the cgroup): --concurrency loops, each sending the next request when the
// previous answer has been read in full, for --duration seconds, over
// keep-alive connections to 127.0.0.1. Prints one JSON line: requests,
// errors, latency percentiles (ms, measured here), the 10 slowest requests
// with their time offsets and requests per second over time.
//
//   node client.mjs --port N [--duration 8] [--concurrency 2] [--path /w]
import http from "node:http";
import process from "node:process";
import { parseArgs, percentileSorted } from "../node/common.mjs";

const HELP = `Usage: node bench/pressure/client.mjs --port N [options]
  --duration S      seconds of load (default 8)
  --concurrency N   parallel closed loops (default 2)
  --path P          request path (default /w; ?n=<counter> is appended)
  --timeout-ms N    per-request timeout (default 10000)`;

let o;
try {
  o = parseArgs(process.argv.slice(2), {
    port: { type: "number", default: 0 },
    duration: { type: "number", default: 8 },
    concurrency: { type: "number", default: 2 },
    path: { type: "string", default: "/w" },
    timeoutMs: { type: "number", default: 10000 },
    help: { type: "boolean", default: false },
  });
} catch (e) {
  console.error(`client.mjs: ${e.message}`);
  process.exit(2);
}
if (o.help || !o.port) {
  console.log(HELP);
  process.exit(o.help ? 0 : 2);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
const latencies = [];
const slow = [];
const perSecond = [];
let errors = 0;
let counter = 0;
const t0 = performance.now();
const end = t0 + o.duration * 1000;

function once() {
  return new Promise((resolve) => {
    const start = performance.now();
    const req = http.get({
      host: "127.0.0.1",
      port: o.port,
      path: `${o.path}?n=${counter++}`,
      agent,
      timeout: o.timeoutMs,
    }, (res) => {
      res.on("data", () => {});
      res.on("end", () => {
        const ms = performance.now() - start;
        if (res.statusCode !== 200) errors++;
        else {
          latencies.push(ms);
          const sec = Math.floor((start - t0) / 1000);
          perSecond[sec] = (perSecond[sec] ?? 0) + 1;
          slow.push({ ms, atS: (start - t0) / 1000 });
          if (slow.length > 50) {
            slow.sort((a, b) => b.ms - a.ms);
            slow.length = 10;
          }
        }
        resolve();
      });
      res.on("error", () => {
        errors++;
        resolve();
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => {
      errors++;
      resolve();
    });
  });
}

async function loop() {
  while (performance.now() < end) await once();
}

await Promise.all(Array.from({ length: o.concurrency }, loop));
const elapsed = (performance.now() - t0) / 1000;
agent.destroy();
latencies.sort((a, b) => a - b);
slow.sort((a, b) => b.ms - a.ms);
const round = (x) => Math.round(x * 1000) / 1000;
console.log(JSON.stringify({
  requests: latencies.length,
  errors,
  durationS: round(elapsed),
  rps: round(latencies.length / elapsed),
  concurrency: o.concurrency,
  latencyMs: {
    p50: round(percentileSorted(latencies, 50)),
    p90: round(percentileSorted(latencies, 90)),
    p99: round(percentileSorted(latencies, 99)),
    p999: round(percentileSorted(latencies, 99.9)),
    max: round(latencies[latencies.length - 1] ?? NaN),
    mean: round(latencies.reduce((s, x) => s + x, 0) / latencies.length),
  },
  slowest: slow.slice(0, 10).map((s) => ({
    ms: round(s.ms),
    atS: round(s.atS),
  })),
  perSecond: Array.from(perSecond, (x) => x ?? 0),
}));
