// The import rules of the source tree (README "Layout"), checked: run
// `node scripts/check_layers.mjs`; tests/layers_test.ts runs the same check.
//
//   src/sys/    imports nothing above it (only src/sys/)
//   src/remap/  imports src/sys/ and src/remap/
//   src/        imports src/sys/, src/remap/ and src/
//   src/tools/  may import all of the above; imported only by cli.ts and src/tools/
//
// and no module reaches itself again through its imports (type-only imports
// count: a cycle of types is still a cycle for a reader).

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const ENTRY_POINTS = ["mod.ts", "auto.ts", "cli.ts"];

/** The layer a repository path belongs to, or undefined outside src/. */
function layerOf(path) {
  if (path.startsWith("src/sys/")) return "sys";
  if (path.startsWith("src/remap/")) return "remap";
  if (path.startsWith("src/tools/")) return "tools";
  if (path.startsWith("src/")) return "core";
  return undefined;
}

/** How a layer is named in messages. */
const LABEL = {
  sys: "src/sys/",
  remap: "src/remap/",
  core: "src/ (top level)",
  tools: "src/tools/",
};

/** Which layers each layer may import. */
const ALLOWED = {
  sys: ["sys"],
  remap: ["sys", "remap"],
  core: ["sys", "remap", "core"],
  tools: ["sys", "remap", "core", "tools"],
};

function sourceFiles(root, dir) {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sourceFiles(root, join(dir, e.name))
      : e.name.endsWith(".ts")
      ? [join(dir, e.name)]
      : []
  );
}

/** Relative imports of a file (static, dynamic and re-exports), as repository paths. */
function importsOf(root, path) {
  const text = readFileSync(join(root, path), "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "") // JSDoc examples are not imports
    .replace(/^\s*\/\/.*$/gm, "");
  const found = new Set();
  const re = /(?:\bfrom|\bimport)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g;
  for (const m of text.matchAll(re)) {
    found.add(normalize(join(dirname(path), m[1])));
  }
  return [...found];
}

/**
 * Checks the layering and looks for cycles.
 *
 * @param {string} [root] the repository (default: this one)
 * @returns {{ files: number, problems: string[] }}
 */
export function checkLayers(root = ROOT) {
  const files = [...ENTRY_POINTS, ...sourceFiles(root, "src")];
  const graph = new Map(files.map((f) => [f, importsOf(root, f)]));
  const problems = [];
  for (const [from, targets] of graph) {
    for (const to of targets) problems.push(...ruleBreaks(from, to));
  }
  problems.push(...cyclesIn(graph).map((c) => `cycle: ${c.join(" -> ")}`));
  return { files: files.length, problems };
}

function ruleBreaks(from, to) {
  const a = layerOf(from), b = layerOf(to);
  if (b === "tools" && a !== "tools" && from !== "cli.ts") {
    return [`${from} imports ${to}: src/tools/ is for cli.ts only`];
  }
  if (a && b && !ALLOWED[a].includes(b)) {
    return [`${from} imports ${to}: ${LABEL[a]} may not import ${LABEL[b]}`];
  }
  return [];
}

/** Every elementary cycle found by a depth-first walk, each reported once. */
function cyclesIn(graph) {
  const cycles = new Map();
  const state = new Map(); // undefined: new, 1: on the stack, 2: done
  const stack = [];
  const visit = (node) => {
    state.set(node, 1);
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 1) {
        const cycle = stack.slice(stack.indexOf(next)).concat(next);
        cycles.set([...cycle].sort().join(","), cycle);
      } else if (!state.has(next) && graph.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 2);
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return [...cycles.values()];
}

if (
  process.argv[1] &&
  relative(process.argv[1], fileURLToPath(import.meta.url)) === ""
) {
  const { files, problems } = checkLayers();
  for (const p of problems) console.error(p);
  console.log(`${files} modules, ${problems.length} layering problems`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}
