// Counts passed and failed test cases in the JUnit reports of `deno test`
// and `bun test`, prints one line per runtime and a last line
// "N passed, N failed" summing both. Exits 1 when a report is missing or any
// test failed. Deno reports node:test subtests as nested test cases; only
// leaf cases are counted so a describe() block is not counted as a test.
import { existsSync, readFileSync } from "node:fs";

function count(path) {
  if (!existsSync(path)) {
    return { passed: 0, failed: 1, skipped: 0, missing: true };
  }
  const xml = readFileSync(path, "utf8");
  const cases = [
    ...xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g),
  ];
  // Deno reports a describe() block as a test case named "block", and its
  // tests as "block > test": a case that is a prefix of another is a group.
  const unescape = (s) =>
    s.replace(/&gt;/g, ">").replace(/&lt;/g, "<").replace(/&amp;/g, "&")
      .replace(/&quot;/g, '"');
  const names = cases.map((c) =>
    unescape(/\bname="([^"]*)"/.exec(c[1])?.[1] ?? "")
  );
  const groups = new Set(
    names.filter((n) => names.some((m) => m.startsWith(n + " > "))),
  );
  let passed = 0, failed = 0, skipped = 0;
  const failures = [];
  for (const [i, c] of cases.entries()) {
    if (groups.has(names[i])) continue;
    const body = c[3] ?? "";
    if (/<(failure|error)\b/.test(body)) {
      failed++;
      failures.push({ name: names[i], why: unescape(failureText(body)) });
    } else if (/<skipped\b/.test(body)) skipped++;
    else passed++;
  }
  return { passed, failed, skipped, missing: false, failures };
}

// The first lines of a failure's message, so that the end of a CI log
// (often all one gets to see) names what failed and why.
function failureText(body) {
  const m = /<(failure|error)\b([^>]*?)(\/>|>([\s\S]*?)<\/\1>)/.exec(body);
  const message = /\bmessage="([^"]*)"/.exec(m?.[2] ?? "")?.[1] ?? "";
  const text = (m?.[4] ?? "").replace(/^<!\[CDATA\[|\]\]>$/g, "");
  return [message, text].filter(Boolean).join("\n").split("\n").slice(0, 12)
    .map((l) => "    " + l.slice(0, 300)).join("\n");
}

let passed = 0, failed = 0;
for (
  const [name, path] of [["deno", process.argv[2]], ["bun", process.argv[3]]]
) {
  const r = count(path);
  for (const f of r.failures ?? []) {
    console.log(`${name} FAILED: ${f.name}\n${f.why}`);
  }
  console.log(
    `${name}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped` +
      (r.missing ? " (no report: the test run did not finish)" : ""),
  );
  passed += r.passed;
  failed += r.failed;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
