import { LRUCache } from 'lru-cache';
import type { PendingEvent } from './pending.ts';
import { KeyedBuckets, TokenBucket } from './rate-limit.ts';

/** A pod past its burst gets one write per 10 s, like client-go's spam filter but less stingy. */
const POD_REFILL_PER_SECOND = 0.1;
const PODS = 10_000;
const BASE_BACKOFF_MS = 250;
/** Retries keep coming at least this often, so a recovered API server is noticed within seconds. */
const MAX_BACKOFF_MS = 10_000;

/** Exponential backoff with jitter in [ceiling / 2, ceiling], never sooner than the server asked. */
export function backoffMs(
  attempt: number,
  retryAfter: number | null,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** attempt);
  return Math.max(ceiling / 2 + (random() * ceiling) / 2, retryAfter ?? 0);
}

export interface SchedulerConfig {
  /** Sustained calls per second to the API server. */
  ratePerSecond: number;
  /** Writes one pod may get in a burst. */
  podBurst: number;
}

export type Pick =
  | { entry: PendingEvent; pod: TokenBucket | undefined }
  /** Nothing may go now; look again at wakeAt (Infinity: only a new entry can change that). */
  | { wakeAt: number };

/**
 * Decides which pending Event is written next, on a monotonic clock the caller passes in (ms):
 * - the node's calls stay under the global rate; a pod past its burst waits for its own bucket while
 *   other pods' Events go ahead, so one busy pod never holds back the rest;
 * - news first: an Event not yet created goes before a count update of one that exists, and among those,
 *   the pod written to least recently goes first (a pod never written to before all others);
 * - among pods never written to, the newest Event first: in a storm of new pods the writes cannot keep
 *   up anyway, and a problem that just began shows at once instead of after the whole backlog;
 * - within a pod written to before, the Event standing for the most drops (a scan's combined Event
 *   before the individual peers still waiting behind the pod's burst), then the one waiting longest.
 */
export class WriteScheduler {
  private readonly global: TokenBucket;
  private readonly perPod: KeyedBuckets;
  private readonly lastWrite = new LRUCache<string, number>({ max: PODS });

  constructor(config: SchedulerConfig, now: number) {
    // A small burst keeps every one-second window close to the configured rate.
    const burst = Math.max(1, Math.ceil(config.ratePerSecond / 10));
    this.global = new TokenBucket(config.ratePerSecond, burst, now);
    this.perPod = new KeyedBuckets(POD_REFILL_PER_SECOND, config.podBurst, PODS);
  }

  /**
   * The Event to call for at `at`, its tokens taken; `isUpdate` tells a count update from a create.
   * Reads (reconcile) do not change the pod's Events, so only writes count against its burst.
   */
  next(entries: Iterable<PendingEvent>, at: number, isUpdate: (entry: PendingEvent) => boolean): Pick {
    if (!this.global.ready(at)) return { wakeAt: this.global.readyAt(at) };
    let best: { entry: PendingEvent; pod: TokenBucket | undefined; rank: Rank } | undefined;
    let wakeAt = Number.POSITIVE_INFINITY;
    for (const entry of entries) {
      if (entry.writing !== null) continue;
      if (entry.notBefore > at) {
        wakeAt = Math.min(wakeAt, entry.notBefore);
        continue;
      }
      const pod = entry.stage === 'write' ? this.perPod.get(entry.intent.pod.uid, at) : undefined;
      if (pod !== undefined && !pod.ready(at)) {
        wakeAt = Math.min(wakeAt, pod.readyAt(at));
        continue;
      }
      const rank = this.rank(entry, isUpdate(entry));
      if (best === undefined || before(rank, best.rank)) best = { entry, pod, rank };
    }
    if (best === undefined) return { wakeAt };
    this.global.take(at);
    best.pod?.take(at);
    this.lastWrite.set(best.entry.intent.pod.uid, at);
    return { entry: best.entry, pod: best.pod };
  }

  private rank(entry: PendingEvent, update: boolean): Rank {
    const written = this.lastWrite.peek(entry.intent.pod.uid) ?? Number.NEGATIVE_INFINITY;
    const order = written === Number.NEGATIVE_INFINITY ? -entry.opened : -entry.tally.count;
    return [update ? 1 : 0, written, order, entry.opened];
  }
}

type Rank = readonly [number, number, number, number];

function before(a: Rank, b: Rank): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}
