// PodLookup's time logic on an injected clock, with a list call that answers when the test says: the cache
// of found pods and misses, their expiry, the rate, coalescing and the backoff after failures. The same
// class against the real API server: test/locator/node-scoped-watch.test.ts.

import { describe, expect, it } from 'vitest';
import type { ListPage, ListRequest } from '../../agent/kube/pages.ts';
import type { PodState } from '../../agent/locator/pod-index.ts';
import { type LookupLimits, type LookupOutcome, PodLookup } from '../../agent/locator/pod-lookup.ts';
import { createLogger } from '../../agent/log.ts';

interface Call {
  request: ListRequest;
  answer: (page: ListPage) => void;
  fail: (error: unknown) => void;
}

function apiPod(name: string, ip: string, phase = 'Running'): object {
  return {
    metadata: { name, namespace: 'remote', uid: `uid-${name}` },
    spec: { nodeName: 'node-b' },
    status: { phase, podIP: ip, podIPs: [{ ip }], startTime: '2026-01-01T00:00:00Z' },
  };
}

const page = (...items: object[]): ListPage => ({ items, metadata: { resourceVersion: '1' } });

/** Settles pending promise callbacks: the lookup's own awaits between the answer and its cache. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

function setup(limits: Partial<LookupLimits> = {}) {
  let now = 1000;
  const calls: Call[] = [];
  const outcomes: LookupOutcome[] = [];
  const indexed = new Map<string, PodState>();
  const lookup = new PodLookup({
    list: (request) =>
      new Promise<ListPage>((answer, fail) => {
        calls.push({ request, answer, fail });
      }),
    sink: {
      upsert: (state) => indexed.set(state.pod.name, state),
      remove: (state) => indexed.delete(state.pod.name),
    },
    labelKey: '',
    clock: () => now,
    logger: createLogger('silent'),
    onOutcome: (outcome) => outcomes.push(outcome),
    limits: { entries: 100, foundTtlMs: 30_000, missTtlMs: 5000, perSecond: 10, burst: 3, ...limits },
    backoff: { initialMs: 1000, maxMs: 8000 },
  });
  const advance = (ms: number) => {
    now += ms;
  };
  /** Answers the oldest unanswered call. */
  const answer = async (...items: object[]) => {
    calls.shift()!.answer(page(...items));
    await settle();
  };
  const fail = async (error: unknown) => {
    calls.shift()!.fail(error);
    await settle();
  };
  return { lookup, calls, outcomes, indexed, advance, answer, fail };
}

function apiError(code: number, retryAfter?: string): Error {
  return Object.assign(new Error(`HTTP ${code}`), {
    code,
    body: '{}',
    headers: retryAfter === undefined ? {} : { 'retry-after': retryAfter },
  });
}

