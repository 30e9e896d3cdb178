// The command line (cli.ts): doctor and inspect, their pure parts on
// fixtures, and the real commands run under Deno and Bun against this
// machine and against child processes (node --use-largepages=on, deno/bun
// children that remapped themselves), checked against /proc read here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { bytesSource, parseElf, PT_LOAD } from "../src/sys/elf.ts";
import { parseSmaps, type SmapsVma } from "../src/sys/maps.ts";
import { thpVerdict } from "../src/sys/thp.ts";
import type { LoadedObject } from "../src/sys/segments.ts";
import {
  diagnose,
  type DoctorFacts,
  type DoctorInput,
  type DoctorReport,
  formatDoctor,
  parseHugetlbMounts,
  predictCoverage,
  recommendedRoutes,
} from "../src/tools/doctor.ts";
import {
  biasFromAuxv,
  biasFromVmas,
  formatInspect,
  inspectLayout,
  type InspectReport,
  parseAuxv,
  vmaBacking,
} from "../src/tools/inspect.ts";
import { SANDBOX_SKIP, withSandbox } from "./fixtures/sandbox.ts";
import {
  closed,
  isRoot,
  ROOT,
  run,
  runtimeCommand,
  runtimePath,
  RUNTIMES,
  shellQuote,
  startChild,
} from "./helpers.ts";

const MiB = 1024 * 1024;
const THP = "/sys/kernel/mm/transparent_hugepage";

function cli(runtime: "deno" | "bun", args: string[]): string[] {
  return runtime === "deno"
    ? [
      runtimePath("deno"),
      "run",
      "--allow-ffi",
      "--allow-read",
      "--allow-env",
      "--allow-run",
      `${ROOT}cli.ts`,
      ...args,
    ]
    : [runtimePath("bun"), `${ROOT}cli.ts`, ...args];
}

function sysSelected(file: string): string {
  const m = /\[([^\]]+)\]/.exec(readFileSync(file, "utf8"));
  return m ? m[1] : "";
}

// ---------------------------------------------------------------------------
// Pure: inspect on a captured node --use-largepages=on smaps

// /usr/bin/node (node 20.20) program headers, readelf -lW.
const NODE_LOADS = [
  [0x000000, 0x400000, 0x76e5d8, 0x76e5d8, 4],
  [0x76f000, 0xb6f000, 0x001e90, 0x001e90, 5],
  [0x772000, 0xb72000, 0x1a8bca0, 0x1a8bca0, 5],
  [0x2200000, 0x2600000, 0x0001f1, 0x0001f1, 5],
  [0x2201000, 0x2601000, 0x3038cae, 0x3038cae, 4],
  [0x5239ec8, 0x563aec8, 0x0215f8, 0x04dfc8, 6],
].map(([offset, vaddr, filesz, memsz, flags], index) => ({
  index,
  offset,
  vaddr,
  filesz,
  memsz,
  flags,
}));
const NODE_SMAPS = parseSmaps(
  readFileSync(`${ROOT}tests/fixtures/cli/node_largepages_smaps.txt`, "utf8"),
);

test("inspect: node's anonymous huge-page text is attributed to its text segment by address", () => {
  assert.equal(
    biasFromVmas(
      { path: "/usr/bin/node", segments: NODE_LOADS },
      NODE_SMAPS,
      4096,
    ),
    0,
  );
  const r = inspectLayout({
    pid: 7,
    exe: "/usr/bin/node",
    objects: [{
      path: "/usr/bin/node",
      main: true,
      bias: 0,
      biasFrom: "maps",
      segments: NODE_LOADS,
    }],
    smaps: NODE_SMAPS,
    pageSize: 4096,
  });
  assert.equal(r.primerLoaded, false);
  const node = r.objects[0];
  assert.equal(node.segments.length, 6);
  const text = node.segments[2];
  assert.equal(text.kind, "text");
  assert.equal(text.start, 0xb72000);
  assert.equal(text.anonHuge, 24 * MiB);
  assert.equal(text.huge, 24 * MiB);
  assert.deepEqual(text.backing, ["file", "anon"]);
  assert.equal(text.primer, undefined);
  // The rodata and the tiny text segments stay on the file.
  assert.deepEqual(node.segments[0].backing, ["file"]);
  assert.equal(node.segments[0].huge, 0);
  // The bss after the data is anonymous and inside segment 5.
  assert.deepEqual(node.segments[5].backing, ["file", "anon"]);
  assert.equal(node.totals.huge, 24 * MiB);
  assert.equal(r.totals.anonHuge, 24 * MiB);
  assert.equal(r.process.anonHuge, 24 * MiB);
  const text2 = formatInspect(r);
  assert.match(
    text2,
    /node text on 2 MiB pages: 24\.0 MiB of 26\.6 MiB \(90\.4%\)/,
  );
  assert.match(text2, /AnonHugePages/);
  assert.doesNotMatch(text2, /page-primer/);
});

test("inspect: with page-primer's trampoline loaded, unnamed read-only copies are page-primer's; writable ones never", () => {
  const tramp = parseSmaps(
    "7f0000000000-7f0000001000 r-xp 00001000 00:01 458 /memfd:page-primer-trampoline (deleted)\n",
  );
  const r = inspectLayout({
    pid: 7,
    objects: [{
      path: "/usr/bin/node",
      main: true,
      bias: 0,
      biasFrom: "maps",
      segments: NODE_LOADS,
    }],
    smaps: [...NODE_SMAPS, ...tramp],
    pageSize: 4096,
  });
  assert.equal(r.primerLoaded, true);
  assert.equal(r.objects[0].segments[2].primer, "page-primer (unnamed)");
  assert.equal(r.objects[0].segments[5].primer, undefined); // bss
  assert.match(formatInspect(r), /page-primer \(unnamed\)\+file/);
});

