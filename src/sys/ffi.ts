/**
 * The one place that knows whether we run in Deno or in Bun.
 *
 * It turns a runtime-neutral symbol table into `Deno.dlopen` or `bun:ffi`
 * definitions, and offers the few memory helpers the rest of the library
 * needs (address of a buffer, a live view of process memory, C strings,
 * callbacks). Every native value crosses this boundary as a JS `number`:
 * user-space addresses on x86_64 and aarch64 are below 2^48, and the
 * syscalls we call return small integers. Nothing else in `src/` touches
 * `Deno.*` or `Bun.*`.
 *
 * @module
 */

/** A C type in a symbol table. Pointers are passed as `u64` addresses. */
export type NativeType = "i32" | "u32" | "i64" | "u64" | "void";

/** One native function: argument types, return type, and whether it may be absent. */
export interface NativeFunction {
  /** Argument types, in order. */
  readonly args: readonly NativeType[];
  /** Return type. */
  readonly returns: NativeType;
  /** When true, a missing symbol is not an error; the binding is `undefined`. */
  readonly optional?: boolean;
}

/** A symbol table: function name to its signature. */
export type SymbolTable = Readonly<Record<string, NativeFunction>>;

/** A bound native function; all results are converted to `number`. */
export type BoundFunction = (...args: number[]) => number;

/** A loaded library: its path as opened and its bound functions. */
export interface NativeLibrary<T extends SymbolTable> {
  /** The name or path the library was opened by. */
  readonly path: string;
  /** Bound functions; optional ones that were not found are `undefined`. */
  readonly symbols: { readonly [K in keyof T]: BoundFunction | undefined };
  /** Unloads the library. */
  close(): void;
}

/** A native-callable function pointer backed by a JS function. */
export interface NativeCallback {
  /** The function pointer, to pass to C as a `u64`. */
  readonly address: number;
  /** Releases the callback. */
  close(): void;
}

/** Which JavaScript runtime this is, and on what. */
export interface RuntimeInfo {
  /** `"deno"`, `"bun"` or `"unknown"`. */
  readonly name: "deno" | "bun" | "unknown";
  /** The runtime's version, `""` when unknown. */
  readonly version: string;
  /** Operating system as the runtime names it (`"linux"`, `"darwin"`, ...). */
  readonly os: string;
  /** CPU architecture normalized to `"x86_64"`, `"aarch64"` or the runtime's own name. */
  readonly arch: string;
}

