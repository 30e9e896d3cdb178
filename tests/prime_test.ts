// prime() end to end: child processes of each runtime prime themselves and
// this process checks the kernel's view in /proc/<pid>/smaps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  isRoot,
  lockedIn,
  run,
  runtimeCommand,
  RUNTIMES,
  startChild,
} from "./helpers.ts";
import type { SegmentReport } from "../src/outcome.ts";
import { type Inspected, prime, runChosen } from "../src/prime.ts";

const NEEDS_ROOT = isRoot()
  ? false
  : "needs root: locking ~100 MiB exceeds a normal user's RLIMIT_MEMLOCK";
if (NEEDS_ROOT) console.log(`prime_test: some tests skipped: ${NEEDS_ROOT}`);

// The hard RLIMIT_MEMLOCK of this process, from /proc/self/limits.
function hardMemlock(): number {
  const line = readFileSync("/proc/self/limits", "utf8").split("\n")
    .find((l) => l.startsWith("Max locked memory"))!;
  const hard = line.trim().split(/\s+/)[4];
  return hard === "unlimited" ? Infinity : Number(hard);
}
const HARD_LIMIT_SKIP = hardMemlock() < 4 << 20
  ? "the hard RLIMIT_MEMLOCK is under 4 MiB: nothing to raise the soft limit to"
  : false;
if (HARD_LIMIT_SKIP) console.log(`prime_test: skipped: ${HARD_LIMIT_SKIP}`);

function textAndRodata(segments: SegmentReport[]): SegmentReport[] {
  const s = segments.filter((s) => s.kind === "text" || s.kind === "rodata");
  assert.ok(s.some((x) => x.kind === "text"), "no text segment reported");
  assert.ok(s.some((x) => x.kind === "rodata"), "no rodata segment reported");
  return s;
}

// Drops CAP_IPC_LOCK (root ignores RLIMIT_MEMLOCK with it) after setting limits.
function withoutIpcLock(limits: string): string {
  return isRoot()
    ? `${limits}; exec setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock --`
    : `${limits}; exec`;
}

