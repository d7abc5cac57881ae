import type { PacketDrop } from './types.ts';

/**
 * What makes two drops the same flow: source, destination, destination port and protocol, not the source
 * port. Repeat suppression and the sides waiting for a late pod both key drops by it.
 */
export function flowKey(drop: PacketDrop): string {
  return `${drop.src} ${drop.dst} ${drop.dstPort ?? '-'} ${drop.proto}`;
}