/** Raised when native code cannot be reached at all (no FFI permission, no runtime support). */
export class FfiUnavailableError extends Error {
  /**
   * Makes the error.
   *
   * @param message What failed and what to do about it.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FfiUnavailableError";
  }
}

// ---------------------------------------------------------------------------
// Runtime detection

interface BunFfi {
  dlopen(
    path: string,
    symbols: Record<string, { args: string[]; returns: string }>,
  ): { symbols: Record<string, (...a: unknown[]) => unknown>; close(): void };
  ptr(view: ArrayBufferView): number;
  toArrayBuffer(address: number, offset: number, length: number): ArrayBuffer;
  JSCallback: new (
    fn: (...a: unknown[]) => unknown,
    def: { args: string[]; returns: string },
  ) => { ptr: number | null; close(): void };
}

interface BunGlobal {
  version: string;
  env: Record<string, string | undefined>;
}

interface NodeLikeProcess {
  platform?: string;
  arch?: string;
}

/** A `Deno.dlopen` symbol definition. */
interface DenoForeignFunction {
  parameters: string[];
  result: string;
  optional?: boolean;
}

/**
 * The part of the `Deno` namespace this module calls, declared here so that
 * the package type-checks without Deno's types (e.g. `tsc` with
 * `bun-types`): no other module of page-primer names `Deno`.
 */
interface DenoApi {
  version: { deno: string };
  build: { os: string; arch: string };
  dlopen?(
    path: string,
    symbols: Record<string, DenoForeignFunction>,
  ): {
    symbols: Record<string, ((...a: unknown[]) => unknown) | null>;
    close(): void;
  };
  permissions: {
    querySync(desc: { name: string; variable?: string }): { state: string };
  };
  env: { get(name: string): string | undefined };
  UnsafePointer: {
    of(view: ArrayBufferView): unknown;
    value(pointer: unknown): number | bigint;
    create(value: bigint): unknown;
  };
  UnsafePointerView: {
    getArrayBuffer(pointer: unknown, length: number): ArrayBuffer;
  };
  UnsafeCallback: new (
    def: { parameters: string[]; result: string },
    fn: (...a: unknown[]) => unknown,
  ) => { pointer: unknown; close(): void };
}

const g = globalThis as unknown as {
  Deno?: DenoApi;
  Bun?: BunGlobal;
  process?: NodeLikeProcess;
};

function isDeno(): boolean {
  return g.Deno !== undefined && g.Bun === undefined;
}

function isBun(): boolean {
  return g.Bun !== undefined;
}

let bunFfiCache: BunFfi | undefined;
function bunFfi(): BunFfi {
  if (bunFfiCache === undefined) {
    const req =
      (import.meta as unknown as { require?: (id: string) => unknown })
        .require;
    if (typeof req !== "function") {
      throw new FfiUnavailableError(
        "bun:ffi cannot be loaded: import.meta.require is missing (Bun older than 1.0?); upgrade Bun",
      );
    }
    bunFfiCache = req("bun:ffi") as BunFfi;
  }
  return bunFfiCache;
}

function normalizeArch(arch: string): string {
  if (arch === "x64" || arch === "x86_64" || arch === "amd64") return "x86_64";
  if (arch === "arm64" || arch === "aarch64") return "aarch64";
  return arch;
}

/**
 * Describes the running JavaScript runtime.
 *
 * @example
 * ```ts
 * import { runtimeInfo } from "./ffi.ts";
 * const info = runtimeInfo();
 * console.log(info.name, info.version, info.os, info.arch);
 * ```
 */
export function runtimeInfo(): RuntimeInfo {
  if (isBun()) {
    const p = g.process ?? {};
    return {
      name: "bun",
      version: g.Bun!.version,
      os: p.platform ?? "unknown",
      arch: normalizeArch(p.arch ?? "unknown"),
    };
  }
  if (isDeno()) {
    const d = g.Deno!;
    return {
      name: "deno",
      version: d.version.deno,
      os: d.build.os,
      arch: normalizeArch(d.build.arch),
    };
  }
  const p = g.process ?? {};
  return {
    name: "unknown",
    version: "",
    os: p.platform ?? "unknown",
    arch: normalizeArch(p.arch ?? "unknown"),
  };
}

/**
 * Tells whether this process may call native code, and if not, why.
 * In Deno this needs `--allow-ffi`; Bun always allows it. Never prompts.
 *
 * @example
 * ```ts
 * import { ffiAvailability } from "./ffi.ts";
 * const why = ffiAvailability();
 * if (why !== undefined) console.error(why);
 * ```
 *
 * @returns `undefined` when FFI is usable, else a message naming the remedy.
 */
export function ffiAvailability(): string | undefined {
  if (isBun()) return bunTooOld(g.Bun!.version);
  if (isDeno()) {
    const d = g.Deno!;
    if (typeof d.dlopen !== "function") {
      return "Deno.dlopen is not available in this Deno; use Deno 2 or later";
    }
    try {
      const st = d.permissions.querySync({ name: "ffi" });
      if (st.state !== "granted") {
        return "FFI is not permitted: run deno with --allow-ffi (page-primer needs no other permission)";
      }
    } catch {
      // querySync missing: let dlopen decide.
    }
    return undefined;
  }
  return "page-primer runs in Deno or Bun; this runtime is neither";
}

/** The oldest Bun whose bun:ffi reads native memory without crashing. */
const OLDEST_BUN = [1, 2];

/**
 * Why this Bun cannot be used, or `undefined`: Bun 1.1's `toArrayBuffer` of
 * memory outside the JS heap crashes the process (measured on 1.1.45).
 */
function bunTooOld(version: string): string | undefined {
  const [major, minor] = version.split(".").map(Number);
  const old = major < OLDEST_BUN[0] ||
    (major === OLDEST_BUN[0] && minor < OLDEST_BUN[1]);
  return old
    ? `Bun ${version} is too old: its bun:ffi crashes reading native memory; use Bun ${
      OLDEST_BUN.join(".")
    } or later`
    : undefined;
}

// ---------------------------------------------------------------------------
// Libraries

function toNumber(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (v === undefined || v === null) return 0;
  if (typeof v === "boolean") return v ? 1 : 0;
  return Number(v);
}

function bindDeno<T extends SymbolTable>(
  names: readonly string[],
  table: T,
): NativeLibrary<T> {
  const d = g.Deno!;
  const defs: Record<string, DenoForeignFunction> = {};
  for (const [name, f] of Object.entries(table)) {
    defs[name] = {
      parameters: [...f.args],
      result: f.returns,
      optional: f.optional === true,
    };
  }
  let lastError: unknown;
  for (const path of names) {
    let lib: ReturnType<NonNullable<DenoApi["dlopen"]>>;
    try {
      lib = d.dlopen!(path, defs);
    } catch (e) {
      if (
        e instanceof Error && /ffi/i.test(e.message) &&
        /permission|capab/i.test(e.message)
      ) {
        throw new FfiUnavailableError(
          "FFI is not permitted: run deno with --allow-ffi (page-primer needs no other permission)",
          { cause: e },
        );
      }
      lastError = e;
      continue;
    }
    const symbols: Record<string, BoundFunction | undefined> = {};
    for (const name of Object.keys(table)) {
      const fn = lib.symbols[name] as unknown as
        | ((...a: unknown[]) => unknown)
        | null;
      symbols[name] = fn === null || fn === undefined
        ? undefined
        : (...args: number[]) => toNumber(fn(...args));
    }
    return {
      path,
      symbols: symbols as NativeLibrary<T>["symbols"],
      close: () => lib.close(),
    };
  }
  throw new FfiUnavailableError(
    `cannot load any of ${names.join(", ")}: ${String(lastError)}`,
    { cause: lastError },
  );
}

/**
 * The error for a bun:ffi failure that no other library name can fix:
 * bun:ffi compiles each binding, so it needs JavaScriptCore's JIT.
 */
function bunFfiBlocked(e: unknown): FfiUnavailableError | undefined {
  if (!(e instanceof Error) || !/requires the JIT/i.test(e.message)) {
    return undefined;
  }
  const set = g.Bun!.env["BUN_JSC_useJIT"];
  return new FfiUnavailableError(
    `bun:ffi needs the JIT compiler, and it is off in this process${
      set !== undefined ? ` (BUN_JSC_useJIT=${set})` : ""
    }: page-primer cannot call the kernel. Run bun with the JIT on (unset BUN_JSC_useJIT)`,
    { cause: e },
  );
}

function bindBun<T extends SymbolTable>(
  names: readonly string[],
  table: T,
): NativeLibrary<T> {
  const ffi = bunFfi();
  const required: Record<string, { args: string[]; returns: string }> = {};
  const optional: [string, { args: string[]; returns: string }][] = [];
  for (const [name, f] of Object.entries(table)) {
    const def = { args: [...f.args], returns: f.returns };
    if (f.optional === true) optional.push([name, def]);
    else required[name] = def;
  }
  let lastError: unknown;
  for (const path of names) {
    let lib: ReturnType<BunFfi["dlopen"]>;
    try {
      lib = ffi.dlopen(path, required);
    } catch (e) {
      const blocked = bunFfiBlocked(e);
      if (blocked) throw blocked;
      lastError = e;
      continue;
    }
    const handles = [lib];
    const raw: Record<string, (...a: unknown[]) => unknown> = {
      ...lib.symbols,
    };
    for (const [name, def] of optional) {
      try {
        const one = ffi.dlopen(path, { [name]: def });
        handles.push(one);
        raw[name] = one.symbols[name];
      } catch {
        // absent: stays undefined
      }
    }
    const symbols: Record<string, BoundFunction | undefined> = {};
    for (const name of Object.keys(table)) {
      const fn = raw[name];
      symbols[name] = fn === undefined
        ? undefined
        : (...args: number[]) => toNumber(fn(...args));
    }
    return {
      path,
      symbols: symbols as NativeLibrary<T>["symbols"],
      close: () => handles.forEach((h) => h.close()),
    };
  }
  throw new FfiUnavailableError(
    `cannot load any of ${names.join(", ")}: ${String(lastError)}`,
    { cause: lastError },
  );
}

/**
 * Opens the first library of `names` that loads, binding the symbols of
 * `table`.
 *
 * @example
 * ```ts
 * import { openLibrary } from "./ffi.ts";
 * const libc = openLibrary(["libc.so.6"], {
 *   getpid: { args: [], returns: "i32" },
 * });
 * console.log(libc.symbols.getpid!());
 * ```
 *
 * @param names Library names or paths, tried in order.
 * @param table The functions to bind.
 * @throws {FfiUnavailableError} When FFI is not permitted or none of the names loads.
 */
export function openLibrary<T extends SymbolTable>(
  names: readonly string[],
  table: T,
): NativeLibrary<T> {
  const why = ffiAvailability();
  if (why !== undefined) throw new FfiUnavailableError(why);
  return isBun() ? bindBun(names, table) : bindDeno(names, table);
}

// ---------------------------------------------------------------------------
// Memory

/**
 * The address of a typed array's first byte, for passing to C. The array
 * must stay referenced while C uses the address.
 *
 * @example
 * ```ts
 * import { addressOf } from "./ffi.ts";
 * const buf = new Uint8Array(16);
 * console.log(addressOf(buf) !== 0);
 * ```
 */
export function addressOf(view: ArrayBufferView): number {
  if (view.byteLength === 0) {
    throw new RangeError("addressOf() needs a non-empty buffer");
  }
  if (isBun()) return bunFfi().ptr(view);
  const p = g.Deno!.UnsafePointer.of(view);
  return toNumber(g.Deno!.UnsafePointer.value(p));
}

/**
 * A live view of `length` bytes of this process's memory at `address`.
 * No copy: the view reads what is there now. Reading an unmapped address
 * crashes the process, so callers only pass ranges they know are mapped.
 *
 * @example
 * ```ts
 * import { addressOf, memory } from "./ffi.ts";
 * const buf = new Uint8Array([1, 2, 3]);
 * console.log(memory(addressOf(buf), 3)[2]); // 3
 * ```
 */
export function memory(address: number, length: number): Uint8Array {
  if (!Number.isSafeInteger(address) || address <= 0) {
    throw new RangeError(`memory(): bad address ${address}`);
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`memory(): bad length ${length}`);
  }
  if (length === 0) return new Uint8Array(0);
  if (isBun()) {
    return new Uint8Array(bunFfi().toArrayBuffer(address, 0, length));
  }
  const d = g.Deno!;
  const p = d.UnsafePointer.create(BigInt(address));
  if (p === null) throw new RangeError("memory(): null pointer");
  return new Uint8Array(d.UnsafePointerView.getArrayBuffer(p, length));
}

