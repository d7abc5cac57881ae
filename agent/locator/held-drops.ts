import type { PacketDrop } from '../types.ts';

/** Whether the pod index reflects the API server up to a moment ago; the pod watch answers it. */
export interface IndexFreshness {
  current(): boolean;
}

/** Enough for minutes of a busy node's drops while the API server is away, at a few hundred bytes each. */
export const HELD_DROPS_CAPACITY = 10_000;

/**
 * Drops naming an address the pod index does not know, seen while the index is behind (its watch
 * reconnecting or relisting) or while the address is looked up: it may belong to a pod that started
 * meanwhile, or to one of another node. They wait here, oldest first, to be located again. Bounded: past
 * the capacity the oldest leaves at once, to be located with what the index knows, so an outage costs
 * accuracy, never memory.
 */
export class HeldDrops<T = PacketDrop> {
  private drops: T[] = [];
  private readonly capacity: number;

  constructor(capacity = HELD_DROPS_CAPACITY) {
    this.capacity = capacity;
  }

  get size(): number {
    return this.drops.length;
  }

  /** Holds the drop; returns the oldest one when that makes room for it. */
  hold(drop: T): T | undefined {
    this.drops.push(drop);
    return this.drops.length > this.capacity ? this.drops.shift() : undefined;
  }

  /** Every held drop, oldest first; none is held afterwards. */
  takeAll(): T[] {
    const drops = this.drops;
    this.drops = [];
    return drops;
  }
}
