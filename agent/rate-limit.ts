import type { LRUCache } from 'lru-cache';
import { boundedLru } from './lru.ts';

/** Refill arithmetic in floating point can land a hair below a whole token at the moment readyAt named. */
const EPSILON = 1e-9;

/**
 * A token bucket on a clock the caller passes in (ms), so the Event writer and the pod lookup can use a
 * monotonic clock and tests a made-up one. It starts full: `burst` tokens, refilled at `ratePerSecond`.
 */
export class TokenBucket {
  private readonly perMs: number;
  private readonly burst: number;
  private tokens: number;
  private at: number;

  constructor(ratePerSecond: number, burst: number, now: number) {
    this.perMs = ratePerSecond / 1000;
    this.burst = burst;
    this.tokens = burst;
    this.at = now;
  }

  /** Whether a token is there at `now`, without taking it. */
  ready(now: number): boolean {
    this.refill(now);
    return this.tokens >= 1 - EPSILON;
  }

  take(now: number): boolean {
    if (!this.ready(now)) return false;
    this.tokens = Math.max(0, this.tokens - 1);
    return true;
  }

  /** Returns a token taken for something that did not happen after all. */
  giveBack(): void {
    this.tokens = Math.min(this.burst, this.tokens + 1);
  }

  /** When the next token is there: `now` if one is. Rounded up, so waiting until then always suffices. */
  readyAt(now: number): number {
    return this.ready(now) ? now : now + Math.ceil((1 - this.tokens) / this.perMs);
  }

  private refill(now: number): void {
    if (now <= this.at) return;
    this.tokens = Math.min(this.burst, this.tokens + (now - this.at) * this.perMs);
    this.at = now;
  }
}

/**
 * One bucket per key (a pod), created full on first use. An idle bucket refills completely within
 * burst / rate, so forgetting the least recently used ones beyond `max` gives away little.
 */
export class KeyedBuckets {
  private readonly buckets: LRUCache<string, TokenBucket>;
  private readonly ratePerSecond: number;
  private readonly burst: number;

  constructor(ratePerSecond: number, burst: number, max: number) {
    this.buckets = boundedLru(max);
    this.ratePerSecond = ratePerSecond;
    this.burst = burst;
  }

  get(key: string, now: number): TokenBucket {
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = new TokenBucket(this.ratePerSecond, this.burst, now);
      this.buckets.set(key, bucket);
    }
    return bucket;
  }
}
