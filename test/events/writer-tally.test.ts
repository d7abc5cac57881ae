import { describe, expect, it } from 'vitest';
import { retryDelay } from '../../agent/backoff.ts';
import { WRITE_BACKOFF } from '../../agent/events/store.ts';
import { DropTally, MAX_TIMES, MAX_TIMES_UNKNOWN } from '../../agent/events/tally.ts';

function tallyOf(...times: number[]): DropTally {
  const [first = 0, ...rest] = times;
  const tally = new DropTally(first);
  for (const time of rest) tally.add(time);
  return tally;
}

describe('DropTally', () => {
  it('merges repeats: one entry, count and the widest times', () => {
    const tally = tallyOf(2000, 1000, 3000);
    expect({ count: tally.count, first: tally.first, last: tally.last }).toEqual({
      count: 3,
      first: 1000,
      last: 3000,
    });
  });

  it('removes drops up to a time and narrows first/last to what is left', () => {
    const tally = tallyOf(1000, 2000, 3000, 4000);
    expect(tally.remove((time) => time <= 2000)).toBe(2);
    expect({ count: tally.count, first: tally.first, last: tally.last }).toEqual({
      count: 2,
      first: 3000,
      last: 4000,
    });
    expect(tally.remove((time) => time <= 2500)).toBe(0);
  });

  it('forgets what a finished write counted, keeping what arrived while it was in flight', () => {
    const tally = tallyOf(1000, 2000);
    const writing = tally.batch();
    expect(writing).toEqual({ timed: 2, untimed: 0, count: 2, first: 1000, last: 2000 });
    tally.add(5000);
    tally.forget(writing);
    expect({ count: tally.count, first: tally.first, last: tally.last }).toEqual({
      count: 1,
      first: 5000,
      last: 5000,
    });
  });

  it(`keeps every time (up to ${MAX_TIMES_UNKNOWN}) until bound, so re-read drops are told apart exactly`, () => {
    const tally = new DropTally(0);
    for (let i = 1; i < MAX_TIMES_UNKNOWN + 10; i++) tally.add(i);
    expect(tally.batch()).toMatchObject({ timed: MAX_TIMES_UNKNOWN, untimed: 10 });
    const exact = new DropTally(0);
    for (let i = 1; i < 5000; i++) exact.add(i);
    expect(exact.remove((time) => time <= 3000)).toBe(3001);
    expect(exact.count).toBe(1999);
  });

  it(`keeps ${MAX_TIMES} times once bound; beyond that only counts, and drops those only when surely stale`, () => {
    const tally = new DropTally(0);
    tally.bound();
    for (let i = 1; i < MAX_TIMES + 500; i++) tally.add(i);
    expect(tally.count).toBe(MAX_TIMES + 500);
    expect(tally.batch()).toMatchObject({ timed: MAX_TIMES, untimed: 500 });
    // The untimed drops may be as late as `last`, so they survive a cut before it...
    expect(tally.remove((time) => time < MAX_TIMES + 200)).toBe(MAX_TIMES);
    expect(tally.count).toBe(500);
    // ...and go with one after it.
    expect(tally.remove((time) => time <= MAX_TIMES + 499)).toBe(500);
    expect(tally.count).toBe(0);
  });

  it('settles untimed drops too', () => {
    const tally = new DropTally(0);
    for (let i = 1; i < MAX_TIMES + 10; i++) tally.add(i);
    tally.bound();
    const writing = tally.batch();
    tally.add(99_999);
    tally.forget(writing);
    expect(tally.count).toBe(1);
    expect(tally.last).toBe(99_999);
  });
});

describe('the Event write retry delay', () => {
  /** The wait after the `failures`-th failed call of one Event in a row. */
  const delay = (failures: number, retryAfterMs: number | null, random: () => number) =>
    retryDelay(failures, WRITE_BACKOFF, retryAfterMs, random);

  it('doubles per failure with jitter in the upper half, up to 10 s', () => {
    expect(delay(1, null, () => 0)).toBe(125);
    expect(delay(1, null, () => 1)).toBe(250);
    expect(delay(4, null, () => 1)).toBe(2000);
    expect(delay(31, null, () => 1)).toBe(10_000);
    expect(delay(31, null, () => 0)).toBe(5000);
  });

  it('waits at least as long as Retry-After asks', () => {
    expect(delay(1, 7000, () => 0.5)).toBe(7000);
    expect(delay(7, 1000, () => 1)).toBe(10_000);
  });
});
