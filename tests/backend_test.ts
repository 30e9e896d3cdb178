// src/remap/backend.ts: choosing the backend.

import { test } from "node:test";
import assert from "node:assert/strict";
import { chooseBackend } from "../src/remap/backend.ts";

test("chooseBackend: forced, auto with and without a pool, nothing possible", () => {
  const pool = (available: number, needed = 44) => ({
    total: available,
    available,
    needed,
    command: `sysctl -w vm.nr_hugepages=${needed}`,
  });
  const thpOk = { usable: true };
  const thpOff = {
    usable: false,
    reason: "THP is disabled for this whole process",
  };
  assert.deepEqual(chooseBackend("auto", pool(44), thpOk), {
    backend: "hugetlb",
  });
  assert.deepEqual(chooseBackend("auto", pool(43), thpOk), { backend: "thp" });
  assert.deepEqual(chooseBackend("thp", pool(100), thpOk), { backend: "thp" });
  const forced = chooseBackend("hugetlb", pool(0), thpOk);
  assert.match(
    (forced as { unavailable: string }).unavailable,
    /hugetlb pool has 0 free 2 MiB page\(s\), the remap needs 44: sysctl -w vm\.nr_hugepages=44/,
  );
  const none = chooseBackend("auto", pool(0), thpOff);
  assert.match(
    (none as { unavailable: string }).unavailable,
    /THP: THP is disabled.*hugetlb: the hugetlb pool/,
  );
  assert.equal(
    "unavailable" in chooseBackend("auto", pool(0, 0), thpOk),
    false,
  );
});
