/**
 * The local Lambda runtime process: serves the scoring and alert handlers behind the Lambda
 * Invoke API (SPEC §8). Started by `npm start` (and the integration tests) as a child
 * process; the very same handler modules run on AWS.
 *
 * Env: the SPEC §6 variables, plus LOCAL_LAMBDA_PORT (where to listen) and the function
 * names SCORER_FUNCTION / ALERT_FUNCTION. Tells its parent `{ ready: url }` over IPC.
 */
import { ConfigError } from "../core/config.ts";
import { liveDeps as alertDeps, createHandler as createAlertHandler } from "../functions/alert.ts";
import { createHandler as createScoreHandler, liveDeps as scoreDeps } from "../functions/score.ts";
import { createLogger, createRedis, runtimeConfig } from "../functions/shared/runtime.ts";
import { exitWithParent } from "./child.ts";
import { type LocalHandler, startLambdaServer } from "./lambda-server.ts";

async function main(): Promise<void> {
  const config = await runtimeConfig();
  const logger = createLogger("waf-local-runtime", config.LOG_LEVEL);
  const scorerName = config.SCORER_FUNCTION ?? "waf-scorer";
  const alertName = config.ALERT_FUNCTION ?? "waf-alerter";
  const redis = createRedis(config.REDIS_URL);
  const score = createScoreHandler(await scoreDeps({ ...config, ALERT_FUNCTION: alertName }));
  const alert = createAlertHandler(await alertDeps(config));
  const server = await startLambdaServer({
    functions: {
      [scorerName]: score as unknown as LocalHandler,
      [alertName]: alert as unknown as LocalHandler,
    },
    redis,
    port: Number(process.env.LOCAL_LAMBDA_PORT ?? 0),
    retryDelaysMs: [1000, 2000],
    logger: {
      info: (...a: unknown[]) => logger.info(String(a[0]), { detail: a.slice(1) }),
      warn: (...a: unknown[]) => logger.warn(String(a[0]), { detail: a.slice(1) }),
      error: (...a: unknown[]) => logger.error(String(a[0]), { detail: a.slice(1) }),
    },
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
    await redis.quit().catch(() => undefined);
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
