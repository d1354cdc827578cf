/**
 * backoff draws the delay after the n-th consecutive failure (n = 0, 1,
 * ...): uniform in [min, min(max, min·2ⁿ)]. Full jitter spreads a fleet of
 * clients that lost the same node over the whole window instead of
 * bringing them back in waves; the floor at min keeps any one of them out
 * of a tight loop (plain full jitter can draw 0). n = 0 gives exactly min.
 */
export function backoff(n: number, min: number, max: number): number {
  const top = Math.max(min, Math.min(max, min * 2 ** n));
  return min + Math.random() * (top - min);
}