for (const rt of RUNTIMES) {
  test(`${rt}: mlock(true) locks ≥ 99% of text and rodata, per smaps`, {
    skip: NEEDS_ROOT,
  }, async () => {
    const child = await startChild(rt, { mlock: true });
    try {
      const out = child.outcome;
      assert.equal(
        out.ok,
        true,
        JSON.stringify(out.segments.map((s) => s.error)),
      );
      const smaps = child.smaps();
      let bytes = 0;
      let locked = 0;
      for (const s of textAndRodata(out.segments)) {
        const k = lockedIn(smaps, s.start, s.end);
        assert.equal(k.unflagged, 0, `a VMA of ${s.kind} is not VM_LOCKED`);
        assert.equal(k.size, s.bytes, `${s.kind}: mapped size differs`);
        bytes += s.bytes;
        locked += k.lockedRss;
        // The library's own figure must agree with what we read (±1%).
        assert.ok(
          Math.abs(s.locked - k.lockedRss) <= s.bytes * 0.01,
          `${s.kind}: reported ${s.locked}, smaps says ${k.lockedRss}`,
        );
      }
      assert.ok(locked >= 0.99 * bytes, `locked ${locked} of ${bytes}`);
    } finally {
      const end = await child.finish();
      assert.equal(end.code, 0, end.stderr);
      assert.match(end.stdout, /ALIVE \d+/);
    }
  });

  test(`${rt}: mlock({ onFault: true }) flags the VMAs lock-on-fault without populating`, async () => {
    const child = await startChild(rt, { mlock: { onFault: true } });
    try {
      assert.equal(child.outcome.ok, true);
      assert.deepEqual(child.outcome.requested, ["mlock-onfault"]);
      const smaps = child.smaps();
      const text = child.outcome.segments.find((s) => s.kind === "text")!;
      const k = lockedIn(smaps, text.start, text.end, "lf");
      assert.equal(
        k.unflagged,
        0,
        "text VMA lacks the 'lf' (VM_LOCKONFAULT) flag",
      );
      // Not populated: a fresh runtime has touched well under all of its text.
      assert.ok(k.rss < 0.9 * text.bytes, `text rss ${k.rss} of ${text.bytes}`);
    } finally {
      await child.finish();
    }
  });

  test(`${rt}: populate(true) makes the segments resident without locking`, async () => {
    const child = await startChild(rt, { populate: true });
    try {
      const out = child.outcome;
      assert.equal(out.ok, true);
      const smaps = child.smaps();
      for (const s of textAndRodata(out.segments)) {
        const k = lockedIn(smaps, s.start, s.end);
        assert.ok(
          k.rss >= 0.99 * s.bytes,
          `${s.kind}: rss ${k.rss} of ${s.bytes}`,
        );
        assert.equal(k.lockedRss, 0, `${s.kind} got locked by populate`);
        assert.ok(s.residentBefore < s.resident, `${s.kind}: rss did not grow`);
      }
    } finally {
      await child.finish();
    }
  });

  test(`${rt}: the populate fallback (MADV_WILLNEED + touch) also makes text resident`, async () => {
    const child = await startChild(rt, { fallbackPopulate: true });
    try {
      const fallback = child.outcome.fallback as {
        method: string;
        error?: unknown;
      }[];
      assert.ok(
        fallback.every((r) => r.method === "willneed-touch" && !r.error),
      );
      const smaps = child.smaps();
      const text = child.outcome.segments.find((s) => s.kind === "text")!;
      const k = lockedIn(smaps, text.start, text.end);
      assert.ok(k.rss >= 0.99 * text.bytes, `rss ${k.rss} of ${text.bytes}`);
    } finally {
      await child.finish();
    }
  });

  test(`${rt}: a low RLIMIT_MEMLOCK fails text with the limit and the remedy, process goes on`, async () => {
    const child = await startChild(rt, { mlock: true }, {
      shellPrefix: withoutIpcLock("ulimit -l 1024"),
    });
    try {
      const out = child.outcome;
      assert.equal(out.ok, false);
      const text = out.segments.find((s) => s.kind === "text")!;
      assert.equal(text.status, "failed");
      assert.equal(text.error?.code, "ENOMEM");
      assert.match(text.error!.message, /RLIMIT_MEMLOCK is 1\.0 MiB/);
      assert.match(text.error!.message, /needs \d+\.\d MiB/);
      assert.match(text.error!.message, /ulimit -l \d+/);
      assert.match(text.error!.message, /LimitMEMLOCK=infinity/);
      assert.match(text.error!.message, /CAP_IPC_LOCK/);
      // The kernel agrees nothing of the text got locked.
      const k = lockedIn(child.smaps(), text.start, text.end);
      assert.equal(k.lockedRss, 0);
      assert.ok(
        out.segments.some((s) => s.status === "ok" || s.bytes > 1 << 20),
      );
    } finally {
      const end = await child.finish();
      assert.equal(end.code, 0, end.stderr);
      assert.match(end.stdout, /ALIVE \d+/);
    }
  });

  test(
    `${rt}: a soft limit below the hard limit is raised, and locking succeeds`,
    { skip: HARD_LIMIT_SKIP },
    async () => {
      // libc's segments (~2 MiB) fit under the usual 8 MiB hard limit.
      const child = await startChild(
        rt,
        { mlock: true, objects: ["libc.so"] },
        {
          shellPrefix: withoutIpcLock("ulimit -S -l 1024"),
        },
      );
      try {
        const out = child.outcome;
        assert.equal(
          out.ok,
          true,
          JSON.stringify(out.segments.map((s) => s.error)),
        );
        assert.ok(
          out.warnings.some((w) =>
            /raised the soft RLIMIT_MEMLOCK from 1\.0 MiB/.test(w)
          ),
          JSON.stringify(out.warnings),
        );
        assert.ok(out.segments.every((s) => /libc/.test(s.object)));
        const smaps = child.smaps();
        for (const s of out.segments.filter((s) => s.kind !== "data")) {
          const k = lockedIn(smaps, s.start, s.end);
          assert.equal(k.unflagged, 0, `${s.kind} of libc not locked`);
          assert.ok(k.lockedRss >= 0.99 * s.bytes);
        }
      } finally {
        await child.finish();
      }
    },
  );

  test(`${rt}: strict(true) turns a failed segment into a thrown PrimeError`, async () => {
    const child = await startChild(rt, { mlock: true, strict: true }, {
      shellPrefix: withoutIpcLock("ulimit -l 1024"),
    });
    try {
      assert.equal(child.outcome.thrown, "PrimeError");
      assert.equal(child.outcome.isPrimeError, true);
      assert.match(String(child.outcome.message), /RLIMIT_MEMLOCK/);
    } finally {
      const end = await child.finish();
      assert.equal(end.code, 0);
    }
  });

  test(`${rt}: PAGE_PRIMER=off makes run() a logged no-op`, async () => {
    const child = await startChild(rt, { mlock: true }, {
      env: { PAGE_PRIMER: "off" },
    });
    try {
      const out = child.outcome;
      assert.equal(out.disabled, true);
      assert.equal(out.ok, true);
      assert.match(String(out.reason), /PAGE_PRIMER=off/);
      assert.equal(out.segments.length, 0);
      const locked = child.smaps().filter((v) => v.vmFlags.includes("lo"));
      assert.equal(
        locked.length,
        0,
        "something got locked despite PAGE_PRIMER=off",
      );
    } finally {
      await child.finish();
    }
  });

  test(`${rt}: a PAGE_PRIMER value not accepted stops run(), naming it`, async () => {
    const child = await startChild(rt, { mlock: true }, {
      env: { PAGE_PRIMER: "mlock,bogus" },
    });
    try {
      const out = child.outcome;
      assert.equal(out.ok, false);
      assert.equal(out.disabled, false);
      assert.match(String(out.reason), /"bogus"/);
      assert.match(String(out.reason), /nothing done/);
      assert.equal(out.segments.length, 0);
      const locked = child.smaps().filter((v) => v.vmFlags.includes("lo"));
      assert.equal(locked.length, 0, "something got locked for a bad value");
    } finally {
      await child.finish();
    }
  });

  test(`${rt}: objects() selects shared libraries too`, async () => {
    const child = await startChild(rt, { objects: ["main", "libc.so"] });
    try {
      const out = child.outcome;
      assert.equal(out.ok, true);
      const paths = new Set(out.segments.map((s) => s.object));
      assert.ok(
        [...paths].some((p) => /libc\.so/.test(p)),
        [...paths].join(","),
      );
      assert.ok(
        out.segments.some((s) => s.kind === "text" && !/libc/.test(s.object)),
      );
      for (const s of out.segments) assert.equal(s.status, "inspected");
    } finally {
      await child.finish();
    }
  });
}

