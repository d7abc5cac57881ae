import { type Backoff, retryDelay } from '../backoff.ts';
import { MAX_FUTURE_SKEW_MS } from '../filters/expiry.ts';
import type { Logger } from '../log.ts';
import { boundedLru } from '../lru.ts';
import type { Metrics } from '../metrics.ts';
import { type EventApi, type EventApiError, type EventCount, toEventApiError, type Verb } from './api.ts';
import { type EventConfig, eventBody } from './event.ts';
import type { PendingEvent, Write } from './pending.ts';

const KNOWN_EVENTS = 10_000;
/**
 * Retries of one Event's write: the first after 125-250 ms, and at least every 5-10 s however long the
 * API server fails, so that its recovery is noticed within seconds.
 */
export const WRITE_BACKOFF: Backoff = { initialMs: 250, maxMs: 10_000, jitter: 0.5 };

/** An Event this agent wrote or read. */
interface KnownEvent extends EventCount {
  /** Drops at or before this time are counted by an earlier run of the agent (-Infinity if none is). */
  countedThrough: number;
}

/**
 * How a call ended:
 * - counted: the call's drops are in the Event;
 * - again: the answer calls for another call about the same drops (re-create, reconcile), at once;
 * - dropped: the API refuses these drops for good;
 * - retry: try the same again after a backoff.
 */
export type CallOutcome =
  | { kind: 'counted' | 'again' }
  | { kind: 'dropped'; reason: string }
  | { kind: 'retry'; delayMs: number };

export interface EventStoreOptions {
  api: EventApi;
  config: EventConfig;
  metrics: Metrics;
  log: Logger;
  /** The wall clock, epoch ms: a last-drop mark beyond it is not believed. */
  now: () => number;
}

/**
 * The create / reconcile / patch sequence of one pending Event against the API, and what the agent knows
 * of the Events it wrote: their count, last drop, and which drops an earlier run already counted.
 */
export class EventStore {
  private readonly api: EventApi;
  private readonly config: EventConfig;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly known = boundedLru<string, KnownEvent>(KNOWN_EVENTS);
  private readonly forbiddenLogged = new Set<Verb>();
  private failing = false;

  constructor(options: EventStoreOptions) {
    this.api = options.api;
    this.config = options.config;
    this.metrics = options.metrics;
    this.log = options.log;
    this.now = options.now;
  }

  /** Whether a write for this key updates an Event that exists rather than creating it. */
  exists(key: string): boolean {
    return this.known.has(key);
  }

  /** Drops of this key at or before this time are already counted by an earlier run. */
  countedThrough(key: string): number {
    return this.known.peek(key)?.countedThrough ?? Number.NEGATIVE_INFINITY;
  }

  /** One call for the entry; `write.drops` are what it carries. */
  async call(entry: PendingEvent, write: Write): Promise<CallOutcome> {
    const known = this.known.get(entry.key);
    const verb: Verb = entry.stage === 'reconcile' ? 'get' : known === undefined ? 'create' : 'patch';
    try {
      if (verb === 'get') await this.reconcile(entry);
      else if (known === undefined) await this.create(entry, write);
      else await this.patch(entry, write, known);
      this.recovered();
      return { kind: verb === 'get' ? 'again' : 'counted' };
    } catch (err) {
      return this.failed(entry, toEventApiError(verb, err));
    }
  }

  /**
   * Learns what the Event a create found already there counts. A mark from the future (a line dated
   * ahead of the clock, written before the agent knew better) says nothing true: it is ignored, so it
   * never shadows later drops, and the next write moves lastTimestamp back to a real drop's time. The
   * checkpoint already keeps re-read lines to those not yet written.
   */
  private async reconcile(entry: PendingEvent): Promise<void> {
    const { count, lastDropMs } = await this.api.read(entry.intent.pod.namespace, entry.name);
    const mark = lastDropMs - this.now() > MAX_FUTURE_SKEW_MS ? Number.NEGATIVE_INFINITY : lastDropMs;
    this.known.set(entry.key, { count, lastDropMs: mark, countedThrough: mark });
    entry.stage = 'write';
  }

  private async create(entry: PendingEvent, write: Write): Promise<void> {
    const { drops } = write;
    await this.api.create(eventBody(entry.intent, this.config, drops), drops.last);
    this.known.set(entry.key, {
      count: drops.count,
      lastDropMs: drops.last,
      countedThrough: Number.NEGATIVE_INFINITY,
    });
    this.metrics.eventsCreated.inc();
  }

  /**
   * Sets the absolute count, so a retried PATCH whose first answer was lost changes nothing. A combined
   * Event's message counts its peers, so it is written again too.
   */
  private async patch(entry: PendingEvent, write: Write, known: KnownEvent): Promise<void> {
    const { drops } = write;
    const counted = { count: known.count + drops.count, lastDropMs: Math.max(known.lastDropMs, drops.last) };
    const message = entry.intent.combined ? entry.intent.message : undefined;
    await this.api.patch(entry.intent.pod.namespace, entry.name, counted, message);
    this.known.set(entry.key, { ...known, ...counted });
    this.metrics.eventsPatched.inc();
  }

  /** Any answer but a retryable failure means the API server is reachable and working. */
  private recovered(): void {
    if (!this.failing) return;
    this.failing = false;
    this.log.info('event writes succeed again');
  }

  private failed(entry: PendingEvent, error: EventApiError): CallOutcome {
    const { namespace } = entry.intent.pod;
    const where = { verb: error.verb, namespace, name: entry.name, status: error.status };
    if (error.kind === 'not_found' && error.verb !== 'create') {
      // The Event expired (default TTL 1 h) or was deleted: the next call creates it anew.
      this.known.delete(entry.key);
      entry.stage = 'write';
      return { kind: 'again' };
    }
    if (error.kind === 'already_exists') {
      entry.stage = 'reconcile';
      return { kind: 'again' };
    }
    this.metrics.eventsFailed.inc({ reason: error.reason });
    if (error.kind === 'forbidden') {
      this.recovered();
      if (!this.forbiddenLogged.has(error.verb)) {
        this.forbiddenLogged.add(error.verb);
        this.log.error(
          { ...where, detail: error.message },
          `cannot ${error.verb} events in namespace "${namespace}": grant verbs [${error.verb}] on resource "events" (apiGroups [""]) to the agent's ServiceAccount`,
        );
      }
      return { kind: 'dropped', reason: 'forbidden' };
    }
    if (error.kind === 'retry') {
      if (!this.failing) {
        this.failing = true;
        this.log.warn(
          { ...where, reason: error.reason, detail: error.message },
          'event writes failing; retrying until the drops expire',
        );
      }
      return { kind: 'retry', delayMs: retryDelay(entry.failures + 1, WRITE_BACKOFF, error.retryAfterMs) };
    }
    this.recovered();
    // rejected, or not_found on create: the namespace is gone.
    this.log.warn(
      { ...where, reason: error.reason, detail: error.message },
      'event rejected by the API server',
    );
    return { kind: 'dropped', reason: error.reason };
  }
}
