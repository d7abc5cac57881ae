import { describe, expect, it } from 'vitest';
import { futureDated, isExpired, MAX_FUTURE_SKEW_MS } from '../../agent/filters/expiry.ts';
import { RepeatFilter } from '../../agent/filters/repeats.ts';
import { flowKey } from '../../agent/flow.ts';
import { drop, icmpDrop, MINUTE, T0 } from './fixtures.ts';

describe('isExpired', () => {
  const expiration = 10 * MINUTE;

  it('keeps a drop exactly at the expiration and expires one just older', () => {
    expect(isExpired(drop({ time: T0 }), T0 + expiration, expiration)).toBe(false);
    expect(isExpired(drop({ time: T0 }), T0 + expiration + 1, expiration)).toBe(true);
  });

  it('never expires a drop stamped after now', () => {
    expect(isExpired(drop({ time: T0 + MINUTE }), T0, expiration)).toBe(false);
  });
});

describe('futureDated', () => {
  it('believes a drop up to the skew ahead of now and no further', () => {
    expect(futureDated(drop({ time: T0 + MAX_FUTURE_SKEW_MS }), T0)).toBe(false);
    expect(futureDated(drop({ time: T0 + MAX_FUTURE_SKEW_MS + 1 }), T0)).toBe(true);
    expect(futureDated(drop({ time: Date.parse('2035-01-01T00:00:00Z') }), T0)).toBe(true);
  });

  it('never finds a drop from now or the past future-dated', () => {
    expect(futureDated(drop({ time: T0 }), T0)).toBe(false);
    expect(futureDated(drop({ time: T0 - 365 * 24 * 60 * MINUTE }), T0)).toBe(false);
  });
});

describe('RepeatFilter', () => {
  const interval = 2 * MINUTE;

  function posted(filter: RepeatFilter, time: number): void {
    filter.markPosted(drop({ time }));
  }

  it('suppresses just under the interval, posts exactly at and over it', () => {
    const filter = new RepeatFilter(interval);
    posted(filter, T0);
    expect(filter.isRepeat(drop({ time: T0 + interval - 1 }))).toBe(true);
    expect(filter.isRepeat(drop({ time: T0 + interval }))).toBe(false);
    expect(filter.isRepeat(drop({ time: T0 + interval + 1 }))).toBe(false);
  });

  it('measures from the last posted drop, not from suppressed ones', () => {
    const filter = new RepeatFilter(interval);
    posted(filter, T0);
    expect(filter.isRepeat(drop({ time: T0 + MINUTE }))).toBe(true);
    expect(filter.isRepeat(drop({ time: T0 + interval }))).toBe(false);
    posted(filter, T0 + interval);
    expect(filter.isRepeat(drop({ time: T0 + 2 * interval - 1 }))).toBe(true);
  });

  it('never suppresses a flow that was not posted', () => {
    expect(new RepeatFilter(interval).isRepeat(drop())).toBe(false);
  });

  it('keys on src, dst, dst port and protocol only', () => {
    const filter = new RepeatFilter(interval);
    posted(filter, T0);
    expect(filter.isRepeat(drop({ srcPort: 1, in: 'eth1', host: 'other' }))).toBe(true);
    expect(filter.isRepeat(drop({ dstPort: 12866 }))).toBe(false);
    expect(filter.isRepeat(drop({ proto: 'UDP' }))).toBe(false);
    expect(filter.isRepeat(drop({ src: '10.4.1.7' }))).toBe(false);
    expect(filter.isRepeat(drop({ dst: '10.4.0.17' }))).toBe(false);
  });

  it('treats port-less drops of one protocol between the same hosts as one flow', () => {
    expect(flowKey(icmpDrop())).toBe(flowKey(icmpDrop({ icmpType: 3, icmpCode: 4 })));
    expect(flowKey(icmpDrop())).not.toBe(flowKey(drop()));
  });

  it('counts a slightly out-of-order line as a repeat and never moves the window back', () => {
    const filter = new RepeatFilter(interval);
    posted(filter, T0);
    expect(filter.isRepeat(drop({ time: T0 - 1000 }))).toBe(true);
    posted(filter, T0 - 5 * MINUTE);
    expect(filter.isRepeat(drop({ time: T0 + interval - 1 }))).toBe(true);
  });

  it('never suppresses with a zero interval', () => {
    const filter = new RepeatFilter(0);
    posted(filter, T0);
    expect(filter.isRepeat(drop({ time: T0 }))).toBe(false);
  });

  it('is bounded: the least recently used flow is forgotten first', () => {
    const filter = new RepeatFilter(interval, 2);
    for (const dst of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) filter.markPosted(drop({ dst }));
    expect(filter.isRepeat(drop({ dst: '10.0.0.1' }))).toBe(false);
    expect(filter.isRepeat(drop({ dst: '10.0.0.3' }))).toBe(true);
  });
});
