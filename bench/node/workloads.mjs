// The same JavaScript workloads under node, deno and bun: plain JS with
// `node:` built-ins only. Runs on import (top-level) and prints one JSON line
// on stdout: time per op of each workload after its own warm-up, and how much
// of the runtime executable's code was on 2 MiB pages (from /proc/self/smaps,
// read here in the child).
//
//   node workloads.mjs
//   node --use-largepages=on workloads.mjs
//   deno run -A primed.ts   # imports this after prime()
//   bun primed.ts
//
// Settings come from the environment (so the wrappers pass them through):
// BENCH_WARMUP_MS (per workload, default 150), BENCH_WINDOW_MS (default 100),
// BENCH_WINDOWS (default 5; the time per op is the median over windows),
// BENCH_ONLY (comma-separated workload names).
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import fs from "node:fs";
import process from "node:process";
import { gunzipSync, gzipSync } from "node:zlib";

const env = (name, def) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : def;
};
const WARMUP_MS = env("BENCH_WARMUP_MS", 150);
const WINDOW_MS = env("BENCH_WINDOW_MS", 100);
const WINDOWS = Math.round(env("BENCH_WINDOWS", 5));
const ONLY = (process.env.BENCH_ONLY ?? "").split(",").filter(Boolean);

// Deterministic inputs ------------------------------------------------------

let seed = 0x9e3779b9;
function rand() {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 4294967296;
}
const WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed " +
  "do eiusmod tempor incididunt ut labore et dolore magna aliqua grüße " +
  "naïve café 東京 данные").split(" ");
const word = () => WORDS[Math.floor(rand() * WORDS.length)];
const sentence = (n) => Array.from({ length: n }, word).join(" ");

function makeRecords(count) {
  const out = [];
  for (let i = 0; i < count; i++) {
    out.push({
      id: i,
      uuid: Math.floor(rand() * 2 ** 52).toString(16),
      name: `${word()} ${word()}`,
      email: `${word()}.${i}@example.com`,
      score: Math.round(rand() * 1e6) / 1e3,
      active: rand() > 0.5,
      tags: [word(), word(), word()],
      address: { city: word(), zip: String(10000 + i), geo: [rand(), rand()] },
      note: sentence(6),
    });
  }
  return out;
}

// ~1 MB of JSON.
const records = makeRecords(3800);
const jsonText = JSON.stringify(records);

const urls = [];
for (let i = 0; i < 500; i++) {
  urls.push(
    `https://user:pw@sub${i % 7}.example.org:${8000 + (i % 100)}/api/v${
      i % 3
    }/items/${i}/${encodeURIComponent(word())}?q=${
      encodeURIComponent(sentence(2))
    }&page=${i}&sort=${word()}#frag-${i}`,
  );
}

const textSrc = sentence(9000); // ~64 KB, with non-ASCII
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const logLines = [];
for (let i = 0; i < 1500; i++) {
  logLines.push(
    `2026-11-${String(1 + (i % 28)).padStart(2, "0")}T12:${
      String(i % 60).padStart(2, "0")
    }:00Z ${["INFO", "WARN", "ERROR", "DEBUG"][i % 4]} [req-${
      (i * 7919).toString(36)
    }] ${sentence(5)} ip=10.${i % 255}.${(i * 3) % 255}.${(i * 7) % 255} ms=${
      Math.floor(rand() * 900)
    } user=${word()}@example.com`,
  );
}
const logText = logLines.join("\n"); // ~150 KB
const reLine =
  /^(\S+) (INFO|WARN|ERROR|DEBUG) \[([\w-]+)\] (.*?) ip=(\d+\.\d+\.\d+\.\d+) ms=(\d+) user=(\S+)$/gm;
const reEmail = /[\w.+-]+@[\w-]+\.[\w.]+/g;

const hashInput = Buffer.alloc(1 << 20);
for (let i = 0; i < hashInput.length; i++) hashInput[i] = (i * 31 + 7) & 0xff;

const zInput = Buffer.from(jsonText.slice(0, 256 * 1024));

// Workloads: each `op` returns something so the work cannot be elided --------

let sink = 0;
const WORKLOADS = [
  {
    name: "json-parse",
    unit: `JSON.parse of ${(jsonText.length / 1e6).toFixed(2)} MB`,
    op: () => JSON.parse(jsonText).length,
  },
  {
    name: "json-stringify",
    unit: `JSON.stringify to ${(jsonText.length / 1e6).toFixed(2)} MB`,
    op: () => JSON.stringify(records).length,
  },
  {
    name: "url",
    unit: `${urls.length} x new URL() + searchParams + href`,
    op: () => {
      let n = 0;
      for (const u of urls) {
        const p = new URL(u);
        n += p.searchParams.get("page").length + p.pathname.length +
          p.href.length + p.host.length;
      }
      return n;
    },
  },
  {
    name: "text-codec",
    unit: `TextEncoder.encode + TextDecoder.decode of ${
      (encoder.encode(textSrc).length / 1024).toFixed(0)
    } KiB`,
    op: () => decoder.decode(encoder.encode(textSrc)).length,
  },
  {
    name: "regexp",
    unit: `line regex + email regex + replace over ${
      (logText.length / 1024).toFixed(0)
    } KiB`,
    op: () => {
      let n = 0;
      for (const m of logText.matchAll(reLine)) n += m[6].length;
      n += (logText.match(reEmail) ?? []).length;
      n += logText.replace(/\b(ERROR|WARN)\b/g, (s) => s.toLowerCase()).length;
      return n;
    },
  },
  {
    name: "sha256",
    unit: "createHash('sha256') of 1 MiB + hex digest",
    op: () => createHash("sha256").update(hashInput).digest("hex").length,
  },
  {
    name: "gzip",
    unit: `gzipSync + gunzipSync of ${
      (zInput.length / 1024).toFixed(0)
    } KiB JSON`,
    op: () => gunzipSync(gzipSync(zInput)).length,
  },
];

