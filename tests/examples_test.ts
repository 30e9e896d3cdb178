// Every example, run briefly the way its header says: the servers start,
// answer HTTP requests from this process and are stopped; the worker pool
// runs to completion. Whether the runtime's text is on 2 MiB pages is read
// from outside in /proc/<pid>/smaps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ROOT, runtimePath } from "./helpers.ts";
import {
  fileText,
  jsonLines,
  type Proc,
  startProc,
  textHugeShare,
} from "./fixtures/example_process.ts";

const MiB = 1024 * 1024;
const LISTENING = /^listening on http:\/\/[^\s/]+:(\d+)\/(?: \(pid (\d+)\))?$/m;

const DENO_SERVER = [
  "run",
  "--allow-ffi",
  "--allow-net",
  "--allow-env=PORT",
];

interface PrimerAnswer {
  runtime: string;
  pid: number;
  ok: boolean;
  text: { bytes: number; huge: number; ranges: [string, string][] };
}

async function get(port: number, path: string): Promise<Response> {
  return await fetch(`http://127.0.0.1:${port}${path}`);
}

// Waits for "listening on", then hands the port and the server's pid over.
async function serving(
  p: Proc,
  check: (port: number, pid: number) => Promise<void>,
): Promise<void> {
  let pid = p.pid;
  try {
    const m = await p.waitFor(LISTENING);
    if (m[2] !== undefined) p.adopt(pid = Number(m[2]));
    await check(Number(m[1]), pid);
  } finally {
    p.kill("SIGTERM", pid);
    if (pid !== p.pid) p.kill("SIGTERM");
    await p.exited;
  }
}

// The server's own inspection (/primer) and, independently, its smaps.
async function checkServer(
  rt: "deno" | "bun",
  port: number,
  pid: number,
): Promise<void> {
  const hello = await get(port, "/");
  assert.equal(hello.status, 200);
  assert.match(await hello.text(), new RegExp(`^hello from ${rt} \\d+\\.`));
  const res = await get(port, "/primer");
  const j = (await res.json()) as PrimerAnswer;
  assert.equal(j.pid, pid);
  assert.equal(j.ok, true);
  assert.ok(j.text.huge >= 0.9 * j.text.bytes, JSON.stringify(j.text));
  const segments = j.text.ranges.map(([s, e]) => ({
    kind: "text",
    origin: "load",
    start: parseInt(s, 16),
    end: parseInt(e, 16),
  }));
  const t = textHugeShare(pid, { segments });
  assert.ok(t.share >= 0.9, `smaps: ${t.huge} of ${t.bytes} on 2 MiB pages`);
}

for (const rt of ["deno", "bun"] as const) {
  const script = `${ROOT}examples/${rt}_server.ts`;
  const direct = rt === "deno"
    ? [runtimePath("deno"), ...DENO_SERVER, script]
    : [runtimePath("bun"), script];
  const preloaded = rt === "deno"
    ? [runtimePath("deno"), ...DENO_SERVER, "--preload", "./auto.ts", script]
    : [runtimePath("bun"), "--preload", "./auto.ts", script];

  test(`examples/${rt}_server.ts primes itself, serves, and its text is on 2 MiB pages`, async () => {
    const p = startProc(direct, { env: { PORT: "0", PAGE_PRIMER: undefined } });
    await serving(p, async (port, pid) => {
      assert.match(p.stderr(), /: remap ok\n/);
      assert.match(p.stderr(), /remap \(.*\): [1-9]\d* of \d+ region\(s\)/);
      await checkServer(rt, port, pid);
    });
  });

  test(`examples/${rt}_server.ts under --preload ./auto.ts: auto.ts remapped first, the server serves on 2 MiB-page text`, async () => {
    const p = startProc(preloaded, {
      env: { PORT: "0", PAGE_PRIMER: "remap", PAGE_PRIMER_LOG: "json" },
    });
    await serving(p, async (port, pid) => {
      const [pre] = jsonLines(p.stderr());
      assert.equal(pre.ok, true, pre.reason);
      assert.equal(pre.pid, pid);
      assert.ok(pre.remap!.regions.length >= 2);
      assert.ok(pre.remap!.regions.every((r) => r.status === "remapped"));
      // The server's own run() after it found nothing left to do.
      assert.match(p.stderr(), /remap \(.*\): 0 of 0 region\(s\)/);
      assert.match(p.stderr(), /already remapped by page-primer/);
      const t = textHugeShare(pid, pre);
      console.log(
        `${rt}_server under preload: text ${(t.huge / MiB).toFixed(1)} of ${
          (t.bytes / MiB).toFixed(1)
        } MiB on 2 MiB pages`,
      );
      assert.ok(t.share >= 0.9, `smaps: ${t.share}`);
      await checkServer(rt, port, pid);
    });
  });
}

// examples/preload: main.ts has no page-primer code; Bun preloads auto.ts
// through bunfig.toml (read from the current directory), Deno through the
// `start` task of deno.json.
const PRELOAD_DIR = `${ROOT}examples/preload`;
const preloadRuns = {
  bun: () => [runtimePath("bun"), "main.ts"],
  deno: () => [runtimePath("deno"), "task", "start"],
};

