// The pure parts of the A/B benchmark's split mode (bench/ab/split.ts): which
// pages get MADV_COLD, how a pagemap entry is read, and what counts as a
// split in place. The split itself runs in bench/ab/run.ts, which verifies it
// from smaps, pagemap and the bytes on every switch.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkSplit,
  type CopyState,
  pagemapFrame,
  PMD_SIZE,
  SMALL_PAGE,
  splitPages,
} from "../bench/ab/split.ts";

const M = PMD_SIZE;

test("splitPages: one page per 2 MiB unit, clipped to the range, shared units once", () => {
  assert.deepEqual(splitPages([{ start: 4 * M, end: 6 * M }]), [4 * M, 5 * M]);
  // A range starting inside a unit gives its own first page.
  assert.deepEqual(
    splitPages([{ start: 4 * M + 8192, end: 5 * M + 4096 }]),
    [4 * M + 8192, 5 * M],
  );
  // Two ranges in one unit: each clipped start, sorted.
  assert.deepEqual(
    splitPages([
      { start: 8 * M + 0x10000, end: 8 * M + 0x20000 },
      { start: 8 * M, end: 8 * M + 0x1000 },
    ]),
    [8 * M, 8 * M + 0x10000],
  );
  assert.deepEqual(splitPages([{ start: 2 * M, end: 2 * M }]), []);
  assert.throws(() => splitPages([{ start: 100, end: 8192 }]), RangeError);
  assert.throws(() => splitPages([{ start: 8192, end: 4096 }]), RangeError);
});

function entry(v: bigint): Uint8Array {
  const e = new Uint8Array(8);
  new DataView(e.buffer).setBigUint64(0, v, true);
  return e;
}

test("pagemapFrame: present pages give their frame; absent or hidden give undefined", () => {
  assert.equal(pagemapFrame(entry((1n << 63n) | 0xabcden)), 0xabcde);
  // Soft-dirty and exclusive bits above bit 54 are not part of the frame.
  assert.equal(
    pagemapFrame(entry((1n << 63n) | (1n << 56n) | (1n << 55n) | 5n)),
    5,
  );
  assert.equal(pagemapFrame(entry(0x1234n)), undefined); // not present
  assert.equal(pagemapFrame(entry(1n << 63n)), undefined); // frame hidden
  assert.throws(() => pagemapFrame(new Uint8Array(4)), RangeError);
});

function state(over: Partial<CopyState> = {}): CopyState {
  const page = new Uint8Array(SMALL_PAGE).fill(0x90);
  return {
    anonHuge: 4 * M,
    rss: 4 * M,
    zeroBytes: 0,
    frames: [100, 612],
    bytes: [page, page.slice()],
    ...over,
  };
}

test("checkSplit: accepts a split in place and counts what it checked", () => {
  const c = checkSplit(state(), state({ anonHuge: 0 }));
  assert.deepEqual(c, {
    pages: 2,
    anonHugeBefore: 4 * M,
    anonHugeAfter: 0,
    rssBefore: 4 * M,
    rssAfter: 4 * M,
    zeroBytes: 0,
    framesChecked: 2,
    bytesChecked: 2,
  });
  // Hidden frames (no root): nothing to compare, still a split.
  const hidden = { frames: [undefined, undefined] };
  assert.equal(
    checkSplit(state(hidden), state({ ...hidden, anonHuge: 0 })).framesChecked,
    0,
  );
});

test("checkSplit: zero-filled pages may leave Rss and change frame, nothing else may", () => {
  const zero = new Uint8Array(SMALL_PAGE);
  const before = state({
    zeroBytes: 3 * SMALL_PAGE,
    bytes: [zero, new Uint8Array(SMALL_PAGE).fill(1)],
  });
  const ok = checkSplit(
    before,
    state({
      anonHuge: 0,
      rss: 4 * M - 3 * SMALL_PAGE,
      frames: [1, 612], // the zero page went to the shared zero page
      bytes: [zero, new Uint8Array(SMALL_PAGE).fill(1)],
    }),
  );
  assert.equal(ok.framesChecked, 1);
  assert.throws(
    () =>
      checkSplit(
        before,
        state({ anonHuge: 0, rss: 4 * M - 4 * SMALL_PAGE }),
      ),
    /Rss/,
  );
  assert.throws(
    () => checkSplit(state(), state({ anonHuge: 0, rss: 4 * M + SMALL_PAGE })),
    /Rss/,
  );
});

test("checkSplit: refuses huge pages left, none before, a moved frame or changed bytes", () => {
  assert.throws(
    () => checkSplit(state(), state({ anonHuge: 2 * M })),
    /still on 2 MiB/,
  );
  assert.throws(
    () => checkSplit(state({ anonHuge: 0 }), state({ anonHuge: 0 })),
    /no 2 MiB pages before/,
  );
  assert.throws(
    () => checkSplit(state(), state({ anonHuge: 0, frames: [100, 613] })),
    /page 1 moved/,
  );
  const changed = new Uint8Array(SMALL_PAGE).fill(0x90);
  changed[17] = 0;
  assert.throws(
    () =>
      checkSplit(
        state(),
        state({ anonHuge: 0, bytes: [state().bytes[0], changed] }),
      ),
    /bytes of page 1 changed/,
  );
  assert.throws(
    () => checkSplit(state(), state({ anonHuge: 0, frames: [1] })),
    RangeError,
  );
});
