// The npm package as a user gets it: `npm pack` of the working tree (its
// prepack script compiles dist/ with tsc), installed into a fresh Bun
// project with `bun add <tarball>` and a fresh Deno project with npm, then
// the README's snippets run as written: the import, the bunfig preload,
// `bunx page-primer doctor`, and `tsc --noEmit` with the strict settings of
// `bun init`. Also the CLI's exits that users meet first: an unknown option
// and a closed pipe.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  cpSync,
  existsSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { ROOT, run, runtimePath, shellQuote } from "./helpers.ts";

const TSC = join(ROOT, "node_modules", ".bin", "tsc");
const NO_TSC = existsSync(TSC)
  ? false
  : "typescript is not installed (run `npm test`, which installs the devDependencies)";

/** What the tarball must hold, and nothing from outside these. */
const EXPECTED = [
  "package.json",
  "README.md",
  "LICENSE",
  "bin/page-primer.js",
  "dist/mod.js",
  "dist/mod.d.ts",
  "dist/auto.js",
  "dist/auto.d.ts",
  "dist/cli.js",
  "dist/cli.d.ts",
  "dist/src/sys/elf.js",
  "dist/src/sys/maps.js",
  "dist/src/sys/trampoline_so.js",
];

/** PATH with the repository's bun, deno and node first (`bun`, as the bin's `#!/usr/bin/env bun` wants). */
function pathWithRuntimes(): string {
  return [
    join(ROOT, "node_modules", ".bin"),
    dirname(runtimePath("bun")),
    dirname(runtimePath("deno")),
    dirname(process.execPath),
    process.env.PATH ?? "",
  ].join(":");
}

let packed: { dir: string; tarball: string; files: string[] } | undefined;

/** Packs the working tree once per test file, in a scratch copy. */
async function pack(): Promise<
  { dir: string; tarball: string; files: string[] }
> {
  if (packed) return packed;
  const dir = mkdtempSync(join(tmpdir(), "page-primer-pack-"));
  const src = join(dir, "src-copy");
  for (
    const f of [
      "mod.ts",
      "auto.ts",
      "cli.ts",
      "src",
      "bin",
      "package.json",
      "tsconfig.json",
      "README.md",
      "LICENSE",
    ]
  ) {
    cpSync(join(ROOT, f), join(src, f), { recursive: true });
  }
  // tsc and bun-types come from the repository's devDependencies.
  symlinkSync(join(ROOT, "node_modules"), join(src, "node_modules"));
  const r = await run(
    ["npm", "pack", "--json", "--pack-destination", dir],
    { cwd: src, env: { PATH: pathWithRuntimes() }, timeoutMs: 180_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout.slice(r.stdout.indexOf("[")))[0];
  packed = {
    dir,
    tarball: join(dir, info.filename),
    files: info.files.map((f: { path: string }) => f.path),
  };
  return packed;
}

/** A fresh project with the tarball added by `bun add`. */
async function bunProject(tarball: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "page-primer-bun-"));
  writeFileSync(
    join(dir, "package.json"),
    JSON.stringify({ name: "bun-user", type: "module", private: true }),
  );
  const r = await run([runtimePath("bun"), "add", tarball], {
    cwd: dir,
    env: { PATH: pathWithRuntimes() },
    timeoutMs: 180_000,
  });
  assert.equal(r.code, 0, r.stderr);
  return dir;
}

test(
  "npm pack: dist/ (JS and .d.ts), the bin, README and LICENSE; no sources, tests or benches",
  {
    skip: NO_TSC,
  },
  async () => {
    const { files } = await pack();
    for (const f of EXPECTED) assert.ok(files.includes(f), `missing ${f}`);
    const stray = files.filter((f) =>
      !/^(dist\/.*\.(js|d\.ts)|bin\/page-primer\.js|package\.json|README\.md|LICENSE)$/
        .test(f)
    );
    assert.deepEqual(stray, []);
  },
);

