/**
 * The report of a `prime().run()`: per segment and in total, every figure
 * read back from `/proc/self/smaps` after the actions ran.
 *
 * @module
 */

import {
  type Align,
  basename,
  formatBytes,
  formatMiB,
  formatPercent,
  formatTable,
} from "./sys/format.ts";
import { describePerfMap } from "./remap/perf_map.ts";
import {
  emptyRestoreReport,
  type RemapReport,
  type RestoreReport,
} from "./remap/report.ts";
import type { SegmentKind } from "./sys/segments.ts";

import type { StepError } from "./sys/libc.ts";
export type { StepError };

/** What was done to a segment. */
export type SegmentAction =
  | "mlock"
  | "mlock-onfault"
  | "populate"
  | "remap"
  | "remap-4k";

/** One LOAD segment of a selected object, measured after the actions. */
export interface SegmentReport {
  /** Path of the object. */
  object: string;
  /** LOAD index in the object. */
  index: number;
  /** `"text"`, `"rodata"` or `"data"`. */
  kind: SegmentKind;
  /** `"load"` for a PT_LOAD segment, `"alias"` for a second mapping of the file made by the runtime. */
  origin: "load" | "alias";
  /** Protection from the program header, e.g. `"r-x"`. */
  perms: string;
  /** Page-aligned start address. */
  start: number;
  /** Page-aligned end address. */
  end: number;
  /** `end - start`. */
  bytes: number;
  /** Bytes of the range that are mapped (smaps `Size`). */
  mapped: number;
  /** Resident bytes before the actions (smaps `Rss` plus hugetlb pages, which `Rss` leaves out). */
  residentBefore: number;
  /** Resident bytes after (smaps `Rss` plus hugetlb pages). */
  resident: number;
  /**
   * Bytes that cannot be evicted: `Rss` of VM_LOCKED VMAs (`VmFlags` has
   * `lo`) plus hugetlb pages (never evicted; the kernel never flags a
   * hugetlb VMA `lo`).
   */
  locked: number;
  /** smaps `Locked:`: proportional to sharing, like `Pss`. */
  lockedPss: number;
  /** Bytes on 2 MiB-or-larger pages. */
  huge: number;
  /** Actions requested for this segment. */
  actions: SegmentAction[];
  /** `"ok"`, `"failed"` (see `error`) or `"inspected"` (no action asked). */
  status: "ok" | "failed" | "inspected";
  /** The failure, when `status` is `"failed"`. */
  error?: StepError;
}

/** Sums over all reported segments. */
export interface Totals {
  /** Number of segments. */
  segments: number;
  /** Number of failed segments. */
  failed: number;
  /** Sum of `bytes`. */
  bytes: number;
  /** Sum of `resident`. */
  resident: number;
  /** Sum of `residentBefore`. */
  residentBefore: number;
  /** Sum of `locked`. */
  locked: number;
  /** Sum of `huge`. */
  huge: number;
}

/** Milliseconds spent per phase. */
export interface Durations {
  /** Finding objects and reading smaps. */
  inspectMs: number;
  /** All mlock calls. */
  mlockMs: number;
  /** All populate calls. */
  populateMs: number;
  /** The remap. */
  remapMs: number;
  /**
   * Writing the perf map (`remap({ perfMap: true })`), reading the symbols
   * included; 0 when none was written.
   */
  perfMapMs: number;
  /** The whole `run()`. */
  totalMs: number;
}

/** The plain data of an outcome, as `toJSON()` gives it. */
export interface PrimeOutcomeData {
  /** False when the environment stopped the run or any segment failed. */
  ok: boolean;
  /** Why nothing or not everything happened, when that is the case. */
  reason?: string;
  /** True when `PAGE_PRIMER=off` turned the run into a no-op. */
  disabled: boolean;
  /** Runtime name and version, e.g. `"deno 2.9.6"`. */
  runtime: string;
  /** Process id. */
  pid: number;
  /** Kernel release, `""` when unknown. */
  kernel: string;
  /** What was asked: `["mlock", "populate"]`, or `[]` for an inspection. */
  requested: SegmentAction[];
  /** Per-segment reports. */
  segments: SegmentReport[];
  /** Sums. */
  totals: Totals;
  /** Time per phase. */
  durations: Durations;
  /** Things worth knowing that did not fail the run. */
  warnings: string[];
  /** What the remap did, when it was asked for. */
  remap?: RemapReport;
}