test("vmaBacking names each kind of mapping and page-primer's copies", () => {
  const v = (line: string) => parseSmaps(line + "\n")[0];
  const p = "/usr/bin/deno";
  assert.deepEqual(
    vmaBacking(v(`1000-2000 r-xp 00000000 fe:00 7 ${p}`), p, true),
    { backing: "file" },
  );
  assert.deepEqual(
    vmaBacking(
      v(`1000-2000 r-xp 00000000 00:00 0 [anon:page-primer:${p}]`),
      p,
      false,
    ),
    { backing: "anon", primer: `page-primer:${p}` },
  );
  assert.deepEqual(
    vmaBacking(
      v(`1000-2000 r-xs 00000000 00:01 9 /memfd:${p} (deleted)`),
      p,
      false,
    ),
    { backing: "memfd", primer: `/memfd:${p} (deleted)` },
  );
  // A memfd of another object is not this object's copy.
  assert.deepEqual(
    vmaBacking(
      v("1000-2000 r-xs 00000000 00:01 9 /memfd:/usr/bin/bun (deleted)"),
      p,
      false,
    ),
    { backing: "/memfd:/usr/bin/bun (deleted)" },
  );
  assert.deepEqual(
    vmaBacking(v("1000-2000 r-xp 00000000 00:00 0"), p, false),
    { backing: "anon" },
  );
  assert.deepEqual(
    vmaBacking(v("1000-2000 r-xp 00000000 00:00 0"), p, true),
    { backing: "anon", primer: "page-primer (unnamed)" },
  );
  assert.deepEqual(
    vmaBacking(v("1000-2000 rw-p 00000000 00:00 0"), p, true),
    { backing: "anon" },
  );
  assert.deepEqual(
    vmaBacking(
      v("200000-400000 r-xp 00000000 00:0f 77 /anon_hugepage (deleted)"),
      p,
      true,
    ),
    { backing: "hugetlb", primer: "page-primer (unnamed)" },
  );
});

test("biasFromVmas: a second mapping of the file elsewhere loses to the segments and page-primer's copies", () => {
  const path = "/opt/rt";
  const segs = [
    {
      index: 0,
      flags: 4,
      vaddr: 0,
      memsz: 0x400000,
      filesz: 0x400000,
      offset: 0,
    },
    {
      index: 1,
      flags: 5,
      vaddr: 0x400000,
      memsz: 0x800000,
      filesz: 0x800000,
      offset: 0x400000,
    },
    {
      index: 2,
      flags: 6,
      vaddr: 0xc00000,
      memsz: 0x2000,
      filesz: 0x1000,
      offset: 0xc00000,
    },
  ];
  // rodata and text replaced by named copies; the data VMA is left, and a
  // further mapping of part of the text lives at a high address.
  const vmas = parseSmaps(
    [
      `555500000000-555500400000 r--p 00000000 00:00 0 [anon:page-primer:${path}]`,
      `555500400000-555500c00000 r-xp 00000000 00:00 0 [anon:page-primer:${path}]`,
      `555500c00000-555500c01000 rw-p 00c00000 fe:00 5 ${path}`,
      `7f0000000000-7f0000200000 r-xp 00500000 fe:00 5 ${path}`,
    ].join("\n") + "\n",
  );
  const object = { path, segments: segs };
  assert.equal(biasFromVmas(object, vmas, 4096), 0x555500000000);
  // Without the copies the vote ties; the lowest address wins.
  assert.equal(biasFromVmas(object, vmas.slice(2), 4096), 0x555500000000);
  // A file none of whose VMAs match its headers.
  assert.equal(biasFromVmas({ path, segments: [] }, vmas, 4096), undefined);
});

test("parseAuxv and biasFromAuxv", () => {
  const b = new Uint8Array(48);
  const d = new DataView(b.buffer);
  d.setBigUint64(0, 6n, true); // AT_PAGESZ
  d.setBigUint64(8, 4096n, true);
  d.setBigUint64(16, 3n, true); // AT_PHDR
  d.setBigUint64(24, 0x555500000040n, true);
  const aux = parseAuxv(b); // ends at AT_NULL (zeros)
  assert.deepEqual([...aux], [[6, 4096], [3, 0x555500000040]]);
  const phdr = {
    type: 6,
    flags: 4,
    offset: 0x40,
    vaddr: 0x40,
    paddr: 0x40,
    filesz: 0,
    memsz: 0,
    align: 8,
  };
  assert.equal(biasFromAuxv(aux, [phdr]), 0x555500000000);
  assert.equal(biasFromAuxv(aux, []), undefined);
  assert.equal(biasFromAuxv(new Map(), [phdr]), undefined);
});

// ---------------------------------------------------------------------------
// Pure: doctor on a synthetic executable

// A bun-like layout: rodata at 0x200000, text after a 28 KiB hole, data far
// enough above the text that aggressive alignment can grow the text's end.
const RT = "/opt/rt/runtime";
const RT_SEGMENTS = [
  {
    index: 0,
    flags: 4,
    vaddr: 0x200000,
    memsz: 0x1839000,
    filesz: 0x1839000,
    offset: 0,
  },
  {
    index: 1,
    flags: 5,
    vaddr: 0x1a40d00,
    memsz: 0x4e09300,
    filesz: 0x4e09300,
    offset: 0x1838d00,
  },
  {
    index: 2,
    flags: 6,
    vaddr: 0x6a00000,
    memsz: 0x15000,
    filesz: 0x15000,
    offset: 0x6642000,
  },
];
const RT_SMAPS = parseSmaps(
  [
    `00200000-01a39000 r--p 00000000 fe:00 5 ${RT}`,
    `01a40000-0684a000 r-xp 01838000 fe:00 5 ${RT}`,
    `06a00000-06a15000 rw-p 06642000 fe:00 5 ${RT}`,
  ].join("\n") + "\n",
);
const RT_OBJECT: LoadedObject = {
  path: RT,
  main: true,
  bias: 0,
  segments: RT_SEGMENTS,
};
const RT_RANGES = [
  { index: 0, kind: "rodata", perms: "r--", start: 0x200000, end: 0x1a39000 },
  { index: 1, kind: "text", perms: "r-x", start: 0x1a40000, end: 0x684a000 },
  { index: 2, kind: "data", perms: "rw-", start: 0x6a00000, end: 0x6a15000 },
].map((r) => ({
  ...r,
  object: RT,
  main: true,
  origin: "load" as const,
})) as DoctorInput["ranges"];

