import { describe, expect, it } from 'vitest';
import { backoffDelay, retryDelay } from '../agent/backoff.ts';

describe('backoffDelay', () => {
  const exact = { initialMs: 500, maxMs: 30_000, jitter: 0 };
  const equal = { initialMs: 100, maxMs: 1000, jitter: 0.5 };

  it('doubles from the initial wait with each failure in a row, up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n, exact))).toEqual([
      500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000,
    ]);
    expect(backoffDelay(10_000, exact)).toBe(30_000);
  });

  it('takes no failure yet as the first', () => {
    expect(backoffDelay(0, exact)).toBe(500);
  });

  it('makes the jitter share of each wait random, the rest fixed', () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, equal, () => 0))).toEqual([50, 100, 200, 400, 500]);
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, equal, () => 0.5))).toEqual([75, 150, 300, 600, 750]);
    expect(backoffDelay(3, { ...equal, jitter: 1 }, () => 0.25)).toBe(100);
  });

  it('waits exactly without jitter, whatever random returns', () => {
    const random = () => 0.999;
    expect(backoffDelay(2, exact, random)).toBe(1000);
  });
});

describe('retryDelay', () => {
  const policy = { initialMs: 250, maxMs: 10_000, jitter: 0.5 };

  it('is the backoff wait when the peer asked for none or for less', () => {
    expect(retryDelay(2, policy, null, () => 1)).toBe(500);
    expect(retryDelay(2, policy, 0, () => 1)).toBe(500);
    expect(retryDelay(2, policy, 499, () => 1)).toBe(500);
  });

  it('is never shorter than the peer asked, even beyond the cap', () => {
    expect(retryDelay(2, policy, 3000, () => 1)).toBe(3000);
    expect(retryDelay(50, policy, 60_000, () => 1)).toBe(60_000);
  });
});