/** Options of {@linkcode PrimeOutcome.log}. */
export interface LogOptions {
  /**
   * `"text"` (default): the table ({@linkcode PrimeOutcome.format});
   * `"line"`: one line ({@linkcode PrimeOutcome.summary}); `"json"`: one
   * JSON line.
   *
   * @default {"text"}
   */
  format?: "text" | "line" | "json";
  /** Where to write; default `console.error`. */
  write?: (text: string) => void;
}

/**
 * Sums segment reports.
 *
 * @example
 * ```ts
 * import { totalsOf } from "./outcome.ts";
 * console.log(totalsOf([]).bytes); // 0
 * ```
 */
export function totalsOf(segments: readonly SegmentReport[]): Totals {
  const t: Totals = {
    segments: segments.length,
    failed: 0,
    bytes: 0,
    resident: 0,
    residentBefore: 0,
    locked: 0,
    huge: 0,
  };
  for (const s of segments) {
    if (s.status === "failed") t.failed++;
    t.bytes += s.bytes;
    t.resident += s.resident;
    t.residentBefore += s.residentBefore;
    t.locked += s.locked;
    t.huge += s.huge;
  }
  return t;
}

/** Whether a remapped region of `r` overlaps the segment. */
function remapped(s: SegmentReport, r: RemapReport | undefined): boolean {
  return (r?.regions ?? []).some((x) =>
    x.status === "remapped" && x.start < s.end && s.start < x.end
  );
}

function statusText(s: SegmentReport, r: RemapReport | undefined): string {
  if (s.status === "failed") return `FAILED ${s.error?.step}: ${s.error?.code}`;
  if (s.status === "inspected") return "-";
  // A segment the remap left alone (writable data, V8's builtins alias)
  // shows only the actions that did apply.
  const done = s.actions.filter((a) => a !== "remap" || remapped(s, r));
  return done.length > 0 ? done.join("+") : "not remapped";
}

/**
 * What `prime().run()` did, measured. `ok` is false when the environment
 * stopped it (see `reason`) or any segment failed (see its `error`).
 *
 * @example
 * ```ts
 * import { prime } from "../mod.ts";
 * const out = prime().run();
 * console.log(out.ok, out.totals.resident);
 * out.log();
 * ```
 */
export class PrimeOutcome implements PrimeOutcomeData {
  /** False when the environment stopped the run or any segment failed. */
  readonly ok: boolean;
  /** Why nothing or not everything happened. */
  readonly reason?: string;
  /** True when `PAGE_PRIMER=off` turned the run into a no-op. */
  readonly disabled: boolean;
  /** Runtime name and version. */
  readonly runtime: string;
  /** Process id. */
  readonly pid: number;
  /** Kernel release. */
  readonly kernel: string;
  /** What was asked. */
  readonly requested: SegmentAction[];
  /** Per-segment reports. */
  readonly segments: SegmentReport[];
  /** Sums. */
  readonly totals: Totals;
  /** Time per phase. */
  readonly durations: Durations;
  /** Things worth knowing that did not fail the run. */
  readonly warnings: string[];
  /** What the remap did, when it was asked for. */
  readonly remap?: RemapReport;
  #restore: (() => RestoreReport) | undefined;

