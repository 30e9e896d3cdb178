/**
 * A tiny HTTP server with no page-primer code in it: the preload primes the
 * process before this module runs. From this directory:
 *
 *   bun main.ts                   # bunfig.toml here preloads ../../auto.ts
 *   deno task start               # deno.json here: deno run --preload ../../auto.ts
 *
 * The environment chooses what is done (`PAGE_PRIMER=remap,mlock`, ...;
 * see the README's "Zero-code preload"). `PORT` picks the port (default
 * 8000, 0 for any free one).
 *
 * @module
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import process from "node:process";

const port = Number(process.env.PORT ?? "8000");
const server = createServer((_req, res) => {
  res.end(`hello from pid ${process.pid}\n`);
});
server.listen(port, () => {
  const { port } = server.address() as AddressInfo;
  console.log(`listening on http://127.0.0.1:${port}/ (pid ${process.pid})`);
});