function facts(over: Partial<DoctorFacts> = {}): DoctorFacts {
  return {
    runtime: "bun 1.4.5",
    pid: 42,
    kernel: "6.18.44",
    arch: "x86_64",
    thp: thpVerdict({
      enabled: "always [madvise] never",
      defrag: "[madvise] never",
      processDisabled: false,
      release: "6.18.44",
    }),
    shmemEnabled: "never",
    hugetlb: {
      supported: true,
      total: 0,
      free: 0,
      reserved: 0,
      available: 0,
      mounts: [],
    },
    memlock: {
      soft: 8 * MiB,
      hard: 8 * MiB,
      vmLck: 0,
      capIpcLock: true,
      needed: 0x6815000 - 0x200000,
      loadBytes: 0x6815000 - 0x200000,
      aliasBytes: 0,
    },
    maps: { max: 65530, current: 60 },
    executable: { path: RT, bias: 0, segments: [] },
    ...over,
  };
}

function input(over: Partial<DoctorFacts> = {}): DoctorInput {
  return {
    facts: facts(over),
    smaps: RT_SMAPS,
    objects: [RT_OBJECT],
    ranges: RT_RANGES,
  };
}

const predict = (
  align: "aggressive" | "conservative",
  over: Partial<Parameters<typeof predictCoverage>[0]> = {},
) =>
  predictCoverage({
    objects: [RT_OBJECT],
    ranges: RT_RANGES,
    smaps: RT_SMAPS,
    align,
    thp: { usable: true },
    pool: { total: 0, available: 0 },
    shmemEnabled: "never",
    ...over,
  });

test("predictCoverage: planned bytes per strategy, counted over the LOAD ranges", () => {
  const a = predict("aggressive");
  assert.equal(a.backend, "thp");
  assert.equal(a.regions, 2);
  // rodata: 0x200000..0x1a00000 (the text's VMA blocks growing up).
  assert.deepEqual(a.rodata, { bytes: 0x1839000, huge: 0x1800000 });
  // text: from 0x1c00000 up to its end, grown into the free gap.
  assert.deepEqual(a.text, { bytes: 0x4e0a000, huge: 0x684a000 - 0x1c00000 });
  assert.equal(a.mapsNeeded, 12);
  assert.equal(a.hugetlb.pagesNeeded, 12 + 39);
  const c = predict("conservative");
  assert.deepEqual(c.text, { bytes: 0x4e0a000, huge: 0x6800000 - 0x1c00000 });
  assert.equal(c.hugetlb.pagesNeeded, 12 + 38);
});

test("predictCoverage: the backend auto would choose, and none when nothing can work", () => {
  assert.equal(
    predict("aggressive", { pool: { total: 60, available: 60 } }).backend,
    "hugetlb",
  );
  const off = { usable: false, reason: "THP off" };
  assert.equal(
    predict("aggressive", { thp: off, shmemEnabled: "advise" }).backend,
    "memfd",
  );
  const none = predict("aggressive", { thp: off });
  assert.match(none.unavailable ?? "", /no huge pages possible/);
  assert.equal(none.regions, 0);
  assert.equal(none.text.huge, 0);
  // Pages that are huge already count (a copy not in the plan).
  const huge = parseSmaps(
    `01c00000-02000000 r-xp 00000000 00:00 0\nAnonHugePages: 4096 kB\n`,
  );
  assert.equal(
    predict("aggressive", {
      thp: off,
      smaps: [...RT_SMAPS.filter((v) => !v.exec), ...huge],
    }).text.huge,
    4 * MiB,
  );
});

test("diagnose: this machine's situation: advice with commands, the memlock limit noted, ok", () => {
  const r = diagnose(input());
  assert.equal(r.ok, true);
  const by = (t: string) => r.findings.find((f) => f.topic === t)!;
  assert.equal(by("thp").status, "ok");
  assert.match(by("thp").message, /enabled=madvise/);
  assert.equal(by("shmem").status, "advice");
  assert.equal(
    by("shmem").command,
    `echo advise > ${THP}/shmem_enabled`,
  );
  assert.equal(by("hugetlb").status, "advice");
  assert.match(by("hugetlb").message, /vm\.nr_hugepages = 0/);
  assert.equal(by("hugetlb").command, "sysctl -w vm.nr_hugepages=51");
  assert.equal(by("memlock").status, "note");
  assert.match(
    by("memlock").message,
    /RLIMIT_MEMLOCK 8\.0 MiB soft, 8\.0 MiB hard/,
  );
  assert.equal(
    by("memlock").command,
    `ulimit -l ${Math.ceil((0x6815000 - 0x200000) / 1024)}`,
  );
  assert.equal(by("remap").status, "ok");
  // Advice before notes before ok.
  const order = r.findings.map((f) => f.status);
  assert.deepEqual(
    order,
    [...order].sort((a, b) =>
      ["blocker", "advice", "note", "ok"].indexOf(a) -
      ["blocker", "advice", "note", "ok"].indexOf(b)
    ),
  );
  const text = formatDoctor(r);
  assert.match(text, /THP enabled\s+madvise/);
  assert.match(text, /shmem THP \(shmem_enabled\)\s+never/);
  assert.match(text, /\$ sysctl -w vm\.nr_hugepages=51/);
  assert.match(
    text,
    /\$ echo advise > \/sys\/kernel\/mm\/transparent_hugepage\/shmem_enabled/,
  );
  assert.match(text, /aggressive\s+thp\s+2\s+76\.3 of 78\.0 MiB \(97\.8%\)/);
  assert.match(text, /conservative\s+thp\s+2\s+76\.0 of 78\.0 MiB \(97\.4%\)/);
  assert.match(text, /verdict: ok/);
});

