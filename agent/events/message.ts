import type { Direction, PacketDrop } from '../types.ts';

/**
 * "on port 12865/TCP" when the protocol has ports. Port-less protocols say what was dropped instead:
 * "over ICMP (type 8, code 0)", "over ICMPv6 (type 128, code 0)", "over GRE", and for a protocol the kernel
 * printed as a number "over IP protocol 47". ICMP type and code tell a blocked ping from, say, a blocked
 * "fragmentation needed", so they are part of the message (and thus of the Event's identity).
 */
function transport(drop: PacketDrop): string {
  if (drop.dstPort !== null) return `on port ${drop.dstPort}/${drop.proto}`;
  const protocol = /^\d+$/.test(drop.proto) ? `IP protocol ${drop.proto}` : drop.proto;
  if (drop.icmpType === null) return `over ${protocol}`;
  const code = drop.icmpCode === null ? '' : `, code ${drop.icmpCode}`;
  return `over ${protocol} (type ${drop.icmpType}${code})`;
}

/** "name (ip)", or just the IP when no better name was found. */
function peer(name: string, ip: string): string {
  return name === ip ? ip : `${name} (${ip})`;
}

/**
 * The Event message for the pod on one side of a drop; `peerName` names the other side. Everything else
 * comes from the parser-validated drop, never from raw log text.
 */
export function dropMessage(direction: Direction, drop: PacketDrop, peerName: string): string {
  const what =
    direction === 'send'
      ? `sending traffic to ${peer(peerName, drop.dst)}`
      : `receiving traffic from ${peer(peerName, drop.src)}`;
  return `Packet dropped when ${what} ${transport(drop)}`;
}
