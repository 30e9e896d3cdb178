// Shared mode against private copies: N processes of one runtime remap
// their executable, then the kernel's PSS of the copies is summed over all
// of them (/proc/<pid>/smaps). Modes: private memfd copies, shared copies
// under ASLR, shared copies with ASLR off (setarch -R: one load address).
// Usage: node bench/share/run.mjs [--n 4] [--out bench/results]
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = fileURLToPath(new URL("../..", import.meta.url));
const { values } = parseArgs({
  options: {
    n: { type: "string", default: "4" },
    out: { type: "string", default: `${root}bench/results` },
  },
});
const n = Number(values.n);
const dir = `/dev/shm/page-primer-bench-${process.pid}`;
const exe = {
  deno: `${root}node_modules/.bin/deno`,
  bun: `${root}node_modules/.bin/bun`,
};

function start(rt, options, noAslr) {
  const script = `${root}bench/share/child.ts`;
  const argv = rt === "deno"
    ? [exe.deno, "run", "--allow-ffi", script, JSON.stringify(options)]
    : [exe.bun, script, JSON.stringify(options)];
  const cmd = noAslr ? ["setarch", "-R", ...argv] : argv;
  const child = spawn(cmd[0], cmd.slice(1), {
    stdio: ["pipe", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /^READY (.*)$/m.exec(out);
      if (m) resolve({ child, report: JSON.parse(m[1]) });
    });
    child.on(
      "exit",
      (code) => reject(new Error(`child exited ${code}: ${out}`)),
    );
  });
}

// Sum of Rss/Pss (kB) of the VMAs inside the remapped ranges, and their huge part.
function copyMemory(pid, regions) {
  const text = readFileSync(`/proc/${pid}/smaps`, "utf8");
  let rss = 0, pss = 0, huge = 0, inRange = false;
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (m) {
      const s = parseInt(m[1], 16), e = parseInt(m[2], 16);
      inRange = regions.some((r) => s < r.end && r.start < e);
      continue;
    }
    if (!inRange) continue;
    const f = /^(\w+):\s+(\d+) kB/.exec(line);
    if (!f) continue;
    const v = Number(f[2]);
    if (f[1] === "Rss") rss += v;
    else if (f[1] === "Pss") pss += v;
    else if (f[1] === "AnonHugePages" || f[1] === "ShmemPmdMapped") huge += v;
  }
  return { rss, pss, huge };
}

const modes = [
  {
    name: "private memfd copies",
    options: { backend: "memfd" },
    noAslr: false,
  },
  { name: "shared, ASLR on", options: { share: { dir } }, noAslr: false },
  { name: "shared, setarch -R", options: { share: { dir } }, noAslr: true },
];
const rows = [];
for (const rt of ["deno", "bun"]) {
  for (const mode of modes) {
    rmSync(dir, { recursive: true, force: true });
    const kids = [];
    for (let i = 0; i < n; i++) {
      kids.push(await start(rt, mode.options, mode.noAslr));
    }
    const mem = kids.map((k) => copyMemory(k.child.pid, k.report.regions));
    const created = kids.reduce(
      (s, k) => s + (k.report.share?.created ?? 0),
      0,
    );
    const reused = kids.reduce((s, k) => s + (k.report.share?.reused ?? 0), 0);
    const row = {
      runtime: rt,
      mode: mode.name,
      processes: n,
      oneCopyMiB: mem[0].rss / 1024,
      totalPssMiB: mem.reduce((s, m) => s + m.pss, 0) / 1024,
      hugeMiBPerProcess: mem[0].huge / 1024,
      copiesCreated: created,
      copiesReused: reused,
    };
    rows.push(row);
    console.error(JSON.stringify(row));
    for (const k of kids) k.child.stdin.end();
  }
}
rmSync(dir, { recursive: true, force: true });
const day = new Date().toISOString().slice(0, 10);
mkdirSync(values.out, { recursive: true });
writeFileSync(
  `${values.out}/share-${day}.json`,
  JSON.stringify(rows, null, 2) + "\n",
);
const md = [
  `# Shared mode: total PSS of the copies over ${n} processes (${day})`,
  "",
  "Command: `node bench/share/run.mjs`. PSS and huge pages from /proc/<pid>/smaps of each process,",
  "summed over the VMAs of the remapped ranges. One copy = the Rss of those VMAs in one process.",
  "",
  "| runtime | mode | one copy (MiB) | total PSS (MiB) | copies' worth | on 2 MiB pages per process (MiB) | copies created / reused |",
  "|---|---|---:|---:|---:|---:|---|",
  ...rows.map((r) =>
    `| ${r.runtime} | ${r.mode} | ${r.oneCopyMiB.toFixed(1)} | ${
      r.totalPssMiB.toFixed(1)
    } | ${(r.totalPssMiB / r.oneCopyMiB).toFixed(2)} | ${
      r.hugeMiBPerProcess.toFixed(1)
    } | ${r.copiesCreated} / ${r.copiesReused} |`
  ),
  "",
].join("\n");
writeFileSync(`${values.out}/share-${day}.md`, md);
console.log(md);
