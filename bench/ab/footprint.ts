/**
 * Each workload's hot-code footprint, measured in the harness itself with
 * the library's footprint code: clear the referenced bits of this process
 * (`/proc/self/clear_refs`), run one batch of the workload, read
 * `/proc/self/smaps` and count the distinct 4 KiB pages of the runtime
 * executable's text that were touched (`Referenced:`), attributed by
 * `attributeFootprint` of src/tools/footprint.ts.
 *
 * The harness measures it in the `small` mode, on the 4 KiB anonymous copy of
 * the text: the accessed bits of private anonymous pages are kept per page,
 * whereas on the file mapping the kernel may count a whole large folio of
 * the page cache, touched by any process (an upper bound), and on 2 MiB
 * pages a touched page counts 512.
 *
 * @module
 */
import {
  attributeFootprint,
  clearRefs,
  type CodeRange,
  codeRanges,
  type ItlbInfo,
  readItlb,
} from "../../src/tools/footprint.ts";
import { inspectProcess, readProcessSmaps } from "../../src/tools/inspect.ts";
import { type Libc, libc } from "../../src/sys/libc.ts";
import { median } from "./stats.ts";

/** Pages touched during one batch, by category (4 KiB pages). */
export interface FootprintSample {
  /** The executable's text (its LOAD segment, or the copy there). */
  executable: number;
  /** The executable's further code mappings (V8's embedded builtins). */
  builtins: number;
  /** Shared libraries' text. */
  library: number;
  /** Anonymous executable memory (JIT code). */
  jit: number;
  /** Every executable mapping. */
  total: number;
  /** Milliseconds of the batch. */
  ms: number;
}

/** A workload's footprint: the samples and their summary. */
export interface WorkloadFootprint {
  /** The mode the batches ran in (the 4 KiB copy: counted page by page). */
  mode: "small";
  /** Ops per measured batch (a timed batch's). */
  ops: number;
  /** One per measured batch. */
  samples: FootprintSample[];
  /**
   * Median over the samples of executable + builtins: distinct 4 KiB pages
   * of the runtime executable's text touched by one batch.
   */
  pages: number;
}

/**
 * The summary of footprint samples: the median of executable + builtins
 * pages (what the remap moves to 2 MiB pages). Pure.
 *
 * @example
 * ```ts
 * import { footprintPages } from "./footprint.ts";
 * const s = { executable: 300, builtins: 40, library: 10, jit: 5, total: 355, ms: 60 };
 * console.log(footprintPages([s, { ...s, executable: 320 }, { ...s, executable: 310 }])); // 350
 * ```
 */
export function footprintPages(samples: readonly FootprintSample[]): number {
  if (samples.length === 0) {
    throw new RangeError("footprintPages: no samples were measured");
  }
  return Math.round(median(samples.map((s) => s.executable + s.builtins)));
}

/**
 * Measures this process's hot code around a piece of work. Construct it
 * while the process runs file-backed (the code ranges come from the
 * executable's program headers and mappings).
 */
export class FootprintProbe {
  readonly #c: Libc;
  readonly #pid: number;
  readonly #ranges: CodeRange[];

  /**
   * Reads this process's code ranges.
   *
   * @example
   * ```ts ignore
   * import { FootprintProbe } from "./footprint.ts";
   * const probe = new FootprintProbe();
   * console.log(await probe.around(async () => 0));
   * ```
   */
  constructor(c: Libc = libc()) {
    this.#c = c;
    this.#pid = c.getpid();
    this.#ranges = codeRanges(inspectProcess(c, this.#pid));
  }

  /**
   * Clears the referenced bits, runs `work` (which returns its duration in
   * ms), and counts the code pages touched meanwhile.
   */
  async around(work: () => Promise<number>): Promise<FootprintSample> {
    clearRefs(this.#c, this.#pid);
    const ms = await work();
    const smaps = readProcessSmaps(this.#c, this.#pid);
    const t = attributeFootprint(this.#ranges, smaps, ms / 1000).totals;
    return {
      executable: t.executable,
      builtins: t.builtins,
      library: t.library,
      jit: t.jit,
      total: t.total,
      ms,
    };
  }

  /**
   * The CPU's instruction TLB from CPUID, or why it is unknown.
   *
   * @example
   * ```ts ignore
   * import { FootprintProbe } from "./footprint.ts";
   * console.log(new FootprintProbe().itlb());
   * ```
   */
  itlb(): ItlbInfo | { unknown: string } {
    return readItlb(this.#c);
  }
}
