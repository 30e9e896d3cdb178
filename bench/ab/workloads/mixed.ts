/**
 * The `mixed` workload: one request handler of the kind applications have,
 * called in-process with a `Request` and returning a `Response`: routing,
 * a JSON body, SQLite queries, Intl formatting in the client's locale, an
 * HMAC-SHA-256 signature and a gzip-compressed body. The caller decompresses,
 * verifies the signature and checks every field.
 *
 * @module
 */
import { openSqliteMemory, type SqlDb, type SqlStatement } from "../runtime.ts";
import type { Workload } from "../workloads.ts";
import { fail } from "./fail.ts";

const PRODUCTS = 500;
const LOCALES = ["en-US", "de-DE", "fr-FR", "ja-JP", "hi-IN", "pt-BR"];
const CURRENCIES = ["USD", "EUR", "EUR", "JPY", "INR", "BRL"];
/** Items in an order; requests cycle through `CYCLE` different orders. */
const ITEMS = 8;
const CYCLE = 60;

const price = (p: number) => 100 + (p * 7919) % 9900; // cents
const sku = (p: number) => `SKU-${String(p).padStart(5, "0")}`;

interface OrderBody {
  customer: number;
  locale: string;
  items: { sku: string; qty: number }[];
}

/** Request `r` of the cycle: its body and the total it must come to. */
function order(r: number): { body: OrderBody; cents: number } {
  const items = [];
  let cents = 0;
  for (let j = 0; j < ITEMS; j++) {
    const p = (r * 31 + j * 17) % PRODUCTS;
    const qty = 1 + (r + j) % 4;
    items.push({ sku: sku(p), qty });
    cents += price(p) * qty;
  }
  return {
    body: { customer: r % 50, locale: LOCALES[r % LOCALES.length], items },
    cents,
  };
}