describe('PodLookup', () => {
  it('asks the API server for the pods whose status.podIP is the address, and keeps what it found', async () => {
    const { lookup, calls, outcomes, indexed, answer } = setup();
    expect(lookup.ask('10.9.0.5')).toBe('pending');
    expect(calls.map((call) => call.request.fieldSelector)).toEqual(['status.podIP=10.9.0.5']);
    await answer(apiPod('server', '10.9.0.5'));
    expect(lookup.answers).toBe(1);
    expect([...indexed.keys()]).toEqual(['server']);
    expect(indexed.get('server')?.running).toBe(true);
    expect(lookup.ask('10.9.0.5')).toBe('settled');
    expect(calls).toHaveLength(0);
    expect(outcomes).toEqual(['found', 'hit']);
  });

  it('coalesces asks of one address while its lookup is in flight, counted once per lookup', async () => {
    const { lookup, calls, outcomes, answer } = setup();
    expect(lookup.ask('fd00:10::5')).toBe('pending');
    expect(lookup.ask('fd00:10::5')).toBe('pending');
    expect(lookup.ask('fd00:10::5')).toBe('pending');
    expect(calls).toHaveLength(1);
    await answer();
    expect(outcomes).toEqual(['coalesced', 'not_found']);
    // A later lookup of the same address coalesces anew.
    lookup.ask('fd00:10::6');
    lookup.ask('fd00:10::6');
    expect(outcomes.at(-1)).toBe('coalesced');
    expect(outcomes).toHaveLength(3);
  });

  it('remembers a miss for missTtlMs, then looks again and finds a pod that took the address', async () => {
    const { lookup, calls, outcomes, indexed, advance, answer } = setup();
    lookup.ask('10.9.0.6');
    await answer();
    advance(5000);
    expect(lookup.ask('10.9.0.6')).toBe('settled');
    expect(calls).toHaveLength(0);
    advance(1);
    expect(lookup.ask('10.9.0.6')).toBe('pending');
    await answer(apiPod('late', '10.9.0.6'));
    expect(indexed.has('late')).toBe(true);
    expect(outcomes).toEqual(['not_found', 'miss', 'found']);
  });

  it('trusts found pods for foundTtlMs: purge() then takes them out of the index', async () => {
    const { lookup, indexed, advance, answer } = setup();
    lookup.ask('10.9.0.7');
    await answer(apiPod('old', '10.9.0.7', 'Succeeded'), apiPod('new', '10.9.0.7'));
    expect([...indexed.keys()].sort()).toEqual(['new', 'old']);
    advance(30_000);
    lookup.purge();
    expect(indexed.size).toBe(2);
    advance(1);
    lookup.purge();
    expect(indexed.size).toBe(0);
    expect(lookup.size).toBe(0);
  });

  it('is bounded in addresses: the least recently asked leaves, and its pods with it', async () => {
    const { lookup, indexed, advance, answer } = setup({ entries: 2 });
    for (const [name, ip] of [
      ['a', '10.9.1.1'],
      ['b', '10.9.1.2'],
      ['c', '10.9.1.3'],
    ] as const) {
      lookup.ask(ip);
      await answer(apiPod(name, ip));
      advance(1000);
    }
    expect(lookup.size).toBe(2);
    expect([...indexed.keys()].sort()).toEqual(['b', 'c']);
  });

  it('starts at most `burst` lookups at once and `perSecond` after that', async () => {
    const { lookup, calls, outcomes, advance } = setup();
    const states = ['10.9.2.1', '10.9.2.2', '10.9.2.3', '10.9.2.4'].map((ip) => lookup.ask(ip));
    expect(states).toEqual(['pending', 'pending', 'pending', 'pending']);
    expect(calls).toHaveLength(3);
    expect(outcomes).toEqual(['rate_limited']);
    advance(99);
    // Held drops ask again on every recheck: still waiting for the rate, not counted again.
    lookup.ask('10.9.2.4');
    lookup.ask('10.9.2.4');
    expect(calls).toHaveLength(3);
    expect(outcomes).toEqual(['rate_limited']);
    advance(1);
    lookup.ask('10.9.2.4');
    expect(calls.map((call) => call.request.fieldSelector)).toContain('status.podIP=10.9.2.4');
  });

  it('backs every lookup off after a retryable failure, no shorter than Retry-After, and resumes after it', async () => {
    const { lookup, calls, outcomes, advance, fail, answer } = setup();
    lookup.ask('10.9.3.1');
    await fail(apiError(503, '3'));
    expect(lookup.answers).toBe(1);
    // The address is not cached: drops wait for the answer rather than naming it without one.
    expect(lookup.ask('10.9.3.1')).toBe('unavailable');
    expect(lookup.ask('10.9.3.2')).toBe('unavailable');
    advance(2999);
    expect(lookup.ask('10.9.3.1')).toBe('unavailable');
    expect(calls).toHaveLength(0);
    advance(1);
    expect(lookup.ask('10.9.3.1')).toBe('pending');
    await answer(apiPod('back', '10.9.3.1'));
    expect(lookup.ask('10.9.3.1')).toBe('settled');
    // The failure, then each address's wait for the backoff once (the re-ask of 10.9.3.1 is not new).
    expect(outcomes).toEqual(['error', 'error', 'error', 'found', 'hit']);
  });

  it('doubles the wait while the API server keeps failing', async () => {
    const { lookup, calls, advance, fail } = setup();
    lookup.ask('10.9.4.1');
    await fail(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    // Equal jitter: the first wait is 500-1000 ms, the second 1000-2000 ms.
    advance(1000);
    expect(lookup.ask('10.9.4.1')).toBe('pending');
    await fail(apiError(500));
    advance(999);
    expect(lookup.ask('10.9.4.1')).toBe('unavailable');
    advance(1001);
    expect(lookup.ask('10.9.4.1')).toBe('pending');
    expect(calls).toHaveLength(1);
  });

  it('takes a refusal (403) as no pod found for the miss time, counted as an error', async () => {
    const { lookup, outcomes, advance, calls, fail } = setup();
    lookup.ask('10.9.5.1');
    await fail(apiError(403));
    expect(lookup.ask('10.9.5.1')).toBe('settled');
    // Others are still asked: the refusal may be one of a policy on that request alone.
    expect(lookup.ask('10.9.5.2')).toBe('pending');
    advance(5001);
    expect(lookup.ask('10.9.5.1')).toBe('pending');
    expect(calls).toHaveLength(2);
    expect(outcomes).toEqual(['error', 'miss']);
  });
});