test("diagnose: blockers: memlock without CAP_IPC_LOCK, no way to huge pages, max_map_count", () => {
  const locked = diagnose(input({
    memlock: { ...facts().memlock, capIpcLock: false },
  }));
  assert.equal(locked.ok, false);
  assert.equal(locked.findings[0].topic, "memlock");
  assert.equal(locked.findings[0].status, "blocker");
  assert.match(locked.findings[0].command!, /^ulimit -l \d+$/);
  // A hard limit above the need: page-primer raises the soft one itself.
  const raise = diagnose(input({
    memlock: { ...facts().memlock, capIpcLock: false, hard: null },
  }));
  assert.equal(raise.ok, true);
  assert.match(
    raise.findings.find((f) => f.topic === "memlock")!.message,
    /raises it to the hard limit itself/,
  );
  const old = diagnose(input({
    kernel: "5.15.0",
    thp: thpVerdict({
      enabled: "always madvise [never]",
      defrag: "[never]",
      processDisabled: false,
      release: "5.15.0",
    }),
  }));
  assert.equal(old.ok, false);
  const remap = old.findings.find((f) => f.topic === "remap")!;
  assert.equal(remap.status, "blocker");
  assert.equal(
    old.findings.find((f) => f.topic === "thp")!.command,
    `echo madvise > ${THP}/enabled`,
  );
  assert.equal(
    old.findings.find((f) => f.topic === "thp-defrag")!.command,
    `echo madvise > ${THP}/defrag`,
  );
  const maps = diagnose(input({ maps: { max: 65, current: 60 } }));
  assert.equal(maps.ok, false);
  assert.equal(
    maps.findings[0].command,
    "sysctl -w vm.max_map_count=1096",
  );
});

test("diagnose: THP disabled for the process: only the hugetlb pool is recommended, no command that would not help", () => {
  const disabled = thpVerdict({
    enabled: "always [madvise] never",
    defrag: "[madvise] never",
    processDisabled: true,
    release: "6.18.44",
  });
  for (const available of [0, 60]) {
    const r = diagnose(input({
      thp: disabled,
      shmemEnabled: "advise",
      hugetlb: {
        ...facts().hugetlb,
        total: available,
        free: available,
        available,
      },
    }));
    const by = (t: string) => r.findings.find((f) => f.topic === t)!;
    assert.deepEqual(recommendedRoutes(r), ["hugetlb"]);
    const [thp, memfd, hugetlb] = r.routes;
    assert.deepEqual([thp.works, thp.command], [false, undefined]);
    assert.deepEqual([memfd.works, memfd.command], [false, undefined]);
    assert.match(memfd.why, /PR_SET_THP_DISABLE/);
    assert.equal(hugetlb.works, available > 0);
    assert.equal(by("thp").status, "note");
    assert.equal(by("shmem").status, "note");
    assert.match(by("thp-process").message, /Only the hugetlb pool gives/);
    for (const f of r.findings) {
      assert.doesNotMatch(f.command ?? "", /transparent_hugepage/, f.topic);
    }
    const remap = by("remap");
    if (available > 0) {
      assert.equal(remap.status, "ok");
      assert.match(remap.message, /hugetlb backend/);
    } else {
      assert.equal(by("thp-process").command, "sysctl -w vm.nr_hugepages=51");
      assert.equal(remap.status, "blocker");
      assert.match(remap.message, /backend: "hugetlb"/);
      assert.doesNotMatch(remap.message, /shmem_enabled/);
    }
    const text = formatDoctor(r);
    assert.match(text, /routes to 2 MiB pages for this process:/);
    assert.match(text, /^ {2}memfd {3}no: THP is disabled/m);
    assert.doesNotMatch(text, /\$ echo/);
  }
});

test("parseHugetlbMounts", () => {
  assert.deepEqual(
    parseHugetlbMounts(
      "proc /proc proc rw 0 0\nhugetlbfs /dev/hugepages hugetlbfs rw,pagesize=2M 0 0\nnone /mnt/huge\\040pages hugetlbfs rw 0 0\n",
    ),
    ["/dev/hugepages", "/mnt/huge pages"],
  );
  assert.deepEqual(parseHugetlbMounts(""), []);
});

// ---------------------------------------------------------------------------
// The real commands

function limitsOfSelf(): { soft: number | null } {
  const line = readFileSync("/proc/self/limits", "utf8").split("\n")
    .find((l) => l.startsWith("Max locked memory"))!;
  const soft = line.trim().split(/\s+/)[3];
  return { soft: soft === "unlimited" ? null : Number(soft) };
}

function loadCount(path: string): number {
  return parseElf(bytesSource(readFileSync(path))).programHeaders.filter((p) =>
    p.type === PT_LOAD
  ).length;
}