  /**
   * Wraps measured data; `run()` makes these, users rarely need to.
   *
   * @param data The measured data.
   * @param restore Undoes the remap (given by `run()`).
   */
  constructor(data: PrimeOutcomeData, restore?: () => RestoreReport) {
    this.#restore = restore;
    if (data.remap !== undefined) this.remap = data.remap;
    this.ok = data.ok;
    if (data.reason !== undefined) this.reason = data.reason;
    this.disabled = data.disabled;
    this.runtime = data.runtime;
    this.pid = data.pid;
    this.kernel = data.kernel;
    this.requested = data.requested;
    this.segments = data.segments;
    this.totals = data.totals;
    this.durations = data.durations;
    this.warnings = data.warnings;
  }

  /** Plain data, for `JSON.stringify`. */
  toJSON(): PrimeOutcomeData {
    const d: PrimeOutcomeData = {
      ok: this.ok,
      disabled: this.disabled,
      runtime: this.runtime,
      pid: this.pid,
      kernel: this.kernel,
      requested: this.requested,
      segments: this.segments,
      totals: this.totals,
      durations: this.durations,
      warnings: this.warnings,
    };
    if (this.reason !== undefined) d.reason = this.reason;
    if (this.remap !== undefined) d.remap = this.remap;
    return d;
  }

  /**
   * Puts the remapped regions back on the executable's file pages, each in
   * one syscall; refuses regions whose file on disk changed since loading.
   *
   * @example
   * ```ts
   * import { prime } from "../mod.ts";
   * const out = prime().remap(true).run();
   * console.log(out.restore().restored);
   * ```
   */
  restore(): RestoreReport {
    if (this.#restore === undefined) {
      return emptyRestoreReport();
    }
    return this.#restore();
  }

  /**
   * The outcome in one line, for a log: what is on 2 MiB pages, locked or
   * resident, and the time; or why it is not ok.
   *
   * @example
   * ```ts
   * import { prime } from "../mod.ts";
   * import assert from "node:assert/strict";
   * const line = prime().populate(true).run().summary();
   * // e.g. "page-primer: populate ok, resident 93.5 MiB (100.0%), 12 ms"
   * assert.match(line, /^page-primer: populate /);
   * ```
   *
   * @returns One line starting with `page-primer:`.
   */
  summary(): string {
    if (this.disabled) {
      return `page-primer: ${this.reason ?? "PAGE_PRIMER=off: nothing done"}`;
    }
    const what = this.requested.length ? this.requested.join(" + ") : "inspect";
    if (!this.ok) {
      const first = this.segments.find((s) => s.error)?.error?.message ??
        this.remap?.regions.find((x) => x.error)?.error?.message;
      const why = [this.reason, first].filter((x) => x !== undefined);
      return `page-primer: ${what} NOT OK: ${
        why.length ? why.join(": ") : "see the report"
      }`;
    }
    const t = this.totals;
    const parts: string[] = [];
    const r = this.remap;
    if (r !== undefined) {
      parts.push(
        `text ${formatPercent(r.text.huge, r.text.bytes)} on 2 MiB pages`,
        `rodata ${formatPercent(r.rodata.huge, r.rodata.bytes)}`,
      );
    }
    if (this.requested.some((a) => a.startsWith("mlock"))) {
      parts.push(`locked ${formatBytes(t.locked)}`);
    } else if (this.requested.includes("populate")) {
      parts.push(
        `resident ${formatBytes(t.resident)} (${
          formatPercent(t.resident, t.bytes)
        })`,
      );
    }
    parts.push(`${this.durations.totalMs.toFixed(0)} ms`);
    return `page-primer: ${what} ok, ${parts.join(", ")}`;
  }

  /** The readable report: a table of segments, totals, time, warnings and errors. */
  format(): string {
    const head = formatHead(this);
    if (this.disabled) return head;
    const lines = [head];
    if (this.reason !== undefined) lines.push(`  reason: ${this.reason}`);
    if (this.segments.length > 0) lines.push(...formatSegments(this));
    if (this.remap !== undefined) lines.push(...formatRemap(this.remap));
    lines.push(formatDurations(this.durations));
    for (const s of this.segments) {
      if (s.error) {
        lines.push(
          `  error: ${basename(s.object)} seg ${s.index}: ${s.error.message}`,
        );
      }
    }
    for (const w of this.warnings) lines.push(`  warning: ${w}`);
    return lines.join("\n");
  }

