// Under load: an HTTP server on loopback answers wrk for 30 s while its main
// thread cycles remap/restore (at least 100 times) and two Workers fetch
// from it, spawn subprocesses and allocate. Every response is checked (by
// wrk's Lua script and by the Workers): zero failures, zero crashes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import process from "node:process";
import { closed, ROOT, runtimePath, RUNTIMES } from "../helpers.ts";

const SECONDS = Number(process.env.PAGE_PRIMER_LOAD_SECONDS ?? 30);
const NO_WRK = spawnSync("wrk", ["--version"]).error
  ? "wrk is not installed (Debian package wrk; scripts/setup.sh installs it as root)"
  : false;
if (NO_WRK) console.log(`load_test: skipped: ${NO_WRK}`);

interface ServerReport {
  cycles: { done: number; failed: string[]; hugeMin: number };
  workers: {
    fetches: number;
    spawns: number;
    allocs: number;
    errors: string[];
  }[];
}

function startServer(rt: "deno" | "bun") {
  const script = `${ROOT}tests/fixtures/load_server.ts`;
  const argv = rt === "deno"
    ? [
      runtimePath("deno"),
      "run",
      "--allow-ffi",
      "--allow-net=127.0.0.1",
      `--allow-read=${ROOT}tests/fixtures`,
      "--allow-run=/bin/echo",
      script,
      "{}",
    ]
    : [runtimePath("bun"), script, "{}"];
  // Through /bin/sh: Deno's child_process adds -A to `deno run` otherwise.
  const q = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
  const child = spawn("/bin/sh", ["-c", `exec ${q}`], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  // Its exit code once its output is read to the end.
  const exited = closed(child).then((end) => {
    err += end.late;
    return end.code;
  });
  const listening = new Promise<number>((resolve, reject) => {
    const t = setInterval(() => {
      const m = /LISTENING (\d+)\n/.exec(out);
      if (m) {
        clearInterval(t);
        resolve(Number(m[1]));
      }
    }, 50);
    exited.then((code) => {
      clearInterval(t);
      reject(new Error(`server exited ${code}: ${err}`));
    });
  });
  return {
    listening,
    async finish(): Promise<
      { code: number | null; report: ServerReport; err: string }
    > {
      child.stdin!.end();
      const code = await exited;
      const m = /^OUTCOME (.*)\n/m.exec(out);
      assert.ok(m, `no report; exit ${code}; stderr: ${err}`);
      return { code, report: JSON.parse(m[1]), err };
    },
    kill: () => child.kill("SIGKILL"),
  };
}

function wrk(port: number): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const c = spawn("wrk", [
      "-t2",
      "-c16",
      `-d${SECONDS}s`,
      "--timeout",
      "5s",
      "-s",
      `${ROOT}tests/fixtures/load_check.lua`,
      `http://127.0.0.1:${port}/`,
    ], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    c.stdout!.on("data", (d) => (stdout += d));
    c.stderr!.on("data", (d) => (stdout += d));
    closed(c).then((end) =>
      resolve({ code: end.code, stdout: stdout + end.late })
    );
  });
}

for (const rt of RUNTIMES) {
  test(
    `${rt}: ${SECONDS} s of wrk while the server cycles remap/restore: no failed request, no crash`,
    { skip: NO_WRK },
    async () => {
      const server = startServer(rt);
      let port: number;
      try {
        port = await server.listening;
      } catch (e) {
        server.kill();
        throw e;
      }
      const load = await wrk(port);
      const { code, report, err } = await server.finish();
      assert.equal(code, 0, err);
      const m = /^CHECK (.*)\n/m.exec(load.stdout);
      assert.ok(m, load.stdout);
      const check = JSON.parse(m[1]);
      const w = report.workers;
      console.log(
        `${rt}: ${check.requests} requests in ${SECONDS} s (p99 ${
          (check.p99us / 1000).toFixed(1)
        } ms, max ${
          (check.maxus / 1000).toFixed(1)
        } ms), ${report.cycles.done} remap/restore cycles (text on 2 MiB pages >= ${
          (100 * report.cycles.hugeMin).toFixed(1)
        }% after each remap); workers: ${
          w.reduce((n, x) => n + x.fetches, 0)
        } fetches, ${w.reduce((n, x) => n + x.spawns, 0)} subprocesses, ${
          w.reduce((n, x) => n + x.allocs, 0)
        } allocations; failures: ${check.bad} bad responses, ${
          check.connect + check.read + check.write + check.timeout
        } socket errors, ${report.cycles.failed.length} failed cycles`,
      );
      assert.equal(load.code, 0);
      assert.ok(check.requests > 0);
      assert.equal(check.checked, check.requests);
      assert.deepEqual(
        {
          bad: check.bad,
          status: check.status,
          connect: check.connect,
          read: check.read,
          write: check.write,
          timeout: check.timeout,
        },
        { bad: 0, status: 0, connect: 0, read: 0, write: 0, timeout: 0 },
      );
      assert.deepEqual(report.cycles.failed, []);
      if (SECONDS >= 30) {
        assert.ok(report.cycles.done >= 100, `${report.cycles.done} cycles`);
      }
      assert.ok(
        report.cycles.hugeMin > 0.9,
        `text huge ${report.cycles.hugeMin}`,
      );
      for (const x of w) {
        assert.deepEqual(x.errors, []);
        assert.ok(x.fetches > 0 && x.spawns > 0 && x.allocs > 0);
      }
    },
  );
}
