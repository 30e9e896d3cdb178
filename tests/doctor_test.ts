// src/tools/doctor.ts: diagnose and formatDoctor on hand-built inputs (a
// made-up runtime at a fixed address, its smaps written out), so every
// finding is checked the same on any machine. Pure: nothing here reads or
// changes the process or the system.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  diagnose,
  type DoctorFacts,
  type DoctorInput,
  type Finding,
  formatDoctor,
  recommendedRoutes,
} from "../src/tools/doctor.ts";
import { parseSmaps } from "../src/sys/maps.ts";
import { type LoadedObject, segmentRanges } from "../src/sys/segments.ts";
import { thpVerdict } from "../src/sys/thp.ts";

const MiB = 2 ** 20;
const BIAS = 0x5500_0000_0000;
const PATH = "/opt/runtime/bin/rt";
const THP = "/sys/kernel/mm/transparent_hugepage";

/** rodata 8 MiB, text 16 MiB, data 1 MiB: a remap moves 2 regions, 12 pages. */
const EXE: LoadedObject = {
  path: PATH,
  main: true,
  bias: BIAS,
  segments: [
    {
      index: 0,
      flags: 4,
      vaddr: 0,
      memsz: 8 * MiB,
      filesz: 8 * MiB,
      offset: 0,
    },
    {
      index: 1,
      flags: 5,
      vaddr: 8 * MiB,
      memsz: 16 * MiB,
      filesz: 16 * MiB,
      offset: 8 * MiB,
    },
    {
      index: 2,
      flags: 6,
      vaddr: 24 * MiB,
      memsz: MiB,
      filesz: MiB,
      offset: 24 * MiB,
    },
  ],
};
const PAGES_NEEDED = 12;
const MAPS_NEEDED = 12;

function smapsText(): string {
  const vma = (at: number, size: number, perms: string) =>
    `${(BIAS + at).toString(16)}-${(BIAS + at + size).toString(16)} ${perms} ${
      at.toString(16).padStart(8, "0")
    } 08:01 4242 ${PATH}\nSize: ${size / 1024} kB\nKernelPageSize: 4 kB\n` +
    "MMUPageSize: 4 kB\nVmFlags: rd mr mw me\n";
  return vma(0, 8 * MiB, "r--p") + vma(8 * MiB, 16 * MiB, "r-xp") +
    vma(24 * MiB, MiB, "rw-p");
}

/** Facts of a machine where everything is as wanted; `over` changes some. */
function input(over: Partial<DoctorFacts> = {}): DoctorInput {
  const ranges = segmentRanges(EXE, 4096);
  const facts: DoctorFacts = {
    runtime: "rt 1.0.0",
    pid: 4242,
    kernel: "6.18.1",
    arch: "x86_64",
    thp: thpVerdict({
      enabled: "always [madvise] never",
      defrag: "always defer defer+madvise [madvise] never",
      processDisabled: false,
      release: "6.18.1",
    }),
    shmemEnabled: "advise",
    hugetlb: {
      supported: true,
      total: PAGES_NEEDED,
      free: PAGES_NEEDED,
      reserved: 0,
      available: PAGES_NEEDED,
      mounts: ["/dev/hugepages"],
    },
    memlock: {
      soft: null,
      hard: null,
      vmLck: 0,
      capIpcLock: false,
      needed: 25 * MiB,
      loadBytes: 25 * MiB,
      aliasBytes: 0,
    },
    maps: { max: 65530, current: 100 },
    executable: { path: PATH, bias: BIAS, segments: [] },
    ...over,
  };
  return { facts, smaps: parseSmaps(smapsText()), objects: [EXE], ranges };
}

function findingOf(findings: Finding[], topic: string): Finding {
  const found = findings.filter((f) => f.topic === topic);
  assert.equal(found.length, 1, `one "${topic}" finding`);
  return found[0];
}

