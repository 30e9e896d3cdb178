// The builder's argument checks: bad arguments throw TypeError/RangeError
// naming what is accepted.

import { test } from "node:test";
import assert from "node:assert/strict";
import { prime } from "../mod.ts";

test("bad arguments throw TypeError/RangeError naming what is accepted", () => {
  // deno-lint-ignore no-explicit-any
  const p = prime() as any;
  assert.throws(() => p.mlock("yes"), {
    name: "TypeError",
    message:
      /mlock\(\) accepts true, false or \{ onFault\?: boolean \}; got string "yes"/,
  });
  assert.throws(() => p.mlock({ onfault: true }), {
    name: "TypeError",
    message: /unknown option "onfault"; accepted: onFault/,
  });
  assert.throws(() => p.mlock({ onFault: 1 }), {
    name: "TypeError",
    message: /onFault must be a boolean/,
  });
  assert.throws(() => p.populate(1), {
    name: "TypeError",
    message: /populate\(\) accepts true or false/,
  });
  assert.throws(() => p.populate({ x: 1 }), {
    name: "TypeError",
    message: /unknown option "x"/,
  });
  assert.throws(() => p.objects(), { name: "RangeError" });
  assert.throws(() => p.objects(42), {
    name: "TypeError",
    message: /got number 42/,
  });
  assert.throws(() => p.objects(""), { name: "TypeError" });
  assert.throws(() => p.strict("true"), { name: "TypeError" });
  // Valid calls chain.
  assert.equal(
    p.mlock(false).populate(true).objects("main", /libc/).strict(false),
    p,
  );
});

// --- remap planning -------------------------------------------------------