for (const rt of RUNTIMES) {
  test(`doctor (${rt}): names this machine's THP, shmem, hugetlb pool and memlock limit, with the commands`, async () => {
    const nr = Number(readFileSync("/proc/sys/vm/nr_hugepages", "utf8"));
    const enabled = sysSelected(`${THP}/enabled`);
    const shmem = sysSelected(`${THP}/shmem_enabled`);
    const [text, json] = await Promise.all([
      run(cli(rt, ["doctor"])),
      run(cli(rt, ["doctor", "--json"])),
    ]);
    assert.equal(text.stderr, "");
    const report = JSON.parse(json.stdout) as DoctorReport;
    assert.equal(text.code, report.ok ? 0 : 1, text.stdout);
    assert.equal(json.code, report.ok ? 0 : 1);
    const out = text.stdout;
    console.log(
      `doctor (${rt}): ` +
        report.predictions.map((p) =>
          `${p.align}: text ${
            (100 * p.text.huge / p.text.bytes).toFixed(1)
          }%, rodata ${
            (100 * p.rodata.huge / p.rodata.bytes).toFixed(1)
          }%, hugetlb pages ${p.hugetlb.pagesNeeded}`
        ).join("; "),
    );
    assert.match(out, new RegExp(`THP enabled\\s+${enabled}\\n`));
    assert.match(
      out,
      new RegExp(`shmem THP \\(shmem_enabled\\)\\s+${shmem}\\n`),
    );
    assert.match(out, new RegExp(`vm\\.nr_hugepages = ${nr}\\)`));
    assert.match(out, /RLIMIT_MEMLOCK\s+\S+ (MiB|KiB|GiB|B|unlimited)/);
    assert.match(out, /^aggressive\s+\w+\s+\d+\s+[\d.]+ of [\d.]+ MiB/m);
    assert.match(out, /^conservative\s+\w+\s+\d+\s+[\d.]+ of [\d.]+ MiB/m);
    if (!["always", "within_size", "advise", "force"].includes(shmem)) {
      assert.ok(out.includes(`$ echo advise > ${THP}/shmem_enabled`));
    }
    if (nr === 0) assert.match(out, /\$ sysctl -w vm\.nr_hugepages=\d+/);
    const soft = limitsOfSelf().soft;
    assert.equal(report.facts.memlock.soft, soft);
    if (soft !== null && soft < report.facts.memlock.needed) {
      assert.match(out, /\$ ulimit -l \d+/);
    }
    // The JSON against what this process reads itself.
    const f = report.facts;
    assert.equal(f.thp.enabled, enabled);
    assert.equal(f.shmemEnabled, shmem);
    assert.equal(f.hugetlb.total, nr);
    assert.equal(
      f.maps.max,
      Number(readFileSync("/proc/sys/vm/max_map_count", "utf8")),
    );
    const capEff = /CapEff:\s*([0-9a-f]+)/.exec(
      readFileSync("/proc/self/status", "utf8"),
    )![1];
    assert.equal(
      f.memlock.capIpcLock,
      (BigInt("0x" + capEff) & (1n << 14n)) !== 0n,
    );
    assert.equal(f.executable.path, runtimePath(rt));
    assert.equal(
      f.executable.segments.filter((s) => s.origin === "load").length,
      loadCount(runtimePath(rt)),
    );
    assert.deepEqual(
      report.predictions.map((p) => p.align),
      ["aggressive", "conservative"],
    );
    for (const p of report.predictions) {
      assert.ok(p.text.bytes > 10 * MiB && p.rodata.bytes > 10 * MiB);
      assert.ok(p.text.huge <= p.text.bytes);
    }
  });

  for (const align of ["aggressive", "conservative"] as const) {
    test(`doctor (${rt}, ${align}): the predicted coverage is what prime().remap({ align }).run() then measures, within 1 pp`, async () => {
      const r = await run(
        runtimeCommand(rt, `${ROOT}tests/fixtures/cli/doctor_child.ts`, [
          align,
        ]),
      );
      assert.equal(r.code, 0, r.stderr);
      const line = /^DOCTOR (.*)$/m.exec(r.stdout);
      assert.ok(line, r.stdout + r.stderr);
      const got = JSON.parse(line[1]);
      if (!got.thp.usable) {
        console.log(`skipped: THP is not usable here: ${got.thp.reason}`);
        return;
      }
      assert.equal(got.ok, true, got.reason);
      assert.equal(got.backend, got.predicted.backend);
      const pct = (c: { bytes: number; huge: number }) =>
        100 * c.huge / c.bytes;
      for (const kind of ["text", "rodata"] as const) {
        const p = pct(got.predicted[kind]);
        const m = pct(got.measured[kind]);
        console.log(
          `doctor vs remap (${rt}, ${align}) ${kind}: predicted ${
            p.toFixed(2)
          }%, measured ${m.toFixed(2)}%`,
        );
        assert.equal(got.predicted[kind].bytes, got.measured[kind].bytes);
        assert.ok(Math.abs(p - m) <= 1, `${kind}: ${p} vs ${m}`);
        assert.ok(
          p > 50,
          `${kind}: a prediction of ${p}% says the plan is wrong`,
        );
      }
    });
  }
}

// The doctor of a process started with THP disabled (the flag survives
// exec): it names the hugetlb pool as the only route, with no THP or shmem
// command, both as text and as JSON.
for (const rt of RUNTIMES) {
  test(
    `doctor (${rt}) under PR_SET_THP_DISABLE: recommends only the hugetlb pool`,
    { skip: SANDBOX_SKIP },
    async () => {
      const [text, json] = await withSandbox((sandbox) => {
        const wrap = (args: string[]) => [
          sandbox,
          "--thp-disable",
          "--",
          ...cli(rt, args),
        ];
        return Promise.all([
          run(wrap(["doctor"])),
          run(wrap(["doctor", "--json"])),
        ]);
      });
      const report = JSON.parse(json.stdout) as DoctorReport;
      assert.equal(report.facts.thp.processDisabled, true);
      assert.deepEqual(recommendedRoutes(report), ["hugetlb"]);
      for (const r of report.routes.filter((r) => r.backend !== "hugetlb")) {
        assert.deepEqual([r.works, r.command], [false, undefined], r.backend);
      }
      for (const f of report.findings) {
        assert.doesNotMatch(f.command ?? "", /transparent_hugepage/, f.topic);
      }
      const p = report.predictions[0];
      assert.equal(p.unavailable === undefined, report.routes[2].works);
      if (p.unavailable === undefined) assert.equal(p.backend, "hugetlb");
      assert.match(text.stdout, /THP for this process\s+disabled/);
      assert.match(text.stdout, /Only the hugetlb pool gives this process/);
      assert.doesNotMatch(text.stdout, /\$ echo/);
      console.log(
        `doctor (${rt}) under PR_SET_THP_DISABLE: ${
          report.routes.map((r) =>
            `${r.backend} ${
              r.works ? "works" : r.command ? `after ${r.command}` : "no"
            }`
          ).join(", ")
        }`,
      );
    },
  );
}

