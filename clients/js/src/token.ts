/**
 * tokenExpiry reads `exp` (Unix seconds) from a JWT's payload, or
 * undefined when the token is not a JWT or has no numeric `exp`. Nothing is
 * verified: that is the gateway's job; the client only needs to know when
 * to refresh.
 *
 * atob gives one character per byte. That is enough for JSON.parse to find
 * `exp`: UTF-8 multi-byte sequences are all bytes >= 0x80, so they can
 * garble a string's text but never end a string or break the syntax.
 */
export function tokenExpiry(token: string): number | undefined {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '='))).exp;
    return typeof exp == 'number' ? exp : undefined;
  } catch {
    return undefined;
  }
}
