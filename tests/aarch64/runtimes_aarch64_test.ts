// The library inside the arm64 builds of Deno and Bun, under qemu-user:
// tests/aarch64/runtime_text.ts locks and prefaults the runtime's code with
// prime(), lists the loaded objects with the shipped object's native
// dl_iterate_phdr callback, then swaps its text onto an anonymous copy with the shipped
// aarch64 trampoline and restores the file, checking the bytes, the mapping
// and that the runtime still works. Runs the arm64 builds that
// scripts/setup.sh fetches (the same versions as the x86_64 ones, from npm
// @deno/linux-arm64-glibc and @oven/bun-linux-aarch64, into
// node_modules/.cache/page-primer-arm64/), or those PAGE_PRIMER_ARM64_DENO /
// PAGE_PRIMER_ARM64_BUN name, with qemu-aarch64-static and the
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

/** Where scripts/setup.sh unpacks the arm64 builds. */
const FETCHED = join(ROOT, "node_modules", ".cache", "page-primer-arm64");

const RUNTIMES = [
  {
    name: "deno",
    env: "PAGE_PRIMER_ARM64_DENO",
    fetched: join(FETCHED, "deno", "package", "deno"),
    args: ["run", "--allow-ffi"],
  },
  {
    name: "bun",
    env: "PAGE_PRIMER_ARM64_BUN",
    fetched: join(FETCHED, "bun", "package", "bin", "bun"),
    args: [],
  },
] as const;

interface Step {
  step: string;
  ok?: boolean;
  bytes: number;
  names?: string[];
  headers?: number;
  cap?: number;
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

// The arm64 binaries are what is tested; the runner only starts them, so
// they run once, under `deno test` (minutes of emulation each).
const underBun = "Bun" in globalThis;

for (const rt of RUNTIMES) {
  const binary = process.env[rt.env] ?? rt.fetched;
  const skip = qemuMissing ??
    (underBun
      ? "run once, under deno test (the runner only starts them)"
      : undefined) ??
    (existsSync(binary)
      ? false
      : `no arm64 ${rt.name} at ${binary} (sh scripts/setup.sh fetches it from npm; or set ${rt.env})`);
  if (skip) {
    console.log(`runtimes_aarch64_test: ${rt.name} skipped: ${skip}`);
  }
  test(
    `arm64 ${rt.name} under qemu-aarch64: mlock and populate, the loaded objects listed natively, then its own text swapped and restored by the shipped trampoline`,
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
      const [mlock, list, ...swaps] = steps;
      assert.equal(mlock?.step, "mlock", res.stdout + res.stderr);
      assert.equal(mlock.ok, true);
      assert.ok(mlock.bytes > 0 && mlock.locked === mlock.bytes);
      assert.equal(list?.step, "list", res.stdout + res.stderr);
      assert.ok(
        list.bytes > 0 && list.bytes <= list.cap!,
        `pp_list_objects took ${list.bytes} bytes of ${list.cap}`,
      );
      assert.equal(list.names![0], "", "the main program comes first");
      assert.ok(
        list.names!.some((n) => n.endsWith("/libc.so.6")),
        list.names!.join(", "),
      );
      assert.equal(list.headers, list.names!.length);
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
