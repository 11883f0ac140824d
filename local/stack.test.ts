import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { READER_HEAP_MB } from "../infra/stages.ts";
import { READER_NODE_FLAGS } from "./stack.ts";

describe("the reader's Node flags", () => {
  it("are the Fargate image's: the Dockerfile's reader CMD runs the bundle with exactly them", () => {
    const dockerfile = readFileSync(new URL("../Dockerfile", import.meta.url), "utf8");
    const cmd = /^CMD (\[.*"main\.mjs"\])$/m.exec(dockerfile)?.[1];
    expect(cmd, "the reader target's CMD").toBeDefined();
    const args = JSON.parse(cmd as string) as string[];
    const flags = args.filter((a) => a.startsWith("--max-"));
    expect(flags).toEqual([...READER_NODE_FLAGS]);
    // the heap limit the stage table checks its worst case against
    expect(flags).toContain(`--max-old-space-size=${READER_HEAP_MB}`);
  });
});
