// Shared mode: processes running the same executable at the same layout map
// one checked copy (ShmemPmdMapped, bytes equal the file, PSS split between
// them); a tampered, foreign-owned or loosely permitted copy is rejected and
// the process runs on a private copy; unused copies are evicted.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import process from "node:process";
import { hugeBytes, type SmapsVma, sumIn } from "../src/sys/maps.ts";
import {
  copyName,
  copyPrefix,
  copyProblem,
  defaultShareDir,
  dirProblem,
} from "../src/remap/share.ts";
import { prime, type PrimeOutcomeData } from "../mod.ts";
import {
  isRoot,
  type RemapChildReport,
  removeLeftovers,
  RUNTIMES,
  startChild,
} from "./helpers.ts";

const HUGE = 2 * 1024 * 1024;
const PREFIX = "/dev/shm/page-primer-test-";
const BASE = `${PREFIX}${process.pid}`;
// Copies left by a run that was killed (its pid is gone) take RAM until
// removed.
removeLeftovers(PREFIX);
const made: string[] = [];
after(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

// A test body with a fresh directory, removed when the body ends (the
// file-level after() does not run under every --filter).
function inFreshDir(tag: string, body: (dir: string) => Promise<void>) {
  return async () => {
    const dir = freshDir(tag);
    try {
      await body(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

function freshDir(tag: string): string {
  const d = `${BASE}-${tag}`;
  made.push(d);
  rmSync(d, { recursive: true, force: true });
  return d;
}

// Same layout in every child: no ASLR (deno is PIE; bun is not and does
// not need it, but it does no harm).
const SAME_LAYOUT = "exec setarch -R";

function remapOf(child: { outcome: unknown }): PrimeOutcomeData {
  const rep = child.outcome as unknown as RemapChildReport;
  return rep.results[0].remap!;
}

function copyVmas(smaps: readonly SmapsVma[], dir: string): SmapsVma[] {
  return smaps.filter((v) => v.path.startsWith(dir + "/"));
}

// --- pure checks -----------------------------------------------------------

const st = {
  dev: 0,
  ino: 0,
  size: 4 * HUGE,
  nlink: 1,
  mode: 0o100600,
  uid: 1000,
};

test("copyProblem accepts only a regular, owner-only, single-link file of the size", () => {
  assert.equal(copyProblem(st, 1000, 4 * HUGE), undefined);
  assert.equal(
    copyProblem({ ...st, mode: 0o100400 }, 1000, 4 * HUGE),
    undefined,
  );
  assert.match(copyProblem({ ...st, uid: 0 }, 1000, 4 * HUGE)!, /uid 0/);
  assert.match(
    copyProblem({ ...st, mode: 0o100620 }, 1000, 4 * HUGE)!,
    /mode 620/,
  );
  assert.match(
    copyProblem({ ...st, mode: 0o100604 }, 1000, 4 * HUGE)!,
    /mode 604/,
  );
  assert.match(copyProblem({ ...st, nlink: 2 }, 1000, 4 * HUGE)!, /2 links/);
  assert.match(
    copyProblem({ ...st, mode: 0o120777 }, 1000, 4 * HUGE)!,
    /regular/,
  );
  assert.match(copyProblem(st, 1000, 2 * HUGE)!, /not 4194304/);
});

test("dirProblem wants an owner-only directory on an exec mount", () => {
  const d = { ...st, mode: 0o40700, nlink: 2 };
  assert.equal(dirProblem(d, 1000, 0), undefined);
  assert.match(dirProblem({ ...d, mode: 0o40755 }, 1000, 0)!, /mode is 755/);
  assert.match(dirProblem({ ...d, uid: 0 }, 1000, 0)!, /uid 0/);
  assert.match(
    dirProblem({ ...d, mode: 0o100700 }, 1000, 0)!,
    /not a directory/,
  );
  assert.match(dirProblem(d, 1000, 8 /* ST_NOEXEC */)!, /noexec/);
});

test("copy names carry the executable, its build-id and the layout", () => {
  const layout = {
    len: 2 * HUGE,
    head: 0x1000,
    dataLen: 0x3000,
    fileOffset: 0x5000,
  };
  const a = copyName("/usr/bin/deno", "ab12", layout);
  assert.equal(a, `${copyPrefix("/usr/bin/deno")}.ab12.5000+3000.1000+400000`);
  assert.match(copyPrefix("/usr/bin/deno"), /^deno-[0-9a-f]{8}$/);
  assert.notEqual(copyPrefix("/usr/bin/deno"), copyPrefix("/opt/deno"));
  assert.notEqual(copyName("/usr/bin/deno", "ab13", layout), a);
  assert.notEqual(copyName("/usr/bin/deno", "ab12", { ...layout, head: 0 }), a);
  assert.equal(defaultShareDir(7, undefined), "/dev/shm/page-primer-7");
  assert.equal(defaultShareDir(7, "/run/user/7/"), "/run/user/7/page-primer");
  assert.equal(defaultShareDir(7, "relative"), "/dev/shm/page-primer-7");
});

// --- real processes --------------------------------------------------------

for (const rt of RUNTIMES) {
  test(
    `${rt}: share: two processes map one checked copy on 2 MiB pages and split its PSS`,
    inFreshDir(`${rt}-pss`, async (dir) => {
      const steps = [{ remap: { share: { dir } } }, "verify"];
      const opts = { script: "remap_child.ts", shellPrefix: SAME_LAYOUT };
      const a = await startChild(rt, steps, opts);
      let b: Awaited<ReturnType<typeof startChild>> | undefined;
      try {
        const outA = remapOf(a);
        assert.equal(outA.ok, true, outA.reason);
        const shareA = outA.remap!.share!;
        const regions = outA.remap!.regions.length;
        assert.ok(regions >= 2);
        assert.deepEqual(
          {
            created: shareA.created,
            reused: shareA.reused,
            rejected: shareA.rejected,
          },
          { created: regions, reused: 0, rejected: [] },
        );
        assert.equal(
          (a.outcome as unknown as RemapChildReport).results[1].verify!
            .mismatches,
          0,
        );
        // The directory and the files: ours, owner-only.
        const uid = process.getuid!();
        const dst = statSync(dir);
        assert.equal(dst.mode & 0o777, 0o700);
        assert.equal(dst.uid, uid);
        const files = readdirSync(dir);
        assert.equal(files.length, regions);
        for (const f of files) {
          const s = statSync(`${dir}/${f}`);
          assert.equal(s.mode & 0o077, 0, `${f} mode ${s.mode.toString(8)}`);
          assert.equal(s.uid, uid);
        }
        // The kernel's view: the copies are read-only shared mappings of
        // those files, on 2 MiB pages.
        const smapsA = a.smaps();
        const vmasA = copyVmas(smapsA, dir);
        assert.ok(vmasA.length >= regions);
        for (const v of vmasA) {
          assert.ok(v.shared && !v.write, `${v.perms} ${v.path}`);
        }
        const text = outA.segments.find((s) =>
          s.kind === "text" && s.origin === "load"
        )!;
        const cov = sumIn(smapsA, text.start, text.end, hugeBytes) / text.bytes;
        const best = (Math.floor(text.end / HUGE) * HUGE - text.start) /
          text.bytes;
        assert.ok(cov >= Math.min(0.97, best) - 0.001, `text ${cov}`);

        b = await startChild(rt, steps, opts);
        const outB = remapOf(b);
        assert.equal(outB.ok, true, outB.reason);
        assert.equal(outB.remap!.share!.reused, regions);
        assert.equal(outB.remap!.share!.created, 0);
        assert.equal(
          (b.outcome as unknown as RemapChildReport).results[1].verify!
            .mismatches,
          0,
        );
        const vmasB = copyVmas(b.smaps(), dir);
        assert.deepEqual(
          vmasB.map((v) => v.inode).sort(),
          vmasA.map((v) => v.inode).sort(),
        );
        // Two mappers: each is charged about half of the copy's pages.
        const after = copyVmas(a.smaps(), dir);
        const rss = after.reduce((n, v) => n + v.rss, 0);
        const pss = after.reduce((n, v) => n + v.pss, 0);
        console.log(
          `${rt}: shared copy ${
            (rss / 2 ** 20).toFixed(1)
          } MiB resident, PSS per process ${
            (pss / 2 ** 20).toFixed(1)
          } MiB with two mappers, text ${
            (100 * cov).toFixed(1)
          }% on 2 MiB pages`,
        );
        assert.ok(
          Math.abs(pss - rss / 2) <= rss * 0.05,
          `pss ${pss} rss ${rss}`,
        );
      } finally {
        // Both end before either is judged: a failed check must not leave
        // the other running (and mapping its copies) until the runner exits.
        const endA = await a.finish();
        const endB = await b?.finish();
        assert.match(endA.stdout, /ALIVE \d+/);
        if (endB) assert.match(endB.stdout, /ALIVE \d+/);
      }
    }),
  );

  test(
    `${rt}: share rejects a tampered, foreign-owned or group-writable copy and an open directory; the process runs on a private copy`,
    inFreshDir(`${rt}-tamper`, async (dir) => {
      const steps = [{ remap: { share: { dir } } }, "verify"];
      const opts = { script: "remap_child.ts", shellPrefix: SAME_LAYOUT };
      const first = await startChild(rt, steps, opts);
      let textRegion;
      try {
        textRegion = remapOf(first).remap!.regions.find((r) =>
          r.kind === "text"
        )!;
      } finally {
        await first.finish();
      }
      const textFile = `${dir}/${textRegion.shared!.split("/").pop()}`;
      assert.ok(existsSync(textFile));

      // Runs a child that must reject the copy for `why`, and still run.
      const rejects = async (why: RegExp, offWhole = false) => {
        const child = await startChild(rt, steps, opts);
        try {
          const out = remapOf(child);
          assert.equal(out.ok, true, out.reason);
          const share = out.remap!.share!;
          assert.ok(
            share.rejected.some((r) => why.test(r)),
            JSON.stringify(share.rejected),
          );
          assert.ok(out.remap!.warnings.some((w) => why.test(w)));
          const text = out.remap!.regions.find((r) => r.kind === "text")!;
          assert.equal(text.status, "remapped");
          assert.equal(text.shared, undefined);
          // Its text runs from a private memfd copy, not from the file.
          const vmas = child.smaps().filter((v) =>
            v.start < text.end && text.start < v.end
          );
          assert.ok(vmas.every((v) => v.path.startsWith("/memfd:")));
          if (offWhole) assert.equal(share.reused + share.created, 0);
          assert.equal(
            (child.outcome as unknown as RemapChildReport).results[1].verify!
              .mismatches,
            0,
          );
        } finally {
          assert.match((await child.finish()).stdout, /ALIVE \d+/);
        }
      };

      // One byte changed inside the code.
      const fd = openSync(textFile, "r+");
      const at = textRegion.dataStart - textRegion.start + 4096;
      const orig = Buffer.alloc(1);
      readSync(fd, orig, 0, 1, at);
      writeSync(fd, Buffer.from([orig[0] ^ 0xff]), 0, 1, at);
      await rejects(/bytes differ/);
      writeSync(fd, orig, 0, 1, at);
      closeSync(fd);

      // Written by anyone in the group.
      chmodSync(textFile, 0o620);
      await rejects(/mode 620/);
      chmodSync(textFile, 0o600);

      if (isRoot()) {
        // Owned by another user (nobody).
        chownSync(textFile, 65534, 65534);
        await rejects(/owned by uid 65534/);
        chownSync(textFile, 0, 0);
      } else {
        console.log("skipped the foreign-owner case: chown needs root");
      }

      // A directory others may write into is not used at all.
      chmodSync(dir, 0o777);
      await rejects(/mode is 777/, true);
      chmodSync(dir, 0o700);

      // Restored to what it was: accepted again.
      const ok = await startChild(rt, steps, opts);
      try {
        assert.deepEqual(remapOf(ok).remap!.share!.rejected, []);
        assert.ok(remapOf(ok).remap!.share!.reused >= 2);
      } finally {
        await ok.finish();
      }
    }),
  );

  test(
    `${rt}: share evicts unused copies of other builds, keeps those in use`,
    inFreshDir(`${rt}-evict`, async (dir) => {
      const opts = { script: "remap_child.ts", shellPrefix: SAME_LAYOUT };
      const a = await startChild(rt, [{ remap: { share: { dir } } }], opts);
      try {
        const inUse = readdirSync(dir);
        const exe = remapOf(a).segments[0].object;
        const stale = `${copyPrefix(exe)}.deadbeef.0+1000.0+200000`;
        writeFileSync(`${dir}/${stale}`, "old build", { mode: 0o600 });
        const other = `${
          copyPrefix("/elsewhere/other")
        }.deadbeef.0+1000.0+200000`;
        writeFileSync(`${dir}/${other}`, "another program", { mode: 0o600 });
        // a's copies under other names (same files, still locked by a): b
        // finds none of its own, makes new ones and evicts what nobody uses.
        const renamed = inUse.map((f) => f + ".moved");
        inUse.forEach((f, i) =>
          renameSync(`${dir}/${f}`, `${dir}/${renamed[i]}`)
        );
        const b = await startChild(rt, [{ remap: { share: { dir } } }], opts);
        try {
          const share = remapOf(b).remap!.share!;
          assert.ok(share.created >= 1, JSON.stringify(share));
          assert.ok(share.evicted.includes(stale), JSON.stringify(share));
          const now = readdirSync(dir);
          assert.ok(!now.includes(stale));
          assert.ok(
            now.includes(other),
            "another program's copy is not ours to delete",
          );
          for (const f of inUse) {
            assert.ok(now.includes(f), `${f} in use, evicted`);
          }
        } finally {
          await b.finish();
        }
      } finally {
        await a.finish();
      }
    }),
  );
}

// Eight processes started at once race to create the same copies: one
// copy per region is made (the others reuse it, and say so), and a region
// whose copy is not all on 2 MiB pages is named as partial, never silent.
const AT_ONCE = 8;
for (const rt of RUNTIMES) {
  test(
    `${rt}: share: ${AT_ONCE} processes at once make one copy per region and report what they got`,
    inFreshDir(`${rt}-race`, async (dir) => {
      const steps = [{ remap: { share: { dir } } }];
      const opts = { script: "remap_child.ts", shellPrefix: SAME_LAYOUT };
      const started = await Promise.allSettled(
        Array.from({ length: AT_ONCE }, () => startChild(rt, steps, opts)),
      );
      const children = started.flatMap((r) =>
        r.status === "fulfilled" ? [r.value] : []
      );
      try {
        assert.equal(children.length, AT_ONCE, "a child did not start");
        const outs = children.map(remapOf);
        const created = outs.reduce((n, o) => n + o.remap!.share!.created, 0);
        const reused = outs.reduce((n, o) => n + o.remap!.share!.reused, 0);
        const files = readdirSync(dir).filter((f) => !f.startsWith("."));
        const cover = outs.map((o) => {
          const text = o.remap!.text;
          return text.bytes ? (100 * text.huge / text.bytes).toFixed(1) : "-";
        });
        console.log(
          `${rt}: ${AT_ONCE} at once: ${files.length} copies in the directory, created ${created}, reused ${reused}; text on 2 MiB pages per process: ${
            cover.join(" ")
          }%`,
        );
        assert.equal(created, files.length, "a copy counted twice as created");
        for (const o of outs) {
          const r = o.remap!;
          const shared = r.regions.filter((g) => g.shared !== undefined);
          assert.equal(
            r.share!.created + r.share!.reused,
            shared.length,
            JSON.stringify(r.share),
          );
          for (const g of r.regions) {
            assert.equal(g.status, "remapped", JSON.stringify(g));
            if (g.huge > 0 && g.huge < g.bytes) {
              assert.ok(
                r.warnings.some((w) => w.startsWith("partial:")),
                `region at 0x${
                  g.start.toString(16)
                } is partly on 2 MiB pages and nothing says so: ${
                  JSON.stringify(r.warnings)
                }`,
              );
            }
          }
        }
      } finally {
        for (const c of children) await c.finish();
      }
    }),
  );
}

test("remap({ share }) refuses what it cannot honour, before doing anything", () => {
  assert.throws(
    () => prime().remap({ share: { dir: "relative/dir" } }),
    /share.dir must be an absolute path/,
  );
  assert.throws(
    () => prime().remap({ share: true, backend: "thp" }),
    /cannot be combined with backend: "thp"/,
  );
  assert.throws(
    () => prime().remap({ share: true, pageSize: "4k" }),
    /cannot be combined with pageSize: "4k"/,
  );
  assert.throws(
    () => prime().remap({ share: { dri: "/x" } } as never),
    TypeError,
  );
  assert.throws(() => prime().remap({ share: "yes" } as never), TypeError);
  prime().remap({ share: true, backend: "memfd" });
  prime().remap({ share: false, backend: "thp" });
});
