/**
 * Adapters wired from config: the InfluxDB point writer (v2 or v1 API) and the queue that
 * hands alerts to the alert function through an asynchronous Lambda invocation.
 */

import type { InvokeCommandOutput, LambdaClient } from "@aws-sdk/client-lambda";
import type { AlertPayload, AlertQueue } from "../../core/alert/alert-queue.ts";
import type { Config } from "../../core/config.ts";
import type { Logger } from "../../core/lib/logger.ts";
import { createV1Writer } from "../../core/metrics/influx-v1.ts";
import { createV2Writer } from "../../core/metrics/influx-v2.ts";
import type { PointWriter } from "../../core/metrics/writer.ts";
import { invokeFunction } from "./lambda.ts";

export function createPointWriter(c: Config, logger: Logger): PointWriter {
  const opts = {
    url: c.INFLUXDB_URL,
    token: c.INFLUXDB_TOKEN,
    org: c.INFLUXDB_ORG,
    bucket: c.INFLUXDB_BUCKET,
    logger,
  };
  return c.INFLUXDB_API === "v1" ? createV1Writer(opts) : createV2Writer(opts);
}

/** Thrown when an alert payload could not be queued. */
export class AlertQueueError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AlertQueueError";
  }
}

/**
 * `InvocationType: "Event"`: Lambda (or the local runtime) queues the payload durably
 * before answering 202, which is what lets the scorer report the record done.
 */
export function createAlertQueue(
  client: LambdaClient,
  functionName: string | undefined,
): AlertQueue {
  return {
    async enqueue(payload: AlertPayload): Promise<void> {
      if (!functionName) throw new AlertQueueError("ALERT_FUNCTION is not set");
      let res: InvokeCommandOutput;
      try {
        res = await invokeFunction(client, functionName, "Event", payload.body);
      } catch (err) {
        // The SDK's error name, not its message: messages can carry the endpoint URL.
        const name = (err as Error)?.name ?? "Error";
        throw new AlertQueueError(`alert function ${functionName}: ${name}`, { cause: err });
      }
      if (res.StatusCode !== 202) {
        throw new AlertQueueError(
          `alert function ${functionName} answered ${res.StatusCode}, not 202`,
        );
      }
    },
  };
}
