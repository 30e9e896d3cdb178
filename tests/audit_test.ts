// W^X and no-clobber audit: full remap/restore cycles (THP, memfd, shared,
// and hugetlb when root) run under `strace -f -k`, and the log is checked:
// no mmap/mprotect by page-primer's trampoline ever asks for a writable and
// executable mapping, nothing anywhere makes the executable's ranges W+X,
// and every MAP_FIXED / MREMAP_FIXED / munmap the trampoline makes lies in
// ranges page-primer owned (the regions it replaced, or a staging area it
// mapped itself). Calls are attributed to the trampoline by the stack strace
// prints (the frame in /memfd:page-primer-trampoline).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import process from "node:process";
import {
  isRoot,
  type RemapChildReport,
  RUNTIMES,
  startChild,
} from "./helpers.ts";

/** One completed syscall from an `strace -f -k` log. */
interface Traced {
  tid: number;
  name: string;
  args: string[];
  result: string;
  frames: string[];
}

/** Parses `strace -f -k` output, joining `<unfinished ...>`/`resumed` pairs. */
function parseStrace(text: string): Traced[] {
  const out: Traced[] = [];
  const pending = new Map<number, { name: string; args: string }>();
  let last: Traced | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith(" > ")) {
      last?.frames.push(line.slice(3));
      continue;
    }
    let m = /^(\d+) +(\w+)\((.*) <unfinished \.\.\.>$/.exec(line);
    if (m) {
      pending.set(Number(m[1]), { name: m[2], args: m[3] });
      last = undefined;
      continue;
    }
    let tid: number, name: string, args: string, result: string;
    m = /^(\d+) +<\.\.\. (\w+) resumed>(.*)\) += (.*)$/.exec(line);
    if (m) {
      tid = Number(m[1]);
      const p = pending.get(tid);
      pending.delete(tid);
      name = m[2];
      args = (p?.args ?? "") + m[3];
      result = m[4];
    } else {
      m = /^(\d+) +(\w+)\((.*)\) += (.*)$/.exec(line);
      if (!m) {
        last = undefined;
        continue;
      }
      tid = Number(m[1]);
      name = m[2];
      args = m[3];
      result = m[4];
    }
    last = {
      tid,
      name,
      args: args.split(", ").map((a) => a.trim()),
      result,
      frames: [],
    };
    out.push(last);
  }
  return out;
}

const num = (s: string) => (s === "NULL" ? 0 : Number(s));
const inside = (
  owned: readonly [number, number][],
  start: number,
  end: number,
) => owned.some(([s, e]) => s <= start && end <= e);

/** Violations of W^X and no-clobber in a parsed log. Pure. */
function audit(
  calls: readonly Traced[],
  regions: readonly [number, number][],
  exeRanges: readonly [number, number][],
): {
  ours: number;
  swaps: number;
  violations: string[];
  othersWx: number;
} {
  const owned: [number, number][] = [...regions];
  const violations: string[] = [];
  let ours = 0;
  let swaps = 0;
  let othersWx = 0;
  for (const c of calls) {
    if (!["mmap", "mprotect", "mremap", "munmap"].includes(c.name)) continue;
    const mine = c.frames.some((f) => f.includes("page-primer-trampoline"));
    const prot = c.name === "mmap"
      ? c.args[2]
      : c.name === "mprotect"
      ? c.args[2]
      : "";
    const wx = prot.includes("PROT_WRITE") && prot.includes("PROT_EXEC");
    const len = num(c.args[1]);
    // Where a mapping landed: mmap's result (its address is only a hint
    // without MAP_FIXED, and NULL means anywhere).
    const mapped = c.name === "mmap" && /^0x/.test(c.result)
      ? Number(c.result.split(" ")[0])
      : undefined;
    const start = mapped ?? num(c.args[0]);
    const what = `${c.name}(${c.args.join(", ")}) = ${c.result}`;
    if (wx) {
      const touchesExe = exeRanges.some(([s, e]) =>
        start < e && s < start + len
      );
      if (mine || touchesExe) violations.push(`W+X: ${what}`);
      else othersWx++;
    }
    if (!mine) continue;
    ours++;
    if (c.name === "mmap") {
      const fixed = /MAP_FIXED(?!_NOREPLACE)/.test(c.args[3]);
      if (fixed && !inside(owned, start, start + len)) {
        violations.push(`MAP_FIXED outside owned ranges: ${what}`);
      }
      if (!fixed && num(c.args[0]) === 0 && mapped !== undefined) {
        owned.push([mapped, mapped + len]); // a staging area of our own
      }
    } else if (c.name === "mremap") {
      swaps++;
      const dest = num(c.args[4] ?? "0");
      const newLen = num(c.args[2]);
      if (
        c.args[3].includes("MREMAP_FIXED") &&
        !inside(owned, dest, dest + newLen)
      ) {
        violations.push(`MREMAP_FIXED outside owned ranges: ${what}`);
      }
    } else if (c.name === "munmap" || c.name === "mprotect") {
      if (!inside(owned, start, start + len)) {
        violations.push(`${c.name} outside owned ranges: ${what}`);
      }
    }
  }
  return { ours, swaps, violations, othersWx };
}

