/**
 * The benchmark's records: a production-like mix, deterministic in (n, run), so a phase can
 * regenerate the text of the n-th record instead of holding it in memory.
 *
 * Mix (per 200 records): 78 envelopes (the upstream router's format, ~0.5–1 KB), 70 synthetic
 * ModSecurity v3 records with request and response headers and full rule details (~2.5–4 KB),
 * 40 Coraza records (~2–3 KB, header values as arrays, nanosecond `unix_timestamp`), 10 real
 * ModSecurity v3 fixture lines from test/fixtures/modsecurity (their `unique_id` made unique per copy), and
 * 2 invalid records (not JSON; ModSecurity 2.x). About one in eight is critical.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MODSEC_FIXTURES } from "../test/fixtures/records.ts";

export interface RecordMix {
  /** The n-th record's text. */
  text(n: number): string;
  /** Whether the n-th record is meant to be invalid (dead-lettered). */
  invalid(n: number): boolean;
  /** The n-th record's transaction ID (undefined for invalid ones). */
  txId(n: number): string | undefined;
}

const REAL_FILES = [
  "modsec3-crs4_longhdwst1full_mod-security-config.jsonl",
  "modsec3-crs4_longhdwst1full_rotated-153553.jsonl",
  "modsec3.0.4_elastic-integrations_test-audit.log",
];

function lines(file: string): string[] {
  return readFileSync(join(MODSEC_FIXTURES, file), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "");
}

const IPS = [
  "203.0.113.9",
  "198.51.100.23",
  "192.0.2.77",
  "2001:db8::bad:1",
  "203.0.113.200",
  "198.51.100.140",
  "::ffff:192.0.2.5",
  "2001:db8:42:7::19",
];

/** [rule, severity, message] — CRS 4 rules as real deployments see them. */
const RULES: Array<[number, number, string]> = [
  [942100, 2, "SQL Injection Attack Detected via libinjection"],
  [941100, 2, "XSS Attack Detected via libinjection"],
  [932160, 2, "Remote Command Execution: Unix Shell Code Found"],
  [930120, 2, "OS File Access Attempt"],
  [920350, 4, "Host header is a numeric IP address"],
  [913100, 2, "Found User-Agent associated with security scanner"],
  [920230, 4, "Multiple URL Encoding Detected"],
  [933160, 2, "PHP Injection Attack: High-Risk PHP Function Call Found"],
  [921110, 2, "HTTP Request Smuggling Attack"],
  [942200, 2, "Detects MySQL comment-/space-obfuscated injections and backtick termination"],
];

const URIS = [
  "/login?user=admin%27--&password=hunter2",
  "/search?q=%27%20or%201%3D1--",
  "/item?id=1%20UNION%20SELECT%20password%20FROM%20users",
  "/cgi-bin/test.sh?cmd=cat%20/etc/passwd",
  "/static/../../etc/passwd",
  "/?q=%3Cscript%3Ealert(%27xss%27)%3C/script%3E",
  "/api/v2/orders?page=3&sort=desc",
  "/wp-login.php",
];

const UAS = [
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
  "sqlmap/1.8.3#stable (https://sqlmap.org)",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
];

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

type Kind = "envelope" | "modsec3" | "coraza" | "real" | "invalid";

/** 200 slots in the proportions of the module comment, shuffled by a fixed LCG. */
function shuffledKinds(): Kind[] {
  const kinds: Kind[] = [
    ...Array<Kind>(78).fill("envelope"),
    ...Array<Kind>(70).fill("modsec3"),
    ...Array<Kind>(40).fill("coraza"),
    ...Array<Kind>(10).fill("real"),
    ...Array<Kind>(2).fill("invalid"),
  ];
  let seed = 12345;
  for (let i = kinds.length - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const j = seed % (i + 1);
    [kinds[i], kinds[j]] = [kinds[j] as Kind, kinds[i] as Kind];
  }
  return kinds;
}

function pick<T>(xs: readonly T[], n: number): T {
  return xs[((n % xs.length) + xs.length) % xs.length] as T;
}

