// Process-wide state, per-Worker code. The record of what is remapped is
// one per process, so a remap done by one thread is restored from any
// other: by a second Worker after the first one ended, by the main thread
// after a Worker's remap, by a Worker after the main thread's; and Workers
// that remap at once as the first use share one trampoline. After each
// restore this process reads the child's /proc/<pid>/smaps and memory:
// every VMA of the executable's text is the executable's file again, with
// no AnonHugePages, and its bytes equal the file's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Buffer } from "node:buffer";
import {
  type Child,
  readMem,
  ROOT,
  runtimePath,
  RUNTIMES,
  startChild,
} from "../helpers.ts";
import {
  bytesSource,
  parseElfHeader,
  PF_X,
  PT_LOAD,
  readProgramHeaders,
} from "../../src/sys/elf.ts";
import { parseMaps, type SmapsVma } from "../../src/sys/maps.ts";

/** Fresh child processes per runtime, each going through every case. */
const ROUNDS = 5;
const PAGE = 4096;

/** The executable's file, and its text range in a child (from maps). */
interface Text {
  path: string;
  file: Uint8Array;
  start: number;
  end: number;
}

/** Where the executable's code is in `pid`, read before anything moved. */
function textOf(pid: number, path: string, file: Uint8Array): Text {
  const src = bytesSource(file);
  const loads = readProgramHeaders(src, parseElfHeader(src))
    .filter((p) => p.type === PT_LOAD);
  const code = loads.filter((p) => (p.flags & PF_X) !== 0);
  assert.equal(code.length, 1, "one executable LOAD segment");
  const first = loads.find((p) => p.offset === 0)!;
  const head = parseMaps(readFileSync(`/proc/${pid}/maps`, "utf8"))
    .find((v) => v.path === path && v.offset === 0);
  assert.ok(head, `${path} is not mapped in ${pid}`);
  const bias = head.start - (first.vaddr - (first.vaddr % PAGE));
  const start = bias + code[0].vaddr - (code[0].vaddr % PAGE);
  const end = Math.ceil((bias + code[0].vaddr + code[0].memsz) / PAGE) * PAGE;
  return { path, file, start, end };
}

/** The VMAs of `[start, end)`. */
function vmasOf(smaps: readonly SmapsVma[], t: Text): SmapsVma[] {
  return smaps.filter((v) => v.start < t.end && t.start < v.end);
}

/** Asserts the text runs from copies page-primer made, not the file. */
function assertOnCopy(child: Child, t: Text, step: string): void {
  const anon = vmasOf(child.smaps(), t).filter((v) => v.path !== t.path);
  const bytes = anon.reduce(
    (n, v) => n + Math.min(v.end, t.end) - Math.max(v.start, t.start),
    0,
  );
  assert.ok(
    bytes > (t.end - t.start) / 2,
    `${step}: only ${bytes} of ${t.end - t.start} bytes of text on a copy`,
  );
}

/** Asserts the text is the executable's file again, byte for byte. */
function assertOnFile(child: Child, t: Text, step: string): void {
  let at = t.start;
  for (const v of vmasOf(child.smaps(), t)) {
    const where = `${step}: 0x${v.start.toString(16)}-0x${v.end.toString(16)}`;
    assert.equal(v.start, at, `${where}: a hole before it`);
    assert.equal(v.path, t.path, `${where} is not the executable's file`);
    assert.equal(v.anonHugePages, 0, `${where} has AnonHugePages`);
    const mem = readMem(child.pid, v.start, v.end);
    const file = t.file.subarray(v.offset, v.offset + (v.end - v.start));
    assert.ok(
      Buffer.from(mem).equals(Buffer.from(file)),
      `${where}: bytes differ from the file`,
    );
    at = v.end;
  }
  assert.ok(at >= t.end, `${step}: text not mapped past 0x${at.toString(16)}`);
}

interface Remapped {
  tid: number;
  ok: boolean;
  reason?: string;
  small: boolean;
  regions: { kind: string; status: string; error?: string }[];
}

interface Restored {
  tid: number;
  restored: number;
  failed: unknown[];
  error?: string;
}

