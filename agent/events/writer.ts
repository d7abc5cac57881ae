import type { KubeConfig } from '@kubernetes/client-node';
import { LRUCache } from 'lru-cache';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { EventSink } from '../pipeline.ts';
import type { EventIntent } from '../types.ts';
import { createEventApi, type EventApi, type EventApiError, toEventApiError, type Verb } from './api.ts';
import { aggregationKey, type EventConfig, eventBody, eventName } from './event.ts';
import { KeyedBuckets, TokenBucket } from './rate-limit.ts';

/** Drop times kept per pending write; beyond that a storm only adds to the count. */
export const MAX_TIMES = 1000;
/** Writes in flight at once: enough to reach the rate limit over a slow link, few enough to stay polite. */
const MAX_IN_FLIGHT = 4;
/** A pod past its burst gets one write per 10 s, like client-go's spam filter but less stingy. */
const POD_REFILL_PER_SECOND = 0.1;
const KNOWN_EVENTS = 10_000;
const POD_BUCKETS = 10_000;
/**
 * Distinct pending writes accepted past queueSize. waitForCapacity holds the reader at queueSize, but the
 * batch it already read is never thrown away; this only bounds memory against a caller that does not wait.
 */
const OVERFLOW = 10_000;
const BASE_BACKOFF_MS = 250;
/** Retries keep coming at least this often, so a recovered API server is noticed within seconds. */
const MAX_BACKOFF_MS = 10_000;

export type WriterConfig = EventConfig &
  Pick<Config, 'queueSize' | 'expirationMs' | 'eventRateLimit' | 'eventBurstPerPod'>;

interface CommonOptions {
  config: WriterConfig;
  metrics: Metrics;
  log: Logger;
  /** The log clock that drop times are compared with for expiry, epoch ms. */
  now?: () => number;
}

export type EventWriterOptions = CommonOptions & ({ kubeConfig: KubeConfig } | { api: EventApi });

export interface TallySnapshot {
  timed: number;
  untimed: number;
  count: number;
  first: number;
  last: number;
}

/**
 * The drops one pending write stands for. Their times let a restarted agent skip drops an Event already
 * counts; past MAX_TIMES only the number grows, and those untimed drops are taken to be no later than
 * `last` and no earlier than `first`.
 */
export class DropTally {
  private readonly times: number[];
  private untimed = 0;
  private firstTime: number;
  private lastTime: number;

  constructor(time: number) {
    this.times = [time];
    this.firstTime = time;
    this.lastTime = time;
  }

  get count(): number {
    return this.times.length + this.untimed;
  }

  get first(): number {
    return this.firstTime;
  }

  get last(): number {
    return this.lastTime;
  }

  add(time: number): void {
    if (this.times.length < MAX_TIMES) this.times.push(time);
    else this.untimed++;
    this.firstTime = Math.min(this.firstTime, time);
    this.lastTime = Math.max(this.lastTime, time);
  }

  /**
   * Removes the drops `stale` holds for and returns how many. `stale` must also hold for every time earlier
   * than one it holds for; untimed drops go only when all of them surely are (`last` is stale).
   */
  remove(stale: (time: number) => boolean): number {
    if (!stale(this.firstTime)) return 0;
    const before = this.count;
    const kept = this.times.filter((time) => !stale(time));
    this.times.splice(0, this.times.length, ...kept);
    if (stale(this.lastTime)) this.untimed = 0;
    this.recompute();
    return before - this.count;
  }

  snapshot(): TallySnapshot {
    return {
      timed: this.times.length,
      untimed: this.untimed,
      count: this.count,
      first: this.firstTime,
      last: this.lastTime,
    };
  }

  /** Forgets the drops a finished write took care of; those added while it was in flight stay. */
  settle(done: TallySnapshot): void {
    this.times.splice(0, done.timed);
    this.untimed -= done.untimed;
    this.recompute();
  }

