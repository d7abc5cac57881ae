import type { LRUCache } from 'lru-cache';
import { flowKey } from '../flow.ts';
import { boundedLru } from '../lru.ts';
import type { PacketDrop } from '../types.ts';

/**
 * Enough for every flow a node can post within one interval: at the default 2-minute interval that is
 * more than 400 distinct posted flows a second, far above what the API writer's rate limit lets through.
 * An entry is about 150 bytes, so the cache stays under ~8 MB. Evicting a live entry only lets one extra
 * drop post, and that is aggregated into the existing Event.
 */
export const REPEAT_CACHE_MAX = 50_000;

/**
 * Repeat suppression by log time. A drop is a repeat when a drop of the same flow (flowKey) was posted less than
 * intervalMs from it: |drop.time - posted| < intervalMs, so a drop exactly one interval later posts again,
 * and a line that arrives slightly out of order is still a repeat. Only posted drops are remembered (the
 * caller marks them), so a drop whose pods were unknown does not silence the next one.
 */
export class RepeatFilter {
  private readonly lastPosted: LRUCache<string, number>;
  private readonly intervalMs: number;

  constructor(intervalMs: number, maxEntries = REPEAT_CACHE_MAX) {
    this.intervalMs = intervalMs;
    this.lastPosted = boundedLru(maxEntries);
  }

  isRepeat(drop: PacketDrop): boolean {
    const posted = this.lastPosted.get(flowKey(drop));
    return posted !== undefined && Math.abs(drop.time - posted) < this.intervalMs;
  }

  /** Keeps the latest post time, so a late out-of-order line cannot reopen the window early. */
  markPosted(drop: PacketDrop): void {
    const key = flowKey(drop);
    this.lastPosted.set(key, Math.max(drop.time, this.lastPosted.get(key) ?? drop.time));
  }
}
