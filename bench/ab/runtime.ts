/**
 * The only module of the A/B benchmark that knows Deno from Bun: runtime
 * name and version, an HTTP server on loopback, an SQLite database, the
 * TypeScript transpiler (Bun only) and whether stderr is a terminal.
 *
 * Bun's APIs are typed here, minimally, by hand; `bun:sqlite` is loaded with
 * `import.meta.require` on Bun only, so Deno never resolves it.
 *
 * @module
 */
import { isatty } from "node:tty";

/** The part of Bun's global this benchmark uses. */
interface BunGlobal {
  version: string;
  revision?: string;
  serve(options: {
    hostname: string;
    port: number;
    fetch(req: Request): Response | Promise<Response>;
  }): { port: number; stop(closeActiveConnections?: boolean): unknown };
  Transpiler: new (options: { loader: "ts" }) => {
    transformSync(source: string): string;
  };
}

/** The part of `bun:sqlite` (and of `node:sqlite`) this benchmark uses. */
interface SqliteDatabase {
  exec(sql: string): unknown;
  prepare(sql: string): SqlStatement;
  close(): unknown;
}

/** A prepared statement. */
export interface SqlStatement {
  /** Executes with positional parameters. */
  run(...params: (number | string)[]): unknown;
  /** First row, or undefined/null when there is none. */
  get(...params: (number | string)[]): unknown;
}

/** An open SQLite database. */
export interface SqlDb {
  /** Runs one or more statements without results. */
  exec(sql: string): void;
  /** Prepares a statement. */
  prepare(sql: string): SqlStatement;
  /** Closes the database. */
  close(): void;
}

/** A running HTTP server on 127.0.0.1. */
export interface LoopbackServer {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  /** Stops it. */
  close(): Promise<void>;
}

const bun = (globalThis as { Bun?: BunGlobal }).Bun;
const isDeno = !bun && "Deno" in globalThis;

if (!bun && !isDeno) {
  throw new Error("bench/ab runs on Deno or Bun only");
}

/** `"deno"` or `"bun"`. */
export const runtimeName: "deno" | "bun" = bun ? "bun" : "deno";

/** Runtime version, e.g. `"2.9.6"`. */
export const runtimeVersion: string = bun ? bun.version : Deno.version.deno;

/** The JavaScript engine and its version. */
export const engine: string = bun ? "JavaScriptCore" : `V8 ${Deno.version.v8}`;

/** True when stderr is a terminal (progress is shown only then). */
export function stderrIsTerminal(): boolean {
  return isatty(2);
}

/**
 * Serves `handler` on 127.0.0.1, on a port the kernel picks.
 *
 * @example
 * ```ts
 * import { serveLoopback } from "./runtime.ts";
 * const s = serveLoopback(() => new Response("hi"));
 * console.log(await (await fetch(s.origin)).text()); // "hi"
 * await s.close();
 * ```
 */
export function serveLoopback(
  handler: (req: Request) => Response | Promise<Response>,
): LoopbackServer {
  if (bun) {
    const server = bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: handler,
    });
    return {
      origin: `http://127.0.0.1:${server.port}`,
      close: async () => {
        await server.stop(true);
      },
    };
  }
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    handler,
  );
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    close: () => server.shutdown(),
  };
}

/**
 * Opens an in-memory SQLite database: `bun:sqlite` on Bun, `node:sqlite`
 * (`DatabaseSync`) on Deno.
 */
export async function openSqliteMemory(): Promise<SqlDb> {
  let db: SqliteDatabase;
  if (bun) {
    const req = (import.meta as unknown as { require(id: string): unknown })
      .require;
    const mod = req("bun:sqlite") as {
      Database: new (path: string) => SqliteDatabase;
    };
    db = new mod.Database(":memory:");
  } else {
    const mod = await import("node:sqlite");
    db = new mod.DatabaseSync(":memory:") as unknown as SqliteDatabase;
  }
  return {
    exec: (sql) => void db.exec(sql),
    prepare: (sql) => db.prepare(sql),
    close: () => void db.close(),
  };
}

/**
 * Bun's TypeScript transpiler (`Bun.Transpiler`, loader `ts`), or
 * `undefined` on Deno, which has no transpiler API at run time.
 */
export function tsTranspiler(): ((source: string) => string) | undefined {
  if (!bun) return undefined;
  const t = new bun.Transpiler({ loader: "ts" });
  return (source) => t.transformSync(source);
}
