// perf symbols after a remap: the pure entry planner on fixtures; the
// streaming writer on a library built here (20 000 functions, code starting
// mid-page) against the pure planner; then real children of both runtimes
// that remap their text and append /tmp/perf-<pid>.map, checked against
// `nm` from outside; and, where `perf` can sample, `perf report` naming a
// function that runs from the copy. Every test removes the maps it makes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Child, ROOT, run, runtimePath, startChild } from "./helpers.ts";
import {
  bytesSource,
  parseElf,
  PF_X,
  PT_LOAD,
  readSymbols,
  symbolChunks,
  symbolTableLayout,
  visitStrings,
} from "../src/sys/elf.ts";
import { openLibrary } from "../src/sys/ffi.ts";
import { libc, O_CREAT, O_RDWR } from "../src/sys/libc.ts";
import {
  loadTrampoline,
  PERF_MAP_CANDIDATE_WORDS,
  type PerfMapScratch,
} from "../src/remap/trampoline.ts";
import {
  describePerfMap,
  formatPerfMap,
  loadBiasOf,
  perfMapEntries,
  type PerfMapRange,
  type PerfMapRegion,
  type PerfMapReport,
  type PerfMapSymbol,
  writePerfMap,
} from "../src/remap/perf_map.ts";
import type { PrimeOutcomeData } from "../src/outcome.ts";
import { parseSmaps } from "../src/sys/maps.ts";
import {
  buildSymbolLibrary,
  functionName,
} from "../bench/perf_map/symbol_library.ts";

const FIXTURES = `${ROOT}tests/fixtures/`;

// ---------------------------------------------------------------------------
// Pure part.

test("perfMapEntries: fixture with aliases, clipping, non-functions and two ranges", () => {
  const f = JSON.parse(
    readFileSync(`${FIXTURES}perf_map_symbols.json`, "utf8"),
  );
  const plan = perfMapEntries(f.symbols, f.ranges, f.bias);
  assert.equal(
    formatPerfMap(plan.entries),
    readFileSync(`${FIXTURES}perf_map_expected.map`, "utf8"),
  );
  assert.equal(plan.bytes, f.bytes);
  assert.equal(plan.covered, f.covered);
  // Input order does not matter.
  const again = perfMapEntries([...f.symbols].reverse(), f.ranges, f.bias);
  assert.deepEqual(again, plan);
});

test("perfMapEntries: empty inputs", () => {
  const f = JSON.parse(
    readFileSync(`${FIXTURES}perf_map_symbols.json`, "utf8"),
  );
  assert.deepEqual(perfMapEntries([], f.ranges, f.bias), {
    entries: [],
    bytes: f.bytes,
    covered: 0,
  });
  assert.deepEqual(perfMapEntries(f.symbols, [], f.bias), {
    entries: [],
    bytes: 0,
    covered: 0,
  });
  // The same symbols without the bias lie outside every range.
  assert.equal(perfMapEntries(f.symbols, f.ranges, 0).entries.length, 0);
  assert.equal(formatPerfMap([]), "");
});

test("perfMapEntries: a symbol covering two ranges gets one entry in each", () => {
  const big: PerfMapSymbol = {
    name: "big",
    value: 0x1000,
    size: 0x5000,
    type: 2,
    bind: 1,
  };
  const plan = perfMapEntries([big], [
    { start: 0x4000, end: 0x5000 },
    { start: 0x2000, end: 0x3000 },
  ], 0);
  assert.equal(formatPerfMap(plan.entries), "2000 1000 big\n4000 1000 big\n");
  assert.equal(plan.covered, 0x2000);
});

test("perfMapEntries: bad arguments", () => {
  assert.throws(
    () => perfMapEntries("x" as never, [], 0),
    TypeError,
  );
  assert.throws(() => perfMapEntries([], {} as never, 0), TypeError);
  assert.throws(() => perfMapEntries([], [], 0.5), RangeError);
  assert.throws(
    () => perfMapEntries([], [{ start: 10, end: 5 }], 0),
    RangeError,
  );
});

test("loadBiasOf: the runtimes' LOAD segments", () => {
  for (const rt of ["deno", "bun"] as const) {
    const elf = parseElf(bytesSource(readFileSync(runtimePath(rt))));
    const loads = elf.programHeaders.filter((p) => p.type === 1);
    const text = loads.find((p) => p.flags & 1)!;
    // Mapped at text.vaddr + bias, page-aligned as the kernel maps it.
    const bias = 0x7f1234000000;
    const fileOffset = Math.ceil(text.offset / 4096) * 4096 + 0x5000;
    const dataStart = bias + text.vaddr + (fileOffset - text.offset);
    assert.equal(
      loadBiasOf(elf.programHeaders, { dataStart, fileOffset }),
      bias,
    );
    assert.equal(
      loadBiasOf(elf.programHeaders, { dataStart, fileOffset: 2 ** 40 }),
      undefined,
    );
    // Where the code's mapping starts: the page of p_offset (mid-page in
    // Bun, whose read-only segment ends in that page).
    const pageStart = Math.floor(text.offset / 4096) * 4096;
    assert.equal(
      loadBiasOf(elf.programHeaders, {
        dataStart: bias + text.vaddr - (text.offset - pageStart),
        fileOffset: pageStart,
        perms: "r-x",
      }),
      bias,
    );
  }
});

