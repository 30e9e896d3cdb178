/**
 * Workloads of the in-process A/B benchmark. Each one does a fixed amount of
 * work per op, checks its result against a value known in advance (computed
 * arithmetically or a published test vector, not by the code under test),
 * and throws on a wrong result. Everything they need is built once in
 * `setup()`; `run(ops)` only works. Runtime differences come from
 * `./runtime.ts`, and for `tls` and `bundle` (Bun only) from their own
 * modules. The workloads
 * that exercise large native code (ICU, the Wasm compiler, SQLite, TLS, a
 * mixed request handler) live in `./workloads/`.
 *
 * @module
 */
import {
  openSqliteMemory,
  runtimeName,
  serveLoopback,
  tsTranspiler,
} from "./runtime.ts";
import { bundle } from "./workloads/bundle.ts";
import { fail } from "./workloads/fail.ts";
import { intl } from "./workloads/intl.ts";
import { medleyOf } from "./workloads/medley.ts";
import { mixed } from "./workloads/mixed.ts";
import { sqlquery } from "./workloads/sqlquery.ts";
import { tls } from "./workloads/tls.ts";
import { wasm } from "./workloads/wasm.ts";

/** A set-up workload, ready to be timed. */
export interface WorkloadRun {
  /** Does `ops` ops; throws on a wrong result. */
  run(ops: number): void | Promise<void>;
  /** Releases what `setup` made (a server, a database). */
  close(): void | Promise<void>;
}

/** A benchmark workload. */
export interface Workload {
  /** Short name, used by `--workloads`. */
  name: string;
  /** What one op does, on this runtime. */
  description: string;
  /** Builds the input, checks it once, returns the runner. */
  setup(): WorkloadRun | Promise<WorkloadRun>;
}

// ---------------------------------------------------------------- json

/** A deterministic JSON document of about 1 MB. */
export function jsonDocument(items = 4200): unknown {
  const list = [];
  for (let i = 0; i < items; i++) {
    list.push({
      id: i,
      name: `item-${i}`,
      active: i % 3 === 0,
      price: (i * 7919 % 10000) / 100,
      tags: [`t${i % 10}`, `u${i % 7}`, "ünïcödé ✓"],
      nested: {
        a: i * 2,
        b: [i, i + 1, i + 2, null, true],
        s: `lorem ipsum dolor sit amet, consectetur "adipiscing" elit ${i}`,
      },
      when: `2024-${String(1 + i % 12).padStart(2, "0")}-${
        String(1 + i % 28).padStart(2, "0")
      }T12:00:00Z`,
    });
  }
  return { version: 1, count: items, items: list };
}

const json: Workload = {
  name: "json",
  description: "JSON.parse + JSON.stringify of a ~1 MB document",
  setup() {
    const text = JSON.stringify(jsonDocument());
    return {
      run(ops) {
        for (let i = 0; i < ops; i++) {
          const v = JSON.parse(text) as {
            count: number;
            items: { id: number; nested: { a: number } }[];
          };
          const k = (i * 37) % v.count;
          if (v.items[k].id !== k || v.items[k].nested.a !== 2 * k) {
            fail("json", `item ${k}`);
          }
          if (JSON.stringify(v) !== text) fail("json", "round trip differs");
        }
      },
      close() {},
    };
  },
};

// ---------------------------------------------------------------- url

interface UrlCase {
  input: string;
  base?: string;
  hostname: string;
  port: string;
  pathname: string;
  y: string;
}

/** 1000 URLs of four shapes with their expected parts. */
export function urlCases(n = 1000): UrlCase[] {
  const out: UrlCase[] = [];
  for (let i = 0; i < n; i++) {
    const y = String(i * 2);
    switch (i % 4) {
      case 0:
        out.push({
          input: `https://user${i}:pa%20ss@Sub${i % 7}.Example${i % 13}.COM:${
            8000 + i
          }/a/b/../c${i}/./d?x=${i}&y=${y}&z=%20${i}#frag${i}`,
          hostname: `sub${i % 7}.example${i % 13}.com`,
          port: String(8000 + i),
          pathname: `/a/c${i}/d`,
          y,
        });
        break;
      case 1:
        out.push({
          input: `../q${i}/r?y=${y}`,
          base: `http://h${i}.test/p/q/r/s`,
          hostname: `h${i}.test`,
          port: "",
          pathname: `/p/q/q${i}/r`,
          y,
        });
        break;
      case 2:
        out.push({
          input: `HTTPS://xn--bcher-kva.example:443/ä ö/${i}?y=${y}`,
          hostname: "xn--bcher-kva.example",
          port: "",
          pathname: `/%C3%A4%20%C3%B6/${i}`,
          y,
        });
        break;
      default:
        out.push({
          input: `http://0x${(i % 256).toString(16)}.${i % 100}.1:${
            1000 + i
          }/x${i}/?y=${y}`,
          hostname: `${i % 256}.${i % 100}.0.1`,
          port: String(1000 + i),
          pathname: `/x${i}/`,
          y,
        });
    }
  }
  return out;
}

