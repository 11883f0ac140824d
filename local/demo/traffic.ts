/**
 * Demo traffic for `npm start -- --demo`: the real public audit records
 * (test/fixtures/modsecurity, provenance in its README.md) once, then a steady mix of
 * envelope, ModSecurity v3 and Coraza records, some of them critical, some invalid.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "../../test/fixtures/modsecurity");

/** Every line of the bundled real fixtures (ModSecurity 2.x ones included: they dead-letter). */
export function fixtureRecords(): string[] {
  return readdirSync(FIXTURES)
    .filter((f) => f !== "README.md")
    .sort()
    .flatMap((f) => readFileSync(join(FIXTURES, f), "utf8").split("\n"))
    .filter((l) => l.trim() !== "");
}

const IPS = ["203.0.113.9", "198.51.100.23", "192.0.2.77", "2001:db8::bad:1", "203.0.113.200"];
const RULES: Array<[string, string]> = [
  ["942100", "SQL Injection Attack Detected via libinjection"],
  ["941100", "XSS Attack Detected via libinjection"],
  ["932160", "Remote Command Execution: Unix Shell Code Found"],
  ["930120", "OS File Access Attempt"],
  ["920350", "Host header is a numeric IP address"],
  ["913100", "Found User-Agent associated with security scanner"],
];
const URIS = [
  "/login",
  "/search?q=%27%20or%201%3D1--",
  "/item?id=1",
  "/cgi-bin/test.sh",
  "/../../etc/passwd",
];

function pick<T>(xs: readonly T[], n: number): T {
  return xs[n % xs.length] as T;
}

/** The n-th synthetic record (deterministic). About one in six is critical, one in 40 invalid. */
export function syntheticRecord(n: number, nowMs: number): string {
  if (n % 40 === 39)
    return n % 80 === 79 ? "{not json" : JSON.stringify({ transaction: { id: `demo-${n}` } });
  const [rule, msg] = pick(RULES, n * 7);
  const ip = pick(IPS, n * 3);
  const uri = pick(URIS, n);
  const id = `demo-${nowMs}-${n}`;
  switch (n % 3) {
    case 0:
      return JSON.stringify({
        transaction: {
          id,
          client_ip: ip,
          anomaly_score: (n * 13) % 60,
          request: { uri, method: n % 2 ? "GET" : "POST" },
          messages: [{ details: { ruleId: rule, msg } }],
        },
      });
    case 1: {
      const t = new Date(nowMs)
        .toUTCString()
        .replace(/^(\w+), (\d+) (\w+) (\d+) ([\d:]+) GMT$/, "$1 $3 $2 $5 $4");
      return JSON.stringify({
        transaction: {
          client_ip: ip,
          time_stamp: t,
          unique_id: id,
          request: { method: "GET", http_version: "1.1", hostname: "demo.local", uri },
          response: { http_code: 403 },
          producer: { modsecurity: "ModSecurity v3.0.14 (Linux)" },
          messages: [
            { message: msg, details: { ruleId: rule, severity: "2" } },
            ...(n % 2 ? [{ message: msg, details: { ruleId: "942200", severity: "2" } }] : []),
            {
              message: `Inbound Anomaly Score Exceeded (Total Score: ${(n * 11) % 50})`,
              details: { ruleId: "949110", severity: "0" },
            },
          ],
        },
      });
    }
    default:
      return JSON.stringify({
        transaction: {
          id,
          client_ip: ip,
          unix_timestamp: nowMs * 1_000_000,
          request: { method: "GET", uri, headers: { host: ["demo.local"] } },
          response: { status: 403 },
          is_interrupted: true,
        },
        messages: [{ message: msg, data: { id: Number(rule), severity: 2, msg } }],
      });
  }
}
