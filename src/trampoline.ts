/**
 * Loading and calling the C trampoline that performs the copy-and-swap.
 *
 * The shared object travels inside the package as bytes
 * (`trampoline_so.ts`): they are written into a `memfd_create` file and
 * loaded with `dlopen("/proc/self/fd/N")`, so no file on disk and no
 * compiler is needed. `PAGE_PRIMER_TRAMPOLINE=/path/to/primer.so` loads a
 * locally built one instead.
 *
 * @module
 */

import { addressOf, type NativeLibrary, openLibrary } from "./ffi.ts";
import type { Libc } from "./libc.ts";
import { TRAMPOLINE_ABI, TRAMPOLINE_SO_BASE64 } from "./trampoline_so.ts";

const SYMBOLS = {
  pp_abi: { args: [], returns: "u64" },
  pp_run: { args: ["u64", "u64"], returns: "u64" },
} as const;

/** Operation of a record. */
export type TrampolineOp = "swap" | "restore";

/** Input of one record. */
export interface TrampolineRecord {
  /** `"swap"`: copy to anonymous memory and move it over; `"restore"`: map the file back. */
  op: TrampolineOp;
  /** Destination, 2 MiB aligned. */
  start: number;
  /** Length, a multiple of 2 MiB. */
  len: number;
  /** Start of the part present in the original mapping. */
  dataStart: number;
  /** Its length. */
  dataLen: number;
  /** Final protection (PROT_*). */
  prot: number;
  /** Copy on 4 KiB pages instead of 2 MiB ones. */
  small: boolean;
  /** Fill with pread from `fd` (only when the mapping holds no private page). */
  fromFile?: boolean;
  /** Stage in the reserved hugetlb pool instead of THP. */
  hugetlb?: boolean;
  /** Stage in this memfd (shared mapping) instead of anonymous memory. */
  memfd?: number;
  /**
   * `memfd` is a shared copy, filled and verified by the caller: mapped
   * read-only and not filled.
   */
  shared?: boolean;
  /**
   * `false` when the bytes in memory differ from the file (RELRO, private
   * pages): the file is never mapped over them; a failed swap is undone
   * from the stage and `"restore"` copies memory onto 4 KiB pages (with
   * `small: true`). Default `true`.
   */
  equalsFile?: boolean;
  /** Name for the anonymous VMA, or `undefined`. */
  name?: string;
  /** The file's descriptor (restore, and recovery of a failed swap), or -1. */
  fd: number;
  /** File offset of `dataStart`. */
  fileOffset: number;
}

/** Output of one record. */
export interface TrampolineResult {
  /** The failed step (`""` when it succeeded). */
  step: string;
  /** errno of the failed step, 0 when it succeeded. */
  errno: number;
  /** errno of MADV_COLLAPSE, 0 when it worked or was not tried. */
  collapseErrno: number;
  /** errno of PR_SET_VMA_ANON_NAME, 0 when it worked or was not tried. */
  nameErrno: number;
  /** A failed swap was undone by mapping the file back. */
  recovered: boolean;
  /** Syscalls the record made (an injected failure counts as one). */
  calls: number;
}

let fault: { at: number; errno: number } | undefined;

/**
 * For tests only: from now on, the `at`-th syscall (1-based) of every
 * trampoline record fails with `errno` without being made; `undefined`
 * stops it. Not exported from the package.
 *
 * @example
 * ```ts
 * import { injectFault } from "./trampoline.ts";
 * injectFault({ at: 3, errno: 12 }); // the 3rd syscall of each region: ENOMEM
 * injectFault(undefined);
 * ```
 */
export function injectFault(f: { at: number; errno: number } | undefined) {
  if (
    f !== undefined &&
    (!Number.isInteger(f.at) || f.at < 1 || !Number.isInteger(f.errno) ||
      f.errno < 1 || f.errno > 4095)
  ) {
    throw new RangeError(
      `injectFault: at must be an integer >= 1 and errno 1..4095; got ${
        JSON.stringify(f)
      }`,
    );
  }
  fault = f;
}

const STEPS = [
  "",
  "check",
  "stage mmap",
  "stage trim",
  "madvise(MADV_HUGEPAGE)",
  "mprotect",
  "mremap",
  "restore mmap",
  "munmap extension",
  "fill",
  "madvise(MADV_POPULATE_WRITE)",
];

const WORDS = 20;

