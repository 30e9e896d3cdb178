// The perf map writer on a library with many functions: time and memory.
//
//   deno run -A bench/perf_map/run.ts [functions=200000] [runs=5]
//   bun bench/perf_map/run.ts [functions=200000] [runs=5]
//
// Builds libsymbols.so (bench/perf_map/symbol_library.ts: `functions`
// local functions, a weak alias for every tenth, code segment starting in
// the middle of a page), loads it through FFI, and has writePerfMap name its
// code mapping, as it would after a remap, `runs` times into fresh map
// files. Prints, per run, the milliseconds, the lines written, and VmRSS
// before and after and VmHWM (peak, reset through /proc/self/clear_refs
// before each run); then one JSON line with the medians. The thread's CPU
// time is printed too: on a busy machine it is what the writer costs, where
// the wall time includes waiting for a CPU. Checks that every
// function got exactly one line at its address.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { bytesSource, parseElf, PF_X, PT_LOAD } from "../../src/elf.ts";
import { addressOf, openLibrary } from "../../src/ffi.ts";
import { libc } from "../../src/libc.ts";
import { writePerfMap } from "../../src/perf_map.ts";
import { buildSymbolLibrary } from "./symbol_library.ts";

const functions = Number(process.argv[2] ?? 200_000);
const runs = Number(process.argv[3] ?? 5);
const MiB = 1024 * 1024;

function status(): { rss: number; hwm: number } {
  const text = readFileSync("/proc/self/status", "utf8");
  const kib = (k: string) =>
    Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(text)![1]);
  return { rss: kib("VmRSS") * 1024, hwm: kib("VmHWM") * 1024 };
}

/** CPU time of this thread (CLOCK_THREAD_CPUTIME_ID), in ms: what the
 * writer costs whatever else the machine runs. */
const threadClock = (() => {
  const lib = openLibrary(["libc.so.6"], {
    clock_gettime: { args: ["i32", "u64"], returns: "i32" },
  });
  const ts = new BigInt64Array(2);
  const at = addressOf(ts);
  return () => {
    if (lib.symbols.clock_gettime!(3, at) !== 0) {
      throw new Error("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    }
    return Number(ts[0]) * 1e3 + Number(ts[1]) / 1e6;
  };
})();

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const dir = mkdtempSync(join(tmpdir(), "pp-perfmap-bench-"));
try {
  const t0 = performance.now();
  const lib = buildSymbolLibrary({ dir, functions });
  const buildMs = performance.now() - t0;
  const so = openLibrary([lib.path], {
    pm_entry: { args: [], returns: "i32" },
  });
  if (so.symbols.pm_entry!() !== 7) throw new Error("pm_entry() is not 7");
  const code = readFileSync("/proc/self/maps", "utf8").split("\n")
    .map((l) => l.split(/\s+/))
    .find((f) => f[5] === lib.path && f[1] === "r-xp");
  if (!code) throw new Error(`no r-xp mapping of ${lib.path}`);
  const [start, end] = code[0].split("-").map((h) => parseInt(h, 16));
  const region = {
    object: lib.path,
    perms: "r-x",
    dataStart: start,
    dataEnd: end,
    fileOffset: parseInt(code[2], 16),
    status: "remapped",
  };
  const codeSegment = parseElf(bytesSource(readFileSync(lib.path)))
    .programHeaders.find((p) => p.type === PT_LOAD && p.flags & PF_X)!;
  const c = libc();
  const rows = [];
  for (let i = 0; i < runs; i++) {
    const path = join(dir, `perf-${i}.map`);
    writeFileSync("/proc/self/clear_refs", "5");
    const before = status();
    const t = performance.now();
    const cpu0 = threadClock();
    const r = writePerfMap(c, { regions: [region] }, { path });
    const cpuMs = threadClock() - cpu0;
    const ms = performance.now() - t;
    const after = status();
    const lines = readFileSync(path, "utf8").trimEnd().split("\n");
    const starts = new Set(lines.map((l) => l.slice(0, l.indexOf(" "))));
    if (r.symbols !== lib.functions || starts.size !== lib.functions) {
      throw new Error(
        `run ${i}: ${r.symbols} lines at ${starts.size} addresses, expected ${lib.functions}: ${
          JSON.stringify(r.objects)
        }`,
      );
    }
    rmSync(path);
    const row = {
      ms,
      cpuMs,
      lines: r.symbols,
      rssBeforeMiB: before.rss / MiB,
      rssAfterMiB: after.rss / MiB,
      peakMiB: after.hwm / MiB,
    };
    rows.push(row);
    console.log(
      `run ${i}: ${ms.toFixed(1)} ms (thread CPU ${
        cpuMs.toFixed(1)
      } ms), ${row.lines} lines; VmRSS ${row.rssBeforeMiB.toFixed(1)} -> ${
        row.rssAfterMiB.toFixed(1)
      } MiB, peak ${row.peakMiB.toFixed(1)} MiB`,
    );
  }
  const g = globalThis as { Deno?: { version: { deno: string } } };
  console.log(JSON.stringify({
    runtime: g.Deno
      ? `deno ${g.Deno.version.deno}`
      : `bun ${(process.versions as Record<string, string>).bun}`,
    functions: lib.functions,
    symtabFunctions: lib.symbols,
    codeMiB: (end - start) / MiB,
    codeOffset: `0x${codeSegment.offset.toString(16)}`,
    mappedFrom: `0x${region.fileOffset.toString(16)}`,
    buildMs,
    runs,
    medianMs: median(rows.map((r) => r.ms)),
    medianCpuMs: median(rows.map((r) => r.cpuMs)),
    firstMs: rows[0].ms,
    medianPeakGrowthMiB: median(rows.map((r) => r.peakMiB - r.rssBeforeMiB)),
    firstRun: rows[0],
  }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
