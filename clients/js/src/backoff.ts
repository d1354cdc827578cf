/**
 * backoff draws the delay after the n-th consecutive failure (n = 0, 1,
 * ...): uniform in [min, min(max, min·2ⁿ⁺¹)]. Full jitter spreads a fleet
 * of clients that lost the same node over the whole window instead of
 * bringing them back in waves (already for the first retry: [min, 2·min]);
 * the floor at min keeps any one of them out of a tight loop (plain full
 * jitter can draw 0).
 */
export function backoff(n: number, min: number, max: number): number {
  const top = Math.max(min, Math.min(max, min * 2 ** (n + 1)));
  return min + Math.random() * (top - min);
}
