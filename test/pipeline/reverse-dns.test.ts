import { promises as dns } from 'node:dns';
import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ReverseDns, systemResolve } from '../../agent/locator/reverse-dns.ts';

/** Polls the resolver the way the pipeline would: one cheap lookup per drop until a name is cached. */
async function eventually(resolver: ReverseDns, ip: string): Promise<string | undefined> {
  for (let i = 0; i < 100 && resolver.inFlight > 0; i++) await new Promise((r) => setTimeout(r, 10));
  return resolver.lookup(ip);
}

function deferred(): { promise: Promise<string | null>; resolve: (name: string | null) => void } {
  let resolve: (name: string | null) => void = () => {};
  const promise = new Promise<string | null>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('systemResolve', () => {
  it('answers 127.0.0.1 from /etc/hosts', async () => {
    const hosts = await readFile('/etc/hosts', 'utf8').catch(() => '');
    const entry = hosts
      .split('\n')
      .map((line) => line.replace(/#.*/, '').trim().split(/\s+/))
      .find((fields) => fields[0] === '127.0.0.1' && fields.length > 1);
    const expected = entry?.[1] ?? (await dns.lookupService('127.0.0.1', 0)).hostname;
    expect(await systemResolve('127.0.0.1')).toBe(expected);
  });

  // How long the system resolver takes is its own business: ReverseDns bounds the wait (timeout test below).
  it('answers null for a documentation address without a name', async () => {
    expect(await systemResolve('192.0.2.1')).toBeNull();
  });
});

describe('ReverseDns', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('returns undefined at once, then the cached name', async () => {
    const resolver = new ReverseDns();
    const expected = await systemResolve('127.0.0.1');
    expect(resolver.lookup('127.0.0.1')).toBeUndefined();
    expect(await eventually(resolver, '127.0.0.1')).toBe(expected ?? undefined);
  });

  it('caches a failed lookup as nameless instead of asking again', async () => {
    let calls = 0;
    const resolver = new ReverseDns({
      resolve: async () => {
        calls++;
        return null;
      },
    });
    resolver.lookup('192.0.2.1');
    expect(await eventually(resolver, '192.0.2.1')).toBeUndefined();
    resolver.lookup('192.0.2.1');
    expect(calls).toBe(1);
    expect(resolver.inFlight).toBe(0);
  });

  it('never blocks: a hanging resolver times out as nameless and holds its slot until it ends', async () => {
    vi.useFakeTimers();
    const hang = deferred();
    const asked: string[] = [];
    const resolver = new ReverseDns({
      resolve: (ip) => {
        asked.push(ip);
        return hang.promise;
      },
      timeoutMs: 20,
      maxInFlight: 1,
    });
    expect(resolver.lookup('192.0.2.1')).toBeUndefined();
    await vi.advanceTimersByTimeAsync(20);
    expect(resolver.lookup('192.0.2.1')).toBeUndefined();
    expect(resolver.inFlight).toBe(1);
    // The slot is still taken: another address waits, even though the first one timed out.
    expect(resolver.lookup('192.0.2.2')).toBeUndefined();
    expect(asked).toEqual(['192.0.2.1']);
    hang.resolve('late.example');
    await vi.advanceTimersByTimeAsync(0);
    expect(resolver.inFlight).toBe(0);
    // The timeout's nameless answer stands; the late name does not replace it.
    expect(resolver.lookup('192.0.2.1')).toBeUndefined();
    expect(asked).toEqual(['192.0.2.1']);
  });

  it('starts at most maxInFlight lookups and one per address', () => {
    const asked: string[] = [];
    const resolver = new ReverseDns({
      resolve: (ip) => {
        asked.push(ip);
        return deferred().promise;
      },
      maxInFlight: 2,
    });
    for (const ip of ['192.0.2.1', '192.0.2.1', '192.0.2.2', '192.0.2.3']) resolver.lookup(ip);
    expect(asked).toEqual(['192.0.2.1', '192.0.2.2']);
  });

  it('expires negative answers after their TTL', async () => {
    vi.useFakeTimers();
    let answer: string | null = null;
    let calls = 0;
    const resolver = new ReverseDns({
      resolve: async () => {
        calls++;
        return answer;
      },
      negativeTtlMs: 30_000,
      // The fake Date, not the fake performance.now(): lru-cache reads a start time of 0 as "no TTL".
      now: () => Date.now(),
    });
    resolver.lookup('192.0.2.9');
    await vi.advanceTimersByTimeAsync(0);
    expect(resolver.inFlight).toBe(0);
    answer = 'named.example';
    await vi.advanceTimersByTimeAsync(29_000);
    expect(resolver.lookup('192.0.2.9')).toBeUndefined();
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(2000);
    expect(resolver.lookup('192.0.2.9')).toBeUndefined();
    expect(calls).toBe(2);
    await vi.advanceTimersByTimeAsync(0);
    expect(resolver.lookup('192.0.2.9')).toBe('named.example');
  });
});
