import { promises as dns } from 'node:dns';
import type { LRUCache } from 'lru-cache';
import { boundedLru } from '../lru.ts';
import type { ReverseResolver } from './naming.ts';

/** Resolves one address to a host name, or null when it has none. */
export type ResolveName = (ip: string) => Promise<string | null>;

export interface ReverseDnsOptions {
  resolve?: ResolveName;
  /** Give up waiting after this long and cache the address as nameless. */
  timeoutMs?: number;
  ttlMs?: number;
  negativeTtlMs?: number;
  maxEntries?: number;
  maxInFlight?: number;
  /** The clock the cache measures TTLs by: a monotonic one (performance.now) unless given. */
  now?: () => number;
}

/** A name we are willing to print in an Event message: RFC 1123 host name characters only. */
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;

/**
 * getnameinfo through the system resolver, so /etc/hosts and nsswitch apply as for every other tool in the
 * container (c-ares' reverse() reads neither the same way). It blocks a libuv pool thread until the resolver
 * gives up, which is why ReverseDns bounds the calls in flight below the pool's four threads.
 */
export const systemResolve: ResolveName = async (ip) => {
  try {
    const { hostname } = await dns.lookupService(ip, 0);
    return HOST_NAME.test(hostname) && hostname !== ip ? hostname.replace(/\.$/, '') : null;
  } catch {
    return null;
  }
};

/** '' marks a cached negative answer (lru-cache values cannot be null). */
const NO_NAME = '';

/**
 * Non-blocking reverse DNS: lookup() answers from the cache at once and otherwise starts a lookup in the
 * background, so the drop at hand is named by IP and later drops from the same peer by name.
 * Bounds: 10,000 names cover the peers of one node many times over at ~100 bytes each (~1 MB); negative
 * answers expire sooner so a peer that gains a PTR record is named within a minute.
 */
export class ReverseDns implements ReverseResolver {
  private readonly cache: LRUCache<string, string>;
  private readonly pending = new Set<string>();
  private readonly resolve: ResolveName;
  private readonly timeoutMs: number;
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  private readonly maxInFlight: number;

  constructor(options: ReverseDnsOptions = {}) {
    this.resolve = options.resolve ?? systemResolve;
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.ttlMs = options.ttlMs ?? 5 * 60_000;
    this.negativeTtlMs = options.negativeTtlMs ?? 60_000;
    this.maxInFlight = options.maxInFlight ?? 2;
    this.cache = boundedLru(options.maxEntries ?? 10_000, options.now ? { perf: { now: options.now } } : {});
  }

  lookup(ip: string): string | undefined {
    const cached = this.cache.get(ip);
    if (cached !== undefined) return cached === NO_NAME ? undefined : cached;
    if (!this.pending.has(ip) && this.pending.size < this.maxInFlight) this.start(ip);
    return undefined;
  }

  /** Lookups still running, for tests and shutdown. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * The first of answer and timeout is cached. The slot stays taken until the resolver call itself ends,
   * because a timed-out getnameinfo still occupies its pool thread.
   */
  private start(ip: string): void {
    this.pending.add(ip);
    let settled = false;
    const store = (name: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      this.cache.set(ip, name ?? NO_NAME, { ttl: name === null ? this.negativeTtlMs : this.ttlMs });
    };
    const timer = setTimeout(() => store(null), this.timeoutMs);
    timer.unref();
    this.resolve(ip)
      .catch(() => null)
      .then(store)
      .finally(() => this.pending.delete(ip));
  }
}
