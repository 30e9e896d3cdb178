// src/sys/limits.ts: the memory cgroup check reads the usage only where a
// level has a limit, and finds the tightest level on v1 and v2.
import { test } from "node:test";
import assert from "node:assert/strict";
import { memcgProblem } from "../src/sys/limits.ts";

const MiB = 1024 * 1024;

function reader(files: Record<string, string>) {
  const asked: string[] = [];
  return {
    asked,
    read: (f: string) => {
      asked.push(f);
      return files[f];
    },
  };
}

test("memcgProblem v2: a level without a limit costs one read, a limited one two", () => {
  const r = reader({
    "/sys/fs/cgroup/a/b/memory.max": "max\n",
    "/sys/fs/cgroup/a/memory.max": `${200 * MiB}\n`,
    "/sys/fs/cgroup/a/memory.current": `${150 * MiB}\n`,
  });
  assert.match(
    memcgProblem("0::/a/b\n", r.read, 40 * MiB)!,
    /^the memory cgroup \/sys\/fs\/cgroup\/a allows 50\.0 MiB more/,
  );
  assert.deepEqual(r.asked, [
    "/sys/fs/cgroup/a/b/memory.max",
    "/sys/fs/cgroup/a/memory.max",
    "/sys/fs/cgroup/a/memory.current",
  ]);
  const free = reader({ "/sys/fs/cgroup/a/memory.max": "max\n" });
  assert.equal(memcgProblem("0::/a\n", free.read, 40 * MiB), undefined);
  assert.deepEqual(free.asked, [
    "/sys/fs/cgroup/a/memory.max",
    "/sys/fs/cgroup/memory.max",
  ]);
});

test("memcgProblem v1: the memory controller's hierarchy; room enough passes", () => {
  const files = {
    "/sys/fs/cgroup/memory/app/memory.limit_in_bytes": `${512 * MiB}\n`,
    "/sys/fs/cgroup/memory/app/memory.usage_in_bytes": `${100 * MiB}\n`,
    "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
  };
  const text = "4:memory:/app\n0::/\n";
  assert.equal(memcgProblem(text, reader(files).read, 100 * MiB), undefined);
  assert.match(
    memcgProblem(text, reader(files).read, 400 * MiB)!,
    /memory\.limit_in_bytes/,
  );
  // A usage that cannot be read: not checked at that level.
  const noUsage = reader({
    "/sys/fs/cgroup/memory/app/memory.limit_in_bytes": `${512 * MiB}\n`,
  });
  assert.equal(memcgProblem(text, noUsage.read, 500 * MiB), undefined);
});