test("diagnose: everything as wanted is ok, and the plan is the made-up runtime's", () => {
  const report = diagnose(input());
  assert.equal(report.ok, true);
  assert.deepEqual(
    report.findings.map((f) => `${f.status} ${f.topic}`),
    [
      "note hugetlbfs",
      "ok kernel",
      "ok thp",
      "ok thp-defrag",
      "ok thp-process",
      "ok shmem",
      "ok hugetlb",
      "ok memlock",
      "ok max-map-count",
      "ok remap",
    ],
  );
  assert.ok(report.findings.every((f) => f.command === undefined));
  assert.equal(report.predictions[0].hugetlb.pagesNeeded, PAGES_NEEDED);
  assert.equal(report.predictions[0].mapsNeeded, MAPS_NEEDED);
  assert.equal(
    findingOf(report.findings, "thp").message,
    "THP enabled=madvise: remap's copies ask for huge pages with MADV_HUGEPAGE (only madvised memory gets them)",
  );
  assert.equal(
    findingOf(report.findings, "remap").message,
    "remap(true) would use the hugetlb backend and put 100.0% of the text and 100.0% of the read-only data on 2 MiB pages",
  );
  assert.deepEqual(recommendedRoutes(report), ["thp", "memfd", "hugetlb"]);
  const text = formatDoctor(report);
  assert.match(
    text,
    /^page-primer doctor: rt 1\.0\.0, pid 4242, Linux 6\.18\.1\n/,
  );
  assert.ok(text.endsWith("\nverdict: ok: remap and mlock can work here"));
});

test("diagnose: THP never, with MADV_COLLAPSE (advice, remap still works) and without (remap blocked)", () => {
  const never = (kernel: string) =>
    thpVerdict({
      enabled: "always madvise [never]",
      defrag: "[madvise]",
      processDisabled: false,
      release: kernel,
    });
  const withCollapse = diagnose(input({ thp: never("6.18.1") }));
  const thp = findingOf(withCollapse.findings, "thp");
  assert.equal(thp.status, "advice");
  assert.equal(
    thp.message,
    "THP enabled=never: remap still gets huge pages through MADV_COLLAPSE, more slowly",
  );
  assert.equal(thp.command, `echo madvise > ${THP}/enabled`);
  assert.equal(withCollapse.ok, true);
  assert.equal(findingOf(withCollapse.findings, "remap").status, "ok");

  const old = diagnose(
    input({
      kernel: "5.15.0",
      thp: never("5.15.0"),
      shmemEnabled: "never",
      hugetlb: { ...input().facts.hugetlb, total: 0, free: 0, available: 0 },
    }),
  );
  const oldThp = findingOf(old.findings, "thp");
  assert.equal(oldThp.status, "advice");
  assert.equal(
    oldThp.message,
    "THP enabled=never: this kernel has no MADV_COLLAPSE, so the THP backend gets no huge pages",
  );
  const kernel = findingOf(old.findings, "kernel");
  assert.equal(kernel.status, "advice");
  assert.equal(
    kernel.message,
    "Linux 5.15.0: MADV_COLLAPSE (6.1+) missing, MADV_POPULATE_READ (5.14+) available",
  );
  const remap = findingOf(old.findings, "remap");
  assert.equal(remap.status, "blocker");
  assert.ok(
    remap.message.startsWith(
      "remap gets no 2 MiB pages: no huge pages possible: THP: ",
    ),
    remap.message,
  );
  const shmem = findingOf(old.findings, "shmem");
  assert.equal(shmem.status, "advice");
  assert.equal(
    shmem.message,
    'shmem THP shmem_enabled=never: the memfd backend and share: true get no 2 MiB pages (shmem_enabled=never and no MADV_COLLAPSE (Linux < 6.1)), and backend "auto" does not fall back to a memfd when THP is unusable',
  );
  assert.equal(shmem.command, `echo advise > ${THP}/shmem_enabled`);
  assert.equal(old.ok, false);
  assert.equal(old.findings[0].status, "blocker", "blockers come first");
  assert.ok(
    formatDoctor(old).endsWith("\nverdict: not ok: remap (see above)"),
  );
});

