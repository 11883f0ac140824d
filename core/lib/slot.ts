/**
 * Redis Cluster's key → hash slot mapping (pure): keys a script or a pipeline touches together
 * must share a slot, which hash tags (`{…}`) arrange.
 */
/** CRC16/XMODEM, the checksum Redis Cluster hashes keys with. */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

const encoder = new TextEncoder();

/**
 * The hash slot (0–16383) of a key, as Redis Cluster computes it: only the part between the
 * first `{` and the next `}` counts when that part is non-empty (a hash tag).
 * @example hashSlot("{waf-realtime}:dlq") === hashSlot("waf-realtime")
 */
export function hashSlot(key: string): number {
  const open = key.indexOf("{");
  if (open !== -1) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(encoder.encode(key)) % 16384;
}