/** ModSecurity v3's `time_stamp`: "Fri May 14 14:38:37 2021" (day space-padded), UTC. */
function modsecTime(ms: number): string {
  const d = new Date(ms);
  const pad = (v: number) => String(v).padStart(2, "0");
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, " ")} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${d.getUTCFullYear()}`;
}

/** Coraza's `timestamp`: "2024/03/05 10:11:12". */
function corazaTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ").replaceAll("-", "/");
}

function requestHeaders(n: number, host: string): Record<string, string> {
  return {
    Host: host,
    "User-Agent": pick(UAS, n),
    Accept: "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9,de;q=0.7",
    "Accept-Encoding": "gzip, deflate, br",
    Referer: `https://${host}/products/category/${n % 97}?utm_source=newsletter&utm_medium=email`,
    Cookie: `session_id=${(n * 2654435761) >>> 0}a9f3e1; _ga=GA1.2.${n}.1714000000; consent=necessary%2Canalytics; cart=${n % 13}`,
    "Content-Type": "application/x-www-form-urlencoded",
    "X-Forwarded-For": `${pick(IPS, n * 5)}, 10.0.${n % 250}.${(n * 7) % 250}`,
    "X-Request-Id": `req-${n.toString(36)}-${((n * 40503) >>> 0).toString(16)}`,
    Connection: "keep-alive",
  };
}

function responseHeaders(ms: number): Record<string, string> {
  return {
    Server: "nginx/1.24.0",
    Date: new Date(ms).toUTCString(),
    "Content-Type": "text/html",
    "Content-Length": "555",
    Connection: "keep-alive",
  };
}

/** How many rules a record carries and which, so about 1 in 8 records ends up critical. */
function rulesOf(n: number): Array<[number, number, string]> {
  const count = n % 4 === 0 ? 3 : n % 4 === 1 ? 2 : 1;
  const out: Array<[number, number, string]> = [];
  for (let i = 0; i < count; i++) out.push(pick(RULES, n * 3 + i * 7));
  return out;
}

/**
 * The mix. `runId` makes transaction IDs unique across runs sharing a database; `baseMs` is
 * the event time of record 0 (record n is `n` ms later), so points are recent.
 */
