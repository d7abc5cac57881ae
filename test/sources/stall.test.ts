// The stall rule on an injected clock: unread input with nothing taken, at every look, for the limit.

import { describe, expect, it } from 'vitest';
import { StallWatch } from '../../agent/sources/stall.ts';

const LIMIT = 60_000;

describe('StallWatch', () => {
  it('is stalled once unread input has waited the limit with nothing taken', () => {
    const watch = new StallWatch(LIMIT);
    watch.observe({ taken: 5, unread: false }, false, 0);
    watch.observe({ taken: 5, unread: true }, false, 10_000);
    watch.observe({ taken: 5, unread: true }, false, 69_999);
    expect(watch.stalledMs(69_999)).toBe(59_999);
    expect(watch.stalled(69_999)).toBe(false);
    expect(watch.stalled(70_000)).toBe(true);
    expect(watch.stalledMs(75_000)).toBe(65_000);
  });

  it('is not stalled while reading moves, however much is unread at each look', () => {
    const watch = new StallWatch(LIMIT);
    for (let look = 0; look < 20; look++) watch.observe({ taken: look, unread: true }, false, look * 10_000);
    expect(watch.stalledMs(200_000)).toBe(0);
    expect(watch.stalled(200_000)).toBe(false);
  });

  it('is not stalled while nothing is unread, however long nothing is taken', () => {
    const watch = new StallWatch(LIMIT);
    for (let look = 0; look < 20; look++) watch.observe({ taken: 7, unread: false }, false, look * 10_000);
    expect(watch.stalled(200_000)).toBe(false);
  });

  it('counts no stall while the handler holds a batch (back-pressure), and starts afresh after it', () => {
    const watch = new StallWatch(LIMIT);
    watch.observe({ taken: 1, unread: true }, false, 0);
    for (let look = 1; look <= 10; look++) watch.observe({ taken: 1, unread: true }, true, look * 10_000);
    expect(watch.stalled(100_000)).toBe(false);
    watch.observe({ taken: 1, unread: true }, false, 110_000);
    expect(watch.stalledMs(110_000)).toBe(0);
    expect(watch.stalled(169_999)).toBe(false);
    expect(watch.stalled(170_000)).toBe(true);
  });

  it('ends a stall as soon as a look finds reading moved again', () => {
    const watch = new StallWatch(LIMIT);
    watch.observe({ taken: 1, unread: true }, false, 0);
    watch.observe({ taken: 1, unread: true }, false, 0);
    expect(watch.stalled(LIMIT)).toBe(true);
    watch.observe({ taken: 2, unread: true }, false, LIMIT);
    expect(watch.stalled(LIMIT)).toBe(false);
    expect(watch.stalledMs(LIMIT)).toBe(0);
  });

  it('needs two looks: the first only learns where reading stands', () => {
    const watch = new StallWatch(LIMIT);
    watch.observe({ taken: 0, unread: true }, false, 0);
    expect(watch.stalled(LIMIT * 10)).toBe(false);
  });
});