/** The lines of doctor's calibration section, after its heading (asserted). */
function calibrationText(stdout: string): string[] {
  const heading =
    "\n2 MiB against 4 KiB code pages, measured in this process:\n";
  const at = stdout.indexOf(heading);
  assert.ok(at >= 0, `no calibration heading in:\n${stdout}`);
  return stdout.slice(at + heading.length).split("\n\n")[0].split("\n");
}

// The calibration in doctor: on by default, for the footprint given, in
// the JSON and the text; --no-calibrate skips it; bad values are usage
// errors. Which page size wins is the machine's: not asserted here.
for (const rt of RUNTIMES) {
  test(`doctor (${rt}) --footprint-pages: the 2 MiB calibration at that footprint, as text and JSON; --no-calibrate skips it`, async () => {
    const json = await run(
      cli(rt, ["doctor", "--json", "--footprint-pages", "300"]),
    );
    const text = await run(cli(rt, ["doctor", "--footprint-pages", "300"]));
    const report = JSON.parse(json.stdout) as DoctorReport;
    assert.equal(json.code, report.ok ? 0 : 1, json.stderr);
    assert.equal(text.code, json.code, text.stderr);
    const cal = report.calibration!;
    assert.ok(cal, "the JSON has a calibration");
    console.log(
      `doctor (${rt}) calibration: ${cal.summary} (${
        cal.seconds.toFixed(2)
      } s)`,
    );
    assert.equal(cal.footprintPages, 300);
    assert.ok(
      ["pays", "loses", "no difference measured", "cannot measure"].includes(
        cal.verdict!,
      ),
    );
    const finding = report.findings.find((f) => f.topic === "calibration");
    assert.ok(finding && finding.message.startsWith(cal.summary));
    if (cal.verdict === "cannot measure") {
      assert.ok(cal.reason, "a reason for cannot measure");
      assert.deepEqual(cal.spreads, []);
    } else {
      const fp = cal.spreads.find((s) => s.footprint)!;
      assert.equal(fp.pages, 300);
      assert.equal(fp.verdict, cal.verdict);
    }
    // The text comes from a second calibration (another process): its
    // verdict may differ from the JSON's, so it is checked against its own.
    const section = calibrationText(text.stdout);
    const said =
      /^ {2}(?:2 MiB code pages: (pays|loses|no difference measured) on this machine at a hot-code footprint of 300 pages \(|cannot measure: \S)/
        .exec(section[0]);
    assert.ok(said, `the text's verdict at 300 pages:\n${text.stdout}`);
    const summary = section[0].trim();
    assert.ok(
      text.stdout.split("\n").some((l) =>
        /^ {2}(ok|advice|note) +/.test(l) &&
        l.replace(/^ {2}\S+ +/, "").startsWith(summary)
      ),
      `a finding states the text's calibration summary:\n${text.stdout}`,
    );
    if (said[1] === undefined) {
      assert.equal(section.length, 1, "no table when it cannot measure");
    } else {
      assert.match(
        section.join("\n"),
        /^ +1\.17 MiB\* +call +[\d.]+ +[\d.]+ +[\d.]+ \[/m,
      );
    }
    const off = await run(cli(rt, ["doctor", "--json", "--no-calibrate"]));
    const plain = JSON.parse(off.stdout) as DoctorReport;
    assert.equal(plain.calibration, undefined);
    assert.ok(!plain.findings.some((f) => f.topic === "calibration"));
    const offText = await run(cli(rt, ["doctor", "--no-calibrate"]));
    assert.doesNotMatch(offText.stdout, /2 MiB against 4 KiB/);
    for (
      const args of [
        ["--footprint-pages", "0"],
        ["--footprint-pages", "many"],
        ["--footprint-pages", "5", "--no-calibrate"],
      ]
    ) {
      const r = await run(cli(rt, ["doctor", ...args]));
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /^page-primer doctor: /);
      assert.equal(r.stdout, "");
    }
  });
}

function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir && existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return undefined;
}

