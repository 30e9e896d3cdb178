// No JavaScript runs under the loader's lock. dl_iterate_phdr holds the
// loader's write lock while its callback runs; with a JavaScript callback
// the runtime may start a thread there (pthread_create waits for the
// loader's TLS lock) while a Worker's dlopen holds that lock and waits for
// the write lock, and the process hangs (seen about once in a hundred Bun
// runs of dlclose_stress_test). So page-primer hands dl_iterate_phdr only
// native callbacks: gdb, with a breakpoint on dl_iterate_phdr, finds every
// callback of a run inside a loaded object's sections, and some in
// page-primer's lister (loaded as /proc/<pid>/task/<pid>/fd/N).
import { test } from "node:test";
import assert from "node:assert/strict";
import { onPath, ROOT, run, runtimeCommand, RUNTIMES } from "../helpers.ts";

const GDB_TIMEOUT_MS = 120_000;

const gdb = onPath("gdb");

for (const rt of RUNTIMES) {
  test(
    `${rt}: every callback page-primer gives dl_iterate_phdr is native code`,
    { timeout: GDB_TIMEOUT_MS + 30_000 },
    async (t) => {
      if (gdb === undefined) {
        const why =
          "gdb is not installed (apt-get install gdb): the callbacks given to dl_iterate_phdr not checked";
        console.log(`${rt}: skipped: ${why}`);
        t.skip(why);
        return;
      }
      const r = await run([
        gdb,
        "-nx",
        "-batch",
        "-ex",
        `source ${ROOT}tests/fixtures/stress/dl_iterate_phdr_callbacks.py`,
        "-ex",
        "run",
        "--args",
        ...runtimeCommand(
          rt,
          `${ROOT}tests/fixtures/stress/loader_lock_child.ts`,
        ),
      ], { timeoutMs: GDB_TIMEOUT_MS });
      const output = `${r.stdout}\n${r.stderr}`.slice(-4000);
      assert.equal(r.timedOut, false, output);
      assert.equal(r.code, 0, output);
      assert.match(r.stdout, /^REMAPPED ok=true/m, output);
      assert.match(r.stdout, /^RESTORED [1-9]\d* failed=0$/m, output);
      assert.match(r.stdout, /exited normally/, output);
      const calls = r.stdout.split("\n").filter((l) =>
        l.startsWith("DL_ITERATE_PHDR_CALLBACK ")
      );
      assert.deepEqual(
        calls.filter((l) => l.endsWith(" OUTSIDE_EVERY_OBJECT")),
        [],
        "a callback outside every loaded object (a JavaScript callback) was given to dl_iterate_phdr",
      );
      // The lister loads as /proc/<pid>/task/<pid>/fd/N.
      const ours = calls.filter((l) =>
        / of \/proc\/\d+\/task\/\d+\/fd\/\d+$/.test(l)
      );
      assert.ok(
        ours.length >= 2,
        `page-primer's lister gave dl_iterate_phdr ${ours.length} callbacks (the trampoline lookup and objects("all") each list): ${output}`,
      );
      console.log(
        `${rt}: ${calls.length} calls of dl_iterate_phdr, ${ours.length} from page-primer's lister, none with a JavaScript callback`,
      );
    },
  );
}
