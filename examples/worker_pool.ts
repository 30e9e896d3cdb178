/**
 * A pool of Workers doing CPU work in a process primed once, in the main
 * thread, before the pool starts. Workers are threads of the same process,
 * so they all run on the remapped code: each worker inspects the process
 * from its own thread and reports the text bytes it sees on 2 MiB pages.
 * The work is counting the primes below `--limit`, split in ranges.
 *
 *   deno run --allow-ffi --allow-read=examples,src,mod.ts examples/worker_pool.ts [--workers N] [--limit N] [--json] [--no-remap]
 *   bun examples/worker_pool.ts [--workers N] [--limit N] [--json] [--no-remap]
 *
 * Run from the repository root. Deno needs `--allow-read` for the worker's
 * module and its imports (Workers inherit the other permissions). `--json`
 * prints one JSON summary line instead of the text lines. The exit code is
 * 1 when a worker fails.
 *
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { prime } from "../mod.ts";

const USAGE =
  "usage: worker_pool.ts [--workers N] [--limit N] [--json] [--no-remap]";

function options() {
  try {
    return parseArgs({
      args: process.argv.slice(2),
      options: {
        workers: { type: "string" },
        limit: { type: "string", default: "10000000" },
        json: { type: "boolean", default: false },
        "no-remap": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }).values;
  } catch (e) {
    // A bad option: one line and exit code 2, not a stack trace.
    console.error(
      `worker_pool.ts: ${e instanceof Error ? e.message : e}; ${USAGE}`,
    );
    process.exit(2);
  }
}

const values = options();
if (values.help) {
  console.log(
    USAGE + "\n" +
      "  Remaps the runtime's code onto 2 MiB pages, then counts the primes\n" +
      "  below N (default 10000000) in a pool of Workers, each of which\n" +
      "  reports the code it sees on 2 MiB pages. --no-remap: skip the remap,\n" +
      "  to compare.",
  );
  process.exit(0);
}
function positive(name: string, raw: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || !Number.isSafeInteger(n)) {
    console.error(`--${name} must be a positive integer; got "${raw}"`);
    process.exit(2);
  }
  return n;
}
const workers = positive(
  "workers",
  values.workers ?? String(Math.max(2, navigator.hardwareConcurrency || 2)),
);
const limit = positive("limit", values.limit);

const mib = (b: number) => (b / 1048576).toFixed(1);

// The executable's code segments: their bytes, and how many are on 2 MiB pages.
function textOf(
  segments: readonly {
    kind: string;
    origin: string;
    bytes: number;
    huge: number;
  }[],
): { bytes: number; huge: number } {
  const text = segments.filter((s) => s.kind === "text" && s.origin === "load");
  return {
    bytes: text.reduce((n, s) => n + s.bytes, 0),
    huge: text.reduce((n, s) => n + s.huge, 0),
  };
}

// Prime once, in the main thread, before any worker exists.
const out = prime().remap(!values["no-remap"]).run();
const primedText = textOf(out.segments);
if (!values.json) {
  console.log(
    `${
      values["no-remap"]
        ? "not remapped (--no-remap)"
        : `primed (${out.ok ? "ok" : `NOT OK: ${out.reason}`})`
    }: text ${mib(primedText.huge)} of ${
      mib(primedText.bytes)
    } MiB on 2 MiB pages`,
  );
}

interface Seen {
  ok: boolean;
  reason?: string;
  textBytes: number;
  textHuge: number;
}
interface WorkerReport extends Seen {
  worker: number;
  ranges: number;
  primes: number;
}

// Ranges of equal size, several per worker so fast workers take more.
const step = Math.max(1, Math.ceil(limit / (workers * 8)));
const todo: { lo: number; hi: number }[] = [];
for (let lo = 0; lo < limit; lo += step) {
  todo.push({ lo, hi: Math.min(limit, lo + step) });
}

function runWorker(id: number): Promise<WorkerReport> {
  return new Promise((resolve, reject) => {
    const w = new Worker(
      new URL("./worker_pool_worker.ts", import.meta.url).href,
      { type: "module" },
    );
    const report: WorkerReport = {
      worker: id,
      ranges: 0,
      primes: 0,
      ok: false,
      textBytes: 0,
      textHuge: 0,
    };
    const next = () => {
      const job = todo.shift();
      if (job === undefined) {
        w.terminate();
        resolve(report);
      } else w.postMessage(job);
    };
    w.onmessage = (e: MessageEvent) => {
      const m = e.data as Seen & { ready?: true; count?: number };
      if (m.ready) {
        Object.assign(report, {
          ok: m.ok,
          reason: m.reason,
          textBytes: m.textBytes,
          textHuge: m.textHuge,
        });
      } else {
        report.ranges++;
        report.primes += m.count!;
      }
      next();
    };
    w.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      w.terminate();
      reject(new Error(`worker ${id}: ${e.message}`));
    };
  });
}

const t0 = performance.now();
let reports: WorkerReport[];
try {
  reports = await Promise.all(
    Array.from({ length: workers }, (_, i) => runWorker(i)),
  );
} catch (e) {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
}
const ms = performance.now() - t0;
const primes = reports.reduce((n, r) => n + r.primes, 0);

// After the work: the code is still where it was (nothing undid the copies).
const afterHuge = textOf(prime().run().segments).huge;

if (values.json) {
  console.log(JSON.stringify({
    runtime: out.runtime,
    pid: out.pid,
    primed: { ok: out.ok, reason: out.reason, text: primedText },
    limit,
    primes,
    ranges: reports.reduce((n, r) => n + r.ranges, 0),
    workers: reports,
    afterTextHuge: afterHuge,
    ms,
  }));
} else {
  for (const r of reports) {
    console.log(
      `worker ${r.worker}: sees text ${mib(r.textHuge)} of ${
        mib(r.textBytes)
      } MiB on 2 MiB pages; ${r.ranges} ranges, ${r.primes} primes`,
    );
  }
  console.log(
    `primes below ${limit}: ${primes} (${workers} workers, ${
      reports.reduce((n, r) => n + r.ranges, 0)
    } ranges, ${ms.toFixed(0)} ms); text on 2 MiB pages now: ${
      mib(afterHuge)
    } MiB`,
  );
}
