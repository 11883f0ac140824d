import { ReplyError } from "ioredis";
import { describe, expect, it } from "vitest";
import { redisErrorCode } from "./redis.ts";

describe("redisErrorCode", () => {
  it.each<[string, unknown, string]>([
    [
      "a socket error: its code, not the host in the message",
      Object.assign(new Error("connect ECONNREFUSED 10.0.0.5:6379"), { code: "ECONNREFUSED" }),
      "ECONNREFUSED",
    ],
    [
      "a Redis error reply: its code word",
      new ReplyError("WRONGPASS invalid username-password pair or user is disabled."),
      "WRONGPASS",
    ],
    ["a reply without a code word: the name", new ReplyError("something odd"), "ReplyError"],
    [
      "an error whose message holds a URL with a password: never the message",
      new TypeError("bad URL redis://:SECRET@host:6379"),
      "TypeError",
    ],
    [
      "a code that is not a code: the name",
      Object.assign(new Error("x"), { code: "redis://:SECRET@h" }),
      "Error",
    ],
    ["not an error at all", "redis://:SECRET@host", "Error"],
    ["undefined", undefined, "Error"],
  ])("%s", (_what, err, expected) => {
    expect(redisErrorCode(err)).toBe(expected);
  });
});
