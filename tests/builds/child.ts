// The child of the build matrix: runs under an older Deno or Bun build,
// imports the library, and obeys one command per stdin line, printing one
// line per command so that the parent can read /proc/<pid>/smaps and
// /proc/<pid>/mem while it waits:
//
//   remap <json options>  -> "DONE remap <outcome json>"
//   mlock                 -> "DONE mlock <outcome json>"
//   remapmlock <json>     -> "DONE remapmlock <outcome json>" (both at once)
//   restore               -> "DONE restore <restore report json>"
//   work                  -> "DONE work <checksum>"
//   exit                  -> exits with status 0
//
// A command that throws prints "FAIL <command> <message>" instead. The
// library is imported from $PAGE_PRIMER_LIB (a mod.ts path) when set, so the
// parent can test another revision than the working tree.
import process from "node:process";
import type * as Lib from "../../mod.ts";

const libPath = process.env.PAGE_PRIMER_LIB ??
  new URL("../../mod.ts", import.meta.url).pathname;
const lib = await import(libPath) as typeof Lib;
let last: Lib.PrimeOutcome | undefined;

/**
 * Code that touches much of the runtime (parser, compiler, regexp, ICU,
 * URL, text codecs, JSON, promises, timers, crypto) and returns a checksum
 * that is the same on every call of the same build.
 */
async function work(): Promise<string> {
  let n = 0;
  for (let i = 0; i < 1500; i++) {
    n += JSON.parse(JSON.stringify({ i, s: "x".repeat(i % 50) })).i;
    n += new URL(`https://example.com/${i}?q=${i}#f`).pathname.length;
    n += /(\d+)-(\d+)/.exec(`${i}-${i * 2}`)![2].length;
    n += new TextEncoder().encode(`é${i}ü`).length;
    n += (i * 1.5).toLocaleString("de-DE").length;
    n += `Å${i}`.normalize("NFD").length;
  }
  const f = new Function("a", "b", "return a * b + [a, b].sort().length");
  for (let i = 0; i < 200; i++) n += f(i, 3);
  n += new Date(Date.UTC(2020, 1, 29, 12)).toISOString().length;
  n += [...new Map([[1, "a"], [2, "b"]]).values()].join("").length;
  n += Number(2n ** 70n % 1000003n);
  n += structuredClone({ a: [1, 2, { b: 3 }] }).a.length;
  try {
    JSON.parse("{not json");
  } catch (e) {
    n += String(e).length > 0 ? 1 : 0;
  }
  await new Promise((r) => setTimeout(r, 1));
  n += (await Promise.all([1, 2, 3].map((x) => Promise.resolve(x * 2)))).length;
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(String(n)),
  );
  const hex = [...new Uint8Array(digest)].map((b) =>
    b.toString(16).padStart(2, "0")
  ).join("");
  return `${n}:${hex.slice(0, 16)}`;
}

async function obey(line: string): Promise<void> {
  const [cmd] = line.split(" ", 1);
  const arg = line.slice(cmd.length + 1);
  try {
    if (cmd === "remap") {
      last = lib.prime().remap(JSON.parse(arg)).run();
      console.log("DONE remap " + JSON.stringify(last.toJSON()));
    } else if (cmd === "mlock") {
      last = lib.prime().mlock(true).run();
      console.log("DONE mlock " + JSON.stringify(last.toJSON()));
    } else if (cmd === "remapmlock") {
      last = lib.prime().remap(JSON.parse(arg)).mlock(true).run();
      console.log("DONE remapmlock " + JSON.stringify(last.toJSON()));
    } else if (cmd === "restore") {
      console.log("DONE restore " + JSON.stringify(last!.restore()));
    } else if (cmd === "work") {
      console.log("DONE work " + await work());
    } else if (cmd === "exit") {
      process.exit(0);
    } else {
      console.log(`FAIL ${cmd} unknown command`);
    }
  } catch (e) {
    console.log(`FAIL ${cmd} ${String(e).replaceAll("\n", " ")}`);
  }
}

// Commands run one at a time, in order.
let buffered = "";
let queue = Promise.resolve();
process.stdin.on("data", (d) => {
  buffered += String(d);
  let nl;
  while ((nl = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, nl).trim();
    buffered = buffered.slice(nl + 1);
    if (line) queue = queue.then(() => obey(line));
  }
});
process.stdin.on("end", () => queue.then(() => process.exit(0)));
console.log("READY " + JSON.stringify({ pid: process.pid }));
