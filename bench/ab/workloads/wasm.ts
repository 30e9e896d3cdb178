/**
 * The `wasm` workload: compile, instantiate and run a generated WebAssembly
 * module of a few thousand functions (the engine's Wasm decoder, validator
 * and baseline compiler: native code of the runtime, not JavaScript).
 *
 * @module
 */
import type { Workload } from "../workloads.ts";
import { fail } from "./fail.ts";

/** Number of generated functions. */
const FUNCS = 1000;
/** Mixing steps in each function's body. */
const STEPS = 4;

/** Unsigned LEB128. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 of an i32. */
function sleb(n: number): number[] {
  const out: number[] = [];
  n |= 0;
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/** An i32 in the 5-byte (padded) signed LEB128 form, so it can be patched. */
function sleb5(n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < 4; i++) out.push(((n >> (7 * i)) & 0x7f) | 0x80);
  out.push((n >> 28) & 0x7f);
  return out;
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

/** The constants of step `s` of function `i`. */
function constants(i: number, s: number) {
  const k = i * STEPS + s;
  return {
    a: (Math.imul(k, 0x9e3779b1) | 1) | 0,
    b: Math.imul(k + 7, 104729) | 0,
    c: (Math.imul(k, 31337) ^ 0x5bd1e995) | 0,
    r: 1 + (k % 31),
  };
}

/**
 * What generated function `i` returns for argument `x`, computed in
 * JavaScript with the same 32-bit arithmetic.
 *
 * @example
 * ```ts
 * import { expectedF } from "./wasm.ts";
 * console.log(expectedF(0, 13)); // an i32
 * ```
 */
export function expectedF(i: number, x: number): number {
  let y = x | 0;
  for (let s = 0; s < STEPS; s++) {
    const { a, b, c, r } = constants(i, s);
    y = (Math.imul(y, a) + b) | 0;
    y = (y & 1) ? (y ^ c) : ((y + (x >>> 3)) | 0);
    y = (y << r) | (y >>> (32 - r));
  }
  return (y ^ (y >>> 16)) | 0;
}

/** The argument `main` passes to function `i`. */
function argOf(i: number): number {
  return (Math.imul(i, 977) + 13) | 0;
}

function functionBody(i: number): number[] {
  const code: number[] = [0x20, 0, 0x21, 1]; // y = x
  for (let s = 0; s < STEPS; s++) {
    const { a, b, c, r } = constants(i, s);
    code.push(
      ...[0x20, 1, 0x41, ...sleb(a), 0x6c, 0x41, ...sleb(b), 0x6a, 0x22, 1],
      ...[0x41, 1, 0x71, 0x04, 0x7f], // if (y & 1) (result i32)
      ...[0x20, 1, 0x41, ...sleb(c), 0x73], // y ^ c
      0x05, // else
      ...[0x20, 1, 0x20, 0, 0x41, 3, 0x76, 0x6a], // y + (x >>> 3)
      0x0b,
      ...[0x41, r, 0x77, 0x21, 1], // y = rotl(.., r)
    );
  }
  code.push(0x20, 1, 0x20, 1, 0x41, 16, 0x76, 0x73, 0x0b);
  const body = [1, 1, 0x7f, ...code]; // one local group: 1 x i32
  return [...uleb(body.length), ...body];
}

/**
 * A module of `FUNCS` functions `(i32) -> i32` and an exported `main()`
 * that calls each once and returns the wrapping sum plus a salt, with the
 * byte offset of the salt's 5-byte constant and the expected sum at salt 0.
 *
 * @example
 * ```ts
 * import { wasmModule } from "./wasm.ts";
 * const { bytes } = wasmModule();
 * console.log(WebAssembly.validate(bytes)); // true
 * ```
 */
export function wasmModule(): {
  bytes: Uint8Array<ArrayBuffer>;
  saltAt: number;
  expected: number;
} {
  const types = section(1, vec([[0x60, 1, 0x7f, 1, 0x7f], [0x60, 0, 1, 0x7f]]));
  const funcs = section(
    3,
    vec([...Array.from({ length: FUNCS }, () => [0]), [1]]),
  );
  const name = [...new TextEncoder().encode("main")];
  const exports = section(
    7,
    vec([[...uleb(name.length), ...name, 0, ...uleb(FUNCS)]]),
  );
  let expected = 0;
  const main: number[] = [0x41, 0];
  for (let i = 0; i < FUNCS; i++) {
    main.push(0x41, ...sleb(argOf(i)), 0x10, ...uleb(i), 0x6a);
    expected = (expected + expectedF(i, argOf(i))) | 0;
  }
  main.push(0x41, ...sleb5(0), 0x6a, 0x0b);
  const mainBody = [0, ...main];
  const bodies = Array.from({ length: FUNCS }, (_, i) => functionBody(i));
  const mainEntry = [...uleb(mainBody.length), ...mainBody];
  const code = section(10, vec([...bodies, mainEntry]));
  const head = [0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
  const all = [...head, ...types, ...funcs, ...exports, ...code];
  // main ends with the salt's 5 bytes, i32.add and end; the code section,
  // and main's body in it, come last.
  const saltAt = all.length - 7;
  return { bytes: new Uint8Array(all), saltAt, expected };
}

export const wasm: Workload = {
  name: "wasm",
  description:
    `new WebAssembly.Module + Instance of a generated module of ${FUNCS} functions (~215 KB, a distinct salt each time), then main() calling each once`,
  setup() {
    const { bytes, saltAt, expected } = wasmModule();
    if (!WebAssembly.validate(bytes)) fail("wasm", "generated module invalid");
    let salt = 0;
    const once = () => {
      salt = (salt + 1) & 0x3fffffff;
      const b = bytes.slice();
      b.set(sleb5(salt), saltAt);
      const inst = new WebAssembly.Instance(new WebAssembly.Module(b));
      const got = (inst.exports.main as () => number)();
      const want = (expected + salt) | 0;
      if (got !== want) fail("wasm", `main() = ${got}, want ${want}`);
    };
    once();
    return {
      run(ops) {
        for (let o = 0; o < ops; o++) once();
      },
      close() {},
    };
  },
};
