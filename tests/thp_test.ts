// src/sys/thp.ts: the THP verdict.

import { test } from "node:test";
import assert from "node:assert/strict";
import { thpVerdict } from "../src/sys/thp.ts";

test("thpVerdict: process-wide disable, never with and without MADV_COLLAPSE", () => {
  assert.equal(
    thpVerdict({
      enabled: "always [madvise] never",
      defrag: "[madvise]",
      processDisabled: false,
      release: "6.18.1",
    }).usable,
    true,
  );
  const off = thpVerdict({
    enabled: "always [madvise] never",
    defrag: "[madvise]",
    processDisabled: true,
    release: "6.18.1",
  });
  assert.equal(off.usable, false);
  assert.match(off.reason!, /PR_SET_THP_DISABLE/);
  const never61 = thpVerdict({
    enabled: "always madvise [never]",
    defrag: "[madvise]",
    processDisabled: false,
    release: "6.1.0",
  });
  assert.equal(never61.usable, true);
  assert.match(never61.reason!, /MADV_COLLAPSE/);
  const never515 = thpVerdict({
    enabled: "always madvise [never]",
    defrag: "[madvise]",
    processDisabled: false,
    release: "5.15.0",
  });
  assert.equal(never515.usable, false);
  assert.match(
    never515.reason!,
    /echo madvise > \/sys\/kernel\/mm\/transparent_hugepage\/enabled/,
  );
  assert.equal(
    thpVerdict({
      enabled: undefined,
      defrag: undefined,
      processDisabled: false,
      release: "6.18.1",
    }).usable,
    false,
  );
});
