// The aarch64 trampoline, as shipped in src/sys/trampoline_so.ts: an ELF64
// AArch64 shared object with no undefined symbol and no library needed; and,
// under qemu-user (Debian's qemu-user-static), a static aarch64 program
// (tests/aarch64/own_text.c, built with gcc-aarch64-linux-gnu) that dlopens
// it, swaps its own text onto an anonymous copy and back, and walks an
// injected failure over every syscall of each (THP, 4 KiB, fill-from-file and
// differs-from-file records). qemu-user does not emulate THP or madvise
// faithfully: this checks bytes, mappings, survival and errors, not huge-page
// coverage.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, run } from "../helpers.ts";
import { TRAMPOLINE_SO_BASE64 } from "../../src/sys/trampoline_so.ts";
import {
  bytesSource,
  EM_AARCH64,
  ET_DYN,
  parseElf,
  PT_INTERP,
} from "../../src/sys/elf.ts";

/** DT_NEEDED: a library the object asks the loader for. */
const DT_NEEDED = 1;

const CC = "aarch64-linux-gnu-gcc";
const QEMU = "qemu-aarch64-static";

function installed(cmd: string): boolean {
  try {
    execFileSync(cmd, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const missing = [CC, QEMU].filter((c) => !installed(c));
const skip = missing.length === 0
  ? false
  : `${
    missing.join(" and ")
  } not installed (sh scripts/setup.sh installs gcc-aarch64-linux-gnu and qemu-user-static)`;
if (skip) {
  console.log(`trampoline_aarch64_test: skipping the qemu run: ${skip}`);
}

function aarch64So(): Uint8Array {
  return new Uint8Array(Buffer.from(TRAMPOLINE_SO_BASE64.aarch64, "base64"));
}

test("the aarch64 trampoline is an ELF64 AArch64 shared object, self-contained", () => {
  const bytes = aarch64So();
  const elf = parseElf(bytesSource(bytes));
  assert.equal(bytes[4], 2, "ELFCLASS64");
  assert.equal(elf.header.machine, EM_AARCH64);
  assert.equal(elf.header.type, ET_DYN);
  assert.ok(!elf.programHeaders.some((p) => p.type === PT_INTERP));
  const dyn = elf.symbols(".dynsym");
  assert.deepEqual(
    dyn.filter((s) => s.shndx === 0 && s.name !== "").map((s) => s.name),
    [],
    "undefined symbols: it must not call libc or libgcc",
  );
  assert.ok(dyn.some((s) => s.name === "pp_run" && s.shndx !== 0));
  // No DT_NEEDED in .dynamic: 16-byte entries, tag first.
  const dynamic = elf.sections.find((s) => s.name === ".dynamic");
  assert.ok(dynamic, "no .dynamic section");
  const view = new DataView(
    bytes.buffer,
    bytes.byteOffset + dynamic.offset,
    dynamic.size,
  );
  for (let at = 0; at + 16 <= dynamic.size; at += 16) {
    assert.notEqual(
      Number(view.getBigUint64(at, true)),
      DT_NEEDED,
      "it must need no library",
    );
  }
});

test(
  "under qemu-aarch64: a program swaps, restores and fault-injects its own text with the shipped trampoline",
  {
    skip,
  },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "pp-aarch64-"));
    try {
      const so = join(dir, "primer-aarch64.so");
      writeFileSync(so, aarch64So());
      const prog = join(dir, "own_text");
      execFileSync(CC, [
        "-static",
        "-O1",
        "-Wall",
        "-Werror",
        "-I",
        join(ROOT, "trampoline"),
        // The text in a 2 MiB-aligned segment of its own, as a planned region.
        "-Wl,-z,separate-code",
        "-Wl,-z,max-page-size=0x200000",
        "-o",
        prog,
        join(ROOT, "tests", "aarch64", "own_text.c"),
      ], { stdio: ["ignore", "ignore", "pipe"] });
      const res = await run([QEMU, prog, so], { timeoutMs: 120_000 });
      const lines = res.stdout.trim().split("\n");
      const notOk = lines.filter((l) => l.startsWith("not ok"));
      assert.deepEqual(notOk, [], res.stdout + res.stderr);
      assert.equal(res.code, 0, res.stdout + res.stderr);
      const summary = /^summary (\d+) (\d+) (\d+)$/m.exec(res.stdout);
      assert.ok(summary, `no summary line:\n${res.stdout}${res.stderr}`);
      const [passed, failed, runs] = summary.slice(1).map(Number);
      assert.equal(failed, 0);
      // 4 record kinds x (1 clean swap + 1 restore + a run per syscall of
      // each): every swap makes at least 8 syscalls, every restore 1.
      assert.ok(runs >= 4 * (2 + 8 + 1 * 2), `only ${runs} runs`);
      assert.ok(passed > runs, `${passed} checks for ${runs} runs`);
      for (const kind of ["thp", "4k", "from file", "differs from file"]) {
        assert.match(
          res.stdout,
          new RegExp(`^ok ${kind}: swap \\d+ syscalls`, "m"),
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
