import type { Config } from './config.ts';
import { Combiner, type CombinerState } from './events/combine.ts';
import { futureDated, isExpired } from './filters/expiry.ts';
import { RepeatFilter } from './filters/repeats.ts';
import { HeldDrops, type IndexFreshness } from './locator/held-drops.ts';
import { LatePods, type WaitingDrop, type WaitingSide } from './locator/late-pods.ts';
import { peerName, type ReverseResolver } from './locator/naming.ts';
import type { PodLocator } from './locator/pod-directory.ts';
import type { Metrics } from './metrics.ts';
import type { EventSink, PacketDrop, PodRef } from './types.ts';

export type DropOutcome = 'expired' | 'suppressed' | 'held' | 'unmatched' | 'posted';

export interface PipelineParts {
  config: Config;
  locator: PodLocator;
  sink: EventSink;
  metrics: Metrics;
  /** Reverse DNS for peers that are neither pods nor nodes; absent in replay. */
  dns?: ReverseResolver;
  /**
   * The live pod watch; absent in replay, whose pods file is complete from the start. With it, drop
   * sides whose pod is unknown wait for podRunning (see LatePods).
   */
  freshness?: IndexFreshness;
  /** What the agent before this one combined (live agent, after a restart). */
  combining?: CombinerState;
}

/** The pod that gets an Event for its side of the drop: Running (the locator only knows those) and on the pod network. */
function eventPod(locator: PodLocator, ip: string): PodRef | undefined {
  const pod = locator.podByIp(ip);
  return pod?.hostNetwork === false ? pod : undefined;
}

/**
 * source.host is NODE_NAME when set: the agent posts on behalf of its node, and the node object's name
 * is what `kubectl describe` users know, while a syslog/journal host name may be shortened or differ
 * (EKS: ip-10-0-0-1 vs ip-10-0-0-1.ec2.internal). Without NODE_NAME (replay), the logged host is used.
 */
export function eventHost(drop: PacketDrop, nodeName: string): string {
  return nodeName !== '' ? nodeName : drop.host;
}

function known(locator: PodLocator, ip: string): boolean {
  return locator.podByIp(ip) !== undefined || locator.nodeByIp(ip) !== undefined;
}

/**
 * One drop in, zero to two EventIntents out: clock sanity, expiry, repeat suppression, then a "send"
 * event on the source pod and a "receive" event on the destination pod, scans combined (see Combiner). While the live pod index is behind, a drop
 * with an unknown address is held and located later (see HeldDrops). The same class serves replay and
 * the live agent; only the locator, sink, resolver and freshness differ. `now` is the caller's clock (the
 * log's in replay).
 */
export class Pipeline {
  private readonly parts: PipelineParts;
  private readonly repeats: RepeatFilter;
  private readonly held = new HeldDrops();
  private readonly late = new LatePods();
  private readonly combiner: Combiner;

  constructor(parts: PipelineParts) {
    this.parts = parts;
    this.repeats = new RepeatFilter(parts.config.repeatIntervalMs);
    this.combiner = new Combiner(parts.config.repeatIntervalMs, parts.combining);
  }

  /** What a restarted agent needs to combine re-read drops the same way (see CombinerState). */
  combining(): CombinerState {
    return this.combiner.state();
  }

  handle(read: PacketDrop, now: number): DropOutcome {
    // A line from the future (a skewed host, a wrong year guessed for a yearless stamp) would move Events'
    // last drop there and make every later drop of theirs look already counted.
    const drop = futureDated(read, now) ? { ...read, time: now } : read;
    if (drop !== read) this.parts.metrics.dropsFutureDated.inc();
    // Drops held earlier go first, so that a repeat suppresses the later drop and not the earlier one.
    this.release(now);
    const outcome = this.process(drop, now, !this.indexCurrent());
    if (outcome !== 'held') return outcome;
    this.parts.metrics.dropsHeld.inc();
    const evicted = this.held.hold(drop);
    if (evicted !== undefined) this.process(evicted, now, false);
    return outcome;
  }

  /**
   * Locates the held drops again once the pod index is current (or at once when `force`, at shutdown),
   * oldest first, with the usual expiry and repeat checks. The caller polls it; it is cheap when idle.
   */
  release(now: number, force = false): void {
    if (this.held.size === 0 || !(force || this.indexCurrent())) return;
    for (const drop of this.held.takeAll()) this.process(drop, now, false);
  }

  /**
   * The index has this pod Running (the live pod watch's upserts): the drop sides that waited for its
   * addresses are posted now, unless expired or, for a drop not posted for its other side, repeated since.
   */
  podRunning(pod: PodRef, now: number): void {
    if (pod.hostNetwork) return;
    const { config, locator, metrics, sink, dns } = this.parts;
    for (const { waiting, direction } of this.late.take(pod.ips, now)) {
      const { drop } = waiting;
      const target = eventPod(locator, direction === 'send' ? drop.src : drop.dst);
      if (target === undefined || isExpired(drop, now, config.expirationMs)) continue;
      if (!waiting.posted && this.repeats.isRepeat(drop)) continue;
      const srcName = peerName(drop.src, locator, config, dns);
      const dstName = peerName(drop.dst, locator, config, dns);
      if (!waiting.posted) this.markPosted(waiting, srcName, dstName);
      const peer = direction === 'send' ? dstName : srcName;
      const host = eventHost(drop, config.nodeName);
      sink.submit(this.combiner.intent(drop, target, direction, peer, host, sink.overloaded()));
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
  }

  /** Lets a side whose address no pod or node has wait for a pod to appear there; only the live agent waits. */
  private awaitPod(ip: string, side: WaitingSide): void {
    if (this.parts.freshness === undefined || known(this.parts.locator, ip)) return;
    this.late.wait(ip, side);
  }

  private process(drop: PacketDrop, now: number, indexBehind: boolean): DropOutcome {
    const { config, locator, metrics, sink, dns } = this.parts;
    if (isExpired(drop, now, config.expirationMs)) {
      metrics.dropsExpired.inc();
      return 'expired';
    }
    if (this.repeats.isRepeat(drop)) {
      metrics.dropsSuppressed.inc();
      return 'suppressed';
    }
    // An unknown address may be a pod the index has not heard of yet; it cannot be told from an outside one.
    if (indexBehind && !(known(locator, drop.src) && known(locator, drop.dst))) return 'held';
    const srcPod = eventPod(locator, drop.src);
    const dstPod = eventPod(locator, drop.dst);
    const waiting: WaitingDrop = { drop, posted: false, seenAt: now };
    if (srcPod === undefined) this.awaitPod(drop.src, { waiting, direction: 'send' });
    if (dstPod === undefined) this.awaitPod(drop.dst, { waiting, direction: 'receive' });
    // Checked before naming, so traffic between unknown peers never costs a reverse DNS lookup.
    if (srcPod === undefined && dstPod === undefined) {
      metrics.dropsUnmatched.inc();
      return 'unmatched';
    }
    const srcName = peerName(drop.src, locator, config, dns);
    const dstName = peerName(drop.dst, locator, config, dns);
    const host = eventHost(drop, config.nodeName);
    this.markPosted(waiting, srcName, dstName);
    if (srcPod !== undefined) {
      sink.submit(this.combiner.intent(drop, srcPod, 'send', dstName, host, sink.overloaded()));
    }
    if (dstPod !== undefined) {
      sink.submit(this.combiner.intent(drop, dstPod, 'receive', srcName, host, sink.overloaded()));
    }
    metrics.dropsPosted.inc();
    return 'posted';
  }
}