/** Who remaps and who restores, as commands to the child, in order. */
const CASES: { name: string; steps: string[] }[] = [
  {
    name:
      "a Worker's remap (the first use in the process), restored by a second Worker after the first ended",
    steps: ["spawn w1", "spawn w2", "remap w1", "end w1", "restore w2"],
  },
  {
    name:
      "a Worker's remap (the first use in the process), restored by the main thread after the Worker ended",
    steps: ["spawn w1", "remap w1", "end w1", "restore main"],
  },
  {
    name: "a Worker's remap, restored by the main thread",
    steps: ["spawn w1", "remap w1", "restore main"],
  },
  {
    name: "the main thread's remap, restored by a Worker",
    steps: ["spawn w1", "remap main", "restore w1"],
  },
  {
    name:
      "three Workers remap at once (the first use in the process: one trampoline, one record), restored by the main thread",
    steps: [
      "spawn w1",
      "spawn w2",
      "spawn w3",
      "remap w1+w2+w3",
      "restore main",
    ],
  },
];

/** How many trampolines `pid` has loaded (distinct memfds mapped). */
function trampolines(pid: number): number {
  return new Set(
    parseMaps(readFileSync(`/proc/${pid}/maps`, "utf8"))
      .filter((v) => v.path.startsWith("/memfd:page-primer-trampoline"))
      .map((v) => v.inode),
  ).size;
}

/** Runs one case in a fresh child, checking from outside after each step. */
async function runCase(
  rt: "deno" | "bun",
  exe: string,
  file: Uint8Array,
  steps: readonly string[],
): Promise<{ small: boolean }> {
  const child = await startChild(rt, {}, {
    script: "stress/worker_restore_child.ts",
    // The Workers' modules need read access.
    denoFlags: [`--allow-read=${ROOT}`],
  });
  try {
    const text = textOf(child.pid, exe, file);
    let small = false;
    let last = { tids: [] as number[], regions: 0 };
    for (const step of steps) {
      const out = JSON.parse(await child.ask(step, "DONE "));
      assert.equal(out.error, undefined, `${step}: ${out.error}`);
      if (step.startsWith("remap")) {
        const all: Remapped[] = out.all ?? [out];
        for (const r of all) assert.equal(r.ok, true, `${step}: ${r.reason}`);
        const moved = all.flatMap((r) =>
          r.regions.filter((g) => g.status === "remapped")
        );
        assert.ok(
          moved.some((g) => g.kind === "text"),
          `${step}: no text remapped: ${JSON.stringify(all)}`,
        );
        small ||= all.some((r) => r.small);
        assertOnCopy(child, text, step);
        assert.equal(
          trampolines(child.pid),
          1,
          `${step}: more than one trampoline loaded, so more than one lock and record`,
        );
        last = { tids: all.map((r) => r.tid), regions: moved.length };
      } else if (step.startsWith("restore")) {
        const back = out as Restored;
        assert.ok(!last.tids.includes(back.tid), `${step}: on another thread`);
        assert.deepEqual(back.failed, [], `${step}: ${JSON.stringify(back)}`);
        assert.equal(
          back.restored,
          last.regions,
          `${step}: restored ${back.restored} of the ${last.regions} regions threads ${last.tids} remapped`,
        );
        assertOnFile(child, text, step);
      }
    }
    const done = await child.finish();
    assert.equal(done.code, 0, done.stderr);
    return { small };
  } finally {
    await child.finish().catch(() => {});
  }
}

for (const rt of RUNTIMES) {
  for (const { name, steps } of CASES) {
    test(`${rt}: ${name}: the text is back on the file, ${ROUNDS} rounds`, {
      timeout: ROUNDS * 60_000,
    }, async () => {
      const exe = runtimePath(rt);
      const file = new Uint8Array(readFileSync(exe));
      const t0 = performance.now();
      let small = false;
      for (let round = 0; round < ROUNDS; round++) {
        try {
          small ||= (await runCase(rt, exe, file, steps)).small;
        } catch (e) {
          if (e instanceof Error) e.message = `round ${round}: ${e.message}`;
          throw e;
        }
      }
      console.log(
        `${rt}: ${
          steps.join(", ")
        }: ${ROUNDS} rounds, text back on the file byte for byte${
          small ? " (4 KiB copies: no 2 MiB pages here)" : ""
        }, ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
    });
  }
}
