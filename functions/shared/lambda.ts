/**
 * One Lambda invocation through `@aws-sdk/client-lambda` (on AWS, or against the local Invoke
 * API server via `AWS_ENDPOINT_URL_LAMBDA`): the reader's synchronous scorer call and the
 * scorer's asynchronous alert call both go through here. Errors are the SDK's, unwrapped;
 * each caller decides what they mean.
 */
import {
  InvokeCommand,
  type InvokeCommandOutput,
  LambdaClient,
  type LambdaClientConfig,
} from "@aws-sdk/client-lambda";

/** The header the local Invoke API (local/lambda-server.ts) requires, with this run's token. */
export const LOCAL_TOKEN_HEADER = "x-waf-local-token";

/**
 * A Lambda client. On this machine (`npm start`, tests) `LOCAL_LAMBDA_TOKEN` holds the local
 * runtime's per-run token, and every request carries it; on AWS it is unset and nothing is added.
 */
export function createLambdaClient(
  config: LambdaClientConfig = {},
  token: string | undefined = process.env.LOCAL_LAMBDA_TOKEN,
): LambdaClient {
  const client = new LambdaClient(config);
  if (token) {
    client.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers?: Record<string, string> };
        if (request.headers) request.headers[LOCAL_TOKEN_HEADER] = token;
        return next(args);
      },
      { step: "build", name: "wafLocalToken" },
    );
  }
  return client;
}

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
