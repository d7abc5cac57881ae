import type { LRUCache } from 'lru-cache';
import { type Backoff, retryDelay } from '../backoff.ts';
import { requestSignal } from '../kube/client.ts';
import { type ApiFailure, classifyApiError, describeApiFailure } from '../kube/errors.ts';
import { cappedRetryAfterMs, type ListWatchSink } from '../kube/list-watch.ts';
import { type ListCall, listAll } from '../kube/pages.ts';
import type { Logger } from '../log.ts';
import { boundedLru } from '../lru.ts';
import { TokenBucket } from '../rate-limit.ts';
import type { PodState } from './pod-index.ts';
import { apiPodState } from './pod-watch.ts';

/**
 * How an ask was answered: from the cache (hit: pods found earlier, miss: none found lately), by the API
 * server (found, not_found), or not yet (error: the API server failed or is backed off from, rate_limited,
 * coalesced: a lookup of that address is in flight).
 */
export type LookupOutcome = 'hit' | 'miss' | 'found' | 'not_found' | 'error' | 'rate_limited' | 'coalesced';

/**
 * settled: the API server's answer is in the pod index (pods found, or none); pending: a lookup is on its
 * way or waits for the rate; unavailable: the API server failed, and lookups wait for its backoff.
 */
export type LookupState = 'settled' | 'pending' | 'unavailable';

/** What the pipeline asks about a drop address that no local pod or node has. */
export interface PeerLookup {
  ask(ip: string): LookupState;
  /** Grows with every lookup that ends, so that a caller waiting on lookups knows when to ask again. */
  readonly answers: number;
}

export interface LookupLimits {
  /** Addresses cached (found pods and misses); the least recently asked is forgotten first. */
  entries: number;
  /** How long found pods are trusted: past it, the address is looked up again (the pod may have finished). */
  foundTtlMs: number;
  /** How long "no pod has it" is remembered: a pod starting there is found after it. */
  missTtlMs: number;
  /** Lookups per second, and the burst allowed after a quiet time. */
  perSecond: number;
  burst: number;
}

export const LOOKUP_LIMITS: LookupLimits = {
  entries: 10_000,
  foundTtlMs: 30_000,
  missTtlMs: 5_000,
  perSecond: 10,
  burst: 20,
};

/** The pods whose first address is `ip`: the one address field the API server can select pods by. */
export const podIpSelector = (ip: string): string => `status.podIP=${ip}`;

const DEFAULT_BACKOFF: Pick<Backoff, 'initialMs' | 'maxMs'> = { initialMs: 500, maxMs: 30_000 };
const REQUEST_TIMEOUT_MS = 10_000;

type Entry = { kind: 'found'; pods: PodState[] } | { kind: 'missing' };

export interface PodLookupOptions {
  /** Lists pods; asked with fieldSelector status.podIP=<address>. */
  list: ListCall;
  /** Where found pods go, and leave when their entry does (PodDirectory.remote). */
  sink: Omit<ListWatchSink<PodState>, 'replace'>;
  /** POD_IDENTIFIER_LABEL, as for the pod watch. */
  labelKey: string;
  /**
   * Milliseconds on a monotonic clock, above 0 (lru-cache takes a start of 0 for "no TTL"): the TTLs, the
   * rate and the backoff run on it.
   */
  clock: () => number;
  logger: Logger;
  onOutcome?: (outcome: LookupOutcome) => void;
  limits?: Partial<LookupLimits>;
  backoff?: Pick<Backoff, 'initialMs' | 'maxMs'>;
}

/**
 * Pods of other nodes, found by address when a drop names one: `GET /api/v1/pods?fieldSelector=status.podIP=`.
 * The API server can select a pod by its first address only (status.podIP is podIPs[0]; podIPs is not a
 * selectable field), so a dual-stack pod's second address is found only through its first (its pods carry
 * both). Answers are cached by address, misses briefly; lookups are rate-bounded, one per address at a time,
 * and a failing API server is backed off from as a whole. Nothing here throws to the caller.
 */
export class PodLookup implements PeerLookup {
  private readonly options: PodLookupOptions;
  private readonly limits: LookupLimits;
  private readonly backoff: Backoff;
  private readonly cache: LRUCache<string, Entry>;
  private readonly bucket: TokenBucket;
  private readonly inFlight = new Set<string>();
  /**
   * The outcome last counted for an address that waits (for the rate, the backoff, or its lookup in flight):
   * drops held for it ask again on every recheck, and those asks are not new ones. Bounded like the cache:
   * an address whose drops stopped waiting is never looked up, and must not stay.
   */
  private readonly waiting: LRUCache<string, LookupOutcome>;
  private readonly stopping = new AbortController();
  private readonly log: Logger;
  /** Retryable failures in a row, for the backoff. */
  private failures = 0;
  /** Whether the last lookup failed: the first failure of a run is a warning, the others debug. */
  private failing = false;
  /** No lookup starts before this (clock ms) while the API server fails. */
  private retryAt = Number.NEGATIVE_INFINITY;
  private ended = 0;

