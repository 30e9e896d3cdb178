/**
 * An HTTP server (`Bun.serve`) that primes the Bun executable at startup:
 * its code and read-only data move onto 2 MiB pages before the first
 * request. It prints the outcome to stderr and `listening on <url>` to
 * stdout.
 *
 *   bun examples/bun_server.ts
 *   PORT=9000 bun examples/bun_server.ts
 *
 * `GET /` answers `hello from bun <version>`; `GET /primer` inspects the
 * process now (`prime().run()` with no action) and answers with the text
 * segment's address range and its bytes on 2 MiB pages, as JSON.
 *
 *   PAGE_PRIMER=remap bun --preload ./auto.ts examples/bun_server.ts
 *
 * Under the zero-code preload (the last command, or `preload` in
 * bunfig.toml; see the README) auto.ts remaps first; this server's own
 * `run()` then finds every region "already remapped by page-primer" and
 * changes nothing.
 *
 * @module
 */
import process from "node:process";
import { prime } from "../mod.ts";

// The few Bun APIs used here, typed locally so `deno check` needs no Bun types.
interface BunServer {
  hostname: string;
  port: number;
}
interface BunLike {
  version: string;
  serve(options: {
    port: number;
    fetch: (req: Request) => Response;
  }): BunServer;
}
const g = globalThis as unknown as { Bun?: BunLike };
if (g.Bun === undefined) {
  console.error(
    "bun_server.ts runs on Bun: bun examples/bun_server.ts (for Deno see examples/deno_server.ts)",
  );
  process.exit(2);
}
const bun = g.Bun;

const out = prime().remap(true).run();
out.log();

const raw = process.env.PORT ?? "8000";
const port = Number(raw);
if (!/^\d+$/.test(raw) || port > 65535) {
  console.error(`PORT must be a number from 0 to 65535; got "${raw}"`);
  process.exit(2);
}

const hex = (n: number) => "0x" + n.toString(16);

function handle(req: Request): Response {
  const url = new URL(req.url);
  if (url.pathname === "/primer") {
    const now = prime().run();
    const text = now.segments.filter((s) =>
      s.kind === "text" && s.origin === "load"
    );
    return Response.json({
      runtime: now.runtime,
      pid: now.pid,
      ok: now.ok,
      text: {
        bytes: text.reduce((n, s) => n + s.bytes, 0),
        huge: text.reduce((n, s) => n + s.huge, 0),
        ranges: text.map((s) => [hex(s.start), hex(s.end)]),
      },
    });
  }
  return new Response(`hello from bun ${bun.version}\n`);
}

const server = bun.serve({ port, fetch: handle });
console.log(`listening on http://${server.hostname}:${server.port}/`);