  /**
   * Writes the report to stderr (or `options.write`).
   *
   * @example
   * ```ts
   * import { prime } from "../mod.ts";
   * prime().run().log({ format: "json" });
   * ```
   */
  log(options: LogOptions = {}): void {
    const write = options.write ?? ((t: string) => console.error(t));
    write(
      options.format === "json"
        ? JSON.stringify(this)
        : options.format === "line"
        ? this.summary()
        : this.format(),
    );
  }
}

/** The first line: runtime, pid, kernel, what was asked and whether it worked. */
function formatHead(o: PrimeOutcome): string {
  const what = o.disabled
    ? `: ${o.reason ?? "PAGE_PRIMER=off: nothing done"}`
    : `: ${o.requested.length ? o.requested.join(" + ") : "inspect"} ${
      o.ok ? "ok" : "NOT OK"
    }`;
  return `page-primer: ${o.runtime}, pid ${o.pid}` +
    (o.kernel ? `, Linux ${o.kernel}` : "") + what;
}

/** A column of the segment table: header, alignment, and the cell of a segment and of the total. */
interface SegmentColumn {
  header: string;
  align: Align;
  cell: (s: SegmentReport, remap: RemapReport | undefined) => string;
  total: (t: Totals) => string;
}

const SEGMENT_COLUMNS: readonly SegmentColumn[] = [
  {
    header: "object",
    align: "left",
    cell: (s) => basename(s.object),
    total: () => "total",
  },
  {
    header: "seg",
    align: "right",
    cell: (s) => s.origin === "alias" ? `${s.index}*` : String(s.index),
    total: () => "",
  },
  { header: "perm", align: "left", cell: (s) => s.perms, total: () => "" },
  { header: "kind", align: "left", cell: (s) => s.kind, total: () => "" },
  {
    header: "MiB",
    align: "right",
    cell: (s) => formatMiB(s.bytes),
    total: (t) => formatMiB(t.bytes),
  },
  {
    header: "rss before",
    align: "right",
    cell: (s) => formatMiB(s.residentBefore),
    total: (t) => formatMiB(t.residentBefore),
  },
  {
    header: "rss after",
    align: "right",
    cell: (s) => formatMiB(s.resident),
    total: (t) => formatMiB(t.resident),
  },
  {
    header: "locked",
    align: "right",
    cell: (s) => formatMiB(s.locked),
    total: (t) => formatMiB(t.locked),
  },
  {
    header: "huge",
    align: "right",
    cell: (s) => formatMiB(s.huge),
    total: (t) => formatMiB(t.huge),
  },
  {
    header: "status",
    align: "left",
    cell: (s, remap) => statusText(s, remap),
    total: (t) => t.failed ? `${t.failed} failed` : "",
  },
];

/** The segment table with its total, footnote and summary line. */
function formatSegments(o: PrimeOutcome): string[] {
  const rows = o.segments.map((s) =>
    SEGMENT_COLUMNS.map((c) => c.cell(s, o.remap))
  );
  rows.push(SEGMENT_COLUMNS.map((c) => c.total(o.totals)));
  const table = formatTable(
    SEGMENT_COLUMNS.map((c) => c.header),
    rows,
    SEGMENT_COLUMNS.map((c) => c.align),
  );
  const lines = table.split("\n").map((l) => "  " + l);
  if (o.segments.some((s) => s.origin === "alias")) {
    lines.push(
      "  * a second mapping of the executable made by the runtime (V8's embedded builtins), not a LOAD segment",
    );
  }
  const t = o.totals;
  lines.push(
    `  resident ${formatPercent(t.resident, t.bytes)}, locked ${
      formatPercent(t.locked, t.bytes)
    } of ${formatBytes(t.bytes)}`,
  );
  return lines;
}