/** Where the loaded trampoline came from. */
export interface Trampoline {
  /** Path it was loaded from (`/proc/self/fd/N` or the override). */
  readonly path: string;
  /** Runs records in order; one result per record. */
  run(records: readonly TrampolineRecord[]): TrampolineResult[];
}

let loaded: Trampoline | undefined;

function decodeBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function bind(lib: NativeLibrary<typeof SYMBOLS>, path: string): Trampoline {
  const abi = lib.symbols.pp_abi!();
  if (abi !== TRAMPOLINE_ABI) {
    lib.close();
    throw new Error(
      `the trampoline at ${path} speaks ABI ${abi}, this page-primer needs ${TRAMPOLINE_ABI}: rebuild it (npm run build:trampoline)`,
    );
  }
  const runFn = lib.symbols.pp_run!;
  return {
    path,
    run(records) {
      if (records.length === 0) return [];
      const words = new BigUint64Array(records.length * WORDS);
      const keep: Uint8Array[] = [];
      records.forEach((r, i) => {
        const w = i * WORDS;
        let name = 0n;
        if (r.name !== undefined) {
          const b = new TextEncoder().encode(r.name + "\0");
          keep.push(b);
          name = BigInt(addressOf(b));
        }
        words[w + 0] = r.op === "swap" ? 1n : 2n;
        words[w + 1] = BigInt(r.start);
        words[w + 2] = BigInt(r.len);
        words[w + 3] = BigInt(r.dataStart);
        words[w + 4] = BigInt(r.dataLen);
        words[w + 5] = BigInt(r.prot);
        words[w + 6] = (r.small ? 1n : 0n) | (r.fromFile ? 2n : 0n) |
          (r.hugetlb ? 4n : 0n) | (r.memfd !== undefined ? 8n : 0n) |
          (r.shared ? 16n : 0n) | (r.equalsFile === false ? 32n : 0n);
        words[w + 16] = BigInt(r.memfd ?? 0);
        words[w + 17] = BigInt(fault?.at ?? 0);
        words[w + 18] = BigInt(fault?.errno ?? 0);
        words[w + 7] = name;
        words[w + 8] = BigInt.asUintN(64, BigInt(r.fd));
        words[w + 9] = BigInt(r.fileOffset);
      });
      runFn(addressOf(words), records.length);
      keep.length = 0;
      return records.map((_, i) => {
        const w = i * WORDS;
        const step = Number(words[w + 10]);
        return {
          step: STEPS[step] ?? `step ${step}`,
          errno: Number(words[w + 11]),
          collapseErrno: Number(words[w + 12]),
          nameErrno: Number(words[w + 13]),
          recovered: words[w + 14] === 1n,
          calls: Number(words[w + 19]),
        };
      });
    },
  };
}

/**
 * Loads the trampoline once per process: from `PAGE_PRIMER_TRAMPOLINE` when
 * set, else from the bytes shipped in the package through a memfd.
 *
 * @example
 * ```ts no-eval
 * import { libc } from "./libc.ts";
 * import { loadTrampoline } from "./trampoline.ts";
 * console.log(loadTrampoline(libc()).path);
 * ```
 */
export function loadTrampoline(c: Libc): Trampoline {
  if (loaded !== undefined) return loaded;
  const override = c.getenv("PAGE_PRIMER_TRAMPOLINE");
  if (override) {
    loaded = bind(openLibrary([override], SYMBOLS), override);
    return loaded;
  }
  if (!c.has("memfd_create")) {
    throw new Error(
      "this libc has no memfd_create (glibc < 2.27?): set PAGE_PRIMER_TRAMPOLINE to a built primer.so",
    );
  }
  const fd = c.memfdCreate("page-primer-trampoline", 1 /* MFD_CLOEXEC */);
  try {
    c.writeAll(fd, decodeBase64(TRAMPOLINE_SO_BASE64));
    const path = `/proc/self/fd/${fd}`;
    loaded = bind(openLibrary([path], SYMBOLS), path);
  } finally {
    c.close(fd);
  }
  return loaded;
}

/**
 * True when `path` names the trampoline itself (never remap it).
 *
 * @example
 * ```ts
 * import { isTrampolinePath } from "./trampoline.ts";
 * console.log(isTrampolinePath("/memfd:page-primer-trampoline (deleted)")); // true
 * ```
 */
export function isTrampolinePath(path: string): boolean {
  return path.includes("page-primer-trampoline") ||
    path.startsWith("/proc/self/fd/") ||
    (loaded !== undefined && path === loaded.path);
}