const url: Workload = {
  name: "url",
  description:
    "new URL() of 1000 URLs (relative, IDN, IPv4 forms, dot segments)",
  setup() {
    const cases = urlCases();
    return {
      run(ops) {
        for (let o = 0; o < ops; o++) {
          for (const c of cases) {
            const u = c.base === undefined
              ? new URL(c.input)
              : new URL(c.input, c.base);
            if (
              u.hostname !== c.hostname || u.port !== c.port ||
              u.pathname !== c.pathname || u.searchParams.get("y") !== c.y
            ) fail("url", `${c.input} gave ${u.href}`);
          }
        }
      },
      close() {},
    };
  },
};

// ---------------------------------------------------------------- text

const text: Workload = {
  name: "text",
  description:
    "TextEncoder.encode + encodeInto + TextDecoder.decode (fatal) of 70 KB of ASCII, Latin, CJK and emoji text",
  setup() {
    // 12 + 8 + 10 + 5 = 35 UTF-8 bytes per piece.
    const piece = "hello world grüße 日本語 😀 ";
    const reps = 2000;
    const str = piece.repeat(reps);
    const bytes = 35 * reps;
    const enc = new TextEncoder();
    const dec = new TextDecoder("utf-8", { fatal: true });
    const into = new Uint8Array(bytes);
    return {
      run(ops) {
        for (let i = 0; i < ops; i++) {
          const b = enc.encode(str);
          if (b.length !== bytes) fail("text", `encoded ${b.length} bytes`);
          const r = enc.encodeInto(str, into);
          if (r.written !== bytes || r.read !== str.length) {
            fail("text", "encodeInto");
          }
          if (dec.decode(b) !== str) fail("text", "decode differs");
        }
      },
      close() {},
    };
  },
};

// ---------------------------------------------------------------- regexp

const LEVELS = ["INFO", "WARN", "ERROR", "DEBUG"];
const WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];

/** A log of `n` lines with known numbers of emails, IPs, dates. */
export function logText(n: number): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    let line = `2024-${String(1 + i % 12).padStart(2, "0")}-${
      String(1 + i % 28).padStart(2, "0")
    } ${LEVELS[i % 4]} req=${i} `;
    if (i % 7 === 0) line += `from user.${i}@mail-${i % 5}.example.org `;
    if (i % 5 === 0) {
      line += `ip 10.${i % 256}.${(i * 7) % 256}.${(i * 13) % 256} `;
    }
    line += `${WORDS[i % 6]} ${WORDS[(i * 5) % 6]} ${WORDS[(i * 7 + 3) % 6]}`;
    lines.push(line);
  }
  return lines.join("\n");
}

const regexp: Workload = {
  name: "regexp",
  description:
    "5 RegExps (emails, IPv4, dates with groups, levels /i, replace callback) over a 3000-line log",
  setup() {
    const n = 3000;
    const log = logText(n);
    let emails = 0, ips = 0, days = 0, levels = 0, reqs = 0;
    for (let i = 0; i < n; i++) {
      if (i % 7 === 0) emails++;
      if (i % 5 === 0) ips++;
      days += 1 + i % 28;
      if (i % 4 === 1 || i % 4 === 2) levels++;
      reqs += i;
    }
    return {
      run(ops) {
        for (let o = 0; o < ops; o++) {
          const e = log.match(/\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b/g)?.length;
          if (e !== emails) fail("regexp", `${e} emails, want ${emails}`);
          const p = log.match(/\b(?:\d{1,3}\.){3}\d{1,3}\b/g)?.length;
          if (p !== ips) fail("regexp", `${p} IPs, want ${ips}`);
          let d = 0;
          for (const m of log.matchAll(/^(\d{4})-(\d{2})-(\d{2})/gm)) {
            d += Number(m[3]);
          }
          if (d !== days) fail("regexp", `days ${d}, want ${days}`);
          const l = log.match(/\b(?:error|warn)\b/gi)?.length;
          if (l !== levels) fail("regexp", `${l} levels, want ${levels}`);
          let r = 0;
          log.replace(/req=(\d+)/g, (_, id: string) => {
            r += Number(id);
            return "";
          });
          if (r !== reqs) fail("regexp", `req sum ${r}, want ${reqs}`);
        }
      },
      close() {},
    };
  },
};

// ---------------------------------------------------------------- digest

function hex(b: ArrayBuffer): string {
  return Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0"))
    .join("");
}

/** `byte[i] = (i * 131 + (i >>> 9)) & 255`, 256 KiB. */
export function digestInput(): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(256 * 1024);
  for (let i = 0; i < b.length; i++) b[i] = (i * 131 + (i >>> 9)) & 255;
  return b;
}