/** The time line: the run and each step. */
function formatDurations(d: Durations): string {
  return `  time: ${d.totalMs.toFixed(1)} ms (inspect ${
    d.inspectMs.toFixed(1)
  }, remap ${d.remapMs.toFixed(1)}, mlock ${d.mlockMs.toFixed(1)}, populate ${
    d.populateMs.toFixed(1)
  }${d.perfMapMs ? `, perf map ${d.perfMapMs.toFixed(1)}` : ""})`;
}

function formatRemap(r: RemapReport): string[] {
  const lines = [
    `  remap (${
      r.pageSize === "4k"
        ? "4 KiB copy"
        : r.backend === "hugetlb"
        ? "2 MiB pages from the hugetlb pool"
        : r.backend === "memfd"
        ? r.share ? "a shared shmem copy" : "a memfd copy (shmem)"
        : "2 MiB pages, anonymous copy"
    }, ${r.align}): ${
      r.regions.filter((x) => x.status === "remapped").length
    } of ${r.regions.length} region(s) in ${r.ms.toFixed(1)} ms`,
  ];
  if (r.share) {
    lines.push(
      `  shared copies in ${r.share.dir}: ${r.share.created} created, ${r.share.reused} reused${
        r.share.rejected.length ? `, ${r.share.rejected.length} not used` : ""
      }${
        r.share.evicted.length
          ? `, ${r.share.evicted.length} unused deleted`
          : ""
      }`,
    );
  }
  if (r.regions.length > 0) lines.push(...formatRegions(r.regions));
  lines.push(
    `  on 2 MiB pages: text ${formatMiB(r.text.huge)} of ${
      formatMiB(r.text.bytes)
    } MiB (${formatPercent(r.text.huge, r.text.bytes)}), rodata ${
      formatMiB(r.rodata.huge)
    } of ${formatMiB(r.rodata.bytes)} MiB (${
      formatPercent(r.rodata.huge, r.rodata.bytes)
    }); copies resident ${formatBytes(r.copyResident)}`,
  );
  if (r.perfMap) lines.push(`  ${describePerfMap(r.perfMap)}`);
  for (const x of r.regions) {
    if (x.error) {
      lines.push(
        `  error: ${basename(x.object)} seg ${x.index}: ${x.error.message}`,
      );
    }
    for (const n of x.notes) {
      lines.push(`  note: ${basename(x.object)} seg ${x.index}: ${n}`);
    }
  }
  lines.push(...formatSkipped(r.skipped));
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  return lines;
}

/** The table of the remapped regions. */
function formatRegions(regions: RemapReport["regions"]): string[] {
  const rows = regions.map((x) => [
    basename(x.object),
    String(x.index),
    x.perms,
    x.kind,
    "0x" + x.start.toString(16),
    formatMiB(x.bytes),
    formatMiB(x.huge),
    x.status === "failed"
      ? `FAILED ${x.error?.step}: ${x.error?.code}`
      : x.status,
  ]);
  const table = formatTable(
    ["object", "seg", "perm", "kind", "at", "MiB", "huge", "status"],
    rows,
    ["left", "right", "left", "left", "left", "right", "right", "left"],
  );
  return table.split("\n").map((l) => "  " + l);
}

/** One line per segment and reason: a data segment has many small VMAs. */
function formatSkipped(skipped: RemapReport["skipped"]): string[] {
  const groups = new Map<string, { n: number; bytes: number }>();
  for (const k of skipped) {
    const key = `${basename(k.object)} seg ${k.index}\u0000${k.reason}`;
    const g = groups.get(key) ?? { n: 0, bytes: 0 };
    g.n++;
    g.bytes += k.end - k.start;
    groups.set(key, g);
  }
  return [...groups].map(([key, g]) => {
    const [where, why] = key.split("\u0000");
    return `  skipped: ${where}: ${g.n} VMA${g.n > 1 ? "s" : ""} (${
      formatBytes(g.bytes)
    }): ${why}`;
  });
}
