/**
 * `npm run chaos [-- --records N --kills K --quick --json]`: the fault-injection run; prints the
 * table (and the JSON report with --json) and exits non-zero unless nothing was lost or doubled.
 */
import { formatReport, passed, runChaos } from "./chaos.ts";

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(`--${name}`);
const num = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? def : Number(args[i + 1]);
};
const quick = flag("quick");

const report = await runChaos({
  records: num("records", quick ? 1200 : 5000),
  kills: num("kills", quick ? 3 : 5),
  connectionDrops: num("drops", 2),
  influxOutageMs: num("outage-ms", quick ? 3000 : 6000),
  scorerFailRate: num("fail-rate", 0.05),
  sendMs: num("send-ms", quick ? 12_000 : 30_000),
  settleTimeoutMs: 180_000,
  log: (l) => process.stderr.write(`chaos: ${l}\n`),
});
process.stdout.write(`${formatReport(report)}\n`);
if (flag("json")) process.stdout.write(`${JSON.stringify(report)}\n`);
const ok = passed(report);
process.stderr.write(ok ? "chaos: PASS — 0 lost, 0 duplicated\n" : "chaos: FAIL\n");
process.exit(ok ? 0 : 1);