for (const rt of ["bun", "deno"] as const) {
  test(
    `examples/preload (${
      rt === "bun" ? "bunfig.toml" : "deno task start"
    }): main.ts runs primed and serves`,
    async () => {
      const p = startProc(preloadRuns[rt](), {
        cwd: PRELOAD_DIR,
        env: { PORT: "0", PAGE_PRIMER: "remap", PAGE_PRIMER_LOG: "json" },
      });
      await serving(p, async (port, pid) => {
        const res = await get(port, "/");
        assert.equal(await res.text(), `hello from pid ${pid}\n`);
        const [pre] = jsonLines(p.stderr());
        assert.ok(pre, `no outcome on stderr: ${p.stderr()}`);
        assert.equal(pre.ok, true, pre.reason);
        assert.equal(pre.pid, pid);
        const t = textHugeShare(pid, pre);
        assert.ok(t.share >= 0.9, `smaps: ${t.share}`);
      });
    },
  );

  test(`examples/preload (${rt}) with PAGE_PRIMER=off: main.ts serves unprimed`, async () => {
    const p = startProc(preloadRuns[rt](), {
      cwd: PRELOAD_DIR,
      env: { PORT: "0", PAGE_PRIMER: "off" },
    });
    await serving(p, async (port, pid) => {
      const res = await get(port, "/");
      assert.equal(await res.text(), `hello from pid ${pid}\n`);
      // No outcome at all, so measure the file-backed text by path.
      const ft = fileText(pid);
      assert.ok(ft.bytes > 50 * MiB, `file-backed text ${ft.bytes}`);
      assert.equal(ft.huge, 0);
    });
  });
}

interface PoolSummary {
  pid: number;
  primed: { ok: boolean; text: { bytes: number; huge: number } };
  limit: number;
  primes: number;
  ranges: number;
  workers: {
    worker: number;
    ranges: number;
    primes: number;
    ok: boolean;
    textBytes: number;
    textHuge: number;
  }[];
  afterTextHuge: number;
}

function pool(rt: "deno" | "bun", args: string[]): string[] {
  const script = `${ROOT}examples/worker_pool.ts`;
  return rt === "deno"
    ? [
      runtimePath("deno"),
      "run",
      "--allow-ffi",
      "--allow-read=examples,src,mod.ts",
      script,
      ...args,
    ]
    : [runtimePath("bun"), script, ...args];
}

for (const rt of ["deno", "bun"] as const) {
  test(`examples/worker_pool.ts (${rt}): 3 workers count the primes right, each on 2 MiB-page text`, async () => {
    const p = startProc(
      pool(rt, ["--json", "--workers", "3", "--limit", "2000000"]),
      { env: { PAGE_PRIMER: undefined } },
    );
    p.closeStdin();
    const code = await p.exited;
    assert.equal(code, 0, p.stderr());
    const s = JSON.parse(p.stdout()) as PoolSummary;
    assert.equal(s.primes, 148933); // π(2·10⁶)
    assert.equal(s.workers.length, 3);
    assert.equal(s.workers.reduce((n, w) => n + w.primes, 0), s.primes);
    assert.equal(s.workers.reduce((n, w) => n + w.ranges, 0), s.ranges);
    assert.equal(s.primed.ok, true);
    assert.ok(s.primed.text.huge >= 0.9 * s.primed.text.bytes);
    for (const w of s.workers) {
      assert.equal(w.ok, true);
      assert.equal(w.textBytes, s.primed.text.bytes);
      assert.ok(
        w.textHuge >= 0.9 * w.textBytes,
        `worker ${w.worker}: ${w.textHuge} of ${w.textBytes}`,
      );
    }
    assert.ok(s.afterTextHuge >= 0.9 * s.primed.text.bytes);
  });

  test(`examples/worker_pool.ts (${rt}) --no-remap: workers see the text on 4 KiB pages`, async () => {
    const p = startProc(
      pool(rt, ["--json", "--no-remap", "--workers", "2", "--limit", "100000"]),
      { env: { PAGE_PRIMER: undefined } },
    );
    p.closeStdin();
    const code = await p.exited;
    assert.equal(code, 0, p.stderr());
    const s = JSON.parse(p.stdout()) as PoolSummary;
    assert.equal(s.primes, 9592); // π(10⁵)
    for (const w of s.workers) {
      assert.ok(w.textBytes > 50 * MiB);
      assert.equal(w.textHuge, 0);
    }
  });

  test(`examples/worker_pool.ts (${rt}) text output`, async () => {
    const p = startProc(pool(rt, ["--workers", "2", "--limit", "1000"]), {
      env: { PAGE_PRIMER: undefined },
    });
    p.closeStdin();
    assert.equal(await p.exited, 0, p.stderr());
    assert.match(
      p.stdout(),
      /^primed \(ok\): text [\d.]+ of [\d.]+ MiB on 2 MiB pages$/m,
    );
    assert.match(
      p.stdout(),
      /^worker 1: sees text [\d.]+ of [\d.]+ MiB on 2 MiB pages; \d+ ranges, \d+ primes$/m,
    );
    assert.match(p.stdout(), /^primes below 1000: 168 \(2 workers, /m);
  });
}

// A mistyped option ends in one line naming it and exit code 2, not a stack
// trace.
for (const rt of ["deno", "bun"] as const) {
  test(`examples/demo.ts (${rt}) with an unknown option: one line, exit code 2`, async () => {
    const argv = rt === "deno"
      ? [runtimePath("deno"), "run", "--allow-ffi", "examples/demo.ts"]
      : [runtimePath("bun"), "examples/demo.ts"];
    const p = startProc([...argv, "--bogus"], { cwd: ROOT });
    p.closeStdin();
    const code = await p.exited;
    assert.equal(code, 2);
    assert.equal(p.stdout(), "");
    assert.match(
      p.stderr(),
      /^demo\.ts: Unknown option '--bogus'; usage: demo\.ts \[--json\].*\n$/,
    );
  });
}
