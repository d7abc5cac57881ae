import { promises as dns } from 'node:dns';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
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

  it('answers null for a documentation address without a name, quickly', async () => {
    const started = performance.now();
    expect(await systemResolve('192.0.2.1')).toBeNull();
    expect(performance.now() - started).toBeLessThan(5000);
  });
});

describe('ReverseDns', () => {
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
    const hang = deferred();
    const resolver = new ReverseDns({ resolve: () => hang.promise, timeoutMs: 20, maxInFlight: 1 });
    expect(resolver.lookup('192.0.2.1')).toBeUndefined();
    await new Promise((r) => setTimeout(r, 50));
    expect(resolver.lookup('192.0.2.1')).toBeUndefined();
    expect(resolver.inFlight).toBe(1);
    hang.resolve('late.example');
    await eventually(resolver, '192.0.2.1');
    expect(resolver.inFlight).toBe(0);
    expect(resolver.lookup('192.0.2.1')).toBeUndefined();
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
    let answer: string | null = null;
    const resolver = new ReverseDns({ resolve: async () => answer, negativeTtlMs: 30 });
    resolver.lookup('192.0.2.9');
    expect(await eventually(resolver, '192.0.2.9')).toBeUndefined();
    answer = 'named.example';
    await new Promise((r) => setTimeout(r, 60));
    expect(resolver.lookup('192.0.2.9')).toBeUndefined();
    expect(await eventually(resolver, '192.0.2.9')).toBe('named.example');
  });
});
