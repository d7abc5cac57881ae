import type { LRUCache } from 'lru-cache';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { boundedLru } from './lru.ts';
import type { PolicyRef } from './types.ts';

/**
 * Series of packet_drops_count kept at most. Its labels name peers, and a peer outside the cluster is
 * named by its DNS name or address: on a node that faces the internet, new ones come without end.
 */
export const DROP_SERIES_LIMIT = 5_000;

/**
 * A counter whose label values come from outside (peer names, policy names) and so must not grow without
 * end: past `limit` series, the least recently counted one is removed (and `onEvict` told).
 */
class BoundedSeries<T extends string> {
  private readonly counter: Counter<T>;
  private readonly series: LRUCache<string, Record<T, string>>;

  constructor(counter: Counter<T>, limit: number, onEvict: () => void) {
    this.counter = counter;
    this.series = boundedLru(limit, {
      dispose: (labels, _key, reason) => {
        if (reason !== 'evict') return;
        this.counter.remove(labels);
        onEvict();
      },
    });
  }

  inc(labels: Record<T, string>): void {
    // JSON keeps label values holding separators apart.
    const key = JSON.stringify(Object.values(labels));
    if (this.series.get(key) === undefined) this.series.set(key, labels);
    this.counter.inc(labels);
  }
}

/**
 * Every metric the agent exports. One instance per process (or per test), passed to each stage, so a
 * test can read exactly what its own pipeline counted.
 */
export class Metrics {
  readonly registry = new Registry();

  /** Compatible with box/kube-iptables-tailer: one count per drop posted, by peer names. Use countDrop. */
  readonly packetDrops = new Counter({
    name: 'packet_drops_count',
    help: `Packet drops posted as events, by source and destination name (the ${DROP_SERIES_LIMIT} pairs counted most recently)`,
    labelNames: ['src', 'dst'] as const,
    registers: [this.registry],
  });
  readonly dropSeriesEvicted = this.counter(
    'drop_series_evicted_total',
    'packet_drops_count series removed to keep their number bounded, least recently counted first',
  );
  readonly linesRead = this.counter(
    'lines_read_total',
    'Log lines (or journal entries) read from the source',
  );
  readonly linesParsed = this.counter(
    'lines_parsed_total',
    'Lines that carried the prefix and parsed into a drop',
  );
  readonly linesInvalid = this.labelled(
    'lines_invalid_total',
    'Lines that carried the prefix but could not be parsed, by reason',
    ['reason'] as const,
  );
  readonly dropsExpired = this.counter(
    'drops_expired_total',
    'Drops older than PACKET_DROP_EXPIRATION_MINUTES',
  );
  readonly dropsSuppressed = this.counter(
    'drops_suppressed_total',
    'Drops within REPEATED_EVENTS_INTERVAL_MINUTES of the same posted drop',
  );
  readonly dropsUnmatched = this.counter(
    'drops_unmatched_total',
    'Drops where neither address is a Running pod',
  );
  readonly dropsPosted = this.counter(
    'drops_posted_total',
    'Drops with a Running pod on at least one side, handed to the Event writer when read',
  );
  readonly dropsFutureDated = this.counter(
    'drops_future_dated_total',
    'Drops dated more than a minute ahead of the node clock, taken as happening when read',
  );
  readonly dropSides = this.labelled(
    'drop_sides_total',
    "Pod sides of posted drops that reached the API: in an Event write of their own (written), joined to another side's pending write (merged), or in a combined scan Event (combined)",
    ['outcome'] as const,
  );
  readonly readWaitSeconds = this.counter(
    'read_wait_seconds_total',
    'Time reading waited for pending Event writes to go out (back-pressure)',
  );
  readonly dropsHeld = this.counter(
    'drops_held_total',
    'Drops with an unknown address that waited for the pod index to catch up (its watch reconnecting)',
  );
  readonly dropsPostedLate = this.counter(
    'drops_posted_late_total',
    "Drop sides posted when their pod's Running status reached the pod index after the drop",
  );
  readonly podIpConflicts = this.counter(
    'pod_ip_conflicts_total',
    'Drop addresses located while two Running pods on the pod network claimed them (a stale status during IP reuse); the pod that started last was named',
  );
  readonly podLookups = this.labelled(
    'pod_lookups_total',
    'Asks about drop addresses no local pod or node has (POD_WATCH_SCOPE=node), by outcome: from the cache (hit, miss), answered by the API server (found, not_found), or not yet (error, rate_limited, coalesced with a lookup in flight: once per address and wait, not per recheck of the drops held for it)',
    ['outcome'] as const,
  );
  readonly podLookupCache = this.gauge(
    'pod_lookup_cache_entries',
    'Addresses in the pod lookup cache: pods found on demand and misses remembered',
  );
  readonly eventsCreated = this.counter('events_created_total', 'Events created in the API');
  readonly eventsPatched = this.counter(
    'events_patched_total',
    'Existing Events whose count was incremented',
  );
  readonly eventsFailed = this.labelled('events_failed_total', 'Event writes that failed, by reason', [
    'reason',
  ] as const);
  readonly eventsDropped = this.labelled(
    'events_dropped_total',
    'Drop sides whose Event write was given up, by reason (expired, shutdown, already_counted, forbidden, invalid, ...)',
    ['reason'] as const,
  );
  readonly queueDepth = this.gauge('queue_depth', 'Distinct Events waiting to be written or updated');
  readonly podsIndexed = this.gauge('pods_indexed', 'Running pods in the pod index');
  readonly sourceLagSeconds = this.gauge(
    'source_lag_seconds',
    'Age of the newest log line read, by its own timestamp',
  );
  readonly sourceStalledSeconds = this.gauge(
    'source_stalled_seconds',
    'How long the log source has had input to read while reading nothing (0 while it keeps up); /readyz fails from 60 s',
  );
  readonly apiWatch = this.labelled(
    'api_watch_total',
    'Pod and node list-watch activity: lists, relists, watches, reconnects, events, by resource',
    ['resource', 'counter'] as const,
  );
  readonly sourceErrors = this.labelled('source_errors_total', 'Problems reading the log source, by reason', [
    'reason',
  ] as const);
  readonly kmsgRecordsLost = this.counter(
    'kmsg_records_lost_total',
    'Kernel records the ring buffer overwrote before KMSG_PATH mode read them (a gap in their sequence numbers)',
  );