function runFor(op, ms) {
  let ops = 0;
  const t0 = performance.now();
  let t = t0;
  do {
    sink ^= op();
    ops++;
    t = performance.now();
  } while (t - t0 < ms);
  return { ops, ms: t - t0 };
}

function measure(w) {
  runFor(w.op, WARMUP_MS);
  const perOp = [];
  let ops = 0;
  for (let i = 0; i < WINDOWS; i++) {
    const r = runFor(w.op, WINDOW_MS);
    perOp.push((r.ms * 1e6) / r.ops);
    ops += r.ops;
  }
  perOp.sort((a, b) => a - b);
  const mid = perOp.length >> 1;
  const med = perOp.length % 2 ? perOp[mid] : (perOp[mid - 1] + perOp[mid]) / 2;
  return { nsPerOp: med, windows: perOp, ops, unit: w.unit };
}

// Huge-page coverage of the executable's code, from /proc/self/smaps --------

function parseSmaps(text) {
  const vmas = [];
  let cur = null;
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (m) {
      cur = {
        start: parseInt(m[1], 16),
        end: parseInt(m[2], 16),
        perms: m[3],
        path: m[4],
        huge: 0,
        rss: 0,
      };
      vmas.push(cur);
      continue;
    }
    const f = /^(\w+):\s+(\d+) kB/.exec(line);
    if (f && cur) {
      const kb = Number(f[2]) * 1024;
      if (f[1] === "Rss") cur.rss = kb;
      if (
        f[1] === "AnonHugePages" || f[1] === "FilePmdMapped" ||
        f[1] === "ShmemPmdMapped"
      ) cur.huge += kb;
    }
  }
  return vmas.sort((a, b) => a.start - b.start);
}

/**
 * The executable's image is the run of mappings from its lowest mapping of
 * the file up to its last mapping of the file within 1 GiB, extended backward
 * over adjacent anonymous mappings (copies that replaced its first segments).
 * Its code is every r-x mapping in that range, file-backed or an anonymous
 * copy (node --use-largepages, page-primer's remap). r-x mappings of the file
 * elsewhere (Deno maps its embedded V8 builtins a second time) are `other`.
 */
function textCoverage() {
  let text;
  let exe;
  try {
    text = fs.readFileSync("/proc/self/smaps", "utf8");
    exe = fs.readlinkSync("/proc/self/exe");
  } catch (e) {
    return { error: String(e?.message ?? e) };
  }
  const vmas = parseSmaps(text);
  const isExe = (v) => v.path === exe || v.path === `${exe} (deleted)`;
  const isAnon = (v) => v.path === "" || v.path.startsWith("[anon:");
  let first = vmas.findIndex(isExe);
  if (first < 0) return { error: `no mapping of ${exe} in smaps` };
  const limit = vmas[first].start + 2 ** 30;
  let last = first;
  for (let i = first; i < vmas.length && vmas[i].start < limit; i++) {
    if (isExe(vmas[i])) last = i;
  }
  while (
    first > 0 && vmas[first - 1].end === vmas[first].start &&
    isAnon(vmas[first - 1])
  ) first--;
  const t = { bytes: 0, huge: 0, rss: 0 };
  const other = { bytes: 0, huge: 0 };
  for (let i = 0; i < vmas.length; i++) {
    const v = vmas[i];
    if (v.perms[2] !== "x") continue;
    if (i >= first && i <= last) {
      t.bytes += v.end - v.start;
      t.huge += v.huge;
      t.rss += v.rss;
    } else if (isExe(v)) {
      other.bytes += v.end - v.start;
      other.huge += v.huge;
    }
  }
  return {
    exe,
    imageStart: vmas[first].start,
    imageEnd: vmas[last].end,
    textBytes: t.bytes,
    textHuge: t.huge,
    textRss: t.rss,
    fraction: t.bytes ? t.huge / t.bytes : 0,
    otherExecBytes: other.bytes,
    otherExecHuge: other.huge,
  };
}

function runtimeName() {
  if (typeof globalThis.Bun !== "undefined") return "bun";
  if (typeof globalThis.Deno !== "undefined") return "deno";
  return "node";
}

const results = {};
const tStart = performance.now();
for (const w of WORKLOADS) {
  if (ONLY.length && !ONLY.includes(w.name)) continue;
  results[w.name] = measure(w);
}
const report = {
  runtime: runtimeName(),
  version: process.versions.bun ?? process.versions.deno ?? process.version,
  pid: process.pid,
  execArgv: process.execArgv,
  settings: { warmupMs: WARMUP_MS, windowMs: WINDOW_MS, windows: WINDOWS },
  workloadsMs: performance.now() - tStart,
  workloads: results,
  coverage: textCoverage(),
  primer: globalThis.__pagePrimerBench ?? null,
  sink,
};
process.stdout.write(JSON.stringify(report) + "\n");
