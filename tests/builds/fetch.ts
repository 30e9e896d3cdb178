// Older Deno and Bun builds for the build matrix, fetched from the npm
// registry with `npm pack` (the platform packages carry the binaries) and
// kept in a cache outside the repository, so a second run downloads nothing:
// $PAGE_PRIMER_BUILDS_CACHE, else $XDG_CACHE_HOME/page-primer-builds, else
// ~/.cache/page-primer-builds. (Not under node_modules: `npm ci`, which
// scripts/setup.sh runs when the lock or the dependencies change, deletes
// node_modules.)
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { homedir } from "node:os";
import process from "node:process";

/** Where fetched builds are kept. */
export const CACHE: string = process.env.PAGE_PRIMER_BUILDS_CACHE ??
  `${process.env.XDG_CACHE_HOME ?? `${homedir()}/.cache`}/page-primer-builds`;

/** The npm package and the path of the binary inside its tarball. */
export const PACKAGES = {
  deno: { name: "@deno/linux-x64-glibc", bin: "deno" },
  bun: { name: "@oven/bun-linux-x64", bin: "bin/bun" },
} as const;

/** A build ready to run. */
export interface Build {
  runtime: "deno" | "bun";
  version: string;
  /** Absolute path of the binary. */
  exe: string;
  /** True when it came from the cache. */
  cached: boolean;
}

/** What the cache records next to each binary, written last. */
interface Stamp {
  package: string;
  version: string;
  size: number;
}

function sh(argv: string[], cwd: string): string {
  const r = spawnSync(argv[0], argv.slice(1), { cwd, encoding: "utf8" });
  if (r.status !== 0) {
    const why = (r.stderr || r.stdout || r.error?.message ||
      `exit status ${r.status}`).trim().split("\n").filter((l) =>
        l.includes("ERR") || l.includes("rror")
      );
    throw new Error(`${argv.join(" ")} failed: ${why.join(" ").slice(0, 300)}`);
  }
  return r.stdout;
}

/**
 * The build `runtime@version`, from the cache or fetched into it. Throws
 * with npm's message when the registry cannot provide it.
 */
export function fetchBuild(runtime: "deno" | "bun", version: string): Build {
  const pkg = PACKAGES[runtime];
  const dir = `${CACHE}/${runtime}-${version}`;
  const exe = `${dir}/${runtime}`;
  const stampPath = `${dir}/build.json`;
  if (existsSync(stampPath) && existsSync(exe)) {
    const stamp = JSON.parse(readFileSync(stampPath, "utf8")) as Stamp;
    if (stamp.size === statSync(exe).size) {
      return { runtime, version, exe, cached: true };
    }
  }
  mkdirSync(CACHE, { recursive: true });
  const tmp = mkdtempSync(`${CACHE}/.fetch-`);
  try {
    sh([
      "npm",
      "pack",
      `${pkg.name}@${version}`,
      "--loglevel=error",
      "--pack-destination",
      tmp,
    ], tmp);
    const tgz = readdirSync(tmp).find((f) => f.endsWith(".tgz"));
    if (!tgz) {
      throw new Error(`npm pack ${pkg.name}@${version} made no tarball`);
    }
    sh(["tar", "-xzf", tgz, `package/${pkg.bin}`], tmp);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    renameSync(`${tmp}/package/${pkg.bin}`, exe);
    chmodSync(exe, 0o755);
    const stamp: Stamp = {
      package: pkg.name,
      version,
      size: statSync(exe).size,
    };
    writeFileSync(stampPath, JSON.stringify(stamp) + "\n");
    return { runtime, version, exe, cached: false };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