test(
  "bun: a fresh project adds the tarball, imports page-primer, preloads page-primer/auto, runs bunx page-primer, and tsc --noEmit passes",
  {
    skip: NO_TSC,
  },
  async () => {
    const { tarball } = await pack();
    const dir = await bunProject(tarball);
    const env = {
      PATH: pathWithRuntimes(),
      PAGE_PRIMER: "",
      PAGE_PRIMER_LOG: "",
    };
    try {
      // The README's first snippet.
      writeFileSync(
        join(dir, "index.ts"),
        `import { prime } from "page-primer";\n` +
          `const out = prime().remap(true).run();\n` +
          `out.log();\n` +
          `console.log(JSON.stringify({ ok: out.ok, requested: out.requested }));\n`,
      );
      const r = await run([runtimePath("bun"), "index.ts"], {
        cwd: dir,
        env,
        timeoutMs: 120_000,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /^page-primer: bun [^,]+, pid \d+, .*: remap /m);
      assert.deepEqual(JSON.parse(r.stdout).requested, ["remap"]);

      // The bunfig preload, with the sub-path exports.
      writeFileSync(
        join(dir, "bunfig.toml"),
        `preload = ["page-primer/auto"]\n`,
      );
      writeFileSync(
        join(dir, "main.ts"),
        `import { outcome } from "page-primer/auto";\n` +
          `import { main } from "page-primer/cli";\n` +
          `import { parseElfHeader } from "page-primer/elf";\n` +
          `import { parseSmaps } from "page-primer/maps";\n` +
          `console.log("MAIN", outcome?.requested.join(","), typeof main, typeof parseElfHeader, typeof parseSmaps);\n`,
      );
      // The preload as a flag, on the command line.
      const flag = await run(
        [runtimePath("bun"), "--preload", "page-primer/auto", "index.ts"],
        {
          cwd: dir,
          env: { ...env, PAGE_PRIMER: "populate" },
          timeoutMs: 120_000,
        },
      );
      assert.equal(flag.code, 0, flag.stderr);
      assert.match(flag.stderr, /^page-primer: populate ok, resident /);
      const p = await run([runtimePath("bun"), "main.ts"], {
        cwd: dir,
        env: { ...env, PAGE_PRIMER: "populate" },
        timeoutMs: 120_000,
      });
      assert.equal(p.code, 0, p.stderr);
      assert.match(p.stdout, /^MAIN populate function function function$/m);
      // Quiet by default: one line.
      assert.equal(p.stderr.trimEnd().split("\n").length, 1, p.stderr);
      assert.match(p.stderr, /^page-primer: populate ok, resident /);

      // The bin (the bunfig preload would prime it too).
      rmSync(join(dir, "bunfig.toml"));
      const d = await run(
        [
          runtimePath("bun"),
          "x",
          "page-primer",
          "doctor",
          "--json",
        ],
        { cwd: dir, env, timeoutMs: 120_000 },
      );
      assert.ok(d.code === 0 || d.code === 1, d.stderr);
      assert.equal(typeof JSON.parse(d.stdout).ok, "boolean");
      const u = await run(
        [
          runtimePath("bun"),
          "x",
          "page-primer",
          "doctor",
          "--bogus",
        ],
        { cwd: dir, env, timeoutMs: 120_000 },
      );
      assert.equal(u.code, 2);
      assert.equal(
        u.stderr,
        `page-primer doctor: Unknown option '--bogus'; see "doctor --help"\n`,
      );

      // The bin into a pipe that closes: exit 0, nothing on stderr.
      const watch = shellQuote([
        runtimePath("bun"),
        "x",
        "page-primer",
        "inspect",
        "--watch",
        "--interval",
        "100",
      ]);
      const h = await run(
        ["/bin/sh", "-c", `{ ${watch}; echo "rc=$?" >&2; } | head -n 1`],
        { cwd: dir, env, timeoutMs: 60_000 },
      );
      assert.equal(h.stderr.trim(), "rc=0", h.stderr);

      // tsc with bun init's strict settings and bun-types: the package's
      // declarations are checked too (skipLibCheck off).
      writeFileSync(
        join(dir, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            lib: ["ESNext"],
            target: "ESNext",
            module: "Preserve",
            moduleDetection: "force",
            moduleResolution: "bundler",
            allowImportingTsExtensions: true,
            verbatimModuleSyntax: true,
            noEmit: true,
            strict: true,
            skipLibCheck: false,
            noFallthroughCasesInSwitch: true,
            noUncheckedIndexedAccess: true,
            noImplicitOverride: true,
            types: ["bun-types"],
            typeRoots: [join(ROOT, "node_modules")],
          },
          include: ["index.ts", "main.ts"],
        }),
      );
      const t = await run([TSC, "--noEmit", "-p", "."], {
        cwd: dir,
        env,
        timeoutMs: 120_000,
      });
      assert.equal(t.code, 0, t.stdout + t.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  "deno: a fresh project installs the tarball with npm and imports page-primer; the cli runs as npm:page-primer/cli",
  {
    skip: NO_TSC,
  },
  async () => {
    const { tarball } = await pack();
    const dir = mkdtempSync(join(tmpdir(), "page-primer-deno-"));
    const env = { PATH: pathWithRuntimes(), PAGE_PRIMER: "" };
    try {
      writeFileSync(
        join(dir, "package.json"),
        JSON.stringify({
          name: "deno-user",
          type: "module",
          private: true,
          dependencies: { "page-primer": `file:${tarball}` },
        }),
      );
      const i = await run(
        ["npm", "install", "--offline", "--no-audit", "--no-fund"],
        { cwd: dir, env, timeoutMs: 180_000 },
      );
      assert.equal(i.code, 0, i.stderr);
      writeFileSync(
        join(dir, "main.ts"),
        `import { prime } from "page-primer";\n` +
          `const out = prime().populate(true).run();\n` +
          `out.log({ format: "line" });\n`,
      );
      const r = await run(
        [runtimePath("deno"), "run", "--allow-ffi", "main.ts"],
        { cwd: dir, env, timeoutMs: 120_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /^page-primer: populate ok, resident /);
      // The README's preload line for Deno with the npm package.
      writeFileSync(join(dir, "x.ts"), `console.log("MAIN");\n`);
      const pre = await run(
        [
          runtimePath("deno"),
          "run",
          "--allow-ffi",
          "--preload",
          "./node_modules/page-primer/dist/auto.js",
          "x.ts",
        ],
        {
          cwd: dir,
          env: { ...env, PAGE_PRIMER: "populate" },
          timeoutMs: 120_000,
        },
      );
      assert.equal(pre.code, 0, pre.stderr);
      assert.equal(pre.stdout, "MAIN\n");
      assert.match(pre.stderr, /^page-primer: populate ok, resident [^\n]*\n$/);
      const d = await run(
        [
          runtimePath("deno"),
          "run",
          "--allow-ffi",
          "npm:page-primer/cli",
          "doctor",
          "--json",
        ],
        { cwd: dir, env, timeoutMs: 120_000 },
      );
      assert.ok(d.code === 0 || d.code === 1, d.stderr);
      assert.equal(typeof JSON.parse(d.stdout).ok, "boolean");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test("cli: --allow-ffi alone runs doctor; a closed pipe ends with exit 0 and nothing on stderr, on both runtimes", async () => {
  const d = await run(
    [runtimePath("deno"), "run", "--allow-ffi", `${ROOT}cli.ts`, "doctor"],
    { timeoutMs: 120_000 },
  );
  assert.ok(d.code === 0 || d.code === 1, d.stderr);
  assert.match(d.stdout, /^page-primer doctor: deno /);
  for (
    const argv of [
      [runtimePath("deno"), "run", "--allow-ffi", `${ROOT}cli.ts`],
      [runtimePath("bun"), `${ROOT}cli.ts`],
    ]
  ) {
    const cmd = shellQuote([
      ...argv,
      "inspect",
      "--all",
      "--watch",
      "--interval",
      "100",
    ]);
    // The exit status of the CLI, not of head, goes to stderr.
    const r = await run(
      ["/bin/sh", "-c", `{ ${cmd}; echo "rc=$?" >&2; } | head -n 1`],
      { timeoutMs: 60_000 },
    );
    assert.equal(r.code, 0);
    assert.equal(r.stdout.split("\n").length, 2, r.stdout);
    assert.equal(r.stderr.trim(), "rc=0", r.stderr);
  }
});

test("cleanup: the scratch directory of the pack is removed", {
  skip: NO_TSC,
}, async () => {
  const { dir } = await pack();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(existsSync(dir), false);
});
