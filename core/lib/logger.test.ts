import { Logger as Powertools } from "@aws-lambda-powertools/logger";
import { describe, expect, it } from "vitest";
import { consoleLogger, logsDebug, silentLogger } from "./logger.ts";

describe("logsDebug", () => {
  it("asks Powertools' Logger its level", () => {
    expect(logsDebug(new Powertools({ logLevel: "INFO" }))).toBe(false);
    expect(logsDebug(new Powertools({ logLevel: "WARN" }))).toBe(false);
    expect(logsDebug(new Powertools({ logLevel: "DEBUG" }))).toBe(true);
    expect(logsDebug(new Powertools({ logLevel: "TRACE" }))).toBe(true);
  });

  it("assumes any other logger writes debug lines", () => {
    expect(logsDebug(consoleLogger)).toBe(true);
    expect(logsDebug(silentLogger)).toBe(true);
  });
});
