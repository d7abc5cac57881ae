// The EventWriter's timed behaviour on a fake clock and a fake API (see fakes.ts): keyed merging, news
// first, isolation of a busy pod, the global rate, retries and expiry, receipts, back-pressure, the
// shutdown deadline, and that every side submitted is accounted for exactly once.

import fc from 'fast-check';
import type { Counter } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { value } from '../pipeline/fixtures.ts';
import { alreadyExists, httpError, podNamed, type Rig, rig, side, T, turn } from './fakes.ts';

async function total(counter: Counter<'outcome'> | Counter<'reason'>): Promise<number> {
  return (await counter.get()).values.reduce((sum, v) => sum + v.value, 0);
}

/** Sides accounted for: reached the API (written, merged, combined) or given up with a reason. */
async function accounted(r: Rig): Promise<number> {
  return (await total(r.metrics.dropSides)) + (await total(r.metrics.eventsDropped));
}

function observe(promise: Promise<unknown>): () => boolean {
  let done = false;
  void promise.then(() => {
    done = true;
  });
  return () => done;
}

const client = podNamed('client');

describe('EventWriter on a fake clock', () => {
  it('merges sides of one Event into one pending write, and what arrives in flight into an absolute PATCH', async () => {
    const r = rig();
    for (let i = 0; i < 5; i++) r.writer.submit(side(client, 'server', T + i));
    expect(await value(r.metrics.queueDepth)).toBe(1);
    let release = () => {};
    r.api.hold = new Promise((resolve) => {
      release = resolve;
    });
    await r.clock.advance(10);
    for (let i = 5; i < 8; i++) r.writer.submit(side(client, 'server', T + i));
    release();
    r.api.hold = null;
    await r.clock.advance(1000);
    expect(r.api.calls.map(({ verb, count }) => [verb, count])).toEqual([
      ['create', 5],
      ['patch', 8],
    ]);
    expect(await value(r.metrics.dropSides, { outcome: 'written' })).toBe(1);
    expect(await value(r.metrics.dropSides, { outcome: 'merged' })).toBe(7);
    expect(await value(r.metrics.queueDepth)).toBe(0);
  });

  it('writes news first: a new Event before count updates, a pod never written to (the quietest first) before one just written', async () => {
    const r = rig({ EVENT_RATE_LIMIT_PER_SECOND: '1' });
    const a = podNamed('a');
    const b = podNamed('b');
    const c = podNamed('c');
    r.writer.submit(side(a, 'one'));
    await r.clock.advance(10);
    expect(r.api.calls.map((call) => call.name.split('.')[0])).toEqual(['a']);
    r.writer.submit(side(a, 'one', T + 1));
    r.writer.submit(side(a, 'two'));
    r.writer.submit(side(b, 'one'));
    r.writer.submit(side(b, 'two'));
    r.writer.submit(side(c, 'one'));
    await r.clock.advance(5_000);
    expect(r.api.calls.map((call) => `${call.verb} ${call.name.split('.')[0]}`)).toEqual([
      'create a',
      'create c',
      'create b',
      'create a',
      'create b',
      'patch a',
    ]);
  });

  it('writes the Event standing for the most drops first among the waiting Events of a pod written before', async () => {
    const r = rig({ EVENT_RATE_LIMIT_PER_SECOND: '1' });
    r.writer.submit(side(client, 'first'));
    await r.clock.advance(10);
    r.writer.submit(side(client, 'few'));
    r.writer.submit(side(client, 'many'));
    r.writer.submit(side(client, 'many'));
    await r.clock.advance(1_000);
    expect(r.api.calls.map((call) => call.count)).toEqual([1, 2]);
  });

  it('never lets a pod past its burst hold back another pod', async () => {
    const r = rig({ EVENT_BURST_PER_POD: '2', EVENT_RATE_LIMIT_PER_SECOND: '100' });
    for (let i = 0; i < 10; i++) r.writer.submit(side(client, `peer-${i}`));
    await r.clock.advance(200);
    r.writer.submit(side(podNamed('other'), 'peer'));
    await r.clock.advance(50);
    const names = r.api.calls.map((call) => call.name.split('.')[0]);
    expect(names).toEqual(['client', 'client', 'other']);
    // Then one write per 10 s for the busy pod.
    await r.clock.advance(10_000);
    expect(r.api.calls).toHaveLength(4);
  });

  it('keeps the node under its global rate with a small burst', async () => {
    const r = rig({ EVENT_RATE_LIMIT_PER_SECOND: '5' });
    for (let i = 0; i < 50; i++) r.writer.submit(side(podNamed(`pod-${i}`), 'peer'));
    await r.clock.advance(1_000);
    expect(r.api.calls.length).toBeLessThanOrEqual(6);
    await r.clock.advance(9_000);
    expect(r.api.calls).toHaveLength(50);
    const times = r.api.calls.map((call) => call.at);
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(199);
  });

  it('retries with backoff, never before Retry-After, and gives up when the drops expire', async () => {
    const r = rig({ PACKET_DROP_EXPIRATION_MINUTES: '1' });
    r.api.script(httpError(500), httpError(429, {}, { 'retry-after': '3' }));
    r.writer.submit(side(client, 'server'));
    await r.clock.advance(10_000);
    const [first, second, third] = r.api.calls.map((call) => call.at);
    expect(r.api.verbs()).toEqual(['create', 'create', 'create']);
    expect(second! - first!).toBeGreaterThanOrEqual(125);
    expect(second! - first!).toBeLessThanOrEqual(260);
    expect(third! - second!).toBeGreaterThanOrEqual(3_000);
    expect(third! - second!).toBeLessThan(3_100);
    expect(await value(r.metrics.dropSides, { outcome: 'written' })).toBe(1);

    const down = rig({ PACKET_DROP_EXPIRATION_MINUTES: '1' });
    down.api.script(...Array.from({ length: 100 }, () => httpError(503)));
    down.writer.submit(side(client, 'server'));
    await down.clock.advance(59_000);
    expect(await value(down.metrics.eventsDropped, { reason: 'expired' })).toBe(0);
    // Noticed at the next retry, at most MAX_BACKOFF_MS later.
    await down.clock.advance(12_000);
    expect(await value(down.metrics.eventsDropped, { reason: 'expired' })).toBe(1);
    expect(await value(down.metrics.queueDepth)).toBe(0);
    expect(down.logs.filter((line) => line.msg.startsWith('event writes failing'))).toHaveLength(1);
    expect(down.logs.filter((line) => line.msg.startsWith('drop sides given up'))).toEqual([
      expect.objectContaining({ level: 40, skipped: 1 }),
    ]);
  });

  it('settles a receipt once the sides before it are written, in order; at once when nothing waits', async () => {
    const r = rig();
    expect(observe(r.writer.settled())()).toBe(false);
    await turn();
    const idle = observe(r.writer.settled());
    await turn();
    expect(idle()).toBe(true);

    let release = () => {};
    r.api.hold = new Promise((resolve) => {
      release = resolve;
    });
    r.writer.submit(side(client, 'server'));
    const first = observe(r.writer.settled());
    await r.clock.advance(200);
    const second = observe(r.writer.settled());
    await r.clock.advance(200);
    expect([first(), second()]).toEqual([false, false]);
    release();
    await r.clock.advance(10);
    expect([first(), second()]).toEqual([true, true]);
  });

  it('waits for room only at the room limit; resolves on room, on abort and on stop, counting the wait', async () => {
    const r = rig({ PACKET_DROP_CHANNEL_BUFFER_SIZE: '1' });
    r.api.hold = new Promise(() => {});
    for (let i = 0; i < 999; i++) r.writer.submit(side(podNamed(`pod-${i}`), 'peer'));
    expect(observe(r.writer.waitForRoom())).toBeTruthy();
    await turn();
    r.writer.submit(side(podNamed('pod-999'), 'peer'));
    const aborter = new AbortController();
    const aborted = observe(r.writer.waitForRoom(aborter.signal));
    const stopped = observe(r.writer.waitForRoom());
    await r.clock.advance(2_000);
    expect([aborted(), stopped()]).toEqual([false, false]);
    aborter.abort();
    await turn();
    expect([aborted(), stopped()]).toEqual([true, false]);
    expect(await value(r.metrics.readWaitSeconds)).toBeCloseTo(2, 3);
    r.writer.stop();
    await turn();
    expect(stopped()).toBe(true);
  });

  it('flushes until its deadline against an API that never answers, then gives the rest up as shutdown', async () => {
    const r = rig();
    r.api.hold = new Promise(() => {});
    for (let i = 0; i < 3; i++) r.writer.submit(side(podNamed(`pod-${i}`), 'peer'));
    r.writer.submit(side(podNamed('pod-0'), 'peer', T + 1));
    const receipt = observe(r.writer.settled());
    const flushed = observe(r.writer.flush(2_000));
    await r.clock.advance(1_999);
    expect(flushed()).toBe(false);
    await r.clock.advance(1);
    expect(flushed()).toBe(true);
    // Three calls were in flight (the process may end before they answer): all four sides are given up.
    expect(await value(r.metrics.eventsDropped, { reason: 'shutdown' })).toBe(4);
    expect(await total(r.metrics.dropSides)).toBe(0);
    expect(r.logs.filter((line) => line.msg.startsWith('stopping with drop sides not written'))).toEqual([
      expect.objectContaining({ sides: 4, events: 3 }),
    ]);
    expect(receipt()).toBe(false);
  });

  it('reconciles with an Event an earlier run wrote, skipping what it counted, and ignores a mark from the future', async () => {
    const r = rig();
    const name = (count: number) => r.api.calls.find((call) => call.count === count)?.name ?? '';
    r.writer.submit(side(client, 'server', T - 5_000));
    await r.clock.advance(10);
    const eventName = name(1);

    const restarted = rig();
    restarted.api.stored.set(eventName, { count: 1, lastDropMs: T - 5_000 });
    restarted.api.script(alreadyExists);
    restarted.writer.submit(side(client, 'server', T - 5_000));
    restarted.writer.submit(side(client, 'server', T - 1_000));
    await restarted.clock.advance(200);
    expect(restarted.api.calls.map(({ verb, count }) => [verb, count])).toEqual([
      ['create', 2],
      ['get', 0],
      ['patch', 2],
    ]);
    expect(await value(restarted.metrics.eventsDropped, { reason: 'already_counted' })).toBe(1);

    const future = rig();
    future.api.stored.set(eventName, { count: 4, lastDropMs: Date.parse('2035-01-01T00:00:00Z') });
    future.api.script(alreadyExists);
    future.writer.submit(side(client, 'server', T - 1_000));
    await future.clock.advance(200);
    expect(future.api.calls.map(({ verb, count }) => [verb, count])).toEqual([
      ['create', 1],
      ['get', 0],
      ['patch', 5],
    ]);
    expect(future.api.stored.get(eventName)?.lastDropMs).toBe(T - 1_000);
  });

  it('re-sends a combined Event’s message with each count update, and counts its sides as combined', async () => {
    const r = rig();
    r.writer.submit(side(client, 'many', T, true));
    await r.clock.advance(10);
    r.writer.submit(side(client, 'many', T + 7, true));
    await r.clock.advance(1_000);
    expect(r.api.calls.map(({ verb, message }) => [verb, message?.endsWith(`(${T + 7})`) ?? false])).toEqual([
      ['create', false],
      ['patch', true],
    ]);
    expect(await value(r.metrics.dropSides, { outcome: 'combined' })).toBe(2);
  });

  it('accounts for every side exactly once, and settles no receipt while a side it covers waits', async () => {
    const step = fc.oneof(
      fc.record({
        kind: fc.constant('submit' as const),
        pod: fc.nat(5),
        peer: fc.nat(3),
        age: fc.nat(90_000),
      }),
      fc.record({ kind: fc.constant('fail' as const), code: fc.constantFrom(403, 404, 409, 422, 500, 503) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.nat(20_000) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
        const r = rig({ PACKET_DROP_EXPIRATION_MINUTES: '1', EVENT_RATE_LIMIT_PER_SECOND: '2' });
        let submitted = 0;
        const receipts: { done: () => boolean; covers: number }[] = [];
        for (const s of steps) {
          if (s.kind === 'submit') {
            const time = T + r.clock.now() - s.age;
            r.writer.submit(side(podNamed(`pod-${s.pod}`), `peer-${s.peer}`, time));
            submitted++;
            receipts.push({ done: observe(r.writer.settled()), covers: submitted });
          } else if (s.kind === 'fail') {
            r.api.script(httpError(s.code));
          } else {
            await r.clock.advance(s.ms);
          }
          for (const receipt of receipts) {
            if (receipt.done()) expect(await accounted(r)).toBeGreaterThanOrEqual(receipt.covers);
          }
        }
        await r.clock.advance(120_000);
        expect(await value(r.metrics.queueDepth)).toBe(0);
        expect(await accounted(r)).toBe(submitted);
        await r.writer.flush(0);
      }),
      { numRuns: 60 },
    );
  });
});