  private recompute(): void {
    if (this.untimed > 0 || this.times.length === 0) return;
    this.firstTime = Math.min(...this.times);
    this.lastTime = Math.max(...this.times);
  }
}

/** Exponential backoff with jitter in [ceiling / 2, ceiling], never sooner than the server asked. */
export function backoffMs(
  attempt: number,
  retryAfter: number | null,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** attempt);
  return Math.max(ceiling / 2 + (random() * ceiling) / 2, retryAfter ?? 0);
}

/**
 * 'write' creates or patches; 'reconcile' reads an Event that a create found already there (written by an
 * earlier run of the agent) to learn which drops it counts.
 */
type Stage = 'write' | 'reconcile';

interface Pending {
  readonly key: string;
  readonly name: string;
  /** The first intent: pod, message and host are the same for every intent with this key. */
  readonly intent: EventIntent;
  readonly tally: DropTally;
  stage: Stage;
  /** What the call in flight is about; null when none is. */
  writing: TallySnapshot | null;
  attempts: number;
  /** Monotonic ms before which a retry waits. */
  notBefore: number;
}

/** An Event this writer wrote or read. */
interface Known {
  count: number;
  last: number;
  /** Drops at or before this time are counted by an earlier run of the agent (-Infinity if none is). */
  countedThrough: number;
}

/**
 * - counted: the call's drops are in the Event;
 * - again: the answer calls for another call about the same drops (re-create, reconcile), at once;
 * - dropped: the API refuses these drops for good;
 * - retry: try the same again after a backoff.
 */
type Step =
  | { kind: 'counted' | 'again' }
  | { kind: 'dropped'; reason: string }
  | { kind: 'retry'; delayMs: number };

/**
 * The live agent's Event recorder: a bounded queue of pending writes, one per aggregation key, so repeats
 * merge while they wait; rate limits per node and per pod; retries until the drops expire; every drop
 * not written is counted by reason.
 */
export class EventWriter implements EventSink {
  private readonly config: WriterConfig;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly api: EventApi;
  private readonly now: () => number;
  private readonly pending = new Map<string, Pending>();
  private readonly known = new LRUCache<string, Known>({ max: KNOWN_EVENTS });
  private readonly global: TokenBucket;
  private readonly perPod: KeyedBuckets;
  private readonly forbiddenLogged = new Set<Verb>();
  private readonly capacityWaiters: (() => void)[] = [];
  private readonly drainWaiters: (() => void)[] = [];
  private inFlight = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private pumpScheduled = false;
  private failing = false;
  private stopped = false;

  constructor(options: EventWriterOptions) {
    this.config = options.config;
    this.metrics = options.metrics;
    this.log = options.log;
    this.api = 'api' in options ? options.api : createEventApi(options.kubeConfig);
    this.now = options.now ?? Date.now;
    const rate = this.config.eventRateLimit;
    // A small burst keeps every one-second window close to the configured rate.
    this.global = new TokenBucket(rate, Math.max(1, Math.ceil(rate / 10)), clock());
    this.perPod = new KeyedBuckets(POD_REFILL_PER_SECOND, this.config.eventBurstPerPod, POD_BUCKETS);
  }

  submit(intent: EventIntent): void {
    const key = aggregationKey(intent, this.config);
    const refused = this.refusal(intent, key);
    if (refused !== null) {
      this.drop(refused, 1);
      return;
    }
    const entry = this.pending.get(key);
    if (entry !== undefined) {
      entry.tally.add(intent.time);
      return;
    }
    this.pending.set(key, {
      key,
      name: eventName(intent.pod.name, key),
      intent,
      tally: new DropTally(intent.time),
      stage: 'write',
      writing: null,
      attempts: 0,
      notBefore: 0,
    });
    this.changed();
    this.schedulePump();
  }

  /** Resolves once fewer than queueSize writes are pending (at once if so already, or stopped). */
  waitForCapacity(): Promise<void> {
    if (this.hasCapacity()) return Promise.resolve();
    return new Promise((resolve) => this.capacityWaiters.push(resolve));
  }

