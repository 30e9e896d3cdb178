/**
 * The `intl` workload: the ECMA-402 `Intl` services across 40 locales. The
 * work is ICU's, which lives in the runtime's binary (formatters built from
 * locale data, collation, break iteration).
 *
 * @module
 */
import type { Workload } from "../workloads.ts";
import { fail } from "./fail.ts";

/** Locales, all present in the full ICU data both runtimes ship. */
export const LOCALES: readonly string[] = [
  "en-US",
  "de-DE",
  "fr-FR",
  "ja-JP",
  "zh-CN",
  "ar-EG",
  "hi-IN",
  "ru-RU",
  "pt-BR",
  "es-ES",
  "ko-KR",
  "tr-TR",
  "pl-PL",
  "sv-SE",
  "th-TH",
  "he-IL",
  "fa-IR",
  "vi-VN",
  "cs-CZ",
  "el-GR",
  "fi-FI",
  "bn-BD",
  "sr-RS",
  "lt-LT",
]; // deno-fmt-ignore

const WORDS = [
  "zebra", "Äpfel", "apple", "Öl", "ovas", "été", "etre", "Zürich", "über",
  "ulcer", "ß", "ss", "Čaj", "cabbage", "ñandú", "nadir", "Ångström", "angle",
  "İstanbul", "izmir", "ωμέγα", "алфавит", "日本", "中文", "한국어", "10", "9",
  "a-b", "ab", "A",
]; // deno-fmt-ignore

const TEXT =
  "The quick brown fox — 速い茶色の狐 — jumps over 13 lazy dogs; 👨‍👩‍👧‍👦 e\u0301té! " +
  "Быстрая лиса. สุนัขขี้เกียจ";

const DATES = [Date.UTC(2024, 0, 15, 12, 30), Date.UTC(1999, 11, 31, 23, 59)];
const NUMBERS = [0, 1, 3, 21, 1234567.891, -0.5];

/** Everything one locale yields; joined, it is the result of an op. */
function oneLocale(locale: string): string {
  const out: string[] = [];
  const nf = new Intl.NumberFormat(locale, { maximumFractionDigits: 3 });
  const cur = new Intl.NumberFormat(locale, {
    style: "currency",
    currency: "EUR",
  });
  for (const n of NUMBERS) out.push(nf.format(n), cur.format(n));
  const df = new Intl.DateTimeFormat(locale, {
    dateStyle: "full",
    timeStyle: "long",
    timeZone: "UTC",
  });
  for (const d of DATES) out.push(df.format(d));
  out.push(
    [...WORDS].sort(new Intl.Collator(locale, { numeric: true }).compare)
      .join(),
  );
  const pr = new Intl.PluralRules(locale);
  out.push(NUMBERS.map((n) => pr.select(n)).join());
  const rt = new Intl.RelativeTimeFormat(locale, { numeric: "auto" });
  out.push(rt.format(-1, "day"), rt.format(3, "week"), rt.format(-2, "year"));
  let words = 0;
  for (
    const s of new Intl.Segmenter(locale, { granularity: "word" }).segment(
      TEXT,
    )
  ) if (s.isWordLike) words++;
  const graphemes = [
    ...new Intl.Segmenter(locale, { granularity: "grapheme" }).segment(TEXT),
  ].length;
  out.push(`${words}/${graphemes}`);
  return out.join("\u0001");
}

/** Results fixed by CLDR/ICU behaviour that no recent version changes. */
function checkKnown(): void {
  const known: [string, string][] = [
    [new Intl.NumberFormat("de-DE").format(1234567.891), "1.234.567,891"],
    [new Intl.NumberFormat("ar-EG").format(12345), "١٢٬٣٤٥"],
    [
      new Intl.NumberFormat("en-IN", { style: "currency", currency: "INR" })
        .format(12345678.5),
      "₹1,23,45,678.50",
    ],
    [
      [0, 1, 2, 3, 11, 100].map((n) => new Intl.PluralRules("ar").select(n))
        .join(),
      "zero,one,two,few,many,other",
    ],
    [
      ["z", "ö", "o", "a"].sort(new Intl.Collator("sv").compare).join(),
      "a,o,z,ö",
    ],
    [
      ["z", "ö", "o", "a"].sort(new Intl.Collator("de").compare).join(),
      "a,o,ö,z",
    ],
    [
      String(
        [...new Intl.Segmenter("en", { granularity: "grapheme" }).segment(
          "👨‍👩‍👧‍👦e\u0301",
        )].length,
      ),
      "2",
    ],
    [
      [...new Intl.Segmenter("ja", { granularity: "word" }).segment(
        "今日は良い天気です",
      )].map((s) => s.segment).join("|"),
      "今日|は|良い|天気|です",
    ],
    [
      new Intl.RelativeTimeFormat("fr", { numeric: "auto" }).format(-1, "day"),
      "hier",
    ],
  ];
  for (const [got, want] of known) {
    if (got !== want) {
      fail("intl", `${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
  }
  const missing = LOCALES.filter((l) =>
    Intl.DateTimeFormat.supportedLocalesOf([l]).length === 0
  );
  if (missing.length > 0) {
    fail("intl", `the runtime's ICU lacks ${missing.join(", ")}`);
  }
}

export const intl: Workload = {
  name: "intl",
  description:
    `Intl in ${LOCALES.length} locales: new NumberFormat (2 styles), DateTimeFormat, Collator (sorting 30 words), PluralRules, RelativeTimeFormat, Segmenter (word, grapheme), each used`,
  setup() {
    checkKnown();
    // Results that depend on the ICU version are checked against the first
    // computation, made before timing on the file-backed code.
    const want = LOCALES.map(oneLocale);
    return {
      run(ops) {
        for (let o = 0; o < ops; o++) {
          for (let i = 0; i < LOCALES.length; i++) {
            if (oneLocale(LOCALES[i]) !== want[i]) {
              fail("intl", `${LOCALES[i]} differs from the first run`);
            }
          }
        }
      },
      close() {},
    };
  },
};
