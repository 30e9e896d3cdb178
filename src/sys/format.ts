/**
 * Pure text formatting: byte sizes, addresses and plain-text tables.
 *
 * @module
 */

/**
 * Formats a byte count for people: `"12.3 MiB"`, `"512 KiB"`, `"100 B"`.
 *
 * @example
 * ```ts
 * import { formatBytes } from "./format.ts";
 * console.log(formatBytes(3 * 1024 * 1024)); // "3.0 MiB"
 * ```
 */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  if (abs >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (abs >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (abs >= 1024) return `${(n / 1024).toFixed(0)} KiB`;
  return `${n} B`;
}

/**
 * Formats a byte count in MiB with one decimal, for table columns.
 *
 * @example
 * ```ts
 * import { formatMiB } from "./format.ts";
 * console.log(formatMiB(1572864)); // "1.5"
 * ```
 */
export function formatMiB(n: number): string {
  return (n / 1024 ** 2).toFixed(1);
}

/**
 * Formats a percentage of `part` in `whole` with one decimal; `"-"` when
 * `whole` is 0.
 *
 * @example
 * ```ts
 * import { formatPercent } from "./format.ts";
 * console.log(formatPercent(1, 3)); // "33.3%"
 * ```
 */
export function formatPercent(part: number, whole: number): string {
  if (whole === 0) return "-";
  return `${(100 * part / whole).toFixed(1)}%`;
}

/** Column alignment for {@linkcode formatTable}. */
export type Align = "left" | "right";

/**
 * Renders rows as a plain-text table with a header rule. Columns whose
 * `align` is `"right"` are right-aligned (numbers).
 *
 * @example
 * ```ts
 * import { formatTable } from "./format.ts";
 * console.log(formatTable(["name", "MiB"], [["text", "61.0"]], ["left", "right"]));
 * ```
 */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  align: readonly Align[] = [],
): string {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length))
  );
  const line = (cells: readonly string[]) =>
    cells.map((c, i) =>
      align[i] === "right" ? c.padStart(widths[i]) : c.padEnd(widths[i])
    ).join("  ").trimEnd();
  return [
    line(header),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...rows.map(line),
  ].join("\n");
}

/**
 * The last path component, for compact tables.
 *
 * @example
 * ```ts
 * import { basename } from "./format.ts";
 * console.log(basename("/usr/bin/deno")); // "deno"
 * ```
 */
export function basename(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? path : path.slice(i + 1);
}
