/**
 * An HTTP server (`Deno.serve`) that primes the Deno executable at startup:
 * its code and read-only data move onto 2 MiB pages before the first
 * request. It prints the outcome to stderr and `listening on <url>` to
 * stdout.
 *
 *   deno run --allow-ffi --allow-net --allow-env=PORT examples/deno_server.ts
 *   PORT=9000 deno run --allow-ffi --allow-net --allow-env=PORT examples/deno_server.ts
 *
 * `GET /` answers `hello from deno <version>`; `GET /primer` inspects the
 * process now (`prime().run()` with no action) and answers with the text
 * segment's address range and its bytes on 2 MiB pages, as JSON.
 *
 *   PAGE_PRIMER=remap deno run --allow-ffi --allow-net --allow-env=PORT --preload ./auto.ts examples/deno_server.ts
 *
 * Under the zero-code preload (the last command; see the README) auto.ts
 * remaps first; this server's own `run()` then finds every region
 * "already remapped by page-primer" and changes nothing.
 *
 * @module
 */
import { prime } from "../mod.ts";

const out = prime().remap(true).run();
out.log();

const raw = Deno.env.get("PORT") ?? "8000";
const port = Number(raw);
if (!/^\d+$/.test(raw) || port > 65535) {
  console.error(`PORT must be a number from 0 to 65535; got "${raw}"`);
  Deno.exit(2);
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
  return new Response(`hello from deno ${Deno.version.deno}\n`);
}

Deno.serve({
  port,
  onListen: ({ hostname, port }) =>
    console.log(`listening on http://${hostname}:${port}/`),
}, handle);