/**
 * Reads a NUL-terminated string at `address` (UTF-8), at most `max` bytes.
 *
 * @example
 * ```ts
 * import { addressOf, readCString } from "./ffi.ts";
 * const buf = new TextEncoder().encode("hi\0");
 * console.log(readCString(addressOf(buf))); // "hi"
 * ```
 */
export function readCString(address: number, max = 4096): string {
  if (address === 0) return "";
  const out: number[] = [];
  // Read in small steps so we never look far past the terminator, which
  // may sit right before an unmapped page.
  for (let at = address; out.length < max;) {
    const step = Math.min(64, 4096 - (at % 4096));
    const chunk = memory(at, step);
    const nul = chunk.indexOf(0);
    if (nul >= 0) {
      for (let i = 0; i < nul; i++) out.push(chunk[i]);
      break;
    }
    for (const b of chunk) out.push(b);
    at += step;
  }
  return new TextDecoder().decode(new Uint8Array(out.slice(0, max)));
}

/**
 * Makes a C-callable function pointer that runs `fn` synchronously on the
 * calling (JS) thread. Arguments arrive as numbers.
 *
 * @example
 * ```ts
 * import { callback } from "./ffi.ts";
 * const cb = callback({ args: ["u64", "u64", "u64"], returns: "i32" }, () => 0);
 * cb.close();
 * ```
 */