export function recordMix(runId: string, baseMs: number): RecordMix {
  const real = REAL_FILES.flatMap(lines);
  const modsec2 = lines("modsec2-json_EyesOfArgus_first10.jsonl");
  const kinds = shuffledKinds();
  const kind = (n: number): Kind => kinds[n % kinds.length] as Kind;
  const nth = (n: number) => Math.floor(n / kinds.length);
  const txId = (n: number) => `${runId}-${n}`;

  const envelope = (n: number): string => {
    const rules = rulesOf(n);
    return JSON.stringify({
      transaction: {
        id: txId(n),
        client_ip: pick(IPS, n * 3),
        anomaly_score: (n * 13) % 60,
        request: { uri: pick(URIS, n), method: n % 3 ? "GET" : "POST" },
        messages: rules.map(([id, sev, msg]) => ({
          message: msg,
          details: { ruleId: String(id), msg, severity: String(sev) },
        })),
      },
      ...(n % 10 === 3
        ? { classification: { track: "attack", rule_id: String(pick(RULES, n)[0]) } }
        : {}),
    });
  };

  const modsec3 = (n: number): string => {
    const ms = baseMs + n;
    const host = `shop${n % 5}.example.com`;
    const rules = rulesOf(n);
    const inbound = rules.reduce((s, [, sev]) => s + (sev === 2 ? 5 : sev === 4 ? 3 : 0), 0);
    const messages = rules.map(([id, sev, msg], i) => ({
      message: msg,
      details: {
        match: `Matched "Operator \`Rx' with parameter \`(?i)union.*?select' against variable \`ARGS:id' (Value: \`1 UNION SELECT password FROM users' )`,
        reference: `o${i * 4},${12 + i}v${20 + i},${30 + i}t:urlDecodeUni,t:lowercase`,
        ruleId: String(id),
        file: `/etc/modsecurity/crs/rules/REQUEST-${String(id).slice(0, 3)}-APPLICATION-ATTACK.conf`,
        lineNumber: String(40 + ((id + i) % 900)),
        data: `Matched Data: ${pick(URIS, n + i).slice(0, 40)} found within ARGS:id`,
        severity: String(sev),
        ver: "OWASP_CRS/4.3.0",
        rev: "",
        tags: [
          "application-multi",
          "language-multi",
          "platform-multi",
          `attack-${String(id).slice(0, 3)}`,
          "paranoia-level/1",
          "OWASP_CRS",
          "capec/1000/152/248/66",
          "PCI/6.5.2",
        ],
        maturity: "0",
        accuracy: "0",
      },
    }));
    messages.push({
      message: `Inbound Anomaly Score Exceeded (Total Score: ${inbound + ((n * 7) % 30)})`,
      details: {
        match:
          "Matched \"Operator `Ge' with parameter `5' against variable `TX:BLOCKING_INBOUND_ANOMALY_SCORE'",
        reference: "",
        ruleId: "949110",
        file: "/etc/modsecurity/crs/rules/REQUEST-949-BLOCKING-EVALUATION.conf",
        lineNumber: "222",
        data: "",
        severity: "0",
        ver: "OWASP_CRS/4.3.0",
        rev: "",
        tags: ["anomaly-evaluation", "OWASP_CRS"],
        maturity: "0",
        accuracy: "0",
      },
    });
    return JSON.stringify({
      transaction: {
        client_ip: pick(IPS, n * 3),
        time_stamp: modsecTime(ms),
        server_id: "e1726438fd4503d34f7fbcceec04d95aeb938a45",
        client_port: 30000 + (n % 30000),
        host_ip: "10.0.1.175",
        host_port: 443,
        unique_id: txId(n),
        request: {
          method: n % 3 ? "GET" : "POST",
          http_version: "1.1",
          hostname: host,
          uri: pick(URIS, n),
          headers: requestHeaders(n, host),
        },
        response: { http_code: 403, headers: responseHeaders(ms) },
        producer: {
          modsecurity: "ModSecurity v3.0.12 (Linux)",
          connector: "ModSecurity-nginx v1.0.3",
          secrules_engine: "Enabled",
          components: ['OWASP_CRS/4.3.0"'],
        },
        messages,
      },
    });
  };

  const coraza = (n: number): string => {
    const ms = baseMs + n;
    const host = `api${n % 3}.example.com`;
    const rules = rulesOf(n);
    const headers: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(requestHeaders(n, host))) headers[k.toLowerCase()] = [v];
    const body = JSON.stringify({
      transaction: {
        timestamp: corazaTime(ms),
        unix_timestamp: 0,
        id: txId(n),
        client_ip: pick(IPS, n * 3),
        client_port: 40000 + (n % 20000),
        host_ip: "10.0.0.2",
        host_port: 8080,
        server_id: "",
        request: {
          method: n % 2 ? "GET" : "POST",
          protocol: "HTTP/1.1",
          uri: pick(URIS, n),
          http_version: "1.1",
          headers,
          body: "",
          files: null,
          args: {},
          length: 0,
        },
        response: {
          protocol: "HTTP/1.1",
          status: 403,
          headers: { "content-type": ["text/html"], server: ["caddy"] },
          body: "",
        },
        producer: { connector: "coraza-caddy", version: "v2.0.0", server: "", rule_engine: "On" },
        highest_severity: "critical",
        is_interrupted: true,
      },
      messages: rules.map(([id, sev, msg]) => ({
        actionset: "",
        message: msg,
        data: {
          file: `@owasp_crs/REQUEST-${String(id).slice(0, 3)}-APPLICATION-ATTACK.conf`,
          line: 40 + (id % 900),
          id,
          rev: "",
          msg,
          data: `Matched Data: ${pick(URIS, n).slice(0, 32)} found within ARGS:q`,
          severity: sev,
          ver: "OWASP_CRS/4.3.0",
          maturity: 0,
          accuracy: 0,
          tags: ["application-multi", `attack-${String(id).slice(0, 3)}`, "paranoia-level/1"],
          raw: "",
        },
      })),
    });
    // Coraza writes nanoseconds verbatim: beyond 2^53, as real records carry them.
    return body.replace(
      '"unix_timestamp":0',
      `"unix_timestamp":${BigInt(ms) * 1_000_000n + 123_456n}`,
    );
  };

  const realCopy = (n: number): string => {
    const line = pick(real, nth(n));
    return line.replace(/"unique_id":"[^"]*"/, `"unique_id":"${txId(n)}"`);
  };

  const invalid = (n: number): string =>
    nth(n) % 2 === 0 ? `{"transaction":{"id":"${txId(n)}",` : pick(modsec2, nth(n) >> 1);

  const render = (n: number): string => {
    switch (kind(n)) {
      case "envelope":
        return envelope(n);
      case "modsec3":
        return modsec3(n);
      case "coraza":
        return coraza(n);
      case "real":
        return realCopy(n);
      case "invalid":
        return invalid(n);
    }
  };

  // Rendering JSON costs more than the stream does per record: render a pool of templates
  // once and splice each record's transaction ID in. Record n is template n % POOL with its
  // own ID, so every record is distinct (its ID, hence its point's timestamp).
  const templates = Array.from({ length: POOL }, (_, n) => {
    const text = render(n);
    const id = txId(n);
    const at = text.indexOf(`"${id}"`);
    return at === -1 ? [text] : [text.slice(0, at + 1), text.slice(at + 1 + id.length)];
  });
  return {
    text(n) {
      const t = templates[n % POOL] as string[];
      return t.length === 1 ? (t[0] as string) : `${t[0]}${runId}-${n}${t[1]}`;
    },
    invalid: (n) => kind(n) === "invalid",
    txId: (n) => (kind(n) === "invalid" ? undefined : txId(n)),
  };
}

/** Distinct record bodies; a multiple of the 200-slot mix. */
const POOL = 4000;
