import { describe, expect, it } from 'vitest';
import { KeyedBuckets, TokenBucket } from '../agent/rate-limit.ts';

/** Takes a token every millisecond from `from` to `to` (exclusive) that the bucket allows; returns how many. */
function drain(bucket: TokenBucket, from: number, to: number): number {
  let taken = 0;
  for (let at = from; at < to; at++) if (bucket.take(at)) taken++;
  return taken;
}

/** Takes every token there is at one moment. */
function takeAll(bucket: TokenBucket, at: number): number {
  let taken = 0;
  while (bucket.take(at)) taken++;
  return taken;
}

describe('TokenBucket', () => {
  it('starts full with the burst, then refills at the rate', () => {
    const bucket = new TokenBucket(10, 3, 0);
    expect([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0)]).toEqual([
      true,
      true,
      true,
      false,
    ]);
    expect(bucket.take(99)).toBe(false);
    expect(bucket.take(100)).toBe(true);
  });

  it('never lets more than burst + rate × seconds through', () => {
    const bucket = new TokenBucket(20, 2, 0);
    expect(drain(bucket, 0, 10_000)).toBe(2 + 20 * 10 - 1);
  });

  it('caps the saved-up tokens at the burst', () => {
    const bucket = new TokenBucket(1, 2, 0);
    expect(takeAll(bucket, 0)).toBe(2);
    expect(takeAll(bucket, 60_000)).toBe(2);
  });

  it('names the moment the next token is there, and that moment suffices', () => {
    const bucket = new TokenBucket(3, 1, 0);
    expect(bucket.readyAt(0)).toBe(0);
    bucket.take(0);
    const at = bucket.readyAt(10);
    expect(at).toBe(334);
    expect(bucket.ready(at - 1)).toBe(false);
    expect(bucket.take(at)).toBe(true);
  });

  it('takes back a token, up to the burst', () => {
    const bucket = new TokenBucket(0.1, 2, 0);
    expect(takeAll(bucket, 0)).toBe(2);
    bucket.giveBack();
    expect(takeAll(bucket, 0)).toBe(1);
    bucket.giveBack();
    bucket.giveBack();
    bucket.giveBack();
    expect(takeAll(bucket, 0)).toBe(2);
  });

  it('does not refill when the clock goes backwards', () => {
    const bucket = new TokenBucket(1000, 1, 1000);
    bucket.take(1000);
    expect(bucket.take(500)).toBe(false);
    expect(bucket.take(1001)).toBe(true);
  });
});

describe('KeyedBuckets', () => {
  it('keeps a bucket per key', () => {
    const buckets = new KeyedBuckets(0.1, 1, 10);
    expect(buckets.get('a', 0).take(0)).toBe(true);
    expect(buckets.get('a', 0).take(0)).toBe(false);
    expect(buckets.get('b', 0).take(0)).toBe(true);
    expect(buckets.get('a', 10_000).take(10_000)).toBe(true);
  });

  it('forgets the least recently used keys beyond its size, handing out a full bucket again', () => {
    const buckets = new KeyedBuckets(0.1, 1, 2);
    buckets.get('a', 0).take(0);
    buckets.get('b', 0).take(0);
    buckets.get('c', 0).take(0);
    expect(buckets.get('a', 0).take(0)).toBe(true);
    expect(buckets.get('c', 0).take(0)).toBe(false);
  });
});
