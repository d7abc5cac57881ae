import { flowKey } from '../flow.ts';
import { boundedLru } from '../lru.ts';
import type { Direction, PacketDrop } from '../types.ts';

/**
 * A pod's first packets leave as soon as its containers start, and the kubelet reports it Running a
 * second or more later: a policy that blocks a pod's first connection drops packets of an address the
 * pod index does not know yet, and the retransmissions are then suppressed as repeats. So a drop side
 * whose address is no Running pod waits here a while for one to appear there.
 */
export const LATE_POD_WINDOW_MS = 30_000;
/** Addresses waited on; the least recently seen is forgotten first, so a scan of addresses cannot grow memory. */
const ADDRESSES = 4096;
/** Flows waiting per address: a starting pod opens a few connections, not hundreds. */
const FLOWS_PER_ADDRESS = 8;

/** A drop with a side that waits for its pod; both sides' entries share it. */
export interface WaitingDrop {
  drop: PacketDrop;
  /** Whether the drop was posted (counted, remembered for repeats) for either side. */
  posted: boolean;
  /** The pipeline's clock when it was located and found wanting. */
  seenAt: number;
}

/** The event a pod at the awaited address would have got: on the source ('send') or destination ('receive'). */
export interface WaitingSide {
  waiting: WaitingDrop;
  direction: Direction;
}

/** Drop sides waiting, by the address whose pod they need. Bounded in addresses and in flows per address. */
export class LatePods {
  private readonly byIp = boundedLru<string, WaitingSide[]>(ADDRESSES);

  /** Keeps the side unless the same flow already waits there (its retransmissions add nothing). */
  wait(ip: string, side: WaitingSide): void {
    const sides = this.byIp.get(ip);
    if (sides === undefined) {
      this.byIp.set(ip, [side]);
      return;
    }
    const key = flowKey(side.waiting.drop);
    const waits = (other: WaitingSide): boolean =>
      other.direction === side.direction && flowKey(other.waiting.drop) === key;
    if (sides.length < FLOWS_PER_ADDRESS && !sides.some(waits)) sides.push(side);
  }

  /** The sides waiting at these addresses and seen within the window, oldest first; none waits there afterwards. */
  take(ips: readonly string[], now: number): WaitingSide[] {
    const taken: WaitingSide[] = [];
    for (const ip of ips) {
      const sides = this.byIp.get(ip);
      if (sides === undefined) continue;
      this.byIp.delete(ip);
      taken.push(...sides.filter(({ waiting }) => now - waiting.seenAt <= LATE_POD_WINDOW_MS));
    }
    return taken;
  }
}
