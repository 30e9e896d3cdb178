// gdb and a process that remapped. The trampoline is loaded under a name
// another process can open (/proc/<pid>/fd/N): gdb, reading the shared
// libraries of the program it runs, opens that name in its own process.
// Under /proc/self/fd/N it opened one of its own descriptors instead and
// blocked reading it forever. `gdb -batch -ex run` of a program that
// remaps and restores must complete, with the program's output.
import { test } from "node:test";
import assert from "node:assert/strict";
import { onPath, ROOT, run, runtimeCommand, RUNTIMES } from "../helpers.ts";

/** How long gdb may take; before the fix it never finished. */
const GDB_TIMEOUT_MS = 120_000;

const gdb = onPath("gdb");

/** Runs the program under gdb with `commands` (each an `-ex`). */
async function underGdb(rt: "deno" | "bun", commands: readonly string[]) {
  const program = runtimeCommand(
    rt,
    `${ROOT}tests/fixtures/stress/gdb_child.ts`,
  );
  const ex = commands.flatMap((c) => ["-ex", c]);
  const r = await run(
    [gdb!, "-nx", "-batch", ...ex, "--args", ...program],
    { timeoutMs: GDB_TIMEOUT_MS },
  );
  const output = `${r.stdout}\n${r.stderr}`.slice(-3000);
  assert.equal(
    r.timedOut,
    false,
    `gdb did not finish in ${GDB_TIMEOUT_MS / 1000} s: ${output}`,
  );
  assert.equal(r.code, 0, output);
  assert.match(r.stdout, /^REMAPPED ok=true regions=[1-9]/m, output);
  assert.match(r.stdout, /^RESTORED [1-9]\d* failed=0$/m, output);
  assert.match(r.stdout, /exited normally/, output);
  return { ...r, output };
}

/** Skips the test, saying why, when gdb is not installed. */
function skipWithoutGdb(rt: string, t: { skip(why: string): void }): boolean {
  if (gdb !== undefined) return false;
  const why =
    "gdb is not installed (apt-get install gdb): gdb under a remapped process not tested";
  console.log(`${rt}: skipped: ${why}`);
  t.skip(why);
  return true;
}

for (const rt of RUNTIMES) {
  test(
    `${rt}: gdb -batch -ex run of a program that remaps and restores completes`,
    {
      timeout: GDB_TIMEOUT_MS + 30_000,
    },
    async (t) => {
      if (skipWithoutGdb(rt, t)) return;
      const r = await underGdb(rt, ["run"]);
      console.log(
        `${rt}: gdb -batch -ex run completed in ${(r.ms / 1000).toFixed(1)} s`,
      );
    },
  );

  // Whether the old name hung gdb depended on which of gdb's own
  // descriptors had its number; that gdb can read the trampoline under the
  // name it was loaded by does not: a breakpoint in it resolves and hits.
  test(
    `${rt}: gdb reads the trampoline's symbols from the name it was loaded under`,
    {
      timeout: GDB_TIMEOUT_MS + 30_000,
    },
    async (t) => {
      if (skipWithoutGdb(rt, t)) return;
      const r = await underGdb(rt, [
        "set breakpoint pending on",
        "break pp_run",
        "run",
        "info sharedlibrary",
        "delete",
        "continue",
      ]);
      assert.match(
        r.stdout,
        /hit Breakpoint 1(?:\.\d+)?, .* in pp_run \(\) from \/proc\/\d+\/fd\/\d+$/m,
        r.output,
      );
      assert.match(
        r.stdout,
        /^0x[0-9a-f]+\s+0x[0-9a-f]+\s+Yes.*\/proc\/\d+\/fd\/\d+$/m,
        r.output,
      );
    },
  );
}