/** SHA-256 of `digestInput()` (computed with `sha256sum`). */
export const DIGEST_INPUT_SHA256 =
  "81ffb4a3835523b0ecbfe3eca121612bd5178078a7b9aeb5254a28b1689d74fc";

const digest: Workload = {
  name: "digest",
  description: "crypto.subtle.digest SHA-256 of 256 KiB (async)",
  async setup() {
    const abc = await crypto.subtle.digest(
      "SHA-256",
      new TextEncoder().encode("abc"),
    );
    // FIPS 180-2, appendix B.1.
    if (
      hex(abc) !==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    ) fail("digest", "SHA-256(abc)");
    const input = digestInput();
    const want = new Uint8Array(32);
    for (let i = 0; i < 32; i++) {
      want[i] = parseInt(DIGEST_INPUT_SHA256.slice(2 * i, 2 * i + 2), 16);
    }
    return {
      async run(ops) {
        for (let o = 0; o < ops; o++) {
          const got = new Uint8Array(
            await crypto.subtle.digest("SHA-256", input),
          );
          for (let i = 0; i < 32; i++) {
            if (got[i] !== want[i]) fail("digest", hex(got.buffer));
          }
        }
      },
      close() {},
    };
  },
};

// ---------------------------------------------------------------- gzip

async function pipeBytes(
  data: Uint8Array<ArrayBuffer>,
  transform: CompressionStream | DecompressionStream,
): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([data]).stream()
    .pipeThrough(transform);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const gzip: Workload = {
  name: "gzip",
  description:
    "CompressionStream + DecompressionStream gzip round trip of 256 KiB of log text (async)",
  setup() {
    const data = new TextEncoder().encode(logText(6000)).slice(0, 256 * 1024);
    if (data.length !== 256 * 1024) fail("gzip", "input too short");
    return {
      async run(ops) {
        for (let o = 0; o < ops; o++) {
          const z = await pipeBytes(data, new CompressionStream("gzip"));
          if (z[0] !== 0x1f || z[1] !== 0x8b || z.length > data.length / 3) {
            fail("gzip", `compressed to ${z.length} bytes`);
          }
          const back = await pipeBytes(z, new DecompressionStream("gzip"));
          if (back.length !== data.length) fail("gzip", "length differs");
          for (let i = 0; i < back.length; i++) {
            if (back[i] !== data[i]) fail("gzip", `byte ${i} differs`);
          }
        }
      },
      close() {},
    };
  },
};

// ---------------------------------------------------------------- sqlite

const sqlite: Workload = {
  name: "sqlite",
  description: `${
    runtimeName === "bun" ? "bun:sqlite" : "node:sqlite DatabaseSync"
  } in memory: 500 inserts in a transaction, an aggregate, 50 indexed lookups`,
  async setup() {
    const db = await openSqliteMemory();
    db.exec(
      "CREATE TABLE items (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, name TEXT NOT NULL, v INTEGER NOT NULL);" +
        "CREATE INDEX items_grp ON items (grp);",
    );
    const del = db.prepare("DELETE FROM items");
    const ins = db.prepare(
      "INSERT INTO items (id, grp, name, v) VALUES (?, ?, ?, ?)",
    );
    const agg = db.prepare(
      "SELECT count(*) AS n, sum(v) AS s, sum(length(name)) AS l FROM items WHERE grp < 10",
    );
    const one = db.prepare("SELECT name, v FROM items WHERE id = ?");
    const rows = 500;
    let n = 0, s = 0, l = 0;
    for (let k = 0; k < rows; k++) {
      if (k % 50 < 10) {
        n++;
        s += k * 3;
        l += `name-${k}`.length;
      }
    }
    return {
      run(ops) {
        for (let o = 0; o < ops; o++) {
          db.exec("BEGIN");
          del.run();
          for (let k = 0; k < rows; k++) ins.run(k, k % 50, `name-${k}`, k * 3);
          db.exec("COMMIT");
          const a = agg.get() as { n: number; s: number; l: number };
          if (a.n !== n || a.s !== s || a.l !== l) {
            fail("sqlite", `aggregate ${JSON.stringify(a)}`);
          }
          for (let k = 0; k < rows; k += 10) {
            const r = one.get(k) as { name: string; v: number } | undefined;
            if (r?.name !== `name-${k}` || r.v !== k * 3) {
              fail("sqlite", `row ${k}`);
            }
          }
        }
      },
      close: () => db.close(),
    };
  },
};

// ---------------------------------------------------------------- transpile

/**
 * A generated program of `n` blocks (interfaces, enums, generic classes),
 * as TypeScript and as the equivalent JavaScript, and what `main()` returns.
 */
