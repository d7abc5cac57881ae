import type { Config } from './config.ts';
import { futureDated, isExpired } from './filters/expiry.ts';
import { RepeatFilter } from './filters/repeats.ts';
import { HeldDrops, type IndexFreshness } from './locator/held-drops.ts';
import { LatePods, type WaitingDrop, type WaitingSide } from './locator/late-pods.ts';
import { peerName, type ReverseResolver } from './locator/naming.ts';
import type { Located, PodLocator } from './locator/pod-index.ts';
import type { PeerLookup } from './locator/pod-lookup.ts';
import type { Metrics } from './metrics.ts';
import type { DropSideSink, PacketDrop, PodRef } from './types.ts';

export type DropOutcome = 'expired' | 'suppressed' | 'held' | 'unmatched' | 'posted';

export interface PipelineParts {
  config: Config;
  locator: PodLocator;
  /** Where located sides go: the events room combines scans and writes (or books) the Events. */
  sink: DropSideSink;
  metrics: Metrics;
  /** Reverse DNS for peers that are neither pods nor nodes; absent in replay. */
  dns?: ReverseResolver;
  /**
   * The live pod watch; absent in replay, whose pods file is complete from the start. With it, drop
   * sides whose pod is unknown wait for podRunning (see LatePods).
   */
  freshness?: IndexFreshness;
  /**
   * POD_WATCH_SCOPE=node: pods of other nodes, found by address. A drop with an address no local pod or
   * node has waits for its lookup (see LOOKUP_WAIT_MS), so that its sides are named once, rightly.
   */
  lookup?: PeerLookup;
}

/**
 * How long a drop waits for lookups still to be made or answered (the rate is bounded); while the API server
 * fails, it waits longer, within its expiry and the held drops' capacity, since the answer is only late.
 */
export const LOOKUP_WAIT_MS = 10_000;
/** While drops wait on lookups, they are located again when one ends, or this often. */
const RECHECK_MS = 200;

/** A held drop, and since when it waits (the pipeline's clock). */
interface Held {
  drop: PacketDrop;
  since: number;
}

/** Whether a drop may wait, and since when it has; null: located with what is known now. */
type Waiting = { indexBehind: boolean; since: number } | null;

/** The pod that gets an Event for its side of the drop: Running (the locator only finds those) and on the pod network. */
function eventPod(located: Located): PodRef | undefined {
  return located.pod?.hostNetwork === false ? located.pod : undefined;
}

/** The other side's pod, for the Event's `related`, when it is one. */
function peerOf(located: Located): { peer?: PodRef } {
  return located.pod === undefined ? {} : { peer: located.pod };
}

function known(located: Located): boolean {
  return located.pod !== undefined || located.node !== undefined;
}

/**
 * source.host is NODE_NAME when set: the agent posts on behalf of its node, and the node object's name
 * is what `kubectl describe` users know, while a syslog/journal host name may be shortened or differ
 * (EKS: ip-10-0-0-1 vs ip-10-0-0-1.ec2.internal). Without NODE_NAME (replay), the logged host is used.
 */
export function eventHost(drop: PacketDrop, nodeName: string): string {
  return nodeName !== '' ? nodeName : drop.host;
}

/**
 * One drop in, zero to two located sides out: clock sanity, expiry, repeat suppression, then each address
 * located once, a "send" side for the source pod and a "receive" side for the destination pod. While the
 * live pod index is behind, a drop with an unknown address is held and located later (see HeldDrops). The
 * same class serves replay and the live agent; only the locator, sink, resolver and freshness differ. `now`
 * is the caller's clock (the log's in replay).
 */
export class Pipeline {
  private readonly parts: PipelineParts;
  private readonly repeats: RepeatFilter;
  private readonly held = new HeldDrops<Held>();
  private readonly late = new LatePods();
  /** Lookups ended when the held drops were last located, and when they may be again without a new answer. */
  private answersSeen = 0;
  private recheckAt = Number.NEGATIVE_INFINITY;

  constructor(parts: PipelineParts) {
    this.parts = parts;
    this.repeats = new RepeatFilter(parts.config.repeatIntervalMs);
  }

  handle(read: PacketDrop, now: number): DropOutcome {
    // A line from the future (a skewed host, a wrong year guessed for a yearless stamp) would move Events'
    // last drop there and make every later drop of theirs look already counted.
    const drop = futureDated(read, now) ? { ...read, time: now } : read;
    if (drop !== read) this.parts.metrics.dropsFutureDated.inc();
    // Drops held earlier go first, so that a repeat suppresses the later drop and not the earlier one.
    this.release(now);
    const outcome = this.process(drop, now, { indexBehind: !this.indexCurrent(), since: now });
    if (outcome !== 'held') return outcome;
    this.parts.metrics.dropsHeld.inc();
    const evicted = this.held.hold({ drop, since: now });
    if (evicted !== undefined) this.process(evicted.drop, now, null);
    return outcome;
  }