test("parseStrace joins unfinished and resumed calls and keeps their stacks", () => {
  const log = [
    "10 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>",
    "11 munmap(0x1000, 4096)               = 0",
    "9999  mprotect(0x1000, 4096, PROT_READ) = 0", // strace pads short pids
    " > /lib/libc.so.6(munmap+0x1) [0x1]",
    "10 <... mmap resumed>)                  = 0x7f0000000000",
    " > /memfd:page-primer-trampoline (deleted)() [0x164b]",
  ].join("\n");
  const calls = parseStrace(log);
  assert.equal(calls.length, 3);
  assert.equal(calls[1].tid, 9999);
  assert.deepEqual(calls[2].args, [
    "NULL",
    "4096",
    "PROT_READ",
    "MAP_PRIVATE|MAP_ANONYMOUS",
    "-1",
    "0",
  ]);
  assert.equal(calls[2].result, "0x7f0000000000");
  assert.equal(calls[2].frames.length, 1);
});

test("audit flags W+X and fixed mappings outside owned ranges, only for the trampoline", () => {
  const t = (line: string, mine = true) => ({
    ...parseStrace(line)[0],
    frames: [mine ? "/memfd:page-primer-trampoline (deleted)() [0x1]" : "/x"],
  });
  const regions: [number, number][] = [[0x400000, 0x800000]];
  const ok = audit(
    [
      t("1 mmap(NULL, 8388608, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000"),
      t("1 munmap(0x7f0000000000, 2097152) = 0"),
      t("1 mprotect(0x7f0000200000, 4194304, PROT_READ|PROT_EXEC) = 0"),
      t("1 mremap(0x7f0000200000, 4194304, 4194304, MREMAP_MAYMOVE|MREMAP_FIXED, 0x400000) = 0x400000"),
      t(
        "2 mprotect(0x10000000, 4096, PROT_READ|PROT_WRITE|PROT_EXEC) = 0",
        false,
      ),
    ],
    regions,
    [[0x400000, 0x800000]],
  );
  assert.deepEqual(ok.violations, []);
  assert.equal(ok.swaps, 1);
  assert.equal(ok.othersWx, 1);
  const bad = audit(
    [
      t("1 mprotect(0x400000, 4096, PROT_READ|PROT_WRITE|PROT_EXEC) = 0"),
      t("1 mmap(0x900000, 4096, PROT_READ, MAP_PRIVATE|MAP_FIXED, 3, 0) = 0x900000"),
      t("1 mremap(0x7f0000200000, 4096, 4096, MREMAP_MAYMOVE|MREMAP_FIXED, 0xa00000) = 0xa00000"),
      t(
        "2 mprotect(0x400000, 4096, PROT_READ|PROT_WRITE|PROT_EXEC) = 0",
        false,
      ),
    ],
    regions,
    [[0x400000, 0x800000]],
  );
  assert.equal(bad.violations.length, 4, bad.violations.join("\n"));
});

// --- the real thing --------------------------------------------------------

const straceWorks = (() => {
  const r = spawnSync("strace", ["-f", "-k", "-e", "trace=none", "true"]);
  return r.status === 0
    ? false
    : `strace cannot run or attach here (${
      r.error?.message ?? String(r.stderr).trim()
    }): install the Debian package strace; in a container it needs ptrace`;
})();
if (straceWorks) console.log(`audit_test: skipped: ${straceWorks}`);

const NR = "/proc/sys/vm/nr_hugepages";
const savedPool = isRoot() ? Number(readFileSync(NR, "utf8")) : 0;
const shareDir = `/dev/shm/page-primer-audit-${process.pid}`;
after(() => {
  if (isRoot()) writeFileSync(NR, String(savedPool));
  rmSync(shareDir, { recursive: true, force: true });
});

for (const rt of RUNTIMES) {
  test(
    `${rt}: under strace, remap/restore cycles never make a W+X mapping nor touch a mapping page-primer does not own`,
    { skip: straceWorks },
    async () => {
      const log = `/tmp/page-primer-audit-${process.pid}-${rt}.log`;
      const steps: unknown[] = [
        { remap: {} },
        "restore",
        { remap: { backend: "memfd" } },
        "restore",
        { remap: { share: { dir: shareDir } } },
        "restore",
      ];
      if (isRoot()) {
        writeFileSync(NR, String(savedPool + 64));
        steps.push({ remap: { backend: "hugetlb" } }, "restore");
      } else {
        console.log("audit: hugetlb path skipped: sizing the pool needs root");
      }
      steps.push("verify");
      const child = await startChild(rt, steps, {
        script: "remap_child.ts",
        shellPrefix:
          `exec strace -f -k -e trace=mmap,mprotect,mremap,munmap -o ${log}`,
      });
      let rep: RemapChildReport;
      try {
        rep = child.outcome as unknown as RemapChildReport;
      } finally {
        await child.finish();
      }
      try {
        const regions: [number, number][] = [];
        let exe: [number, number][] = [];
        for (const r of rep.results) {
          if (!r.remap) continue;
          assert.equal(r.remap.ok, true, r.remap.reason);
          for (const g of r.remap.remap!.regions) {
            regions.push([g.start, g.end]);
          }
          exe = r.remap.segments.map((s) => [s.start, s.end]);
        }
        assert.equal(rep.results.at(-1)!.verify!.mismatches, 0);
        const logText = readFileSync(log, "utf8");
        const calls = parseStrace(logText);
        const result = audit(calls, regions, exe);
        console.log(
          `${rt}: ${calls.length} mmap/mprotect/mremap/munmap calls traced, ${result.ours} by the trampoline, ${result.swaps} swaps; W+X or clobber: ${result.violations.length}; the runtime's own W+X mappings elsewhere (JIT): ${result.othersWx}`,
        );
        assert.deepEqual(result.violations, []);
        // The attribution works: every region was swapped by the trampoline.
        assert.equal(result.swaps, regions.length);
      } finally {
        rmSync(log, { force: true });
      }
    },
  );
}