test("diagnose: THP always is ok without the madvise remark; defrag never is advice", () => {
  const report = diagnose(input({
    thp: thpVerdict({
      enabled: "[always] madvise never",
      defrag: "[never]",
      processDisabled: false,
      release: "6.18.1",
    }),
  }));
  const defrag = findingOf(report.findings, "thp-defrag");
  assert.equal(defrag.status, "advice");
  assert.match(
    defrag.message,
    /^THP defrag=never: a madvised fault does not wait for compaction/,
  );
  assert.equal(defrag.command, `echo madvise > ${THP}/defrag`);
  assert.equal(
    findingOf(report.findings, "thp").message,
    "THP enabled=always: remap's copies ask for huge pages with MADV_HUGEPAGE",
  );
});

test("diagnose: a hugetlb pool short of the remap's pages is advice with the sysctl", () => {
  const pool = (total: number, available: number) =>
    input({
      hugetlb: {
        supported: true,
        total,
        free: available,
        reserved: 0,
        available,
        mounts: [],
      },
    });
  const short = findingOf(diagnose(pool(4, 4)).findings, "hugetlb");
  assert.equal(short.status, "advice");
  assert.equal(
    short.message,
    `hugetlb pool: 4 page(s), 4 available: the hugetlb backend (guaranteed 2 MiB pages, reserved up front) needs ${PAGES_NEEDED} page(s) (24.0 MiB) for this runtime`,
  );
  assert.equal(short.command, `sysctl -w vm.nr_hugepages=${PAGES_NEEDED}`);
  const none = findingOf(diagnose(pool(0, 0)).findings, "hugetlb");
  assert.equal(none.status, "advice");
  assert.match(none.message, /^no hugetlb pool \(vm\.nr_hugepages = 0\): /);
  assert.equal(none.command, `sysctl -w vm.nr_hugepages=${PAGES_NEEDED}`);
  const enough = findingOf(
    diagnose(pool(PAGES_NEEDED, PAGES_NEEDED)).findings,
    "hugetlb",
  );
  assert.equal(enough.status, "ok");
  assert.equal(
    enough.message,
    `hugetlb pool: ${PAGES_NEEDED} page(s), ${PAGES_NEEDED} available, the remap needs ${PAGES_NEEDED}: backend "auto" uses it (guaranteed pages)`,
  );
  const hugetlbfs = findingOf(diagnose(pool(0, 0)).findings, "hugetlbfs");
  assert.equal(hugetlbfs.status, "note");
  assert.match(hugetlbfs.message, /^hugetlbfs is not mounted; /);
});

test("diagnose: a memlock limit short of mlock(true)'s need: blocker, note with CAP_IPC_LOCK, ok when the hard limit allows", () => {
  const memlock = (
    soft: number | null,
    hard: number | null,
    capIpcLock: boolean,
  ) =>
    diagnose(input({
      memlock: {
        soft,
        hard,
        vmLck: MiB,
        capIpcLock,
        needed: 27 * MiB,
        loadBytes: 25 * MiB,
        aliasBytes: 2 * MiB,
      },
    }));
  const limits =
    "RLIMIT_MEMLOCK 8.0 MiB soft, 8.0 MiB hard; mlock(true) needs 27.0 MiB (LOAD segments 25.0 MiB + further mappings 2.0 MiB)";
  const ulimit = `ulimit -l ${28 * 1024}`;
  const blocked = memlock(8 * MiB, 8 * MiB, false);
  const f = findingOf(blocked.findings, "memlock");
  assert.equal(f.status, "blocker");
  assert.ok(
    f.message.startsWith(
      `${limits}: mlock(true) cannot lock it all (no CAP_IPC_LOCK). Raise the limit before the process starts`,
    ),
    f.message,
  );
  assert.equal(f.command, ulimit);
  assert.equal(blocked.ok, false);
  assert.ok(
    formatDoctor(blocked).includes(
      `\n  blocker ${f.message}\n          $ ${ulimit}\n`,
    ),
  );
  assert.ok(
    formatDoctor(blocked).endsWith("\nverdict: not ok: memlock (see above)"),
  );

  const cap = findingOf(memlock(8 * MiB, 8 * MiB, true).findings, "memlock");
  assert.equal(cap.status, "note");
  assert.ok(
    cap.message.startsWith(
      `${limits}: the limit is below the need, but this process has CAP_IPC_LOCK`,
    ),
  );
  assert.equal(cap.command, ulimit);

  const raised = findingOf(memlock(8 * MiB, null, false).findings, "memlock");
  assert.equal(raised.status, "ok");
  assert.equal(
    raised.message,
    "RLIMIT_MEMLOCK 8.0 MiB soft, unlimited hard; mlock(true) needs 27.0 MiB (LOAD segments 25.0 MiB + further mappings 2.0 MiB): the soft limit is below the need; page-primer raises it to the hard limit itself. CAP_IPC_LOCK no",
  );
  assert.equal(raised.command, undefined);
});

