/**
 * The `sqlquery` workload: the queries of an application on an in-memory
 * SQLite database (`node:sqlite` on Deno, `bun:sqlite` on Bun): inserts in
 * a transaction, indexed selects, a join with grouping and an aggregate,
 * then a rollback, so every op starts from the same database.
 *
 * @module
 */
import { openSqliteMemory } from "../runtime.ts";
import type { Workload } from "../workloads.ts";
import { fail } from "./fail.ts";

const CUSTOMERS = 1000;
const ORDERS = 10000;
const COUNTRIES = ["BR", "DE", "FR", "IN", "JP", "US"];
/** Orders inserted (and rolled back) per op. */
const NEW_ORDERS = 100;
/** Customers whose orders are selected by index per op. */
const LOOKUPS = 20;
/** The join covers orders of days [DAY_LO, DAY_HI]. */
const DAY_LO = 100;
const DAY_HI = 139;

/** Generated data: order `k` belongs to customer `cust(k)`. */
const cust = (k: number) => (k * 7) % CUSTOMERS;
const amount = (k: number) => 1 + (k * 37) % 500;
const day = (k: number) => k % 365;
const country = (c: number) => COUNTRIES[c % COUNTRIES.length];

interface Expected {
  perCustomer: Map<number, { n: number; sum: number }>;
  join: string;
  total: { n: number; sum: number; max: number };
}

/** The answers, computed from the generator in JavaScript. */
function expected(): Expected {
  const perCustomer = new Map<number, { n: number; sum: number }>();
  const byCountry = new Map<string, { n: number; sum: number }>();
  let n = 0, sum = 0, max = 0;
  const add = (c: number, a: number, d: number) => {
    const p = perCustomer.get(c) ?? { n: 0, sum: 0 };
    p.n++;
    p.sum += a;
    perCustomer.set(c, p);
    if (d >= DAY_LO && d <= DAY_HI) {
      const g = byCountry.get(country(c)) ?? { n: 0, sum: 0 };
      g.n++;
      g.sum += a;
      byCountry.set(country(c), g);
    }
    n++;
    sum += a;
    max = Math.max(max, a);
  };
  for (let k = 0; k < ORDERS; k++) add(cust(k), amount(k), day(k));
  for (let j = 0; j < NEW_ORDERS; j++) {
    add(j % LOOKUPS, 1000 + j, DAY_LO + (j % 40));
  }
  const join = [...byCountry.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([c, g]) => `${c}:${g.n}:${g.sum}`).join(",");
  return { perCustomer, join, total: { n, sum, max } };
}

export const sqlquery: Workload = {
  name: "sqlquery",
  description:
    `in-memory SQLite with ${CUSTOMERS} customers and ${ORDERS} orders: BEGIN, ${NEW_ORDERS} inserts, ${LOOKUPS} indexed selects, a join grouped by country, an aggregate, ROLLBACK`,
  async setup() {
    const db = await openSqliteMemory();
    db.exec(
      "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL);" +
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL REFERENCES customers (id), amount INTEGER NOT NULL, day INTEGER NOT NULL);" +
        "CREATE INDEX orders_customer ON orders (customer);" +
        "CREATE INDEX orders_day ON orders (day);",
    );
    const insC = db.prepare(
      "INSERT INTO customers (id, name, country) VALUES (?, ?, ?)",
    );
    const insO = db.prepare(
      "INSERT INTO orders (id, customer, amount, day) VALUES (?, ?, ?, ?)",
    );
    db.exec("BEGIN");
    for (let c = 0; c < CUSTOMERS; c++) {
      insC.run(c, `customer ${c}`, country(c));
    }
    for (let k = 0; k < ORDERS; k++) insO.run(k, cust(k), amount(k), day(k));
    db.exec("COMMIT");
    const byCustomer = db.prepare(
      "SELECT count(*) AS n, sum(amount) AS s FROM orders WHERE customer = ?",
    );
    const join = db.prepare(
      "SELECT c.country AS country, count(*) AS n, sum(o.amount) AS s FROM orders o JOIN customers c ON c.id = o.customer WHERE o.day BETWEEN ? AND ? GROUP BY c.country ORDER BY c.country",
    ) as unknown as { all(...p: number[]): unknown[] };
    const total = db.prepare(
      "SELECT count(*) AS n, sum(amount) AS s, max(amount) AS m FROM orders",
    );
    const want = expected();
    const once = () => {
      db.exec("BEGIN");
      for (let j = 0; j < NEW_ORDERS; j++) {
        insO.run(ORDERS + j, j % LOOKUPS, 1000 + j, DAY_LO + (j % 40));
      }
      for (let c = 0; c < LOOKUPS; c++) {
        const r = byCustomer.get(c) as { n: number; s: number };
        const w = want.perCustomer.get(c)!;
        if (r.n !== w.n || r.s !== w.sum) {
          fail("sqlquery", `customer ${c}: ${JSON.stringify(r)}`);
        }
      }
      const rows = join.all(DAY_LO, DAY_HI) as {
        country: string;
        n: number;
        s: number;
      }[];
      const got = rows.map((r) => `${r.country}:${r.n}:${r.s}`).join(",");
      if (got !== want.join) fail("sqlquery", `join ${got}`);
      const t = total.get() as { n: number; s: number; m: number };
      if (
        t.n !== want.total.n || t.s !== want.total.sum || t.m !== want.total.max
      ) fail("sqlquery", `aggregate ${JSON.stringify(t)}`);
      db.exec("ROLLBACK");
    };
    once();
    return {
      run(ops) {
        for (let o = 0; o < ops; o++) once();
      },
      close: () => db.close(),
    };
  },
};
