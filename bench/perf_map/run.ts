// The perf map writer on a library with many functions: time and memory.
//
//   deno run -A bench/perf_map/run.ts [functions=200000] [runs=5]
//   bun bench/perf_map/run.ts [functions=200000] [runs=5]
//
// Builds libsymbols.so (bench/perf_map/symbol_library.ts: `functions`
// local functions, a weak alias for every tenth, code segment starting in
// the middle of a page), then starts `runs` fresh processes of the same
// runtime (`--child`). Each loads the library through FFI and has
// writePerfMap name its code mapping once, as it would after a remap: the
// first call of a process, with its code not yet compiled, as in `run()`;
// it also loads the trampoline, whose C writer (trampoline/perf_map.c) does
// the per-symbol work (in `run()` the remap has loaded it already).
// Each prints the milliseconds (wall, and CPU time of its thread: on a busy
// machine the wall time includes waiting for a CPU), the lines written, and
// VmRSS before and after the call and VmHWM (the peak, reset through
// /proc/self/clear_refs just before the call), and checks that every
// function got exactly one line. Then one JSON line with the medians.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { bytesSource, parseElf, PF_X, PT_LOAD } from "../../src/sys/elf.ts";
import { addressOf, openLibrary } from "../../src/sys/ffi.ts";
import { libc } from "../../src/sys/libc.ts";
import { writePerfMap } from "../../src/remap/perf_map.ts";
import { buildSymbolLibrary } from "./symbol_library.ts";

const MiB = 1024 * 1024;
const g = globalThis as { Deno?: { version: { deno: string } } };

/** One measured call, as a child prints it. */
interface Run {
  ms: number;
  cpuMs: number;
  lines: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  peakMiB: number;
}

function status(): { rss: number; hwm: number } {
  const text = readFileSync("/proc/self/status", "utf8");
  const kib = (k: string) =>
    Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(text)![1]);
  return { rss: kib("VmRSS") * 1024, hwm: kib("VmHWM") * 1024 };
}

/** CPU time of this thread (CLOCK_THREAD_CPUTIME_ID), in ms. */
function threadClock(): () => number {
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
}

/** The child: one call on `lib`, written to `map`; prints the Run as JSON. */
function child(lib: string, functions: number, map: string): void {
  const so = openLibrary([lib], { pm_entry: { args: [], returns: "i32" } });
  if (so.symbols.pm_entry!() !== 7) throw new Error("pm_entry() is not 7");
  const code = readFileSync("/proc/self/maps", "utf8").split("\n")
    .map((l) => l.split(/\s+/))
    .find((f) => f[5] === lib && f[1] === "r-xp");
  if (!code) throw new Error(`no r-xp mapping of ${lib}`);
  const [start, end] = code[0].split("-").map((h) => parseInt(h, 16));
  const region = {
    object: lib,
    perms: "r-x",
    dataStart: start,
    dataEnd: end,
    fileOffset: parseInt(code[2], 16),
    status: "remapped",
  };
  const c = libc();
  const clock = threadClock();
  writeFileSync("/proc/self/clear_refs", "5");
  const before = status();
  const t = performance.now();
  const cpu0 = clock();
  const r = writePerfMap(c, { regions: [region] }, { path: map });
  const cpuMs = clock() - cpu0;
  const ms = performance.now() - t;
  const after = status();
  const lines = readFileSync(map, "utf8").trimEnd().split("\n");
  const starts = new Set(lines.map((l) => l.slice(0, l.indexOf(" "))));
  if (r.symbols !== functions || starts.size !== functions) {
    throw new Error(
      `${r.symbols} lines at ${starts.size} addresses, expected ${functions}: ${
        JSON.stringify(r.objects)
      }`,
    );
  }
  const run: Run = {
    ms,
    cpuMs,
    lines: r.symbols,
    rssBeforeMiB: before.rss / MiB,
    rssAfterMiB: after.rss / MiB,
    peakMiB: after.hwm / MiB,
  };
  console.log(JSON.stringify(run));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function main(functions: number, runs: number): void {
  const dir = mkdtempSync(join(tmpdir(), "pp-perfmap-bench-"));
  try {
    const lib = buildSymbolLibrary({ dir, functions });
    const code = parseElf(bytesSource(readFileSync(lib.path)))
      .programHeaders.find((p) => p.type === PT_LOAD && p.flags & PF_X)!;
    const self = g.Deno
      ? [process.execPath, "run", "-A", new URL(import.meta.url).pathname]
      : [process.execPath, new URL(import.meta.url).pathname];
    const rows: Run[] = [];
    for (let i = 0; i < runs; i++) {
      const map = join(dir, `perf-${i}.map`);
      const out = execFileSync(self[0], [
        ...self.slice(1),
        "--child",
        lib.path,
        String(lib.functions),
        map,
      ], { encoding: "utf8" });
      rmSync(map, { force: true });
      const row: Run = JSON.parse(out.trim().split("\n").at(-1)!);
      rows.push(row);
      console.log(
        `run ${i}: ${row.ms.toFixed(1)} ms (thread CPU ${
          row.cpuMs.toFixed(1)
        } ms), ${row.lines} lines; VmRSS ${row.rssBeforeMiB.toFixed(1)} -> ${
          row.rssAfterMiB.toFixed(1)
        } MiB, peak ${row.peakMiB.toFixed(1)} MiB`,
      );
    }
    console.log(JSON.stringify({
      runtime: g.Deno
        ? `deno ${g.Deno.version.deno}`
        : `bun ${(process.versions as Record<string, string>).bun}`,
      functions: lib.functions,
      functionSymbols: lib.symbols,
      codeOffset: `0x${code.offset.toString(16)}`,
      runs,
      medianMs: median(rows.map((r) => r.ms)),
      medianCpuMs: median(rows.map((r) => r.cpuMs)),
      medianRssBeforeMiB: median(rows.map((r) => r.rssBeforeMiB)),
      medianRssAfterMiB: median(rows.map((r) => r.rssAfterMiB)),
      medianRssGrowthMiB: median(
        rows.map((r) => r.rssAfterMiB - r.rssBeforeMiB),
      ),
      medianPeakGrowthMiB: median(rows.map((r) => r.peakMiB - r.rssBeforeMiB)),
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const args = process.argv.slice(2);
if (args[0] === "--child") child(args[1], Number(args[2]), args[3]);
else main(Number(args[0] ?? 200_000), Number(args[1] ?? 5));
