import type { KubeConfig } from '@kubernetes/client-node';
import type { Config } from '../config.ts';
import { isExpired } from '../filters/expiry.ts';
import { type Logger, ThrottledWarning } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { EventIntent, EventSink } from '../types.ts';
import { createEventApi, type EventApi } from './api.ts';
import { aggregationKey, type EventConfig, eventName } from './event.ts';
import {
  finishWrite,
  mergeInto,
  oldestSeq,
  openPending,
  type PendingEvent,
  startWrite,
  undoWrite,
  type Write,
} from './pending.ts';
import { WriteScheduler } from './scheduler.ts';
import { type CallOutcome, EventStore } from './store.ts';

/** Writes in flight at once: enough to reach the rate limit over a slow link, few enough to stay polite. */
const MAX_IN_FLIGHT = 4;
/**
 * Reading waits when this many times PACKET_DROP_CHANNEL_BUFFER_SIZE distinct Events are pending (at least
 * 1,000, so that one pod's combined scans alone never reach it; at most 100,000, ~100 MB).
 */
export const ROOM_FACTOR = 100;
const MIN_ROOM = 1_000;
const MAX_ROOM = 100_000;
/** Sides submitted within this long share one receipt, so a storm of small batches costs few of them. */
const RECEIPT_MS = 100;
/** Passes over the whole set (to give up expired drops) at most this often. */
const PRUNE_MS = 1_000;
/** A pass over the pending set at most this often, however many sides arrive. */
const PUMP_SPACING_MS = 10;

export type WriterConfig = EventConfig &
  Pick<Config, 'queueSize' | 'expirationMs' | 'eventRateLimit' | 'eventBurstPerPod'>;

/** Monotonic time and timers, so that rate, backoff and deadline logic can be tested without waiting. */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

interface CommonOptions {
  config: WriterConfig;
  metrics: Metrics;
  log: Logger;
  /** The log clock that drop times are compared with for expiry, epoch ms. */
  now?: () => number;
  clock?: Clock;
}

export type EventWriterOptions = CommonOptions & ({ kubeConfig: KubeConfig } | { api: EventApi });

/** Resolves once every side submitted before it was handed out is written or given up for good. */
interface Receipt {
  seq: number;
  openedAt: number;
  /** Whether a side took it: one that none took settles as soon as every earlier one has. */
  used: boolean;
  settled: Promise<void>;
  resolve: () => void;
}

/**
 * The live agent's Event recorder. Pending work is keyed, not queued: a side whose Event is already
 * pending merges into it and takes no new slot. A WriteScheduler picks what goes next (news first, no pod
 * holding back the others), an EventStore makes the calls. Every side ends exactly once: written, merged
 * or combined (drop_sides_total) or given up with a reason (events_dropped_total).
 */
export class EventWriter implements EventSink {
  private readonly config: WriterConfig;
  private readonly metrics: Metrics;
  private readonly now: () => number;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly expiredWarning: ThrottledWarning;
  private readonly store: EventStore;
  private readonly scheduler: WriteScheduler;
  private readonly pending = new Map<string, PendingEvent>();
  private readonly roomLimit: number;
  private readonly roomWaiters: (() => void)[] = [];
  private readonly drainWaiters: (() => void)[] = [];
  private readonly receipts: Receipt[] = [];
  private nextSeq = 0;
  private opened = 0;
  private inFlight = 0;
  private timer: unknown;
  private pumpAt = Number.POSITIVE_INFINITY;
  private lastPump = Number.NEGATIVE_INFINITY;
  private lastPrune: number;
  private stopped = false;

  constructor(options: EventWriterOptions) {
    this.config = options.config;
    this.metrics = options.metrics;
    this.now = options.now ?? Date.now;
    this.clock = options.clock ?? systemClock;
    this.log = options.log;
    this.expiredWarning = new ThrottledWarning(
      options.log,
      'drop sides given up: not written within PACKET_DROP_EXPIRATION_MINUTES (events_dropped_total{reason="expired"})',
    );
    const api = 'api' in options ? options.api : createEventApi(options.kubeConfig);
    this.store = new EventStore({
      api,
      config: this.config,
      metrics: this.metrics,
      log: options.log,
      now: this.now,
    });
    this.scheduler = new WriteScheduler(
      { ratePerSecond: this.config.eventRateLimit, podBurst: this.config.eventBurstPerPod },
      this.clock.now(),
    );
    this.lastPrune = this.clock.now();
    const queue = this.config.queueSize;
    this.roomLimit = Math.max(queue, Math.min(MAX_ROOM, Math.max(MIN_ROOM, queue * ROOM_FACTOR)));
  }

