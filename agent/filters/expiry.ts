import type { PacketDrop } from '../types.ts';

/**
 * A drop is expired when it is strictly older than the expiration, as in box/kube-iptables-tailer: a drop
 * exactly expirationMs old still posts. Drops stamped after `now` (clock skew) are never expired. The
 * Event writer gives up waiting drops by the same rule.
 */
export function isExpired(drop: Pick<PacketDrop, 'time'>, now: number, expirationMs: number): boolean {
  return now - drop.time > expirationMs;
}

/**
 * How far ahead of the node clock a drop may be dated and still be taken at its word: the log's clock and
 * the node's differ a little (journald stamps on receipt, syslog daemons on their own clock).
 */
export const MAX_FUTURE_SKEW_MS = 60_000;

/** A drop dated beyond the skew is clock trouble; the pipeline takes it as happening now. */
export function futureDated(drop: PacketDrop, now: number): boolean {
  return drop.time - now > MAX_FUTURE_SKEW_MS;
}