export function callback(
  def: { args: readonly NativeType[]; returns: NativeType },
  fn: (...args: number[]) => number,
): NativeCallback {
  const wrapped = (...a: unknown[]) => fn(...a.map(toNumber));
  if (isBun()) {
    const cb = new (bunFfi().JSCallback)(wrapped, {
      args: [...def.args],
      returns: def.returns,
    });
    return { address: toNumber(cb.ptr), close: () => cb.close() };
  }
  const d = g.Deno!;
  const cb = new d.UnsafeCallback(
    {
      parameters: [...def.args],
      result: def.returns,
    },
    wrapped,
  );
  return {
    address: toNumber(d.UnsafePointer.value(cb.pointer)),
    close: () => cb.close(),
  };
}

/**
 * Reads an environment variable the way the runtime allows without
 * prompting: Bun's `process.env`; in Deno `Deno.env` only when env access is
 * already granted. Use the libc `getenv` binding for permission-free reads.
 *
 * @example
 * ```ts
 * import { runtimeEnv } from "./ffi.ts";
 * console.log(runtimeEnv("HOME"));
 * ```
 */
export function runtimeEnv(name: string): string | undefined {
  if (isBun()) return g.Bun!.env[name];
  if (isDeno()) {
    const d = g.Deno!;
    try {
      if (
        d.permissions.querySync({ name: "env", variable: name }).state ===
          "granted"
      ) {
        return d.env.get(name);
      }
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * A little-endian u64 field of a kernel structure as a number; exact below
 * 2^53 (addresses, sizes, inodes).
 *
 * @example
 * ```ts
 * import { setU64, u64 } from "./ffi.ts";
 * import assert from "node:assert/strict";
 * const view = new DataView(new ArrayBuffer(8));
 * setU64(view, 0, 0x7f12_3456_7000);
 * assert.equal(u64(view, 0), 0x7f12_3456_7000);
 * ```
 */
export function u64(view: DataView, at: number): number {
  return view.getUint32(at + 4, true) * 0x1_0000_0000 +
    view.getUint32(at, true);
}

/**
 * Writes a number below 2^53 as a little-endian u64 field.
 *
 * @example
 * ```ts
 * import { setU64 } from "./ffi.ts";
 * import assert from "node:assert/strict";
 * const view = new DataView(new ArrayBuffer(8));
 * setU64(view, 0, 2 ** 32 + 1);
 * assert.equal(view.getBigUint64(0, true), 2n ** 32n + 1n);
 * ```
 */
export function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % 0x1_0000_0000, true);
  view.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true);
}
