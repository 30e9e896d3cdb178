// The shipped trampoline: built from the current sources, self-contained,
// loadable from a memfd, and refusing bad records without side effects.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, RUNTIMES, startChild } from "./helpers.ts";
import {
  TRAMPOLINE_SO_BASE64,
  TRAMPOLINE_SOURCE_SHA256,
} from "../src/sys/trampoline_so.ts";
import {
  bytesSource,
  EM_AARCH64,
  EM_X86_64,
  parseElf,
  PT_INTERP,
} from "../src/sys/elf.ts";
import { libc } from "../src/sys/libc.ts";
import {
  loadTrampoline,
  PERF_MAP_CANDIDATE_WORDS,
  type PerfMapScratch,
} from "../src/remap/trampoline.ts";
import { parseMaps } from "../src/sys/maps.ts";

// @ts-types="./trampoline_build.d.ts"
import { abiModule, sourceHash, SOURCES } from "../trampoline/build.mjs";

function soBytes(arch: "x86_64" | "aarch64"): Uint8Array {
  return new Uint8Array(Buffer.from(TRAMPOLINE_SO_BASE64[arch], "base64"));
}

test("the shipped trampoline bytes were built from the current sources", () => {
  const onDisk = readdirSync(join(ROOT, "trampoline"))
    .filter((f) => /\.(c|h)$/.test(f)).sort();
  assert.deepEqual(
    onDisk,
    [...SOURCES].sort(),
    "a trampoline source is missing from the hash",
  );
  assert.equal(
    TRAMPOLINE_SOURCE_SHA256,
    sourceHash(),
    "trampoline/ changed but src/sys/trampoline_so.ts was not rebuilt: run `npm run build:trampoline`",
  );
});

test("src/sys/trampoline_abi.ts is what trampoline/primer.h gives", () => {
  assert.equal(
    readFileSync(join(ROOT, "src", "sys", "trampoline_abi.ts"), "utf8"),
    abiModule(),
    "trampoline/primer.h changed but src/sys/trampoline_abi.ts was not regenerated: run `npm run build:trampoline`",
  );
});

const MACHINES = { x86_64: EM_X86_64, aarch64: EM_AARCH64 } as const;

for (const arch of ["x86_64", "aarch64"] as const) {
  test(`the ${arch} trampoline is a self-contained shared object exporting pp_run and pp_perf_map`, () => {
    const elf = parseElf(bytesSource(soBytes(arch)));
    assert.equal(elf.header.machine, MACHINES[arch]);
    assert.equal(elf.header.type, 3);
    assert.ok(!elf.programHeaders.some((p) => p.type === PT_INTERP));
    const dyn = elf.symbols(".dynsym");
    const defined = dyn.filter((s) => s.shndx !== 0).map((s) => s.name).sort();
    assert.deepEqual(defined, [
      "pp_abi",
      "pp_calibrate",
      "pp_cpuid",
      "pp_list_objects",
      "pp_lock",
      "pp_perf_map",
      "pp_registry",
      "pp_registry_size",
      "pp_run",
      "pp_unlock",
    ]);
    const undefinedSyms = dyn.filter((s) => s.shndx === 0 && s.name !== "");
    assert.deepEqual(
      undefinedSyms.map((s) => s.name),
      [],
      "it must not call libc",
    );
  });
}

test("primer.c stays short", () => {
  const text = readFileSync(join(ROOT, "trampoline", "primer.c"), "utf8");
  assert.ok(text.split("\n").length <= 400, "primer.c grew past 400 lines");
});

test("it loads from a memfd and rejects a bad record with EINVAL, changing nothing", () => {
  const c = libc();
  const t = loadTrampoline(c);
  // Named by pid, so a debugger in another process opens the same file.
  assert.match(
    t.path,
    new RegExp(`^/proc/${c.getpid()}/fd/\\d+$|primer\\.so$`),
  );
  const before = c.readText("/proc/self/maps");
  const [res] = t.run([{
    op: "swap",
    start: 0x200000 + 4096, // not 2 MiB aligned
    len: 0x200000,
    dataStart: 0x200000 + 4096,
    dataLen: 4096,
    prot: 5,
    page4k: false,
    fd: -1,
    fileOffset: 0,
  }]);
  assert.equal(res.step, "check");
  assert.equal(res.errno, 22);
  const [wx] = t.run([{
    op: "swap",
    start: 0x200000,
    len: 0x200000,
    dataStart: 0x200000,
    dataLen: 4096,
    prot: 7, // W+X is refused
    page4k: false,
    fd: -1,
    fileOffset: 0,
  }]);
  assert.equal(wx.step, "check");
  const after = c.readText("/proc/self/maps");
  const stable = (t: string) =>
    parseMaps(t).filter((v) => v.path !== "" && !v.path.startsWith("["))
      .map((v) => `${v.start}-${v.end}`).join();
  assert.equal(stable(after), stable(before));
});

test("pp_perf_map refuses a bad request with EINVAL, reading and writing nothing", () => {
  const t = loadTrampoline(libc());
  const scratch = (io: number): PerfMapScratch => ({
    ranges: new BigUint64Array([0x1000n, 0x2000n, 0n]),
    io: new Uint8Array(io),
    out: new Uint8Array(4096),
    candidates: new BigUint64Array(PERF_MAP_CANDIDATE_WORDS),
    order: new BigUint64Array(1),
    orderTmp: new BigUint64Array(1),
    pool: new Uint8Array(0),
  });
  const request = {
    op: "collect" as const,
    fd: -1, // a read would fail with EBADF, not EINVAL
    symbolOffset: 0,
    symbolCount: 1,
    stringOffset: 0,
    stringSize: 1,
    bias: 0,
  };
  // An io buffer under 64 KiB.
  const small = t.perfMap(request, scratch(4096));
  assert.equal(small.step, "check");
  assert.equal(small.errno, 22);
  // Ranges out of order.
  const s = scratch(1 << 16);
  s.ranges = new BigUint64Array([0x3000n, 0x4000n, 0n, 0x1000n, 0x2000n, 0n]);
  const unsorted = t.perfMap(request, s);
  assert.equal(unsorted.step, "check");
  assert.equal(unsorted.errno, 22);
  // With a good request, the read is tried: EBADF.
  const bad = t.perfMap(request, scratch(1 << 16));
  assert.equal(bad.step, "symbol table pread");
  assert.equal(bad.errno, 9);
});

const gcc = (() => {
  try {
    execFileSync("gcc", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

for (const rt of RUNTIMES) {
  test(`${rt}: PAGE_PRIMER_TRAMPOLINE loads a locally built trampoline`, {
    skip: gcc ? false : "gcc is not installed",
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "pp-tramp-"));
    try {
      execFileSync("node", [
        join(ROOT, "trampoline", "build.mjs"),
        "--out",
        join(dir, "primer.so"),
      ]);
      assert.ok(existsSync(join(dir, "primer.so")));
      const child = await startChild(rt, [{ remap: {} }, "verify"], {
        script: "remap_child.ts",
        env: { PAGE_PRIMER_TRAMPOLINE: join(dir, "primer.so") },
      });
      try {
        const smaps = child.smaps();
        assert.ok(
          smaps.some((v) => v.path === join(dir, "primer.so")),
          "override not loaded",
        );
        const rep = child.outcome as unknown as {
          results: {
            remap?: { ok: boolean };
            verify?: { mismatches: number };
          }[];
        };
        assert.equal(rep.results[0].remap!.ok, true);
        assert.equal(rep.results[1].verify!.mismatches, 0);
      } finally {
        await child.finish();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
