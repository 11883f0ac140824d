import { describe, expect, it } from "vitest";
import { inputRecord } from "./entry.ts";

describe("inputRecord", () => {
  const entry = (fields: string[]) => ({ id: "5-0", fields });

  it("reads the record and the origin of a redriven one", () => {
    expect(inputRecord(entry(["event", "{}", "origin_id", "1700000000000-3"]), "event")).toEqual({
      data: "{}",
      originId: "1700000000000-3",
    });
  });

  it("ignores an origin_id that is not a stream entry ID (a producer may write anything)", () => {
    for (const bad of [
      "",
      "x",
      "1-0x",
      `${"9".repeat(21)}-0`,
      '1-0","id":"2-0',
      "1-0".repeat(1e4),
    ]) {
      expect(inputRecord(entry(["event", "{}", "origin_id", bad]), "event").originId).toBe(
        undefined,
      );
    }
  });
});