test("inspect --pid of node --use-largepages=on: its anonymous huge-page text, on both runtimes", async () => {
  const node = which("node");
  if (node === undefined) {
    console.log("skipped: node is not on PATH");
    return;
  }
  const child = spawn(node, [
    "--use-largepages=on",
    "-e",
    "setInterval(()=>{},1000)",
  ], {
    stdio: "ignore",
  });
  try {
    const pid = child.pid!;
    const exe = realpathSync(node);
    const elf = parseElf(bytesSource(readFileSync(exe)));
    const loads = elf.programHeaders.filter((p) => p.type === PT_LOAD);
    // Wait until node has mapped itself and moved its text (at start-up).
    let smaps: SmapsVma[] = [];
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 100));
      smaps = parseSmaps(readFileSync(`/proc/${pid}/smaps`, "utf8"));
      if (smaps.some((v) => v.path === "" && v.exec)) break;
    }
    const first = smaps.find((v) => v.path === exe && v.offset === 0)!;
    const bias = first.start - loads[0].vaddr;
    const texts = loads.filter((p) => p.flags & 1).map((p) => [
      bias + p.vaddr,
      bias + p.vaddr + p.memsz,
    ]);
    const anonHuge = smaps.filter((v) =>
      texts.some(([s, e]) =>
        v.start >= Math.floor(s / 4096) * 4096 && v.end <= e + 4095
      )
    ).reduce((n, v) => n + v.anonHugePages, 0);
    if (anonHuge === 0) {
      console.log(
        "skipped: node's text got no huge pages here (THP unavailable to it)",
      );
      return;
    }
    for (const rt of RUNTIMES) {
      const r = await run(cli(rt, ["inspect", "--pid", String(pid), "--json"]));
      assert.equal(r.code, 0, r.stderr);
      const rep = JSON.parse(r.stdout) as InspectReport;
      assert.equal(rep.pid, pid);
      assert.equal(rep.exe, exe);
      const main = rep.objects[0];
      assert.equal(main.main, true);
      assert.equal(main.path, exe);
      assert.equal(main.bias, bias);
      assert.equal(main.biasFrom, "auxv");
      const text = main.segments.filter((s) => s.kind === "text");
      const got = text.reduce((n, s) => n + s.anonHuge, 0);
      console.log(
        `inspect (${rt}) node --use-largepages=on: ${
          (got / MiB).toFixed(1)
        } MiB AnonHugePages in its text (read here: ${
          (anonHuge / MiB).toFixed(1)
        } MiB)`,
      );
      assert.equal(got, anonHuge);
      assert.ok(got >= 16 * MiB, `${got}`);
      assert.ok(text.some((s) => s.backing.includes("anon")));
      assert.equal(rep.primerLoaded, false);
      const t = await run(cli(rt, ["inspect", "--pid", String(pid)]));
      assert.equal(t.code, 0);
      assert.match(t.stdout, /node +2 +r-x +text .* AnonHugePages +file\+anon/);
    }
  } finally {
    child.kill("SIGKILL");
  }
});

for (const rt of RUNTIMES) {
  test(`inspect (${rt}) of a child that ran prime().remap(true).run(): text on 2 MiB pages, page-primer's copy`, async () => {
    const child = await startChild(rt, true, { script: "cli/primed_child.ts" });
    try {
      const remap = child.outcome.remap!;
      const r = await run(
        cli(rt, ["inspect", "--pid", String(child.pid), "--json"]),
      );
      assert.equal(r.code, 0, r.stderr);
      const rep = JSON.parse(r.stdout) as InspectReport;
      assert.equal(rep.primerLoaded, true);
      const main = rep.objects.find((o) => o.main)!;
      assert.equal(main.path, runtimePath(rt));
      const text = main.segments.filter((s) =>
        s.kind === "text" && s.origin === "load"
      );
      const huge = text.reduce((n, s) => n + s.huge, 0);
      console.log(
        `inspect (${rt}) primed child: text ${
          (huge / MiB).toFixed(1)
        } MiB on 2 MiB pages (its outcome: ${
          (remap.text.huge / MiB).toFixed(1)
        } MiB), origin ${text.map((s) => s.primer).join(", ")}`,
      );
      if (remap.text.huge === 0) {
        console.log(
          `skipped: the remap got no huge pages: ${child.outcome.reason}`,
        );
        return;
      }
      assert.ok(
        Math.abs(huge - remap.text.huge) <= 2 * MiB,
        `${huge} vs ${remap.text.huge}`,
      );
      for (const s of text) {
        assert.ok(s.primer !== undefined, JSON.stringify(s));
        assert.match(s.primer!, /^(page-primer|\/memfd:)/);
      }
      const t = await run(cli(rt, ["inspect", "--pid", String(child.pid)]));
      assert.match(t.stdout, /r-x +text .* page-primer/);
    } finally {
      await child.finish();
    }
  });

  test(`inspect (${rt}) of a memfd-backed remap: the copy's /memfd: name and ShmemPmdMapped`, async () => {
    const child = await startChild(rt, { backend: "memfd" }, {
      script: "cli/primed_child.ts",
    });
    try {
      const r = await run(
        cli(rt, ["inspect", "--pid", String(child.pid), "--json"]),
      );
      assert.equal(r.code, 0, r.stderr);
      const rep = JSON.parse(r.stdout) as InspectReport;
      const main = rep.objects.find((o) => o.main)!;
      const text = main.segments.find((s) =>
        s.kind === "text" && s.origin === "load"
      )!;
      assert.equal(text.primer, `/memfd:${main.path} (deleted)`);
      assert.ok(text.backing.includes("memfd"));
      if (child.outcome.remap!.text.huge === 0) {
        console.log("skipped: the memfd copy got 4 KiB pages (shmem THP off)");
        return;
      }
      assert.ok(text.shmemHuge > 0);
      assert.equal(text.anonHuge, 0);
    } finally {
      await child.finish();
    }
  });

  test(`inspect (${rt}) --json shape on an idle child, against its maps and ELF file`, async () => {
    const child = await startChild(rt, false, {
      script: "cli/primed_child.ts",
    });
    try {
      const r = await run(
        cli(rt, ["inspect", "--pid", String(child.pid), "--json"]),
      );
      assert.equal(r.code, 0, r.stderr);
      const rep = JSON.parse(r.stdout) as InspectReport;
      assert.deepEqual(Object.keys(rep).sort(), [
        "exe",
        "objects",
        "pid",
        "primerLoaded",
        "process",
        "totals",
        "unreadable",
      ]);
      const totalsKeys = [
        "anonHuge",
        "bytes",
        "fileHuge",
        "huge",
        "hugetlb",
        "locked",
        "mapped",
        "resident",
        "shmemHuge",
      ];
      assert.deepEqual(Object.keys(rep.totals).sort(), totalsKeys);
      assert.deepEqual(Object.keys(rep.process).sort(), totalsKeys);
      const exe = runtimePath(rt);
      const main = rep.objects[0];
      assert.equal(main.path, exe);
      assert.equal(main.biasFrom, "auxv");
      const maps = child.smaps();
      const first = maps.find((v) => v.path === exe && v.offset === 0)!;
      const loads = main.segments.filter((s) => s.origin === "load");
      assert.equal(loads.length, loadCount(exe));
      assert.equal(loads[0].start, first.start);
      for (const s of loads) {
        assert.equal(s.mapped, s.bytes);
        assert.ok(s.backing.includes("file"));
        assert.equal(s.primer, undefined);
        for (
          const k of [
            "index",
            "origin",
            "kind",
            "perms",
            "start",
            "end",
            "backing",
            "vmas",
            ...totalsKeys,
          ]
        ) assert.ok(k in s, k);
      }
      // Every shared library mapped from a file is there.
      const libs = new Set(
        maps.filter((v) => /\.so(\.\d+)*$/.test(v.path)).map((v) => v.path),
      );
      for (const l of libs) {
        assert.ok(rep.objects.some((o) => o.path === l), `${l} missing`);
      }
      assert.equal(
        rep.totals.bytes,
        rep.objects.reduce((n, o) => n + o.totals.bytes, 0),
      );
    } finally {
      await child.finish();
    }
  });

  test(`cli (${rt}): --help on every command, exit codes 0/1/2`, async () => {
    const none = await run(cli(rt, []));
    assert.equal(none.code, 2);
    assert.match(none.stderr, /Commands:/);
    const top = await run(cli(rt, ["--help"]));
    assert.equal(top.code, 0);
    assert.match(
      top.stdout,
      /Exit codes:\n {2}0 +ok\n {2}1 .*\n {2}2 +bad usage/,
    );
    for (const c of ["doctor", "inspect", "bench"]) {
      for (const flag of ["--help", "-h"]) {
        const h = await run(cli(rt, [c, flag]));
        assert.equal(h.code, 0, h.stderr);
        assert.match(h.stdout, new RegExp(`^page-primer ${c}:`));
        assert.match(
          h.stdout,
          /Exit codes:\n {2}0 .*\n(.*\n)* {2}1 .*\n(.*\n)* {2}2 +bad usage/,
        );
      }
    }
    const bad = [
      ["frob"],
      ["doctor", "--bogus"],
      ["doctor", "extra"],
      ["inspect", "--pid", "abc"],
      ["inspect", "--pid", "0"],
      ["inspect", "--interval", "500"],
      ["inspect", "--watch", "--interval", "5"],
      ["bench", "--rounds", "2"],
    ];
    for (const args of bad) {
      const r = await run(cli(rt, args));
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /^page-primer/);
      assert.equal(r.stdout, "");
    }
    const gone = await run(cli(rt, ["inspect", "--pid", "4194304"]));
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no process with pid 4194304/);
  });
}