test("diagnose: vm.max_map_count without room for the remap's mappings is a blocker; unknown is not checked", () => {
  const maps = (max: number | null) =>
    diagnose(input({ maps: { max, current: 100 } }));
  const short = findingOf(maps(110).findings, "max-map-count");
  assert.equal(short.status, "blocker");
  assert.equal(
    short.message,
    `vm.max_map_count 110, 100 mappings in use, a remap needs up to ${MAPS_NEEDED} more`,
  );
  assert.equal(
    short.command,
    `sysctl -w vm.max_map_count=${100 + MAPS_NEEDED + 1024}`,
  );
  const room = findingOf(maps(100 + MAPS_NEEDED).findings, "max-map-count");
  assert.equal(room.status, "ok");
  assert.equal(room.command, undefined);
  const unknown = maps(null);
  assert.equal(
    unknown.findings.filter((f) => f.topic === "max-map-count").length,
    0,
  );
  assert.match(
    formatDoctor(unknown),
    /\nvm\.max_map_count +unreadable \(100 in use\)\n/,
  );
});

test("diagnose: THP disabled for the process leaves the hugetlb pool as the only route", () => {
  const thp = thpVerdict({
    enabled: "always [madvise] never",
    defrag: "[madvise]",
    processDisabled: true,
    release: "6.18.1",
  });
  const noPool = diagnose(input({
    thp,
    hugetlb: { ...input().facts.hugetlb, total: 0, free: 0, available: 0 },
  }));
  assert.equal(findingOf(noPool.findings, "thp").status, "note");
  assert.equal(
    findingOf(noPool.findings, "thp").message,
    "THP enabled=madvise system-wide, but disabled for this process (see thp-process)",
  );
  const process = findingOf(noPool.findings, "thp-process");
  assert.equal(process.status, "advice");
  assert.ok(
    process.message.startsWith(
      "PR_GET_THP_DISABLE = 1: THP is off for this whole process",
    ),
  );
  assert.ok(
    process.message.endsWith(
      "Only the hugetlb pool gives this process 2 MiB pages; or start the process from a parent that has not set PR_SET_THP_DISABLE",
    ),
  );
  assert.equal(process.command, `sysctl -w vm.nr_hugepages=${PAGES_NEEDED}`);
  assert.equal(
    findingOf(noPool.findings, "shmem").message,
    "shmem THP shmem_enabled=advise: does not apply to this process (THP is disabled for it, see thp-process)",
  );
  assert.equal(
    noPool.findings.filter((f) => f.topic === "thp-defrag").length,
    0,
    "no defrag finding when THP is off for the process",
  );
  assert.match(
    findingOf(noPool.findings, "hugetlb").message,
    /; it is the only route to 2 MiB pages for this process$/,
  );
  assert.equal(findingOf(noPool.findings, "remap").status, "blocker");
  assert.deepEqual(recommendedRoutes(noPool), ["hugetlb"]);

  const withPool = diagnose(input({ thp }));
  const covered = findingOf(withPool.findings, "thp-process");
  assert.match(covered.message, / 2 MiB pages \(it covers the remap\); /);
  assert.equal(covered.command, undefined);
  assert.equal(
    findingOf(withPool.findings, "remap").message,
    "remap(true) would use the hugetlb backend and put 100.0% of the text and 100.0% of the read-only data on 2 MiB pages",
  );
  assert.equal(withPool.ok, true);
});
