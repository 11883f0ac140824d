/**
 * One Lambda invocation through `@aws-sdk/client-lambda` (on AWS, or against the local Invoke
 * API server via `AWS_ENDPOINT_URL_LAMBDA`): the reader's synchronous scorer call and the
 * scorer's asynchronous alert call both go through here. Errors are the SDK's, unwrapped;
 * each caller decides what they mean.
 */
import { InvokeCommand, type InvokeCommandOutput, type LambdaClient } from "@aws-sdk/client-lambda";

const encoder = new TextEncoder();

export function invokeFunction(
  client: LambdaClient,
  functionName: string,
  type: "RequestResponse" | "Event",
  body: string | Uint8Array,
): Promise<InvokeCommandOutput> {
  return client.send(
    new InvokeCommand({
      FunctionName: functionName,
      InvocationType: type,
      Payload: typeof body === "string" ? encoder.encode(body) : body,
    }),
  );
}