test(
  "inspect: another user's process: exit 1, and the message says same uid or root",
  {
    skip: isRoot() && existsSync("/usr/bin/setpriv")
      ? false
      : "needs root and setpriv to run the command as another user",
  },
  async () => {
    const home = mkdtempSync(`${tmpdir()}/page-primer-nobody-`);
    try {
      for (const rt of RUNTIMES) {
        const r = await run([
          "/usr/bin/setpriv",
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          "env",
          `HOME=${home}`,
          `DENO_DIR=${home}/deno`,
          ...cli(rt, ["inspect", "--pid", "1"]),
        ]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /cannot read \/proc\/1\/smaps \(EACCES\)/);
        assert.match(r.stderr, /same user id .* or root/);
      }
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  },
);

test("inspect --watch refreshes until SIGINT (one JSON object per line in a pipe), exit 0", async () => {
  for (const rt of RUNTIMES) {
    const child = spawn("/bin/sh", [
      "-c",
      `exec ${
        shellQuote(
          cli(rt, ["inspect", "--watch", "--interval", "100", "--json"]),
        )
      }`,
    ], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (err += d));
    let done = false;
    // Its exit code once its output is read to the end.
    const exited = closed(child).then((end) => {
      done = true;
      err += end.late;
      return end.code;
    });
    while (!done && out.split("\n").length < 4) {
      await new Promise((r) => setTimeout(r, 50));
    }
    // process.kill, not child.kill: Deno's child_process reports a child
    // it signalled itself as killed by that signal, whatever its status.
    process.kill(child.pid!, "SIGINT");
    assert.equal(await exited, 0, err);
    assert.equal(err, "", "no progress output in a pipe");
    // SIGINT may end it in the middle of an object: whole lines only.
    const whole = out.slice(0, out.lastIndexOf("\n") + 1);
    const lines = whole === "" ? [] : whole.slice(0, -1).split("\n");
    assert.ok(lines.length >= 3, `${lines.length} whole lines: ${out}`);
    for (const l of lines) {
      const rep = JSON.parse(l) as InspectReport;
      assert.equal(rep.objects[0].main, true);
    }
  }
});

test("bench: passes bench/quick.sh's exit code through; without bench/ says how to get it", async () => {
  for (const rt of RUNTIMES) {
    const fail = await run(cli(rt, ["bench", "--", "--workloads", "nope"]));
    assert.equal(fail.code, 1);
    assert.match(fail.stderr, /bench\/ab: unknown workload "nope"/);
  }
  // A copy of the CLI without bench/ next to it.
  const dir = mkdtempSync(`${tmpdir()}/page-primer-cli-`);
  try {
    copyFileSync(`${ROOT}cli.ts`, `${dir}/cli.ts`);
    symlinkSync(`${ROOT}src`, `${dir}/src`);
    symlinkSync(`${ROOT}mod.ts`, `${dir}/mod.ts`);
    for (const rt of RUNTIMES) {
      const argv = cli(rt, ["bench"]);
      argv[argv.indexOf(`${ROOT}cli.ts`)] = `${dir}/cli.ts`;
      const r = await run(argv);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /no bench\/ directory next to cli\.ts/);
      assert.match(r.stderr, /npm run bench/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
