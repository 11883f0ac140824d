/**
 * CRS rule categories (reference §3). A rule's category is the CRS file
 * prefix — the first three digits of an ID of exactly six digits. Evaluation rules
 * (949xxx, 959xxx, 980xxx) and IDs not of six digits have no category.
 */

/** Short names, as alerts and `waf score` report them. Prefixes not listed are "other". */
export const CATEGORY_NAMES: Readonly<Record<string, string>> = Object.freeze({
  "911": "method",
  "913": "scanner",
  "920": "protocol",
  "921": "protocol",
  "922": "multipart",
  "930": "lfi",
  "931": "rfi",
  "932": "rce",
  "933": "php",
  "934": "generic-injection",
  "941": "xss",
  "942": "sqli",
  "943": "session-fixation",
  "944": "java",
  "950": "leakage",
  "951": "leakage",
  "952": "leakage",
  "953": "leakage",
  "954": "leakage",
  "955": "leakage",
  "956": "leakage",
});

/** The seed weights: SQLi 942 +30, XSS 941 +25, RCE 932 +35, LFI 930 +20; all else 0. */
export const DEFAULT_WEIGHTS: Readonly<Record<string, number>> = Object.freeze({
  "942": 30,
  "941": 25,
  "932": 35,
  "930": 20,
});

const EVALUATION_PREFIXES = new Set(["949", "959", "980"]);

/** Whether the ID is one of the evaluation/reporting rules (949xxx, 959xxx, 980xxx). */
export function isEvaluationRule(ruleId: string): boolean {
  return (
    ruleId.length === 6 && EVALUATION_PREFIXES.has(ruleId.slice(0, 3)) && /^\d{6}$/.test(ruleId)
  );
}

/**
 * The category prefix of a rule ID, or undefined when it has none.
 * @example categoryOf("942100") // "942";  categoryOf("949110") // undefined;  categoryOf("1234") // undefined
 */
export function categoryOf(ruleId: string): string | undefined {
  if (ruleId.length !== 6 || !/^\d{6}$/.test(ruleId)) return undefined;
  const prefix = ruleId.slice(0, 3);
  return EVALUATION_PREFIXES.has(prefix) ? undefined : prefix;
}

/** The short name of a category prefix ("942" → "sqli"; unknown prefixes → "other"). */
export function categoryName(prefix: string): string {
  return CATEGORY_NAMES[prefix] ?? "other";
}
