/**
 * The local Lambda runtime process: serves the scoring and alert handlers behind the Lambda
 * Invoke API (reference §8). Started by `npm start` (and the integration tests) as a child
 * process; the very same handler modules run on AWS.
 *
 * Env: the reference §6 variables, plus LOCAL_LAMBDA_PORT (where to listen), LOCAL_LAMBDA_TOKEN
 * (the per-run token callers must send) and the function
 * names SCORER_FUNCTION / ALERT_FUNCTION. Tells its parent `{ ready: url }` over IPC.
 */
import { ConfigError } from "../core/config.ts";
import { closeClients } from "../core/lib/redis.ts";
import { liveDeps as alertDeps, createHandler as createAlertHandler } from "../functions/alert.ts";
import { createHandler as createScoreHandler, liveDeps as scoreDeps } from "../functions/score.ts";
import { createLogger, openRedis, redisMode, runtimeConfig } from "../functions/shared/runtime.ts";
import { exitWithParent } from "./child.ts";
import { type LocalHandler, startLambdaServer } from "./lambda-server.ts";

/**
 * Fault injection for `npm run chaos` (local runtime only; nothing like it exists on AWS):
 * LOCAL_CHAOS_FAIL_RATE makes that share of scorer invocations fail as a whole, and any batch
 * holding a record that contains LOCAL_CHAOS_POISON fails every time (a poison record);
 * LOCAL_CHAOS_DELAY_MS makes every scorer invocation that much slower.
 */
function withFaults<H extends (event: unknown, context: never) => Promise<unknown>>(handler: H): H {
  const rate = Number(process.env.LOCAL_CHAOS_FAIL_RATE ?? 0);
  const poison = process.env.LOCAL_CHAOS_POISON;
  const delayMs = Number(process.env.LOCAL_CHAOS_DELAY_MS ?? 0);
  if (!(rate > 0) && !poison && !(delayMs > 0)) return handler;
  return (async (event: unknown, context: never) => {
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    const records = (event as { records?: Array<{ data?: string }> })?.records ?? [];
    if (poison && records.some((r) => typeof r.data === "string" && r.data.includes(poison))) {
      throw new Error("chaos: poison record in batch");
    }
    if (rate > 0 && Math.random() < rate) throw new Error("chaos: injected scorer failure");
    return handler(event, context);
  }) as H;
}

async function main(): Promise<void> {
  const config = await runtimeConfig();
  const logger = createLogger("waf-local-runtime", config.LOG_LEVEL);
  const scorerName = config.SCORER_FUNCTION ?? "waf-scorer";
  const alertName = config.ALERT_FUNCTION ?? "waf-alerter";
  const redis = openRedis(config.REDIS_URL, await redisMode(config), {}, logger);
  const score = withFaults(
    createScoreHandler(await scoreDeps({ ...config, ALERT_FUNCTION: alertName })),
  );
  const alert = createAlertHandler(await alertDeps(config));
  const server = await startLambdaServer({
    functions: {
      [scorerName]: score as unknown as LocalHandler,
      [alertName]: alert as unknown as LocalHandler,
    },
    redis,
    port: Number(process.env.LOCAL_LAMBDA_PORT ?? 0),
    // Handed to the reader and the scorer by the stack (local/stack.ts): only they may invoke.
    token: process.env.LOCAL_LAMBDA_TOKEN || undefined,
    retryDelaysMs: [1000, 2000],
    logger,
  });
  logger.info("local Lambda runtime listening", {
    url: server.url,
    functions: [scorerName, alertName],
  });
  process.send?.({ ready: server.url });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await server.close();
    await closeClients([redis]);
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
  exitWithParent(() => void stop());
}

main().catch((err: unknown) => {
  process.stderr.write(`waf-local-runtime: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
