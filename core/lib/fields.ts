/**
 * The one reader of Redis's flat field lists (`[name, value, name, value, …]`), as stream
 * entries, XINFO and HGETALL-like replies come back in RESP2.
 */

/**
 * The pairs of a flat list as an object; later duplicates win. Keys are made strings; values
 * are kept as Redis gave them.
 *
 * @example
 * fieldMap(["reason", "not JSON", "attempts", "1"]) // { reason: "not JSON", attempts: "1" }
 */
export function fieldMap<V = unknown>(
  flat: readonly unknown[] | null | undefined,
): Record<string, V> {
  const out: Record<string, V> = Object.create(null);
  if (!flat) return out;
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = flat[i + 1] as V;
  return out;
}

/** The value of the first field called `name` (names as strings or Buffers), undefined when there is none. */
export function fieldValue<V = string>(
  flat: readonly V[] | null | undefined,
  name: string,
): V | undefined {
  if (!flat) return undefined;
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const key = flat[i];
    if (key === name || (typeof key !== "string" && String(key) === name)) return flat[i + 1];
  }
  return undefined;
}