  /**
   * Locates the held drops again once the pod index is current and, for drops waiting on lookups, once one
   * ended or RECHECK_MS passed (or at once when `force`, at shutdown, without waiting any more), oldest
   * first, with the usual expiry and repeat checks. The caller polls it; it is cheap when idle.
   */
  release(now: number, force = false): void {
    if (force) {
      for (const { drop } of this.held.takeAll()) this.process(drop, now, null);
      return;
    }
    if (!this.indexCurrent()) {
      this.recheckAt = Number.NEGATIVE_INFINITY;
      return;
    }
    if (this.held.size === 0) return;
    const answers = this.parts.lookup?.answers ?? 0;
    if (answers === this.answersSeen && now < this.recheckAt) return;
    this.answersSeen = answers;
    this.recheckAt = now + RECHECK_MS;
    for (const held of this.held.takeAll()) {
      if (this.process(held.drop, now, { indexBehind: false, since: held.since }) === 'held') {
        this.held.hold(held);
      }
    }
  }

  /**
   * The index has this pod Running (the live pod watch's upserts): the drop sides that waited for its
   * addresses are posted now, unless expired or, for a drop not posted for its other side, repeated since.
   */
  podRunning(pod: PodRef, now: number): void {
    if (pod.hostNetwork) return;
    const { config, locator, metrics, sink } = this.parts;
    for (const { waiting, direction } of this.late.take(pod.ips, now)) {
      const { drop } = waiting;
      const src = locator.locate(drop.src, drop.time);
      const dst = locator.locate(drop.dst, drop.time);
      const target = eventPod(direction === 'send' ? src : dst);
      if (target === undefined || isExpired(drop, now, config.expirationMs)) continue;
      if (!waiting.posted && this.repeats.isRepeat(drop)) continue;
      const srcName = this.name(drop.src, src);
      const dstName = this.name(drop.dst, dst);
      if (!waiting.posted) this.markPosted(waiting, srcName, dstName);
      const peerName = direction === 'send' ? dstName : srcName;
      const peer = peerOf(direction === 'send' ? dst : src);
      sink.submit({
        drop,
        pod: target,
        direction,
        peerName,
        ...peer,
        host: eventHost(drop, config.nodeName),
      });
      metrics.dropsPostedLate.inc();
    }
  }

  private indexCurrent(): boolean {
    return this.parts.freshness?.current() ?? true;
  }

  /** Remembers the drop's flow as posted and counts it under its peers' names: once per drop, whatever its sides. */
  private markPosted(waiting: WaitingDrop, srcName: string, dstName: string): void {
    waiting.posted = true;
    this.repeats.markPosted(waiting.drop);
    this.parts.metrics.countDrop(srcName, dstName);
    if (waiting.drop.policy !== undefined) this.parts.metrics.countPolicyDrop(waiting.drop.policy);
  }

  private name(ip: string, located: Located): string {
    return peerName(ip, located, this.parts.config.podIdentifier, this.parts.dns);
  }

  /** Lets a side whose address no pod or node has wait for a pod to appear there; only the live agent waits. */
  private awaitPod(ip: string, located: Located, side: WaitingSide): void {
    if (this.parts.freshness === undefined || known(located)) return;
    this.late.wait(ip, side);
  }

  /**
   * Whether the side must wait for its address's lookup: only a side unknown to the index, and not past the
   * wait, unless the API server is failing. Asking starts the lookup.
   */
  private awaitsLookup(ip: string, located: Located, now: number, since: number): boolean {
    const { lookup } = this.parts;
    if (lookup === undefined || known(located)) return false;
    const state = lookup.ask(ip);
    return state === 'unavailable' || (state === 'pending' && now - since < LOOKUP_WAIT_MS);
  }

  private process(drop: PacketDrop, now: number, wait: Waiting): DropOutcome {
    const { config, locator, metrics, sink } = this.parts;
    if (isExpired(drop, now, config.expirationMs)) {
      metrics.dropsExpired.inc();
      return 'expired';
    }
    if (this.repeats.isRepeat(drop)) {
      metrics.dropsSuppressed.inc();
      return 'suppressed';
    }
    const src = locator.locate(drop.src, drop.time);
    const dst = locator.locate(drop.dst, drop.time);
    if (wait !== null) {
      // An unknown address may be a pod the index has not heard of yet; it cannot be told from an outside one.
      if (wait.indexBehind && !(known(src) && known(dst))) return 'held';
      // Both asked, so that both lookups run at once.
      const srcWaits = this.awaitsLookup(drop.src, src, now, wait.since);
      const dstWaits = this.awaitsLookup(drop.dst, dst, now, wait.since);
      if (srcWaits || dstWaits) return 'held';
    }
    const srcPod = eventPod(src);
    const dstPod = eventPod(dst);
    const waiting: WaitingDrop = { drop, posted: false, seenAt: now };
    if (srcPod === undefined) this.awaitPod(drop.src, src, { waiting, direction: 'send' });
    if (dstPod === undefined) this.awaitPod(drop.dst, dst, { waiting, direction: 'receive' });
    // Checked before naming, so traffic between unknown peers never costs a reverse DNS lookup.
    if (srcPod === undefined && dstPod === undefined) {
      metrics.dropsUnmatched.inc();
      return 'unmatched';
    }
    const srcName = this.name(drop.src, src);
    const dstName = this.name(drop.dst, dst);
    const host = eventHost(drop, config.nodeName);
    this.markPosted(waiting, srcName, dstName);
    if (srcPod !== undefined) {
      sink.submit({ drop, pod: srcPod, direction: 'send', peerName: dstName, ...peerOf(dst), host });
    }
    if (dstPod !== undefined) {
      sink.submit({ drop, pod: dstPod, direction: 'receive', peerName: srcName, ...peerOf(src), host });
    }
    metrics.dropsPosted.inc();
    return 'posted';
  }
}