async function gzip(data: Uint8Array<ArrayBuffer>, back = false) {
  const t = back
    ? new DecompressionStream("gzip")
    : new CompressionStream("gzip");
  const s = new Blob([data]).stream().pipeThrough(t);
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** `cents` as en-US formats US dollars, by hand: `$1,234.05`. */
function enUsDollars(cents: number): string {
  const whole = String(Math.floor(cents / 100)).replace(
    /\B(?=(\d{3})+$)/g,
    ",",
  );
  return `$${whole}.${String(cents % 100).padStart(2, "0")}`;
}

function hex(b: ArrayBuffer): string {
  return Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0"))
    .join("");
}

type Handler = (req: Request) => Promise<Response>;

/** The application: its routes over a product database. */
function app(db: SqlDb, key: CryptoKey): Handler {
  const bySku = db.prepare(
    "SELECT id, name, price FROM products WHERE sku = ?",
  );
  const history: SqlStatement = db.prepare(
    "SELECT count(*) AS n, coalesce(sum(total), 0) AS s FROM sales WHERE customer = ?",
  );
  const enc = new TextEncoder();
  const json = async (status: number, value: unknown) => {
    const body = enc.encode(JSON.stringify(value));
    const sig = hex(await crypto.subtle.sign("HMAC", key, body));
    return new Response(await gzip(body), {
      status,
      headers: {
        "content-type": "application/json",
        "content-encoding": "gzip",
        "x-signature": sig,
      },
    });
  };
  const quote = async (req: Request, id: string) => {
    const o = await req.json() as OrderBody;
    const locale = req.headers.get("accept-language") ?? "en-US";
    let cents = 0;
    const lines = o.items.map((it) => {
      const p = bySku.get(it.sku) as
        | { id: number; name: string; price: number }
        | undefined;
      if (p === undefined) throw new RangeError(`no product ${it.sku}`);
      cents += p.price * it.qty;
      return { id: p.id, name: p.name, qty: it.qty };
    });
    const h = history.get(o.customer) as { n: number; s: number };
    const currency = CURRENCIES[LOCALES.indexOf(locale)];
    return json(200, {
      quote: id,
      customer: o.customer,
      lines,
      cents,
      total: (cents / 100).toLocaleString(locale, {
        style: "currency",
        currency,
      }),
      date: new Date(Date.UTC(2024, 4, 17)).toLocaleDateString(locale, {
        dateStyle: "long",
        timeZone: "UTC",
      }),
      previous: h.n,
    });
  };
  const routes: [
    string,
    RegExp,
    (req: Request, m: string[]) => Promise<Response>,
  ][] = [
    ["GET", /^\/health$/, () => json(200, { ok: true })],
    ["GET", /^\/products\/([A-Z]+-\d+)$/, (_, m) => {
      const p = bySku.get(m[1]);
      return p === undefined
        ? json(404, { error: "no such product" })
        : json(200, p);
    }],
    ["POST", /^\/quotes\/(\w+)$/, (req, m) => quote(req, m[1])],
  ];
  return async (req) => {
    const path = new URL(req.url).pathname;
    for (const [method, re, handle] of routes) {
      const m = re.exec(path);
      if (m !== null && req.method === method) return await handle(req, m);
    }
    return json(404, { error: "not found" });
  };
}

async function seed(db: SqlDb): Promise<void> {
  db.exec(
    "CREATE TABLE products (id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL, price INTEGER NOT NULL);" +
      "CREATE TABLE sales (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL, total INTEGER NOT NULL);" +
      "CREATE INDEX sales_customer ON sales (customer);",
  );
  const ins = db.prepare(
    "INSERT INTO products (id, sku, name, price) VALUES (?, ?, ?, ?)",
  );
  const sale = db.prepare("INSERT INTO sales (customer, total) VALUES (?, ?)");
  db.exec("BEGIN");
  for (let p = 0; p < PRODUCTS; p++) {
    ins.run(p, sku(p), `Product ${p}`, price(p));
  }
  for (let s = 0; s < 2000; s++) sale.run(s % 50, s);
  db.exec("COMMIT");
  await Promise.resolve();
}

export const mixed: Workload = {
  name: "mixed",
  description:
    `a request handler called in-process: routing, JSON body, ${ITEMS} SQLite lookups + an aggregate, Intl currency and date, HMAC-SHA-256, gzip; the caller gunzips, verifies and checks (1 quote per op, 1 in 10 also a product GET)`,
  async setup() {
    const db = await openSqliteMemory();
    await seed(db);
    const key = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode("page-primer bench key, 32 bytes!"),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
    const handle = app(db, key);
    const dec = new TextDecoder();
    const call = async (req: Request, what: string) => {
      const res = await handle(req);
      const body = await gzip(new Uint8Array(await res.arrayBuffer()), true);
      const sig = res.headers.get("x-signature") ?? "";
      const bytes = new Uint8Array(sig.length / 2);
      for (let i = 0; i < bytes.length; i++) {
        bytes[i] = parseInt(sig.slice(2 * i, 2 * i + 2), 16);
      }
      if (!await crypto.subtle.verify("HMAC", key, bytes, body)) {
        fail("mixed", `${what}: bad signature`);
      }
      return { status: res.status, value: JSON.parse(dec.decode(body)) };
    };
    const post = (r: number) => {
      const o = order(r);
      return new Request(`http://app.test/quotes/q${r}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "accept-language": o.body.locale,
        },
        body: JSON.stringify(o.body),
      });
    };
    // Intl strings depend on the ICU version: the first answers, computed
    // before timing on the file-backed code, are the reference.
    const formatted: { total: string; date: string }[] = [];
    for (let r = 0; r < CYCLE; r++) {
      const { value } = await call(post(r), `quote ${r}`);
      formatted.push({ total: value.total, date: value.date });
    }
    const usd = enUsDollars(order(0).cents);
    if (formatted[0].total !== usd) {
      fail("mixed", `en-US total ${formatted[0].total}, want ${usd}`);
    }
    let i = 0;
    return {
      async run(ops) {
        for (let o = 0; o < ops; o++, i++) {
          const r = i % CYCLE;
          const want = order(r);
          const { status, value: v } = await call(post(r), `quote ${r}`);
          if (
            status !== 200 || v.quote !== `q${r}` || v.cents !== want.cents ||
            v.customer !== want.body.customer || v.previous !== 40 ||
            v.lines.length !== ITEMS || v.total !== formatted[r].total ||
            v.date !== formatted[r].date
          ) fail("mixed", `quote ${r}: ${status} ${JSON.stringify(v)}`);
          if (i % 10 === 0) {
            const p = (i * 13) % PRODUCTS;
            const got = await call(
              new Request(`http://app.test/products/${sku(p)}`),
              `product ${p}`,
            );
            if (got.status !== 200 || got.value.price !== price(p)) {
              fail("mixed", `product ${p}: ${JSON.stringify(got.value)}`);
            }
          }
        }
      },
      close: () => db.close(),
    };
  },
};