  readonly policyDrops = this.labelled(
    'policy_drops_total',
    `Packet drops posted as events, by the policy the log prefix names (kind, namespace, name; '' when unknown, a name the kernel cut ends in …; the ${DROP_SERIES_LIMIT} policies counted most recently)`,
    ['kind', 'namespace', 'name'] as const,
  );
  readonly policySeriesEvicted = this.counter(
    'policy_series_evicted_total',
    'policy_drops_total series removed to keep their number bounded, least recently counted first',
  );

  private readonly dropSeries: BoundedSeries<'src' | 'dst'>;
  private readonly policySeries: BoundedSeries<'kind' | 'namespace' | 'name'>;

  constructor(options: { defaultMetrics?: boolean; dropSeriesLimit?: number } = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    const limit = options.dropSeriesLimit ?? DROP_SERIES_LIMIT;
    this.dropSeries = new BoundedSeries(this.packetDrops, limit, () => this.dropSeriesEvicted.inc());
    this.policySeries = new BoundedSeries(this.policyDrops, limit, () => this.policySeriesEvicted.inc());
  }

  /** One drop posted between the peers so named. */
  countDrop(src: string, dst: string): void {
    this.dropSeries.inc({ src, dst });
  }

  /** One drop posted that the log prefix attributes to this policy. */
  countPolicyDrop(policy: PolicyRef): void {
    this.policySeries.inc({
      kind: policy.kind ?? '',
      namespace: policy.namespace ?? '',
      name: policy.name === null ? '' : `${policy.name}${policy.cut ? '…' : ''}`,
    });
  }

  private labelled<T extends string>(name: string, help: string, labelNames: readonly T[]): Counter<T> {
    return new Counter({
      name: `kube_iptables_tailer_${name}`,
      help,
      labelNames,
      registers: [this.registry],
    });
  }

  private counter(name: string, help: string): Counter {
    return new Counter({ name: `kube_iptables_tailer_${name}`, help, registers: [this.registry] });
  }

  private gauge(name: string, help: string): Gauge {
    return new Gauge({ name: `kube_iptables_tailer_${name}`, help, registers: [this.registry] });
  }
}
