import { describe, expect, it } from 'vitest';
import { boundedLru } from '../agent/lru.ts';

describe('boundedLru', () => {
  it('keeps at most its entries, evicting the least recently used with reason evict', () => {
    const evicted: [string, string][] = [];
    const cache = boundedLru<string, number>(3, {
      dispose: (_value, key, reason) => evicted.push([key, reason]),
    });
    for (const key of ['a', 'b', 'c']) cache.set(key, 1);
    cache.get('a');
    cache.set('d', 1);
    expect([...cache.keys()].sort()).toEqual(['a', 'c', 'd']);
    expect(cache.size).toBe(3);
    expect(evicted).toEqual([['b', 'evict']]);
    // Replacing a value makes no room and evicts nothing.
    cache.set('a', 2);
    expect(cache.size).toBe(3);
    expect(evicted).toEqual([
      ['b', 'evict'],
      ['a', 'set'],
    ]);
  });

  it('holds as many entries as it is bounded to over many turns', () => {
    const cache = boundedLru<number, number>(1000);
    for (let i = 0; i < 10_000; i++) cache.set(i, i);
    expect(cache.size).toBe(1000);
    expect(cache.get(9000)).toBe(9000);
    expect(cache.get(8999)).toBeUndefined();
  });

  it('expires entries on the clock it is given', () => {
    // lru-cache takes a start time of 0 for none, so the clock starts later.
    let now = 1000;
    const cache = boundedLru<string, string>(10, { ttl: 100, ttlResolution: 0, perf: { now: () => now } });
    cache.set('a', 'x');
    now = 1099;
    expect(cache.get('a')).toBe('x');
    now = 1101;
    expect(cache.get('a')).toBeUndefined();
  });
});
