import type { PacketDrop } from '../types.ts';

/**
 * A drop is expired when it is strictly older than the expiration, as in box/kube-iptables-tailer: a drop
 * exactly expirationMs old still posts. Drops stamped after `now` (clock skew) are never expired.
 */
export function isExpired(drop: PacketDrop, now: number, expirationMs: number): boolean {
  return now - drop.time > expirationMs;
}
