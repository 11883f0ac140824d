/**
 * The reader's path to the scoring function: a synchronous `RequestResponse` invocation
 * through `@aws-sdk/client-lambda` (on AWS, or against the local Invoke API server via
 * `AWS_ENDPOINT_URL_LAMBDA`). Retries are the reader's, so the SDK makes one attempt.
 */

import type { InvokeCommandOutput, LambdaClient } from "@aws-sdk/client-lambda";
import { z } from "zod";
import type { ScoreResponse } from "../../core/stream/contract.ts";
import { FunctionInvocationError, InvokeUnavailableError } from "../../core/stream/errors.ts";
import type { ScorerInvoker } from "../../core/stream/reader.ts";
import { invokeFunction } from "../shared/lambda.ts";

const responseSchema = z.object({
  batchItemFailures: z.array(z.object({ itemIdentifier: z.string() })).default([]),
  rejected: z.array(z.object({ itemIdentifier: z.string(), reason: z.string() })).default([]),
});

const decoder = new TextDecoder();

export function createLambdaInvoker(client: LambdaClient, functionName: string): ScorerInvoker {
  return {
    async invoke(payload: Uint8Array): Promise<ScoreResponse> {
      let res: InvokeCommandOutput;
      try {
        res = await invokeFunction(client, functionName, "RequestResponse", payload);
      } catch (err) {
        const e = err as Error & { name?: string };
        // A payload the service refuses is the batch's fault, not an outage.
        if (e.name === "RequestTooLargeException" || e.name === "InvalidRequestContentException") {
          throw new FunctionInvocationError(e.name, e.message, { cause: err });
        }
        throw new InvokeUnavailableError(`${e.name ?? "Error"}: ${e.message}`, { cause: err });
      }
      const text = res.Payload ? decoder.decode(res.Payload) : "";
      if (res.FunctionError) {
        let detail = text.slice(0, 500);
        try {
          const parsed = JSON.parse(text) as { errorType?: string; errorMessage?: string };
          detail = `${parsed.errorType ?? res.FunctionError}: ${parsed.errorMessage ?? ""}`;
        } catch {
          // Not JSON: keep the raw text.
        }
        throw new FunctionInvocationError(res.FunctionError, detail);
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new FunctionInvocationError(
          "InvalidResponse",
          `scorer answered non-JSON: ${text.slice(0, 200)}`,
        );
      }
      const r = responseSchema.safeParse(parsed);
      if (!r.success) {
        throw new FunctionInvocationError(
          "InvalidResponse",
          `scorer answered an unexpected shape: ${r.error.issues[0]?.message}`,
        );
      }
      return r.data;
    },
  };
}
