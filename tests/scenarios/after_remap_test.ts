// fork/exec and threads after a remap: node:child_process works, the
// runtime's executable can be exec'd again (it maps its file afresh), and a
// Worker started after the swap runs correct code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RUNTIMES, startChild } from "../helpers.ts";

for (const rt of RUNTIMES) {
  test(`${rt}: after a remap, subprocesses, a re-exec of the runtime and a new Worker work`, async () => {
    const child = await startChild(rt, {}, {
      script: "after_remap_child.ts",
      denoFlags: ["--allow-run", "--allow-read", "--allow-env"],
    });
    const end = await child.finish();
    assert.equal(end.code, 0, end.stderr);
    const o = child.outcome as Record<string, unknown>;
    assert.equal(o.ok, true);
    assert.ok((o.huge as number) > 0, "nothing on 2 MiB pages");
    assert.equal(o.childProcess, "from-child");
    assert.equal(o.reexec, "42");
    assert.deepEqual(o.worker, { good: 5000 });
  });
}
