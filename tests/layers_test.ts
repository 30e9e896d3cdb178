// The import rules of src/ (scripts/check_layers.mjs): the repository keeps
// them, and the checker finds a break and a cycle in a small tree made here.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
// @ts-types="./layers_check.d.ts"
import { checkLayers } from "../scripts/check_layers.mjs";

test("src/ keeps its layers and has no import cycle", () => {
  const { files, problems } = checkLayers();
  assert.ok(files > 20, `only ${files} modules found`);
  assert.deepEqual(problems, []);
});

test("the checker reports a layer break and a cycle", () => {
  const root = mkdtempSync(join(tmpdir(), "page-primer-layers-"));
  try {
    const write = (path: string, text: string) => {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    };
    write("mod.ts", 'export * from "./src/outcome.ts";\n');
    write("auto.ts", "");
    write("cli.ts", 'import "./src/tools/doctor.ts";\n');
    write("src/outcome.ts", 'import type { R } from "./remap/execute.ts";\n');
    write("src/remap/execute.ts", 'import type { O } from "../outcome.ts";\n');
    write("src/sys/maps.ts", 'import { d } from "../tools/doctor.ts";\n');
    write("src/tools/doctor.ts", "export const d = 1;\n");
    const { problems } = checkLayers(root);
    assert.ok(
      problems.some((p) =>
        p.includes("src/remap/ may not import src/ (top level)")
      ),
      problems.join("\n"),
    );
    assert.ok(
      problems.some((p) => p.includes("src/tools/ is for cli.ts only")),
      problems.join("\n"),
    );
    assert.ok(
      problems.some((p) =>
        p.startsWith("cycle:") && p.includes("src/outcome.ts") &&
        p.includes("src/remap/execute.ts")
      ),
      problems.join("\n"),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