test("loadBiasOf: fixture of a code segment starting mid-page, on 4 KiB and 64 KiB pages", () => {
  const f = JSON.parse(
    readFileSync(`${FIXTURES}perf_map_midpage.json`, "utf8"),
  );
  const hex = (h: string) => parseInt(h, 16);
  const phdrs = f.programHeaders.map((p: Record<string, string | number>) => ({
    type: p.type as number,
    flags: p.flags as number,
    offset: hex(p.offset as string),
    vaddr: hex(p.vaddr as string),
    filesz: hex(p.filesz as string),
  }));
  for (const c of f.cases) {
    const region = {
      dataStart: hex(c.region.dataStart),
      fileOffset: hex(c.region.fileOffset),
      ...(c.region.perms ? { perms: c.region.perms } : {}),
    };
    assert.equal(
      loadBiasOf(phdrs, region, c.pageSize ?? 4096),
      c.bias === null ? undefined : hex(c.bias),
      c.name,
    );
  }
  assert.throws(() => loadBiasOf(phdrs, f.cases[0].region, 3000), RangeError);
});

test("describePerfMap says when the executable is stripped", () => {
  const r: PerfMapReport = {
    path: "/tmp/perf-1.map",
    symbols: 3,
    bytes: 1 << 21,
    covered: 1 << 20,
    ms: 1,
    warnings: [],
    objects: [{
      object: "/x/deno",
      source: ".dynsym",
      stripped: true,
      bias: 0,
      symbols: 3,
      bytes: 1 << 21,
      covered: 1 << 20,
    }],
  };
  const line = describePerfMap(r);
  assert.match(line, /deno 3 symbols from \.dynsym \(stripped/);
  assert.match(line, /1\.0 of 2\.0 MiB .* \(50\.0%\)/);
});

// ---------------------------------------------------------------------------
// The streaming writer and the ELF chunk readers, on a library built here.

const GCC_SKIP = spawnSync("gcc", ["--version"]).status === 0
  ? false
  : "gcc is not installed (apt-get install gcc)";

/** Builds a library of `functions` functions in a new directory; `dir` is removed by the caller. */
function buildLibrary(functions: number, longName?: number) {
  const dir = mkdtempSync(join(tmpdir(), "pp-perfmap-"));
  return { dir, lib: buildSymbolLibrary({ dir, functions, longName }) };
}

/** This process's mappings asked for on huge pages (`hg` in smaps), as ranges. */
function hugePageAdvised(): string[] {
  return parseSmaps(readFileSync("/proc/self/smaps", "utf8"))
    .filter((v) => v.vmFlags.includes("hg"))
    .map((v) => `${v.start.toString(16)}-${v.end.toString(16)}`);
}

/**
 * Turns the first byte of `from` in the `.strtab` of `path` into `to` (a
 * name only the symbol table holds, not the code: the file stays the one
 * loaded).
 */
function patchName(path: string, from: string, to: string): void {
  const bytes = readFileSync(path);
  const strtab = parseElf(bytesSource(bytes)).sections.find((s) =>
    s.name === ".strtab"
  )!;
  const at = bytes.subarray(strtab.offset, strtab.offset + strtab.size)
    .indexOf(new TextEncoder().encode(`${from}\0`));
  assert.ok(at > 0, `${from} is not in .strtab`);
  bytes[strtab.offset + at] = to.charCodeAt(0);
  writeFileSync(path, bytes);
}

test(
  "symbolChunks and visitStrings read what readSymbols reads, in chunks of any size",
  {
    skip: GCC_SKIP,
  },
  () => {
    const { dir, lib } = buildLibrary(2000);
    try {
      for (
        const [path, table] of [
          [lib.path, ".symtab"],
          [lib.path, ".dynsym"],
          [runtimePath("bun"), ".symtab"],
          [runtimePath("deno"), ".dynsym"],
        ] as const
      ) {
        const src = bytesSource(readFileSync(path));
        const sections = parseElf(src).sections;
        const want = readSymbols(src, sections, table);
        const layout = symbolTableLayout(src, sections, table)!;
        assert.equal(layout.count, want.length, `${path} ${table}`);
        for (const size of [1, 97, 4096]) {
          const got: { name: number; rest: unknown }[] = [];
          for (const c of symbolChunks(src, layout, size)) {
            assert.equal(c.first, got.length);
            for (let i = 0; i < c.count; i++) {
              got.push({
                name: c.name[i],
                rest: {
                  value: c.value[i],
                  size: c.size[i],
                  type: c.type[i],
                  bind: c.bind[i],
                  shndx: c.shndx[i],
                },
              });
            }
          }
          assert.deepEqual(
            got.map((g) => g.rest),
            want.map(({ name: _, ...rest }) => rest),
            `${path} ${table} in chunks of ${size}`,
          );
          // Names, read in one pass over the sorted offsets, with chunks
          // small enough that names cross their ends.
          const order = got.map((_, i) => i).sort((a, b) =>
            got[a].name - got[b].name
          );
          const names: string[] = new Array(got.length);
          visitStrings(
            src,
            layout.strings,
            order.map((i) => got[i].name),
            (k, bytes, start) => {
              names[order[k]] = new TextDecoder().decode(
                bytes.subarray(start, bytes.indexOf(0, start)),
              );
            },
            size === 1 ? 7 : 4096,
          );
          assert.deepEqual(names, want.map((s) => s.name));
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test("visitStrings: any order, bad offsets and a table without a final NUL", () => {
  const table = new TextEncoder().encode("\0abc\0de");
  const src = bytesSource(table);
  const strings = { offset: 0, size: table.length, label: "test table" };
  const seen: string[] = [];
  visitStrings(src, strings, [0, 1, 2], (_, b, s) => {
    seen.push(new TextDecoder().decode(b.subarray(s, b.indexOf(0, s))));
  }, 2);
  assert.deepEqual(seen, ["", "abc", "bc"]);
  assert.throws(
    () => visitStrings(src, strings, [5], () => {}),
    /runs off the end of the test table/,
  );
  assert.throws(
    () => visitStrings(src, strings, [9], () => {}),
    /outside the test table/,
  );
  // Any order; chunk-aligned reads.
  const back: string[] = [];
  visitStrings(src, strings, [2, 0, 1, 4], (_, b, s) => {
    back.push(new TextDecoder().decode(b.subarray(s, b.indexOf(0, s))));
  }, 4);
  assert.deepEqual(back, ["bc", "", "abc", ""]);
  assert.throws(
    () => visitStrings(src, strings, [1], () => {}, 0),
    RangeError,
  );
  // A string longer than a chunk and what is read past it.
  const long = new TextEncoder().encode(`\0${"x".repeat(10_000)}\0y\0`);
  const lengths: number[] = [];
  visitStrings(
    bytesSource(long),
    { offset: 0, size: long.length, label: "long table" },
    [1, 10_002, 3],
    (_, b, s) => lengths.push(b.indexOf(0, s) - s),
    16,
  );
  assert.deepEqual(lengths, [10_000, 1, 9_998]);
});

test(
  "writePerfMap on a library of 20 000 functions whose code starts mid-page: the pure planner's lines, once",
  {
    skip: GCC_SKIP,
  },
  () => {
    // A name longer than a string chunk and an output chunk, and a newline
    // in a name, which its line gets as a space.
    const { dir, lib } = buildLibrary(20_000, 300_000);
    try {
      patchName(lib.path, functionName(7), "\n");
      const bytes = readFileSync(lib.path);
      const elf = parseElf(bytesSource(bytes));
      const code = elf.programHeaders.find((p) =>
        p.type === PT_LOAD && (p.flags & PF_X) !== 0
      )!;
      assert.notEqual(
        code.offset % 4096,
        0,
        "the code segment is page-aligned",
      );
      const so = openLibrary([lib.path], {
        pm_entry: { args: [], returns: "i32" },
      });
      assert.equal(so.symbols.pm_entry!(), 7);
      // The code's mapping, as a remapped region would describe it: it starts
      // at the page of p_offset, a page the read-only segment maps too.
      const fields = readFileSync("/proc/self/maps", "utf8").split("\n")
        .map((l) => l.split(/\s+/))
        .find((f) => f[5] === lib.path && f[1] === "r-xp")!;
      const [start, end] = fields[0].split("-").map((h) => parseInt(h, 16));
      const region: PerfMapRegion = {
        object: lib.path,
        perms: "r-x",
        dataStart: start,
        dataEnd: end,
        fileOffset: parseInt(fields[2], 16),
        status: "remapped",
      };
      assert.equal(region.fileOffset, code.offset - code.offset % 4096);
      const bias = start - (code.vaddr - code.offset % 4096);
      const expected = perfMapEntries(
        elf.symbols(".symtab"),
        [{ start, end }],
        bias,
      );
      assert.equal(expected.entries.length, lib.functions);

      const path = join(dir, "perf.map");
      const c = libc();
      const advised = hugePageAdvised();
      const r = writePerfMap(c, { regions: [region] }, { path });
      // The C writer's buffers (asked for on huge pages) are unmapped: no
      // such range is left that was not there before (by address: a count
      // changes when another thread unmaps one, and misses a buffer merged
      // into a neighbouring mapping).
      assert.deepEqual(
        hugePageAdvised().filter((x) => !advised.includes(x)),
        [],
        "the writer's memory stayed",
      );
      assert.deepEqual(r.warnings, []);
      assert.equal(r.objects.length, 1);
      const o = r.objects[0];
      assert.equal(o.note, undefined, o.note);
      assert.equal(o.bias, bias);
      assert.equal(o.source, ".symtab");
      assert.equal(o.symbols, lib.functions);
      assert.equal(o.bytes, end - start);
      assert.equal(o.covered, expected.covered);
      const written = readFileSync(path, "utf8");
      const lines = written.trimEnd().split("\n");
      const seven = functionName(7).slice(1);
      assert.ok(lines.some((l) => l.endsWith(` ${seven}`)), "no line for 7");
      assert.ok(lines.some((l) => l.length > 300_000), "no long line");
      assert.deepEqual(
        [...lines].sort(),
        formatPerfMap(expected.entries).trimEnd().split("\n").sort(),
      );
      console.log(
        `writePerfMap: ${lib.functions} functions (${lib.symbols} symbols) in ${
          r.ms.toFixed(1)
        } ms`,
      );

      // The same range again (a remap after a restore): nothing new.
      const again = writePerfMap(c, { regions: [region] }, { path });
      assert.equal(again.symbols, 0);
      assert.equal(again.objects[0].repeated, 1);
      assert.match(describePerfMap(again), /already written/);
      assert.equal(readFileSync(path, "utf8"), written);
      // Another map file gets its own lines.
      const other = join(dir, "other.map");
      assert.equal(
        writePerfMap(c, { regions: [region] }, { path: other }).symbols,
        lib.functions,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

// ---------------------------------------------------------------------------
// The C writer (trampoline/perf_map.c) on symbol tables written here, through
// each of its retry paths, against the pure planner.

/** A file holding a symbol table and its string table, and where they are. */
interface Table {
  path: string;
  symbolOffset: number;
  symbolCount: number;
  stringOffset: number;
  stringSize: number;
}

/**
 * Writes `symbols` as Elf64_Sym entries after a few bytes of padding, then
 * their names; an empty name gets a non-zero offset to a NUL (0 would mean
 * "no name" and leave the symbol out before its name is read).
 */
function writeTable(dir: string, symbols: readonly PerfMapSymbol[]): Table {
  const enc = new TextEncoder();
  const names: number[] = [];
  const strings: number[] = [0, 0];
  for (const s of symbols) {
    names.push(s.name === "" ? 1 : strings.length);
    if (s.name !== "") strings.push(...enc.encode(s.name), 0);
  }
  const pad = 40;
  const table = new Uint8Array(pad + 24 * symbols.length + strings.length);
  const view = new DataView(table.buffer);
  symbols.forEach((s, i) => {
    const at = pad + 24 * i;
    view.setUint32(at, names[i], true);
    table[at + 4] = (s.bind << 4) | s.type;
    view.setUint16(at + 6, 1, true);
    view.setBigUint64(at + 8, BigInt(s.value), true);
    view.setBigUint64(at + 16, BigInt(s.size), true);
  });
  table.set(strings, pad + 24 * symbols.length);
  const path = join(dir, "table");
  writeFileSync(path, table);
  return {
    path,
    symbolOffset: pad,
    symbolCount: symbols.length,
    stringOffset: pad + 24 * symbols.length,
    stringSize: strings.length,
  };
}

/** Room to give the C writer, small enough to take each retry path. */
interface Room {
  candidates: number;
  pool: number;
  io: number;
}

/**
 * Runs collect and write on `table` as writePerfMap does, growing the
 * buffers when asked; returns the map and what the calls said.
 */
function nativeLines(
  table: Table,
  ranges: readonly PerfMapRange[],
  bias: number,
  room: Room,
) {
  const c = libc();
  const t = loadTrampoline(c);
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  const fd = c.openRead(table.path);
  const mapPath = `${table.path}.map`;
  const mapFd = c.open(mapPath, O_RDWR | O_CREAT, 0o600);
  const steps: string[] = [];
  try {
    const scratch = (n: number, pool: number): PerfMapScratch => ({
      ranges: new BigUint64Array(sorted.flatMap((r) => [
        BigInt(r.start),
        BigInt(r.end),
        0n,
      ])),
      io: new Uint8Array(room.io),
      out: new Uint8Array(4096),
      candidates: new BigUint64Array(n * PERF_MAP_CANDIDATE_WORDS),
      order: new BigUint64Array(n),
      orderTmp: new BigUint64Array(n),
      pool: new Uint8Array(pool),
    });
    const request = {
      fd,
      symbolOffset: table.symbolOffset,
      symbolCount: table.symbolCount,
      stringOffset: table.stringOffset,
      stringSize: table.stringSize,
      bias,
      mapFd,
    };
    let s = scratch(room.candidates, room.pool);
    let r = t.perfMap({ op: "collect", ...request }, s);
    steps.push(r.step);
    if (r.step === "room") {
      s = scratch(r.need, room.pool);
      r = t.perfMap({ op: "collect", ...request }, s);
      steps.push(r.step);
    }
    assert.equal(r.step, "", JSON.stringify(r));
    const count = r.count;
    let w = t.perfMap({ op: "write", ...request, count }, s);
    steps.push(w.step);
    let symbols = w.symbols;
    if (w.step === "pool") {
      s.pool = new Uint8Array(w.need);
      w = t.perfMap({ op: "write shared", ...request, count }, s);
      steps.push(w.step);
      symbols += w.symbols;
    }
    assert.equal(w.step, "", JSON.stringify(w));
    return {
      text: readFileSync(mapPath, "utf8"),
      symbols,
      covered: w.covered,
      steps,
    };
  } finally {
    c.close(fd);
    c.close(mapFd);
    rmSync(mapPath, { force: true });
  }
}

const ROOMY: Room = { candidates: 1000, pool: 1 << 16, io: 1 << 16 };

function sortedLines(text: string): string[] {
  return text.split("\n").filter((l) => l !== "").sort();
}

test("the C writer on the fixture: the pure planner's lines, coverage, and the same after each retry", () => {
  const f = JSON.parse(
    readFileSync(`${FIXTURES}perf_map_symbols.json`, "utf8"),
  );
  const plan = perfMapEntries(f.symbols, f.ranges, f.bias);
  const dir = mkdtempSync(join(tmpdir(), "pp-perfmap-c-"));
  try {
    const table = writeTable(dir, f.symbols);
    const cases: [string, Room, string[]][] = [
      ["room enough", ROOMY, ["", ""]],
      // "spanning" crosses both ranges: one more candidate than symbols
      // with a name in them; a 1-byte pool holds no alias's name.
      ["room for 2 candidates, a 1-byte pool", {
        ...ROOMY,
        candidates: 2,
        pool: 1,
      }, ["room", "", "pool", ""]],
    ];
    for (const [what, room, steps] of cases) {
      const got = nativeLines(table, f.ranges, f.bias, room);
      assert.deepEqual(got.steps, steps, what);
      assert.deepEqual(
        sortedLines(got.text),
        sortedLines(formatPerfMap(plan.entries)),
        what,
      );
      assert.equal(got.symbols, plan.entries.length, what);
      assert.equal(got.covered, plan.covered, what);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the C writer: names longer than its read buffer, alone and shared, with CR and LF", () => {
  const symbols: PerfMapSymbol[] = [
    // Two aliases, both longer than the 64 KiB io buffer: equal but for
    // the last byte, so the choice reads them to the end.
    {
      name: `${"a".repeat(90_000)}2`,
      value: 0x1000,
      size: 16,
      type: 2,
      bind: 1,
    },
    {
      name: `${"a".repeat(90_000)}1`,
      value: 0x1000,
      size: 16,
      type: 2,
      bind: 1,
    },
    // Alone, longer than the buffer, with a CR and an LF in it.
    {
      name: `x\r${"b".repeat(70_000)}\ny`,
      value: 0x2000,
      size: 32,
      type: 2,
      bind: 0,
    },
    { name: "short", value: 0x3000, size: 8, type: 2, bind: 1 },
    // An alias versioned: loses to the plain name whatever its size.
    { name: "f@@V1", value: 0x4000, size: 64, type: 2, bind: 1 },
    { name: "f", value: 0x4000, size: 8, type: 2, bind: 0 },
  ];
  const ranges = [{ start: 0x10000, end: 0x20000 }];
  const bias = 0xf000;
  const plan = perfMapEntries(symbols, ranges, bias);
  assert.equal(plan.entries.length, 4);
  const dir = mkdtempSync(join(tmpdir(), "pp-perfmap-c-"));
  try {
    const table = writeTable(dir, symbols);
    for (const pool of [1 << 20, 16]) {
      const got = nativeLines(table, ranges, bias, { ...ROOMY, pool });
      assert.deepEqual(
        sortedLines(got.text),
        sortedLines(formatPerfMap(plan.entries)),
        `pool ${pool}`,
      );
      assert.equal(got.symbols, 4);
      assert.equal(got.covered, plan.covered);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the C writer refuses a name outside the string table, or without its NUL", () => {
  const dir = mkdtempSync(join(tmpdir(), "pp-perfmap-c-"));
  const c = libc();
  const t = loadTrampoline(c);
  try {
    const table = writeTable(dir, [
      { name: "ok", value: 0x1000, size: 16, type: 2, bind: 1 },
    ]);
    const fd = c.openRead(table.path);
    try {
      const s: PerfMapScratch = {
        ranges: new BigUint64Array([0x1000n, 0x2000n, 0n]),
        io: new Uint8Array(1 << 16),
        out: new Uint8Array(4096),
        candidates: new BigUint64Array(PERF_MAP_CANDIDATE_WORDS),
        order: new BigUint64Array(1),
        orderTmp: new BigUint64Array(1),
        pool: new Uint8Array(0),
      };
      // The string table cut before the name's end, then before its start.
      for (const stringSize of [table.stringSize - 1, 2]) {
        const request = {
          fd,
          symbolOffset: table.symbolOffset,
          symbolCount: 1,
          stringOffset: table.stringOffset,
          stringSize,
          bias: 0,
          mapFd: -1,
        };
        const r = t.perfMap({ op: "collect", ...request }, s);
        assert.equal(r.count, 1);
        const w = t.perfMap({ op: "write", ...request, count: 1 }, s);
        assert.equal(w.step, "name", JSON.stringify(w));
        assert.equal(w.errno, 22);
        assert.equal(w.at, 2);
        assert.equal(w.written, 0);
      }
    } finally {
      c.close(fd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------
// Real processes.

interface Nm {
  address: number;
  size: number;
  name: string;
}

/** `nm --defined-only -S` (with `-D`: the dynamic symbols) of a file. */
async function nm(path: string, dynamic: boolean): Promise<Nm[]> {
  const r = await run([
    "nm",
    "--defined-only",
    "-S",
    ...(dynamic ? ["-D"] : []),
    path,
  ]);
  assert.equal(r.code, 0, `nm failed: ${r.stderr}`);
  const out: Nm[] = [];
  for (const line of r.stdout.split("\n")) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) [TtWwi] (.+)$/.exec(line);
    if (m) {
      out.push({
        address: parseInt(m[1], 16),
        size: parseInt(m[2], 16),
        name: m[3],
      });
    }
  }
  return out;
}

/**
 * The load bias from `/proc/<pid>/maps` and `readelf -l`, independently of
 * the library: the first mapping of each writable LOAD segment of the file
 * (never remapped, unlike the code; V8's second mapping of its builtins
 * comes from the code's file offsets) lies at its `p_vaddr` plus the bias,
 * both rounded down to the page.
 */
async function biasFromMaps(pid: number, exe: string): Promise<number> {
  const r = await run(["readelf", "-lW", exe]);
  assert.equal(r.code, 0, r.stderr);
  const loads = [...r.stdout.matchAll(
    /^\s+LOAD\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x[0-9a-f]+ 0x([0-9a-f]+) 0x[0-9a-f]+ ([RWE ]+) /gm,
  )].map((m) => ({
    offset: parseInt(m[1], 16),
    vaddr: parseInt(m[2], 16),
    filesz: parseInt(m[3], 16),
    writable: m[4].includes("W"),
  }));
  assert.ok(loads.some((l) => l.writable), `no writable LOAD in ${exe}`);
  const biases = new Set<number>();
  for (const line of readFileSync(`/proc/${pid}/maps`, "utf8").split("\n")) {
    const m = /^([0-9a-f]+)-[0-9a-f]+ \S+ ([0-9a-f]+) \S+ \d+\s+(.*)$/.exec(
      line,
    );
    if (!m || m[3] !== exe) continue;
    const start = parseInt(m[1], 16);
    const off = parseInt(m[2], 16);
    const page = (n: number) => Math.floor(n / 4096) * 4096;
    const l = loads.find((l) => l.writable && page(l.offset) === off);
    if (l) biases.add(start - page(l.vaddr));
  }
  assert.equal(biases.size, 1, `maps give biases ${[...biases]}`);
  return [...biases][0];
}

function parseMap(
  text: string,
): { start: number; size: number; name: string }[] {
  return text.split("\n").filter((l) => l !== "").map((l) => {
    const m = /^([0-9a-f]+) ([0-9a-f]+) (.+)$/.exec(l);
    assert.ok(m, `malformed perf map line: ${JSON.stringify(l)}`);
    return { start: parseInt(m[1], 16), size: parseInt(m[2], 16), name: m[3] };
  });
}

async function startPerfChild(
  rt: "deno" | "bun",
  remap: Record<string, unknown> = { backend: "thp", perfMap: false },
): Promise<{ child: Child; out: PrimeOutcomeData }> {
  const child = await startChild(rt, { remap }, {
    script: "perf_map_child.ts",
  });
  const out = child.outcome as PrimeOutcomeData;
  assert.equal(out.ok, true, out.reason);
  assert.ok(
    out.remap!.regions.some((r) =>
      r.kind === "text" && r.status === "remapped"
    ),
    "no text region was remapped",
  );
  return { child, out };
}

async function writeMap(child: Child): Promise<PerfMapReport> {
  const got = JSON.parse(await child.ask("write", "PERFMAP "));
  assert.equal(got.error, undefined, got.error);
  return got;
}

/** About `n` items spread evenly over `xs`. */
function spread<T>(xs: readonly T[], n: number): T[] {
  if (xs.length <= n) return [...xs];
  return Array.from({ length: n }, (_, i) => xs[Math.floor(i * xs.length / n)]);
}

const MARKER = "7f0000001000 40 LazyCompile:~preexisting_v8_entry\n";

for (const rt of ["bun", "deno"] as const) {
  test(`${rt}: the perf map of a remapped child names its functions at nm's addresses, after existing content`, async () => {
    const { child, out } = await startPerfChild(rt);
    const path = `/tmp/perf-${child.pid}.map`;
    try {
      // Someone (V8's --perf-basic-prof) wrote the map before us.
      writeFileSync(path, MARKER);
      const report = await writeMap(child);
      assert.deepEqual(report.warnings, []);
      const exe = runtimePath(rt);
      const text = out.remap!.regions.filter((r) =>
        r.kind === "text" && r.status === "remapped"
      );
      const textBytes = text.reduce((n, r) => n + r.dataEnd - r.dataStart, 0);
      const content = readFileSync(path, "utf8");
      assert.ok(content.startsWith(MARKER), "the existing content was lost");
      const entries = parseMap(content.slice(MARKER.length));

      assert.equal(report.path, path);
      assert.equal(report.objects.length, 1);
      const o = report.objects[0];
      assert.equal(o.object, exe);
      assert.equal(o.symbols, entries.length);
      assert.equal(report.symbols, entries.length);
      assert.equal(o.bytes, textBytes);
      assert.ok(o.covered > 0 && o.covered <= o.bytes, `covered ${o.covered}`);
      const elf = parseElf(bytesSource(readFileSync(exe)));
      const stripped = !elf.sections.some((s) => s.name === ".symtab");
      assert.equal(o.stripped, stripped);
      assert.equal(o.source, stripped ? ".dynsym" : ".symtab");
      if (rt === "deno") {
        // Deno ships stripped: only its exported functions can be named.
        assert.equal(o.source, ".dynsym");
        assert.match(describePerfMap(report), /stripped/);
      } else {
        assert.equal(o.source, ".symtab");
      }

      const bias = await biasFromMaps(child.pid, exe);
      if (rt === "bun") assert.equal(bias, 0, "bun is not a PIE");
      assert.equal(o.bias, bias);
      const symbols = await nm(exe, stripped);
      const byAddress = new Map<number, Nm[]>();
      for (const s of symbols) {
        byAddress.set(s.address + bias, [
          ...(byAddress.get(s.address + bias) ?? []),
          s,
        ]);
      }
      // One per address (in string table order, not sorted: perf does not
      // need it), inside the remapped text.
      assert.equal(
        new Set(entries.map((e) => e.start)).size,
        entries.length,
        "two lines at one address",
      );
      const inText = (a: number) =>
        text.some((r) => r.dataStart <= a && a < r.dataEnd);
      for (const e of entries) {
        assert.ok(inText(e.start), `${e.name} outside the remapped text`);
        assert.ok(inText(e.start + e.size - 1), `${e.name} runs past it`);
      }
      // A sample spread over the text: nm's address and size.
      const sample = spread(entries, 50);
      for (const e of sample) {
        const at = byAddress.get(e.start) ?? [];
        const s = at.find((s) => s.name === e.name);
        assert.ok(s, `${e.name} at 0x${e.start.toString(16)} is not in nm`);
        assert.equal(e.size, s.size, `size of ${e.name}`);
      }
      // Every sized function nm lists in the remapped text has an entry.
      const expected = new Set(
        symbols.filter((s) => s.size > 0 && inText(s.address + bias)).map((
          s,
        ) => s.address + bias),
      );
      assert.deepEqual(new Set(entries.map((e) => e.start)), expected);
      console.log(
        `${rt}: ${entries.length} symbols from ${o.source}${
          o.stripped ? " (stripped)" : ""
        } name ${(o.covered / 1024).toFixed(0)} KiB of ${
          (o.bytes / 1048576).toFixed(1)
        } MiB remapped text (${
          (100 * o.covered / o.bytes).toFixed(2)
        }%), written in ${
          report.ms.toFixed(1)
        } ms; ${sample.length} sampled entries match nm`,
      );

      // A second write of the same ranges adds nothing, and truncates
      // nothing.
      const second = await writeMap(child);
      assert.equal(second.symbols, 0);
      assert.equal(second.objects[0].repeated, text.length);
      assert.equal(readFileSync(path, "utf8"), content);
    } finally {
      await child.finish();
      rmSync(path, { force: true });
    }
  });
}

test("bun: with no remapped code nothing is written and no file is created", async () => {
  const child = await startChild("bun", {
    remap: { backend: "thp", perfMap: false },
    objects: ["no-such-object.so"],
  }, { script: "perf_map_child.ts" });
  const path = `/tmp/perf-${child.pid}.map`;
  try {
    assert.equal(child.outcome.remap?.regions.length ?? 0, 0);
    const report = await writeMap(child);
    assert.deepEqual(report.objects, []);
    assert.equal(report.symbols, 0);
    assert.equal(existsSync(path), false);
  } finally {
    await child.finish();
    rmSync(path, { force: true });
  }
});

test("bun: memfd copies get the map too, with a warning that perf will not read it", async () => {
  const child = await startChild("bun", {
    remap: { backend: "memfd", perfMap: false },
  }, {
    script: "perf_map_child.ts",
  });
  const path = `/tmp/perf-${child.pid}.map`;
  try {
    const out = child.outcome as PrimeOutcomeData;
    assert.equal(out.remap?.backend, "memfd");
    assert.ok(
      out.remap!.regions.some((r) =>
        r.kind === "text" && r.status === "remapped"
      ),
      `nothing remapped: ${out.reason}`,
    );
    const report = await writeMap(child);
    assert.ok(report.symbols > 0);
    assert.equal(parseMap(readFileSync(path, "utf8")).length, report.symbols);
    assert.equal(report.warnings.length, 1);
    assert.match(report.warnings[0], /memfd.*thp/);
  } finally {
    await child.finish();
    rmSync(path, { force: true });
  }
});

for (const perfMap of [undefined, false, true]) {
  test(
    `bun: remap(${perfMap === undefined ? "{}" : `{ perfMap: ${perfMap} }`}) ${
      perfMap ? "writes" : "does not write"
    } the perf map, timed apart`,
    async () => {
      const remap = perfMap === undefined
        ? { backend: "thp" }
        : { backend: "thp", perfMap };
      const child = await startChild("bun", { remap }, {
        script: "perf_map_child.ts",
      });
      const path = `/tmp/perf-${child.pid}.map`;
      try {
        const out = child.outcome as PrimeOutcomeData;
        const d = out.durations;
        if (!perfMap) {
          assert.equal(out.remap!.perfMap, undefined);
          assert.equal(existsSync(path), false);
          assert.equal(d.perfMapMs, 0);
        } else {
          const r = out.remap!.perfMap!;
          assert.ok(r.symbols > 0, JSON.stringify(r));
          assert.equal(parseMap(readFileSync(path, "utf8")).length, r.symbols);
          assert.ok(d.perfMapMs! >= r.ms, `${d.perfMapMs} < ${r.ms}`);
        }
        // The phases add up: the perf map is not counted as inspection.
        const sum = d.inspectMs + d.remapMs + d.mlockMs + d.populateMs +
          (d.perfMapMs ?? 0);
        assert.ok(Math.abs(sum - d.totalMs) < 0.01, JSON.stringify(d));
      } finally {
        await child.finish();
        rmSync(path, { force: true });
      }
    },
  );
}

for (const rt of ["bun", "deno"] as const) {
  test(`${rt}: 20 restore/remap cycles with perfMap write each line once`, async () => {
    const child = await startChild(rt, {
      remap: { backend: "thp", perfMap: true },
    }, { script: "perf_map_child.ts" });
    const path = `/tmp/perf-${child.pid}.map`;
    try {
      const out = child.outcome as PrimeOutcomeData;
      assert.equal(out.ok, true, out.reason);
      const first = out.remap!.perfMap!;
      assert.ok(first.symbols > 0, JSON.stringify(first));
      const before = readFileSync(path, "utf8");
      const cycles = JSON.parse(await child.ask("cycle 20", "CYCLED "));
      assert.equal(cycles.length, 20);
      for (const c of cycles) {
        assert.equal(c.error, undefined, c.error);
        assert.equal(c.symbols, 0, JSON.stringify(c));
        assert.ok(c.repeated > 0, JSON.stringify(c));
      }
      assert.equal(readFileSync(path, "utf8"), before);
      const starts = parseMap(before).map((e) => e.start);
      assert.equal(new Set(starts).size, first.symbols);
    } finally {
      await child.finish();
      rmSync(path, { force: true });
    }
  });
}

// ---------------------------------------------------------------------------
// perf itself.

function perfSkipReason(): string | undefined {
  const probe = spawnSync("perf", ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) {
    return "perf is not installed (apt-get install linux-perf)";
  }
  const dir = mkdtempSync(join(tmpdir(), "pp-perf-"));
  try {
    const r = spawnSync("perf", [
      "record",
      "-e",
      "cpu-clock",
      "-o",
      join(dir, "probe.data"),
      "--",
      "true",
    ], { encoding: "utf8" });
    if (r.status !== 0) {
      return `perf record -e cpu-clock does not work here: ${
        (r.stderr || String(r.error)).trim().split("\n").slice(-2).join(" ")
      }`;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return undefined;
}

const PERF_SKIP = perfSkipReason();
if (PERF_SKIP) console.log(`perf_map_test: perf test skipped: ${PERF_SKIP}`);

/** Samples `pid` for `seconds` while it is busy in `fn`; the report's `dso sym` lines naming `fn`. */
async function sampleBusy(
  child: Child,
  fn: string,
  dir: string,
  label: string,
): Promise<string[]> {
  const data = join(dir, `${label}.data`);
  const busy = child.ask(`busy ${fn} 2500`, "BUSY ");
  await new Promise((r) => setTimeout(r, 300));
  const rec = await run([
    "perf",
    "record",
    "-e",
    "cpu-clock",
    "-F",
    "2000",
    "-p",
    String(child.pid),
    "-o",
    data,
    "--",
    "sleep",
    "1.5",
  ]);
  assert.equal(rec.code, 0, `perf record: ${rec.stderr}`);
  assert.ok(Number(await busy) > 0);
  const rep = await run([
    "perf",
    "report",
    "-i",
    data,
    "--stdio",
    "--sort",
    "dso,sym",
  ]);
  assert.equal(rep.code, 0, `perf report: ${rep.stderr}`);
  assert.match(rep.stdout, /Samples: /);
  return rep.stdout.split("\n").filter((l) =>
    !l.startsWith("#") && l.includes(fn)
  );
}

test(
  "bun: perf report names a function running from the remapped copy only once the map is written",
  { skip: PERF_SKIP },
  async () => {
    const fn = "uv_hrtime";
    const { child, out } = await startPerfChild("bun");
    const path = `/tmp/perf-${child.pid}.map`;
    const dir = mkdtempSync(join(tmpdir(), "pp-perf-"));
    try {
      const [sym] = (await nm(runtimePath("bun"), false)).filter((s) =>
        s.name === fn
      );
      assert.ok(sym, `${fn} is not in bun's symbols`);
      assert.ok(
        out.remap!.regions.some((r) =>
          r.status === "remapped" && r.dataStart <= sym.address &&
          sym.address < r.dataEnd
        ),
        `${fn} (0x${sym.address.toString(16)}) is not in a remapped region`,
      );
      // Control: the copy is anonymous memory, perf cannot name it.
      assert.equal(existsSync(path), false);
      const before = await sampleBusy(child, fn, dir, "before");
      assert.deepEqual(before, [], `named without a map: ${before}`);
      const report = await writeMap(child);
      assert.ok(report.symbols > 0);
      const after = await sampleBusy(child, fn, dir, "after");
      console.log(`bun: perf report with the map: ${after[0]?.trim()}`);
      assert.equal(after.length, 1, `perf report lines for ${fn}: ${after}`);
      const pct = parseFloat(after[0]);
      assert.ok(pct > 0, after[0]);
    } finally {
      await child.finish();
      rmSync(path, { force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
