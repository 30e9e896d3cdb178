// The library inside the arm64 builds of Deno and Bun, under qemu-user:
// tests/aarch64/runtime_text.ts locks and prefaults the runtime's code with
// prime(), then swaps its text onto an anonymous copy with the shipped
// aarch64 trampoline and restores the file, checking the bytes, the mapping
// and that the runtime still works. Runs when PAGE_PRIMER_ARM64_DENO and/or
// PAGE_PRIMER_ARM64_BUN name the arm64 binaries (e.g. `deno` of npm
// @deno/linux-arm64-glibc 2.9.6, `bin/bun` of @oven/bun-linux-aarch64 1.4.5,
// fetched with `npm pack` and unpacked), with qemu-aarch64-static and the
// arm64 glibc of libc6-arm64-cross (/usr/aarch64-linux-gnu); skipped, with
// the reason printed, otherwise. qemu-user emulates neither THP nor madvise
// faithfully, and shows the host's protections in /proc/self/smaps (see
// runtime_text.ts): this checks correctness, not coverage, and not
// prime().remap() itself.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT, run } from "../helpers.ts";

const QEMU = "qemu-aarch64-static";
const SYSROOT = "/usr/aarch64-linux-gnu";
const SCRIPT = join(ROOT, "tests", "aarch64", "runtime_text.ts");

const qemuMissing = (() => {
  try {
    execFileSync(QEMU, ["--version"], { stdio: "ignore" });
  } catch {
    return `${QEMU} is not installed (sh scripts/setup.sh installs qemu-user-static)`;
  }
  return existsSync(join(SYSROOT, "lib", "ld-linux-aarch64.so.1"))
    ? undefined
    : `no arm64 glibc at ${SYSROOT} (libc6-arm64-cross)`;
})();

const RUNTIMES = [
  { name: "deno", env: "PAGE_PRIMER_ARM64_DENO", args: ["run", "--allow-ffi"] },
  { name: "bun", env: "PAGE_PRIMER_ARM64_BUN", args: [] },
] as const;

interface Step {
  step: string;
  ok?: boolean;
  bytes: number;
  locked?: number;
  swap?: Outcome;
  restore?: Outcome;
}
interface Outcome {
  step: string;
  errno: number;
  path: string;
  mismatches: number;
  works: boolean;
}

for (const rt of RUNTIMES) {
  const binary = process.env[rt.env];
  const skip = qemuMissing ??
    (binary && existsSync(binary)
      ? false
      : `${rt.env} does not name an arm64 ${rt.name} binary`);
  if (skip) {
    console.log(`runtimes_aarch64_test: ${rt.name} skipped: ${skip}`);
  }
  test(
    `arm64 ${rt.name} under qemu-aarch64: mlock and populate, then its own text swapped and restored by the shipped trampoline`,
    {
      skip,
    },
    async () => {
      const res = await run(
        [QEMU, "-L", SYSROOT, binary!, ...rt.args, SCRIPT],
        {
          timeoutMs: 600_000,
        },
      );
      const steps: Step[] = res.stdout.split("\n")
        .filter((l) => l.startsWith("RESULT "))
        .map((l) => JSON.parse(l.slice("RESULT ".length)));
      assert.equal(res.code, 0, res.stdout + res.stderr);
      const [mlock, ...swaps] = steps;
      assert.equal(mlock?.step, "mlock", res.stdout + res.stderr);
      assert.equal(mlock.ok, true);
      assert.ok(mlock.bytes > 0 && mlock.locked === mlock.bytes);
      assert.deepEqual(swaps.map((s) => s.step), ["swap thp", "swap 4k"]);
      for (const s of swaps) {
        assert.ok(s.bytes >= 2 * 1024 * 1024);
        assert.deepEqual(
          { ...s.swap!, path: s.swap!.path === "" },
          { step: "", errno: 0, path: true, mismatches: 0, works: true },
          `${s.step}: the text is an anonymous copy with the file's bytes`,
        );
        assert.deepEqual(
          { ...s.restore!, path: s.restore!.path.endsWith(rt.name) },
          { step: "", errno: 0, path: true, mismatches: 0, works: true },
          `${s.step}: restored from the file`,
        );
      }
    },
  );
}
