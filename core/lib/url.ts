/** URLs shown to people: credentials never printed. */

/**
 * The URL with its password (or a lone user name, which some servers take as the password)
 * replaced by `***`; a trailing slash the URL parser added is dropped. Text that does not
 * parse as a URL gets anything between `//` and `@` masked.
 *
 * @example
 * maskUrl("redis://:s3cret@cache:6379")       // "redis://:***@cache:6379"
 * maskUrl("http://admin:pw@influx:8086/db")   // "http://admin:***@influx:8086/db"
 */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    else if (u.username) u.username = "***";
    return u.toString().replace(/\/$/, "");
  } catch {
    return url.replace(/\/\/[^@/]*@/, "//***@");
  }
}