  /** Writes what it can within deadlineMs, then stops: what is still pending is dropped as 'shutdown'. */
  async flush(deadlineMs: number): Promise<void> {
    if (!this.stopped && this.pending.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadlineMs);
        this.drainWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
        this.schedulePump();
      });
    }
    this.stop();
  }

  /**
   * Stops at once; pending drops are counted as dropped 'shutdown'. A call in flight still finishes, and
   * its drops are counted by how it ends.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    for (const entry of this.pending.values()) {
      this.drop('shutdown', entry.tally.count - (entry.writing?.count ?? 0));
    }
    this.pending.clear();
    this.changed();
  }

  /** Why an intent is dropped on arrival, or null if it is taken. */
  private refusal(intent: EventIntent, key: string): string | null {
    if (this.stopped) return 'shutdown';
    if (this.now() - intent.time > this.config.expirationMs) return 'expired';
    if (intent.time <= (this.known.get(key)?.countedThrough ?? Number.NEGATIVE_INFINITY)) {
      return 'already_counted';
    }
    if (!this.pending.has(key) && this.pending.size >= this.config.queueSize + OVERFLOW) return 'queue_full';
    return null;
  }

  private hasCapacity(): boolean {
    return this.stopped || this.pending.size < this.config.queueSize;
  }

  private changed(): void {
    this.metrics.queueDepth.set(this.pending.size);
    if (this.hasCapacity()) release(this.capacityWaiters.splice(0));
    if (this.pending.size === 0) release(this.drainWaiters.splice(0));
  }

  private drop(reason: string, count: number): void {
    if (count > 0) this.metrics.eventsDropped.inc({ reason }, count);
  }

  /** Many submits in one tick cost one pass over the queue. */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /**
   * Starts every write the limits allow, in queue order. A pod past its burst is passed over so other
   * pods' writes go meanwhile; its own keep merging while they wait.
   */
  private pump(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped) return;
    const at = clock();
    let wakeAt = Number.POSITIVE_INFINITY;
    for (const entry of this.pending.values()) {
      // Each finished call pumps again.
      if (this.inFlight >= MAX_IN_FLIGHT) return;
      if (entry.writing !== null || this.prune(entry)) continue;
      if (entry.notBefore > at) {
        wakeAt = Math.min(wakeAt, entry.notBefore);
        continue;
      }
      // Reads do not change the pod's Events, so only writes count against its burst.
      const pod = entry.stage === 'write' ? this.perPod.get(entry.intent.pod.uid, at) : undefined;
      if (pod !== undefined && !pod.ready(at)) {
        wakeAt = Math.min(wakeAt, pod.readyAt(at));
        continue;
      }
      if (!this.global.take(at)) {
        wakeAt = Math.min(wakeAt, this.global.readyAt(at));
        break;
      }
      pod?.take(at);
      this.dispatch(entry, pod);
    }
    if (wakeAt < Number.POSITIVE_INFINITY) {
      this.timer = setTimeout(() => this.pump(), Math.max(1, Math.ceil(wakeAt - at)));
    }
  }

  /** Drops expired ones and ones an earlier run counted; removes the entry (true) if none is left. */
  private prune(entry: Pending): boolean {
    const cutoff = this.now() - this.config.expirationMs;
    const counted = this.known.peek(entry.key)?.countedThrough ?? Number.NEGATIVE_INFINITY;
    const expired = entry.tally.remove((time) => time < cutoff);
    const recounted = entry.tally.remove((time) => time <= counted);
    this.drop('expired', expired);
    this.drop('already_counted', recounted);
    if (entry.tally.count > 0) return false;
    this.remove(entry);
    return true;
  }

  private remove(entry: Pending): void {
    if (this.pending.get(entry.key) !== entry) return;
    this.pending.delete(entry.key);
    this.changed();
  }

  /** `pod` is the pod's bucket when the call took a token from it. */
  private dispatch(entry: Pending, pod: TokenBucket | undefined): void {
    const snapshot = entry.tally.snapshot();
    entry.writing = snapshot;
    this.inFlight++;
    void this.attempt(entry, snapshot).then((step) => {
      // The pod's burst is spent on Event changes only; the global limit counts every call.
      if (step.kind !== 'counted') pod?.giveBack();
      this.complete(entry, snapshot, step);
    });
  }

  private async attempt(entry: Pending, drops: TallySnapshot): Promise<Step> {
    const known = this.known.get(entry.key);
    const verb: Verb = entry.stage === 'reconcile' ? 'get' : known === undefined ? 'create' : 'patch';
    try {
      if (verb === 'get') await this.reconcile(entry);
      else if (known === undefined) await this.create(entry, drops);
      else await this.patch(entry, drops, known);
      return { kind: verb === 'get' ? 'again' : 'counted' };
    } catch (err) {
      return this.recover(entry, toEventApiError(verb, err));
    }
  }

  /** Learns what the Event a create found already there counts; prune then skips those drops. */
  private async reconcile(entry: Pending): Promise<void> {
    const { count, lastDropMs } = await this.api.read(entry.intent.pod.namespace, entry.name);
    this.known.set(entry.key, { count, last: lastDropMs, countedThrough: lastDropMs });
    entry.stage = 'write';
  }

  private async create(entry: Pending, drops: TallySnapshot): Promise<void> {
    await this.api.create(eventBody(entry.intent, this.config, drops), drops.last);
    this.known.set(entry.key, {
      count: drops.count,
      last: drops.last,
      countedThrough: Number.NEGATIVE_INFINITY,
    });
    this.metrics.eventsCreated.inc();
  }

  /** Sets the absolute count, so a retried PATCH whose first answer was lost changes nothing. */
  private async patch(entry: Pending, drops: TallySnapshot, known: Known): Promise<void> {
    const tally = { count: known.count + drops.count, lastDropMs: Math.max(known.last, drops.last) };
    await this.api.patch(entry.intent.pod.namespace, entry.name, tally);
    this.known.set(entry.key, { ...known, count: tally.count, last: tally.lastDropMs });
    this.metrics.eventsPatched.inc();
  }

  private recover(entry: Pending, error: EventApiError): Step {
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
      return { kind: 'retry', delayMs: backoffMs(entry.attempts, error.retryAfterMs) };
    }
    // rejected, or not_found on create: the namespace is gone.
    this.log.warn(
      { ...where, reason: error.reason, detail: error.message },
      'event rejected by the API server',
    );
    return { kind: 'dropped', reason: error.reason };
  }

  private complete(entry: Pending, drops: TallySnapshot, step: Step): void {
    entry.writing = null;
    this.inFlight--;
    if (step.kind !== 'retry') this.succeeded(entry);
    if (step.kind === 'counted' || step.kind === 'dropped') {
      entry.tally.settle(drops);
      if (step.kind === 'dropped') this.drop(step.reason, drops.count);
      if (entry.tally.count === 0) this.remove(entry);
    } else if (this.stopped) {
      // stop() left these to this call; nothing more will be tried.
      this.drop('shutdown', drops.count);
    } else if (step.kind === 'retry') {
      entry.attempts++;
      entry.notBefore = clock() + step.delayMs;
    }
    this.schedulePump();
  }

  /** Any answer but a retryable failure means the API server is reachable and working. */
  private succeeded(entry: Pending): void {
    entry.attempts = 0;
    if (!this.failing) return;
    this.failing = false;
    this.log.info('event writes succeed again');
  }
}

/** Monotonic: rate limits and backoff must not jump with the wall clock. */
function clock(): number {
  return performance.now();
}

function release(waiters: (() => void)[]): void {
  for (const resolve of waiters) resolve();
}