export function generatedProgram(
  n = 300,
): { ts: string; js: string; expected: number } {
  const ts: string[] = [];
  const js: string[] = [];
  const calls: string[] = [];
  let expected = 0;
  for (let i = 0; i < n; i++) {
    ts.push(
      `interface Rec${i} { id: number; name: string; tags: readonly string[] }
type Key${i} = keyof Rec${i};
enum Kind${i} { A = ${i}, B, C }
/** Builds record ${i}. */
function f${i}(a: number, b: number): Rec${i} {
  const tags: string[] = [];
  for (let k = 0; k < (a % 3) + 1; k++) tags.push("t" + k);
  const key: Key${i} = "id";
  return { [key]: a * ${
        i % 17
      } + b + Kind${i}.B, name: "n${i}", tags } as Rec${i};
}
class C${i}<T extends number> {
  private readonly v: T;
  constructor(v: T) { this.v = v; }
  get(): T { return this.v; }
  twice(): number { return (this.v as number) * 2; }
}
`,
    );
    js.push(
      `const Kind${i} = { A: ${i}, B: ${i + 1}, C: ${i + 2} };
/** Builds record ${i}. */
function f${i}(a, b) {
  const tags = [];
  for (let k = 0; k < (a % 3) + 1; k++) tags.push("t" + k);
  const key = "id";
  return { [key]: a * ${i % 17} + b + Kind${i}.B, name: "n${i}", tags };
}
class C${i} {
  #v;
  constructor(v) { this.#v = v; }
  get() { return this.#v; }
  twice() { return this.#v * 2; }
}
`,
    );
    calls.push(`  s += f${i}(${i}, 1).id + new C${i}(${i}).twice();`);
    expected += i * (i % 17) + 1 + (i + 1) + 2 * i;
  }
  const main = `function main(): number {\n  let s = 0;\n${
    calls.join("\n")
  }\n  return s;\n}\n`;
  return {
    ts: ts.join("") + main,
    js: js.join("") + main.replace(": number", ""),
    expected,
  };
}

function evaluate(source: string): unknown {
  return new Function(`${source}\nreturn main();`)();
}

const transpile: Workload = {
  name: "transpile",
  description: runtimeName === "bun"
    ? "Bun.Transpiler (loader ts) transformSync of a generated 180 KB TypeScript source"
    : "new Function() of a generated 125 KB JavaScript source, then run it (V8 parse + compile of 600 functions)",
  setup() {
    const p = generatedProgram();
    if (evaluate(p.js) !== p.expected) fail("transpile", "generated JS");
    const transform = tsTranspiler();
    if (transform !== undefined) {
      const ref = transform(p.ts);
      if (evaluate(ref) !== p.expected) fail("transpile", "transpiled TS");
      return {
        run(ops) {
          for (let o = 0; o < ops; o++) {
            if (transform(p.ts) !== ref) fail("transpile", "output differs");
          }
        },
        close() {},
      };
    }
    let salt = 0;
    return {
      run(ops) {
        for (let o = 0; o < ops; o++) {
          // A distinct source each time: V8 caches compiled eval sources.
          const v = evaluate(`/* ${salt++} */\n${p.js}`);
          if (v !== p.expected) fail("transpile", `main() = ${v}`);
        }
      },
      close() {},
    };
  },
};

// ---------------------------------------------------------------- http

const http: Workload = {
  name: "http",
  description: `fetch() of ${
    runtimeName === "bun" ? "Bun.serve" : "Deno.serve"
  } on 127.0.0.1 in the same process, GET, 1 request per op`,
  setup() {
    const server = serveLoopback((req) => {
      const path = new URL(req.url).pathname;
      const n = Number(path.slice(3));
      return new Response(String(n * 2 + 1), {
        headers: { "content-type": "text/plain" },
      });
    });
    let i = 0;
    return {
      async run(ops) {
        for (let o = 0; o < ops; o++, i++) {
          const res = await fetch(`${server.origin}/n/${i}`);
          const body = await res.text();
          if (res.status !== 200 || body !== String(i * 2 + 1)) {
            fail("http", `GET /n/${i}: ${res.status} ${body}`);
          }
        }
      },
      close: () => server.close(),
    };
  },
};

/**
 * Every workload of this runtime, in run order. `bundle` is Bun's only:
 * Deno 2 has no bundler in its runtime API.
 */
export const WORKLOADS: readonly Workload[] = [
  json,
  url,
  text,
  regexp,
  digest,
  gzip,
  sqlite,
  transpile,
  http,
  intl,
  wasm,
  sqlquery,
  tls,
  mixed,
  ...(runtimeName === "bun" ? [bundle] : []),
  medleyOf([
    url,
    sqlquery,
    regexp,
    intl,
    digest,
    mixed,
    text,
    wasm,
    gzip,
    transpile,
  ]),
];
