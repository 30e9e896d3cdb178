/**
 * HTTP server for the memory-pressure benchmark (`bench/pressure/run.sh`), on
 * Deno (`Deno.serve`) or Bun (`Bun.serve`), listening on 127.0.0.1.
 *
 * `BENCH_MLOCK` in the environment chooses what is locked at startup:
 * unset, empty or `off`: nothing; `main` (or `1`): `prime().mlock(true)`,
 * the runtime executable's segments; `all`: `prime().objects("all")
 * .mlock(true)`, also libc and the other shared libraries.
 *
 *   deno run --allow-ffi --allow-net --allow-env=BENCH_MLOCK bench/pressure/server.ts [--port N]
 *   bun bench/pressure/server.ts [--port N]
 *
 * Prints one JSON line when ready: port, pid, runtime and the mlock outcome.
 * Each request does a mixed piece of work (URL, JSON, sha256, gzip,
 * TextEncoder, RegExp) so that it needs a broad part of the runtime's code,
 * and answers with a small JSON body.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import process from "node:process";
import { gunzipSync, gzipSync } from "node:zlib";
import { prime } from "../../mod.ts";

interface BunLike {
  serve(options: {
    port: number;
    hostname: string;
    fetch(req: Request): Response | Promise<Response>;
  }): { port: number };
}
const g = globalThis as unknown as { Bun?: BunLike };

const want = (process.env.BENCH_MLOCK ?? "").trim().toLowerCase();
let mlock: Record<string, unknown> = { mode: "off" };
if (want !== "" && want !== "off" && want !== "0") {
  if (want !== "main" && want !== "1" && want !== "all") {
    console.error(`BENCH_MLOCK must be off, main or all; got ${want}`);
    process.exit(2);
  }
  const p = prime();
  if (want === "all") p.objects("all");
  const out = p.mlock(true).run();
  mlock = {
    mode: want === "all" ? "all" : "main",
    ok: out.ok,
    reason: out.reason ?? null,
    bytes: out.totals.bytes,
    locked: out.totals.locked,
    ms: out.durations.totalMs,
    failed: out.segments.filter((s) => s.error).map((s) =>
      `${s.object} ${s.index}: ${s.error!.message}`
    ),
  };
  if (!out.ok) {
    console.error(`mlock failed: ${out.reason ?? ""}`);
    out.log();
  }
}

// Inputs for the per-request work.
const doc = JSON.stringify(
  Array.from({ length: 150 }, (_, i) => ({
    id: i,
    name: `name-${i}`,
    email: `user${i}@example.com`,
    tags: ["x", "y", String(i % 7)],
    score: (i * 13.7) % 100,
  })),
); // ~14 KB
const blob = Buffer.alloc(16 * 1024, 7);
const text = "Grüße aus Köln — naïve café, 東京 ".repeat(64);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const re = /user(\d+)@example\.com/g;

function work(url: URL): Record<string, unknown> {
  const n = Number(url.searchParams.get("n") ?? "0");
  const rows = JSON.parse(doc) as { id: number; email: string }[];
  rows[n % rows.length].id = n;
  const out = JSON.stringify(rows);
  const digest = createHash("sha256").update(blob).update(String(n))
    .digest("hex");
  const z = gzipSync(out.slice(0, 4096));
  const back = gunzipSync(z).length;
  const bytes = encoder.encode(text);
  const round = decoder.decode(bytes).length;
  let m = 0;
  for (const x of out.matchAll(re)) m += x[1].length;
  return {
    n,
    len: out.length,
    digest: digest.slice(0, 16),
    z: z.length,
    back,
    round,
    m,
  };
}

let served = 0;
function handle(req: Request): Response {
  const url = new URL(req.url);
  served++;
  if (url.pathname === "/stats") {
    return Response.json({ served, pid: process.pid });
  }
  return Response.json(work(url));
}

const i = process.argv.indexOf("--port");
const port = i >= 0 ? Number(process.argv[i + 1]) : 0;
const hostname = "127.0.0.1";
const runtime = g.Bun ? "bun" : "deno";
const ready = (p: number) =>
  console.log(
    JSON.stringify({ listening: p, pid: process.pid, runtime, mlock }),
  );
if (g.Bun) {
  ready(g.Bun.serve({ port, hostname, fetch: handle }).port);
} else {
  Deno.serve({ port, hostname, onListen: (a) => ready(a.port) }, handle);
}