test("deno run --allow-ffi (and no other flag) runs the demo", {
  skip: NEEDS_ROOT,
}, async () => {
  const r = await run(runtimeCommand("deno", "examples/demo.ts"));
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /page-primer: deno [\d.]+, pid \d+.*: remap \+ mlock ok/,
  );
  assert.match(r.stderr, /r-x\s+text/);
  assert.match(r.stderr, /locked 100\.0% of/);
  assert.match(
    r.stderr,
    /on 2 MiB pages: text \d+\.\d of \d+\.\d MiB \((9\d\.\d|100\.0)%\)/,
  );
});

test("bun runs the demo with no flag", { skip: NEEDS_ROOT }, async () => {
  const r = await run(runtimeCommand("bun", "examples/demo.ts"));
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /page-primer: bun [\d.]+, pid \d+.*: remap \+ mlock ok/,
  );
  assert.match(
    r.stderr,
    /on 2 MiB pages: text \d+\.\d of \d+\.\d MiB \((9\d\.\d|100\.0)%\)/,
  );
});

test("deno without --allow-ffi: ok false, the reason names --allow-ffi, no crash", async () => {
  const cmd = runtimeCommand("deno", "examples/demo.ts").filter((a) =>
    a !== "--allow-ffi"
  );
  const r = await run(cmd);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /NOT OK/);
  assert.match(r.stderr, /--allow-ffi/);
  assert.doesNotMatch(r.stderr, /error: Uncaught/);
});

test("runChosen: the chooser sees the run's own inspection and sets its actions", () => {
  const look = prime().run();
  let seen: Inspected | undefined;
  const builder = prime();
  const out = runChosen(builder, (s) => {
    seen = s;
    builder.populate(true);
  });
  assert.ok(look.ok && out.ok, out.reason);
  assert.equal(seen!.bytes, look.totals.bytes);
  assert.equal(seen!.bytes, out.totals.bytes);
  assert.equal(seen!.locked, look.totals.locked);
  assert.ok(seen!.status.threads > 0);
  assert.deepEqual(out.requested, ["populate"]);
  assert.ok(out.segments.every((s) => s.actions.includes("populate")));
  // Without a chooser, nothing is asked: inspect only.
  assert.deepEqual(runChosen(prime(), () => {}).requested, []);
});
