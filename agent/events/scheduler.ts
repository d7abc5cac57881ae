import { boundedLru } from '../lru.ts';
import { KeyedBuckets, TokenBucket } from '../rate-limit.ts';
import type { PendingEvent } from './pending.ts';

/** A pod past its burst gets one write per 10 s, like client-go's spam filter but less stingy. */
const POD_REFILL_PER_SECOND = 0.1;
const PODS = 10_000;

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

/** What the scheduler knows of one pod while it picks. */
interface PodView {
  bucket: TokenBucket;
  /** When the pod was last written to; -Infinity when never. */
  written: number;
  /** Drops waiting in all the pod's pending Events. */
  drops: number;
}

/**
 * Decides which pending Event is written next, on a monotonic clock the caller passes in (ms):
 * - the node's calls stay under the global rate; a pod past its burst waits for its own bucket while
 *   other pods' Events go ahead, so one busy pod never holds back the rest;
 * - news first: an Event not yet created goes before a count update of one that exists, and among those,
 *   the pod written to least recently goes first (a pod never written to before all others);
 * - among pods never written to, the quietest first (fewest drops waiting): in a storm the writes cannot
 *   keep up with every busy pod's news, and a pod with one drop is a problem that would otherwise wait
 *   behind the whole storm, while the busy pods' drops keep merging into their waiting Events;
 * - within a pod, the Event standing for the most drops (a scan's combined Event before the individual
 *   peers still waiting behind the pod's burst), then the one opened first.
 */
export class WriteScheduler {
  private readonly global: TokenBucket;
  private readonly perPod: KeyedBuckets;
  private readonly lastWrite = boundedLru<string, number>(PODS);

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
    const pods = new Map<string, PodView>();
    const candidates: PendingEvent[] = [];
    let wakeAt = Number.POSITIVE_INFINITY;
    for (const entry of entries) {
      const view = this.view(pods, entry.intent.pod.uid, at);
      view.drops += entry.tally.count;
      if (entry.writing !== null) continue;
      if (entry.notBefore > at) {
        wakeAt = Math.min(wakeAt, entry.notBefore);
      } else if (entry.stage === 'write' && !view.bucket.ready(at)) {
        wakeAt = Math.min(wakeAt, view.bucket.readyAt(at));
      } else {
        candidates.push(entry);
      }
    }
    let best: PendingEvent | undefined;
    let bestUpdate = false;
    for (const entry of candidates) {
      const update = isUpdate(entry);
      if (best === undefined || before(entry, update, best, bestUpdate, pods)) {
        best = entry;
        bestUpdate = update;
      }
    }
    if (best === undefined) return { wakeAt };
    this.global.take(at);
    const pod = best.stage === 'write' ? pods.get(best.intent.pod.uid)!.bucket : undefined;
    pod?.take(at);
    this.lastWrite.set(best.intent.pod.uid, at);
    return { entry: best, pod };
  }

  private view(pods: Map<string, PodView>, uid: string, at: number): PodView {
    let view = pods.get(uid);
    if (view === undefined) {
      const written = this.lastWrite.peek(uid) ?? Number.NEGATIVE_INFINITY;
      view = { bucket: this.perPod.get(uid, at), written, drops: 0 };
      pods.set(uid, view);
    }
    return view;
  }
}

/** Whether `a` goes before `b`, by the rules above. */
function before(
  a: PendingEvent,
  aUpdate: boolean,
  b: PendingEvent,
  bUpdate: boolean,
  pods: Map<string, PodView>,
): boolean {
  if (aUpdate !== bUpdate) return !aUpdate;
  const podA = pods.get(a.intent.pod.uid)!;
  const podB = pods.get(b.intent.pod.uid)!;
  if (podA.written !== podB.written) return podA.written < podB.written;
  if (podA !== podB && podA.written === Number.NEGATIVE_INFINITY && podA.drops !== podB.drops) {
    return podA.drops < podB.drops;
  }
  if (a.tally.count !== b.tally.count) return a.tally.count > b.tally.count;
  return a.opened < b.opened;
}
