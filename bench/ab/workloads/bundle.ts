/**
 * The `bundle` workload, Bun only: `Bun.build` (resolve, parse, link,
 * tree-shake, minify) of a generated TypeScript project written to a
 * temporary directory at set-up. Deno 2 has no bundler or TypeScript emit
 * in its runtime API (`deno bundle` is a command, `Deno.emit` is gone), so
 * this workload is not offered there.
 *
 * @module
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Workload } from "../workloads.ts";
import { fail } from "./fail.ts";

/** Modules in the generated project, besides `main.ts` and `util.ts`. */
const MODULES = 150;

/** The part of `Bun.build` this workload uses. */
interface BunBuild {
  build(options: {
    entrypoints: string[];
    format: "cjs";
    minify: boolean;
    target: "node";
  }): Promise<{
    success: boolean;
    logs: unknown[];
    outputs: { text(): Promise<string> }[];
  }>;
}

/**
 * The generated project's files (name to TypeScript source, `main.ts` the
 * entry point), and what its `main()` returns.
 *
 * @example
 * ```ts
 * import { bundleProject } from "./bundle.ts";
 * const { files } = bundleProject();
 * console.log(Object.keys(files).length); // 152
 * ```
 */
export function bundleProject(): {
  files: Record<string, string>;
  expected: number;
} {
  const files: Record<string, string> = {
    "util.ts":
      "/** Adds one. */\nexport const helper = (n: number): number => n + 1;\n",
  };
  const imports: string[] = [];
  const calls: string[] = [];
  let expected = 0;
  for (let i = 0; i < MODULES; i++) {
    const k = i % 13 + 1;
    files[`m${i}.ts`] = `import { helper } from "./util";
export interface Item${i} { id: number; label: string; tags?: readonly string[] }
export enum E${i} { A = ${i}, B }
/** Computes item ${i}. */
export function calc${i}(x: number): number {
  const it: Item${i} = { id: x * ${k} + E${i}.B, label: \`m${i}\` };
  return helper(it.id) + it.label.length;
}
export class K${i}<T extends object> {
  constructor(private readonly v: T) {}
  get(): T { return this.v; }
}
/** Not used by main: tree-shaken. */
export function unused${i}(s: string): string { return s.repeat(${k}); }
`;
    imports.push(`import { calc${i} } from "./m${i}";`);
    calls.push(`  s += calc${i}(${i});`);
    expected += i * k + (i + 1) + 1 + 1 + String(i).length;
  }
  files["main.ts"] = `${imports.join("\n")}
export function main(): number {
  let s = 0;
${calls.join("\n")}
  return s;
}
`;
  return { files, expected };
}

/** Runs a CommonJS bundle and returns its exported `main()`. */
function runBundle(code: string): unknown {
  const module = { exports: {} as { main?: () => number } };
  new Function("module", "exports", code)(module, module.exports);
  return module.exports.main?.();
}

export const bundle: Workload = {
  name: "bundle",
  description:
    `Bun.build (format cjs, minify, target node) of a generated ${MODULES}-module TypeScript project (Bun only)`,
  async setup() {
    const bun = (globalThis as { Bun?: BunBuild }).Bun;
    if (bun === undefined) throw new Error("bundle: Bun only");
    const dir = mkdtempSync(join(tmpdir(), "page-primer-bundle-"));
    const { files, expected } = bundleProject();
    for (const [name, text] of Object.entries(files)) {
      writeFileSync(join(dir, name), text);
    }
    const build = async () => {
      const r = await bun.build({
        entrypoints: [join(dir, "main.ts")],
        format: "cjs",
        minify: true,
        target: "node",
      });
      if (!r.success || r.outputs.length !== 1) {
        fail("bundle", `build failed: ${JSON.stringify(r.logs)}`);
      }
      return await r.outputs[0].text();
    };
    let ref: string;
    try {
      ref = await build();
      const got = runBundle(ref);
      if (got !== expected) fail("bundle", `main() = ${got}, want ${expected}`);
      if (ref.includes(".repeat(")) fail("bundle", "unused code kept");
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    return {
      async run(ops) {
        for (let o = 0; o < ops; o++) {
          if (await build() !== ref) fail("bundle", "output differs");
        }
      },
      close: () => rmSync(dir, { recursive: true, force: true }),
    };
  },
};
