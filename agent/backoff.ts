/**
 * The one retry policy of the agent (list-watch, Event writes, journalctl restarts): the wait doubles with
 * every failure in a row up to a cap, and part of it is random so that many nodes failing together do not
 * retry together.
 */
export interface Backoff {
  /** The wait after the first failure (before jitter). */
  initialMs: number;
  /** No wait grows beyond this: a recovered peer is noticed within it. */
  maxMs: number;
  /** The random share of each wait: 0 waits exactly, 0.5 keeps at least half ("equal jitter"). */
  jitter: number;
}

/** The wait after the `failures`-th failure in a row (1 for the first); `random` returns [0, 1). */
export function backoffDelay(failures: number, backoff: Backoff, random: () => number = Math.random): number {
  const full = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.max(0, failures - 1));
  return full * (1 - backoff.jitter) + random() * full * backoff.jitter;
}

/** The backoff wait, but never shorter than the peer asked for (`askedMs`, null when it asked nothing). */
export function retryDelay(
  failures: number,
  backoff: Backoff,
  askedMs: number | null,
  random: () => number = Math.random,
): number {
  return Math.max(backoffDelay(failures, backoff, random), askedMs ?? 0);
}