  constructor(options: PodLookupOptions) {
    this.options = options;
    this.limits = { ...LOOKUP_LIMITS, ...options.limits };
    this.backoff = { ...(options.backoff ?? DEFAULT_BACKOFF), jitter: 0.5 };
    this.log = options.logger.child({ lookup: 'pods' });
    this.cache = boundedLru<string, Entry>(this.limits.entries, {
      ttl: this.limits.missTtlMs,
      // Checked against the clock every time, so that an injected clock is obeyed to the millisecond.
      ttlResolution: 0,
      perf: { now: options.clock },
      dispose: (entry) => {
        if (entry.kind === 'found') for (const pod of entry.pods) options.sink.remove(pod);
      },
    });
    this.waiting = boundedLru<string, LookupOutcome>(this.limits.entries);
    this.bucket = new TokenBucket(this.limits.perSecond, this.limits.burst, options.clock());
  }

  get answers(): number {
    return this.ended;
  }

  /** Addresses cached, expired ones included until purge() or an ask finds them. */
  get size(): number {
    return this.cache.size;
  }

  ask(ip: string): LookupState {
    const entry = this.cache.get(ip);
    if (entry !== undefined) return this.count(entry.kind === 'found' ? 'hit' : 'miss', 'settled');
    if (this.inFlight.has(ip)) return this.countWait(ip, 'coalesced', 'pending');
    const now = this.options.clock();
    if (now < this.retryAt) return this.countWait(ip, 'error', 'unavailable');
    if (!this.bucket.take(now)) return this.countWait(ip, 'rate_limited', 'pending');
    this.waiting.delete(ip);
    this.inFlight.add(ip);
    void this.lookUp(ip);
    return 'pending';
  }

  /** Drops expired entries, and their pods from the index: a pod found a while ago may have finished. */
  purge(): void {
    this.cache.purgeStale();
  }

  /** Cancels the lookups in flight (at shutdown). */
  stop(): void {
    this.stopping.abort();
  }

  private count(outcome: LookupOutcome, state: LookupState): LookupState {
    this.options.onOutcome?.(outcome);
    return state;
  }

  /** Counts a wait once per address and kind, however often held drops ask again meanwhile. */
  private countWait(ip: string, outcome: LookupOutcome, state: LookupState): LookupState {
    if (this.waiting.get(ip) === outcome) return state;
    this.waiting.set(ip, outcome);
    return this.count(outcome, state);
  }

  private async lookUp(ip: string): Promise<void> {
    const { list, labelKey } = this.options;
    const options = requestSignal(() =>
      AbortSignal.any([this.stopping.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
    );
    try {
      const { items } = await listAll(list, (object) => apiPodState(object, labelKey), {
        options,
        fieldSelector: podIpSelector(ip),
      });
      this.recovered();
      this.settle(ip, items);
    } catch (error) {
      this.failed(ip, classifyApiError(error));
    } finally {
      this.inFlight.delete(ip);
      this.waiting.delete(ip);
      this.ended++;
    }
  }

  private settle(ip: string, pods: PodState[]): void {
    if (pods.length === 0) {
      this.cache.set(ip, { kind: 'missing' });
      this.count('not_found', 'settled');
      return;
    }
    this.cache.set(ip, { kind: 'found', pods }, { ttl: this.limits.foundTtlMs });
    for (const pod of pods) this.options.sink.upsert(pod);
    this.count('found', 'settled');
  }

  /**
   * A failure the same request may survive (unreachable, 5xx, 429) backs every lookup off; one it cannot
   * (forbidden, invalid) is taken as "no pod found" for the miss time, so drops are not held for nothing.
   */
  private failed(ip: string, failure: ApiFailure): void {
    this.count('error', 'unavailable');
    const details: Record<string, unknown> = { address: ip, error: describeApiFailure(failure) };
    if (failure.retryable) {
      this.failures++;
      const delayMs = retryDelay(this.failures, this.backoff, cappedRetryAfterMs(failure));
      this.retryAt = this.options.clock() + delayMs;
      Object.assign(details, { attempt: this.failures, retryInMs: Math.round(delayMs) });
    } else {
      this.cache.set(ip, { kind: 'missing' });
    }
    if (this.failing) {
      this.log.debug(details, 'pod lookup failed again');
      return;
    }
    this.failing = true;
    this.log.warn(
      details,
      failure.retryable
        ? 'pod lookup failed; drops wait for it, retrying with backoff'
        : 'pod lookup refused; the address is named without a pod',
    );
  }

  private recovered(): void {
    this.failures = 0;
    if (!this.failing) return;
    this.failing = false;
    this.log.info('pod lookups answered again');
  }
}
