// src/mlock.ts: the lock budget and the message when the limit is short.

import { test } from "node:test";
import assert from "node:assert/strict";
import { limitMessage, lockBudget } from "../src/mlock.ts";
import { MiB } from "./fixtures/deno_layout.ts";

test("lockBudget: CAP_IPC_LOCK ignores the limit; soft raised up to hard", () => {
  assert.equal(
    lockBudget({
      needed: 100 * MiB,
      alreadyLocked: 0,
      rlimit: { cur: 8 * MiB, max: 8 * MiB },
      capIpcLock: true,
    }).fits,
    true,
  );
  const short = lockBudget({
    needed: 100 * MiB,
    alreadyLocked: 0,
    rlimit: { cur: 8 * MiB, max: 8 * MiB },
    capIpcLock: false,
  });
  assert.equal(short.fits, false);
  assert.equal(short.raiseTo, undefined);
  const raise = lockBudget({
    needed: 100 * MiB,
    alreadyLocked: MiB,
    rlimit: { cur: 8 * MiB, max: Infinity },
    capIpcLock: false,
  });
  assert.equal(raise.fits, true);
  assert.equal(raise.raiseTo, 101 * MiB);
  const partial = lockBudget({
    needed: 100 * MiB,
    alreadyLocked: 0,
    rlimit: { cur: 8 * MiB, max: 64 * MiB },
    capIpcLock: false,
  });
  assert.equal(partial.fits, false);
  assert.equal(partial.raiseTo, 64 * MiB);
  assert.equal(
    lockBudget({
      needed: MiB,
      alreadyLocked: 0,
      rlimit: { cur: 8 * MiB, max: 8 * MiB },
      capIpcLock: false,
    }).raiseTo,
    undefined,
  );
});

test("limitMessage names the limit, the need and every remedy", () => {
  const m = limitMessage(91.4 * MiB, 8 * MiB, 8 * MiB);
  assert.match(m, /RLIMIT_MEMLOCK is 8\.0 MiB \(hard limit 8\.0 MiB\)/);
  assert.match(m, /needs 91\.4 MiB/);
  assert.match(m, /ulimit -l 93594/);
  assert.match(m, /LimitMEMLOCK=infinity/);
  assert.match(m, /CAP_IPC_LOCK/);
  assert.match(limitMessage(MiB, Infinity, Infinity), /unlimited/);
});
