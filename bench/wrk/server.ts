/**
 * HTTP server for the wrk benchmark, on Deno (`Deno.serve`) or Bun
 * (`Bun.serve`). Every request does a little JSON and URL work and gets a
 * small JSON body. The server can move its own code between three modes
 * while it runs:
 *
 * - `huge`: `prime().remap(true)`, code on anonymous 2 MiB pages
 * - `small`: `prime().remap({ pageSize: "4k" })`, the same anonymous copy on
 *   4 KiB pages (isolates the page size from "anonymous copy vs file")
 * - `file`: `restore()`, the executable's file mapping again (the start state)
 *
 * Switch with `GET /mode/huge`, `/mode/small`, `/mode/file` (the answer is the
 * outcome as JSON: coverage, time, errors) or with a signal: SIGUSR2 huge,
 * SIGWINCH small, SIGHUP file (not SIGUSR1: Deno opens its inspector on it).
 * `GET /mode` tells the current mode.
 *
 *   deno run --allow-ffi --allow-net bench/wrk/server.ts [--port N] [--mode M]
 *   bun bench/wrk/server.ts [--port N] [--mode M]
 *
 * Prints one JSON line `{"listening":PORT,...}` on stdout when ready. Listens
 * on 127.0.0.1 only.
 *
 * @module
 */
import process from "node:process";
import { prime, restore } from "../../mod.ts";

type Mode = "huge" | "small" | "file";
const MODES: readonly Mode[] = ["huge", "small", "file"];

interface BunLike {
  serve(options: {
    port: number;
    hostname: string;
    fetch(req: Request): Response | Promise<Response>;
  }): { port: number; stop(): void };
}
const g = globalThis as unknown as { Bun?: BunLike };

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

let mode: Mode = "file";

interface Switch {
  ok: boolean;
  mode: Mode;
  from: Mode;
  ms: number;
  restored?: number;
  text?: { bytes: number; huge: number };
  rodata?: { bytes: number; huge: number };
  error?: string;
}

/** Moves the code to `target`; always restores first when not file-backed. */
function switchTo(target: Mode): Switch {
  const t0 = performance.now();
  const from = mode;
  const res: Switch = { ok: true, mode: target, from, ms: 0 };
  if (mode !== "file") {
    const r = restore();
    res.restored = r.restored;
    if (r.failed.length) {
      res.ok = false;
      res.error = `restore failed: ${
        r.failed.map((f) => f.message).join("; ")
      }`;
      res.ms = performance.now() - t0;
      return res;
    }
    mode = "file";
  }
  if (target !== "file") {
    const out = prime().remap(target === "huge" ? true : { pageSize: "4k" })
      .run();
    if (!out.ok || !out.remap) {
      res.ok = false;
      res.error = out.reason ?? "remap failed";
      // Whatever was remapped is undone, so the mode is known again.
      restore();
    } else {
      mode = target;
      res.text = { bytes: out.remap.text.bytes, huge: out.remap.text.huge };
      res.rodata = {
        bytes: out.remap.rodata.bytes,
        huge: out.remap.rodata.huge,
      };
    }
  }
  if (mode === "file" && res.ok) {
    // Inspect only: confirms the code is back on the file's small pages.
    const seg = prime().run().segments.filter((x) => x.kind === "text");
    res.text = {
      bytes: seg.reduce((n, x) => n + x.bytes, 0),
      huge: seg.reduce((n, x) => n + x.huge, 0),
    };
  }
  res.ms = performance.now() - t0;
  return res;
}

const catalog = JSON.stringify(
  Array.from({ length: 20 }, (_, i) => ({
    id: i,
    name: `item-${i}`,
    price: (i * 7.31) % 100,
    tags: ["a", "b", String(i % 3)],
  })),
);
let served = 0;

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

function handle(req: Request): Response {
  const url = new URL(req.url);
  const p = url.pathname;
  if (p.startsWith("/mode")) {
    const target = p.slice("/mode/".length) as Mode;
    if (p === "/mode") return json({ mode, served });
    if (!MODES.includes(target)) {
      return json({ error: `unknown mode; use ${MODES.join(", ")}` }, 404);
    }
    const r = switchTo(target);
    return json(r, r.ok ? 200 : 500);
  }
  // The request's own work: URL + JSON, a little of each.
  served++;
  const items = JSON.parse(catalog) as { id: number; price: number }[];
  const q = url.searchParams.get("q") ?? "";
  const page = Number(url.searchParams.get("page") ?? "1");
  const pick = items.filter((it) => (it.id + page) % 4 === 0);
  return json({
    path: p,
    q: q.toUpperCase(),
    page,
    count: pick.length,
    total: pick.reduce((s, it) => s + it.price, 0),
    first: pick[0],
  });
}

const port = Number(arg("port") ?? "0");
const hostname = "127.0.0.1";
const startMode = (arg("mode") ?? "file") as Mode;
if (!MODES.includes(startMode)) {
  console.error(`--mode must be one of ${MODES.join(", ")}`);
  process.exit(2);
}
const initial = startMode === "file" ? undefined : switchTo(startMode);
if (initial && !initial.ok) {
  console.error(`switching to ${startMode} failed: ${initial.error}`);
  process.exit(1);
}

const signals: [string, Mode][] = [
  ["SIGUSR2", "huge"],
  ["SIGWINCH", "small"],
  ["SIGHUP", "file"],
];
for (const [sig, m] of signals) {
  process.on(sig, () => {
    const r = switchTo(m);
    console.error(`${sig}: ${JSON.stringify(r)}`);
  });
}

const runtime = g.Bun ? "bun" : "deno";
function ready(actualPort: number) {
  console.log(
    JSON.stringify({ listening: actualPort, runtime, pid: process.pid, mode }),
  );
}
if (g.Bun) {
  const server = g.Bun.serve({ port, hostname, fetch: handle });
  ready(server.port);
} else {
  Deno.serve({
    port,
    hostname,
    onListen: (addr) => ready(addr.port),
  }, handle);
}