  submit(intent: EventIntent): void {
    const key = aggregationKey(intent, this.config);
    const refused = this.refusal(intent, key);
    if (refused !== null) {
      this.giveUp(refused, 1);
      return;
    }
    const receipt = this.receipt();
    receipt.used = true;
    const seq = receipt.seq;
    const entry = this.pending.get(key);
    if (entry !== undefined) {
      mergeInto(entry, intent, seq);
      return;
    }
    this.pending.set(key, openPending(key, eventName(intent.pod.name, key), intent, seq, this.opened++));
    this.changed();
    this.schedulePump(0);
  }

  /** More distinct Events wait than PACKET_DROP_CHANNEL_BUFFER_SIZE: new peers of a pod are combined sooner. */
  overloaded(): boolean {
    return this.pending.size >= this.config.queueSize;
  }

  /** Resolves once every side submitted so far is written or given up for good (never on shutdown). */
  settled(): Promise<void> {
    const receipt = this.receipt();
    // Pending sides hold only earlier receipts, all settled when this is the only one left.
    if (!receipt.used && this.receipts.length === 1 && !this.stopped) {
      this.receipts.pop();
      receipt.resolve();
    }
    return receipt.settled;
  }

  /**
   * Resolves once the pending set has room (at once if so already), when the writer stops, or when
   * `signal` aborts: a reader waiting here must never delay shutdown. The time waited is counted.
   */
  async waitForRoom(signal?: AbortSignal): Promise<void> {
    if (this.hasRoom() || signal?.aborted) return;
    const started = this.clock.now();
    await new Promise<void>((resolve) => {
      const done = () => {
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.roomWaiters.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
    this.metrics.readWaitSeconds.inc((this.clock.now() - started) / 1000);
  }

  /** Writes what it can within deadlineMs, then stops: what is still pending is given up as 'shutdown'. */
  async flush(deadlineMs: number): Promise<void> {
    if (!this.stopped && this.pending.size > 0 && deadlineMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = this.clock.setTimeout(resolve, deadlineMs);
        this.drainWaiters.push(() => {
          this.clock.clearTimeout(timer);
          resolve();
        });
        this.schedulePump(0);
      });
    }
    this.stop();
  }

  /**
   * Stops at once; pending sides, also those of calls in flight (the process may end before they answer),
   * are given up as 'shutdown', and their receipts never settle, so the source reads them again after a
   * restart. A call that still lands was counted as given up; re-read, its drops are already_counted.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
    let sides = 0;
    for (const entry of this.pending.values()) sides += entry.tally.count;
    this.giveUp('shutdown', sides);
    if (sides > 0) {
      this.log.warn(
        { sides, events: this.pending.size },
        'stopping with drop sides not written; their lines are read again after a restart',
      );
    }
    this.pending.clear();
    this.changed();
  }

  /** Why a side is given up on arrival, or null if it is taken. */
  private refusal(intent: EventIntent, key: string): string | null {
    if (this.stopped) return 'shutdown';
    if (isExpired(intent, this.now(), this.config.expirationMs)) return 'expired';
    if (intent.time <= this.store.countedThrough(key)) return 'already_counted';
    return null;
  }

  private hasRoom(): boolean {
    return this.stopped || this.pending.size < this.roomLimit;
  }

  private changed(): void {
    this.metrics.queueDepth.set(this.pending.size);
    if (this.hasRoom()) release(this.roomWaiters.splice(0));
    if (this.pending.size === 0) release(this.drainWaiters.splice(0));
  }

  private giveUp(reason: string, count: number): void {
    if (count === 0) return;
    this.metrics.eventsDropped.inc({ reason }, count);
    if (reason === 'expired') this.expiredWarning.note({ pending: this.pending.size }, count);
  }

  /** The open receipt; a new one once the last is settled or older than RECEIPT_MS. */
  private receipt(): Receipt {
    const at = this.clock.now();
    const open = this.receipts.at(-1);
    if (open !== undefined && at - open.openedAt < RECEIPT_MS) return open;
    let resolve = () => {};
    const settled = new Promise<void>((done) => {
      resolve = done;
    });
    const receipt = { seq: this.nextSeq++, openedAt: at, used: false, settled, resolve };
    this.receipts.push(receipt);
    return receipt;
  }

  /** Settles, oldest first, every receipt no pending side still holds. */
  private settleReceipts(): void {
    if (this.receipts.length === 0 || this.stopped) return;
    const oldest = oldestSeq(this.pending.values());
    let settled = 0;
    while (settled < this.receipts.length && this.receipts[settled]!.seq < oldest) {
      this.receipts[settled]!.resolve();
      settled++;
    }
    this.receipts.splice(0, settled);
  }

  /** Many submits cost one pass over the pending set, at most every PUMP_SPACING_MS. */
  private schedulePump(delayMs: number): void {
    const at = Math.max(this.clock.now() + delayMs, this.lastPump + PUMP_SPACING_MS);
    if (this.stopped || at >= this.pumpAt) return;
    this.clock.clearTimeout(this.timer);
    this.pumpAt = at;
    this.timer = this.clock.setTimeout(() => this.pump(), Math.max(0, at - this.clock.now()));
  }

  /** Starts every call the limits allow, in the scheduler's order, and wakes again when one may go. */
  private pump(): void {
    this.pumpAt = Number.POSITIVE_INFINITY;
    if (this.stopped) return;
    const at = this.clock.now();
    this.lastPump = at;
    if (at - this.lastPrune >= PRUNE_MS) this.pruneAll(at);
    while (this.inFlight < MAX_IN_FLIGHT) {
      const pick = this.scheduler.next(this.pending.values(), at, (entry) => this.store.exists(entry.key));
      if ('wakeAt' in pick) {
        if (pick.wakeAt < Number.POSITIVE_INFINITY) this.schedulePump(pick.wakeAt - at);
        return;
      }
      this.dispatch(pick.entry, pick.pod);
    }
  }

  private pruneAll(at: number): void {
    this.lastPrune = at;
    let removed = false;
    for (const entry of this.pending.values()) if (entry.writing === null) removed ||= this.prune(entry);
    if (removed) this.settleReceipts();
  }

  /** Gives up expired drops and ones an earlier run counted; removes the entry (true) if none is left. */
  private prune(entry: PendingEvent): boolean {
    const now = this.now();
    const counted = this.store.countedThrough(entry.key);
    this.giveUp(
      'expired',
      entry.tally.remove((time) => isExpired({ time }, now, this.config.expirationMs)),
    );
    this.giveUp(
      'already_counted',
      entry.tally.remove((time) => time <= counted),
    );
    if (entry.tally.count > 0) return false;
    this.remove(entry);
    return true;
  }

  private remove(entry: PendingEvent): void {
    if (this.pending.get(entry.key) !== entry) return;
    this.pending.delete(entry.key);
    this.changed();
  }

  /** `pod` is the pod's bucket when the call took a token from it. */
  private dispatch(entry: PendingEvent, pod: { giveBack(): void } | undefined): void {
    const write = startWrite(entry);
    this.inFlight++;
    void this.store.call(entry, write).then((outcome) => {
      // The pod's burst is spent on Event changes only; the global limit counts every call.
      if (outcome.kind !== 'counted') pod?.giveBack();
      this.complete(entry, write, outcome);
    });
  }

  private complete(entry: PendingEvent, write: Write, outcome: CallOutcome): void {
    this.inFlight--;
    // stop() gave these sides up already.
    if (this.stopped) return;
    if (outcome.kind === 'counted' || outcome.kind === 'dropped') {
      finishWrite(entry, write);
      entry.failures = 0;
      if (outcome.kind === 'dropped') this.giveUp(outcome.reason, write.drops.count);
      else this.countSides(entry, write);
      if (entry.tally.count === 0) this.remove(entry);
    } else {
      undoWrite(entry, write);
      if (outcome.kind === 'retry') {
        entry.failures++;
        entry.notBefore = this.clock.now() + outcome.delayMs;
      } else {
        // A reconcile may have learnt that an earlier run counted some of these drops already.
        entry.failures = 0;
        this.prune(entry);
      }
    }
    if (entry.writing === null && this.store.exists(entry.key)) entry.tally.bound();
    this.settleReceipts();
    this.schedulePump(0);
  }

  private countSides(entry: PendingEvent, write: Write): void {
    const { count } = write.drops;
    if (entry.intent.combined) {
      this.metrics.dropSides.inc({ outcome: 'combined' }, count);
      return;
    }
    const written = write.opener ? 1 : 0;
    if (written > 0) this.metrics.dropSides.inc({ outcome: 'written' }, written);
    if (count > written) this.metrics.dropSides.inc({ outcome: 'merged' }, count - written);
  }
}

function release(waiters: (() => void)[]): void {
  for (const resolve of waiters) resolve();
}
